//! End-to-end test of the upstream interface (`mcgate agent --upstream`, an IGMP proxy
//! after RFC 4605): an "exchange" namespace reachable only from the gateway host h1,
//! with a real upstream querier (FRR's zebra and pimd, `ip igmp` on its interface) and a
//! real sender (iperf 2). A task on h2 joins a feed group with `mcgate perf recv`; the
//! gateway reports the domain's membership upstream (seen in FRR's own group table),
//! the feed enters the domain at h1 and reaches h2; the task's leave makes the gateway
//! leave upstream. Nothing of the domain's goes out upstream (egress is off).

mod agent_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{Flow, Topo};
use serde_json::Value;
use support::{Netns, veth};

const FEED: &str = "233.252.0.7";
const EXCHANGE_IP: &str = "192.0.2.1";
const GATEWAY_IP: &str = "192.0.2.2";
/// A second sender's address on the exchange's link, for source-specific feeds.
const EXCHANGE_IP2: &str = "192.0.2.3";
/// A source-specific (SSM, 232.0.0.0/8) feed group sent by both exchange addresses.
const SSM_FEED: &str = "232.1.1.1";

/// FRR's configuration: IGMP querier on `eth0` with short timers, so the test sees
/// queries and leaves within seconds (intervals in deciseconds where FRR takes them);
/// the version line follows.
const FRR_CONF: &str = "hostname exchange
interface eth0
 ip pim
 ip igmp
 ip igmp query-max-response-time 20
 ip igmp query-interval 5
 ip igmp last-member-query-interval 5
 ip igmp last-member-query-count 2
";

/// Counts, for `secs` seconds, the IPv4 frames on `eth0` whose source is `argv[1]`
/// (a capture: it joins nothing, so FRR's table is not touched), or until SIGINT, then
/// prints the count.
const COUNT_PY: &str = r#"
import signal, socket, sys, time
src, secs = socket.inet_aton(sys.argv[1]), float(sys.argv[2])
stop = [False]
def on_int(*_):
    stop[0] = True
signal.signal(signal.SIGINT, on_int)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
s.settimeout(0.1)
print("capturing", flush=True)
n = 0
end = time.time() + secs
while not stop[0] and time.time() < end:
    try:
        f = s.recv(65535)
    except (socket.timeout, InterruptedError):
        continue
    if len(f) >= 30 and f[26:30] == src:
        n += 1
print("frames=%d" % n, flush=True)
"#;

/// FRR in the exchange namespace: zebra and pimd in the foreground (their processes
/// are the namespace's children, killed by PID when it is dropped), every path in `dir`.
struct Frr {
    ns: String,
    dir: PathBuf,
}

impl Frr {
    fn vtysh(&self, command: &str) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", command])
            .output()
            .expect("run vtysh");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The groups in FRR's IGMP table on `eth0`.
    fn groups(&self) -> Vec<String> {
        let doc = self.vtysh("show ip igmp groups json");
        doc["eth0"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["group"].as_str().map(str::to_string))
            .collect()
    }

    /// The groups in FRR's IGMP table on `eth0` with the version FRR heard them in.
    fn group_versions(&self) -> Vec<(String, u64)> {
        let doc = self.vtysh("show ip igmp groups json");
        doc["eth0"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| Some((g["group"].as_str()?.to_string(), g["version"].as_u64()?)))
            .collect()
    }

