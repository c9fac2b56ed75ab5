//! What an [`crate::Interface`] hands back to its driver.

use core::net::Ipv4Addr;

use mcgate_wire::igmp::IgmpRepr;

use crate::SourceFilter;

/// A membership or querier change on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The forwarding state of a group, or the set of hosts that reported it, changed.
    GroupChanged {
        /// The group.
        group: Ipv4Addr,
        /// Which sources to forward (RFC 3376 6.3); `None` when the group is gone.
        filter: Option<SourceFilter>,
        /// The hosts known to be members, sorted.
        reporters: Vec<Ipv4Addr>,
    },
    /// The querier of the link changed.
    QuerierChanged {
        /// The other router that is querier, or `None` when this interface is.
        querier: Option<Ipv4Addr>,
    },
    /// A router's message was ignored, for a warning in the log. Every such message is
    /// counted in [`crate::Stats`]; this event comes at most once per Query Interval for
    /// each kind, as RFC 3376 7.3.1 asks of its warning.
    RouterIgnored {
        /// The IP source of the message.
        from: Ipv4Addr,
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
pub struct Transmit {
    /// The IP destination (224.0.0.1 or the group queried).
    pub dst: Ipv4Addr,
    /// The whole IPv4 packet: TTL 1, Router Alert, IGMP payload.
    pub packet: Vec<u8>,
    /// The IGMP message the packet carries, for logs and tests.
    pub message: IgmpRepr,
}

/// One group's router state with its timers (RFC 3376 6.2.1), for diagnostics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The filter mode.
    pub mode: crate::FilterMode,
    /// When the group timer expires (EXCLUDE mode only).
    pub group_timer: Option<std::time::Instant>,
    /// Every source record and when its timer expires; `None` is a timer at 0 (in
    /// EXCLUDE mode: a source not to forward).
    pub sources: std::collections::BTreeMap<Ipv4Addr, Option<std::time::Instant>>,
    /// Group Compatibility Mode (RFC 3376 7.3.2).
    pub compatibility: mcgate_wire::Version,
    /// When the IGMPv1 Host Present timer expires.
    pub v1_host_timer: Option<std::time::Instant>,
    /// When the IGMPv2 Host Present timer expires.
    pub v2_host_timer: Option<std::time::Instant>,
}
