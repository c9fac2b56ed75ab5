//! The session with two controller replicas that share one state (as replicas over
//! one store do): when the current one starts answering 503 (a replica whose store
//! lost quorum), heartbeats and reports move to the other and the session carries on
//! there, without registering again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mcgate_client::Client;
use mcgate_domain::api::{
    AgentRegistration, Heartbeat, LinkMembership, MembershipAck, MembershipReport,
    RegistrationReply,
};
use tokio::sync::mpsc;

use super::{SessionInput, SharedStatus, session_task};
use crate::controllers::Controllers;

/// The state both replicas share, and what each of them served.
#[derive(Default)]
struct Store {
    registrations: u64,
    heartbeats: [u64; 2],
    reports: [Vec<MembershipReport>; 2],
}

#[derive(Clone)]
struct Replica {
    store: Arc<Mutex<Store>>,
    index: usize,
}

async fn register(
    State(r): State<Replica>,
    Json(_): Json<AgentRegistration>,
) -> Json<RegistrationReply> {
    let mut s = r.store.lock().unwrap();
    s.registrations += 1;
    Json(RegistrationReply {
        session: s.registrations,
        lease_ms: 1_500,
        heartbeat_ms: 200,
        domains: vec!["d".into()],
        tunnel_address: None,
        tunnel_pool: None,
    })
}

async fn heartbeat(State(r): State<Replica>, Json(hb): Json<Heartbeat>) -> Response {
    let mut s = r.store.lock().unwrap();
    if hb.session != s.registrations {
        return StatusCode::CONFLICT.into_response();
    }
    s.heartbeats[r.index] += 1;
    Json(serde_json::json!({})).into_response()
}

async fn membership(
    State(r): State<Replica>,
    Json(m): Json<MembershipReport>,
) -> Json<MembershipAck> {
    let seq = m.seq;
    r.store.lock().unwrap().reports[r.index].push(m);
    Json(MembershipAck { seq })
}

/// Serves replica `index` on a Unix socket in `dir`; everything is answered 503 while
/// `down` is set.
fn serve(
    dir: &std::path::Path,
    store: &Arc<Mutex<Store>>,
    index: usize,
    down: Arc<AtomicBool>,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/v1/agents", post(register))
        .route("/v1/agents/{host}/heartbeat", post(heartbeat))
        .route("/v1/agents/{host}/membership", post(membership))
        .with_state(Replica {
            store: store.clone(),
            index,
        })
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let down = down.load(Ordering::SeqCst);
                async move {
                    if down {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(serde_json::json!({"error": "the store lost quorum"})),
                        )
                            .into_response();
                    }
                    next.run(req).await
                }
            },
        ));
    let sock = dir.join(format!("replica-{index}.sock"));
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("unix:{}", sock.display()), task)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answering_503_loses_the_session_to_the_next_one() {
    let dir = std::env::temp_dir().join(format!("mcgate-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<Mutex<Store>> = Arc::default();
    let a_down = Arc::new(AtomicBool::new(false));
    let (a, a_task) = serve(&dir, &store, 0, a_down.clone());
    let (b, b_task) = serve(&dir, &store, 1, Arc::default());
    let first = Client::new(&a).unwrap().keep_alive();
    let second = first.with_url(&b).unwrap();
    let status: SharedStatus = Arc::default();
    let controllers = Arc::new(Controllers::new(vec![first, second], status.clone()));
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
    wait_for("the snapshot at A", || {
        let s = store.lock().unwrap();
        s.reports[0].len() == 1 && s.heartbeats[0] >= 1
    })
    .await;

    a_down.store(true, Ordering::SeqCst);
    tx.send(SessionInput::Membership(LinkMembership {
        link: "veth0".into(),
        group: "239.1.1.1".parse().unwrap(),
        filter: Some(mcgate_domain::SourceFilter::any_source()),
        reporters: Vec::new(),
    }))
    .unwrap();
    // The change reaches B (on its own, or inside a snapshot resent after A failed
    // it), in the same session, and B renews the lease.
    wait_for("the change at B", || {
        let s = store.lock().unwrap();
        s.reports[1].iter().any(|r| r.entries.len() == 1) && s.heartbeats[1] >= 2
    })
    .await;
    session.abort();
    a_task.abort();
    b_task.abort();
    let _ = std::fs::remove_dir_all(&dir);

    let s = store.lock().unwrap();
    assert_eq!(s.registrations, 1, "the agent registered again");
    assert!(s.reports[1].iter().all(|r| r.session == 1));
    let st = status.lock().unwrap();
    assert_eq!((st.failovers, st.session), (1, Some(1)));
    assert_eq!(st.url, b);
}
