//! The kernel data plane's thread: keeps the bridge, the VXLAN devices and their tables
//! in step with what the agent handed over, and publishes the counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_wire::{IgmpSettings, Version};

use super::super::error::Error;
use super::super::link_msg::{self, BridgeSettings, DeviceStats, LinkInfo};
use super::super::mdb::{BridgeMdb, DomainTables};
use super::super::membership::RemoteMembership;
use super::super::plan::plan;
use super::super::socket::Netlink;
use super::super::vxlan::{VxlanConfig, VxlanDevice};
use super::super::wireguard::{TunnelView, WgDevice};
use super::adopt::Adopted;
use super::host_ports::HostPorts;
use super::{Command, KernelPlaneConfig, KernelStatus, bridge_settings, encode_alias};
use crate::LinkSpec;
use crate::counters::DataplaneStats;
use tunnel::{DeviceShape, FilterState};

mod publish;
mod tunnel;

/// How often counters are read and refused changes retried.
const TICK: Duration = Duration::from_secs(1);
/// The query response interval the bridge's querier starts with: the bridge counts its
/// own querier as present only this long after it is turned on (10 s by default, a
/// blackout for local delivery); the domain's value is set right after.
const STARTUP_RESPONSE_CS: u64 = 100;

/// The bridge the devices sit on.
struct Bridge {
    ifindex: u32,
    name: String,
    /// Its settings when first seen, put back on shutdown.
    original: BridgeSettings,
    /// Its MTU when first seen.
    mtu: Option<u32>,
    /// The querier settings applied (None: not yet).
    applied: Option<(Version, IgmpSettings)>,
    /// Snooping and the bridge's own querier were already on when first seen (a
    /// previous agent's): no start-up blackout to avoid, and none to cause.
    querier_running: bool,
}

struct Domain {
    dev: VxlanDevice,
    tables: DomainTables,
    /// What the kernel holds, as of the last successful reconcile.
    programmed: Option<BTreeSet<RemoteMembership>>,
    /// Set when the device's MTU is managed here (underlay on the bridge itself, or
    /// through WireGuard).
    mtu_managed: bool,
    /// Through the WireGuard device.
    wireguard: bool,
}

pub(super) struct Worker {
    nl: Netlink,
    config: KernelPlaneConfig,
    cmds: Receiver<Command>,
    published: Arc<Mutex<(DataplaneStats, KernelStatus)>>,
    table: Arc<ForwardingTable>,
    links: Vec<LinkSpec>,
    querier: (Version, IgmpSettings),
    bridge: Option<Bridge>,
    domains: BTreeMap<u32, Domain>,
    /// Static members of this host: (link, group).
    statics: BTreeSet<(String, Ipv4Addr)>,
    /// Permanent bridge entries on task ports, per port, as last programmed.
    port_entries: BTreeMap<u32, BTreeSet<IpAddr>>,
    /// Task ports made host ports.
    host_ports: HostPorts,
    /// Counters of devices already deleted, so totals never go backwards.
    retired: DeviceStats,
    dirty: bool,
    tables: u64,
    reconciles: u64,
    failures: u64,
    last_error: Option<String>,
    warned_no_bridge: bool,
    /// The bridge (and its settings before mcgate) a previous agent recorded.
    adopted_bridge: Option<(u32, BridgeSettings)>,
    /// Adopted tables are held as found until the table names a domain.
    holding: bool,
    /// Tunnel modes, the peers' WireGuard identities and this host's tunnel address.
    tunnels: TunnelView,
    /// The WireGuard device, while a domain tunnels through it.
    wg: Option<WgDevice>,
    /// The VXLAN source filter.
    filter: FilterState,
}