    /// The sources FRR's IGMPv3 table holds for `group` on `eth0` (source-specific
    /// joins; `*` for an any-source one).
    fn sources(&self, group: &str) -> Vec<String> {
        let doc = self.vtysh("show ip igmp sources json");
        let mut out: Vec<String> = doc["eth0"][group]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["source"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Whether FRR is the querier on `eth0`.
    fn querier(&self) -> bool {
        self.vtysh("show ip igmp interface json")["eth0"]["querier"] == Value::Bool(true)
    }
}

fn start_frr(ns: &mut Netns, dir: &Path, version: u8) -> Frr {
    assert!(
        Path::new("/usr/lib/frr/pimd").exists(),
        "this test needs FRR (Debian package frr; scripts/test installs it)"
    );
    std::fs::create_dir_all(dir).expect("FRR dir");
    let conf = format!("{FRR_CONF} ip igmp version {version}\n");
    std::fs::write(dir.join("frr.conf"), conf).expect("FRR config");
    // The daemons drop to the frr user, which must write its pid files and sockets.
    support::sh(&["chown", "-R", "frr:frr", dir.to_str().expect("utf-8 path")]);
    let d = dir.to_str().expect("utf-8 path").to_string();
    let name = ns.name.clone();
    for daemon in ["zebra", "pimd"] {
        ns.spawn(&[
            &format!("/usr/lib/frr/{daemon}"),
            "-N",
            &name,
            "-f",
            &format!("{d}/frr.conf"),
            "-i",
            &format!("{d}/{daemon}.pid"),
            "-z",
            &format!("{d}/zserv.api"),
            "--vty_socket",
            &d,
            "-u",
            "frr",
            "-g",
            "frr",
            "--log",
            &format!("file:{d}/{daemon}.log"),
        ]);
        // pimd connects to zebra's socket: start it once zebra listens.
        let zserv = dir.join("zserv.api");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zserv.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(zserv.exists(), "zebra did not start");
    }
    Frr {
        ns: name,
        dir: dir.to_path_buf(),
    }
}

/// Counts, for `argv[1]` seconds or until SIGINT, the UDP frames to multicast groups on
/// `eth0` by (source, group, TTL), then prints them as JSON (a capture: it joins
/// nothing).
const TTL_PY: &str = r#"
import json, signal, socket, sys, time
secs = float(sys.argv[1])
stop = [False]
def on_int(*_):
    stop[0] = True
signal.signal(signal.SIGINT, on_int)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
s.settimeout(0.1)
print("capturing", flush=True)
seen = {}
end = time.time() + secs
while not stop[0] and time.time() < end:
    try:
        f = s.recv(65535)
    except (socket.timeout, InterruptedError):
        continue
    if len(f) < 34 or f[23] != 17 or f[30] < 224 or f[30] > 239:
        continue
    key = "%s %s %d" % (socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34]), f[22])
    seen[key] = seen.get(key, 0) + 1
print(json.dumps(seen), flush=True)
"#;

/// The deployment: h1 the gateway (its `up0` on the exchange's link), h2 with two
/// tasks, the exchange namespace with FRR as querier of IGMP `version`, heard by the
/// gateway before this returns.
fn deployment(version: u8) -> (Topo, Netns, Frr) {
    deployment_with(version, &[])
}

/// [`deployment`] with more flags for the gateway's agent.
fn deployment_with(version: u8, extra: &[&str]) -> (Topo, Netns, Frr) {
    support::require_root();
    let mut t = Topo::with_dataplanes(2, &["userspace", "userspace"]);
    let mut exchange = Netns::new("agent");
    veth(
        &exchange,
        "eth0",
        &format!("{EXCHANGE_IP}/24"),
        &t.hosts[0].ns,
        "up0",
        &format!("{GATEWAY_IP}/24"),
    );
    exchange.run(&["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"]);
    let frr_dir = t.dir.join("frr");
    // A second source's address (FRR may query from either).
    let second = format!("{EXCHANGE_IP2}/24");
    exchange.run(&["ip", "addr", "add", &second, "dev", "eth0"]);
    let ranges = "233.252.0.0/24,232.1.1.0/24";
    t.hosts[0].agent_args = ["--upstream", "up0", "--upstream-groups", ranges]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
    t.start_controller();
    t.create_domain("feeds", 100, "v3", false);
    t.start_agents();
    let frr = start_frr(&mut exchange, &frr_dir, version);
    let ok = t.wait_until(Duration::from_secs(15), || frr.querier());
    assert!(ok, "FRR never became querier on {}", exchange.name);
    // The gateway hears the upstream querier (in its version) and answers it; it never
    // queries there.
    let ok = t.wait_until(Duration::from_secs(15), || {
        t.stats_doc(0).is_some_and(|d| {
            let q = &d["upstream"]["querier"];
            (q == EXCHANGE_IP || q == EXCHANGE_IP2) && d["upstream"]["igmp_version"] == version
        })
    });
    assert!(
        ok,
        "the gateway never heard FRR's queries: {:?}\n{}",
        t.stats_doc(0).map(|d| d["upstream"].clone()),
        t.logs()
    );
    assert!(frr.groups().iter().all(|g| g != FEED));
    (t, exchange, frr)
}

