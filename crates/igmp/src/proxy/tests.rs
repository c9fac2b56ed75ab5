use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use mcgate_wire::igmp::{self, GroupRecord, IgmpRepr, QueryV3, RecordType};
use mcgate_wire::{SourceFilter, Version};

use super::{ProxyConfig, Upstream};

const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const QUERIER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn g(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(233, 252, 0, n)
}

fn s(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, n)
}

fn members(list: &[(Ipv4Addr, SourceFilter)]) -> BTreeMap<Ipv4Addr, SourceFilter> {
    list.iter().cloned().collect()
}

/// Everything sent, as (destination, message).
fn drain(u: &mut Upstream) -> Vec<(Ipv4Addr, IgmpRepr)> {
    std::iter::from_fn(|| u.poll_transmit())
        .map(|t| {
            assert!(!matches!(
                t.message,
                IgmpRepr::QueryV1 | IgmpRepr::QueryV2 { .. } | IgmpRepr::QueryV3(_)
            ));
            // The packet is what a router accepts: TTL 1, Router Alert, from us.
            let p = crate::packet::check(&t.packet).expect("a valid IGMP packet");
            assert_eq!((p.src, p.dst), (ME, t.dst));
            (t.dst, t.message)
        })
        .collect()
}

/// Runs the timers until `until`, collecting what is sent and when.
fn run_until(u: &mut Upstream, until: Instant) -> Vec<(Instant, Ipv4Addr, IgmpRepr)> {
    let mut out = Vec::new();
    while let Some(t) = u.poll_timeout().filter(|t| *t <= until) {
        u.handle_timeout(t);
        out.extend(drain(u).into_iter().map(|(d, m)| (t, d, m)));
    }
    out
}

fn rec(kind: RecordType, group: Ipv4Addr, sources: &[Ipv4Addr]) -> GroupRecord {
    GroupRecord {
        kind,
        group,
        sources: sources.to_vec(),
        aux_data: Vec::new(),
    }
}

fn v3_report(records: Vec<GroupRecord>) -> (Ipv4Addr, IgmpRepr) {
    (igmp::ALL_V3_ROUTERS, IgmpRepr::ReportV3 { records })
}

fn query_packet(repr: &IgmpRepr) -> Vec<u8> {
    let dst = match repr {
        IgmpRepr::QueryV2 { group, .. } if !group.is_unspecified() => *group,
        IgmpRepr::QueryV3(q) if !q.group.is_unspecified() => q.group,
        _ => igmp::ALL_SYSTEMS,
    };
    igmp::emit_ip_packet(QUERIER, dst, repr)
}

fn v3_query(group: Ipv4Addr, sources: &[Ipv4Addr], max_resp_code: u8) -> Vec<u8> {
    query_packet(&IgmpRepr::QueryV3(QueryV3 {
        group,
        max_resp_code,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: sources.to_vec(),
    }))
}

fn upstream(t0: Instant) -> Upstream {
    Upstream::new(ProxyConfig::default(), ME, t0, 7)
}

#[test]
fn rfc3376_5_1_join_and_leave_are_reported_at_once_and_repeated() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(t0, members(&[(g(1), SourceFilter::any_source())]));
    let join = v3_report(vec![rec(RecordType::ChangeToExclude, g(1), &[])]);
    assert_eq!(drain(&mut u), std::slice::from_ref(&join));
    // Robustness Variable 2: one repeat within the Unsolicited Report Interval.
    let sent = run_until(&mut u, t0 + Duration::from_secs(10));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0 < t0 + Duration::from_secs(1));
    assert_eq!((sent[0].1, sent[0].2.clone()), join);
    assert_eq!(u.poll_timeout(), None);

    let t1 = t0 + Duration::from_secs(20);
    u.set_membership(t1, BTreeMap::new());
    let leave = v3_report(vec![rec(RecordType::ChangeToInclude, g(1), &[])]);
    assert_eq!(drain(&mut u), std::slice::from_ref(&leave));
    let sent = run_until(&mut u, t1 + Duration::from_secs(10));
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].1, sent[0].2.clone()), leave);
    assert!(u.membership().is_empty());
    assert_eq!(u.stats().reports_v3, 4);
}

#[test]
fn rfc3376_5_1_source_list_changes_are_allow_and_block() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(t0, members(&[(g(1), SourceFilter::include([s(1), s(2)]))]));
    assert_eq!(
        drain(&mut u),
        [v3_report(vec![rec(
            RecordType::AllowNewSources,
            g(1),
            &[s(1), s(2)]
        )])]
    );
    run_until(&mut u, t0 + Duration::from_secs(5));
    let t1 = t0 + Duration::from_secs(5);
    u.set_membership(t1, members(&[(g(1), SourceFilter::include([s(2), s(3)]))]));
    assert_eq!(
        drain(&mut u),
        [v3_report(vec![
            rec(RecordType::AllowNewSources, g(1), &[s(3)]),
            rec(RecordType::BlockOldSources, g(1), &[s(1)]),
        ])]
    );
    // A second change while the repeat is pending: the repeat states the whole state.
    u.set_membership(t1, members(&[(g(1), SourceFilter::exclude([s(9)]))]));
    assert_eq!(
        drain(&mut u),
        [v3_report(vec![rec(
            RecordType::ChangeToExclude,
            g(1),
            &[s(9)]
        )])]
    );
    let sent = run_until(&mut u, t1 + Duration::from_secs(5));
    assert_eq!(
        sent.into_iter().map(|(_, d, m)| (d, m)).collect::<Vec<_>>(),
        [v3_report(vec![rec(
            RecordType::ChangeToExclude,
            g(1),
            &[s(9)]
        )])]
    );
}

