//! A small deployment built in network namespaces for the agent's end-to-end tests, in
//! the shape of the reference one: a VPC router namespace that routes unicast between
//! host subnets and carries no multicast, and per host a namespace whose bridge `br0`
//! holds the host's address, an `uplink` veth to the router and one `tkN` veth per task
//! (the task's `eth0` in its own namespace). The bridge never forwards multicast between
//! its ports (`mcast_snooping 0`, `mcast_flood off` on every port): only the agent does.
//!
//! The controller (`mcgate controller`) runs in the router namespace; one `mcgate agent`
//! per host. Each host runs the data plane it was built with ([`Topo::with_dataplanes`]:
//! the same scenarios run against every data plane, and one domain can mix them); plain
//! [`Topo::new`] takes it from `MCGATE_TEST_DATAPLANE` (default `userspace`).
//!
//! Receivers and senders are small Python programs over real kernel sockets: receivers
//! join with IGMPv2 or IGMPv3 (any-source, INCLUDE or EXCLUDE) and report what arrived.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mcgate_dataplane::kernel::{
    self, BridgeMulticast, DEVICE_PREFIX, Inspection, Netlink, VxlanDevice, device_name,
};

use serde_json::Value;

use crate::support::{Netns, mcgate, sh};

/// The `mcgate` binary the topology runs: `MCGATE_TEST_BIN` when set (for measuring a
/// release build), else the one built for this test run.
pub fn binary() -> String {
    std::env::var("MCGATE_TEST_BIN").unwrap_or_else(|_| mcgate().to_string())
}

/// The data plane the tests run against.
pub fn dataplane() -> String {
    std::env::var("MCGATE_TEST_DATAPLANE").unwrap_or_else(|_| "userspace".to_string())
}

/// The receiver: joins, counts what arrives until its time is up (or SIGTERM), prints
/// one summary line.
pub const RECEIVER_PY: &str = r#"
import socket, sys, time, signal
group, port, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else 'any'
srcs = sys.argv[5].split(',') if len(sys.argv) > 5 and sys.argv[5] else []
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.setsockopt(socket.SOL_IP, 12, 1)  # IP_RECVTTL
s.bind((group, port))
g = socket.inet_aton(group); anyif = socket.inet_aton('0.0.0.0')
if mode == 'include':
    for src in srcs:
        s.setsockopt(socket.SOL_IP, 39, g + anyif + socket.inet_aton(src))
else:
    s.setsockopt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, g + anyif)
    if mode == 'exclude':
        for src in srcs:
            s.setsockopt(socket.SOL_IP, 38, g + anyif + socket.inet_aton(src))
stop = [False]
def on_term(*_):
    stop[0] = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
print('joined', flush=True)
s.settimeout(0.1)
seen = {}
count = dups = 0
mx = -1
ttls = set()
end = time.time() + dur
while not stop[0] and time.time() < end:
    try:
        data, anc, flags, addr = s.recvmsg(65535, 64)
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    count += 1
    for level, kind, val in anc:
        if level == socket.SOL_IP and kind == 2:  # IP_TTL
            ttls.add(int.from_bytes(val[:4], sys.byteorder))
    key = (addr[0], data.split(b' ', 1)[0])
    try:
        mx = max(mx, int(key[1]))
    except ValueError:
        pass
    if key in seen:
        dups += 1
    seen[key] = time.time()
# For a failure's log: which sequence numbers never came, and when the next one did.
got = sorted(int(k[1]) for k in seen if k[1].isdigit())
gaps = [(n, seen.get((a, str(n + 1).encode()))) for a in {k[0] for k in seen}
        for n in range(max(got or [0])) if (a, str(n).encode()) not in seen]
if gaps:
    print('missing=' + ' '.join('%d(next at %s)' % (n, time.strftime('%H:%M:%S', time.gmtime(t)) + ('%.3f' % (t % 1))[1:] if t else '-')
                                for n, t in gaps[:20]), flush=True)
by = {}
for (src, _) in seen:
    by[src] = by.get(src, 0) + 1
