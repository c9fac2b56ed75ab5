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

use core::net::Ipv4Addr;
use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::SourceFilter;
use crate::api::{
    AgentInfo, AgentRegistration, AssociationSpec, Change, Domain, DomainSpec, DomainState,
    Heartbeat, HostMember, LinkMembership, MembershipAck, MembershipReport, Peer,
    RegistrationReply, StaticMemberSpec, StaticSourceSpec,
};
use crate::validate::{self, ModelError};

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
    pub filter: SourceFilter,
    /// Hosts on the link that reported the group.
    pub reporters: Vec<Ipv4Addr>,
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
    /// IGMP memberships: group → link → entry.
    pub groups: BTreeMap<Ipv4Addr, LinkEntries>,
}

impl AgentRecord {
    fn live(&self) -> bool {
        !self.expired
    }

    fn membership_count(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
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
    pub domains: BTreeMap<String, BTreeMap<Ipv4Addr, SourceFilter>>,
}

/// Domains, agents and their memberships.
#[derive(Debug, Clone, Default)]
pub struct Model {
    domains: BTreeMap<String, DomainRecord>,
    agents: BTreeMap<String, AgentRecord>,
    next_session: u64,
}

impl Model {
    /// An empty model whose agent sessions start above `session_base`, so sessions stay
    /// unique across controller restarts.
    pub fn new(session_base: u64) -> Self {
        Self {
            domains: BTreeMap::new(),
            agents: BTreeMap::new(),
            next_session: session_base,
        }
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

    // ---- domains ---------------------------------------------------------------------

    /// `POST /v1/domains`.
    pub fn create_domain(&mut self, spec: DomainSpec) -> Result<Domain, ModelError> {
        validate::domain_name("name", &spec.name)?;
        validate::igmp_settings(spec.igmp, &spec.igmp_settings)?;
        if self.domains.contains_key(&spec.name) {
            return Err(ModelError::conflict(
                Some("name"),
                format!("a domain named {:?} already exists", spec.name),
            ));
        }
        let vni = match spec.vni {
            Some(v) => {
                validate::vni("vni", v)?;
                if let Some(other) = self.domains.values().find(|r| r.domain.vni == v) {
                    return Err(ModelError::conflict(
                        Some("vni"),
                        format!("VNI {v} is already used by domain {:?}", other.domain.name),
                    ));
                }
                v
            }
            None => {
                let used: BTreeSet<u32> = self.domains.values().map(|r| r.domain.vni).collect();
                (1..=validate::MAX_VNI)
                    .find(|v| !used.contains(v))
                    .ok_or_else(|| ModelError::conflict(Some("vni"), "every VNI is in use"))?
            }
        };
        let domain = Domain {
            name: spec.name.clone(),
            vni,
            igmp: spec.igmp,
            static_sources: spec.static_sources,
            igmp_settings: spec.igmp_settings,
            subnets: Vec::new(),
            hosts: Vec::new(),
        };
        self.domains.insert(
            spec.name,
            DomainRecord {
                domain: domain.clone(),
                static_members: Vec::new(),
                static_sources: Vec::new(),
            },
        );
        Ok(domain)
    }

    /// `DELETE /v1/domains/{name}`: the domain's live hosts get a fresh snapshot.
    pub fn delete_domain(&mut self, name: &str) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        let hosts = self.live_hosts_of(name);
        self.domains.remove(name);
        Ok(hosts
            .into_iter()
            .map(|host| Effect::Resnapshot { host })
            .collect())
    }

    /// `POST /v1/domains/{name}/associations`.
    pub fn associate(
        &mut self,
        name: &str,
        spec: &AssociationSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        let target = association_target(spec)?;
        match &target {
            Target::Subnet(net) => {
                for r in self.domains.values() {
                    if let Some(s) = r.domain.subnets.iter().find(|s| overlaps(s, net)) {
                        return Err(ModelError::conflict(
                            Some("subnet"),
                            if r.domain.name == name && s == net {
                                format!("subnet {net} is already associated with domain {name:?}")
                            } else {
                                format!(
                                    "subnet {net} overlaps {s} of domain {:?}: a subnet belongs to one domain only",
                                    r.domain.name
                                )
                            },
                        ));
                    }
                }
            }
            Target::Host(h) => {
                if self.domains[name].domain.hosts.contains(h) {
                    return Err(ModelError::conflict(
                        Some("host"),
                        format!("host {h:?} is already associated with domain {name:?}"),
                    ));
                }
            }
        }
        Ok(self.with_all_hosts(|m| {
            let d = &mut m.domains.get_mut(name).expect("checked above").domain;
            match target {
                Target::Subnet(net) => {
                    d.subnets.push(net);
                    d.subnets.sort();
                }
                Target::Host(h) => {
                    d.hosts.push(h);
                    d.hosts.sort();
                }
            }
        }))
    }

