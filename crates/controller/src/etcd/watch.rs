//! The one watch that feeds a replica's model: every event under the prefix, applied
//! in revision order, from the revision the replica loaded onwards.
//!
//! A broken watch (etcd restarting, quorum lost) is re-opened from the last applied
//! revision; a compacted one (the history it needs is gone) reloads everything.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use super::replica::Replica;
use crate::state::Controller;

/// How often the watch asks etcd to confirm it is current (the lag in status).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Feeds the model from etcd; forever.
pub(crate) async fn watch_loop(ctl: Arc<Controller>, rep: Arc<Replica>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let from = rep.applied() + 1;
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_progress_notify();
        let mut stream = match rep
            .client()
            .watch(rep.opts.prefix.clone(), Some(opts))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch etcd; reads go on from the last state");
                rep.set_writable(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            if resp.compact_revision() > 0 {
                                tracing::warn!(compacted = resp.compact_revision(), "the watch fell behind etcd's compaction; reloading");
                                reload(&ctl, &rep).await;
                            } else {
                                tracing::warn!(reason = %resp.cancel_reason(), "etcd ended the watch; watching again");
                                rep.set_writable(false);
                            }
                            break;
                        }
                        let events: Vec<_> = resp
                            .events()
                            .iter()
                            .filter_map(|e| rep.event(e.kv()?, e.event_type() == EventType::Delete))
                            .collect();
                        let last = events.iter().map(|e| e.revision).max();
                        if !events.is_empty() {
                            ctl.apply_store_events(events);
                        }
                        // Progress answers only confirm the watch is alive: etcd before
                        // 3.4.25/3.5.8 may send one ahead of events still queued (etcd
                        // issue 15220), so they never move the applied revision.
                        if let Some(r) = last {
                            rep.set_applied(r);
                        }
                        rep.watch_confirmed();
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!("the etcd watch broke; watching again");
                        break;
                    }
                },
                _ = tick.tick() => {
                    let _ = stream.request_progress().await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces the model by a fresh read of the store (after a compaction).
async fn reload(ctl: &Arc<Controller>, rep: &Replica) {
    loop {
        match rep.read_all().await {
            Ok((events, rev)) => {
                let all = ctl.lock().mirror.resync(events);
                ctl.apply_store_events(all);
                rep.set_applied(rev);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload from etcd; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
