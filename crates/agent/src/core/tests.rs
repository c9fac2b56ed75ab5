//! The agent's decisions under simulated time: no sockets, no clock, no namespaces.

use std::net::Ipv4Addr;

use mcgate_domain::SourceFilter;
use mcgate_domain::api::{
    Domain, DomainState, HostMember, IgmpMode, IgmpSettings, Peer, StreamMessage,
};
use mcgate_wire::igmp::{IgmpRepr, emit_ip_packet};

use super::*;
use crate::control::StreamEvent;
use crate::persist::{SavedGroup, SavedLink};

const G1: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);
const G2: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 6);
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn identity() -> HostIdentity {
    HostIdentity {
        name: "h1".into(),
        zone: Some("eu-west-1a".into()),
        underlay: "10.1.0.1:4789".parse().unwrap(),
        underlay_if: "eth0".into(),
        subnet: Some("10.1.0.0/24".into()),
        dataplane: "userspace",
        dataplane_chosen_because: "asked for".into(),
        public_key: String::new(),
        wireguard: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 51820),
    }
}

fn dev(name: &str, ifindex: u32, address: Option<Ipv4Addr>) -> NetDev {
    NetDev {
        name: name.into(),
        ifindex,
        mac: [2, 0, 0, 0, 0, ifindex as u8],
        mtu: 1500,
        address,
        kind: String::new(),
        ipv6: crate::netdev::Ipv6Link::Disabled,
    }
}

fn core_at(t0: Instant, restore: SavedMembership) -> AgentCore {
    AgentCore::new(identity(), 1500, restore, t0)
}

#[test]
fn the_registration_names_the_zone_given() {
    let c = core_at(Instant::now(), SavedMembership::default());
    assert_eq!(c.registration().zone.as_deref(), Some("eu-west-1a"));
}

fn drain(c: &mut AgentCore) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn frame(src: Ipv4Addr, dst: Ipv4Addr, repr: &IgmpRepr) -> Vec<u8> {
    let mut f = ethernet::multicast_mac(dst).to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0x42]);
    f.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&emit_ip_packet(src, dst, repr));
    f
}

fn report(host: Ipv4Addr, group: Ipv4Addr) -> Vec<u8> {
    frame(host, group, &IgmpRepr::ReportV2 { group })
}

/// The IP sources of the queries the actions send, with their link.
fn queries(actions: &[Action]) -> Vec<(String, u32, Ipv4Addr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit {
                link,
                ifindex,
                frame,
            } => {
                let ip = frame.get(ethernet::HEADER_LEN..)?;
                let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                Some((link.clone(), *ifindex, src))
            }
            _ => None,
        })
        .collect()
}

fn last_table(actions: &[Action]) -> Option<Arc<ForwardingTable>> {
    actions.iter().rev().find_map(|a| match a {
        Action::SetTable(t) => Some(t.clone()),
        _ => None,
    })
}

fn remotes(t: &ForwardingTable, g: Ipv4Addr) -> Vec<String> {
    t.domains()
        .iter()
        .filter_map(|d| d.route(g.into()))
        .flat_map(|r| r.remotes.iter().map(|r| r.host.clone()))
        .collect()
}

fn locals(t: &ForwardingTable, g: impl Into<std::net::IpAddr>) -> Vec<String> {
    let g = g.into();
    t.domains()
        .iter()
        .filter_map(|d| d.route(g))
        .flat_map(|r| r.locals.iter().map(|l| l.link.clone()))
        .collect()
}

fn memberships(actions: &[Action]) -> Vec<(String, Ipv4Addr, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(SessionInput::Membership(m)) => match m.group {
                std::net::IpAddr::V4(g) => Some((m.link.clone(), g, m.filter.is_some())),
                std::net::IpAddr::V6(_) => None,
            },
            _ => None,
        })
        .collect()
}

/// The IPv6 membership reports among `actions`: (link, group, joined, reporters).
fn memberships6(
    actions: &[Action],
) -> Vec<(String, std::net::Ipv6Addr, bool, Vec<std::net::IpAddr>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Session(SessionInput::Membership(m)) => match m.group {
                std::net::IpAddr::V6(g) => {
                    Some((m.link.clone(), g, m.filter.is_some(), m.reporters.clone()))
                }
                std::net::IpAddr::V4(_) => None,
            },
            _ => None,
        })
        .collect()
}

/// A snapshot of one IGMPv2 domain with hosts h1 (this one) and `others`, each of them
/// a member of `G1`.
fn snapshot(revision: u64, others: &[&str]) -> StreamEvent {
    snapshot_with(revision, others, None)
}

/// A snapshot whose domain elects `gateway` for 233.252.0.0/24.
fn snapshot_with(revision: u64, others: &[&str], gateway: Option<&str>) -> StreamEvent {
    let peer = |h: &str, i: u8| Peer {
        host: h.into(),
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, i), 4789),
        public_key: String::new(),
        wireguard: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        tunnel_address: Ipv4Addr::UNSPECIFIED,
        egress: Vec::new(),
    };
    let mut peers = vec![peer("h1", 1)];
    peers.extend(others.iter().zip(2..).map(|(h, i)| peer(h, i)));
    StreamEvent::Message(StreamMessage::Snapshot {
        revision,
        domains: vec![DomainState {
            domain: Domain {
                name: "d1".into(),
                vni: 42,
                igmp: IgmpMode::V2,
                static_sources: false,
                igmp_settings: IgmpSettings::default(),
                subnets: vec![],
                hosts: vec![],
                tunnel: Default::default(),
            },
            peers,
            members: others
                .iter()
                .map(|h| HostMember {
                    host: h.to_string(),
                    group: G1.into(),
                    filter: SourceFilter::any_source(),
                })
                .collect(),
            static_members: vec![],
            static_sources: vec![],
            gateways: gateway
                .map(|h| mcgate_domain::api::GatewayElection {
                    range: "233.252.0.0/24".parse().unwrap(),
                    host: h.into(),
                })
                .into_iter()
                .collect(),
        }],
    })
}

