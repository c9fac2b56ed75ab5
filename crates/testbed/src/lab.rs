//! Namespaces and processes of one test, removed on drop, with multicast receivers and
//! senders that run as python3 programs on real kernel sockets.
//!
//! Every namespace is named `<prefix>-<pid>-<n>-<role>`, so a test only ever touches
//! what it made; [`Lab`]'s drop kills what it started (by PID) and deletes its
//! namespaces, even when the test fails.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The UDP port receivers listen on and senders send to.
pub const PORT: u16 = 5001;

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Namespaces and processes of one test, removed on drop.
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    /// A lab whose namespaces are `<prefix>-<pid>-<n>-<role>`.
    pub fn new(prefix: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Self {
            tag: format!("{prefix}-{}-{n}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A new namespace `<tag>-<role>` with loopback up, deleted when the lab drops.
    pub fn netns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.tag);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// The namespaces made so far, in order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Runs `ip -n ns ARGS...`.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["ip", "-n", ns];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs `ARGS...` in namespace `ns`, panicking with its output if it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Starts a receiver in `ns` that joins `groups` and records every datagram.
    pub fn receiver(&mut self, ns: &str, groups: &[Ipv4Addr]) -> Received {
        let list: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.reader(ns, RECEIVER, &[PORT.to_string(), list.join(",")])
    }

    /// Runs a python3 `script` in `ns` that prints "ready" once set up, then one line
    /// per datagram; the lines are collected as they come.
    pub fn reader(&mut self, ns: &str, script: &str, args: &[String]) -> Received {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-u", "-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reader");
        let stdout = child.stdout.take().expect("reader stdout");
        self.children.push(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = ready_tx.send(());
                } else {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reader did not get ready");
        Received(lines)
    }

    /// Sends `count` TTL-1 datagrams to `group` from `src` in task `ns`, tagged `tag`.
    pub fn send(&self, ns: &str, src: &str, group: Ipv4Addr, tag: &str, count: usize) {
        self.exec(
            ns,
            &[
                "python3",
                "-c",
                SENDER,
                &group.to_string(),
                &PORT.to_string(),
                &count.to_string(),
                tag,
                src,
            ],
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Lines a receiver printed: `<tag> <group> <source> <seq>`.
#[derive(Clone)]
pub struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The lines tagged `tag`.
    pub fn count(&self, tag: &str) -> usize {
        let prefix = format!("{tag} ");
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    }
}

/// The receiver program: joins the groups of its second argument on the port of its
/// first, prints "ready", then each datagram as a line.
pub const RECEIVER: &str = r#"
import socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
for g in sys.argv[2].split(","):
    mreq = struct.pack("4s4s", socket.inet_aton(g), socket.inet_aton("0.0.0.0"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
s.settimeout(300)
while True:
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        break
    print(data.decode(errors="replace"), flush=True)
"#;

/// The sender program: `count` TTL-1 datagrams `<tag> <group> <source> <seq>`, 10 ms
/// apart.
pub const SENDER: &str = r#"
import socket, sys, time
group, port, count, tag, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
for i in range(count):
    s.sendto(f"{tag} {group} {src} {i}".encode(), (group, port))
    time.sleep(0.01)
"#;

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

/// Runs `f` on a scratch thread inside namespace `ns`; threads it starts stay there.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).expect("open netns file");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}
