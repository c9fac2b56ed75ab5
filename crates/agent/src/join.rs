//! The agent's credential (see `docs/security.md`): over `https://` every request
//! carries this host's agent credential. On the first start the agent spends its join
//! token (`POST /v1/join`) for one and keeps it in `--credential-file` (by default
//! `STATE_DIR/credentials.json`, mode 0600); later starts reuse it, so the join token is
//! needed once. Over `unix:` the socket's file mode is the credential and none is
//! needed.
//!
//! Like everything the agent asks of the controller, the join never holds up the data
//! plane: it runs in the background, retried with backoff, and the session's
//! registrations are refused (401) until it succeeds.
//!
//! With several controller URLs (replicas sharing one store) there is one client per
//! URL, all with the same CA and one shared bearer credential: a credential bought
//! from one replica is good at every other, and the join tries them round robin.

use std::path::{Path, PathBuf};

use mcgate_client::{Client, ClientError, Credentials};
use mcgate_domain::auth_api::IssuedToken;

use crate::config::AgentConfig;
use crate::core::failover::Retry;

/// Bound on one join request.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The credential file in the state directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// The join token of `host` in `text`: the whole text, or, for a file shared by many
/// hosts (a Kubernetes Secret), the token on the line `HOST TOKEN`.
pub fn token_for<'a>(text: &'a str, host: &str) -> Option<&'a str> {
    let text = text.trim();
    if !text.contains(char::is_whitespace) {
        return (!text.is_empty()).then_some(text);
    }
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(host)).then(|| w.next()).flatten()
    })
}

fn read_ca(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))
}

/// The clients the agent talks to the controllers with, one per URL in order, sharing
/// one credential: the stored one, or, when it has none, the one a background join
/// gives them.
pub fn clients(cfg: &AgentConfig) -> Result<Vec<Client>, ClientError> {
    let first = client(cfg)?;
    let mut all = vec![first.clone()];
    for url in cfg.controllers.iter().skip(1) {
        all.push(first.with_url(url)?);
    }
    Ok(all)
}

/// The client of the first URL; the others are made from it.
fn client(cfg: &AgentConfig) -> Result<Client, ClientError> {
    let url = cfg
        .controllers
        .first()
        .ok_or_else(|| ClientError::BadUrl(String::new()))?;
    if url.starts_with("unix:") {
        return Client::new(url);
    }
    if let Some(path) = &cfg.credential_file
        && let Ok(c) = Credentials::load(path)
        && c.host.as_deref() == Some(cfg.host.as_str())
    {
        tracing::info!(file = %path.display(), "using the stored agent credential");
        return Ok(Client::new(url)?.with_ca(&c.ca)?.with_token(&c.token));
    }
    let client = Client::new(url)?;
    let Some(ca_path) = &cfg.ca else {
        tracing::error!(
            host = %cfg.host,
            "no credential and no CA: give --ca FILE (the controller's ca.pem) and a join token (--token-file FILE, from `mcgate token create --host {}`)",
            cfg.host
        );
        return Ok(client);
    };
    let ca = match read_ca(ca_path) {
        Ok(ca) => ca,
        Err(e) => {
            tracing::error!("{e}; the agent cannot reach the controller");
            return Ok(client);
        }
    };
    let client = client.with_ca(&ca)?;
    tokio::spawn(join_task(cfg.clone(), ca, client.clone()));
    Ok(client)
}

/// Reads the join token: the flag's, else the file's (read at each attempt, so a token
/// put in place after the start is found).
fn join_token(cfg: &AgentConfig) -> Result<String, String> {
    if let Some(t) = &cfg.join_token {
        return Ok(t.clone());
    }
    let Some(path) = &cfg.token_file else {
        return Err(format!(
            "no credential for host {h}: give a join token (--token-file FILE, from `mcgate token create --host {h}`)",
            h = cfg.host
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the join token file {}: {e}", path.display()))?;
    token_for(&text, &cfg.host)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the join token file {} holds no token for host {}",
                path.display(),
                cfg.host
            )
        })
}

/// Joins until it succeeds, then hands the credential to `client` (and every clone
/// of it, and every replica's client made from it) and keeps it in the credential
/// file. Each attempt goes to the next URL: a replica that is down does not hold up
/// the join.
async fn join_task(cfg: AgentConfig, ca: String, client: Client) {
    let urls = cfg.controllers.len();
    let mut retry = Retry::new(urls);
    for attempt in 0.. {
        let url = &cfg.controllers[attempt % urls];
        match join_once(&cfg, url, &ca).await {
            Ok(issued) => {
                client.set_token(&issued.token);
                let creds = Credentials {
                    controller: url.clone(),
                    ca,
                    token: issued.token,
                    role: "agent".into(),
                    host: Some(cfg.host.clone()),
                };
                match &cfg.credential_file {
                    Some(path) => match creds.save(path) {
                        Ok(()) => {
                            tracing::info!(host = %cfg.host, id = %issued.id, file = %path.display(), "joined; credential stored")
                        }
                        Err(e) => {
                            tracing::error!(host = %cfg.host, "joined, but {e}: a restart will need a new join token")
                        }
                    },
                    None => tracing::warn!(
                        host = %cfg.host,
                        "joined without --state-dir or --credential-file: the credential lives in memory only, and a restart needs a new join token"
                    ),
                }
                return;
            }
            Err(e) => tracing::warn!(host = %cfg.host, "join failed: {e}; trying again"),
        }
        tokio::time::sleep(retry.after_failure(fastrand::u64(..))).await;
    }
}

async fn join_once(cfg: &AgentConfig, url: &str, ca: &str) -> Result<IssuedToken, String> {
    let token = join_token(cfg)?;
    let joiner = Client::new(url)
        .and_then(|c| c.with_ca(ca))
        .map_err(|e| e.to_string())?
        .with_token(&token);
    // Bounded, so a replica that accepts connections and never answers does not hold
    // up the join: the next attempt goes to the next URL.
    match tokio::time::timeout(JOIN_TIMEOUT, joiner.post::<_, IssuedToken>("/v1/join", &())).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("{url} did not answer within {JOIN_TIMEOUT:?}")),
    }
}

/// Where the credential file is when `state_dir` is given and no other.
pub fn default_credential_file(state_dir: &Path) -> PathBuf {
    state_dir.join(CREDENTIALS_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_holds_one_token_or_one_per_host() {
        assert_eq!(token_for("mcg_a_b\n", "h1"), Some("mcg_a_b"));
        assert_eq!(token_for("", "h1"), None);
        let shared = "h1 mcg_1_x\nh2 mcg_2_y\n";
        assert_eq!(token_for(shared, "h2"), Some("mcg_2_y"));
        assert_eq!(token_for(shared, "h3"), None);
    }
}