print('count=%d unique=%d dups=%d max=%d ttls=%s from=%s' % (count, len(seen), dups, mx,
      ','.join(str(t) for t in sorted(ttls)) or '-',
      ','.join('%s:%d' % kv for kv in sorted(by.items())) or '-'), flush=True)
"#;

/// Sends `count` UDP datagrams to `group`, port `port`, out of `ifname`, every
/// `interval` seconds, then prints `sent COUNT`.
pub const SEND6_PY: &str = r#"
import socket, struct, sys, time
group, ifname, port, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
ifindex = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 8)
for i in range(count):
    s.sendto(b"mcgate ipv6 %d" % i, (group, port, 0, ifindex))
    time.sleep(interval)
print("sent", count, flush=True)
"#;

/// The sender: `count` datagrams of `size` bytes, `interval` seconds apart, with TTL
/// `ttl`, from address `src`.
pub const SENDER_PY: &str = r#"
import socket, sys, time
group, port, count, interval, ttl, src, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, socket.IP_MULTICAST_TTL, ttl)
s.setsockopt(socket.SOL_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.setsockopt(socket.SOL_IP, socket.IP_MULTICAST_LOOP, 0)
s.bind((src, 0))
nxt = time.time()
for i in range(count):
    s.sendto(('%d ' % i).encode().ljust(size, b'x'), (group, port))
    nxt += interval
    d = nxt - time.time()
    if d > 0:
        time.sleep(d)
print('sent=%d' % count, flush=True)
"#;

/// What a sender sends: `count` datagrams of `size` bytes to `group`, `interval`
/// seconds apart, with TTL `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    /// The group.
    pub group: &'a str,
    /// How many datagrams.
    pub count: u32,
    /// Seconds between datagrams.
    pub interval: f64,
    /// IP TTL.
    pub ttl: u8,
    /// UDP payload bytes.
    pub size: usize,
}

/// What a receiver reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Datagrams received.
    pub count: u64,
    /// Distinct (source, sequence) pairs.
    pub unique: u64,
    /// Repeats of a (source, sequence) pair.
    pub dups: u64,
    /// The highest sequence number received (-1: none).
    pub max: i64,
    /// TTLs seen.
    pub ttls: Vec<u8>,
    /// Distinct datagrams per source address.
    pub from: BTreeMap<String, u64>,
}

impl Received {
    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("count="))?;
        let mut r = Received::default();
        for kv in line.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "count" => r.count = v.parse().ok()?,
                "unique" => r.unique = v.parse().ok()?,
                "dups" => r.dups = v.parse().ok()?,
                "max" => r.max = v.parse().ok()?,
                "ttls" if v != "-" => {
                    r.ttls = v.split(',').filter_map(|t| t.parse().ok()).collect()
                }
                "from" if v != "-" => {
                    for p in v.split(',') {
                        let (a, n) = p.split_once(':')?;
                        r.from.insert(a.to_string(), n.parse().ok()?);
                    }
                }
                _ => {}
            }
        }
        Some(r)
    }

    /// Datagrams from `src`.
    pub fn from(&self, src: &str) -> u64 {
        self.from.get(src).copied().unwrap_or(0)
    }
}

/// A task: a namespace with `eth0` on its host's bridge.
pub struct Task {
    /// Its namespace.
    pub ns: Netns,
    /// Its address.
    pub ip: String,
    /// The host-side veth name.
    pub link: String,
}

/// A host namespace with its bridge, tasks and agent.
pub struct Host {
    /// Host name (also the agent's `--host`).
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its address (on `br0`), the underlay address.
    pub ip: String,
    /// The subnet's third octet.
    pub net: u8,
    /// Its tasks.
    pub tasks: Vec<Task>,
    /// The data plane its agent runs (`--dataplane`).
    pub dataplane: String,
    /// More arguments for its agent (`--upstream ...`).
    pub agent_args: Vec<String>,
    agent: Option<Child>,
    agent_runs: usize,
}

/// A running process with its output in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

