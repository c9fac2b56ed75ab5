//! The IGMP protocol settings of a domain (RFC 3376 section 8, RFC 2236 section 8): one
//! type, one set of ranges, shared by the API, the IGMP router and the data planes'
//! queriers.
//!
//! Intervals are whole milliseconds, as the API carries them (`query_interval_ms`);
//! the accessors give [`Duration`]s and the values RFC 3376 derives from them.

use core::time::Duration;

use crate::membership::Version;

/// IGMP timers and counters of a domain. Defaults are RFC 3376 section 8's.
///
/// To mimic the reference gateway (an AWS Transit Gateway multicast domain): IGMPv2,
/// `query_interval_ms: 120000`, `robustness: 3` (a member is dropped after three missed
/// general queries).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgmpSettings {
    /// Robustness Variable (8.1): tolerated packet loss, 1 to 7. Default 2.
    pub robustness: u8,
    /// Query Interval in ms (8.2), 1000 to 31744000. Default 125000.
    pub query_interval_ms: u64,
    /// Query Response Interval in ms (8.3): Max Resp Time of general queries, 100 to
    /// 25500 (IGMPv2) or 3174400 (IGMPv3), below the query interval. Default 10000.
    pub query_response_interval_ms: u64,
    /// Last Member Query Interval in ms (8.8): Max Resp Time of group-specific queries and
    /// the gap between their retransmissions; same range as the response interval.
    /// Default 1000.
    pub last_member_interval_ms: u64,
    /// Last Member Query Count (8.9), 1 to 7. Default: the robustness.
    pub last_member_count: Option<u8>,
    /// Act on a leave at once, without last-member queries, when no other member of the
    /// group is known, on every link. Only right on links that carry a single host.
    pub fast_leave: bool,
    /// Act on a leave at once on the links the agent knows carry a single host (a task's
    /// veth), with the RFC's last-member queries (6.6.3) everywhere else. Default true.
    pub single_host_fast_leave: bool,
}

impl Default for IgmpSettings {
    fn default() -> Self {
        Self {
            robustness: 2,
            query_interval_ms: 125_000,
            query_response_interval_ms: 10_000,
            last_member_interval_ms: 1_000,
            last_member_count: None,
            fast_leave: false,
            single_host_fast_leave: true,
        }
    }
}

/// A setting out of range: which one (the field's name) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    /// The field, as the API names it (`robustness`, `query_interval_ms`, ...).
    pub field: &'static str,
    /// What the value must be.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

/// Max Resp Code and QQIC encode up to 31744 units (RFC 3376 4.1.1, 4.1.7): tenths of a
/// second for response times, seconds for the query interval.
const MAX_RESP_MS_V3: u64 = 3_174_400;
/// IGMPv2's Max Response Time is a plain 8-bit count of tenths (RFC 2236 section 2.2).
const MAX_RESP_MS_V2: u64 = 25_500;
const QUERY_INTERVAL_MS: core::ops::RangeInclusive<u64> = 1_000..=31_744_000;

impl IgmpSettings {
    /// Whether a leave is acted on at once on a link: on every link with `fast_leave`,
    /// on one that carries a single host with `single_host_fast_leave`.
    pub fn fast_leave_on(&self, single_host: bool) -> bool {
        self.fast_leave || (self.single_host_fast_leave && single_host)
    }

    /// Checks every value against what the protocol of `version` can encode (RFC 3376
    /// sections 4.1.1, 4.1.6, 4.1.7, 8; RFC 2236 section 2.2). The first value out of
    /// range is named.
    pub fn validate(&self, version: Version) -> Result<(), SettingsError> {
        let max_resp_ms = match version {
            Version::V1 | Version::V2 => MAX_RESP_MS_V2,
            Version::V3 => MAX_RESP_MS_V3,
        };
        if !(1..=7).contains(&self.robustness) {
            return Err(invalid(
                "robustness",
                "robustness must be 1 to 7 (RFC 3376 section 8.1; 2 is the default)",
            ));
        }
        if !QUERY_INTERVAL_MS.contains(&self.query_interval_ms) {
            return Err(invalid(
                "query_interval_ms",
                "query interval must be 1000 ms to 31744000 ms (RFC 3376 section 4.1.7)",
            ));
        }
        if !(100..=max_resp_ms).contains(&self.query_response_interval_ms) {
            return Err(invalid(
                "query_response_interval_ms",
                format!(
                    "query response interval must be 100 ms to {max_resp_ms} ms for this IGMP version"
                ),
            ));
        }
        if self.query_response_interval_ms >= self.query_interval_ms {
            return Err(invalid(
                "query_response_interval_ms",
                "query response interval must be shorter than the query interval (RFC 3376 section 8.3)",
            ));
        }
        if !(100..=max_resp_ms).contains(&self.last_member_interval_ms) {
            return Err(invalid(
                "last_member_interval_ms",
                format!(
                    "last member query interval must be 100 ms to {max_resp_ms} ms for this IGMP version"
                ),
            ));
        }
        if let Some(c) = self.last_member_count
            && !(1..=7).contains(&c)
        {
            return Err(invalid(
                "last_member_count",
                "last member query count must be 1 to 7",
            ));
        }
        Ok(())
    }