    /// `DELETE /v1/domains/{name}/associations`.
    pub fn disassociate(
        &mut self,
        name: &str,
        spec: &AssociationSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        let d = &self.domain(name)?.domain;
        let target = association_target(spec)?;
        let present = match &target {
            Target::Subnet(net) => d.subnets.contains(net),
            Target::Host(h) => d.hosts.contains(h),
        };
        if !present {
            let (field, what) = match &target {
                Target::Subnet(net) => ("subnet", format!("subnet {net}")),
                Target::Host(h) => ("host", format!("host {h:?}")),
            };
            return Err(ModelError::not_found(
                Some(field),
                format!("{what} is not associated with domain {name:?}"),
            ));
        }
        Ok(self.with_all_hosts(|m| {
            let d = &mut m.domains.get_mut(name).expect("checked above").domain;
            match target {
                Target::Subnet(net) => d.subnets.retain(|s| *s != net),
                Target::Host(h) => d.hosts.retain(|x| *x != h),
            }
        }))
    }

    /// `POST /v1/domains/{name}/members`.
    pub fn add_static_member(
        &mut self,
        name: &str,
        spec: StaticMemberSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        check_static_member(&spec)?;
        let rec = &self.domains[name];
        if rec.static_members.iter().any(|m| same_member(m, &spec)) {
            return Err(ModelError::conflict(
                Some("group"),
                format!(
                    "host {:?} is already a static member of {} in domain {name:?}",
                    spec.host, spec.group
                ),
            ));
        }
        let host = spec.host.clone();
        let mut effects = vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticMember {
                domain: name.to_string(),
                member: spec.clone(),
                present: true,
            },
        }];
        effects.extend(self.with_hosts(&[host], |m| {
            m.domains
                .get_mut(name)
                .expect("checked above")
                .static_members
                .push(spec)
        }));
        Ok(effects)
    }

    /// `DELETE /v1/domains/{name}/members`: matches on group, host and interface.
    pub fn remove_static_member(
        &mut self,
        name: &str,
        spec: &StaticMemberSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        let rec = self.domain(name)?;
        validate::group("group", spec.group)?;
        let Some(existing) = rec
            .static_members
            .iter()
            .find(|m| same_member(m, spec))
            .cloned()
        else {
            return Err(ModelError::not_found(
                Some("group"),
                format!(
                    "host {:?} is not a static member of {} in domain {name:?}",
                    spec.host, spec.group
                ),
            ));
        };
        let mut effects = self.with_hosts(std::slice::from_ref(&spec.host), |m| {
            m.domains
                .get_mut(name)
                .expect("checked above")
                .static_members
                .retain(|x| !same_member(x, spec))
        });
        effects.push(Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticMember {
                domain: name.to_string(),
                member: existing,
                present: false,
            },
        });
        Ok(effects)
    }

    /// `POST /v1/domains/{name}/sources`.
    pub fn add_static_source(
        &mut self,
        name: &str,
        spec: StaticSourceSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        validate::routable_group("group", spec.group)?;
        validate::unicast("address", spec.address)?;
        if let Some(h) = &spec.host {
            validate::host_name("host", h)?;
        }
        if let Some(i) = &spec.interface {
            validate::link_name("interface", i)?;
        }
        let rec = self.domains.get_mut(name).expect("checked above");
        if rec
            .static_sources
            .iter()
            .any(|s| s.group == spec.group && s.address == spec.address)
        {
            return Err(ModelError::conflict(
                Some("address"),
                format!(
                    "{} is already a static source of {} in domain {name:?}",
                    spec.address, spec.group
                ),
            ));
        }
        rec.static_sources.push(spec.clone());
        Ok(vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticSource {
                domain: name.to_string(),
                source: spec,
                present: true,
            },
        }])
    }

    /// `DELETE /v1/domains/{name}/sources`: matches on group and address.
    pub fn remove_static_source(
        &mut self,
        name: &str,
        spec: &StaticSourceSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        validate::group("group", spec.group)?;
        let rec = self.domains.get_mut(name).expect("checked above");
        let Some(pos) = rec
            .static_sources
            .iter()
            .position(|s| s.group == spec.group && s.address == spec.address)
        else {
            return Err(ModelError::not_found(
                Some("address"),
                format!(
                    "{} is not a static source of {} in domain {name:?}",
                    spec.address, spec.group
                ),
            ));
        };
        let source = rec.static_sources.remove(pos);
        Ok(vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticSource {
                domain: name.to_string(),
                source,
                present: false,
            },
        }])
    }

    // ---- agents ----------------------------------------------------------------------

    /// `POST /v1/agents`: a new session every time. The host keeps the memberships it
    /// had (so remote hosts see no flap) until its snapshot report replaces them.
    pub fn register(
        &mut self,
        reg: AgentRegistration,
        now_ms: u64,
        lease_ms: u64,
        heartbeat_ms: u64,
    ) -> Result<(RegistrationReply, Vec<Effect>), ModelError> {
        validate::host_name("host", &reg.host)?;
        validate::unicast("underlay", *reg.underlay.ip())?;
        for (i, l) in reg.links.iter().enumerate() {
            validate::link_name(&format!("links[{i}].name"), &l.name)?;
        }
        self.next_session += 1;
        let session = self.next_session;
        let host = reg.host.clone();
        let mut effects = self.with_hosts(std::slice::from_ref(&host), |m| {
            let rec = m.agents.entry(host.clone()).or_insert_with(|| AgentRecord {
                registration: reg.clone(),
                session,
                last_seen_ms: now_ms,
                expired: false,
                last_seq: None,
                groups: BTreeMap::new(),
            });
            rec.registration = reg;
            rec.session = session;
            rec.last_seen_ms = now_ms;
            rec.expired = false;
            rec.last_seq = None;
        });
        // A new session always starts with a fresh snapshot, whatever changed.
        if !effects
            .iter()
            .any(|e| matches!(e, Effect::Resnapshot { host: h } if *h == host))
        {
            effects.push(Effect::Resnapshot { host: host.clone() });
        }
        let reply = RegistrationReply {
            session,
            lease_ms,
            heartbeat_ms,
            domains: self.domains_of(&host),
        };
        Ok((reply, effects))
    }

    /// `POST /v1/agents/{host}/heartbeat`.
    pub fn heartbeat(&mut self, host: &str, hb: &Heartbeat, now_ms: u64) -> Result<(), ModelError> {
        let rec = self.current_agent(host, hb.session)?;
        rec.last_seen_ms = now_ms;
        Ok(())
    }

    /// `POST /v1/agents/{host}/membership`.
    pub fn report(
        &mut self,
        host: &str,
        report: MembershipReport,
        now_ms: u64,
    ) -> Result<(MembershipAck, Vec<Effect>), ModelError> {
        let rec = self.current_agent(host, report.session)?;
        rec.last_seen_ms = now_ms;
        if let Some(last) = rec.last_seq
            && report.seq <= last
        {
            // A retransmission of a report already applied.
            return Ok((MembershipAck { seq: last }, Vec::new()));
        }
        for (i, e) in report.entries.iter().enumerate() {
            validate::link_name(&format!("entries[{i}].link"), &e.link)?;
            validate::group(&format!("entries[{i}].group"), e.group)?;
        }
        let seq = report.seq;
        let effects = self.with_hosts(&[host.to_string()], |m| {
            let rec = m.agents.get_mut(host).expect("checked above");
            rec.last_seq = Some(seq);
            if report.snapshot {
                rec.groups.clear();
            }
            for e in report.entries {
                apply_link_membership(&mut rec.groups, e);
            }
        });
        Ok((MembershipAck { seq }, effects))
    }

    /// `DELETE /v1/agents/{host}`.
    pub fn deregister(&mut self, host: &str) -> Result<Vec<Effect>, ModelError> {
        if !self.agents.contains_key(host) {
            return Err(unknown_agent(host));
        }
        let mut effects = self.with_hosts(&[host.to_string()], |m| {
            m.agents.remove(host);
        });
        effects.push(Effect::Close {
            host: host.to_string(),
        });
        Ok(effects)
    }

    /// Expires every agent not heard from for `lease_ms`: its members go, it stops
    /// being a peer, and its stream is closed.
    pub fn expire(&mut self, now_ms: u64, lease_ms: u64) -> Vec<Effect> {
        let due: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.live() && now_ms.saturating_sub(a.last_seen_ms) >= lease_ms)
            .map(|(h, _)| h.clone())
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let mut effects = self.with_hosts(&due, |m| {
            for h in &due {
                if let Some(a) = m.agents.get_mut(h) {
                    a.expired = true;
                    a.groups.clear();
                }
            }
        });
        effects.extend(due.into_iter().map(|host| Effect::Close { host }));
        effects
    }

    /// Forgets agents whose lease expired more than `after_ms` ago, so hosts that are
    /// gone for good do not accumulate. They have no members and no stream, so nothing
    /// else changes. Returns how many were forgotten.
    pub fn forget_expired(&mut self, now_ms: u64, after_ms: u64) -> usize {
        let before = self.agents.len();
        self.agents
            .retain(|_, a| a.live() || now_ms.saturating_sub(a.last_seen_ms) < after_ms);
        before - self.agents.len()
    }

    /// When the next lease runs out, if any agent is live.
    pub fn next_expiry(&self, lease_ms: u64) -> Option<u64> {
        self.agents
            .values()
            .filter(|a| a.live())
            .map(|a| a.last_seen_ms.saturating_add(lease_ms))
            .min()
    }

    /// `GET /v1/agents`.
    pub fn agent_infos(&self, now_ms: u64) -> Vec<AgentInfo> {
        self.agents
            .iter()
            .map(|(h, a)| AgentInfo {
                host: h.clone(),
                underlay: a.registration.underlay,
                subnet: a.registration.subnet,
                links: a.registration.links.clone(),
                domains: self.domains_of(h),
                state: if a.live() { "up" } else { "expired" }.to_string(),
                last_seen_ms: now_ms.saturating_sub(a.last_seen_ms),
                memberships: a.membership_count(),
                dataplane: a.registration.dataplane.clone(),
            })
            .collect()
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
            peer: Peer {
                host: host.to_string(),
                underlay: a.registration.underlay,
            },
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
            peers.push(Peer {
                host: h.clone(),
                underlay: a.registration.underlay,
            });
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
        op(self);
        let mut effects = Vec::new();
        for (h, b) in hosts.iter().zip(before) {
            let a = self.host_view(h);
            diff_host(h, b.as_ref(), a.as_ref(), &mut effects);
        }
        effects
    }

    /// Runs `op`, which may change any host's domains, returning every host's effects.
    fn with_all_hosts(&mut self, op: impl FnOnce(&mut Self)) -> Vec<Effect> {
        let hosts: Vec<String> = self.agents.keys().cloned().collect();
        self.with_hosts(&hosts, op)
    }
}

