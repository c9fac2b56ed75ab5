//! End-to-end tests of the encrypted tunnel on the userspace relay: three hosts in
//! network namespaces (see `agent_support`), a task as the attacker. Forged VXLAN with a
//! peer's source address, garbage and replayed WireGuard messages reach no receiver and
//! are counted; a key rotation in the middle of a flow loses nothing; a
//! `tunnel = "vxlan"` domain still works and still refuses non-peers.

mod agent_support;
mod support;

use std::time::Duration;

use agent_support::{Flow, Topo};

const G: &str = "233.252.0.9";
const VNI: u32 = 4200;

/// Sends what an attacker in a task can: argv = kind, then its arguments.
/// - `vxlan SRC DST VNI GROUP COUNT`: VXLAN to DST:4789 from the forged address SRC
///   (raw socket), carrying a UDP datagram to GROUP:5001;
/// - `wg DST COUNT`: garbage WireGuard messages of every type to DST:51820;
/// - `replay SRC DST HEXFILE`: the UDP payloads in HEXFILE (one per line), to DST:51820
///   from SRC:51820 (forged).
const ATTACK: &str = r#"
import os, re, socket, struct, sys

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def ip_udp(src, dst, sport, dport, payload, ttl=64):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, ttl, 17, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + udp

def raw_send(src, dst, sport, dport, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip_udp(src, dst, sport, dport, payload), (dst, 0))

kind = sys.argv[1]
if kind == "vxlan":
    src, dst, vni, group, count = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    g = socket.inet_aton(group)
    mac = bytes([1, 0, 0x5e, g[1] & 0x7f, g[2], g[3]])
    inner = ip_udp("10.9.9.9", group, 40000, 5001, b"FORGED-0-0", ttl=1)
    frame = mac + bytes([2, 0, 0, 0, 0, 9]) + b"\x08\x00" + inner
    vx = struct.pack("!II", 0x08000000, vni << 8) + frame
    for _ in range(count):
        raw_send(src, dst, 4789, 4789, vx)
elif kind == "wg":
    dst, count = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        for t, n in [(1, 148), (2, 92), (3, 64), (4, 32 + 64)]:
            s.sendto(struct.pack("<I", t) + os.urandom(n - 4), (dst, 51820))
elif kind == "replay":
    src, dst, path = sys.argv[2], sys.argv[3], sys.argv[4]
    for line in open(path):
        # The first field only (tshark may add others after a separator).
        line = re.split(r"[^0-9a-fA-F:]", line.strip())[0].replace(":", "")
        if line:
            raw_send(src, dst, 51820, 51820, bytes.fromhex(line))
print("attacked", flush=True)
"#;

/// Three userspace hosts (two tasks each) in one domain with `tunnel`, agents up and
/// every host a peer of every other.
fn deployment(tunnel: &str) -> Topo {
    let mut t = Topo::with_dataplanes(2, &["userspace"; 3]);
    t.start_controller();
    t.create_domain_tunnelled("d1", VNI, "v3", false, tunnel);
    t.start_agents();
    let ok = t.wait_until(Duration::from_secs(10), || {
        (0..3).all(|h| {
            t.domain_summary(h, u64::from(VNI))
                .is_some_and(|d| d["peers"].as_array().is_some_and(|p| p.len() == 2))
        })
    });
    assert!(ok, "agents did not get the domain:\n{}", t.logs());
    std::fs::write(t.dir.join("attack.py"), ATTACK).expect("write the attack script");
    t
}

/// Waits until host `h` knows `n` remote hosts with members of the domain's groups.
fn wait_remote_members(t: &Topo, h: usize, n: u64) {
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.domain_summary(h, u64::from(VNI))
            .is_some_and(|d| d["remote_members"].as_u64() == Some(n))
    });
    assert!(ok, "h{} never saw {n} remote members:\n{}", h + 1, t.logs());
}

fn drops(t: &Topo, h: usize, reason: &str) -> u64 {
    t.metric(h, "mcgate_agent_dataplane_drops", &[("reason", reason)])
}

/// Runs the attack script in task 1 of h1 and waits for it.
fn attack(t: &mut Topo, args: &[&str]) {
    let script = t.dir.join("attack.py");
    let mut argv = vec!["python3", script.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let p = t.spawn_in_task(0, 1, &argv);
    let out = t.wait_proc(p, Duration::from_secs(20));
    assert!(out.contains("attacked"), "attack failed: {out}");
}

fn flow(count: u32, interval: f64) -> Flow<'static> {
    Flow {
        group: G,
        count,
        interval,
        ttl: 1,
        size: 200,
    }
}

