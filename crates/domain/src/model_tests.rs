//! Unit tests of the model: verbs, validation, deltas, leases and the group table.

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use crate::SourceFilter;
use crate::api::*;
use crate::model::{Effect, Model};
use crate::validate::ErrorKind;

pub(crate) const LEASE: u64 = 3_000;
const G4: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);
const G: IpAddr = IpAddr::V4(G4);

pub(crate) fn spec(name: &str) -> DomainSpec {
    DomainSpec {
        name: name.to_string(),
        vni: None,
        igmp: IgmpMode::V2,
        static_sources: false,
        igmp_settings: IgmpSettings::default(),
        tunnel: Default::default(),
    }
}

pub(crate) fn subnet(s: &str) -> AssociationSpec {
    AssociationSpec {
        subnet: Some(s.parse().unwrap()),
        host: None,
    }
}

pub(crate) fn reg(host: &str, ip: [u8; 4], net: &str) -> AgentRegistration {
    AgentRegistration {
        host: host.to_string(),
        underlay: SocketAddrV4::new(ip.into(), VXLAN_PORT),
        subnet: Some(net.parse().unwrap()),
        links: vec![LinkInfo {
            name: "veth0".into(),
            address: None,
            single_host: false,
        }],
        dataplane: None,
        public_key: String::new(),
        wireguard: None,
        zone: None,
        upstream: None,
    }
}

fn join(link: &str, group: IpAddr, reporter: IpAddr) -> LinkMembership {
    LinkMembership {
        link: link.to_string(),
        group,
        filter: Some(SourceFilter::any_source()),
        reporters: vec![reporter],
    }
}

fn report(
    session: u64,
    seq: u64,
    snapshot: bool,
    entries: Vec<LinkMembership>,
) -> MembershipReport {
    MembershipReport {
        session,
        seq,
        snapshot,
        entries,
    }
}

/// The reference deployment: one domain over two private subnets, two hosts.
fn reference() -> (Model, u64, u64) {
    let mut m = Model::new(0);
    m.create_domain(spec("prod")).unwrap();
    m.associate("prod", &subnet("10.0.2.0/24")).unwrap();
    m.associate("prod", &subnet("10.0.3.0/24")).unwrap();
    let (a, _) = m
        .register(reg("host-a", [10, 0, 2, 10], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap();
    let (b, _) = m
        .register(reg("host-b", [10, 0, 3, 10], "10.0.3.0/24"), 0, LEASE, 1000)
        .unwrap();
    assert_eq!(a.domains, vec!["prod".to_string()]);
    (m, a.session, b.session)
}

pub(crate) fn deltas(effects: &[Effect]) -> Vec<&Change> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Delta { change, .. } => Some(change),
            _ => None,
        })
        .collect()
}

#[test]
fn domain_verbs_validate_and_refuse_duplicates() {
    let mut m = Model::new(0);
    let d = m.create_domain(spec("a")).unwrap();
    assert_eq!(d.vni, 1);
    assert_eq!(m.create_domain(spec("b")).unwrap().vni, 2);
    let e = m.create_domain(spec("a")).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Conflict, Some("name"))
    );
    let e = m
        .create_domain(DomainSpec {
            vni: Some(2),
            ..spec("c")
        })
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Conflict, Some("vni"))
    );
    let e = m
        .create_domain(DomainSpec {
            vni: Some(1 << 24),
            ..spec("c")
        })
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Invalid, Some("vni"))
    );
    assert_eq!(m.delete_domain("zz").unwrap_err().kind, ErrorKind::NotFound);
    m.delete_domain("a").unwrap();
    assert_eq!(m.domains().len(), 1);
}

