//! The per-domain VXLAN device: created on the host bridge as a port that only carries
//! the groups it is told to, deleted on shutdown, and swept up after a crash.

use std::net::Ipv4Addr;

use super::error::Error;
use super::link_msg::{self, DeviceStats, LinkInfo, PortFlags};
use super::socket::Netlink;

/// Prefix of every VXLAN device mcgate creates; [`VxlanDevice::remove_stale`] removes
/// devices with this prefix left by a predecessor that did not shut down cleanly.
pub const DEVICE_PREFIX: &str = "mcgvx";
/// IANA VXLAN port (RFC 7348 section 5).
pub const VXLAN_PORT: u16 = 4789;
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// The bridge-port settings of the VXLAN port. Nothing reaches the VXLAN port by
/// flooding (unknown unicast, broadcast, unregistered multicast), it learns nothing,
/// and it is never a multicast router port: only groups with a bridge MDB entry on the
/// port (see [`BridgeMdb`](super::BridgeMdb)) are forwarded to it, once the bridge sees
/// a querier. Then the VXLAN table picks the remote hosts.
const VXLAN_PORT_FLAGS: PortFlags = PortFlags {
    learning: false,
    unicast_flood: false,
    mcast_flood: false,
    bcast_flood: false,
    multicast_router: 0,
};

/// The name mcgate gives the device of `vni`: `mcgvx<vni>` (at most 13 characters).
pub fn device_name(vni: u32) -> String {
    format!("{DEVICE_PREFIX}{vni}")
}

/// How to create a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    /// Device name (at most 15 bytes); [`device_name`] by default.
    pub name: String,
    /// VXLAN network identifier, 1..=16777215: the domain's number.
    pub vni: u32,
    /// This host's underlay address, the source of every tunnelled packet.
    pub local: Ipv4Addr,
    /// UDP port, local and remote (4789 by default).
    pub port: u16,
    /// Underlay device to send through; `None` lets routing decide.
    pub underlay_ifindex: Option<u32>,
    /// Device MTU; `None` lets the kernel derive it from the underlay (underlay - 50).
    pub mtu: Option<u32>,
    /// Outer TTL; `None` uses the kernel's default.
    pub ttl: Option<u8>,
    /// Name of the host bridge the task links sit on.
    pub bridge: String,
}

impl VxlanConfig {
    /// A config with mcgate's defaults: name `mcgvx<vni>`, port 4789.
    pub fn new(vni: u32, local: Ipv4Addr, bridge: &str) -> Self {
        Self {
            name: device_name(vni),
            vni,
            local,
            port: VXLAN_PORT,
            underlay_ifindex: None,
            mtu: None,
            ttl: None,
            bridge: bridge.to_string(),
        }
    }
}

fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > IFNAME_MAX {
        return bad("Linux device names are at most 15 bytes");
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace() || b == b':')
    {
        return bad("it contains '/', ':', whitespace or NUL, or is '.'/'..'");
    }
    Ok(())
}

/// A VXLAN device that mcgate created (or found) on a host bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    /// Device name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// VNI.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Local underlay address.
    pub local: Ipv4Addr,
    /// Interface index of the bridge it is a port of.
    pub bridge_ifindex: u32,
}

