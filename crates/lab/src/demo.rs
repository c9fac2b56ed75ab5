//! `mcgate demo`: the reference deployment end to end, with what the reference
//! article's screenshots show (running tasks, the domain's group table,
//! `/proc/net/igmp`, the receivers' reports) and a verdict.
//!
//! The sender starts only once every receiver's membership is in the group table, so a
//! datagram sent before the membership reached the sender's host never reads as loss.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use mcgate_domain::api::GroupEntry;

use crate::DemoArgs;
use crate::commands::{exit_code_for, load_topology, tasks_table};
use crate::error::LabError;
use crate::ops::{self, require_root, runtime};
use crate::reports::{Report, receiver_reports, receivers_table};
use crate::state::{LabState, log_path};

fn is_recv(cmd: &[String]) -> bool {
    cmd.windows(2).any(|w| w[0] == "perf" && w[1] == "recv")
        || cmd.first().is_some_and(|p| p.ends_with("iperf")) && cmd.iter().any(|a| a == "-s")
}

fn is_send(cmd: &[String]) -> bool {
    cmd.windows(2).any(|w| w[0] == "perf" && w[1] == "send")
        || cmd.first().is_some_and(|p| p.ends_with("iperf")) && cmd.iter().any(|a| a == "-c")
}

fn group_of(cmd: &[String]) -> Option<IpAddr> {
    cmd.windows(2)
        .find(|w| w[0] == "--group" || w[0] == "-B" || w[0] == "-c")
        .and_then(|w| w[1].parse().ok())
}

/// The IPv6 group `--ipv6` uses in place of an IPv4 one: ff3e::8000:N for A.B.C.N
/// (a global-scope SSM-range group, as `mcgate perf` examples use).
fn ipv6_group(g: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, u16::from(g.octets()[3]))
}

/// `cmd` with its `mcgate perf` IPv4 group replaced by [`ipv6_group`]; an error for a
/// command that is not `mcgate perf` (iperf 2 needs other flags for IPv6).
fn to_ipv6(cmd: &mut [String]) -> Result<(), String> {
    if !cmd.windows(2).any(|w| w[0] == "perf") {
        return Err(format!(
            "`{}` is not `mcgate perf`: --ipv6 rewrites only mcgate perf commands",
            cmd.join(" ")
        ));
    }
    let Some(i) = cmd.iter().position(|a| a == "--group") else {
        return Ok(());
    };
    if let Some(v) = cmd.get_mut(i + 1)
        && let Ok(g) = v.parse::<Ipv4Addr>()
    {
        *v = ipv6_group(g).to_string();
    }
    Ok(())
}

