//! Scale benchmark of the controller: simulates many agents over the real HTTP API and
//! measures how long a burst of joins takes to reach every one of them.
//!
//! It starts a `mcgate controller` process (so its peak RSS can be read from
//! `/proc/<pid>/status`), creates the domains, registers every simulated agent, opens
//! its stream and keeps its lease; then each agent reports its joins at once, and the
//! clock runs until every agent's applied state (the set of (host, group) members of its
//! domain, checked by count and by an order-independent hash) equals what the
//! controller holds. Results are printed and written as JSON.
//!
//! ```text
//! cargo build --release -p mcgate --example loadgen -p mcgate-controller
//! target/release/examples/loadgen --agents 1000 --groups 100 --domains 20
//! ```

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{StreamExt, TryStreamExt};
use mcgate_client::Client;
use mcgate_domain::SourceFilter;
use mcgate_domain::api::*;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Simulated agents against a real controller.
#[derive(Debug, Parser)]
struct Args {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Groups each agent joins in the burst.
    #[arg(long, default_value_t = 100)]
    groups: usize,
    /// Domains the agents are spread over (20 is the reference gateway's quota).
    #[arg(long, default_value_t = 20)]
    domains: usize,
    /// The `mcgate` binary (default: next to this example's directory).
    #[arg(long)]
    mcgate: Option<PathBuf>,
    /// TCP port for the controller.
    #[arg(long, default_value_t = 17_411)]
    port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Check deltas by counting member joins in the raw bytes instead of decoding each
    /// change (snapshots are still decoded). Measures delivery without the simulated
    /// agents' JSON decoding, which on a small machine competes with the controller for
    /// CPU. Exact for the burst, where every (host, group) is joined once.
    #[arg(long)]
    light: bool,
    /// Single membership changes sent one at a time after convergence, each timed until
    /// every agent of its domain holds it (0: none).
    #[arg(long, default_value_t = 50)]
    probes: usize,
    /// Target: every agent converged within this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    target_converge_ms: u64,
    /// Target: controller peak RSS below this many MB.
    #[arg(long, default_value_t = 500)]
    target_rss_mb: u64,
    /// Target: a single change reaches every agent of its domain within this p99 (ms).
    #[arg(long, default_value_t = 20)]
    target_probe_p99_ms: u64,
    /// How often each simulated agent heartbeats (the controller is told the same);
    /// the default is the controller's own default.
    #[arg(long, default_value_t = 250)]
    heartbeat_ms: u64,
    /// Seconds of the quiet window (streams open, heartbeats only) whose controller CPU
    /// is reported as the cost of keeping the leases.
    #[arg(long, default_value_t = 5)]
    idle_s: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/controller-scale.json")]
    out: PathBuf,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of a process in milliseconds, from `/proc/<pid>/stat`.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0 // USER_HZ is 100 on Linux
}

/// FNV-1a of (host, group): cheap, and good enough to tell member sets apart.
fn key(host: &str, group: impl Into<std::net::IpAddr>) -> u64 {
    let octets = match group.into() {
        std::net::IpAddr::V4(g) => g.octets().to_vec(),
        std::net::IpAddr::V6(g) => g.octets().to_vec(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain(octets) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The set's keys are already hashes: use them as they are.
#[derive(Default, Clone, Copy)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type KeySet = HashSet<u64, BuildHasherDefault<Identity>>;

fn host_name(i: usize) -> String {
    format!("sim-{i:05}")
}

fn group_addr(g: usize) -> Ipv4Addr {
    Ipv4Addr::new(239, 1, (g / 256) as u8, (g % 256) as u8)
}

/// A delta line, read without building owned strings for every change.
#[derive(Deserialize)]
struct LightLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    revision: Option<Revision>,
    #[serde(default, borrow)]
    changes: Vec<LightChange<'a>>,
}

#[derive(Deserialize)]
struct LightChange<'a> {
    kind: &'a str,
    #[serde(default)]
    host: Option<&'a str>,
    #[serde(default)]
    group: Option<Ipv4Addr>,
    #[serde(default)]
    groups: Vec<Ipv4Addr>,
    #[serde(default)]
    filter: Option<IgnoredAny>,
}

impl LightChange<'_> {
    /// The (host, group) pairs a member or members change sets.
    fn pairs(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        let host = match self.kind {
            "member" | "members" => self.host,
            _ => None,
        };
        host.into_iter().flat_map(move |h| {
            self.group
                .into_iter()
                .chain(self.groups.iter().copied())
                .map(move |g| (h, g))
        })
    }
}

