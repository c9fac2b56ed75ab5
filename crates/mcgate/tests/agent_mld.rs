//! End-to-end tests of the agent's MLD querier on task links: real kernel hosts in
//! network namespaces join an IPv6 group with MLDv2 and with MLDv1, the agent's stats
//! show the group on their link with that version, their leave removes it, and the
//! agent's queries reach them (the kernel answers with a current-state report).

mod agent_support;
mod support;

use std::time::Duration;

use agent_support::Topo;
use serde_json::Value;

/// Joins an IPv6 group on an interface with a kernel socket, prints `joined`, and leaves
/// on SIGINT or SIGTERM (the kernel then sends its done or its TO_IN {} report).
const JOIN6_PY: &str = r#"
import signal, socket, struct, sys, time
group, ifname = sys.argv[1], sys.argv[2]
mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", socket.if_nametoindex(ifname))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
stop = [False]
def on_signal(*_):
    stop[0] = True
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
print("joined", flush=True)
while not stop[0]:
    time.sleep(0.05)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
print("left", flush=True)
"#;

const GROUP: &str = "ff3e::8000:1";

/// Link `link`'s `mld` object in host 0's `/v1/stats`.
fn mld_of(t: &Topo, link: &str) -> Option<Value> {
    let doc = t.stats_doc(0)?;
    doc["links"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == link)
        .map(|l| l["mld"].clone())
}

