//! The agent's state and decisions, without I/O and without a clock: attached links and
//! their queriers, local membership, the controller's view, and the forwarding table.
//!
//! [`AgentCore`] follows the shape of the IGMP core and quinn-proto: the driver hands it
//! what happened (`handle_*`, each with the current time) and then executes what it asks
//! for ([`AgentCore::poll_action`]) and wakes it at [`AgentCore::poll_timeout`]. When no
//! timer runs, `poll_timeout` is `None` and the driver waits for input only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcgate_dataplane::LinkSpec;
use mcgate_domain::api::{AgentRegistration, LinkInfo};
use mcgate_domain::forwarding::{DomainView, ForwardingTable, LocalMembership};
use mcgate_igmp::{Config as IgmpConfig, Interface, MldInterface};
use mcgate_wire::{IgmpSettings, Version, ethernet};

use crate::control::SessionInput;
use crate::igmp_plan::{IgmpPlan, default_config};
use crate::netdev::NetDev;
use crate::persist::SavedMembership;

/// How long to wait for the controller's domain settings before running the querier
/// with defaults (so a host whose controller is away still learns its members).
pub const SETTINGS_GRACE: Duration = Duration::from_secs(3);
/// After a stream reconnect, hosts missing from the new snapshot are still forwarded to
/// for this long (they may simply not have re-registered with a restarted controller
/// yet); see `DomainView::merged_with_stale`.
pub const STALE_HOLD: Duration = Duration::from_secs(10);
/// How long membership restored from the state file is kept without a host confirming
/// it: past the second start-up query (31.25 s apart with the RFC's defaults, RFC 3376
/// 8.7) and its answers. A member that answers is confirmed at once.
pub const RESTORE_HOLD: Duration = Duration::from_secs(35);
/// Membership changes are saved this long after the first unsaved one, so a burst of
/// joins costs one write.
pub const SAVE_DELAY: Duration = Duration::from_millis(250);

/// What the driver must do for the core.
#[derive(Debug)]
pub enum Action {
    /// Send this Ethernet frame on the link (if it still has this index).
    Transmit {
        /// The link's name.
        link: String,
        /// The link's index the frame was built for.
        ifindex: u32,
        /// The whole frame.
        frame: Vec<u8>,
    },
    /// Tell the controller session.
    Session(SessionInput),
    /// Hand the data plane a new forwarding table.
    SetTable(Arc<ForwardingTable>),
    /// Hand the data plane the attached links.
    SetLinks(Vec<LinkSpec>),
    /// Hand the data plane this host's static members (link, group).
    SetStaticMembers(BTreeSet<(String, Ipv4Addr)>),
    /// Hand the data plane the querier's version and timers.
    SetQuerier(Version, IgmpSettings),
    /// Hand the data plane the underlay MTU.
    SetUnderlayMtu(usize),
    /// Write the state file with this membership.
    Save(SavedMembership),
}

/// Who this host is, fixed for the agent's life.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    /// Host name.
    pub name: String,
    /// The zone it runs in (`--zone`), if given.
    pub zone: Option<String>,
    /// VXLAN endpoint.
    pub underlay: SocketAddrV4,
    /// The interface holding the underlay address (never attached as a task link).
    pub underlay_if: String,
    /// The underlay's subnet, `a.b.c.d/n`.
    pub subnet: Option<String>,
    /// The data plane's name.
    pub dataplane: &'static str,
    /// Why this data plane runs.
    pub dataplane_chosen_because: String,
    /// The host's WireGuard public key (standard base64).
    pub public_key: String,
    /// The local WireGuard endpoint.
    pub wireguard: SocketAddrV4,
}

/// One attached link as the core sees it.
#[derive(Debug)]
pub(crate) struct CoreLink {
    pub(crate) dev: NetDev,
    pub(crate) igmp: Option<Interface>,
    /// The MLD querier, while the domain's querier runs and the link has a link-local
    /// address out of DAD ([`crate::netdev::Ipv6Link::Ready`]).
    pub(crate) mld: Option<MldInterface>,
    pub(crate) send_errors: u64,
    pub(crate) bad_frames: u64,
    pub(crate) frames_without_querier: u64,
    /// MLD frames that arrived while no MLD querier ran on the link.
    pub(crate) mld_frames_without_querier: u64,
}

/// The host's IGMP membership per (link, group); the forwarding table takes it as a
/// [`LocalMembership`] of either family ([`AgentCore::local_membership`]).
pub(crate) type IgmpMembership = BTreeMap<(String, Ipv4Addr), mcgate_domain::SourceFilter>;

