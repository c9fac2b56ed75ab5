//! The group table (`GET /v1/groups`), shaped like the reference gateway's group search:
//! one row per member or source; an IGMP member interface is listed for 224.0.0.1 (the
//! all-systems group every IGMP host belongs to) as well as for each group it joined, an
//! MLD member interface likewise for ff02::1 (all-nodes, RFC 4291 section 2.7.1), and an
//! interface that only sends is not listed.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use crate::SourceFilter;
use crate::api::{GroupEntry, GroupQuery, LeaveMode, LinkInfo, MemberType};
use crate::model::{DomainRecord, Model};
use crate::validate;
use mcgate_wire::settings::IgmpSettings;

pub use mcgate_wire::igmp::ALL_SYSTEMS;

/// The all-nodes group every IPv6 host belongs to (ff02::1), the MLD counterpart of
/// [`ALL_SYSTEMS`] in the group table.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The group every host of `group`'s family belongs to: 224.0.0.1 or ff02::1.
fn all_hosts_of(group: IpAddr) -> IpAddr {
    match group {
        IpAddr::V4(_) => IpAddr::V4(ALL_SYSTEMS),
        IpAddr::V6(_) => IpAddr::V6(ALL_NODES),
    }
}

/// A gateway host (`mcgate agent --upstream`) as its traffic reports describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGateway {
    /// The host.
    pub host: String,
    /// Its upstream interface.
    pub interface: String,
    /// The group ranges it brings in.
    pub ranges: Vec<Ipv4Net>,
    /// (group, source) pairs seen arriving on the interface lately.
    pub sources: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl Model {
    /// The rows matching every filter of `q`, sorted by domain, group, host, interface,
    /// address.
    pub fn groups(&self, q: &GroupQuery) -> Vec<GroupEntry> {
        self.groups_with_upstream(q, &[])
    }

    /// As [`Model::groups`], with the rows of upstream `gateways` too (type `upstream`,
    /// in every domain the gateway belongs to): per gateway, one source row per
    /// (group, source) seen arriving on its upstream interface inside its ranges, and
    /// one row without an address for each group of its ranges that has members in
    /// the domain and no source seen yet (the host the group comes in at).
    pub fn groups_with_upstream(
        &self,
        q: &GroupQuery,
        gateways: &[UpstreamGateway],
    ) -> Vec<GroupEntry> {
        let mut rows = Vec::new();
        for rec in self.domain_records() {
            if q.domain.as_ref().is_some_and(|d| *d != rec.domain.name) {
                continue;
            }
            let first = rows.len();
            self.igmp_rows(rec, &mut rows);
            static_rows(self, rec, &mut rows);
            let wanted: BTreeSet<Ipv4Addr> = rows[first..]
                .iter()
                .filter(|r| r.member && r.group != all_hosts_of(r.group))
                .filter_map(|r| match r.group {
                    IpAddr::V4(g) => Some(g),
                    IpAddr::V6(_) => None, // upstream gateways bring in IPv4 only
                })
                .collect();
            self.upstream_rows(rec, gateways, &wanted, &mut rows);
        }
        rows.retain(|r| matches(r, q));
        rows.sort_by(|a, b| {
            (
                &a.domain,
                a.group,
                &a.host,
                &a.interface,
                a.address,
                a.source,
            )
                .cmp(&(
                    &b.domain,
                    b.group,
                    &b.host,
                    &b.interface,
                    b.address,
                    b.source,
                ))
        });
        rows
    }

    fn igmp_rows(&self, rec: &DomainRecord, rows: &mut Vec<GroupEntry>) {
        for (host, agent) in self.agents_iter() {
            if agent.expired || !rec.has_host(host, Some(&agent.registration)) {
                continue;
            }
            let subnet_of = |addr: Option<IpAddr>| {
                agent
                    .registration
                    .subnet
                    .or_else(|| addr.and_then(|a| domain_subnet(rec, a)))
            };
            let settings = &rec.domain.igmp_settings;
            let links = &agent.registration.links;
            let row = |group,
                       link: &str,
                       address: Option<IpAddr>,
                       filter: Option<SourceFilter<IpAddr>>| {
                GroupEntry {
                    domain: rec.domain.name.clone(),
                    group,
                    host: host.clone(),
                    subnet: subnet_of(address),
                    interface: Some(link.to_string()),
                    address,
                    member: true,
                    source: false,
                    member_type: Some(if group.is_ipv6() {
                        MemberType::Mld
                    } else {
                        MemberType::Igmp
                    }),
                    source_type: None,
                    source_filter: filter,
                    leave: Some(leave_mode(settings, links, link)),
                }
            };
            // (link, all-hosts group of the family) → every reporter of any group of
            // that family on it, for the 224.0.0.1 and ff02::1 rows.
            let mut interfaces: std::collections::BTreeMap<(&str, IpAddr), BTreeSet<IpAddr>> =
                Default::default();
            for (g, links) in &agent.groups {
                let all = all_hosts_of(*g);
                for (link, e) in links {
                    interfaces
                        .entry((link.as_str(), all))
                        .or_default()
                        .extend(e.reporters.iter().copied());
                    if *g == all {
                        continue; // listed below, once per interface
                    }
                    let filter =
                        Some(e.filter.clone()).filter(|f| *f != SourceFilter::any_source());
                    if e.reporters.is_empty() {
                        rows.push(row(*g, link, None, filter.clone()));
                    }
                    for r in &e.reporters {
                        rows.push(row(*g, link, Some(*r), filter.clone()));
                    }
                }
            }
            for ((link, all), reporters) in interfaces {
                if reporters.is_empty() {
                    rows.push(row(all, link, None, None));
                }
                for r in reporters {
                    rows.push(row(all, link, Some(r), None));
                }
            }
        }
    }
}

