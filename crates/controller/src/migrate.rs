//! `mcgate controller export` / `import`: domains' configuration (settings,
//! associations, static members and sources) moved between stores as one JSON document,
//! `{"version": 1, "domains": [DomainRecord, ...]}`.
//!
//! Agents, memberships and tokens are not moved: agents re-register and re-report by
//! themselves, and credentials belong to the CA of the store that issued them.

use std::sync::Arc;

use etcd_client::TxnOp;
use mcgate_domain::model::DomainRecord;
use serde::{Deserialize, Serialize};

use crate::etcd::keys::Key;
use crate::etcd::replica::{Commit, Replica};
use crate::{StoreArgs, StoreKind};

/// The export document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Format version: 1.
    pub version: u32,
    /// The domains.
    pub domains: Vec<DomainRecord>,
}

/// Reads every domain record of the store `st`.
pub async fn read(st: &StoreArgs) -> Result<Vec<DomainRecord>, String> {
    match st.store {
        StoreKind::Embedded => {
            let (_, loaded) = crate::store::Store::open(&st.data_dir).map_err(|e| e.to_string())?;
            Ok(loaded.domains)
        }
        StoreKind::Etcd => {
            let rep = replica(st).await?;
            let (events, _) = rep.read_all().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for e in events {
                if let (Key::Domain(name), Some(v)) = (Key::parse(&e.key), &e.value) {
                    let r: DomainRecord = serde_json::from_slice(v).map_err(|err| {
                        format!("the stored domain {name:?} cannot be read: {err}")
                    })?;
                    out.push(r);
                }
            }
            Ok(out)
        }
    }
}

async fn replica(st: &StoreArgs) -> Result<Arc<Replica>, String> {
    Ok(Arc::new(
        Replica::connect(st.etcd_options(Some("migrate".into()))).await?,
    ))
}

/// Checks `incoming` against the records `existing` of the target: a domain already
/// there needs `replace`; a VNI may not be another domain's.
pub fn check(
    existing: &[DomainRecord],
    incoming: &[DomainRecord],
    replace: bool,
) -> Result<(), String> {
    for r in incoming {
        mcgate_domain::validate::domain_name("name", &r.domain.name).map_err(|e| e.to_string())?;
        let name = &r.domain.name;
        if !replace && existing.iter().any(|e| &e.domain.name == name) {
            return Err(format!(
                "domain {name:?} already exists in the target store; give --replace to overwrite it"
            ));
        }
        let clash = existing
            .iter()
            .chain(incoming.iter())
            .find(|o| &o.domain.name != name && o.domain.vni == r.domain.vni);
        if let Some(o) = clash {
            return Err(format!(
                "domain {name:?} has VNI {}, which domain {:?} uses too",
                r.domain.vni, o.domain.name
            ));
        }
    }
    Ok(())
}

/// Writes `incoming` into the store `st` (after [`check`]).
pub async fn write(st: &StoreArgs, incoming: &[DomainRecord], replace: bool) -> Result<(), String> {
    let existing = read(st).await?;
    check(&existing, incoming, replace)?;
    match st.store {
        StoreKind::Embedded => {
            let (store, _) = crate::store::Store::open(&st.data_dir).map_err(|e| e.to_string())?;
            for r in incoming {
                store
                    .put_domain(&r.domain.name, Some(r))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        StoreKind::Etcd => {
            let rep = replica(st).await?;
            let (events, _) = rep.read_all().await.map_err(|e| e.to_string())?;
            let rev_of = |k: &Key<'_>| {
                let rel = k.rel();
                events
                    .iter()
                    .find(|e| e.key == rel)
                    .map_or(0, |e| e.revision)
            };
            // One transaction: running replicas see the whole import at once, and a
            // concurrent admin change (which moves meta/config) makes it fail cleanly.
            let mut guards = vec![(Key::Config.rel(), rev_of(&Key::Config))];
            let mut ops = vec![TxnOp::put(rep.key(&Key::Config), "", None)];
            for r in incoming {
                let k = Key::Domain(&r.domain.name);
                guards.push((k.rel(), rev_of(&k)));
                let v = serde_json::to_vec(r).map_err(|e| e.to_string())?;
                ops.push(TxnOp::put(rep.key(&k), v, None));
            }
            match rep.commit(&guards, &[], ops).await.map_err(|e| e.to_string())? {
                Commit::Done(_) => Ok(()),
                Commit::Stale(_) => Err(
                    "the domains changed while importing (a controller wrote meanwhile); run the import again"
                        .into(),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_domain::model::Model;

    fn record(name: &str, vni: u32) -> DomainRecord {
        let mut m = Model::new(0);
        m.create_domain(mcgate_domain::api::DomainSpec {
            name: name.into(),
            vni: Some(vni),
            igmp: Default::default(),
            static_sources: false,
            igmp_settings: Default::default(),
            tunnel: Default::default(),
        })
        .unwrap();
        m.domain_record(name).unwrap().clone()
    }

    #[test]
    fn an_import_never_overwrites_silently_or_reuses_a_vni() {
        let have = [record("a", 10)];
        assert!(check(&have, &[record("b", 11)], false).is_ok());
        let e = check(&have, &[record("a", 10)], false).unwrap_err();
        assert!(e.contains("--replace"), "{e}");
        assert!(check(&have, &[record("a", 10)], true).is_ok());
        let e = check(&have, &[record("b", 10)], false).unwrap_err();
        assert!(e.contains("VNI 10"), "{e}");
    }

    #[tokio::test]
    async fn embedded_export_then_import_moves_the_domains() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let args = |d: &std::path::Path| StoreArgs {
            data_dir: d.to_path_buf(),
            store: StoreKind::Embedded,
            etcd_endpoints: vec![],
            etcd_prefix: crate::etcd::keys::DEFAULT_PREFIX.into(),
            etcd_cacert: None,
            etcd_cert: None,
            etcd_key: None,
            etcd_user: None,
            etcd_password_file: None,
        };
        write(
            &args(from.path()),
            &[record("a", 10), record("b", 11)],
            false,
        )
        .await
        .unwrap();
        let out = read(&args(from.path())).await.unwrap();
        assert_eq!(out.len(), 2);
        write(&args(to.path()), &out, false).await.unwrap();
        assert_eq!(read(&args(to.path())).await.unwrap(), out);
    }
}
