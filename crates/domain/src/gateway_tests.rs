//! Unit tests of the upstream gateway election in the model.

use ipnet::Ipv4Net;

use crate::api::*;
use crate::forwarding::DomainView;
use crate::model::{Effect, Model};
use crate::model_tests::{LEASE, deltas, reg, spec, subnet};
use crate::validate::ErrorKind;

fn range() -> Ipv4Net {
    "233.252.0.0/24".parse().unwrap()
}

fn gateway(host: &str, last: u8) -> AgentRegistration {
    AgentRegistration {
        upstream: Some(UpstreamSpec {
            interface: "up0".into(),
            groups: vec![range()],
            egress: Vec::new(),
        }),
        ..reg(host, [10, 0, 2, last], "10.0.2.0/24")
    }
}

fn model() -> Model {
    let mut m = Model::new(0);
    m.create_domain(spec("feeds")).unwrap();
    m.associate("feeds", &subnet("10.0.2.0/24")).unwrap();
    m
}

fn elected(m: &Model) -> Vec<GatewayElection> {
    m.domain_state("feeds").unwrap().gateways
}

fn one(host: &str) -> Vec<GatewayElection> {
    vec![GatewayElection {
        range: range(),
        host: host.into(),
    }]
}

/// The gateway changes among `effects`.
fn gateway_changes(effects: &[Effect]) -> Vec<(Ipv4Net, Option<String>)> {
    deltas(effects)
        .into_iter()
        .filter_map(|c| match c {
            Change::Gateway { range, host, .. } => Some((*range, host.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_live_gateway_is_elected_and_a_second_does_not_displace_it() {
    let mut m = model();
    // "gw-b" registers first: the order of registration decides, not the name.
    let (_, fx) = m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    assert_eq!(gateway_changes(&fx), vec![(range(), Some("gw-b".into()))]);
    let (_, fx) = m.register(gateway("gw-a", 1), 10, LEASE, 1000).unwrap();
    assert!(gateway_changes(&fx).is_empty(), "{fx:?}");
    assert_eq!(elected(&m), one("gw-b"));
    // A live re-registration (a reconnect) keeps the candidacy: no flap.
    let (_, fx) = m.register(gateway("gw-b", 2), 20, LEASE, 1000).unwrap();
    assert!(gateway_changes(&fx).is_empty(), "{fx:?}");
    assert_eq!(elected(&m), one("gw-b"));
    // A host without upstream is never a candidate.
    m.register(reg("host-c", [10, 0, 2, 3], "10.0.2.0/24"), 30, LEASE, 1000)
        .unwrap();
    assert_eq!(elected(&m), one("gw-b"));
}

#[test]
fn the_next_gateway_takes_over_when_the_lease_expires_and_the_old_one_does_not_steal_back() {
    let mut m = model();
    let (b, _) = m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    let (a, _) = m.register(gateway("gw-a", 1), 0, LEASE, 1000).unwrap();
    // gw-a keeps heartbeating, gw-b goes silent.
    let hb = |session| Heartbeat {
        session,
        peers_down: Default::default(),
    };
    m.heartbeat("gw-a", &hb(a.session), LEASE - 100).unwrap();
    assert!(m.expire(LEASE - 1, LEASE).is_empty());
    let fx = m.expire(LEASE, LEASE);
    assert_eq!(gateway_changes(&fx), vec![(range(), Some("gw-a".into()))]);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Delta { domain, change: Change::Gateway { .. } } if domain == "feeds"
    )));
    assert_eq!(elected(&m), one("gw-a"));
    let infos = m.agent_infos(LEASE);
    let of = |h: &str| {
        let i = infos.iter().find(|i| i.host == h).unwrap();
        (i.upstream.is_some(), i.elected_for.clone())
    };
    assert_eq!(of("gw-a"), (true, vec![range()]));
    assert_eq!(of("gw-b"), (true, vec![]));
    // gw-b comes back: a new candidacy, younger than gw-a's.
    let (_, fx) = m
        .register(gateway("gw-b", 2), LEASE + 10, LEASE, 1000)
        .unwrap();
    assert!(gateway_changes(&fx).is_empty(), "{fx:?}");
    assert_eq!(elected(&m), one("gw-a"));
    assert!(b.session < a.session);
}

#[test]
fn an_early_removal_or_deregistration_elects_the_next_and_the_last_leaves_none() {
    let mut m = model();
    m.register(gateway("gw-a", 1), 0, LEASE, 1000).unwrap();
    m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    // The peer-liveness path removes a host before its lease runs out.
    let fx = m.expire_hosts(&["gw-a".to_string()]);
    assert_eq!(gateway_changes(&fx), vec![(range(), Some("gw-b".into()))]);
    let fx = m.deregister("gw-b").unwrap();
    assert_eq!(gateway_changes(&fx), vec![(range(), None)]);
    assert!(elected(&m).is_empty());
}

#[test]
fn ranges_and_domains_are_elected_apart() {
    let mut m = model();
    m.create_domain(spec("other")).unwrap();
    m.associate("other", &subnet("10.0.3.0/24")).unwrap();
    let wide: Ipv4Net = "239.10.0.0/16".parse().unwrap();
    let both = AgentRegistration {
        upstream: Some(UpstreamSpec {
            interface: "up0".into(),
            groups: vec![range(), wide],
            egress: Vec::new(),
        }),
        ..reg("gw-a", [10, 0, 2, 1], "10.0.2.0/24")
    };
    m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    m.register(both, 0, LEASE, 1000).unwrap();
    let other = AgentRegistration {
        upstream: Some(UpstreamSpec {
            interface: "up1".into(),
            groups: vec![range()],
            egress: Vec::new(),
        }),
        ..reg("gw-c", [10, 0, 3, 1], "10.0.3.0/24")
    };
    m.register(other, 0, LEASE, 1000).unwrap();
    let mut want = one("gw-b");
    want.push(GatewayElection {
        range: wide,
        host: "gw-a".into(),
    });
    assert_eq!(elected(&m), want);
    assert_eq!(m.domain_state("other").unwrap().gateways, one("gw-c"));
}

#[test]
fn a_range_outside_multicast_is_refused() {
    let mut m = model();
    let bad = AgentRegistration {
        upstream: Some(UpstreamSpec {
            interface: "up0".into(),
            groups: vec!["10.0.0.0/8".parse().unwrap()],
            egress: Vec::new(),
        }),
        ..reg("gw-a", [10, 0, 2, 1], "10.0.2.0/24")
    };
    let e = m.register(bad, 0, LEASE, 1000).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::Invalid, Some("upstream.groups[0]"))
    );
    let wide = AgentRegistration {
        upstream: Some(UpstreamSpec {
            interface: "up0".into(),
            groups: vec!["0.0.0.0/0".parse().unwrap()],
            egress: Vec::new(),
        }),
        ..reg("gw-a", [10, 0, 2, 1], "10.0.2.0/24")
    };
    assert!(m.register(wide, 0, LEASE, 1000).is_err());
    assert!(elected(&m).is_empty());
}

