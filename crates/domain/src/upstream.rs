//! The membership a gateway host reports to an upstream multicast network (RFC 4605
//! section 4.1: the merged membership of every downstream interface), computed from the
//! controller's view: every host of every domain the gateway belongs to, not just its
//! own. The upstream network speaks IGMP: IPv6 groups are not reported there.

use core::net::{IpAddr, Ipv4Addr};
use std::collections::BTreeMap;

use crate::SourceFilter;
use crate::forwarding::{DomainView, LocalMembership, is_link_local_group};

/// The merged membership, per group, of every host of every domain in `view` and of
/// this host's own links (`local`, fresher than the controller's echo of them, which is
/// skipped), for the groups `wanted` admits (the configured upstream ranges). Filters
/// merge as RFC 3376 section 3.2 merges socket states; link-local groups never leave a
/// link and empty filters are no membership.
pub fn upstream_membership(
    view: &DomainView,
    self_host: &str,
    local: &LocalMembership,
    wanted: &dyn Fn(Ipv4Addr) -> bool,
) -> BTreeMap<Ipv4Addr, SourceFilter> {
    let remote = view
        .domains()
        .flat_map(|d| d.members.iter())
        .filter(|m| m.host != self_host)
        .map(|m| (m.group, &m.filter));
    let own = local.iter().map(|((_, group), filter)| (*group, filter));
    let mut out: BTreeMap<Ipv4Addr, SourceFilter> = BTreeMap::new();
    for (group, filter) in remote.chain(own) {
        let IpAddr::V4(group) = group else { continue };
        if is_link_local_group(group) || filter.is_empty() || !wanted(group) {
            continue;
        }
        let filter = filter.to_v4();
        let merged = match out.get(&group) {
            Some(f) => f.merge(&filter),
            None => filter,
        };
        out.insert(group, merged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Domain, DomainState, HostMember, IgmpMode, IgmpSettings, StreamMessage, Tunnel,
    };

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, d)
    }

    fn g(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(233, 252, 0, d)
    }

    fn state(name: &str, vni: u32, members: Vec<(&str, Ipv4Addr, SourceFilter)>) -> DomainState {
        DomainState {
            domain: Domain {
                name: name.into(),
                vni,
                igmp: IgmpMode::V3,
                static_sources: false,
                igmp_settings: IgmpSettings::default(),
                subnets: vec![],
                hosts: vec![],
                tunnel: Tunnel::Vxlan,
            },
            peers: vec![],
            members: members
                .into_iter()
                .map(|(host, group, filter)| HostMember {
                    host: host.into(),
                    group: group.into(),
                    filter: filter.into(),
                })
                .collect(),
            static_members: vec![],
            static_sources: vec![],
            gateways: Vec::new(),
        }
    }

    #[test]
    fn merges_every_host_of_every_domain_within_the_ranges() {
        let mut view = DomainView::new();
        view.apply(&StreamMessage::Snapshot {
            revision: 1,
            domains: vec![
                state(
                    "a",
                    1,
                    vec![
                        ("h2", g(1), SourceFilter::include([ip(1)])),
                        ("h3", g(1), SourceFilter::include([ip(2)])),
                        // The gateway's own echo: its local membership counts instead.
                        ("gw", g(2), SourceFilter::any_source()),
                        (
                            "h2",
                            Ipv4Addr::new(224, 0, 0, 251),
                            SourceFilter::any_source(),
                        ),
                        (
                            "h2",
                            Ipv4Addr::new(239, 1, 1, 1),
                            SourceFilter::any_source(),
                        ),
                    ],
                ),
                state(
                    "b",
                    2,
                    vec![("h4", g(1), SourceFilter::exclude([ip(1), ip(3)]))],
                ),
            ],
        });
        let mut local = LocalMembership::new();
        local.insert(
            ("tk1".into(), g(3).into()),
            SourceFilter::exclude([ip(9)]).into(),
        );
        // IPv6 groups are not reported upstream (IGMP).
        local.insert(
            ("tk1".into(), "ff3e::1".parse().unwrap()),
            SourceFilter::any_source(),
        );
        let wanted = |grp: Ipv4Addr| grp.octets()[..3] == [233, 252, 0] || grp.octets()[0] == 224;
        let m = upstream_membership(&view, "gw", &local, &wanted);
        assert_eq!(
            m,
            BTreeMap::from([
                (g(1), SourceFilter::exclude([ip(3)])),
                (g(3), SourceFilter::exclude([ip(9)])),
            ])
        );
        // Nothing wanted: nothing reported.
        assert!(upstream_membership(&view, "gw", &local, &|_| false).is_empty());
    }
}