#[test]
fn rfc3376_5_2_general_query_is_answered_with_the_whole_state_within_max_resp() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(
        t0,
        members(&[
            (g(1), SourceFilter::any_source()),
            (g(2), SourceFilter::include([s(1)])),
            (g(3), SourceFilter::include([])),
        ]),
    );
    run_until(&mut u, t0 + Duration::from_secs(2));
    drain(&mut u);
    let t1 = t0 + Duration::from_secs(2);
    // Max Resp Code 100: 10 s.
    u.handle_packet(t1, &v3_query(Ipv4Addr::UNSPECIFIED, &[], 100));
    assert_eq!(u.querier(), Some((QUERIER, t1)));
    assert!(drain(&mut u).is_empty());
    let sent = run_until(&mut u, t1 + Duration::from_secs(20));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0 < t1 + Duration::from_secs(10));
    assert_eq!(
        (sent[0].1, sent[0].2.clone()),
        v3_report(vec![
            rec(RecordType::ModeIsExclude, g(1), &[]),
            rec(RecordType::ModeIsInclude, g(2), &[s(1)]),
        ])
    );
    assert_eq!(u.stats().queries_v3, 1);
}

#[test]
fn rfc3376_5_2_group_and_source_queries_get_the_wanted_sources() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(
        t0,
        members(&[
            (g(1), SourceFilter::exclude([s(1)])),
            (g(2), SourceFilter::include([s(1)])),
        ]),
    );
    run_until(&mut u, t0 + Duration::from_secs(2));
    drain(&mut u);
    let t1 = t0 + Duration::from_secs(2);
    u.handle_packet(t1, &v3_query(g(1), &[s(1), s(2)], 10));
    u.handle_packet(t1, &v3_query(g(2), &[s(2)], 10));
    // A group we are not a member of is not answered.
    u.handle_packet(t1, &v3_query(g(9), &[], 10));
    let sent: Vec<_> = run_until(&mut u, t1 + Duration::from_secs(2))
        .into_iter()
        .map(|(_, d, m)| (d, m))
        .collect();
    assert_eq!(
        sent,
        [v3_report(vec![rec(
            RecordType::ModeIsInclude,
            g(1),
            &[s(2)]
        )])]
    );
}

#[test]
fn rfc3376_7_2_1_an_igmpv2_querier_switches_reports_to_v2_until_it_is_gone() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.handle_packet(
        t0,
        &query_packet(&IgmpRepr::QueryV2 {
            group: Ipv4Addr::UNSPECIFIED,
            max_resp_time: 100,
        }),
    );
    assert_eq!(u.mode(), Version::V2);
    let t1 = t0 + Duration::from_secs(1);
    u.set_membership(t1, members(&[(g(1), SourceFilter::include([s(1)]))]));
    assert_eq!(drain(&mut u), [(g(1), IgmpRepr::ReportV2 { group: g(1) })]);
    // The general query's answer and the join's repeat, both IGMPv2 reports.
    let sent = run_until(&mut u, t1 + Duration::from_secs(10));
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(_, d, m)| *d == g(1) && *m == IgmpRepr::ReportV2 { group: g(1) })
    );
    let t2 = t1 + Duration::from_secs(10);
    u.set_membership(t2, BTreeMap::new());
    assert_eq!(
        drain(&mut u),
        [(igmp::ALL_ROUTERS, IgmpRepr::LeaveV2 { group: g(1) })]
    );
    // Older Version Querier Present Timeout: 2 x 125 s + 10 s with the defaults.
    assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(260)));
    run_until(&mut u, t0 + Duration::from_secs(260));
    assert_eq!(u.mode(), Version::V3);
    u.set_membership(
        t0 + Duration::from_secs(261),
        members(&[(g(2), SourceFilter::any_source())]),
    );
    assert_eq!(
        drain(&mut u),
        [v3_report(vec![rec(RecordType::ChangeToExclude, g(2), &[])])]
    );
    assert_eq!(u.stats().mode_changes, 2);
    assert_eq!(u.stats().leaves_v2, 1);
}

#[test]
fn rfc3376_7_2_1_an_igmpv1_querier_gets_v1_reports_and_no_leave() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.handle_packet(t0, &query_packet(&IgmpRepr::QueryV1));
    assert_eq!(u.mode(), Version::V1);
    u.set_membership(t0, members(&[(g(1), SourceFilter::any_source())]));
    assert_eq!(drain(&mut u), [(g(1), IgmpRepr::ReportV1 { group: g(1) })]);
    run_until(&mut u, t0 + Duration::from_secs(11));
    u.set_membership(t0 + Duration::from_secs(11), BTreeMap::new());
    assert!(drain(&mut u).is_empty());
}

