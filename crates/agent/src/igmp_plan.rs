//! What the querier runs, derived from the domain's IGMP settings (pure).

use std::time::Duration;

use mcgate_domain::api::{IgmpMode, IgmpSettings};
use mcgate_igmp::Config as IgmpConfig;

/// What the querier should run, from the domain settings.
#[derive(Debug, Clone, PartialEq)]
pub enum IgmpPlan {
    /// Not known yet: wait for the controller (up to the grace period).
    Unknown,
    /// Static membership only.
    Off,
    /// Run the querier with this config.
    On(IgmpConfig),
}

impl IgmpPlan {
    /// The name shown in `/v1/stats` (`igmp_mode`): "v2", "v3", "off", or "default"
    /// while the controller has not said.
    pub fn mode_name(&self) -> &'static str {
        match self {
            IgmpPlan::Unknown => "default",
            IgmpPlan::Off => "off",
            IgmpPlan::On(c) => match c.version.number() {
                1 => "v1",
                2 => "v2",
                _ => "v3",
            },
        }
    }
}

/// Max Resp Time of the start-up general queries: hosts already joined (an agent that
/// restarted, a container that was there first) answer within this instead of the full
/// Query Response Interval (RFC 3376 8.3, 8.7), so membership is relearned at once.
pub const STARTUP_RESPONSE: Duration = Duration::from_secs(1);

/// The querier config for a domain's IGMP mode and settings: the domain's version and
/// timers (RFC 3376 section 8), short start-up responses, and task links as links
/// with no other router on them.
pub fn igmp_config(mode: IgmpMode, s: &IgmpSettings) -> IgmpPlan {
    let Some(version) = mode.version() else {
        return IgmpPlan::Off;
    };
    IgmpPlan::On(IgmpConfig {
        version,
        settings: s.clone(),
        ..default_config()
    })
}

/// The querier config before the controller has said (IGMPv3 and the RFC's timers,
/// which also serve v1/v2 hosts through RFC 3376 section 7).
pub fn default_config() -> IgmpConfig {
    IgmpConfig {
        startup_query_response_interval: Some(STARTUP_RESPONSE),
        ..IgmpConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_settings_become_querier_config() {
        let s = IgmpSettings {
            robustness: 3,
            query_interval_ms: 120_000,
            ..IgmpSettings::default()
        };
        let IgmpPlan::On(c) = igmp_config(IgmpMode::V2, &s) else {
            panic!("v2 runs the querier");
        };
        assert_eq!(c.version.number(), 2);
        assert_eq!(c.settings.robustness, 3);
        assert_eq!(c.settings.last_member_count(), 3);
        assert_eq!(c.query_interval(), Duration::from_secs(120));
        assert_eq!(c.settings.startup_query_interval(), Duration::from_secs(30));
        assert_eq!(c.startup_query_response_interval(), STARTUP_RESPONSE);
        assert!(!c.other_queriers, "task links hold no other router");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(igmp_config(IgmpMode::Off, &s), IgmpPlan::Off);
    }
}
