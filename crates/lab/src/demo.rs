//! `mcgate demo`: the reference deployment end to end, with what the reference
//! article's screenshots show (running tasks, the domain's group table,
//! `/proc/net/igmp`, the receivers' reports) and a verdict.
//!
//! The sender starts only once every receiver's membership is in the group table, so a
//! datagram sent before the membership reached the sender's host never reads as loss.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use mcgate_client::Client;
use mcgate_domain::api::GroupEntry;
use serde_json::Value;

use crate::DemoArgs;
use crate::commands::{exit_code_for, load_topology, tasks_table};
use crate::error::LabError;
use crate::ops::{self, require_root, runtime};
use crate::state::{LabState, log_path};
use crate::table;

fn is_recv(cmd: &[String]) -> bool {
    cmd.windows(2).any(|w| w[0] == "perf" && w[1] == "recv")
        || cmd.first().is_some_and(|p| p.ends_with("iperf")) && cmd.iter().any(|a| a == "-s")
}

fn is_send(cmd: &[String]) -> bool {
    cmd.windows(2).any(|w| w[0] == "perf" && w[1] == "send")
        || cmd.first().is_some_and(|p| p.ends_with("iperf")) && cmd.iter().any(|a| a == "-c")
}

fn group_of(cmd: &[String]) -> Option<Ipv4Addr> {
    cmd.windows(2)
        .find(|w| w[0] == "--group" || w[0] == "-B" || w[0] == "-c")
        .and_then(|w| w[1].parse().ok())
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> ExitCode {
    match demo(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            exit_code_for(&e)
        }
    }
}

fn heading(s: &str) {
    println!();
    println!("== {s}");
}

fn demo(args: &DemoArgs) -> Result<bool, LabError> {
    require_root("mcgate demo")?;
    let mut topo = load_topology(None, args.name.as_deref())?;
    // The receivers report in JSON lines so the demo reads their numbers exactly.
    for svc in &mut topo.services {
        if is_recv(&svc.command)
            && svc.command.windows(2).any(|w| w[0] == "perf")
            && !svc.command.iter().any(|a| a == "--json")
        {
            svc.command.push("--json".into());
        }
    }
    let senders: Vec<String> = topo
        .services
        .iter()
        .filter(|s| is_send(&s.command))
        .map(|s| s.name.clone())
        .collect();
    println!(
        "mcgate demo: the reference deployment (two zones, two hosts, two receivers, one sender) on this machine"
    );
    println!();
    let st = ops::up_holding(&topo, &senders)?;
    let lab = st.name.clone();
    let outcome = show(&st, args);
    if matches!(outcome, Err(LabError::Interrupted)) {
        println!();
        println!("interrupted: taking the lab down...");
        let _ = ops::down(&lab);
        return Err(LabError::Interrupted);
    }
    if args.keep {
        println!();
        println!(
            "the lab is kept: explore with `mcgate lab status`, `mcgate groups`, `mcgate lab logs receiver-2`; remove it with `mcgate lab down {lab}`"
        );
    } else {
        println!();
        println!("taking the lab down...");
        if let Err(e) = ops::down(&lab) {
            eprintln!("error: {e}");
            return Ok(false);
        }
    }
    outcome
}

