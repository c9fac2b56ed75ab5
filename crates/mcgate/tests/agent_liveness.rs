//! Host loss found in the data plane: the agents' peer keepalives (docs/agent.md, "Peer
//! liveness"). Three hosts in network namespaces (see `agent_support`), the real
//! controller and agents on the userspace data plane.
//!
//! - An agent killed with SIGKILL (its host namespace stays): the other hosts stop
//!   sending to it as soon as its keepalives stop, and the controller, told by them
//!   and seeing the host's heartbeats stop, removes its members well before the lease.
//! - An agent stopped for a moment (SIGSTOP, then SIGCONT) is reported by its peers but
//!   keeps its members and its session: one report without the controller's own
//!   confirmation removes nothing.
//!
//! Every wait is on observable state (agents' `/v1/stats` and `/metrics`, the
//! controller's group table and metrics), bounded; processes are ended by PID.

mod agent_support;
mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use agent_support::{Flow, Topo, metric_in};
use serde_json::Value;

const G1: &str = "233.252.0.5";
const VNI: u32 = 4100;

/// Counts WireGuard transport messages carrying data (type 4, longer than an empty
/// keepalive's 32 bytes) that reach the given address, one wall-clock time per line.
const LISTENER_PY: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
print("bound", flush=True)
while True:
    data, _ = s.recvfrom(65536)
    if data and data[0] == 4 and len(data) > 32:
        print("data %.6f" % time.time(), flush=True)
"#;

/// Three userspace hosts with one task each, the controller started with `ctl_args`,
/// the domain, and every agent seeing every peer up by its keepalives.
fn deployment(ctl_args: &[&str]) -> Topo {
    let mut t = Topo::with_dataplanes(1, &["userspace"; 3]);
    t.controller_args = ctl_args.iter().map(|s| s.to_string()).collect();
    t.start_controller();
    t.create_domain("d1", VNI, "v3", false);
    t.start_agents();
    let ok = t.wait_until(Duration::from_secs(15), || {
        (0..3).all(|h| {
            t.stats_doc(h).is_some_and(|s| {
                let peers = s["peer_liveness"]["peers"].as_array().cloned();
                s["controller"]["state"] == "registered"
                    && peers.is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["state"] == "up"))
            })
        })
    });
    assert!(ok, "agents never saw every peer up:\n{}", t.logs());
    t
}

