//! The state lock is never held across a store commit.

use std::sync::mpsc;
use std::time::Duration;

use mcgate_domain::api::{AgentRegistration, DomainSpec, Heartbeat, MembershipReport};

use super::{Config, Controller};

/// Long enough that an answer within it was not waiting for the held commit.
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn agents_are_answered_while_an_admin_commit_waits_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(Config::default(), dir.path()).unwrap();
    let reg = AgentRegistration {
        host: "h1".into(),
        underlay: "10.9.0.1:4789".parse().unwrap(),
        subnet: None,
        links: Vec::new(),
        dataplane: None,
        public_key: String::new(),
        wireguard: None,
        zone: None,
        upstream: None,
    };
    let reply = c
        .apply(|m, now| m.register(reg, now, 3_000, 1_000))
        .unwrap();

    // The disk is busy: the admin verb's commit cannot finish until `held` is dropped.
    let crate::state::Backend::Embedded(store) = &c.backend else {
        unreachable!("opened embedded")
    };
    let held = store.hold_writes();
    let (started, admin_started) = mpsc::channel();
    let (done, admin_done) = mpsc::channel();
    let admin = {
        let c = c.clone();
        std::thread::spawn(move || {
            // "PID/task/TID": where the main thread watches this one's state.
            started
                .send(std::fs::read_link("/proc/thread-self").unwrap())
                .unwrap();
            let spec: DomainSpec =
                serde_json::from_value(serde_json::json!({"name": "prod"})).unwrap();
            let r = c.admin("prod", |m| Ok((m.create_domain(spec.clone())?, Vec::new())));
            done.send(()).unwrap();
            r.map(|d| d.name)
        })
    };
    let me = admin_started.recv().unwrap();
    // Wait (bounded) until the admin verb sleeps: in its commit, the only place it blocks.
    let stat = std::path::Path::new("/proc").join(me).join("stat");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&stat)
        .unwrap()
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('S'))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the admin verb never blocked"
        );
        std::thread::yield_now();
    }
    // The heartbeat and the report are answered while the commit is still waiting.
    let (tx, rx) = mpsc::channel();
    let agent = {
        let c = c.clone();
        let session = reply.session;
        std::thread::spawn(move || {
            let hb = Heartbeat::new(session);
            tx.send(
                c.apply(|m, now| Ok((m.heartbeat("h1", &hb, now)?, Vec::new())))
                    .is_ok(),
            )
            .unwrap();
            let report = MembershipReport {
                session,
                seq: 1,
                snapshot: true,
                entries: Vec::new(),
            };
            tx.send(c.apply(|m, now| m.report("h1", report, now)).is_ok())
                .unwrap();
        })
    };
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(true), "the heartbeat waited");
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(true), "the report waited");
    agent.join().unwrap();
    // The admin verb has not finished: its commit is still held, and nothing of it is
    // visible before the commit.
    assert!(admin_done.try_recv().is_err());
    assert!(c.read(|m, _| m.domain("prod").is_err()));
    drop(held);
    assert_eq!(admin.join().unwrap().unwrap(), "prod");
    assert!(c.read(|m, _| m.domain("prod").is_ok()));
}