#[test]
fn gateway_proxies_membership_to_frr_and_brings_the_feed_into_the_domain() {
    // h1 is the gateway; h2's first task receives the feed, its second sends inside
    // the domain (for the egress check); h1's task is a local member then.
    let (mut t, exchange, frr) = deployment(3);

    // A task on h2 joins the feed: the gateway reports it upstream.
    let bin = agent_support::binary();
    let joined = Instant::now();
    let recv = t.spawn_in_task(
        1,
        0,
        &[
            &bin,
            "perf",
            "recv",
            "--group",
            FEED,
            "--interval",
            "1",
            "--json",
        ],
    );
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.groups().iter().any(|g| g == FEED)
    });
    assert!(ok, "FRR never saw the gateway join {FEED}\n{}", t.logs());
    eprintln!("join on h2 to FRR's table: {:?}", joined.elapsed());

    // The group table names h1 as the feed's gateway (no source seen yet).
    let gateway = t.hosts[0].name.clone();
    let ok = t.wait_until(Duration::from_secs(10), || {
        upstream_rows(&t).iter().any(|r| {
            r["group"] == FEED
                && r["host"] == gateway.as_str()
                && r["interface"] == "up0"
                && r["address"].is_null()
        })
    });
    assert!(ok, "no gateway row for {FEED}: {:?}", upstream_rows(&t));

    // A real sender upstream: the feed enters the domain at h1 and reaches h2.
    let iperf = exchange_iperf(&mut t, &exchange);
    let ok = t.wait_until(Duration::from_secs(15), || {
        t.proc_log(recv).lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["datagrams"].as_u64().unwrap_or(0) > 0)
        })
    });
    assert!(ok, "the feed never reached h2\n{}", t.logs());
    // The source the gateway's relay sees arriving is in the group table, in place of
    // the gateway's row without an address.
    let ok = t.wait_until(Duration::from_secs(10), || {
        let rows = upstream_rows(&t);
        rows.len() == 1
            && rows[0]["group"] == FEED
            && rows[0]["host"] == gateway.as_str()
            && rows[0]["address"] == EXCHANGE_IP
            && rows[0]["source"] == true
    });
    assert!(ok, "no upstream source row: {:?}", upstream_rows(&t));
    let rx = t.metric(
        0,
        "mcgate_agent_link_packets",
        &[("link", "up0"), ("direction", "rx")],
    );
    assert!(rx > 0, "no upstream packets counted on h1");
    let tx = t.metric(
        0,
        "mcgate_agent_link_packets",
        &[("link", "up0"), ("direction", "tx")],
    );
    assert_eq!(tx, 0, "nothing may leave on the upstream interface");
    t.wait_proc(iperf, Duration::from_secs(20));

    // Egress is off: traffic of the domain's own sources never goes upstream, even to
    // a group in the ranges that h1 has a local member of.
    let src = t.hosts[1].tasks[1].ip.clone();
    let count_py = t.dir.join("count.py");
    std::fs::write(&count_py, COUNT_PY).expect("write capture script");
    let watch = t.spawn_in_ns(
        &exchange,
        &[
            "python3",
            count_py.to_str().expect("utf-8 path"),
            &src,
            "30",
        ],
    );
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.proc_log(watch).contains("capturing")
    });
    assert!(ok, "capture did not start");
    let local = t.receiver(0, 0, FEED, 30.0, "any", &[]);
    let s = t.sender(
        1,
        1,
        Flow {
            group: FEED,
            count: 50,
            interval: 0.02,
            ttl: 5,
            size: 100,
        },
    );
    t.wait_proc(s, Duration::from_secs(15));
    // The local member of h1 gets all 50 copies over the tunnel; the exchange none.
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.metric(
            0,
            "mcgate_agent_link_packets",
            &[("link", "tk1"), ("direction", "tx")],
        ) >= 50
    });
    assert!(
        ok,
        "h1's local member did not get the domain's traffic\n{}",
        t.logs()
    );
    let got = t.received(local, Duration::ZERO);
    assert_eq!(got.from(&src), 50, "{got:?}");
    t.interrupt_proc(watch);
    let text = t.wait_proc(watch, Duration::from_secs(5));
    assert!(
        text.contains("frames=0"),
        "domain traffic left upstream: {text}"
    );
    assert_eq!(
        t.metric(
            0,
            "mcgate_agent_link_packets",
            &[("link", "up0"), ("direction", "tx")]
        ),
        0
    );
    // h1's own member left; wait until the gateway no longer counts it.
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.stats_doc(0).is_some_and(|d| {
            d["links"].as_array().is_some_and(|l| {
                l.iter()
                    .all(|l| l["groups"].as_array().is_none_or(Vec::is_empty))
            })
        })
    });
    assert!(ok, "h1's local membership did not end\n{}", t.logs());

    // The last member leaves: the gateway leaves upstream and FRR drops the group.
    assert!(frr.groups().iter().any(|g| g == FEED));
    let left = Instant::now();
    t.interrupt_proc(recv);
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.groups().iter().all(|g| g != FEED)
    });
    assert!(
        ok,
        "FRR kept {FEED} after the last member left\n{}",
        t.logs()
    );
    eprintln!(
        "leave on h2 to FRR dropping the group: {:?}",
        left.elapsed()
    );
    let doc = t.stats_doc(0).expect("h1 stats");
    let up = &doc["upstream"];
    assert_eq!(up["igmp_version"], 3);
    assert!(up["igmp"]["reports_v3"].as_u64().unwrap_or(0) >= 2, "{up}");
    assert!(up["igmp"]["queries_v3"].as_u64().unwrap_or(0) >= 1, "{up}");
    assert_eq!(up["membership"], Value::Array(vec![]));
    let reports = t.metric(
        0,
        "mcgate_agent_upstream_igmp",
        &[("interface", "up0"), ("kind", "reports_v3")],
    );
    assert!(reports >= 2, "reports_v3 in /metrics: {reports}");
    drop(exchange);
}

