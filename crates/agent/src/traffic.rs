//! The traffic report the agent sends the controller every second
//! (`POST /v1/agents/{host}/traffic`, [`TrafficReport`]): the data plane's cumulative
//! counters per (domain, group) and per remote host, and the links' querier state.
//!
//! Pure: the driver passes the counters, the view and the clock reading. The data plane
//! counts per group and per peer address; this names the domain and the host:
//! - a group is counted in every domain of this host that knows it (members or static
//!   sources); one no domain knows (a sender nobody listens to) in every domain of the
//!   host, so a sender shows up before its first receiver;
//! - a peer address is a host of that domain whose VXLAN endpoint, WireGuard endpoint or
//!   tunnel address it is; addresses of no peer (a host that left) are left out of the
//!   per-host lists but stay in the group's totals.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use mcgate_dataplane::counters::{Counter, DataplaneStats, Drops, GroupCounters};
use mcgate_domain::api::DomainState;
use mcgate_domain::traffic::{
    Count, GroupCounts, LinkState, MAX_UPSTREAM_SOURCES, PeerCount, TrafficReport, UpstreamReport,
    UpstreamSource,
};

use crate::view::{LinkView, UpstreamView};

/// One other host of a domain, by the addresses its traffic comes from and goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerAddrs {
    /// Host name.
    pub host: String,
    /// Its VXLAN endpoint.
    pub underlay: Option<SocketAddrV4>,
    /// Its WireGuard endpoint.
    pub wireguard: Option<SocketAddrV4>,
    /// Its address inside the tunnel.
    pub tunnel_address: Option<Ipv4Addr>,
}

/// One domain of this host, as the report needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainInputs {
    /// Name.
    pub name: String,
    /// The other hosts.
    pub peers: Vec<PeerAddrs>,
    /// Groups with members anywhere in the domain, or static sources.
    pub groups: BTreeSet<Ipv4Addr>,
}

/// The domains of this host, as the report needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficInputs {
    /// Every domain of the host.
    pub domains: Vec<DomainInputs>,
}

impl TrafficInputs {
    /// From the controller's view of the host's domains; `me`: this host's name.
    pub fn of<'a>(domains: impl Iterator<Item = &'a DomainState>, me: &str) -> Self {
        let domains = domains
            .map(|d| DomainInputs {
                name: d.domain.name.clone(),
                peers: d
                    .peers
                    .iter()
                    .filter(|p| p.host != me)
                    .map(|p| PeerAddrs {
                        host: p.host.clone(),
                        underlay: Some(p.underlay),
                        wireguard: Some(p.wireguard),
                        tunnel_address: Some(p.tunnel_address).filter(|a| !a.is_unspecified()),
                    })
                    .collect(),
                // The data planes count IPv4 groups only.
                groups: d
                    .members
                    .iter()
                    .map(|m| m.group)
                    .chain(d.static_sources.iter().map(|s| s.group))
                    .filter_map(|g| match g {
                        std::net::IpAddr::V4(g) => Some(g),
                        std::net::IpAddr::V6(_) => None,
                    })
                    .collect(),
            })
            .collect();
        Self { domains }
    }
}

/// Figures the kernel data plane does not count: the kernel keeps no per-group
/// counters for bridge and VXLAN forwarding, only per device.
pub const KERNEL_MISSING: [&str; 4] = [
    "sent",
    "delivered",
    "tunnel_tx_per_host",
    "tunnel_rx_per_host",
];

fn count(c: Counter) -> Count {
    Count {
        packets: c.packets,
        bytes: c.bytes,
    }
}

fn drops(d: &Drops) -> BTreeMap<String, u64> {
    d.iter().map(|(r, n)| (r.as_str().to_string(), n)).collect()
}

