//! Reaching etcd: the options (named as etcd's own clients name them), the two clients
//! a replica keeps, and what etcd's errors mean to a caller.
//!
//! Two clients: `client` requires an etcd leader for every call, so without quorum a
//! write fails at once ("no leader") instead of hanging; `loose` does not, so status,
//! member lists and the health view keep working when quorum is lost.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::state::OpError;

/// How a controller reaches etcd (`mcgate controller --store etcd …`).
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the etcd members (`http://` or `https://`).
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix.
    pub prefix: String,
    /// CA bundle that signed etcd's server certificates (`--etcd-cacert`).
    pub cacert: Option<PathBuf>,
    /// Client certificate for etcd (`--etcd-cert`), with `key`.
    pub cert: Option<PathBuf>,
    /// Client key for etcd (`--etcd-key`).
    pub key: Option<PathBuf>,
    /// etcd user (`--etcd-user`), with its password read from `password_file`.
    pub user: Option<String>,
    /// File holding the etcd user's password (`--etcd-password-file`).
    pub password_file: Option<PathBuf>,
    /// This replica's name (unique among the replicas).
    pub replica: String,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

impl EtcdOptions {
    fn connect_options(&self, require_leader: bool) -> Result<ConnectOptions, String> {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(require_leader);
        let tls_wanted = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if tls_wanted || self.cacert.is_some() || self.cert.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.cacert {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca, "etcd CA")?));
            }
            match (&self.cert, &self.key) {
                (Some(c), Some(k)) => {
                    tls = tls.identity(Identity::from_pem(
                        read(c, "etcd client certificate")?,
                        read(k, "etcd client key")?,
                    ));
                }
                (None, None) => {}
                _ => return Err("--etcd-cert and --etcd-key go together".into()),
            }
            o = o.with_tls(tls);
        }
        if let Some(user) = &self.user {
            let Some(pf) = &self.password_file else {
                return Err("--etcd-user needs --etcd-password-file".into());
            };
            let pw = String::from_utf8(read(pf, "etcd password file")?)
                .map_err(|_| format!("{} is not UTF-8", pf.display()))?;
            o = o.with_user(user.clone(), pw.trim_end_matches(['\r', '\n']).to_string());
        }
        Ok(o)
    }

    /// Checks the options before anything is started.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("--store etcd needs --etcd-endpoints URL[,URL…]".into());
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "--etcd-endpoints: {e:?} is not a URL (write http://HOST:2379 or https://HOST:2379)"
                ));
            }
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return Err(format!(
                "--etcd-prefix {:?} must start and end with '/'",
                self.prefix
            ));
        }
        crate::etcd::replica_name_ok(&self.replica)
    }

    /// Connects the two clients (see the module doc).
    pub async fn connect(&self) -> Result<(Client, Client), String> {
        let strict = Client::connect(&self.endpoints, Some(self.connect_options(true)?))
            .await
            .map_err(|e| self.unreachable(&e))?;
        let loose = Client::connect(&self.endpoints, Some(self.connect_options(false)?))
            .await
            .map_err(|e| self.unreachable(&e))?;
        Ok((strict, loose))
    }

    /// A client for one member (status of each member).
    pub async fn connect_one(&self, url: &str) -> Result<Client, String> {
        let o = self
            .connect_options(false)?
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(800));
        Client::connect([url], Some(o))
            .await
            .map_err(|e| e.to_string())
    }

    fn unreachable(&self, e: &etcd_client::Error) -> String {
        format!(
            "cannot reach etcd at {}: {e} (is etcd running and are the URLs right?)",
            self.endpoints.join(",")
        )
    }
}

/// Whether a failed call never reached etcd, so trying again (on another member) is
/// safe even for a write.
pub fn not_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            s.code() as i32 == tonic_code::UNAVAILABLE && !s.message().contains("no leader")
        }
        _ => false,
    }
}

/// How a failed call failed, for deciding whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It never reached etcd.
    NotSent,
    /// etcd has no leader now (an election, or quorum lost).
    NoLeader,
    /// No answer in time: it may or may not have been applied.
    Uncertain,
    /// Anything else.
    Other,
}

/// Sorts a failed call.
pub fn failure(e: &etcd_client::Error) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(s) if s.message().contains("no leader") => Failure::NoLeader,
        etcd_client::Error::GRpcStatus(s)
            if matches!(
                s.code() as i32,
                tonic_code::DEADLINE_EXCEEDED | tonic_code::CANCELLED
            ) =>
        {
            Failure::Uncertain
        }
        e if not_sent(e) => Failure::NotSent,
        // A connection that broke mid-call (a member died): it may have been applied.
        etcd_client::Error::GRpcStatus(s) if s.code() as i32 == tonic_code::UNKNOWN => {
            Failure::Uncertain
        }
        _ => Failure::Other,
    }
}

/// What a failed etcd call tells the API's caller (always a 503: try again).
pub fn unavailable(e: &etcd_client::Error) -> OpError {
    let text = match e {
        etcd_client::Error::GRpcStatus(s) if s.message().contains("no leader") => {
            "etcd has no leader (it lost quorum): nothing was changed; reads and forwarding go on \
             with the last state, and writes work again when a majority of etcd members is back"
                .to_string()
        }
        etcd_client::Error::GRpcStatus(s)
            if matches!(
                s.code() as i32,
                tonic_code::DEADLINE_EXCEEDED | tonic_code::CANCELLED
            ) =>
        {
            "etcd did not answer in time: the change may or may not have been made; \
             read it back, then try again"
                .to_string()
        }
        e if not_sent(e) => format!("cannot reach etcd ({e}): nothing was changed, try again"),
        e => format!("etcd refused the change ({e}); try again"),
    };
    OpError::Unavailable(text)
}

/// The gRPC codes this module tells apart (tonic's `Code` as numbers, so the crate need
/// not name tonic).
mod tonic_code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const UNAVAILABLE: i32 = 14;
}
