//! The persistent store: one redb file, `controller.redb`, in the data directory.
//!
//! Why redb: it is an embedded, pure-Rust key-value store with ACID transactions over
//! copy-on-write B-trees. A commit writes new pages and then flips a checksummed commit
//! slot with an fsync, so a crash (`kill -9`, power loss) at any instant leaves the file at
//! the last committed transaction, with no recovery step we must write and no C library
//! to link (unlike SQLite or RocksDB). Its file format is stable since 1.0 and it holds
//! an exclusive lock on the file, so two controllers can never share one store.
//!
//! What is stored: each domain's record (settings, associations, static members and
//! sources) as JSON under its name, and the epoch: a counter bumped at each start, which
//! puts each run's revisions above every earlier run's so an agent resuming across a
//! restart re-snapshots instead of trusting a revision the new run never issued.
//! Agent memberships are soft state, rebuilt from the agents' snapshots after a restart.

use std::path::{Path, PathBuf};

use mcgate_domain::model::DomainRecord;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const DOMAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("domains");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const EPOCH: &str = "epoch";

/// The store file's name inside the data directory.
pub const FILE_NAME: &str = "controller.redb";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(
        "cannot open the store {path}: {message} (is another controller using this --data-dir?)"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A transaction failed.
    #[error("the store failed: {0}")]
    Io(String),
    /// A stored record could not be decoded.
    #[error("the store holds a domain record that cannot be read ({name}): {message}")]
    Corrupt {
        /// The key.
        name: String,
        /// The cause.
        message: String,
    },
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The open store.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// What a start reads back.
#[derive(Debug)]
pub struct Loaded {
    /// This run's epoch (already persisted, one above the previous run's).
    pub epoch: u64,
    /// Every domain.
    pub domains: Vec<DomainRecord>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, bumps the epoch and reads every domain.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let store = Self { db };
        let epoch = store.bump_epoch()?;
        let domains = store.read_domains()?;
        Ok((store, Loaded { epoch, domains }))
    }

    fn bump_epoch(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        let epoch = {
            let mut meta = tx.open_table(META).map_err(io)?;
            let prev = meta.get(EPOCH).map_err(io)?.map(|v| v.value()).unwrap_or(0);
            let epoch = prev + 1;
            meta.insert(EPOCH, epoch).map_err(io)?;
            // Also create the domains table so readers never see it missing.
            tx.open_table(DOMAINS).map_err(io)?;
            epoch
        };
        tx.commit().map_err(io)?;
        Ok(epoch)
    }

    fn read_domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(DOMAINS).map_err(io)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            let rec: DomainRecord =
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                    name: k.value().to_string(),
                    message: e.to_string(),
                })?;
            out.push(rec);
        }
        Ok(out)
    }

    /// Opens a write transaction and keeps it: every commit waits until it is dropped
    /// (a disk that takes its time, for tests).
    #[cfg(test)]
    pub(crate) fn hold_writes(&self) -> redb::WriteTransaction {
        self.db.begin_write().expect("a write transaction")
    }

    /// Writes (or, with `None`, deletes) one domain's record in one durable transaction.
    pub fn put_domain(&self, name: &str, record: Option<&DomainRecord>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(DOMAINS).map_err(io)?;
            match record {
                Some(r) => {
                    let bytes = serde_json::to_vec(r).map_err(io)?;
                    table.insert(name, bytes.as_slice()).map_err(io)?;
                }
                None => {
                    table.remove(name).map_err(io)?;
                }
            }
        }
        tx.commit().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_domain::api::{Domain, IgmpMode, IgmpSettings};

    fn rec(name: &str) -> DomainRecord {
        DomainRecord {
            domain: Domain {
                name: name.into(),
                vni: 7,
                igmp: IgmpMode::V3,
                static_sources: true,
                igmp_settings: IgmpSettings::default(),
                subnets: vec!["10.0.2.0/24".parse().unwrap()],
                hosts: vec![],
                tunnel: Default::default(),
            },
            static_members: vec![],
            static_sources: vec![],
        }
    }

    #[test]
    fn records_and_epoch_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (s, l) = Store::open(dir.path()).unwrap();
        assert_eq!((l.epoch, l.domains.len()), (1, 0));
        s.put_domain("a", Some(&rec("a"))).unwrap();
        s.put_domain("b", Some(&rec("b"))).unwrap();
        s.put_domain("b", None).unwrap();
        // The file is locked while open.
        assert!(Store::open(dir.path()).is_err());
        drop(s);
        let (_s, l) = Store::open(dir.path()).unwrap();
        assert_eq!(l.epoch, 2);
        assert_eq!(l.domains, vec![rec("a")]);
    }
}
