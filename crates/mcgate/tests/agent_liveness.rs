//! Host loss found in the data plane: the agents' peer keepalives (docs/agent.md, "Peer
//! liveness"). Three hosts in network namespaces (see `agent_support`), the real
//! controller and agents on the userspace data plane.
//!
//! - An agent killed with SIGKILL (its host namespace stays): the other hosts stop
//!   sending to it as soon as its keepalives stop (an nftables counter in its host
//!   counts what still arrives), and the controller, told by them and seeing the host's
//!   heartbeats stop, removes its members well before the lease.
//!   On the kernel data plane, the other hosts' VXLAN entries towards it go.
//! - An agent stopped for a moment (SIGSTOP, then SIGCONT) is reported by its peers but
//!   keeps its members and its session: one report without the controller's own
//!   confirmation removes nothing.
//!
//! Every wait is on observable state (agents' `/v1/stats` and `/metrics`, the
//! controller's group table and metrics), bounded; processes are ended by PID.

mod agent_support;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{Flow, Topo, metric_in};
use serde_json::Value;

const G1: &str = "233.252.0.5";
const VNI: u32 = 4100;

/// Three hosts on data plane `dp` with one task each, the controller started with
/// `ctl_args`, the domain, and every agent seeing every peer up by its keepalives.
fn deployment(dp: &str, ctl_args: &[&str]) -> Topo {
    let mut t = Topo::with_dataplanes(1, &[dp; 3]);
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

/// Waits until the controller no longer lists h3's member of [`G1`], which must happen
/// well before the 3 s lease would run out from `killed` (the kill); returns how long
/// after the kill it happened.
fn wait_removed(t: &Topo, killed: Instant) -> Duration {
    let removed = t.wait_until(Duration::from_secs(10), || !controller_lists(t, G1, "h3"));
    let removal = killed.elapsed();
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
    removal
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

/// Counts, in host `h`'s namespace, the WireGuard datagrams that carry one of h1's
/// copies (UDP to 51820 longer than 200 bytes: handshakes and WireGuard's own
/// keepalives are shorter); [`wg_copies`] reads it.
fn count_wg_copies(t: &Topo, h: usize) {
    let ns = &t.hosts[h].ns;
    ns.run(&["nft", "add", "table", "inet", "mcgt_live"]);
    ns.run(&["nft", "add", "counter", "inet", "mcgt_live", "copies"]);
    ns.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "mcgt_live",
        "in",
        "{ type filter hook input priority 0; }",
    ]);
    ns.run(&[
        "nft",
        "add",
        "rule",
        "inet",
        "mcgt_live",
        "in",
        "udp",
        "dport",
        "51820",
        "udp",
        "length",
        "gt",
        "200",
        "counter",
        "name",
        "copies",
    ]);
}

