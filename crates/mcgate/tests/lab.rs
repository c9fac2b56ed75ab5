//! `mcgate lab` and `mcgate demo` end to end, as root: what they build, that they leave
//! nothing behind, and that multicast crosses hosts through mcgate and only through it.
//!
//! Every lab here is named `lt<pid>-<n>`, so its namespaces are `mcgl-lt<pid>-<n>-*`,
//! and is taken down by a guard even when the test fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcgate_lab::{LabStatus, TaskStatus, receiver_reports};

static N: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    format!(
        "lt{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn mcgate(args: &[&str]) -> Output {
    Command::new(support::mcgate())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mcgate {args:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = mcgate(args);
    assert!(o.status.success(), "mcgate {args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lab_namespaces(name: &str) -> Vec<String> {
    let out = support::sh(&["ip", "netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("mcgl-{name}-")))
        .map(str::to_string)
        .collect()
}

fn state_dir(name: &str) -> PathBuf {
    PathBuf::from("/run/mcgate/labs").join(name)
}

/// A lab that is taken down when dropped.
struct Lab {
    name: String,
    file: PathBuf,
}

impl Lab {
    /// Writes `topology` (with `NAME` replaced by a unique lab name) to a file.
    fn new(topology: &str) -> Self {
        support::require_root();
        let name = unique_name();
        let file = std::env::temp_dir().join(format!("mcgate-{name}.toml"));
        std::fs::write(&file, topology.replace("NAME", &name)).unwrap();
        Self { name, file }
    }

    fn up(&self) -> Output {
        mcgate(&["lab", "up", self.file.to_str().unwrap()])
    }

    fn up_ok(&self) -> String {
        let o = self.up();
        assert!(o.status.success(), "lab up failed:\n{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn status(&self) -> LabStatus {
        let out = ok(&["lab", "status", "--json", "--name", &self.name]);
        LabStatus::from_json(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn task<'a>(status: &'a LabStatus, name: &str) -> &'a TaskStatus {
        status
            .task(name)
            .unwrap_or_else(|| panic!("no task {name} in {status:?}"))
    }

    fn logs(&self, node: &str) -> String {
        ok(&["lab", "logs", node, "--name", &self.name])
    }

    fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["lab", "exec", node, "--name", &self.name, "--"];
        args.extend_from_slice(cmd);
        mcgate(&args)
    }

    /// Every PID the lab's status names.
    fn pids(&self) -> Vec<i32> {
        let s = self.status();
        let mut v: Vec<i32> = s.tasks.iter().filter_map(|t| t.pid).collect();
        v.extend(s.hosts.iter().filter_map(|h| h.agent_pid));
        v.extend(s.controller.iter().filter_map(|c| c.pid));
        v.extend(s.ui.iter().filter_map(|u| u.pid));
        v
    }

    fn down(&self) -> String {
        ok(&["lab", "down", &self.name])
    }

    fn assert_gone(&self, pids: &[i32]) {
        assert_eq!(lab_namespaces(&self.name), Vec::<String>::new());
        assert!(
            !state_dir(&self.name).exists(),
            "state directory left behind"
        );
        for pid in pids {
            assert!(!runs(*pid), "process {pid} still runs");
        }
    }
}

/// Whether a process runs (a zombie waiting for its reaper does not).
fn runs(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state.is_empty() || state == "Z" || state == "X" {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = mcgate(&["lab", "down", &self.name]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Two hosts in two zones, no [domain]: no controller, no agents.
const PLAIN: &str = r#"
name = "NAME"
[vpc]
cidr = "10.77.0.0/16"
[[subnets]]
name = "p1"
cidr = "10.77.2.0/24"
zone = "a"
[[subnets]]
name = "p2"
cidr = "10.77.3.0/24"
zone = "b"
[[hosts]]
name = "host-a"
subnet = "p1"
force_igmp_version = 2
[[hosts]]
name = "host-b"
subnet = "p2"
[[services]]
name = "sleeper"
count = 2
command = ["sleep", "300"]
[[services]]
name = "quick"
host = "host-b"
command = ["sh", "-c", "echo hello; echo oops >&2; exit 3"]
"#;

#[test]
fn up_and_down_leave_nothing_behind() {
    let lab = Lab::new(PLAIN);
    let out = lab.up_ok();
    assert!(out.contains("sleeper-1"), "{out}");
    assert_eq!(
        lab_namespaces(&lab.name).len(),
        1 + 2 + 3,
        "vpc, hosts, tasks"
    );
    let s = lab.status();
    assert_eq!(s.name, lab.name);
    assert!(s.controller.is_none());
    assert_eq!(Lab::task(&s, "sleeper-1").state, "running");
    assert_eq!(Lab::task(&s, "sleeper-1").host, "host-a");
    assert_eq!(Lab::task(&s, "sleeper-2").host, "host-b");
    assert_eq!(s.hosts[0].underlay_ip.to_string(), "10.77.2.10");
    assert_eq!(s.hosts[0].dataplane_requested, "auto");
    // No [domain], so no agent: nobody chose a data plane.
    assert_eq!(s.hosts[0].dataplane, None);
    let pids = lab.pids();
    assert_eq!(pids.len(), 3);
    // Nothing in the root namespace: no link of the lab's there.
    let links = String::from_utf8_lossy(&support::sh(&["ip", "-o", "link"]).stdout).into_owned();
    for l in ["tksleeper-1", "v-host-a", "uplink"] {
        assert!(!links.contains(l), "{l} in the root namespace:\n{links}");
    }
    let down = lab.down();
    assert!(down.contains("removed"), "{down}");
    lab.assert_gone(&pids);
    // Safe to run twice.
    let again = lab.down();
    assert!(again.contains("nothing to remove"), "{again}");
}

/// Nothing the caller of `lab up` holds open lives on in the lab's processes: a lock
/// taken by `flock` is free again once `lab up` returns, and a caller reading `lab up`'s
/// output through a pipe sees it end.
#[test]
fn lab_processes_inherit_no_descriptor_of_the_caller() {
    let lab = Lab::new(PLAIN);
    let lock = std::env::temp_dir().join(format!("mcgate-{}.lock", lab.name));
    let script = format!(
        "out=$(flock {lock} {bin} lab up {file} 2>&1 3>&1) && echo \"$out\" | grep -q sleeper-1 && flock -n {lock} echo free",
        lock = lock.display(),
        bin = support::mcgate(),
        file = lab.file.display(),
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sh");
    // `lab up` of this topology takes a few seconds; a pipe held open by the lab's
    // processes would keep `$(...)` waiting until `lab down`.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait sh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`out=$(mcgate lab up ...)` still waits: the lab holds the caller's pipe");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("sh output");
    let _ = std::fs::remove_file(&lock);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "free\n",
        "the lab kept the caller's lock or pipe: {}",
        text(&out)
    );
    // Every process of the lab holds nothing above stderr but its own files.
    for pid in lab.pids() {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fd list");
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            assert!(target != lock, "process {pid} holds the caller's lock file");
        }
    }
}

#[test]
fn exited_task_logs_exec_and_unicast() {
    let lab = Lab::new(&format!(
        "{PLAIN}[[services]]\nname = \"server\"\nhost = \"host-b\"\ncommand = [\"iperf\", \"-s\", \"-p\", \"5999\"]\n"
    ));
    lab.up_ok();
    std::thread::sleep(Duration::from_millis(500));
    let s = lab.status();
    let quick = Lab::task(&s, "quick-1");
    assert_eq!(quick.state, "exited", "{s:?}");
    assert_eq!(quick.exit_code, Some(3), "{s:?}");
    assert_eq!(Lab::task(&s, "sleeper-1").exit_code, None);

    let logs = lab.logs("quick-1");
    let hello = logs
        .lines()
        .find(|l| l.ends_with(" hello"))
        .unwrap_or_else(|| panic!("{logs}"));
    // A UTC timestamp per line: 2026-01-31T12:34:56.789Z
    assert_eq!(
        hello.len(),
        "2026-01-31T12:34:56.789Z hello".len(),
        "{hello}"
    );
    assert!(
        hello.as_bytes()[10] == b'T' && hello.contains("Z "),
        "{hello}"
    );
    assert!(logs.contains(" oops"), "{logs}");
    assert!(logs.contains("exited with code 3"), "{logs}");

    let o = lab.exec("sleeper-1", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // The reference's check on a host: IGMPv2 forced on every interface.
    let o = lab.exec("host-a", &["cat", "/proc/net/igmp"]);
    let igmp = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && igmp.contains("br0") && igmp.contains("V2"),
        "{igmp}"
    );
    assert!(igmp.contains("tksleeper-1"), "{igmp}");
    let o = lab.exec(
        "sleeper-1",
        &["cat", "/proc/sys/net/ipv4/conf/all/force_igmp_version"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");

    // Unicast crosses subnets through the VPC router: task to task, host to task.
    let server_ip = Lab::task(&s, "server-1").ip.to_string();
    for node in ["sleeper-1", "host-a"] {
        let o = lab.exec(node, &["iperf", "-c", &server_ip, "-p", "5999", "-t", "1"]);
        assert!(o.status.success(), "{node} -> {server_ip}: {}", text(&o));
    }

    // Restart gives a new process and keeps the log.
    let before = Lab::task(&s, "sleeper-1").pid.unwrap();
    ok(&["lab", "restart", "sleeper-1", "--name", &lab.name]);
    let after = Lab::task(&lab.status(), "sleeper-1").pid.unwrap();
    assert_ne!(before, after);
    assert!(!runs(before));
    // The new supervisor notes its start in the log just after it runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut logs = lab.logs("sleeper-1");
    while logs.matches("starting: sleep 300").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        logs = lab.logs("sleeper-1");
    }
    assert_eq!(logs.matches("starting: sleep 300").count(), 2, "{logs}");

    let unknown = mcgate(&["lab", "logs", "nope", "--name", &lab.name]);
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("sleeper-1"), "{}", text(&unknown));
}

#[test]
fn multicast_does_not_cross_without_mcgate() {
    let lab = Lab::new(&PLAIN.replace(
        "[[services]]\nname = \"sleeper\"",
        "[[services]]\nname = \"rx\"\ncount = 2\ncommand = [\"iperf\", \"-s\", \"-u\", \"-B\", \"233.252.0.5\", \"-i\", \"1\"]\n\
         [[services]]\nname = \"tx\"\nhost = \"host-a\"\ncommand = [\"iperf\", \"-c\", \"233.252.0.5\", \"-u\", \"-b\", \"100k\", \"-t\", \"300\", \"-T\", \"8\"]\n\
         [[services]]\nname = \"sleeper\"",
    ));
    lab.up_ok();
    std::thread::sleep(Duration::from_secs(3));
    let s = lab.status();
    assert_eq!(Lab::task(&s, "tx-1").state, "running", "{s:?}");
    assert_eq!(Lab::task(&s, "rx-1").host, "host-a");
    assert_eq!(Lab::task(&s, "rx-2").host, "host-b");
    for rx in ["rx-1", "rx-2"] {
        let logs = lab.logs(rx);
        assert!(
            !logs.contains("connected with"),
            "{rx} received multicast without mcgate:\n{logs}"
        );
    }
    let tx = lab.logs("tx-1");
    assert!(tx.contains("Sending"), "{tx}");
}

#[test]
fn capacity_error_builds_nothing() {
    let lab = Lab::new(&PLAIN.replace("count = 2", "count = 7"));
    let o = lab.up();
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("service sleeper asks for 7 task(s) but only 6 fit"),
        "{t}"
    );
    assert!(t.contains(".toml:"), "names the file and line: {t}");
    assert_eq!(lab_namespaces(&lab.name), Vec::<String>::new());
    assert!(!state_dir(&lab.name).exists());
}

#[test]
fn topology_error_names_the_line() {
    let lab = Lab::new(&PLAIN.replace("force_igmp_version = 2", "force_igmp_verison = 2"));
    let o = lab.up();
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains(".toml:16:") && t.contains("force_igmp_verison"),
        "{t}"
    );
    assert!(!state_dir(&lab.name).exists());
}

#[test]
fn failure_halfway_removes_everything() {
    for step in ["hosts", "tasks", "started"] {
        let lab = Lab::new(PLAIN);
        let o = Command::new(support::mcgate())
            .args(["lab", "up", lab.file.to_str().unwrap()])
            .env("MCGATE_LAB_FAIL_AT", step)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("removing what was built"), "{}", text(&o));
        lab.assert_gone(&[]);
    }
}

#[test]
fn interrupted_up_removes_everything() {
    let lab = Lab::new(&PLAIN.replace("count = 2", "count = 5"));
    let mut child = Command::new(support::mcgate())
        .args(["lab", "up", lab.file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // state.json is written once Ctrl-C is watched for, before anything is built.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state_dir(&lab.name).join("state.json").exists() {
        assert!(Instant::now() < deadline, "lab up never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    support::sh(&["kill", "-s", "INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(130), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    lab.assert_gone(&[]);
}

#[test]
fn down_after_processes_were_killed_and_after_a_lost_state() {
    let lab = Lab::new(PLAIN);
    lab.up_ok();
    let pids = lab.pids();
    for pid in &pids {
        // The whole process group: the supervisor and its command (quick-1 has ended).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .status();
    }
    std::thread::sleep(Duration::from_millis(200));
    let s = lab.status();
    assert_eq!(Lab::task(&s, "sleeper-1").state, "exited");
    lab.down();
    lab.assert_gone(&pids);

    // A crashed `lab up` may leave namespaces without a state directory.
    lab.up_ok();
    let pids = lab.pids();
    std::fs::remove_dir_all(state_dir(&lab.name)).unwrap();
    assert!(!lab_namespaces(&lab.name).is_empty());
    lab.down();
    lab.assert_gone(&pids);
}

#[test]
fn two_labs_in_a_row_and_side_by_side() {
    let a = Lab::new(PLAIN);
    a.up_ok();
    let again = a.up();
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already up"), "{}", text(&again));
    a.down();
    a.up_ok();
    let b = Lab::new(&PLAIN.replace("10.77.", "10.78."));
    b.up_ok();
    let which = mcgate(&["lab", "status", "--json"]);
    if which.status.success() {
        // Only if no other lab is up on this machine can the answer be one lab.
        panic!("two labs are up: status --json must ask which");
    }
    assert!(text(&which).contains("--name"), "{}", text(&which));
    let pids = a.pids();
    a.down();
    a.assert_gone(&pids);
    assert_eq!(Lab::task(&b.status(), "sleeper-1").state, "running");
    let pids = b.pids();
    b.down();
    b.assert_gone(&pids);
}

/// The reference deployment: controller, agents, mcgate perf.
#[test]
fn demo_passes() {
    support::require_root();
    let name = unique_name();
    let o = mcgate(&["demo", "--duration", "5", "--name", &name]);
    let t = text(&o);
    assert!(o.status.success(), "demo failed:\n{t}");
    assert!(t.contains("verdict: PASS"), "{t}");
    assert!(t.contains("233.252.0.5"), "{t}");
    // The receivers' table: one value under each header.
    let cells = |l: &str| l.split("  ").filter(|c| !c.trim().is_empty()).count();
    let mut lines = t.lines().skip_while(|l| !l.starts_with("RECEIVER "));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no receivers' table:\n{t}"));
    let rows: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    assert!(!rows.is_empty(), "{t}");
    for row in rows {
        assert_eq!(cells(row), cells(header), "{header}\n{row}");
    }
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(!state_dir(&name).exists());
}

/// The reference deployment over IPv6 (`--ipv6`): MLD members in the group table,
/// datagrams across hosts from the sender's link-local address, none lost.
#[test]
fn demo_passes_over_ipv6() {
    support::require_root();
    let name = unique_name();
    let o = mcgate(&["demo", "--ipv6", "--duration", "5", "--name", &name]);
    let t = text(&o);
    assert!(o.status.success(), "demo --ipv6 failed:\n{t}");
    assert!(t.contains("verdict: PASS"), "{t}");
    assert!(
        t.contains("as in the reference: ff02::1 and ff3e::8000:5 for each receiver"),
        "{t}"
    );
    assert!(t.contains("/proc/net/igmp6"), "{t}");
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(!state_dir(&name).exists());
}

/// Waits until the controller lists every receiver's membership of `group`.
fn wait_for_members(lab: &Lab, group: &str, ips: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let socket = format!("unix:{}/controller.sock", state_dir(&lab.name).display());
    loop {
        let o = mcgate(&["groups", "--controller", &socket]);
        let table = String::from_utf8_lossy(&o.stdout);
        let all = ips.iter().all(|ip| {
            table.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.contains(&group) && cols.contains(&ip.as_str())
            })
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members of {group} never showed: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The reference's exact iperf 2 commands cross hosts with nothing lost.
#[test]
fn iperf2_example_delivers_across_hosts() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ecs-multicast-iperf2.toml"
    );
    let src = std::fs::read_to_string(example).unwrap();
    let lab = Lab::new(&src.replace("name = \"ecs-multicast-iperf2\"", "name = \"NAME\""));
    lab.up_ok();
    let s = lab.status();
    let sender_host = Lab::task(&s, "sender-1").host.clone();
    let ips: Vec<String> = ["receiver-1", "receiver-2"]
        .iter()
        .map(|r| Lab::task(&s, r).ip.to_string())
        .collect();
    wait_for_members(&lab, "233.252.0.5", &ips);
    // Start the sender again now that every membership is known, so no datagram is sent
    // before the receivers' hosts are in the forwarding state.
    ok(&["lab", "restart", "sender-1", "--name", &lab.name]);
    std::thread::sleep(Duration::from_secs(6));
    let mut crossed = false;
    for r in ["receiver-1", "receiver-2"] {
        let logs = lab.logs(r);
        // Only the restarted sender's session: what the first one sent before the
        // memberships were known does not count.
        let session = logs
            .rfind("connected with")
            .map(|i| &logs[i..])
            .unwrap_or("");
        let (lost, total) = iperf_loss(session);
        assert!(total > 0, "{r} got nothing:\n{logs}");
        assert_eq!(lost, 0, "{r} lost datagrams:\n{logs}");
        crossed |= Lab::task(&s, r).host != sender_host;
    }
    assert!(crossed, "no receiver on another host than the sender");
}

/// Sums iperf 2's per-interval "lost/total (pct%)" columns.
fn iperf_loss(logs: &str) -> (u64, u64) {
    let mut lost = 0;
    let mut total = 0;
    for line in logs
        .lines()
        .filter(|l| l.contains(" sec ") && l.contains("%)"))
    {
        let Some(paren) = line.rfind(" (") else {
            continue;
        };
        let head = &line[..paren];
        let Some(slash) = head.rfind('/') else {
            continue;
        };
        let l: u64 = head[..slash]
            .rsplit(' ')
            .next()
            .and_then(|x| x.trim().parse().ok())
            .unwrap_or(0);
        let t: u64 = head[slash + 1..].trim().parse().unwrap_or(0);
        lost += l;
        total += t;
    }
    (lost, total)
}

fn example(file: &str, name: &str) -> String {
    let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(path).unwrap();
    let from = format!("name = \"{name}\"");
    assert!(src.starts_with(&from) || src.contains(&format!("\n{from}\n")));
    // The lab's name only (the first line that sets it), and receivers report in JSON.
    src.replacen(&from, "name = \"NAME\"", 1).replace(
        "\"--interval\", \"1\"]",
        "\"--interval\", \"1\", \"--json\"]",
    )
}

/// (datagrams, lost) per sender address in a receiver's log.
fn reports(lab: &Lab, task: &str) -> Vec<(String, u64, u64)> {
    receiver_reports(
        &state_dir(&lab.name)
            .join("logs")
            .join(format!("{task}.log")),
    )
    .into_iter()
    .map(|r| {
        (
            r.sender_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            r.datagrams,
            r.lost,
        )
    })
    .collect()
}

/// One sender, eight receivers on four hosts: every receiver gets every datagram.
#[test]
fn fanout_example_reaches_every_receiver() {
    let lab = Lab::new(&example("fanout.toml", "fanout"));
    lab.up_ok();
    let s = lab.status();
    let receivers: Vec<&TaskStatus> = s.tasks.iter().filter(|t| t.service == "receiver").collect();
    assert_eq!(receivers.len(), 8);
    // "auto": each agent says what it chose.
    for h in &s.hosts {
        assert_eq!(h.dataplane_requested, "auto");
        assert!(
            matches!(h.dataplane.as_deref(), Some("kernel" | "userspace")),
            "{}: {:?}",
            h.name,
            h.dataplane
        );
    }
    let ips: Vec<String> = receivers.iter().map(|t| t.ip.to_string()).collect();
    wait_for_members(&lab, "233.252.0.7", &ips);
    ok(&["lab", "restart", "sender-1", "--name", &lab.name]);
    let sender_ip = Lab::task(&lab.status(), "sender-1").ip.to_string();
    let from_sender = |task: &str| -> Vec<(String, u64, u64)> {
        reports(&lab, task)
            .into_iter()
            .filter(|x| x.0 == sender_ip)
            .collect()
    };
    // Every host is set up before the sender starts: each receiver hears it within
    // its first report intervals (seconds, not a WireGuard handshake retry's 5 s).
    // A second's worth (1 Mbit/s of 1470-byte datagrams is 85 a second).
    let enough = |got: &[(String, u64, u64)]| got.iter().map(|x| x.1).sum::<u64>() >= 85;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !receivers.iter().all(|r| enough(&from_sender(&r.name))) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for r in &receivers {
        let got = from_sender(&r.name);
        assert!(enough(&got), "{} on {} heard {got:?}", r.name, r.host);
        assert!(got.iter().all(|x| x.2 == 0), "{} lost: {got:?}", r.name);
    }
    // No port the agents or the lab added moved a bridge's MAC address.
    for h in &s.hosts {
        let ns = format!("mcgl-{}-{}", lab.name, h.name);
        let out = support::sh(&["ip", "-n", &ns, "-br", "link", "show", "br0"]);
        let [a, b, c, d] = h.underlay_ip.octets();
        let want = format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        assert!(
            text(&out).contains(&want),
            "{}: br0 is not {want}: {}",
            h.name,
            text(&out)
        );
    }
}

/// An external network: the exchange's sender (outside the VPC, behind the gateway
/// host) reaches the receiver task on another host, through the gateway's IGMP proxy
/// and relay; the exchange's querier saw the gateway join; the group table names the
/// gateway and the exchange's source.
#[test]
fn upstream_feed_example_brings_the_exchange_feed_to_a_task() {
    let lab = Lab::new(&example("upstream-feed.toml", "upstream-feed"));
    let started = Instant::now();
    let out = lab.up_ok();
    assert!(out.contains("external network exchange"), "{out}");
    let s = lab.status();
    assert_eq!(s.externals.len(), 1, "{s:?}");
    let e = &s.externals[0];
    assert_eq!(
        (e.name.as_str(), e.host.as_str(), e.host_link.as_str()),
        ("exchange", "gateway", "ext-exchange")
    );
    assert_eq!(e.state, "running", "{e:?}");
    let sender_pid = e.pid.expect("the sender's pid");
    let text_status = ok(&["lab", "status", "--name", &lab.name]);
    assert!(text_status.contains("EXTERNAL"), "{text_status}");
    let exchange_ip = "192.0.2.1";
    let heard = || -> u64 {
        reports(&lab, "receiver-1")
            .into_iter()
            .filter(|x| x.0 == exchange_ip)
            .map(|x| x.1)
            .sum()
    };
    let took = wait_until(30, "the exchange's feed at receiver-1", || heard() > 0);
    eprintln!(
        "upstream feed at receiver-1 {took:?} after lab up returned ({:?} after it started)",
        started.elapsed()
    );
    // The exchange's bridge learned the gateway's membership (its own snooping table).
    let mdb = lab.exec("exchange", &["bridge", "mdb", "show"]);
    assert!(
        text(&mdb).contains("233.252.0.7") && text(&mdb).contains("gw0"),
        "the exchange's bridge never saw the gateway join: {}",
        text(&mdb)
    );
    // The group table: the exchange's source, at the gateway.
    let socket = format!("unix:{}/controller.sock", state_dir(&lab.name).display());
    let groups = ok(&[
        "groups",
        "--controller",
        &socket,
        "--type",
        "upstream",
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&groups).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["host"] == "gateway"
                && r["group"] == "233.252.0.7"
                && r["address"] == exchange_ip
                && r["interface"] == "ext-exchange"),
        "{groups}"
    );
    // Nothing lost once flowing.
    std::thread::sleep(Duration::from_secs(2));
    let got: Vec<_> = reports(&lab, "receiver-1")
        .into_iter()
        .filter(|x| x.0 == exchange_ip)
        .collect();
    assert!(got.iter().map(|x| x.1).sum::<u64>() > 25, "{got:?}");
    // `lab down` stops the sender and removes the exchange too.
    lab.down();
    lab.assert_gone(&[sender_pid]);
}

/// IGMPv3: the source-specific receiver hears only its source, across hosts; the
/// any-source one hears both senders.
#[test]
fn igmpv3_example_filters_by_source() {
    let lab = Lab::new(&example("igmpv3-source-filter.toml", "igmpv3-ssm"));
    lab.up_ok();
    wait_for_members(
        &lab,
        "232.1.1.1",
        &["10.0.3.101".to_string(), "10.0.2.101".to_string()],
    );
    std::thread::sleep(Duration::from_secs(3));
    let heard = |task: &str| -> Vec<String> {
        reports(&lab, task)
            .into_iter()
            .filter(|x| x.1 > 0)
            .map(|x| x.0)
            .collect()
    };
    let ssm = heard("ssm-receiver-1");
    assert_eq!(
        ssm,
        vec!["10.0.2.100".to_string()],
        "ssm-receiver-1 heard {ssm:?}"
    );
    let mut any = heard("any-receiver-1");
    any.sort();
    assert_eq!(
        any,
        vec!["10.0.2.100".to_string(), "10.0.3.100".to_string()]
    );
}

/// The kernel example: two hosts on the kernel data plane, one on the userspace relay.
/// Every receiver hears both feeds (one on a kernel host, one on the userspace host), so
/// multicast goes kernel to kernel, kernel to userspace, userspace to kernel and stays
/// local on each; `lab status --json` shows the data plane each agent chose.
#[test]
fn kernel_example_delivers_in_every_direction() {
    let lab = Lab::new(&example(
        "ecs-multicast-kernel.toml",
        "ecs-multicast-kernel",
    ));
    lab.up_ok();
    let s = lab.status();
    let chosen: Vec<(String, Option<String>, String)> = s
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                h.dataplane.clone(),
                h.dataplane_requested.clone(),
            )
        })
        .collect();
    let want = |n: &str, d: &str| (n.to_string(), Some(d.to_string()), d.to_string());
    assert_eq!(
        chosen,
        vec![
            want("host-a", "kernel"),
            want("host-b", "kernel"),
            want("host-c", "userspace")
        ]
    );
    // Without root the agents' sockets cannot be asked: the `?` says why.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::mcgate())
        .args(["lab", "status", "--name", &lab.name])
        .output()
        .expect("setpriv");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("? (kernel)"), "{t}");
    assert!(
        t.contains("DATAPLANE ? (requested in parentheses): the agents' admin sockets")
            && t.contains("run `sudo mcgate lab status`"),
        "{t}"
    );
    let receivers: Vec<&TaskStatus> = s.tasks.iter().filter(|t| t.service == "receiver").collect();
    let mut hosts: Vec<&str> = receivers.iter().map(|t| t.host.as_str()).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        ["host-a", "host-b", "host-c"],
        "one receiver per host"
    );
    let ips: Vec<String> = receivers.iter().map(|t| t.ip.to_string()).collect();
    wait_for_members(&lab, "233.252.0.9", &ips);
    // Restart the feeds now that every membership is known.
    ok(&["lab", "restart", "feed-a-1", "--name", &lab.name]);
    ok(&["lab", "restart", "feed-c-1", "--name", &lab.name]);
    let feeds: Vec<String> = ["feed-a-1", "feed-c-1"]
        .iter()
        .map(|f| Lab::task(&lab.status(), f).ip.to_string())
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    for r in &receivers {
        let got = reports(&lab, &r.name);
        for f in &feeds {
            let from: Vec<&(String, u64, u64)> = got.iter().filter(|x| &x.0 == f).collect();
            assert!(
                from.iter().any(|x| x.1 > 0),
                "{} on {} heard nothing from {f}: {got:?}\n{}",
                r.name,
                r.host,
                lab.logs(&r.host)
            );
        }
    }
    // The controller's traffic view has both feeds from the agents' reports: the
    // userspace host counts per group and per peer, the kernel hosts only per device
    // (their per-group figures are null, never zero).
    let rate = |v: &serde_json::Value| v["pps"].as_f64().unwrap_or(0.0);
    let view = wait_for_traffic(&lab, "kernel-demo", |v| {
        let Some(g) = v["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["group"] == "233.252.0.9"))
        else {
            return false;
        };
        let sends = g["senders"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["host"] == "host-c" && rate(&x["rate"]) > 0.0)
        });
        let flows: Vec<(&str, f64)> = g["flows"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter(|x| x["from"] == "host-c")
                    .map(|x| (x["to"].as_str().unwrap_or(""), rate(&x["sent"])))
                    .collect()
            })
            .unwrap_or_default();
        sends && flows.len() == 2 && flows.iter().all(|(_, r)| *r > 0.0)
    });
    for h in view["hosts"].as_array().unwrap() {
        let kernel = h["dataplane"] == "kernel";
        assert_eq!(h["sent"].is_null(), kernel, "{h}");
        assert!(h["tunnel_tx"]["pps"].as_f64().is_some(), "{h}");
        assert_eq!(h["missing"].as_array().unwrap().is_empty(), !kernel, "{h}");
    }
}