/// The changes that turn `before` into `after` for `host`.
pub fn diff_host(
    host: &str,
    before: Option<&HostView>,
    after: Option<&HostView>,
    out: &mut Vec<Effect>,
) {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = before
        .iter()
        .flat_map(|v| v.domains.keys())
        .chain(after.iter().flat_map(|v| v.domains.keys()))
        .collect();
    for d in names {
        let b = before.and_then(|v| v.domains.get(d));
        let a = after.and_then(|v| v.domains.get(d));
        let delta = |change| Effect::Delta {
            domain: d.clone(),
            change,
        };
        let b_peer = b.and(before.map(|v| &v.peer));
        let a_peer = a.and(after.map(|v| &v.peer));
        if let Some(peer) = a_peer
            && a_peer != b_peer
        {
            out.push(delta(Change::PeerUp {
                domain: d.clone(),
                peer: peer.clone(),
            }));
        }
        let (bm, am) = (b.unwrap_or(&empty), a.unwrap_or(&empty));
        for (g, f) in am {
            if bm.get(g) != Some(f) {
                out.push(delta(Change::Member {
                    domain: d.clone(),
                    host: host.to_string(),
                    group: *g,
                    filter: Some(f.clone()),
                }));
            }
        }
        for g in bm.keys() {
            if !am.contains_key(g) {
                out.push(delta(Change::Member {
                    domain: d.clone(),
                    host: host.to_string(),
                    group: *g,
                    filter: None,
                }));
            }
        }
        if b_peer.is_some() && a_peer.is_none() {
            out.push(delta(Change::PeerDown {
                domain: d.clone(),
                host: host.to_string(),
            }));
        }
    }
    if let Some(a) = after {
        let same_domains = before.is_some_and(|b| b.domains.keys().eq(a.domains.keys()));
        if !same_domains {
            out.push(Effect::Resnapshot {
                host: host.to_string(),
            });
        }
    }
}

