//! Local membership in the core: what each link's querier reports, what the state file
//! restores, and what is told to the controller and saved.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    frame(
        ethernet::multicast_mac(t.dst),
        mac,
        ethernet::ETHERTYPE_IPV4,
        &t.packet,
    )
}

/// The Ethernet frame carrying an MLD packet (IPv6) from a link with MAC address `mac`,
/// to the multicast MAC of its destination (RFC 2464 section 7).
pub(super) fn mld_frame(t: &mcgate_igmp::Transmit<mcgate_igmp::Mld>, mac: [u8; 6]) -> Vec<u8> {
    frame(
        ethernet::ipv6_multicast_mac(t.dst),
        mac,
        ethernet::ETHERTYPE_IPV6,
        &t.packet,
    )
}

/// Queues `frames` to be sent on `link` (index `ifindex`).
fn queue_frames(
    actions: &mut std::collections::VecDeque<Action>,
    link: &str,
    ifindex: u32,
    frames: impl Iterator<Item = Vec<u8>>,
) {
    actions.extend(frames.map(|frame| Action::Transmit {
        link: link.to_string(),
        ifindex,
        frame,
    }));
}

fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + packet.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(packet);
    frame
}

/// The number of an MLD version (1 or 2), as stats show it.
pub(crate) fn mld_number(v: mcgate_igmp::MldVersion) -> u8 {
    match v {
        mcgate_igmp::MldVersion::V1 => 1,
        mcgate_igmp::MldVersion::V2 => 2,
    }
}

/// One IPv6 group with listeners on a link, as the link's MLD querier keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MldMembership {
    /// The group.
    pub group: Ipv6Addr,
    /// Which sources to forward (RFC 3810 section 6.3).
    pub filter: SourceFilter<Ipv6Addr>,
    /// The hosts known to listen (the link-local sources of their reports), sorted.
    pub reporters: Vec<Ipv6Addr>,
    /// The group's compatibility mode (RFC 3810 section 8.3.2): 1 while an MLDv1
    /// listener is present, else 2.
    pub version: u8,
}

/// The IPv6 membership of each (link, group) as last told to the controller: its
/// filter and reporters.
pub(super) type MldReported = BTreeMap<(String, Ipv6Addr), (SourceFilter<Ipv6Addr>, Vec<Ipv6Addr>)>;

impl AgentCore {
    /// Tells the controller what changed in the links' MLD membership since the last
    /// call: new and changed groups, and the end of those gone (a done, a timeout, a
    /// stopped querier, a detached link).
    pub(super) fn sync_mld_reports(&mut self) {
        let mut now: MldReported = BTreeMap::new();
        for (name, link) in &self.links {
            let Some(mld) = link.mld.as_ref() else {
                continue;
            };
            for (group, filter) in mld.groups() {
                now.insert((name.clone(), group), (filter, mld.reporters(group)));
            }
        }
        let before = std::mem::take(&mut self.mld_reported);
        for ((link, group), _) in before.iter().filter(|(k, _)| !now.contains_key(*k)) {
            tracing::info!(link, %group, "IPv6 membership ended");
            self.tell_controller_ip(link, (*group).into(), None, Vec::new());
        }
        for ((link, group), (filter, reporters)) in &now {
            if before.get(&(link.clone(), *group)) == Some(&(filter.clone(), reporters.clone())) {
                continue;
            }
            tracing::info!(link, %group, ?filter, "IPv6 membership");
            let reporters = reporters.iter().map(|r| (*r).into()).collect();
            self.tell_controller_ip(
                link,
                (*group).into(),
                Some(filter.clone().into()),
                reporters,
            );
        }
        // The forwarding table's local IPv6 members changed (not just their reporters).
        let filters = |m: &MldReported| {
            m.iter()
                .map(|(k, (f, _))| (k.clone(), f.clone()))
                .collect::<Vec<_>>()
        };
        if filters(&before) != filters(&now) {
            self.table_dirty = true;
        }
        self.mld_reported = now;
    }

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

    /// The IPv6 membership of `link`, as its MLD querier keeps it (empty without one).
    pub fn mld_membership(&self, link: &str) -> Vec<MldMembership> {
        let Some(mld) = self.links.get(link).and_then(|l| l.mld.as_ref()) else {
            return Vec::new();
        };
        mld.groups()
            .map(|(group, filter)| MldMembership {
                group,
                filter,
                reporters: mld.reporters(group),
                version: mld
                    .group_state(group)
                    .and_then(|s| mcgate_igmp::MldVersion::from_version(s.compatibility))
                    .map_or(2, mld_number),
            })
            .collect()
    }

    /// Sends what the link's MLD querier wants sent and tells the controller of its
    /// membership changes ([`AgentCore::sync_mld_reports`]).
    fn drain_mld(&mut self, name: &str) {
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        let Some(mld) = link.mld.as_mut() else {
            return;
        };
        let (ifindex, mac) = (link.dev.ifindex, link.dev.mac);
        let frames = std::iter::from_fn(|| mld.poll_transmit()).map(|t| mld_frame(&t, mac));
        queue_frames(&mut self.actions, name, ifindex, frames);
        let mut changed = false;
        while let Some(ev) = mld.poll_event() {
            match ev {
                Event::GroupChanged { .. } => changed = true,
                Event::QuerierChanged { querier } => {
                    tracing::info!(link = name, querier = ?querier, "MLD querier changed")
                }
                Event::RouterIgnored { from, reason } => {
                    tracing::warn!(link = name, %from, ?reason, "an MLD router message was ignored")
                }
            }
        }
        if changed {
            self.sync_mld_reports();
        }
    }

    /// Sends what the link's queriers want sent and applies their events.
    pub(super) fn drain_link(&mut self, name: &str) {
        self.drain_mld(name);
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        let Some(igmp) = link.igmp.as_mut() else {
            return;
        };
        let (ifindex, mac) = (link.dev.ifindex, link.dev.mac);
        let frames = std::iter::from_fn(|| igmp.poll_transmit()).map(|t| igmp_frame(&t, mac));
        queue_frames(&mut self.actions, name, ifindex, frames);
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
        let reporters = reporters.into_iter().map(Into::into).collect();
        self.tell_controller_ip(link, group.into(), filter.map(Into::into), reporters);
    }

    /// Queues one membership report of either family for the controller session.
    fn tell_controller_ip(
        &mut self,
        link: &str,
        group: IpAddr,
        filter: Option<SourceFilter<IpAddr>>,
        reporters: Vec<IpAddr>,
    ) {
        self.actions
            .push_back(Action::Session(SessionInput::Membership(LinkMembership {
                link: link.to_string(),
                group,
                filter,
                reporters,
            })));
    }
}