/// The whole deployment. Dropping it kills every process it started (by PID) and
/// removes every namespace.
pub struct Topo {
    /// The data plane of the first host (the one under test, when all hosts share it).
    pub dataplane: String,
    /// Hosts, `h1`.. in order.
    pub hosts: Vec<Host>,
    /// The VPC router (and controller) namespace.
    pub router: Netns,
    /// Scratch directory (logs, sockets, scripts, the controller's store).
    pub dir: PathBuf,
    /// More arguments for the controller (`--peer-confirm-ms ...`).
    pub controller_args: Vec<String>,
    controller: Option<Child>,
    controller_runs: usize,
    procs: Vec<Proc>,
}

/// The controller's address.
pub const CONTROLLER: &str = "10.200.1.254:7400";
/// The tests' IGMP timers (JSON members of `igmp_settings`): short, so the protocol's
/// waits fit in a test.
pub const TEST_TIMERS: &str = r#""robustness":2,"query_interval_ms":20000,"query_response_interval_ms":2000,"last_member_interval_ms":300"#;

impl Topo {
    /// Builds `hosts` hosts with `tasks` tasks each, every agent on the data plane of
    /// `MCGATE_TEST_DATAPLANE`.
    pub fn new(hosts: usize, tasks: usize) -> Self {
        let dp = dataplane();
        Self::with_dataplanes(tasks, &vec![dp.as_str(); hosts])
    }