/// Host `h`'s state of `peer` by its keepalives ("unknown", "up", "down"), or "" when
/// `peer` is no peer of `h` (now).
fn peer_state(t: &Topo, h: usize, peer: &str) -> String {
    t.stats_doc(h)
        .and_then(|s| {
            s["peer_liveness"]["peers"]
                .as_array()?
                .iter()
                .find(|p| p["host"] == peer)
                .and_then(|p| p["state"].as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

/// Whether the controller's group table lists a member of `group` on `host`.
fn controller_lists(t: &Topo, group: &str, host: &str) -> bool {
    let rows: Value = serde_json::from_str(&t.api(
        "GET",
        &format!("/v1/groups?group={group}&host={host}"),
        None,
    ))
    .unwrap_or_default();
    rows.as_array().is_some_and(|r| !r.is_empty())
}

/// A counter of the controller's `/metrics`.
fn controller_metric(t: &Topo, name: &str) -> u64 {
    metric_in(&t.api("GET", "/metrics", None), name, &[])
}

/// h1 sends 100 packets a second to [`G1`] for 25 s.
fn send_from_h1(t: &mut Topo) {
    t.sender(
        0,
        0,
        Flow {
            group: G1,
            count: 2_500,
            interval: 0.01,
            ttl: 1,
            size: 100,
        },
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid} failed");
}

#[test]
fn a_killed_agent_is_cut_off_at_once_and_removed_well_before_its_lease() {
    let mut t = deployment(&[]);
    let _r2 = t.receiver(1, 0, G1, 30.0, "any", &[]);
    let _r3 = t.receiver(2, 0, G1, 30.0, "any", &[]);
    let listed = t.wait_until(Duration::from_secs(10), || {
        controller_lists(&t, G1, "h2") && controller_lists(&t, G1, "h3")
    });
    assert!(
        listed,
        "the receivers' joins never reached the controller:\n{}",
        t.logs()
    );
    // h1 sends 100 packets a second to h2 and h3 all along.
    send_from_h1(&mut t);
    let flowing = t.wait_until(Duration::from_secs(10), || {
        t.metric(2, "mcgate_agent_tunnel_packets", &[("direction", "rx")]) > 20
    });
    assert!(flowing, "h3 never got h1's traffic:\n{}", t.logs());

    let killed = SystemTime::now();
    let t0 = Instant::now();
    t.kill_agent(2);
    // What still reaches h3's WireGuard port once nothing listens there any more.
    let script = t.dir.join("listen.py");
    std::fs::write(&script, LISTENER_PY).expect("write listener");
    let listener = t.spawn_in_host(
        2,
        &[
            "python3",
            script.to_str().expect("utf-8"),
            "10.200.3.1",
            "51820",
        ],
    );
    assert!(
        t.wait_until(Duration::from_secs(5), || t
            .proc_log(listener)
            .contains("bound")),
        "listener did not start: {}",
        t.proc_log(listener)
    );

    let removed = t.wait_until(Duration::from_secs(10), || !controller_lists(&t, G1, "h3"));
    let removal = t0.elapsed();
    assert!(
        removed,
        "the controller never removed h3's member:\n{}",
        t.logs()
    );
    eprintln!(
        "h3's member removed {:.0} ms after the kill",
        removal.as_secs_f64() * 1e3
    );
    assert!(
        removal < Duration::from_millis(1_500),
        "h3's member was removed only after {removal:?} (lease 3 s):\n{}",
        t.logs()
    );
    // Removed by its peers' word and its silence, not by the lease.
    assert_eq!(
        controller_metric(&t, "mcgate_controller_peer_confirmed_removals_total"),
        1
    );
    assert_eq!(
        controller_metric(&t, "mcgate_controller_lease_expiries_total"),
        0
    );
    for h in [0, 1] {
        assert_eq!(
            t.metric(h, "mcgate_agent_peer_down_detections_total", &[]),
            1,
            "h{} did not find h3 dead by its keepalives",
            h + 1
        );
    }
    // h1 stopped sending to h3 at the detection, before the controller said anything:
    // no copy reached h3 later than the detection time (3 x 100 ms) and some slack,
    // while h1 kept sending to h2.
    let h2_before = t.metric(1, "mcgate_agent_tunnel_packets", &[("direction", "rx")]);
    let quiet = Duration::from_secs(1);
    std::thread::sleep(quiet);
    let h2_after = t.metric(1, "mcgate_agent_tunnel_packets", &[("direction", "rx")]);
    assert!(h2_after >= h2_before + 50, "h1 stopped sending to h2 too");
    let log = t.proc_log(listener);
    let last = log
        .lines()
        .filter_map(|l| l.strip_prefix("data "))
        .filter_map(|s| s.trim().parse::<f64>().ok())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let killed_s = killed
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    if let Some(last) = last {
        eprintln!(
            "last copy reached h3 {:.0} ms after the kill",
            (last - killed_s) * 1e3
        );
        assert!(
            last - killed_s < 0.6,
            "copies reached h3 {:.3} s after its agent died:\n{log}",
            last - killed_s
        );
    }
}

#[test]
fn a_briefly_stalled_agent_is_reported_but_keeps_its_members() {
    // Early removal needs 2 s of silence here, so a stall of well under a second,
    // long enough for the peers to report it (3 x 100 ms), removes nothing.
    let mut t = deployment(&["--peer-confirm-ms", "2000"]);
    let _r3 = t.receiver(2, 0, G1, 30.0, "any", &[]);
    let listed = t.wait_until(Duration::from_secs(10), || controller_lists(&t, G1, "h3"));
    assert!(
        listed,
        "h3's join never reached the controller:\n{}",
        t.logs()
    );
    let session = t.stats_doc(2).expect("h3 answers")["controller"]["session"].clone();
    send_from_h1(&mut t);

    let pid = t.agent_pid(2).expect("h3's agent runs");
    signal(pid, "STOP");
    let reported = t.wait_until(Duration::from_secs(5), || {
        peer_state(&t, 0, "h3") == "down" && peer_state(&t, 1, "h3") == "down"
    });
    signal(pid, "CONT");
    assert!(
        reported,
        "h1 and h2 never found stalled h3 down:\n{}",
        t.logs()
    );
    // Back: its peers hear it again and send to it again.
    let back = t.wait_until(Duration::from_secs(5), || {
        peer_state(&t, 0, "h3") == "up" && peer_state(&t, 1, "h3") == "up"
    });
    assert!(back, "h3 never came back up at its peers:\n{}", t.logs());
    let rx = t.metric(2, "mcgate_agent_tunnel_packets", &[("direction", "rx")]);
    let resumed = t.wait_until(Duration::from_secs(5), || {
        t.metric(2, "mcgate_agent_tunnel_packets", &[("direction", "rx")]) > rx + 20
    });
    assert!(resumed, "h1 never sent to h3 again:\n{}", t.logs());
    // Nothing was removed: same member, same session, no early removal, no expiry.
    assert!(
        controller_lists(&t, G1, "h3"),
        "h3's member was removed:\n{}",
        t.logs()
    );
    assert_eq!(
        t.stats_doc(2).expect("h3 answers")["controller"]["session"],
        session
    );
    assert_eq!(
        controller_metric(&t, "mcgate_controller_peer_confirmed_removals_total"),
        0
    );
    assert_eq!(
        controller_metric(&t, "mcgate_controller_lease_expiries_total"),
        0
    );
    assert!(t.metric(0, "mcgate_agent_peer_down_detections_total", &[]) >= 1);
}
