//! A host's forwarding table, computed from the domain states the controller streams.
//!
//! [`DomainView`] holds what the controller told this host (a snapshot, then deltas);
//! [`ForwardingTable::compute`] turns it, plus the host's own IGMP-learned membership,
//! into what a data plane needs per packet: for a (group, source) sent on a local link,
//! which remote hosts (underlay addresses) and which other local links get a copy; for a
//! tunnelled packet, which peers may send it and which local links want it.
//!
//! Local membership comes straight from the host's own IGMP state, not from the
//! controller's echo of it, so a local join is forwarded locally at once and keeps
//! working while the controller is away.
//!
//! Groups, sources and filters are of either family ([`IpAddr`]): IPv6 groups ride the
//! same tunnels as IPv4 ones, so tunnel addresses and underlay endpoints stay IPv4.

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::Ipv4Net;

use crate::SourceFilter;
use crate::api::{
    Change, DomainState, GatewayElection, IgmpMode, IgmpSettings, Peer, Revision, StaticMemberSpec,
    StaticSourceSpec, StreamMessage, Tunnel,
};

pub use crate::validate::is_link_scope;
pub use mcgate_wire::is_link_local_group;

/// The domain states this host was told about, kept current by applying the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainView {
    revision: Option<Revision>,
    domains: BTreeMap<String, DomainState>,
    ignored: u64,
}

/// What applying one stream message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The state changed; recompute the forwarding table.
    Changed,
    /// Nothing changed (keepalive, or a message already applied).
    Unchanged,
}

impl DomainView {
    /// An empty view: no domain, nothing forwarded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last message applied, to resume the stream from.
    pub fn revision(&self) -> Option<Revision> {
        self.revision
    }

    /// The domains, by name.
    pub fn domains(&self) -> impl Iterator<Item = &DomainState> {
        self.domains.values()
    }

    /// Changes that named a domain this view does not hold (skipped).
    pub fn ignored_changes(&self) -> u64 {
        self.ignored
    }

    /// The IGMP mode and timers to run on this host's links: those of the first domain
    /// by name (a host in several domains with different settings gets a warning from the
    /// agent), or `None` before any domain is known.
    pub fn igmp(&self) -> Option<(IgmpMode, IgmpSettings)> {
        self.domains
            .values()
            .next()
            .map(|d| (d.domain.igmp, d.domain.igmp_settings.clone()))
    }

    /// Applies one message of the stream. A delta at or below the held revision was
    /// already applied and is skipped; a snapshot always replaces everything.
    pub fn apply(&mut self, msg: &StreamMessage) -> Applied {
        match msg {
            StreamMessage::Snapshot { revision, domains } => {
                let new: BTreeMap<String, DomainState> = domains
                    .iter()
                    .map(|d| (d.domain.name.clone(), d.clone()))
                    .collect();
                self.revision = Some(*revision);
                if new == self.domains {
                    return Applied::Unchanged;
                }
                self.domains = new;
                Applied::Changed
            }
            StreamMessage::Delta { revision, changes } => {
                if self.revision.is_some_and(|r| *revision <= r) {
                    return Applied::Unchanged;
                }
                self.revision = Some(*revision);
                let mut changed = false;
                for c in changes {
                    changed |= self.apply_change(c);
                }
                if changed {
                    Applied::Changed
                } else {
                    Applied::Unchanged
                }
            }
            StreamMessage::Keepalive { .. } => Applied::Unchanged,
        }
    }

    /// This view, plus what `old` knew of hosts this view does not have as peers yet.
    ///
    /// After a controller restart, hosts re-register one by one and the first snapshot
    /// an agent gets may lack hosts that are alive and still have members. Forwarding on
    /// that snapshot alone would cut established flows; during a hold-down the agent
    /// forwards on this merge instead. A host that is a peer in this view is taken from
    /// this view alone; domains absent here stay absent.
    pub fn merged_with_stale(&self, old: &DomainView) -> DomainView {
        let mut merged = self.clone();
        for (name, d) in merged.domains.iter_mut() {
            let Some(o) = old.domains.get(name) else {
                continue;
            };
            let known: BTreeSet<String> = d.peers.iter().map(|p| p.host.clone()).collect();
            for p in &o.peers {
                if !known.contains(&p.host) {
                    d.peers.push(p.clone());
                }
            }
            for m in &o.members {
                if !known.contains(&m.host)
                    && !d
                        .members
                        .iter()
                        .any(|x| x.host == m.host && x.group == m.group)
                {
                    d.members.push(m.clone());
                }
            }
        }
        merged
    }