impl Worker {
    pub(super) fn new(
        nl: Netlink,
        config: KernelPlaneConfig,
        cmds: Receiver<Command>,
        published: Arc<Mutex<(DataplaneStats, KernelStatus)>>,
        adopted: Adopted,
    ) -> Self {
        let on_bridge = |b: u32| config.underlay_ifindex == Some(b);
        let domains: BTreeMap<u32, Domain> = adopted
            .devices
            .into_iter()
            .map(|dev| {
                let d = Domain {
                    tables: DomainTables::new(&dev),
                    mtu_managed: on_bridge(dev.bridge_ifindex),
                    wireguard: dev.local != *config.underlay.ip(),
                    dev,
                    programmed: None,
                };
                (d.dev.vni, d)
            })
            .collect();
        Self {
            holding: !domains.is_empty(),
            adopted_bridge: adopted.bridge,
            nl,
            config,
            cmds,
            published,
            table: Arc::new(ForwardingTable::empty()),
            links: Vec::new(),
            // RFC 3376's defaults until the agent says.
            querier: (Version::V3, IgmpSettings::default()),
            bridge: None,
            domains,
            statics: BTreeSet::new(),
            port_entries: BTreeMap::new(),
            host_ports: HostPorts::default(),
            retired: DeviceStats::default(),
            dirty: false,
            tables: 0,
            reconciles: 0,
            failures: 0,
            last_error: None,
            warned_no_bridge: false,
            tunnels: TunnelView::default(),
            wg: None,
            filter: FilterState {
                // A predecessor's tables are adopted by the first update, or removed.
                adopted: super::super::filter::present().unwrap_or(false),
                ..FilterState::default()
            },
        }
    }