/// The rows of type `upstream` in the controller's group table.
fn upstream_rows(t: &Topo) -> Vec<Value> {
    let body = t.api("GET", "/v1/groups?type=upstream", None);
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    assert!(
        rows.iter().all(|r| r["source_type"] == "upstream"),
        "{rows:?}"
    );
    rows
}

/// FRR's Group Membership Interval in these tests (RFC 3376 8.4: Robustness Variable 2
/// x Query Interval 5 s + Query Response Interval 2 s): how long FRR would keep a group
/// whose member went silent.
const FRR_GMI: Duration = Duration::from_secs(12);

/// Stops the gateway's agent (SIGTERM) while a task still wants the feed, and measures
/// how long FRR keeps the group: the agent's leave makes FRR run its last-member
/// queries (2 x 500 ms) instead of waiting for its Group Membership Interval.
fn stop_gateway_and_time_the_drop(t: &mut Topo, frr: &Frr) -> Duration {
    assert!(frr.groups().iter().any(|g| g == FEED));
    let stopped = Instant::now();
    t.stop_agent(0);
    let exit = stopped.elapsed();
    let ok = t.wait_until(FRR_GMI, || frr.groups().iter().all(|g| g != FEED));
    let dropped = stopped.elapsed();
    assert!(
        ok,
        "FRR kept {FEED} for its whole membership interval after the gateway stopped\n{}",
        t.logs()
    );
    eprintln!("gateway stop (exited after {exit:?}) to FRR dropping the group: {dropped:?}");
    assert!(
        dropped < FRR_GMI / 2,
        "FRR dropped {FEED} {dropped:?} after the stop: a timeout, not a leave"
    );
    let log = agent_support::read(&t.dir.join(format!("agent-{}-1.log", t.hosts[0].name)));
    assert!(
        log.contains("left every upstream group"),
        "the gateway did not leave\n{log}"
    );
    dropped
}