/// A host's members in a domain: its IGMP memberships (every link) merged with its
/// static members, per group (RFC 3376 section 3.2 merge). Link-local groups
/// (224.0.0.0/24) are never forwarded and so never listed.
fn merged_members(
    rec: &DomainRecord,
    host: &str,
    agent: &AgentRecord,
) -> BTreeMap<Ipv4Addr, SourceFilter> {
    let mut out: BTreeMap<Ipv4Addr, SourceFilter> = BTreeMap::new();
    for (g, links) in &agent.groups {
        if validate::is_link_local_group(*g) {
            continue;
        }
        for (_, e) in links {
            merge_into(&mut out, *g, &e.filter);
        }
    }
    for m in rec.static_members.iter().filter(|m| m.host == host) {
        // A static member wants every source and ignores IGMP leaves.
        merge_into(&mut out, m.group, &SourceFilter::any_source());
    }
    out
}

fn merge_into(out: &mut BTreeMap<Ipv4Addr, SourceFilter>, g: Ipv4Addr, f: &SourceFilter) {
    match out.get_mut(&g) {
        Some(cur) => *cur = cur.merge(f),
        None => {
            out.insert(g, f.clone());
        }
    }
}

fn apply_link_membership(groups: &mut BTreeMap<Ipv4Addr, LinkEntries>, e: LinkMembership) {
    match e.filter.filter(|f| !f.is_empty()) {
        Some(filter) => {
            let mut reporters = e.reporters;
            reporters.sort();
            reporters.dedup();
            let links = groups.entry(e.group).or_default();
            let entry = LinkEntry { filter, reporters };
            match links.binary_search_by(|(l, _)| l.as_str().cmp(&e.link)) {
                Ok(i) => links[i].1 = entry,
                Err(i) => links.insert(i, (e.link, entry)),
            }
        }
        None => {
            if let Some(links) = groups.get_mut(&e.group) {
                links.retain(|(l, _)| *l != e.link);
                if links.is_empty() {
                    groups.remove(&e.group);
                }
            }
        }
    }
}

