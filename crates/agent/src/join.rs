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

use std::path::{Path, PathBuf};

use mcgate_client::{Client, ClientError, Credentials};
use mcgate_domain::auth_api::IssuedToken;

use crate::backoff::{self, Backoff};
use crate::config::AgentConfig;

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

/// The client the agent talks to the controller with: with its stored credential, or,
/// when it has none, one that a background join gives a credential.
pub fn client(cfg: &AgentConfig) -> Result<Client, ClientError> {
    if cfg.controller.starts_with("unix:") {
        return Client::new(&cfg.controller);
    }
    if let Some(path) = &cfg.credential_file
        && let Ok(c) = Credentials::load(path)
        && c.host.as_deref() == Some(cfg.host.as_str())
    {
        tracing::info!(file = %path.display(), "using the stored agent credential");
        return Ok(Client::new(&cfg.controller)?
            .with_ca(&c.ca)?
            .with_token(&c.token));
    }
    let client = Client::new(&cfg.controller)?;
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
/// of it) and keeps it in the credential file.
async fn join_task(cfg: AgentConfig, ca: String, client: Client) {
    let mut retry = Backoff::default();
    loop {
        match join_once(&cfg, &ca).await {
            Ok(issued) => {
                client.set_token(&issued.token);
                let creds = Credentials {
                    controller: cfg.controller.clone(),
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
        tokio::time::sleep(backoff::next_delay(&mut retry)).await;
    }
}

async fn join_once(cfg: &AgentConfig, ca: &str) -> Result<IssuedToken, String> {
    let token = join_token(cfg)?;
    let joiner = Client::new(&cfg.controller)
        .and_then(|c| c.with_ca(ca))
        .map_err(|e| e.to_string())?
        .with_token(&token);
    joiner
        .post::<_, IssuedToken>("/v1/join", &())
        .await
        .map_err(|e| e.to_string())
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
