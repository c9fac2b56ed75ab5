//! The kernel data plane's WireGuard tunnel and VXLAN source filter against the real
//! kernel, in network namespaces (root only), on hosts built like mcgate's lab. This
//! kernel has no WireGuard module, so the tunnel is the userspace TUN device.
//!
//! Every namespace is named `mcgk-<pid>-<n>-<role>` and removed when the test ends,
//! with the processes it started (by PID), even on failure.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcgate_dataplane::kernel::plane::KernelPlane;
use mcgate_dataplane::kernel::wireguard::{DEVICE, Key, WireguardHost};
use mcgate_dataplane::kernel::{Netlink, VxlanDevice, device_name, inspect};
use mcgate_dataplane::{Dataplane, DropReason, HostKey};
use mcgate_domain::api::Tunnel;
use mcgate_testbed::lab::PORT;
use mcgate_testbed::{Lab, wait_until};

mod kernel_support;
use kernel_support::*;

const WG_PORT: u16 = 51820;
/// Members of G on h0 and h1 (the tests' receivers on h0's tk2 and h1's tk1).
const MEMBERS: [(usize, Ipv4Addr); 2] = [(0, G), (1, G)];

/// Host `i`'s key pair from a fixed seed.
fn keys(seed: u8) -> HostKey {
    HostKey::from_bytes([seed; 32])
}

fn wg_host(key: &HostKey) -> WireguardHost {
    WireguardHost {
        private_key: Key(key.secret().to_bytes()),
        listen_port: WG_PORT,
    }
}

/// Two hosts with planes up, both tasks' domain tunnelled as `mode`, members of G on
/// h0's tk2 and h1's tk1.
fn two_planes(lab: &mut Lab, mode: Tunnel) -> (Vec<Host>, Vec<String>, [KernelPlane; 2]) {
    let hosts = lab_hosts(lab, 2);
    let pairs = [keys(1), keys(2)];
    let public: Vec<String> = pairs.iter().map(HostKey::public_base64).collect();
    let (p0, _) = start_plane_with(&hosts[0], Some(wg_host(&pairs[0])));
    let (p1, _) = start_plane_with(&hosts[1], Some(wg_host(&pairs[1])));
    for (i, p) in [&p0, &p1].into_iter().enumerate() {
        p.set_table(table_with(&hosts, i, &MEMBERS, mode, &public));
    }
    let ready = wait_until(Duration::from_secs(10), || {
        [&p0, &p1].iter().all(|p| {
            p.kernel_status().is_some_and(|s| {
                s.bridge_querier
                    && s.devices.len() == 1
                    && s.devices[0].memberships == 1
                    && s.filter
                    && (mode == Tunnel::Vxlan || s.wireguard.peers == 1)
            })
        })
    });
    assert!(
        ready,
        "planes not ready: {:?} {:?}",
        p0.kernel_status(),
        p1.kernel_status()
    );
    // The bridges count their own queriers present one startup response interval (1 s)
    // after they start; the kernel shows no sign of it, so the tests wait it out.
    std::thread::sleep(Duration::from_secs(1));
    (hosts, public, [p0, p1])
}

