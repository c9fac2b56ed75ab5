//! End-to-end test of the gateway election: two gateway hosts (h1, h2) on one
//! "exchange" bridge (Linux bridge with its IGMPv3 querier and snooping, a `mcgate perf
//! send` of the feed), both registered for the feed's range. The controller elects one;
//! only it reports the membership upstream and takes the feed in, so a task on h3
//! receives each datagram once. The elected gateway's agent is killed (SIGKILL): the
//! controller elects the other (early through peer liveness, or when its lease runs
//! out), and the feed resumes through it, still without duplicates. Cut off from the
//! controller instead, the elected gateway fences itself before the other is elected.

mod agent_support;
mod support;

use std::time::{Duration, Instant};

use agent_support::Topo;
use serde_json::Value;
use support::{Netns, veth};

const FEED: &str = "233.252.0.7";
const RANGE: &str = "233.252.0.0/24";
const EXCHANGE_IP: &str = "192.0.2.1";
const LEASE_MS: u64 = 3_000;

/// The interval lines (and the final summary) `mcgate perf recv --json` printed.
fn recv_lines(t: &Topo, idx: usize) -> Vec<Value> {
    t.proc_log(idx)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["datagrams"].is_u64())
        .collect()
}

/// Which gateway hosts the controller says are elected for the range.
fn elected(t: &Topo) -> Vec<String> {
    let body = t.api("GET", "/v1/agents", None);
    let agents: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    agents
        .iter()
        .filter(|a| {
            a["state"] == "up"
                && a["elected_for"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r == RANGE))
        })
        .filter_map(|a| a["host"].as_str().map(str::to_string))
        .collect()
}

/// The exchange bridge's ports that joined the feed (its snooping table).
fn joined_ports(exchange: &Netns) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &exchange.name,
            "bridge",
            "-j",
            "mdb",
            "show",
        ])
        .output()
        .expect("bridge mdb");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    doc.as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["mdb"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["grp"] == FEED)
        .filter_map(|e| e["port"].as_str().map(str::to_string))
        .collect()
}

fn role(t: &Topo, h: usize) -> Option<String> {
    t.stats_doc(h).and_then(|d| {
        d["upstream"]["gateway"]["role"]
            .as_str()
            .map(str::to_string)
    })
}

/// The peer-liveness path (the default): the dead gateway's peers report it and the
/// controller removes it once its heartbeats stopped for --peer-confirm-ms, well
/// before its lease runs out.
/// How the elected gateway fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Its agent is killed (SIGKILL).
    Killed,
    /// Its agent lives on, but nothing of it reaches the controller any more (an
    /// nftables rule in its namespace drops its packets to the controller).
    CutOff,
}

#[test]
fn two_gateways_forward_one_at_a_time_and_a_dead_one_is_replaced_early() {
    let gap = two_gateways(&[], Failure::Killed);
    assert!(gap < LEASE_MS as f64 / 1000.0, "took {gap:.2} s");
}

/// The lease alone (--peer-confirm-ms 0): the takeover waits for the dead gateway's
/// lease.
#[test]
fn two_gateways_forward_one_at_a_time_and_the_second_takes_over_within_a_lease() {
    let gap = two_gateways(&["--peer-confirm-ms", "0"], Failure::Killed);
    assert!(
        gap >= 1.0,
        "took {gap:.2} s: the lease alone cannot be that quick"
    );
}

/// Fencing: an elected gateway that still runs but lost the controller stops
/// forwarding when its lease may have run out, before the controller elects the other,
/// so the two never both bring the feed in (no duplicate).
#[test]
fn an_elected_gateway_cut_off_from_the_controller_stops_before_the_other_starts() {
    let gap = two_gateways(&[], Failure::CutOff);
    assert!(gap < 2.0, "took {gap:.2} s from the fence");
}

