//! End-to-end test of the userspace relay forwarding IPv6 multicast between hosts:
//! tasks on one host join an IPv6 group (MLDv2 any-source, MLDv1, MLDv2 INCLUDE one
//! source), tasks on another send UDP to it from their link-local addresses, and each
//! receiver gets exactly the datagrams its membership asks for; a task that did not
//! join gets none.

mod agent_support;
mod support;

use std::time::Duration;

use agent_support::Topo;
use serde_json::Value;

/// Joins `group` on `ifname` (any source, or only `source` with MLDv2 INCLUDE), prints
/// `joined`, then one line `rx SOURCE` per datagram on `port` until SIGTERM or SIGINT.
/// With group `-`, joins nothing and only listens.
const RECV6_PY: &str = r#"
import signal, socket, struct, sys
group, ifname, port, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ifindex = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", port))
def sockaddr(addr):
    # struct sockaddr_in6 in a sockaddr_storage (128 bytes)
    b = struct.pack("@HHI", socket.AF_INET6, 0, 0) + socket.inet_pton(socket.AF_INET6, addr) + struct.pack("@I", ifindex)
    return b + bytes(128 - len(b))
if group != "-" and source == "-":
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
elif group != "-":
    # struct group_source_req; MCAST_JOIN_SOURCE_GROUP is 46 on Linux
    req = struct.pack("@I", ifindex) + bytes(4) + sockaddr(group) + sockaddr(source)
    s.setsockopt(socket.IPPROTO_IPV6, 46, req)
stop = [False]
def on_signal(*_):
    stop[0] = True
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
s.settimeout(0.1)
print("joined", flush=True)
while not stop[0]:
    try:
        _, addr = s.recvfrom(65535)
    except (socket.timeout, InterruptedError):
        continue
    print("rx", addr[0].split("%")[0], flush=True)
print("end", flush=True)
"#;

const GROUP: &str = "ff3e::8000:1";
const PORT: &str = "5006";
const VNI: u64 = 4100;
const COUNT: usize = 20;

/// Whether host `h`'s MLD querier runs on `link`.
fn mld_running(t: &Topo, h: usize, link: &str) -> bool {
    t.stats_doc(h).is_some_and(|doc: Value| {
        doc["links"].as_array().into_iter().flatten().any(|l| {
            l["name"] == link && l["mld"]["state"] == "running" && l["mld"]["querier"] == true
        })
    })
}

/// The sources of the datagrams a receiver printed, one entry per datagram.
fn received(t: &Topo, idx: usize) -> Vec<String> {
    t.proc_log(idx)
        .lines()
        .filter_map(|l| l.strip_prefix("rx ").map(str::to_string))
        .collect()
}

/// Two userspace hosts with `tasks` tasks each, in domain d1; h2's second task speaks
/// MLDv1 only; returns once h2's MLD queriers run and every task's link-local address
/// is out of DAD.
fn two_hosts(tasks: usize) -> Topo {
    let mut t = Topo::with_dataplanes(tasks, &["userspace", "userspace"]);
    // h2's second task speaks MLDv1 only (RFC 2710).
    if let Some(task) = t.hosts[1].tasks.get(1) {
        task.ns
            .run(&["sysctl", "-qw", "net.ipv6.conf.eth0.force_mld_version=1"]);
    }
    t.start_controller();
    t.create_domain("d1", VNI as u32, "v3", false);
    t.start_agents();
    let ok = t.wait_until(Duration::from_secs(20), || {
        (1..=tasks)
            .map(|k| format!("tk{k}"))
            .all(|l| mld_running(&t, 1, &l))
    });
    assert!(ok, "no MLD querier on h2's links:\n{}", t.logs());
    let ok = t.wait_until(Duration::from_secs(10), || {
        (0..2).all(|h| (0..tasks).all(|k| t.task_link_local(h, k).is_some()))
    });
    assert!(ok, "the tasks' link-local addresses stayed tentative");
    t
}