/// Polls `mcgate traffic DOMAIN --json` on the lab's controller until `done` holds (15 s
/// at most); returns that view.
fn wait_for_traffic(
    lab: &Lab,
    domain: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    let socket = format!("unix:{}/controller.sock", state_dir(&lab.name).display());
    loop {
        let o = mcgate(&["traffic", domain, "--json", "--controller", &socket]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic view never showed it: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `lab restart` of a host gives its new agent the state directory of the old one: the
/// membership the old agent learned is restored from `agent-<host>/agent-state.json`,
/// and `lab down` removes that directory with the rest of the lab's.
#[test]
fn restarted_agent_restores_its_membership() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ecs-multicast-iperf2.toml"
    );
    let src = std::fs::read_to_string(example).unwrap();
    let lab = Lab::new(&src.replace("name = \"ecs-multicast-iperf2\"", "name = \"NAME\""));
    lab.up_ok();
    let s = lab.status();
    let receiver = Lab::task(&s, "receiver-1");
    let host = receiver.host.clone();
    wait_for_members(&lab, "233.252.0.5", &[receiver.ip.to_string()]);
    let file = state_dir(&lab.name)
        .join(format!("agent-{host}"))
        .join("agent-state.json");
    // Written 250 ms after the change that the controller already shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("233.252.0.5")) {
        assert!(
            Instant::now() < deadline,
            "{} never held the group",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = lab.logs(&host);
    assert!(
        !before.contains("membership restored from the state file"),
        "the first agent had nothing to restore:\n{before}"
    );
    ok(&["lab", "restart", &host, "--name", &lab.name]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logs = lab.logs(&host);
        if let Some(line) = logs
            .lines()
            .find(|l| l.contains("membership restored from the state file"))
        {
            assert!(
                line.contains("groups=") && !line.contains("groups=0"),
                "{line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing restored:\n{logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for_members(&lab, "233.252.0.5", &[receiver.ip.to_string()]);
    let pids = lab.pids();
    lab.down();
    assert!(!file.exists());
    lab.assert_gone(&pids);
}

/// A task is the attacker: it cannot see the lab's `/run` (where the state and the
/// credentials are), and without a credential the controller refuses its agent
/// registration and its admin calls (401); with a leaked join token for a live host it
/// still cannot take that host's name (409). The real agent keeps its registration.
#[test]
fn a_task_can_neither_read_credentials_nor_pose_as_an_agent() {
    let lab = Lab::new(
        r#"
name = "NAME"
[vpc]
cidr = "10.78.0.0/16"
[[subnets]]
name = "s1"
cidr = "10.78.2.0/24"
zone = "a"
[[hosts]]
name = "host-a"
subnet = "s1"
[[hosts]]
name = "host-b"
subnet = "s1"
[domain]
name = "sec"
[[services]]
name = "attacker"
host = "host-b"
command = ["sh", "-c", "while [ ! -f GO ]; do sleep 0.1; done; sh GO; sleep 300"]
"#
        .replace(
            "GO",
            &std::env::temp_dir()
                .join(format!("mcgate-attack-{}.sh", std::process::id()))
                .display()
                .to_string(),
        )
        .as_str(),
    );
    let go = std::env::temp_dir().join(format!("mcgate-attack-{}.sh", std::process::id()));
    lab.up_ok();
    let s = lab.status();
    let ctl = s.controller.as_ref().expect("a controller").url.clone();
    let socket = format!("unix:{}/controller.sock", state_dir(&lab.name).display());
    // A join token for the live host-a, as if it had leaked to the task.
    let leaked = ok(&[
        "token",
        "create",
        "--host",
        "host-a",
        "--controller",
        &socket,
    ]);
    let creds = state_dir(&lab.name).join("controller/admin.credentials");
    assert!(
        creds.exists(),
        "the lab's admin credential is where the CLI looks"
    );
    let attacker_ip = Lab::task(&s, "attacker-1").ip;
    let script = format!(
        r#"echo "run: $(ls /run/mcgate 2>&1)"
if cat {creds} >/dev/null 2>&1; then echo creds=readable; else echo creds=unreadable; fi
curl -sk -m 5 -o /dev/null -w 'register=%{{http_code}}\n' -X POST -H 'content-type: application/json' -d '{{"host":"host-a","underlay":"{attacker_ip}:4789","links":[]}}' {ctl}/v1/agents
curl -sk -m 5 -o /dev/null -w 'domains=%{{http_code}}\n' -X POST -H 'content-type: application/json' -d '{{"name":"evil"}}' {ctl}/v1/domains
curl -sk -m 5 -o /dev/null -w 'forged=%{{http_code}}\n' -H 'authorization: Bearer mcg_000000000000_00' {ctl}/v1/domains
curl -sk -m 5 -o /dev/null -w 'takeover=%{{http_code}}\n' -X POST -H 'authorization: Bearer {token}' {ctl}/v1/join
echo probe-finished
"#,
        creds = creds.display(),
        token = leaked.trim(),
    );
    let tmp = go.with_extension("tmp");
    std::fs::write(&tmp, script).unwrap();
    std::fs::rename(&tmp, &go).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut logs = lab.logs("attacker-1");
    while !logs.contains("probe-finished") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        logs = lab.logs("attacker-1");
    }
    let _ = std::fs::remove_file(&go);
    assert!(logs.contains("probe-finished"), "{logs}");
    assert!(
        logs.contains("No such file"),
        "the task sees /run/mcgate: {logs}"
    );
    for want in [
        "creds=unreadable",
        "register=401",
        "domains=401",
        "forged=401",
        "takeover=409",
    ] {
        assert!(logs.contains(want), "{want} missing: {logs}");
    }
    // host-a's real agent is still the one registered, at its own address.
    let agents = ok(&["agents", "--json", "--controller", &socket]);
    let agents: serde_json::Value = serde_json::from_str(&agents).unwrap();
    let a = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["host"] == "host-a")
        .expect("host-a registered");
    assert_eq!(a["state"], "up");
    assert_eq!(a["underlay"], format!("{}:4789", s.hosts[0].underlay_ip));
    let domains = ok(&["domain", "list", "--json", "--controller", &socket]);
    assert!(!domains.contains("evil"), "{domains}");
}

/// `GET url` with curl from the root namespace, trusting only `ca`, with the header
/// lines of `headers` (a file, so no secret shows in the process list): the HTTP status
/// (0 when no connection was made) and the body.
fn https_get(url: &str, ca: &Path, headers: Option<&Path>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"]);
    if let Some(h) = headers {
        cmd.arg("-H").arg(format!("@{}", h.display()));
    }
    let o = cmd.arg(url).output().expect("curl runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The addresses that listen on TCP `port` in the root namespace (IPv4 and IPv6).
fn tcp_listeners(port: u16) -> Vec<String> {
    let mut v = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let body = std::fs::read_to_string(file).unwrap_or_default();
        for line in body.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            // 0A: LISTEN.
            if *state == "0A" && u16::from_str_radix(p, 16) == Ok(port) {
                v.push(addr.to_string());
            }
        }
    }
    v
}

/// From the root namespace, the forwarded port serves the controller's own TLS (the
/// lab's CA checks it) to the viewer credential: healthz and the agents, each with its
/// zone; no credential gets 401. Only 127.0.0.1 listens, and after `lab down` the
/// forwarder is gone and nothing listens.
#[test]
fn the_controller_is_reachable_from_loopback_with_the_viewer_credential() {
    let lab = Lab::new(&format!("{PLAIN}\n[domain]\nname = \"ui\"\n"));
    let out = lab.up_ok();
    let s = lab.status();
    let ui = s.ui.clone().expect("a forwarder");
    assert_eq!(ui.state, "running");
    assert!(
        out.contains(&format!("open {}", ui.url)),
        "lab up says how to open the view:\n{out}"
    );
    let text = ok(&["lab", "status", "--name", &lab.name]);
    assert!(text.contains(&format!("open {}", ui.url)), "{text}");
    let port = ui_port(&ui);
    assert_eq!(
        ui.credentials,
        state_dir(&lab.name).join("viewer.credentials")
    );
    assert_eq!(ui.ca, state_dir(&lab.name).join("controller/ca.pem"));
    assert_eq!(tcp_listeners(port), ["0100007F"], "127.0.0.1 only");

    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&ui.credentials).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ui.credentials).unwrap()).unwrap();
    assert_eq!(creds["role"], "viewer");
    assert_eq!(creds["controller"], format!("https://127.0.0.1:{port}"));
    let headers = viewer_headers(&lab, &ui);
    let api = format!("https://127.0.0.1:{port}");
    let (code, body) = https_get(&format!("{api}/v1/healthz"), &ui.ca, Some(&headers));
    assert_eq!(code, 200, "{body}");
    let (code, body) = https_get(&format!("{api}/v1/agents"), &ui.ca, Some(&headers));
    assert_eq!(code, 200, "{body}");
    // `lab up` returned once both agents had registered, with their zones.
    let agents: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut zones: Vec<(String, String)> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["host"].as_str().unwrap_or("").to_string(),
                a["zone"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    zones.sort();
    assert_eq!(
        zones,
        [
            ("host-a".to_string(), "a".to_string()),
            ("host-b".to_string(), "b".to_string())
        ]
    );
    let (code, body) = https_get(&format!("{api}/v1/agents"), &ui.ca, None);
    assert_eq!(code, 401, "{body}");
    // The credential file alone is enough for the CLI too.
    let listed = ok(&[
        "agents",
        "--json",
        "--credentials",
        ui.credentials.to_str().unwrap(),
    ]);
    assert!(listed.contains("host-b"), "{listed}");
    let _ = std::fs::remove_file(&headers);

    let pids = lab.pids();
    let forwarder = ui.pid.expect("the forwarder's pid");
    assert!(pids.contains(&forwarder));
    lab.down();
    lab.assert_gone(&pids);
    assert_eq!(tcp_listeners(port), Vec::<String>::new(), "still listening");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still accepts on 127.0.0.1:{port}"
    );
}