#[test]
fn the_stream_carries_the_election_to_the_agents_view() {
    let mut m = model();
    m.register(gateway("gw-a", 1), 0, LEASE, 1000).unwrap();
    m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    let mut view = DomainView::new();
    let snapshot = StreamMessage::Snapshot {
        revision: 1,
        domains: vec![m.domain_state("feeds").unwrap()],
    };
    view.apply(&snapshot);
    assert_eq!(view.gateways().cloned().collect::<Vec<_>>(), one("gw-a"));
    let fx = m.expire_hosts(&["gw-a".to_string()]);
    view.apply(&StreamMessage::Delta {
        revision: 2,
        changes: deltas(&fx).into_iter().cloned().collect(),
    });
    assert_eq!(view.gateways().cloned().collect::<Vec<_>>(), one("gw-b"));
    // The last gateway gone: no range is elected any more.
    let fx = m.expire_hosts(&["gw-b".to_string()]);
    view.apply(&StreamMessage::Delta {
        revision: 3,
        changes: deltas(&fx).into_iter().cloned().collect(),
    });
    assert_eq!(view.gateways().count(), 0);
}

#[test]
fn the_group_table_names_only_the_elected_gateway() {
    use crate::groups::UpstreamGateway;
    let mut m = model();
    m.register(gateway("gw-a", 1), 0, LEASE, 1000).unwrap();
    m.register(gateway("gw-b", 2), 0, LEASE, 1000).unwrap();
    let (r, _) = m
        .register(reg("host-c", [10, 0, 2, 3], "10.0.2.0/24"), 0, LEASE, 1000)
        .unwrap();
    let g = core::net::Ipv4Addr::new(233, 252, 0, 7);
    let join = LinkMembership {
        link: "tk1".into(),
        group: g.into(),
        filter: Some(crate::SourceFilter::any_source()),
        reporters: vec![],
    };
    let report = MembershipReport {
        session: r.session,
        seq: 1,
        snapshot: true,
        entries: vec![join],
    };
    m.report("host-c", report, 0).unwrap();
    let gw = |host: &str| UpstreamGateway {
        host: host.into(),
        interface: "up0".into(),
        ranges: vec![range()],
        sources: Vec::new(),
    };
    let q = GroupQuery {
        kind: Some(MemberType::Upstream),
        ..Default::default()
    };
    let named = |m: &Model| -> Vec<String> {
        m.groups_with_upstream(&q, &[gw("gw-a"), gw("gw-b")])
            .into_iter()
            .map(|r| r.host)
            .collect()
    };
    assert_eq!(named(&m), vec!["gw-a".to_string()]);
    m.expire_hosts(&["gw-a".to_string()]);
    assert_eq!(named(&m), vec!["gw-b".to_string()]);
}
