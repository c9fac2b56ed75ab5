//! `lab status` for an HA lab: each controller replica's role as its healthz says, and
//! each etcd member's health as its status endpoint says. Every question has a short
//! timeout, so a stopped or frozen node shows as down, never as a hang.

use crate::commands::node_state;
use crate::state::LabState;
use crate::status::{EtcdMemberStatus, ReplicaStatus};
use crate::table;

fn exit_code(s: (&str, Option<i32>)) -> Option<i32> {
    if s.0 == "exited" { s.1 } else { None }
}

/// The replicas, each asked for its healthz (a second at most each).
pub fn replicas(st: &LabState) -> Vec<ReplicaStatus> {
    let Some(cp) = &st.control_plane else {
        return Vec::new();
    };
    let dir = st.dir();
    let rt = crate::ops::runtime().ok();
    cp.replicas
        .iter()
        .map(|r| {
            let s = node_state(&dir, &r.name, r.launch.running);
            let may_ask = r.socket.exists()
                && nix::unistd::access(&r.socket, nix::unistd::AccessFlags::W_OK).is_ok();
            let h = match (&rt, may_ask, s.0) {
                (Some(rt), true, "running") => crate::ops_ha::healthz(rt, &r.socket),
                _ => None,
            };
            let health = match (&h, s.0, may_ask) {
                (Some(_), ..) => "up",
                (None, "running", false) if r.socket.exists() => "unknown",
                _ => "down",
            };
            let field = |k: &str| h.as_ref().and_then(|h| h.get(k)).cloned();
            ReplicaStatus {
                name: r.name.clone(),
                url: r.url.clone(),
                socket: r.socket.clone(),
                pid: r.launch.running.map(|x| x.pid),
                state: s.0.to_string(),
                exit_code: exit_code(s),
                health: health.to_string(),
                role: field("role").and_then(|v| v.as_str().map(str::to_string)),
                leader: field("leader").and_then(|v| v.as_str().map(str::to_string)),
                writable: field("writable").and_then(|v| v.as_bool()),
            }
        })
        .collect()
}

/// The etcd members, asked from the VPC router's namespace (needs root).
pub fn etcd(st: &LabState) -> Vec<EtcdMemberStatus> {
    let Some(cp) = &st.control_plane else {
        return Vec::new();
    };
    let dir = st.dir();
    let probes = crate::etcd::probe(st, cp);
    cp.etcd
        .iter()
        .zip(probes)
        .map(|(e, p)| {
            let s = node_state(&dir, &e.name, e.launch.running);
            // A member whose process ended is down whatever a probe could say.
            let health = if s.0 == "running" { p.health } else { "down" };
            EtcdMemberStatus {
                name: e.name.clone(),
                client_url: e.client_url.clone(),
                pid: e.launch.running.map(|x| x.pid),
                state: s.0.to_string(),
                exit_code: exit_code(s),
                health: health.to_string(),
                id: p.id,
                leader: p.leader && health == "up",
            }
        })
        .collect()
}

fn state_words(state: &str, code: Option<i32>) -> String {
    match code {
        Some(c) => format!("{state} ({c})"),
        None => state.to_string(),
    }
}

/// The two tables of `lab status` for an HA lab.
pub fn text(replicas: &[ReplicaStatus], etcd: &[EtcdMemberStatus]) -> String {
    let pid = |p: Option<i32>| p.map_or("-".into(), |p| p.to_string());
    let rows: Vec<[String; 7]> = replicas
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.url.clone(),
                pid(r.pid),
                state_words(&r.state, r.exit_code),
                r.health.clone(),
                r.role.clone().unwrap_or("-".into()),
                match r.writable {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut out = table::render(
        [
            "CONTROLLER",
            "URL",
            "PID",
            "STATE",
            "HEALTH",
            "ROLE",
            "WRITABLE",
        ],
        &rows,
    );
    out.push_str("\n\n");
    let rows: Vec<[String; 6]> = etcd
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.client_url.clone(),
                pid(e.pid),
                state_words(&e.state, e.exit_code),
                e.health.clone(),
                if e.leader { "leader" } else { "-" }.into(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        ["ETCD", "CLIENT URL", "PID", "STATE", "HEALTH", "RAFT"],
        &rows,
    ));
    if etcd.iter().any(|e| e.health == "unknown") {
        out.push_str("\n\nHEALTH unknown: the members are asked from inside the lab; run `sudo mcgate lab status`");
    }
    out
}