/// RFC 4605 4.1, RFC 3376 5.1: a gateway that stops gracefully leaves upstream every
/// group it reported (IGMPv3: a state change to INCLUDE {}), though a task still wants
/// it: FRR drops the group within its last-member queries.
#[test]
fn gateway_leaves_upstream_when_it_stops() {
    let (mut t, _exchange, frr) = deployment(3);
    let bin = agent_support::binary();
    let _recv = t.spawn_in_task(1, 0, &[&bin, "perf", "recv", "--group", FEED]);
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.groups().iter().any(|g| g == FEED)
    });
    assert!(ok, "FRR never saw the gateway join {FEED}\n{}", t.logs());
    // The join's repeats are done, so the leave is the last word.
    std::thread::sleep(Duration::from_secs(2));
    stop_gateway_and_time_the_drop(&mut t, &frr);
}

/// Egress (`--upstream-egress`): the domain's traffic leaves on the upstream interface
/// only for the allowed ranges, as a routed hop (TTL decremented; TTL 1 dropped and
/// counted), from a sender on the gateway host and, through the tunnel, from a sender
/// on another host, whether the gateway host has a member of the group or not. (Off by
/// default: the first test.)
#[test]
fn egress_leaves_only_for_allowed_ranges_with_the_ttl_decremented() {
    const ALLOWED: &str = "239.20.0.1";
    const OTHER: &str = "239.30.0.1";
    let (mut t, exchange, _frr) = deployment_with(3, &["--upstream-egress", "239.20.0.0/16"]);
    let script = t.dir.join("ttl.py");
    std::fs::write(&script, TTL_PY).expect("write capture script");
    let watch = t.spawn_in_ns(
        &exchange,
        &["python3", script.to_str().expect("utf-8 path"), "60"],
    );
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.proc_log(watch).contains("capturing")
    });
    assert!(ok, "capture did not start");
    let local = t.hosts[0].tasks[0].ip.clone();
    let remote = t.hosts[1].tasks[0].ip.clone();
    let flow = |group, count, ttl| Flow {
        group,
        count,
        interval: 0.01,
        ttl,
        size: 100,
    };
    // A sender on the gateway host: allowed with TTL 5, allowed with TTL 1, and a group
    // outside the egress ranges.
    for (group, count, ttl) in [(ALLOWED, 30, 5), (ALLOWED, 20, 1), (OTHER, 20, 5)] {
        let s = t.sender(0, 0, flow(group, count, ttl));
        t.wait_proc(s, Duration::from_secs(15));
    }
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.metric(
            0,
            "mcgate_agent_link_drops",
            &[("link", "up0"), ("reason", "ttl_expired")],
        ) >= 20
    });
    assert!(ok, "TTL-1 copies not counted as ttl_expired\n{}", t.logs());
    // A sender on h2 reaches the gateway (and so the exchange) though h1 has no member:
    // h2 knows h1's egress ranges from the controller.
    let via = format!("239.20.0.0/16 via {}", t.hosts[0].name);
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.stats_doc(1).is_some_and(|d| {
            d["domains"][0]["egress"]
                .as_array()
                .is_some_and(|e| e.iter().any(|r| *r == via.as_str()))
        })
    });
    assert!(ok, "h2 never learned h1's egress range\n{}", t.logs());
    let s = t.sender(1, 0, flow(ALLOWED, 20, 5));
    t.wait_proc(s, Duration::from_secs(15));
    // And while h1 has a member: one copy upstream, one to the member.
    let member = t.receiver(0, 1, ALLOWED, 30.0, "any", &[]);
    let gateway = t.hosts[0].name.clone();
    let ok = t.wait_until(Duration::from_secs(10), || {
        t.api("GET", &format!("/v1/groups?group={ALLOWED}"), None)
            .contains(&format!("\"host\":\"{gateway}\""))
    });
    assert!(ok, "h1's member of {ALLOWED} never showed\n{}", t.logs());
    // h2 tunnels the group to h1 for egress already; h1 delivers to its member too.
    let s = t.sender(1, 0, flow(ALLOWED, 20, 5));
    t.wait_proc(s, Duration::from_secs(15));
    let ok = t.wait_until(Duration::from_secs(5), || {
        t.metric(
            0,
            "mcgate_agent_link_packets",
            &[("link", "up0"), ("direction", "tx")],
        ) >= 70
    });
    assert!(ok, "egress copies not counted\n{}", t.logs());
    std::thread::sleep(Duration::from_millis(500));
    t.interrupt_proc(watch);
    let text = t.wait_proc(watch, Duration::from_secs(5));
    let seen: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    let n = |src: &str, group: &str, ttl: u8| seen[format!("{src} {group} {ttl}")].as_u64();
    assert_eq!(n(&local, ALLOWED, 4), Some(30), "{seen}");
    assert_eq!(n(&remote, ALLOWED, 4), Some(40), "{seen}");
    // Nothing else of the domain's: no TTL-1 copy, no group outside the ranges.
    let domain_keys: Vec<&String> = seen
        .as_object()
        .map(|o| o.keys().filter(|k| k.starts_with("10.")).collect())
        .unwrap_or_default();
    assert_eq!(domain_keys.len(), 2, "{seen}");
    let got = t.received(member, Duration::ZERO);
    assert_eq!(got.from(&remote), 20, "{got:?}");
}