#[test]
fn start_up_waits_for_the_controller_then_queries_with_defaults() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(t0, vec![dev("tk1", 4, None), dev("eth0", 2, None)]);
    let a = drain(&mut c);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::SetLinks(l) if l.len() == 1))
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Session(SessionInput::Registration(r)) if r.links.len() == 1
    )));
    assert!(last_table(&a).is_some());
    assert!(queries(&a).is_empty(), "no querier before the settings");
    assert_eq!(c.poll_timeout(), Some(t0 + SETTINGS_GRACE));
    // Nothing is due early.
    c.handle_timeout(t0 + SETTINGS_GRACE / 2);
    assert!(queries(&drain(&mut c)).is_empty());
    c.handle_timeout(t0 + SETTINGS_GRACE);
    let a = drain(&mut c);
    assert_eq!(
        queries(&a),
        [("tk1".to_string(), 4, Ipv4Addr::UNSPECIFIED)],
        "a start-up general query from 0.0.0.0"
    );
    // A short Max Resp Time, so hosts already joined answer within a second.
    let Some(Action::Transmit { frame, .. }) =
        a.iter().find(|a| matches!(a, Action::Transmit { .. }))
    else {
        unreachable!()
    };
    let ip = mcgate_wire::ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
    match IgmpRepr::parse(ip.payload()).unwrap() {
        IgmpRepr::QueryV3(q) => assert_eq!(q.max_resp_code, 10, "1 s in tenths"),
        other => panic!("{other:?}"),
    }
    let v = c.view();
    assert_eq!(v.igmp_mode, "default");
    assert!(v.links[0].querier);
    assert!(c.poll_timeout().is_some_and(|t| t > t0 + SETTINGS_GRACE));
}

#[test]
fn the_controllers_settings_start_the_querier_at_once() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(t0, vec![dev("tk1", 4, Some(Ipv4Addr::new(10, 0, 0, 1)))]);
    drain(&mut c);
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0 + Duration::from_millis(20), snapshot(1, &["h2"]));
    let a = drain(&mut c);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::SetQuerier(mcgate_wire::Version::V2, _)))
    );
    assert_eq!(
        queries(&a),
        [("tk1".to_string(), 4, Ipv4Addr::new(10, 0, 0, 1))]
    );
    assert_eq!(c.view().igmp_mode, "v2");
    assert_eq!(
        remotes(&last_table(&a).unwrap(), G1),
        ["h2"],
        "the remote member is in the table"
    );
}

/// The idle agent that spun a core: with no timer pending the core asks for no wake-up
/// at all, an hour later as at start.
#[test]
fn no_timers_at_all_means_no_wake_up() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(t0, vec![]);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0 + SETTINGS_GRACE));
    c.handle_timeout(t0 + SETTINGS_GRACE);
    drain(&mut c);
    assert_eq!(c.poll_timeout(), None, "no link: nothing to wake for");
    let hour = t0 + Duration::from_secs(3600);
    c.handle_timeout(hour);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None);

    // A domain with IGMP off and a link (with IPv6): no querier of either family, no
    // timer.
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(
        t0,
        vec![NetDev {
            ipv6: crate::netdev::Ipv6Link::Ready("fe80::1".parse().unwrap()),
            ..dev("tk1", 4, None)
        }],
    );
    let off = match snapshot(1, &[]) {
        StreamEvent::Message(StreamMessage::Snapshot {
            revision,
            mut domains,
        }) => {
            domains[0].domain.igmp = IgmpMode::Off;
            StreamEvent::Message(StreamMessage::Snapshot { revision, domains })
        }
        _ => unreachable!(),
    };
    c.handle_stream(t0, off);
    c.handle_timeout(t0 + SETTINGS_GRACE);
    let a = drain(&mut c);
    assert!(queries(&a).is_empty());
    assert_eq!(c.view().igmp_mode, "off");
    assert_eq!(c.view().links[0].mld.state, "off");
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(hour);
    assert_eq!(c.poll_timeout(), None);
}

/// A CNI sets the address just after creating the veth: the querier must use it.
#[test]
fn an_address_set_after_attach_reaches_the_querier() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(t0, vec![dev("tk1", 4, None)]);
    c.handle_timeout(t0 + SETTINGS_GRACE);
    assert_eq!(queries(&drain(&mut c))[0].2, Ipv4Addr::UNSPECIFIED);
    let addr = Ipv4Addr::new(10, 0, 0, 1);
    let t1 = t0 + Duration::from_secs(4);
    c.handle_links(t1, vec![dev("tk1", 4, Some(addr))]);
    let a = drain(&mut c);
    assert!(
        a.iter().any(|a| matches!(
            a,
            Action::Session(SessionInput::Registration(r)) if r.links[0].address == Some(addr)
        )),
        "the controller learns the address"
    );
    assert_eq!(c.links["tk1"].igmp.as_ref().unwrap().address(), addr);
    // Every later query comes from the new address.
    let next = c.poll_timeout().unwrap();
    c.handle_timeout(next);
    let q = queries(&drain(&mut c));
    assert!(!q.is_empty());
    assert!(q.iter().all(|(_, _, src)| *src == addr), "{q:?}");
    assert_eq!(c.view().links[0].address, Some(addr));
    // Removed again: back to 0.0.0.0.
    c.handle_links(next, vec![dev("tk1", 4, None)]);
    drain(&mut c);
    assert_eq!(
        c.links["tk1"].igmp.as_ref().unwrap().address(),
        Ipv4Addr::UNSPECIFIED
    );
}

