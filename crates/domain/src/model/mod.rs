//! The controller's state as a pure model: domains with their associations and static
//! members and sources (the configuration), and the agents with their leases and
//! IGMP-learned memberships (soft state). Every operation validates its input, changes
//! the state and returns the [`Effect`]s agents must see; time is an argument.
//!
//! How deltas are found: before an operation the model captures a [`HostView`] of each
//! host the operation can touch (its domains, its peer entry, its merged members per
//! group), and after it captures them again; the difference is the list of changes. This
//! keeps every operation's delta exact without hand-written bookkeeping per verb, and
//! costs only what the touched hosts hold.
//!
//! The verbs live by responsibility: `domains` (the admin verbs on the configuration),
//! `agents` (registration, leases, membership reports), `delta` (the per-host diff and
//! the RFC 3376 merge of memberships); this file holds the types and the read views.

use core::net::{IpAddr, Ipv4Addr};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::SourceFilter;
use crate::api::{
    AgentRegistration, Change, Domain, DomainState, HostMember, Peer, StaticMemberSpec,
    StaticSourceSpec,
};
use crate::tunnel_pool;
use crate::validate::ModelError;
use ipnet::Ipv4Net;

mod agents;
mod delta;
mod domains;
mod gateways;
mod replica;

use agents::unknown_agent;
pub use delta::diff_host;
use delta::merged_members;
pub use replica::StoredAgent;

/// A domain with its configuration: what the store persists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// Settings and associations.
    pub domain: Domain,
    /// Registered static members.
    #[serde(default)]
    pub static_members: Vec<StaticMemberSpec>,
    /// Registered static sources.
    #[serde(default)]
    pub static_sources: Vec<StaticSourceSpec>,
}

impl DomainRecord {
    /// Whether `host`, registered as `reg`, belongs to this domain: associated by name,
    /// or with an associated subnet containing its subnet, its underlay address or the
    /// address of one of its links (a task's own address, in awsvpc-style networks).
    pub fn has_host(&self, host: &str, reg: Option<&AgentRegistration>) -> bool {
        if self.domain.hosts.iter().any(|h| h == host) {
            return true;
        }
        let Some(reg) = reg else { return false };
        self.domain.subnets.iter().any(|s| {
            reg.subnet.is_some_and(|hs| s.contains(&hs))
                || s.contains(reg.underlay.ip())
                || reg
                    .links
                    .iter()
                    .any(|l| l.address.is_some_and(|a| s.contains(&a)))
        })
    }
}

/// A link's membership for a group, as the agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntry {
    /// The link's filter; never INCLUDE {} (that is no membership).
    pub filter: SourceFilter<IpAddr>,
    /// Hosts on the link that reported the group.
    pub reporters: Vec<IpAddr>,
}

/// A group's memberships on an agent's links, sorted by link name. A host has few links
/// per group, and a vector costs a fraction of a map per (host, group): at 100,000
/// memberships that is most of the controller's memory.
pub type LinkEntries = Vec<(String, LinkEntry)>;

/// An agent as the controller knows it.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// Its last registration.
    pub registration: AgentRegistration,
    /// The session of that registration.
    pub session: u64,
    /// When it was last heard from (ms, caller's clock).
    pub last_seen_ms: u64,
    /// Its lease ran out; it has no members until it registers again.
    pub expired: bool,
    /// The highest report sequence applied in this session.
    pub last_seq: Option<u64>,
    /// IGMP and MLD memberships: group → link → entry.
    pub groups: BTreeMap<IpAddr, LinkEntries>,
    /// Its address inside the tunnel, kept across re-registrations.
    pub tunnel_address: Ipv4Addr,
    /// The peers its last heartbeat reported dead (its keepalives from them stopped).
    pub peers_down: BTreeSet<String>,
    /// When its candidacy as an upstream gateway began (a session number; the oldest
    /// live candidate of a range is elected). Meaningless without `registration.upstream`.
    pub gateway_since: u64,
}

impl AgentRecord {
    fn live(&self) -> bool {
        !self.expired
    }