/// Starts iperf 2 in the exchange namespace sending the feed (TTL 5, 8 s, 1000-byte
/// datagrams: a 1470-byte one and the tunnel's overhead would pass the 1500-byte
/// underlay, and be dropped as `too_big`).
fn exchange_iperf(t: &mut Topo, ns: &Netns) -> usize {
    t.spawn_in_ns(
        ns,
        &[
            "iperf",
            "-c",
            FEED,
            "-u",
            "-T",
            "5",
            "-t",
            "8",
            "-b",
            "200k",
            "-l",
            "1000",
            "-B",
            EXCHANGE_IP,
        ],
    )
}

/// RFC 4605 4.1 and RFC 3376 7.2.1: behind an IGMPv2 querier the gateway reports in
/// IGMPv2 (FRR's table says which version it heard) and leaves with a Leave Group.
#[test]
fn gateway_speaks_igmpv2_to_an_igmpv2_querier() {
    let (mut t, _exchange, frr) = deployment(2);
    let bin = agent_support::binary();
    let recv = t.spawn_in_task(1, 0, &[&bin, "perf", "recv", "--group", FEED]);
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.group_versions()
            .iter()
            .any(|(g, v)| g == FEED && *v == 2)
    });
    assert!(ok, "FRR never saw an IGMPv2 join of {FEED}\n{}", t.logs());
    let left = Instant::now();
    t.interrupt_proc(recv);
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.groups().iter().all(|g| g != FEED)
    });
    assert!(
        ok,
        "FRR kept {FEED} after the last member left\n{}",
        t.logs()
    );
    eprintln!(
        "IGMPv2: leave on h2 to FRR dropping the group: {:?}",
        left.elapsed()
    );
    let doc = t.stats_doc(0).expect("h1 stats");
    let igmp = &doc["upstream"]["igmp"];
    assert!(igmp["reports_v2"].as_u64().unwrap_or(0) >= 1, "{igmp}");
    assert!(igmp["leaves_v2"].as_u64().unwrap_or(0) >= 1, "{igmp}");
    assert_eq!(igmp["reports_v3"], 0, "{igmp}");

    // A task joins again, and the gateway stops: its leave is an IGMPv2 Leave Group.
    let _recv = t.spawn_in_task(1, 0, &[&bin, "perf", "recv", "--group", FEED]);
    let ok = t.wait_until(Duration::from_secs(15), || {
        frr.groups().iter().any(|g| g == FEED)
    });
    assert!(ok, "FRR never saw the second join of {FEED}\n{}", t.logs());
    std::thread::sleep(Duration::from_secs(2));
    stop_gateway_and_time_the_drop(&mut t, &frr);
}

/// Starts iperf 2 in the exchange namespace sending `group` from `source` (5 s, 100
/// datagrams a second of 1000 bytes). TTL 1: FRR's kernel multicast routing sees the
/// exchange's own packets too, and would forward a second copy of any with a larger
/// TTL onto the link once the gateway joined (S,G).
fn exchange_sender(t: &mut Topo, ns: &Netns, group: &str, source: &str) -> usize {
    t.spawn_in_ns(
        ns,
        &[
            "iperf", "-c", group, "-u", "-T", "1", "-t", "5", "-b", "800k", "-l", "1000", "-B",
            source,
        ],
    )
}