/// The agent's state. See the module documentation.
#[derive(Debug)]
pub struct AgentCore {
    pub(crate) host: HostIdentity,
    underlay_mtu: usize,
    pub(crate) links: BTreeMap<String, CoreLink>,
    /// The IGMP membership of each (link, group).
    pub(crate) membership: IgmpMembership,
    /// Reporters of each membership, for stats and the state file.
    pub(crate) reporters: BTreeMap<(String, Ipv4Addr), Vec<Ipv4Addr>>,
    /// The IPv6 membership of each (link, group) as last told to the controller.
    mld_reported: membership::MldReported,
    /// Memberships restored from the state file that no host confirmed yet, and until
    /// when they are kept.
    restored: BTreeMap<(String, Ipv4Addr), Instant>,
    /// The state file's membership for links not attached yet.
    to_restore: SavedMembership,
    pub(crate) view: DomainView,
    /// The view before the last stream reconnect, and until when it is merged in.
    stale: Option<(DomainView, Instant)>,
    connections: u64,
    /// The next message is the first of a reconnected stream: if it is a snapshot,
    /// the hold-down starts; if it is not, the controller resumed the stream.
    reconnected: bool,
    pub(crate) igmp: IgmpPlan,
    /// When the querier starts with defaults if the controller has not said.
    grace_until: Option<Instant>,
    table_dirty: bool,
    pub(crate) tables: u64,
    statics: BTreeSet<(String, Ipv4Addr)>,
    save_at: Option<Instant>,
    /// The latest time handed in.
    last_now: Instant,
    actions: VecDeque<Action>,
    /// Glob patterns of the attached links that may hold another multicast router
    /// (`--router-links`); every other link carries hosts only.
    router_links: Vec<String>,
    /// The upstream interface (`--upstream`), if any.
    pub(crate) upstream: Option<upstream::UpstreamLink>,
    /// Peers whose keepalives stopped: the table sends them nothing until they are back.
    pub(crate) peers_down: BTreeSet<String>,
}

impl AgentCore {
    /// The local membership as the forwarding table keys it (both families): the IGMP
    /// membership and the links' MLD membership (as last synced, see
    /// `sync_mld_reports`).
    pub(crate) fn local_membership(&self) -> LocalMembership {
        let v4 = self
            .membership
            .iter()
            .map(|((link, group), f)| ((link.clone(), IpAddr::V4(*group)), f.clone().into()));
        let v6 = self
            .mld_reported
            .iter()
            .map(|((link, group), (f, _))| ((link.clone(), IpAddr::V6(*group)), f.clone().into()));
        v4.chain(v6).collect()
    }

    /// A core that has attached nothing yet, started at `now`, with the membership of a
    /// previous run (`restore`, applied to links as they attach with the same index).
    pub fn new(
        host: HostIdentity,
        underlay_mtu: usize,
        restore: SavedMembership,
        now: Instant,
    ) -> Self {
        Self {
            host,
            underlay_mtu,
            links: BTreeMap::new(),
            membership: IgmpMembership::new(),
            reporters: BTreeMap::new(),
            mld_reported: BTreeMap::new(),
            restored: BTreeMap::new(),
            to_restore: restore,
            view: DomainView::new(),
            stale: None,
            connections: 0,
            reconnected: false,
            igmp: IgmpPlan::Unknown,
            grace_until: Some(now + SETTINGS_GRACE),
            table_dirty: true,
            tables: 0,
            statics: BTreeSet::new(),
            save_at: None,
            last_now: now,
            actions: VecDeque::new(),
            router_links: Vec::new(),
            upstream: None,
            peers_down: BTreeSet::new(),
        }
    }

    /// The peers whose keepalives stopped (see [`peer_liveness`]), all of them: the
    /// data plane stops replicating to them at once, with a new table, and starts again
    /// as soon as they are off the set.
    pub fn handle_peers_down(&mut self, down: BTreeSet<String>) {
        if down == self.peers_down {
            return;
        }
        self.peers_down = down;
        self.compute_table();
    }

