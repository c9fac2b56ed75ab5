//! Request extractors and the error answer: every refusal, including a body axum or
//! serde cannot read, is a 4xx with an [`ApiError`] naming the field at fault.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcgate_domain::api::ApiError;
use mcgate_domain::validate::{ErrorKind, ModelError};
use serde::de::DeserializeOwned;

use crate::state::OpError;

/// Largest admin request body.
pub const ADMIN_BODY_LIMIT: usize = 1 << 20;
/// Largest membership report (a snapshot of a busy host can be big).
pub const REPORT_BODY_LIMIT: usize = 16 << 20;

/// An error answer.
#[derive(Debug)]
pub struct ApiErr {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ApiError,
}

impl ApiErr {
    /// A 400 naming `field`.
    pub fn bad(field: Option<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ApiError {
                error: error.into(),
                field,
            },
        }
    }

    /// Any status.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ApiError {
                error: error.into(),
                field: None,
            },
        }
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<ModelError> for ApiErr {
    fn from(e: ModelError) -> Self {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::Stale => StatusCode::CONFLICT,
        };
        Self {
            status,
            body: ApiError {
                error: e.message,
                field: e.field,
            },
        }
    }
}

impl From<OpError> for ApiErr {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Model(m) => m.into(),
            OpError::Store(s) => ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{s}; nothing was changed, try again"),
            ),
            OpError::Unavailable(text) => ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, text),
            OpError::ShuttingDown => ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller is shutting down; try again when it is back",
            ),
        }
    }
}

/// A JSON body of at most `LIMIT` bytes, decoded with the path of the field at fault.
#[derive(Debug)]
pub struct ApiJson<T, const LIMIT: usize = ADMIN_BODY_LIMIT>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiErr;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_media_type(req.headers())?;
        // Refuse an announced oversized body before reading a byte of it.
        if let Some(len) = content_length(req.headers())
            && len > LIMIT as u64
        {
            return Err(too_large(LIMIT));
        }
        let read = axum::body::to_bytes(req.into_body(), LIMIT);
        let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(too_large(LIMIT)),
            Err(_) => {
                return Err(ApiErr::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        BODY_READ_TIMEOUT.as_secs()
                    ),
                ));
            }
        };
        decode(&bytes).map(ApiJson)
    }
}

/// The time a client has to send a whole request body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn too_large(limit: usize) -> ApiErr {
    ApiErr::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {limit} bytes or could not be read"),
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Bodies must be `application/json` (parameters such as `charset=utf-8` allowed): a
/// browser's cross-site form post (`application/x-www-form-urlencoded`, `text/plain`,
/// `multipart/form-data`) is refused before anything is read, so it can change nothing.
pub fn check_media_type(headers: &HeaderMap) -> Result<(), ApiErr> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = given
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if essence.as_deref() == Some("application/json") {
        return Ok(());
    }
    Err(ApiErr::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        match given {
            Some(t) => format!(
                "the request body is {t:?}; send JSON with `content-type: application/json`"
            ),
            None => {
                "the request has no content-type; send JSON with `content-type: application/json`"
                    .to_string()
            }
        },
    ))
}

/// Decodes JSON, naming the field at fault (see `mcgate_domain::decode`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiErr> {
    mcgate_domain::decode::decode(bytes).map_err(ApiErr::from)
}

/// A query string decoded into `T` (through JSON, so errors name the parameter).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(map) =
            axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiErr::bad(None, format!("the query string cannot be read: {e}")))?;
        let mut obj = serde_json::Map::new();
        for (k, v) in map {
            // `?source=` is a mistake (an unset shell variable, a form left blank), not
            // "no filter": leaving a filter out is how to ask for no filter.
            if v.is_empty() {
                return Err(ApiErr::bad(
                    Some(k.clone()),
                    format!("query parameter `{k}` is empty: give a value or leave it out"),
                ));
            }
            obj.insert(k, serde_json::Value::String(v));
        }
        let value = serde_json::Value::Object(obj);
        serde_path_to_error::deserialize(value)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let field = mcgate_domain::decode::useful_path(path);
                ApiErr::bad(field, format!("bad query parameter: {inner}"))
            })
    }
}

/// A path parameter; a segment that is not valid percent-encoded UTF-8 is a 400
/// [`ApiError`] like every other refusal.
#[derive(Debug)]
pub struct ApiPath(pub String);

impl<S> FromRequestParts<S> for ApiPath
where
    S: Send + Sync,
{
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| ApiPath(p))
            .map_err(|e| ApiErr::bad(None, format!("the path cannot be read: {e}")))
    }
}
