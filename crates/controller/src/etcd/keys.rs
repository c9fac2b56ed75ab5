//! Where each object lives under the store's prefix (default `/mcgate/v1/`), and the
//! values that are not the model's own types. Values are JSON.
//!
//! | key | value | bound to an etcd lease |
//! |---|---|---|
//! | `meta/epoch` | replica starts so far (stream revisions) | no |
//! | `meta/config` | empty; rewritten by every admin change (orders them) | no |
//! | `domains/<name>` | `DomainRecord` | no |
//! | `agents/<host>` | `StoredAgent` | no |
//! | `live/<host>` | [`Live`]: the agent's session and lease | the agent's |
//! | `tunnels/<address>` | the host holding that tunnel address | no |
//! | `auth/ca` | [`StoredCa`] | no |
//! | `auth/tokens` | the token store's entries | no |
//! | `election/…` | the leader election (etcd's election API) | each replica's |

use serde::{Deserialize, Serialize};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/mcgate/v1/";

/// A key, relative to the prefix, sorted by what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `meta/epoch`.
    Epoch,
    /// `meta/config`.
    Config,
    /// `domains/<name>`.
    Domain(&'a str),
    /// `agents/<host>`.
    Agent(&'a str),
    /// `live/<host>`.
    Live(&'a str),
    /// `tunnels/<address>`.
    Tunnel(&'a str),
    /// `auth/ca`.
    Ca,
    /// `auth/tokens`.
    Tokens,
    /// Anything else (the election, keys of a later version).
    Other,
}

impl<'a> Key<'a> {
    /// Sorts a relative key.
    pub fn parse(rel: &'a str) -> Self {
        let split = |p: &str| rel.strip_prefix(p).filter(|r| !r.is_empty());
        match rel {
            "meta/epoch" => Key::Epoch,
            "meta/config" => Key::Config,
            "auth/ca" => Key::Ca,
            "auth/tokens" => Key::Tokens,
            _ => {
                if let Some(n) = split("domains/") {
                    Key::Domain(n)
                } else if let Some(h) = split("agents/") {
                    Key::Agent(h)
                } else if let Some(h) = split("live/") {
                    Key::Live(h)
                } else if let Some(a) = split("tunnels/") {
                    Key::Tunnel(a)
                } else {
                    Key::Other
                }
            }
        }
    }

    /// The relative key.
    pub fn rel(&self) -> String {
        match self {
            Key::Epoch => "meta/epoch".into(),
            Key::Config => "meta/config".into(),
            Key::Domain(n) => format!("domains/{n}"),
            Key::Agent(h) => format!("agents/{h}"),
            Key::Live(h) => format!("live/{h}"),
            Key::Tunnel(a) => format!("tunnels/{a}"),
            Key::Ca => "auth/ca".into(),
            Key::Tokens => "auth/tokens".into(),
            Key::Other => String::new(),
        }
    }
}

/// `live/<host>`: the session whose lease holds, and that lease (a heartbeat renews it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// The session.
    pub session: u64,
    /// The etcd lease id.
    pub lease: i64,
}

/// `auth/ca`: the CA every replica serves with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCa {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM.
    pub key_pem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_ones_are_other() {
        for k in [
            Key::Epoch,
            Key::Config,
            Key::Domain("d1"),
            Key::Agent("h-1"),
            Key::Live("h-1"),
            Key::Tunnel("10.255.0.1"),
            Key::Ca,
            Key::Tokens,
        ] {
            assert_eq!(Key::parse(&k.rel()), k);
        }
        for other in ["", "domains/", "election/7", "meta", "agents"] {
            assert_eq!(Key::parse(other), Key::Other, "{other:?}");
        }
    }
}