#[test]
fn forged_garbage_and_replayed_tunnel_packets_reach_nobody() {
    let mut t = deployment("wireguard");
    let r3 = t.receiver(2, 0, G, 25.0, "any", &[]);
    wait_remote_members(&t, 1, 1);
    // A real flow h2 -> h3, captured on the underlay at h3's side.
    let dump = t.dir.join("wg.hex");
    let cap = t.spawn_in_router(&[
        "tshark",
        "-i",
        "h3",
        "-a",
        "duration:6",
        "-f",
        "udp port 51820",
        "-T",
        "fields",
        "-e",
        "udp.payload",
    ]);
    let capturing = t.wait_until(Duration::from_secs(10), || {
        t.proc_log(cap).contains("Capturing on")
    });
    assert!(capturing, "tshark did not start:\n{}", t.proc_log(cap));
    let s = t.sender(1, 0, flow(50, 0.01));
    t.wait_proc(s, Duration::from_secs(10));
    let captured = t.wait_proc(cap, Duration::from_secs(10));
    let data: Vec<&str> = captured
        .lines()
        .filter(|l| l.starts_with("04") && l.len() > 2 * 32)
        .collect();
    assert!(
        data.len() >= 40,
        "too few transport messages captured:\n{captured}"
    );
    std::fs::write(&dump, data.join("\n")).expect("write the capture");
    let delivered = t.metric(
        2,
        "mcgate_agent_link_packets",
        &[("link", "tk1"), ("direction", "tx")],
    );
    assert_eq!(delivered, 50, "{}", t.logs());

    // The attacker, a task on h1: forged VXLAN from h2's underlay address, right and
    // wrong VNI; garbage of every WireGuard message type; the captured messages again,
    // from h2's endpoint.
    let (h2, h3) = (t.hosts[1].ip.clone(), t.hosts[2].ip.clone());
    let dump = dump.to_str().expect("utf-8 path").to_string();
    attack(&mut t, &["vxlan", &h2, &h3, &VNI.to_string(), G, "20"]);
    attack(
        &mut t,
        &["vxlan", &h2, &h3, &(VNI + 1).to_string(), G, "20"],
    );
    attack(&mut t, &["wg", &h3, "20"]);
    attack(&mut t, &["replay", &h2, &h3, &dump]);
    let counted = t.wait_until(Duration::from_secs(10), || {
        drops(&t, 2, "unencrypted") >= 20
            && drops(&t, 2, "no_domain") >= 20
            && drops(&t, 2, "not_authenticated") >= 80
            && drops(&t, 2, "replay") >= data.len() as u64
    });
    assert!(
        counted,
        "drops not counted: {}",
        t.metrics(2).unwrap_or_default()
    );
    // Nothing more reached the link or the receiver.
    assert_eq!(
        t.metric(
            2,
            "mcgate_agent_link_packets",
            &[("link", "tk1"), ("direction", "tx")]
        ),
        50
    );
    let got = t.received(r3, Duration::from_secs(30));
    assert_eq!((got.count, got.unique, got.dups), (50, 50, 0), "{got:?}");
}

#[test]
fn rotating_a_key_mid_stream_loses_nothing() {
    let mut t = deployment("wireguard");
    let r2 = t.receiver(1, 0, G, 12.0, "any", &[]);
    let r3 = t.receiver(2, 0, G, 12.0, "any", &[]);
    wait_remote_members(&t, 0, 2);
    let old = t.stats_doc(1).expect("h2 answers")["wireguard"]["public_key"].clone();
    // 600 packets over 6 s from h1; h2 (a receiver) rotates after a quarter of them
    // reached it, h1 (the sender) after half.
    let s = t.sender(0, 0, flow(600, 0.01));
    let h2_delivered = |t: &Topo| {
        t.metric(
            1,
            "mcgate_agent_link_packets",
            &[("link", "tk1"), ("direction", "tx")],
        )
    };
    assert!(t.wait_until(Duration::from_secs(10), || h2_delivered(&t) >= 150));
    let out = t.admin_post(1, "/v1/rotate-key").expect("h2 rotates");
    assert!(out.contains("public_key"), "{out}");
    assert!(t.wait_until(Duration::from_secs(10), || h2_delivered(&t) >= 300));
    let out = t.admin_post(0, "/v1/rotate-key").expect("h1 rotates");
    assert!(out.contains("public_key"), "{out}");
    t.wait_proc(s, Duration::from_secs(15));
    for (name, r) in [("h2", r2), ("h3", r3)] {
        let got = t.received(r, Duration::from_secs(15));
        assert_eq!(
            (got.unique, got.dups),
            (600, 0),
            "{name}: {got:?}\n{}",
            t.logs()
        );
    }
    let new = t.stats_doc(1).expect("h2 answers")["wireguard"]["public_key"].clone();
    assert_ne!(old, new, "h2's key did not change");
    // The controller spread the new key: h1's peer entry for h2 has it.
    let agents = t.api("GET", "/v1/agents", None);
    assert!(
        agents.contains(new.as_str().unwrap_or("-")),
        "the controller does not know h2's new key: {agents}"
    );
}

#[test]
fn vxlan_domains_work_and_refuse_non_peers() {
    let mut t = deployment("vxlan");
    let r3 = t.receiver(2, 0, G, 12.0, "any", &[]);
    wait_remote_members(&t, 1, 1);
    let s = t.sender(1, 0, flow(50, 0.005));
    t.wait_proc(s, Duration::from_secs(10));
    // A forged source outside the domain's peers (the attacker's own address, then
    // an unused one), right VNI.
    let attacker = t.hosts[0].tasks[1].ip.clone();
    let h3 = t.hosts[2].ip.clone();
    attack(
        &mut t,
        &["vxlan", &attacker, &h3, &VNI.to_string(), G, "20"],
    );
    attack(
        &mut t,
        &["vxlan", "10.200.9.9", &h3, &VNI.to_string(), G, "20"],
    );
    let counted = t.wait_until(Duration::from_secs(10), || {
        drops(&t, 2, "unknown_peer") >= 40
    });
    assert!(
        counted,
        "drops not counted: {}",
        t.metrics(2).unwrap_or_default()
    );
    let got = t.received(r3, Duration::from_secs(15));
    assert_eq!((got.count, got.unique, got.dups), (50, 50, 0), "{got:?}");
}
