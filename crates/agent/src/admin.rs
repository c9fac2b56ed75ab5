//! The agent's local admin endpoint: `GET /metrics` (Prometheus text or OpenMetrics,
//! see [`crate::metrics`]) and `GET /v1/stats` (JSON), on TCP or a Unix socket.
//! On a Unix socket only (whose file mode decides who may write), also
//! `POST /v1/rotate-key`: a new WireGuard key pair for the host.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcgate_dataplane::{Counter, Dataplane, DataplaneStats, Drops};
use serde_json::{Value, json};

use crate::config::AdminAddr;
use crate::control::SharedStatus;
use crate::metrics::{self, Format};
use crate::view::AgentView;

/// What the endpoint reads.
#[derive(Clone)]
pub struct AdminState {
    /// The agent's state.
    pub view: Arc<Mutex<AgentView>>,
    /// The controller connection.
    pub status: SharedStatus,
    /// The data plane, for its counters.
    pub dataplane: Arc<dyn Dataplane>,
    /// Asks the agent for a new WireGuard key; the answer is the new public key.
    pub rotate: tokio::sync::mpsc::Sender<RotateRequest>,
    /// The peer keepalives, when they run.
    pub liveness: Option<Arc<crate::liveness_task::Liveness>>,
}

impl AdminState {
    /// The agent's state with the keepalives' as of now.
    fn view(&self) -> AgentView {
        let mut view = lock(&self.view);
        if let Some(l) = &self.liveness {
            view.peer_liveness = l.view();
        }
        view
    }
}

/// A key rotation asked for on the admin endpoint, with where to answer.
pub type RotateRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

/// A bound admin listener.
pub enum AdminListener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix socket.
    Unix(tokio::net::UnixListener),
}

/// Binds the admin address (a stale Unix socket file is replaced).
pub async fn bind(addr: &AdminAddr) -> std::io::Result<AdminListener> {
    match addr {
        AdminAddr::Tcp(a) => Ok(AdminListener::Tcp(tokio::net::TcpListener::bind(a).await?)),
        AdminAddr::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                std::fs::remove_file(path)?;
            }
            Ok(AdminListener::Unix(tokio::net::UnixListener::bind(path)?))
        }
    }
}

/// Serves until the task is aborted.
pub async fn serve(listener: AdminListener, state: AdminState) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/stats", get(stats));
    let res = match listener {
        AdminListener::Tcp(l) => axum::serve(l, app.with_state(state)).await,
        AdminListener::Unix(l) => {
            let app = app.route("/v1/rotate-key", post(rotate_key));
            axum::serve(l, app.with_state(state)).await
        }
    };
    if let Err(e) = res {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}

/// `POST /v1/rotate-key`: 200 with `{"public_key": ...}` once the new key is in use
/// and the re-registration is under way; 503 when the agent cannot.
async fn rotate_key(State(s): State<AdminState>) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if s.rotate.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n").into_response();
    }
    match rx.await {
        Ok(Ok(public_key)) => axum::Json(json!({ "public_key": public_key })).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": e })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n").into_response(),
    }
}

fn lock<T: Clone>(m: &Mutex<T>) -> T {
    match m.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn counter_json(c: &Counter) -> Value {
    json!({ "packets": c.packets, "bytes": c.bytes })
}

fn drops_json(d: &Drops) -> Value {
    let map: serde_json::Map<String, Value> = d
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), json!(n)))
        .collect();
    Value::Object(map)
}

/// A link of `/v1/stats`: its view and its data-plane counters.
#[derive(serde::Serialize)]
struct LinkStats<'a> {
    #[serde(flatten)]
    link: &'a crate::view::LinkView,
    rx: Value,
    tx: Value,
    drops: Value,
}

