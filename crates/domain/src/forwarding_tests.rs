use super::*;
use crate::api::{Domain, HostMember};

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// An IPv4 group or source, as the table keys them.
fn a(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(ip(a, b, c, d))
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const G: IpAddr = IpAddr::V4(Ipv4Addr::new(233, 252, 0, 5));

fn domain(name: &str, vni: u32, static_sources: bool) -> Domain {
    Domain {
        name: name.into(),
        vni,
        igmp: IgmpMode::V3,
        static_sources,
        igmp_settings: IgmpSettings::default(),
        subnets: vec![],
        hosts: vec![],
        tunnel: Tunnel::Wireguard,
    }
}

fn peer(host: &str, n: u8) -> Peer {
    Peer {
        host: host.into(),
        underlay: SocketAddrV4::new(ip(10, 0, 0, n), 4789),
        public_key: crate::keys::encode_key(&[n; 32]),
        wireguard: SocketAddrV4::new(ip(10, 0, 0, n), 51820),
        tunnel_address: ip(10, 255, 0, n),
        egress: Vec::new(),
    }
}

fn member(host: &str, group: IpAddr, filter: SourceFilter<IpAddr>) -> HostMember {
    HostMember {
        host: host.into(),
        group,
        filter,
    }
}

fn snapshot() -> StreamMessage {
    StreamMessage::Snapshot {
        revision: 10,
        domains: vec![DomainState {
            domain: domain("d", 100, false),
            peers: vec![peer("h1", 1), peer("h2", 2), peer("h3", 3)],
            members: vec![
                member("h1", G, SourceFilter::any_source()),
                member("h2", G, SourceFilter::include([a(10, 1, 0, 9)])),
                member("h3", G, SourceFilter::exclude([a(10, 1, 0, 9)])),
                member("h2", a(224, 0, 0, 251), SourceFilter::any_source()),
            ],
            static_members: vec![],
            static_sources: vec![],
            gateways: Vec::new(),
        }],
    }
}

fn links() -> Vec<String> {
    vec!["tk1".into(), "tk2".into()]
}

#[test]
fn remote_routes_exclude_self_and_link_local_groups() {
    let mut v = DomainView::new();
    assert_eq!(v.apply(&snapshot()), Applied::Changed);
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(100).unwrap();
    let r = d.route(G).unwrap();
    let hosts: Vec<&str> = r.remotes.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts, ["h2", "h3"]);
    assert!(r.remotes[0].filter.allows(a(10, 1, 0, 9)));
    assert!(!r.remotes[1].filter.allows(a(10, 1, 0, 9)));
    assert!(d.route(a(224, 0, 0, 251)).is_none());
    assert_eq!(
        d.peers,
        [ip(10, 0, 0, 2), ip(10, 0, 0, 3)].into_iter().collect()
    );
    assert!(t.by_vni(101).is_none());
}

#[test]
fn peers_found_dead_get_no_copies_but_stay_peers() {
    let mut v = DomainView::new();
    v.apply(&snapshot());
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    assert_eq!(
        t.tunnel_peers().keys().copied().collect::<Vec<_>>(),
        ["h2", "h3"]
    );
    let same = t.clone().without_remotes(&BTreeSet::new());
    assert_eq!(same, t);
    let cut = t.without_remotes(&["h2".to_string()].into());
    let d = cut.by_vni(100).unwrap();
    let hosts: Vec<&str> = d
        .route(G)
        .unwrap()
        .remotes
        .iter()
        .map(|r| r.host.as_str())
        .collect();
    assert_eq!(hosts, ["h3"]);
    // Still a peer: what it sends is accepted, its tunnel stays.
    assert!(d.peers.contains(&ip(10, 0, 0, 2)));
    assert!(d.tunnel_peers.iter().any(|p| p.host == "h2"));
    // A group whose only copies went to dead peers is gone from the table.
    let none = cut.without_remotes(&["h3".to_string()].into());
    assert!(none.by_vni(100).unwrap().route(G).is_none());
}

