//! The agents' verbs: registration (a new session each time), heartbeats and leases,
//! membership reports (snapshots and changes, ordered by sequence).

use core::net::{IpAddr, Ipv4Addr};
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::api::*;
use crate::tunnel_pool;
use crate::validate::{self, ModelError};

impl Model {
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
        validate::public_key("public_key", &reg.public_key)?;
        if let Some(wg) = reg.wireguard {
            validate::unicast("wireguard", *wg.ip())?;
        }
        if let Some(z) = &reg.zone {
            validate::zone("zone", z)?;
        }
        if let Some(up) = &reg.upstream {
            validate::link_name("upstream.interface", &up.interface)?;
            for (field, ranges) in [("groups", &up.groups), ("egress", &up.egress)] {
                if ranges.len() > validate::MAX_UPSTREAM_RANGES {
                    return Err(ModelError::invalid(
                        format!("upstream.{field}"),
                        format!(
                            "{} upstream ranges: at most {} are accepted",
                            ranges.len(),
                            validate::MAX_UPSTREAM_RANGES
                        ),
                    ));
                }
                for (i, r) in ranges.iter().enumerate() {
                    validate::upstream_range(&format!("upstream.{field}[{i}]"), *r)?;
                }
            }
        }
        let tunnel_address = self.tunnel_address_for(&reg.host)?;
        self.next_session += 1;
        let session = self.next_session;
        let gateway_since = self.candidacy(&reg.host, session);
        let host = reg.host.clone();
        let mut effects = self.with_hosts(std::slice::from_ref(&host), |m| {
            let rec = m.agents.entry(host.clone()).or_insert_with(|| AgentRecord {
                registration: reg.clone(),
                session,
                last_seen_ms: now_ms,
                expired: false,
                last_seq: None,
                groups: BTreeMap::new(),
                tunnel_address,
                peers_down: BTreeSet::new(),
                gateway_since,
            });
            rec.registration = reg;
            rec.tunnel_address = tunnel_address;
            rec.session = session;
            rec.last_seen_ms = now_ms;
            rec.expired = false;
            rec.last_seq = None;
            rec.peers_down.clear();
            rec.gateway_since = gateway_since;
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
            tunnel_address: Some(tunnel_address),
            tunnel_pool: Some(self.tunnel_pool()),
        };
        Ok((reply, effects))
    }

    /// The tunnel address of `host`: the one it holds if still in the pool, else the
    /// first free one (never one another agent holds).
    fn tunnel_address_for(&self, host: &str) -> Result<Ipv4Addr, ModelError> {
        let pool = self.tunnel_pool();
        if let Some(a) = self.agents.get(host).map(|a| a.tunnel_address)
            && tunnel_pool::contains(pool, a)
        {
            return Ok(a);
        }
        let used: BTreeSet<Ipv4Addr> = self
            .agents
            .iter()
            .filter(|(h, _)| h.as_str() != host)
            .map(|(_, a)| a.tunnel_address)
            .collect();
        tunnel_pool::assign(pool, host, &used).ok_or_else(|| {
            ModelError::conflict(
                Some("host"),
                format!("the tunnel pool {pool} has no free address left: give the controller a larger --tunnel-pool"),
            )
        })
    }

    /// `POST /v1/agents/{host}/heartbeat`. Returns whether the peers it reports dead
    /// changed (then an early removal may be due: see [`Self::confirmed_losses`]).
    pub fn heartbeat(
        &mut self,
        host: &str,
        hb: &Heartbeat,
        now_ms: u64,
    ) -> Result<bool, ModelError> {
        if hb.peers_down.len() > validate::MAX_PEERS_DOWN {
            return Err(ModelError::invalid(
                "peers_down",
                format!(
                    "{} peers reported down: at most {} are accepted",
                    hb.peers_down.len(),
                    validate::MAX_PEERS_DOWN
                ),
            ));
        }
        for p in &hb.peers_down {
            validate::host_name("peers_down", p)?;
        }
        let rec = self.current_agent(host, hb.session)?;
        rec.last_seen_ms = now_ms;
        let changed = rec.peers_down != hb.peers_down;
        if changed {
            rec.peers_down = hb.peers_down.clone();
        }
        Ok(changed)
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
            if let Some(f) = &e.filter {
                validate::filter_family(&format!("entries[{i}].filter"), e.group, f)?;
            }
            for r in &e.reporters {
                validate::same_family(&format!("entries[{i}].reporters"), e.group, *r)?;
            }
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
        self.expire_hosts(&due)
    }

