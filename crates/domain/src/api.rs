//! The JSON messages of the controller's HTTP API (`/v1`), shared by the controller,
//! the agents and the CLI. See `docs/api.md` for the routes.
//!
//! Every field an older peer does not send has a default, so agents and controllers of
//! neighbouring versions keep talking.

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SourceFilter;
use crate::schema;

/// A controller-wide, strictly increasing number stamped on every change of state that
/// agents see; an agent resumes its stream from the last revision it applied.
pub type Revision = u64;

pub use crate::domain_settings::{IgmpMode, Tunnel, VXLAN_PORT, WIREGUARD_PORT};
/// IGMP timer settings of a domain: the one settings type, shared with the IGMP
/// router and the data planes' queriers.
pub use mcgate_wire::IgmpSettings;

/// Body of `POST /v1/domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Unique name.
    #[schema(schema_with = schema::domain_name)]
    pub name: String,
    /// The VXLAN network identifier (24 bits); chosen by the controller when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16777215)]
    pub vni: Option<u32>,
    /// IGMP version the querier speaks.
    #[serde(default)]
    pub igmp: IgmpMode,
    /// Only registered static sources may send.
    #[serde(default)]
    pub static_sources: bool,
    /// IGMP timers.
    #[serde(default)]
    #[schema(schema_with = schema::igmp_settings)]
    pub igmp_settings: IgmpSettings,
    /// How traffic crosses between hosts; WireGuard by default.
    #[serde(default)]
    pub tunnel: Tunnel,
}

/// A domain as the controller holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    /// Unique name.
    #[schema(schema_with = schema::domain_name)]
    pub name: String,
    /// VXLAN network identifier.
    #[schema(minimum = 1, maximum = 16777215)]
    pub vni: u32,
    /// IGMP version the querier speaks.
    pub igmp: IgmpMode,
    /// Only registered static sources may send.
    pub static_sources: bool,
    /// IGMP timers.
    #[schema(schema_with = schema::igmp_settings)]
    pub igmp_settings: IgmpSettings,
    /// Associated subnets.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_list)]
    pub subnets: Vec<Ipv4Net>,
    /// Associated hosts (by host name).
    #[serde(default)]
    #[schema(schema_with = schema::host_name_list)]
    pub hosts: Vec<String>,
    /// How traffic crosses between hosts.
    #[serde(default)]
    pub tunnel: Tunnel,
}

/// Body of `POST` / `DELETE /v1/domains/{name}/associations`: exactly one of the two
/// (its schema, with that rule, is in [`crate::schema`]).
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticMemberSpec {
    /// The group: in 224.0.0.0/4 outside 224.0.0.0/24, or in ff00::/8 with a scope
    /// above link-local (3 to 15).
    #[schema(schema_with = schema::routable_group)]
    pub group: IpAddr,
    /// The host the member is on.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// The host's link to deliver on; all attached links when absent.
    #[serde(default)]
    #[schema(schema_with = schema::link_name_or_null)]
    pub interface: Option<String>,
    /// The member's own address, for the group table; of the group's family.
    #[serde(default)]
    #[schema(schema_with = schema::unicast_or_null)]
    pub address: Option<IpAddr>,
}

/// Body of `POST` / `DELETE /v1/domains/{name}/sources`: a static source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticSourceSpec {
    /// The group: in 224.0.0.0/4 outside 224.0.0.0/24, or in ff00::/8 with a scope
    /// above link-local (3 to 15).
    #[schema(schema_with = schema::routable_group)]
    pub group: IpAddr,
    /// The unicast address allowed to send to the group, of the group's family.
    #[schema(schema_with = schema::unicast)]
    pub address: IpAddr,
    /// The host the source is on, for the group table.
    #[serde(default)]
    #[schema(schema_with = schema::host_name_or_null)]
    pub host: Option<String>,
    /// The source's interface, for the group table.
    #[serde(default)]
    #[schema(schema_with = schema::link_name_or_null)]
    pub interface: Option<String>,
}

/// A link an agent is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct LinkInfo {
    /// Interface name on the host.
    #[schema(schema_with = schema::link_name)]
    pub name: String,
    /// The interface's IPv4 address, if it has one.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_or_null)]
    pub address: Option<Ipv4Addr>,
    /// The link carries a single host (a task's veth: one network namespace at its
    /// other end), so a leave there can be acted on at once. Absent: false.
    #[serde(default)]
    pub single_host: bool,
}

