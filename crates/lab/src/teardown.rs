//! Taking a lab down: every process (tasks, agents, controllers, etcd members), then
//! every namespace, then the state directory; also what a crashed `lab up` or killed
//! processes left.

use crate::container;
use crate::error::LabError;
use crate::names::NS_PREFIX;
use crate::net;
use crate::ops::{STOP_GRACE, require_root};
use crate::process::{self, is_running, stop};
use crate::state::{LabState, Running, StateLock, lab_dir, list_labs};

/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces removed.
    pub namespaces: usize,
    /// Whether a state directory was removed.
    pub state_dir: bool,
}

/// The lab's processes in the order they stop: the UI forwarder, tasks, agents,
/// controllers, then etcd (the controllers need it to resign cleanly).
fn all_running(st: &LabState) -> [Vec<Running>; 5] {
    let ui = st.ui.iter().filter_map(|u| u.launch.running).collect();
    // External networks' senders stop with the tasks.
    let tasks = st
        .tasks
        .iter()
        .filter_map(|t| t.launch.running)
        .chain(
            st.externals
                .iter()
                .filter_map(|e| e.sender.as_ref().and_then(|l| l.running)),
        )
        .collect();
    let agents = st
        .hosts
        .iter()
        .filter_map(|h| h.agent.as_ref().and_then(|a| a.running))
        .collect();
    let cp = st.control_plane.as_ref();
    let ctl = st
        .controller
        .iter()
        .filter_map(|c| c.launch.running)
        .chain(
            cp.into_iter()
                .flat_map(|cp| cp.replicas.iter().filter_map(|r| r.launch.running)),
        )
        .collect();
    let etcd = cp
        .into_iter()
        .flat_map(|cp| cp.etcd.iter().filter_map(|e| e.launch.running))
        .collect();
    [ui, tasks, agents, ctl, etcd]
}

/// Namespaces `mcgl-<lab>-*` that no other lab's state claims: what a crashed `lab up`
/// may have left behind.
fn leftover_namespaces(lab: &str) -> Vec<String> {
    let prefix = format!("{NS_PREFIX}{lab}-");
    let mut claimed = Vec::new();
    for other in list_labs() {
        if other != lab
            && let Ok(s) = LabState::load(&other)
        {
            claimed.extend(s.namespaces);
        }
    }
    net::list_netns()
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix) && !claimed.contains(ns))
        .collect()
}

/// Stops every process of a lab (the UI forwarder, tasks, then agents, then the
/// controller) and removes every namespace and file it made. Safe to run twice and
/// after a crash.
pub fn down(lab: &str) -> Result<DownReport, LabError> {
    require_root("mcgate lab down")?;
    let mut report = DownReport::default();
    let dir = lab_dir(lab);
    let _lock = if dir.is_dir() {
        Some(StateLock::take(&dir)?)
    } else {
        None
    };
    let state = LabState::load(lab).ok();
    let mut namespaces: Vec<String> = Vec::new();
    if let Some(st) = &state {
        for group in all_running(st) {
            report.processes += group.iter().filter(|r| is_running(r)).count();
            stop(&group, STOP_GRACE);
        }
        // Containers whose `podman run` was killed before it could remove them.
        if st
            .tasks
            .iter()
            .any(|t| container::is_container(&t.launch.argv))
        {
            container::remove_left(lab);
        }
        namespaces.extend(st.namespaces.iter().rev().cloned());
    }
    for ns in leftover_namespaces(lab) {
        if !namespaces.contains(&ns) {
            namespaces.insert(0, ns);
        }
    }
    let present = net::list_netns();
    // Anything still running inside the lab's namespaces was started by the lab (or
    // by `lab exec`): end it so the namespaces really go.
    for ns in namespaces.iter().filter(|ns| present.contains(ns)) {
        for pid in net::netns_pids(ns) {
            process::kill_pid(pid);
            report.processes += 1;
        }
    }
    let mut first_err = None;
    for ns in namespaces.iter().filter(|ns| present.contains(ns)) {
        match net::del_netns(ns) {
            Ok(()) => report.namespaces += 1,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        report.state_dir = true;
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
