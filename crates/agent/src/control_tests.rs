//! The session against a fake controller on loopback that answers membership reports
//! only after longer than the lease, and expires the session like the real one when no
//! heartbeat came for a lease.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mcgate_client::Client;
use mcgate_domain::api::{
    AgentRegistration, Heartbeat, MembershipAck, MembershipReport, RegistrationReply,
};
use tokio::sync::mpsc;

use super::{SessionInput, SharedStatus, session_task};

const LEASE: Duration = Duration::from_millis(1_500);
const HEARTBEAT: Duration = Duration::from_millis(250);
/// Twice the lease: on one shared connection the heartbeats would wait this long.
const REPORT_DELAY: Duration = Duration::from_millis(3_000);

#[derive(Default)]
struct Fake {
    registrations: u64,
    session: u64,
    /// When the lease was last renewed (registration or heartbeat).
    renewed: Option<Instant>,
    heartbeats: u64,
    expiries: u64,
    reports: Vec<MembershipReport>,
}

type Shared = Arc<Mutex<Fake>>;

async fn register(
    State(f): State<Shared>,
    Json(_): Json<AgentRegistration>,
) -> Json<RegistrationReply> {
    let mut f = f.lock().unwrap();
    f.registrations += 1;
    f.session += 1;
    f.renewed = Some(Instant::now());
    Json(RegistrationReply {
        session: f.session,
        lease_ms: LEASE.as_millis() as u64,
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        domains: vec!["d".into()],
        tunnel_address: None,
        tunnel_pool: None,
    })
}

async fn heartbeat(
    State(f): State<Shared>,
    Json(hb): Json<Heartbeat>,
) -> (StatusCode, Json<serde_json::Value>) {
    let mut f = f.lock().unwrap();
    let now = Instant::now();
    let alive = f.renewed.is_some_and(|t| now.duration_since(t) < LEASE);
    if hb.session != f.session || !alive {
        if f.renewed.take().is_some() {
            f.expiries += 1;
        }
        return (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"error": "stale session"})),
        );
    }
    f.renewed = Some(now);
    f.heartbeats += 1;
    (StatusCode::OK, Json(serde_json::json!({})))
}

async fn membership(
    State(f): State<Shared>,
    Json(r): Json<MembershipReport>,
) -> Json<MembershipAck> {
    tokio::time::sleep(REPORT_DELAY).await;
    let seq = r.seq;
    f.lock().unwrap().reports.push(r);
    Json(MembershipAck { seq })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_report_slower_than_the_lease_does_not_expire_it() {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/v1/agents", post(register))
        .route("/v1/agents/{host}/heartbeat", post(heartbeat))
        .route("/v1/agents/{host}/membership", post(membership))
        .with_state(fake.clone());
    let dir = std::env::temp_dir().join(format!("mcgate-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let url = format!("unix:{}", sock.display());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::new(&url).unwrap().keep_alive();
    let status: SharedStatus = Arc::default();
    let controllers = Arc::new(crate::controllers::Controllers::new(
        vec![client],
        status.clone(),
    ));
    let registration = AgentRegistration {
        host: "h1".into(),
        underlay: "127.0.0.1:4789".parse().unwrap(),
        subnet: None,
        links: Vec::new(),
        dataplane: None,
        public_key: String::new(),
        wireguard: None,
        zone: None,
        upstream: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let session = tokio::spawn(session_task(
        controllers,
        registration,
        rx,
        status.clone(),
        Arc::default(),
        tokio::sync::watch::channel(Default::default()).1,
    ));
    // A change while the (slow) snapshot is in flight: sent as a second slow report.
    tx.send(SessionInput::Membership(
        mcgate_domain::api::LinkMembership {
            link: "veth0".into(),
            group: "239.1.1.1".parse().unwrap(),
            filter: Some(mcgate_domain::SourceFilter::any_source()),
            reporters: Vec::new(),
        },
    ))
    .unwrap();

    // Wait (bounded) until both slow reports were answered: about 2 x REPORT_DELAY.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.lock().unwrap().reports.len() < 2 || status.lock().unwrap().reports < 2 {
        assert!(Instant::now() < deadline, "the reports were never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    session.abort();
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);

    let f = fake.lock().unwrap();
    assert_eq!(f.expiries, 0, "the lease expired while a report was slow");
    assert_eq!(f.registrations, 1, "the agent registered again");
    // Heartbeats went on while the reports waited (2 x 3 s at one per 250 ms).
    assert!(f.heartbeats >= 10, "only {} heartbeats", f.heartbeats);
    assert!(f.reports[0].snapshot && f.reports[0].entries.is_empty());
    assert_eq!(f.reports[1].entries.len(), 1);
    assert_eq!((f.reports[0].seq, f.reports[1].seq), (1, 2));
    let s = status.lock().unwrap();
    assert_eq!((s.registrations, s.session), (1, Some(1)));
}
