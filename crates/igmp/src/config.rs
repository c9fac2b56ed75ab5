//! Configuration of one interface: the domain's protocol settings (RFC 3376 section 8,
//! [`IgmpSettings`]) plus what only this router decides (the start-up response time, who
//! else may query on the link, flood limits).

use core::time::Duration;

use mcgate_wire::{IgmpSettings, SettingsError, Version};

/// Why a [`Config`] cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A protocol setting is out of range for the version.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// This router does not run as an IGMPv1 querier (RFC 3376 7.3.1 leaves older
    /// versions to configuration; mcgate offers v2 and v3).
    #[error("the querier speaks IGMPv2 or IGMPv3, not {0}")]
    UnsupportedVersion(Version),
    /// The start-up Max Resp Time must fit between 100 ms and the Query Response
    /// Interval.
    #[error(
        "startup query response interval must be 100 ms to the query response interval ({max:?}), got {value:?}"
    )]
    StartupResponseOutOfRange {
        /// The value given.
        value: Duration,
        /// The Query Response Interval.
        max: Duration,
    },
    /// A report limit with a rate but no burst would drop every report.
    #[error("report burst must be at least 1 when a report rate limit is set")]
    ZeroBurst,
}

/// Parameters of one interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// The version the querier speaks: V2 (an RFC 2236 router) or V3 (RFC 3376 with
    /// section 7 compatibility). It is configuration (RFC 3376 7.3.1): queries of an
    /// older version heard on the link are counted, never obeyed. Default V3.
    pub version: Version,
    /// The protocol timers and counters (RFC 3376 section 8). Default: the RFC's.
    pub settings: IgmpSettings,
    /// Max Resp Time of the startup general queries (RFC 3376 8.6, 8.7) when shorter than
    /// the Query Response Interval: a router that restarts with hosts already joined
    /// relearns them within this time instead of the full interval. `None` (the
    /// default) uses the Query Response Interval.
    pub startup_query_response_interval: Option<Duration>,
    /// Whether another multicast router may be on this link. `false` (the default) marks
    /// a link that carries only hosts, such as a container's: queries of any version and
    /// other router-only messages are dropped and counted
    /// ([`crate::Dropped::router_message`]), so this interface stays querier and no
    /// host can take that role (RFC 3376 6.6.2 election runs only when `true`).
    pub other_queriers: bool,
    /// Reports (any version, leaves included) accepted per second from one reporting
    /// host (the IP source). 0 means no limit. Default 200.
    pub report_rate_limit: u32,
    /// Reports one host may send at once before its rate applies. Default 1000: a
    /// market-data host joining hundreds of groups in one burst, one IGMPv2 report each,
    /// is not limited. Reports dropped over the limit are recovered with a general query
    /// once the burst is over (see the crate documentation).
    pub report_burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: Version::V3,
            settings: IgmpSettings::default(),
            startup_query_response_interval: None,
            other_queriers: false,
            report_rate_limit: 200,
            report_burst: 1000,
        }
    }
}

/// Limits of the encoded fields, for [`Config::sanitized`]: the largest Max Resp Time
/// (RFC 3376 4.1.1) and query interval (4.1.7), in ms, and the shortest interval run.
const MAX_RESP_MS: u64 = 3_174_400;
const QQI_MS: u64 = 31_744_000;
const MIN_MS: u64 = 100;

impl Config {
    /// Checks the values: the settings' ranges for the version ([`IgmpSettings::validate`])
    /// and this router's own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version == Version::V1 {
            return Err(ConfigError::UnsupportedVersion(self.version));
        }
        self.settings.validate(self.version)?;
        let max = self.settings.query_response_interval();
        if let Some(value) = self.startup_query_response_interval
            && (value < Duration::from_millis(MIN_MS) || value > max)
        {
            return Err(ConfigError::StartupResponseOutOfRange { value, max });
        }
        if self.report_rate_limit > 0 && self.report_burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        Ok(())
    }

    /// The config with every value forced into a range the interface can run, so that
    /// an [`crate::Interface`] never divides time by zero or loops without waiting. An
    /// IGMPv1 querier runs as IGMPv2.
    pub(crate) fn sanitized(mut self) -> Self {
        self.version = self.version.max(Version::V2);
        let s = &mut self.settings;
        s.robustness = s.robustness.max(1);
        s.last_member_count = s.last_member_count.map(|c| c.max(1));
        s.query_interval_ms = s.query_interval_ms.clamp(MIN_MS, QQI_MS);
        s.query_response_interval_ms = s
            .query_response_interval_ms
            .clamp(MIN_MS, MAX_RESP_MS)
            .min(s.query_interval_ms);
        s.last_member_interval_ms = s.last_member_interval_ms.clamp(MIN_MS, MAX_RESP_MS);
        let qri = s.query_response_interval();
        self.startup_query_response_interval = self
            .startup_query_response_interval
            .map(|d| d.clamp(Duration::from_millis(MIN_MS), qri));
        self.report_burst = self.report_burst.max(1);
        self
    }

    /// Query Interval (8.2).
    pub fn query_interval(&self) -> Duration {
        self.settings.query_interval()
    }

    /// Query Response Interval (8.3).
    pub fn query_response_interval(&self) -> Duration {
        self.settings.query_response_interval()
    }

    /// Max Resp Time of the startup queries.
    pub fn startup_query_response_interval(&self) -> Duration {
        self.startup_query_response_interval
            .unwrap_or_else(|| self.query_response_interval())
    }

    /// Group Membership Interval (8.4).
    pub fn group_membership_interval(&self) -> Duration {
        self.settings.group_membership_interval()
    }

    /// Other Querier Present Interval (8.5).
    pub fn other_querier_present_interval(&self) -> Duration {
        self.settings.other_querier_present_interval()
    }

    /// Last Member Query Time (8.11).
    pub fn last_member_query_time(&self) -> Duration {
        self.settings.last_member_query_time()
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
        assert_eq!(c.settings.startup_query_interval(), c.query_interval() / 4);
        assert_eq!(c.startup_query_response_interval(), Duration::from_secs(10));
        assert!(!c.other_queriers);
    }

    #[test]
    fn invalid_values_are_named() {
        let c = Config {
            settings: IgmpSettings {
                robustness: 0,
                ..IgmpSettings::default()
            },
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Settings(e)) if e.field == "robustness"));
        let c = Config {
            version: Version::V1,
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::UnsupportedVersion(Version::V1))
        );
        let c = Config {
            startup_query_response_interval: Some(Duration::from_secs(11)),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::StartupResponseOutOfRange { .. })
        ));
        let c = Config {
            report_burst: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroBurst));
    }

    #[test]
    fn sanitized_values_can_run() {
        let c = Config {
            version: Version::V1,
            settings: IgmpSettings {
                robustness: 0,
                last_member_interval_ms: 0,
                query_response_interval_ms: 500_000,
                last_member_count: Some(0),
                ..IgmpSettings::default()
            },
            startup_query_response_interval: Some(Duration::ZERO),
            report_burst: 0,
            ..Config::default()
        }
        .sanitized();
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.settings.robustness, 1);
        assert_eq!(c.settings.last_member_count(), 1);
        assert_eq!(
            c.settings.last_member_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(c.query_response_interval(), c.query_interval());
        assert_eq!(
            c.startup_query_response_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(c.report_burst, 1);
    }
}
