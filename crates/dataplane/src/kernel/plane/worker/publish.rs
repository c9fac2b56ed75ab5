//! Publishing the kernel data plane's counters and state under the relay's names.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::super::super::link_msg::DeviceStats;
use super::super::{DeviceStatus, KernelStatus, WireguardStatus};
use super::{Domain, Worker};
use crate::counters::{Counter, DataplaneStats, DropReason};

fn add(a: &mut DeviceStats, b: &DeviceStats) {
    a.rx_packets += b.rx_packets;
    a.tx_packets += b.tx_packets;
    a.rx_bytes += b.rx_bytes;
    a.tx_bytes += b.tx_bytes;
    a.rx_errors += b.rx_errors;
    a.tx_errors += b.tx_errors;
    a.rx_dropped += b.rx_dropped;
    a.tx_dropped += b.tx_dropped;
}

impl Worker {
    pub(super) fn retire(&mut self, d: &Domain) {
        if let Ok(s) = d.dev.stats(&mut self.nl) {
            add(&mut self.retired, &s);
        }
    }

    pub(super) fn publish(&mut self) {
        let mut total = self.retired;
        let mut devices = Vec::new();
        for (vni, d) in &self.domains {
            let s = d.dev.stats(&mut self.nl).unwrap_or_default();
            add(&mut total, &s);
            devices.push(DeviceStatus {
                name: d.dev.name.clone(),
                vni: *vni,
                memberships: d.programmed.as_ref().map_or(0, BTreeSet::len),
                groups: d.programmed.as_ref().map_or(0, |m| {
                    m.iter()
                        .map(|x| x.group)
                        .collect::<BTreeSet<IpAddr>>()
                        .len()
                }),
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                tx_dropped: s.tx_dropped,
            });
        }
        let mut stats = DataplaneStats {
            name: "kernel",
            underlay_mtu: self.config.underlay_mtu,
            tunnel_rx: Counter {
                packets: total.rx_packets,
                bytes: total.rx_bytes,
            },
            tunnel_tx: Counter {
                packets: total.tx_packets,
                bytes: total.tx_bytes,
            },
            tables_installed: self.tables,
            ..DataplaneStats::default()
        };
        stats.drops.add(DropReason::NoMembers, total.tx_dropped);
        stats.drops.add(DropReason::SendError, total.tx_errors);
        stats.drops.add(DropReason::QueueFull, total.rx_dropped);
        let (not_peer, from_tasks) = self.filter.drops;
        stats
            .drops
            .add(DropReason::UnknownPeer, not_peer + from_tasks);
        let (router_messages, per_link) = self.host_ports.drops(&mut self.nl);
        stats.drops.add(DropReason::RouterMessage, router_messages);
        for (link, n) in per_link {
            stats
                .links
                .entry(link)
                .or_default()
                .drops
                .add(DropReason::RouterMessage, n);
        }
        let status = KernelStatus {
            bridge: self.bridge.as_ref().map(|b| b.name.clone()),
            bridge_querier: self.bridge.as_ref().is_some_and(|b| b.applied.is_some()),
            igmp_version: self
                .bridge
                .as_ref()
                .and_then(|b| b.applied.as_ref().map(|q| q.0.number())),
            devices,
            reconciles: self.reconciles,
            failures: self.failures,
            last_error: self.last_error.clone(),
            stale_removed: Vec::new(),
            adopted: Vec::new(),
            holding_previous_tables: self.holding,
            wireguard: WireguardStatus::default(),
            filter: self.filter.applied.is_some(),
            filter_dropped_not_peer: not_peer,
            filter_dropped_from_tasks: from_tasks,
        };
        let mut g = match self.published.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // What happened at start stays reported.
        let stale = std::mem::take(&mut g.1.stale_removed);
        let adopted = std::mem::take(&mut g.1.adopted);
        let wireguard = WireguardStatus {
            device: self.wg.as_ref().map(|d| d.name.clone()),
            tunnel_address: self.wg.as_ref().and(self.tunnels.local),
            peers: self.wg.as_ref().map_or(0, |d| d.peers().count()),
            ..std::mem::take(&mut g.1.wireguard)
        };
        *g = (
            stats,
            KernelStatus {
                stale_removed: stale,
                adopted,
                wireguard,
                ..status
            },
        );
    }
}
