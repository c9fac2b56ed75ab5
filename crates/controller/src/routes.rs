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
use mcgate_domain::model::{Effect, Model};
use mcgate_domain::validate::ModelError;
use tokio::sync::mpsc;

use crate::extract::{ApiErr, ApiJson, ApiPath, ApiQuery, REPORT_BODY_LIMIT};
use crate::hub::encode;
use crate::openapi::{Conflict, DomainPath, HostPath};
use crate::state::Controller;

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ApiErr>;

/// The `/v1` router, with authentication ([`crate::auth::authorize`]) as one layer
/// around it.
pub fn router(ctl: Arc<Controller>) -> Router {
    use crate::auth_routes as a;
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
        .route("/v1/domains/{name}/traffic", get(crate::traffic::traffic))
        .route("/v1/groups", get(groups))
        .route("/v1/agents", post(register).get(agents))
        .route("/v1/agents/{host}", axum::routing::delete(deregister))
        .route("/v1/agents/{host}/heartbeat", post(heartbeat))
        .route("/v1/agents/{host}/membership", post(membership))
        .route("/v1/agents/{host}/stream", get(stream))
        .route(
            "/v1/agents/{host}/traffic",
            post(crate::traffic::report_traffic),
        )
        .route("/v1/tokens", post(a::create_token).get(a::list_tokens))
        .route("/v1/tokens/{id}", axum::routing::delete(a::revoke_token))
        .route("/v1/credentials", post(a::create_credential))
        .route(
            "/v1/hosts/{host}/credentials",
            axum::routing::delete(a::revoke_host),
        )
        .route("/v1/join", post(a::join))
        .route("/metrics", get(metrics))
        .route("/ui", get(crate::ui::root))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/{*path}", get(crate::ui::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            ctl.clone(),
            crate::auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(ctl.clone(), count))
        .with_state(ctl)
}

/// Counts every answer by method, route template and status.
async fn count(
    State(c): Ctl,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    c.metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus metrics: the text format 0.0.4, or OpenMetrics when `Accept` asks for it",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(c): Ctl, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let om = crate::metrics::wants_openmetrics(accept);
    let body = c.render_metrics(om);
    let ct = if om {
        crate::metrics::OPENMETRICS_TYPE
    } else {
        crate::metrics::TEXT_004_TYPE
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
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

#[utoipa::path(get, path = "/v1/healthz", tag = "status",
    responses((status = 200, description = "Healthy", body = Health)))]
pub(crate) async fn healthz(State(c): Ctl) -> Json<Health> {
    let revision = c.published();
    let (streams, stream_overflows) = c.stream_stats();
    let mut h = c.read(|m, _| Health {
        status: "ok".into(),
        revision,
        domains: m.domains().len(),
        agents_up: m.live_agents(),
        streams,
        stream_overflows,
        store: Some("embedded".into()),
        role: Some("standalone".into()),
        replica: None,
        leader: None,
        writable: Some(true),
        applied_revision: None,
        watch_lag_ms: None,
        etcd_members: None,
    });
    if let Some(rep) = c.etcd() {
        let seen = rep.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let writable = rep.writable();
        h.store = Some("etcd".into());
        h.role = Some(if seen.leading { "leader" } else { "follower" }.into());
        h.replica = Some(rep.opts.replica.clone());
        h.leader = seen.leader;
        h.writable = Some(writable);
        h.applied_revision = u64::try_from(rep.applied()).ok();
        h.watch_lag_ms = seen
            .watch_ok
            .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
        h.etcd_members = Some(seen.members);
        if !writable {
            h.status = "degraded".into();
        }
    }
    Json(h)
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "status",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

// ---- domains -----------------------------------------------------------------------

#[utoipa::path(post, path = "/v1/domains", tag = "domains", request_body = DomainSpec,
    responses((status = 201, description = "Created", body = Domain), Conflict))]
pub(crate) async fn create_domain(
    State(c): Ctl,
    ApiJson(spec): ApiJson<DomainSpec>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let name = spec.name.clone();
    let d = c
        .admin_blocking(&name, move |m| {
            Ok((m.create_domain(spec.clone())?, Vec::new()))
        })
        .await?;
    tracing::info!(domain = %d.name, vni = d.vni, "domain created");
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(get, path = "/v1/domains", tag = "domains",
    responses((status = 200, description = "Every domain", body = Vec<Domain>)))]
