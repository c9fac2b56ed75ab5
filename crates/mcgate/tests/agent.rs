//! End-to-end tests of `mcgate agent` and its data plane: three or more hosts in network
//! namespaces whose underlay carries no multicast, the real controller, real kernel
//! receivers and senders. See `agent_support` for the topology.
//!
//! Every test runs against the data plane named by `MCGATE_TEST_DATAPLANE` (default
//! `userspace`).

mod agent_support;
mod support;

use std::time::Duration;

use agent_support::Topo;

const G1: &str = "233.252.0.5";
const G2: &str = "233.252.0.6";

/// Three hosts with two tasks each, the controller, a domain over every host, agents.
fn deployment(igmp: &str, static_sources: bool) -> Topo {
    let mut t = Topo::new(3, 2);
    t.start_controller();
    t.create_domain("d1", 4100, igmp, static_sources);
    t.start_agents();
    // Every agent has the domain (a snapshot with its peers) before traffic starts.
    let ok = t.wait_until(Duration::from_secs(10), || {
        (0..3).all(|h| {
            t.stats(h)
                .is_some_and(|s| s.contains("\"vni\":4100") && s.contains("\"registered\""))
        })
    });
    assert!(ok, "agents did not get the domain:\n{}", t.logs());
    t
}

/// Waits until host `h`'s agent reports members of `group` on some link.
fn wait_member(t: &Topo, h: usize, group: &str) {
    let needle = format!("\"group\":\"{group}\"");
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.stats(h).is_some_and(|s| {
            s.split("\"groups\":")
                .skip(1)
                .any(|part| part.contains(&needle))
        })
    });
    assert!(
        ok,
        "h{} never learned a member of {group}:\n{}",
        h + 1,
        t.logs()
    );
}

#[test]
fn v2_and_v3_receivers_get_every_packet_once_across_hosts() {
    let mut t = deployment("v3", false);
    // h2/tk1 joins with IGMPv3, h3/tk1 is forced to IGMPv2, h1/tk2 is a local member.
    t.hosts[2].tasks[0]
        .ns
        .run(&["sysctl", "-qw", "net.ipv4.conf.eth0.force_igmp_version=2"]);
    let r2 = t.receiver(1, 0, G1, 8.0, "any", &[]);
    let r3 = t.receiver(2, 0, G1, 8.0, "any", &[]);
    let r1 = t.receiver(0, 1, G1, 8.0, "any", &[]);
    for h in 0..3 {
        wait_member(&t, h, G1);
    }
    // Remote members reach h1's table through the controller.
    std::thread::sleep(Duration::from_millis(500));
    // TTL 1, like iperf's default: it must still cross hosts.
    let s = t.sender(0, 0, G1, 200, 0.005, 1, 200);
    let out = t.wait_proc(s, Duration::from_secs(10));
    assert!(out.contains("sent=200"), "{out}");
    let (a, b, c) = (
        t.received(r2, Duration::from_secs(10)),
        t.received(r3, Duration::from_secs(10)),
        t.received(r1, Duration::from_secs(10)),
    );
    for (name, r) in [("h2 v3", &a), ("h3 v2", &b), ("h1 local", &c)] {
        assert_eq!(r.unique, 200, "{name} receiver: {r:?}\n{}", t.logs());
        assert_eq!(r.dups, 0, "{name} receiver got duplicates: {r:?}");
        assert_eq!(r.ttls, vec![1], "{name}: TTL must arrive unchanged: {r:?}");
    }
    // The sender's own link never gets its packets back; the non-member task on h2
    // gets nothing.
    assert_eq!(
        t.metric(
            0,
            "mcgate_agent_link_packets",
            &[("link", "tk1"), ("direction", "tx")]
        ),
        0
    );
    assert_eq!(
        t.metric(
            1,
            "mcgate_agent_link_packets",
            &[("link", "tk2"), ("direction", "tx")]
        ),
        0
    );
    // One tunnelled copy per remote host with members: 2 x 200.
    let sent = t.metric(0, "mcgate_agent_tunnel_packets", &[("direction", "tx")]);
    assert_eq!(sent, 400, "{}", t.metrics(0).unwrap_or_default());
}

#[test]
fn hosts_without_members_get_nothing_and_oversize_packets_are_dropped() {
    let mut t = deployment("v3", false);
    let r2 = t.receiver(1, 0, G2, 6.0, "any", &[]);
    wait_member(&t, 1, G2);
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.stats(0).is_some_and(|s| s.contains("\"groups\":1"))
    });
    assert!(ok, "h1 never heard of h2's member:\n{}", t.logs());
    let s = t.sender(0, 0, G2, 100, 0.005, 1, 100);
    t.wait_proc(s, Duration::from_secs(10));
    // 1472 bytes of payload: a 1514-byte frame does not fit a 1500-byte underlay once
    // wrapped in 50 bytes of VXLAN: dropped and counted, never fragmented.
    let big = t.sender(0, 0, G2, 10, 0.01, 1, 1472);
    t.wait_proc(big, Duration::from_secs(10));
    let r = t.received(r2, Duration::from_secs(10));
    assert_eq!(r.unique, 100, "{r:?}\n{}", t.logs());
    assert!(
        t.wait_until(Duration::from_secs(2), || t.metric(
            0,
            "mcgate_agent_dataplane_drops",
            &[("reason", "too_big")]
        ) == 10),
        "{}",
        t.metrics(0).unwrap_or_default()
    );
    // h3 has no member: no tunnelled packet ever reached it.
    assert_eq!(
        t.metric(2, "mcgate_agent_tunnel_packets", &[("direction", "rx")]),
        0
    );
    assert_eq!(
        t.metric(0, "mcgate_agent_tunnel_packets", &[("direction", "tx")]),
        100
    );
}
