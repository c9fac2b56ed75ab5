//! Once-only work, on the replica etcd's election API chose.
//!
//! Each replica campaigns on `<prefix>election` with a lease of its own, renewed twice
//! a second; the leader's lease lapsing (it died) elects the next within about its TTL.
//! etcd itself expires agents' leases; the leader records what that leaves behind:
//! an agent whose lease is gone keeps no memberships in the store and is stamped
//! expired, and is forgotten ten minutes later; and it compacts etcd's history. Every
//! leader write is fenced on its leadership, so a deposed leader writes nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, TxnOp};
use mcgate_domain::model::StoredAgent;
use tokio::time::Instant;

use super::keys::Key;
use super::replica::Replica;
use crate::auth::tokens::unix_now;
use crate::state::{Controller, FORGET_EXPIRED_MS};

/// The TTL of a replica's election lease, seconds: how long a dead leader leads on.
pub const LEADER_TTL_S: i64 = 2;
/// History etcd keeps before the leader compacts it.
const HISTORY: Duration = Duration::from_secs(300);

/// The election's key.
pub fn election(rep: &Replica) -> String {
    format!("{}election", rep.opts.prefix)
}

/// Campaigns, and leads when elected; forever.
pub(crate) async fn leader_loop(ctl: Arc<Controller>, rep: Arc<Replica>) {
    loop {
        let lease = match rep.grant(LEADER_TTL_S).await {
            Ok(l) => l,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (lost_tx, mut lost) = tokio::sync::watch::channel(false);
        // Ends with this task, even when it is aborted.
        let keeper = AbortOnDrop(tokio::spawn(keep_alive(rep.clone(), lease, lost_tx)));
        rep.election_lease
            .store(lease, std::sync::atomic::Ordering::Release);
        let leader_key = tokio::select! {
            k = campaign(&rep, lease) => k,
            _ = lapsed(&mut lost) => None,
        };
        if let Some(key) = leader_key {
            tracing::info!(replica = %rep.opts.replica, "this replica leads");
            rep.seen.lock().unwrap_or_else(|p| p.into_inner()).leading = true;
            let fence = Compare::lease(key, CompareOp::Equal, lease);
            let mut history = VecDeque::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = lapsed(&mut lost) => break,
                    _ = tick.tick() => duties(&ctl, &rep, &fence, &mut history).await,
                }
            }
            rep.seen.lock().unwrap_or_else(|p| p.into_inner()).leading = false;
            tracing::warn!(replica = %rep.opts.replica, "this replica no longer leads");
        }
        drop(keeper);
        rep.revoke(lease).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A clean stop: gives up the election at once (the next replica leads without
/// waiting for the lease to lapse).
pub(crate) async fn resign(rep: &Replica) {
    let lease = rep
        .election_lease
        .swap(0, std::sync::atomic::Ordering::AcqRel);
    if lease != 0 {
        rep.revoke(lease).await;
    }
}

/// Resolves when the keep-alive gave up.
async fn lapsed(lost: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, never held across an await.
    let _ = lost.wait_for(|l| *l).await.map(|_| ());
}

/// Renews `lease` until it cannot; then says so.
async fn keep_alive(rep: Arc<Replica>, lease: i64, lost: tokio::sync::watch::Sender<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_ok = Instant::now();
    loop {
        tick.tick().await;
        match rep.renew(lease).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => break,
            // etcd unreachable: the lease may still hold; give up once it surely lapsed.
            Err(_) if last_ok.elapsed() < Duration::from_secs(LEADER_TTL_S as u64) => {}
            Err(_) => break,
        }
    }
    let _ = lost.send(true);
}

/// Waits to be elected; the leader key, or `None` when the campaign failed.
async fn campaign(rep: &Replica, lease: i64) -> Option<Vec<u8>> {
    let name = election(rep);
    loop {
        // A campaign outlives the client's call timeout; campaigning again with the
        // same lease resumes the same place in line.
        let r = rep
            .client()
            .campaign(name.clone(), rep.opts.replica.clone(), lease)
            .await;
        match r {
            Ok(won) => return won.leader().map(|k| k.key().to_vec()),
            Err(e) => {
                tracing::debug!(error = %e, "campaign interrupted; campaigning again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Keys and the mod revisions a write expects of them.
type Guards = Vec<(String, i64)>;

/// One round of the leader's work.
async fn duties(
    ctl: &Controller,
    rep: &Replica,
    fence: &Compare,
    history: &mut VecDeque<(Instant, i64)>,
) {
    let now = unix_now();
    let forget_s = FORGET_EXPIRED_MS / 1_000;
    let work: Vec<(String, StoredAgent, Guards)> = {
        let g = ctl.lock();
        g.mirror
            .stored()
            .filter(|(h, a)| g.mirror.live(h).is_none_or(|l| l.session != a.session))
            .map(|(h, a)| {
                let guards = vec![
                    (Key::Agent(h).rel(), g.mirror.rev(&Key::Agent(h))),
                    (Key::Live(h).rel(), g.mirror.rev(&Key::Live(h))),
                ];
                (h.clone(), a.clone(), guards)
            })
            .collect()
    };
    for (host, mut a, guards) in work {
        let ops = match a.expired_unix {
            Some(t) if a.memberships.is_empty() && now.saturating_sub(t) >= forget_s => {
                let addr = a.tunnel_address.to_string();
                vec![
                    TxnOp::delete(rep.key(&Key::Agent(&host)), None),
                    TxnOp::delete(rep.key(&Key::Tunnel(&addr)), None),
                ]
            }
            Some(_) if a.memberships.is_empty() => continue,
            _ => {
                a.memberships.clear();
                a.expired_unix.get_or_insert(now);
                let v = serde_json::to_vec(&a).unwrap_or_default();
                vec![TxnOp::put(rep.key(&Key::Agent(&host)), v, None)]
            }
        };
        // A failed guard means the agent came back meanwhile: nothing to do.
        if let Err(e) = rep.commit(&guards, std::slice::from_ref(fence), ops).await {
            tracing::debug!(host = %host, error = %e, "leader bookkeeping deferred");
        }
    }
    compact(rep, history).await;
}

/// Keeps [`HISTORY`] of etcd's revisions and compacts what is older (etcd keeps every
/// revision until told otherwise).
async fn compact(rep: &Replica, history: &mut VecDeque<(Instant, i64)>) {
    let now = Instant::now();
    if history
        .back()
        .is_none_or(|(t, _)| now - *t >= Duration::from_secs(10))
    {
        history.push_back((now, rep.applied()));
    }
    let Some(&(t, rev)) = history.front() else {
        return;
    };
    if now - t < HISTORY {
        return;
    }
    history.pop_front();
    if rev > 0 {
        match rep
            .call(|mut c| async move { c.compact(rev, None).await })
            .await
        {
            Ok(_) => tracing::debug!(revision = rev, "etcd history compacted"),
            Err(e) => tracing::debug!(error = %e, "compaction skipped"),
        }
    }
}
