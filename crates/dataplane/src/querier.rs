//! The querier settings a data plane may need: the domain's IGMP version and timers.

use std::time::Duration;

/// The domain's querier: its IGMP version and timers (RFC 3376 section 8 names). The
/// kernel data plane runs the bridge's own querier with them; the userspace relay has
/// no use for them (the agent's querier runs on its links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerierSettings {
    /// IGMP version of the queries, 2 or 3.
    pub version: u8,
    /// Robustness variable.
    pub robustness: u32,
    /// Query interval.
    pub query_interval: Duration,
    /// Query response interval (max response time of general queries).
    pub query_response_interval: Duration,
    /// Last member query interval.
    pub last_member_interval: Duration,
    /// Last member query count.
    pub last_member_count: u32,
}

impl Default for QuerierSettings {
    /// RFC 3376 defaults, IGMPv3.
    fn default() -> Self {
        Self {
            version: 3,
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            last_member_interval: Duration::from_secs(1),
            last_member_count: 2,
        }
    }
}
