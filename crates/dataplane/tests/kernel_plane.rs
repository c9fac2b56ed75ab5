//! The kernel data plane (`kernel::plane::KernelPlane`) against the real kernel, in
//! network namespaces (root only), on hosts built like mcgate's lab: `br0` holds the
//! host's address and carries the underlay through an `uplink` port, snooping is off
//! and no port floods multicast (as the userspace relay wants it). The plane must turn
//! that into snooping-based local delivery plus selective VXLAN copies, and put the
//! bridge back as it found it.
//!
//! Every namespace is named `mcgk-<pid>-<n>-<role>` and removed when the test ends,
//! with the processes it started (by PID), even on failure.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use mcgate_dataplane::kernel::{Netlink, VxlanDevice, device_name, inspect};
use mcgate_dataplane::{Dataplane, DropReason, LinkSpec};
use mcgate_testbed::lab::{PORT, SENDER};
use mcgate_testbed::{Lab, in_netns, wait_until};
use mcgate_wire::{IgmpSettings, Version};

mod kernel_support;
use kernel_support::*;

#[test]
fn plane_delivers_locally_and_across_and_puts_the_bridge_back() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let hosts = lab_hosts(&mut lab, 2);
    // h0's bridge ports get the highest addresses there are, so br0 (which takes its
    // lowest port's address unless one was set) would take the VXLAN device's.
    for (i, port) in ["uplink", "tk1", "tk2"].iter().enumerate() {
        let mac = format!("fe:ff:ff:ff:ff:f{i}");
        lab.ip(&hosts[0].ns, &["link", "set", port, "address", &mac]);
    }
    let br0_mac = |nl: &mut Netlink| nl.link_by_name("br0").unwrap().address;
    let (p1, mut nl1) = start_plane(&hosts[0]);
    let mac_before = br0_mac(&mut nl1);
    assert_eq!(mac_before, Some([0xfe, 0xff, 0xff, 0xff, 0xff, 0xf0]));
    let (p2, mut nl2) = start_plane(&hosts[1]);
    // h0 has a local member on tk2, h1 one on tk1; h1's tk2 wants another group.
    let members = [(0, G), (1, G), (1, G_OTHER)];
    p1.set_table(table(&hosts, 0, &members));
    p2.set_table(table(&hosts, 1, &members));
    let ready = wait_until(Duration::from_secs(5), || {
        [&p1, &p2].iter().all(|p| {
            p.kernel_status()
                .is_some_and(|s| s.bridge_querier && s.devices.len() == 1 && s.reconciles > 0)
        })
    });
    assert!(
        ready,
        "planes not ready: {:?} {:?}",
        p1.kernel_status(),
        p2.kernel_status()
    );
    // The status is published once the bridges' queriers are on: the kernel counts them
    // present a second (the startup response interval) after that.
    let queriers_on = Instant::now();
    let st = p1.kernel_status().expect("kernel status");
    assert_eq!(st.bridge.as_deref(), Some("br0"));
    // Neighbours' ARP entries for the host stay right: the VXLAN port did not move it.
    assert_eq!(br0_mac(&mut nl1), mac_before, "br0 changed its MAC address");
    assert_eq!(st.devices[0].name, device_name(VNI));
    // Snooping on with the bridge's own querier, IGMPv3.
    let b = nl1.bridge_multicast("br0").expect("bridge state");
    assert!(
        b.snooping && b.own_querier && b.igmp_version == Some(3),
        "{b:?}"
    );
    // The underlay is br0 itself: the device gets underlay MTU - 50 and the bridge keeps
    // its MTU.
    let dev = VxlanDevice::open(&mut nl1, &device_name(VNI)).expect("device");
    assert_eq!(nl1.link_by_index(dev.ifindex).unwrap().mtu, Some(8951));
    assert_eq!(nl1.link_by_name("br0").unwrap().mtu, Some(9001));
    let seen = inspect(&mut nl1, &dev).expect("inspect");
    assert_eq!(
        seen.bridge_groups,
        [G.into(), G_OTHER.into()].into(),
        "{seen}"
    );
    assert_eq!(seen.vxlan_entries.len(), 2, "{seen}");
    assert!(
        seen.vxlan_entries.iter().all(|e| e.dst == hosts[1].ip),
        "{seen}"
    );

    let local = lab.receiver(&hosts[0].tasks[1].0, &[G]);
    let remote = lab.receiver(&hosts[1].tasks[0].0, &[G]);
    let other = lab.receiver(&hosts[1].tasks[1].0, &[G_OTHER]);
    // The bridges snooped the joins, and count their queriers as present.
    let snooped = |h: usize, port: &str, g: Ipv4Addr| {
        let out = lab.exec(&hosts[h].ns, &["bridge", "mdb", "show"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("port {port} grp {g}"))
    };
    let joined = wait_until(Duration::from_secs(10), || {
        snooped(0, "tk2", G) && snooped(1, "tk1", G) && snooped(1, "tk2", G_OTHER)
    });
    assert!(joined, "the bridges never snooped the joins");
    std::thread::sleep(Duration::from_secs(1).saturating_sub(queriers_on.elapsed()));
    let (t0, a0) = &hosts[0].tasks[0];
    lab.send(t0, a0, G, "one", 5);
    let got = wait_until(Duration::from_secs(5), || {
        local.count("one") >= 5 && remote.count("one") >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        got,
        "local {} remote {} of 5: {:?} {:?}",
        local.count("one"),
        remote.count("one"),
        p1.stats(),
        p2.stats()
    );
    assert_eq!(local.count("one"), 5, "exactly one copy locally");
    assert_eq!(remote.count("one"), 5, "exactly one copy remotely");
    assert_eq!(other.lines().len(), 0, "a task that did not join got data");
    // The other way: h1 sends G_OTHER, which h0 does not want: it stays on h1.
    let (t1, a1) = &hosts[1].tasks[0];
    lab.send(t1, a1, G_OTHER, "two", 5);
    assert!(wait_until(Duration::from_secs(5), || other.count("two") >= 5));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(local.count("two"), 0);
    // And G from h1 reaches h0's member.
    lab.send(t1, a1, G, "three", 5);
    assert!(wait_until(Duration::from_secs(5), || local.count("three") >= 5));

    // Counters under the relay's names, once published (every second).
    assert!(wait_until(Duration::from_secs(3), || {
        p1.stats().tunnel_tx.packets >= 5 && p2.stats().tunnel_rx.packets >= 5
    }));
    assert_eq!(p1.stats().name, "kernel");

    // h1's members leaving (per the controller) empties h0's tables.
    p1.set_table(table(&hosts, 0, &[(0, G)]));
    assert!(wait_until(Duration::from_secs(3), || {
        inspect(&mut nl1, &dev)
            .is_ok_and(|s| s.vxlan_entries.is_empty() && s.bridge_groups.is_empty())
    }));

    // A static member gets a permanent entry on its port (it need not answer IGMP);
    // it goes again with the member, and on shutdown.
    let mdb = |ns: &str| {
        String::from_utf8_lossy(&lab.exec(ns, &["bridge", "mdb", "show"]).stdout).into_owned()
    };
    let static_entry = "port tk1 grp 233.252.7.3 permanent";
    p1.set_static_members([("tk1".to_string(), Ipv4Addr::new(233, 252, 7, 3))].into());
    assert!(
        wait_until(Duration::from_secs(3), || mdb(&hosts[0].ns)
            .contains(static_entry)),
        "{}",
        mdb(&hosts[0].ns)
    );
    p1.set_static_members(BTreeSet::new());
    assert!(
        wait_until(Duration::from_secs(3), || !mdb(&hosts[0].ns)
            .contains(static_entry)),
        "{}",
        mdb(&hosts[0].ns)
    );
    p1.set_static_members([("tk2".to_string(), Ipv4Addr::new(233, 252, 7, 4))].into());
    assert!(wait_until(Duration::from_secs(3), || mdb(&hosts[0].ns)
        .contains("port tk2 grp 233.252.7.4 permanent")));

    // Shutdown removes the device, the static entries, and restores snooping off,
    // querier off.
    p1.shutdown();
    assert!(
        !mdb(&hosts[0].ns).contains("233.252.7.4"),
        "{}",
        mdb(&hosts[0].ns)
    );
    assert!(
        VxlanDevice::find_stale(&mut nl1, "mcgvx")
            .unwrap()
            .is_empty()
    );
    let b = nl1.bridge_multicast("br0").expect("bridge state");
    assert!(!b.snooping && !b.own_querier, "{b:?}");
    drop(p2);
    assert!(
        VxlanDevice::find_stale(&mut nl2, "mcgvx")
            .unwrap()
            .is_empty()
    );
}

const QUERIER: &str = r#"
import socket, struct, sys, time
src, count = sys.argv[1], int(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
# An IGMPv2 general query (RFC 2236), max response time 10 s.
q = struct.pack("!BBH4s", 0x11, 100, 0, bytes(4))
q = struct.pack("!BBH4s", 0x11, 100, csum(q), bytes(4))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
for i in range(count):
    s.sendto(q, ("224.0.0.1", 0))
    time.sleep(0.1)
"#;

#[test]
fn a_task_sending_queries_never_becomes_a_router_port_or_the_querier() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let hosts = lab_hosts(&mut lab, 1);
    let (plane, mut nl) = start_plane(&hosts[0]);
    plane.set_table(table(&hosts, 0, &[(0, G)]));
    assert!(wait_until(Duration::from_secs(5), || {
        plane.kernel_status().is_some_and(|s| s.bridge_querier)
    }));
    let tk1 = nl.link_by_name("tk1").expect("tk1").ifindex;
    // A task queries from a low address, as a misbehaving container or a router daemon
    // in one would; every query wins the election (RFC 3376 6.6.2) unless dropped.
    let (t, addr) = &hosts[0].tasks[0];
    lab.exec(t, &["python3", "-c", QUERIER, addr, "10"]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            plane.stats().drops.get(DropReason::RouterMessage) >= 10
        }),
        "queries not counted: {:?}\n{:?}\n{}",
        plane.stats(),
        plane.kernel_status(),
        String::from_utf8_lossy(
            &lab.exec(
                &hosts[0].ns,
                &["tc", "-s", "filter", "show", "dev", "tk1", "ingress"]
            )
            .stdout
        )
    );
    assert_eq!(
        plane.stats().links["tk1"]
            .drops
            .get(DropReason::RouterMessage),
        10
    );
    let b = nl.bridge_multicast("br0").expect("bridge state");
    assert!(b.own_querier, "{b:?}");
    assert_ne!(
        b.querier_port,
        Some(tk1),
        "the bridge yielded to the task: {b:?}"
    );
    let task_ip: Ipv4Addr = addr.parse().expect("task address");
    assert_ne!(b.querier_address, Some(task_ip), "{b:?}");
    let mdb = lab.exec(&hosts[0].ns, &["bridge", "-d", "mdb", "show", "dev", "br0"]);
    let text = String::from_utf8_lossy(&mdb.stdout);
    assert!(
        !text
            .lines()
            .any(|l| l.contains("router") && l.contains("tk1")),
        "tk1 became a router port:\n{text}"
    );
    // A link named as one where routers may be (`--router-links`) is no host port.
    let tk2 = nl.link_by_name("tk2").expect("tk2").ifindex;
    plane.set_links(vec![
        LinkSpec {
            name: "tk1".into(),
            ifindex: tk1,
            routers: true,
            single_host: false,
            egress: Vec::new(),
            standby: Vec::new(),
        },
        LinkSpec {
            name: "tk2".into(),
            ifindex: tk2,
            routers: false,
            single_host: true,
            egress: Vec::new(),
            standby: Vec::new(),
        },
    ]);
    let fast_leave = |port: &str| {
        let out = lab.exec(&hosts[0].ns, &["bridge", "-d", "link", "show", "dev", port]);
        String::from_utf8_lossy(&out.stdout).contains("fastleave on")
    };
    assert!(
        wait_until(Duration::from_secs(5), || {
            !nl.host_port_guarded(tk1).expect("filters") && fast_leave("tk2")
        }),
        "a router link kept its host-port filter, or the task's veth has no fast leave"
    );
    assert!(nl.host_port_guarded(tk2).expect("filters"));
    assert!(!fast_leave("tk1"), "a router link has fast leave");
    // A domain that turns single-host fast leave off takes the flag away.
    plane.set_querier(
        Version::V3,
        IgmpSettings {
            query_response_interval_ms: 2_000,
            single_host_fast_leave: false,
            ..IgmpSettings::default()
        },
    );
    assert!(
        wait_until(Duration::from_secs(5), || !fast_leave("tk2")),
        "fast leave stayed on tk2"
    );
    plane.set_querier(
        Version::V3,
        IgmpSettings {
            query_response_interval_ms: 2_000,
            ..IgmpSettings::default()
        },
    );
    assert!(wait_until(Duration::from_secs(5), || fast_leave("tk2")));
    // Shutdown takes the filter away and gives the port the kernel's default back.
    plane.shutdown();
    assert!(!nl.host_port_guarded(tk1).expect("filters"));
    assert!(!fast_leave("tk2"), "shutdown left fast leave on");
}

