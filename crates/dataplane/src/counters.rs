//! Counters of the data plane: per link, per group, per drop reason.
//!
//! The forwarding thread owns the live counters (plain integers, no atomics on the hot
//! path) and publishes a copy a few times a second; readers take that copy.

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::collections::BTreeMap;

/// The most peers one group counts separately; copies to more are counted in the
/// group's totals only.
pub const MAX_PEERS_PER_GROUP: usize = 256;

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (Ethernet frames for links, inner frames for the tunnel).
    pub bytes: u64,
}

impl Counter {
    /// Counts one packet of `bytes`.
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

/// Why a packet was not forwarded (or not to everyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Too short, bad lengths, or impossible addresses.
    Malformed,
    /// Neither IPv4 nor IPv6 (the name stays `not_ipv4`).
    NotIpv4,
    /// Not to a multicast address.
    NotMulticast,
    /// IGMP or MLD (ICMPv6 types 130, 131, 132, 143), which the querier handles, never
    /// the relay.
    Igmp,
    /// A message only multicast routers send (PIM, RFC 7761; Multicast Router Discovery
    /// over IPv6, RFC 4286), from a task: containers are hosts, not routers.
    RouterMessage,
    /// Longer than a receive buffer.
    Truncated,
    /// A link-local group (224.0.0.0/24, or an IPv6 group of scope 0 to 2) arriving
    /// through the tunnel.
    LinkLocal,
    /// The host belongs to no domain (or none carries this VNI).
    NoDomain,
    /// Nobody wants the group (or not from this source).
    NoMembers,
    /// The domain allows only registered sources and this one is not.
    SourceNotAllowed,
    /// The encapsulated packet would exceed the underlay MTU.
    TooBig,
    /// A tunnelled packet from an address that is not a peer of the domain.
    UnknownPeer,
    /// A tunnelled packet without the VXLAN I flag.
    BadVxlan,
    /// The socket or device queue was full.
    QueueFull,
    /// The kernel refused the send.
    SendError,
    /// The capture socket's receive queue overflowed: the relay fell behind.
    RxOverflow,
    /// The VXLAN socket's receive queue overflowed: the relay fell behind.
    TunnelRxOverflow,
    /// A WireGuard message that does not authenticate as a current peer of a domain:
    /// an unknown key, a bad MAC or tag, no session for its index, garbage.
    NotAuthenticated,
    /// A WireGuard transport message whose counter was already received or is too old
    /// for the replay window (a replayed packet).
    Replay,
    /// An authenticated peer's inner packet not from its own tunnel address, not to
    /// this host's, or not VXLAN (cryptokey routing).
    WrongInnerSource,
    /// Plain VXLAN for a domain whose traffic travels inside WireGuard.
    Unencrypted,
    /// A copy for the upstream interface (egress, a routed hop) whose TTL was 1 or
    /// less (RFC 1812 section 5.3.1).
    TtlExpired,
    /// WireGuard traffic for a domain with `tunnel = "vxlan"`, or a copy for a
    /// WireGuard domain's peer that has no key or tunnel address yet (never sent in the
    /// clear).
    TunnelMismatch,
    /// Traffic arriving on an upstream interface for a range this gateway is standby
    /// for: another gateway, elected through the controller, brings it in.
    Standby,
}

impl DropReason {
    /// Every reason, for exporting zeroes too.
    pub const ALL: [DropReason; 24] = [
        DropReason::Malformed,
        DropReason::NotIpv4,
        DropReason::NotMulticast,
        DropReason::Igmp,
        DropReason::RouterMessage,
        DropReason::Truncated,
        DropReason::LinkLocal,
        DropReason::NoDomain,
        DropReason::NoMembers,
        DropReason::SourceNotAllowed,
        DropReason::TooBig,
        DropReason::UnknownPeer,
        DropReason::BadVxlan,
        DropReason::QueueFull,
        DropReason::SendError,
        DropReason::RxOverflow,
        DropReason::TunnelRxOverflow,
        DropReason::NotAuthenticated,
        DropReason::Replay,
        DropReason::WrongInnerSource,
        DropReason::Unencrypted,
        DropReason::TtlExpired,
        DropReason::TunnelMismatch,
        DropReason::Standby,
    ];

