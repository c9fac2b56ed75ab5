//! The HTTP routes under `/v1` (see `docs/api.md`): thin handlers that decode, call the
//! model through [`Controller`], and encode.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use mcgate_domain::api::*;
use mcgate_domain::groups::check_query;
use mcgate_domain::validate::ModelError;
use tokio::sync::mpsc;

use crate::extract::{ApiErr, ApiJson, ApiPath, ApiQuery, REPORT_BODY_LIMIT};
use crate::hub::encode;
use crate::state::Controller;

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ApiErr>;

/// The `/v1` router. Authentication, when it comes, is one layer around this router.
pub fn router(ctl: Arc<Controller>) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/domains", post(create_domain).get(list_domains))
        .route("/v1/domains/{name}", get(show_domain).delete(delete_domain))
        .route(
            "/v1/domains/{name}/associations",
            post(associate).delete(disassociate),
        )
        .route(
            "/v1/domains/{name}/members",
            post(add_member).delete(remove_member),
        )
        .route(
            "/v1/domains/{name}/sources",
            post(add_source).delete(remove_source),
        )
        .route("/v1/groups", get(groups))
        .route("/v1/agents", post(register).get(agents))
        .route("/v1/agents/{host}", axum::routing::delete(deregister))
        .route("/v1/agents/{host}/heartbeat", post(heartbeat))
        .route("/v1/agents/{host}/membership", post(membership))
        .route("/v1/agents/{host}/stream", get(stream))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctl)
}

async fn not_found() -> ApiErr {
    ApiErr::new(
        StatusCode::NOT_FOUND,
        "no such route; GET /v1/openapi.json lists the routes",
    )
}

async fn method_not_allowed() -> ApiErr {
    ApiErr::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method; GET /v1/openapi.json lists the routes",
    )
}

