//! Setters for a model that mirrors a shared store (the controller's etcd mode): the
//! store decides, and each replica applies what the store holds through these, getting
//! the same [`Effect`]s the verbs would have produced. Also the undo a dry run needs.
//!
//! A stored agent is its [`AgentRecord`] as [`StoredAgent`]: memberships as the
//! [`LinkMembership`] list an agent reports (one shape on the wire and in the store).

use core::net::Ipv4Addr;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agents::apply_link_membership;
use super::*;
use crate::api::LinkMembership;

/// An agent as a shared store keeps it (its liveness is kept apart, by a lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAgent {
    /// Its last registration.
    pub registration: AgentRegistration,
    /// The session of that registration.
    pub session: u64,
    /// The highest report sequence applied in this session.
    pub last_seq: Option<u64>,
    /// Its address inside the tunnel.
    pub tunnel_address: Ipv4Addr,
    /// Its IGMP memberships, one entry per (link, group).
    #[serde(default)]
    pub memberships: Vec<LinkMembership>,
    /// When its lease was seen gone (seconds since the Unix epoch), if it was.
    #[serde(default)]
    pub expired_unix: Option<u64>,
    /// When its candidacy as an upstream gateway began (see [`AgentRecord`]); the
    /// session when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_since: Option<u64>,
}

impl StoredAgent {
    /// The stored form of `rec`.
    pub fn from_record(rec: &AgentRecord) -> Self {
        let memberships = rec
            .groups
            .iter()
            .flat_map(|(g, links)| {
                links.iter().map(|(link, e)| LinkMembership {
                    link: link.clone(),
                    group: *g,
                    filter: Some(e.filter.clone()),
                    reporters: e.reporters.clone(),
                })
            })
            .collect();
        Self {
            registration: rec.registration.clone(),
            session: rec.session,
            last_seq: rec.last_seq,
            tunnel_address: rec.tunnel_address,
            memberships,
            expired_unix: None,
            gateway_since: Some(rec.gateway_since),
        }
    }

    /// The record a replica holds: `live` when its lease holds for this session; an
    /// agent that is not live has no members, whatever the store still lists.
    pub fn into_record(self, live: bool, now_ms: u64) -> AgentRecord {
        let mut groups = BTreeMap::new();
        if live {
            for m in self.memberships {
                apply_link_membership(&mut groups, m);
            }
        }
        AgentRecord {
            registration: self.registration,
            session: self.session,
            last_seen_ms: now_ms,
            expired: !live,
            last_seq: self.last_seq,
            groups,
            tunnel_address: self.tunnel_address,
            peers_down: std::collections::BTreeSet::new(),
            gateway_since: self.gateway_since.unwrap_or(self.session),
        }
    }
}

impl Model {
    /// Sets (or removes) a domain's record as the store holds it; every host's effects.
    pub fn put_domain(&mut self, name: &str, record: Option<DomainRecord>) -> Vec<Effect> {
        self.with_all_hosts(|m| m.restore_domain(name, record))
    }

    /// Sets (or removes) an agent as the store holds it; the effects on that host: a
    /// new session gets a fresh snapshot, an agent no longer live has its stream closed.
    pub fn put_agent(&mut self, host: &str, record: Option<AgentRecord>) -> Vec<Effect> {
        let old = self.agents.get(host).map(|a| (a.session, a.live()));
        let new = record.as_ref().map(|a| (a.session, a.live()));
        let mut effects = self.with_hosts(&[host.to_string()], |m| m.restore_agent(host, record));
        let host = host.to_string();
        let snapshotted = effects
            .iter()
            .any(|e| matches!(e, Effect::Resnapshot { host: h } if *h == host));
        match (old, new) {
            (Some((_, true)), None | Some((_, false))) => effects.push(Effect::Close { host }),
            // As a registration does: a new session starts with a fresh snapshot.
            (_, Some((n, true))) if !snapshotted && old.is_none_or(|(s, live)| s != n || !live) => {
                effects.push(Effect::Resnapshot { host });
            }
            _ => {}
        }
        effects
    }

    /// Puts back an agent's record as it was (the undo of a dry run). No effects.
    pub fn restore_agent(&mut self, host: &str, record: Option<AgentRecord>) {
        match record {
            Some(r) => self.agents.insert(host.to_string(), r),
            None => self.agents.remove(host),
        };
    }

    /// Makes the next registration's session `session` (a shared store picks sessions
    /// no replica can repeat).
    pub fn set_next_session(&mut self, session: u64) {
        self.next_session = session.saturating_sub(1);
    }

    /// Every agent's host name.
    pub fn agent_hosts(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }
}