/// A gateway with egress ranges (h3 here) gets every group of them, members or not,
/// with any source; nothing else changes, and a link-local group never leaves.
#[test]
fn egress_ranges_steer_their_groups_to_the_gateway() {
    let mut msg = snapshot();
    let StreamMessage::Snapshot { domains, .. } = &mut msg else {
        unreachable!()
    };
    let range: Ipv4Net = "233.252.0.0/24".parse().unwrap();
    let all: Ipv4Net = "224.0.0.0/4".parse().unwrap();
    domains[0].peers[2].egress = vec![range, all];
    let mut v = DomainView::new();
    v.apply(&msg);
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(100).unwrap();
    // A member group inside the range: h3's EXCLUDE {10.1.0.9} widens to any source.
    let r = d.route(G).unwrap();
    let hosts: Vec<&str> = r.remotes.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts, ["h2", "h3"]);
    assert!(r.remotes[1].filter.allows(a(10, 1, 0, 9)));
    // A group without members inside the range: only the gateway.
    let other = d.route(a(233, 252, 0, 77)).unwrap();
    assert_eq!(other.remotes.len(), 1);
    assert_eq!(other.remotes[0].host, "h3");
    assert!(other.locals.is_empty());
    assert!(other.remotes[0].filter.allows(a(10, 9, 9, 9)));
    // Link-local groups are not routed through egress (the relay never tunnels them).
    assert!(d.route(a(224, 0, 0, 251)).is_none());
    // The gateway itself does not send its own egress groups to itself.
    let own = ForwardingTable::compute(&v, "h3", &links(), &LocalMembership::new());
    assert!(own.by_vni(100).unwrap().route(a(233, 252, 0, 77)).is_none());
    // A dead gateway gets nothing, not even through its ranges.
    let cut = t.without_remotes(&["h3".to_string()].into());
    assert!(cut.by_vni(100).unwrap().route(a(233, 252, 0, 77)).is_none());
}

#[test]
fn tunnel_fields_follow_the_peers() {
    let mut v = DomainView::new();
    v.apply(&snapshot());
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(100).unwrap();
    assert_eq!(d.tunnel, Tunnel::Wireguard);
    assert_eq!(d.tunnel_address, Some(ip(10, 255, 0, 1)), "this host's own");
    let hosts: Vec<(&str, Ipv4Addr)> = d
        .tunnel_peers
        .iter()
        .map(|p| (p.host.as_str(), p.tunnel_address))
        .collect();
    assert_eq!(
        hosts,
        [("h2", ip(10, 255, 0, 2)), ("h3", ip(10, 255, 0, 3))]
    );
    let r = &d.route(G).unwrap().remotes[0];
    assert_eq!(r.tunnel_address, ip(10, 255, 0, 2));
    assert_eq!(r.wireguard, SocketAddrV4::new(ip(10, 0, 0, 2), 51820));
    assert_eq!(r.public_key, crate::keys::encode_key(&[2; 32]));
    // A key change (rotation) reaches the table.
    v.apply(&StreamMessage::Delta {
        revision: 11,
        changes: vec![Change::PeerUp {
            domain: "d".into(),
            peer: Peer {
                public_key: crate::keys::encode_key(&[9; 32]),
                ..peer("h2", 2)
            },
        }],
    });
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(100).unwrap();
    assert_eq!(
        d.tunnel_peers[0].public_key,
        crate::keys::encode_key(&[9; 32])
    );
}

