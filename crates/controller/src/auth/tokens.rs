//! Bearer secrets: join tokens and credentials, kept as SHA-256 digests in
//! `tokens.json` (mode 0600) in the data directory.
//!
//! A secret reads `mcg_<id>_<secret>`: `id` (12 hex digits) finds the entry, and the
//! SHA-256 of the whole string must match its digest. The secret part is 32 random
//! bytes, so a digest is enough (no slow hash needed) and a copy of the file lets no one
//! in. Times are seconds since the Unix epoch, passed in by the caller.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use mcgate_domain::auth_api::{IssuedToken, Role, TokenInfo, TokenKind};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The file of the store in the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credential at all.
    Anonymous,
    /// A credential (or the Unix socket, `id` = "unix") with this role; `host` for agents.
    Credential {
        /// The credential's id.
        id: String,
        /// Its role.
        role: Role,
        /// The host an agent credential is bound to.
        host: Option<String>,
    },
    /// A join token for `host`.
    Join {
        /// The token's id.
        id: String,
        /// The host it may join as.
        host: String,
    },
}

impl Caller {
    /// The local admin of the Unix socket.
    pub fn unix_admin() -> Self {
        Caller::Credential {
            id: "unix".into(),
            role: Role::Admin,
            host: None,
        }
    }
}

/// One stored secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    digest: String,
    kind: TokenKind,
    role: Role,
    host: Option<String>,
    created_unix: u64,
    expires_unix: Option<u64>,
}

impl Entry {
    fn expired(&self, now: u64) -> bool {
        self.expires_unix.is_some_and(|e| now >= e)
    }
}

/// A store the token entries are shared through (the etcd store), written
/// compare-and-swap on its revision.
pub trait SharedSave: Send + Sync {
    /// Writes `value` if the stored one is still at `rev` (0: absent): the new revision,
    /// or `None` when another writer came first.
    fn save(&self, value: Vec<u8>, rev: i64) -> Result<Option<i64>, String>;
    /// The stored value and its revision.
    fn load(&self) -> Result<(Option<Vec<u8>>, i64), String>;
}

/// Where the entries are kept.
enum Persist {
    /// `tokens.json` in the data directory.
    File(PathBuf),
    /// A shared store; readers are kept current by its watch ([`Tokens::set_shared`]).
    Shared(Arc<dyn SharedSave>),
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Persist::File(p) => write!(f, "File({})", p.display()),
            Persist::Shared(_) => f.write_str("Shared"),
        }
    }
}