    fn membership_count(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// The host as its peers see it.
    fn peer(&self, host: &str) -> Peer {
        Peer {
            host: host.to_string(),
            underlay: self.registration.underlay,
            public_key: self.registration.public_key.clone(),
            wireguard: self.registration.wireguard_endpoint(),
            tunnel_address: self.tunnel_address,
            egress: self
                .registration
                .upstream
                .as_ref()
                .map(|u| u.egress.clone())
                .unwrap_or_default(),
        }
    }
}

/// What an operation asks the stream layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A change every live agent of `domain` must apply.
    Delta {
        /// The domain whose agents see it.
        domain: String,
        /// The change.
        change: Change,
    },
    /// The set of domains `host` belongs to changed: send it a fresh snapshot.
    Resnapshot {
        /// The host.
        host: String,
    },
    /// `host` is no longer live (deregistered or lease expired): end its stream.
    Close {
        /// The host.
        host: String,
    },
}

/// What a live host contributes to its domains: its peer entry and merged members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// The host's tunnel endpoint.
    pub peer: Peer,
    /// Domain → group → the host's merged filter.
    pub domains: BTreeMap<String, BTreeMap<IpAddr, SourceFilter<IpAddr>>>,
}

/// Domains, agents and their memberships.
#[derive(Debug, Clone, Default)]
pub struct Model {
    domains: BTreeMap<String, DomainRecord>,
    agents: BTreeMap<String, AgentRecord>,
    next_session: u64,
    /// Where tunnel addresses come from; [`tunnel_pool::DEFAULT_POOL`] when `None`.
    tunnel_pool: Option<Ipv4Net>,
}

impl Model {
    /// An empty model whose agent sessions start above `session_base`, so sessions stay
    /// unique across controller restarts.
    pub fn new(session_base: u64) -> Self {
        Self {
            domains: BTreeMap::new(),
            agents: BTreeMap::new(),
            next_session: session_base,
            tunnel_pool: None,
        }
    }

    /// Sets the pool agents' tunnel addresses come from (before any registration).
    pub fn set_tunnel_pool(&mut self, pool: Ipv4Net) {
        self.tunnel_pool = Some(pool);
    }

    /// The pool agents' tunnel addresses come from.
    pub fn tunnel_pool(&self) -> Ipv4Net {
        self.tunnel_pool.unwrap_or(tunnel_pool::DEFAULT_POOL)
    }

    /// Loads persisted domains (on start).
    pub fn load(&mut self, records: impl IntoIterator<Item = DomainRecord>) {
        for r in records {
            self.domains.insert(r.domain.name.clone(), r);
        }
    }

    /// A domain's persisted record.
    pub fn domain_record(&self, name: &str) -> Option<&DomainRecord> {
        self.domains.get(name)
    }

    /// Puts back a domain's record as it was (used to undo an operation the store
    /// refused). Produces no effects: the caller drops the operation's effects too.
    pub fn restore_domain(&mut self, name: &str, record: Option<DomainRecord>) {
        match record {
            Some(r) => self.domains.insert(name.to_string(), r),
            None => self.domains.remove(name),
        };
    }

    /// Every domain.
    pub fn domains(&self) -> Vec<Domain> {
        self.domains.values().map(|r| r.domain.clone()).collect()
    }

    /// One domain.
    pub fn domain(&self, name: &str) -> Result<&DomainRecord, ModelError> {
        self.domains.get(name).ok_or_else(|| {
            ModelError::not_found(
                Some("name"),
                format!("no domain named {name:?}; `mcgate domain list` shows the domains"),
            )
        })
    }

    /// An agent's record.
    pub fn agent(&self, host: &str) -> Option<&AgentRecord> {
        self.agents.get(host)
    }

    /// Number of live agents.
    pub fn live_agents(&self) -> usize {
        self.agents.values().filter(|a| a.live()).count()
    }

    // ---- views -----------------------------------------------------------------------

