//! The `mcgate lab` commands: argument handling and output.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::error::LabError;
use crate::ops::{self, require_root};
use crate::process::{self, is_running};
use crate::state::{LabState, Running, lab_dir, list_labs, log_path, pick_lab, read_exit};
use crate::status::{
    ControllerStatus, ExternalStatus, HostStatus, LabStatus, TaskStatus, UiStatus,
};
use crate::table;
use crate::topology::{REFERENCE_FILE_NAME, REFERENCE_TOPOLOGY, Topology};
use crate::{DownArgs, ExecArgs, KillArgs, LabCommand, LogsArgs, RestartArgs, StatusArgs, UpArgs};

/// Runs a lab command and turns its error into a message and exit code.
pub fn run(cmd: LabCommand) -> ExitCode {
    let result = match cmd {
        LabCommand::Up(a) => up(a),
        LabCommand::Status(a) => status(a),
        LabCommand::Logs(a) => logs(a),
        LabCommand::Exec(a) => exec(a),
        LabCommand::Restart(a) => restart(a),
        LabCommand::Kill(a) => kill(a),
        LabCommand::Down(a) => down(a),
        LabCommand::Supervise(a) => {
            return process::supervise(&a.log, &a.exit, a.private_run, &a.command);
        }
        LabCommand::Forward(a) => return crate::forward::run(a.port, a.ready.as_deref(), &a.to),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit_code_for(&e)
        }
    }
}

/// 2 for "run this as root", 1 for everything else.
pub fn exit_code_for(e: &LabError) -> ExitCode {
    match e {
        LabError::NotRoot(_) => ExitCode::from(2),
        LabError::Interrupted => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    }
}

/// Reads and validates a topology file (or the built-in one), renaming the lab if asked.
pub fn load_topology(file: Option<&Path>, name: Option<&str>) -> Result<Topology, LabError> {
    let mut topo = match file {
        None => Topology::parse(REFERENCE_FILE_NAME, REFERENCE_TOPOLOGY)?,
        Some(p) => {
            let src = std::fs::read_to_string(p).map_err(|source| LabError::ReadTopology {
                path: p.to_path_buf(),
                source,
            })?;
            Topology::parse(&p.display().to_string(), &src)?
        }
    };
    if let Some(n) = name {
        crate::names::check_name(n)
            .map_err(|why| LabError::Addresses(format!("the lab name given with --name {why}")))?;
        topo.name = n.to_string();
    }
    Ok(topo)
}

fn up(a: UpArgs) -> Result<ExitCode, LabError> {
    let topo = load_topology(a.file.as_deref(), a.name.as_deref())?;
    let st = ops::up_with(
        &topo,
        &ops::UpOptions {
            ui_port: a.ui_port,
            ..ops::UpOptions::default()
        },
    )?;
    println!();
    println!("{}", tasks_table(&st));
    println!();
    println!(
        "lab {} is up. Try: mcgate lab status | mcgate lab logs {} | mcgate groups | mcgate lab down {}",
        st.name,
        st.tasks
            .first()
            .map(|t| t.name.clone())
            .or_else(|| st.node_names().into_iter().next())
            .unwrap_or("controller".into()),
        st.name
    );
    if let Some(ui) = &st.ui {
        println!("The controller's web view: {}", crate::ui::hint(ui));
    }
    Ok(ExitCode::SUCCESS)
}

/// "running", "exited" (with the exit code if recorded) or "not started".
pub fn node_state(dir: &Path, node: &str, running: Option<Running>) -> (&'static str, Option<i32>) {
    match running {
        None => ("not started", None),
        Some(r) if is_running(&r) => ("running", None),
        Some(_) => ("exited", read_exit(dir, node).map(|e| e.exit_code)),
    }
}

fn state_words(s: (&str, Option<i32>)) -> String {
    match s {
        (w, Some(c)) => format!("{w} ({c})"),
        (w, None) => w.to_string(),
    }
}

