//! Applying what the store holds to a replica's model: the watch's events in, the
//! model's effects out. Pure: no etcd, no clock (times are arguments), so every replica
//! given the same events reaches the same model.
//!
//! A value that cannot be decoded (a damaged or foreign key) is counted and skipped
//! like an absent key: it never stops the replica.

use std::collections::{BTreeSet, HashMap};

use mcgate_domain::model::{DomainRecord, Effect, Model, StoredAgent};

use super::keys::{Key, Live};

/// One change of a key, relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The relative key.
    pub key: String,
    /// The new value; `None` when the key was deleted.
    pub value: Option<Vec<u8>>,
    /// The revision of the change (the key's mod revision when put).
    pub revision: i64,
}

/// What the model does not hold: each key's mod revision (what guarded writes compare),
/// the agents as stored and their leases.
#[derive(Debug, Default)]
pub struct Mirror {
    revs: HashMap<String, i64>,
    stored: HashMap<String, StoredAgent>,
    live: HashMap<String, Live>,
    /// Values that could not be decoded.
    pub undecodable: u64,
}

/// What one batch of events changed outside the model.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The model's effects, for the hub.
    pub effects: Vec<Effect>,
    /// The token store's new value and its revision, when it changed (value `None`:
    /// deleted).
    pub tokens: Option<(Option<Vec<u8>>, i64)>,
}

impl Mirror {
    /// The mod revision of a relative key; 0 when absent (as etcd compares it).
    pub fn rev(&self, key: &Key<'_>) -> i64 {
        self.revs.get(&key.rel()).copied().unwrap_or(0)
    }

    /// The lease of `host`'s live session.
    pub fn live(&self, host: &str) -> Option<Live> {
        self.live.get(host).copied()
    }

    /// The stored agents.
    pub fn stored(&self) -> impl Iterator<Item = (&String, &StoredAgent)> {
        self.stored.iter()
    }

    /// Applies `events` (in revision order) to `model`.
    pub fn apply(&mut self, model: &mut Model, events: Vec<Event>, now_ms: u64) -> Applied {
        let mut out = Applied::default();
        let mut touched = BTreeSet::new();
        for e in events {
            match e.value {
                Some(_) => self.revs.insert(e.key.clone(), e.revision),
                None => self.revs.remove(&e.key),
            };
            match Key::parse(&e.key) {
                Key::Domain(name) => {
                    let record = self.decode::<DomainRecord>(e.value.as_deref());
                    // A record must carry its own key's name, or two keys could fight
                    // over one domain.
                    let record = record.filter(|r| r.domain.name == name);
                    out.effects.extend(model.put_domain(name, record));
                }
                Key::Agent(host) => {
                    match self.decode::<StoredAgent>(e.value.as_deref()) {
                        Some(a) if a.registration.host == host => {
                            self.stored.insert(host.to_string(), a)
                        }
                        _ => self.stored.remove(host),
                    };
                    touched.insert(host.to_string());
                }
                Key::Live(host) => {
                    match self.decode::<Live>(e.value.as_deref()) {
                        Some(l) => self.live.insert(host.to_string(), l),
                        None => self.live.remove(host),
                    };
                    touched.insert(host.to_string());
                }
                Key::Tokens => out.tokens = Some((e.value, e.revision)),
                Key::Epoch | Key::Config | Key::Tunnel(_) | Key::Ca | Key::Other => {}
            }
        }
        for host in touched {
            let record = self.stored.get(&host).map(|a| {
                let live = self.live.get(&host).is_some_and(|l| l.session == a.session);
                a.clone().into_record(live, now_ms)
            });
            out.effects.extend(model.put_agent(&host, record));
        }
        out
    }

    /// The events that take the mirror to `fresh` (a whole read of the store): a
    /// delete for every key it holds that `fresh` lacks, then `fresh`.
    pub fn resync(&self, fresh: Vec<Event>) -> Vec<Event> {
        let have: BTreeSet<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        let revision = fresh.iter().map(|e| e.revision).max().unwrap_or(0);
        let mut out: Vec<Event> = self
            .revs
            .keys()
            .filter(|k| !have.contains(k.as_str()))
            .map(|k| Event {
                key: k.clone(),
                value: None,
                revision,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.extend(fresh);
        out
    }

    fn decode<T: serde::de::DeserializeOwned>(&mut self, value: Option<&[u8]>) -> Option<T> {
        let v = value?;
        match serde_json::from_slice(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.undecodable += 1;
                tracing::warn!(error = %e, "a stored value cannot be read; treated as absent");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
