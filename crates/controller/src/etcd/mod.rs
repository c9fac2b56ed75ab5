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

pub mod keys;
pub mod mirror;
