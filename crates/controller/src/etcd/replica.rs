//! One replica's link to etcd: its clients, the guarded commit, the wait for its own
//! watch, agents' leases, and what it knows of etcd's health.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};
use mcgate_domain::api::EtcdMember;
use tokio::sync::watch;

use super::conn::{self, EtcdOptions};
use super::keys::Key;
use super::mirror::Event;
use crate::state::OpError;

/// How long a write waits for this replica's watch to show it.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// What this replica knows of the cluster, refreshed every second.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Whether this replica leads.
    pub leading: bool,
    /// The leader's name.
    pub leader: Option<String>,
    /// etcd's members.
    pub members: Vec<EtcdMember>,
    /// When the watch last confirmed it is current (tokio clock).
    pub watch_ok: Option<tokio::time::Instant>,
}

/// The outcome of a guarded transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Applied at this revision.
    Done(i64),
    /// A guard failed: the store moved on since the dry run; the newest revision of
    /// a guarded key still present (its event is on the way to the watch), if any.
    Stale(Option<i64>),
}

/// One key a write sets or deletes.
#[derive(Debug, Clone)]
pub struct Write {
    /// The full key.
    pub key: String,
    /// The value; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// The etcd lease the key is bound to.
    pub lease: Option<i64>,
    /// Whether [`Replica::took`] checks it (not for keys every write rewrites alike).
    pub checked: bool,
}

impl Write {
    /// Sets `key` to `value`.
    pub fn put(key: String, value: Vec<u8>) -> Self {
        Self {
            key,
            value: Some(value),
            lease: None,
            checked: true,
        }
    }

    /// Deletes `key`.
    pub fn delete(key: String) -> Self {
        Self {
            key,
            value: None,
            lease: None,
            checked: true,
        }
    }

    /// Binds the key to `lease`.
    pub fn leased(mut self, lease: i64) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Not checked by [`Replica::took`].
    pub fn unchecked(mut self) -> Self {
        self.checked = false;
        self
    }

    /// The transaction operation.
    pub fn op(&self) -> TxnOp {
        match &self.value {
            Some(v) => TxnOp::put(
                self.key.clone(),
                v.clone(),
                self.lease
                    .map(|l| etcd_client::PutOptions::new().with_lease(l)),
            ),
            None => TxnOp::delete(self.key.clone(), None),
        }
    }
}

/// A replica's etcd link.
pub struct Replica {
    /// How it reaches etcd.
    pub opts: EtcdOptions,
    client: Client,
    loose: Client,
    applied: watch::Sender<i64>,
    writable: AtomicBool,
    /// The cluster as last seen.
    pub seen: Mutex<Seen>,
    /// Clients to each member, for their status.
    pub(crate) members: tokio::sync::Mutex<HashMap<String, Client>>,
    /// The lease this replica campaigns with (0: none), revoked on a clean stop so
    /// leadership moves at once.
    pub(crate) election_lease: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("replica", &self.opts.replica)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Connects (see [`EtcdOptions::connect`]).
    pub async fn connect(opts: EtcdOptions) -> Result<Self, String> {
        opts.validate()?;
        let (client, loose) = opts.connect().await?;
        Ok(Self {
            opts,
            client,
            loose,
            applied: watch::channel(0).0,
            writable: AtomicBool::new(true),
            seen: Mutex::new(Seen::default()),
            members: tokio::sync::Mutex::new(HashMap::new()),
            election_lease: 0.into(),
        })
    }

    /// The full key of `k`.
    pub fn key(&self, k: &Key<'_>) -> String {
        format!("{}{}", self.opts.prefix, k.rel())
    }

    /// The client that needs an etcd leader (writes).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The client that does not (status, reads without quorum).
    pub fn loose(&self) -> Client {
        self.loose.clone()
    }

