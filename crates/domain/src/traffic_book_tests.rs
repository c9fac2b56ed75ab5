//! The book's rates and the view: rates from two reports of one session, none after a
//! restart or when stale, flows with their losses, kernel hosts' missing figures.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::BTreeMap;

use super::*;
use crate::SourceFilter;

const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

fn agent(host: &str, state: &str, dataplane: &str) -> AgentInfo {
    AgentInfo {
        host: host.into(),
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4789),
        subnet: None,
        links: Vec::new(),
        domains: vec!["d".into()],
        state: state.into(),
        last_seen_ms: 0,
        memberships: 0,
        dataplane: Some(dataplane.into()),
        public_key: String::new(),
        tunnel_address: None,
        zone: Some("a".into()),
        peers_down: Vec::new(),
        reported_down_by: Vec::new(),
        upstream: None,
        elected_for: Vec::new(),
    }
}

fn member(host: &str) -> HostMember {
    HostMember {
        host: host.into(),
        group: G.into(),
        filter: SourceFilter::any_source(),
    }
}

fn peer(host: &str, packets: u64) -> PeerCount {
    PeerCount {
        host: host.into(),
        packets,
        bytes: packets * 100,
    }
}

fn c(packets: u64) -> Count {
    Count {
        packets,
        bytes: packets * 100,
    }
}

/// A report of `session` at `uptime_ms` where h1 sent `n` to G, tunnelled to h2.
fn sender(session: u64, uptime_ms: u64, n: u64) -> TrafficReport {
    TrafficReport {
        session,
        uptime_ms,
        dataplane: "userspace".into(),
        missing: Vec::new(),
        tunnel_tx: c(n),
        tunnel_rx: c(0),
        drops: BTreeMap::new(),
        groups: vec![GroupCounts {
            domain: "d".into(),
            group: G,
            sent: c(n),
            delivered: c(0),
            tunnel_tx: vec![peer("h2", n)],
            tunnel_rx: Vec::new(),
            drops: BTreeMap::new(),
        }],
        links: Vec::new(),
        upstream: None,
    }
}

/// h2 received `n` from h1 and delivered them.
fn receiver(uptime_ms: u64, n: u64) -> TrafficReport {
    TrafficReport {
        session: 5,
        uptime_ms,
        dataplane: "userspace".into(),
        missing: Vec::new(),
        tunnel_tx: c(0),
        tunnel_rx: c(n),
        drops: BTreeMap::from([("no_members".to_string(), 3)]),
        groups: vec![GroupCounts {
            domain: "d".into(),
            group: G,
            sent: c(0),
            delivered: c(n),
            tunnel_tx: Vec::new(),
            tunnel_rx: vec![peer("h1", n)],
            drops: BTreeMap::new(),
        }],
        links: Vec::new(),
        upstream: None,
    }
}

fn hosts() -> Vec<AgentInfo> {
    vec![
        agent("h1", "up", "userspace"),
        agent("h2", "up", "userspace"),
    ]
}

#[test]
fn rates_come_from_two_reports_over_the_agents_clock() {
    let mut b = TrafficBook::new();
    b.record("h1", sender(1, 1_000, 0), 50);
    b.record("h2", receiver(1_000, 0), 60);
    let v = b.view("d", 9, &hosts(), &[member("h2")], 100);
    assert!(v.hosts[0].sent.is_none(), "one report gives no rate");
    // 2 s later on the agents' clocks (whatever the controller's clock says).
    b.record("h1", sender(1, 3_000, 2_000), 1_100);
    b.record("h2", receiver(3_000, 1_990), 1_100);
    let v = b.view("d", 9, &hosts(), &[member("h2")], 1_200);
    assert_eq!(v.revision, 9);
    let h1 = &v.hosts[0];
    assert_eq!(h1.sent.map(|r| r.pps), Some(1_000.0));
    assert_eq!(h1.sent.map(|r| r.bits_per_s), Some(800_000.0));
    assert_eq!(h1.tunnel_tx.map(|r| r.pps), Some(1_000.0));
    assert_eq!(h1.report_age_ms, Some(100));
    assert_eq!(h1.zone.as_deref(), Some("a"));
    assert_eq!(v.groups.len(), 1);
    let g = &v.groups[0];
    assert_eq!(g.senders.len(), 1);
    assert_eq!(g.senders[0].host, "h1");
    assert_eq!(g.receivers.len(), 1);
    assert_eq!(g.receivers[0].rate.map(|r| r.pps), Some(995.0));
    assert_eq!(g.flows.len(), 1);
    let f = &g.flows[0];
    assert_eq!((f.from.as_str(), f.to.as_str()), ("h1", "h2"));
    assert_eq!(f.received.map(|r| r.pps), Some(995.0));
    assert_eq!(f.lost_pps, Some(5.0));
    // The receiver's host-wide drops by reason.
    assert!(v.hosts[1].drops.is_empty(), "no new drops in the interval");
}

