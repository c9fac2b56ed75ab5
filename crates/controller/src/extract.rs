//! Request extractors and the error answer: every refusal, including a body axum or
//! serde cannot read, is a 4xx with an [`ApiError`] naming the field at fault.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
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
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT)
            .await
            .map_err(|_| {
                ApiErr::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {LIMIT} bytes or could not be read"),
                )
            })?;
        decode(&bytes).map(ApiJson)
    }
}

/// Decodes JSON, naming the field at fault.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiErr> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiErr::bad(None, "the request needs a JSON body"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = useful_path(path);
        let what = if inner.is_syntax() || inner.is_eof() {
            "the request body is not valid JSON"
        } else {
            "the request body does not match the expected fields"
        };
        let mut msg = format!("{what}: {inner}");
        if let Some(f) = &field {
            msg = format!("{msg} (field `{f}`)");
        }
        ApiErr::bad(field, msg)
    })
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
            if !v.is_empty() {
                obj.insert(k, serde_json::Value::String(v));
            }
        }
        let value = serde_json::Value::Object(obj);
        serde_path_to_error::deserialize(value)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let field = useful_path(path);
                ApiErr::bad(field, format!("bad query parameter: {inner}"))
            })
    }
}

/// The path serde reports, unless it names no field (`.` for the root, `?` when unknown).
fn useful_path(path: String) -> Option<String> {
    (!path.is_empty() && path != "." && !path.contains('?')).then_some(path)
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