/// The compatibility version of `group` on `link`, while the agent lists it.
fn group_version(t: &Topo, link: &str, group: &str) -> Option<u64> {
    mld_of(t, link)?["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == group)
        .and_then(|g| g["version"].as_u64())
}

/// The links with a member row of [`GROUP`] in the controller's group table, sorted;
/// each row's address is an IPv6 link-local reporter.
fn member_links(t: &Topo) -> Vec<String> {
    let body = t.api("GET", &format!("/v1/groups?group={GROUP}"), None);
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    let mut links: Vec<String> = rows
        .iter()
        .filter(|r| r["member"] == true && r["member_type"] == "mld" && r["group"] == GROUP)
        .filter(|r| {
            r["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("fe80:"))
        })
        .filter_map(|r| r["interface"].as_str().map(str::to_string))
        .collect();
    links.sort();
    links
}

fn mld_querier_on_task_links(dp: &str) {
    let mut t = Topo::with_dataplanes(2, &[dp]);
    // The second task's kernel speaks MLDv1 only (RFC 2710).
    t.hosts[0].tasks[1]
        .ns
        .run(&["sysctl", "-qw", "net.ipv6.conf.eth0.force_mld_version=1"]);
    t.start_controller();
    t.create_domain("d1", 4100, "v3", false);
    t.start_agents();
    let running = |t: &Topo, link: &str| {
        mld_of(t, link).is_some_and(|m| m["state"] == "running" && m["querier"] == true)
    };
    let ok = t.wait_until(Duration::from_secs(15), || {
        running(&t, "tk1") && running(&t, "tk2")
    });
    assert!(
        ok,
        "no MLD querier on tk1 and tk2: {:?} {:?}\n{}",
        mld_of(&t, "tk1"),
        mld_of(&t, "tk2"),
        t.logs()
    );
    assert_eq!(mld_of(&t, "tk1").unwrap()["version"], 2);
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.task_link_local_ready(0, 0) && t.task_link_local_ready(0, 1)
    });
    assert!(ok, "the tasks' link-local addresses stayed tentative");

    // What the first task hears and says: the agent's queries and its kernel's answers.
    let dump = t.spawn_in_task(0, 0, &["tcpdump", "-i", "eth0", "-n", "-l", "-v", "ip6"]);
    let listening = t.dir.join(format!("proc-0-0-{dump}.log"));
    let ok = t.wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&listening).is_ok_and(|l| l.contains("listening on"))
    });
    assert!(ok, "tcpdump did not start:\n{}", t.logs());

    let script = t.dir.join("join6.py");
    std::fs::write(&script, JOIN6_PY).expect("write the script");
    let script = script.to_string_lossy().into_owned();
    let v2 = t.spawn_in_task(0, 0, &["python3", &script, GROUP, "eth0"]);
    let v1 = t.spawn_in_task(0, 1, &["python3", &script, GROUP, "eth0"]);
    let ok = t.wait_until(Duration::from_secs(10), || {
        group_version(&t, "tk1", GROUP) == Some(2) && group_version(&t, "tk2", GROUP) == Some(1)
    });
    assert!(
        ok,
        "the groups are not listed with their versions: {:?} {:?}\n{}\n{}",
        mld_of(&t, "tk1"),
        mld_of(&t, "tk2"),
        t.proc_log(v2),
        t.logs()
    );
    let tk1 = mld_of(&t, "tk1").unwrap();
    let g = &tk1["groups"][0];
    assert_eq!(g["filter"]["mode"], "exclude", "{tk1}");
    assert_eq!(g["filter"]["sources"], serde_json::json!([]), "{tk1}");
    assert!(
        tk1["counters"]["received"]["report_v2"].as_u64() > Some(0),
        "{tk1}"
    );
    assert!(tk1["frames"]["received"].as_u64() > Some(0), "{tk1}");
    let tk2 = mld_of(&t, "tk2").unwrap();
    assert!(
        tk2["counters"]["received"]["report_v1"].as_u64() > Some(0),
        "{tk2}"
    );
    // The agent tells the controller: its group table lists a member row per link,
    // with the task's link-local address as the reporter.
    let ok = t.wait_until(Duration::from_secs(10), || {
        member_links(&t) == ["tk1", "tk2"]
    });
    assert!(
        ok,
        "the controller's group table lacks the IPv6 members: {}\n{}",
        t.api("GET", &format!("/v1/groups?group={GROUP}"), None),
        t.logs()
    );

    // The agent's queries reach the task, and its kernel answers them: a current-state
    // record (IS_EX, RFC 3810 5.2.12) is only ever sent in answer to a query, unlike
    // the TO_EX of the join. Periodic queries come every 20 s with the tests' timers.
    // The agent pads its Router Alert with PadN, where the kernel's bridge querier
    // (kernel data plane), which may share the port's link-local address as the
    // bridge's, uses two Pad1.
    let agent = tk1["address"]
        .as_str()
        .expect("the query source")
        .to_string();
    let query = format!("{agent} > ff02::1: HBH (rtalert: 0x0000) (padn)");
    let answered = format!("[gaddr {GROUP} is_ex");
    let ok = t.wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&listening)
            .is_ok_and(|l| l.find(&query).is_some_and(|q| l[q..].contains(&answered)))
    });
    let queries = t.metric(
        0,
        "mcgate_agent_mld_sent_total",
        &[("link", "tk1"), ("type", "general_queries")],
    );
    assert!(
        ok && queries > 0,
        "no answered query on the wire ({queries} sent):\n{}",
        t.proc_log(dump)
    );

    // Leaves: each link is a task's veth, so each leave takes effect at once.
    t.interrupt_proc(v2);
    t.interrupt_proc(v1);
    let gone = t.wait_until(Duration::from_secs(5), || {
        group_version(&t, "tk1", GROUP).is_none() && group_version(&t, "tk2", GROUP).is_none()
    });
    assert!(
        gone,
        "the groups stayed after the leaves: {:?} {:?}\n{}",
        mld_of(&t, "tk1"),
        mld_of(&t, "tk2"),
        t.logs()
    );
    let done = t.metric(
        0,
        "mcgate_agent_mld_received_total",
        &[("link", "tk2"), ("type", "done_v1")],
    );
    assert!(done > 0, "no MLDv1 done counted");
    let ok = t.wait_until(Duration::from_secs(10), || member_links(&t).is_empty());
    assert!(
        ok,
        "the controller kept the IPv6 members after the leaves: {}",
        t.api("GET", &format!("/v1/groups?group={GROUP}"), None)
    );
    for link in ["tk1", "tk2"] {
        let specific = ["group_queries", "group_source_queries"]
            .iter()
            .map(|q| {
                t.metric(
                    0,
                    "mcgate_agent_mld_sent_total",
                    &[("link", link), ("type", q)],
                )
            })
            .sum::<u64>();
        assert_eq!(
            specific, 0,
            "address-specific queries on a task's veth {link}"
        );
    }
}