#[test]
fn the_relay_forwards_ipv6_multicast_between_hosts() {
    let mut t = two_hosts(4);
    let s1 = t.task_link_local(0, 0).expect("h1 task 1's address");
    let s2 = t.task_link_local(0, 1).expect("h1 task 2's address");

    let dir = t.dir.clone();
    std::fs::write(dir.join("recv6.py"), RECV6_PY).expect("write the receiver");
    std::fs::write(dir.join("send6.py"), agent_support::SEND6_PY).expect("write the sender");
    let recv = dir.join("recv6.py").to_string_lossy().into_owned();
    let send = dir.join("send6.py").to_string_lossy().into_owned();
    let any_v2 = t.spawn_in_task(1, 0, &["python3", &recv, GROUP, "eth0", PORT, "-"]);
    let any_v1 = t.spawn_in_task(1, 1, &["python3", &recv, GROUP, "eth0", PORT, "-"]);
    let only_s1 = t.spawn_in_task(1, 2, &["python3", &recv, GROUP, "eth0", PORT, &s1]);
    let none = t.spawn_in_task(1, 3, &["python3", &recv, "-", "eth0", PORT, "-"]);
    let ok = t.wait_until(Duration::from_secs(5), || {
        [any_v2, any_v1, only_s1, none]
            .iter()
            .all(|p| t.proc_log(*p).contains("joined"))
    });
    assert!(ok, "receivers did not start:\n{}", t.proc_log(only_s1));
    // The controller lists h2's three member links, and h1 knows h2 as a member (one
    // remote member: the host, its links' filters merged).
    let ok = t.wait_until(Duration::from_secs(15), || spread(&t, 3));
    assert!(
        ok,
        "h1 does not know h2's IPv6 members: {:?}\n{}\n{}",
        t.domain_summary(0, VNI),
        t.api("GET", &format!("/v1/groups?group={GROUP}"), None),
        t.logs()
    );

    let count = COUNT.to_string();
    let a = t.spawn_in_task(
        0,
        0,
        &["python3", &send, GROUP, "eth0", PORT, &count, "0.02"],
    );
    let b = t.spawn_in_task(
        0,
        1,
        &["python3", &send, GROUP, "eth0", PORT, &count, "0.02"],
    );
    for p in [a, b] {
        let out = t.wait_proc(p, Duration::from_secs(10));
        assert!(out.contains(&format!("sent {COUNT}")), "sender: {out}");
    }
    let want = |v: &[String]| {
        (
            v.iter().filter(|s| **s == s1).count(),
            v.iter().filter(|s| **s == s2).count(),
        )
    };
    let ok = t.wait_until(Duration::from_secs(5), || {
        want(&received(&t, any_v2)) == (COUNT, COUNT)
            && want(&received(&t, any_v1)) == (COUNT, COUNT)
            && want(&received(&t, only_s1)) == (COUNT, 0)
    });
    for p in [any_v2, any_v1, only_s1, none] {
        t.interrupt_proc(p);
    }
    let ok_end = t.wait_until(Duration::from_secs(5), || {
        [any_v2, any_v1, only_s1, none]
            .iter()
            .all(|p| t.proc_log(*p).contains("end"))
    });
    assert!(ok_end, "receivers did not end");
    let counts = [any_v2, any_v1, only_s1, none].map(|p| received(&t, p).len());
    assert!(
        ok,
        "received {counts:?} (want {}, {}, {COUNT}, 0) from {s1} and {s2}\nh1: {}\nh2: {}\n{}",
        2 * COUNT,
        2 * COUNT,
        t.stats(0).unwrap_or_default(),
        t.metrics(1).unwrap_or_default(),
        t.logs()
    );
    assert_eq!(counts, [2 * COUNT, 2 * COUNT, COUNT, 0], "no duplicates");
    // The relay counted the group (IPv6 groups are in /metrics), as published a few
    // times a second.
    let tunnel_tx = |t: &Topo| {
        t.metric(
            0,
            "mcgate_agent_group_packets_total",
            &[("group", GROUP), ("path", "tunnel"), ("direction", "tx")],
        )
    };
    t.wait_until(Duration::from_secs(5), || tunnel_tx(&t) >= 2 * COUNT as u64);
    let sent = tunnel_tx(&t);
    assert_eq!(sent, 2 * COUNT as u64, "h1's tunnel copies");
}

/// Whether h2's member rows for `GROUP` in the controller's group table number `n`, and
/// h1 knows h2 as a member.
fn spread(t: &Topo, n: usize) -> bool {
    let path = format!("/v1/groups?group={GROUP}&host=h2");
    let rows: Value = serde_json::from_str(&t.api("GET", &path, None)).unwrap_or_default();
    let members = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["member"] == true && r["member_type"] == "mld")
        .count();
    members == n
        && t.domain_summary(0, VNI)
            .and_then(|d| d["remote_members"].as_u64())
            == Some(1)
}

/// iperf 2.1.8 over IPv6 across hosts: the server joins the group on its `eth0`
/// (`-B group%eth0`), the client sends out of its `eth0` from its link-local address.
#[test]
fn iperf2_over_ipv6_across_hosts() {
    let mut t = two_hosts(1);
    let bind = format!("{GROUP}%eth0");
    let srv = t.spawn_in_task(1, 0, &["iperf", "-s", "-u", "-V", "-B", &bind, "-i", "1"]);
    let ok = t.wait_until(Duration::from_secs(15), || spread(&t, 1));
    assert!(ok, "h1 does not know h2's member:\n{}", t.logs());
    let client = t.spawn_in_task(
        0,
        0,
        &[
            "iperf", "-c", &bind, "-u", "-V", "-T", "4", "-b", "1M", "-l", "1000", "-t", "3",
        ],
    );
    let out = t.wait_proc(client, Duration::from_secs(10));
    assert!(out.contains("datagrams") || out.contains("Sent"), "{out}");
    let reported = t.wait_until(Duration::from_secs(5), || {
        t.proc_log(srv)
            .lines()
            .any(|l| l.contains('%') && l.contains('/'))
    });
    assert!(
        reported,
        "the iperf server printed no report:\n{}",
        t.logs()
    );
    let text = t.wait_proc(srv, Duration::from_millis(10));
    let (summary, pct) = agent_support::iperf_loss(&text).unwrap_or_default();
    assert!(pct <= 1.0, "lost {pct}%: {summary}\n{text}\n{out}");
}
