//! The worker's WireGuard device and VXLAN source filter: which address each domain's
//! VXLAN device speaks from, where its copies go, and who may send to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::super::super::error::Error;
use super::super::super::filter::{self, FilterSpec, Senders};
use super::super::super::membership::RemoteMembership;
use super::super::super::plan::DomainPlan;
use super::super::super::wireguard::{
    self, Key, TunnelMode, WG_OVERHEAD, WgDevice, WgPeer, WireguardHost,
};
use super::Worker;
use crate::kernel::plane::VXLAN_OVERHEAD;

/// What one domain's VXLAN device must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceShape {
    /// Local address: the underlay address, or the tunnel address under WireGuard.
    pub local: Ipv4Addr,
    /// Through WireGuard.
    pub wireguard: bool,
}

/// The filter's state.
#[derive(Debug, Default)]
pub(super) struct FilterState {
    /// What the tables hold, as last applied.
    pub applied: Option<FilterSpec>,
    /// Drops read at the last tick: (from non-peers, from task ports).
    pub drops: (u64, u64),
    /// A predecessor's tables were found at start.
    pub adopted: bool,
}

impl Worker {
    /// The MTU of a domain's VXLAN device.
    /// Under WireGuard it also fits the WireGuard device, whose MTU cannot grow.
    pub(super) fn vxlan_mtu(&self, wireguard: bool) -> u32 {
        let overhead = VXLAN_OVERHEAD + if wireguard { WG_OVERHEAD } else { 0 };
        let mut mtu = self.config.underlay_mtu.saturating_sub(overhead) as u32;
        if wireguard && let Some(wg) = &self.wg {
            mtu = mtu.min(wg.mtu().saturating_sub(VXLAN_OVERHEAD as u32));
        }
        mtu.max(68)
    }

    /// The WireGuard device's MTU for the current underlay MTU.
    pub(super) fn wireguard_mtu(&self) -> u32 {
        (self.config.underlay_mtu.saturating_sub(WG_OVERHEAD)).max(1280) as u32
    }

    /// The peers' WireGuard identities the wireguard domains need, by underlay address.
    fn wireguard_peers(&self) -> BTreeMap<Ipv4Addr, WgPeer> {
        let me = *self.config.underlay.ip();
        self.table
            .domains()
            .iter()
            .filter(|d| self.tunnels.mode(d.vni) == TunnelMode::Wireguard)
            .flat_map(|d| d.peers.iter().copied())
            .filter(|p| *p != me)
            .filter_map(|p| Some((p, self.tunnels.peers.get(&p)?.clone())))
            .collect()
    }

    /// Makes the WireGuard device exist exactly while a domain needs it, with this
    /// host's tunnel address and the peers' identities. Returns the shape every planned
    /// domain's device must have; a wireguard domain that cannot be served yet (no key,
    /// no tunnel address) is left out with the reason in `errors`.
    pub(super) fn sync_wireguard(
        &mut self,
        wanted: &BTreeMap<u32, DomainPlan>,
        errors: &mut Vec<Error>,
    ) -> BTreeMap<u32, DeviceShape> {
        let underlay = *self.config.underlay.ip();
        let needed = wanted
            .keys()
            .any(|v| self.tunnels.mode(*v) == TunnelMode::Wireguard);
        if !needed {
            self.remove_wireguard();
        } else if let Err(e) = self.ensure_wireguard() {
            errors.push(e);
        }
        let ready = self.wg.is_some() && self.tunnels.local.is_some();
        let mut shapes = BTreeMap::new();
        for vni in wanted.keys() {
            match self.tunnels.mode(*vni) {
                TunnelMode::Vxlan => {
                    shapes.insert(
                        *vni,
                        DeviceShape {
                            local: underlay,
                            wireguard: false,
                        },
                    );
                }
                TunnelMode::Wireguard if ready => {
                    if let Some(local) = self.tunnels.local {
                        shapes.insert(
                            *vni,
                            DeviceShape {
                                local,
                                wireguard: true,
                            },
                        );
                    }
                }
                TunnelMode::Wireguard => {
                    if self.tunnels.local.is_none() {
                        errors.push(Error::Wireguard(format!(
                            "domain VNI {vni} tunnels through WireGuard but this host has no tunnel address yet"
                        )));
                    }
                }
            }
        }
        shapes
    }