fn show(st: &LabState, args: &DemoArgs) -> Result<bool, LabError> {
    let dir = st.dir();
    let recv_tasks: Vec<&crate::state::TaskState> = st
        .tasks
        .iter()
        .filter(|t| is_recv(&t.launch.argv))
        .collect();
    let send_tasks: Vec<&crate::state::TaskState> = st
        .tasks
        .iter()
        .filter(|t| is_send(&t.launch.argv))
        .collect();
    let group = recv_tasks
        .first()
        .and_then(|t| group_of(&t.launch.argv))
        .unwrap_or(Ipv4Addr::new(233, 252, 0, 5));
    let client = st
        .controller
        .as_ref()
        .and_then(|c| Client::new(&format!("unix:{}", c.socket.display())).ok());
    let rt = runtime()?;
    let fetch_groups = || -> Result<Vec<GroupEntry>, String> {
        let Some(c) = &client else {
            return Err("the lab has no controller".into());
        };
        rt.block_on(c.get::<Vec<GroupEntry>>("/v1/groups"))
            .map_err(|e| e.to_string())
    };

    println!();
    println!("waiting for the receivers' memberships to reach the controller...");
    let deadline = Instant::now() + Duration::from_secs(15);
    let joined = loop {
        let rows = fetch_groups().unwrap_or_default();
        let all = recv_tasks.iter().all(|t| {
            rows.iter()
                .any(|r| r.group == group && r.address == Some(t.ip) && r.member)
        });
        if all {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        ops::check_interrupt()?;
        std::thread::sleep(Duration::from_millis(200));
    };
    if !joined {
        println!(
            "  not all receivers are in the group table after 15 s; starting the sender anyway"
        );
    }
    for t in &send_tasks {
        let r = ops::restart(&st.name, &t.name)?;
        println!("started {} (pid {})", t.name, r.pid);
    }
    println!("running for {} s...", args.duration);
    let until = Instant::now() + Duration::from_secs(args.duration);
    while Instant::now() < until {
        ops::check_interrupt()?;
        std::thread::sleep(Duration::from_millis(100));
    }

    let st = LabState::load(&st.name)?;
    heading("Running tasks");
    println!("{}", tasks_table(&st));

    heading(&format!(
        "Group table of domain {} (GET /v1/groups; `mcgate groups`)",
        st.controller
            .as_ref()
            .map(|c| c.domain.as_str())
            .unwrap_or("-")
    ));
    let mut warnings = Vec::new();
    match fetch_groups() {
        Ok(rows) => {
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.group.to_string(),
                        r.host.clone(),
                        r.subnet.map(|s| s.to_string()).unwrap_or("-".into()),
                        r.interface.clone().unwrap_or("-".into()),
                        r.address.map(|a| a.to_string()).unwrap_or("-".into()),
                        if r.member { "member" } else { "source" }.to_string(),
                        format!("{:?}", r.member_type.or(r.source_type))
                            .to_lowercase()
                            .replace("some(", "")
                            .replace(')', ""),
                    ]
                })
                .collect();
            println!(
                "{}",
                table::render(
                    &[
                        "GROUP",
                        "HOST",
                        "SUBNET",
                        "INTERFACE",
                        "ADDRESS",
                        "ROLE",
                        "TYPE"
                    ],
                    &table_rows
                )
            );
            for t in &recv_tasks {
                for g in [Ipv4Addr::new(224, 0, 0, 1), group] {
                    if !rows
                        .iter()
                        .any(|r| r.group == g && r.address == Some(t.ip) && r.member)
                    {
                        warnings.push(format!("{} ({}) is not listed for {g}", t.name, t.ip));
                    }
                }
            }
            for t in &send_tasks {
                if rows.iter().any(|r| r.address == Some(t.ip) && r.member) {
                    warnings.push(format!(
                        "the sender {} ({}) is listed as a member",
                        t.name, t.ip
                    ));
                }
            }
            if warnings.is_empty() {
                println!(
                    "as in the reference: 224.0.0.1 and {group} for each receiver, the sender absent"
                );
            }
        }
        Err(e) => warnings.push(format!("cannot read the group table: {e}")),
    }

    let igmp_host = send_tasks
        .first()
        .map(|t| t.host.clone())
        .or_else(|| st.hosts.first().map(|h| h.name.clone()));
    if let Some(h) = igmp_host.and_then(|h| st.hosts.iter().find(|x| x.name == h)) {
        heading(&format!(
            "cat /proc/net/igmp on {} (`mcgate lab exec {} -- cat /proc/net/igmp`)",
            h.name, h.name
        ));
        print!("{}", netns_cat(&h.netns, "/proc/net/igmp"));
    }
    if let Some(t) = recv_tasks.first() {
        heading(&format!(
            "cat /proc/net/igmp in task {} on {} (its own namespace, like an awsvpc task)",
            t.name, t.host
        ));
        print!("{}", netns_cat(&t.launch.netns, "/proc/net/igmp"));
    }

    if let Some(t) = send_tasks.first() {
        heading(&format!("Sender {} log (last lines)", t.name));
        print!("{}", tail(&log_path(&dir, &t.name), 4));
    }

    // Receivers print their summaries on SIGINT, as on Ctrl-C.
    for t in &recv_tasks {
        let _ = ops::stop_node(&st.name, &t.name);
    }
    heading("Receivers' reports");
    let sender_ips: Vec<Ipv4Addr> = send_tasks.iter().map(|t| t.ip).collect();
    let sender_hosts: Vec<&str> = send_tasks.iter().map(|t| t.host.as_str()).collect();
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut crossed = false;
    for t in &recv_tasks {
        let reports = receiver_reports(&log_path(&dir, &t.name));
        let from_sender: Vec<&Report> = reports
            .iter()
            .filter(|r| r.sender_ip.is_some_and(|ip| sender_ips.contains(&ip)))
            .collect();
        if from_sender.is_empty() {
            problems.push(format!(
                "{} on {} got no datagram from the sender{}",
                t.name,
                t.host,
                if reports.is_empty() {
                    format!(" (its log has no report; see `mcgate lab logs {}`)", t.name)
                } else {
                    String::new()
                }
            ));
        }
        for r in &from_sender {
            if r.lost > 0 {
                problems.push(format!(
                    "{} lost {} of {} datagrams",
                    t.name,
                    r.lost,
                    r.lost + r.datagrams
                ));
            }
            if r.datagrams > 0 && !sender_hosts.contains(&t.host.as_str()) {
                crossed = true;
            }
        }
        for r in &reports {
            rows.push(vec![
                t.name.clone(),
                t.host.clone(),
                r.sender.clone(),
                r.datagrams.to_string(),
                r.bytes
                    .checked_div(r.datagrams)
                    .map(|b| format!("{b} B"))
                    .unwrap_or("-".into()),
                r.bytes.to_string(),
                r.lost.to_string(),
                r.duplicates.to_string(),
                r.out_of_order.to_string(),
                r.jitter.clone(),
                r.latency.clone(),
            ]);
        }
    }
    println!(
        "{}",
        table::render(
            &[
                "RECEIVER",
                "HOST",
                "FROM",
                "DATAGRAMS",
                "BYTES",
                "LOST",
                "DUP",
                "REORDERED",
                "JITTER ms",
                "LATENCY us"
            ],
            &rows
        )
    );
    if !crossed && problems.is_empty() {
        problems.push("no receiver on another host than the sender got datagrams: multicast did not cross hosts".into());
    }
    println!();
    for w in &warnings {
        println!("note: group table: {w}");
    }
    if problems.is_empty() {
        let total: u64 = recv_tasks
            .iter()
            .flat_map(|t| receiver_reports(&log_path(&dir, &t.name)))
            .filter(|r| r.sender_ip.is_some_and(|ip| sender_ips.contains(&ip)))
            .map(|r| r.datagrams)
            .sum();
        println!(
            "verdict: PASS: every receiver ({}) got datagrams from the sender, across hosts, {total} in all, none lost",
            recv_tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(true)
    } else {
        println!("verdict: FAIL: {}", problems.join("; "));
        Ok(false)
    }
}