#[test]
fn a_report_becomes_membership_a_table_and_one_save() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(1, &["h2"]));
    c.handle_links(t0, vec![dev("tk1", 4, Some(Ipv4Addr::new(10, 0, 0, 1)))]);
    drain(&mut c);
    let t1 = t0 + Duration::from_millis(100);
    c.handle_frame(t1, "tk1", 4, &report(HOST_A, G1));
    c.handle_frame(t1, "tk1", 4, &report(HOST_A, G2));
    // A frame for a link's old index is not this link's.
    c.handle_frame(t1, "tk1", 3, &report(HOST_A, Ipv4Addr::new(233, 252, 0, 9)));
    let a = drain(&mut c);
    assert_eq!(
        memberships(&a),
        [("tk1".into(), G1, true), ("tk1".into(), G2, true)]
    );
    let t = last_table(&a).unwrap();
    assert_eq!(locals(&t, G1), ["tk1"]);
    assert_eq!(locals(&t, G2), ["tk1"]);
    assert_eq!(
        a.iter()
            .filter(|a| matches!(a, Action::SetTable(_)))
            .count(),
        1,
        "one table for the whole burst"
    );
    // One save, a moment after the first change.
    assert!(!a.iter().any(|a| matches!(a, Action::Save(_))));
    assert!(c.poll_timeout().is_some_and(|t| t <= t1 + SAVE_DELAY));
    c.handle_timeout(t1 + SAVE_DELAY);
    let saves: Vec<SavedMembership> = drain(&mut c)
        .into_iter()
        .filter_map(|a| match a {
            Action::Save(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(saves.len(), 1);
    let link = &saves[0].links[0];
    assert_eq!((link.name.as_str(), link.ifindex), ("tk1", 4));
    assert_eq!(link.groups.len(), 2);
    assert_eq!(link.groups[0].reporters, [HOST_A]);
    assert_eq!(c.view().links[0].groups[0].reporters, [HOST_A]);
}

/// A restarted controller's first snapshot lacks hosts that have not re-registered
/// yet: they stay in the table for the hold-down, then go.
#[test]
fn controller_loss_and_return_holds_missing_hosts_down() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(7, &["h2", "h3"]));
    let a = drain(&mut c);
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2", "h3"]);
    // The controller went away and came back with only h2 so far.
    let t1 = t0 + Duration::from_secs(30);
    c.handle_stream(t1, StreamEvent::Connected);
    c.handle_stream(t1, snapshot(1, &["h2"]));
    let a = drain(&mut c);
    assert_eq!(
        remotes(&last_table(&a).unwrap(), G1),
        ["h2", "h3"],
        "h3 is held down"
    );
    assert!(c.poll_timeout().is_some_and(|t| t <= t1 + STALE_HOLD));
    c.handle_timeout(t1 + STALE_HOLD - Duration::from_millis(1));
    assert!(last_table(&drain(&mut c)).is_none());
    c.handle_timeout(t1 + STALE_HOLD);
    let a = drain(&mut c);
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2"]);
    assert_eq!(c.view().domains[0].peers, ["h2"]);
}

#[test]
fn a_peer_found_dead_gets_no_copies_at_once_and_gets_them_again_when_back() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(7, &["h2", "h3"]));
    drain(&mut c);
    c.handle_peers_down(["h3".to_string()].into());
    let a = drain(&mut c);
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2"]);
    // The same set again changes nothing.
    c.handle_peers_down(["h3".to_string()].into());
    assert!(last_table(&drain(&mut c)).is_none());
    // A stream change meanwhile keeps it out.
    c.handle_stream(t0, snapshot(8, &["h2", "h3", "h4"]));
    let a = drain(&mut c);
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2", "h4"]);
    c.handle_peers_down(Default::default());
    let a = drain(&mut c);
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2", "h3", "h4"]);
}