#[test]
fn local_membership_and_static_members_make_local_routes() {
    let mut v = DomainView::new();
    v.apply(&snapshot());
    let mut local = LocalMembership::new();
    local.insert(("tk1".into(), G), SourceFilter::include([a(10, 1, 0, 7)]));
    local.insert(("gone".into(), G), SourceFilter::any_source());
    local.insert(("tk2".into(), a(239, 1, 1, 1)), SourceFilter::include([]));
    v.apply(&StreamMessage::Delta {
        revision: 11,
        changes: vec![Change::StaticMember {
            domain: "d".into(),
            member: StaticMemberSpec {
                group: a(239, 9, 9, 9),
                host: "h1".into(),
                interface: None,
                address: None,
            },
            present: true,
        }],
    });
    let t = ForwardingTable::compute(&v, "h1", &links(), &local);
    let d = t.by_vni(100).unwrap();
    let r = d.route(G).unwrap();
    assert_eq!(r.locals.len(), 1, "only attached links: {r:?}");
    assert_eq!(r.locals[0].link, "tk1");
    assert!(
        d.route(a(239, 1, 1, 1)).is_none(),
        "INCLUDE {{}} is no member"
    );
    let s = d.route(a(239, 9, 9, 9)).unwrap();
    let names: Vec<&str> = s.locals.iter().map(|l| l.link.as_str()).collect();
    assert_eq!(names, ["tk1", "tk2"]);
}

#[test]
fn deltas_add_and_remove_members_and_peers() {
    let mut v = DomainView::new();
    v.apply(&snapshot());
    let d = |changes| StreamMessage::Delta {
        revision: 12,
        changes,
    };
    assert_eq!(
        v.apply(&d(vec![
            Change::PeerDown {
                domain: "d".into(),
                host: "h3".into(),
            },
            Change::Member {
                domain: "d".into(),
                host: "h2".into(),
                group: G,
                filter: None,
            },
        ])),
        Applied::Changed
    );
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    assert!(t.by_vni(100).unwrap().route(G).is_none());
    assert!(!t.by_vni(100).unwrap().peers.contains(&ip(10, 0, 0, 3)));
    // The same revision again is already applied.
    assert_eq!(
        v.apply(&d(vec![Change::DomainRemoved { name: "d".into() }])),
        Applied::Unchanged
    );
    assert_eq!(v.revision(), Some(12));
    // A change for an unknown domain is skipped and counted.
    v.apply(&StreamMessage::Delta {
        revision: 13,
        changes: vec![Change::PeerUp {
            domain: "nope".into(),
            peer: peer("x", 9),
        }],
    });
    assert_eq!(v.ignored_changes(), 1);
    v.apply(&StreamMessage::Delta {
        revision: 14,
        changes: vec![Change::DomainRemoved { name: "d".into() }],
    });
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    assert!(t.domains().is_empty() && t.is_empty());
}

/// Domain "s" (VNI 7) with static sources on and `address` the one source of `group`.
fn static_sources_view(group: IpAddr, address: IpAddr) -> DomainView {
    let mut v = DomainView::new();
    v.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains: vec![DomainState {
            domain: domain("s", 7, true),
            peers: vec![],
            members: vec![],
            static_members: vec![],
            static_sources: vec![StaticSourceSpec {
                group,
                address,
                host: None,
                interface: None,
            }],
            gateways: Vec::new(),
        }],
    });
    v
}

#[test]
fn static_sources_policy() {
    let v = static_sources_view(G, a(10, 1, 0, 2));
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(7).unwrap();
    assert_eq!(d.check_source(G, a(10, 1, 0, 2)), Verdict::Forward);
    assert_eq!(d.check_source(G, a(10, 1, 0, 3)), Verdict::SourceNotAllowed);
    assert_eq!(
        d.check_source(a(239, 0, 0, 1), a(10, 1, 0, 2)),
        Verdict::SourceNotAllowed
    );
    let mut open = v.clone();
    open.apply(&StreamMessage::Delta {
        revision: 2,
        changes: vec![Change::Domain {
            domain: domain("s", 7, false),
        }],
    });
    let t = ForwardingTable::compute(&open, "h1", &links(), &LocalMembership::new());
    assert_eq!(
        t.by_vni(7).unwrap().check_source(G, a(10, 1, 0, 3)),
        Verdict::Forward
    );
}

