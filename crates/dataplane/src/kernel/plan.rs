//! From the host's forwarding table to what each domain's kernel tables must hold.
//!
//! Pure: no I/O. The forwarding table the agent computes for the userspace relay already
//! says, per domain and group, which remote hosts want which sources; the kernel path
//! programs exactly that, so both data planes send the same copies to the same hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use mcgate_domain::forwarding::{DomainTable, ForwardingTable, is_link_scope};
use mcgate_domain::{FilterMode, SourceFilter as DomainFilter};

use super::mdb_msg::SourceFilter;
use super::membership::RemoteMembership;
use super::vxlan::VXLAN_PORT;

/// What one domain's VXLAN device and bridge entries must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPlan {
    /// Domain name.
    pub name: String,
    /// VXLAN network identifier (the device is `mcgvx<vni>`).
    pub vni: u32,
    /// Per group, per remote host: the sources it wants.
    pub memberships: BTreeSet<RemoteMembership>,
}

/// The plan of every domain of `table`, by VNI.
pub fn plan(table: &ForwardingTable) -> BTreeMap<u32, DomainPlan> {
    table
        .domains()
        .iter()
        .map(|d| {
            (
                d.vni,
                DomainPlan {
                    name: d.name.clone(),
                    vni: d.vni,
                    memberships: domain_memberships(d),
                },
            )
        })
        .collect()
}

/// A domain filter as the kernel's entries express it; `None` for INCLUDE {} (no
/// membership).
pub fn kernel_filter(f: &DomainFilter<IpAddr>) -> Option<SourceFilter> {
    match f.mode {
        FilterMode::Include if f.sources.is_empty() => None,
        FilterMode::Include => Some(SourceFilter::Include(f.sources.clone())),
        FilterMode::Exclude if f.sources.is_empty() => Some(SourceFilter::Any),
        FilterMode::Exclude => Some(SourceFilter::Exclude(f.sources.clone())),
    }
}

/// `f` narrowed to the registered sources `allowed` of a static-sources domain: what
/// crosses is what the remote wants AND what may be sent (an INCLUDE list).
fn restrict(f: &DomainFilter<IpAddr>, allowed: &BTreeSet<IpAddr>) -> DomainFilter<IpAddr> {
    DomainFilter::include(allowed.iter().copied().filter(|s| f.allows(*s)))
}

