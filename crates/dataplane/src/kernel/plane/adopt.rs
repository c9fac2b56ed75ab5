//! Graceful restart: the VXLAN devices a previous agent left (killed, crashed, or
//! detached for an upgrade) are taken over, not removed, so the kernel keeps
//! forwarding by their tables while the new agent relearns its state.
//!
//! A device is adopted when its alias records the bridge's original settings
//! ([`alias`](super::super::alias)) and it has this host's VXLAN port and underlay
//! address (or, for an agent with a WireGuard key, any address: its tunnel address).
//! Its tables are left untouched until the agent hands over a forwarding table that
//! names at least one domain (the controller's snapshot arrived); from then on the
//! plane reconciles them like its own, which changes only what differs. Anything else
//! with mcgate's prefix is removed, as [`sweep_stale`](super::sweep_stale) does.

use std::collections::BTreeSet;

use super::super::error::Error;
use super::super::link_msg::BridgeSettings;
use super::super::socket::Netlink;
use super::super::vxlan::{DEVICE_PREFIX, VxlanDevice};
use super::KernelPlaneConfig;
use super::decode_alias;

/// What a predecessor left that the plane takes over.
#[derive(Debug, Default)]
pub(super) struct Adopted {
    /// Its VXLAN devices, one per domain.
    pub devices: Vec<VxlanDevice>,
    /// The bridge they are ports of, with its settings before mcgate changed them.
    pub bridge: Option<(u32, BridgeSettings)>,
    /// Devices that could not be adopted and were removed.
    pub removed: Vec<String>,
}

/// Adopts or removes every device named `mcgvx*` (see the module docs).
pub(super) fn adopt_previous(
    nl: &mut Netlink,
    config: &KernelPlaneConfig,
) -> Result<Adopted, Error> {
    let mut out = Adopted::default();
    let mut restore = Vec::new();
    for link in VxlanDevice::find_stale(nl, DEVICE_PREFIX)? {
        let recorded = link.alias.as_deref().and_then(decode_alias);
        let dev = match VxlanDevice::open(nl, &link.name) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        // A WireGuard domain's device has the host's tunnel address, which only the
        // controller's state names: any other local address is taken over when this
        // agent tunnels through WireGuard, and the first table recreates the device if
        // the address it names differs.
        let ours = dev.port == config.underlay.port()
            && (dev.local == *config.underlay.ip() || config.wireguard.is_some());
        match recorded {
            Some((bridge, settings))
                if ours
                    && dev.bridge_ifindex == bridge
                    && out.bridge.is_none_or(|(b, _)| b == bridge) =>
            {
                out.bridge = Some((bridge, settings));
                out.devices.push(dev);
            }
            _ => {
                if let Some(r) = recorded {
                    restore.push(r);
                }
                match dev.delete(nl) {
                    Ok(()) => out.removed.push(dev.name),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Bridges no adopted device sits on get their settings back now.
    let mut done = BTreeSet::new();
    for (bridge, settings) in restore {
        if out.bridge.is_some_and(|(b, _)| b == bridge) || !done.insert(bridge) {
            continue;
        }
        if let Err(e) = nl.set_bridge_settings(bridge, &settings) {
            tracing::warn!(bridge, error = %e, "cannot restore bridge settings");
        }
    }
    Ok(out)
}
