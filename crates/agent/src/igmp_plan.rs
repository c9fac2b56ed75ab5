//! What the querier runs, derived from the domain's IGMP settings (pure).

use std::time::Duration;

use mcgate_dataplane::kernel::plane::QuerierSettings;
use mcgate_domain::api::{IgmpMode, IgmpSettings};
use mcgate_igmp::{Config as IgmpConfig, Version};

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
            IgmpPlan::On(c) => match c.version {
                Version::V2 => "v2",
                Version::V3 => "v3",
            },
        }
    }
}

/// The querier config for a domain's IGMP mode and settings (RFC 3376 8.6, 8.7: start-up
/// queries a quarter of the query interval apart, Robustness of them).
pub fn igmp_config(mode: IgmpMode, s: &IgmpSettings) -> IgmpPlan {
    let version = match mode {
        IgmpMode::Off => return IgmpPlan::Off,
        IgmpMode::V2 => Version::V2,
        IgmpMode::V3 => Version::V3,
    };
    let robustness = s.robustness.max(1);
    let query_interval = Duration::from_millis(s.query_interval_ms);
    IgmpPlan::On(IgmpConfig {
        version,
        robustness,
        query_interval,
        query_response_interval: Duration::from_millis(s.query_response_interval_ms),
        last_member_interval: Duration::from_millis(s.last_member_interval_ms),
        last_member_count: s.last_member_count.unwrap_or(robustness).max(1),
        startup_query_interval: query_interval / 4,
        startup_query_count: robustness,
        fast_leave: s.fast_leave,
        ..IgmpConfig::default()
    })
}

/// The same version and timers for a data plane that runs its own querier (the kernel
/// one, on the bridge).
pub fn querier_settings(c: &IgmpConfig) -> QuerierSettings {
    QuerierSettings {
        version: match c.version {
            Version::V2 => 2,
            Version::V3 => 3,
        },
        robustness: u32::from(c.robustness),
        query_interval: c.query_interval,
        query_response_interval: c.query_response_interval,
        last_member_interval: c.last_member_interval,
        last_member_count: u32::from(c.last_member_count),
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
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.robustness, 3);
        assert_eq!(c.last_member_count, 3);
        assert_eq!(c.query_interval, Duration::from_secs(120));
        assert_eq!(c.startup_query_interval, Duration::from_secs(30));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(igmp_config(IgmpMode::Off, &s), IgmpPlan::Off);
        assert_eq!(querier_settings(&c).version, 2);
    }
}
