//! RFC 3376 6.6.2 querier election, startup and general queries, and 6.6.1 timer
//! updates on a non-querier.

use std::net::Ipv4Addr;

use mcgate_igmp::{Config, Event, Ignored, SourceFilter};
use mcgate_wire::igmp::{IgmpRepr, QueryV3};

use crate::harness::*;

const LOWER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HIGHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);

fn general_v3() -> IgmpRepr {
    // QRV 2, QQIC 125 s, Max Resp Code 100 (10 s).
    IgmpRepr::QueryV3(QueryV3 {
        group: Ipv4Addr::UNSPECIFIED,
        max_resp_code: 100,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: vec![],
    })
}

#[test]
fn rfc3376_6_6_2_startup_then_periodic_general_queries() {
    // Startup Query Count (2) queries Startup Query Interval (QI/4) apart, then one
    // every QI, from our address to 224.0.0.1.
    let t0 = std::time::Instant::now();
    let mut igmp = mcgate_igmp::Interface::new(shared(), ROUTER, t0);
    let first = igmp.poll_transmit().unwrap();
    assert_eq!(first.dst, ALL_SYSTEMS);
    assert_eq!(first.message, general_v3());
    assert_eq!(
        first.packet,
        mcgate_wire::igmp::emit_ip_packet(ROUTER, ALL_SYSTEMS, &general_v3())
    );
    assert!(igmp.is_querier());
    let mut l = Link::new(shared());
    l.wait_until(secs(400.0));
    let times: Vec<_> = l
        .take_sent()
        .into_iter()
        .map(|(t, d, m)| {
            assert_eq!((d, m), (ALL_SYSTEMS, general_v3()));
            t
        })
        .collect();
    assert_eq!(times, vec![secs(31.25), secs(156.25), secs(281.25)]);
    assert_eq!(l.igmp.stats().sent.general_queries, 4);
}

#[test]
fn rfc3376_4_1_6_qrv_zero_above_seven_and_unspecified_source() {
    let t0 = std::time::Instant::now();
    let config = Config {
        settings: IgmpSettings {
            robustness: 9,
            ..IgmpSettings::default()
        },
        ..shared()
    };
    let mut igmp = mcgate_igmp::Interface::new(config, Ipv4Addr::UNSPECIFIED, t0);
    let q = igmp.poll_transmit().unwrap();
    assert!(matches!(&q.message, IgmpRepr::QueryV3(v) if v.qrv == 0));
    let ip = mcgate_wire::ipv4::Packet::new_checked(&q.packet[..]).unwrap();
    assert_eq!(ip.src_addr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ip.ttl(), 1);
    assert!(ip.has_router_alert());
}

#[test]
fn rfc3376_6_6_2_lower_querier_wins_and_we_take_over_when_it_goes_silent() {
    let mut l = Link::new(shared());
    l.wait_until(secs(40.0));
    l.take_sent();
    l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert!(!l.igmp.is_querier());
    assert_eq!(
        l.take_events(),
        vec![Event::QuerierChanged {
            querier: Some(LOWER)
        }]
    );
    // It keeps querying every QI: we stay quiet.
    for n in 1..=3 {
        l.wait_until(secs(40.0 + 125.0 * f64::from(n)));
        l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    }
    assert_eq!(l.take_sent(), vec![]);
    // Silent: after the Other Querier Present Interval (2 * 125 + 10 / 2 = 255 s) we
    // resume (6.6.2) with a general query at once.
    let last = secs(40.0 + 375.0);
    l.wait_until(last + secs(254.9));
    assert!(!l.igmp.is_querier());
    l.wait_until(last + secs(255.0));
    assert!(l.igmp.is_querier());
    assert_eq!(
        l.take_events(),
        vec![Event::QuerierChanged { querier: None }]
    );
    assert_eq!(
        l.take_sent(),
        vec![(last + secs(255.0), ALL_SYSTEMS, general_v3())]
    );
}

