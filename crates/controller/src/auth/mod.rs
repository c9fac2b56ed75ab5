//! Who may do what (see `docs/security.md`).
//!
//! Every request is authenticated by one layer around the router ([`authorize`]):
//! over TCP (TLS) by its `Authorization: Bearer` secret ([`tokens`]), over the Unix
//! socket (root-only by its file mode) as admin. Then the route decides:
//!
//! | route | who |
//! |---|---|
//! | `GET /v1/healthz`, `GET /v1/openapi.json` | anyone |
//! | `GET /ui` and below (the web view's files; its data comes from the API) | anyone |
//! | `POST /v1/join` | a join token |
//! | other reads (`GET`) | admin, viewer |
//! | `POST /v1/agents` | admin, the agent of the host in the body |
//! | `/v1/agents/{host}` and below | admin, the agent of `{host}` |
//! | everything else | admin |
//!
//! No credential, or one unknown, expired or revoked: 401. A credential of the wrong role
//! or host: 403. Both with an `ApiError` body.

pub mod pki;
pub mod tokens;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcgate_domain::auth_api::Role;

use crate::extract::ApiErr;
use crate::state::Controller;
pub use tokens::Caller;

/// Which listener a request came in on (set by the accept loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// TLS on TCP: a bearer secret is needed.
    Tcp,
    /// The Unix socket: root-only, so admin.
    Unix,
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Public,
    Join,
    Read,
    AnyAgent,
    OwnHost,
    Admin,
    /// An unknown route: any credential (then 404).
    Anyone,
}

fn need(method: &Method, route: Option<&str>) -> Need {
    let Some(route) = route else {
        return Need::Anyone;
    };
    match (method, route) {
        (&Method::GET, r) if PUBLIC_ROUTES.contains(&r) => Need::Public,
        (&Method::GET | &Method::HEAD, r) if UI_ROUTES.contains(&r) => Need::Public,
        (&Method::POST, "/v1/join") => Need::Join,
        (&Method::POST, "/v1/agents") => Need::AnyAgent,
        (_, r) if r.starts_with("/v1/agents/{host}") => Need::OwnHost,
        (&Method::GET, "/v1/tokens") => Need::Admin,
        (&Method::GET, _) => Need::Read,
        _ => Need::Admin,
    }
}

/// The routes anyone may call (no `security` in the OpenAPI document).
pub const PUBLIC_ROUTES: [&str; 2] = ["/v1/healthz", "/v1/openapi.json"];

/// The web view's files, public too (they hold no data; see [`crate::ui`]).
pub const UI_ROUTES: [&str; 3] = ["/ui", "/ui/", "/ui/{*path}"];