/// The whole JSON document of `/v1/stats`.
pub fn stats_json(
    view: &AgentView,
    status: &crate::control::ControllerStatus,
    dp: &DataplaneStats,
) -> Value {
    let links: Vec<Value> = view
        .links
        .iter()
        .map(|l| {
            let c = dp.links.get(&l.name).cloned().unwrap_or_default();
            json!(LinkStats {
                link: l,
                rx: counter_json(&c.rx),
                tx: counter_json(&c.tx),
                drops: drops_json(&c.drops),
            })
        })
        .collect();
    // IPv4 groups only, as the traffic report: IPv6 groups' counters are in `/metrics`.
    let groups: Vec<Value> = dp
        .groups
        .iter()
        .filter_map(|(g, c)| match g {
            IpAddr::V4(g) => Some((g, c)),
            IpAddr::V6(_) => None,
        })
        .map(|(g, c)| {
            let member_links: Vec<&str> = view
                .links
                .iter()
                .filter(|l| l.groups.iter().any(|m| m.group == *g))
                .map(|l| l.name.as_str())
                .collect();
            json!({
                "group": g,
                "links": member_links,
                "rx_local": counter_json(&c.rx_local),
                "rx_tunnel": counter_json(&c.rx_tunnel),
                "tx_local": counter_json(&c.tx_local),
                "tx_tunnel": counter_json(&c.tx_tunnel),
                "drops": drops_json(&c.drops),
            })
        })
        .collect();
    // The upstream interface with the traffic the data plane took in there.
    let upstream = view.upstream.as_ref().map(|u| {
        let c = dp.links.get(&u.interface).cloned().unwrap_or_default();
        let mut v = json!(u);
        if let Some(o) = v.as_object_mut() {
            o.insert("rx".into(), counter_json(&c.rx));
            o.insert("tx".into(), counter_json(&c.tx));
            o.insert("drops".into(), drops_json(&c.drops));
        }
        v
    });
    json!({
        "host": view.host,
        "underlay": view.underlay,
        "underlay_interface": view.underlay_interface,
        "igmp_mode": view.igmp_mode,
        "wireguard": view.wireguard,
        "controller": status,
        "domains": view.domains,
        "links": links,
        "upstream": upstream,
        "peer_liveness": view.peer_liveness,
        "groups": groups,
        "dataplane": {
            "name": dp.name,
            "chosen_because": view.dataplane_chosen_because,
            "underlay_mtu": dp.underlay_mtu,
            "tunnel_rx": counter_json(&dp.tunnel_rx),
            "tunnel_tx": counter_json(&dp.tunnel_tx),
            "drops": drops_json(&dp.drops),
            "tables_installed": dp.tables_installed,
            "batches": dp.batches,
            "checksums_completed": dp.checksums_completed,
        },
    })
}

async fn stats(State(s): State<AdminState>) -> Response {
    let view = s.view();
    let status = lock(&s.status);
    let dp = s.dataplane.stats();
    let mut doc = stats_json(&view, &status, &dp);
    if let Some(k) = s.dataplane.kernel_status()
        && let Some(d) = doc.get_mut("dataplane").and_then(Value::as_object_mut)
    {
        d.insert(
            "kernel".into(),
            serde_json::to_value(k).unwrap_or(Value::Null),
        );
    }
    axum::Json(doc).into_response()
}

async fn metrics(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let view = s.view();
    let status = lock(&s.status);
    let dp = s.dataplane.stats();
    let kernel = s.dataplane.kernel_status();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        metrics::render(format, &view, &status, &dp, kernel.as_ref()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{FrameCounters, LinkView};

    #[test]
    fn a_link_carries_its_view_and_its_counters() {
        let view = AgentView {
            links: vec![LinkView {
                name: "tk1".into(),
                ifindex: 4,
                address: None,
                querier: true,
                igmp_version: Some(2),
                igmp: None,
                igmp_frames: FrameCounters::default(),
                bad_frames: 3,
                frames_without_querier: 0,
                query_send_errors: 0,
                groups: vec![],
                mld: Default::default(),
            }],
            ..AgentView::default()
        };
        let mut dp = DataplaneStats::default();
        dp.links.insert("tk1".into(), Default::default());
        let v = stats_json(&view, &Default::default(), &dp);
        let link = &v["links"][0];
        assert_eq!(link["name"], "tk1");
        assert_eq!(link["ifindex"], 4);
        assert_eq!(link["bad_frames"], 3);
        assert_eq!(link["rx"], json!({ "packets": 0, "bytes": 0 }));
        assert!(link["drops"].is_object() && link["groups"].is_array());
        assert_eq!(link.as_object().unwrap().len(), 15, "{link}");
    }
}
