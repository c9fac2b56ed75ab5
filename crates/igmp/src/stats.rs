//! Counters of one interface: messages received and sent, and drops by reason.

/// Messages received that passed every check but the rate limit, by type. On an MLD
/// interface MLDv1 counts as IGMPv2 (`query_v2`, `report_v2`, `leave_v2` for its
/// dones) and MLDv2 as IGMPv3.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Received {
    /// IGMPv1 queries.
    pub query_v1: u64,
    /// IGMPv2 queries.
    pub query_v2: u64,
    /// IGMPv3 queries.
    pub query_v3: u64,
    /// IGMPv1 reports.
    pub report_v1: u64,
    /// IGMPv2 reports.
    pub report_v2: u64,
    /// IGMPv2 leaves.
    pub leave_v2: u64,
    /// IGMPv3 reports.
    pub report_v3: u64,
}

/// Queries sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    /// General queries (startup and periodic).
    pub general_queries: u64,
    /// Group-specific queries, Q(G).
    pub group_queries: u64,
    /// Group-and-source-specific queries, Q(G,X).
    pub group_source_queries: u64,
    /// General queries sent to recover reports dropped by flood protection (also
    /// counted in `general_queries`).
    pub recovery_queries: u64,
}

/// Messages (or records) dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dropped {
    /// Not a valid IPv4 packet (for MLD: not a valid IPv6 packet or extension header chain).
    pub bad_ip: u64,
    /// IPv4 but not protocol 2 (IGMP); for MLD, not an ICMPv6 MLD message.
    pub not_igmp: u64,
    /// IGMP message shorter than its type or a length field needs.
    pub truncated: u64,
    /// IGMP checksum does not verify.
    pub checksum: u64,
    /// IP TTL (IPv6 Hop Limit) is not 1 (RFC 3376 section 4, RFC 2236 section 2, RFC 3810
    /// section 5).
    pub bad_ttl: u64,
    /// IGMPv2/v3 report or leave without the IP Router Alert option (RFC 3376 9.1); any
    /// MLD message without a Hop-by-Hop Router Alert of value 0 (RFC 3810 section 5).
    pub no_router_alert: u64,
    /// Unknown IGMP message type.
    pub unknown_type: u64,
    /// Malformed message, including record counts that overrun the packet.
    pub malformed: u64,
    /// Report (or leave) over its host's flood limit ([`crate::Config::report_burst`]);
    /// a recovery query follows (see [`Sent::recovery_queries`]).
    pub rate_limited: u64,
    /// Query or other router-only message (DVMRP, PIMv1, mtrace, multicast router
    /// discovery) on a link where no other router may be ([`crate::Config::other_queriers`]).
    pub router_message: u64,
    /// Destination address does not match the message (RFC 3376 4.1.12, 4.2.14).
    pub wrong_destination: u64,
    /// Report or record about an address that is not a multicast group.
    pub invalid_group: u64,
    /// Record dropped because the group or source table is full.
    pub state_limit: u64,
    /// MLD message whose IPv6 source is not link-local, `::` included (RFC 3810 section
    /// 7.4); never counted for IGMP.
    #[serde(default)]
    pub bad_source: u64,
}

/// All counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Valid messages received.
    pub received: Received,
    /// Queries sent.
    pub sent: Sent,
    /// Drops by reason.
    pub dropped: Dropped,
    /// Records about link-local groups (224.0.0.0/24) or link-scope IPv6 groups (scope 0
    /// to 2, ff02::/16 among them), which carry no membership.
    pub ignored_link_local: u64,
    /// Group records of an unknown type (ignored, RFC 3376 4.2.12).
    pub ignored_records: u64,
    /// Queries of an older version than ours heard from another router (RFC 3376 7.3.1
    /// asks for a rate-limited warning; this is it). They never change our version.
    pub older_version_queries: u64,
}
