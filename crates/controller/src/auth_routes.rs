//! The credential routes: join tokens, credentials, revocation and the join itself
//! (see `docs/api.md` and `docs/security.md`; who may call them is in [`crate::auth`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use mcgate_domain::api::ApiError;
use mcgate_domain::auth_api::*;
use mcgate_domain::validate::{self, ErrorKind};

use crate::auth::Caller;
use crate::auth::tokens::unix_now;
use crate::extract::{ApiErr, ApiJson, ApiPath};
use crate::openapi::{HostPath, TokenPath};
use crate::state::Controller;

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ApiErr>;

/// A join token lives an hour unless asked otherwise.
pub const DEFAULT_JOIN_TTL_S: u64 = 3_600;

fn store_err(e: String) -> ApiErr {
    ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; try again"))
}

/// Runs a change of the token store on the blocking pool: it may wait for the disk or
/// for etcd, and a runtime worker blocked on it could starve the very tasks it waits on.
async fn tokens_do<T: Send + 'static>(
    c: &std::sync::Arc<crate::state::Controller>,
    f: impl FnOnce(&crate::auth::tokens::Tokens) -> Result<T, String> + Send + 'static,
) -> Result<T, ApiErr> {
    let c = c.clone();
    match tokio::task::spawn_blocking(move || f(&c.tokens)).await {
        Ok(r) => r.map_err(store_err),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(store_err("the controller is shutting down".into())),
    }
}

#[utoipa::path(post, path = "/v1/tokens", tag = "credentials", request_body = JoinTokenSpec,
    responses((status = 201, description = "Issued; the secret is shown only here", body = IssuedToken)))]
pub(crate) async fn create_token(
    State(c): Ctl,
    ApiJson(spec): ApiJson<JoinTokenSpec>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    validate::host_name("host", &spec.host)?;
    let ttl = spec.ttl_s.unwrap_or(DEFAULT_JOIN_TTL_S);
    if !(1..=31_536_000).contains(&ttl) {
        return Err(ApiErr::bad(
            Some("ttl_s".into()),
            "ttl_s must be 1 to 31536000 seconds",
        ));
    }
    let t = tokens_do(&c, move |t| {
        t.issue(
            TokenKind::Join,
            Role::Agent,
            Some(spec.host),
            Some(ttl),
            unix_now(),
        )
    })
    .await?;
    tracing::info!(id = %t.id, host = ?t.host, ttl_s = ttl, "join token issued");
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(post, path = "/v1/credentials", tag = "credentials", request_body = CredentialSpec,
    responses((status = 201, description = "Issued; the secret is shown only here", body = IssuedToken)))]
pub(crate) async fn create_credential(
    State(c): Ctl,
    ApiJson(spec): ApiJson<CredentialSpec>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    if spec.role == Role::Agent {
        return Err(ApiErr::bad(
            Some("role".into()),
            "agent credentials come only from a join (mcgate token create --host NAME)",
        ));
    }
    if let Some(ttl) = spec.ttl_s
        && !(1..=315_360_000).contains(&ttl)
    {
        return Err(ApiErr::bad(
            Some("ttl_s".into()),
            "ttl_s must be 1 to 315360000 seconds",
        ));
    }
    let (role, ttl) = (spec.role, spec.ttl_s);
    let t = tokens_do(&c, move |t| {
        t.issue(TokenKind::Credential, role, None, ttl, unix_now())
    })
    .await?;
    tracing::info!(id = %t.id, role = spec.role.as_str(), "credential issued");
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "credentials",
    responses((status = 200, description = "Every join token and credential, without secrets", body = Vec<TokenInfo>)))]
pub(crate) async fn list_tokens(State(c): Ctl) -> Json<Vec<TokenInfo>> {
    Json(c.tokens.list(unix_now()))
}

/// Removes `host`'s agent and its members, if it has one.
async fn drop_agent(c: &Controller, host: &str) -> Result<(), ApiErr> {
    match c.deregister(host).await {
        Ok(()) => {
            tracing::info!(host = %host, "agent removed: its credential was revoked");
            Ok(())
        }
        Err(crate::state::OpError::Model(e)) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "credentials", params(TokenPath),
    responses((status = 204, description = "Revoked; for an agent credential, its host's agent and members are removed too"),
        (status = 404, description = "No such token", body = ApiError)))]
pub(crate) async fn revoke_token(State(c): Ctl, ApiPath(id): ApiPath) -> ApiResult<StatusCode> {
    let i = id.clone();
    match tokens_do(&c, move |t| t.revoke(&i)).await? {
        None => Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            format!("no token {id:?}; `mcgate token list` shows them"),
        )),
        Some(host) => {
            tracing::info!(id = %id, "token revoked");
            if let Some(h) = host {
                drop_agent(&c, &h).await?;
            }
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

#[utoipa::path(delete, path = "/v1/hosts/{host}/credentials", tag = "credentials", params(HostPath),
    responses((status = 204, description = "Every join token and credential of the host revoked, its agent and members removed"),
        (status = 404, description = "The host has no token, credential or agent", body = ApiError)))]
pub(crate) async fn revoke_host(State(c): Ctl, ApiPath(host): ApiPath) -> ApiResult<StatusCode> {
    let h = host.clone();
    let n = tokens_do(&c, move |t| t.revoke_host(&h)).await?;
    let had_agent = c.read(|m, _| m.agent(&host).is_some());
    if n == 0 && !had_agent {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            format!("host {host:?} has no token, credential or agent"),
        ));
    }
    drop_agent(&c, &host).await?;
    tracing::info!(host = %host, revoked = n, "host revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/join", tag = "credentials",
    responses((status = 200, description = "The join token is spent; this agent credential replaces the host's earlier ones", body = IssuedToken),
        (status = 409, description = "The host has a live agent: a second agent cannot take its name", body = ApiError)))]
pub(crate) async fn join(
    State(c): Ctl,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<IssuedToken>> {
    let Caller::Join { id, host } = caller else {
        return Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            "POST /v1/join takes a join token",
        ));
    };
    let live = c.read(|m, _| m.agent(&host).is_some_and(|a| !a.expired));
    if live {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            format!(
                "host {host} has a live agent; a second agent cannot take its name (revoke it first: mcgate token revoke --host {host})"
            ),
        ));
    }
    let i = id.clone();
    match tokens_do(&c, move |t| t.join(&i, unix_now())).await? {
        Some(t) => {
            tracing::info!(host = %host, id = %t.id, "agent joined");
            Ok(Json(t))
        }
        None => Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "the join token is spent, expired or revoked",
        )),
    }
}
