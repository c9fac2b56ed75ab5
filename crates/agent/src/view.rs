//! The agent's state as shown by the admin endpoint (`/v1/stats`, `/metrics`).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use mcgate_domain::SourceFilter;
use mcgate_domain::api::IgmpMode;
use serde::Serialize;

use crate::core::AgentCore;

/// What became of the IGMP (or MLD) frames that reached one attached link, counted before
/// the querier sees them: every frame is either handed on or counted under a drop reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameCounters {
    /// Frames read from the link's IGMP socket and handed to the querier.
    pub received: u64,
    /// Frames the kernel dropped because the socket's receive queue was full
    /// (`PACKET_STATISTICS`).
    pub socket_overflow: u64,
    /// Frames dropped because the agent's queue towards the querier was full.
    pub queue_full: u64,
    /// Frames longer than the largest IPv4 packet in an Ethernet frame.
    pub oversize: u64,
}

/// One group of one link, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct LinkGroupView {
    /// The group.
    pub group: Ipv4Addr,
    /// The link's filter.
    pub filter: SourceFilter,
    /// Hosts that reported it.
    pub reporters: Vec<Ipv4Addr>,
}

/// One attached link, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// IPv4 address, if any.
    pub address: Option<Ipv4Addr>,
    /// Whether this agent is the link's querier (false when IGMP is off).
    pub querier: bool,
    /// The querier's version, when IGMP runs.
    pub igmp_version: Option<u8>,
    /// IGMP counters (received by type, queries sent, drops by reason).
    pub igmp: Option<mcgate_igmp::Stats>,
    /// IGMP frames at the link's socket and their drops.
    pub igmp_frames: FrameCounters,
    /// Frames that were not Ethernet + IPv4 (the socket filter should let none pass).
    pub bad_frames: u64,
    /// Frames that arrived while no querier ran on the link (IGMP off, or the
    /// domain's settings not known yet).
    pub frames_without_querier: u64,
    /// Queries the kernel refused to send.
    pub query_send_errors: u64,
    /// Groups with members on the link.
    pub groups: Vec<LinkGroupView>,
    /// The link's MLD querier (IPv6 groups).
    pub mld: MldView,
}

/// One link's MLD querier, for stats. MLD runs beside IGMP with the same settings, on
/// a link with a link-local address out of DAD.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MldView {
    /// "running"; or why no querier runs: "ipv6_disabled" (IPv6 is off on the link),
    /// "no_link_local" (no link-local address yet), "tentative" (the address is in
    /// DAD), "off" (the domain's querier is off), "waiting" (for the domain's settings).
    pub state: &'static str,
    /// The link-local address queries come from (or the tentative one).
    pub address: Option<std::net::Ipv6Addr>,
    /// Whether this agent is the link's MLD querier.
    pub querier: bool,
    /// The MLD version the querier speaks (2), when it runs.
    pub version: Option<u8>,
    /// Groups with listeners: filter, reporters, and the group's compatibility version
    /// (1 while an MLDv1 listener is present).
    pub groups: Vec<crate::core::MldMembership>,
    /// MLD counters (received by type, queries sent, drops by reason), when it runs.
    pub counters: Option<MldStats>,
    /// MLD frames at the link's socket (shared with IGMP) and their drops; the socket's
    /// overflows are counted under the link's `igmp_frames`, the kernel not telling
    /// which family it dropped.
    pub frames: FrameCounters,
    /// MLD frames that arrived while no MLD querier ran on the link.
    pub frames_without_querier: u64,
}

/// Valid MLD messages received, by version and type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MldReceived {
    /// MLDv1 queries (RFC 2710).
    pub query_v1: u64,
    /// MLDv2 queries (RFC 3810).
    pub query_v2: u64,
    /// MLDv1 reports.
    pub report_v1: u64,
    /// MLDv1 dones.
    pub done_v1: u64,
    /// MLDv2 reports.
    pub report_v2: u64,
}

/// One link's MLD counters: the router core's [`mcgate_igmp::Stats`] under MLD's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MldStats {
    /// Valid messages received.
    pub received: MldReceived,
    /// Queries sent (general, address-specific, address-and-source-specific).
    pub sent: mcgate_igmp::Sent,
    /// Drops by reason (as IGMP's; `not_igmp` counts ICMPv6 that is not MLD).
    pub dropped: mcgate_igmp::Dropped,
    /// Records about link-scope groups (ff02::/16, scope 0 to 2), which carry no
    /// membership.
    pub ignored_link_scope: u64,
    /// Records of an unknown type.
    pub ignored_records: u64,
    /// MLDv1 queries heard from another router (RFC 3810 8.3.1).
    pub older_version_queries: u64,
}

