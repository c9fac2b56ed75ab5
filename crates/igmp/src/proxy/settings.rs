//! An upstream interface's settings and counters.

use core::time::Duration;

/// Settings of an upstream interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// How many times a state change is sent when the querier has not told its
    /// Robustness Variable yet (RFC 3376 8.1 default: 2).
    pub robustness: u32,
    /// The Unsolicited Report Interval within which repeats go out (RFC 3376 8.11: 1 s).
    pub unsolicited_report_interval: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            robustness: 2,
            unsolicited_report_interval: Duration::from_secs(1),
        }
    }
}

/// What an upstream interface has done, for `/v1/stats` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStats {
    /// Queries received, by version.
    pub queries_v1: u64,
    /// IGMPv2 queries received.
    pub queries_v2: u64,
    /// IGMPv3 queries received.
    pub queries_v3: u64,
    /// IGMPv1 reports sent.
    pub reports_v1: u64,
    /// IGMPv2 reports sent.
    pub reports_v2: u64,
    /// IGMPv3 reports sent.
    pub reports_v3: u64,
    /// IGMPv2 Leave Group messages sent.
    pub leaves_v2: u64,
    /// Reports and leaves of other hosts on the link (ignored).
    pub other_hosts_messages: u64,
    /// Packets that failed the IP or IGMP checks.
    pub bad_packets: u64,
    /// Host Compatibility Mode changes.
    pub mode_changes: u64,
}