/// The forwarder's port on 127.0.0.1, from its URL.
fn ui_port(ui: &mcgate_lab::UiStatus) -> u16 {
    ui.url
        .strip_prefix("https://127.0.0.1:")
        .and_then(|r| r.strip_suffix("/ui/"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("url {}", ui.url))
}

/// A curl header file (0600) carrying the lab's viewer credential.
fn viewer_headers(lab: &Lab, ui: &mcgate_lab::UiStatus) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ui.credentials).unwrap()).unwrap();
    let path = std::env::temp_dir().join(format!("mcgate-{}.headers", lab.name));
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    writeln!(
        f,
        "authorization: Bearer {}",
        creds["token"].as_str().unwrap()
    )
    .unwrap();
    path
}

const HA_LAB: &str = r#"
name = "NAME"
[vpc]
cidr = "10.0.0.0/16"
[[subnets]]
name = "private-1"
cidr = "10.0.2.0/24"
zone = "a"
[[subnets]]
name = "private-2"
cidr = "10.0.3.0/24"
zone = "b"
[[hosts]]
name = "host-a"
subnet = "private-1"
[[hosts]]
name = "host-b"
subnet = "private-2"
[[hosts]]
name = "host-c"
subnet = "private-1"
[domain]
name = "ha"
igmp = "v2"
[controller]
replicas = 3
store = "etcd"
[[services]]
name = "receiver"
host = "host-a"
command = ["mcgate", "perf", "recv", "--group", "233.252.0.9", "--interval", "1", "--json"]
[[services]]
name = "sender"
host = "host-b"
command = ["mcgate", "perf", "send", "--group", "233.252.0.9", "--rate", "200pps", "--len", "200", "--time", "86400"]
[[services]]
name = "idle"
host = "host-c"
command = ["sleep", "86400"]
"#;