#[test]
fn link_churn_withdraws_members_and_a_recreated_link_starts_afresh() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, snapshot(1, &[]));
    c.handle_links(t0, vec![dev("tk1", 4, None), dev("tk2", 5, None)]);
    c.handle_frame(t0, "tk1", 4, &report(HOST_A, G1));
    drain(&mut c);
    // The container stopped: tk1 is gone.
    let t1 = t0 + Duration::from_secs(1);
    c.handle_links(t1, vec![dev("tk2", 5, None)]);
    let a = drain(&mut c);
    assert_eq!(memberships(&a), [("tk1".into(), G1, false)]);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::SetLinks(l) if l.len() == 1))
    );
    assert!(locals(&last_table(&a).unwrap(), G1).is_empty());
    // It is back with a new index: attached again, nothing carried over, queried.
    c.handle_links(t1, vec![dev("tk1", 9, None), dev("tk2", 5, None)]);
    let a = drain(&mut c);
    assert!(memberships(&a).is_empty());
    assert_eq!(queries(&a), [("tk1".to_string(), 9, Ipv4Addr::UNSPECIFIED)]);
    // The same rescan again changes nothing.
    c.handle_links(t1, vec![dev("tk1", 9, None), dev("tk2", 5, None)]);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn restored_membership_serves_at_once_and_ends_unless_a_host_confirms_it() {
    let t0 = Instant::now();
    let group = |g| SavedGroup {
        group: g,
        filter: SourceFilter::any_source(),
        reporters: vec![HOST_A],
    };
    let saved = SavedMembership {
        links: vec![
            SavedLink {
                name: "tk1".into(),
                ifindex: 4,
                groups: vec![group(G1), group(G2)],
            },
            // Learned on an earlier tk2: not this one.
            SavedLink {
                name: "tk2".into(),
                ifindex: 5,
                groups: vec![group(G1)],
            },
        ],
    };
    let mut c = core_at(t0, saved);
    c.handle_stream(t0, snapshot(1, &["h2"]));
    c.handle_links(t0, vec![dev("tk1", 4, None), dev("tk2", 6, None)]);
    let a = drain(&mut c);
    assert_eq!(
        memberships(&a),
        [("tk1".into(), G1, true), ("tk1".into(), G2, true)]
    );
    let t = last_table(&a).unwrap();
    assert_eq!(locals(&t, G1), ["tk1"], "served before any host answered");
    assert_eq!(locals(&t, G2), ["tk1"]);
    // The querier runs; the host still in G1 answers, nobody answers for G2.
    c.handle_timeout(t0 + SETTINGS_GRACE);
    drain(&mut c);
    let t1 = t0 + SETTINGS_GRACE + Duration::from_millis(400);
    c.handle_frame(t1, "tk1", 4, &report(HOST_A, G1));
    drain(&mut c);
    let mut now = t1;
    let mut ended = Vec::new();
    while now < t0 + RESTORE_HOLD {
        now = c.poll_timeout().unwrap().min(t0 + RESTORE_HOLD);
        c.handle_timeout(now);
        ended.extend(memberships(&drain(&mut c)));
    }
    assert_eq!(ended, [("tk1".into(), G2, false)]);
    let v = c.view();
    let tk1 = v.links.iter().find(|l| l.name == "tk1").unwrap();
    assert_eq!(tk1.groups.iter().map(|g| g.group).collect::<Vec<_>>(), [G1]);
    assert!(
        v.links
            .iter()
            .find(|l| l.name == "tk2")
            .unwrap()
            .groups
            .is_empty()
    );
}

#[test]
fn frames_the_querier_cannot_take_are_counted() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_links(t0, vec![dev("tk1", 4, None)]);
    // Before the domain's settings no querier runs: counted, not lost.
    c.handle_frame(t0, "tk1", 4, &report(HOST_A, G1));
    assert_eq!(c.view().links[0].frames_without_querier, 1);
    c.handle_timeout(t0 + SETTINGS_GRACE);
    c.handle_frame(t0 + SETTINGS_GRACE, "tk1", 4, &[1, 2, 3]);
    let mut arp = report(HOST_A, G1);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    c.handle_frame(t0 + SETTINGS_GRACE, "tk1", 4, &arp);
    assert_eq!(c.view().links[0].bad_frames, 2);
    assert_eq!(c.view().links[0].frames_without_querier, 1);
}

#[test]
fn only_router_links_may_hold_another_querier() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default()).with_router_links(vec!["up*".into()]);
    c.handle_links(t0, vec![dev("tk1", 4, None), dev("up0", 5, None)]);
    let a = drain(&mut c);
    let routers: Vec<(String, bool)> = a
        .iter()
        .find_map(|a| match a {
            Action::SetLinks(l) => Some(l.iter().map(|l| (l.name.clone(), l.routers)).collect()),
            _ => None,
        })
        .expect("the links go to the data plane");
    assert_eq!(
        routers,
        [("tk1".to_string(), false), ("up0".to_string(), true)]
    );
    c.handle_timeout(t0 + SETTINGS_GRACE);
    drain(&mut c);
    let other_queriers = |c: &AgentCore, name: &str| {
        c.links[name]
            .igmp
            .as_ref()
            .expect("querier running")
            .config()
            .other_queriers
    };
    assert!(!other_queriers(&c, "tk1"), "a task link carries hosts only");
    assert!(other_queriers(&c, "up0"), "a router link runs the election");
}

/// A delta of domain d1: `host` joined `group`.
fn joined(revision: u64, host: &str, group: Ipv4Addr) -> StreamEvent {
    StreamEvent::Message(StreamMessage::Delta {
        revision,
        changes: vec![mcgate_domain::api::Change::Member {
            domain: "d1".into(),
            host: host.into(),
            group: group.into(),
            filter: Some(SourceFilter::any_source()),
        }],
    })
}

/// After a failover the stream comes from another replica (or a restarted
/// controller), whose revisions may be lower or higher than those held: its snapshot
/// is the new truth either way, and its deltas apply from its own numbers on.
#[test]
fn a_snapshot_from_another_replica_replaces_the_view_whatever_its_revision() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(100, &["h2", "h3"]));
    c.handle_stream(t0, joined(101, "h3", G2));
    drain(&mut c);
    // Replica B numbers far lower: its snapshot replaces the view at once.
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(5, &["h2"]));
    assert_eq!(c.view().domains[0].peers, ["h2"]);
    // Its next delta is above its own snapshot, not below the old 101: applied (h2
    // in G1 and now G2; h3, held down meanwhile, is not in the view).
    c.handle_stream(t0, joined(6, "h2", G2));
    assert_eq!(c.view().domains[0].remote_members, 2);
    let a = drain(&mut c);
    assert!(remotes(&last_table(&a).unwrap(), G2).contains(&"h2".to_string()));
    // A replica numbering far higher: replaced again, and a delta older than its
    // snapshot is skipped as already applied.
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(1_000_000, &["h4"]));
    c.handle_stream(t0, joined(7, "h4", G2));
    assert_eq!(c.view().domains[0].peers, ["h4"]);
    let after_hold = t0 + STALE_HOLD * 3;
    c.handle_timeout(after_hold);
    let a = drain(&mut c);
    let t = last_table(&a).unwrap();
    assert_eq!(remotes(&t, G1), ["h4"]);
    assert!(remotes(&t, G2).is_empty(), "the stale delta was applied");
}

