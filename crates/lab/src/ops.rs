//! The lab's life cycle: up and restart (down is `teardown`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mcgate_client::Client;
use mcgate_domain::api::{AssociationSpec, DomainSpec, IgmpSettings};

use crate::container;
use crate::error::LabError;
use crate::net;
use crate::placement::place;
use crate::plan::{AgentFlags, plan};
use crate::process::{self, is_running, launch, stop};
use crate::state::{
    LabState, Launch, Running, StateLock, exit_path, lab_dir, labs_root, log_path, read_exit,
};
use crate::topology::Topology;

pub use crate::teardown::down;

/// How long a starting controller or agent may take to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process gets to end on SIGINT (and then on SIGTERM).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);

/// Fails unless running as root.
pub fn require_root(what: &'static str) -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot(what))
    }
}

/// A tokio runtime for the few controller calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, LabError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io(Path::new("tokio runtime"), e))
}

/// A client of the lab controller over its Unix socket.
pub fn controller_client(socket: &Path) -> Result<Client, LabError> {
    Client::new(&format!("unix:{}", socket.display())).map_err(|e| LabError::Controller {
        what: "its socket path".into(),
        source: e,
    })
}

/// Which optional flags this binary's agent takes (read from its own `--help`, so the
/// lab keeps working with agents of any version).
fn agent_flags(exe: &Path) -> AgentFlags {
    let help = Command::new(exe)
        .args(["agent", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    AgentFlags {
        admin: help.contains("--admin"),
        dataplane: help.contains("--dataplane"),
        state_dir: help.contains("--state-dir"),
        token: help.contains("--token-file"),
        zone: help.contains("--zone"),
    }
}

/// The last lines of a node's log, indented, for error messages.
pub fn log_tail(dir: &Path, node: &str, lines: usize) -> String {
    let body = std::fs::read_to_string(log_path(dir, node)).unwrap_or_default();
    let all: Vec<&str> = body.lines().collect();
    let from = all.len().saturating_sub(lines);
    let tail: Vec<String> = all
        .get(from..)
        .unwrap_or(&[])
        .iter()
        .map(|l| format!("\n    {l}"))
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "; the end of its log ({}):{}",
            log_path(dir, node).display(),
            tail.concat()
        )
    }
}

/// Starts a node's process under `supervisor` and records it in `l`.
pub(crate) fn start_node(
    supervisor: &Path,
    dir: &Path,
    node: &str,
    l: &mut Launch,
) -> Result<Running, LabError> {
    let r = launch(
        supervisor,
        &l.netns,
        l.private_run,
        &l.argv,
        &l.env,
        &log_path(dir, node),
        &exit_path(dir, node),
    )?;
    l.running = Some(r);
    Ok(r)
}

pub(crate) fn node_failed(dir: &Path, node: &str, why: String) -> LabError {
    LabError::NodeFailed {
        node: node.to_string(),
        why,
        log: log_tail(dir, node, 12),
    }
}

pub(crate) fn exited_why(dir: &Path, node: &str) -> String {
    match read_exit(dir, node) {
        Some(e) => format!("it exited with code {}", e.exit_code),
        None if !log_path(dir, node).exists() => {
            let exe = process::self_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "mcgate".into());
            format!("it ended before it could start; is {exe} still there (not being rebuilt)?")
        }
        None => "it was killed".to_string(),
    }
}

/// [`up_with`] with the default options, leaving the tasks of the `hold` services
/// built but not started (start them with [`restart`]).
pub fn up_holding(topo: &Topology, hold: &[String]) -> Result<LabState, LabError> {
    up_with(
        topo,
        &UpOptions {
            hold: hold.to_vec(),
            ..UpOptions::default()
        },
    )
}

/// How [`up_with`] builds a lab.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services whose tasks are built but not started.
    pub hold: Vec<String>,
    /// The binary that supervises the lab's processes (`BIN lab _run ...`); `None`:
    /// this one.
    pub supervisor: Option<std::path::PathBuf>,
    /// Build the network and start only the etcd cluster (no controllers, agents or
    /// tasks): what a test of the cluster alone needs.
    pub etcd_only: bool,
    /// Port on 127.0.0.1 for the forwarder to the controller (`None` or 0: any free
    /// port).
    pub ui_port: Option<u16>,
}

