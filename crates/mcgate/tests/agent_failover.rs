//! The agent with several controller URLs, against real `mcgate controller` and
//! `mcgate agent` processes: it moves to the next controller when its current one
//! goes away, and its membership reaches the new one; and a stream that breaks while
//! the controller stays is resumed with `?since=` (missed deltas, no snapshot).
//!
//! The agent runs in a network namespace of its own (`mcgt-fo-...`): an underlay on a
//! veth device, one task link `tk0` to a task namespace where a receiver joins a
//! group. The controllers listen on Unix sockets in a scratch directory (the admin
//! path: no credential needed), so nothing here touches the root namespace's ports.
//! Every wait is on observable state (the controllers' group tables, the agent's
//! `/v1/stats`), bounded; processes are killed by PID.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Netns, mcgate, veth};

const GROUP: &str = "233.252.0.5";
const UNDERLAY: &str = "10.77.0.1";

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mcgate-fo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process logging to a file, killed by PID when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `args` (`mcgate` arguments) in namespace `ns`, logging to `log`.
    fn start(ns: &Netns, args: &[&str], log: PathBuf, rust_log: &str) -> Self {
        let out = std::fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, mcgate()])
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start mcgate");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL by PID: the controller vanishes without a goodbye.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A controller on a Unix socket, with a domain this host belongs to.
struct Controller {
    proc: Proc,
    sock: PathBuf,
}

impl Controller {
    fn start(ns: &Netns, dir: &Path, name: &str) -> Self {
        let data = dir.join(format!("{name}-data"));
        let sock = dir.join(format!("{name}.sock"));
        let (data_s, sock_s) = (data.to_str().unwrap(), sock.to_str().unwrap());
        let proc = Proc::start(
            ns,
            &[
                "controller",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data_s,
                "--unix",
                sock_s,
            ],
            dir.join(format!("{name}.log")),
            "info,mcgate_controller=debug",
        );
        let c = Self { proc, sock };
        let up = wait_until(Duration::from_secs(15), || {
            c.cli(&["domain", "list", "--json"]).status.success()
        });
        assert!(up, "controller {name} did not come up:\n{}", c.proc.log());
        c.ok(&[
            "domain", "create", "d", "--vni", "7", "--igmp", "v2", "--tunnel", "vxlan",
        ]);
        c.ok(&["domain", "associate", "d", "--subnet", "10.77.0.0/24"]);
        c
    }

    fn url(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(mcgate())
            .args(args)
            .arg("--controller")
            .arg(self.url())
            .output()
            .expect("run mcgate")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "mcgate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the group table lists `host` as an IGMP member of [`GROUP`].
    fn lists_member(&self, host: &str) -> bool {
        let out = self.cli(&["groups", "--group", GROUP, "--host", host, "--json"]);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        rows.as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["host"] == host && r["member_type"] == "igmp")
        })
    }
}

/// The host namespace (underlay on a dummy device, task link `tk0`) and the task
/// namespace behind `tk0`.
fn host() -> (Netns, Netns) {
    let host = Netns::new("fo");
    let task = Netns::new("fo");
    // A veth pair with both ends here stands for the underlay (not every kernel has
    // the dummy device).
    host.run(&[
        "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1",
    ]);
    host.run(&["ip", "addr", "add", &format!("{UNDERLAY}/24"), "dev", "ul0"]);
    host.run(&["ip", "link", "set", "ul0", "up"]);
    host.run(&["ip", "link", "set", "ul1", "up"]);
    veth(&host, "tk0", "10.77.1.1/24", &task, "eth0", "10.77.1.2/24");
    (host, task)
}

/// A receiver in the task namespace joined to [`GROUP`] until killed.
fn join(task: &Netns, dir: &Path) -> Proc {
    let log = dir.join("receiver.log");
    let out = std::fs::File::create(&log).expect("create log");
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton('{GROUP}') + socket.inet_aton('10.77.1.2'))\n\
         time.sleep(3600)\n"
    );
    let child = Command::new("ip")
        .args(["netns", "exec", &task.name, "python3", "-c", &script])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start receiver");
    Proc { child, log }
}

/// Starts the agent of host `h1` with these controller URLs.
fn agent(ns: &Netns, dir: &Path, controllers: &[String]) -> (Proc, PathBuf) {
    let admin = dir.join("agent.sock");
    let list = controllers.join(",");
    let admin_arg = format!("unix:{}", admin.display());
    let proc = Proc::start(
        ns,
        &[
            "agent",
            "--controller",
            &list,
            "--host",
            "h1",
            "--underlay",
            UNDERLAY,
            "--attach",
            "tk0",
            "--admin",
            &admin_arg,
            "--dataplane",
            "userspace",
        ],
        dir.join("agent.log"),
        "info",
    );
    (proc, admin)
}