    /// What to register with the controller.
    pub fn registration(&self) -> AgentRegistration {
        AgentRegistration {
            host: self.host.name.clone(),
            underlay: self.host.underlay,
            subnet: self
                .host
                .subnet
                .as_ref()
                .and_then(|s| serde_json::from_value(serde_json::Value::String(s.clone())).ok()),
            links: self
                .links
                .values()
                .map(|l| LinkInfo {
                    name: l.dev.name.clone(),
                    address: l.dev.address,
                    single_host: l.dev.single_host() && !self.is_router_link(&l.dev.name),
                })
                .collect(),
            dataplane: Some(self.host.dataplane.to_string()),
            public_key: self.host.public_key.clone(),
            wireguard: Some(self.host.wireguard),
            zone: self.host.zone.clone(),
            upstream: self.upstream_spec(),
        }
    }

    /// Takes a new WireGuard public key (key rotation) and asks the session to register
    /// again at once, so peers learn it.
    pub fn set_public_key(&mut self, public_key: String) {
        self.host.public_key = public_key;
        self.actions
            .push_back(Action::Session(SessionInput::Reregister(
                self.registration(),
            )));
    }

    /// The querier config to use now: the controller's, or defaults after the grace
    /// period (IGMPv3, which also serves v1/v2 hosts through RFC 3376 section 7).
    fn effective_igmp(&self) -> Option<IgmpConfig> {
        match &self.igmp {
            IgmpPlan::On(c) => Some(c.clone()),
            IgmpPlan::Off => None,
            IgmpPlan::Unknown if self.grace_until.is_none() => Some(default_config()),
            IgmpPlan::Unknown => None,
        }
    }