    /// Runs `call` on the strict client, again (up to three times) when it never
    /// reached etcd: the client spreads calls over the members, and one that is down
    /// fails them at once.
    pub async fn call<T, F>(&self, call: impl Fn(Client) -> F) -> Result<T, etcd_client::Error>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut tries = 0;
        loop {
            match call(self.client.clone()).await {
                Err(e) if tries < 3 && conn::not_sent(&e) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(e) => {
                    if !conn::not_sent(&e) {
                        self.writable.store(false, Ordering::Release);
                    }
                    return Err(e);
                }
                Ok(t) => {
                    self.writable.store(true, Ordering::Release);
                    return Ok(t);
                }
            }
        }
    }

    /// The answer to a write etcd could not take for [`RIDE_OUT`](super::writes) (no
    /// leader, members unreachable), with what this replica sees of the members.
    /// `uncertain`: an earlier try timed out, so etcd may still apply it.
    pub fn cannot_write(&self, uncertain: bool) -> OpError {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let up = seen.members.iter().filter(|m| m.reachable).count();
        let of = seen.members.len().max(self.opts.endpoints.len());
        let outcome = if uncertain {
            "A try timed out, so etcd may still make the change when it recovers: read it \
             back before trying again"
        } else {
            "Nothing was changed"
        };
        OpError::Unavailable(format!(
            "etcd cannot take writes now: it has no leader ({up} of {of} members reachable; \
             a majority is needed for quorum). {outcome}; reads and forwarding go on with the \
             last state, and writes work again when a majority of etcd members is back"
        ))
    }

    /// Whether the last write (or the last health check) found etcd writable.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    pub(crate) fn set_writable(&self, w: bool) {
        self.writable.store(w, Ordering::Release);
    }

    /// One transaction: `ops` when every key in `guards` (relative) still has the mod
    /// revision given (0: absent), plus `fence` compares.
    pub async fn commit(
        &self,
        guards: &[(String, i64)],
        fence: &[Compare],
        ops: Vec<TxnOp>,
    ) -> Result<Commit, etcd_client::Error> {
        let mut when: Vec<Compare> = guards
            .iter()
            .map(|(k, r)| {
                Compare::mod_revision(format!("{}{k}", self.opts.prefix), CompareOp::Equal, *r)
            })
            .collect();
        when.extend_from_slice(fence);
        let reads: Vec<TxnOp> = guards
            .iter()
            .map(|(k, _)| TxnOp::get(format!("{}{k}", self.opts.prefix), None))
            .collect();
        let txn = Txn::new().when(when).and_then(ops).or_else(reads);
        let r = self
            .call(|mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(Commit::Done(r.header().map_or(0, |h| h.revision())));
        }
        let newest = r
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => g.kvs().first().map(KeyValue::mod_revision),
                _ => None,
            })
            .max();
        Ok(Commit::Stale(newest))
    }

    /// Whether every checked write of `writes` is in place now (a call whose outcome
    /// was unknown took effect): the newest revision among them, if so.
    pub async fn took(&self, writes: &[Write]) -> Result<Option<i64>, etcd_client::Error> {
        let mut newest = 0;
        for w in writes.iter().filter(|w| w.checked) {
            let key = w.key.clone();
            let r = self
                .call(|mut c| {
                    let k = key.clone();
                    async move { c.get(k, None).await }
                })
                .await?;
            match (r.kvs().first(), &w.value) {
                (Some(kv), Some(v)) if kv.value() == v.as_slice() => {
                    newest = newest.max(kv.mod_revision());
                }
                (None, None) => {}
                _ => return Ok(None),
            }
        }
        Ok((newest > 0).then_some(newest))
    }

    /// Waits until this replica's watch has applied `rev`.
    pub async fn wait_applied(&self, rev: i64) -> Result<(), OpError> {
        let mut rx = self.applied.subscribe();
        if *rx.borrow() >= rev {
            return Ok(());
        }
        match tokio::time::timeout(APPLY_WAIT, rx.wait_for(|a| *a >= rev)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(OpError::Unavailable(format!(
                "etcd took the change (revision {rev}) but this replica's watch has not shown it \
                 within {}s; it will appear shortly: read it back before trying again",
                APPLY_WAIT.as_secs()
            ))),
        }
    }

    /// The watch has just shown it is current.
    pub(crate) fn watch_confirmed(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).watch_ok =
            Some(tokio::time::Instant::now());
    }

    /// The last revision the watch applied.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    pub(crate) fn set_applied(&self, rev: i64) {
        self.applied.send_if_modified(|a| {
            let moved = rev > *a;
            if moved {
                *a = rev;
            }
            moved
        });
    }

    /// Everything under the prefix, and the revision it was read at.
    pub async fn read_all(&self) -> Result<(Vec<Event>, i64), etcd_client::Error> {
        let prefix = self.opts.prefix.clone();
        let r = self
            .call(|mut c| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        let events = r
            .kvs()
            .iter()
            .filter_map(|kv| self.event(kv, false))
            .collect();
        Ok((events, rev))
    }

    /// A key-value as a mirror event (`None` outside the prefix).
    pub fn event(&self, kv: &KeyValue, deleted: bool) -> Option<Event> {
        let key = std::str::from_utf8(kv.key())
            .ok()?
            .strip_prefix(&self.opts.prefix)?
            .to_string();
        Some(Event {
            key,
            value: (!deleted).then(|| kv.value().to_vec()),
            revision: kv.mod_revision(),
        })
    }

    /// Grants an etcd lease of `ttl_s` seconds.
    pub async fn grant(&self, ttl_s: i64) -> Result<i64, OpError> {
        let r = self
            .call(|mut c| async move { c.lease_grant(ttl_s, None).await })
            .await
            .map_err(|e| conn::unavailable(&e))?;
        Ok(r.id())
    }

    /// Revokes a lease (its keys go); an unknown lease is no error.
    pub async fn revoke(&self, lease: i64) {
        if let Err(e) = self
            .call(|mut c| async move { c.lease_revoke(lease).await })
            .await
        {
            tracing::debug!(lease, error = %e, "lease revoke failed (it expires by itself)");
        }
    }

    /// Renews a lease once; `false` when etcd no longer has it.
    pub async fn renew(&self, lease: i64) -> Result<bool, OpError> {
        let r = self
            .call(|mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await;
        match r {
            Ok(Some(m)) => Ok(m.ttl() > 0),
            Ok(None) => Ok(false),
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
            Err(e) => Err(conn::unavailable(&e)),
        }
    }
}
