//! Asking the lab's etcd members how they are, and waiting for the cluster to elect a
//! leader.
//!
//! The members listen only inside the lab (on the control plane's /28), so a probe runs
//! in a thread that first joins the VPC router's network namespace (`setns` affects
//! that thread alone; it needs root) and then asks each member's v3 JSON gateway
//! (`POST /v3/maintenance/status`) over plain TCP with short timeouts: a stopped member
//! refuses at once, a frozen one costs at most [`READ_TIMEOUT`]. No `etcdctl` process
//! is spawned, so `lab status` stays fast and never hangs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::state::{ControlPlaneState, LabState};

/// How long a member may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a member may take to answer.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a fresh cluster may take to elect a leader (measured here: ~0.25 s).
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// What one member said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    /// "up" (answers, and so does the leader it names), "no-leader" (answers, but names
    /// no leader or one that does not answer: an election or no quorum),
    /// "down" (does not answer) or "unknown" (could not be asked: not root).
    pub health: &'static str,
    /// Its member ID, in hex as etcdctl prints it.
    pub id: Option<String>,
    /// Whether it is the raft leader.
    pub leader: bool,
}

impl MemberHealth {
    fn unknown() -> Self {
        Self {
            health: "unknown",
            id: None,
            leader: false,
        }
    }
}

/// Asks every member of `cp`, from the VPC router's namespace.
pub fn probe(st: &LabState, cp: &ControlPlaneState) -> Vec<MemberHealth> {
    let addrs: Vec<SocketAddr> = cp
        .etcd
        .iter()
        .map(|e| SocketAddr::from((e.ip, crate::plan_ha::ETCD_CLIENT_PORT)))
        .collect();
    let ns = std::path::Path::new("/run/netns").join(&st.vpc_netns);
    let n = addrs.len();
    let answers = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).ok()?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        Some(addrs.iter().map(status).collect::<Vec<_>>())
    })
    .join()
    .ok()
    .flatten();
    let Some(answers) = answers else {
        return vec![MemberHealth::unknown(); n];
    };
    // A member keeps naming a killed leader until its election timeout; a leader that
    // does not answer here counts as none.
    let answering: Vec<u64> = answers.iter().flatten().map(|a| a.0).collect();
    answers
        .into_iter()
        .map(|a| match a {
            None => MemberHealth {
                health: "down",
                id: None,
                leader: false,
            },
            Some((id, leader)) => MemberHealth {
                health: if answering.contains(&leader) {
                    "up"
                } else {
                    "no-leader"
                },
                id: Some(format!("{id:x}")),
                leader: leader != 0 && leader == id,
            },
        })
        .collect()
}

/// One member's (member ID, leader ID; 0: none), or `None` if it does not answer.
fn status(addr: &SocketAddr) -> Option<(u64, u64)> {
    let mut s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).ok()?;
    s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
    // HTTP/1.0: the answer comes whole, never chunked, and the connection closes after.
    let req = format!(
        "POST /v3/maintenance/status HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut body = Vec::new();
    s.take(64 * 1024).read_to_end(&mut body).ok()?;
    parse_status(&body)
}

/// Reads the gateway's answer: 64-bit numbers come as JSON strings.
fn parse_status(answer: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || !head.split_whitespace().nth(1)?.starts_with('2') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let num = |v: &serde_json::Value| -> Option<u64> {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let id = num(v.get("header")?.get("member_id")?)?;
    let leader = v.get("leader").and_then(num).unwrap_or(0);
    Some((id, leader))
}

/// Waits until every member answers and they agree on a leader, printing each member
/// as it comes up. Fails if a member's process ends or [`LEADER_TIMEOUT`] passes.
pub fn wait_for_leader(st: &LabState, cp: &ControlPlaneState) -> Result<String, LabError> {
    let start = Instant::now();
    let mut seen = vec![false; cp.etcd.len()];
    loop {
        let health = probe(st, cp);
        for (i, h) in health.iter().enumerate() {
            if h.health != "down" && !seen[i] {
                seen[i] = true;
                println!(
                    "        {} answers on {} after {:.2} s",
                    cp.etcd[i].name,
                    cp.etcd[i].client_url,
                    start.elapsed().as_secs_f64()
                );
            }
        }
        let leader = health.iter().position(|h| h.leader);
        if let Some(l) = leader
            && health.iter().all(|h| h.health == "up")
        {
            return Ok(cp.etcd[l].name.clone());
        }
        crate::ops::check_interrupt()?;
        for e in &cp.etcd {
            if e.launch
                .running
                .is_some_and(|r| !crate::process::is_running(&r))
            {
                return Err(crate::ops::node_failed(
                    &st.dir(),
                    &e.name,
                    crate::ops::exited_why(&st.dir(), &e.name),
                ));
            }
        }
        if start.elapsed() > LEADER_TIMEOUT {
            let waiting: Vec<&str> = cp
                .etcd
                .iter()
                .zip(&health)
                .filter(|(_, h)| h.health != "up")
                .map(|(e, _)| e.name.as_str())
                .collect();
            let first = waiting.first().copied().unwrap_or("etcd-1");
            return Err(crate::ops::node_failed(
                &st.dir(),
                first,
                format!(
                    "the etcd cluster had no leader all its members agree on within {LEADER_TIMEOUT:?} (not up: {})",
                    waiting.join(", ")
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_answers_are_read_and_failures_are_none() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"12345678901234567890\",\"revision\":\"1\"},\"version\":\"3.4.23\",\"leader\":\"12345678901234567890\",\"raftTerm\":\"2\"}";
        assert_eq!(
            parse_status(ok),
            Some((12345678901234567890, 12345678901234567890))
        );
        let no_leader = b"HTTP/1.0 200 OK\r\n\r\n{\"header\":{\"member_id\":\"7\"}}";
        assert_eq!(parse_status(no_leader), Some((7, 0)));
        assert_eq!(parse_status(b"HTTP/1.0 503 x\r\n\r\n{}"), None);
        assert_eq!(parse_status(b"garbage"), None);
    }
}