/// Every remote membership of one domain, IPv4 and IPv6 groups alike (an IPv6 group's
/// entries carry IPv6 sources and the remote's IPv4 underlay address). Two remote hosts
/// behind one underlay address (which the controller should not allow, but a table may
/// hold) get their filters merged (RFC 3376 section 3.2, RFC 3810 section 4.2), since
/// the kernel keeps one entry per destination.
pub fn domain_memberships(d: &DomainTable) -> BTreeSet<RemoteMembership> {
    let mut by_dst: BTreeMap<(IpAddr, Ipv4Addr), (DomainFilter<IpAddr>, u16)> = BTreeMap::new();
    for (group, route) in &d.groups {
        if is_link_scope(*group) || !group.is_multicast() {
            continue;
        }
        for r in &route.remotes {
            let filter = match d.allowed_sources.as_ref() {
                None => r.filter.clone(),
                Some(map) => restrict(&r.filter, map.get(group).unwrap_or(&BTreeSet::new())),
            };
            if filter.is_empty() {
                continue;
            }
            by_dst
                .entry((*group, *r.underlay.ip()))
                .and_modify(|(f, _)| *f = f.merge(&filter))
                .or_insert((filter, r.underlay.port()));
        }
    }
    by_dst
        .into_iter()
        .filter_map(|((group, dst), (filter, port))| {
            Some(RemoteMembership {
                group,
                dst,
                filter: kernel_filter(&filter)?,
                dst_port: (port != VXLAN_PORT).then_some(port),
                vni: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use mcgate_domain::api::{
        Domain, DomainState, HostMember, IgmpMode, IgmpSettings, Peer, StaticSourceSpec,
        StreamMessage,
    };
    use mcgate_domain::forwarding::{DomainView, LocalMembership};

    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);
    const S1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
    const S2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    fn state(static_sources: bool, members: Vec<HostMember>) -> DomainState {
        DomainState {
            domain: Domain {
                name: "d1".into(),
                vni: 42,
                igmp: IgmpMode::V3,
                static_sources,
                igmp_settings: IgmpSettings::default(),
                subnets: vec![],
                hosts: vec![],
                tunnel: Default::default(),
            },
            peers: (1..=4)
                .map(|n| Peer {
                    host: format!("h{n}"),
                    underlay: SocketAddrV4::new(ip(n), if n == 4 { 8472 } else { 4789 }),
                    public_key: String::new(),
                    wireguard: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    tunnel_address: Ipv4Addr::UNSPECIFIED,
                    egress: Vec::new(),
                })
                .collect(),
            members,
            static_members: vec![],
            static_sources: vec![],
            gateways: Vec::new(),
        }
    }

    fn member(host: &str, group: Ipv4Addr, filter: DomainFilter) -> HostMember {
        HostMember {
            host: host.into(),
            group: IpAddr::V4(group),
            filter: filter.into(),
        }
    }

    fn table(st: DomainState) -> ForwardingTable {
        let mut v = DomainView::new();
        v.apply(&StreamMessage::Snapshot {
            revision: 1,
            domains: vec![st],
        });
        ForwardingTable::compute(&v, "h1", &["tk1".into()], &LocalMembership::new())
    }

    #[test]
    fn remote_members_become_memberships_and_local_ones_do_not() {
        let t = table(state(
            false,
            vec![
                member("h1", G, DomainFilter::any_source()),
                member("h2", G, DomainFilter::any_source()),
                member("h3", G, DomainFilter::include([S1])),
                member("h4", G, DomainFilter::exclude([S2])),
                member(
                    "h2",
                    Ipv4Addr::new(224, 0, 0, 251),
                    DomainFilter::any_source(),
                ),
            ],
        ));
        let p = plan(&t);
        let d = p.get(&42).expect("domain 42");
        assert_eq!(d.name, "d1");
        let want: BTreeSet<RemoteMembership> = [
            RemoteMembership::any_source(G, ip(2)),
            RemoteMembership {
                filter: SourceFilter::include([S1]),
                ..RemoteMembership::any_source(G, ip(3))
            },
            RemoteMembership {
                filter: SourceFilter::exclude([S2]),
                dst_port: Some(8472),
                ..RemoteMembership::any_source(G, ip(4))
            },
        ]
        .into();
        assert_eq!(d.memberships, want);
    }

    #[test]
    fn ipv6_remote_members_become_memberships_to_the_ipv4_underlay() {
        let g6: IpAddr = "ff3e::8000:5".parse().unwrap();
        let s6: IpAddr = "2001:db8::11".parse().unwrap();
        let s7: IpAddr = "2001:db8::12".parse().unwrap();
        let v6 = |host: &str, group: &str, filter: DomainFilter<IpAddr>| HostMember {
            host: host.into(),
            group: group.parse().unwrap(),
            filter,
        };
        let mut st = state(false, vec![member("h2", G, DomainFilter::any_source())]);
        st.members.extend([
            v6("h1", "ff3e::8000:5", DomainFilter::any_source()),
            v6("h2", "ff3e::8000:5", DomainFilter::any_source()),
            v6("h3", "ff3e::8000:5", DomainFilter::include([s6])),
            v6("h4", "ff3e::8000:5", DomainFilter::exclude([s7])),
            // Link scope (ff02::/16) never crosses, as 224.0.0.0/24 does not.
            v6("h2", "ff02::fb", DomainFilter::any_source()),
        ]);
        let d = plan(&table(st)).remove(&42).expect("domain");
        let want: BTreeSet<RemoteMembership> = [
            RemoteMembership::any_source(G, ip(2)),
            RemoteMembership::any_source(g6, ip(2)),
            RemoteMembership {
                filter: SourceFilter::include([s6]),
                ..RemoteMembership::any_source(g6, ip(3))
            },
            RemoteMembership {
                filter: SourceFilter::exclude([s7]),
                dst_port: Some(8472),
                ..RemoteMembership::any_source(g6, ip(4))
            },
        ]
        .into();
        assert_eq!(d.memberships, want);
        // The entries the VXLAN device gets: IPv6 (*, G) per remote host, and the
        // explicit (S, G) for the remotes that admit a source another one names.
        let entries = super::super::membership::compile(&d.memberships).unwrap();
        let v6_entries: Vec<String> = entries
            .iter()
            .filter(|e| e.group == g6)
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            v6_entries,
            [
                "grp ff3e::8000:5 dst 10.0.0.2",
                "grp ff3e::8000:5 filter_mode include source_list 2001:db8::11 dst 10.0.0.3",
                "grp ff3e::8000:5 filter_mode exclude source_list 2001:db8::12 dst 10.0.0.4 dst_port 8472",
                "grp ff3e::8000:5 src 2001:db8::11 dst 10.0.0.2",
                "grp ff3e::8000:5 src 2001:db8::11 dst 10.0.0.4 dst_port 8472",
                "grp ff3e::8000:5 src 2001:db8::12 dst 10.0.0.2",
            ]
        );
        for e in &entries {
            e.validate().expect("valid entry");
        }
    }

    #[test]
    fn static_source_domains_send_only_registered_sources() {
        let mut st = state(
            true,
            vec![
                member("h2", G, DomainFilter::any_source()),
                member("h3", G, DomainFilter::exclude([S1])),
                member(
                    "h4",
                    Ipv4Addr::new(233, 252, 0, 6),
                    DomainFilter::any_source(),
                ),
            ],
        );
        st.static_sources = vec![StaticSourceSpec {
            group: IpAddr::V4(G),
            address: IpAddr::V4(S1),
            host: None,
            interface: None,
        }];
        let d = plan(&table(st)).remove(&42).expect("domain");
        // h2 gets only S1; h3 excludes the one allowed source, so gets nothing; the other
        // group has no registered source at all.
        assert_eq!(
            d.memberships,
            [RemoteMembership {
                filter: SourceFilter::include([S1]),
                ..RemoteMembership::any_source(G, ip(2))
            }]
            .into()
        );
    }

    #[test]
    fn filters_map_to_kernel_filters() {
        assert_eq!(kernel_filter(&DomainFilter::<IpAddr>::include([])), None);
        assert_eq!(
            kernel_filter(&DomainFilter::<IpAddr>::any_source()),
            Some(SourceFilter::Any)
        );
        assert_eq!(
            kernel_filter(&DomainFilter::exclude([S1]).into()),
            Some(SourceFilter::exclude([S1]))
        );
        assert_eq!(
            kernel_filter(&DomainFilter::include([S1, S2]).into()),
            Some(SourceFilter::include([S1, S2]))
        );
    }
}
