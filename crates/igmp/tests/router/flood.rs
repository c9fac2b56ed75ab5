//! Flood protection per reporting host, and the recovery query that follows dropped
//! reports, with simulated time.

use std::net::Ipv4Addr;

use mcgate_igmp::Config;
use mcgate_wire::igmp::IgmpRepr;

use crate::harness::*;

fn group(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 10, 0, 0)) + i)
}

fn v2_burst(l: &mut Link, host: Ipv4Addr, groups: std::ops::Range<u32>) {
    for i in groups {
        l.report_v2(host, group(i));
    }
}

#[test]
fn market_data_join_burst_of_500_is_learned_at_once() {
    // A feed handler joins 500 groups in one burst, one IGMPv2 report each, sent once.
    let mut l = Link::new(Config::default());
    v2_burst(&mut l, h(1), 0..500);
    l.wait(secs(2.0));
    assert_eq!(l.igmp.groups().count(), 500);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 0);
}

#[test]
fn one_flooding_host_does_not_hold_back_another() {
    let mut l = Link::new(Config {
        report_rate_limit: 10,
        report_burst: 20,
        ..Config::default()
    });
    v2_burst(&mut l, h(1), 0..100);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 80);
    // Another host on the same link has its own bucket.
    v2_burst(&mut l, h(2), 100..120);
    assert_eq!(l.igmp.groups().count(), 40);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 80);
}

#[test]
fn dropped_reports_are_recovered_by_a_general_query_after_the_flood() {
    let mut l = Link::new(Config {
        report_rate_limit: 100,
        report_burst: 50,
        ..Config::default()
    });
    v2_burst(&mut l, h(1), 0..200);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 150);
    assert_eq!(l.igmp.groups().count(), 50);
    // Nothing more is dropped: one second later (the flood is over) a general query
    // asks every host to report again.
    l.wait(secs(0.999));
    assert_eq!(l.take_sent(), vec![]);
    l.wait(secs(0.001));
    let sent = l.take_sent();
    assert!(
        matches!(&sent[..], [(t, ALL_SYSTEMS, IgmpRepr::QueryV3(q))]
            if *t == secs(1.0) && q.group.is_unspecified() && q.max_resp_code == 100),
        "{sent:?}"
    );
    assert_eq!(l.igmp.stats().sent.recovery_queries, 1);
    // The host answers for each group, spread over the Max Resp Time (10 s): within
    // its rate, so every membership is learned.
    for i in 0..200 {
        l.wait(secs(0.05));
        l.report_v2(h(1), group(i));
    }
    assert_eq!(l.igmp.groups().count(), 200);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 150);
    // No further recovery query is owed.
    l.wait(secs(30.0));
    assert_eq!(l.igmp.stats().sent.recovery_queries, 1);
}

#[test]
fn a_flood_that_goes_on_is_recovered_at_least_every_five_seconds() {
    let mut l = Link::new(Config {
        report_rate_limit: 10,
        report_burst: 10,
        ..Config::default()
    });
    // 20 reports a second from one host, for 12 s: drops all along.
    for i in 0..240 {
        l.report_v2(h(1), group(i % 50));
        l.wait(secs(0.05));
    }
    let recoveries: Vec<_> = l
        .take_sent()
        .into_iter()
        .filter(|(t, _, _)| *t > secs(0.0))
        .map(|(t, _, _)| t)
        .collect();
    // The bucket (10, refilled at 10/s) first runs dry at 0.95 s; drops never stop,
    // so each recovery comes five seconds after the first drop it answers.
    assert_eq!(recoveries, vec![secs(5.95), secs(10.95)]);
}

#[test]
fn a_non_querier_sends_no_recovery_query() {
    let mut l = Link::new(Config {
        report_rate_limit: 10,
        report_burst: 10,
        ..shared()
    });
    l.query_v3(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        false,
        &[],
    );
    assert!(!l.igmp.is_querier());
    v2_burst(&mut l, h(1), 0..20);
    assert_eq!(l.igmp.stats().dropped.rate_limited, 10);
    l.wait(secs(10.0));
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.igmp.stats().sent.recovery_queries, 0);
}
