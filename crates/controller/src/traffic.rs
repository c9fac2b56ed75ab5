//! Domain-wide traffic figures: agents' reports in (`POST /v1/agents/{host}/traffic`),
//! the view out (`GET /v1/domains/{name}/traffic`, and with `?watch=true` as
//! server-sent events).
//!
//! Reports are figures, not state: they live in this controller's memory only (never
//! in the store), so with replicas each shows the reports its own agents send it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcgate_domain::api::{GroupEntry, GroupQuery};
use mcgate_domain::traffic::{TrafficReport, TrafficView};
use mcgate_domain::validate::ModelError;
use tokio::sync::watch;

use crate::extract::{ApiErr, ApiJson, ApiPath, ApiQuery, REPORT_BODY_LIMIT};
use crate::openapi::{Conflict, DomainPath, HostPath};
use crate::state::{Controller, OpError};

/// How often a watched view is sent when nothing changed (reports arrive every second).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

impl Controller {
    /// Takes `host`'s traffic report: refused when the host is not registered or the
    /// session is not its current one (409, as for membership reports).
    pub(crate) fn record_traffic(&self, host: &str, report: TrafficReport) -> Result<(), OpError> {
        if let Err((field, message)) = report.check_size() {
            return Err(ModelError::invalid(field, message).into());
        }
        let now = self.now_ms();
        let g = self.lock();
        let Some(session) = g.model.agent(host).map(|a| a.session) else {
            return Err(ModelError::stale(format!(
                "no agent named {host:?} is registered: register first"
            ))
            .into());
        };
        if session != report.session {
            return Err(ModelError::stale(format!(
                "session {} of {host:?} is not current: register again",
                report.session
            ))
            .into());
        }
        // Lock order: the state, then the book (never the other way).
        let mut book = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        if book.len() > g.model.agent_count() {
            book.retain(|h| g.model.agent(h).is_some());
        }
        drop(g);
        book.record(host, report, now);
        Ok(())
    }

    /// The traffic view of domain `name`.
    pub(crate) fn traffic_view(&self, name: &str) -> Result<TrafficView, OpError> {
        let now = self.now_ms();
        let revision = self.published();
        let (hosts, members) = {
            let g = self.lock();
            g.model.domain(name)?;
            let hosts: Vec<_> = g
                .model
                .agent_infos(now)
                .into_iter()
                .filter(|a| a.domains.iter().any(|d| d == name))
                .collect();
            let members = g
                .model
                .domain_state(name)
                .map(|s| s.members)
                .unwrap_or_default();
            (hosts, members)
        };
        let book = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        Ok(book.view(name, revision, &hosts, &members, now))
    }

    /// The group table's rows for `q`, with the rows of the gateway hosts whose traffic
    /// reports are fresh (their upstream ranges and the upstream sources seen).
    pub(crate) fn group_rows(&self, q: &GroupQuery) -> Vec<GroupEntry> {
        let now = self.now_ms();
        let g = self.lock();
        // Lock order: the state, then the book (never the other way).
        let gateways = self
            .traffic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upstream_gateways(now);
        g.model.groups_with_upstream(q, &gateways)
    }

    /// A receiver that sees every new revision (a membership or agent change).
    pub(crate) fn watch_revisions(&self) -> watch::Receiver<u64> {
        self.revisions.subscribe()
    }
}

#[utoipa::path(post, path = "/v1/agents/{host}/traffic", tag = "agents", params(HostPath),
    request_body = TrafficReport,
    responses((status = 204, description = "Taken"), Conflict))]
pub(crate) async fn report_traffic(
    State(c): State<Arc<Controller>>,
    ApiPath(host): ApiPath,
    ApiJson(report): ApiJson<TrafficReport, REPORT_BODY_LIMIT>,
) -> Result<StatusCode, ApiErr> {
    c.record_traffic(&host, report)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/domains/{name}/traffic`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrafficQuery {
    /// `true`: answer with server-sent events (`text/event-stream`), one `traffic`
    /// event with the view at once, then one per change and at least every second.
    /// `false` or left out: one JSON answer. Anything else is a 400.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    watch: Option<String>,
}

#[utoipa::path(get, path = "/v1/domains/{name}/traffic", tag = "domains", params(DomainPath, TrafficQuery),
    responses((status = 200, description = "Per group its senders, receivers, flows between hosts and drops; per host its totals. With watch=true, server-sent events whose data is this object",
        content((TrafficView = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn traffic(
    State(c): State<Arc<Controller>>,
    ApiPath(name): ApiPath,
    ApiQuery(q): ApiQuery<TrafficQuery>,
) -> Result<Response, ApiErr> {
    let watch = match q.watch.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ModelError::invalid(
                "watch",
                format!("watch={other:?} is neither true nor false"),
            )
            .into());
        }
    };
    let view = c.traffic_view(&name)?;
    if !watch {
        return Ok(Json(view).into_response());
    }
    let state = Watch {
        ctl: c.clone(),
        name,
        revisions: c.watch_revisions(),
        first: Some(view),
        ended: false,
    };
    let body = futures_util::stream::unfold(state, next_event);
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

struct Watch {
    ctl: Arc<Controller>,
    name: String,
    revisions: watch::Receiver<u64>,
    first: Option<TrafficView>,
    ended: bool,
}

/// One `traffic` event (the view on one `data:` line: JSON has no raw newlines).
fn event(view: &TrafficView) -> Bytes {
    let json = serde_json::to_string(view).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: traffic\ndata: {json}\n\n"))
}

async fn next_event(mut w: Watch) -> Option<(Result<Bytes, Infallible>, Watch)> {
    if w.ended {
        return None;
    }
    if let Some(v) = w.first.take() {
        return Some((Ok(event(&v)), w));
    }
    // A change, or the interval: whichever first.
    let _ = tokio::time::timeout(WATCH_INTERVAL, w.revisions.changed()).await;
    match w.ctl.traffic_view(&w.name) {
        Ok(v) => Some((Ok(event(&v)), w)),
        // The domain was deleted: say so, then end the stream.
        Err(e) => {
            let body = serde_json::json!({ "error": e.to_string() });
            w.ended = true;
            Some((
                Ok(Bytes::from(format!("event: error\ndata: {body}\n\n"))),
                w,
            ))
        }
    }
}