fn unknown_agent(host: &str) -> ModelError {
    ModelError::not_found(
        Some("host"),
        format!("no agent named {host:?} is registered: register first"),
    )
}

fn check_static_member(spec: &StaticMemberSpec) -> Result<(), ModelError> {
    validate::routable_group("group", spec.group)?;
    validate::host_name("host", &spec.host)?;
    if let Some(i) = &spec.interface {
        validate::link_name("interface", i)?;
    }
    if let Some(a) = spec.address {
        validate::unicast("address", a)?;
    }
    Ok(())
}

/// Static members are identified by group, host and interface; the address is a label.
fn same_member(a: &StaticMemberSpec, b: &StaticMemberSpec) -> bool {
    a.group == b.group && a.host == b.host && a.interface == b.interface
}

enum Target {
    Subnet(Ipv4Net),
    Host(String),
}

fn association_target(spec: &AssociationSpec) -> Result<Target, ModelError> {
    match (&spec.subnet, &spec.host) {
        (Some(net), None) => {
            if net.trunc() != *net {
                return Err(ModelError::invalid(
                    "subnet",
                    format!("{net} has host bits set; did you mean {}?", net.trunc()),
                ));
            }
            Ok(Target::Subnet(*net))
        }
        (None, Some(h)) => {
            validate::host_name("host", h)?;
            Ok(Target::Host(h.clone()))
        }
        _ => Err(ModelError::invalid(
            "subnet",
            "give exactly one of `subnet` and `host`",
        )),
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