fn netns_cat(ns: &str, path: &str) -> String {
    match Command::new("ip")
        .args(["netns", "exec", ns, "cat", path])
        .output()
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(cannot read {path}: {e})\n"),
    }
}

fn tail(path: &std::path::Path, n: usize) -> String {
    let body = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = body.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines
        .get(from..)
        .unwrap_or(&[])
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One receiver's numbers for one sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The sender as the receiver printed it.
    pub sender: String,
    /// Its address.
    pub sender_ip: Option<Ipv4Addr>,
    /// Datagrams received.
    pub datagrams: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Out of order.
    pub out_of_order: u64,
    /// Jitter, as printed.
    pub jitter: String,
    /// Latency, as printed.
    pub latency: String,
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn show_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| {
                format!("{f:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            })
            .unwrap_or_else(|| n.to_string()),
        // Percentiles in their natural order (p50/p90/p99/max), then anything else.
        Some(Value::Object(o)) => {
            let order = ["p50", "p90", "p99", "max"];
            let known: Vec<String> = order
                .iter()
                .filter_map(|k| o.get(*k).map(|v| show_value(Some(v))))
                .collect();
            if known.len() == order.len() {
                known.join("/")
            } else {
                o.iter()
                    .map(|(k, v)| format!("{k} {}", show_value(Some(v))))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
        Some(other) => other.to_string(),
    }
}

fn sender_ip(s: &str) -> Option<Ipv4Addr> {
    s.split(':').next().and_then(|h| h.parse().ok())
}

/// Reads a receiver's log of `perf recv --json` lines (each after a timestamp): the
/// summary per sender when it printed one, else the sum of its interval reports.
pub fn receiver_reports(path: &std::path::Path) -> Vec<Report> {
    let body = std::fs::read_to_string(path).unwrap_or_default();
    parse_reports(&body)
}

fn parse_reports(body: &str) -> Vec<Report> {
    let mut summaries: BTreeMap<String, Report> = BTreeMap::new();
    let mut sums: BTreeMap<String, Report> = BTreeMap::new();
    for line in body.lines() {
        let text = line.split_once(' ').map(|x| x.1).unwrap_or(line);
        let Some(start) = text.find('{') else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(text.get(start..).unwrap_or("")) else {
            continue;
        };
        let sender = match v.get("sender") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => continue,
        };
        let r = Report {
            sender_ip: sender_ip(&sender),
            sender: sender.clone(),
            datagrams: num(&v, "datagrams"),
            bytes: num(&v, "bytes"),
            lost: num(&v, "lost"),
            duplicates: num(&v, "duplicates"),
            out_of_order: num(&v, "out_of_order"),
            jitter: show_value(v.get("jitter_ms")),
            latency: show_value(v.get("latency_us")),
        };
        if v.get("summary").and_then(Value::as_bool) == Some(true) {
            summaries.insert(sender, r);
        } else {
            let e = sums.entry(sender).or_insert_with(|| Report {
                datagrams: 0,
                bytes: 0,
                lost: 0,
                duplicates: 0,
                out_of_order: 0,
                ..r.clone()
            });
            e.datagrams += r.datagrams;
            e.bytes += r.bytes;
            e.lost += r.lost;
            e.duplicates += r.duplicates;
            e.out_of_order += r.out_of_order;
            e.jitter = r.jitter;
            e.latency = r.latency;
        }
    }
    for (k, v) in sums {
        summaries.entry(k).or_insert(v);
    }
    summaries.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_wins_over_intervals_and_garbage_is_skipped() {
        let log = "\
2026-01-01T00:00:00.000Z [lab] starting: mcgate perf recv
2026-01-01T00:00:01.000Z {\"start\":0,\"end\":1,\"sender\":\"10.0.2.101:5001\",\"bytes\":1470,\"datagrams\":1,\"lost\":0,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.01,\"latency_us\":120}
2026-01-01T00:00:02.000Z {\"start\":1,\"end\":2,\"sender\":\"10.0.2.101:5001\",\"bytes\":2940,\"datagrams\":2,\"lost\":1,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.02,\"latency_us\":130}
2026-01-01T00:00:02.500Z {not json
2026-01-01T00:00:03.000Z {\"start\":3,\"end\":4,\"sender\":\"10.0.3.100:5001\",\"bytes\":1470,\"datagrams\":1,\"lost\":0}
2026-01-01T00:00:04.000Z {\"summary\":true,\"start\":0,\"end\":4,\"sender\":\"10.0.2.101:5001\",\"bytes\":5880,\"datagrams\":4,\"lost\":0,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.015,\"latency_us\":{\"avg\":125}}
";
        let r = parse_reports(log);
        assert_eq!(r.len(), 2);
        let a = r
            .iter()
            .find(|x| x.sender.starts_with("10.0.2.101"))
            .unwrap();
        assert_eq!((a.datagrams, a.lost), (4, 0), "the summary, not the sum");
        assert_eq!(a.sender_ip, Some(Ipv4Addr::new(10, 0, 2, 101)));
        assert_eq!(a.latency, "avg 125");
        let v: Value = serde_json::from_str(r#"{"p50":1,"p90":2,"p99":3.5,"max":40}"#).unwrap();
        assert_eq!(show_value(Some(&v)), "1/2/3.5/40");
        let b = r
            .iter()
            .find(|x| x.sender.starts_with("10.0.3.100"))
            .unwrap();
        assert_eq!(b.datagrams, 1);
        assert!(parse_reports("").is_empty());
    }

    #[test]
    fn roles_and_groups_from_commands() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(is_recv(&v(
            "/x/mcgate perf recv --group 233.252.0.5 --interval 1"
        )));
        assert!(is_send(&v("/x/mcgate perf send --group 233.252.0.5")));
        assert!(is_recv(&v("iperf -s -u -B 233.252.0.5 -i 1")));
        assert!(is_send(&v("iperf -c 233.252.0.5 -u -b 10k -t 86400")));
        assert_eq!(
            group_of(&v("iperf -s -u -B 233.252.0.5 -i 1")),
            Some(Ipv4Addr::new(233, 252, 0, 5))
        );
    }
}