#[test]
fn a_subnet_belongs_to_one_domain() {
    let mut m = Model::new(0);
    m.create_domain(spec("a")).unwrap();
    m.create_domain(spec("b")).unwrap();
    m.associate("a", &subnet("10.0.0.0/16")).unwrap();
    let e = m.associate("b", &subnet("10.0.2.0/24")).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Conflict, Some("subnet"))
    );
    let e = m.associate("a", &subnet("10.0.0.0/16")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    let e = m.associate("a", &subnet("10.1.0.1/16")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = m.associate("a", &AssociationSpec::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = m.disassociate("b", &subnet("10.0.0.0/16")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    m.disassociate("a", &subnet("10.0.0.0/16")).unwrap();
    m.associate("b", &subnet("10.0.2.0/24")).unwrap();
}

#[test]
fn joins_spread_as_member_deltas_and_leaves_remove_them() {
    let (mut m, sa, _) = reference();
    let (ack, fx) = m
        .report(
            "host-a",
            report(sa, 1, true, vec![join("eth1", G, [10, 0, 2, 4].into())]),
            10,
        )
        .unwrap();
    assert_eq!(ack.seq, 1);
    assert_eq!(
        deltas(&fx),
        vec![&Change::Member {
            domain: "prod".into(),
            host: "host-a".into(),
            group: G,
            filter: Some(SourceFilter::any_source()),
        }]
    );
    // A retransmission changes nothing.
    let (ack, fx) = m
        .report("host-a", report(sa, 1, false, vec![]), 11)
        .unwrap();
    assert_eq!((ack.seq, fx.len()), (1, 0));
    // A leave.
    let leave = LinkMembership {
        filter: None,
        ..join("eth1", G, [10, 0, 2, 4].into())
    };
    let (_, fx) = m
        .report("host-a", report(sa, 2, false, vec![leave]), 12)
        .unwrap();
    assert!(matches!(
        deltas(&fx)[..],
        [Change::Member { filter: None, .. }]
    ));
    // Stale session and unknown host.
    let e = m
        .report("host-a", report(sa + 100, 3, false, vec![]), 13)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Stale);
    let e = m.heartbeat("nope", &Heartbeat::new(1), 13).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let bad = LinkMembership {
        group: Ipv4Addr::new(10, 0, 0, 1).into(),
        ..join("eth1", G, [10, 0, 2, 4].into())
    };
    let e = m
        .report("host-a", report(sa, 4, false, vec![bad]), 14)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("entries[0].group"));
}

#[test]
fn per_host_merge_follows_rfc3376() {
    let (mut m, sa, _) = reference();
    let s1: IpAddr = Ipv4Addr::new(10, 0, 3, 1).into();
    let s2: IpAddr = Ipv4Addr::new(10, 0, 3, 2).into();
    let e1 = LinkMembership {
        filter: Some(SourceFilter::include([s1])),
        ..join("eth1", G, [10, 0, 2, 4].into())
    };
    let e2 = LinkMembership {
        filter: Some(SourceFilter::include([s2])),
        ..join("eth2", G, [10, 0, 2, 5].into())
    };
    m.report("host-a", report(sa, 1, true, vec![e1, e2]), 1)
        .unwrap();
    let st = m.domain_state("prod").unwrap();
    assert_eq!(st.members.len(), 1);
    assert_eq!(st.members[0].filter, SourceFilter::include([s1, s2]));
    // A static member on the same host makes it any-source, and stays after IGMP leaves.
    m.add_static_member(
        "prod",
        StaticMemberSpec {
            group: G,
            host: "host-a".into(),
            interface: None,
            address: None,
        },
    )
    .unwrap();
    assert_eq!(
        m.domain_state("prod").unwrap().members[0].filter,
        SourceFilter::any_source()
    );
    let (_, fx) = m.report("host-a", report(sa, 2, true, vec![]), 2).unwrap();
    assert!(deltas(&fx).is_empty(), "{fx:?}");
    assert_eq!(m.domain_state("prod").unwrap().members.len(), 1);
}

#[test]
fn lease_expiry_removes_members_and_peer() {
    let (mut m, sa, sb) = reference();
    m.report(
        "host-a",
        report(sa, 1, true, vec![join("eth1", G, [10, 0, 2, 4].into())]),
        0,
    )
    .unwrap();
    m.heartbeat("host-b", &Heartbeat::new(sb), 2_000).unwrap();
    assert_eq!(m.next_expiry(LEASE), Some(LEASE));
    assert!(m.expire(LEASE - 1, LEASE).is_empty());
    let fx = m.expire(LEASE, LEASE);
    assert_eq!(
        deltas(&fx),
        vec![
            &Change::Member {
                domain: "prod".into(),
                host: "host-a".into(),
                group: G,
                filter: None
            },
            &Change::PeerDown {
                domain: "prod".into(),
                host: "host-a".into()
            }
        ]
    );
    assert!(fx.contains(&Effect::Close {
        host: "host-a".into()
    }));
    let infos = m.agent_infos(LEASE);
    assert_eq!(infos[0].state, "expired");
    assert_eq!(infos[1].state, "up");
    let e = m
        .heartbeat("host-a", &Heartbeat::new(sa), LEASE)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Stale);
    assert_eq!(m.forget_expired(LEASE + 1, 600_000), 0);
    // Coming back: register, then it is a peer again with a fresh snapshot.
    let (_, fx) = m
        .register(
            reg("host-a", [10, 0, 2, 10], "10.0.2.0/24"),
            LEASE,
            LEASE,
            1000,
        )
        .unwrap();
    assert!(matches!(deltas(&fx)[..], [Change::PeerUp { .. }]));
    assert!(fx.contains(&Effect::Resnapshot {
        host: "host-a".into()
    }));
    // An agent gone for good is forgotten long after its lease expired.
    m.expire(LEASE * 10, LEASE);
    assert_eq!(m.agent_infos(LEASE * 10).len(), 2);
    assert_eq!(m.forget_expired(LEASE * 10 + 600_000, 600_000), 2);
    assert!(m.agent_infos(0).is_empty());
}