/// The table `lab up` ends with: name, host, zone, IP, state.
pub fn tasks_table(st: &LabState) -> String {
    let dir = st.dir();
    let rows: Vec<[String; 5]> = st
        .tasks
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.host.clone(),
                t.zone.clone(),
                t.ip.to_string(),
                state_words(node_state(&dir, &t.name, t.launch.running)),
            ]
        })
        .collect();
    table::render(["TASK", "HOST", "ZONE", "IP", "STATE"], &rows)
}

/// `lab status --json`.
pub fn status_of(st: &LabState) -> LabStatus {
    let dir = st.dir();
    let chosen = chosen_dataplanes(st);
    let exit = |s: (&str, Option<i32>)| if s.0 == "exited" { s.1 } else { None };
    let controller = st.controller.as_ref().map(|c| {
        let s = node_state(&dir, "controller", c.launch.running);
        ControllerStatus {
            pid: c.launch.running.map(|r| r.pid),
            url: c.url.clone(),
            socket: c.socket.clone(),
            state: s.0.to_string(),
            exit_code: exit(s),
        }
    });
    let hosts = st
        .hosts
        .iter()
        .map(|h| {
            let running = h.agent.as_ref().and_then(|a| a.running);
            let s = match &h.agent {
                Some(_) => node_state(&dir, &h.name, running),
                None => ("running", None),
            };
            HostStatus {
                name: h.name.clone(),
                subnet: h.subnet.clone(),
                zone: h.zone.clone(),
                underlay_ip: h.underlay_ip,
                agent_pid: running.map(|r| r.pid),
                state: s.0.to_string(),
                exit_code: exit(s),
                dataplane: chosen.by_host.get(&h.name).cloned().flatten(),
                dataplane_requested: h.dataplane.as_str().to_string(),
            }
        })
        .collect();
    let tasks = st
        .tasks
        .iter()
        .map(|t| {
            let s = node_state(&dir, &t.name, t.launch.running);
            TaskStatus {
                name: t.name.clone(),
                service: t.service.clone(),
                host: t.host.clone(),
                zone: t.zone.clone(),
                ip: t.ip,
                pid: t.launch.running.map(|r| r.pid),
                state: s.0.to_string(),
                exit_code: exit(s),
            }
        })
        .collect();
    let ui = st.ui.as_ref().map(|u| {
        let s = node_state(&dir, crate::ui::UI_NODE, u.launch.running);
        UiStatus {
            url: crate::ui::view_url(u.port),
            credentials: u.credentials.clone(),
            ca: u.ca.clone(),
            pid: u.launch.running.map(|r| r.pid),
            state: s.0.to_string(),
            exit_code: exit(s),
        }
    });
    LabStatus {
        name: st.name.clone(),
        controller,
        ui,
        controllers: crate::status_ha::replicas(st),
        etcd: crate::status_ha::etcd(st),
        hosts,
        tasks,
        externals: st
            .externals
            .iter()
            .map(|e| {
                let running = e.sender.as_ref().and_then(|l| l.running);
                let s = node_state(&dir, &e.name, running);
                ExternalStatus {
                    name: e.name.clone(),
                    cidr: e.cidr.to_string(),
                    address: e.address,
                    host: e.host.clone(),
                    host_link: e.host_link.clone(),
                    groups: e.groups.iter().map(ToString::to_string).collect(),
                    pid: running.map(|r| r.pid),
                    state: match &e.sender {
                        Some(_) => s.0.to_string(),
                        None => "no sender".into(),
                    },
                    exit_code: e.sender.as_ref().and_then(|_| exit(s)),
                }
            })
            .collect(),
    }
}

/// What `lab status` learned of the data plane each agent chose.
pub struct ChosenDataplanes {
    /// Per host: the data plane its agent reports in `/v1/stats` (`dataplane.name`);
    /// `None` for a host whose agent does not run or does not answer.
    pub by_host: std::collections::BTreeMap<String, Option<String>>,
    /// Why some running agent could not be asked, for the `?` in the text status.
    pub unknown_because: Option<String>,
}