    /// Query Interval (8.2).
    pub fn query_interval(&self) -> Duration {
        Duration::from_millis(self.query_interval_ms)
    }

    /// Query Response Interval (8.3).
    pub fn query_response_interval(&self) -> Duration {
        Duration::from_millis(self.query_response_interval_ms)
    }

    /// Last Member Query Interval (8.8).
    pub fn last_member_interval(&self) -> Duration {
        Duration::from_millis(self.last_member_interval_ms)
    }

    /// Last Member Query Count (8.9): as set, or the robustness.
    pub fn last_member_count(&self) -> u8 {
        self.last_member_count.unwrap_or(self.robustness)
    }

    /// Startup Query Interval (8.6): a quarter of the query interval.
    pub fn startup_query_interval(&self) -> Duration {
        self.query_interval() / 4
    }

    /// Startup Query Count (8.7): the robustness.
    pub fn startup_query_count(&self) -> u8 {
        self.robustness
    }

    /// Group Membership Interval (8.4) = robustness * QI + QRI; also the Older Version
    /// Host Present Timeout (8.13).
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval() * u32::from(self.robustness) + self.query_response_interval()
    }

    /// Other Querier Present Interval (8.5) = robustness * QI + QRI / 2.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval() * u32::from(self.robustness) + self.query_response_interval() / 2
    }

    /// Last Member Query Time (8.11) = LMQI * LMQC.
    pub fn last_member_query_time(&self) -> Duration {
        self.last_member_interval() * u32::from(self.last_member_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rfc3376_section_8() {
        let s = IgmpSettings::default();
        assert_eq!(s.validate(Version::V3), Ok(()));
        assert_eq!(s.validate(Version::V2), Ok(()));
        assert_eq!(s.group_membership_interval(), Duration::from_secs(260));
        assert_eq!(s.other_querier_present_interval(), Duration::from_secs(255));
        assert_eq!(s.last_member_query_time(), Duration::from_secs(2));
        assert_eq!(s.startup_query_interval(), Duration::from_millis(31_250));
        assert_eq!(s.startup_query_count(), 2);
    }

    #[test]
    fn ranges_depend_on_the_version() {
        let long = IgmpSettings {
            query_response_interval_ms: 30_000,
            ..IgmpSettings::default()
        };
        assert_eq!(
            long.validate(Version::V2).unwrap_err().field,
            "query_response_interval_ms"
        );
        assert_eq!(long.validate(Version::V3), Ok(()));
        for (bad, field) in [
            (
                IgmpSettings {
                    robustness: 0,
                    ..IgmpSettings::default()
                },
                "robustness",
            ),
            (
                IgmpSettings {
                    robustness: 8,
                    ..IgmpSettings::default()
                },
                "robustness",
            ),
            (
                IgmpSettings {
                    query_interval_ms: 999,
                    ..IgmpSettings::default()
                },
                "query_interval_ms",
            ),
            (
                IgmpSettings {
                    query_response_interval_ms: 125_000,
                    ..IgmpSettings::default()
                },
                "query_response_interval_ms",
            ),
            (
                IgmpSettings {
                    last_member_interval_ms: 99,
                    ..IgmpSettings::default()
                },
                "last_member_interval_ms",
            ),
            (
                IgmpSettings {
                    last_member_count: Some(0),
                    ..IgmpSettings::default()
                },
                "last_member_count",
            ),
        ] {
            assert_eq!(bad.validate(Version::V3).unwrap_err().field, field);
        }
    }

    #[test]
    fn json_form_is_the_apis() {
        let s: IgmpSettings =
            serde_json::from_str(r#"{"robustness":3,"query_interval_ms":120000}"#).unwrap();
        assert_eq!(s.robustness, 3);
        assert_eq!(s.query_interval(), Duration::from_secs(120));
        assert_eq!(s.last_member_count(), 3);
        assert!(serde_json::from_str::<IgmpSettings>(r#"{"robustnes":3}"#).is_err());
    }
}
