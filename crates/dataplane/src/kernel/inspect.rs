//! A read-only view of everything the kernel path programmed for one device, for logs,
//! `/v1/stats` and debugging. iproute2 older than the VXLAN MDB feature cannot show the
//! VXLAN entries' destinations; this can.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use super::error::Error;
use super::link_msg::{DeviceStats, LinkInfo};
use super::mdb::{BridgeMdb, VxlanMdb};
use super::mdb_msg::VxlanMdbEntry;
use super::socket::Netlink;
use super::vxlan::VxlanDevice;

/// The device, its counters and both of its tables as the kernel holds them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The VXLAN device.
    pub device: LinkInfo,
    /// Its counters.
    pub stats: DeviceStats,
    /// Every VXLAN MDB record, including the (S, G) records the kernel derived from
    /// (*, G) source lists.
    pub vxlan_entries: Vec<VxlanMdbEntry>,
    /// The groups with a bridge entry on the VXLAN port.
    pub bridge_groups: BTreeSet<IpAddr>,
}

/// Reads what the kernel holds for `dev`.
pub fn inspect(nl: &mut Netlink, dev: &VxlanDevice) -> Result<Inspection, Error> {
    let device = nl.link_by_index(dev.ifindex)?;
    let stats = device.stats.unwrap_or_default();
    let mut vxlan_entries = VxlanMdb::new(dev).dump_all(nl)?;
    vxlan_entries.sort();
    let bridge_groups = BridgeMdb::new(dev).dump(nl)?;
    Ok(Inspection {
        device,
        stats,
        vxlan_entries,
        bridge_groups,
    })
}

impl fmt::Display for Inspection {
    /// One line per entry, in the style of `bridge mdb show`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.device;
        let s = &self.stats;
        writeln!(
            f,
            "dev {} ifindex {} tx {} pkts {} bytes dropped {} rx {} pkts {} bytes dropped {}",
            d.name,
            d.ifindex,
            s.tx_packets,
            s.tx_bytes,
            s.tx_dropped,
            s.rx_packets,
            s.rx_bytes,
            s.rx_dropped
        )?;
        for g in &self.bridge_groups {
            writeln!(f, "bridge port {} grp {g} permanent", d.name)?;
        }
        for e in &self.vxlan_entries {
            writeln!(f, "dev {} port {} {e} permanent", d.name, d.name)?;
        }
        Ok(())
    }
}