/// Body of `POST /v1/agents`: an agent (re)registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentRegistration {
    /// Host name, unique in the controller.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// Where other agents send VXLAN to reach this host.
    #[schema(schema_with = schema::underlay)]
    pub underlay: SocketAddrV4,
    /// The host's subnet, used for subnet associations.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_or_null)]
    pub subnet: Option<Ipv4Net>,
    /// The links the agent is attached to.
    #[serde(default)]
    pub links: Vec<LinkInfo>,
    /// Which data plane the agent runs ("userspace" or "kernel"), for display.
    #[serde(default)]
    pub dataplane: Option<String>,
    /// The host's WireGuard public key (Curve25519, 32 bytes in standard base64, as
    /// `wg(8)` writes keys); empty when the agent has none. The private key never
    /// leaves the host.
    #[serde(default)]
    #[schema(schema_with = schema::public_key)]
    pub public_key: String,
    /// Where other agents send WireGuard messages to reach this host; the underlay
    /// address and port 51820 when absent.
    #[serde(default)]
    #[schema(schema_with = schema::underlay_or_null)]
    pub wireguard: Option<SocketAddrV4>,
    /// The zone (availability zone, rack, site) the host runs in, for display.
    #[serde(default)]
    #[schema(schema_with = schema::zone_or_null)]
    pub zone: Option<String>,
    /// The host's upstream interface when it is a gateway to an external multicast
    /// network (RFC 4605 IGMP proxy), with the ranges it can bring in; the controller
    /// elects one forwarding gateway per range among the live ones. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
}

/// A gateway's upstream interface and the group ranges it can bring in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpstreamSpec {
    /// The upstream interface's name.
    #[schema(schema_with = schema::link_name)]
    pub interface: String,
    /// The group ranges (CIDR inside 224.0.0.0/4, at most
    /// [`crate::validate::MAX_UPSTREAM_RANGES`]).
    #[schema(schema_with = schema::upstream_ranges)]
    pub groups: Vec<Ipv4Net>,
    /// The group ranges the domain's traffic may leave on the upstream interface
    /// (`--upstream-egress`; same form and limit as `groups`). Every other host of its
    /// domains then tunnels its senders' traffic to these groups to this gateway, members
    /// or not. Empty (and absent from JSON): no egress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = schema::upstream_ranges)]
    pub egress: Vec<Ipv4Net>,
}

/// The gateway elected to bring one range in for a domain (the only one that reports
/// membership upstream and takes traffic in from its upstream interface).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct GatewayElection {
    /// The range, as the gateways registered it.
    #[schema(schema_with = schema::ipv4_net)]
    pub range: Ipv4Net,
    /// The elected gateway host.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
}

impl AgentRegistration {
    /// The host's WireGuard endpoint: the one given, else the underlay address with
    /// [`WIREGUARD_PORT`].
    pub fn wireguard_endpoint(&self) -> SocketAddrV4 {
        self.wireguard
            .unwrap_or_else(|| SocketAddrV4::new(*self.underlay.ip(), WIREGUARD_PORT))
    }
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationReply {
    /// A new number per registration; membership reports name it, and a report with a
    /// stale session is refused (409) so the agent re-registers and re-snapshots.
    #[schema(schema_with = schema::u64_schema)]
    pub session: u64,
    /// The lease: the agent's members are removed when no heartbeat came for this long.
    #[schema(schema_with = schema::u64_schema)]
    pub lease_ms: u64,
    /// How often the agent should heartbeat.
    #[schema(schema_with = schema::u64_schema)]
    pub heartbeat_ms: u64,
    /// The domains this host belongs to now.
    pub domains: Vec<String>,
    /// The host's address inside the tunnel (unique among the controller's agents,
    /// from the controller's tunnel pool); absent from controllers without one.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_or_null)]
    pub tunnel_address: Option<Ipv4Addr>,
    /// The pool tunnel addresses come from, so the host can route it into the tunnel.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_or_null)]
    pub tunnel_pool: Option<Ipv4Net>,
}

/// Body of `POST /v1/agents/{host}/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    /// The session from the registration.
    #[schema(schema_with = schema::u64_schema)]
    pub session: u64,
    /// Peers whose keepalives this host no longer receives (host names; at most
    /// [`crate::validate::MAX_PEERS_DOWN`]), all of them each time. The controller
    /// removes such a host's members early when its own heartbeats have stopped too
    /// (`--peer-confirm-ms`); one host's word alone never removes another.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[schema(schema_with = schema::host_name_list)]
    pub peers_down: BTreeSet<String>,
}