/// Builds and starts a lab as `opts` say. Prints progress as it goes. On failure,
/// removes everything it made before returning the error.
pub fn up_with(topo: &Topology, opts: &UpOptions) -> Result<LabState, LabError> {
    require_root("mcgate lab up")?;
    let placed = place(topo)?;
    let exe = process::self_exe()?;
    let mut st = plan(topo, &placed, &exe, agent_flags(&exe))?;
    st.supervisor = opts.supervisor.clone();
    if !opts.etcd_only {
        crate::ops_ha::check_controller_flags(&st, &exe)?;
        st.ui = crate::ui::plan(&st, &exe, opts.ui_port.unwrap_or(0));
    }
    crate::ops_ha::check_etcd_installed(&st)?;
    let hold = &opts.hold;
    if lab_dir(&st.name).exists() {
        return Err(LabError::AlreadyUp(st.name.clone(), lab_dir(&st.name)));
    }
    // Images first: a failed build leaves nothing to remove.
    container::build_images(topo)?;
    let root = labs_root();
    std::fs::create_dir_all(&root).map_err(|e| LabError::io(&root, e))?;
    let dir = st.dir();
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LabError::AlreadyUp(st.name.clone(), dir));
        }
        Err(e) => return Err(LabError::io(&dir, e)),
    }
    let existing = net::list_netns();
    if let Some(ns) = st.namespaces.iter().find(|ns| existing.contains(ns)) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(LabError::NamespaceTaken(ns.clone(), st.name.clone()));
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| LabError::io(&logs, e))?;
    // From here on a Ctrl-C removes what was built instead of leaving it half done.
    watch_interrupts();
    st.save()?;
    println!(
        "lab {}: {} subnet(s), {} host(s), {} task(s), from {}",
        st.name,
        st.subnets.len(),
        st.hosts.len(),
        st.tasks.len(),
        st.file
    );
    match build_and_start(&mut st, hold, opts.etcd_only) {
        Ok(()) => {
            st.phase = "up".into();
            st.save()?;
            Ok(st)
        }
        Err(e) => {
            println!("failed: {e}");
            println!("removing what was built...");
            if let Err(e2) = down(&st.name) {
                println!(
                    "clean-up failed too: {e2}; run `mcgate lab down {}`",
                    st.name
                );
            }
            Err(e)
        }
    }
}

/// Tests of the clean-up after a failed `lab up` set `MCGATE_LAB_FAIL_AT` to a step
/// name ("hosts", "tasks", "started"); `lab up` then fails right after that step, as a
/// real failure there would.
fn fail_point(step: &str) -> Result<(), LabError> {
    match std::env::var("MCGATE_LAB_FAIL_AT") {
        Ok(s) if s == step => Err(LabError::Injected(step.to_string())),
        _ => Ok(()),
    }
}

thread_local! {
    static INTERRUPT: std::cell::RefCell<Option<process::Interrupt>> =
        const { std::cell::RefCell::new(None) };
}

/// Starts noticing Ctrl-C and stop signals (see [`check_interrupt`]).
pub fn watch_interrupts() {
    INTERRUPT.with(|i| {
        let mut i = i.borrow_mut();
        if i.is_none() {
            *i = process::Interrupt::install();
        }
    });
}