fn down(session: u64, peers: &[&str]) -> Heartbeat {
    Heartbeat {
        session,
        peers_down: peers.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_host_reported_dead_goes_early_only_once_its_heartbeats_stop_too() {
    const CONFIRM: u64 = 600;
    let (mut m, sa, sb) = reference();
    m.report(
        "host-a",
        report(sa, 1, true, vec![join("eth1", G, [10, 0, 2, 4].into())]),
        1_000,
    )
    .unwrap();
    // Nobody reports: silence alone waits for the lease.
    m.heartbeat("host-b", &Heartbeat::new(sb), 1_100).unwrap();
    assert!(m.confirmed_losses(1_700, CONFIRM).is_empty());
    assert_eq!(m.next_confirmation(1_100, CONFIRM), None);
    // host-b reports host-a dead at 1 200 ms, but host-a heartbeats: nothing yet.
    assert!(
        m.heartbeat("host-b", &down(sb, &["host-a"]), 1_200)
            .unwrap()
    );
    assert!(
        !m.heartbeat("host-b", &down(sb, &["host-a"]), 1_250)
            .unwrap()
    );
    assert!(m.confirmed_losses(1_250, CONFIRM).is_empty());
    assert_eq!(m.next_confirmation(1_250, CONFIRM), Some(1_000 + CONFIRM));
    // A heartbeat of host-a moves the confirmation later: it is alive.
    m.heartbeat("host-a", &Heartbeat::new(sa), 1_500).unwrap();
    assert!(m.confirmed_losses(1_600, CONFIRM).is_empty());
    assert_eq!(m.next_confirmation(1_600, CONFIRM), Some(1_500 + CONFIRM));
    // A silent witness proves nothing.
    assert!(m.confirmed_losses(2_100, CONFIRM).is_empty());
    // Witness heard, host-a silent for the whole confirmation time: removed.
    m.heartbeat("host-b", &down(sb, &["host-a"]), 2_000)
        .unwrap();
    let infos = m.agent_infos(2_000);
    assert_eq!(infos[0].reported_down_by, ["host-b"]);
    assert_eq!(infos[1].peers_down, ["host-a"]);
    assert!(m.confirmed_losses(2_099, CONFIRM).is_empty());
    assert_eq!(
        m.confirmed_losses(2_100, CONFIRM),
        vec![("host-a".to_string(), vec!["host-b".to_string()])]
    );
    let fx = m.expire_hosts(&["host-a".to_string()]);
    assert!(
        deltas(&fx)
            .iter()
            .any(|c| matches!(c, Change::Member { filter: None, .. }))
    );
    assert!(fx.contains(&Effect::Close {
        host: "host-a".into()
    }));
    // Gone: no longer reported, and expiring again changes nothing.
    assert!(m.confirmed_losses(2_200, CONFIRM).is_empty());
    assert!(m.expire_hosts(&["host-a".to_string()]).is_empty());
    // The witness's report clears; a report naming itself or nobody known is ignored.
    assert!(
        m.heartbeat("host-b", &down(sb, &["host-b", "ghost"]), 2_300)
            .unwrap()
    );
    assert!(m.confirmed_losses(9_000, CONFIRM).is_empty());
}

#[test]
fn a_heartbeat_reporting_nonsense_is_refused() {
    let (mut m, _, sb) = reference();
    let e = m
        .heartbeat("host-b", &down(sb, &["no/slash"]), 10)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let many: Vec<String> = (0..=crate::validate::MAX_PEERS_DOWN)
        .map(|i| format!("h{i}"))
        .collect();
    let hb = Heartbeat {
        session: sb,
        peers_down: many.into_iter().collect(),
    };
    assert_eq!(
        m.heartbeat("host-b", &hb, 10).unwrap_err().kind,
        ErrorKind::Invalid
    );
}

#[test]
fn association_changes_resnapshot_the_host_and_tell_the_others() {
    let mut m = Model::new(0);
    m.create_domain(spec("prod")).unwrap();
    m.associate("prod", &subnet("10.0.2.0/24")).unwrap();
    m.register(reg("host-a", [10, 0, 2, 10], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap();
    m.register(reg("host-b", [10, 0, 3, 10], "10.0.3.0/24"), 0, LEASE, 1000)
        .unwrap();
    let fx = m
        .associate(
            "prod",
            &AssociationSpec {
                subnet: None,
                host: Some("host-b".into()),
            },
        )
        .unwrap();
    assert!(fx.contains(&Effect::Resnapshot {
        host: "host-b".into()
    }));
    assert!(matches!(deltas(&fx)[..], [Change::PeerUp { peer, .. }] if peer.host == "host-b"));
    assert_eq!(m.domain_state("prod").unwrap().peers.len(), 2);
    let fx = m.delete_domain("prod").unwrap();
    assert_eq!(fx.len(), 2);
}

#[test]
fn static_members_and_sources_are_checked() {
    let (mut m, _, _) = reference();
    let mem = StaticMemberSpec {
        group: G,
        host: "host-b".into(),
        interface: Some("eth1".into()),
        address: Some([10, 0, 3, 7].into()),
    };
    let fx = m.add_static_member("prod", mem.clone()).unwrap();
    assert_eq!(deltas(&fx).len(), 2); // StaticMember + Member
    assert_eq!(
        m.add_static_member("prod", mem.clone()).unwrap_err().kind,
        ErrorKind::Conflict
    );
    let bad = StaticMemberSpec {
        group: [10, 0, 0, 1].into(),
        ..mem.clone()
    };
    assert_eq!(
        m.add_static_member("prod", bad)
            .unwrap_err()
            .field
            .as_deref(),
        Some("group")
    );
    assert_eq!(
        m.add_static_member("nope", mem.clone()).unwrap_err().kind,
        ErrorKind::NotFound
    );
    let src = StaticSourceSpec {
        group: G,
        address: [10, 0, 2, 9].into(),
        host: None,
        interface: None,
    };
    m.add_static_source("prod", src.clone()).unwrap();
    let e = m
        .add_static_source(
            "prod",
            StaticSourceSpec {
                address: [239, 0, 0, 1].into(),
                ..src.clone()
            },
        )
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("address"));
    m.remove_static_source("prod", &src).unwrap();
    assert_eq!(
        m.remove_static_source("prod", &src).unwrap_err().kind,
        ErrorKind::NotFound
    );
    let fx = m.remove_static_member("prod", &mem).unwrap();
    assert!(
        deltas(&fx)
            .iter()
            .any(|c| matches!(c, Change::Member { filter: None, .. }))
    );
}

#[test]
fn group_table_of_the_reference_deployment_has_four_rows() {
    let (mut m, sa, sb) = reference();
    // Receivers: one task on each host; the sender (on host-a) never joins.
    m.report(
        "host-a",
        report(sa, 1, true, vec![join("veth-r1", G, [10, 0, 2, 4].into())]),
        0,
    )
    .unwrap();
    m.report(
        "host-b",
        report(sb, 1, true, vec![join("veth-r2", G, [10, 0, 3, 4].into())]),
        0,
    )
    .unwrap();
    let rows = m.groups(&GroupQuery::default());
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let groups: Vec<(IpAddr, &str)> = rows.iter().map(|r| (r.group, r.host.as_str())).collect();
    let all_systems = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1));
    assert_eq!(
        groups,
        vec![
            (all_systems, "host-a"),
            (all_systems, "host-b"),
            (G, "host-a"),
            (G, "host-b"),
        ]
    );
    assert!(rows.iter().all(|r| r.member
        && !r.source
        && r.member_type == Some(MemberType::Igmp)
        && r.source_filter.is_none()));
    assert_eq!(rows[2].subnet, Some("10.0.2.0/24".parse().unwrap()));
    assert_eq!(rows[2].address, Some([10, 0, 2, 4].into()));
    // Filters.
    let q = |m: &Model, q: GroupQuery| m.groups(&q).len();
    assert_eq!(
        q(
            &m,
            GroupQuery {
                group: Some(G),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        q(
            &m,
            GroupQuery {
                host: Some("host-b".into()),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        q(
            &m,
            GroupQuery {
                member: Some([10, 0, 2, 4].into()),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        q(
            &m,
            GroupQuery {
                kind: Some(MemberType::Static),
                ..Default::default()
            }
        ),
        0
    );
    assert_eq!(
        q(
            &m,
            GroupQuery {
                subnet: Some("10.0.3.0/24".parse().unwrap()),
                ..Default::default()
            }
        ),
        2
    );
    assert_eq!(
        q(
            &m,
            GroupQuery {
                domain: Some("other".into()),
                ..Default::default()
            }
        ),
        0
    );
    m.add_static_source(
        "prod",
        StaticSourceSpec {
            group: G,
            address: [10, 0, 2, 9].into(),
            host: Some("host-a".into()),
            interface: None,
        },
    )
    .unwrap();
    assert_eq!(
        q(
            &m,
            GroupQuery {
                source: Some([10, 0, 2, 9].into()),
                ..Default::default()
            }
        ),
        1
    );
}

#[test]
fn agents_get_unique_tunnel_addresses_and_peers_see_keys() {
    let mut m = Model::new(0);
    m.set_tunnel_pool("10.77.0.0/30".parse().unwrap());
    m.create_domain(spec("prod")).unwrap();
    m.associate("prod", &subnet("10.0.2.0/24")).unwrap();
    let key_a = crate::keys::encode_key(&[1; 32]);
    let a = AgentRegistration {
        public_key: key_a.clone(),
        ..reg("host-a", [10, 0, 2, 10], "10.0.2.0/24")
    };
    let (ra, _) = m.register(a.clone(), 0, LEASE, 1000).unwrap();
    let (rb, _) = m
        .register(reg("host-b", [10, 0, 2, 11], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap();
    let (ta, tb) = (ra.tunnel_address.unwrap(), rb.tunnel_address.unwrap());
    assert_ne!(ta, tb);
    assert_eq!(ra.tunnel_pool, Some("10.77.0.0/30".parse().unwrap()));
    // /30: two usable addresses, both taken now.
    let err = m
        .register(reg("host-c", [10, 0, 2, 12], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap_err();
    assert!(err.to_string().contains("tunnel pool"), "{err}");
    // A re-registration (a new key: rotation) keeps the address and tells the peers.
    let rotated = AgentRegistration {
        public_key: crate::keys::encode_key(&[2; 32]),
        ..a
    };
    let (again, effects) = m.register(rotated.clone(), 10, LEASE, 1000).unwrap();
    assert_eq!(again.tunnel_address, Some(ta));
    assert!(
        deltas(&effects).iter().any(|c| matches!(c,
            Change::PeerUp { peer, .. } if peer.host == "host-a"
                && peer.public_key == rotated.public_key
                && peer.tunnel_address == ta
                && peer.wireguard == SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 10), 51820))),
        "{effects:?}"
    );
    let state = m.domain_state("prod").unwrap();
    assert_eq!(state.peers.len(), 2);
    // A malformed key is refused with the field named.
    let bad = AgentRegistration {
        public_key: "not-a-key".into(),
        ..reg("host-d", [10, 0, 2, 13], "10.0.2.0/24")
    };
    let err = m.register(bad, 0, LEASE, 1000).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
    // The pool frees the address of an agent forgotten after its lease.
    m.expire(10 + LEASE, LEASE);
    assert_eq!(m.forget_expired(10 + 3 * LEASE, LEASE), 2);
    let (rc, _) = m
        .register(reg("host-c", [10, 0, 2, 12], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap();
    assert!(rc.tunnel_address.is_some());
}

#[test]
fn group_table_names_the_upstream_gateway_and_the_sources_it_sees() {
    use crate::groups::UpstreamGateway;
    let (mut m, sa, _) = reference();
    m.report(
        "host-a",
        report(sa, 1, true, vec![join("veth-r1", G, [10, 0, 2, 4].into())]),
        0,
    )
    .unwrap();
    let other = Ipv4Addr::new(239, 1, 1, 1);
    let mut gw = UpstreamGateway {
        host: "host-b".into(),
        interface: "up0".into(),
        ranges: vec!["233.252.0.0/24".parse().unwrap()],
        sources: Vec::new(),
    };
    let upstream = |m: &Model, gw: &UpstreamGateway| -> Vec<GroupEntry> {
        m.groups_with_upstream(&GroupQuery::default(), std::slice::from_ref(gw))
            .into_iter()
            .filter(|r| r.source_type == Some(MemberType::Upstream))
            .collect()
    };
    // Members of a group in the range, no source seen yet: the gateway's row.
    let rows = upstream(&m, &gw);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            rows[0].group,
            rows[0].host.as_str(),
            rows[0].interface.as_deref()
        ),
        (G, "host-b", Some("up0"))
    );
    assert!(rows[0].source && !rows[0].member && rows[0].address.is_none());
    // Sources seen arriving: one row each; outside the ranges: none.
    let s1 = Ipv4Addr::new(192, 0, 2, 1);
    gw.sources = vec![(G4, s1), (other, s1)];
    let rows = upstream(&m, &gw);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!((rows[0].group, rows[0].address), (G, Some(s1.into())));
    // The kind filter, and a gateway the model does not know shows nothing.
    let q = GroupQuery {
        kind: Some(MemberType::Upstream),
        ..Default::default()
    };
    assert_eq!(
        m.groups_with_upstream(&q, std::slice::from_ref(&gw)).len(),
        1
    );
    assert!(m.groups(&q).is_empty());
    gw.host = "host-z".into();
    assert!(upstream(&m, &gw).is_empty());
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv6_static_members_and_sources_are_accepted_and_listed() {
    let (mut m, _, _) = reference();
    let g6 = v6("ff3e::8000:5");
    let fx = m
        .add_static_member(
            "prod",
            StaticMemberSpec {
                group: g6,
                host: "host-b".into(),
                interface: Some("veth0".into()),
                address: Some(v6("2001:db8::b")),
            },
        )
        .unwrap();
    assert!(deltas(&fx).contains(&&Change::Member {
        domain: "prod".into(),
        host: "host-b".into(),
        group: g6,
        filter: Some(SourceFilter::any_source()),
    }));
    m.add_static_source(
        "prod",
        StaticSourceSpec {
            group: g6,
            address: v6("2001:db8::a"),
            host: Some("host-a".into()),
            interface: None,
        },
    )
    .unwrap();
    let rows = m.groups(&GroupQuery {
        group: Some(g6),
        ..Default::default()
    });
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!((rows[0].host.as_str(), rows[0].source), ("host-a", true));
    assert_eq!(rows[0].address, Some(v6("2001:db8::a")));
    assert_eq!((rows[1].host.as_str(), rows[1].member), ("host-b", true));
    assert_eq!(rows[1].subnet, Some("10.0.3.0/24".parse().unwrap()));
    let by_source = m.groups(&GroupQuery {
        source: Some(v6("2001:db8::a")),
        ..Default::default()
    });
    assert_eq!(by_source.len(), 1);
    let st = m.domain_state("prod").unwrap();
    assert_eq!(st.members[0].group, g6);
    assert_eq!(st.static_sources[0].group, g6);
}

/// A 400 naming `field`.
fn refused(e: &crate::validate::ModelError, field: &str) {
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Invalid, Some(field)),
        "{e}"
    );
}

fn source(group: IpAddr, address: IpAddr) -> StaticSourceSpec {
    StaticSourceSpec {
        group,
        address,
        host: None,
        interface: None,
    }
}

#[test]
fn ipv6_link_scope_groups_and_mixed_families_are_refused() {
    let (mut m, sa, _) = reference();
    let member = |group: IpAddr, address: Option<IpAddr>| StaticMemberSpec {
        group,
        host: "host-a".into(),
        interface: None,
        address,
    };
    for link in ["ff02::1", "ff02::1:ff00:1", "ff01::1", "ff32::8000:1"] {
        let e = m
            .add_static_member("prod", member(v6(link), None))
            .unwrap_err();
        refused(&e, "group");
        let e = m
            .add_static_source("prod", source(v6(link), v6("2001:db8::1")))
            .unwrap_err();
        refused(&e, "group");
    }
    let e = m
        .add_static_member("prod", member(v6("2001:db8::1"), None))
        .unwrap_err();
    refused(&e, "group");
    // An address of the other family than the group's.
    let e = m
        .add_static_member("prod", member(v6("ff3e::1"), Some([10, 0, 2, 4].into())))
        .unwrap_err();
    refused(&e, "address");
    let e = m
        .add_static_source("prod", source(G, v6("2001:db8::1")))
        .unwrap_err();
    refused(&e, "address");
    assert!(
        e.message.contains("different address families"),
        "{}",
        e.message
    );
    // A report whose filter mixes families, or whose reporter is of the other family.
    let mixed = LinkMembership {
        filter: Some(SourceFilter::include([v6("2001:db8::1")])),
        ..join("eth1", G, [10, 0, 2, 4].into())
    };
    let e = m
        .report("host-a", report(sa, 1, false, vec![mixed]), 1)
        .unwrap_err();
    refused(&e, "entries[0].filter");
    let reporter = join("eth1", v6("ff3e::1"), [10, 0, 2, 4].into());
    let e = m
        .report("host-a", report(sa, 2, false, vec![reporter]), 1)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("entries[0].reporters"));
    assert!(m.domain_state("prod").unwrap().members.is_empty());
}

#[test]
fn mld_memberships_spread_and_list_like_igmp_ones() {
    let (mut m, sa, _) = reference();
    let g6 = v6("ff3e::8000:5");
    let src = v6("2001:db8::9");
    let e = LinkMembership {
        filter: Some(SourceFilter::include([src])),
        ..join("eth1", g6, v6("fe80::4"))
    };
    // The solicited-node group every IPv6 host reports stays off the domain.
    let sn = join("eth1", v6("ff02::1:ff00:4"), v6("fe80::4"));
    let (_, fx) = m
        .report("host-a", report(sa, 1, true, vec![e, sn]), 1)
        .unwrap();
    assert_eq!(
        deltas(&fx),
        vec![&Change::Member {
            domain: "prod".into(),
            host: "host-a".into(),
            group: g6,
            filter: Some(SourceFilter::include([src])),
        }]
    );
    let rows = m.groups(&GroupQuery::default());
    let listed: Vec<(IpAddr, Option<IpAddr>)> = rows.iter().map(|r| (r.group, r.address)).collect();
    assert_eq!(
        listed,
        [
            (v6("ff02::1"), Some(v6("fe80::4"))),
            (v6("ff02::1:ff00:4"), Some(v6("fe80::4"))),
            (g6, Some(v6("fe80::4"))),
        ]
    );
    assert_eq!(rows[2].source_filter, Some(SourceFilter::include([src])));
    assert_eq!(rows[2].subnet, Some("10.0.2.0/24".parse().unwrap()));
    // The stored form keeps it.
    let stored = crate::model::StoredAgent::from_record(m.agent("host-a").unwrap());
    assert_eq!(stored.memberships.len(), 2);
}

/// IPv4 bodies parse and serialise byte for byte as before the model took IPv6.
#[test]
fn ipv4_bodies_round_trip_unchanged() {
    let bodies = [
        r#"{"link":"veth1","group":"232.1.1.1","filter":{"mode":"include","sources":["10.0.2.4","10.0.3.1"]},"reporters":["10.0.2.5"]}"#,
        r#"{"group":"233.252.0.5","host":"host-a","interface":"veth0","address":"10.0.2.4"}"#,
        r#"{"group":"233.252.0.5","address":"10.0.2.4","host":null,"interface":null}"#,
        r#"{"kind":"members","domain":"prod","host":"host-a","groups":["233.252.0.5","239.1.1.1"],"filter":{"mode":"exclude","sources":[]}}"#,
        r#"{"host":"host-a","group":"233.252.0.5","filter":{"mode":"exclude","sources":["10.0.2.9"]}}"#,
        r#"{"domain":"prod","group":"233.252.0.5","host":"host-a","subnet":"10.0.2.0/24","interface":"veth0","address":"10.0.2.4","member":true,"source":false,"member_type":"igmp","source_type":null,"source_filter":null,"leave":"fast"}"#,
    ];
    fn round<T: serde::Serialize + serde::de::DeserializeOwned>(s: &str) -> String {
        serde_json::to_string(&serde_json::from_str::<T>(s).unwrap()).unwrap()
    }
    assert_eq!(round::<LinkMembership>(bodies[0]), bodies[0]);
    assert_eq!(round::<StaticMemberSpec>(bodies[1]), bodies[1]);
    assert_eq!(round::<StaticSourceSpec>(bodies[2]), bodies[2]);
    assert_eq!(round::<Change>(bodies[3]), bodies[3]);
    assert_eq!(round::<HostMember>(bodies[4]), bodies[4]);
    assert_eq!(round::<GroupEntry>(bodies[5]), bodies[5]);
    // IPv6 ones in the same shapes.
    let v6_body = r#"{"link":"veth1","group":"ff3e::8000:1","filter":{"mode":"include","sources":["2001:db8::4"]},"reporters":["fe80::5"]}"#;
    assert_eq!(round::<LinkMembership>(v6_body), v6_body);
}
