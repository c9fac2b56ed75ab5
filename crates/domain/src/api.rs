//! The JSON messages of the controller's HTTP API (`/v1`), shared by the controller,
//! the agents and the CLI. See `docs/api.md` for the routes.
//!
//! Every field an older peer does not send has a default, so agents and controllers of
//! neighbouring versions keep talking.

use core::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::SourceFilter;

/// A controller-wide, strictly increasing number stamped on every change of state that
/// agents see; an agent resumes its stream from the last revision it applied.
pub type Revision = u64;

/// The VXLAN UDP port (RFC 7348 section 5, IANA).
pub const VXLAN_PORT: u16 = 4789;

/// How a domain learns its members (RFC 2236, RFC 3376).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IgmpMode {
    /// The querier speaks IGMPv2 (like the reference gateway).
    #[default]
    V2,
    /// The querier speaks IGMPv3; older hosts fall back per RFC 3376 section 7.
    V3,
    /// No IGMP: static members only.
    Off,
}

/// IGMP timer settings of a domain: the one settings type, shared with the IGMP
/// router and the data planes' queriers.
pub use mcgate_wire::IgmpSettings;

impl IgmpMode {
    /// The version the querier speaks, or `None` with IGMP off.
    pub fn version(self) -> Option<mcgate_wire::Version> {
        match self {
            IgmpMode::V2 => Some(mcgate_wire::Version::V2),
            IgmpMode::V3 => Some(mcgate_wire::Version::V3),
            IgmpMode::Off => None,
        }
    }
}

/// Body of `POST /v1/domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Unique name.
    pub name: String,
    /// The VXLAN network identifier (24 bits); chosen by the controller when absent.
    #[serde(default)]
    pub vni: Option<u32>,
    /// IGMP version the querier speaks.
    #[serde(default)]
    pub igmp: IgmpMode,
    /// Only registered static sources may send.
    #[serde(default)]
    pub static_sources: bool,
    /// IGMP timers.
    #[serde(default)]
    pub igmp_settings: IgmpSettings,
}

/// A domain as the controller holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// Unique name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// IGMP version the querier speaks.
    pub igmp: IgmpMode,
    /// Only registered static sources may send.
    pub static_sources: bool,
    /// IGMP timers.
    pub igmp_settings: IgmpSettings,
    /// Associated subnets.
    #[serde(default)]
    pub subnets: Vec<Ipv4Net>,
    /// Associated hosts (by host name).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// Body of `POST` / `DELETE /v1/domains/{name}/associations`: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AssociationSpec {
    /// A subnet; a subnet belongs to one domain only.
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    /// A host name.
    #[serde(default)]
    pub host: Option<String>,
}

/// Body of `POST` / `DELETE /v1/domains/{name}/members`: a static member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMemberSpec {
    /// The group, in 224.0.0.0/4.
    pub group: Ipv4Addr,
    /// The host the member is on.
    pub host: String,
    /// The host's link to deliver on; all attached links when absent.
    #[serde(default)]
    pub interface: Option<String>,
    /// The member's own address, for the group table.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
}

/// Body of `POST` / `DELETE /v1/domains/{name}/sources`: a static source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSourceSpec {
    /// The group, in 224.0.0.0/4.
    pub group: Ipv4Addr,
    /// The unicast address allowed to send to the group.
    pub address: Ipv4Addr,
    /// The host the source is on, for the group table.
    #[serde(default)]
    pub host: Option<String>,
    /// The source's interface, for the group table.
    #[serde(default)]
    pub interface: Option<String>,
}

/// A link an agent is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Interface name on the host.
    pub name: String,
    /// The interface's IPv4 address, if it has one.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
}

/// Body of `POST /v1/agents`: an agent (re)registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRegistration {
    /// Host name, unique in the controller.
    pub host: String,
    /// Where other agents send VXLAN to reach this host.
    pub underlay: SocketAddrV4,
    /// The host's subnet, used for subnet associations.
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    /// The links the agent is attached to.
    #[serde(default)]
    pub links: Vec<LinkInfo>,
    /// Which data plane the agent runs ("userspace" or "kernel"), for display.
    #[serde(default)]
    pub dataplane: Option<String>,
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationReply {
    /// A new number per registration; membership reports name it, and a report with a
    /// stale session is refused (409) so the agent re-registers and re-snapshots.
    pub session: u64,
    /// The lease: the agent's members are removed when no heartbeat came for this long.
    pub lease_ms: u64,
    /// How often the agent should heartbeat.
    pub heartbeat_ms: u64,
    /// The domains this host belongs to now.
    pub domains: Vec<String>,
}

/// Body of `POST /v1/agents/{host}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The session from the registration.
    pub session: u64,
}

/// The membership of one link of an agent for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMembership {
    /// The link's interface name.
    pub link: String,
    /// The group.
    pub group: Ipv4Addr,
    /// The link's filter for the group; `None` means the link left the group.
    pub filter: Option<SourceFilter>,
    /// The hosts on the link that reported the group (explicit tracking), for the group
    /// table. May be empty when unknown.
    #[serde(default)]
    pub reporters: Vec<Ipv4Addr>,
}

/// Body of `POST /v1/agents/{host}/membership`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReport {
    /// The session from the registration.
    pub session: u64,
    /// Increases by one per report within a session; the controller ignores a report
    /// whose sequence it has already applied.
    pub seq: u64,
    /// When true, `entries` is the agent's whole membership and replaces what the
    /// controller held for it; otherwise each entry is a change.
    pub snapshot: bool,
    /// The memberships (or changes).
    pub entries: Vec<LinkMembership>,
}

/// Answer to a membership report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipAck {
    /// The highest sequence applied.
    pub seq: u64,
}