    /// Expires the live agents among `hosts` now, as a lease expiry does.
    pub fn expire_hosts(&mut self, hosts: &[String]) -> Vec<Effect> {
        let due: Vec<String> = hosts
            .iter()
            .filter(|h| self.agents.get(h.as_str()).is_some_and(AgentRecord::live))
            .cloned()
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let mut effects = self.with_hosts(&due, |m| {
            for h in &due {
                if let Some(a) = m.agents.get_mut(h) {
                    a.expired = true;
                    a.groups.clear();
                    a.peers_down.clear();
                }
            }
        });
        effects.extend(due.into_iter().map(|host| Effect::Close { host }));
        effects
    }

    /// The live hosts that peers report dead, each with its witnesses: the live
    /// agents heard within `confirm_ms` whose last heartbeat reports it dead.
    fn reported(&self, now_ms: u64, confirm_ms: u64) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (reporter, r) in &self.agents {
            if !r.live() || now_ms.saturating_sub(r.last_seen_ms) >= confirm_ms {
                // A witness that is itself silent proves nothing.
                continue;
            }
            for suspect in &r.peers_down {
                if suspect != reporter
                    && let Some((h, _)) = self.agents.get_key_value(suspect.as_str())
                    && self.agents.get(h).is_some_and(AgentRecord::live)
                {
                    out.entry(h.as_str()).or_default().push(reporter.as_str());
                }
            }
        }
        out
    }

    /// The hosts to remove before their lease runs out: reported dead by at least one
    /// live peer (its keepalives stopped) AND silent towards the controller for
    /// `confirm_ms` (no heartbeat or report). A peer's report alone never removes a
    /// host that still heartbeats (a fault between two hosts is not a dead host), and
    /// silence alone waits for the lease. Each with its witnesses, by host name.
    pub fn confirmed_losses(&self, now_ms: u64, confirm_ms: u64) -> Vec<(String, Vec<String>)> {
        self.reported(now_ms, confirm_ms)
            .into_iter()
            .filter(|(h, _)| {
                self.agents
                    .get(*h)
                    .is_some_and(|a| now_ms.saturating_sub(a.last_seen_ms) >= confirm_ms)
            })
            .map(|(h, w)| (h.to_string(), w.into_iter().map(str::to_string).collect()))
            .collect()
    }

    /// When the next reported host's silence reaches `confirm_ms`, if one is reported.
    pub fn next_confirmation(&self, now_ms: u64, confirm_ms: u64) -> Option<u64> {
        self.reported(now_ms, confirm_ms)
            .keys()
            .filter_map(|h| self.agents.get(*h))
            .map(|a| a.last_seen_ms.saturating_add(confirm_ms))
            .min()
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
        let mut elected: BTreeMap<&str, BTreeSet<ipnet::Ipv4Net>> = BTreeMap::new();
        let elections = self.elections();
        for (r, h) in elections.values().flatten() {
            elected.entry(h.as_str()).or_default().insert(*r);
        }
        let mut reported: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (reporter, r) in self.agents.iter().filter(|(_, r)| r.live()) {
            for suspect in &r.peers_down {
                reported
                    .entry(suspect.as_str())
                    .or_default()
                    .push(reporter.clone());
            }
        }
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
                public_key: a.registration.public_key.clone(),
                tunnel_address: Some(a.tunnel_address),
                zone: a.registration.zone.clone(),
                peers_down: a.peers_down.iter().cloned().collect(),
                reported_down_by: reported.get(h.as_str()).cloned().unwrap_or_default(),
                upstream: a.registration.upstream.clone(),
                elected_for: elected
                    .get(h.as_str())
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

pub(super) fn apply_link_membership(groups: &mut BTreeMap<IpAddr, LinkEntries>, e: LinkMembership) {
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

pub(super) fn unknown_agent(host: &str) -> ModelError {
    ModelError::not_found(
        Some("host"),
        format!("no agent named {host:?} is registered: register first"),
    )
}