    fn domain_mut(&mut self, name: &str) -> Option<&mut DomainState> {
        let d = self.domains.get_mut(name);
        if d.is_none() {
            self.ignored += 1;
        }
        d
    }

    fn apply_change(&mut self, change: &Change) -> bool {
        match change {
            Change::Domain { domain } => match self.domains.get_mut(&domain.name) {
                Some(d) => {
                    let changed = d.domain != *domain;
                    d.domain = domain.clone();
                    changed
                }
                None => {
                    self.domains.insert(
                        domain.name.clone(),
                        DomainState {
                            domain: domain.clone(),
                            peers: Vec::new(),
                            members: Vec::new(),
                            static_members: Vec::new(),
                            static_sources: Vec::new(),
                            gateways: Vec::new(),
                        },
                    );
                    true
                }
            },
            Change::DomainRemoved { name } => self.domains.remove(name).is_some(),
            Change::PeerUp { domain, peer } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                match d.peers.iter_mut().find(|p| p.host == peer.host) {
                    Some(p) if p == peer => false,
                    Some(p) => {
                        *p = peer.clone();
                        true
                    }
                    None => {
                        d.peers.push(peer.clone());
                        true
                    }
                }
            }
            Change::PeerDown { domain, host } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                let before = (d.peers.len(), d.members.len());
                d.peers.retain(|p| &p.host != host);
                // A host that left the domain has no members in it any more.
                d.members.retain(|m| &m.host != host);
                before != (d.peers.len(), d.members.len())
            }
            Change::Member {
                domain,
                host,
                group,
                filter,
            } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                set_member(d, host, *group, filter.as_ref())
            }
            Change::Members {
                domain,
                host,
                groups,
                filter,
            } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                let mut changed = false;
                for g in groups {
                    changed |= set_member(d, host, *g, filter.as_ref());
                }
                changed
            }
            Change::StaticMember {
                domain,
                member,
                present,
            } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                set_presence(&mut d.static_members, member, *present)
            }
            Change::StaticSource {
                domain,
                source,
                present,
            } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                set_presence(&mut d.static_sources, source, *present)
            }
            Change::Gateway {
                domain,
                range,
                host,
            } => {
                let Some(d) = self.domain_mut(domain) else {
                    return false;
                };
                set_gateway(&mut d.gateways, *range, host.as_deref())
            }
        }
    }

    /// The gateway elected for each upstream range, one entry per domain and range (a
    /// range of several domains is listed once per domain).
    pub fn gateways(&self) -> impl Iterator<Item = &GatewayElection> {
        self.domains.values().flat_map(|d| d.gateways.iter())
    }
}

/// Sets the elected gateway of `range` (`None`: none); returns whether it changed.
fn set_gateway(gateways: &mut Vec<GatewayElection>, range: Ipv4Net, host: Option<&str>) -> bool {
    let pos = gateways.iter().position(|g| g.range == range);
    match (pos, host) {
        (Some(i), None) => {
            gateways.remove(i);
            true
        }
        (Some(i), Some(h)) if gateways[i].host == h => false,
        (Some(i), Some(h)) => {
            gateways[i].host = h.to_string();
            true
        }
        (None, Some(h)) => {
            gateways.push(GatewayElection {
                range,
                host: h.to_string(),
            });
            gateways.sort();
            true
        }
        (None, None) => false,
    }
}

/// Sets `host`'s merged filter for `group` (`None`: no members); returns whether it changed.
fn set_member(
    d: &mut DomainState,
    host: &str,
    group: IpAddr,
    filter: Option<&SourceFilter<IpAddr>>,
) -> bool {
    let pos = d
        .members
        .iter()
        .position(|m| m.host == host && m.group == group);
    match (pos, filter) {
        (Some(i), None) => {
            d.members.remove(i);
            true
        }
        (None, None) => false,
        (Some(i), Some(f)) => {
            let changed = d.members[i].filter != *f;
            d.members[i].filter = f.clone();
            changed
        }
        (None, Some(f)) => {
            d.members.push(crate::api::HostMember {
                host: host.to_string(),
                group,
                filter: f.clone(),
            });
            true
        }
    }
}