    /// The links found by a rescan (each with an open IGMP socket): attaches new ones,
    /// detaches the gone or re-created ones, and hands address changes to their
    /// queriers.
    pub fn handle_links(&mut self, now: Instant, found: Vec<NetDev>) {
        let now = self.advance(now);
        let found: BTreeMap<String, NetDev> = found
            .into_iter()
            .filter(|d| d.name != self.host.underlay_if && !self.is_upstream(&d.name))
            .map(|d| (d.name.clone(), d))
            .collect();
        let mut changed = false;
        let gone: Vec<String> = self
            .links
            .iter()
            .filter(|(name, l)| found.get(*name).is_none_or(|d| d.ifindex != l.dev.ifindex))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            tracing::info!(link = %name, "link gone; detaching");
            self.links.remove(&name);
            self.forget_link_members(&name);
            changed = true;
        }
        let config = self.effective_igmp();
        for (name, dev) in found {
            let link_config = self.link_config(&dev, &config);
            if let Some(l) = self.links.get_mut(&name) {
                if l.dev.address != dev.address {
                    tracing::info!(link = %name, address = ?dev.address, "link address changed");
                    if let Some(i) = l.igmp.as_mut() {
                        i.set_address(now, dev.address.unwrap_or(Ipv4Addr::UNSPECIFIED));
                    }
                    changed = true;
                }
                if l.dev.ipv6 != dev.ipv6 {
                    tracing::info!(link = %name, ipv6 = ?dev.ipv6, "link's IPv6 link-local address changed");
                }
                l.dev = dev;
                set_mld(l, link_config.as_ref(), now);
                self.drain_link(&name);
                continue;
            }
            tracing::info!(link = %name, ifindex = dev.ifindex, "attached to link");
            let mut link = CoreLink {
                dev,
                igmp: None,
                mld: None,
                send_errors: 0,
                bad_frames: 0,
                frames_without_querier: 0,
                mld_frames_without_querier: 0,
            };
            set_igmp(&mut link, link_config.as_ref(), now);
            set_mld(&mut link, link_config.as_ref(), now);
            self.links.insert(name.clone(), link);
            self.restore_link(now, &name);
            self.drain_link(&name);
            changed = true;
        }
        if changed {
            self.push_links();
            self.actions
                .push_back(Action::Session(SessionInput::Registration(
                    self.registration(),
                )));
            self.table_dirty = true;
        }
        // A detached link, or one whose IPv6 address went, took its MLD membership.
        self.sync_mld_reports();
    }

    /// Hands the data plane the attached links and the upstream interface (a link
    /// where routers are, whose traffic enters the domain like a local source's).
    fn push_links(&mut self) {
        let upstream = self
            .upstream
            .as_ref()
            .and_then(|u| u.dev.as_ref().map(|d| (u, d)))
            .map(|(u, d)| LinkSpec {
                name: d.name.clone(),
                ifindex: d.ifindex,
                routers: true,
                single_host: false,
                egress: upstream::as_pairs(&u.egress),
                standby: upstream::as_pairs(&u.role.standby),
            });
        self.actions.push_back(Action::SetLinks(
            self.links
                .values()
                .map(|l| LinkSpec {
                    name: l.dev.name.clone(),
                    ifindex: l.dev.ifindex,
                    routers: self.is_router_link(&l.dev.name),
                    single_host: l.dev.single_host() && !self.is_router_link(&l.dev.name),
                    egress: Vec::new(),
                    standby: Vec::new(),
                })
                .chain(upstream)
                .collect(),
        ));
    }

    /// The underlay interface's MTU as last read.
    pub fn handle_underlay_mtu(&mut self, mtu: usize) {
        if mtu != self.underlay_mtu {
            tracing::info!(mtu, "underlay MTU changed");
            self.underlay_mtu = mtu;
            self.actions.push_back(Action::SetUnderlayMtu(mtu));
        }
    }

    /// One Ethernet frame received on `link` by its socket: IGMP (IPv4) goes to the
    /// link's IGMP querier, MLD (IPv6) to its MLD querier.
    pub fn handle_frame(&mut self, now: Instant, link: &str, ifindex: u32, frame: &[u8]) {
        let now = self.advance(now);
        if self.is_upstream(link) {
            self.upstream_packet(now, ifindex, frame);
            return;
        }
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        if l.dev.ifindex != ifindex {
            return;
        }
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            l.bad_frames += 1;
            return;
        };
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 => match l.igmp.as_mut() {
                Some(igmp) => igmp.handle_packet(now, eth.payload()),
                // IGMP is off, or waits for the domain's settings.
                None => {
                    l.frames_without_querier += 1;
                    return;
                }
            },
            ethernet::ETHERTYPE_IPV6 => match l.mld.as_mut() {
                Some(mld) => mld.handle_packet(now, eth.payload()),
                // The querier is off or waits for settings, or the link has no
                // link-local address out of DAD yet.
                None => {
                    l.mld_frames_without_querier += 1;
                    return;
                }
            },
            _ => {
                l.bad_frames += 1;
                return;
            }
        }
        self.drain_link(link);
    }

    /// A query could not be sent on `link`.
    pub fn handle_send_error(&mut self, link: &str) {
        if let Some(l) = self.links.get_mut(link) {
            l.send_errors += 1;
        }
    }

    /// When [`AgentCore::handle_timeout`] must next be called: the earliest querier
    /// timer, the end of the settings grace period, of the reconnect hold-down, of a
    /// restored membership's hold, or the next save. `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .flat_map(|l| {
                let igmp = l.igmp.as_ref().and_then(Interface::poll_timeout);
                igmp.into_iter()
                    .chain(l.mld.as_ref().and_then(MldInterface::poll_timeout))
            })
            .chain(self.grace_until)
            .chain(self.stale.as_ref().map(|(_, t)| *t))
            .chain(self.restored.values().copied())
            .chain(self.save_at)
            .chain(self.upstream_timeout())
            .chain(self.fence_timeout())
            .min()
    }

    /// Runs everything due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.grace_until.is_some_and(|t| t <= now) {
            self.grace_until = None;
            if self.igmp == IgmpPlan::Unknown {
                tracing::info!(
                    "no domain settings from the controller yet; running the querier with defaults"
                );
                self.apply_igmp_plan(now);
            }
        }
        if self.stale.as_ref().is_some_and(|(_, t)| *t <= now) {
            tracing::info!("hold-down after the controller reconnect is over");
            self.stale = None;
            self.table_dirty = true;
        }
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            if let Some(i) = self.links.get_mut(&name).and_then(|l| l.igmp.as_mut())
                && i.poll_timeout().is_some_and(|t| t <= now)
            {
                i.handle_timeout(now);
            }
            if let Some(i) = self.links.get_mut(&name).and_then(|l| l.mld.as_mut())
                && i.poll_timeout().is_some_and(|t| t <= now)
            {
                i.handle_timeout(now);
            }
            self.drain_link(&name);
        }
        let expired: Vec<(String, Ipv4Addr)> = self
            .restored
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (link, group) in expired {
            tracing::info!(link, %group, "restored membership not confirmed by any host; dropped");
            self.set_member(&link, group, None, Vec::new());
        }
        self.upstream_handle_timeout(now);
        if self.fence_timeout().is_some_and(|t| t <= now) {
            self.refresh_upstream();
        }
        if self.save_at.is_some_and(|t| t <= now) {
            self.save_at = None;
            self.actions
                .push_back(Action::Save(self.saved_membership()));
        }
    }

    /// The next thing to do, if any. The forwarding table is recomputed here, once
    /// after any number of changes.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() && self.table_dirty {
            self.compute_table();
            self.refresh_upstream();
        }
        self.actions.pop_front()
    }

    fn apply_igmp_plan(&mut self, now: Instant) {
        let config = self.effective_igmp();
        // A data plane that runs its own querier (the kernel one, on the bridge) speaks
        // the same version and timers as the agent's.
        if let Some(c) = &config {
            self.actions
                .push_back(Action::SetQuerier(c.version, c.settings.clone()));
        }
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            let had = self.links.get(&name).is_some_and(|l| l.igmp.is_some());
            let link_config = self
                .links
                .get(&name)
                .and_then(|l| self.link_config(&l.dev, &config));
            if let Some(l) = self.links.get_mut(&name) {
                set_igmp(l, link_config.as_ref(), now);
                set_mld(l, link_config.as_ref(), now);
            }
            if had && config.is_none() {
                self.forget_link_members(&name);
            }
            self.drain_link(&name);
        }
        self.sync_mld_reports();
    }

    /// Makes time monotonic: an earlier `now` than already seen counts as that one.
    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }
}

