//! The bridge's own querier: the domain's querier settings as bridge multicast
//! settings (`mcast_querier`, `mcast_igmp_version` and the `mcast_*_interval` timers).

use std::time::Duration;

use super::link_msg::BridgeSettings;
use crate::QuerierSettings;

fn cs(d: Duration) -> u64 {
    (d.as_millis() / 10).max(1) as u64
}

/// The bridge settings that run `q` with snooping on (RFC 3376 section 8.4 and 8.5 for
/// the derived intervals). The kernel takes at least 1 s for the query intervals.
pub fn bridge_settings(q: &QuerierSettings) -> BridgeSettings {
    let qi = cs(q.query_interval).max(100);
    let qri = cs(q.query_response_interval)
        .min(qi.saturating_sub(1))
        .max(1);
    let rob = u64::from(q.robustness.max(1));
    BridgeSettings {
        snooping: Some(true),
        querier: Some(true),
        igmp_version: Some(if q.version == 2 { 2 } else { 3 }),
        last_member_count: Some(q.last_member_count.max(1)),
        startup_query_count: Some(q.robustness.max(1)),
        last_member_interval: Some(cs(q.last_member_interval)),
        membership_interval: Some(rob * qi + qri),
        querier_interval: Some(rob * qi + qri / 2),
        query_interval: Some(qi),
        query_response_interval: Some(qri),
        startup_query_interval: Some((qi / 4).max(100)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn querier_settings_become_bridge_settings() {
        let q = QuerierSettings {
            version: 2,
            robustness: 2,
            query_interval: Duration::from_secs(20),
            query_response_interval: Duration::from_secs(2),
            last_member_interval: Duration::from_millis(300),
            last_member_count: 2,
        };
        let b = bridge_settings(&q);
        assert_eq!(b.igmp_version, Some(2));
        assert_eq!(b.query_interval, Some(2000));
        assert_eq!(b.query_response_interval, Some(200));
        assert_eq!(b.last_member_interval, Some(30));
        // RFC 3376 8.4: robustness * query interval + query response interval.
        assert_eq!(b.membership_interval, Some(4200));
        // 8.5: robustness * query interval + query response interval / 2.
        assert_eq!(b.querier_interval, Some(4100));
        assert_eq!(b.startup_query_interval, Some(500));
        assert_eq!((b.snooping, b.querier), (Some(true), Some(true)));
        // The kernel's minimum query interval is 1 s; v1 queriers do not exist here.
        let tiny = bridge_settings(&QuerierSettings {
            version: 1,
            query_interval: Duration::from_millis(10),
            ..q
        });
        assert_eq!(tiny.query_interval, Some(100));
        assert_eq!(tiny.igmp_version, Some(3));
    }
}