/// Fails with [`LabError::Interrupted`] once Ctrl-C or a stop signal arrived.
pub fn check_interrupt() -> Result<(), LabError> {
    let hit = INTERRUPT.with(|i| i.borrow_mut().as_mut().is_some_and(|x| x.pending()));
    if hit {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}

fn build_and_start(st: &mut LabState, hold: &[String], etcd_only: bool) -> Result<(), LabError> {
    let dir = st.dir();
    let sup = st.supervisor()?;
    let steps = match (&st.control_plane, st.has_controller()) {
        (Some(_), _) if etcd_only => 4,
        (Some(_), _) => 8,
        (None, true) => 7,
        (None, false) => 4,
    };
    println!(
        "[1/{steps}] VPC router {} ({}): routes unicast between subnets, carries no multicast",
        st.vpc_netns, st.vpc
    );
    net::build_vpc(st)?;
    for s in &st.subnets {
        println!(
            "        subnet {} {} (zone {}): gateway {} on bridge {}",
            s.name, s.cidr, s.zone, s.gateway, s.bridge
        );
    }
    if let (Some(c), Some(ns)) = (&st.controller, &st.controller_netns) {
        net::build_controller(st, c, ns)?;
        println!("        controller link: {} in {ns}", c.ip);
    }
    if let Some(cp) = &st.control_plane {
        net::build_control_plane(st, cp)?;
        println!(
            "        control plane {} on bridge {}: etcd {}, controllers {}",
            cp.net,
            cp.bridge,
            cp.etcd
                .iter()
                .map(|e| format!("{} {}", e.name, e.ip))
                .collect::<Vec<_>>()
                .join(", "),
            cp.replicas
                .iter()
                .map(|r| format!("{} {}", r.name, r.ip))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("[2/{steps}] hosts");
    for h in &st.hosts {
        check_interrupt()?;
        net::build_host(st, h)?;
        let igmp = if h.force_igmp_version > 0 {
            format!(", IGMP forced to v{}", h.force_igmp_version)
        } else {
            String::new()
        };
        println!(
            "        {}: {} in {} (zone {}), namespace {}{igmp}",
            h.name, h.underlay_ip, h.subnet, h.zone, h.netns
        );
    }
    for e in &st.externals {
        check_interrupt()?;
        net::build_external(st, e)?;
        println!(
            "        external network {} {} (namespace {}): IGMPv{} querier {}, reached only from {} ({} {}, --upstream-groups {})",
            e.name,
            e.cidr,
            e.netns,
            e.igmp_version,
            e.address,
            e.host,
            e.host_link,
            e.host_address,
            e.groups
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    fail_point("hosts")?;
    println!("[3/{steps}] task networks (one namespace and address per task, like awsvpc)");
    for t in &st.tasks {
        let Some(h) = st.hosts.iter().find(|h| h.name == t.host) else {
            continue;
        };
        check_interrupt()?;
        net::build_task(st, h, t)?;
        println!(
            "        {}: {} on {} (link {}), namespace {}",
            t.name, t.ip, t.host, t.link, t.launch.netns
        );
    }
    st.save()?;
    fail_point("tasks")?;

    let mut step = 4;
    if st.control_plane.is_some() {
        crate::ops_ha::start_etcd(st, &sup, step, steps)?;
        step += 1;
        if etcd_only {
            return Ok(());
        }
        crate::ops_ha::start_replicas(st, &sup, step, steps)?;
        step += 1;
        crate::ui::start(st, step, steps)?;
        step += 1;
        start_agents(st, &dir, step, steps)?;
        step += 1;
    } else if st.controller.is_some() {
        start_controller(st, &dir, step, steps)?;
        step += 1;
        crate::ui::start(st, step, steps)?;
        step += 1;
        start_agents(st, &dir, step, steps)?;
        step += 1;
    }
    println!("[{step}/{steps}] tasks");
    for i in 0..st.tasks.len() {
        check_interrupt()?;
        let name = st.tasks[i].name.clone();
        if hold.contains(&st.tasks[i].service) {
            println!("        {name}: held, starts later");
            continue;
        }
        let r = start_node(&sup, &dir, &name, &mut st.tasks[i].launch)?;
        st.save()?;
        println!(
            "        {name}: pid {} runs {}",
            r.pid,
            process::shell_words(&st.tasks[i].launch.argv)
        );
    }
    for i in 0..st.externals.len() {
        check_interrupt()?;
        let name = st.externals[i].name.clone();
        let Some(launch) = st.externals[i].sender.as_mut() else {
            continue;
        };
        let r = start_node(&sup, &dir, &name, launch)?;
        let argv = process::shell_words(&launch.argv);
        st.save()?;
        println!(
            "        {name} (external sender): pid {} runs {argv}",
            r.pid
        );
    }
    // A task that cannot start at all (no such program) shows as exited in the table.
    std::thread::sleep(Duration::from_millis(300));
    check_interrupt()?;
    fail_point("started")
}

fn start_controller(
    st: &mut LabState,
    dir: &Path,
    step: usize,
    steps: usize,
) -> Result<(), LabError> {
    let Some(c) = st.controller.as_mut() else {
        return Ok(());
    };
    let r = start_node(&process::self_exe()?, dir, "controller", &mut c.launch)?;
    let url = c.url.clone();
    let socket = c.socket.clone();
    st.save()?;
    let client = controller_client(&socket)?;
    let rt = runtime()?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let ok = rt
            .block_on(client.get::<serde_json::Value>("/v1/healthz"))
            .is_ok();
        if ok {
            break;
        }
        if !is_running(&r) {
            return Err(node_failed(
                dir,
                "controller",
                exited_why(dir, "controller"),
            ));
        }
        if Instant::now() > deadline {
            return Err(node_failed(
                dir,
                "controller",
                format!(
                    "no answer on {} within {:?}",
                    socket.display(),
                    STARTUP_TIMEOUT
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "[{step}/{steps}] controller: {url} and unix:{} (pid {})",
        socket.display(),
        r.pid
    );
    setup_domain(st, &client, &rt)
}

/// Creates the topology's domain and associates its subnets, through `client`.
pub(crate) fn setup_domain(
    st: &LabState,
    client: &Client,
    rt: &tokio::runtime::Runtime,
) -> Result<(), LabError> {
    if let Some(d) = topo_domain(st) {
        let spec = DomainSpec {
            name: d.0.clone(),
            vni: None,
            igmp: d.1,
            static_sources: d.2,
            igmp_settings: IgmpSettings::default(),
            tunnel: d.4,
        };
        rt.block_on(client.post::<_, serde_json::Value>("/v1/domains", &spec))
            .map_err(|e| LabError::Controller {
                what: format!("creating domain {}", d.0),
                source: e,
            })?;
        for (sname, cidr) in &d.3 {
            let assoc = AssociationSpec {
                subnet: Some(*cidr),
                host: None,
            };
            rt.block_on(client.post::<_, serde_json::Value>(
                &format!("/v1/domains/{}/associations", d.0),
                &assoc,
            ))
            .map_err(|e| LabError::Controller {
                what: format!("associating subnet {sname} with domain {}", d.0),
                source: e,
            })?;
        }
        println!(
            "        domain {} (igmp {}, static sources {}), subnets {}",
            d.0,
            igmp_word(d.1),
            if d.2 { "on" } else { "off" },
            d.3.iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// The IGMP mode as the topology file writes it.
pub fn igmp_word(m: mcgate_domain::api::IgmpMode) -> &'static str {
    match m {
        mcgate_domain::api::IgmpMode::V2 => "v2",
        mcgate_domain::api::IgmpMode::V3 => "v3",
        mcgate_domain::api::IgmpMode::Off => "off",
    }
}

type DomainPlan = (
    String,
    mcgate_domain::api::IgmpMode,
    bool,
    Vec<(String, ipnet::Ipv4Net)>,
    mcgate_domain::api::Tunnel,
);

/// The domain to create, with its subnets' networks.
fn topo_domain(st: &LabState) -> Option<DomainPlan> {
    st.domain_setup.as_ref().map(|d| {
        (
            d.name.clone(),
            d.igmp,
            d.static_sources,
            d.subnets
                .iter()
                .filter_map(|n| st.subnets.iter().find(|s| &s.name == n))
                .map(|s| (s.name.clone(), s.cidr))
                .collect(),
            d.tunnel,
        )
    })
}

/// Issues `host`'s join token over the controller's Unix socket and writes it where
/// the agent's `--token-file` reads it (0600), unless the file is there already (a
/// restarted agent uses the credential it keeps in its state directory).
pub(crate) fn write_join_token(st: &LabState, host: &str) -> Result<(), LabError> {
    let path = crate::plan::agent_token_file(&st.dir(), host);
    if !st.has_controller() || path.exists() {
        return Ok(());
    }
    let client = controller_client(&crate::ops_ha::live_socket(st)?)?;
    let spec = mcgate_domain::auth_api::JoinTokenSpec {
        host: host.to_string(),
        ttl_s: Some(600),
    };
    let t: mcgate_domain::auth_api::IssuedToken = runtime()?
        .block_on(client.post("/v1/tokens", &spec))
        .map_err(|e| LabError::Controller {
            what: format!("issuing the join token of {host}"),
            source: e,
        })?;
    mcgate_client::credentials::write_private(&path, t.token.as_bytes())
        .map_err(|e| LabError::io(&path, e))
}

fn start_agents(st: &mut LabState, dir: &Path, step: usize, steps: usize) -> Result<(), LabError> {
    let mut started = Vec::new();
    for i in 0..st.hosts.len() {
        let name = st.hosts[i].name.clone();
        if st.hosts[i]
            .agent
            .as_ref()
            .is_some_and(|l| l.argv.iter().any(|a| a == "--token-file"))
        {
            write_join_token(st, &name)?;
        }
        let sup = st.supervisor()?;
        if let Some(l) = st.hosts[i].agent.as_mut() {
            let r = start_node(&sup, dir, &name, l)?;
            started.push((name, r));
        }
    }
    st.save()?;
    if !st.has_controller() {
        return Ok(());
    }
    let client = controller_client(&crate::ops_ha::live_socket(st)?)?;
    let rt = runtime()?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let agents = rt
            .block_on(client.get::<Vec<serde_json::Value>>("/v1/agents"))
            .unwrap_or_default();
        let up = |host: &str| {
            agents.iter().any(|a| {
                a.get("host").and_then(|h| h.as_str()) == Some(host)
                    && a.get("state").and_then(|s| s.as_str()) == Some("up")
            })
        };
        if started.iter().all(|(h, _)| up(h)) {
            break;
        }
        check_interrupt()?;
        for (h, r) in &started {
            if !is_running(r) {
                return Err(node_failed(
                    dir,
                    h,
                    format!("its agent: {}", exited_why(dir, h)),
                ));
            }
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = started
                .iter()
                .filter(|(h, _)| !up(h))
                .map(|(h, _)| h.as_str())
                .collect();
            let first = missing.first().copied().unwrap_or("agent");
            return Err(node_failed(
                dir,
                first,
                format!(
                    "the agent(s) of {} did not register with the controller within {:?}",
                    missing.join(", "),
                    STARTUP_TIMEOUT
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "[{step}/{steps}] agents registered: {}",
        started
            .iter()
            .map(|(h, r)| format!("{h} (pid {})", r.pid))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Restarts `controller`, a host's agent (by host name) or a task.
pub fn restart(lab: &str, node: &str) -> Result<Running, LabError> {
    require_root("mcgate lab restart")?;
    let dir = lab_dir(lab);
    let _lock = StateLock::take(&dir)?;
    let mut st = LabState::load(lab)?;
    let sup = st.supervisor()?;
    let known = st.node_names().join(", ");
    let Some(l) = st.launch_mut(node) else {
        return Err(LabError::NoSuchNode {
            lab: lab.to_string(),
            node: node.to_string(),
            known,
        });
    };
    if let Some(r) = l.running {
        stop(&[r], STOP_GRACE);
    }
    let r = start_node(&sup, &dir, node, l)?;
    st.save()?;
    Ok(r)
}

/// Kills `node`'s process with SIGKILL, as a crash would (see
/// [`process::kill_command`]); its supervisor records the death. Fails if the node is
/// unknown or not running.
pub fn kill_node(lab: &str, node: &str) -> Result<i32, LabError> {
    require_root("mcgate lab kill")?;
    let dir = lab_dir(lab);
    let _lock = StateLock::take(&dir)?;
    let mut st = LabState::load(lab)?;
    let known = st.node_names().join(", ");
    let Some(l) = st.launch_mut(node) else {
        return Err(LabError::NoSuchNode {
            lab: lab.to_string(),
            node: node.to_string(),
            known,
        });
    };
    let not_running = || LabError::NotRunning {
        node: node.to_string(),
        lab: lab.to_string(),
    };
    let r = l.running.ok_or_else(not_running)?;
    if process::kill_command(&r) == 0 {
        return Err(not_running());
    }
    // Wait for the supervisor to record the death, so the next command sees it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_running(&r) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(r.pid)
}

/// Stops one node's process (SIGINT, then harder), leaving it recorded as exited.
pub fn stop_node(lab: &str, node: &str) -> Result<(), LabError> {
    let dir = lab_dir(lab);
    let _lock = StateLock::take(&dir)?;
    let mut st = LabState::load(lab)?;
    let known = st.node_names().join(", ");
    let l = st.launch_mut(node).ok_or_else(|| LabError::NoSuchNode {
        lab: lab.to_string(),
        node: node.to_string(),
        known,
    })?;
    if let Some(r) = l.running {
        stop(&[r], STOP_GRACE);
    }
    Ok(())
}

/// The namespace of a node for `lab exec`: a task, a host, an external network,
/// `controller`/`ctl` or `vpc`.
pub fn node_netns(st: &LabState, node: &str) -> Option<String> {
    match node {
        "vpc" => return Some(st.vpc_netns.clone()),
        "controller" | "ctl" => return st.controller_netns.clone(),
        _ => {}
    }
    if let Some(cp) = &st.control_plane {
        let launch = cp
            .etcd
            .iter()
            .map(|e| (&e.name, &e.launch))
            .chain(cp.replicas.iter().map(|r| (&r.name, &r.launch)))
            .find(|(n, _)| *n == node);
        if let Some((_, l)) = launch {
            return Some(l.netns.clone());
        }
    }
    if let Some(h) = st.hosts.iter().find(|h| h.name == node) {
        return Some(h.netns.clone());
    }
    if let Some(e) = st.externals.iter().find(|e| e.name == node) {
        return Some(e.netns.clone());
    }
    st.tasks
        .iter()
        .find(|t| t.name == node)
        .map(|t| t.launch.netns.clone())
}