#[test]
fn rfc3376_6_6_2_higher_querier_is_ignored() {
    let mut l = Link::new(shared());
    l.query_v3(HIGHER, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.query_v2(HIGHER, Ipv4Addr::UNSPECIFIED);
    assert!(l.igmp.is_querier());
    // No querier change; only the warning about the older version (7.3.1).
    assert_eq!(
        l.take_events(),
        vec![Event::RouterIgnored {
            from: HIGHER,
            reason: Ignored::OlderVersionQuery(Version::V2)
        }]
    );
    l.wait_until(secs(31.25));
    assert_eq!(l.take_sent().len(), 1);
}

#[test]
fn rfc4541_2_1_1_unspecified_source_query_does_not_win() {
    // A proxy querier using 0.0.0.0 loses to any real address; a router without an
    // address yields to any real querier.
    let mut l = Link::new(shared());
    l.query_v3(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert!(l.igmp.is_querier());
    let mut l = Link::with_address(shared(), Ipv4Addr::UNSPECIFIED);
    l.query_v3(HIGHER, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert!(!l.igmp.is_querier());
    assert_eq!(l.igmp.querier(), Some(HIGHER));
}

#[test]
fn rfc3376_6_6_2_non_querier_does_not_send_group_queries() {
    let mut l = Link::new(shared());
    l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.report_v2(h(1), G);
    l.leave(h(1), G);
    l.rec(IS_IN, &[1]);
    l.rec(BLOCK, &[1]);
    assert_eq!(l.take_sent(), vec![]);
}

#[test]
fn rfc3376_6_6_1_non_querier_lowers_timers_on_queries_without_s_flag() {
    let mut l = Link::new(shared());
    l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.rec(IS_EX, &[]);
    l.rec(ALLOW, &[1]);
    l.wait_until(secs(10.0));
    // S set: nothing changes.
    l.query_v3(LOWER, G, true, &[]);
    assert_eq!(l.state().unwrap().group_timer, Some(l.at(gmi())));
    // Q(G) with S clear: group timer to LMQC * Max Resp Time (2 * 1 s).
    l.query_v3(LOWER, G, false, &[]);
    assert_eq!(l.state().unwrap().group_timer, Some(l.at(secs(12.0))));
    // Q(G,A): source timers of A.
    l.query_v3(LOWER, G, false, &[1]);
    assert_eq!(l.state().unwrap().sources[&s(1)], Some(l.at(secs(12.0))));
    l.wait_until(secs(12.0));
    assert_eq!(l.filter(G), None);
}

#[test]
fn rfc3376_4_1_6_non_querier_adopts_querier_robustness_and_interval() {
    // QRV 3 and QQIC 60 from the querier: GMI becomes 3 * 60 + 10 = 190 s.
    let mut l = Link::new(shared());
    l.send(
        LOWER,
        ALL_SYSTEMS,
        &IgmpRepr::QueryV3(QueryV3 {
            group: Ipv4Addr::UNSPECIFIED,
            max_resp_code: 100,
            suppress: false,
            qrv: 3,
            qqic: 60,
            sources: vec![],
        }),
    );
    l.report_v2(h(1), G);
    assert_eq!(l.state().unwrap().group_timer, Some(l.at(secs(190.0))));
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
}

#[test]
fn set_config_version_change_restarts_startup_queries() {
    let mut l = Link::new(shared());
    l.wait_until(secs(50.0));
    l.take_sent();
    l.rec(IS_IN, &[1]);
    l.igmp.set_config(
        l.now,
        Config {
            version: mcgate_igmp::Version::V2,
            ..shared()
        },
    );
    l.wait(secs(0.0));
    let sent = l.take_sent();
    assert!(matches!(
        sent.as_slice(),
        [(_, ALL_SYSTEMS, IgmpRepr::QueryV2 { .. })]
    ));
    // Source lists mean nothing in IGMPv2: the INCLUDE group is now any-source.
    assert_eq!(l.filter(G), Some(SourceFilter::any_source()));
    assert!(matches!(
        l.take_events().last(),
        Some(Event::GroupChanged { filter: Some(f), .. }) if *f == SourceFilter::any_source()
    ));
}

#[test]
fn rfc3376_6_6_2_lowest_of_several_queriers_is_kept() {
    // Two routers below us: the lowest is querier; the other's queries (it has not
    // yet stopped) neither replace it nor refresh its timer.
    let lowest = Ipv4Addr::new(10, 0, 0, 1);
    let middle = Ipv4Addr::new(10, 0, 0, 5);
    let mut l = Link::new(shared());
    l.query_v3(middle, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.query_v3(lowest, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.wait_until(secs(100.0));
    l.query_v3(middle, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert_eq!(l.igmp.querier(), Some(lowest));
    assert_eq!(
        l.take_events(),
        vec![
            Event::QuerierChanged {
                querier: Some(middle)
            },
            Event::QuerierChanged {
                querier: Some(lowest)
            },
        ]
    );
    // The lowest went silent at 0 s: we take over at 255 s.
    l.wait_until(secs(255.0));
    assert!(l.igmp.is_querier());
}

#[test]
fn hosts_only_link_drops_every_query_and_stays_querier() {
    // A container on a task link sends queries of every version from a low address: it
    // never wins the election and its queries are counted as router messages.
    let mut l = Link::new(Config::default());
    for _ in 0..3 {
        l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
        l.query_v2(LOWER, Ipv4Addr::UNSPECIFIED);
        let v1 = mcgate_wire::igmp::emit_ip_packet(LOWER, ALL_SYSTEMS, &IgmpRepr::QueryV1);
        l.deliver(&v1);
        l.wait(secs(100.0));
    }
    assert!(l.igmp.is_querier());
    assert_eq!(l.igmp.querier(), None);
    assert_eq!(l.igmp.version(), Version::V3);
    assert_eq!(l.igmp.stats().dropped.router_message, 9);
    assert_eq!(l.igmp.stats().received, Default::default());
    assert!(
        !l.take_events()
            .iter()
            .any(|e| matches!(e, Event::QuerierChanged { .. }))
    );
    // We kept sending general queries: startup at 31.25 s, then every 125 s.
    let times: Vec<_> = l.take_sent().into_iter().map(|(t, _, _)| t).collect();
    assert_eq!(times, vec![secs(31.25), secs(156.25), secs(281.25)]);
}

#[test]
fn marking_a_link_hosts_only_ends_another_querier_at_once() {
    let mut l = Link::new(shared());
    l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert!(!l.igmp.is_querier());
    l.take_events();
    l.igmp.set_config(l.now, Config::default());
    l.wait(secs(0.0));
    assert!(l.igmp.is_querier());
    assert_eq!(
        l.take_events(),
        vec![Event::QuerierChanged { querier: None }]
    );
    assert!(matches!(
        &l.take_sent()[..],
        [(_, ALL_SYSTEMS, IgmpRepr::QueryV3(_))]
    ));
}

#[test]
fn startup_queries_can_use_a_short_max_response_time() {
    // A restarted router asks hosts to answer within 1 s at start-up (RFC 3376 8.6,
    // 8.7), then returns to the Query Response Interval.
    let t0 = std::time::Instant::now();
    let config = Config {
        startup_query_response_interval: Some(secs(1.0)),
        ..Config::default()
    };
    assert_eq!(config.validate(), Ok(()));
    let mut igmp = mcgate_igmp::Interface::new(config, ROUTER, t0);
    let mut codes = Vec::new();
    let mut t = t0;
    loop {
        while let Some(q) = igmp.poll_transmit() {
            let IgmpRepr::QueryV3(q) = q.message else {
                panic!("a v3 query");
            };
            codes.push(((t - t0), q.max_resp_code));
        }
        let Some(next) = igmp.poll_timeout() else {
            break;
        };
        t = next;
        if t > t0 + secs(300.0) {
            break;
        }
        igmp.handle_timeout(t);
    }
    assert_eq!(
        codes,
        vec![
            (secs(0.0), 10),
            (secs(31.25), 10),
            (secs(156.25), 100),
            (secs(281.25), 100)
        ]
    );
    // IGMPv2 queries carry it too.
    let mut v2 = mcgate_igmp::Interface::new(
        Config {
            version: Version::V2,
            startup_query_response_interval: Some(secs(1.0)),
            ..Config::default()
        },
        ROUTER,
        t0,
    );
    assert!(matches!(
        v2.poll_transmit().map(|t| t.message),
        Some(IgmpRepr::QueryV2 {
            max_resp_time: 10,
            ..
        })
    ));
}

#[test]
fn own_query_looped_back_is_not_a_router_message() {
    let mut l = Link::new(Config::default());
    l.query_v3(ROUTER, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert!(l.igmp.is_querier());
    assert_eq!(l.igmp.stats().dropped.router_message, 0);
    assert_eq!(l.igmp.stats().received.query_v3, 1);
}

#[test]
fn rfc3376_7_3_1_warnings_come_at_most_once_per_query_interval() {
    let older = |l: &Link| {
        l.events
            .iter()
            .filter(|e| matches!(e, Event::RouterIgnored { .. }))
            .count()
    };
    let mut l = Link::new(shared());
    for _ in 0..10 {
        l.query_v2(HIGHER, Ipv4Addr::UNSPECIFIED);
        l.wait(secs(10.0));
    }
    // Ten older queries over 100 s: all counted, one warning.
    assert_eq!(l.igmp.stats().older_version_queries, 10);
    assert_eq!(older(&l), 1);
    l.wait_until(secs(125.0));
    l.query_v2(HIGHER, Ipv4Addr::UNSPECIFIED);
    assert_eq!(older(&l), 2);
    // Hosts acting as routers on a hosts-only link are warned about the same way.
    let mut l = Link::new(Config::default());
    for _ in 0..5 {
        l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    }
    assert_eq!(l.igmp.stats().dropped.router_message, 5);
    assert_eq!(
        l.take_events(),
        vec![Event::RouterIgnored {
            from: LOWER,
            reason: Ignored::HostsOnlyLink
        }]
    );
}

#[test]
fn rfc3376_6_6_2_an_address_set_late_takes_part_in_the_election() {
    // The router starts without an address (queries from 0.0.0.0) and yields to any
    // real querier; once the link gets an address below that querier's, it takes over
    // at once, querying from the new address.
    let mut l = Link::with_address(shared(), Ipv4Addr::UNSPECIFIED);
    l.query_v3(HIGHER, Ipv4Addr::UNSPECIFIED, false, &[]);
    assert_eq!(l.igmp.querier(), Some(HIGHER));
    l.take_events();
    l.igmp.set_address(l.now, LOWER);
    l.wait(secs(0.0));
    assert!(l.igmp.is_querier());
    assert_eq!(l.igmp.address(), LOWER);
    assert_eq!(
        l.take_events(),
        vec![Event::QuerierChanged { querier: None }]
    );
    let packet = mcgate_wire::igmp::emit_ip_packet(LOWER, ALL_SYSTEMS, &general_v3());
    assert!(
        matches!(&l.sent[..], [(_, t)] if t.packet == packet),
        "{:?}",
        l.sent
    );
    // An address above the querier's changes nothing but the source of our queries.
    let mut l = Link::with_address(shared(), Ipv4Addr::UNSPECIFIED);
    l.query_v3(LOWER, Ipv4Addr::UNSPECIFIED, false, &[]);
    l.igmp.set_address(l.now, HIGHER);
    assert_eq!(l.igmp.querier(), Some(LOWER));
}
