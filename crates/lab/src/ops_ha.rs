//! The HA control plane's steps of `lab up`: the etcd cluster, then the controller
//! replicas; and finding a live replica for the lab's own admin calls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::ops::{
    check_interrupt, controller_client, exited_why, node_failed, runtime, start_node,
};
use crate::process::is_running;
use crate::state::LabState;

/// How long the replicas may take to answer and to become writable.
const REPLICAS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one replica may take to answer `GET /v1/healthz`.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether `program` is an executable file in `PATH`.
fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// An HA lab needs etcd: say how to get it before anything is built.
pub fn check_etcd_installed(st: &LabState) -> Result<(), LabError> {
    if st.control_plane.is_none() || in_path(crate::plan_ha::ETCD_PROGRAM) {
        return Ok(());
    }
    Err(LabError::Missing {
        program: crate::plan_ha::ETCD_PROGRAM.into(),
        install: "install Debian's etcd-server and etcd-client packages (`apt-get install etcd-server etcd-client`), or use store = \"embedded\"".into(),
    })
}

/// An HA lab needs a controller with `--store etcd`: read this binary's own `--help`
/// (as for the agent's flags) so an older binary fails here, clearly, not in a log.
pub fn check_controller_flags(st: &LabState, exe: &Path) -> Result<(), LabError> {
    if st.control_plane.is_none() {
        return Ok(());
    }
    let help = Command::new(exe)
        .args(["controller", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if ["--store", "--etcd-endpoints", "--replica"]
        .iter()
        .all(|f| help.contains(f))
    {
        return Ok(());
    }
    Err(LabError::NoEtcdController(exe.to_path_buf()))
}

/// Starts every etcd member at once (a new cluster elects its leader only once a
/// quorum runs) and waits until they agree on a leader.
pub fn start_etcd(
    st: &mut LabState,
    sup: &Path,
    step: usize,
    steps: usize,
) -> Result<(), LabError> {
    let dir = st.dir();
    let Some(cp) = st.control_plane.as_mut() else {
        return Ok(());
    };
    println!("[{step}/{steps}] etcd cluster: {} member(s)", cp.etcd.len());
    let mut pids = Vec::new();
    for e in &mut cp.etcd {
        let r = start_node(sup, &dir, &e.name, &mut e.launch)?;
        pids.push(format!("{} pid {}", e.name, r.pid));
    }
    st.save()?;
    let start = Instant::now();
    let Some(cp) = &st.control_plane else {
        return Ok(());
    };
    let leader = crate::etcd::wait_for_leader(st, cp)?;
    println!(
        "        leader {leader} after {:.2} s ({})",
        start.elapsed().as_secs_f64(),
        pids.join(", ")
    );
    Ok(())
}

/// A controller's `GET /v1/healthz` over its Unix socket, within [`HEALTHZ_TIMEOUT`].
pub fn healthz(rt: &tokio::runtime::Runtime, socket: &Path) -> Option<serde_json::Value> {
    if !socket.exists() {
        return None;
    }
    let client = controller_client(socket).ok()?;
    rt.block_on(async {
        tokio::time::timeout(
            HEALTHZ_TIMEOUT,
            client.get::<serde_json::Value>("/v1/healthz"),
        )
        .await
        .ok()?
        .ok()
    })
}

/// Whether a healthz answer allows writes (a controller without the field does).
fn writable(h: &serde_json::Value) -> bool {
    h.get("writable").and_then(serde_json::Value::as_bool) != Some(false)
}

/// The socket of a controller that answers (and takes writes, if it says): the one
/// controller's, or the first such replica's.
pub fn live_socket(st: &LabState) -> Result<PathBuf, LabError> {
    if let Some(c) = &st.controller {
        return Ok(c.socket.clone());
    }
    let sockets = st.controller_sockets();
    let rt = runtime()?;
    sockets
        .iter()
        .find(|s| healthz(&rt, s).is_some_and(|h| writable(&h)))
        .cloned()
        .ok_or_else(|| LabError::NodeFailed {
            node: "controller".into(),
            why: format!(
                "no controller replica of lab {} answers and takes writes (tried {}); see `mcgate lab status` and `mcgate lab logs controller-1`",
                st.name,
                sockets
                    .iter()
                    .map(|s| s.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            log: String::new(),
        })
}

/// Starts every replica, waits until each answers and one takes writes, copies their
/// shared CA where the agents read it, and creates the domain through a live replica.
pub fn start_replicas(
    st: &mut LabState,
    sup: &Path,
    step: usize,
    steps: usize,
) -> Result<(), LabError> {
    let dir = st.dir();
    let Some(cp) = st.control_plane.as_mut() else {
        return Ok(());
    };
    println!(
        "[{step}/{steps}] controllers: {} replica(s) on etcd",
        cp.replicas.len()
    );
    let mut started = Vec::new();
    for r in &mut cp.replicas {
        let run = start_node(sup, &dir, &r.name, &mut r.launch)?;
        started.push((
            r.name.clone(),
            r.url.clone(),
            r.socket.clone(),
            r.data_dir.clone(),
            run,
        ));
    }
    st.save()?;
    let rt = runtime()?;
    let start = Instant::now();
    let mut answered = vec![None; started.len()];
    loop {
        for (i, (name, url, socket, _, run)) in started.iter().enumerate() {
            if answered[i].is_some() {
                continue;
            }
            if let Some(h) = healthz(&rt, socket) {
                println!(
                    "        {name}: {url} and unix:{} (pid {}), role {} after {:.2} s",
                    socket.display(),
                    run.pid,
                    h.get("role").and_then(|r| r.as_str()).unwrap_or("?"),
                    start.elapsed().as_secs_f64()
                );
                answered[i] = Some(h);
            } else if !is_running(run) {
                return Err(node_failed(&dir, name, exited_why(&dir, name)));
            }
        }
        if answered.iter().all(Option::is_some)
            && let Ok(live) = live_socket(st)
        {
            // Every replica holds the same CA (it lives in etcd); the agents trust it.
            if let Some((.., data, _)) = started.iter().find(|s| s.2 == live) {
                let from = data.join("ca.pem");
                let to = crate::plan_ha::shared_ca(&dir);
                std::fs::copy(&from, &to).map_err(|e| LabError::io(&from, e))?;
            }
            let client = controller_client(&live)?;
            return crate::ops::setup_domain(st, &client, &rt);
        }
        check_interrupt()?;
        if start.elapsed() > REPLICAS_TIMEOUT {
            let waiting = started
                .iter()
                .zip(&answered)
                .find(|(_, a)| a.is_none())
                .map_or("controller-1", |(s, _)| s.0.as_str());
            return Err(node_failed(
                &dir,
                waiting,
                format!(
                    "the replicas did not all answer with one taking writes within {REPLICAS_TIMEOUT:?}"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