impl Heartbeat {
    /// A heartbeat of `session` with no peer found dead.
    pub fn new(session: u64) -> Self {
        Self {
            session,
            peers_down: BTreeSet::new(),
        }
    }
}

/// The membership of one link of an agent for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkMembership {
    /// The link's interface name.
    #[schema(schema_with = schema::link_name)]
    pub link: String,
    /// The group, IPv4 (IGMP) or IPv6 (MLD).
    #[schema(schema_with = schema::group)]
    pub group: IpAddr,
    /// The link's filter for the group, its sources of the group's family; `None` means
    /// the link left the group.
    #[schema(schema_with = schema::source_filter_or_null)]
    pub filter: Option<SourceFilter<IpAddr>>,
    /// The hosts on the link that reported the group (explicit tracking), for the group
    /// table; of the group's family. May be empty when unknown.
    #[serde(default)]
    #[schema(schema_with = schema::ip_list)]
    pub reporters: Vec<IpAddr>,
}

/// Body of `POST /v1/agents/{host}/membership`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MembershipReport {
    /// The session from the registration.
    #[schema(schema_with = schema::u64_schema)]
    pub session: u64,
    /// Increases by one per report within a session; the controller ignores a report
    /// whose sequence it has already applied.
    #[schema(schema_with = schema::u64_schema)]
    pub seq: u64,
    /// When true, `entries` is the agent's whole membership and replaces what the
    /// controller held for it; otherwise each entry is a change.
    pub snapshot: bool,
    /// The memberships (or changes).
    pub entries: Vec<LinkMembership>,
}

/// Answer to a membership report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MembershipAck {
    /// The highest sequence applied.
    #[schema(schema_with = schema::u64_schema)]
    pub seq: u64,
}

/// Another host of a domain, to tunnel to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Peer {
    /// Host name.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// VXLAN destination.
    #[schema(schema_with = schema::underlay)]
    pub underlay: SocketAddrV4,
    /// The host's WireGuard public key (standard base64); empty when it has none.
    #[serde(default)]
    #[schema(schema_with = schema::public_key)]
    pub public_key: String,
    /// The host's WireGuard endpoint.
    #[serde(default = "unspecified_endpoint")]
    #[schema(schema_with = schema::underlay)]
    pub wireguard: SocketAddrV4,
    /// The host's address inside the tunnel: the inner source of what it sends and the
    /// only one accepted from it (cryptokey routing).
    #[serde(default = "unspecified_address")]
    #[schema(schema_with = schema::ipv4)]
    pub tunnel_address: Ipv4Addr,
    /// The group ranges whose traffic leaves the domain at this host (its upstream
    /// interface's egress ranges): senders tunnel traffic to these groups here whether
    /// or not the host has members. Empty (and absent from JSON) for most hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = schema::upstream_ranges)]
    pub egress: Vec<Ipv4Net>,
}

fn unspecified_endpoint() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
}

fn unspecified_address() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

/// Members of a group on one host, merged over its links (RFC 3376 section 3.2 rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostMember {
    /// Host name.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// The group.
    #[schema(schema_with = schema::group)]
    pub group: IpAddr,
    /// The merged filter of the host's members.
    #[schema(schema_with = schema::source_filter)]
    pub filter: SourceFilter<IpAddr>,
}

/// Everything an agent needs to know of one domain it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// The elected gateway of each upstream range some live host of the domain
    /// registered, by range.
    #[serde(default)]
    pub gateways: Vec<GatewayElection>,
}

/// One change in a forwarding-state stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
        #[schema(schema_with = schema::group)]
        group: IpAddr,
        /// The merged filter, or `None`.
        #[schema(schema_with = schema::source_filter_or_null)]
        filter: Option<SourceFilter<IpAddr>>,
    },
    /// The same change as `member` for several groups of one host: each listed group's
    /// merged filter is now `filter` (`None`: no more members there). The controller
    /// sends it for consecutive member changes of one host with one filter (a report of
    /// many joins), so a stream carries each group address once instead of a whole
    /// `member` object per group.
    Members {
        /// The domain.
        domain: String,
        /// The host.
        host: String,
        /// The groups, at least two.
        #[schema(schema_with = schema::groups)]
        groups: Vec<IpAddr>,
        /// The merged filter of every listed group, or `None`.
        #[schema(schema_with = schema::source_filter_or_null)]
        filter: Option<SourceFilter<IpAddr>>,
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
    /// The elected gateway of an upstream range changed; `None`: no live gateway left.
    Gateway {
        /// The domain.
        domain: String,
        /// The range.
        #[schema(schema_with = schema::ipv4_net)]
        range: Ipv4Net,
        /// The elected gateway host, or `None`.
        #[schema(schema_with = schema::host_name_or_null)]
        host: Option<String>,
    },
}