pub(crate) async fn list_domains(State(c): Ctl) -> Json<Vec<Domain>> {
    Json(c.read(|m, _| m.domains()))
}

#[utoipa::path(get, path = "/v1/domains/{name}", tag = "domains", params(DomainPath),
    responses((status = 200, description = "The domain", body = Domain)))]
pub(crate) async fn show_domain(State(c): Ctl, ApiPath(name): ApiPath) -> ApiResult<Json<Domain>> {
    Ok(Json(
        c.read(|m, _| m.domain(&name).map(|r| r.domain.clone()))?,
    ))
}

#[utoipa::path(delete, path = "/v1/domains/{name}", tag = "domains", params(DomainPath),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_domain(State(c): Ctl, ApiPath(name): ApiPath) -> ApiResult<StatusCode> {
    let n = name.clone();
    c.admin_blocking(&name, move |m| Ok(((), m.delete_domain(&n)?)))
        .await?;
    tracing::info!(domain = %name, "domain deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/domains/{name}/associations", tag = "domains", params(DomainPath),
    request_body(content = AssociationSpec, description = "Exactly one of `subnet` and `host`"),
    responses((status = 200, description = "The domain after", body = Domain), Conflict))]
pub(crate) async fn associate(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<AssociationSpec>,
) -> ApiResult<Json<Domain>> {
    change_associations(c, name, spec, Model::associate).await
}

#[utoipa::path(delete, path = "/v1/domains/{name}/associations", tag = "domains", params(DomainPath),
    request_body(content = AssociationSpec, description = "Exactly one of `subnet` and `host`"),
    responses((status = 200, description = "The domain after", body = Domain)))]
pub(crate) async fn disassociate(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<AssociationSpec>,
) -> ApiResult<Json<Domain>> {
    change_associations(c, name, spec, Model::disassociate).await
}

#[utoipa::path(post, path = "/v1/domains/{name}/members", tag = "domains", params(DomainPath),
    request_body = StaticMemberSpec,
    responses((status = 201, description = "Registered", body = StaticMemberSpec), Conflict))]
pub(crate) async fn add_member(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticMemberSpec>,
) -> ApiResult<(StatusCode, Json<StaticMemberSpec>)> {
    add_static(c, name, spec, Model::add_static_member).await
}

#[utoipa::path(delete, path = "/v1/domains/{name}/members", tag = "domains", params(DomainPath),
    request_body(content = StaticMemberSpec, description = "Matched on group, host and interface"),
    responses((status = 204, description = "Deregistered")))]
pub(crate) async fn remove_member(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticMemberSpec>,
) -> ApiResult<StatusCode> {
    remove_static(c, name, spec, Model::remove_static_member).await
}

#[utoipa::path(post, path = "/v1/domains/{name}/sources", tag = "domains", params(DomainPath),
    request_body = StaticSourceSpec,
    responses((status = 201, description = "Registered", body = StaticSourceSpec), Conflict))]
pub(crate) async fn add_source(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticSourceSpec>,
) -> ApiResult<(StatusCode, Json<StaticSourceSpec>)> {
    add_static(c, name, spec, Model::add_static_source).await
}

#[utoipa::path(delete, path = "/v1/domains/{name}/sources", tag = "domains", params(DomainPath),
    request_body(content = StaticSourceSpec, description = "Matched on group and address"),
    responses((status = 204, description = "Deregistered")))]
pub(crate) async fn remove_source(
    State(c): Ctl,
    ApiPath(name): ApiPath,
    ApiJson(spec): ApiJson<StaticSourceSpec>,
) -> ApiResult<StatusCode> {
    remove_static(c, name, spec, Model::remove_static_source).await
}

#[utoipa::path(get, path = "/v1/groups", tag = "domains", params(GroupQuery),
    responses((status = 200, description = "Matching rows", body = Vec<GroupEntry>), (status = 404, description = "Unknown domain, agent, member or source", body = ApiError)))]