/// The count of [`count_wg_copies`].
fn wg_copies(t: &Topo, h: usize) -> u64 {
    let out = t.hosts[h]
        .ns
        .run(&["nft", "list", "counter", "inet", "mcgt_live", "copies"]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {text:?}"))
}

/// Three userspace hosts, receivers on h2 and h3, h1 sending to both.
fn flowing_to_h2_and_h3(ctl_args: &[&str]) -> Topo {
    let mut t = deployment("userspace", ctl_args);
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
    send_from_h1(&mut t);
    let flowing = t.wait_until(Duration::from_secs(10), || {
        t.metric(2, "mcgate_agent_tunnel_packets", &[("direction", "rx")]) > 20
    });
    assert!(flowing, "h3 never got h1's traffic:\n{}", t.logs());
    t
}

#[test]
fn a_killed_agent_is_removed_well_before_its_lease() {
    let mut t = flowing_to_h2_and_h3(&[]);
    let t0 = Instant::now();
    t.kill_agent(2);
    wait_removed(&t, t0);
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
}

#[test]
fn a_killed_agent_gets_no_copies_once_its_keepalives_stop() {
    // The controller waits 1.5 s of silence here, so what stops the copies within the
    // keepalives' detection time (3 x 100 ms) can only be the peers themselves.
    let mut t = flowing_to_h2_and_h3(&["--peer-confirm-ms", "1500"]);
    count_wg_copies(&t, 2);
    // The counter sees h1's copies while h3 is alive.
    let counting = t.wait_until(Duration::from_secs(5), || wg_copies(&t, 2) > 10);
    assert!(counting, "the counter never saw a copy for h3");
    let t0 = Instant::now();
    t.kill_agent(2);
    let down = t.wait_until(Duration::from_secs(5), || peer_state(&t, 0, "h3") == "down");
    let detected = t0.elapsed();
    assert!(down, "h1 never found h3 down:\n{}", t.logs());
    assert!(
        controller_lists(&t, G1, "h3"),
        "the controller removed h3 already"
    );
    eprintln!(
        "h1 found h3 down {:.0} ms after the kill",
        detected.as_secs_f64() * 1e3
    );
    // While h1 goes on sending to h2 (30 more copies there), none reaches h3.
    let before = wg_copies(&t, 2);
    let h2 = t.metric(1, "mcgate_agent_tunnel_packets", &[("direction", "rx")]);
    let more = t.wait_until(Duration::from_secs(5), || {
        t.metric(1, "mcgate_agent_tunnel_packets", &[("direction", "rx")]) >= h2 + 30
    });
    assert!(more, "h1 stopped sending to h2 too:\n{}", t.logs());
    let after = wg_copies(&t, 2);
    assert!(
        controller_lists(&t, G1, "h3"),
        "the controller removed h3 meanwhile"
    );
    assert!(
        after <= before + 1,
        "{} copies reached h3 after h1 found it down",
        after - before
    );
}

#[test]
fn a_briefly_stalled_agent_is_reported_but_keeps_its_members() {
    // Early removal needs 2 s of silence here, so a stall of well under a second,
    // long enough for the peers to report it (3 x 100 ms), removes nothing.
    let mut t = deployment("userspace", &["--peer-confirm-ms", "2000"]);
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

/// Host `h`'s kernel VXLAN entries for `group`, by destination.
fn kernel_destinations(t: &Topo, h: usize, group: &str) -> Vec<String> {
    t.kernel_tables(h, VNI)
        .map(|k| {
            k.vxlan_entries
                .iter()
                .filter(|e| e.group.to_string() == group)
                .map(|e| e.dst.to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_agent_is_cut_off_and_removed_on_the_kernel_data_plane() {
    let mut t = deployment("kernel", &[]);
    let _r2 = t.receiver(1, 0, G1, 30.0, "any", &[]);
    let _r3 = t.receiver(2, 0, G1, 30.0, "any", &[]);
    // Copies for h3 go to its tunnel address (the domain tunnels through WireGuard).
    let h3 = t.stats_doc(2).expect("h3 answers")["wireguard"]["tunnel_address"]
        .as_str()
        .expect("h3 has a tunnel address")
        .to_string();
    let h2 = t.stats_doc(1).expect("h2 answers")["wireguard"]["tunnel_address"]
        .as_str()
        .expect("h2 has a tunnel address")
        .to_string();
    let programmed = t.wait_until(Duration::from_secs(10), || {
        let d = kernel_destinations(&t, 0, G1);
        d.contains(&h3) && d.contains(&h2)
    });
    assert!(
        programmed,
        "h1's kernel never sent G1 to h2 and h3:\n{}",
        t.logs()
    );

    let t0 = Instant::now();
    t.kill_agent(2);
    let cut = t.wait_until(Duration::from_secs(10), || {
        !kernel_destinations(&t, 0, G1).contains(&h3)
    });
    let cut_after = t0.elapsed();
    assert!(cut, "h1's kernel kept sending to h3:\n{}", t.logs());
    eprintln!(
        "h1's VXLAN entry towards h3 gone {:.0} ms after the kill",
        cut_after.as_secs_f64() * 1e3
    );
    wait_removed(&t, t0);
    // h2 still gets copies; h1 and h2 found h3 dead; the controller confirmed it.
    assert!(kernel_destinations(&t, 0, G1).contains(&h2));
    assert_eq!(
        t.metric(0, "mcgate_agent_peer_down_detections_total", &[]),
        1
    );
    assert_eq!(
        controller_metric(&t, "mcgate_controller_peer_confirmed_removals_total"),
        1
    );
    assert_eq!(
        controller_metric(&t, "mcgate_controller_lease_expiries_total"),
        0
    );
}
