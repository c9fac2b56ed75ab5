//! The mirror: store events in, the same model and effects a single controller makes.

use core::net::{Ipv4Addr, SocketAddrV4};

use mcgate_domain::SourceFilter;
use mcgate_domain::api::*;
use mcgate_domain::model::{Effect, Model, StoredAgent};

use super::*;

const G: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);

fn domain(name: &str) -> DomainRecord {
    let mut m = Model::new(0);
    m.create_domain(DomainSpec {
        name: name.into(),
        vni: None,
        igmp: IgmpMode::V2,
        static_sources: false,
        igmp_settings: IgmpSettings::default(),
        tunnel: Default::default(),
    })
    .unwrap();
    m.associate(
        name,
        &AssociationSpec {
            subnet: Some("10.0.0.0/8".parse().unwrap()),
            host: None,
        },
    )
    .unwrap();
    m.domain_record(name).unwrap().clone()
}

fn agent(host: &str, ip: u8, session: u64, joined: bool) -> StoredAgent {
    StoredAgent {
        registration: AgentRegistration {
            host: host.into(),
            underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, ip), VXLAN_PORT),
            subnet: None,
            links: vec![],
            dataplane: None,
            public_key: String::new(),
            wireguard: None,
            zone: None,
            upstream: None,
        },
        session,
        last_seq: Some(1),
        tunnel_address: Ipv4Addr::new(10, 255, 0, ip),
        memberships: if joined {
            vec![LinkMembership {
                link: "veth0".into(),
                group: G.into(),
                filter: Some(SourceFilter::any_source()),
                reporters: vec![],
            }]
        } else {
            vec![]
        },
        gateway_since: None,
        expired_unix: None,
    }
}

fn put<T: serde::Serialize>(key: &str, v: &T, revision: i64) -> Event {
    Event {
        key: key.into(),
        value: Some(serde_json::to_vec(v).unwrap()),
        revision,
    }
}

fn del(key: &str, revision: i64) -> Event {
    Event {
        key: key.into(),
        value: None,
        revision,
    }
}

fn live(session: u64) -> Live {
    Live { session, lease: 7 }
}

#[test]
fn an_agent_and_its_lease_in_one_batch_make_it_live_with_its_members() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    mirror.apply(&mut m, vec![put("domains/d", &domain("d"), 2)], 0);
    let out = mirror.apply(
        &mut m,
        vec![
            put("agents/h1", &agent("h1", 1, 40, true), 3),
            put("live/h1", &live(40), 3),
        ],
        5,
    );
    assert!(m.is_live("h1"));
    assert!(
        out.effects
            .contains(&Effect::Resnapshot { host: "h1".into() })
    );
    assert_eq!(mirror.rev(&Key::Agent("h1")), 3);
    assert_eq!(mirror.rev(&Key::Domain("d")), 2);
    assert_eq!(mirror.rev(&Key::Agent("h2")), 0);
    let state = m.domain_state("d").unwrap();
    assert_eq!(state.members.len(), 1);
    assert_eq!(mirror.live("h1"), Some(live(40)));
}

#[test]
fn a_lease_gone_removes_the_members_and_closes_the_stream() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    mirror.apply(
        &mut m,
        vec![
            put("domains/d", &domain("d"), 2),
            put("agents/h1", &agent("h1", 1, 40, true), 3),
            put("live/h1", &live(40), 3),
            put("agents/h2", &agent("h2", 2, 41, false), 4),
            put("live/h2", &live(41), 4),
        ],
        0,
    );
    let out = mirror.apply(&mut m, vec![del("live/h1", 9)], 10);
    assert!(!m.is_live("h1"));
    assert!(out.effects.contains(&Effect::Close { host: "h1".into() }));
    // h2 is told that h1's members and peer entry are gone.
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::Delta { domain, .. } if domain == "d"))
    );
    assert!(m.domain_state("d").unwrap().members.is_empty());
    assert_eq!(mirror.live("h1"), None);
}

#[test]
fn a_lease_of_an_older_session_does_not_make_an_agent_live() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    mirror.apply(
        &mut m,
        vec![
            put("agents/h1", &agent("h1", 1, 40, true), 3),
            put("live/h1", &live(39), 3),
        ],
        0,
    );
    assert!(m.agent("h1").is_some());
    assert!(!m.is_live("h1"));
}

#[test]
fn undecodable_or_misnamed_values_count_and_read_as_absent() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    let bad = Event {
        key: "domains/d".into(),
        value: Some(b"{not json".to_vec()),
        revision: 2,
    };
    mirror.apply(&mut m, vec![bad, put("domains/e", &domain("other"), 3)], 0);
    assert_eq!(mirror.undecodable, 1);
    assert!(m.domains().is_empty());
    let out = mirror.apply(&mut m, vec![put("auth/tokens", &"[]", 4)], 0);
    assert_eq!(out.tokens, Some((Some(b"\"[]\"".to_vec()), 4)));
}

#[test]
fn a_new_session_of_a_live_agent_resnapshots_it() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    mirror.apply(
        &mut m,
        vec![
            put("agents/h1", &agent("h1", 1, 40, true), 3),
            put("live/h1", &live(40), 3),
        ],
        0,
    );
    let out = mirror.apply(
        &mut m,
        vec![
            put("agents/h1", &agent("h1", 1, 50, true), 5),
            put("live/h1", &live(50), 5),
        ],
        0,
    );
    assert_eq!(out.effects, vec![Effect::Resnapshot { host: "h1".into() }]);
    assert_eq!(m.agent("h1").unwrap().session, 50);
}

#[test]
fn a_resync_deletes_what_the_fresh_read_lacks() {
    let (mut m, mut mirror) = (Model::new(0), Mirror::default());
    mirror.apply(
        &mut m,
        vec![
            put("domains/d", &domain("d"), 2),
            put("domains/e", &domain("e"), 3),
        ],
        0,
    );
    let all = mirror.resync(vec![put("domains/e", &domain("e"), 3)]);
    mirror.apply(&mut m, all, 0);
    let names: Vec<_> = m.domains().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["e"]);
    assert_eq!(mirror.rev(&Key::Domain("d")), 0);
}