#[test]
fn other_hosts_reports_and_garbage_are_counted_not_obeyed() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    let report = igmp::emit_ip_packet(
        Ipv4Addr::new(192, 0, 2, 9),
        g(1),
        &IgmpRepr::ReportV2 { group: g(1) },
    );
    u.handle_packet(t0, &report);
    for bad in [&[][..], &[0x45, 0, 0], &report[..report.len() - 1]] {
        u.handle_packet(t0, bad);
    }
    let mut routed = v3_query(Ipv4Addr::UNSPECIFIED, &[], 100);
    routed[8] = 2; // TTL 2: not from this link
    u.handle_packet(t0, &routed);
    assert_eq!(u.stats().other_hosts_messages, 1);
    assert_eq!(u.stats().bad_packets, 4);
    assert_eq!(u.poll_timeout(), None);
    assert!(drain(&mut u).is_empty());
}

#[test]
fn many_groups_are_packed_into_reports_that_fit_the_link() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    let list: Vec<_> = (0..=255u8)
        .map(|n| (Ipv4Addr::new(233, 252, 1, n), SourceFilter::any_source()))
        .collect();
    u.set_membership(t0, members(&list));
    let sent = drain(&mut u);
    assert!(sent.len() > 1);
    let mut n = 0;
    for (_, m) in &sent {
        assert!(m.buffer_len() <= 1500 - 24);
        if let IgmpRepr::ReportV3 { records } = m {
            n += records.len();
        }
    }
    assert_eq!(n, 256);
}

/// RFC 4605 4.1, RFC 3376 5.1: a proxy that goes away leaves every group it reported,
/// in one report of state changes to INCLUDE {}, repeated; pending answers are dropped.
#[test]
fn rfc4605_leave_all_reports_every_group_left_and_repeats_it() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(
        t0,
        members(&[
            (g(1), SourceFilter::any_source()),
            (g(2), SourceFilter::include([s(1), s(2)])),
            (g(3), SourceFilter::exclude([s(3)])),
        ]),
    );
    drain(&mut u);
    run_until(&mut u, t0 + Duration::from_secs(10));
    // A general query is pending when the agent stops.
    let t1 = t0 + Duration::from_secs(10);
    u.handle_packet(t1, &v3_query(Ipv4Addr::UNSPECIFIED, &[], 100));
    assert_eq!(u.next_repeat(), None);
    assert_eq!(u.leave_all(t1), 3);
    let leave = v3_report(vec![
        rec(RecordType::ChangeToInclude, g(1), &[]),
        rec(RecordType::BlockOldSources, g(2), &[s(1), s(2)]),
        rec(RecordType::ChangeToInclude, g(3), &[]),
    ]);
    assert_eq!(drain(&mut u), std::slice::from_ref(&leave));
    assert!(u.membership().is_empty());
    // One repeat (Robustness Variable 2) within the Unsolicited Report Interval, and
    // nothing else: the general query's answer is not sent.
    let due = u.next_repeat().expect("a repeat");
    assert!(due < t1 + Duration::from_secs(1));
    let sent = run_until(&mut u, t1 + Duration::from_secs(30));
    let mut repeated: Vec<GroupRecord> = sent
        .iter()
        .flat_map(|(_, _, m)| match m {
            IgmpRepr::ReportV3 { records } => records.clone(),
            other => panic!("not a v3 report: {other:?}"),
        })
        .collect();
    repeated.sort_by_key(|r| r.group);
    assert_eq!(v3_report(repeated), leave, "{sent:?}");
    assert_eq!(u.next_repeat(), None);
    assert_eq!(u.leave_all(t1 + Duration::from_secs(30)), 0);
    assert!(drain(&mut u).is_empty());
}

/// Behind an IGMPv2 querier the leave is one Leave Group per group, to 224.0.0.2.
#[test]
fn rfc4605_leave_all_in_igmpv2_sends_leave_group_messages() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.handle_packet(
        t0,
        &query_packet(&IgmpRepr::QueryV2 {
            group: Ipv4Addr::UNSPECIFIED,
            max_resp_time: 100,
        }),
    );
    u.set_membership(
        t0,
        members(&[
            (g(1), SourceFilter::any_source()),
            (g(2), SourceFilter::any_source()),
        ]),
    );
    drain(&mut u);
    assert_eq!(u.leave_all(t0 + Duration::from_secs(1)), 2);
    assert_eq!(
        drain(&mut u),
        [
            (igmp::ALL_ROUTERS, IgmpRepr::LeaveV2 { group: g(1) }),
            (igmp::ALL_ROUTERS, IgmpRepr::LeaveV2 { group: g(2) }),
        ]
    );
    assert_eq!(u.next_repeat(), None);
    assert_eq!(u.stats().leaves_v2, 2);
}