fn unauthorized(text: &str) -> Response {
    let mut r = ApiErr::new(StatusCode::UNAUTHORIZED, text).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn forbidden(text: String) -> Response {
    ApiErr::new(StatusCode::FORBIDDEN, text).into_response()
}

/// The `{host}` of an agent route, as sent (host names hold no `%` or `/`, so a
/// segment that needs decoding is no agent's name).
fn path_host(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/agents/")?.split('/').next()
}

/// The layer: authenticates, checks the route's need, and hands the [`Caller`] to the
/// handler as a request extension.
pub async fn authorize(State(c): State<Arc<Controller>>, mut req: Request, next: Next) -> Response {
    let origin = req
        .extensions()
        .get::<Origin>()
        .copied()
        .unwrap_or(Origin::Tcp);
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let need = need(req.method(), route);
    let caller = if origin == Origin::Unix {
        Caller::unix_admin()
    } else {
        match req.headers().get(header::AUTHORIZATION) {
            None => Caller::Anonymous,
            Some(v) => {
                let secret = v
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim);
                match secret.and_then(|s| c.tokens.authenticate(s, tokens::unix_now())) {
                    Some(caller) => caller,
                    None if need == Need::Public => Caller::Anonymous,
                    None => {
                        return unauthorized(
                            "the credential is unknown, expired or revoked (send `Authorization: Bearer TOKEN`)",
                        );
                    }
                }
            }
        }
    };
    let refusal = match (&caller, need) {
        (_, Need::Public) => None,
        (Caller::Anonymous, _) => {
            return unauthorized(
                "this route needs a credential: send `Authorization: Bearer TOKEN` (see docs/security.md)",
            );
        }
        (Caller::Join { .. }, Need::Join) => None,
        (Caller::Join { .. }, _) => Some("a join token only serves POST /v1/join".to_string()),
        (Caller::Credential { .. }, Need::Join) => {
            Some("POST /v1/join takes a join token, not a credential".to_string())
        }
        (Caller::Credential { role, host, .. }, need) => {
            check(*role, host.as_deref(), need, req.uri().path())
        }
    };
    if let Some(text) = refusal {
        return forbidden(text);
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn check(role: Role, host: Option<&str>, need: Need, path: &str) -> Option<String> {
    match (role, need) {
        (Role::Admin, _) | (_, Need::Anyone) => None,
        (Role::Viewer, Need::Read) => None,
        (Role::Agent, Need::AnyAgent) => None,
        (Role::Agent, Need::OwnHost) if path_host(path) == host => None,
        (Role::Agent, Need::OwnHost) => Some(format!(
            "this agent credential is bound to host {}; it cannot act for another host",
            host.unwrap_or("?")
        )),
        (role, _) => Some(format!(
            "a {} credential may not do this (needs {})",
            role.as_str(),
            match need {
                Need::Read => "admin or viewer",
                Need::AnyAgent | Need::OwnHost => "admin or the host's agent",
                _ => "admin",
            }
        )),
    }
}

/// Refuses an agent credential acting for a host other than its own (403); admin passes.
pub fn check_host(caller: &Caller, host: &str) -> Result<(), ApiErr> {
    match caller {
        Caller::Credential {
            role: Role::Agent,
            host: Some(own),
            ..
        } if own != host => Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            format!("this agent credential is bound to host {own}; it cannot register as {host}"),
        )),
        Caller::Credential {
            role: Role::Admin | Role::Agent,
            ..
        } => Ok(()),
        _ => Err(ApiErr::new(
            StatusCode::FORBIDDEN,
            "only admin or the host's agent may do this",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_what_the_table_says() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(need(&g, Some("/v1/healthz")), Need::Public);
        assert_eq!(need(&p, Some("/v1/join")), Need::Join);
        assert_eq!(need(&g, Some("/ui/{*path}")), Need::Public);
        assert_eq!(need(&p, Some("/ui/{*path}")), Need::Admin);
        assert_eq!(need(&Method::HEAD, Some("/ui/")), Need::Public);
        assert_eq!(need(&g, Some("/v1/domains")), Need::Read);
        assert_eq!(need(&p, Some("/v1/domains")), Need::Admin);
        assert_eq!(need(&g, Some("/v1/tokens")), Need::Admin);
        assert_eq!(need(&p, Some("/v1/agents")), Need::AnyAgent);
        assert_eq!(need(&g, Some("/v1/agents/{host}/stream")), Need::OwnHost);
        assert_eq!(need(&g, None), Need::Anyone);
        assert_eq!(path_host("/v1/agents/h1/heartbeat"), Some("h1"));
        assert_eq!(
            check(
                Role::Agent,
                Some("h1"),
                Need::OwnHost,
                "/v1/agents/h1/stream"
            ),
            None
        );
        assert!(
            check(
                Role::Agent,
                Some("h1"),
                Need::OwnHost,
                "/v1/agents/h2/stream"
            )
            .is_some()
        );
        assert!(check(Role::Viewer, None, Need::Admin, "/v1/domains").is_some());
        assert!(check(Role::Agent, Some("h1"), Need::Read, "/v1/domains").is_some());
    }
}