#[test]
fn a_new_session_or_counters_going_back_give_no_rate() {
    let mut b = TrafficBook::new();
    b.record("h1", sender(1, 1_000, 500), 0);
    b.record("h1", sender(2, 2_000, 600), 1_000);
    let v = b.view("d", 1, &hosts(), &[], 1_000);
    assert!(v.hosts[0].sent.is_none(), "a new session starts over");
    b.record("h1", sender(2, 3_000, 10), 2_000);
    let v = b.view("d", 1, &hosts(), &[], 2_000);
    assert!(v.hosts[0].sent.is_none(), "counters went back: a restart");
    b.record("h1", sender(2, 4_000, 110), 3_000);
    let v = b.view("d", 1, &hosts(), &[], 3_000);
    assert_eq!(v.hosts[0].sent.map(|r| r.pps), Some(100.0));
}

#[test]
fn stale_reports_show_no_rates_and_idle_groups_without_members_go() {
    let mut b = TrafficBook::new();
    b.record("h1", sender(1, 0, 0), 0);
    b.record("h1", sender(1, 1_000, 100), 1_000);
    assert_eq!(b.view("d", 1, &hosts(), &[], 1_000).groups.len(), 1);
    let v = b.view("d", 1, &hosts(), &[], 1_000 + STALE_MS + 1);
    assert!(v.hosts[0].sent.is_none());
    assert!(v.groups.is_empty(), "no members and no fresh traffic");
    // An idle interval: the group stays only while it has members.
    b.record("h1", sender(1, 2_000, 100), 2_000);
    assert!(b.view("d", 1, &hosts(), &[], 2_000).groups.is_empty());
    assert_eq!(
        b.view("d", 1, &hosts(), &[member("h2")], 2_000)
            .groups
            .len(),
        1
    );
}

#[test]
fn kernel_hosts_show_missing_figures_as_null_never_zero() {
    let mut b = TrafficBook::new();
    let kernel = |uptime_ms, n| TrafficReport {
        dataplane: "kernel".into(),
        missing: vec![
            "sent".into(),
            "delivered".into(),
            "tunnel_tx_per_host".into(),
            "tunnel_rx_per_host".into(),
        ],
        groups: Vec::new(),
        tunnel_rx: c(n),
        ..receiver(uptime_ms, n)
    };
    b.record("h1", sender(1, 0, 0), 0);
    b.record("h2", kernel(0, 0), 0);
    b.record("h1", sender(1, 1_000, 100), 1_000);
    b.record("h2", kernel(1_000, 100), 1_000);
    let hosts = vec![
        agent("h1", "up", "userspace"),
        agent("h2", "expired", "kernel"),
    ];
    let v = b.view("d", 1, &hosts, &[member("h2")], 1_000);
    let h2 = &v.hosts[1];
    assert_eq!(h2.state, "expired");
    assert!(h2.sent.is_none() && h2.delivered.is_none());
    assert_eq!(h2.tunnel_rx.map(|r| r.pps), Some(100.0));
    assert_eq!(h2.missing.len(), 4);
    let g = &v.groups[0];
    assert!(
        g.receivers[0].rate.is_none(),
        "the kernel counts no delivery per group"
    );
    assert!(g.flows[0].received.is_none() && g.flows[0].lost_pps.is_none());
    assert_eq!(g.flows[0].sent.map(|r| r.pps), Some(100.0));
}

#[test]
fn forgotten_hosts_leave_the_book() {
    let mut b = TrafficBook::new();
    b.record("h1", sender(1, 0, 0), 0);
    b.record("h2", receiver(0, 0), 0);
    b.forget("h1");
    assert_eq!(b.len(), 1);
    b.retain(|h| h != "h2");
    assert!(b.is_empty());
}

fn gateway_report(uptime_ms: u64, packets: u64) -> TrafficReport {
    TrafficReport {
        upstream: Some(UpstreamReport {
            interface: "up0".into(),
            groups: vec!["233.252.0.0/24".parse().expect("net")],
            present: true,
            sources: vec![UpstreamSource {
                group: Ipv4Addr::new(233, 252, 0, 7),
                source: Ipv4Addr::new(192, 0, 2, 1),
                packets,
                bytes: packets * 1000,
            }],
        }),
        ..receiver(uptime_ms, 0)
    }
}

#[test]
fn upstream_sources_are_listed_while_their_counters_grow_and_a_while_after() {
    let mut b = TrafficBook::new();
    b.record("h1", receiver(0, 0), 0);
    assert!(b.upstream_gateways(0).is_empty());
    b.record("gw", gateway_report(0, 0), 0);
    let gw = b.upstream_gateways(0);
    assert_eq!(gw.len(), 1);
    assert_eq!(gw[0].host, "gw");
    assert_eq!(gw[0].interface, "up0");
    assert!(gw[0].sources.is_empty(), "nothing arrived yet");
    b.record("gw", gateway_report(1_000, 50), 1_000);
    let src = (Ipv4Addr::new(233, 252, 0, 7), Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(b.upstream_gateways(1_000)[0].sources, [src]);
    // The source stops: still listed for the hold, then gone; the gateway stays.
    for t in 2..=11 {
        b.record("gw", gateway_report(t * 1_000, 50), t * 1_000);
    }
    assert_eq!(b.upstream_gateways(11_000)[0].sources, [src]);
    b.record("gw", gateway_report(12_000, 50), 12_000);
    assert!(b.upstream_gateways(12_000)[0].sources.is_empty());
    // A gateway that stops reporting is no gateway.
    assert!(b.upstream_gateways(12_000 + STALE_MS + 1).is_empty());
}