fn set_presence<T: PartialEq + Clone>(list: &mut Vec<T>, item: &T, present: bool) -> bool {
    let pos = list.iter().position(|x| x == item);
    match (pos, present) {
        (Some(_), true) | (None, false) => false,
        (None, true) => {
            list.push(item.clone());
            true
        }
        (Some(i), false) => {
            list.remove(i);
            true
        }
    }
}

/// A host's own membership per (link, group), learned by IGMP (or MLD) on its links.
pub type LocalMembership = BTreeMap<(String, IpAddr), SourceFilter<IpAddr>>;

/// A remote host that gets a tunnelled copy of a group's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoute {
    /// Host name.
    pub host: String,
    /// Its VXLAN endpoint.
    pub underlay: SocketAddrV4,
    /// Its WireGuard public key (standard base64; empty when it has none).
    pub public_key: String,
    /// Its WireGuard endpoint.
    pub wireguard: SocketAddrV4,
    /// Its address inside the tunnel (the inner destination).
    pub tunnel_address: Ipv4Addr,
    /// The host's merged filter for the group.
    pub filter: SourceFilter<IpAddr>,
}

/// Another host of a domain as the tunnel sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelPeer {
    /// Host name.
    pub host: String,
    /// Its WireGuard public key (standard base64; empty when it has none).
    pub public_key: String,
    /// Its WireGuard endpoint.
    pub wireguard: SocketAddrV4,
    /// Its address inside the tunnel: the only inner source accepted from it.
    pub tunnel_address: Ipv4Addr,
    /// Its VXLAN endpoint.
    pub underlay: SocketAddrV4,
}

impl From<&Peer> for TunnelPeer {
    fn from(p: &Peer) -> Self {
        Self {
            host: p.host.clone(),
            public_key: p.public_key.clone(),
            wireguard: p.wireguard,
            tunnel_address: p.tunnel_address,
            underlay: p.underlay,
        }
    }
}

/// A local link that gets a copy of a group's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoute {
    /// Interface name.
    pub link: String,
    /// The link's filter for the group (static members are any-source).
    pub filter: SourceFilter<IpAddr>,
}

/// Where one group's traffic goes, in one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRoute {
    /// Remote hosts with members, sorted by host name.
    pub remotes: Vec<RemoteRoute>,
    /// Local links with members, sorted by link name.
    pub locals: Vec<LocalRoute>,
}

/// Why a packet is not forwarded, for the drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward it (possibly to nobody, when the group has no members).
    Forward,
    /// The domain allows only registered sources and this one is not.
    SourceNotAllowed,
}

/// One domain's part of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainTable {
    /// Domain name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// How traffic crosses between hosts.
    pub tunnel: Tunnel,
    /// This host's address inside the tunnel, once the controller has assigned one.
    pub tunnel_address: Option<Ipv4Addr>,
    /// The domain's other hosts, by host name.
    pub tunnel_peers: Vec<TunnelPeer>,
    /// When the domain allows only registered sources: the sources per group.
    pub allowed_sources: Option<HashMap<IpAddr, BTreeSet<IpAddr>>>,
    /// The underlay addresses of the domain's other hosts: tunnelled packets are
    /// accepted only from these.
    pub peers: HashSet<Ipv4Addr>,
    /// Routes by group.
    pub groups: HashMap<IpAddr, GroupRoute>,
    /// The route of an IPv4 group no one is a member of but that lies in a gateway's
    /// egress range ([`Peer::egress`]): a copy to that gateway, which sends it upstream.
    /// Groups of these ranges that have members carry the gateway in `groups` already.
    pub egress: Vec<(Ipv4Net, GroupRoute)>,
}

impl DomainTable {
    /// The source policy for a packet from `source` to `group`.
    pub fn check_source(&self, group: IpAddr, source: IpAddr) -> Verdict {
        match &self.allowed_sources {
            None => Verdict::Forward,
            Some(map) if map.get(&group).is_some_and(|s| s.contains(&source)) => Verdict::Forward,
            Some(_) => Verdict::SourceNotAllowed,
        }
    }