impl Model {
    fn upstream_rows(
        &self,
        rec: &DomainRecord,
        gateways: &[UpstreamGateway],
        wanted: &BTreeSet<Ipv4Addr>,
        rows: &mut Vec<GroupEntry>,
    ) {
        let elected = self.gateways_of(&rec.domain.name);
        for gw in gateways {
            let Some(agent) = self.agent(&gw.host) else {
                continue;
            };
            if agent.expired || !rec.has_host(&gw.host, Some(&agent.registration)) {
                continue;
            }
            let inside = |g: Ipv4Addr| {
                !mcgate_wire::is_link_local_group(g) && gw.ranges.iter().any(|r| r.contains(&g))
            };
            // A gateway that registered its ranges brings in only those it is elected
            // for; a standby one is named for none.
            let brings = |g: Ipv4Addr| {
                agent.registration.upstream.is_none()
                    || elected
                        .iter()
                        .any(|e| e.host == gw.host && e.range.contains(&g))
            };
            let row = |group, address| {
                GroupEntry::upstream(&rec.domain.name, group, &gw.host, &gw.interface, address)
            };
            let mut seen = BTreeSet::new();
            for (group, source) in gw.sources.iter().filter(|(g, _)| inside(*g)) {
                seen.insert(*group);
                rows.push(row(*group, Some(*source)));
            }
            for group in wanted
                .iter()
                .filter(|g| inside(**g) && brings(**g) && !seen.contains(*g))
            {
                rows.push(row(*group, None));
            }
        }
    }
}