/// One line of `GET /v1/agents/{host}/stream?since=REV` (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// The whole state for this host; replaces everything held before.
    Snapshot {
        /// The revision the snapshot is at.
        #[schema(schema_with = schema::u64_schema)]
        revision: Revision,
        /// The domains the host belongs to.
        domains: Vec<DomainState>,
    },
    /// Changes after the previous message, applied in order.
    Delta {
        /// The revision after these changes.
        #[schema(schema_with = schema::u64_schema)]
        revision: Revision,
        /// The changes.
        changes: Vec<Change>,
    },
    /// Nothing changed; sent periodically so both ends see a dead connection.
    Keepalive {
        /// The current revision.
        #[schema(schema_with = schema::u64_schema)]
        revision: Revision,
    },
}

/// Member or source type in the group table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberType {
    /// Learned from IGMP (an IPv4 group).
    Igmp,
    /// Learned from MLD (an IPv6 group).
    Mld,
    /// Registered through the API.
    Static,
    /// From the upstream multicast network, brought in by a gateway host (`mcgate agent
    /// --upstream`): a source seen arriving on its upstream interface, or (with no
    /// address) the gateway of a group inside its upstream ranges that has members.
    Upstream,
}

/// How a member's leave is acted on, in the group table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeaveMode {
    /// At once, with no last-member query: the link carries a single host, or the
    /// domain asks for fast leave everywhere.
    Fast,
    /// After the last-member queries go unanswered (RFC 3376 6.6.3, RFC 2236 3).
    Queries,
}

/// One row of `GET /v1/groups` (the reference gateway's SearchTransitGatewayMulticastGroups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupEntry {
    /// Domain name.
    pub domain: String,
    /// Group address.
    #[schema(schema_with = schema::group)]
    pub group: IpAddr,
    /// Host name.
    pub host: String,
    /// The host's subnet, if known.
    #[schema(schema_with = schema::ipv4_net_or_null)]
    pub subnet: Option<Ipv4Net>,
    /// The member's or source's interface.
    pub interface: Option<String>,
    /// The member's or source's IP.
    #[schema(schema_with = schema::ip_or_null)]
    pub address: Option<IpAddr>,
    /// Whether this row is a member.
    pub member: bool,
    /// Whether this row is a source.
    pub source: bool,
    /// Member type, when a member.
    pub member_type: Option<MemberType>,
    /// Source type, when a source.
    pub source_type: Option<MemberType>,
    /// IGMPv3 or MLDv2 filter of the member, if not plain any-source.
    #[schema(schema_with = schema::source_filter_or_null)]
    pub source_filter: Option<SourceFilter<IpAddr>>,
    /// How a leave is acted on, for an IGMP member; null otherwise.
    #[serde(default)]
    pub leave: Option<LeaveMode>,
}

impl GroupEntry {
    /// A row of an upstream gateway: `address` is a source seen arriving on its
    /// upstream `interface`, or `None` for a group with members and no source seen yet.
    pub fn upstream(
        domain: &str,
        group: Ipv4Addr,
        host: &str,
        interface: &str,
        address: Option<Ipv4Addr>,
    ) -> Self {
        Self {
            domain: domain.to_string(),
            group: group.into(),
            host: host.to_string(),
            subnet: None,
            interface: Some(interface.to_string()),
            address: address.map(IpAddr::V4),
            member: false,
            source: true,
            member_type: None,
            source_type: Some(MemberType::Upstream),
            source_filter: None,
            leave: None,
        }
    }
}