/// Waits (15 s at most) until FRR's source table for [`SSM_FEED`] is exactly `want`
/// (sorted), after `what`; fails with FRR's table and the logs.
fn wait_for_sources(t: &Topo, frr: &Frr, want: &[&str], what: &str) {
    let ok = t.wait_until(Duration::from_secs(15), || frr.sources(SSM_FEED) == want);
    assert!(
        ok,
        "after {what}, FRR's sources for {SSM_FEED} never became {want:?}: {:?}\n{}",
        frr.vtysh("show ip igmp sources json"),
        t.logs()
    );
}

/// RFC 4605 4.1 with RFC 3376 source filters (an SSM feed, 232.0.0.0/8): two sources on
/// the exchange send one group; tasks on h2 each join it for one source (IGMPv3
/// INCLUDE). The gateway reports INCLUDE with exactly the sources the domain wants
/// (seen in FRR's source table), each task gets its source's datagrams and none of the
/// other's, and when one task leaves, the gateway blocks its source upstream and keeps
/// the other.
#[test]
fn ssm_feeds_are_joined_upstream_per_source_and_filtered_per_member() {
    let (mut t, exchange, frr) = deployment(3);

    let first = t.receiver(1, 0, SSM_FEED, 60.0, "include", &[EXCHANGE_IP]);
    wait_for_sources(&t, &frr, &[EXCHANGE_IP], "the first join");
    let second = t.receiver(1, 1, SSM_FEED, 60.0, "include", &[EXCHANGE_IP2]);
    wait_for_sources(&t, &frr, &[EXCHANGE_IP, EXCHANGE_IP2], "the second join");
    // The merged membership the gateway reports: INCLUDE {both}.
    let doc = t.stats_doc(0).expect("h1 stats");
    let reported = doc["upstream"]["membership"].to_string();
    assert!(
        reported.contains(EXCHANGE_IP) && reported.contains(EXCHANGE_IP2),
        "{reported}"
    );

    // Both sources send; each task gets its own source only.
    let a = exchange_sender(&mut t, &exchange, SSM_FEED, EXCHANGE_IP);
    let b = exchange_sender(&mut t, &exchange, SSM_FEED, EXCHANGE_IP2);
    for p in [a, b] {
        t.wait_proc(p, Duration::from_secs(20));
    }
    // Wait until h2's task links carried everything the gateway took in of the feed
    // (each datagram goes to exactly one of them), so late ones are counted too.
    let ok = t.wait_until(Duration::from_secs(5), || {
        let took = t.stats_doc(0).and_then(|d| {
            d["groups"]
                .as_array()?
                .iter()
                .find(|g| g["group"] == SSM_FEED)?["rx_local"]["packets"]
                .as_u64()
        });
        let tx = |link: &str| {
            t.metric(
                1,
                "mcgate_agent_link_packets",
                &[("link", link), ("direction", "tx")],
            )
        };
        let delivered = tx(&t.hosts[1].tasks[0].link) + tx(&t.hosts[1].tasks[1].link);
        took.is_some_and(|n| n > 0 && delivered >= n)
    });
    assert!(
        ok,
        "h2 did not deliver what the gateway took in\n{}",
        t.logs()
    );
    let leave_at = Instant::now();
    let got1 = t.received(first, Duration::ZERO);
    assert!(got1.from(EXCHANGE_IP) > 0, "{got1:?}");
    assert_eq!(got1.from(EXCHANGE_IP2), 0, "{got1:?}");

    // The first task left: the gateway blocks its source upstream and keeps the other.
    wait_for_sources(&t, &frr, &[EXCHANGE_IP2], "the first task's leave");
    eprintln!(
        "SSM: a source's last member left to FRR dropping it: {:?}",
        leave_at.elapsed()
    );
    let got2 = t.received(second, Duration::ZERO);
    assert!(got2.from(EXCHANGE_IP2) > 0, "{got2:?}");
    assert_eq!(got2.from(EXCHANGE_IP), 0, "{got2:?}");
}
