//! Local membership in the core: what each link's querier reports, what the state file
//! restores, and what is told to the controller and saved.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use mcgate_domain::SourceFilter;
use mcgate_domain::api::LinkMembership;
use mcgate_igmp::{Event, Ignored};
use mcgate_wire::ethernet;

use super::{Action, AgentCore, RESTORE_HOLD, SAVE_DELAY};
use crate::control::SessionInput;
use crate::igmp_plan::IgmpPlan;
use crate::persist::{SavedGroup, SavedLink, SavedMembership};

/// The Ethernet frame carrying an IGMP packet from a link with MAC address `mac`.
pub(super) fn igmp_frame(t: &mcgate_igmp::Transmit, mac: [u8; 6]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + t.packet.len());
    frame.extend_from_slice(&ethernet::multicast_mac(t.dst));
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    frame.extend_from_slice(&t.packet);
    frame
}

impl AgentCore {
    /// Applies the state file's membership of a link that just attached with the index
    /// it had then.
    pub(super) fn restore_link(&mut self, now: Instant, name: &str) {
        let Some(ifindex) = self.links.get(name).map(|l| l.dev.ifindex) else {
            return;
        };
        let Some(pos) = self
            .to_restore
            .links
            .iter()
            .position(|l| l.name == name && l.ifindex == ifindex)
        else {
            return;
        };
        let saved = self.to_restore.links.swap_remove(pos);
        if self.links.get(name).is_some_and(|l| l.igmp.is_none()) && self.igmp == IgmpPlan::Off {
            return;
        }
        for g in saved.groups {
            if g.filter.is_empty() {
                continue;
            }
            tracing::info!(link = name, group = %g.group, "membership restored from the state file");
            self.set_member(name, g.group, Some(g.filter), g.reporters);
            self.restored
                .insert((name.to_string(), g.group), now + RESTORE_HOLD);
        }
    }

    /// Membership to write to the state file.
    pub fn saved_membership(&self) -> SavedMembership {
        let mut links: BTreeMap<&str, SavedLink> = BTreeMap::new();
        for ((link, group), filter) in &self.membership {
            let Some(l) = self.links.get(link) else {
                continue;
            };
            links
                .entry(link)
                .or_insert_with(|| SavedLink {
                    name: link.clone(),
                    ifindex: l.dev.ifindex,
                    groups: Vec::new(),
                })
                .groups
                .push(SavedGroup {
                    group: *group,
                    filter: filter.clone(),
                    reporters: self
                        .reporters
                        .get(&(link.clone(), *group))
                        .cloned()
                        .unwrap_or_default(),
                });
        }
        SavedMembership {
            links: links.into_values().collect(),
        }
    }

    pub(super) fn forget_link_members(&mut self, link: &str) {
        let groups: Vec<Ipv4Addr> = self
            .membership
            .keys()
            .filter(|(l, _)| l == link)
            .map(|(_, g)| *g)
            .collect();
        for group in groups {
            self.set_member(link, group, None, Vec::new());
        }
        self.restored.retain(|(l, _), _| l != link);
    }

    /// Sends what the link's querier wants sent and applies its events.
    pub(super) fn drain_link(&mut self, name: &str) {
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        let Some(igmp) = link.igmp.as_mut() else {
            return;
        };
        while let Some(t) = igmp.poll_transmit() {
            self.actions.push_back(Action::Transmit {
                link: name.to_string(),
                ifindex: link.dev.ifindex,
                frame: igmp_frame(&t, link.dev.mac),
            });
        }
        let mut events = Vec::new();
        while let Some(ev) = igmp.poll_event() {
            events.push(ev);
        }
        for ev in events {
            match ev {
                Event::GroupChanged {
                    group,
                    filter,
                    reporters,
                } => {
                    // The querier speaks for the group now: a restored entry is
                    // confirmed (or ended) by it.
                    self.restored.remove(&(name.to_string(), group));
                    self.set_member(name, group, filter, reporters);
                }
                Event::QuerierChanged { querier } => match querier {
                    Some(q) => {
                        tracing::info!(link = name, querier = %q, "another querier took over")
                    }
                    None => tracing::info!(link = name, "this agent is the querier"),
                },
                Event::RouterIgnored { from, reason } => match reason {
                    Ignored::OlderVersionQuery(v) => tracing::warn!(
                        link = name,
                        querier = %from,
                        "an IGMP{} querier is on the link; the configured version stays (RFC 3376 7.3.1)",
                        v.number()
                    ),
                    Ignored::HostsOnlyLink => tracing::warn!(
                        link = name,
                        host = %from,
                        "a host sent IGMP queries or router messages; dropped, as containers are hosts, not routers"
                    ),
                },
            }
        }
    }

    pub(super) fn set_member(
        &mut self,
        link: &str,
        group: Ipv4Addr,
        filter: Option<SourceFilter>,
        reporters: Vec<Ipv4Addr>,
    ) {
        let key = (link.to_string(), group);
        let filter = filter.filter(|f| !f.is_empty());
        match &filter {
            Some(f) => {
                self.reporters.insert(key.clone(), reporters.clone());
                if self.membership.get(&key) == Some(f) {
                    // Only the reporters changed: worth telling the controller (group
                    // table), not worth a new forwarding table.
                    self.tell_controller(link, group, filter, reporters);
                    return;
                }
                tracing::info!(link, %group, filter = ?f, "membership");
                self.membership.insert(key, f.clone());
            }
            None => {
                self.reporters.remove(&key);
                self.restored.remove(&key);
                if self.membership.remove(&key).is_none() {
                    return;
                }
                tracing::info!(link, %group, "membership ended");
            }
        }
        self.table_dirty = true;
        self.tell_controller(link, group, filter, reporters);
        self.save_at.get_or_insert(self.last_now + SAVE_DELAY);
    }

    /// Queues one membership report for the controller session.
    fn tell_controller(
        &mut self,
        link: &str,
        group: Ipv4Addr,
        filter: Option<SourceFilter>,
        reporters: Vec<Ipv4Addr>,
    ) {
        self.actions
            .push_back(Action::Session(SessionInput::Membership(LinkMembership {
                link: link.to_string(),
                group: group.into(),
                filter: filter.map(Into::into),
                reporters: reporters.into_iter().map(Into::into).collect(),
            })));
    }
}
