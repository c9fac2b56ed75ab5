//! The kernel data plane: a [`Dataplane`] that forwards nothing
//! itself but keeps the kernel's bridge and VXLAN tables in step with the forwarding
//! table, so the kernel replicates.
//!
//! On its own thread (every netlink call blocks) it:
//! - finds the host bridge: the master of the attached links;
//! - makes the bridge deliver locally by snooping: `mcast_snooping 1` and the bridge's
//!   own querier (`mcast_querier 1`) speaking the domain's IGMP version with the
//!   domain's timers. The bridge uses its multicast table only while it sees a querier;
//!   the agent's own queries go straight out of each task link and never pass the
//!   bridge, so the bridge runs one of its own. The settings found are written into
//!   every VXLAN device's alias and restored on shutdown, or by the next agent after a
//!   crash;
//! - keeps one VXLAN device per domain on that bridge and reconciles its tables with the
//!   remote memberships of the forwarding table ([`plan`](super::plan)) after every
//!   change, retrying every second while the kernel refuses something;
//! - publishes the devices' counters under the userspace relay's names.
//!
//! It never touches a device it did not create, besides the bridge's multicast settings
//! (restored) and the bridge's MTU when adding a port would lower it (set back).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_wire::{IgmpSettings, Version};

pub use super::alias::{decode_alias, encode_alias};
pub use super::bridge_querier::bridge_settings;
pub use super::status::{DeviceStatus, KernelStatus, WireguardStatus};
mod adopt;
mod host_ports;
mod worker;

use self::worker::Worker;
use super::error::Error;
use super::socket::Netlink;
use super::vxlan::{DEVICE_PREFIX, VxlanDevice};
use super::wireguard::{self, Key, WireguardHost};
use crate::counters::DataplaneStats;
use crate::{Dataplane, HostKey, LinkSpec};

/// VXLAN over IPv4: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: usize = 50;
/// Removes the VXLAN devices a predecessor left (killed before it could clean up) and
/// puts back the bridge settings recorded in their aliases, and removes its VXLAN
/// source filter (which would drop what the relay should receive). Returns the names
/// of the devices removed. Safe to call in any data plane mode: a stale device would
/// hold UDP 4789.
pub fn sweep_stale(nl: &mut Netlink) -> Result<Vec<String>, Error> {
    match super::filter::present() {
        Ok(true) => match super::filter::remove() {
            Ok(_) => tracing::info!("removed the VXLAN source filter a previous agent left"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove a previous agent's VXLAN source filter")
            }
        },
        Ok(false) => {}
        // No nft: no filter can have been left either.
        Err(e) => tracing::debug!(error = %e, "no VXLAN source filter sweep"),
    }
    let stale = VxlanDevice::find_stale(nl, DEVICE_PREFIX)?;
    let mut restored = BTreeSet::new();
    for l in &stale {
        if let Some((bridge, settings)) = l.alias.as_deref().and_then(decode_alias)
            && restored.insert(bridge)
        {
            match nl.set_bridge_settings(bridge, &settings) {
                Ok(()) => tracing::info!(
                    bridge,
                    "restored the bridge multicast settings a previous agent recorded"
                ),
                Err(e) => tracing::warn!(bridge, error = %e, "cannot restore bridge settings"),
            }
        }
    }
    VxlanDevice::remove_stale(nl, DEVICE_PREFIX)
}

/// What the kernel data plane needs to start.
#[derive(Debug, Clone)]
pub struct KernelPlaneConfig {
    /// The local VXLAN endpoint (underlay address and UDP port).
    pub underlay: SocketAddrV4,
    /// MTU of the underlay interface.
    pub underlay_mtu: usize,
    /// Index of the interface holding the underlay address.
    pub underlay_ifindex: Option<u32>,
    /// This host's WireGuard identity; `None`: domains whose tunnel is `wireguard`
    /// cannot be served (their devices are not made, and the status says why).
    pub wireguard: Option<WireguardHost>,
}