    /// Builds one host per entry of `dataplanes` (its agent's `--dataplane`), with
    /// `tasks` tasks each. Host `i` (from 1) is 10.200.i.1 on subnet 10.200.i.0/24; its
    /// task `j` (from 1) is 10.200.i.(10+j) behind `tkj`.
    pub fn with_dataplanes(tasks: usize, dataplanes: &[&str]) -> Self {
        let hosts = dataplanes.len();
        let dir = std::env::temp_dir().join(format!(
            "mcgate-agent-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        std::fs::write(dir.join("recv.py"), RECEIVER_PY).expect("write receiver");
        std::fs::write(dir.join("send.py"), SENDER_PY).expect("write sender");
        let router = Netns::new("agent");
        router.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut topo = Topo {
            dataplane: dataplanes.first().unwrap_or(&"userspace").to_string(),
            hosts: Vec::new(),
            router,
            dir,
            controller_args: Vec::new(),
            controller: None,
            controller_runs: 0,
            procs: Vec::new(),
        };
        for i in 1..=hosts {
            let net = i as u8;
            let name = format!("h{i}");
            let ns = Netns::new("agent");
            let ip = format!("10.200.{net}.1");
            sh(&[
                "ip",
                "link",
                "add",
                "uplink",
                "netns",
                &ns.name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("h{i}"),
                "netns",
                &topo.router.name,
            ]);
            topo.router.run(&[
                "ip",
                "addr",
                "add",
                &format!("10.200.{net}.254/24"),
                "dev",
                &name,
            ]);
            topo.router.run(&["ip", "link", "set", &name, "up"]);
            ns.run(&[
                "ip",
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ]);
            ns.run(&["ip", "link", "set", "uplink", "master", "br0"]);
            ns.run(&[
                "bridge",
                "link",
                "set",
                "dev",
                "uplink",
                "mcast_flood",
                "off",
            ]);
            ns.run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "br0"]);
            ns.run(&["ip", "link", "set", "uplink", "up"]);
            ns.run(&["ip", "link", "set", "br0", "up"]);
            ns.run(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("10.200.{net}.254"),
            ]);
            let mut host = Host {
                name,
                ns,
                ip,
                net,
                tasks: Vec::new(),
                dataplane: dataplanes[i - 1].to_string(),
                agent_args: Vec::new(),
                agent: None,
                agent_runs: 0,
            };
            for j in 1..=tasks {
                let task = add_task(&host, j);
                host.tasks.push(task);
            }
            topo.hosts.push(host);
        }
        topo
    }

    /// The controller's Unix socket: the tests' own calls go there, as admin (TCP is
    /// TLS with credentials, which the agents use).
    pub fn controller_socket(&self) -> std::path::PathBuf {
        self.dir.join("controller.sock")
    }

    /// The join arguments of host `h`'s agent: a join token is issued the first time
    /// (the agent keeps the credential it buys in its credential file and reuses it
    /// when restarted), then the token file, the CA and the credential file.
    pub fn join_args(&self, h: usize) -> Vec<String> {
        let name = &self.hosts[h].name;
        let token = self.dir.join(format!("agent-{name}.token"));
        let cred = self.dir.join(format!("agent-{name}.credentials"));
        if !cred.exists() {
            let t = self.api(
                "POST",
                "/v1/tokens",
                Some(&format!("{{\"host\": \"{name}\"}}")),
            );
            let v: serde_json::Value = serde_json::from_str(&t).expect("token JSON");
            std::fs::write(&token, v["token"].as_str().expect("a token")).expect("token file");
        }
        let ca = self.dir.join("controller-data").join("ca.pem");
        [
            "--token-file".to_string(),
            token.display().to_string(),
            "--ca".into(),
            ca.display().to_string(),
            "--credential-file".into(),
            cred.display().to_string(),
        ]
        .into()
    }

    /// Starts (or restarts) the controller.
    pub fn start_controller(&mut self) {
        assert!(self.controller.is_none(), "controller already running");
        let data = self.dir.join("controller-data");
        std::fs::create_dir_all(&data).expect("controller data dir");
        self.controller_runs += 1;
        let log = self
            .dir
            .join(format!("controller-{}.log", self.controller_runs));
        let socket = self.controller_socket();
        let mut argv = vec![
            binary(),
            "controller".into(),
            "--listen".into(),
            CONTROLLER.into(),
            "--unix".into(),
            socket.to_str().expect("utf-8 path").into(),
            "--data-dir".into(),
            data.to_str().expect("utf-8 path").into(),
        ];
        argv.extend(self.controller_args.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = spawn_logged(&self.router, &argv, &log);
        self.controller = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.api_raw("GET", "/v1/healthz", None).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("controller did not come up:\n{}", read(&log));
    }

    /// Kills the controller (SIGKILL, by PID).
    pub fn kill_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The admin socket of host `h`'s agent.
    pub fn admin_socket(&self, h: usize) -> PathBuf {
        self.dir.join(format!("agent-{}.sock", self.hosts[h].name))
    }

    /// Starts (or restarts) the agent of host `h` (index from 0).
    pub fn start_agent(&mut self, h: usize) {
        let sock = self.admin_socket(h);
        let join = self.join_args(h);
        let host = &mut self.hosts[h];
        let dataplane = host.dataplane.clone();
        let extra = host.agent_args.clone();
        assert!(
            host.agent.is_none(),
            "agent of {} already running",
            host.name
        );
        host.agent_runs += 1;
        let log = self
            .dir
            .join(format!("agent-{}-{}.log", host.name, host.agent_runs));
        let controller = format!("https://{CONTROLLER}");
        let admin = format!("unix:{}", sock.display());
        let mut argv = vec![
            binary(),
            "agent".into(),
            "--controller".into(),
            controller,
            "--host".into(),
            host.name.clone(),
            "--underlay".into(),
            host.ip.clone(),
            "--attach".into(),
            "tk*".into(),
            "--admin".into(),
            admin,
            "--dataplane".into(),
            dataplane,
        ];
        argv.extend(join);
        argv.extend(extra);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = spawn_logged(&host.ns, &argv, &log);
        host.agent = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.metrics(h).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agent of h{} did not come up:\n{}", h + 1, read(&log));
    }

    /// Stops the agent of host `h` with SIGTERM (by PID), waiting for it to exit.
    pub fn stop_agent(&mut self, h: usize) {
        if let Some(mut c) = self.hosts[h].agent.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process ID of host `h`'s agent, while it runs.
    pub fn agent_pid(&self, h: usize) -> Option<u32> {
        self.hosts[h].agent.as_ref().map(Child::id)
    }

    /// Kills the agent of host `h` with SIGKILL (by PID): a crash, no goodbye.
    pub fn kill_agent(&mut self, h: usize) {
        if let Some(mut c) = self.hosts[h].agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts every agent.
    pub fn start_agents(&mut self) {
        for h in 0..self.hosts.len() {
            self.start_agent(h);
        }
    }

    fn api_raw(&self, method: &str, path: &str, body: Option<&str>) -> Output {
        let url = format!("http://controller{path}");
        let sock = self.controller_socket();
        let sock = sock.to_str().expect("utf-8 path");
        let mut args = vec![
            "curl",
            "-sS",
            "-f",
            "-m",
            "5",
            "--unix-socket",
            sock,
            "-X",
            method,
            &url,
        ];
        if let Some(b) = body {
            args.extend(["-H", "content-type: application/json", "-d", b]);
        }
        self.router.output(&args)
    }

    /// Calls the controller's API, panicking on failure; returns the body.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let out = self.api_raw(method, path, body);
        assert!(
            out.status.success(),
            "{method} {path} {body:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates domain `name` (VNI `vni`, IGMP `igmp`), with short IGMP timers so tests
    /// see leaves and restarts quickly, and associates every host.
    pub fn create_domain(&self, name: &str, vni: u32, igmp: &str, static_sources: bool) {
        self.create_domain_tunnelled(name, vni, igmp, static_sources, "wireguard");
    }

    /// [`Topo::create_domain`] with `tunnel` ("wireguard" or "vxlan").
    pub fn create_domain_tunnelled(
        &self,
        name: &str,
        vni: u32,
        igmp: &str,
        static_sources: bool,
        tunnel: &str,
    ) {
        let body = format!(
            r#"{{"name":"{name}","vni":{vni},"igmp":"{igmp}","static_sources":{static_sources},"tunnel":"{tunnel}","igmp_settings":{{{}}}}}"#,
            TEST_TIMERS
        );
        self.api("POST", "/v1/domains", Some(&body));
        self.associate_all(name);
    }

    /// [`Topo::create_domain`] with more IGMP settings (`extra`: JSON members, such as
    /// `"fast_leave":true`) beside the tests' short timers.
    pub fn create_domain_with(&self, name: &str, vni: u32, igmp: &str, extra: &str) {
        let body = format!(
            r#"{{"name":"{name}","vni":{vni},"igmp":"{igmp}","igmp_settings":{{{TEST_TIMERS},{extra}}}}}"#
        );
        self.api("POST", "/v1/domains", Some(&body));
        self.associate_all(name);
    }

    /// Associates every host of the topology with domain `name`.
    fn associate_all(&self, name: &str) {
        for h in &self.hosts {
            self.api(
                "POST",
                &format!("/v1/domains/{name}/associations"),
                Some(&format!(r#"{{"host":"{}"}}"#, h.name)),
            );
        }
    }

    /// The agent's `/metrics` text, if it answers.
    pub fn metrics(&self, h: usize) -> Option<String> {
        self.admin_get(h, "/metrics")
    }

    /// The agent's `/v1/stats` JSON text, if it answers.
    pub fn stats(&self, h: usize) -> Option<String> {
        self.admin_get(h, "/v1/stats")
    }

    /// The agent's `/v1/stats` document, parsed; `None` while it does not answer.
    pub fn stats_doc(&self, h: usize) -> Option<Value> {
        serde_json::from_str(&self.stats(h)?).ok()
    }

    /// Host `h`'s summary of the domain with VXLAN network identifier `vni` (its
    /// `domains[]` entry in `/v1/stats`), once the agent has it.
    pub fn domain_summary(&self, h: usize, vni: u64) -> Option<Value> {
        let doc = self.stats_doc(h)?;
        doc["domains"]
            .as_array()?
            .iter()
            .find(|d| d["vni"].as_u64() == Some(vni))
            .cloned()
    }

    /// The ports of host `h`'s bridge with an entry for `group` in the kernel's
    /// multicast table (what the bridge delivers to when it sees a querier).
    pub fn bridge_member_ports(&self, h: usize, group: &str) -> BTreeSet<String> {
        let out = self.hosts[h].ns.output(&["bridge", "-j", "mdb", "show"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut ports = BTreeSet::new();
        for dev in doc.as_array().into_iter().flatten() {
            for e in dev["mdb"].as_array().into_iter().flatten() {
                if e["grp"] == group
                    && let Some(p) = e["port"].as_str()
                {
                    ports.insert(p.to_string());
                }
            }
        }
        ports
    }

    /// POSTs to the agent's admin endpoint; the body when it answers 2xx.
    pub fn admin_post(&self, h: usize, path: &str) -> Option<String> {
        let sock = self.admin_socket(h);
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "5", "-X", "POST", "--unix-socket"])
            .arg(&sock)
            .arg(format!("http://agent{path}"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn admin_get(&self, h: usize, path: &str) -> Option<String> {
        let sock = self.admin_socket(h);
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "2", "--unix-socket"])
            .arg(&sock)
            .arg(format!("http://agent{path}"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sum of the metric samples named `name` whose labels contain every `labels` pair.
    pub fn metric(&self, h: usize, name: &str, labels: &[(&str, &str)]) -> u64 {
        let text = self.metrics(h).unwrap_or_default();
        metric_in(&text, name, labels)
    }

    /// Waits until `cond` holds, up to `timeout`; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a receiver in task `t` of host `h` for `secs` seconds. `mode` is "any"
    /// (IGMP any-source join), "include" or "exclude" (with `sources`). Waits until it
    /// has joined; returns a handle to collect its report.
    pub fn receiver(
        &mut self,
        h: usize,
        t: usize,
        group: &str,
        secs: f64,
        mode: &str,
        sources: &[&str],
    ) -> usize {
        let script = self.dir.join("recv.py");
        let log = self
            .dir
            .join(format!("recv-{}-{}-{}.log", h, t, self.procs.len()));
        let srcs = sources.join(",");
        let secs = secs.to_string();
        let child = spawn_logged(
            &self.hosts[h].tasks[t].ns,
            &[
                "python3",
                script.to_str().expect("utf-8 path"),
                group,
                "5001",
                &secs,
                mode,
                &srcs,
            ],
            &log,
        );
        self.procs.push(Proc { child, log });
        let idx = self.procs.len() - 1;
        let ok = self.wait_until(Duration::from_secs(5), || {
            read(&self.procs[idx].log).contains("joined")
        });
        assert!(ok, "receiver did not start: {}", read(&self.procs[idx].log));
        idx
    }

    /// Waits for a receiver to finish (SIGTERM at `timeout`) and returns its report.
    pub fn received(&mut self, idx: usize, timeout: Duration) -> Received {
        let p = &mut self.procs[idx];
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if p.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if p.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &p.child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = p.child.kill();
        }
        let _ = p.child.wait();
        let text = read(&p.log);
        Received::parse(&text).unwrap_or_else(|| panic!("receiver report unreadable:\n{text}"))
    }

    /// Sends `flow` from task `t` of host `h`. Returns at once; [`Topo::wait_proc`]
    /// waits for the end.
    pub fn sender(&mut self, h: usize, t: usize, flow: Flow<'_>) -> usize {
        let Flow {
            group,
            count,
            interval,
            ttl,
            size,
        } = flow;
        let script = self.dir.join("send.py");
        let log = self
            .dir
            .join(format!("send-{}-{}-{}.log", h, t, self.procs.len()));
        let src = self.hosts[h].tasks[t].ip.clone();
        let child = spawn_logged(
            &self.hosts[h].tasks[t].ns,
            &[
                "python3",
                script.to_str().expect("utf-8 path"),
                group,
                "5001",
                &count.to_string(),
                &interval.to_string(),
                &ttl.to_string(),
                &src,
                &size.to_string(),
            ],
            &log,
        );
        self.procs.push(Proc { child, log });
        self.procs.len() - 1
    }

    /// Starts any long-running command in a task, its output in a log file.
    pub fn spawn_in_task(&mut self, h: usize, t: usize, args: &[&str]) -> usize {
        let log = self
            .dir
            .join(format!("proc-{}-{}-{}.log", h, t, self.procs.len()));
        let child = spawn_logged(&self.hosts[h].tasks[t].ns, args, &log);
        self.procs.push(Proc { child, log });
        self.procs.len() - 1
    }

    /// Starts any long-running command in another namespace of the test (one it made
    /// beside the topology), its output in a log file.
    pub fn spawn_in_ns(&mut self, ns: &Netns, args: &[&str]) -> usize {
        let log = self
            .dir
            .join(format!("proc-{}-{}.log", ns.name, self.procs.len()));
        let child = spawn_logged(ns, args, &log);
        self.procs.push(Proc { child, log });
        self.procs.len() - 1
    }

    /// Starts any long-running command in the router namespace.
    pub fn spawn_in_router(&mut self, args: &[&str]) -> usize {
        let log = self
            .dir
            .join(format!("proc-router-{}.log", self.procs.len()));
        let child = spawn_logged(&self.router, args, &log);
        self.procs.push(Proc { child, log });
        self.procs.len() - 1
    }

    /// Starts any long-running command in host `h`'s namespace (beside its agent).
    pub fn spawn_in_host(&mut self, h: usize, args: &[&str]) -> usize {
        let log = self
            .dir
            .join(format!("proc-host-{h}-{}.log", self.procs.len()));
        let child = spawn_logged(&self.hosts[h].ns, args, &log);
        self.procs.push(Proc { child, log });
        self.procs.len() - 1
    }

    /// The output so far of a process started by [`Topo::spawn_in_task`] or
    /// [`Topo::spawn_in_router`].
    pub fn proc_log(&self, idx: usize) -> String {
        read(&self.procs[idx].log)
    }

    /// Sends SIGINT to a process this topology started (by PID): a receiver's leave.
    pub fn interrupt_proc(&self, idx: usize) {
        let _ = Command::new("kill")
            .args(["-INT", &self.procs[idx].child.id().to_string()])
            .status();
    }

    /// Waits for a process to end, up to `timeout` (then SIGINT, then SIGKILL, by PID);
    /// returns its output.
    pub fn wait_proc(&mut self, idx: usize, timeout: Duration) -> String {
        let p = &mut self.procs[idx];
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if p.child.try_wait().ok().flatten().is_some() {
                return read(&p.log);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-INT", &p.child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = p.child.kill();
        let _ = p.child.wait();
        read(&p.log)
    }

    /// Removes task `t` of host `h` and creates it again (a container restart: the
    /// host-side link disappears and a new one with the same name appears).
    pub fn restart_task(&mut self, h: usize, t: usize) {
        let host = &self.hosts[h];
        host.ns.run(&["ip", "link", "del", &host.tasks[t].link]);
        std::thread::sleep(Duration::from_millis(1500));
        let task = add_task(host, t + 1);
        self.hosts[h].tasks[t] = task;
    }

    /// Sets the MTU of the underlay path (router links, uplinks and bridges), as a
    /// deployment carrying 1470-byte datagrams over VXLAN must. Call before the agents
    /// start (they read it at start and then every second).
    pub fn set_underlay_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        for h in &self.hosts {
            self.router
                .run(&["ip", "link", "set", &h.name, "mtu", &mtu]);
            h.ns.run(&["ip", "link", "set", "uplink", "mtu", &mtu]);
            h.ns.run(&["ip", "link", "set", "br0", "mtu", &mtu]);
        }
    }

    /// Every log of the test, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(&self.dir) {
            let mut paths: Vec<PathBuf> = dir
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect();
            paths.sort();
            for h in 0..self.hosts.len() {
                out.push_str(&format!(
                    "==== stats of h{}\n{}\n",
                    h + 1,
                    self.stats(h).unwrap_or_default()
                ));
            }
            for p in paths {
                let text = read(&p);
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("==== {}\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for h in &mut self.hosts {
            if let Some(mut c) = h.agent.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.kill_controller();
        if std::env::var_os("MCGATE_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn add_task(host: &Host, j: usize) -> Task {
    let ns = Netns::new("agent");
    let link = format!("tk{j}");
    let ip = format!("10.200.{}.{}", host.net, 10 + j);
    sh(&[
        "ip",
        "link",
        "add",
        &link,
        "netns",
        &host.ns.name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &ns.name,
    ]);
    host.ns.run(&["ip", "link", "set", &link, "master", "br0"]);
    host.ns
        .run(&["bridge", "link", "set", "dev", &link, "mcast_flood", "off"]);
    host.ns.run(&["ip", "link", "set", &link, "up"]);
    ns.run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    ns.run(&["ip", "link", "set", "eth0", "up"]);
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("10.200.{}.254", host.net),
    ]);
    Task { ns, ip, link }
}

fn spawn_logged(ns: &Netns, args: &[&str], log: &PathBuf) -> Child {
    let out = File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log");
    Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", ns.name))
}

/// Runs `f` with a netlink socket opened inside namespace `ns` (on a scratch thread that
/// entered it; the socket keeps working in that namespace).
pub fn netlink_in<T>(ns: &str, f: impl FnOnce(&mut Netlink) -> T) -> T {
    let mut nl = mcgate_testbed::in_netns(ns, || Netlink::open().expect("netlink in namespace"));
    f(&mut nl)
}

impl Topo {
    /// Host `h`'s kernel tables for domain VNI `vni`, read over netlink by mcgate's
    /// kernel module (the VXLAN entries with their destinations, which iproute2 here
    /// cannot show); `None` when the host has no such device.
    pub fn kernel_tables(&self, h: usize, vni: u32) -> Option<Inspection> {
        netlink_in(&self.hosts[h].ns.name, |nl| {
            let dev = VxlanDevice::open(nl, &device_name(vni)).ok()?;
            kernel::inspect(nl, &dev).ok()
        })
    }

    /// The VXLAN devices with mcgate's prefix on host `h`.
    pub fn mcgate_devices(&self, h: usize) -> Vec<String> {
        netlink_in(&self.hosts[h].ns.name, |nl| {
            VxlanDevice::find_stale(nl, DEVICE_PREFIX)
                .expect("list devices")
                .into_iter()
                .map(|l| l.name)
                .collect()
        })
    }

    /// Host `h`'s bridge multicast state (snooping, querier).
    pub fn bridge_state(&self, h: usize) -> BridgeMulticast {
        netlink_in(&self.hosts[h].ns.name, |nl| {
            nl.bridge_multicast("br0").expect("bridge state")
        })
    }
}

/// Reads a file, empty when missing.
pub fn read(p: &PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Sum of the Prometheus samples `name` (with or without `_total`) whose labels include
/// every pair of `labels`.
pub fn metric_in(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut sum = 0u64;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, lbls) = match head.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if metric != name && metric != format!("{name}_total") {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| lbls.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    sum
}

/// The last report line of an iperf 2 UDP server's output and the loss it gives in
/// percent (100 when unreadable); `None` without a report line.
pub fn iperf_loss(text: &str) -> Option<(&str, f64)> {
    let summary = text.lines().rfind(|l| l.contains('%') && l.contains('/'))?;
    let pct = summary
        .split('(')
        .nth(1)
        .and_then(|p| p.split('%').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(100.0);
    Some((summary, pct))
}

impl Topo {
    /// The link-local address of task `task` of host `h`, once out of DAD.
    pub fn task_link_local(&self, h: usize, task: usize) -> Option<String> {
        let out = self.hosts[h].tasks[task].ns.output(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("tentative") {
            return None;
        }
        let addr = text
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)?;
        Some(addr.split('/').next()?.to_string())
    }

    /// Whether task `task` of host `h` has a link-local address out of DAD (it can join
    /// and send IPv6 multicast, and answer MLD queries).
    pub fn task_link_local_ready(&self, h: usize, task: usize) -> bool {
        self.task_link_local(h, task).is_some()
    }
}