#[test]
fn stale_hosts_are_kept_until_they_reappear() {
    let mut old = DomainView::new();
    old.apply(&snapshot());
    // A restarted controller knows only h1 and h2 so far, and h2 without members.
    let mut new = DomainView::new();
    new.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains: vec![DomainState {
            domain: domain("d", 100, false),
            peers: vec![peer("h1", 1), peer("h2", 2)],
            members: vec![],
            static_members: vec![],
            static_sources: vec![],
            gateways: Vec::new(),
        }],
    });
    let merged = new.merged_with_stale(&old);
    let t = ForwardingTable::compute(&merged, "h1", &links(), &LocalMembership::new());
    let r = t.by_vni(100).unwrap().route(G).unwrap();
    let hosts: Vec<&str> = r.remotes.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(
        hosts,
        ["h3"],
        "h2 is known again (without members), h3 is kept"
    );
    assert!(t.by_vni(100).unwrap().peers.contains(&ip(10, 0, 0, 3)));
    // A domain the new view lacks stays gone.
    let empty = DomainView::new().merged_with_stale(&old);
    assert!(empty.domains().next().is_none());
}

#[test]
fn link_local_detection() {
    assert!(is_link_local_group(ip(224, 0, 0, 22)));
    assert!(!is_link_local_group(ip(224, 0, 1, 1)));
    assert!(!is_link_scope(G) && is_link_scope(a(224, 0, 0, 1)));
}

#[test]
fn ipv6_groups_route_like_ipv4_ones() {
    let g6 = v6("ff3e::8000:5");
    let src = v6("2001:db8::9");
    let mut v = DomainView::new();
    v.apply(&snapshot());
    // An IPv6 member change is applied like an IPv4 one.
    let changed = v.apply(&StreamMessage::Delta {
        revision: 11,
        changes: vec![
            Change::Member {
                domain: "d".into(),
                host: "h2".into(),
                group: g6,
                filter: Some(SourceFilter::include([src])),
            },
            Change::Member {
                domain: "d".into(),
                host: "h3".into(),
                group: v6("ff02::1:ff00:3"),
                filter: Some(SourceFilter::any_source()),
            },
            Change::StaticMember {
                domain: "d".into(),
                member: StaticMemberSpec {
                    group: v6("ff05::7"),
                    host: "h1".into(),
                    interface: Some("tk2".into()),
                    address: None,
                },
                present: true,
            },
        ],
    });
    assert_eq!(changed, Applied::Changed);
    let mut local = LocalMembership::new();
    local.insert(("tk1".into(), g6), SourceFilter::any_source());
    let t = ForwardingTable::compute(&v, "h1", &links(), &local);
    let d = t.by_vni(100).unwrap();
    let r = d.route(g6).unwrap();
    assert_eq!(r.remotes.len(), 1);
    assert_eq!(r.remotes[0].host, "h2");
    assert_eq!(
        r.remotes[0].tunnel_address,
        ip(10, 255, 0, 2),
        "the same tunnel"
    );
    assert!(r.remotes[0].filter.allows(src));
    assert!(!r.remotes[0].filter.allows(v6("2001:db8::a")));
    assert_eq!(r.locals[0].link, "tk1");
    assert!(d.route(v6("ff02::1:ff00:3")).is_none(), "link scope");
    assert_eq!(d.route(v6("ff05::7")).unwrap().locals[0].link, "tk2");
    // The IPv4 routes are unchanged beside them.
    assert_eq!(d.route(G).unwrap().remotes.len(), 2);
    // The member leaving removes the route.
    v.apply(&StreamMessage::Delta {
        revision: 12,
        changes: vec![Change::Members {
            domain: "d".into(),
            host: "h2".into(),
            groups: vec![g6, G],
            filter: None,
        }],
    });
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    assert!(t.by_vni(100).unwrap().route(g6).is_none());
}

#[test]
fn ipv6_static_sources_policy() {
    let g6 = v6("ff3e::1");
    let v = static_sources_view(g6, v6("2001:db8::2"));
    let t = ForwardingTable::compute(&v, "h1", &links(), &LocalMembership::new());
    let d = t.by_vni(7).unwrap();
    assert_eq!(d.check_source(g6, v6("2001:db8::2")), Verdict::Forward);
    assert_eq!(
        d.check_source(g6, v6("2001:db8::3")),
        Verdict::SourceNotAllowed
    );
}
