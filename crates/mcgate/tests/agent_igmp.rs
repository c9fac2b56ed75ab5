//! End-to-end tests of the agent's IGMP wiring: what reaches an attached link's IGMP
//! socket, on a host in a network namespace with the real controller and agent.

mod agent_support;
mod support;

use std::time::Duration;

use agent_support::Topo;

/// Sends, on `eth0` of a task, first one IGMPv3 report of `sources` sources (12,000
/// bytes with 2,990: a jumbo frame), then `count` IGMPv2 reports for distinct groups as
/// fast as the kernel takes them. Prints how many frames it sent.
const IGMP_BURST_PY: &str = r#"
import socket, struct, sys

ifname, count, sources, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def frame(dst, igmp):
    igmp = igmp[:2] + struct.pack("!H", csum(igmp)) + igmp[4:]
    # IPv4 with the Router Alert option, TTL 1, protocol 2.
    hdr = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, 24 + len(igmp), 0, 0x4000, 1, 2, 0,
                      socket.inet_aton(src), socket.inet_aton(dst)) + b"\x94\x04\x00\x00"
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    d = socket.inet_aton(dst)
    mac = bytes([0x01, 0x00, 0x5E, d[1] & 0x7F, d[2], d[3]])
    return mac + bytes([2, 0, 0, 0, 0, 0x77]) + b"\x08\x00" + hdr + igmp

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
sent = 0
group = socket.inet_aton("233.252.9.1")
srcs = b"".join(struct.pack("!BBBB", 10, 9, i // 250, i % 250 + 1) for i in range(sources))
record = struct.pack("!BBH4s", 1, 0, sources, group) + srcs
s.send(frame("224.0.0.22", struct.pack("!BBHHH", 0x22, 0, 0, 0, 1) + record))
sent += 1
for i in range(count):
    g = "233.252.%d.%d" % (i // 250, i % 250 + 1)
    s.send(frame(g, struct.pack("!BBH4s", 0x16, 0, 0, socket.inet_aton(g))))
    sent += 1
print("sent", sent, flush=True)
"#;

fn frames(t: &Topo, name: &str, labels: &[(&str, &str)]) -> u64 {
    t.metric(0, &format!("mcgate_agent_{name}"), labels)
}

/// A burst of 3,000 IGMPv2 reports and a 12,000-byte IGMPv3 report on a jumbo link:
/// every frame is handed to the querier or counted under a named drop reason, and the
/// jumbo frame is read whole.
#[test]
fn every_igmp_frame_on_a_link_is_handed_on_or_counted() {
    let mut t = Topo::with_dataplanes(1, &["userspace"]);
    t.start_controller();
    t.create_domain("d1", 4100, "v2", false);
    t.start_agents();
    // The querier runs the domain's settings on tk1.
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.stats(0).is_some_and(|s| {
            s.contains("\"tk1\"")
                && s.contains("\"vni\":4100")
                && s.contains("\"igmp_mode\":\"v2\"")
        })
    });
    assert!(ok, "the agent did not attach tk1:\n{}", t.logs());
    let host = &t.hosts[0];
    host.ns.run(&["ip", "link", "set", "tk1", "mtu", "16000"]);
    host.tasks[0]
        .ns
        .run(&["ip", "link", "set", "eth0", "mtu", "16000"]);
    let script = t.dir.join("igmp_burst.py");
    std::fs::write(&script, IGMP_BURST_PY).expect("write the script");
    let src = host.tasks[0].ip.clone();
    let p = t.spawn_in_task(
        0,
        0,
        &[
            "python3",
            &script.to_string_lossy(),
            "eth0",
            "3000",
            "2990",
            &src,
        ],
    );
    let out = t.wait_proc(p, Duration::from_secs(30));
    assert!(out.contains("sent 3001"), "the sender failed: {out}");
    let link = [("link", "tk1")];
    let accounted = |t: &Topo| {
        frames(t, "igmp_frames_received", &link)
            + ["socket_overflow", "queue_full", "oversize"]
                .iter()
                .chain(&["not_ipv4", "no_querier"])
                .map(|r| frames(t, "igmp_frames_dropped", &[("link", "tk1"), ("reason", r)]))
                .sum::<u64>()
    };
    let ok = t.wait_until(Duration::from_secs(10), || accounted(&t) >= 3001);
    let metrics = t.metrics(0).unwrap_or_default();
    assert!(
        ok && accounted(&t) == 3001,
        "{} of 3001 frames accounted for:\n{metrics}\n{}",
        accounted(&t),
        t.logs()
    );
    assert_eq!(
        frames(
            &t,
            "igmp_frames_dropped",
            &[("link", "tk1"), ("reason", "oversize")]
        ),
        0,
        "{metrics}"
    );
    // The jumbo report reached the querier whole.
    assert_eq!(
        frames(
            &t,
            "igmp_received",
            &[("link", "tk1"), ("type", "report_v3")]
        ),
        1,
        "{metrics}"
    );
}
