//! Whether this gateway forwards its upstream ranges: only the ranges the controller
//! elected it for, and only while its lease surely holds (fencing: a gateway cut off
//! from the controller for a lease may have been replaced, so it stops before the
//! controller can elect another).

use std::collections::BTreeMap;
use std::time::Instant;

use mcgate_domain::api::GatewayElection;
use mcgate_igmp::proxy::GroupRange;
use serde::Serialize;

/// The gateway's role for its ranges, as decided from the controller's election and
/// the lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GatewayRole {
    /// "active" when it forwards at least one range, else "standby".
    pub role: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The ranges it forwards (reports upstream and takes traffic in for).
    #[serde(serialize_with = "as_strings")]
    pub active: Vec<GroupRange>,
    /// The ranges another gateway forwards, or none does.
    #[serde(serialize_with = "as_strings")]
    pub standby: Vec<GroupRange>,
    /// Range → the gateway elected for it, as the controller said.
    pub elected: BTreeMap<String, String>,
}

fn as_strings<S: serde::Serializer>(v: &[GroupRange], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// The role of `host`, a gateway for `ranges`, given the controller's `elections` and
/// the end of its lease as it surely holds (`None`: no lease).
pub fn decide(
    host: &str,
    ranges: &[GroupRange],
    elections: &[&GatewayElection],
    lease_until: Option<Instant>,
    now: Instant,
) -> GatewayRole {
    let elected_for = |r: &GroupRange| {
        elections
            .iter()
            .find(|e| e.range.network() == r.network() && e.range.prefix_len() == r.prefix_len())
            .map(|e| e.host.as_str())
    };
    let elected: BTreeMap<String, String> = ranges
        .iter()
        .filter_map(|r| elected_for(r).map(|h| (r.to_string(), h.to_string())))
        .collect();
    let fenced = lease_until.is_none_or(|t| now >= t);
    let (active, standby): (Vec<GroupRange>, Vec<GroupRange>) = ranges
        .iter()
        .partition(|r| !fenced && elected_for(r) == Some(host));
    let reason = if fenced {
        "no lease: the controller did not renew it for a lease (fenced; another gateway may be elected)".to_string()
    } else if !standby.is_empty() {
        let others: Vec<String> = standby
            .iter()
            .map(|r| match elected_for(r) {
                Some(h) => format!("{r}: {h} is elected"),
                None => format!("{r}: no gateway elected yet"),
            })
            .collect();
        if active.is_empty() {
            others.join("; ")
        } else {
            format!("elected for the others; {}", others.join("; "))
        }
    } else {
        "elected by the controller".to_string()
    };
    GatewayRole {
        role: if active.is_empty() {
            "standby"
        } else {
            "active"
        },
        reason,
        active,
        standby,
        elected,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn election(range: &str, host: &str) -> GatewayElection {
        GatewayElection {
            range: range.parse().unwrap(),
            host: host.into(),
        }
    }

    #[test]
    fn forwards_only_the_ranges_it_is_elected_for_while_the_lease_holds() {
        let ranges: Vec<GroupRange> = vec![
            "233.252.0.0/24".parse().unwrap(),
            "239.10.0.0/16".parse().unwrap(),
        ];
        let now = Instant::now();
        let lease = Some(now + Duration::from_secs(1));
        let a = election("233.252.0.0/24", "gw-a");
        let b = election("239.10.0.0/16", "gw-b");
        let r = decide("gw-a", &ranges, &[&a, &b], lease, now);
        assert_eq!(r.role, "active");
        assert_eq!(r.active, ranges[..1].to_vec());
        assert_eq!(r.standby, ranges[1..].to_vec());
        assert!(r.reason.contains("gw-b is elected"), "{}", r.reason);
        // Not elected at all: standby, saying who is.
        let r = decide("gw-c", &ranges, &[&a], lease, now);
        assert_eq!((r.role, r.active.len()), ("standby", 0));
        assert!(r.reason.contains("no gateway elected yet"), "{}", r.reason);
        // Fenced: the lease ran out (or never started), whatever the election says.
        let r = decide(
            "gw-a",
            &ranges,
            &[&a, &b],
            lease,
            now + Duration::from_secs(1),
        );
        assert_eq!((r.role, r.active.len()), ("standby", 0));
        assert!(r.reason.starts_with("no lease"), "{}", r.reason);
        assert_eq!(decide("gw-a", &ranges, &[&a], None, now).role, "standby");
    }
}