/// A stream resumed with `since` starts with deltas: a snapshot that comes later on
/// it (the host's domains changed) is the controller's news and takes effect at once,
/// with no hold-down of the hosts it lacks.
#[test]
fn a_resumed_stream_does_not_hold_down_a_later_snapshot() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(7, &["h2", "h3"]));
    drain(&mut c);
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, joined(8, "h2", G2));
    c.handle_stream(t0, snapshot(9, &["h2"]));
    let a = drain(&mut c);
    // With a hold-down, h3 would still be forwarded to.
    assert_eq!(remotes(&last_table(&a).unwrap(), G1), ["h2"]);
}

/// A task's veth (one host at its other end) acts on a leave at once unless the domain
/// says otherwise; a bridge or a router link keeps the last-member queries.
#[test]
fn fast_leave_only_on_single_host_links() {
    let t0 = Instant::now();
    let veth = |name: &str, ifindex| NetDev {
        kind: "veth".into(),
        ..dev(name, ifindex, None)
    };
    let mut c = core_at(t0, SavedMembership::default()).with_router_links(vec!["up*".into()]);
    c.handle_links(
        t0,
        vec![veth("tk1", 4), dev("br1", 5, None), veth("up0", 6)],
    );
    c.handle_timeout(t0 + SETTINGS_GRACE);
    drain(&mut c);
    let fast = |c: &AgentCore, name: &str| {
        c.links[name]
            .igmp
            .as_ref()
            .expect("querier running")
            .config()
            .settings
            .fast_leave
    };
    assert!(fast(&c, "tk1"), "a task veth carries one host");
    assert!(!fast(&c, "br1"), "a bridge may carry many");
    assert!(!fast(&c, "up0"), "a router link carries another router");
    let links = c.registration().links;
    let single: Vec<(String, bool)> = links
        .iter()
        .map(|l| (l.name.clone(), l.single_host))
        .collect();
    assert_eq!(
        single,
        [
            ("br1".to_string(), false),
            ("tk1".to_string(), true),
            ("up0".to_string(), false)
        ]
    );
    let mut off = default_config();
    off.settings.single_host_fast_leave = false;
    let tk1 = c.links["tk1"].dev.clone();
    let config = c.link_config(&tk1, &Some(off)).expect("a config");
    assert!(!config.settings.fast_leave, "the domain turned it off");
}

/// The IGMP messages sent on `link`.
fn sent_on(actions: &[Action], link: &str) -> Vec<IgmpRepr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit { link: l, frame, .. } if l == link => {
                let ip = mcgate_wire::ipv4::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?)
                    .ok()?;
                IgmpRepr::parse(ip.payload()).ok()
            }
            _ => None,
        })
        .collect()
}

#[test]
fn upstream_reports_the_domains_membership_within_its_ranges_and_is_never_a_task_link() {
    use mcgate_wire::igmp::{GroupRecord, QueryV3, RecordType};
    let t0 = Instant::now();
    let ranges = vec!["233.252.0.0/24".parse().unwrap()];
    let mut c = core_at(t0, SavedMembership::default()).with_upstream("up0".into(), ranges, 1);
    // The attach pattern may match it: it is still not a task link.
    c.handle_links(t0, vec![dev("tk1", 3, None), dev("up0", 9, None)]);
    c.handle_upstream_link(t0, Some(dev("up0", 9, Some(Ipv4Addr::new(192, 0, 2, 2)))));
    let a = drain(&mut c);
    assert!(c.links.contains_key("tk1") && !c.links.contains_key("up0"));
    let links = a.iter().rev().find_map(|a| match a {
        Action::SetLinks(l) => Some(l.clone()),
        _ => None,
    });
    let links = links.expect("links handed to the data plane");
    assert!(
        links.iter().any(|l| l.name == "up0" && l.routers),
        "{links:?}"
    );
    assert!(sent_on(&a, "up0").is_empty());

    // Another host of the domain joins a group in the range: reported upstream at once
    // by the elected gateway (this one), while its lease holds.
    c.handle_lease(t0, Some(t0 + Duration::from_secs(60)));
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot_with(1, &["h2"], Some("h1")));
    let a = drain(&mut c);
    let join = IgmpRepr::ReportV3 {
        records: vec![GroupRecord {
            kind: RecordType::ChangeToExclude,
            group: G1,
            sources: vec![],
            aux_data: vec![],
        }],
    };
    assert_eq!(sent_on(&a, "up0"), [join]);

    // The upstream querier's query reaches the proxy, not a task link's querier.
    let q = IgmpRepr::QueryV3(QueryV3 {
        group: Ipv4Addr::UNSPECIFIED,
        max_resp_code: 10,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: vec![],
    });
    c.handle_frame(
        t0,
        "up0",
        9,
        &frame(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(224, 0, 0, 1), &q),
    );
    let up = c.view().upstream.expect("an upstream view");
    assert_eq!(up.querier, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(up.igmp.map(|s| s.queries_v3), Some(1));
    assert_eq!(up.membership.len(), 1);

    // The last member leaves: the proxy leaves upstream.
    c.handle_stream(t0, snapshot_with(2, &[], Some("h1")));
    let a = drain(&mut c);
    let leave = IgmpRepr::ReportV3 {
        records: vec![GroupRecord {
            kind: RecordType::ChangeToInclude,
            group: G1,
            sources: vec![],
            aux_data: vec![],
        }],
    };
    assert!(
        sent_on(&a, "up0").contains(&leave),
        "{:?}",
        sent_on(&a, "up0")
    );
}