    /// The reason's name in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::NotMulticast => "not_multicast",
            DropReason::Igmp => "igmp",
            DropReason::RouterMessage => "router_message",
            DropReason::Truncated => "truncated",
            DropReason::LinkLocal => "link_local",
            DropReason::NoDomain => "no_domain",
            DropReason::NoMembers => "no_members",
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::TooBig => "too_big",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::BadVxlan => "bad_vxlan",
            DropReason::QueueFull => "queue_full",
            DropReason::SendError => "send_error",
            DropReason::RxOverflow => "rx_overflow",
            DropReason::TunnelRxOverflow => "tunnel_rx_overflow",
            DropReason::NotAuthenticated => "not_authenticated",
            DropReason::Replay => "replay",
            DropReason::WrongInnerSource => "wrong_inner_source",
            DropReason::Unencrypted => "unencrypted",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Standby => "standby",
            DropReason::TunnelMismatch => "tunnel_mismatch",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Drop counts by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        if let Some(c) = self.0.get_mut(reason.index()) {
            *c += n;
        }
    }

    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    /// The total over every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counts by reason.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Counters of one attached link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Multicast frames captured from the link (sent by local containers).
    pub rx: Counter,
    /// Frames delivered on the link.
    pub tx: Counter,
    /// Drops of frames captured on or meant for the link.
    pub drops: Drops,
    /// On a link where routers are (the upstream interface): frames captured per
    /// (group, source), the first [`MAX_SOURCES_PER_LINK`] pairs. Empty on task links.
    pub sources: Vec<((Ipv4Addr, Ipv4Addr), Counter)>,
}

/// The most (group, source) pairs a router link counts separately.
pub const MAX_SOURCES_PER_LINK: usize = 1024;

/// Counts one packet of `bytes` from `source` to `group` on a router link.
#[inline]
pub fn add_source(
    list: &mut Vec<((Ipv4Addr, Ipv4Addr), Counter)>,
    group: Ipv4Addr,
    source: Ipv4Addr,
    bytes: usize,
) {
    let key = (group, source);
    if let Some((_, c)) = list.iter_mut().find(|(k, _)| *k == key) {
        c.add(bytes);
    } else if list.len() < MAX_SOURCES_PER_LINK {
        let mut c = Counter::default();
        c.add(bytes);
        list.push((key, c));
    }
}

/// Counters of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Frames captured from local links.
    pub rx_local: Counter,
    /// Frames received from the tunnel.
    pub rx_tunnel: Counter,
    /// Copies delivered on local links.
    pub tx_local: Counter,
    /// Copies sent through the tunnel.
    pub tx_tunnel: Counter,
    /// Copies sent through the tunnel, per destination (a peer's VXLAN or WireGuard
    /// endpoint), first [`MAX_PEERS_PER_GROUP`] destinations.
    pub tx_tunnel_to: Vec<(SocketAddrV4, Counter)>,
    /// Frames received from the tunnel, per peer: its outer source address for plain
    /// VXLAN, its tunnel address for WireGuard; first [`MAX_PEERS_PER_GROUP`] peers.
    pub rx_tunnel_from: Vec<(Ipv4Addr, Counter)>,
    /// Drops by reason.
    pub drops: Drops,
}

/// Counts one packet of `bytes` for `key` in a short list searched in order (a group
/// has a few peers; a linear search beats hashing there).
#[inline]
pub fn add_keyed<K: PartialEq + Copy>(list: &mut Vec<(K, Counter)>, key: K, bytes: usize) {
    if let Some((_, c)) = list.iter_mut().find(|(k, _)| *k == key) {
        c.add(bytes);
    } else if list.len() < MAX_PEERS_PER_GROUP {
        let mut c = Counter::default();
        c.add(bytes);
        list.push((key, c));
    }
}

/// Everything a data plane counts, as published for readers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    /// The data plane's name ("userspace").
    pub name: &'static str,
    /// Per attached link (links that went away keep their counts).
    pub links: BTreeMap<String, LinkCounters>,
    /// Per group, IPv4 and IPv6; groups past the tracking limit are summed under
    /// 0.0.0.0.
    pub groups: BTreeMap<IpAddr, GroupCounters>,
    /// VXLAN datagrams received.
    pub tunnel_rx: Counter,
    /// VXLAN datagrams sent.
    pub tunnel_tx: Counter,
    /// Every drop, by reason.
    pub drops: Drops,
    /// The underlay MTU the data plane checks against.
    pub underlay_mtu: usize,
    /// Forwarding tables installed so far.
    pub tables_installed: u64,
    /// Receive batches processed (packets / batches is the mean batch size).
    pub batches: u64,
    /// Tunnelled frames that came with a partial UDP checksum, completed by the relay.
    pub checksums_completed: u64,
}
