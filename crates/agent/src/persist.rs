//! The agent's state file: the membership it learned on its links, so that a restarted
//! agent (an upgrade, a crash) forwards to its receivers at once instead of only after
//! they answer its start-up queries.
//!
//! The file is `agent-state.json` in the state directory (`--state-dir`), rewritten a
//! moment after each membership change and at shutdown. It is written to a temporary file
//! in the same directory, synced, then renamed over the old one, so a crash leaves either
//! the old file or the new one, never a torn one.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcgate_domain::SourceFilter;
use serde::{Deserialize, Serialize};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "agent-state.json";
/// The file format written; other formats are ignored on load.
pub const FORMAT: u32 = 1;
/// A file older than this is ignored: its members would have expired by now (the group
/// membership interval with the RFC's default values, RFC 3376 8.4: 260 s).
pub const MAX_AGE: Duration = Duration::from_secs(260);
/// Largest file read: far above any real membership, small enough to never hurt.
const MAX_FILE: u64 = 64 << 20;

/// One group of one link as learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedGroup {
    /// The group.
    pub group: Ipv4Addr,
    /// The link's source filter for it.
    pub filter: SourceFilter,
    /// The hosts that reported it.
    pub reporters: Vec<Ipv4Addr>,
}

/// One link's learned membership. The index tells a re-created link (a new container
/// with the same interface name) from the one the membership was learned on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLink {
    /// The link's name.
    pub name: String,
    /// Its interface index when the membership was learned.
    pub ifindex: u32,
    /// Its groups.
    pub groups: Vec<SavedGroup>,
}

/// Everything the agent learned on its links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedMembership {
    /// The links, by name.
    pub links: Vec<SavedLink>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    host: String,
    /// Milliseconds since the Unix epoch.
    saved_at_ms: u64,
    membership: SavedMembership,
}

/// Why a state file was not used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a state file of this format.
    #[error("the state file {path} is unreadable ({message}); starting without it")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file belongs to another host name.
    #[error("the state file {path} is of host {host:?}; starting without it")]
    OtherHost {
        /// The file.
        path: PathBuf,
        /// The host it names.
        host: String,
    },
    /// The file is too old to describe current members.
    #[error("the state file {path} is {age:?} old (over {MAX_AGE:?}); starting without it")]
    TooOld {
        /// The file.
        path: PathBuf,
        /// Its age.
        age: Duration,
    },
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes the state file of `host` in `dir` atomically (temporary file, fsync, rename,
/// fsync of the directory).
pub fn save(
    dir: &Path,
    host: &str,
    membership: &SavedMembership,
    now: SystemTime,
) -> std::io::Result<()> {
    let doc = StateFile {
        format: FORMAT,
        host: host.to_string(),
        saved_at_ms: unix_ms(now),
        membership: membership.clone(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the state file of `host` in `dir`: `Ok(None)` when there is none.
pub fn load(dir: &Path, host: &str, now: SystemTime) -> Result<Option<SavedMembership>, LoadError> {
    use std::io::Read;
    let path = dir.join(FILE_NAME);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Read { path, source }),
    };
    let mut bytes = Vec::new();
    if let Err(source) = file.take(MAX_FILE).read_to_end(&mut bytes) {
        return Err(LoadError::Read { path, source });
    }
    parse(&bytes, host, now).map(Some).map_err(|e| match e {
        ParseError::Parse(message) => LoadError::Parse { path, message },
        ParseError::OtherHost(host) => LoadError::OtherHost { path, host },
        ParseError::TooOld(age) => LoadError::TooOld { path, age },
    })
}

enum ParseError {
    Parse(String),
    OtherHost(String),
    TooOld(Duration),
}

fn parse(bytes: &[u8], host: &str, now: SystemTime) -> Result<SavedMembership, ParseError> {
    let doc: StateFile =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Parse(e.to_string()))?;
    if doc.format != FORMAT {
        return Err(ParseError::Parse(format!(
            "format {} where {FORMAT} is expected",
            doc.format
        )));
    }
    if doc.host != host {
        return Err(ParseError::OtherHost(doc.host));
    }
    // A file from the future (clock stepped back) counts as fresh.
    let age = Duration::from_millis(unix_ms(now).saturating_sub(doc.saved_at_ms));
    if age > MAX_AGE {
        return Err(ParseError::TooOld(age));
    }
    Ok(doc.membership)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedMembership {
        SavedMembership {
            links: vec![SavedLink {
                name: "tk1".into(),
                ifindex: 7,
                groups: vec![SavedGroup {
                    group: Ipv4Addr::new(233, 252, 0, 5),
                    filter: SourceFilter::any_source(),
                    reporters: vec![Ipv4Addr::new(10, 0, 0, 2)],
                }],
            }],
        }
    }

    #[test]
    fn a_saved_file_loads_back_and_stale_or_foreign_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("mcgate-agent-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(load(&dir, "h1", t0).unwrap().is_none());
        save(&dir, "h1", &sample(), t0).unwrap();
        assert_eq!(
            load(&dir, "h1", t0 + Duration::from_secs(5)).unwrap(),
            Some(sample())
        );
        assert!(!dir.join(format!(".{FILE_NAME}.tmp")).exists());
        assert!(matches!(
            load(&dir, "h2", t0),
            Err(LoadError::OtherHost { .. })
        ));
        assert!(matches!(
            load(&dir, "h1", t0 + MAX_AGE + Duration::from_secs(1)),
            Err(LoadError::TooOld { .. })
        ));
        std::fs::write(dir.join(FILE_NAME), b"{\"format\":1,").unwrap();
        assert!(matches!(load(&dir, "h1", t0), Err(LoadError::Parse { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_never_panics() {
        let t = UNIX_EPOCH;
        for bytes in [&b""[..], b"null", b"[]", b"{\"format\":2}", &[0xff; 40][..]] {
            assert!(parse(bytes, "h", t).is_err());
        }
    }
}