impl AgentCore {
    /// Marks the attached links matching these glob patterns as links where another
    /// multicast router may be (RFC 3376 6.6.2 election and router ports as usual);
    /// every other link carries hosts only, the default for task links.
    pub fn with_router_links(mut self, patterns: Vec<String>) -> Self {
        self.router_links = patterns;
        self
    }

    fn is_router_link(&self, name: &str) -> bool {
        crate::netdev::matches_any(&self.router_links, name)
    }

    /// The querier configuration for link `name`: the domain's, with other queriers
    /// allowed only on router links, and fast leave on a link that carries a single
    /// host when the domain allows it there (see [`mcgate_domain::groups::leave_mode`]).
    fn link_config(&self, dev: &NetDev, config: &Option<IgmpConfig>) -> Option<IgmpConfig> {
        let router = self.is_router_link(&dev.name);
        let single_host = !router && dev.single_host();
        config.as_ref().map(|c| {
            let mut c = IgmpConfig {
                other_queriers: router,
                ..c.clone()
            };
            c.settings.fast_leave = c.settings.fast_leave_on(single_host);
            c
        })
    }
}

/// Starts (or reconfigures) a link's querier with `config`, or stops it with `None`.
fn set_igmp(link: &mut CoreLink, config: Option<&IgmpConfig>, now: Instant) {
    match (config, &mut link.igmp) {
        (None, _) => link.igmp = None,
        (Some(c), Some(i)) => {
            if i.config() != c {
                i.set_config(now, c.clone());
            }
        }
        (Some(c), None) => {
            let address = link.dev.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
            link.igmp = Some(Interface::new(c.clone(), address, now));
        }
    }
}

/// Starts (or reconfigures, or re-addresses) a link's MLD querier with the link's IGMP
/// `config` (the domain's settings serve both families: RFC 3810 section 9 has RFC
/// 3376's defaults under the same names), speaking MLDv2 whatever the domain's IGMP
/// version (MLDv1 hosts are served by the compatibility mode of RFC 3810 section 8),
/// or stops it: with `None`, or while the link has no link-local address out of DAD to
/// query from (RFC 3810 section 5.1.14). Its membership goes with it.
fn set_mld(link: &mut CoreLink, config: Option<&IgmpConfig>, now: Instant) {
    let (Some(c), Some(address)) = (config, link.dev.ipv6.ready()) else {
        if link.mld.take().is_some() {
            tracing::info!(link = %link.dev.name, ipv6 = link.dev.ipv6.name(), "MLD querier stopped");
        }
        return;
    };
    let c = IgmpConfig {
        version: mld_version(),
        ..c.clone()
    };
    match &mut link.mld {
        Some(i) => {
            if i.address() != address {
                i.set_address(now, address);
            }
            if i.config() != &c {
                i.set_config(now, c);
            }
        }
        None => {
            tracing::info!(link = %link.dev.name, %address, "MLD querier started");
            link.mld = Some(MldInterface::new(c, address, now));
        }
    }
}

/// The MLD version the agent's queriers speak: MLDv2 (`Version::V3` in the router
/// core's terms).
fn mld_version() -> Version {
    mcgate_igmp::MldVersion::V2.version()
}

pub mod failover;
pub mod gateway_role;
mod membership;
pub use membership::MldMembership;
pub(crate) use membership::mld_number;
pub mod peer_liveness;
pub mod session;
mod stream;
#[cfg(test)]
mod tests;
mod upstream;