async fn healthz(State(c): Ctl) -> Json<Health> {
    let revision = c.published();
    let (streams, stream_overflows) = c.stream_stats();
    Json(c.read(|m, _| Health {
        status: "ok".into(),
        revision,
        domains: m.domains().len(),
        agents_up: m.live_agents(),
        streams,
        stream_overflows,
    }))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

// ---- domains -----------------------------------------------------------------------

async fn create_domain(
    State(c): Ctl,
    ApiJson(spec): ApiJson<DomainSpec>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let name = spec.name.clone();
    let d = c.admin(&name, |m| Ok((m.create_domain(spec)?, Vec::new())))?;
    tracing::info!(domain = %d.name, vni = d.vni, "domain created");
    Ok((StatusCode::CREATED, Json(d)))
}

async fn list_domains(State(c): Ctl) -> Json<Vec<Domain>> {
    Json(c.read(|m, _| m.domains()))
}

async fn show_domain(State(c): Ctl, ApiPath(name): ApiPath) -> ApiResult<Json<Domain>> {
    Ok(Json(
        c.read(|m, _| m.domain(&name).map(|r| r.domain.clone()))?,
    ))
}

async fn delete_domain(State(c): Ctl, ApiPath(name): ApiPath) -> ApiResult<StatusCode> {
    c.admin(&name, |m| Ok(((), m.delete_domain(&name)?)))?;
    tracing::info!(domain = %name, "domain deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn associate(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<AssociationSpec>,
) -> ApiResult<Json<Domain>> {
    let d = c.admin(&name, |m| {
        let fx = m.associate(&name, &spec)?;
        Ok((m.domain(&name)?.domain.clone(), fx))
    })?;
    Ok(Json(d))
}

async fn disassociate(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<AssociationSpec>,
) -> ApiResult<Json<Domain>> {
    let d = c.admin(&name, |m| {
        let fx = m.disassociate(&name, &spec)?;
        Ok((m.domain(&name)?.domain.clone(), fx))
    })?;
    Ok(Json(d))
}

async fn add_member(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticMemberSpec>,
) -> ApiResult<(StatusCode, Json<StaticMemberSpec>)> {
    let out = spec.clone();
    c.admin(&name, |m| Ok(((), m.add_static_member(&name, spec)?)))?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn remove_member(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticMemberSpec>,
) -> ApiResult<StatusCode> {
    c.admin(&name, |m| Ok(((), m.remove_static_member(&name, &spec)?)))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_source(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticSourceSpec>,
) -> ApiResult<(StatusCode, Json<StaticSourceSpec>)> {
    let out = spec.clone();
    c.admin(&name, |m| Ok(((), m.add_static_source(&name, spec)?)))?;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn remove_source(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticSourceSpec>,
) -> ApiResult<StatusCode> {
    c.admin(&name, |m| Ok(((), m.remove_static_source(&name, &spec)?)))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn groups(
    State(c): Ctl,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> ApiResult<Json<Vec<GroupEntry>>> {
    check_query(&q)?;
    if let Some(d) = &q.domain {
        c.read(|m, _| m.domain(d).map(|_| ()))?;
    }
    Ok(Json(c.read(|m, _| m.groups(&q))))
}

// ---- agents ------------------------------------------------------------------------

async fn register(
    State(c): Ctl,
    ApiJson(reg): ApiJson<AgentRegistration>,
) -> ApiResult<Json<RegistrationReply>> {
    let (lease, hb) = (c.config.lease_ms, c.config.heartbeat_ms);
    let host = reg.host.clone();
    let reply = c.apply(|m, now| m.register(reg, now, lease, hb))?;
    tracing::info!(host = %host, session = reply.session, domains = ?reply.domains, "agent registered");
    Ok(Json(reply))
}

async fn agents(State(c): Ctl) -> Json<Vec<AgentInfo>> {
    Json(c.read(|m, now| m.agent_infos(now)))
}

async fn deregister(State(c): Ctl, ApiPath(host): ApiPath) -> ApiResult<StatusCode> {
    c.apply(|m, _| Ok(((), m.deregister(&host)?)))?;
    tracing::info!(host = %host, "agent deregistered");
    Ok(StatusCode::NO_CONTENT)
}

async fn heartbeat(
    State(c): Ctl,
    ApiPath(host): ApiPath,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<StatusCode> {
    c.apply(|m, now| Ok((m.heartbeat(&host, &hb, now)?, Vec::new())))?;
    Ok(StatusCode::OK)
}

async fn membership(
    State(c): Ctl,
    ApiPath(host): ApiPath,
    ApiJson(report): ApiJson<MembershipReport, REPORT_BODY_LIMIT>,
) -> ApiResult<Json<MembershipAck>> {
    Ok(Json(c.apply(|m, now| m.report(&host, report, now))?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    #[serde(default)]
    since: Option<String>,
}

async fn stream(
    State(c): Ctl,
    ApiPath(host): ApiPath,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Response> {
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Revision>().map_err(|_| {
            ApiErr::from(ModelError::invalid(
                "since",
                format!("since={s:?} is not a revision number"),
            ))
        })?),
    };
    let sub = c.subscribe(&host, since)?;
    tracing::debug!(host = %host, ?since, resumed = sub.resumed, "stream opened");
    let keepalive = Duration::from_millis(c.config.keepalive_ms);
    let state = StreamState {
        first: sub.first.into(),
        rx: sub.rx,
        ctl: c.clone(),
        keepalive,
    };
    let body = futures_util::stream::unfold(state, next_line);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

struct StreamState {
    first: VecDeque<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    ctl: Arc<Controller>,
    keepalive: Duration,
}

async fn next_line(mut s: StreamState) -> Option<(Result<Bytes, Infallible>, StreamState)> {
    if let Some(line) = s.first.pop_front() {
        return Some((Ok(line), s));
    }
    match tokio::time::timeout(s.keepalive, s.rx.recv()).await {
        Ok(Some(line)) => Some((Ok(line), s)),
        Ok(None) => None, // closed: shutdown, replaced, lagging or expired
        Err(_) => {
            // Read the revision before looking at the queue: every line up to it is
            // already queued, so an empty queue means this agent has seen all of it.
            let revision = s.ctl.published();
            match s.rx.try_recv() {
                Ok(line) => Some((Ok(line), s)),
                Err(mpsc::error::TryRecvError::Empty) => {
                    let line = encode(&StreamMessage::Keepalive { revision });
                    Some((Ok(line), s))
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        }
    }
}