    pub(super) fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match self.cmds.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Command::Shutdown),
            };
            let mut stop = None;
            let mut cmds: Vec<Command> = first.into_iter().collect();
            cmds.extend(std::iter::from_fn(|| self.cmds.try_recv().ok()));
            for cmd in cmds {
                match cmd {
                    Command::Table(t) => {
                        self.tunnels = TunnelView::from_table(&t);
                        self.table = t;
                        self.tables += 1;
                        self.dirty = true;
                    }
                    Command::Links(l) => {
                        self.links = l;
                        self.dirty = true;
                    }
                    Command::Mtu(m) => {
                        self.config.underlay_mtu = m;
                        self.set_mtus();
                    }
                    Command::Querier(v, s) => {
                        let q = (v, s);
                        if q != self.querier {
                            self.querier = q;
                            self.dirty = true;
                        }
                    }
                    Command::HostKey(k) => self.set_host_key(k),
                    Command::Static(m) => {
                        if m != self.statics {
                            self.statics = m;
                            self.dirty = true;
                        }
                    }
                    Command::Shutdown => stop = Some(true),
                    Command::Detach => stop = Some(false),
                }
            }
            match stop {
                Some(true) => return self.teardown(),
                Some(false) => {
                    tracing::info!(
                        "detached: the kernel keeps forwarding by the tables left for the next agent"
                    );
                    return self.publish();
                }
                None => {}
            }
            if self.dirty {
                self.dirty = false;
                if let Err(e) = self.sync() {
                    self.failures += 1;
                    tracing::warn!(error = %e, "cannot program the kernel tables; retrying");
                    self.last_error = Some(e.to_string());
                    self.dirty = true;
                }
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                self.read_filter_drops();
                self.publish();
            }
        }
    }

    /// The bridge the attached links are ports of.
    fn find_bridge(&mut self) -> Result<Option<LinkInfo>, Error> {
        for l in &self.links {
            let link = match self.nl.link_by_index(l.ifindex) {
                Ok(link) => link,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let Some(master) = link.master else {
                continue;
            };
            let m = self.nl.link_by_index(master)?;
            if m.kind == "bridge" {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Sets the bridge's MAC address to the one it has. A bridge whose address was
    /// never set takes the lowest of its ports' addresses and changes it when a port
    /// joins: the VXLAN devices added here (random addresses) would move it, and every
    /// neighbour that cached the old one would send the host's unicast (the tunnel
    /// among it) to an address nobody has until its ARP entry expired. A set address
    /// stays. A failure only costs that protection, so it is logged, not fatal.
    fn pin_bridge_address(&mut self, bridge: &LinkInfo) {
        let Some(mac) = bridge.address else {
            return;
        };
        let what = format!("keep the MAC address of {}", bridge.name);
        match self
            .nl
            .request(&link_msg::set_address(bridge.ifindex, mac), &what)
        {
            Ok(()) => tracing::debug!(bridge = %bridge.name, "bridge MAC address kept fixed"),
            Err(e) => tracing::warn!(
                bridge = %bridge.name,
                error = %e,
                "cannot fix the bridge's MAC address; adding a VXLAN port may change it"
            ),
        }
    }

    fn sync(&mut self) -> Result<(), Error> {
        let mut found = self.find_bridge()?;
        // With no task link for a moment (a task restarting), keep the bridge in use as
        // long as it exists: tearing down would cut every remote flow of the host.
        if found.is_none()
            && let Some(b) = self.bridge.as_ref()
            && self.links.is_empty()
        {
            match self.nl.link_by_index(b.ifindex) {
                Ok(l) if l.kind == "bridge" => found = Some(l),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let Some(found) = found else {
            if !self.domains.is_empty() || self.bridge.is_some() {
                tracing::info!("no attached link is on a bridge any more; removing devices");
                self.teardown();
            }
            if !self.warned_no_bridge && !self.links.is_empty() {
                tracing::warn!(
                    "none of the attached links is a bridge port; the kernel data plane waits for one"
                );
                self.warned_no_bridge = true;
            }
            self.publish();
            return Ok(());
        };
        if self
            .bridge
            .as_ref()
            .is_some_and(|b| b.ifindex != found.ifindex)
        {
            tracing::info!(bridge = %found.name, "the links moved to another bridge");
            self.teardown();
        }
        if self.bridge.is_none() {
            let original = match self.adopted_bridge.take() {
                Some((b, recorded)) if b == found.ifindex => recorded,
                _ => found.bridge.map(|b| b.settings).unwrap_or_default(),
            };
            let querier_running = found.bridge.is_some_and(|b| b.snooping && b.own_querier);
            tracing::info!(
                bridge = %found.name,
                snooping = ?original.snooping,
                querier = ?original.querier,
                "using the host bridge; its multicast settings are restored on shutdown"
            );
            self.pin_bridge_address(&found);
            self.bridge = Some(Bridge {
                ifindex: found.ifindex,
                name: found.name.clone(),
                original,
                mtu: found.mtu,
                applied: None,
                querier_running,
            });
        }
        self.apply_querier()?;
        if self.holding && !self.table.domains().is_empty() {
            tracing::info!(
                "the controller's state arrived; reconciling the tables a previous agent left"
            );
            self.holding = false;
        }
        if self.holding {
            // Graceful restart: the kernel forwards by the previous agent's tables.
            let fast = fast_leave_rule(&self.querier.1);
            let guarded = self
                .host_ports
                .sync(&mut self.nl, found.ifindex, &self.links, &fast);
            self.publish();
            return guarded;
        }

        let wanted = plan(&self.table);
        let mut errors = Vec::new();
        let shapes = self.sync_wireguard(&wanted, &mut errors);
        // Gone, or changed between plain VXLAN and WireGuard (another local address).
        let gone: Vec<u32> = self
            .domains
            .iter()
            .filter(|(v, d)| {
                shapes
                    .get(v)
                    .is_none_or(|s| s.local != d.dev.local || s.wireguard != d.wireguard)
            })
            .map(|(v, _)| *v)
            .collect();
        for vni in gone {
            if let Some(d) = self.domains.remove(&vni) {
                self.retire(&d);
                d.dev.delete(&mut self.nl)?;
                tracing::info!(device = %d.dev.name, "domain gone; VXLAN device removed");
            }
        }
        let mut first_error = errors.into_iter().next();
        for (vni, p) in &wanted {
            let Some(shape) = shapes.get(vni) else {
                continue;
            };
            if !self.domains.contains_key(vni) {
                match self.create_device(*vni, shape) {
                    Ok(d) => {
                        tracing::info!(device = %d.dev.name, domain = %p.name, "VXLAN device created");
                        self.domains.insert(*vni, d);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            let memberships = if shape.wireguard {
                self.through_tunnel(&p.memberships)
            } else {
                p.memberships.clone()
            };
            let Some(d) = self.domains.get_mut(vni) else {
                continue;
            };
            if d.programmed.as_ref() == Some(&memberships) {
                continue;
            }
            match d.tables.reconcile(&mut self.nl, &memberships) {
                Ok(r) if r.vxlan.failed == 0 && r.bridge.failed == 0 => {
                    self.reconciles += 1;
                    tracing::debug!(device = %d.dev.name, ?r, "kernel tables reconciled");
                    d.programmed = Some(memberships);
                }
                Ok(mut r) => {
                    self.reconciles += 1;
                    d.programmed = None;
                    let e = r.vxlan.errors.pop().or_else(|| r.bridge.errors.pop());
                    if let Some(e) = e {
                        first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    d.programmed = None;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.sync_static_ports() {
            first_error.get_or_insert(e);
        }
        let spec = self.filter_spec(&shapes);
        if let Err(e) = self.sync_filter(spec) {
            first_error.get_or_insert(e);
        }
        let fast = fast_leave_rule(&self.querier.1);
        if let Err(e) = self
            .host_ports
            .sync(&mut self.nl, found.ifindex, &self.links, &fast)
        {
            first_error.get_or_insert(e);
        }
        self.publish();
        match first_error {
            None => {
                self.last_error = None;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Static members get a permanent bridge entry on their link's port: the bridge then
    /// delivers the group there whether or not the task answers IGMP, as the relay
    /// does. Every attached port is reconciled once, which also clears entries a
    /// crashed predecessor left.
    fn sync_static_ports(&mut self) -> Result<(), Error> {
        let Some(bridge) = self.bridge.as_ref().map(|b| b.ifindex) else {
            return Ok(());
        };
        let mut want: BTreeMap<u32, BTreeSet<IpAddr>> = self
            .links
            .iter()
            .map(|l| (l.ifindex, BTreeSet::new()))
            .collect();
        for (link, group) in &self.statics {
            if let Some(l) = self.links.iter().find(|l| &l.name == link) {
                want.entry(l.ifindex)
                    .or_default()
                    .insert(IpAddr::V4(*group));
            }
        }
        // Ports that left the link set: drop what was programmed there.
        for port in self.port_entries.keys() {
            want.entry(*port).or_default();
        }
        let mut first_error = None;
        for (port, groups) in want {
            if self.port_entries.get(&port) == Some(&groups) {
                continue;
            }
            match BridgeMdb::on_port(bridge, port).reconcile(&mut self.nl, &groups) {
                Ok(r) if r.failed == 0 => {
                    if groups.is_empty() && !self.links.iter().any(|l| l.ifindex == port) {
                        self.port_entries.remove(&port);
                    } else {
                        self.port_entries.insert(port, groups);
                    }
                }
                Ok(mut r) => {
                    if let Some(e) = r.errors.pop() {
                        first_error.get_or_insert(e);
                    }
                }
                // A port that is gone took its entries with it.
                Err(e) if e.is_not_found() => {
                    self.port_entries.remove(&port);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn apply_querier(&mut self) -> Result<(), Error> {
        let Some(b) = self.bridge.as_mut() else {
            return Ok(());
        };
        if b.applied.as_ref() == Some(&self.querier) {
            return Ok(());
        }
        let want = bridge_settings(self.querier.0, &self.querier.1);
        if b.applied.is_none() && !b.querier_running {
            // Turn the querier on with a short response interval so that the bridge
            // counts it as present after 1 s, then set the domain's (see the const).
            self.nl.set_bridge_settings(
                b.ifindex,
                &BridgeSettings {
                    querier: Some(false),
                    query_response_interval: Some(STARTUP_RESPONSE_CS),
                    ..want
                },
            )?;
            self.nl.set_bridge_settings(
                b.ifindex,
                &BridgeSettings {
                    querier: Some(true),
                    ..BridgeSettings::default()
                },
            )?;
        }
        self.nl.set_bridge_settings(b.ifindex, &want)?;
        tracing::info!(
            bridge = %b.name,
            igmp_version = %self.querier.0,
            "bridge snooping on, with its own querier"
        );
        b.applied = Some(self.querier.clone());
        Ok(())
    }

    fn create_device(&mut self, vni: u32, shape: &DeviceShape) -> Result<Domain, Error> {
        let Some(b) = self.bridge.as_ref() else {
            return Err(Error::NoSuchDevice("the host bridge".into()));
        };
        // A VXLAN device cannot be a port of the bridge it sends through (the kernel
        // refuses the loop): when the underlay address is on the bridge itself, give
        // the MTU instead of the underlay device.
        // Through WireGuard, routing picks the WireGuard device and the MTU is ours.
        let on_bridge = self.config.underlay_ifindex == Some(b.ifindex);
        let managed = on_bridge || shape.wireguard;
        let mtu = self.vxlan_mtu(shape.wireguard);
        let cfg = VxlanConfig {
            underlay_ifindex: if managed {
                None
            } else {
                self.config.underlay_ifindex
            },
            mtu: managed.then_some(mtu),
            port: self.config.underlay.port(),
            ..VxlanConfig::new(vni, shape.local, &b.name)
        };
        let dev = VxlanDevice::create(&mut self.nl, &cfg)?;
        let alias = encode_alias(b.ifindex, &b.original);
        if let Err(e) = self.nl.set_alias(dev.ifindex, &alias) {
            tracing::warn!(device = %dev.name, error = %e, "cannot record the bridge settings in the device alias");
        }
        // A bridge whose MTU was never set follows its smallest port: keep it where it was.
        if let Some(before) = b.mtu
            && let Ok(now) = self.nl.link_by_index(b.ifindex)
            && now.mtu.is_some_and(|m| m != before)
        {
            tracing::info!(bridge = %b.name, mtu = before, "keeping the bridge's MTU");
            self.nl.set_mtu(b.ifindex, before)?;
        }
        Ok(Domain {
            tables: DomainTables::new(&dev),
            dev,
            programmed: None,
            mtu_managed: managed,
            wireguard: shape.wireguard,
        })
    }

    fn set_mtus(&mut self) {
        // The WireGuard device first: the VXLAN devices riding on it must fit it.
        let wanted = self.wireguard_mtu();
        if let Some(wg) = self.wg.as_mut() {
            match wg.set_mtu(&mut self.nl, wanted) {
                Ok(m) if m < wanted => tracing::warn!(
                    device = %wg.name,
                    mtu = m,
                    wanted,
                    "the userspace WireGuard device cannot grow past the MTU it was created with; WireGuard domains keep the smaller MTU until the agent restarts"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(device = %wg.name, error = %e, "cannot follow the underlay MTU")
                }
            }
        }
        for d in self.domains.values().filter(|d| d.mtu_managed) {
            let mtu = self.vxlan_mtu(d.wireguard);
            if let Err(e) = self.nl.set_mtu(d.dev.ifindex, mtu) {
                tracing::warn!(device = %d.dev.name, error = %e, "cannot follow the underlay MTU");
            }
        }
    }

    /// Removes every device and puts the bridge's settings back.
    fn teardown(&mut self) {
        self.host_ports.release(&mut self.nl);
        if let Some(b) = self.bridge.as_ref().map(|b| b.ifindex) {
            let ports: Vec<u32> = std::mem::take(&mut self.port_entries)
                .into_iter()
                .filter(|(_, g)| !g.is_empty())
                .map(|(p, _)| p)
                .collect();
            for port in ports {
                if let Err(e) =
                    BridgeMdb::on_port(b, port).reconcile(&mut self.nl, &BTreeSet::new())
                {
                    tracing::warn!(port, error = %e, "cannot remove static members' bridge entries");
                }
            }
        }
        let domains = std::mem::take(&mut self.domains);
        for d in domains.values() {
            self.retire(d);
            match d.dev.delete(&mut self.nl) {
                Ok(()) => tracing::info!(device = %d.dev.name, "VXLAN device removed"),
                Err(e) => tracing::warn!(device = %d.dev.name, error = %e, "cannot remove"),
            }
        }
        self.remove_wireguard();
        self.remove_filter();
        if let Some(b) = self.bridge.take()
            && b.applied.is_some()
        {
            match self.nl.set_bridge_settings(b.ifindex, &b.original) {
                Ok(()) => tracing::info!(bridge = %b.name, "bridge multicast settings restored"),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(bridge = %b.name, error = %e, "cannot restore bridge settings")
                }
            }
        }
        self.publish();
    }
}

/// Which task ports get the bridge's `fast_leave` flag under the domain's settings
/// ([`IgmpSettings::fast_leave_on`]).
fn fast_leave_rule(s: &IgmpSettings) -> impl Fn(&LinkSpec) -> bool + use<> {
    let s = s.clone();
    move |l: &LinkSpec| s.fast_leave_on(l.single_host)
}
