//! Starting a replica: the epoch its stream revisions start from, the shared CA, the
//! token store and the model, all read from etcd at one revision.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, TxnOp};
use mcgate_domain::model::Model;

use super::keys::{Key, StoredCa};
use super::replica::{Commit, Replica};
use crate::auth::tokens::{SharedSave, Tokens};
use crate::state::{Backend, Config, Controller};

/// The token store kept in `auth/tokens`.
struct EtcdTokens(Arc<Replica>);

/// Runs `fut` to its end from synchronous code inside the multi-threaded runtime.
fn block<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "the shared token store needs the controller's runtime".to_string())?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err("the shared token store needs a multi-threaded runtime".into());
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

impl SharedSave for EtcdTokens {
    fn save(&self, value: Vec<u8>, rev: i64) -> Result<Option<i64>, String> {
        let rep = &self.0;
        let op = TxnOp::put(rep.key(&Key::Tokens), value, None);
        match block(rep.commit(&[(Key::Tokens.rel(), rev)], &[], vec![op]))? {
            Ok(Commit::Done(r)) => Ok(Some(r)),
            Ok(Commit::Stale(_)) => Ok(None),
            Err(e) => Err(super::conn::unavailable(&e).to_string()),
        }
    }

    fn load(&self) -> Result<(Option<Vec<u8>>, i64), String> {
        let rep = &self.0;
        let key = rep.key(&Key::Tokens);
        let r = block(rep.call(|mut c| {
            let k = key.clone();
            async move { c.get(k, None).await }
        }))?
        .map_err(|e| e.to_string())?;
        Ok(match r.kvs().first() {
            Some(kv) => (Some(kv.value().to_vec()), kv.mod_revision()),
            None => (None, 0),
        })
    }
}

/// Takes the next epoch: one above every replica start so far, so each run's stream
/// revisions are its own.
async fn next_epoch(rep: &Replica) -> Result<u64, String> {
    let key = rep.key(&Key::Epoch);
    for _ in 0..20 {
        let r = rep
            .call(|mut c| {
                let k = key.clone();
                async move { c.get(k, None).await }
            })
            .await
            .map_err(|e| format!("cannot read the epoch from etcd: {e}"))?;
        let (n, rev) = match r.kvs().first() {
            Some(kv) => (
                std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
                kv.mod_revision(),
            ),
            None => (0, 0),
        };
        let next = n + 1;
        let put = TxnOp::put(key.clone(), next.to_string(), None);
        match rep
            .commit(&[(Key::Epoch.rel(), rev)], &[], vec![put])
            .await
            .map_err(|e| e.to_string())?
        {
            Commit::Done(_) => return Ok(next),
            Commit::Stale(_) => continue,
        }
    }
    Err("cannot take an epoch: other replicas keep starting; try again".into())
}

/// The shared CA: created by the first replica, read by the others; written to the
/// data directory so the TLS bootstrap finds it there.
async fn shared_ca(rep: &Replica, data_dir: &std::path::Path) -> Result<(), String> {
    let key = rep.key(&Key::Ca);
    let fresh = crate::auth::pki::Ca::generate()?;
    let stored = StoredCa {
        cert_pem: fresh.cert_pem.clone(),
        key_pem: fresh.key_pem(),
    };
    let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
    let txn = etcd_client::Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.clone(), value, None)])
        .or_else([TxnOp::get(key.clone(), None)]);
    let r = rep
        .call(|mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await
        .map_err(|e| format!("cannot read the CA from etcd: {e}"))?;
    let ca = if r.succeeded() {
        tracing::info!("created the domain CA in etcd");
        stored
    } else {
        let kv = r
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            })
            .ok_or("etcd lost the CA it said it had; try again")?;
        serde_json::from_slice::<StoredCa>(kv.value())
            .map_err(|e| format!("the CA in etcd ({key}) cannot be read: {e}"))?
    };
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    for (file, text) in [
        (crate::auth::pki::CA_KEY_FILE, &ca.key_pem),
        (crate::auth::pki::CA_CERT_FILE, &ca.cert_pem),
    ] {
        let path = data_dir.join(file);
        mcgate_client::credentials::write_private(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

impl Controller {
    /// Connects to etcd and loads everything under the prefix (`--store etcd`);
    /// `data_dir` receives the shared CA and this replica's admin credential.
    pub async fn open_etcd(
        config: Config,
        opts: super::conn::EtcdOptions,
        data_dir: &std::path::Path,
    ) -> Result<Arc<Self>, String> {
        let rep = Arc::new(Replica::connect(opts).await?);
        let epoch = next_epoch(&rep).await?;
        shared_ca(&rep, data_dir).await?;
        let (events, rev) = rep
            .read_all()
            .await
            .map_err(|e| format!("cannot read the state from etcd: {e}"))?;
        let tokens_kv = events.iter().find(|e| e.key == Key::Tokens.rel());
        let tokens = Tokens::shared(
            Arc::new(EtcdTokens(rep.clone())),
            tokens_kv.and_then(|e| e.value.as_deref()),
            tokens_kv.map_or(0, |e| e.revision),
        )?;
        let base = epoch << 40;
        let mut model = Model::new(base);
        model.set_tunnel_pool(config.tunnel_pool);
        let mut mirror = super::mirror::Mirror::default();
        let now = 0;
        mirror.apply(&mut model, events, now);
        rep.set_applied(rev);
        tracing::info!(
            replica = %rep.opts.replica,
            revision = rev,
            domains = model.domains().len(),
            agents = model.agent_hosts().len(),
            "loaded the state from etcd"
        );
        Ok(Self::assemble(
            config,
            base,
            model,
            mirror,
            Backend::Etcd(rep),
            tokens,
        ))
    }
}
