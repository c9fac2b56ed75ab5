//! What an [`crate::Interface`] hands back to its driver.

use core::net::Ipv4Addr;

use crate::{Family, Igmp, SourceFilter};

/// A membership or querier change on the interface; `A` is the family's address type
/// (IPv4 for IGMP, IPv6 for MLD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<A = Ipv4Addr> {
    /// The forwarding state of a group, or the set of hosts that reported it, changed.
    GroupChanged {
        /// The group.
        group: A,
        /// Which sources to forward (RFC 3376 6.3); `None` when the group is gone.
        filter: Option<SourceFilter<A>>,
        /// The hosts known to be members, sorted.
        reporters: Vec<A>,
    },
    /// The querier of the link changed.
    QuerierChanged {
        /// The other router that is querier, or `None` when this interface is.
        querier: Option<A>,
    },
    /// A router's message was ignored, for a warning in the log. Every such message is
    /// counted in [`crate::Stats`]; this event comes at most once per Query Interval for
    /// each kind, as RFC 3376 7.3.1 asks of its warning.
    RouterIgnored {
        /// The IP source of the message.
        from: A,
        /// Why it was ignored.
        reason: Ignored,
    },
}

/// Why a router's message was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ignored {
    /// A query of an older version than the configured one (RFC 3376 7.3.1): counted,
    /// never obeyed.
    OlderVersionQuery(mcgate_wire::Version),
    /// A query or router-only message on a link where no other router may be
    /// ([`crate::Config::other_queriers`]): a host acting as a router.
    HostsOnlyLink,
}

/// A message to send on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<F: Family = Igmp> {
    /// The IP destination (224.0.0.1 or ff02::1, or the group queried).
    pub dst: F::Addr,
    /// The whole IP packet: TTL (Hop Limit) 1, Router Alert, IGMP or MLD message.
    pub packet: Vec<u8>,
    /// The IGMP or MLD message the packet carries, for logs and tests.
    pub message: F::Message,
}

/// One group's router state with its timers (RFC 3376 6.2.1), for diagnostics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState<A = Ipv4Addr> {
    /// The filter mode.
    pub mode: crate::FilterMode,
    /// When the group timer expires (EXCLUDE mode only).
    pub group_timer: Option<std::time::Instant>,
    /// Every source record and when its timer expires; `None` is a timer at 0 (in
    /// EXCLUDE mode: a source not to forward).
    pub sources: std::collections::BTreeMap<A, Option<std::time::Instant>>,
    /// Group Compatibility Mode (RFC 3376 7.3.2); for MLD (RFC 3810 8.3.2) `V2` is MLDv1
    /// and `V3` MLDv2.
    pub compatibility: mcgate_wire::Version,
    /// When the IGMPv1 Host Present timer expires.
    pub v1_host_timer: Option<std::time::Instant>,
    /// When the IGMPv2 Host Present timer expires.
    pub v2_host_timer: Option<std::time::Instant>,
}