/// Asks each running agent's admin endpoint which data plane it chose (one second
/// each at most).
pub fn chosen_dataplanes(st: &LabState) -> ChosenDataplanes {
    let dir = st.dir();
    let mut out = ChosenDataplanes {
        by_host: std::collections::BTreeMap::new(),
        unknown_because: None,
    };
    let Ok(rt) = crate::ops::runtime() else {
        return out;
    };
    for h in &st.hosts {
        let running = h.agent.as_ref().and_then(|a| a.running).is_some();
        let sock = dir.join(format!("agent-{}.sock", h.name));
        let name = if running && sock.exists() {
            if nix::unistd::access(&sock, nix::unistd::AccessFlags::W_OK).is_err() {
                out.unknown_because = Some(format!(
                    "the agents' admin sockets (in {}) are root's: run `sudo mcgate lab status` to ask each agent",
                    dir.display()
                ));
                None
            } else {
                let answer = rt.block_on(async {
                    let client =
                        mcgate_client::Client::new(&format!("unix:{}", sock.display())).ok()?;
                    let stats: serde_json::Value = tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        client.get("/v1/stats"),
                    )
                    .await
                    .ok()?
                    .ok()?;
                    stats["dataplane"]["name"].as_str().map(str::to_string)
                });
                if answer.is_none() && out.unknown_because.is_none() {
                    out.unknown_because = Some(format!(
                        "the agent of {} did not answer on {} within a second (see `mcgate lab logs {}`)",
                        h.name,
                        sock.display(),
                        h.name
                    ));
                }
                answer
            }
        } else {
            None
        };
        out.by_host.insert(h.name.clone(), name);
    }
    out
}

fn status_text(st: &LabState) -> String {
    let dir = st.dir();
    let chosen = chosen_dataplanes(st);
    let mut out = format!("lab {} (from {})", st.name, st.file);
    if st.phase != "up" {
        out.push_str(&format!(
            " -- {}: `lab up` did not finish; `mcgate lab down {}` removes it",
            st.phase, st.name
        ));
    }
    out.push('\n');
    match &st.controller {
        Some(c) => out.push_str(&format!(
            "controller  {}  unix:{}  pid {}  {}\n",
            c.url,
            c.socket.display(),
            c.launch
                .running
                .map(|r| r.pid.to_string())
                .unwrap_or("-".into()),
            state_words(node_state(&dir, "controller", c.launch.running))
        )),
        None if st.control_plane.is_some() => {}
        None => out.push_str("controller  none (the topology has no [domain])\n"),
    }
    if let Some(ui) = &st.ui {
        out.push_str(&format!(
            "ui          {}  pid {}  {}\n            {}\n",
            crate::ui::view_url(ui.port),
            ui.launch
                .running
                .map(|r| r.pid.to_string())
                .unwrap_or("-".into()),
            state_words(node_state(&dir, crate::ui::UI_NODE, ui.launch.running)),
            crate::ui::hint(ui)
        ));
    }
    if st.control_plane.is_some() {
        out.push_str(&crate::status_ha::text(
            &crate::status_ha::replicas(st),
            &crate::status_ha::etcd(st),
        ));
        out.push('\n');
    }
    out.push('\n');
    let hosts: Vec<[String; 7]> = st
        .hosts
        .iter()
        .map(|h| {
            let running = h.agent.as_ref().and_then(|a| a.running);
            [
                h.name.clone(),
                h.subnet.clone(),
                h.zone.clone(),
                h.underlay_ip.to_string(),
                running.map(|r| r.pid.to_string()).unwrap_or("-".into()),
                match chosen.by_host.get(&h.name).cloned().flatten() {
                    Some(c) if h.dataplane.as_str() == c => c,
                    Some(c) => format!("{c} ({})", h.dataplane.as_str()),
                    None => format!("? ({})", h.dataplane.as_str()),
                },
                match &h.agent {
                    Some(_) => state_words(node_state(&dir, &h.name, running)),
                    None => "no agent".into(),
                },
            ]
        })
        .collect();
    out.push_str(&table::render(
        [
            "HOST",
            "SUBNET",
            "ZONE",
            "UNDERLAY",
            "AGENT PID",
            "DATAPLANE",
            "AGENT",
        ],
        &hosts,
    ));
    out.push_str("\n\n");
    let tasks: Vec<[String; 7]> = st
        .tasks
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.service.clone(),
                t.host.clone(),
                t.zone.clone(),
                t.ip.to_string(),
                t.launch
                    .running
                    .map(|r| r.pid.to_string())
                    .unwrap_or("-".into()),
                state_words(node_state(&dir, &t.name, t.launch.running)),
            ]
        })
        .collect();
    out.push_str(&table::render(
        ["TASK", "SERVICE", "HOST", "ZONE", "IP", "PID", "STATE"],
        &tasks,
    ));
    if !st.externals.is_empty() {
        let externals: Vec<[String; 7]> = st
            .externals
            .iter()
            .map(|e| {
                let running = e.sender.as_ref().and_then(|l| l.running);
                [
                    e.name.clone(),
                    e.cidr.to_string(),
                    e.address.to_string(),
                    format!("{} ({})", e.host, e.host_link),
                    e.groups
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    running.map(|r| r.pid.to_string()).unwrap_or("-".into()),
                    match &e.sender {
                        Some(_) => state_words(node_state(&dir, &e.name, running)),
                        None => "no sender".into(),
                    },
                ]
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table::render(
            [
                "EXTERNAL",
                "NETWORK",
                "QUERIER",
                "GATEWAY",
                "GROUPS",
                "SENDER PID",
                "SENDER",
            ],
            &externals,
        ));
    }
    if let Some(why) = &chosen.unknown_because {
        out.push_str(&format!(
            "\n\nDATAPLANE ? (requested in parentheses): {why}"
        ));
    }
    out
}