#[test]
fn a_restarted_plane_takes_over_the_tables_and_loses_nothing() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let hosts = lab_hosts(&mut lab, 2);
    let mut nl0 = in_netns(&hosts[0].ns, || Netlink::open().expect("netlink"));
    let before = nl0.bridge_multicast("br0").expect("bridge state");
    let (p1, _) = start_plane(&hosts[0]);
    let (p2, _) = start_plane(&hosts[1]);
    let members = [(0, G), (1, G)];
    p1.set_table(table(&hosts, 0, &members));
    p2.set_table(table(&hosts, 1, &members));
    let local = lab.receiver(&hosts[0].tasks[1].0, &[G]);
    let remote = lab.receiver(&hosts[1].tasks[0].0, &[G]);
    // Wait until both bridges deliver (querier present, joins snooped).
    let (t0, a0) = hosts[0].tasks[0].clone();
    assert!(
        wait_until(Duration::from_secs(10), || {
            lab.send(&t0, &a0, G, "warm", 1);
            local.count("warm") > 0 && remote.count("warm") > 0
        }),
        "no delivery before the restart"
    );
    // 100 packets a second for 5 s; the plane restarts in the middle.
    let mut stream = Command::new("ip")
        .args(["netns", "exec", &t0, "python3", "-c", SENDER])
        .args([&G.to_string(), &PORT.to_string(), "500", "stream", &a0])
        .spawn()
        .expect("start the stream");
    std::thread::sleep(Duration::from_secs(1));
    p1.detach();
    drop(p1);
    let (p1, _) = start_plane(&hosts[0]);
    let st = p1.kernel_status().expect("status");
    assert_eq!(st.adopted, [device_name(VNI)], "{st:?}");
    // The new agent relearns for a while before its first table.
    assert!(wait_until(Duration::from_secs(3), || {
        p1.kernel_status()
            .is_some_and(|s| s.holding_previous_tables && s.bridge_querier)
    }));
    std::thread::sleep(Duration::from_secs(1));
    p1.set_table(table(&hosts, 0, &members));
    assert!(wait_until(Duration::from_secs(3), || {
        p1.kernel_status()
            .is_some_and(|s| !s.holding_previous_tables && s.reconciles > 0)
    }));
    assert!(stream.wait().expect("stream").success());
    assert!(wait_until(Duration::from_secs(3), || {
        local.count("stream") >= 500 && remote.count("stream") >= 500
    }));
    assert_eq!(
        (local.count("stream"), remote.count("stream")),
        (500, 500),
        "lost across the restart"
    );
    // The bridge settings the first plane found are the ones put back at the end.
    p1.shutdown();
    let after = nl0.bridge_multicast("br0").expect("bridge state");
    assert_eq!(after.settings, before.settings);
    assert!(
        VxlanDevice::find_stale(&mut nl0, "mcgvx")
            .unwrap()
            .is_empty()
    );
    drop(p2);
}
