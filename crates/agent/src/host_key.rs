//! The host's WireGuard private key on disk: `wireguard.key` in the state directory,
//! one line of standard base64 (the format of `wg genkey`), mode 0600, created on the
//! agent's first start and kept across restarts so peers need no new handshake key.
//! It is written to a temporary file with mode 0600 from the start, synced, then
//! renamed over the old one: the key is never readable by others, even for a moment,
//! and a crash leaves the old key or the new one.
//!
//! Without a state directory the key lives in memory only: a new one per start.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mcgate_dataplane::HostKey;

/// The key file's name in the state directory.
pub const FILE_NAME: &str = "wireguard.key";

/// Why the key cannot be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("WireGuard key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no key.
    #[error(
        "WireGuard key file {path} does not hold a key (one line of base64, 32 bytes); \
         start the agent with --rotate-key to replace it"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
    },
    /// Others may read the file.
    #[error(
        "WireGuard key file {path} has mode {mode:o}: others may read the private key; \
         `chmod 600` it, or start with --rotate-key for a new key"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The key in `dir` (made on first use), or a new one when `rotate` or without a
/// directory. Returns the key and whether it is new.
pub fn load_or_create(dir: Option<&Path>, rotate: bool) -> Result<(HostKey, bool), KeyError> {
    let Some(dir) = dir else {
        return Ok((HostKey::generate(), true));
    };
    let path = dir.join(FILE_NAME);
    if !rotate {
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let io = |source| KeyError::Io {
                    path: path.clone(),
                    source,
                };
                let mode = f.metadata().map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Exposed { path, mode });
                }
                let mut text = String::new();
                f.read_to_string(&mut text).map_err(io)?;
                let key = HostKey::from_base64(&text).ok_or(KeyError::Invalid { path })?;
                return Ok((key, false));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeyError::Io { path, source }),
        }
    }
    let key = HostKey::generate();
    store(dir, &key)?;
    Ok((key, true))
}

/// Writes `key` as the host's key file in `dir`, replacing any older one (0600 from
/// its creation, through a temporary file).
pub fn store(dir: &Path, key: &HostKey) -> Result<(), KeyError> {
    let path = dir.join(FILE_NAME);
    mcgate_client::credentials::write_private(
        &path,
        format!("{}\n", key.private_base64()).as_bytes(),
    )
    .map_err(|source| KeyError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mcgate-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_once_kept_private_and_rotated() {
        let d = dir("kept");
        let (first, new) = load_or_create(Some(&d), false).unwrap();
        assert!(new);
        let mode = std::fs::metadata(d.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, new) = load_or_create(Some(&d), false).unwrap();
        assert!(!new);
        assert_eq!(again.public_base64(), first.public_base64());
        let (rotated, new) = load_or_create(Some(&d), true).unwrap();
        assert!(new);
        assert_ne!(rotated.public_base64(), first.public_base64());
        let (after, _) = load_or_create(Some(&d), false).unwrap();
        assert_eq!(after.public_base64(), rotated.public_base64());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_a_readable_or_bad_file() {
        let d = dir("bad");
        let path = d.join(FILE_NAME);
        load_or_create(Some(&d), false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(Some(&d), false),
            Err(KeyError::Exposed { .. })
        ));
        std::fs::write(&path, "garbage\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_create(Some(&d), false),
            Err(KeyError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
