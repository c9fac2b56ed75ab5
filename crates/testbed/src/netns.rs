//! One network namespace per value: [`Netns`] removes itself, and kills the processes
//! started in it (by PID), when dropped, even on failure. Every namespace made here is
//! named `mcgt-<tag>-<pid>-<n>` so a test only ever touches what it made.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Fails the test with a clear sentence when not root: these tests build namespaces.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "this end-to-end test builds network namespaces and must run as root"
    );
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs a command, panicking with its output if it fails.
pub use crate::lab::run as sh;

/// A network namespace removed on drop, with the processes started in it.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    /// Creates `mcgt-<tag>-<pid>-<n>` with loopback up.
    pub fn new(tag: &str) -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("mcgt-{tag}-{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Self {
            name,
            children: Vec::new(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command in the namespace and returns its output, whatever its status.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.name))
    }

    /// Runs a command in the namespace, panicking with its output if it fails.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts a long-running command in the namespace; it is killed when the namespace
    /// is dropped. Its stdout and stderr are piped; take them with [`Netns::wait`].
    pub fn spawn(&mut self, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        self.children.push(child);
        self.children.len() - 1
    }

    /// The PID of a process started with [`Netns::spawn`].
    pub fn pid(&self, idx: usize) -> u32 {
        self.children[idx].id()
    }

    /// Sends SIGINT to a spawned process (by PID), so it prints its summary.
    pub fn interrupt(&self, idx: usize) {
        sh(&["kill", "-INT", &self.children[idx].id().to_string()]);
    }

    /// Waits for a spawned process to end, up to `timeout`, and returns its output;
    /// kills it (by PID) if it does not end in time.
    pub fn wait(&mut self, idx: usize, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let child = &mut self.children[idx];
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let child = std::mem::replace(
            &mut self.children[idx],
            Command::new("true").spawn().expect("spawn true"),
        );
        child.wait_with_output().expect("wait_with_output")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects two namespaces with a veth pair and gives each end an address (CIDR form).
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        if !addr.is_empty() {
            ns.run(&["ip", "addr", "add", addr, "dev", ifname]);
        }
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
}