#[test]
fn the_agent_is_the_mld_querier_on_task_links() {
    mld_querier_on_task_links("userspace");
}

#[test]
fn the_agent_is_the_mld_querier_on_task_links_with_the_kernel_plane() {
    mld_querier_on_task_links("kernel");
}

/// Counts the IPv6 UDP datagrams to port 5001 that reach `eth0`: `member` joins the group
/// and reads them from a socket; `sniff` joins nothing and counts the frames a packet
/// socket sees (what the bridge delivers to a port without members). Prints `ready`,
/// `n N` for each datagram a member reads, and `count N` on SIGTERM or SIGINT.
const COUNT6_PY: &str = r#"
import signal, socket, struct, sys
mode, group = sys.argv[1], sys.argv[2]
ifindex = socket.if_nametoindex("eth0")
if mode == "member":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 5001))
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
else:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
    s.bind(("eth0", 0))
count = [0]
def report(*_):
    print("count", count[0], flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
signal.signal(signal.SIGINT, report)
print("ready", flush=True)
while True:
    data = s.recv(65536)
    if mode == "member":
        count[0] += 1
        print("n", count[0], flush=True)
    elif len(data) >= 58 and data[20] == 17 and data[56:58] == struct.pack("!H", 5001):
        count[0] += 1
"#;

/// The count a [`COUNT6_PY`] process printed, once it has.
fn counted(t: &Topo, proc: usize) -> Option<u64> {
    let log = t.proc_log(proc);
    let line = log.lines().find(|l| l.starts_with("count "))?;
    line["count ".len()..].trim().parse().ok()
}

/// The kernel data plane carries IPv6 multicast between hosts: a task on h2 joins an
/// IPv6 group with MLDv2, h1's VXLAN device gets an IPv6 MDB entry to h2 and its bridge
/// one on the VXLAN port, a task on h1 sends from its link-local address, the member
/// gets every datagram and a task on h2 that joined nothing gets none, as does a member
/// on h1 itself (the bridge's own snooping); the leave removes both entries.
#[test]
#[ignore = "fails: the entries are programmed and the snooped ones are there, but the \
            bridges under the kernel plane deliver the group to no task port, on the sending \
            host (from tk1) as on the receiving one (from the VXLAN port)"]
fn the_kernel_plane_carries_ipv6_multicast_between_hosts() {
    const G: &str = "ff3e::8000:2";
    let mut t = Topo::with_dataplanes(2, &["kernel", "kernel"]);
    t.start_controller();
    t.create_domain_tunnelled("d1", 4100, "v3", false, "vxlan");
    t.start_agents();
    let ok = t.wait_until(Duration::from_secs(15), || {
        t.task_link_local_ready(0, 0)
            && t.task_link_local_ready(0, 1)
            && t.task_link_local_ready(1, 0)
            && t.task_link_local_ready(1, 1)
    });
    assert!(ok, "the tasks' link-local addresses stayed tentative");
    let dir = t.dir.clone();
    std::fs::write(dir.join("count6.py"), COUNT6_PY).expect("write the script");
    std::fs::write(dir.join("send6.py"), agent_support::SEND6_PY).expect("write the script");
    let count6 = dir.join("count6.py").to_string_lossy().into_owned();
    let send6 = dir.join("send6.py").to_string_lossy().into_owned();
    let member = t.spawn_in_task(1, 0, &["python3", &count6, "member", G]);
    // A member on the sender's host: the bridge's own snooping delivers to it.
    let local = t.spawn_in_task(0, 1, &["python3", &count6, "member", G]);
    let other = t.spawn_in_task(1, 1, &["python3", &count6, "sniff", G]);
    // What reaches the member's link at all, whether or not its socket takes it.
    let sniff_member = t.spawn_in_task(1, 0, &["python3", &count6, "sniff", G]);
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.proc_log(member).contains("ready") && t.proc_log(other).contains("ready")
    });
    assert!(ok, "the counters did not start:\n{}", t.logs());

    // h1's tables: one VXLAN entry (to h2: its tunnel address, the domain being a
    // WireGuard one) and the bridge entry on the VXLAN port, as the kernel lists them.
    let group: std::net::IpAddr = G.parse().expect("group");
    let programmed = |t: &Topo| {
        t.kernel_tables(0, 4100).is_some_and(|k| {
            k.vxlan_entries.iter().filter(|e| e.group == group).count() == 1
                && k.bridge_groups.contains(&group)
        })
    };
    let ok = t.wait_until(Duration::from_secs(15), || programmed(&t));
    assert!(
        ok,
        "h1 never programmed {G}: {:?}\n{}",
        t.kernel_tables(0, 4100).map(|k| k.to_string()),
        t.logs()
    );
    let show = t.hosts[0]
        .ns
        .output(&["bridge", "-d", "mdb", "show", "dev", "mcgvx4100"]);
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.lines()
            .any(|l| l.contains("port mcgvx4100") && l.contains(&format!("grp {G}"))),
        "{show}"
    );
    assert!(
        t.bridge_member_ports(0, G).contains("mcgvx4100"),
        "no bridge entry for {G} on h1's VXLAN port"
    );

    let sender = t.spawn_in_task(0, 0, &["python3", &send6, G, "eth0", "5001", "50", "0.02"]);
    let out = t.wait_proc(sender, Duration::from_secs(20));
    assert!(out.contains("sent 50"), "{out}");
    // Every datagram reaches the member: wait for the 50th before stopping the counters.
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.proc_log(member).lines().any(|l| l == "n 50")
            && t.proc_log(local).lines().any(|l| l == "n 50")
    });
    t.interrupt_proc(member);
    t.interrupt_proc(other);
    t.interrupt_proc(sniff_member);
    t.interrupt_proc(local);
    let done = t.wait_until(Duration::from_secs(5), || counted(&t, member).is_some());
    assert!(done, "the member never reported:\n{}", t.proc_log(member));
    assert!(ok, "not every datagram arrived:\n{}", t.logs());
    let ok = t.wait_until(Duration::from_secs(5), || counted(&t, other).is_some());
    assert!(ok, "the sniffer never reported:\n{}", t.proc_log(other));
    assert_eq!(counted(&t, member), Some(50), "{}", t.logs());
    let done = t.wait_until(Duration::from_secs(5), || counted(&t, local).is_some());
    assert!(done, "the local member never reported");
    assert_eq!(counted(&t, local), Some(50), "local delivery on h1");
    assert_eq!(
        counted(&t, other),
        Some(0),
        "a non-member received the group"
    );

    // The member's socket closed: its kernel sends TO_IN {}, h2's agent tells the
    // controller, and h1 removes both entries.
    let ok = t.wait_until(Duration::from_secs(15), || {
        t.kernel_tables(0, 4100).is_some_and(|k| {
            k.vxlan_entries.iter().all(|e| e.group != group) && !k.bridge_groups.contains(&group)
        })
    });
    assert!(
        ok,
        "h1 kept {G} after the leave: {:?}",
        t.kernel_tables(0, 4100).map(|k| k.to_string())
    );
}