pub(crate) async fn groups(
    State(c): Ctl,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> ApiResult<Json<Vec<GroupEntry>>> {
    check_query(&q)?;
    if let Some(d) = &q.domain {
        c.read(|m, _| m.domain(d).map(|_| ()))?;
    }
    Ok(Json(c.group_rows(&q)))
}

/// Associates or disassociates; answers the domain after.
async fn change_associations(
    c: Arc<Controller>,
    name: String,
    spec: AssociationSpec,
    op: for<'a> fn(&mut Model, &str, &'a AssociationSpec) -> Result<Vec<Effect>, ModelError>,
) -> ApiResult<Json<Domain>> {
    let n = name.clone();
    let d = c
        .admin_blocking(&name, move |m| {
            let fx = op(m, &n, &spec)?;
            Ok((m.domain(&n)?.domain.clone(), fx))
        })
        .await?;
    Ok(Json(d))
}

/// Registers a static member or source; answers 201 with the spec as given.
async fn add_static<S: Clone + Send + Sync + 'static>(
    c: Arc<Controller>,
    name: String,
    spec: S,
    add: fn(&mut Model, &str, S) -> Result<Vec<Effect>, ModelError>,
) -> ApiResult<(StatusCode, Json<S>)> {
    let out = spec.clone();
    let n = name.clone();
    c.admin_blocking(&name, move |m| Ok(((), add(m, &n, spec.clone())?)))
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Deregisters a static member or source; answers 204.
async fn remove_static<S: Send + Sync + 'static>(
    c: Arc<Controller>,
    name: String,
    spec: S,
    remove: for<'a> fn(&mut Model, &str, &'a S) -> Result<Vec<Effect>, ModelError>,
) -> ApiResult<StatusCode> {
    let n = name.clone();
    c.admin_blocking(&name, move |m| Ok(((), remove(m, &n, &spec)?)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- agents ------------------------------------------------------------------------

#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentRegistration,
    responses((status = 200, description = "Registered (a new session each time)", body = RegistrationReply)))]
pub(crate) async fn register(
    State(c): Ctl,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    ApiJson(reg): ApiJson<AgentRegistration>,
) -> ApiResult<Json<RegistrationReply>> {
    crate::auth::check_host(&caller, &reg.host)?;
    let host = reg.host.clone();
    let reply = c.register(reg).await?;
    tracing::info!(host = %host, session = reply.session, domains = ?reply.domains, "agent registered");
    Ok(Json(reply))
}

#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses((status = 200, description = "Every agent", body = Vec<AgentInfo>)))]
pub(crate) async fn agents(State(c): Ctl) -> Json<Vec<AgentInfo>> {
    Json(c.read(|m, now| m.agent_infos(now)))
}

#[utoipa::path(delete, path = "/v1/agents/{host}", tag = "agents", params(HostPath),
    responses((status = 204, description = "Deregistered")))]
pub(crate) async fn deregister(State(c): Ctl, ApiPath(host): ApiPath) -> ApiResult<StatusCode> {
    c.deregister(&host).await?;
    tracing::info!(host = %host, "agent deregistered");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/agents/{host}/heartbeat", tag = "agents", params(HostPath),
    request_body = Heartbeat,
    responses((status = 200, description = "The lease is renewed"), Conflict))]
pub(crate) async fn heartbeat(
    State(c): Ctl,
    ApiPath(host): ApiPath,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<StatusCode> {
    c.heartbeat(&host, &hb).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(post, path = "/v1/agents/{host}/membership", tag = "agents", params(HostPath),
    request_body = MembershipReport,
    responses((status = 200, description = "Applied (or applied before)", body = MembershipAck), Conflict))]
pub(crate) async fn membership(
    State(c): Ctl,
    ApiPath(host): ApiPath,
    ApiJson(report): ApiJson<MembershipReport, REPORT_BODY_LIMIT>,
) -> ApiResult<Json<MembershipAck>> {
    Ok(Json(c.report(&host, report).await?))
}

/// Query of `GET /v1/agents/{host}/stream`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this revision (the last one the agent applied).
    #[serde(default)]
    #[param(schema_with = mcgate_domain::schema::u64_schema)]
    since: Option<String>,
}

#[utoipa::path(get, path = "/v1/agents/{host}/stream", tag = "agents", params(HostPath, StreamQuery),
    responses((status = 200, description = "One StreamMessage per line: a snapshot or the missed deltas, then deltas and keepalives",
        content_type = "application/x-ndjson", body = StreamMessage), Conflict))]
pub(crate) async fn stream(
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
