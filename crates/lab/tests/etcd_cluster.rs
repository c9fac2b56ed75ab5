//! The HA lab's etcd cluster for real, as root: three members of Debian's etcd in
//! namespaces of their own elect a leader; with one killed the other two keep one and
//! `lab status` shows the killed one down; restarted on its data directory it is
//! healthy again; `lab down` leaves no namespace, process or file.
//!
//! Only the cluster is started (`UpOptions::etcd_only`): the controller replicas need a
//! controller with `--store etcd`, tested where that controller lives. Processes run
//! under this crate's `mcgate-lab-run` supervisor. The lab is named `le<pid>`, so its
//! namespaces are `mcgl-le<pid>-*`, and a guard takes it down even when the test fails.

use std::path::PathBuf;
use std::time::Duration;

use mcgate_lab::{LabStatus, Topology, UpOptions};
use mcgate_testbed::{require_root, wait_until};

const TOPOLOGY: &str = r#"name = "NAME"
[vpc]
cidr = "10.0.0.0/16"
[[subnets]]
name = "s1"
cidr = "10.0.2.0/24"
[domain]
name = "d"
[controller]
replicas = 3
store = "etcd"
"#;

/// Takes the lab down when dropped.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = mcgate_lab::down(&self.0);
    }
}

fn status(lab: &str) -> LabStatus {
    mcgate_lab::status(lab).unwrap_or_else(|e| panic!("status of {lab}: {e}"))
}

fn healths(s: &LabStatus) -> Vec<(String, String, bool)> {
    s.etcd
        .iter()
        .map(|e| (e.name.clone(), e.health.clone(), e.leader))
        .collect()
}

fn namespaces(lab: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("mcgl-{lab}-")))
        .map(str::to_string)
        .collect()
}

/// Whether `pid` is gone or a zombie: the supervisors `up` and `restart` spawn are this
/// process's children, reaped only when it ends (as `mcgate lab up`'s are by init).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

#[test]
fn etcd_cluster_keeps_a_leader_through_a_killed_member_and_leaves_nothing() {
    require_root();
    let lab = format!("le{}", std::process::id());
    let topo = Topology::parse("ha.toml", &TOPOLOGY.replace("NAME", &lab)).unwrap();
    let guard = Guard(lab.clone());
    let opts = UpOptions {
        supervisor: Some(PathBuf::from(env!("CARGO_BIN_EXE_mcgate-lab-run"))),
        etcd_only: true,
        ..UpOptions::default()
    };
    // `up` returns once every member answers and they agree on a leader.
    mcgate_lab::up(&topo, &opts).unwrap_or_else(|e| panic!("lab up: {e}"));
    let s = status(&lab);
    assert_eq!(s.etcd.len(), 3, "{s:?}");
    assert!(
        s.etcd
            .iter()
            .all(|e| e.health == "up" && e.state == "running"),
        "{:?}",
        healths(&s)
    );
    assert_eq!(
        s.etcd.iter().filter(|e| e.leader).count(),
        1,
        "{:?}",
        healths(&s)
    );
    assert_eq!(s.controllers.len(), 3, "replicas planned, none started");
    assert!(
        s.controllers.iter().all(|c| c.state == "not started"),
        "{s:?}"
    );
    let pids: Vec<i32> = s.etcd.iter().filter_map(|e| e.pid).collect();

    // Kill the leader: the hardest case, the other two must elect a new one.
    let victim = s.etcd.iter().find(|e| e.leader).unwrap().name.clone();
    mcgate_lab::kill(&lab, &victim).unwrap();
    let mut last = status(&lab);
    let survived = wait_until(Duration::from_secs(15), || {
        last = status(&lab);
        let others_lead = last
            .etcd
            .iter()
            .any(|e| e.name != victim && e.leader && e.health == "up");
        let gone = last
            .etcd_member(&victim)
            .is_some_and(|e| e.health == "down");
        others_lead && gone
    });
    assert!(
        survived,
        "no new leader among the others: {:?}",
        healths(&last)
    );
    let v = last.etcd_member(&victim).unwrap();
    assert_eq!(v.state, "exited", "{v:?}");
    assert_eq!(v.exit_code, Some(137), "killed by SIGKILL: {v:?}");
    let e = mcgate_lab::kill(&lab, &victim).unwrap_err();
    assert!(e.to_string().contains("is not running"), "{e}");
    let e = mcgate_lab::kill(&lab, "etcd-9").unwrap_err();
    assert!(e.to_string().contains("etcd-1, etcd-2, etcd-3"), "{e}");

    // Restarted on its data directory, it rejoins.
    mcgate_lab::restart(&lab, &victim).unwrap();
    let healthy = wait_until(Duration::from_secs(15), || {
        last = status(&lab);
        last.etcd.iter().all(|e| e.health == "up")
    });
    assert!(healthy, "{:?}", healths(&last));
    assert_eq!(last.etcd.iter().filter(|e| e.leader).count(), 1);

    // Every process inside the lab's namespaces (the etcd servers themselves).
    let inside: Vec<i32> = namespaces(&lab)
        .iter()
        .flat_map(|ns| {
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    assert!(inside.len() >= 3, "{inside:?}");

    drop(guard);
    assert!(namespaces(&lab).is_empty(), "{:?}", namespaces(&lab));
    assert!(!PathBuf::from("/run/mcgate/labs").join(&lab).exists());
    for pid in pids.into_iter().chain(inside) {
        assert!(ended(pid), "process {pid} still runs");
    }
}