/// An admin command through the first replica that answers.
fn ha_admin(lab: &Lab, args: &[&str]) -> Output {
    let s = lab.status();
    let sock = s
        .controllers
        .iter()
        .find(|c| c.health == "up")
        .map(|c| format!("unix:{}", c.socket.display()))
        .expect("no replica answers");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--controller", &sock]);
    mcgate(&all)
}

/// Waits (up to `secs`) until `check` holds.
fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

fn leader(lab: &Lab) -> Option<String> {
    let s = lab.status();
    let leaders: Vec<_> = s
        .controllers
        .iter()
        .filter(|c| c.role.as_deref() == Some("leader"))
        .collect();
    (leaders.len() == 1).then(|| leaders[0].name.clone())
}

fn received(lab: &Lab) -> (u64, u64) {
    reports(lab, "receiver-1")
        .iter()
        .fold((0, 0), |(d, l), (_, dd, ll)| (d + dd, l + ll))
}

/// The HA control plane (3 replicas on a real 3-member etcd) with traffic flowing the
/// whole time: the leading replica SIGKILLed, a dead host, one etcd member lost, then
/// quorum lost and back. Forwarding never stops and loses nothing; leadership moves; a
/// new join spreads; a dead host's members go within its lease; writes without quorum
/// get a 503 that says so; everything heals.
#[test]
fn ha_control_plane_rides_out_replica_and_etcd_failures() {
    let lab = Lab::new(HA_LAB);
    lab.up_ok();
    let s = lab.status();
    assert_eq!(s.controllers.len(), 3);
    assert_eq!(s.etcd.len(), 3);
    let rx_ip = Lab::task(&s, "receiver-1").ip.to_string();
    wait_until(15, "the receiver's membership", || {
        String::from_utf8_lossy(&ha_admin(&lab, &["groups"]).stdout).contains(&rx_ip)
    });
    // The sender again, now that the membership is known: every datagram counts.
    ok(&["lab", "restart", "sender-1", "--name", &lab.name]);
    wait_until(10, "traffic", || received(&lab).0 > 200);

    // The leading replica dies: another leads within its election lease.
    let first = wait_until(10, "a leader", || leader(&lab).is_some());
    let old = leader(&lab).unwrap();
    eprintln!("leader {old} elected within {first:?}");
    ok(&["lab", "kill", &old, "--name", &lab.name]);
    let took = wait_until(10, "a new leader", || {
        leader(&lab).is_some_and(|l| l != old)
    });
    eprintln!("leadership moved in {took:?} after kill -9");
    // The forwarder skips the dead replica: the API still answers on 127.0.0.1.
    let ui = s.ui.clone().expect("a forwarder");
    let headers = viewer_headers(&lab, &ui);
    let (code, body) = https_get(
        &format!("https://127.0.0.1:{}/v1/healthz", ui_port(&ui)),
        &ui.ca,
        Some(&headers),
    );
    let _ = std::fs::remove_file(&headers);
    assert_eq!(code, 200, "{body}");

    // A new join spreads: a receiver on host-c, which had none, gets the group.
    let o = lab.exec(
        "idle-1",
        &[
            support::mcgate(),
            "perf",
            "recv",
            "--group",
            "233.252.0.9",
            "--time",
            "3",
            "--json",
        ],
    );
    let got: u64 = mcgate_lab::parse_reports(&String::from_utf8_lossy(&o.stdout))
        .iter()
        .map(|r| r.datagrams)
        .sum();
    assert!(got > 0, "the new receiver got nothing:\n{}", text(&o));

    // A dead host's members go within its lease (3 s) on every replica.
    ok(&["lab", "kill", "host-c", "--name", &lab.name]);
    let gone = wait_until(10, "host-c expired", || {
        let o = ha_admin(&lab, &["agents", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["host"] == "host-c" && x["state"] == "expired")
        })
    });
    eprintln!("a dead host expired {gone:?} after kill -9");
    ok(&["lab", "restart", "host-c", "--name", &lab.name]);

    // One etcd member of three gone: writes go on.
    ok(&["lab", "kill", "etcd-1", "--name", &lab.name]);
    let o = ha_admin(&lab, &["domain", "create", "one-down"]);
    assert!(o.status.success(), "{}", text(&o));

    // Two gone: writes get a 503 saying why; reads and forwarding go on.
    ok(&["lab", "kill", "etcd-2", "--name", &lab.name]);
    let o = ha_admin(&lab, &["domain", "create", "no-quorum"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("quorum"), "{}", text(&o));
    assert!(ha_admin(&lab, &["groups"]).status.success());
    let before = received(&lab).0;
    wait_until(10, "forwarding without quorum", || {
        received(&lab).0 > before + 200
    });

    // Quorum back: writes work again.
    ok(&["lab", "restart", "etcd-1", "--name", &lab.name]);
    ok(&["lab", "restart", "etcd-2", "--name", &lab.name]);
    wait_until(30, "writes after quorum returned", || {
        ha_admin(&lab, &["domain", "create", "healed"])
            .status
            .success()
    });
    let before = received(&lab).0;
    wait_until(10, "forwarding after healing", || {
        received(&lab).0 > before + 200
    });
    let (datagrams, lost) = received(&lab);
    assert_eq!(lost, 0, "{datagrams} datagrams received, {lost} lost");
    lab.down();
}