    /// The route of `group`, if it has members anywhere or leaves the domain at a
    /// gateway (the egress ranges are looked at only for a group without members).
    pub fn route(&self, group: IpAddr) -> Option<&GroupRoute> {
        self.groups.get(&group).or_else(|| {
            let IpAddr::V4(group) = group else {
                return None;
            };
            if is_link_local_group(group) {
                return None;
            }
            self.egress
                .iter()
                .find(|(range, _)| range.contains(&group))
                .map(|(_, route)| route)
        })
    }
}

/// Everything a data plane needs to forward, for one host. Immutable: a new one is
/// computed on every change and swapped in whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardingTable {
    domains: Vec<DomainTable>,
    by_vni: HashMap<u32, usize>,
}

impl ForwardingTable {
    /// An empty table: nothing is forwarded.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Computes the table of host `self_host` with attached `links` from the controller's
    /// view and the host's own IGMP membership.
    pub fn compute(
        view: &DomainView,
        self_host: &str,
        links: &[String],
        local: &LocalMembership,
    ) -> Self {
        let mut domains = Vec::new();
        for state in view.domains() {
            domains.push(domain_table(state, self_host, links, local));
        }
        let by_vni = domains
            .iter()
            .enumerate()
            .map(|(i, d)| (d.vni, i))
            .collect();
        Self { domains, by_vni }
    }

    /// The domains this host belongs to.
    pub fn domains(&self) -> &[DomainTable] {
        &self.domains
    }

    /// The domain carried by VXLAN network identifier `vni`.
    pub fn by_vni(&self, vni: u32) -> Option<&DomainTable> {
        self.by_vni.get(&vni).and_then(|&i| self.domains.get(i))
    }

    /// Whether nothing at all is forwarded.
    pub fn is_empty(&self) -> bool {
        self.domains.iter().all(|d| d.groups.is_empty())
    }

    /// The table without copies to `hosts` (peers found dead in the data plane): no
    /// group replicates to them any more. They stay peers, so what they send is still
    /// accepted (a peer that was only slow is not cut off) and their tunnel sessions
    /// stay up for when they are back.
    pub fn without_remotes(mut self, hosts: &BTreeSet<String>) -> Self {
        if hosts.is_empty() {
            return self;
        }
        for d in &mut self.domains {
            for route in d.groups.values_mut() {
                route.remotes.retain(|r| !hosts.contains(&r.host));
            }
            d.groups
                .retain(|_, r| !r.remotes.is_empty() || !r.locals.is_empty());
            d.egress
                .retain(|(_, r)| r.remotes.iter().all(|r| !hosts.contains(&r.host)));
        }
        self
    }

    /// Every other host of the host's domains, once each: the peers whose liveness
    /// the agent follows.
    pub fn tunnel_peers(&self) -> BTreeMap<&str, &TunnelPeer> {
        self.domains
            .iter()
            .flat_map(|d| d.tunnel_peers.iter())
            .map(|p| (p.host.as_str(), p))
            .collect()
    }
}