/// The agent's `/v1/stats`, if it answers.
fn stats(admin: &Path) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-sS", "-f", "-m", "5", "--unix-socket"])
        .arg(admin)
        .arg("http://agent/v1/stats")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn controller_stat(admin: &Path, key: &str) -> Value {
    stats(admin).map_or(Value::Null, |s| s["controller"][key].clone())
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_agent_moves_to_the_next_controller_and_its_membership_follows() {
    support::require_root();
    let dir = Scratch::new("move");
    let (host_ns, task) = host();
    let mut a = Controller::start(&host_ns, &dir.0, "a");
    let b = Controller::start(&host_ns, &dir.0, "b");
    let (agent, admin) = agent(&host_ns, &dir.0, &[a.url(), b.url()]);
    let _receiver = join(&task, &dir.0);
    let logs = |agent: &Proc| format!("agent:\n{}\nb:\n{}", agent.log(), b.proc.log());

    assert!(
        wait_until(Duration::from_secs(30), || a.lists_member("h1")),
        "the membership never reached controller A:\n{}",
        logs(&agent)
    );
    assert_eq!(controller_stat(&admin, "url"), Value::String(a.url()));
    assert_eq!(controller_stat(&admin, "failovers"), 0);
    assert!(
        !b.lists_member("h1"),
        "B knew the member before the failover"
    );

    // A vanishes. B does not share A's store: the agent finds its session unknown
    // there (404), registers again and resends its membership.
    a.proc.kill();
    assert!(
        wait_until(Duration::from_secs(30), || b.lists_member("h1")),
        "the membership never reached controller B:\n{}",
        logs(&agent)
    );
    let s = stats(&admin).expect("agent stats");
    let c = &s["controller"];
    assert_eq!(c["url"], Value::String(b.url()), "{c}");
    assert_eq!(c["urls"], serde_json::json!([a.url(), b.url()]), "{c}");
    assert_eq!(c["state"], "registered", "{c}");
    // One move, however many of session, heartbeats and stream saw A go.
    assert_eq!(c["failovers"], 1, "{c}");
    assert!(
        wait_until(Duration::from_secs(15), || controller_stat(
            &admin,
            "stream_connected"
        ) == true),
        "the stream never reconnected to B:\n{}",
        logs(&agent)
    );
    let metrics = Command::new("curl")
        .args(["-sS", "-f", "-m", "5", "--unix-socket"])
        .arg(&admin)
        .arg("http://agent/metrics")
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("mcgate_agent_controller_failovers_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "mcgate_agent_controller_registered{{controller=\"{}\"}} 1",
            b.url()
        )),
        "{metrics}"
    );
}

/// Opens `host`'s stream on the controller's socket (as admin), which takes it over
/// from the agent: the controller ends the agent's connection, as it does for an
/// agent that fell behind. Returns the connection once the controller answered.
fn take_over_stream(sock: &Path, host: &str) -> UnixStream {
    let mut s = UnixStream::connect(sock).expect("connect to the controller");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/agents/{host}/stream HTTP/1.1\r\nhost: controller\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("the controller's answer");
        assert_eq!(n, 1, "the controller closed the connection");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[test]
fn a_broken_stream_resumes_from_the_last_revision() {
    support::require_root();
    let dir = Scratch::new("resume");
    let (host_ns, task) = host();
    let a = Controller::start(&host_ns, &dir.0, "a");
    let (agent, admin) = agent(&host_ns, &dir.0, &[a.url()]);
    let _receiver = join(&task, &dir.0);
    assert!(
        wait_until(Duration::from_secs(30), || a.lists_member("h1")
            && controller_stat(&admin, "stream_connected") == true
            && controller_stat(&admin, "revision").is_u64()),
        "the agent never settled:\n{}",
        agent.log()
    );
    let connects = controller_stat(&admin, "stream_connects");
    assert_eq!(controller_stat(&admin, "stream_resumes"), 0);

    let ours = take_over_stream(&a.sock, "h1");
    // The agent reconnects (taking the stream back) and asks for what it missed.
    assert!(
        wait_until(Duration::from_secs(15), || controller_stat(
            &admin,
            "stream_resumes"
        ) == 1),
        "the agent's stream was not resumed:\n{}\ncontroller:\n{}",
        agent.log(),
        a.proc.log()
    );
    drop(ours);
    let s = stats(&admin).expect("agent stats");
    let c = &s["controller"];
    assert_eq!(c["stream_connects"], connects.as_u64().unwrap() + 1, "{c}");
    // One controller: nothing to move to.
    assert_eq!(c["failovers"], 0, "{c}");
    // The controller's side: the reconnect named a revision and was resumed from it.
    let log = a.proc.log();
    assert!(
        log.lines().any(|l| l.contains("stream opened")
            && l.contains("since=Some(")
            && l.contains("resumed=true")),
        "{log}"
    );
}
