//! Protocol parameters of one interface (RFC 3376 section 8, RFC 2236 section 8).

use core::time::Duration;

/// The IGMP version the router speaks as querier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// RFC 2236 router: IGMPv2 queries only, any-source membership.
    V2,
    /// RFC 3376 router with section 7 compatibility for older hosts.
    V3,
}

impl Version {
    pub(crate) fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Why a [`Config`] cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// RFC 3376 section 8.1: the Robustness Variable must not be zero.
    #[error("robustness must be at least 1 (2 or more is recommended)")]
    ZeroRobustness,
    /// A count that must be at least one is zero.
    #[error("{0} must be at least 1")]
    ZeroCount(&'static str),
    /// An interval is zero or too long for its encoded field.
    #[error("{name} must be between 100 ms and {max:?}, got {value:?}")]
    IntervalOutOfRange {
        /// Which interval.
        name: &'static str,
        /// The value given.
        value: Duration,
        /// The largest value the field can carry.
        max: Duration,
    },
    /// RFC 3376 section 8.3: hosts must be able to answer before the next query.
    #[error(
        "query response interval ({response:?}) must be shorter than the query interval ({interval:?})"
    )]
    ResponseNotShorterThanInterval {
        /// Query Response Interval.
        response: Duration,
        /// Query Interval.
        interval: Duration,
    },
}

/// Protocol parameters; the defaults are RFC 3376 section 8's.
///
/// To mimic the reference gateway (an AWS Transit Gateway multicast domain): `version:
/// V2`, `query_interval: 120 s`, `robustness: 3` (a member is dropped after three missed
/// general queries).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// The version the querier speaks.
    pub version: Version,
    /// Robustness Variable (8.1): tolerated packet loss. Default 2.
    pub robustness: u8,
    /// Query Interval (8.2) between general queries. Default 125 s.
    pub query_interval: Duration,
    /// Query Response Interval (8.3): Max Resp Time of general queries. Default 10 s.
    pub query_response_interval: Duration,
    /// Last Member Query Interval (8.8): Max Resp Time of group-specific queries and the
    /// gap between their retransmissions. Default 1 s.
    pub last_member_interval: Duration,
    /// Last Member Query Count (8.9). Default: the robustness.
    pub last_member_count: u8,
    /// Startup Query Interval (8.6). Default: a quarter of the query interval.
    pub startup_query_interval: Duration,
    /// Startup Query Count (8.7). Default: the robustness.
    pub startup_query_count: u8,
    /// Act on a leave at once, without last-member queries, when no other member of the
    /// group is known: an IGMPv2 leave or TO_IN({}) removes the group, and what any
    /// other record would query about (BLOCK, TO_EX, TO_IN) times out on the spot.
    /// Only right on links that carry a single host.
    pub fast_leave: bool,
    /// Reports (any version, leaves included) accepted per second on this interface;
    /// the burst is the same number. 0 means no limit. Default 200: a host answering a
    /// general query for a hundred groups in IGMPv2 (one report each) is not limited.
    pub report_rate_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: Version::V3,
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            last_member_interval: Duration::from_secs(1),
            last_member_count: 2,
            startup_query_interval: Duration::from_millis(31_250),
            startup_query_count: 2,
            fast_leave: false,
            report_rate_limit: 200,
        }
    }
}

/// The largest time a Max Resp Code can carry (RFC 3376 4.1.1): 31744 tenths of a second.
const MAX_RESP_LIMIT: Duration = Duration::from_millis(3_174_400);
/// The largest interval a QQIC can carry (RFC 3376 4.1.7): 31744 seconds.
const QQI_LIMIT: Duration = Duration::from_secs(31_744);
const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Config {
    /// Checks the values against RFC 3376 section 8 and the field encodings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.robustness == 0 {
            return Err(ConfigError::ZeroRobustness);
        }
        if self.last_member_count == 0 {
            return Err(ConfigError::ZeroCount("last member count"));
        }
        if self.startup_query_count == 0 {
            return Err(ConfigError::ZeroCount("startup query count"));
        }
        for (name, value, max) in [
            ("query interval", self.query_interval, QQI_LIMIT),
            (
                "query response interval",
                self.query_response_interval,
                MAX_RESP_LIMIT,
            ),
            (
                "last member interval",
                self.last_member_interval,
                MAX_RESP_LIMIT,
            ),
            (
                "startup query interval",
                self.startup_query_interval,
                QQI_LIMIT,
            ),
        ] {
            if value < MIN_INTERVAL || value > max {
                return Err(ConfigError::IntervalOutOfRange { name, value, max });
            }
        }
        if self.query_response_interval >= self.query_interval {
            return Err(ConfigError::ResponseNotShorterThanInterval {
                response: self.query_response_interval,
                interval: self.query_interval,
            });
        }
        Ok(())
    }

    /// The config with every value forced into its valid range, so that an
    /// [`crate::Interface`] never divides time by zero or loops without waiting.
    pub(crate) fn sanitized(mut self) -> Self {
        self.robustness = self.robustness.max(1);
        self.last_member_count = self.last_member_count.max(1);
        self.startup_query_count = self.startup_query_count.max(1);
        self.query_interval = self.query_interval.clamp(MIN_INTERVAL, QQI_LIMIT);
        self.query_response_interval = self
            .query_response_interval
            .clamp(MIN_INTERVAL, MAX_RESP_LIMIT)
            .min(self.query_interval);
        self.last_member_interval = self
            .last_member_interval
            .clamp(MIN_INTERVAL, MAX_RESP_LIMIT);
        self.startup_query_interval = self.startup_query_interval.clamp(MIN_INTERVAL, QQI_LIMIT);
        self
    }

    /// Group Membership Interval (8.4) = robustness * QI + QRI; also the Older Version
    /// Host Present Timeout (8.13).
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness) + self.query_response_interval
    }

    /// Other Querier Present Interval (8.5) = robustness * QI + QRI / 2.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness) + self.query_response_interval / 2
    }

    /// Last Member Query Time (8.11) = LMQI * LMQC.
    pub fn last_member_query_time(&self) -> Duration {
        self.last_member_interval * u32::from(self.last_member_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rfc3376_section_8() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.group_membership_interval(), Duration::from_secs(260));
        assert_eq!(c.other_querier_present_interval(), Duration::from_secs(255));
        assert_eq!(c.last_member_query_time(), Duration::from_secs(2));
        assert_eq!(c.startup_query_interval, c.query_interval / 4);
    }

    #[test]
    fn invalid_values_are_named() {
        let c = Config {
            robustness: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroRobustness));
        let c = Config {
            query_response_interval: Duration::from_secs(200),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ResponseNotShorterThanInterval { .. })
        ));
        let c = Config {
            last_member_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::IntervalOutOfRange { .. })
        ));
        let s = c.sanitized();
        assert_eq!(s.last_member_interval, MIN_INTERVAL);
    }
}