fn static_rows(model: &Model, rec: &DomainRecord, rows: &mut Vec<GroupEntry>) {
    let name = &rec.domain.name;
    for m in &rec.static_members {
        let subnet = model
            .agent(&m.host)
            .and_then(|a| a.registration.subnet)
            .or_else(|| m.address.and_then(|a| domain_subnet(rec, a)));
        rows.push(GroupEntry {
            domain: name.clone(),
            group: m.group,
            host: m.host.clone(),
            subnet,
            interface: m.interface.clone(),
            address: m.address,
            member: true,
            source: false,
            member_type: Some(MemberType::Static),
            source_type: None,
            source_filter: None,
            leave: None,
        });
    }
    for s in &rec.static_sources {
        // The host is a label the operator may omit; then name the agent whose link
        // carries the address, if one does.
        let host = s.host.clone().or_else(|| {
            model.agents_iter().find_map(|(h, a)| {
                a.registration
                    .links
                    .iter()
                    .any(|l| l.address.map(IpAddr::V4) == Some(s.address))
                    .then(|| h.clone())
            })
        });
        let subnet = host
            .as_deref()
            .and_then(|h| model.agent(h))
            .and_then(|a| a.registration.subnet)
            .or_else(|| domain_subnet(rec, s.address));
        rows.push(GroupEntry {
            domain: name.clone(),
            group: s.group,
            host: host.unwrap_or_default(),
            subnet,
            interface: s.interface.clone(),
            address: Some(s.address),
            member: false,
            source: true,
            member_type: None,
            source_type: Some(MemberType::Static),
            source_filter: None,
            leave: None,
        });
    }
}

/// How the querier on `link` acts on a leave: at once where the domain asks for it on
/// every link, or where the link carries a single host and the domain allows it there.
pub fn leave_mode(settings: &IgmpSettings, links: &[LinkInfo], link: &str) -> LeaveMode {
    let single_host = links.iter().any(|l| l.name == link && l.single_host);
    if settings.fast_leave_on(single_host) {
        LeaveMode::Fast
    } else {
        LeaveMode::Queries
    }
}

/// The domain's subnet holding `a`; none for an IPv6 address (subnets are IPv4).
fn domain_subnet(rec: &DomainRecord, a: IpAddr) -> Option<Ipv4Net> {
    let IpAddr::V4(a) = a else { return None };
    rec.domain.subnets.iter().find(|s| s.contains(&a)).copied()
}

fn matches(r: &GroupEntry, q: &GroupQuery) -> bool {
    let kind = r.member_type.or(r.source_type);
    q.group.is_none_or(|g| g == r.group)
        && q.member.is_none_or(|m| r.member && r.address == Some(m))
        && q.source.is_none_or(|s| r.source && r.address == Some(s))
        && q.kind.is_none_or(|k| kind == Some(k))
        && q.host.as_ref().is_none_or(|h| *h == r.host)
        && q.subnet
            .is_none_or(|s| r.subnet == Some(s) || r.address.is_some_and(|a| in_net(s, a)))
}

fn in_net(net: Ipv4Net, a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(a) if net.contains(&a))
}

/// Checks a query's values (serde already checked their syntax).
pub fn check_query(q: &GroupQuery) -> Result<(), validate::ModelError> {
    if let Some(d) = &q.domain {
        validate::domain_name("domain", d)?;
    }
    if let Some(h) = &q.host {
        validate::host_name("host", h)?;
    }
    if let Some(g) = q.group {
        validate::group("group", g)?;
    }
    if let Some(s) = q.source {
        validate::unicast("source", s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_is_fast_on_single_host_links_unless_the_domain_says_otherwise() {
        let links = [
            LinkInfo {
                name: "tk1".into(),
                address: None,
                single_host: true,
            },
            LinkInfo {
                name: "br1".into(),
                address: None,
                single_host: false,
            },
        ];
        let mut s = IgmpSettings::default();
        assert_eq!(leave_mode(&s, &links, "tk1"), LeaveMode::Fast);
        assert_eq!(leave_mode(&s, &links, "br1"), LeaveMode::Queries);
        assert_eq!(leave_mode(&s, &links, "gone"), LeaveMode::Queries);
        s.single_host_fast_leave = false;
        assert_eq!(leave_mode(&s, &links, "tk1"), LeaveMode::Queries);
        s.fast_leave = true;
        assert_eq!(leave_mode(&s, &links, "br1"), LeaveMode::Fast);
    }
}