    fn ensure_wireguard(&mut self) -> Result<(), Error> {
        let Some(host) = self.config.wireguard.clone() else {
            return Err(Error::Wireguard(
                "a domain tunnels through WireGuard but this agent has no WireGuard key".into(),
            ));
        };
        if self.wg.is_none() {
            let mtu = self.wireguard_mtu();
            let dev = WgDevice::create(&mut self.nl, wireguard::DEVICE, &host, mtu)?;
            tracing::info!(device = %dev.name, mtu, "userspace WireGuard device created");
            self.wg = Some(dev);
        }
        let peers: Vec<WgPeer> = self.wireguard_peers().into_values().collect();
        let local = self.tunnels.local;
        let Some(dev) = self.wg.as_mut() else {
            return Ok(());
        };
        if let Some(addr) = local {
            dev.set_address(&mut self.nl, addr)?;
        }
        let changed = dev.set_peers(&mut self.nl, &peers)?;
        if changed > 0 {
            tracing::info!(device = %dev.name, peers = peers.len(), changed, "WireGuard peers updated");
        }
        Ok(())
    }

    /// This host's key changed (rotation).
    pub(super) fn set_host_key(&mut self, key: Key) {
        let Some(old) = self.config.wireguard.as_ref() else {
            tracing::warn!("a new WireGuard key but no WireGuard port: ignored");
            return;
        };
        let host = WireguardHost {
            private_key: key,
            ..old.clone()
        };
        if *old == host {
            return;
        }
        if let Some(dev) = self.wg.as_mut() {
            match dev.set_host(&host) {
                Ok(()) => tracing::info!(device = %dev.name, "WireGuard key replaced"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot replace the WireGuard key");
                    self.last_error = Some(e.to_string());
                }
            }
        }
        self.config.wireguard = Some(host);
        self.dirty = true;
    }

    pub(super) fn remove_wireguard(&mut self) {
        if let Some(dev) = self.wg.take() {
            let name = dev.name.clone();
            match dev.delete(&mut self.nl) {
                Ok(()) => tracing::info!(device = %name, "WireGuard device removed"),
                Err(e) => {
                    tracing::warn!(device = %name, error = %e, "cannot remove");
                    self.last_error = Some(e.to_string());
                }
            }
        }
    }

    /// A wireguard domain's memberships name the peers' tunnel addresses (and the VXLAN
    /// port: the inner datagram always goes to 4789); remotes without a WireGuard
    /// identity are left out until the controller sends one.
    pub(super) fn through_tunnel(
        &self,
        memberships: &BTreeSet<RemoteMembership>,
    ) -> BTreeSet<RemoteMembership> {
        memberships
            .iter()
            .filter_map(|m| {
                let peer = self.tunnels.peers.get(&m.dst)?;
                Some(RemoteMembership {
                    dst: peer.tunnel_address,
                    dst_port: None,
                    ..m.clone()
                })
            })
            .collect()
    }

    /// The filter for the devices in `shapes`.
    pub(super) fn filter_spec(&self, shapes: &BTreeMap<u32, DeviceShape>) -> FilterSpec {
        let me = *self.config.underlay.ip();
        let mut domains = BTreeMap::new();
        for d in self.table.domains() {
            let Some(shape) = shapes.get(&d.vni) else {
                continue;
            };
            let underlay: BTreeSet<Ipv4Addr> =
                d.peers.iter().copied().filter(|p| *p != me).collect();
            let senders = if shape.wireguard {
                Senders::Wireguard {
                    device: wireguard::DEVICE.to_string(),
                    peers: underlay
                        .iter()
                        .filter_map(|p| Some(self.tunnels.peers.get(p)?.tunnel_address))
                        .collect(),
                }
            } else {
                Senders::Underlay(underlay)
            };
            domains.insert(d.vni, senders);
        }
        FilterSpec {
            port: self.config.underlay.port(),
            domains,
            task_ports: self.links.iter().map(|l| l.name.clone()).collect(),
        }
    }

    /// Applies `spec` if it differs from what the tables hold.
    pub(super) fn sync_filter(&mut self, spec: FilterSpec) -> Result<(), Error> {
        if self.filter.applied.as_ref() == Some(&spec) {
            return Ok(());
        }
        filter::apply(&spec)?;
        tracing::info!(
            domains = spec.domains.len(),
            task_ports = spec.task_ports.len(),
            "VXLAN source filter updated"
        );
        self.filter.applied = Some(spec);
        Ok(())
    }

    /// Removes the filter's tables (clean shutdown).
    pub(super) fn remove_filter(&mut self) {
        let adopted = std::mem::take(&mut self.filter.adopted);
        if self.filter.applied.take().is_some() || adopted {
            match filter::remove() {
                Ok(_) => tracing::info!("VXLAN source filter removed"),
                Err(e) => tracing::warn!(error = %e, "cannot remove the VXLAN source filter"),
            }
        }
    }

    /// Reads the drop counters (when the filter is in place).
    pub(super) fn read_filter_drops(&mut self) {
        if self.filter.applied.is_none() && !self.filter.adopted {
            return;
        }
        match filter::drops() {
            Ok(d) => self.filter.drops = d,
            Err(e) => tracing::debug!(error = %e, "cannot read the filter's counters"),
        }
    }
}
