//! Leaves, silent members, fast leave, query retransmissions with the S flag, reporter
//! tracking and events.

use std::net::Ipv4Addr;

use mcgate_igmp::{Config, Event, FilterMode::*, SourceFilter};
use mcgate_wire::igmp::IgmpRepr;

use crate::harness::*;

fn changed(filter: Option<SourceFilter>, reporters: &[Ipv4Addr]) -> Event {
    Event::GroupChanged {
        group: G,
        filter,
        reporters: reporters.to_vec(),
    }
}

#[test]
fn rfc3376_7_3_2_v2_leave_sends_last_member_queries_then_removes() {
    // A v2 leave is TO_IN({}): EXCLUDE ({},{}) sends Q(G) LMQC times LMQI apart
    // (6.6.3.1) and the group goes when the group timer, lowered to LMQT, expires.
    let mut l = Link::new(Config::default());
    l.report_v2(h(1), G);
    assert_eq!(
        l.take_events(),
        vec![changed(Some(SourceFilter::any_source()), &[h(1)])]
    );
    l.wait_until(secs(5.0));
    l.leave(h(1), G);
    // The leaver is no longer a known member, the group still is until the queries end.
    assert_eq!(
        l.take_events(),
        vec![changed(Some(SourceFilter::any_source()), &[])]
    );
    assert_eq!(l.state().unwrap().group_timer, Some(l.at(secs(7.0))));
    l.wait_until(secs(6.999));
    assert!(l.filter(G).is_some());
    l.wait_until(secs(7.0));
    assert_eq!(l.filter(G), None);
    assert_eq!(l.take_events(), vec![changed(None, &[])]);
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(5.0), G, gs_query(G, false, &[])),
            (secs(6.0), G, gs_query(G, false, &[])),
        ]
    );
    assert_eq!(l.igmp.stats().sent.group_queries, 2);
}