/// The store.
#[derive(Debug)]
pub struct Tokens {
    persist: Persist,
    /// The shared store's revision of what readers see.
    shared_rev: std::sync::atomic::AtomicI64,
    /// What readers (every request's authentication) see; replaced whole after a
    /// change is on disk.
    entries: RwLock<Arc<Vec<Entry>>>,
    /// Held by a change from its copy to its swap, so changes never interleave.
    writer: Mutex<()>,
    rng: SystemRandom,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Compares without an early exit, so the time taken tells nothing about the digest.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Tokens {
    /// Opens (or starts) the store of `dir`.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let path = dir.join(TOKENS_FILE);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{} cannot be read: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            persist: Persist::File(path),
            shared_rev: 0.into(),
            entries: RwLock::new(Arc::new(entries)),
            writer: Mutex::new(()),
            rng: SystemRandom::new(),
        })
    }

    /// A store kept in `shared`, starting from its `value` at revision `rev`.
    pub fn shared(
        shared: Arc<dyn SharedSave>,
        value: Option<&[u8]>,
        rev: i64,
    ) -> Result<Self, String> {
        let entries = match value {
            Some(v) => serde_json::from_slice(v)
                .map_err(|e| format!("the shared token store cannot be read: {e}"))?,
            None => Vec::new(),
        };
        Ok(Self {
            persist: Persist::Shared(shared),
            shared_rev: rev.into(),
            entries: RwLock::new(Arc::new(entries)),
            writer: Mutex::new(()),
            rng: SystemRandom::new(),
        })
    }

    /// What the shared store holds now, at `rev` (from its watch); older news is
    /// ignored, and an undecodable value keeps the entries as they are.
    pub fn set_shared(&self, value: Option<&[u8]>, rev: i64) {
        use std::sync::atomic::Ordering;
        let entries: Vec<Entry> = match value.map(serde_json::from_slice).transpose() {
            Ok(e) => e.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "the shared token store cannot be read; kept the last entries");
                return;
            }
        };
        let mut w = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if rev >= self.shared_rev.load(Ordering::Acquire) {
            self.shared_rev.store(rev, Ordering::Release);
            *w = Arc::new(entries);
        }
    }

    fn read(&self) -> Arc<Vec<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `f` to a copy of the entries; when it says the copy changed, saves the
    /// copy and only then lets readers see it. Readers never wait for the disk, and a
    /// failed save changes nothing (in memory as on disk).
    ///
    /// With a shared store the change is made on what it holds: when another replica
    /// wrote first, `f` runs again on the newer entries.
    fn change<T>(
        &self,
        f: impl Fn(&mut Vec<Entry>) -> Result<(T, bool), String>,
    ) -> Result<T, String> {
        use std::sync::atomic::Ordering;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..5 {
            let mut copy = Vec::clone(&self.read());
            let (out, changed) = f(&mut copy)?;
            if !changed {
                return Ok(out);
            }
            let text = serde_json::to_vec_pretty(&copy).map_err(|e| e.to_string())?;
            match &self.persist {
                Persist::File(path) => {
                    mcgate_client::credentials::write_private(path, &text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                Persist::Shared(s) => {
                    match s.save(text, self.shared_rev.load(Ordering::Acquire))? {
                        Some(rev) => self.shared_rev.store(rev, Ordering::Release),
                        None => {
                            let (value, rev) = s.load()?;
                            self.set_shared(value.as_deref(), rev);
                            continue;
                        }
                    }
                }
            }
            *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(copy);
            return Ok(out);
        }
        Err("other controller replicas kept changing the tokens at the same time; try again".into())
    }

    fn random_hex(&self, n: usize) -> Result<String, String> {
        let mut buf = vec![0u8; n];
        self.rng
            .fill(&mut buf)
            .map_err(|_| "the system's random source failed".to_string())?;
        Ok(hex(&buf))
    }

    fn new_entry(
        &self,
        kind: TokenKind,
        role: Role,
        host: Option<String>,
        ttl_s: Option<u64>,
        now: u64,
    ) -> Result<(Entry, IssuedToken), String> {
        let id = self.random_hex(6)?;
        let token = format!("mcg_{id}_{}", self.random_hex(32)?);
        let expires_unix = ttl_s.map(|t| now.saturating_add(t));
        let entry = Entry {
            id: id.clone(),
            digest: digest(&token),
            kind,
            role,
            host: host.clone(),
            created_unix: now,
            expires_unix,
        };
        let issued = IssuedToken {
            id,
            token,
            kind,
            role,
            host,
            expires_unix,
        };
        Ok((entry, issued))
    }

    /// Issues a secret and stores its digest.
    pub fn issue(
        &self,
        kind: TokenKind,
        role: Role,
        host: Option<String>,
        ttl_s: Option<u64>,
        now: u64,
    ) -> Result<IssuedToken, String> {
        let (entry, issued) = self.new_entry(kind, role, host, ttl_s, now)?;
        self.change(|entries| {
            entries.push(entry.clone());
            Ok((issued.clone(), true))
        })
    }

    /// Who `secret` belongs to, if it is a known secret that has not expired.
    pub fn authenticate(&self, secret: &str, now: u64) -> Option<Caller> {
        let id = mcgate_domain::auth_api::token_id(secret)?;
        let d = digest(secret);
        let entries = self.read();
        let e = entries.iter().find(|e| e.id == id && same(&e.digest, &d))?;
        if e.expired(now) {
            return None;
        }
        Some(match e.kind {
            TokenKind::Join => Caller::Join {
                id: e.id.clone(),
                host: e.host.clone()?,
            },
            TokenKind::Credential => Caller::Credential {
                id: e.id.clone(),
                role: e.role,
                host: e.host.clone(),
            },
        })
    }

    /// Spends the join token `id` for an agent credential of its host, which replaces
    /// the host's earlier agent credentials. `None` if the token is gone or expired.
    pub fn join(&self, id: &str, now: u64) -> Result<Option<IssuedToken>, String> {
        self.change(|entries| {
            let Some(pos) = entries
                .iter()
                .position(|e| e.id == id && e.kind == TokenKind::Join && !e.expired(now))
            else {
                return Ok((None, false));
            };
            let host = entries[pos].host.clone();
            let (entry, issued) =
                self.new_entry(TokenKind::Credential, Role::Agent, host.clone(), None, now)?;
            entries.remove(pos);
            entries.retain(|e| !(e.kind == TokenKind::Credential && e.host == host));
            entries.push(entry);
            Ok((Some(issued), true))
        })
    }

    /// Every secret, without the secrets.
    pub fn list(&self, now: u64) -> Vec<TokenInfo> {
        self.read()
            .iter()
            .map(|e| TokenInfo {
                id: e.id.clone(),
                kind: e.kind,
                role: e.role,
                host: e.host.clone(),
                created_unix: e.created_unix,
                expires_unix: e.expires_unix,
                state: if e.expired(now) { "expired" } else { "valid" }.into(),
            })
            .collect()
    }

    /// Revokes `id`; returns the host of an agent credential so revoked (`Some(None)`
    /// for other secrets), `None` if there was no such id.
    pub fn revoke(&self, id: &str) -> Result<Option<Option<String>>, String> {
        self.change(|entries| {
            let Some(pos) = entries.iter().position(|e| e.id == id) else {
                return Ok((None, false));
            };
            let e = entries.remove(pos);
            let agent = e.kind == TokenKind::Credential && e.role == Role::Agent;
            Ok((Some(if agent { e.host } else { None }), true))
        })
    }

    /// Revokes every join token and credential bound to `host`; returns how many.
    pub fn revoke_host(&self, host: &str) -> Result<usize, String> {
        self.change(|entries| {
            let before = entries.len();
            entries.retain(|e| e.host.as_deref() != Some(host));
            let n = before - entries.len();
            Ok((n, n > 0))
        })
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_authenticate_until_they_expire_or_are_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::open(dir.path()).unwrap();
        let v = t
            .issue(TokenKind::Credential, Role::Viewer, None, Some(10), 100)
            .unwrap();
        assert!(matches!(
            t.authenticate(&v.token, 105),
            Some(Caller::Credential {
                role: Role::Viewer,
                ..
            })
        ));
        assert_eq!(t.authenticate(&v.token, 110), None);
        // A wrong secret with a right id.
        let forged = format!("mcg_{}_{}", v.id, "0".repeat(64));
        assert_eq!(t.authenticate(&forged, 105), None);
        assert_eq!(t.authenticate("nonsense", 105), None);
        // The store survives a restart, and keeps no secret.
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!text.contains(&v.token));
        let t = Tokens::open(dir.path()).unwrap();
        assert!(t.authenticate(&v.token, 105).is_some());
        assert_eq!(t.revoke(&v.id).unwrap(), Some(None));
        assert_eq!(t.authenticate(&v.token, 105), None);
        assert_eq!(t.revoke(&v.id).unwrap(), None);
    }

    #[test]
    fn a_join_token_is_spent_once_and_replaces_the_hosts_old_credential() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::open(dir.path()).unwrap();
        let j1 = t
            .issue(TokenKind::Join, Role::Agent, Some("h1".into()), Some(60), 0)
            .unwrap();
        let Some(Caller::Join { id, host }) = t.authenticate(&j1.token, 1) else {
            panic!("a join token is a join caller");
        };
        assert_eq!(host, "h1");
        let a1 = t.join(&id, 1).unwrap().unwrap();
        assert_eq!((a1.role, a1.host.as_deref()), (Role::Agent, Some("h1")));
        assert_eq!(t.join(&id, 1).unwrap(), None, "spent");
        assert_eq!(t.authenticate(&j1.token, 1), None);
        let j2 = t
            .issue(TokenKind::Join, Role::Agent, Some("h1".into()), Some(60), 0)
            .unwrap();
        assert_eq!(t.join(&j2.id, 61).unwrap(), None, "expired");
        let a2 = t.join(&j2.id, 2).unwrap().unwrap();
        assert_eq!(t.authenticate(&a1.token, 2), None, "replaced");
        assert!(t.authenticate(&a2.token, 2).is_some());
        assert_eq!(t.revoke_host("h1").unwrap(), 1);
        assert_eq!(t.authenticate(&a2.token, 2), None);
    }
}