/// Runs the deployment with `ctl_extra` controller flags, fails the elected gateway and
/// checks delivery; returns the seconds from the kill to the feed's resumption.
fn two_gateways(ctl_extra: &[&str], failure: Failure) -> f64 {
    support::require_root();
    let mut t = Topo::with_dataplanes(1, &["userspace", "userspace", "userspace"]);
    let exchange = Netns::new("agent");
    let sh = |args: &[&str]| exchange.run(args);
    sh(&[
        "ip",
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "0",
        "mcast_snooping",
        "1",
        "mcast_querier",
        "1",
        "mcast_query_use_ifaddr",
        "1",
        "mcast_igmp_version",
        "3",
        "mcast_query_interval",
        "1000",
        "mcast_query_response_interval",
        "200",
        "mcast_last_member_interval",
        "50",
    ]);
    sh(&[
        "ip",
        "addr",
        "add",
        &format!("{EXCHANGE_IP}/24"),
        "dev",
        "br0",
    ]);
    sh(&["ip", "link", "set", "br0", "up"]);
    for (h, port) in [(0usize, "gw1"), (1, "gw2")] {
        veth(
            &exchange,
            port,
            "",
            &t.hosts[h].ns,
            "up0",
            &format!("192.0.2.{}/24", h + 2),
        );
        sh(&["ip", "link", "set", port, "master", "br0"]);
        t.hosts[h].agent_args = ["--upstream", "up0", "--upstream-groups", RANGE]
            .iter()
            .map(|a| a.to_string())
            .collect();
    }
    sh(&["ip", "route", "add", "224.0.0.0/4", "dev", "br0"]);
    t.controller_args = vec![
        "--lease-ms".into(),
        LEASE_MS.to_string(),
        "--heartbeat-ms".into(),
        "500".into(),
    ];
    t.controller_args
        .extend(ctl_extra.iter().map(|a| a.to_string()));
    t.start_controller();
    t.create_domain("feeds", 100, "v3", false);
    t.start_agents();

    // One gateway is elected; its agent says active, the other standby.
    let ok = t.wait_until(Duration::from_secs(15), || elected(&t).len() == 1);
    assert!(
        ok,
        "no gateway elected: {}",
        t.api("GET", "/v1/agents", None)
    );
    let first = elected(&t)[0].clone();
    let e = t
        .hosts
        .iter()
        .position(|h| h.name == first)
        .expect("elected host");
    let o = 1 - e;
    // The standby one says who is elected.
    let because = |t: &Topo| {
        t.stats_doc(o)
            .map(|d| {
                d["upstream"]["gateway"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let ok = t.wait_until(Duration::from_secs(10), || {
        role(&t, e).as_deref() == Some("active")
            && role(&t, o).as_deref() == Some("standby")
            && because(&t).contains(&format!("{first} is elected"))
    });
    assert!(
        ok,
        "roles: {:?} {:?} ({})\n{}",
        role(&t, e),
        role(&t, o),
        because(&t),
        t.logs()
    );

    // `mcgate agents` names the role of each gateway.
    let out = std::process::Command::new(agent_support::binary())
        .args(["agents", "--controller"])
        .arg(format!("unix:{}", t.controller_socket().display()))
        .output()
        .expect("run mcgate agents");
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let row = |h: usize| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(t.hosts[h].name.as_str()))
            .unwrap_or("")
            .to_string()
    };
    assert!(row(e).ends_with(&format!("elected {RANGE}")), "{table}");
    assert!(row(o).ends_with("standby"), "{table}");
    assert!(row(2).ends_with('-'), "{table}");

    // A task on h3 joins the feed; only the elected gateway joins upstream.
    let bin = agent_support::binary();
    let recv = t.spawn_in_task(
        2,
        0,
        &[
            &bin,
            "perf",
            "recv",
            "--group",
            FEED,
            "--interval",
            "0.2",
            "--json",
        ],
    );
    let recv_started = Instant::now();
    let port = |h: usize| format!("gw{}", h + 1);
    let ok = t.wait_until(Duration::from_secs(15), || {
        joined_ports(&exchange) == vec![port(e)]
    });
    assert!(
        ok,
        "bridge ports joined: {:?}\n{}",
        joined_ports(&exchange),
        t.logs()
    );
    let send = t.spawn_in_ns(
        &exchange,
        &[
            &bin, "perf", "send", "--group", FEED, "--rate", "200pps", "--len", "100", "--ttl",
            "5", "--time", "20", "--iface", "br0",
        ],
    );
    let sum = |t: &Topo| -> u64 {
        recv_lines(t, recv)
            .iter()
            .filter(|l| l["summary"] != true)
            .filter_map(|l| l["datagrams"].as_u64())
            .sum()
    };
    let ok = t.wait_until(Duration::from_secs(15), || sum(&t) >= 400);
    assert!(ok, "the feed did not arrive\n{}", t.logs());
    // Still one gateway upstream; the standby one reported nothing.
    assert_eq!(joined_ports(&exchange), vec![port(e)]);
    let standby = t.stats_doc(o).expect("stats");
    assert_eq!(standby["upstream"]["membership"], serde_json::json!([]));
    assert_eq!(
        standby["upstream"]["igmp"]["reports_v3"], 0,
        "{}",
        standby["upstream"]
    );

    // The elected gateway fails: the other one takes over within the lease.
    let killed = Instant::now();
    match failure {
        Failure::Killed => t.kill_agent(e),
        Failure::CutOff => {
            let (ip, port) = agent_support::CONTROLLER
                .split_once(':')
                .expect("controller address");
            let ns = &t.hosts[e].ns;
            ns.run(&["nft", "add", "table", "inet", "mcgt_gw"]);
            ns.run(&[
                "nft",
                "add chain inet mcgt_gw out { type filter hook output priority 0 ; }",
            ]);
            ns.run(&[
                "nft",
                &format!("add rule inet mcgt_gw out ip daddr {ip} tcp dport {port} drop"),
            ]);
        }
    }
    // A cut-off gateway forwards until it fences itself: the feed stops then.
    let stopped = match failure {
        Failure::Killed => killed,
        Failure::CutOff => {
            let ok = t.wait_until(
                Duration::from_millis(LEASE_MS) + Duration::from_secs(2),
                || role(&t, e).as_deref() == Some("standby"),
            );
            assert!(ok, "the cut-off gateway never fenced itself\n{}", t.logs());
            let fenced = Instant::now();
            // The controller had not elected the other yet (it waits for the lease).
            eprintln!(
                "cut off to fenced: {:.2} s; elected then: {:?}",
                (fenced - killed).as_secs_f64(),
                elected(&t)
            );
            fenced
        }
    };
    let kill_at = (stopped - recv_started).as_secs_f64();
    let resumed = |t: &Topo| {
        recv_lines(t, recv)
            .iter()
            .filter(|l| l["summary"] != true && l["datagrams"].as_u64().unwrap_or(0) > 0)
            .filter_map(|l| l["start"].as_f64())
            .find(|s| *s >= kill_at + 0.2)
    };
    let margin = Duration::from_secs(4);
    let ok = t.wait_until(Duration::from_millis(LEASE_MS) + margin, || {
        resumed(&t).is_some()
    });
    assert!(
        ok,
        "the feed did not resume through {}\n{}",
        t.hosts[o].name,
        t.logs()
    );
    let gap = resumed(&t).expect("resumed") - kill_at;
    eprintln!(
        "feed resumed through the other gateway {gap:.2} s after the elected one stopped (interval 0.2 s)"
    );
    assert_eq!(elected(&t), vec![t.hosts[o].name.clone()]);
    assert_eq!(role(&t, o).as_deref(), Some("active"));
    let ok = t.wait_until(Duration::from_secs(5), || {
        joined_ports(&exchange).contains(&port(o))
    });
    assert!(ok, "{:?}", joined_ports(&exchange));
    if failure == Failure::CutOff {
        // The cut-off gateway fenced itself: standby for want of a lease, and it left
        // the feed upstream.
        let fenced = t.stats_doc(e).expect("the cut-off agent still answers");
        assert_eq!(fenced["upstream"]["gateway"]["role"], "standby");
        assert!(
            fenced["upstream"]["gateway"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("no lease")),
            "{}",
            fenced["upstream"]["gateway"]
        );
        let ok = t.wait_until(Duration::from_secs(5), || {
            joined_ports(&exchange) == vec![port(o)]
        });
        assert!(ok, "{:?}", joined_ports(&exchange));
    }

    // The rest of the feed arrives once: no duplicate in any interval or in total.
    t.wait_proc(send, Duration::from_secs(40));
    t.interrupt_proc(recv);
    t.wait_proc(recv, Duration::from_secs(10));
    let lines = recv_lines(&t, recv);
    let summary = lines
        .iter()
        .find(|l| l["summary"] == true)
        .expect("a summary line")
        .clone();
    eprintln!("receiver summary: {summary}");
    assert!(
        lines.iter().all(|l| l["duplicates"] == 0),
        "duplicates: {:?}",
        lines
            .iter()
            .filter(|l| l["duplicates"] != 0)
            .collect::<Vec<_>>()
    );
    let got = summary["datagrams"].as_u64().unwrap_or(0);
    let lost = summary["lost"].as_u64().unwrap_or(0);
    // 20 s at 200 datagrams/s, less what was sent before the join settled and during
    // the takeover; the takeover's loss is bounded by the lease plus the margin.
    assert!(got >= 2_500, "{summary}");
    assert!(
        (lost as f64) <= (gap + 1.0) * 200.0,
        "lost {lost} in a {gap:.2} s gap: {summary}"
    );
    gap
}