fn domain_table(
    state: &DomainState,
    self_host: &str,
    links: &[String],
    local: &LocalMembership,
) -> DomainTable {
    let peers_by_host: HashMap<&str, &Peer> =
        state.peers.iter().map(|p| (p.host.as_str(), p)).collect();
    let mut groups: HashMap<IpAddr, GroupRoute> = HashMap::new();

    for m in &state.members {
        if m.host == self_host || is_link_scope(m.group) || m.filter.is_empty() {
            continue;
        }
        let Some(peer) = peers_by_host.get(m.host.as_str()) else {
            continue;
        };
        groups
            .entry(m.group)
            .or_default()
            .remotes
            .push(remote_route(peer, m.filter.clone()));
    }

    let mut locals: BTreeMap<(IpAddr, &str), SourceFilter<IpAddr>> = BTreeMap::new();
    let mut add_local = |group: IpAddr, link: &'_ str, filter: &SourceFilter<IpAddr>| {
        // Only links the host is attached to now can be delivered to.
        let Some(link) = links.iter().find(|l| l.as_str() == link) else {
            return;
        };
        locals
            .entry((group, link.as_str()))
            .and_modify(|f| *f = f.merge(filter))
            .or_insert_with(|| filter.clone());
    };
    for ((link, group), filter) in local {
        if !filter.is_empty() {
            add_local(*group, link, filter);
        }
    }
    let any = SourceFilter::any_source();
    for StaticMemberSpec {
        group,
        host,
        interface,
        ..
    } in &state.static_members
    {
        if host != self_host {
            continue;
        }
        match interface {
            Some(link) => add_local(*group, link, &any),
            None => {
                for link in links {
                    add_local(*group, link, &any);
                }
            }
        }
    }
    for ((group, link), filter) in locals {
        groups.entry(group).or_default().locals.push(LocalRoute {
            link: link.to_string(),
            filter,
        });
    }
    let egress = egress_routes(state, self_host);
    for (group, route) in &mut groups {
        let IpAddr::V4(group) = *group else {
            continue;
        };
        for (_, gateway) in egress.iter().filter(|(r, _)| r.contains(&group)) {
            add_egress_remote(route, gateway, group);
        }
    }
    for route in groups.values_mut() {
        route.remotes.sort_by(|a, b| a.host.cmp(&b.host));
    }

    let allowed_sources = state.domain.static_sources.then(|| {
        let mut map: HashMap<IpAddr, BTreeSet<IpAddr>> = HashMap::new();
        for StaticSourceSpec { group, address, .. } in &state.static_sources {
            map.entry(*group).or_default().insert(*address);
        }
        map
    });
    let peers = state
        .peers
        .iter()
        .filter(|p| p.host != self_host)
        .map(|p| *p.underlay.ip())
        .collect();
    let mut tunnel_peers: Vec<TunnelPeer> = state
        .peers
        .iter()
        .filter(|p| p.host != self_host)
        .map(TunnelPeer::from)
        .collect();
    tunnel_peers.sort();
    let tunnel_address = state
        .peers
        .iter()
        .find(|p| p.host == self_host)
        .map(|p| p.tunnel_address)
        .filter(|a| !a.is_unspecified());
    DomainTable {
        name: state.domain.name.clone(),
        vni: state.domain.vni,
        tunnel: state.domain.tunnel,
        tunnel_address,
        tunnel_peers,
        allowed_sources,
        peers,
        groups,
        egress: egress
            .into_iter()
            .map(|(range, gateway)| {
                let route = GroupRoute {
                    remotes: vec![gateway],
                    locals: Vec::new(),
                };
                (range, route)
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "forwarding_tests.rs"]
mod tests;

/// The copy of a group's traffic for `peer`, which wants the sources `filter` allows.
fn remote_route(peer: &Peer, filter: SourceFilter<IpAddr>) -> RemoteRoute {
    RemoteRoute {
        host: peer.host.clone(),
        underlay: peer.underlay,
        public_key: peer.public_key.clone(),
        wireguard: peer.wireguard,
        tunnel_address: peer.tunnel_address,
        filter,
    }
}

/// Every egress range of the domain's other hosts with the copy its gateway gets: any
/// source, since what leaves is decided at the gateway (its TTL check, the domain's
/// source policy), not by a member's filter.
fn egress_routes(state: &DomainState, self_host: &str) -> Vec<(Ipv4Net, RemoteRoute)> {
    state
        .peers
        .iter()
        .filter(|p| p.host != self_host)
        .flat_map(|p| {
            p.egress
                .iter()
                .map(|range| (*range, remote_route(p, SourceFilter::any_source())))
        })
        .collect()
}

/// Adds the egress `gateway` to a member group's route (or widens its member filter to
/// any source): egress wants every source the domain lets through. Link-local groups
/// never leave.
fn add_egress_remote(route: &mut GroupRoute, gateway: &RemoteRoute, group: Ipv4Addr) {
    if is_link_local_group(group) {
        return;
    }
    match route.remotes.iter_mut().find(|r| r.host == gateway.host) {
        Some(r) => r.filter = gateway.filter.clone(),
        None => route.remotes.push(gateway.clone()),
    }
}
