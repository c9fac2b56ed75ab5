//! The agent's credential (see `docs/security.md`): over `https://` every request
//! carries this host's agent credential. On the first start the agent spends its join
//! token (`POST /v1/join`) for one and keeps it in `--credential-file` (by default
//! `STATE_DIR/credentials.json`, mode 0600); later starts reuse it, so the join token is needed once. Over `unix:` the
//! socket's file mode is the credential and none is needed.

use std::path::PathBuf;
use std::time::Duration;

use mcgate_client::{Client, ClientError, Credentials};
use mcgate_domain::auth_api::IssuedToken;

use crate::config::AgentConfig;

/// The credential file in the state directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// How many times a join is tried while the controller cannot be reached.
const JOIN_ATTEMPTS: u32 = 30;

/// Why the agent has no credential.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Neither a stored credential nor a join token.
    #[error(
        "no credential for host {host}: give a join token (--token-file FILE, from `mcgate token create --host {host}`) and the controller's CA (--ca FILE)"
    )]
    NoToken {
        /// The host.
        host: String,
    },
    /// A join token but no CA.
    #[error(
        "a join over https needs the controller's CA: give --ca FILE (the controller's ca.pem)"
    )]
    NoCa,
    /// The CA file cannot be read.
    #[error("cannot read the CA file {path}: {source}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The controller refused the join or could not be reached.
    #[error("joining as {host} failed: {source}")]
    Join {
        /// The host.
        host: String,
        /// The cause.
        source: ClientError,
    },
    /// The credential could not be kept.
    #[error(transparent)]
    Save(#[from] mcgate_client::CredentialsError),
    /// The URL is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The client the agent talks to the controller with: its stored credential, or a new
/// one from its join token.
pub async fn client(cfg: &AgentConfig) -> Result<Client, JoinError> {
    if cfg.controller.starts_with("unix:") {
        return Ok(Client::new(&cfg.controller)?);
    }
    let stored = cfg.credential_file.clone();
    if let Some(path) = &stored
        && let Ok(c) = Credentials::load(path)
        && c.host.as_deref() == Some(cfg.host.as_str())
    {
        tracing::info!(file = %path.display(), "using the stored agent credential");
        return Ok(Client::new(&cfg.controller)?
            .with_ca(&c.ca)?
            .with_token(&c.token));
    }
    let token = cfg
        .join_token
        .as_deref()
        .ok_or_else(|| JoinError::NoToken {
            host: cfg.host.clone(),
        })?;
    let ca_path = cfg.ca.as_deref().ok_or(JoinError::NoCa)?;
    let ca = std::fs::read_to_string(ca_path).map_err(|source| JoinError::Ca {
        path: ca_path.to_path_buf(),
        source,
    })?;
    let joiner = Client::new(&cfg.controller)?
        .with_ca(&ca)?
        .with_token(token);
    let issued = join(&joiner, &cfg.host).await?;
    let creds = Credentials {
        controller: cfg.controller.clone(),
        ca: ca.clone(),
        token: issued.token,
        role: "agent".into(),
        host: Some(cfg.host.clone()),
    };
    match &stored {
        Some(path) => {
            creds.save(path)?;
            tracing::info!(host = %cfg.host, id = %issued.id, file = %path.display(), "joined; credential stored");
        }
        None => tracing::warn!(
            host = %cfg.host,
            "joined without --state-dir or --credential-file: the credential lives in memory only, and a restart needs a new join token"
        ),
    }
    Ok(Client::new(&cfg.controller)?
        .with_ca(&ca)?
        .with_token(&creds.token))
}

/// Spends the join token, retrying while the controller cannot be reached (it may be
/// starting too); a refusal is final.
async fn join(joiner: &Client, host: &str) -> Result<IssuedToken, JoinError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match joiner.post::<_, IssuedToken>("/v1/join", &()).await {
            Ok(t) => return Ok(t),
            Err(e @ (ClientError::Connect { .. } | ClientError::Http { .. }))
                if attempt < JOIN_ATTEMPTS =>
            {
                tracing::info!(error = %e, attempt, "controller not reachable yet; joining again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => {
                return Err(JoinError::Join {
                    host: host.to_string(),
                    source,
                });
            }
        }
    }
}