/// The link-local IPv6 addresses of a namespace, from its `/proc/net/if_inet6`.
fn link_local_addresses(if_inet6: &str) -> Vec<IpAddr> {
    mcgate_sys::if_inet6::parse_if_inet6(if_inet6)
        .into_values()
        .flatten()
        .map(|(a, _)| IpAddr::V6(a))
        .collect()
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
    if args.ipv6 {
        topo.ipv6 = true;
        // The userspace relay forwards IPv6; the kernel plane programs IPv6 entries but
        // does not deliver yet (docs/ipv6.md).
        for h in &mut topo.hosts {
            h.dataplane = crate::topology::Dataplane::Userspace;
        }
        for svc in &mut topo.services {
            to_ipv6(&mut svc.command).map_err(LabError::Demo)?;
        }
    }
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
        "mcgate demo: the reference deployment (two zones, two hosts, two receivers, one sender) on this machine{}",
        if args.ipv6 { ", over IPv6 (MLD)" } else { "" }
    );
    println!();
    let st = ops::up_holding(&topo, &senders)?;
    let lab = st.name.clone();
    if let Some(ui) = &st.ui {
        println!();
        println!(
            "while the lab is up, the controller's web view: {}",
            crate::ui::hint(ui)
        );
    }
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
        if let Some(ui) = &st.ui {
            println!("the controller's web view: {}", crate::ui::hint(ui));
        }
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
        .unwrap_or(IpAddr::V4(Ipv4Addr::new(233, 252, 0, 5)));
    // A task's row in the group table: IPv4 by its address; IPv6 (whose reporter is a
    // link-local address) by its host and link.
    let is_row_of = |r: &GroupEntry, t: &crate::state::TaskState| match group {
        IpAddr::V4(_) => r.address == Some(t.ip.into()),
        IpAddr::V6(_) => r.host == t.host && r.interface.as_deref() == Some(t.link.as_str()),
    };
    let all_nodes: IpAddr = match group {
        IpAddr::V4(_) => Ipv4Addr::new(224, 0, 0, 1).into(),
        IpAddr::V6(_) => mcgate_domain::groups::ALL_NODES.into(),
    };
    // An HA lab's first replica that answers; the one controller otherwise.
    let client = crate::ops_ha::live_socket(st)
        .ok()
        .and_then(|s| ops::controller_client(&s).ok());
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
                .any(|r| r.group == group && is_row_of(r, t) && r.member)
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
        st.domain_setup
            .as_ref()
            .map(|d| d.name.as_str())
            .unwrap_or("-")
    ));
    let mut warnings = Vec::new();
    match fetch_groups() {
        Ok(rows) => {
            println!("{}", mcgate_client::table::groups(&rows));
            for t in &recv_tasks {
                for g in [all_nodes, group] {
                    if !rows
                        .iter()
                        .any(|r| r.group == g && is_row_of(r, t) && r.member)
                    {
                        warnings.push(format!("{} ({}) is not listed for {g}", t.name, t.ip));
                    }
                }
            }
            for t in &send_tasks {
                if rows.iter().any(|r| is_row_of(r, t) && r.member) {
                    warnings.push(format!(
                        "the sender {} ({}) is listed as a member",
                        t.name, t.ip
                    ));
                }
            }
            if warnings.is_empty() {
                println!(
                    "as in the reference: {all_nodes} and {group} for each receiver, the sender absent"
                );
            }
        }
        Err(e) => warnings.push(format!("cannot read the group table: {e}")),
    }

    let igmp_host = send_tasks
        .first()
        .map(|t| t.host.clone())
        .or_else(|| st.hosts.first().map(|h| h.name.clone()));
    let proc_file = match group {
        IpAddr::V4(_) => "/proc/net/igmp",
        IpAddr::V6(_) => "/proc/net/igmp6",
    };
    if let Some(h) = igmp_host.and_then(|h| st.hosts.iter().find(|x| x.name == h)) {
        heading(&format!(
            "cat {proc_file} on {} (`mcgate lab exec {} -- cat {proc_file}`)",
            h.name, h.name
        ));
        print!("{}", netns_cat(&h.netns, proc_file));
    }
    if let Some(t) = recv_tasks.first() {
        heading(&format!(
            "cat {proc_file} in task {} on {} (its own namespace, like an awsvpc task)",
            t.name, t.host
        ));
        print!("{}", netns_cat(&t.launch.netns, proc_file));
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
    // Over IPv6 the senders send from their link-local addresses.
    let sender_ips: Vec<IpAddr> = match group {
        IpAddr::V4(_) => send_tasks.iter().map(|t| t.ip.into()).collect(),
        IpAddr::V6(_) => send_tasks
            .iter()
            .flat_map(|t| link_local_addresses(&netns_cat(&t.launch.netns, "/proc/net/if_inet6")))
            .collect(),
    };
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
        rows.extend(
            reports
                .into_iter()
                .map(|r| (t.name.clone(), t.host.clone(), r)),
        );
    }
    println!("{}", receivers_table(&rows));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_groups_from_commands() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(is_recv(&v(
            "/x/mcgate perf recv --group 233.252.0.5 --interval 1"
        )));
        assert!(is_send(&v("/x/mcgate perf send --group 233.252.0.5")));
        let mut send = v("/x/mcgate perf send --group 233.252.0.5 --rate 10k");
        to_ipv6(&mut send).unwrap();
        assert_eq!(
            send,
            v("/x/mcgate perf send --group ff3e::8000:5 --rate 10k")
        );
        assert!(to_ipv6(&mut v("iperf -c 233.252.0.5 -u")).is_err());
        let if_inet6 = "fe800000000000000c2a3bfffe4d5e6f 02 40 20 80     eth0\n\
                        00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(
            link_local_addresses(if_inet6),
            ["fe80::c2a:3bff:fe4d:5e6f".parse::<IpAddr>().unwrap()]
        );
        assert!(is_recv(&v("iperf -s -u -B 233.252.0.5 -i 1")));
        assert!(is_send(&v("iperf -c 233.252.0.5 -u -b 10k -t 86400")));
        assert_eq!(
            group_of(&v("iperf -s -u -B 233.252.0.5 -i 1")),
            Some(IpAddr::V4(Ipv4Addr::new(233, 252, 0, 5)))
        );
    }
}
