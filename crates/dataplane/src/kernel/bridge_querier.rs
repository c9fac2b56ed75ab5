//! The bridge's own querier: the domain's IGMP version and settings as bridge multicast
//! settings (`mcast_querier`, `mcast_igmp_version` and the `mcast_*_interval` timers),
//! and MLDv2 for IPv6 (`mcast_mld_version`), as the agent's MLD queriers speak it.

use std::time::Duration;

use mcgate_wire::{IgmpSettings, Version};

use super::link_msg::BridgeSettings;

fn cs(d: Duration) -> u64 {
    (d.as_millis() / 10).max(1) as u64
}

/// The bridge settings that run a querier of `version` with `s` with snooping on (RFC
/// 3376 section 8.4 and 8.5 for the derived intervals). The kernel takes at least 1 s
/// for the query intervals and has no IGMPv1 querier (v3 serves v1 hosts, RFC 3376
/// section 7).
pub fn bridge_settings(version: Version, s: &IgmpSettings) -> BridgeSettings {
    let qi = cs(s.query_interval()).max(100);
    let qri = cs(s.query_response_interval())
        .min(qi.saturating_sub(1))
        .max(1);
    let robustness = u32::from(s.robustness.max(1));
    let rob = u64::from(robustness);
    BridgeSettings {
        snooping: Some(true),
        querier: Some(true),
        igmp_version: Some(if version == Version::V2 { 2 } else { 3 }),
        // The kernel's default is MLDv1, whose queries would put every IPv6 host of
        // the bridge in MLDv1 compatibility (RFC 3810 8.2.1) under the agent's MLDv2.
        mld_version: Some(2),
        last_member_count: Some(u32::from(s.last_member_count().max(1))),
        startup_query_count: Some(robustness),
        last_member_interval: Some(cs(s.last_member_interval())),
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
        let s = IgmpSettings {
            robustness: 2,
            query_interval_ms: 20_000,
            query_response_interval_ms: 2_000,
            last_member_interval_ms: 300,
            last_member_count: Some(2),
            fast_leave: false,
            single_host_fast_leave: true,
        };
        let b = bridge_settings(Version::V2, &s);
        assert_eq!(b.igmp_version, Some(2));
        assert_eq!(b.mld_version, Some(2), "MLDv2 whatever the IGMP version");
        assert_eq!(b.query_interval, Some(2000));
        assert_eq!(b.query_response_interval, Some(200));
        assert_eq!(b.last_member_interval, Some(30));
        assert_eq!(b.last_member_count, Some(2));
        assert_eq!(b.startup_query_count, Some(2));
        // RFC 3376 8.4: robustness * query interval + query response interval.
        assert_eq!(b.membership_interval, Some(4200));
        // 8.5: robustness * query interval + query response interval / 2.
        assert_eq!(b.querier_interval, Some(4100));
        assert_eq!(b.startup_query_interval, Some(500));
        assert_eq!((b.snooping, b.querier), (Some(true), Some(true)));
        // The kernel's minimum query interval is 1 s; v1 queriers do not exist here.
        let tiny = bridge_settings(
            Version::V1,
            &IgmpSettings {
                query_interval_ms: 10,
                ..s
            },
        );
        assert_eq!(tiny.query_interval, Some(100));
        assert_eq!(tiny.igmp_version, Some(3));
    }

    #[test]
    fn defaults_are_rfc_3376s() {
        // Last Member Query Count defaults to the robustness (RFC 3376 8.9).
        let b = bridge_settings(Version::V3, &IgmpSettings::default());
        assert_eq!(b.igmp_version, Some(3));
        assert_eq!(b.query_interval, Some(12_500));
        assert_eq!(b.query_response_interval, Some(1_000));
        assert_eq!(b.last_member_count, Some(2));
        assert_eq!(b.membership_interval, Some(26_000));
    }
}
