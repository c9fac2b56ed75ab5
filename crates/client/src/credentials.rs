//! Credential files: what a client needs to talk to the controller over TCP.
//!
//! A credential file is JSON, mode 0600 (see `docs/security.md`):
//!
//! ```json
//! {
//!   "controller": "https://127.0.0.1:7400",
//!   "ca": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
//!   "token": "mcg_…",
//!   "role": "admin",
//!   "host": null
//! }
//! ```
//!
//! `controller` is the URL to use, `ca` the domain CA that signed the controller's
//! certificate (PEM), `token` the bearer secret, `role` and `host` what the controller
//! issued it for (informative: the controller decides).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable naming a credential file.
pub const CREDENTIALS_ENV: &str = "MCGATE_CREDENTIALS";

/// Where `mcgate controller` writes its admin credential, in its data directory.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin.credentials";

/// The admin credential of a controller run with the default data directory.
pub const DEFAULT_CREDENTIALS: &str = "/var/lib/mcgate/admin.credentials";

/// The contents of a credential file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The controller's URL (`https://HOST:PORT`).
    pub controller: String,
    /// The CA that signed the controller's certificate, PEM.
    pub ca: String,
    /// The bearer secret.
    pub token: String,
    /// `admin`, `agent` or `viewer`.
    pub role: String,
    /// The host an agent credential is bound to.
    #[serde(default)]
    pub host: Option<String>,
}

/// A credential file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("credential file {}: {message}", path.display())]
pub struct CredentialsError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl Credentials {
    /// Reads a credential file.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let err = |message: String| CredentialsError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("not a credential file: {e}")))
    }

    /// Writes the file with mode 0600, atomically (a reader sees the old file or the
    /// whole new one), creating its directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| CredentialsError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_private(path, text.as_bytes()).map_err(|e| CredentialsError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The credential file to use: `given` (the `--credentials` flag, which reads
    /// [`CREDENTIALS_ENV`] when absent), else `fallback` if it exists; `None` when there
    /// is none.
    pub fn find(given: Option<&Path>, fallback: &Path) -> Option<PathBuf> {
        if let Some(p) = given {
            return Some(p.to_path_buf());
        }
        fallback.exists().then(|| fallback.to_path_buf())
    }
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_file_is_private_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("mcgate-cred-{}", std::process::id()));
        let path = dir.join("sub/admin.credentials");
        let c = Credentials {
            controller: "https://127.0.0.1:7400".into(),
            ca: "pem".into(),
            token: "mcg_x".into(),
            role: "admin".into(),
            host: None,
        };
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Credentials::load(&path).unwrap(), c);
        assert_eq!(
            Credentials::find(Some(&path), Path::new("/nonexistent")),
            Some(path.clone())
        );
        std::fs::write(&path, b"{\"controller\": 1}").unwrap();
        let e = Credentials::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a credential file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