    /// The domains `host` belongs to.
    pub fn domains_of(&self, host: &str) -> Vec<String> {
        let reg = self.agents.get(host).map(|a| &a.registration);
        self.domains
            .values()
            .filter(|r| r.has_host(host, reg))
            .map(|r| r.domain.name.clone())
            .collect()
    }

    /// The live agents of a domain.
    pub fn live_hosts_of(&self, domain: &str) -> Vec<String> {
        let Some(rec) = self.domains.get(domain) else {
            return Vec::new();
        };
        self.agents
            .iter()
            .filter(|(h, a)| a.live() && rec.has_host(h, Some(&a.registration)))
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Number of registered agents, live or expired.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Whether `host` is registered and its lease holds.
    pub fn is_live(&self, host: &str) -> bool {
        self.agents.get(host).is_some_and(AgentRecord::live)
    }

    /// What a live host contributes; `None` when it is not live.
    pub fn host_view(&self, host: &str) -> Option<HostView> {
        let a = self.agents.get(host).filter(|a| a.live())?;
        let domains = self
            .domains
            .values()
            .filter(|r| r.has_host(host, Some(&a.registration)))
            .map(|r| (r.domain.name.clone(), merged_members(r, host, a)))
            .collect();
        Some(HostView {
            peer: a.peer(host),
            domains,
        })
    }

    /// The whole state of one domain, as a snapshot carries it.
    pub fn domain_state(&self, domain: &str) -> Option<DomainState> {
        let rec = self.domains.get(domain)?;
        let mut peers = Vec::new();
        let mut members = Vec::new();
        for (h, a) in &self.agents {
            if !a.live() || !rec.has_host(h, Some(&a.registration)) {
                continue;
            }
            peers.push(a.peer(h));
            for (group, filter) in merged_members(rec, h, a) {
                members.push(HostMember {
                    host: h.clone(),
                    group,
                    filter,
                });
            }
        }
        Some(DomainState {
            domain: rec.domain.clone(),
            peers,
            members,
            static_members: rec.static_members.clone(),
            static_sources: rec.static_sources.clone(),
            gateways: self.gateways_of(domain),
        })
    }

    /// Every agent's IGMP memberships, for the group table.
    pub(crate) fn agents_iter(&self) -> impl Iterator<Item = (&String, &AgentRecord)> {
        self.agents.iter()
    }

    /// Every domain record, for the group table and the store.
    pub fn domain_records(&self) -> impl Iterator<Item = &DomainRecord> {
        self.domains.values()
    }

    // ---- delta machinery -------------------------------------------------------------

    fn current_agent(&mut self, host: &str, session: u64) -> Result<&mut AgentRecord, ModelError> {
        let rec = self
            .agents
            .get_mut(host)
            .ok_or_else(|| unknown_agent(host))?;
        if rec.session != session {
            return Err(ModelError::stale(format!(
                "session {session} of host {host:?} is stale (current is {}): register again",
                rec.session
            )));
        }
        if rec.expired {
            return Err(ModelError::stale(format!(
                "the lease of host {host:?} expired: register again and send a snapshot"
            )));
        }
        Ok(rec)
    }

    /// Runs `op`, returning the effects on the given hosts.
    fn with_hosts(&mut self, hosts: &[String], op: impl FnOnce(&mut Self)) -> Vec<Effect> {
        let before: Vec<Option<HostView>> = hosts.iter().map(|h| self.host_view(h)).collect();
        let elected_before = self.elections();
        op(self);
        let mut effects = Vec::new();
        for (h, b) in hosts.iter().zip(before) {
            let a = self.host_view(h);
            diff_host(h, b.as_ref(), a.as_ref(), &mut effects);
        }
        gateways::diff_elections(self, &elected_before, &self.elections(), &mut effects);
        effects
    }

    /// Runs `op`, which may change any host's domains, returning every host's effects.
    fn with_all_hosts(&mut self, op: impl FnOnce(&mut Self)) -> Vec<Effect> {
        let hosts: Vec<String> = self.agents.keys().cloned().collect();
        self.with_hosts(&hosts, op)
    }
}