#[test]
fn a_standby_gateway_stays_silent_takes_nothing_in_and_takes_over_when_elected() {
    let t0 = Instant::now();
    let ranges = vec!["233.252.0.0/24".parse().unwrap()];
    let mut c = core_at(t0, SavedMembership::default()).with_upstream("up0".into(), ranges, 1);
    let reg = c
        .registration()
        .upstream
        .expect("the registration names the upstream");
    assert_eq!(reg.interface, "up0");
    assert_eq!(reg.groups, vec!["233.252.0.0/24".parse().unwrap()]);
    let standby = |a: &[Action]| {
        a.iter().rev().find_map(|a| match a {
            Action::SetLinks(l) => l
                .iter()
                .find(|l| l.name == "up0")
                .map(|l| l.standby.clone()),
            _ => None,
        })
    };
    let range = vec![(Ipv4Addr::new(233, 252, 0, 0), 24)];
    c.handle_links(t0, vec![dev("tk1", 3, None)]);
    c.handle_upstream_link(t0, Some(dev("up0", 9, Some(Ipv4Addr::new(192, 0, 2, 2)))));
    // Until the controller elects it, it takes nothing in.
    assert_eq!(standby(&drain(&mut c)), Some(range.clone()));
    c.handle_lease(t0, Some(t0 + Duration::from_secs(3)));
    c.handle_stream(t0, StreamEvent::Connected);
    // h2 is elected: this gateway reports nothing and its relay drops the range.
    c.handle_stream(t0, snapshot_with(1, &["h2"], Some("h2")));
    let a = drain(&mut c);
    assert!(sent_on(&a, "up0").is_empty());
    let up = c.view().upstream.expect("an upstream view");
    assert_eq!(up.gateway.role, "standby");
    assert!(
        up.gateway.reason.contains("h2 is elected"),
        "{}",
        up.gateway.reason
    );
    assert!(up.membership.is_empty());
    // h2 is gone: this one is elected, reports at once and takes the range in.
    let t1 = t0 + Duration::from_millis(500);
    c.handle_stream(t1, snapshot_with(2, &["h2"], Some("h1")));
    let a = drain(&mut c);
    assert_eq!(sent_on(&a, "up0").len(), 1, "{:?}", sent_on(&a, "up0"));
    assert_eq!(standby(&a), Some(vec![]));
    assert_eq!(c.view().upstream.unwrap().gateway.role, "active");
    // The lease is not renewed: at its end the gateway fences itself, leaving upstream
    // and dropping the range again.
    let end = c.poll_timeout().expect("a deadline");
    assert!(end <= t0 + Duration::from_secs(3));
    c.handle_timeout(t0 + Duration::from_secs(3));
    let a = drain(&mut c);
    assert!(
        sent_on(&a, "up0")
            .iter()
            .any(|m| matches!(m, IgmpRepr::ReportV3 { records } if records.iter().all(|r| r.kind == mcgate_wire::igmp::RecordType::ChangeToInclude))),
        "{:?}",
        sent_on(&a, "up0")
    );
    assert_eq!(standby(&a), Some(range));
    let up = c.view().upstream.unwrap();
    assert_eq!(up.gateway.role, "standby");
    assert!(
        up.gateway.reason.starts_with("no lease"),
        "{}",
        up.gateway.reason
    );
}

mod mld {
    //! The MLD querier on task links: started once the link-local address is out of DAD,
    //! fed the link's IPv6 frames, its membership kept in the agent.

    use super::memberships6;
    use std::net::Ipv6Addr;

    use mcgate_wire::mld::{self, AddressRecord, MldRepr};
    use mcgate_wire::record::RecordType;

