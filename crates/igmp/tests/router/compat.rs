//! RFC 3376 section 7: older hosts (7.3.2) and older queriers (7.3.1), and the
//! RFC 2236 router of `Version::V2`.

use std::net::Ipv4Addr;

use mcgate_igmp::{Config, FilterMode::*, SourceFilter};
use mcgate_wire::igmp::IgmpRepr;

use crate::harness::*;

fn v2_config() -> Config {
    Config {
        version: Version::V2,
        ..Config::default()
    }
}

#[test]
fn rfc3376_7_3_2_v2_host_present_makes_group_any_source() {
    // A v2 report is IS_EX({}) and starts the IGMPv2 Host Present timer (GMI).
    let mut l = Link::new(Config::default());
    l.rec(IS_EX, &[1]);
    l.wait_until(secs(10.0));
    l.report_v2(h(2), G);
    let st = l.state().unwrap();
    assert_eq!(st.compatibility, Version::V2);
    assert_eq!(st.v2_host_timer, Some(l.at(secs(10.0) + gmi())));
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
}

#[test]
fn rfc3376_7_3_2_block_ignored_and_to_ex_sources_dropped_in_v2_mode() {
    let mut l = Link::new(Config::default());
    l.report_v2(h(2), G);
    l.rec(ALLOW, &[1]);
    l.rec(BLOCK, &[1]);
    // BLOCK ignored: no Q(G,X), source 1 keeps its GMI timer.
    assert_eq!(l.state().unwrap().sources[&s(1)], Some(l.at(gmi())));
    l.rec(TO_EX, &[5]);
    // Treated as TO_EX({}): EXCLUDE (A-Y, Y*A) with A = {} drops every source.
    assert_eq!(l.snapshot(), Some((Exclude, Some(gmi()), srcs(&[]))));
    assert_eq!(l.take_sent(), vec![]);
    // After the v2 host timer runs out the group is IGMPv3 again and BLOCK works.
    l.wait_until(gmi());
    l.rec(IS_EX, &[]);
    l.rec(ALLOW, &[3]);
    l.rec(BLOCK, &[3]);
    assert_eq!(l.state().unwrap().compatibility, Version::V3);
    assert_eq!(l.take_sent().last().map(|(_, d, _)| *d), Some(G));
}

#[test]
fn rfc3376_7_3_2_v2_host_present_leave_is_to_in() {
    // TO_IN is honoured in IGMPv2 compatibility (only IGMPv1 ignores it).
    let mut l = Link::new(Config::default());
    l.report_v2(h(2), G);
    l.rec(TO_IN, &[]);
    assert_eq!(l.take_sent(), vec![(secs(0.0), G, gs_query(G, false, &[]))]);
}

#[test]
fn rfc3376_7_3_2_v1_host_present_ignores_leave_and_to_in() {
    let mut l = Link::new(Config::default());
    l.report_v1(h(1), G);
    let st = l.state().unwrap();
    assert_eq!(st.compatibility, Version::V1);
    assert_eq!(st.v1_host_timer, Some(l.at(gmi())));
    l.leave(h(2), G);
    l.rec(TO_IN, &[]);
    l.rec(BLOCK, &[]);
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.state().unwrap().group_timer, Some(l.at(gmi())));
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    // A v2 report does not lift IGMPv1 compatibility.
    l.report_v2(h(2), G);
    assert_eq!(l.state().unwrap().compatibility, Version::V1);
}

#[test]
fn rfc3376_7_3_2_v1_timer_expiry_returns_to_v2_compatibility() {
    let mut l = Link::new(Config::default());
    l.report_v1(h(1), G);
    l.wait_until(secs(100.0));
    l.report_v2(h(2), G);
    l.wait_until(gmi());
    assert_eq!(l.state().unwrap().compatibility, Version::V2);
    l.leave(h(2), G);
    assert_eq!(l.take_sent().last().map(|(_, d, _)| *d), Some(G));
}