/// Per-host counts of `list` (keyed by an address) for the peers `name` recognises.
fn per_host<K: Copy>(
    list: &[(K, Counter)],
    peers: &[PeerAddrs],
    name: impl Fn(&PeerAddrs, K) -> bool,
) -> Vec<PeerCount> {
    let mut by_host: BTreeMap<&str, Count> = BTreeMap::new();
    for (k, c) in list {
        if let Some(p) = peers.iter().find(|p| name(p, *k)) {
            let e = by_host.entry(&p.host).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
        }
    }
    by_host
        .into_iter()
        .map(|(host, c)| PeerCount {
            host: host.to_string(),
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect()
}

fn group_counts(d: &DomainInputs, group: Ipv4Addr, g: &GroupCounters) -> GroupCounts {
    GroupCounts {
        domain: d.name.clone(),
        group,
        sent: count(g.rx_local),
        delivered: count(g.tx_local),
        tunnel_tx: per_host(&g.tx_tunnel_to, &d.peers, |p, dst| {
            p.underlay == Some(dst) || p.wireguard == Some(dst)
        }),
        tunnel_rx: per_host(&g.rx_tunnel_from, &d.peers, |p, src| {
            p.underlay.map(|u| *u.ip()) == Some(src) || p.tunnel_address == Some(src)
        }),
        drops: drops(&g.drops),
    }
}

fn link_state(l: &LinkView) -> LinkState {
    LinkState {
        name: l.name.clone(),
        address: l.address,
        querier: l.querier,
        igmp_version: l.igmp_version,
        groups: l.groups.len(),
    }
}

/// The upstream interface's part of the report: its ranges and the (group, source)
/// pairs the data plane counted arriving on it.
fn upstream_report(u: &UpstreamView, stats: &DataplaneStats) -> UpstreamReport {
    let sources = stats
        .links
        .get(&u.interface)
        .map(|l| l.sources.as_slice())
        .unwrap_or_default();
    UpstreamReport {
        interface: u.interface.clone(),
        groups: u.groups.iter().filter_map(|g| g.parse().ok()).collect(),
        present: u.present,
        sources: sources
            .iter()
            .take(MAX_UPSTREAM_SOURCES)
            .map(|((group, source), c)| UpstreamSource {
                group: *group,
                source: *source,
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect(),
    }
}

/// The report of `session` from the data plane's `stats`, read at `uptime_ms` on the
/// agent's monotonic clock; `upstream`: the gateway's upstream interface, if any.
pub fn report(
    inputs: &TrafficInputs,
    links: &[LinkView],
    upstream: Option<&UpstreamView>,
    stats: &DataplaneStats,
    session: u64,
    uptime_ms: u64,
) -> TrafficReport {
    let mut groups = Vec::new();
    // The traffic report is IPv4 only (`GroupCounts::group`): IPv6 groups are counted
    // in `/metrics`, not reported to the controller.
    for (group, g) in &stats.groups {
        let IpAddr::V4(group) = *group else {
            continue;
        };
        let group = &group;
        let known: Vec<&DomainInputs> = inputs
            .domains
            .iter()
            .filter(|d| d.groups.contains(group))
            .collect();
        let domains = if known.is_empty() {
            inputs.domains.iter().collect()
        } else {
            known
        };
        groups.extend(domains.into_iter().map(|d| group_counts(d, *group, g)));
    }
    groups.truncate(mcgate_domain::traffic::MAX_REPORT_GROUPS);
    let missing = if stats.name == "kernel" {
        KERNEL_MISSING.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    TrafficReport {
        session,
        uptime_ms,
        dataplane: stats.name.to_string(),
        missing,
        tunnel_tx: count(stats.tunnel_tx),
        tunnel_rx: count(stats.tunnel_rx),
        drops: drops(&stats.drops),
        groups,
        links: links.iter().map(link_state).collect(),
        upstream: upstream.map(|u| upstream_report(u, stats)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_dataplane::counters::DropReason;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const LONELY: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);

    fn peer(host: &str, last: u8) -> PeerAddrs {
        PeerAddrs {
            host: host.into(),
            underlay: Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 4789)),
            wireguard: Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 51820)),
            tunnel_address: Some(Ipv4Addr::new(100, 64, 0, last)),
        }
    }

    fn inputs() -> TrafficInputs {
        TrafficInputs {
            domains: vec![
                DomainInputs {
                    name: "a".into(),
                    peers: vec![peer("h2", 2), peer("h3", 3)],
                    groups: [G].into(),
                },
                DomainInputs {
                    name: "b".into(),
                    peers: vec![peer("h3", 3)],
                    groups: BTreeSet::new(),
                },
            ],
        }
    }

    fn counter(packets: u64) -> Counter {
        Counter {
            packets,
            bytes: packets * 100,
        }
    }

    fn stats() -> DataplaneStats {
        let mut g = GroupCounters {
            rx_local: counter(10),
            tx_local: counter(4),
            tx_tunnel_to: vec![
                (
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4789),
                    counter(10),
                ),
                (
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 51820),
                    counter(7),
                ),
                (
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 4789),
                    counter(1),
                ),
            ],
            rx_tunnel_from: vec![
                (Ipv4Addr::new(10, 0, 0, 2), counter(3)),
                (Ipv4Addr::new(100, 64, 0, 3), counter(2)),
            ],
            ..GroupCounters::default()
        };
        g.drops.add(DropReason::NoMembers, 5);
        let mut s = DataplaneStats {
            name: "userspace",
            ..DataplaneStats::default()
        };
        s.groups.insert(G.into(), g);
        // IPv6 groups are left out of the report.
        s.groups
            .insert("ff3e::8000:1".parse().unwrap(), GroupCounters::default());
        s.groups.insert(
            LONELY.into(),
            GroupCounters {
                rx_local: counter(1),
                ..GroupCounters::default()
            },
        );
        s
    }

    #[test]
    fn a_group_is_counted_in_the_domains_that_know_it_with_per_host_splits() {
        let r = report(&inputs(), &[], None, &stats(), 7, 1500);
        assert_eq!(
            (r.session, r.uptime_ms, r.dataplane.as_str()),
            (7, 1500, "userspace")
        );
        let g: Vec<_> = r.groups.iter().filter(|g| g.group == G).collect();
        assert_eq!(g.len(), 1, "only domain a knows the group");
        let g = g[0];
        assert_eq!(g.domain, "a");
        assert_eq!(g.sent.packets, 10);
        assert_eq!(g.delivered.packets, 4);
        let tx: Vec<_> = g
            .tunnel_tx
            .iter()
            .map(|p| (p.host.as_str(), p.packets))
            .collect();
        // The copy to an address of no peer is left out of the per-host list.
        assert_eq!(tx, [("h2", 10), ("h3", 7)]);
        let rx: Vec<_> = g
            .tunnel_rx
            .iter()
            .map(|p| (p.host.as_str(), p.packets))
            .collect();
        assert_eq!(rx, [("h2", 3), ("h3", 2)]);
        assert_eq!(g.drops.get("no_members"), Some(&5));
        assert!(r.missing.is_empty());
    }

    #[test]
    fn a_group_no_domain_knows_is_counted_in_every_domain() {
        let r = report(&inputs(), &[], None, &stats(), 1, 0);
        let lonely: Vec<_> = r
            .groups
            .iter()
            .filter(|g| g.group == LONELY)
            .map(|g| g.domain.as_str())
            .collect();
        assert_eq!(lonely, ["a", "b"]);
    }

    #[test]
    fn the_kernel_plane_names_what_it_does_not_count() {
        let s = DataplaneStats {
            name: "kernel",
            tunnel_tx: counter(9),
            ..DataplaneStats::default()
        };
        let r = report(&inputs(), &[], None, &s, 1, 0);
        assert_eq!(r.missing, KERNEL_MISSING);
        assert_eq!(r.tunnel_tx.packets, 9);
        assert!(r.groups.is_empty());
    }
}