struct AgentState {
    members: KeySet,
    sum: u64,
}

impl AgentState {
    fn insert(&mut self, k: u64) {
        if self.members.insert(k) {
            self.sum = self.sum.wrapping_add(k);
        }
    }
    fn remove(&mut self, k: u64) {
        if self.members.remove(&k) {
            self.sum = self.sum.wrapping_sub(k);
        }
    }
}

struct Shared {
    t0_us: AtomicU64,
    start: Instant,
    done_us: Vec<AtomicU64>,
    snapshots: AtomicUsize,
    lines: AtomicU64,
    bytes: AtomicU64,
    reconnects: AtomicU64,
    expected: Vec<(usize, u64)>,
    /// The key of the single change being timed (u64::MAX: none).
    probe_key: AtomicU64,
    /// When each agent applied it, in µs since `start`.
    probe_us: Vec<AtomicU64>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let _ = mcgate_controller::raise_fd_limit();
    let mcgate = match &args.mcgate {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("mcgate"))
            .ok_or("cannot locate the mcgate binary; pass --mcgate")?,
    };
    let data = std::env::temp_dir().join(format!("mcgate-loadgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let listen = format!("127.0.0.1:{}", args.port);
    let ctl = Proc(
        Command::new(&mcgate)
            .args([
                "controller",
                "--listen",
                &listen,
                "--lease-ms",
                "60000",
                "--data-dir",
            ])
            .arg(&data)
            .arg("--heartbeat-ms")
            .arg(args.heartbeat_ms.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", mcgate.display()))?,
    );
    let pid = ctl.0.id();
    // The controller writes its admin credential (URL, CA, token) before it serves.
    let creds = data.join(mcgate_client::credentials::ADMIN_CREDENTIALS_FILE);
    let up = Instant::now();
    let client = loop {
        if let Ok(c) = mcgate_client::Credentials::load(&creds) {
            let client = Client::from_credentials(&c)?;
            if client.get::<Health>("/v1/healthz").await.is_ok() {
                break client;
            }
        }
        if up.elapsed() > Duration::from_secs(10) {
            return Err("the controller did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for d in 0..args.domains {
        let spec = DomainSpec {
            name: format!("dom{d:02}"),
            vni: None,
            igmp: IgmpMode::V2,
            static_sources: false,
            igmp_settings: IgmpSettings::default(),
            tunnel: Default::default(),
        };
        let _: Domain = client.post("/v1/domains", &spec).await?;
        let assoc = AssociationSpec {
            subnet: Some(format!("10.{}.0.0/16", d + 1).parse()?),
            host: None,
        };
        let _: Domain = client
            .post(&format!("/v1/domains/dom{d:02}/associations"), &assoc)
            .await?;
    }
    // Expected state per domain: every agent of the domain × every group.
    let domain_of = |i: usize| i % args.domains;
    let mut expected = vec![(0usize, 0u64); args.domains];
    for i in 0..args.agents {
        let host = host_name(i);
        for g in 0..args.groups {
            let e = &mut expected[domain_of(i)];
            e.0 += 1;
            e.1 = e.1.wrapping_add(key(&host, group_addr(g)));
        }
    }
    let shared = Arc::new(Shared {
        t0_us: AtomicU64::new(u64::MAX),
        start: Instant::now(),
        done_us: (0..args.agents).map(|_| AtomicU64::new(u64::MAX)).collect(),
        snapshots: AtomicUsize::new(0),
        lines: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        expected,
        probe_key: AtomicU64::new(u64::MAX),
        probe_us: (0..args.agents).map(|_| AtomicU64::new(u64::MAX)).collect(),
    });

    // Register and open every stream.
    let t_reg = Instant::now();
    // Concurrently, as agents starting together do; each stream opens once registered.
    let sessions: Vec<u64> = futures_util::stream::iter(0..args.agents)
        .map(|i| {
            let (client, shared) = (client.clone(), shared.clone());
            let light = args.light;
            async move {
                let d = domain_of(i);
                let reg = registration(i, d)?;
                let reply: RegistrationReply = client.post("/v1/agents", &reg).await?;
                tokio::spawn(run_stream(client.clone(), i, d, shared, light));
                Ok::<u64, Box<dyn std::error::Error>>(reply.session)
            }
        })
        .buffered(32)
        .try_collect()
        .await?;
    let reg_ms = t_reg.elapsed().as_millis();
    // Heartbeats keep the leases.
    let every = Duration::from_millis(args.heartbeat_ms);
    for (i, &session) in sessions.iter().enumerate() {
        let c = client.clone();
        tokio::spawn(async move {
            let path = format!("/v1/agents/{}/heartbeat", host_name(i));
            // Spread over the interval, as agents started at different times are.
            let offset = every.mul_f64((i % 1000) as f64 / 1000.0);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _: Result<serde_json::Value, _> = c.post(&path, &Heartbeat::new(session)).await;
            }
        });
    }
    while shared.snapshots.load(Ordering::Relaxed) < args.agents {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the registrations' own deltas settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The cost of keeping agents: heartbeats and the streams' keepalive lines, over a
    // quiet window.
    let idle_cpu0 = cpu_ms(&pid.to_string());
    tokio::time::sleep(Duration::from_secs(args.idle_s)).await;
    let idle_cpu_pct = (cpu_ms(&pid.to_string()) - idle_cpu0) / (args.idle_s.max(1) as f64 * 10.0);
    println!(
        "heartbeats every {} ms from {} agents, a keepalive line per stream each second: controller CPU {idle_cpu_pct:.1}% of one core while quiet",
        args.heartbeat_ms, args.agents
    );
    let rss_before_kb = proc_status_kb(pid, "VmRSS:");
    println!(
        "{} agents registered in {reg_ms} ms with streams open; controller RSS {} MB; burst of {} joins each",
        args.agents,
        rss_before_kb / 1024,
        args.groups
    );

    // The burst: every agent reports its joins at once.
    let (ctl_cpu0, self_cpu0) = (cpu_ms(&pid.to_string()), cpu_ms("self"));
    // Other work on the machine skews wall times; record how busy it was.
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1: f64 = loadavg
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let t0 = shared.start.elapsed().as_micros() as u64;
    shared.t0_us.store(t0, Ordering::SeqCst);
    let t_burst = Instant::now();
    // The reports go out from their own thread: a real agent sends its report when its
    // joins happen, on its own CPU, not after the simulation has decoded every other
    // agent's stream.
    let reports_client = client.clone();
    let groups = args.groups;
    let sessions_for_reports = sessions.clone();
    let reporter = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut reports = Vec::with_capacity(sessions_for_reports.len());
            for (i, &session) in sessions_for_reports.iter().enumerate() {
                let c = reports_client.clone();
                reports.push(tokio::spawn(async move {
                    let report = MembershipReport {
                        session,
                        seq: 1,
                        snapshot: false,
                        entries: (0..groups)
                            .map(|g| LinkMembership {
                                link: "veth0".into(),
                                group: group_addr(g).into(),
                                filter: Some(SourceFilter::any_source()),
                                reporters: vec![],
                            })
                            .collect(),
                    };
                    c.post::<_, MembershipAck>(
                        &format!("/v1/agents/{}/membership", host_name(i)),
                        &report,
                    )
                    .await
                }));
            }
            for r in reports {
                r.await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    });
    tokio::task::spawn_blocking(move || reporter.join())
        .await?
        .map_err(|_| "the report thread panicked")??;
    let reports_ms = t_burst.elapsed().as_secs_f64() * 1e3;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    loop {
        let done = shared
            .done_us
            .iter()
            .filter(|d| d.load(Ordering::Relaxed) != u64::MAX)
            .count();
        if done == args.agents {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {done} of {} agents converged in {} s",
                args.agents, args.timeout_s
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ctl_cpu = cpu_ms(&pid.to_string()) - ctl_cpu0;
    let self_cpu = cpu_ms("self") - self_cpu0;
    let mut times: Vec<f64> = shared
        .done_us
        .iter()
        .map(|d| d.load(Ordering::Relaxed).saturating_sub(t0) as f64 / 1e3)
        .collect();
    times.sort_by(f64::total_cmp);
    let converge_ms = times.last().copied().unwrap_or(0.0);
    let p50 = times[times.len() / 2];
    // The controller's own view must match what the agents hold.
    let agents: Vec<AgentInfo> = client.get("/v1/agents").await?;
    let held: usize = agents.iter().map(|a| a.memberships).sum();
    let want: usize = shared.expected.iter().map(|e| e.0).sum();
    // Single changes: one agent joins one more group; timed from the report until every
    // agent of its domain holds it.
    let mut probe_ms: Vec<f64> = Vec::new();
    for p in 0..args.probes {
        let i = (p * args.agents / args.probes) % args.agents;
        let d = domain_of(i);
        let group = group_addr(args.groups + p);
        for t in &shared.probe_us {
            t.store(u64::MAX, Ordering::Relaxed);
        }
        shared
            .probe_key
            .store(key(&host_name(i), group), Ordering::SeqCst);
        let sent_us = shared.start.elapsed().as_micros() as u64;
        let report = MembershipReport {
            session: sessions[i],
            seq: 2 + p as u64,
            snapshot: false,
            entries: vec![LinkMembership {
                link: "veth0".into(),
                group: group.into(),
                filter: Some(SourceFilter::any_source()),
                reporters: vec![],
            }],
        };
        let _: MembershipAck = client
            .post(&format!("/v1/agents/{}/membership", host_name(i)), &report)
            .await?;
        let audience: Vec<usize> = (0..args.agents).filter(|&j| domain_of(j) == d).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let last = loop {
            let seen: Vec<u64> = audience
                .iter()
                .map(|&j| shared.probe_us[j].load(Ordering::Relaxed))
                .collect();
            if seen.iter().all(|&t| t != u64::MAX) {
                break seen.into_iter().max().unwrap_or(sent_us);
            }
            if Instant::now() > deadline {
                return Err(format!("single change {p} did not reach every agent in 10 s").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        probe_ms.push(last.saturating_sub(sent_us) as f64 / 1e3);
    }
    probe_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| -> Option<f64> {
        (!probe_ms.is_empty()).then(|| {
            probe_ms[((probe_ms.len() as f64 * q).ceil() as usize).clamp(1, probe_ms.len()) - 1]
        })
    };
    let (probe_p50, probe_p99) = (pct(0.5), pct(0.99));
    let audience_size = args.agents.div_ceil(args.domains);
    if let (Some(a), Some(b)) = (probe_p50, probe_p99) {
        println!(
            "single change to all {audience_size} agents of its domain: p50 {a:.1} ms, p99 {b:.1} ms over {} changes",
            probe_ms.len()
        );
    }
    let peak_kb = proc_status_kb(pid, "VmHWM:");
    let rss_after_kb = proc_status_kb(pid, "VmRSS:");
    let per_agent = shared.expected.first().map(|e| e.0).unwrap_or(0);
    println!(
        "all {} agents converged: last {converge_ms:.0} ms, median {p50:.0} ms after the burst began",
        args.agents
    );
    println!("reports all acknowledged after {reports_ms:.0} ms");
    println!(
        "CPU during the burst: controller {ctl_cpu:.0} ms, load generator (simulated agents) {self_cpu:.0} ms"
    );
    println!(
        "each agent holds {per_agent} (host, group) members; controller holds {held} memberships (want {want}); {} lines, {} MB streamed; {} reconnects",
        shared.lines.load(Ordering::Relaxed),
        shared.bytes.load(Ordering::Relaxed) >> 20,
        shared.reconnects.load(Ordering::Relaxed)
    );
    println!(
        "controller peak RSS (VmHWM) {} MB, RSS now {} MB",
        peak_kb / 1024,
        rss_after_kb / 1024
    );
    let target_ok = converge_ms <= args.target_converge_ms as f64
        && peak_kb < args.target_rss_mb * 1024
        && held == want
        && probe_p99.is_none_or(|p| p <= args.target_probe_p99_ms as f64);
    let json = serde_json::json!({
        "benchmark": "controller-scale",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_1m_at_burst": load1,
        "agents": args.agents,
        "groups_per_agent": args.groups,
        "domains": args.domains,
        "verify": if args.light { "count of joins in raw deltas" } else { "decoded (host, group) set, count and hash" },
        "members_per_agent_view": per_agent,
        "register_ms": reg_ms,
        "reports_acked_ms": reports_ms,
        "converge_ms": converge_ms,
        "converge_p50_ms": p50,
        "controller_cpu_ms_during_burst": ctl_cpu,
        "loadgen_cpu_ms_during_burst": self_cpu,
        "controller_memberships": held,
        "expected_memberships": want,
        "stream_lines": shared.lines.load(Ordering::Relaxed),
        "stream_bytes": shared.bytes.load(Ordering::Relaxed),
        "stream_reconnects": shared.reconnects.load(Ordering::Relaxed),
        "controller_rss_before_burst_mb": rss_before_kb as f64 / 1024.0,
        "controller_peak_rss_mb": peak_kb as f64 / 1024.0,
        "heartbeat_ms": args.heartbeat_ms,
        "idle_controller_cpu_pct": idle_cpu_pct,
        "probes": probe_ms.len(),
        "probe_audience": audience_size,
        "probe_p50_ms": probe_p50,
        "probe_p99_ms": probe_p99,
        "target": {
            "converge_ms": args.target_converge_ms,
            "peak_rss_mb": args.target_rss_mb,
            "probe_p99_ms": args.target_probe_p99_ms,
        },
        "met": target_ok,
    });
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("wrote {}", args.out.display());
    drop(ctl);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// Agent `i`'s registration, in domain `d`'s subnet.
fn registration(i: usize, d: usize) -> Result<AgentRegistration, Box<dyn std::error::Error>> {
    Ok(AgentRegistration {
        host: host_name(i),
        underlay: SocketAddrV4::new(
            Ipv4Addr::new(
                10,
                (d + 1) as u8,
                (i / 250 % 256) as u8,
                (i % 250 + 1) as u8,
            ),
            VXLAN_PORT,
        ),
        subnet: Some(format!("10.{}.{}.0/24", d + 1, i / 250 % 256).parse()?),
        links: vec![LinkInfo {
            name: "veth0".into(),
            address: None,
            single_host: true,
        }],
        dataplane: Some("loadgen".into()),
        public_key: String::new(),
        wireguard: None,
        zone: None,
        upstream: None,
    })
}

/// One simulated agent's stream: applies snapshots and deltas, reconnecting (with
/// `since`) if the controller closes it, and marks the moment its state is complete.
async fn run_stream(client: Client, i: usize, d: usize, shared: Arc<Shared>, light: bool) {
    let mut joins = 0usize;
    let mut state = AgentState {
        members: KeySet::default(),
        sum: 0,
    };
    let mut since: Option<Revision> = None;
    let mut first = true;
    let domain = format!("dom{d:02}");
    let (want_n, want_sum) = shared.expected[d];
    loop {
        let path = match since {
            Some(r) => format!("/v1/agents/{}/stream?since={r}", host_name(i)),
            None => format!("/v1/agents/{}/stream", host_name(i)),
        };
        let Ok(mut s) = client.stream(&path).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Ok(Some(line)) = s.next_line().await {
            shared.lines.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
            if light && line.starts_with(b"{\"type\":\"delta\"") {
                let Ok(parsed) = serde_json::from_slice::<LightLine>(&line) else {
                    continue;
                };
                for c in parsed.changes.iter().filter(|c| c.filter.is_some()) {
                    for (h, g) in c.pairs() {
                        joins += 1;
                        shared.saw(i, key(h, g));
                    }
                }
                since = None; // light mode never resumes; it only counts
                if shared.t0_us.load(Ordering::Relaxed) != u64::MAX
                    && state.members.len() + joins == want_n
                    && shared.done_us[i].load(Ordering::Relaxed) == u64::MAX
                {
                    shared.done_us[i]
                        .store(shared.start.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                continue;
            }
            let Ok(parsed) = serde_json::from_slice::<LightLine>(&line) else {
                continue;
            };
            match parsed.kind {
                "snapshot" => {
                    let Ok(StreamMessage::Snapshot { revision, domains }) =
                        serde_json::from_slice::<StreamMessage>(&line)
                    else {
                        continue;
                    };
                    state.members.clear();
                    state.sum = 0;
                    joins = 0;
                    for ds in domains.iter().filter(|ds| ds.domain.name == domain) {
                        for m in &ds.members {
                            state.insert(key(&m.host, m.group));
                        }
                    }
                    since = Some(revision);
                    if first {
                        first = false;
                        shared.snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                }
                "delta" => {
                    for c in &parsed.changes {
                        for (h, g) in c.pairs() {
                            let k = key(h, g);
                            if c.filter.is_some() {
                                state.insert(k);
                                shared.saw(i, k);
                            } else {
                                state.remove(k);
                            }
                        }
                    }
                    since = parsed.revision.or(since);
                }
                _ => {
                    since = parsed.revision.or(since);
                }
            }
            let t0 = shared.t0_us.load(Ordering::Relaxed);
            if t0 != u64::MAX
                && state.members.len() == want_n
                && state.sum == want_sum
                && shared.done_us[i].load(Ordering::Relaxed) == u64::MAX
            {
                shared.done_us[i]
                    .store(shared.start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        }
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Records when agent `i` applied the timed change, if `k` is it.
    fn saw(&self, i: usize, k: u64) {
        if k == self.probe_key.load(Ordering::Relaxed) {
            let _ = self.probe_us[i].compare_exchange(
                u64::MAX,
                self.start.elapsed().as_micros() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}