impl From<&mcgate_igmp::Stats> for MldStats {
    fn from(s: &mcgate_igmp::Stats) -> Self {
        // The router core counts MLDv1 in its IGMPv2 fields and MLDv2 in its IGMPv3 ones.
        Self {
            received: MldReceived {
                query_v1: s.received.query_v2,
                query_v2: s.received.query_v3,
                report_v1: s.received.report_v2,
                done_v1: s.received.leave_v2,
                report_v2: s.received.report_v3,
            },
            sent: s.sent.clone(),
            dropped: s.dropped.clone(),
            ignored_link_scope: s.ignored_link_local,
            ignored_records: s.ignored_records,
            older_version_queries: s.older_version_queries,
        }
    }
}

/// One domain, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct DomainSummary {
    /// Name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// IGMP mode.
    pub igmp: IgmpMode,
    /// Only registered sources may send.
    pub static_sources: bool,
    /// Other hosts of the domain.
    pub peers: Vec<String>,
    /// Groups with members somewhere in the domain.
    pub groups: usize,
    /// Memberships (host, group) of other hosts in this host's view: what its data
    /// plane forwards to.
    pub remote_members: usize,
    /// Where the domain's traffic leaves for an upstream network: each other host's
    /// egress range, as `RANGE via HOST` (`--upstream-egress` on that host).
    pub egress: Vec<String>,
}

/// The agent's state as shown by the admin endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentView {
    /// Host name.
    pub host: String,
    /// VXLAN endpoint.
    pub underlay: Option<SocketAddrV4>,
    /// The interface holding the underlay address.
    pub underlay_interface: String,
    /// "v2", "v3", "off", or "default" while the controller has not said.
    pub igmp_mode: String,
    /// Attached links.
    pub links: Vec<LinkView>,
    /// Domains this host belongs to.
    pub domains: Vec<DomainSummary>,
    /// Forwarding tables computed so far.
    pub tables_computed: u64,
    /// Why this data plane runs (asked for, or what `auto` found).
    pub dataplane_chosen_because: String,
    /// The WireGuard public key and endpoint, and the tunnel address the controller
    /// gave.
    pub wireguard: WireguardView,
    /// The upstream interface (IGMP proxy, RFC 4605), when `--upstream` is given.
    pub upstream: Option<UpstreamView>,
    /// What the traffic report needs to name domains and hosts (not shown).
    #[serde(skip)]
    pub traffic: crate::traffic::TrafficInputs,
    /// The peer keepalives: each peer's state and the counters (filled in by the admin
    /// endpoint from the keepalive thread, which keeps it).
    pub peer_liveness: crate::liveness_task::LivenessView,
}

/// The upstream interface as shown by the admin endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamView {
    /// Interface name.
    pub interface: String,
    /// Whether the interface exists now (the proxy runs only then).
    pub present: bool,
    /// Its IPv4 address, the reports' source (0.0.0.0 without one).
    pub address: Option<Ipv4Addr>,
    /// The group ranges reported upstream (none: nothing is).
    pub groups: Vec<String>,
    /// The Host Compatibility Mode reports are sent in (1, 2 or 3).
    pub igmp_version: Option<u8>,
    /// The upstream querier last heard.
    pub querier: Option<Ipv4Addr>,
    /// The membership reported upstream: the domain-wide membership within the ranges.
    pub membership: Vec<LinkGroupView>,
    /// Queries heard, reports and leaves sent, messages ignored.
    pub igmp: Option<mcgate_igmp::proxy::ProxyStats>,
    /// IGMP frames at the interface's socket and their drops.
    pub igmp_frames: FrameCounters,
    /// Whether this gateway forwards ("active") or not ("standby"), why, and which
    /// gateway the controller elected for each range.
    pub gateway: crate::core::gateway_role::GatewayRole,
}

/// The host's WireGuard identity as shown by the admin endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WireguardView {
    /// Public key (standard base64).
    pub public_key: String,
    /// Local endpoint.
    pub endpoint: Option<SocketAddrV4>,
    /// The host's tunnel address, once a domain's snapshot names it.
    pub tunnel_address: Option<std::net::Ipv4Addr>,
    /// Domain name → "wireguard" or "vxlan".
    pub tunnels: std::collections::BTreeMap<String, String>,
}

