//! The highly available store: every object in etcd under one key prefix, any number
//! of controller replicas serving the API at once (see `docs/ha.md`).
//!
//! Each replica keeps the model as a cache fed only by one watch of the prefix
//! ([`mirror`]). A write (an admin verb, a registration, a membership report) is a dry
//! run on the cache, then one etcd transaction guarded by the mod revisions of the keys
//! it read (so two replicas never overwrite each other's changes), then a wait until
//! this replica's watch has applied it (so a caller reads its own write). The effects
//! agents see come from the watch, on every replica alike.
//!
//! Once-only work runs on the leader elected through etcd's election API ([`leader`]).
//! This module must never mutate the model outside the watch, and never hold the state
//! lock across an etcd call.

pub mod conn;
pub mod keys;
pub mod mirror;
pub mod replica;

/// Checks a replica name: it names the replica in the election and in status.
pub fn replica_name_ok(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--replica {name:?}: use 1-63 letters, digits, '-', '_' or '.'"
        ))
    }
}
pub mod leader;
pub mod start;
pub mod status;
mod watch;
mod writes;

/// Starts a replica's background work: the watch, the election, the status checks.
pub(crate) fn spawn(
    ctl: &std::sync::Arc<crate::state::Controller>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(rep) = ctl.etcd() else {
        return Vec::new();
    };
    vec![
        tokio::spawn(watch::watch_loop(ctl.clone(), rep.clone())),
        tokio::spawn(leader::leader_loop(ctl.clone(), rep.clone())),
        tokio::spawn(status::status_loop(rep.clone())),
    ]
}