impl VxlanDevice {
    /// Creates the device on `cfg.bridge`, sets its port flags, and brings it up. The
    /// device is created down and enslaved in the same request, so no frame crosses it
    /// before its flags are set. If any later step fails, the device is removed again.
    pub fn create(nl: &mut Netlink, cfg: &VxlanConfig) -> Result<Self, Error> {
        validate_name(&cfg.name)?;
        if cfg.vni == 0 || cfg.vni > 0x00ff_ffff {
            return Err(Error::InvalidVni(cfg.vni));
        }
        let bridge = nl.link_by_name(&cfg.bridge)?;
        if bridge.kind != "bridge" {
            return Err(Error::WrongKind {
                name: cfg.bridge.clone(),
                found: bridge.kind,
                wanted: "bridge",
            });
        }
        nl.request(
            &link_msg::new_vxlan(cfg, Some(bridge.ifindex)),
            &format!(
                "create VXLAN device {} (VNI {}) on bridge {}",
                cfg.name, cfg.vni, cfg.bridge
            ),
        )?;
        let link = nl.link_by_name(&cfg.name)?;
        let dev = Self {
            name: cfg.name.clone(),
            ifindex: link.ifindex,
            vni: cfg.vni,
            port: cfg.port,
            local: cfg.local,
            bridge_ifindex: bridge.ifindex,
        };
        let finish = |nl: &mut Netlink| -> Result<(), Error> {
            nl.request(
                &link_msg::set_port_flags(dev.ifindex, VXLAN_PORT_FLAGS),
                &format!("set bridge-port flags of {}", dev.name),
            )?;
            nl.request(
                &link_msg::set_up(dev.ifindex, true),
                &format!("bring {} up", dev.name),
            )
        };
        if let Err(e) = finish(nl) {
            let _ = nl.request(
                &link_msg::del_link(dev.ifindex),
                "remove a half-made device",
            );
            return Err(e);
        }
        Ok(dev)
    }

    /// An existing VXLAN device by name (e.g. to reconcile one made earlier).
    pub fn open(nl: &mut Netlink, name: &str) -> Result<Self, Error> {
        let link = nl.link_by_name(name)?;
        Self::from_link(link)
    }

    fn from_link(link: LinkInfo) -> Result<Self, Error> {
        let Some(x) = link.vxlan.filter(|_| link.kind == "vxlan") else {
            return Err(Error::WrongKind {
                name: link.name,
                found: link.kind,
                wanted: "VXLAN device",
            });
        };
        Ok(Self {
            ifindex: link.ifindex,
            vni: x.vni.unwrap_or(0),
            port: x.port.unwrap_or(VXLAN_PORT),
            local: x.local.unwrap_or(Ipv4Addr::UNSPECIFIED),
            bridge_ifindex: link.master.unwrap_or(0),
            name: link.name,
        })
    }

    /// Deletes the device; its VXLAN MDB entries and the bridge's entries on its port go
    /// with it. A device already gone is not an error.
    pub fn delete(&self, nl: &mut Netlink) -> Result<(), Error> {
        match nl.request(
            &link_msg::del_link(self.ifindex),
            &format!("delete {}", self.name),
        ) {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        }
    }

    /// The device's counters (IFLA_STATS64).
    pub fn stats(&self, nl: &mut Netlink) -> Result<DeviceStats, Error> {
        let link = nl.link_by_index(self.ifindex)?;
        link.stats.ok_or_else(|| Error::Malformed {
            op: format!("read counters of {}", self.name),
            detail: "the kernel sent no IFLA_STATS64".into(),
        })
    }

    /// VXLAN devices whose name starts with `prefix` ([`DEVICE_PREFIX`] for mcgate's).
    /// The prefix must be at least 3 characters so a typo cannot match every device.
    pub fn find_stale(nl: &mut Netlink, prefix: &str) -> Result<Vec<LinkInfo>, Error> {
        if prefix.len() < 3 {
            return Err(Error::InvalidName {
                name: prefix.to_string(),
                reason: "a stale-device prefix needs at least 3 characters",
            });
        }
        Ok(nl
            .links()?
            .into_iter()
            .filter(|l| l.kind == "vxlan" && l.name.starts_with(prefix))
            .collect())
    }

    /// Deletes what [`find_stale`](Self::find_stale) finds; returns the names removed.
    pub fn remove_stale(nl: &mut Netlink, prefix: &str) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for l in Self::find_stale(nl, prefix)? {
            match nl.request(
                &link_msg::del_link(l.ifindex),
                &format!("delete stale device {}", l.name),
            ) {
                Ok(()) => removed.push(l.name),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(device_name(16_777_215), "mcgvx16777215");
        assert!(validate_name(&device_name(16_777_215)).is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a-name-too-long-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        let c = VxlanConfig::new(42, Ipv4Addr::new(10, 0, 0, 1), "br0");
        assert_eq!((c.name.as_str(), c.port), ("mcgvx42", 4789));
    }
}