/// Waits until both bridges snooped their task's join of G (h0's tk2, h1's tk1).
fn wait_joins(lab: &Lab, hosts: &[Host]) {
    let mdb = |h: usize| {
        let out = lab.exec(&hosts[h].ns, &["bridge", "mdb", "show"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let snooped = |h: usize, port: &str| mdb(h).contains(&format!("port {port} grp {G}"));
    assert!(
        wait_until(Duration::from_secs(10), || snooped(0, "tk2")
            && snooped(1, "tk1")),
        "the bridges never snooped the joins: {} | {}",
        mdb(0),
        mdb(1)
    );
}

/// `tcpdump -A` on an underlay link, its lines collected; stopped (by PID) on drop.
struct Capture {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    fn start(ns: &str, link: &str) -> Self {
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-l", "-nn", "-A", "-i", link, "udp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let stdout = child.stdout.take().expect("tcpdump stdout");
        let stderr = child.stderr.take().expect("tcpdump stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if l.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start");
        Self { child, lines }
    }

    fn text(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wireguard_carries_the_domain_and_the_underlay_sees_only_wireguard() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let (hosts, public, [p0, p1]) = two_planes(&mut lab, Tunnel::Wireguard);
    let mut nl0 = in_ns_netlink(&hosts[0].ns);

    // The VXLAN device speaks from the tunnel address, its copies go to the peer's
    // tunnel address, and its MTU leaves room for VXLAN and WireGuard.
    let dev = VxlanDevice::open(&mut nl0, &device_name(VNI)).expect("device");
    assert_eq!(dev.local, tunnel_address(0));
    assert_eq!(
        nl0.link_by_index(dev.ifindex).unwrap().mtu,
        Some(9001 - 110)
    );
    let seen = inspect(&mut nl0, &dev).expect("inspect");
    assert!(
        !seen.vxlan_entries.is_empty()
            && seen
                .vxlan_entries
                .iter()
                .all(|e| e.dst == tunnel_address(1)),
        "{seen}"
    );
    assert_eq!(nl0.link_by_name(DEVICE).unwrap().mtu, Some(9001 - 60));
    let st = p0.status();
    assert_eq!(st.wireguard.device.as_deref(), Some(DEVICE));
    assert_eq!(st.wireguard.tunnel_address, Some(tunnel_address(0)));
    assert!(
        st.wireguard.reason.contains("userspace"),
        "{}",
        st.wireguard.reason
    );

    let remote = lab.receiver(&hosts[1].tasks[0].0, &[G]);
    let local = lab.receiver(&hosts[0].tasks[1].0, &[G]);
    wait_joins(&lab, &hosts);
    let capture = Capture::start(&lab.namespaces()[0], "h2");
    let (t0, a0) = &hosts[0].tasks[0];
    lab.send(t0, a0, G, "secret", 5);
    assert!(
        wait_until(Duration::from_secs(10), || remote.count("secret") >= 5
            && local.count("secret") >= 5),
        "remote {} local {}: {:?} {:?}",
        remote.count("secret"),
        local.count("secret"),
        p0.stats(),
        p1.stats()
    );
    // The other way too.
    let (t1, a1) = &hosts[1].tasks[0];
    lab.send(t1, a1, G, "back", 5);
    assert!(wait_until(Duration::from_secs(10), || local.count("back") >= 5));

    // The underlay saw WireGuard between the two endpoints and nothing else: no VXLAN,
    // no cleartext payload.
    assert!(wait_until(Duration::from_secs(3), || {
        capture
            .text()
            .iter()
            .filter(|l| l.contains(&format!(".{WG_PORT} > ")))
            .count()
            >= 10
    }));
    drop_capture_and_check(capture);

    // Key rotation mid-stream: h1 gets a new key. Peers first take the new public key
    // (new peer in, old out, one request: h0 queues what it sends until the new
    // handshake completes), then h1 switches to it.
    let rotated = keys(3);
    let mut new_public = public.clone();
    new_public[1] = rotated.public_base64();
    lab.send(t0, a0, G, "rot", 1);
    assert!(wait_until(Duration::from_secs(5), || remote.count("rot") == 1));
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            for _ in 0..59 {
                lab.send(t0, a0, G, "rot", 1);
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        for (i, p) in [&p0, &p1].into_iter().enumerate() {
            p.set_table(table_with(
                &hosts,
                i,
                &MEMBERS,
                Tunnel::Wireguard,
                &new_public,
            ));
        }
        p1.set_key(rotated);
        sender.join().unwrap();
    });
    assert!(
        wait_until(Duration::from_secs(15), || remote.count("rot") >= 60),
        "{} of 60 arrived across the key rotation",
        remote.count("rot")
    );
    assert_eq!(remote.count("rot"), 60, "duplicates across the rotation");

    // The underlay MTU changes: the WireGuard device follows it down and back, never
    // past the MTU it was created with (boringtun reads no longer packet), and the VXLAN
    // device always fits inside it.
    let mtus = |nl: &mut Netlink| {
        (
            nl.link_by_name(DEVICE).unwrap().mtu,
            nl.link_by_index(dev.ifindex).unwrap().mtu,
        )
    };
    // Each step changes what is asserted, so a step the plane had not applied yet fails.
    for (underlay, want) in [(1500, (1440, 1390)), (9500, (8941, 8891))] {
        p0.set_underlay_mtu(underlay);
        assert!(
            wait_until(Duration::from_secs(5), || mtus(&mut nl0)
                == (Some(want.0), Some(want.1))),
            "underlay {underlay}: (WireGuard, VXLAN) MTUs {:?}, want {want:?}",
            mtus(&mut nl0)
        );
    }

    // Stop: the WireGuard device, its route and the filter's tables are gone.
    p0.shutdown();
    assert!(
        nl0.link_by_name(DEVICE).is_err(),
        "WireGuard device left behind: {:?}",
        p0.status()
    );
    let routes = lab.exec(&hosts[0].ns, &["ip", "route", "show"]);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(!routes.contains("10.255."), "route left behind: {routes}");
    let tables = lab.exec(&hosts[0].ns, &["nft", "list", "tables"]);
    assert!(
        tables.status.success() && !String::from_utf8_lossy(&tables.stdout).contains("mcgate"),
        "nftables table left behind: {}",
        String::from_utf8_lossy(&tables.stdout)
    );
}

fn in_ns_netlink(ns: &str) -> Netlink {
    mcgate_testbed::in_netns(ns, || Netlink::open().expect("netlink"))
}

fn drop_capture_and_check(capture: Capture) {
    let lines = capture.text();
    drop(capture);
    let headers: Vec<&String> = lines.iter().filter(|l| l.contains(" IP ")).collect();
    assert!(!headers.is_empty());
    for h in &headers {
        assert!(
            h.contains(&format!(".{WG_PORT} > ")) && h.contains(&format!(".{WG_PORT}: UDP")),
            "not WireGuard on the underlay: {h}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("secret") || l.contains("back")),
        "cleartext payload on the underlay"
    );
}

/// Sends `count` VXLAN datagrams (VNI, to G, tagged) from `src` (forged if it is not
/// the sender's own) to `dst`, over a raw socket.
const FORGE: &str = r#"
import socket, struct, sys
src, dst, vni, group, port, tag, count = sys.argv[1:8]
vni, port, count = int(vni), int(port), int(count)
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ip(src, dst, ttl, payload):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 0, 0, ttl, 17, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
def udp(sport, dport, payload):
    return struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
g = socket.inet_aton(group)
mac = bytes([1, 0, 0x5e, g[1] & 0x7f, g[2], g[3]])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    data = f"{tag} {group} {src} {i}".encode()
    frame = mac + bytes([2, 0, 0, 0, 0, 1]) + b'\x08\x00' + ip(src, group, 1, udp(40000, port, data))
    vxlan = struct.pack('!II', 0x08000000, vni << 8) + frame
    s.sendto(ip(src, dst, 64, udp(40001, 4789, vxlan)), (dst, 0))
"#;

fn forge(lab: &Lab, ns: &str, src: Ipv4Addr, dst: Ipv4Addr, tag: &str, count: usize) {
    let out = lab.exec(
        ns,
        &[
            "python3",
            "-c",
            FORGE,
            &src.to_string(),
            &dst.to_string(),
            &VNI.to_string(),
            &G.to_string(),
            &PORT.to_string(),
            tag,
            &count.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_vxlan_is_accepted_only_from_the_domains_peers_and_drops_are_counted() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let (hosts, _, [p0, _p1]) = two_planes(&mut lab, Tunnel::Vxlan);
    // Members where the table says there are (h1's is not watched here).
    let _remote = lab.receiver(&hosts[1].tasks[0].0, &[G]);
    let local = lab.receiver(&hosts[0].tasks[1].0, &[G]);
    wait_joins(&lab, &hosts);
    // A peer's traffic passes the filter.
    let (t1, a1) = &hosts[1].tasks[0];
    lab.send(t1, a1, G, "peer", 5);
    assert!(wait_until(Duration::from_secs(10), || local.count("peer") >= 5));

    // From a task of h0: VXLAN with h1's (a peer's) underlay address as source.
    let task = &hosts[0].tasks[0].0;
    forge(&lab, task, hosts[1].ip, hosts[0].ip, "forged", 5);
    // From the underlay router, a host that is no peer of the domain.
    let router = &lab.namespaces()[0];
    forge(
        &lab,
        router,
        Ipv4Addr::new(10, 79, 1, 254),
        hosts[0].ip,
        "stranger",
        5,
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = p0.status();
            s.filter_dropped_from_tasks >= 5 && s.filter_dropped_not_peer >= 5
        }),
        "{:?}",
        p0.status()
    );
    assert!(p0.stats().drops.get(DropReason::UnknownPeer) >= 10);
    // The same again from the peer passes: what was dropped was dropped by the filter.
    lab.send(t1, a1, G, "after", 5);
    assert!(wait_until(Duration::from_secs(10), || local.count("after") >= 5));
    assert_eq!(local.count("forged"), 0);
    assert_eq!(local.count("stranger"), 0);
}

#[test]
fn under_wireguard_only_what_came_out_of_the_tunnel_reaches_vxlan() {
    require_root!();
    let mut lab = Lab::new("mcgk");
    let (hosts, _, [p0, _p1]) = two_planes(&mut lab, Tunnel::Wireguard);
    // Members where the table says there are (h1's is not watched here).
    let _remote = lab.receiver(&hosts[1].tasks[0].0, &[G]);
    let local = lab.receiver(&hosts[0].tasks[1].0, &[G]);
    wait_joins(&lab, &hosts);
    let (t1, a1) = &hosts[1].tasks[0];
    lab.send(t1, a1, G, "tunnelled", 5);
    assert!(wait_until(Duration::from_secs(10), || local
        .count("tunnelled")
        >= 5));

    // Plain VXLAN to h0's tunnel address, from a local task and from the underlay,
    // with h1's tunnel address as source.
    let (task, task_addr) = &hosts[0].tasks[0];
    lab.ip(task, &["route", "add", "10.255.0.0/16", "via", "10.79.1.1"]);
    let router = lab.namespaces()[0].clone();
    lab.ip(
        &router,
        &["route", "add", "10.255.0.1/32", "via", "10.79.1.1"],
    );
    let task_addr: Ipv4Addr = task_addr.parse().unwrap();
    forge(&lab, task, task_addr, tunnel_address(0), "task", 5);
    forge(
        &lab,
        &router,
        tunnel_address(1),
        tunnel_address(0),
        "underlay",
        5,
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = p0.status();
            s.filter_dropped_from_tasks >= 5 && s.filter_dropped_not_peer >= 5
        }),
        "{:?}",
        p0.status()
    );
    lab.send(t1, a1, G, "after", 5);
    assert!(wait_until(Duration::from_secs(10), || local.count("after") >= 5));
    assert_eq!(local.count("task"), 0);
    assert_eq!(local.count("underlay"), 0);
}