impl AgentCore {
    /// The state as the admin endpoint shows it. Frame counters are the driver's and
    /// start at zero here.
    pub fn view(&self) -> AgentView {
        let links = self
            .links
            .values()
            .map(|l| LinkView {
                name: l.dev.name.clone(),
                ifindex: l.dev.ifindex,
                address: l.dev.address,
                querier: l.igmp.as_ref().is_some_and(|i| i.is_querier()),
                igmp_version: l.igmp.as_ref().map(|i| i.version().number()),
                igmp: l.igmp.as_ref().map(|i| i.stats().clone()),
                igmp_frames: FrameCounters::default(),
                bad_frames: l.bad_frames,
                frames_without_querier: l.frames_without_querier,
                query_send_errors: l.send_errors,
                mld: self.mld_view(l),
                groups: self
                    .membership
                    .iter()
                    .filter(|((link, _), _)| link == &l.dev.name)
                    .map(|((_, group), filter)| LinkGroupView {
                        group: *group,
                        filter: filter.clone(),
                        reporters: self
                            .reporters
                            .get(&(l.dev.name.clone(), *group))
                            .cloned()
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        let domains = self
            .view
            .domains()
            .map(|d| DomainSummary {
                name: d.domain.name.clone(),
                vni: d.domain.vni,
                igmp: d.domain.igmp,
                static_sources: d.domain.static_sources,
                peers: d
                    .peers
                    .iter()
                    .filter(|p| p.host != self.host.name)
                    .map(|p| p.host.clone())
                    .collect(),
                groups: d
                    .members
                    .iter()
                    .map(|m| m.group)
                    .collect::<BTreeSet<_>>()
                    .len(),
                remote_members: d
                    .members
                    .iter()
                    .filter(|m| m.host != self.host.name)
                    .count(),
                egress: d
                    .peers
                    .iter()
                    .filter(|p| p.host != self.host.name)
                    .flat_map(|p| p.egress.iter().map(move |r| format!("{r} via {}", p.host)))
                    .collect(),
            })
            .collect();
        AgentView {
            host: self.host.name.clone(),
            underlay: Some(self.host.underlay),
            underlay_interface: self.host.underlay_if.clone(),
            igmp_mode: self.igmp.mode_name().to_string(),
            links,
            domains,
            tables_computed: self.tables,
            dataplane_chosen_because: self.host.dataplane_chosen_because.clone(),
            wireguard: WireguardView {
                public_key: self.host.public_key.clone(),
                endpoint: Some(self.host.wireguard),
                tunnel_address: self.view.domains().find_map(|d| {
                    d.peers
                        .iter()
                        .find(|p| p.host == self.host.name)
                        .map(|p| p.tunnel_address)
                        .filter(|a| !a.is_unspecified())
                }),
                tunnels: self
                    .view
                    .domains()
                    .map(|d| (d.domain.name.clone(), d.domain.tunnel.as_str().to_string()))
                    .collect(),
            },
            upstream: self.upstream_view(),
            traffic: crate::traffic::TrafficInputs::of(self.view.domains(), &self.host.name),
            peer_liveness: Default::default(),
        }
    }
}

impl AgentCore {
    fn mld_view(&self, l: &crate::core::CoreLink) -> MldView {
        let mld = l.mld.as_ref();
        let state = match (mld, l.dev.ipv6.ready(), &self.igmp) {
            (Some(_), _, _) => "running",
            (None, None, _) => l.dev.ipv6.name(),
            (None, Some(_), crate::igmp_plan::IgmpPlan::Off) => "off",
            (None, Some(_), _) => "waiting",
        };
        MldView {
            state,
            address: match l.dev.ipv6 {
                crate::netdev::Ipv6Link::Ready(a) | crate::netdev::Ipv6Link::Tentative(a) => {
                    Some(a)
                }
                _ => None,
            },
            querier: mld.is_some_and(|m| m.is_querier()),
            version: mld.map(|m| crate::core::mld_number(m.mld_version())),
            groups: self.mld_membership(&l.dev.name),
            counters: mld.map(|m| MldStats::from(m.stats())),
            frames: FrameCounters::default(),
            frames_without_querier: l.mld_frames_without_querier,
        }
    }

    fn upstream_view(&self) -> Option<UpstreamView> {
        let up = self.upstream.as_ref()?;
        let proxy = up.proxy.as_ref();
        Some(UpstreamView {
            interface: up.name.clone(),
            present: up.dev.is_some(),
            address: up.dev.as_ref().and_then(|d| d.address),
            groups: up.ranges.iter().map(ToString::to_string).collect(),
            igmp_version: proxy.map(|p| p.mode().number()),
            querier: proxy.and_then(|p| p.querier()).map(|(q, _)| q),
            membership: proxy
                .map(|p| {
                    p.membership()
                        .iter()
                        .map(|(g, f)| LinkGroupView {
                            group: *g,
                            filter: f.clone(),
                            reporters: Vec::new(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            igmp: proxy.map(|p| p.stats().clone()),
            igmp_frames: FrameCounters::default(),
            gateway: up.role.clone(),
        })
    }
}