fn status(a: StatusArgs) -> Result<ExitCode, LabError> {
    if a.json {
        let lab = pick_lab(a.name.as_deref())?;
        let st = LabState::load(&lab)?;
        let body = serde_json::to_string(&status_of(&st)).map_err(|e| LabError::State {
            path: st.dir().join("state.json"),
            message: e.to_string(),
        })?;
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let labs = match a.name {
        Some(n) => vec![n],
        None => list_labs(),
    };
    if labs.is_empty() {
        return Err(LabError::NoLab);
    }
    for (i, lab) in labs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let st = LabState::load(lab)?;
        println!("{}", status_text(&st));
    }
    Ok(ExitCode::SUCCESS)
}

fn no_such_node(st: &LabState, node: &str, extra: &[&str]) -> LabError {
    let mut known = st.node_names();
    known.extend(extra.iter().map(|s| s.to_string()));
    known.extend(
        st.hosts
            .iter()
            .filter(|h| h.agent.is_none())
            .map(|h| h.name.clone()),
    );
    LabError::NoSuchNode {
        lab: st.name.clone(),
        node: node.to_string(),
        known: known.join(", "),
    }
}

fn logs(a: LogsArgs) -> Result<ExitCode, LabError> {
    let lab = pick_lab(a.name.as_deref())?;
    let mut st = LabState::load(&lab)?;
    let dir = lab_dir(&lab);
    if st.launch_mut(&a.node).is_none() {
        return Err(no_such_node(&st, &a.node, &[]));
    }
    // The node's process now: re-read, since `lab restart` may have replaced it.
    let current = || {
        LabState::load(&lab)
            .ok()
            .and_then(|mut s| s.launch_mut(&a.node).and_then(|l| l.running))
    };
    let path = log_path(&dir, &a.node);
    let mut out = std::io::stdout().lock();
    // The older part first, if the log was rotated.
    if let Ok(old) = std::fs::read(process::rotated(&path))
        && out.write_all(&old).is_err()
    {
        return Ok(ExitCode::SUCCESS);
    }
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !a.follow {
                return Ok(ExitCode::SUCCESS);
            }
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if let Ok(f) = std::fs::File::open(&path) {
                    break f;
                }
            }
        }
        Err(e) => return Err(LabError::io(&path, e)),
    };
    let mut buf = Vec::new();
    let mut pos = 0u64;
    loop {
        // Rotated under us: what is left of the old file, then the new one from its start.
        if a.follow
            && let (Ok(open), Ok(now)) = (f.metadata(), std::fs::metadata(&path))
        {
            use std::os::unix::fs::MetadataExt;
            if open.ino() != now.ino()
                && let Ok(newf) = std::fs::File::open(&path)
            {
                buf.clear();
                let _ = f.seek(SeekFrom::Start(pos));
                let _ = f.read_to_end(&mut buf);
                let _ = out.write_all(&buf);
                f = newf;
                pos = 0;
            }
        }
        buf.clear();
        let _ = f.seek(SeekFrom::Start(pos));
        let n = f
            .read_to_end(&mut buf)
            .map_err(|e| LabError::io(&path, e))?;
        pos += n as u64;
        if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`).
            return Ok(ExitCode::SUCCESS);
        }
        if !a.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if n == 0 && current().is_none_or(|r| !is_running(&r)) {
            // One last read after the process ended, then stop, like `docker logs -f`.
            std::thread::sleep(Duration::from_millis(200));
            buf.clear();
            let _ = f.seek(SeekFrom::Start(pos));
            let _ = f.read_to_end(&mut buf);
            let _ = out.write_all(&buf);
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn exec(a: ExecArgs) -> Result<ExitCode, LabError> {
    require_root("mcgate lab exec")?;
    let lab = pick_lab(a.name.as_deref())?;
    let st = LabState::load(&lab)?;
    let Some(ns) = ops::node_netns(&st, &a.node) else {
        return Err(no_such_node(&st, &a.node, &["vpc"]));
    };
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(&a.command)
        .status()
        .map_err(|e| LabError::Command {
            command: format!("ip netns exec {ns} {}", process::shell_words(&a.command)),
            stderr: e.to_string(),
        })?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn restart(a: RestartArgs) -> Result<ExitCode, LabError> {
    let lab = pick_lab(a.name.as_deref())?;
    let r = ops::restart(&lab, &a.node)?;
    println!("{}: restarted (pid {})", a.node, r.pid);
    Ok(ExitCode::SUCCESS)
}

fn kill(a: KillArgs) -> Result<ExitCode, LabError> {
    let lab = pick_lab(a.name.as_deref())?;
    let pid = ops::kill_node(&lab, &a.node)?;
    println!(
        "{}: killed with SIGKILL (supervisor pid {pid}); `mcgate lab restart {}` starts it again",
        a.node, a.node
    );
    Ok(ExitCode::SUCCESS)
}

fn down(a: DownArgs) -> Result<ExitCode, LabError> {
    require_root("mcgate lab down")?;
    let lab = match a.lab.or(a.name) {
        Some(n) => n,
        None => match pick_lab(None) {
            Ok(n) => n,
            Err(LabError::NoLab) => {
                println!("no lab is up: nothing to remove");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e),
        },
    };
    let r = ops::down(&lab)?;
    if a.images {
        println!(
            "lab {lab}: {} image(s) it built removed",
            crate::container::remove_images(&lab)
        );
    }
    if r.namespaces == 0 && r.processes == 0 && !r.state_dir {
        println!("lab {lab}: nothing to remove");
    } else {
        println!(
            "lab {lab} removed: {} process(es) stopped, {} namespace(s) deleted, state directory {}",
            r.processes,
            r.namespaces,
            if r.state_dir {
                "removed"
            } else {
                "already gone"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