    use super::*;
    use crate::netdev::Ipv6Link;

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const TASK: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5);
    const G6: Ipv6Addr = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 1);
    const G6B: Ipv6Addr = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 2);

    fn veth6(ipv6: Ipv6Link) -> NetDev {
        NetDev {
            kind: "veth".into(),
            ipv6,
            ..dev("tk1", 4, Some(Ipv4Addr::new(10, 0, 0, 1)))
        }
    }

    fn frame6(src: Ipv6Addr, dst: Ipv6Addr, repr: &MldRepr) -> Vec<u8> {
        let mut f = ethernet::ipv6_multicast_mac(dst).to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0x42]);
        f.extend_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(&mld::emit_ip_packet(src, dst, repr));
        f
    }

    fn report_v2(kind: RecordType, group: Ipv6Addr) -> Vec<u8> {
        frame6(
            TASK,
            mld::ALL_MLDV2_ROUTERS,
            &MldRepr::ReportV2 {
                records: vec![AddressRecord {
                    kind,
                    group,
                    sources: vec![],
                    aux_data: vec![],
                }],
            },
        )
    }

    /// The MLD messages sent, with their link, IPv6 source and destination MAC.
    fn mld_sent(actions: &[Action]) -> Vec<(String, Ipv6Addr, [u8; 6], MldRepr)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { link, frame, .. } => {
                    let eth = ethernet::Frame::new_checked(&frame[..]).ok()?;
                    if eth.ethertype() != ethernet::ETHERTYPE_IPV6 {
                        return None;
                    }
                    let ip = mcgate_wire::ipv6::Packet::new_checked(eth.payload()).ok()?;
                    let upper = ip.upper_layer().ok()?;
                    let (src, dst) = (ip.src_addr(), ip.dst_addr());
                    let repr = MldRepr::parse(src, dst, upper.payload).ok()?;
                    Some((link.clone(), src, eth.dst(), repr))
                }
                _ => None,
            })
            .collect()
    }

    /// A core with the task link attached and the querier started with defaults.
    fn started(t0: Instant, ipv6: Ipv6Link) -> (AgentCore, Vec<Action>) {
        let mut c = core_at(t0, SavedMembership::default());
        c.handle_links(t0, vec![veth6(ipv6)]);
        c.handle_timeout(t0 + SETTINGS_GRACE);
        let a = drain(&mut c);
        (c, a)
    }

    #[test]
    fn queries_wait_for_a_link_local_address_out_of_dad() {
        let t0 = Instant::now();
        let (mut c, a) = started(t0, Ipv6Link::Tentative(LL));
        assert!(!queries(&a).is_empty(), "IGMP queries go out");
        assert!(
            mld_sent(&a).is_empty(),
            "a tentative address sources no query"
        );
        assert_eq!(c.view().links[0].mld.state, "tentative");
        assert_eq!(c.view().links[0].mld.address, Some(LL));
        // A report meanwhile is counted, not lost silently.
        c.handle_frame(
            t0 + SETTINGS_GRACE,
            "tk1",
            4,
            &report_v2(RecordType::ChangeToExclude, G6),
        );
        assert_eq!(c.view().links[0].mld.frames_without_querier, 1);
        assert_eq!(c.view().links[0].bad_frames, 0, "IPv6 is no bad frame now");

        // DAD is over: the first startup query goes out at once from that address.
        let t1 = t0 + SETTINGS_GRACE + Duration::from_secs(1);
        c.handle_links(t1, vec![veth6(Ipv6Link::Ready(LL))]);
        let sent = mld_sent(&drain(&mut c));
        let [(link, src, mac, MldRepr::QueryV2(q))] = sent.as_slice() else {
            panic!("one MLDv2 general query: {sent:?}");
        };
        assert_eq!((link.as_str(), *src), ("tk1", LL));
        assert_eq!(
            *mac,
            [0x33, 0x33, 0, 0, 0, 1],
            "to ff02::1's MAC (RFC 2464 section 7)"
        );
        assert!(q.group.is_unspecified());
        let v = c.view();
        assert_eq!(v.links[0].mld.state, "running");
        assert_eq!(v.links[0].mld.version, Some(2));
        assert!(v.links[0].mld.querier);
        assert_eq!(
            v.links[0]
                .mld
                .counters
                .as_ref()
                .map(|s| s.sent.general_queries),
            Some(1)
        );
        assert!(
            c.poll_timeout()
                .is_some_and(|t| t <= t1 + Duration::from_secs(32))
        );

        // A new link-local address: queries come from it.
        let ll2 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        c.handle_links(t1, vec![veth6(Ipv6Link::Ready(ll2))]);
        drain(&mut c);
        c.handle_timeout(t1 + Duration::from_secs(60));
        let sent = mld_sent(&drain(&mut c));
        assert!(
            !sent.is_empty() && sent.iter().all(|(_, src, _, _)| *src == ll2),
            "{sent:?}"
        );

        // The address goes (IPv6 turned off on the link): the querier stops, and says why.
        c.handle_links(
            t1 + Duration::from_secs(61),
            vec![veth6(Ipv6Link::Disabled)],
        );
        let v = c.view();
        assert_eq!(v.links[0].mld.state, "ipv6_disabled");
        assert!(v.links[0].mld.counters.is_none() && !v.links[0].mld.querier);
    }

    #[test]
    fn a_link_without_ipv6_has_no_mld_querier() {
        let t0 = Instant::now();
        let (c, a) = started(t0, Ipv6Link::Disabled);
        assert!(mld_sent(&a).is_empty());
        assert_eq!(c.view().links[0].mld.state, "ipv6_disabled");
        let (c, _) = started(t0, Ipv6Link::NoLinkLocal);
        assert_eq!(c.view().links[0].mld.state, "no_link_local");
        // Before the domain's settings (or their grace period) it waits, as IGMP does.
        let mut c = core_at(t0, SavedMembership::default());
        c.handle_links(t0, vec![veth6(Ipv6Link::Ready(LL))]);
        assert!(mld_sent(&drain(&mut c)).is_empty());
        assert_eq!(c.view().links[0].mld.state, "waiting");
    }

    #[test]
    fn reports_create_groups_and_dones_remove_them_at_once_on_a_task_link() {
        let t0 = Instant::now();
        let (mut c, _) = started(t0, Ipv6Link::Ready(LL));
        let t1 = t0 + SETTINGS_GRACE;
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToExclude, G6));
        c.handle_frame(
            t1,
            "tk1",
            4,
            &frame6(TASK, G6B, &MldRepr::ReportV1 { group: G6B }),
        );
        // Link-scope groups (the solicited-node address every host reports) carry none.
        let solicited = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 5);
        c.handle_frame(
            t1,
            "tk1",
            4,
            &report_v2(RecordType::ModeIsExclude, solicited),
        );
        let groups = c.mld_membership("tk1");
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.group, g.version, g.reporters.clone()))
                .collect::<Vec<_>>(),
            [(G6, 2, vec![TASK]), (G6B, 1, vec![TASK])]
        );
        assert_eq!(groups[0].filter, SourceFilter::<Ipv6Addr>::any_source());
        let v = c.view();
        let stats = v.links[0].mld.counters.clone().unwrap();
        assert_eq!((stats.received.report_v2, stats.received.report_v1), (2, 1));
        assert_eq!(stats.ignored_link_scope, 1);
        assert!(
            v.links[0].groups.is_empty(),
            "IPv6 groups stay out of the IPv4 membership"
        );
        // Both groups go to the controller (not the link-scope one), with the reporter.
        let mut told = memberships6(&drain(&mut c));
        told.sort_by_key(|m| m.1);
        let task = std::net::IpAddr::V6(TASK);
        assert_eq!(
            told,
            [
                ("tk1".to_string(), G6, true, vec![task]),
                ("tk1".to_string(), G6B, true, vec![task]),
            ]
        );

        // Leaves: on a veth (one host) at once, with no address-specific query.
        c.handle_frame(
            t1,
            "tk1",
            4,
            &frame6(TASK, mld::ALL_ROUTERS, &MldRepr::DoneV1 { group: G6B }),
        );
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToInclude, G6));
        assert!(c.mld_membership("tk1").is_empty());
        let a = drain(&mut c);
        assert!(mld_sent(&a).is_empty(), "fast leave sends no query");
        let mut told = memberships6(&a);
        told.sort_by_key(|m| m.1);
        assert_eq!(
            told,
            [
                ("tk1".to_string(), G6, false, vec![]),
                ("tk1".to_string(), G6B, false, vec![]),
            ]
        );
        assert_eq!(
            c.view().links[0]
                .mld
                .counters
                .as_ref()
                .map(|s| s.received.done_v1),
            Some(1)
        );
    }

    #[test]
    fn mld_membership_makes_local_members_of_the_table() {
        let t0 = Instant::now();
        let mut c = core_at(t0, SavedMembership::default());
        c.handle_stream(t0, StreamEvent::Connected);
        c.handle_stream(t0, snapshot(1, &["h2"]));
        c.handle_links(t0, vec![veth6(Ipv6Link::Ready(LL))]);
        c.handle_timeout(t0 + SETTINGS_GRACE);
        drain(&mut c);
        let t1 = t0 + SETTINGS_GRACE;
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToExclude, G6));
        let t = last_table(&drain(&mut c)).expect("a new table");
        assert_eq!(locals(&t, G6), ["tk1"]);
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToInclude, G6));
        let t = last_table(&drain(&mut c)).expect("a new table");
        assert!(locals(&t, G6).is_empty());
    }

    #[test]
    fn a_shared_link_queries_before_a_leave_takes_effect() {
        let t0 = Instant::now();
        let mut c = core_at(t0, SavedMembership::default());
        c.handle_links(
            t0,
            vec![NetDev {
                kind: "bridge".into(),
                ..veth6(Ipv6Link::Ready(LL))
            }],
        );
        c.handle_timeout(t0 + SETTINGS_GRACE);
        drain(&mut c);
        let t1 = t0 + SETTINGS_GRACE;
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToExclude, G6));
        c.handle_frame(t1, "tk1", 4, &report_v2(RecordType::ChangeToInclude, G6));
        let sent = mld_sent(&drain(&mut c));
        assert!(
            matches!(sent.as_slice(), [(_, _, _, MldRepr::QueryV2(q))] if q.group == G6),
            "an address-specific query: {sent:?}"
        );
        assert_eq!(
            c.mld_membership("tk1").len(),
            1,
            "kept until the queries go unanswered"
        );
        let t = c.poll_timeout().unwrap();
        c.handle_timeout(t + Duration::from_secs(3));
        assert!(c.mld_membership("tk1").is_empty());
    }
}

