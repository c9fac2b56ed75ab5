//! The controller's stream in the core: the domain view, the hold-down after a
//! reconnect, the querier settings it carries, and the forwarding table computed from
//! it and the local membership.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use mcgate_domain::api::{Change, StreamMessage};
use mcgate_domain::forwarding::{Applied, ForwardingTable};

use super::{Action, AgentCore, STALE_HOLD};
use crate::control::StreamEvent;
use crate::igmp_plan::{IgmpPlan, igmp_config};

impl AgentCore {
    /// Something happened on the controller's stream.
    pub fn handle_stream(&mut self, now: Instant, ev: StreamEvent) {
        let now = self.advance(now);
        match ev {
            StreamEvent::Connected => {
                self.reconnected = self.connections > 0;
                self.connections += 1;
            }
            StreamEvent::Message(msg) => self.on_stream(now, msg),
        }
    }

    pub(super) fn on_stream(&mut self, now: Instant, msg: StreamMessage) {
        // Only the first message of a reconnected stream can start the hold-down: a
        // stream resumed with `since` starts with deltas (or a keepalive), and a
        // snapshot later on the same connection is the controller's news (the host's
        // domains changed), not a restarted controller's partial view.
        let first_after_reconnect = std::mem::take(&mut self.reconnected);
        if matches!(msg, StreamMessage::Snapshot { .. }) && first_after_reconnect {
            // The first snapshot after a reconnect may come from a restarted controller
            // (or another replica) that has not heard from every host yet: keep
            // forwarding to the hosts it lacks for a while. The hold keeps the union of
            // what was known. The snapshot itself replaces the view whatever its
            // revision: another replica's, or a restarted controller's, numbers may be
            // lower or higher than the ones held.
            let old = match self.stale.take() {
                Some((old, _)) => self.view.merged_with_stale(&old),
                None => self.view.clone(),
            };
            self.stale = Some((old, now + STALE_HOLD));
            self.table_dirty = true;
        }
        log_stream(&msg);
        if self.view.apply(&msg) == Applied::Unchanged {
            return;
        }
        self.table_dirty = true;
        let plan = match self.view.igmp() {
            Some((mode, settings)) => igmp_config(mode, &settings),
            None => IgmpPlan::Unknown,
        };
        let modes: BTreeSet<String> = self
            .view
            .domains()
            .map(|d| format!("{:?}/{:?}", d.domain.igmp, d.domain.igmp_settings))
            .collect();
        if modes.len() > 1 {
            tracing::warn!(
                "this host is in domains with different IGMP settings; the querier uses those of the first domain by name"
            );
        }
        if plan != self.igmp && plan != IgmpPlan::Unknown {
            tracing::info!(plan = ?plan, "IGMP settings from the controller");
            self.igmp = plan;
            self.apply_igmp_plan(now);
        }
    }

    pub(super) fn compute_table(&mut self) {
        self.table_dirty = false;
        let names: Vec<String> = self.links.keys().cloned().collect();
        let local = self.local_membership();
        let table = match &self.stale {
            Some((old, _)) => ForwardingTable::compute(
                &self.view.merged_with_stale(old),
                &self.host.name,
                &names,
                &local,
            ),
            None => ForwardingTable::compute(&self.view, &self.host.name, &names, &local),
        }
        .without_remotes(&self.peers_down);
        self.actions.push_back(Action::SetTable(Arc::new(table)));
        self.tables += 1;
        let statics = self.static_members(&names);
        if statics != self.statics {
            self.actions
                .push_back(Action::SetStaticMembers(statics.clone()));
            self.statics = statics;
        }
    }

    /// This host's static members of IPv4 groups as (link, group), on attached links
    /// only (the links' IGMP side joins them; IPv6 ones wait for MLD on links).
    pub(super) fn static_members(&self, links: &[String]) -> BTreeSet<(String, Ipv4Addr)> {
        let mut out = BTreeSet::new();
        for d in self.view.domains() {
            for m in d.static_members.iter().filter(|m| m.host == self.host.name) {
                let std::net::IpAddr::V4(group) = m.group else {
                    continue;
                };
                match &m.interface {
                    Some(l) if links.contains(l) => {
                        out.insert((l.clone(), group));
                    }
                    Some(_) => {}
                    None => {
                        for l in links {
                            out.insert((l.clone(), group));
                        }
                    }
                }
            }
        }
        out
    }
}

fn log_stream(msg: &StreamMessage) {
    match msg {
        StreamMessage::Snapshot { revision, domains } => tracing::info!(
            revision,
            domains = domains.len(),
            peers = domains.iter().map(|d| d.peers.len()).sum::<usize>(),
            "forwarding state snapshot"
        ),
        StreamMessage::Delta { changes, .. } => {
            for c in changes {
                match c {
                    Change::PeerUp { domain, peer } => {
                        tracing::info!(domain, host = %peer.host, underlay = %peer.underlay, "peer up")
                    }
                    Change::PeerDown { domain, host } => {
                        tracing::info!(domain, host, "peer down")
                    }
                    _ => {}
                }
            }
        }
        StreamMessage::Keepalive { .. } => {}
    }
}