/// One row of `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentInfo {
    /// Host name.
    pub host: String,
    /// VXLAN endpoint.
    #[schema(schema_with = schema::underlay)]
    pub underlay: SocketAddrV4,
    /// Subnet, if given.
    #[schema(schema_with = schema::ipv4_net_or_null)]
    pub subnet: Option<Ipv4Net>,
    /// Attached links.
    pub links: Vec<LinkInfo>,
    /// Domains the host belongs to.
    pub domains: Vec<String>,
    /// "up" while the lease holds, "expired" after.
    pub state: String,
    /// Milliseconds since the last heartbeat or report.
    #[schema(schema_with = schema::u64_schema)]
    pub last_seen_ms: u64,
    /// Number of (link, group) memberships the agent reported.
    #[schema(schema_with = schema::count)]
    pub memberships: usize,
    /// The agent's data plane, if it said.
    pub dataplane: Option<String>,
    /// Its WireGuard public key (standard base64; empty when it has none).
    #[serde(default)]
    #[schema(schema_with = schema::public_key)]
    pub public_key: String,
    /// Its address inside the tunnel.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_or_null)]
    pub tunnel_address: Option<Ipv4Addr>,
    /// The zone the agent said it runs in.
    #[serde(default)]
    #[schema(schema_with = schema::zone_or_null)]
    pub zone: Option<String>,
    /// The peers this agent's last heartbeat reported dead (their keepalives stopped).
    #[serde(default)]
    #[schema(schema_with = schema::host_name_list)]
    pub peers_down: Vec<String>,
    /// The live agents whose last heartbeat reports this host dead.
    #[serde(default)]
    #[schema(schema_with = schema::host_name_list)]
    pub reported_down_by: Vec<String>,
    /// Its upstream interface and ranges, when it is a gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
    /// The upstream ranges it is the elected gateway for (in any of its domains); a
    /// gateway elected for none is standby.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_list)]
    pub elected_for: Vec<Ipv4Net>,
}

/// The body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// One sentence for a person.
    pub error: String,
    /// The request field at fault, when one is.
    #[serde(default)]
    pub field: Option<String>,
}

/// Query of `GET /v1/groups`: every filter given must match. A parameter given with an
/// empty value is refused (400), never read as "no filter".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupQuery {
    /// Only this domain.
    #[param(schema_with = schema::domain_name)]
    pub domain: Option<String>,
    /// Only this group (IPv4 or IPv6).
    #[param(schema_with = schema::group)]
    pub group: Option<IpAddr>,
    /// Only member rows with this address.
    #[param(schema_with = schema::ip)]
    pub member: Option<IpAddr>,
    /// Only source rows with this address.
    #[param(schema_with = schema::unicast)]
    pub source: Option<IpAddr>,
    /// Only rows of this member or source type.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub kind: Option<MemberType>,
    /// Only rows of this host.
    #[param(schema_with = schema::host_name)]
    pub host: Option<String>,
    /// Only rows whose subnet is this one or whose address is inside it.
    #[param(schema_with = schema::ipv4_net)]
    pub subnet: Option<Ipv4Net>,
}

/// Answer of `GET /v1/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always "ok" when the controller answers.
    pub status: String,
    /// The current revision of the forwarding state.
    #[schema(schema_with = schema::u64_schema)]
    pub revision: Revision,
    /// Number of domains.
    #[schema(schema_with = schema::count)]
    pub domains: usize,
    /// Number of agents whose lease holds.
    #[schema(schema_with = schema::count)]
    pub agents_up: usize,
    /// Open agent streams.
    #[serde(default)]
    #[schema(schema_with = schema::count)]
    pub streams: usize,
    /// Streams closed since start because their agent fell behind.
    #[serde(default)]
    #[schema(schema_with = schema::u64_schema)]
    pub stream_overflows: u64,
    /// Where the state is kept: `embedded` (one controller) or `etcd` (replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// This controller's role: `standalone` (embedded store), `leader` or `follower`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// This replica's name (etcd store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The leader replica's name, when one is known (etcd store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Whether writes are possible now (false while etcd has no quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable: Option<bool>,
    /// The last etcd revision this replica's watch applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::u64_or_null)]
    pub applied_revision: Option<u64>,
    /// Milliseconds since the watch last confirmed it is current (etcd store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::u64_or_null)]
    pub watch_lag_ms: Option<u64>,
    /// The etcd members this replica sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_members: Option<Vec<EtcdMember>>,
}

/// An etcd member as a controller replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EtcdMember {
    /// The member's name.
    pub name: String,
    /// The member's id, hexadecimal as etcdctl prints it.
    pub id: String,
    /// Its client URLs.
    pub client_urls: Vec<String>,
    /// Whether it answered a status call in the last check.
    pub reachable: bool,
    /// Whether it is the raft leader.
    pub leader: bool,
}