/// The controller may stream IPv6 members and static members (MLD comes later on the
/// links): they reach the forwarding table, and no IGMP join is made for them.
#[test]
fn ipv6_members_from_the_stream_reach_the_table_only() {
    let t0 = Instant::now();
    let mut c = core_at(t0, SavedMembership::default());
    c.handle_stream(t0, StreamEvent::Connected);
    c.handle_stream(t0, snapshot(100, &["h2"]));
    drain(&mut c);
    let g6: std::net::IpAddr = "ff3e::8000:5".parse().unwrap();
    c.handle_stream(
        t0,
        StreamEvent::Message(StreamMessage::Delta {
            revision: 101,
            changes: vec![
                mcgate_domain::api::Change::Member {
                    domain: "d1".into(),
                    host: "h2".into(),
                    group: g6,
                    filter: Some(SourceFilter::any_source()),
                },
                mcgate_domain::api::Change::StaticMember {
                    domain: "d1".into(),
                    member: mcgate_domain::api::StaticMemberSpec {
                        group: "ff05::7".parse().unwrap(),
                        host: identity().name,
                        interface: None,
                        address: None,
                    },
                    present: true,
                },
            ],
        }),
    );
    let a = drain(&mut c);
    let t = last_table(&a).expect("a new table");
    let route = t.domains()[0].route(g6).expect("the IPv6 group is routed");
    assert_eq!(route.remotes[0].host, "h2");
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::SetStaticMembers(s) if !s.is_empty())),
        "no IGMP static join for an IPv6 group"
    );
}