/// Another host of a domain, to tunnel to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peer {
    /// Host name.
    pub host: String,
    /// VXLAN destination.
    pub underlay: SocketAddrV4,
}

/// Members of a group on one host, merged over its links (RFC 3376 section 3.2 rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMember {
    /// Host name.
    pub host: String,
    /// The group.
    pub group: Ipv4Addr,
    /// The merged filter of the host's members.
    pub filter: SourceFilter,
}

/// Everything an agent needs to know of one domain it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    /// The domain's settings.
    pub domain: Domain,
    /// Every live agent host of the domain (the receiver includes itself).
    pub peers: Vec<Peer>,
    /// Every (host, group) with members, IGMP and static, merged per host.
    pub members: Vec<HostMember>,
    /// Static members, so an agent delivers to the right link of its own host.
    pub static_members: Vec<StaticMemberSpec>,
    /// Static sources, the domain's send policy when `static_sources` is on.
    pub static_sources: Vec<StaticSourceSpec>,
}

/// One change in a forwarding-state stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A domain was created or its settings changed (or the host just joined it).
    Domain {
        /// The new settings.
        domain: Domain,
    },
    /// A domain was deleted, or the host no longer belongs to it.
    DomainRemoved {
        /// Its name.
        name: String,
    },
    /// A host joined the domain or changed its underlay address.
    PeerUp {
        /// The domain.
        domain: String,
        /// The peer.
        peer: Peer,
    },
    /// A host left the domain (deregistered, lease expired, disassociated).
    PeerDown {
        /// The domain.
        domain: String,
        /// The host.
        host: String,
    },
    /// A host's merged membership for a group changed; `None` means no more members.
    Member {
        /// The domain.
        domain: String,
        /// The host.
        host: String,
        /// The group.
        group: Ipv4Addr,
        /// The merged filter, or `None`.
        filter: Option<SourceFilter>,
    },
    /// A static member was registered (`present`) or deregistered.
    StaticMember {
        /// The domain.
        domain: String,
        /// The member.
        member: StaticMemberSpec,
        /// Registered or not.
        present: bool,
    },
    /// A static source was registered (`present`) or deregistered.
    StaticSource {
        /// The domain.
        domain: String,
        /// The source.
        source: StaticSourceSpec,
        /// Registered or not.
        present: bool,
    },
}

/// One line of `GET /v1/agents/{host}/stream?since=REV` (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// The whole state for this host; replaces everything held before.
    Snapshot {
        /// The revision the snapshot is at.
        revision: Revision,
        /// The domains the host belongs to.
        domains: Vec<DomainState>,
    },
    /// Changes after the previous message, applied in order.
    Delta {
        /// The revision after these changes.
        revision: Revision,
        /// The changes.
        changes: Vec<Change>,
    },
    /// Nothing changed; sent periodically so both ends see a dead connection.
    Keepalive {
        /// The current revision.
        revision: Revision,
    },
}

/// Member or source type in the group table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberType {
    /// Learned from IGMP.
    Igmp,
    /// Registered through the API.
    Static,
}

/// One row of `GET /v1/groups` (the reference gateway's SearchTransitGatewayMulticastGroups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// Domain name.
    pub domain: String,
    /// Group address.
    pub group: Ipv4Addr,
    /// Host name.
    pub host: String,
    /// The host's subnet, if known.
    pub subnet: Option<Ipv4Net>,
    /// The member's or source's interface.
    pub interface: Option<String>,
    /// The member's or source's IP.
    pub address: Option<Ipv4Addr>,
    /// Whether this row is a member.
    pub member: bool,
    /// Whether this row is a source.
    pub source: bool,
    /// Member type, when a member.
    pub member_type: Option<MemberType>,
    /// Source type, when a source.
    pub source_type: Option<MemberType>,
    /// IGMPv3 filter of the member, if not plain any-source.
    pub source_filter: Option<SourceFilter>,
}

/// One row of `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Host name.
    pub host: String,
    /// VXLAN endpoint.
    pub underlay: SocketAddrV4,
    /// Subnet, if given.
    pub subnet: Option<Ipv4Net>,
    /// Attached links.
    pub links: Vec<LinkInfo>,
    /// Domains the host belongs to.
    pub domains: Vec<String>,
    /// "up" while the lease holds, "expired" after.
    pub state: String,
    /// Milliseconds since the last heartbeat or report.
    pub last_seen_ms: u64,
    /// Number of (link, group) memberships the agent reported.
    pub memberships: usize,
    /// The agent's data plane, if it said.
    pub dataplane: Option<String>,
}

/// The body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One sentence for a person.
    pub error: String,
    /// The request field at fault, when one is.
    #[serde(default)]
    pub field: Option<String>,
}

/// Query of `GET /v1/groups`: every filter given must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupQuery {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this group.
    pub group: Option<Ipv4Addr>,
    /// Only member rows with this address.
    pub member: Option<Ipv4Addr>,
    /// Only source rows with this address.
    pub source: Option<Ipv4Addr>,
    /// Only rows of this member or source type.
    #[serde(rename = "type")]
    pub kind: Option<MemberType>,
    /// Only rows of this host.
    pub host: Option<String>,
    /// Only rows whose subnet is this one or whose address is inside it.
    pub subnet: Option<Ipv4Net>,
}

/// Answer of `GET /v1/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always "ok" when the controller answers.
    pub status: String,
    /// The current revision of the forwarding state.
    pub revision: Revision,
    /// Number of domains.
    pub domains: usize,
    /// Number of agents whose lease holds.
    pub agents_up: usize,
    /// Open agent streams.
    #[serde(default)]
    pub streams: usize,
    /// Streams closed since start because their agent fell behind.
    #[serde(default)]
    pub stream_overflows: u64,
}
