//! The JSON messages of the controller's credential routes (`/v1/tokens`,
//! `/v1/credentials`, `/v1/join`; see `docs/api.md` and `docs/security.md`).
//!
//! A secret (`token`) appears only in the answer that issues it: the controller keeps
//! its SHA-256 digest, never the secret, so a listing can never show one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Only its own host: register, heartbeat, report membership, read its stream.
    Agent,
    /// Reads only.
    Viewer,
}

impl Role {
    /// The role's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }
}

/// What a secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A join token: good for one `POST /v1/join` of its host, until it expires.
    Join,
    /// A credential: sent as `Authorization: Bearer` on every request.
    Credential,
}

/// Body of `POST /v1/tokens`: a join token for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenSpec {
    /// The host the token may join as.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// Seconds the token stays valid (1 to 31536000); 3600 when left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub ttl_s: Option<u64>,
}

/// Body of `POST /v1/credentials`: a credential for a person or a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// `admin` or `viewer` (agent credentials come only from `POST /v1/join`).
    #[schema(schema_with = credential_role)]
    pub role: Role,
    /// Seconds the credential stays valid (1 to 315360000); no expiry when left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub ttl_s: Option<u64>,
}

/// The roles `POST /v1/credentials` issues.
fn credential_role() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["admin", "viewer"]))
        .into()
}

/// A secret just issued: the only time the controller shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// Public identifier, for `token list` and `token revoke`.
    pub id: String,
    /// The secret.
    pub token: String,
    /// Join token or credential.
    pub kind: TokenKind,
    /// What it may do (`agent` for join tokens).
    pub role: Role,
    /// The host it is bound to, for join tokens and agent credentials.
    #[schema(schema_with = schema::host_name_or_null)]
    pub host: Option<String>,
    /// When it stops being accepted, in seconds since the Unix epoch; null: never.
    #[schema(schema_with = schema::u64_or_null)]
    pub expires_unix: Option<u64>,
}

/// One line of `GET /v1/tokens`: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Public identifier.
    pub id: String,
    /// Join token or credential.
    pub kind: TokenKind,
    /// What it may do.
    pub role: Role,
    /// The host it is bound to, if any.
    #[schema(schema_with = schema::host_name_or_null)]
    pub host: Option<String>,
    /// When it was issued, in seconds since the Unix epoch.
    #[schema(schema_with = schema::u64_schema)]
    pub created_unix: u64,
    /// When it stops being accepted, in seconds since the Unix epoch; null: never.
    #[schema(schema_with = schema::u64_or_null)]
    pub expires_unix: Option<u64>,
    /// `valid` or `expired`.
    pub state: String,
}

/// The public id of a bearer secret `mcg_<id>_<secret>` (`id`: 12 hex digits), or
/// `None` when the text has not that shape. The text is untrusted (an `Authorization`
/// header).
pub fn token_id(secret: &str) -> Option<&str> {
    let (id, rest) = secret.strip_prefix("mcg_")?.split_once('_')?;
    let ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty();
    ok.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_secrets_have_an_id() {
        assert_eq!(token_id("mcg_0123456789ab_ff"), Some("0123456789ab"));
        for bad in [
            "",
            "mcg_",
            "mcg_0123456789ab_",
            "mcg_0123456789a_ff",
            "xx_0123456789ab_ff",
            "mcg_01234567890g_ff",
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
    }
}