#[test]
fn rfc3376_6_6_3_1_report_during_last_member_queries_sets_s_flag() {
    // A report that answers Q(G) raises the group timer back to GMI; the remaining
    // retransmissions carry the S flag and the group stays.
    let mut l = Link::new(Config::default());
    l.report_v2(h(1), G);
    l.report_v2(h(2), G);
    l.leave(h(1), G);
    l.wait_until(secs(0.5));
    l.report_v2(h(2), G);
    l.wait_until(secs(5.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(0.0), G, gs_query(G, false, &[])),
            (secs(1.0), G, gs_query(G, true, &[])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    assert_eq!(l.igmp.reporters(G), vec![h(2)]);
}

#[test]
fn rfc3376_6_6_3_2_refreshed_source_moves_to_suppressed_query() {
    // Q(G,X) retransmissions: sources whose timer was raised above LMQT by a report go
    // in a query with the S flag set, the others in one with it clear.
    let mut l = Link::new(Config::default());
    l.rec(IS_IN, &[1, 2]);
    l.rec(BLOCK, &[1, 2]);
    l.wait_until(secs(0.5));
    l.report(h(2), &[(ALLOW, G, &[1])]);
    l.wait_until(secs(3.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(0.0), G, gs_query(G, false, &[1, 2])),
            (secs(1.0), G, gs_query(G, true, &[1])),
            (secs(1.0), G, gs_query(G, false, &[2])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::include([s(1)])));
}

#[test]
fn rfc3376_8_4_silent_member_removed_after_group_membership_interval() {
    // No report for robustness * QI + QRI (260 s): the group timer expires (6.5) and,
    // with no source, the group is deleted. General queries keep going meanwhile.
    let mut l = Link::new(Config::default());
    l.rec(IS_EX, &[]);
    l.take_events();
    l.wait_until(secs(259.9));
    assert_eq!(l.filter(G), Some(SourceFilter::exclude([])));
    l.wait_until(secs(260.0));
    assert_eq!(l.filter(G), None);
    assert_eq!(l.take_events(), vec![changed(None, &[])]);
    let general: Vec<_> = l
        .take_sent()
        .into_iter()
        .filter(|(_, dst, _)| *dst == ALL_SYSTEMS)
        .map(|(t, _, _)| t)
        .collect();
    // Second startup query at QI/4, then every QI.
    assert_eq!(general, vec![secs(31.25), secs(156.25)]);
}

#[test]
fn rfc3376_6_5_group_timer_expiry_keeps_running_sources() {
    // EXCLUDE with a requested source whose timer outlives the group timer: on expiry
    // the group becomes INCLUDE of that source.
    let mut l = Link::new(Config::default());
    l.rec(IS_EX, &[9]);
    l.wait_until(secs(100.0));
    l.rec(ALLOW, &[1]);
    l.wait_until(secs(260.0));
    assert_eq!(
        l.snapshot(),
        Some((Include, None, srcs(&[(1, Some(secs(360.0)))])))
    );
    l.wait_until(secs(360.0));
    assert_eq!(l.state(), None);
}

#[test]
fn fast_leave_removes_group_at_once_without_queries() {
    let config = Config {
        settings: IgmpSettings {
            fast_leave: true,
            ..IgmpSettings::default()
        },
        ..Config::default()
    };
    let mut l = Link::new(config.clone());
    l.report_v2(h(1), G);
    l.take_events();
    l.leave(h(1), G);
    assert_eq!(l.filter(G), None);
    assert_eq!(l.take_events(), vec![changed(None, &[])]);
    assert_eq!(l.take_sent(), vec![]);

    // IGMPv3: TO_IN({}) from the only member.
    let mut l = Link::new(config.clone());
    l.rec(IS_IN, &[1, 2]);
    l.rec(TO_IN, &[]);
    assert_eq!(l.state(), None);
    assert_eq!(l.take_sent(), vec![]);
    let mut l = Link::new(config);
    l.rec(IS_EX, &[]);
    l.rec(TO_IN, &[]);
    assert_eq!(l.state(), None);
    assert_eq!(l.take_sent(), vec![]);
}

#[test]
fn fast_leave_falls_back_to_queries_when_other_members_are_known() {
    let mut l = Link::new(Config {
        settings: IgmpSettings {
            fast_leave: true,
            ..IgmpSettings::default()
        },
        ..Config::default()
    });
    l.report_v2(h(1), G);
    l.report_v2(h(2), G);
    l.leave(h(1), G);
    assert!(l.filter(G).is_some());
    assert_eq!(l.take_sent(), vec![(secs(0.0), G, gs_query(G, false, &[]))]);
}

#[test]
fn reporters_follow_each_host() {
    // Each host's last statement is tracked; events report reporter-only changes.
    let mut l = Link::new(Config::default());
    l.report(h(1), &[(IS_IN, G, &[1])]);
    l.report(h(2), &[(IS_EX, G, &[])]);
    l.report(Ipv4Addr::UNSPECIFIED, &[(IS_EX, G, &[])]);
    assert_eq!(l.igmp.reporters(G), vec![h(1), h(2)]);
    assert_eq!(
        l.take_events(),
        vec![
            changed(Some(SourceFilter::include([s(1)])), &[h(1)]),
            changed(Some(SourceFilter::exclude([])), &[h(1), h(2)]),
        ]
    );
    // h(1) blocks its only source: no longer a member.
    l.report(h(1), &[(BLOCK, G, &[1])]);
    assert_eq!(l.igmp.reporters(G), vec![h(2)]);
    assert_eq!(
        l.take_events(),
        vec![changed(Some(SourceFilter::exclude([])), &[h(2)])]
    );
    // A v3 reporter silent for a whole GMI is dropped; the group goes with the timer.
    l.wait_until(gmi());
    assert_eq!(l.igmp.reporters(G), Vec::<Ipv4Addr>::new());
    assert_eq!(l.state(), None);
}

#[test]
fn rfc3376_5_link_local_groups_are_ignored() {
    let mut l = Link::new(Config::default());
    let mdns = Ipv4Addr::new(224, 0, 0, 251);
    l.report_v2(h(1), mdns);
    l.report(h(1), &[(IS_EX, mdns, &[])]);
    assert_eq!(l.igmp.groups().count(), 0);
    assert_eq!(l.take_events(), vec![]);
    assert_eq!(l.igmp.stats().ignored_link_local, 2);
    // Not a multicast address at all.
    l.send(
        h(1),
        V3_ROUTERS,
        &IgmpRepr::ReportV3 {
            records: vec![mcgate_wire::igmp::GroupRecord {
                kind: IS_EX,
                group: Ipv4Addr::new(10, 1, 1, 1),
                sources: vec![],
                aux_data: vec![],
            }],
        },
    );
    assert_eq!(l.igmp.stats().dropped.invalid_group, 1);
    assert_eq!(l.igmp.groups().count(), 0);
}

#[test]
fn rfc3376_4_2_12_unknown_record_types_are_ignored() {
    let mut l = Link::new(Config::default());
    l.report(
        h(1),
        &[
            (mcgate_wire::igmp::RecordType::Unknown(9), G, &[1]),
            (IS_EX, G, &[]),
        ],
    );
    assert_eq!(l.igmp.stats().ignored_records, 1);
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
}