#[test]
fn rfc2236_v2_router_sends_v2_queries() {
    // Version::V2: general queries are 8-byte IGMPv2 queries with Max Resp Time = QRI.
    let mut l = Link::new(v2_config());
    l.wait_until(secs(32.0));
    assert_eq!(
        l.take_sent(),
        vec![(
            secs(31.25),
            ALL_SYSTEMS,
            IgmpRepr::QueryV2 {
                group: Ipv4Addr::UNSPECIFIED,
                max_resp_time: 100
            }
        )]
    );
}

#[test]
fn rfc2236_3_v2_router_leave_group_specific_queries() {
    // RFC 2236 section 3: on a leave the querier sends LMQC group-specific queries,
    // LMQI apart, and deletes the group LMQT later without a report.
    let mut l = Link::new(v2_config());
    l.report_v2(h(1), G);
    l.wait_until(secs(10.0));
    l.leave(h(1), G);
    l.wait_until(secs(12.0));
    let q = IgmpRepr::QueryV2 {
        group: G,
        max_resp_time: 10,
    };
    assert_eq!(
        l.take_sent(),
        vec![(secs(10.0), G, q.clone()), (secs(11.0), G, q)]
    );
    assert_eq!(l.filter(G), None);
}

#[test]
fn rfc2236_v2_router_group_membership_interval() {
    // RFC 2236 section 8.4: GMI = robustness * QI + QRI.
    let mut l = Link::new(v2_config());
    l.report_v2(h(1), G);
    l.wait_until(secs(259.0));
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    l.wait_until(secs(260.0));
    assert_eq!(l.filter(G), None);
}

#[test]
fn rfc2236_v2_router_takes_v3_reports_as_join_and_leave() {
    // Hosts may send v3 reports before they hear our v2 query: a join of all sources,
    // and TO_IN({}) as a leave.
    let mut l = Link::new(v2_config());
    l.rec(IS_IN, &[1]);
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    l.rec(BLOCK, &[1]);
    assert_eq!(l.take_sent(), vec![]);
    l.rec(TO_IN, &[]);
    assert_eq!(l.take_sent().len(), 1);
    l.wait_until(secs(2.0));
    assert_eq!(l.filter(G), None);
}

#[test]
fn rfc3376_7_3_1_older_querier_is_counted_not_obeyed() {
    // A lower-addressed IGMPv2 querier on a shared link wins the election (6.6.2), but
    // the version is configuration (7.3.1): we keep IGMPv3 and its source lists, count
    // the older query, and take over in IGMPv3 when it goes silent.
    let mut l = Link::new(shared());
    l.rec(IS_IN, &[1]);
    l.query_v2(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::UNSPECIFIED);
    assert_eq!(l.igmp.querier(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(l.igmp.version(), Version::V3);
    assert_eq!(l.igmp.stats().older_version_queries, 1);
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[1]))));
    l.rec(IS_IN, &[2]);
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[1, 2]))));
    // 7.3.2: hosts that answer the older querier with IGMPv2 reports still put their
    // group in IGMPv2 compatibility mode.
    l.report_v2(h(2), G);
    assert_eq!(l.state().unwrap().compatibility, Version::V2);
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    l.take_sent();
    l.wait_until(secs(255.0));
    assert!(l.igmp.is_querier());
    assert_eq!(l.igmp.version(), Version::V3);
    let sent = l.take_sent();
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0], (t, ALL_SYSTEMS, IgmpRepr::QueryV3(_)) if t == secs(255.0)));
}

#[test]
fn rfc2236_4_v2_router_ignores_leave_while_v1_host_present() {
    let mut l = Link::new(v2_config());
    l.report_v1(h(1), G);
    l.report_v2(h(2), G);
    l.leave(h(2), G);
    l.rec(TO_IN, &[]);
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    // Once the IGMPv1 Host Present timer has run out, leaves count again.
    l.wait_until(secs(200.0));
    l.report_v2(h(2), G);
    l.wait_until(gmi() + secs(1.0));
    l.take_sent();
    l.leave(h(2), G);
    assert_eq!(l.take_sent().len(), 1);
}