pub(crate) enum Command {
    Table(Arc<ForwardingTable>),
    Links(Vec<LinkSpec>),
    Mtu(usize),
    Querier(Version, IgmpSettings),
    Static(BTreeSet<(String, Ipv4Addr)>),
    HostKey(Key),
    /// Stop, taking everything down.
    Shutdown,
    /// Stop, leaving every table in the kernel for a successor (graceful restart).
    Detach,
}

/// The running kernel data plane: a handle on its thread.
pub struct KernelPlane {
    tx: Sender<Command>,
    stats: Arc<Mutex<(DataplaneStats, KernelStatus)>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KernelPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelPlane").finish_non_exhaustive()
    }
}

impl KernelPlane {
    /// Opens netlink, takes over the devices a predecessor left (graceful restart, see
    /// `adopt`) and starts the thread.
    pub fn start(config: KernelPlaneConfig) -> Result<Self, Error> {
        let mut nl = Netlink::open()?;
        let adopted = adopt::adopt_previous(&mut nl, &config)?;
        if !adopted.removed.is_empty() {
            tracing::info!(devices = ?adopted.removed, "removed VXLAN devices a previous agent left");
        }
        let names: Vec<String> = adopted.devices.iter().map(|d| d.name.clone()).collect();
        let wg = wireguard::probe();
        tracing::info!(kind = ?wg.kind, "WireGuard for tunnels: {}", wg.reason);
        if !names.is_empty() {
            tracing::info!(devices = ?names, "took over the VXLAN devices a previous agent left; the kernel forwards by their tables until the controller's state arrives");
        }
        let stats = Arc::new(Mutex::new((
            DataplaneStats {
                name: "kernel",
                underlay_mtu: config.underlay_mtu,
                ..DataplaneStats::default()
            },
            KernelStatus {
                stale_removed: adopted.removed.clone(),
                adopted: names,
                wireguard: WireguardStatus {
                    kind: wg.kind,
                    reason: wg.reason,
                    ..WireguardStatus::default()
                },
                ..KernelStatus::default()
            },
        )));
        let (tx, rx) = std::sync::mpsc::channel();
        let published = stats.clone();
        let thread = std::thread::Builder::new()
            .name("mcgate-kernel".into())
            .spawn(move || Worker::new(nl, config, rx, published, adopted).run())
            .map_err(|e| Error::Io {
                op: "start the kernel data plane thread".into(),
                source: e,
            })?;
        Ok(Self {
            tx,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The kernel-specific state.
    pub fn status(&self) -> KernelStatus {
        match self.stats.lock() {
            Ok(s) => s.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    /// The same as [`status`](Self::status), under the name `dyn Dataplane` offers.
    pub fn kernel_status(&self) -> Option<KernelStatus> {
        Some(self.status())
    }
}

impl Dataplane for KernelPlane {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn set_table(&self, table: Arc<ForwardingTable>) {
        let _ = self.tx.send(Command::Table(table));
    }

    fn set_links(&self, links: Vec<LinkSpec>) {
        let _ = self.tx.send(Command::Links(links));
    }

    fn set_underlay_mtu(&self, mtu: usize) {
        let _ = self.tx.send(Command::Mtu(mtu));
    }

    fn set_querier(&self, version: Version, settings: IgmpSettings) {
        let _ = self.tx.send(Command::Querier(version, settings));
    }

    /// Rotation: every WireGuard session is renegotiated with the new key. The peers
    /// must have the new public key first (the controller spreads it): a peer still on
    /// the old one cannot complete a handshake until it has it.
    fn set_key(&self, key: HostKey) {
        let _ = self.tx.send(Command::HostKey(Key(key.secret().to_bytes())));
    }

    fn set_static_members(&self, members: BTreeSet<(String, Ipv4Addr)>) {
        let _ = self.tx.send(Command::Static(members));
    }

    fn stats(&self) -> DataplaneStats {
        match self.stats.lock() {
            Ok(s) => s.0.clone(),
            Err(p) => p.into_inner().0.clone(),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn detach(&self) {
        self.stop(Command::Detach);
    }

    fn shutdown(&self) {
        self.stop(Command::Shutdown);
    }
}

impl KernelPlane {
    fn stop(&self, how: Command) {
        let _ = self.tx.send(how);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for KernelPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
