//! Bad packets are dropped and counted by reason (RFC 3376 section 4, 4.2.14, 9.1;
//! RFC 2236 section 2), and reports are rate limited.

use std::net::Ipv4Addr;

use mcgate_igmp::{Config, Dropped};
use mcgate_wire::igmp::{IgmpRepr, emit_ip_packet};

use crate::harness::*;

fn v2_report() -> Vec<u8> {
    igmp_bytes(&IgmpRepr::ReportV2 { group: G })
}

fn dropped(packet: &[u8]) -> Dropped {
    let mut l = Link::new(Config::default());
    l.deliver(packet);
    assert_eq!(l.igmp.groups().count(), 0, "a dropped packet changed state");
    l.igmp.stats().dropped.clone()
}

#[test]
fn not_ipv4_is_bad_ip() {
    assert_eq!(dropped(&[0x45, 0, 0]).bad_ip, 1);
    assert_eq!(dropped(&[]).bad_ip, 1);
    let mut p = ip_packet(h(1), G, 1, true, &v2_report());
    p[10] ^= 0xff; // IP header checksum
    assert_eq!(dropped(&p).bad_ip, 1);
}

#[test]
fn not_igmp_is_counted() {
    let mut p = ip_packet(h(1), G, 1, true, &v2_report());
    p[9] = 17;
    // Fix the header checksum after the edit.
    p[10] = 0;
    p[11] = 0;
    let sum = mcgate_wire::checksum::checksum(&p[..24]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(dropped(&p).not_igmp, 1);
}

#[test]
fn rfc3376_4_ttl_not_one_is_dropped() {
    assert_eq!(
        dropped(&ip_packet(h(1), G, 2, true, &v2_report())).bad_ttl,
        1
    );
    assert_eq!(
        dropped(&ip_packet(h(1), G, 64, true, &v2_report())).bad_ttl,
        1
    );
}

#[test]
fn truncated_and_bad_checksum_are_dropped() {
    let r = v2_report();
    assert_eq!(dropped(&ip_packet(h(1), G, 1, true, &r[..6])).truncated, 1);
    let mut bad = r.clone();
    bad[7] ^= 1;
    assert_eq!(dropped(&ip_packet(h(1), G, 1, true, &bad)).checksum, 1);
}

#[test]
fn unknown_type_is_dropped() {
    let mut m = vec![0x42, 0, 0, 0, 239, 1, 2, 3];
    let sum = mcgate_wire::checksum::checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(dropped(&ip_packet(h(1), G, 1, true, &m)).unknown_type, 1);
}

#[test]
fn router_only_types_on_a_hosts_only_link_are_router_messages() {
    // Multicast Router Advertisement (RFC 4286), DVMRP, PIMv1, mtrace: only routers
    // send them, and a task link has none.
    for t in [0x30u8, 0x32, 0x13, 0x14, 0x1e, 0x1f] {
        let mut m = vec![t, 0, 0, 0, 0, 0, 0, 0];
        let sum = mcgate_wire::checksum::checksum(&m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        let packet = ip_packet(h(1), ALL_SYSTEMS, 1, true, &m);
        let d = dropped(&packet);
        assert_eq!((d.router_message, d.unknown_type), (1, 0), "type {t:#x}");
        // On a shared link they are merely of a type this router does not handle.
        let mut l = Link::new(shared());
        l.deliver(&packet);
        assert_eq!(l.igmp.stats().dropped.unknown_type, 1, "type {t:#x}");
    }
}

#[test]
fn record_count_overrun_is_malformed() {
    // A v3 report claiming 200 records in 16 bytes.
    let mut m = igmp_bytes(&IgmpRepr::ReportV3 {
        records: vec![mcgate_wire::igmp::GroupRecord {
            kind: IS_EX,
            group: G,
            sources: vec![],
            aux_data: vec![],
        }],
    });
    m[6] = 0;
    m[7] = 200;
    m[2] = 0;
    m[3] = 0;
    let sum = mcgate_wire::checksum::checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        dropped(&ip_packet(h(1), V3_ROUTERS, 1, true, &m)).malformed,
        1
    );
}

#[test]
fn rfc3376_9_1_reports_without_router_alert_are_dropped() {
    assert_eq!(
        dropped(&ip_packet(h(1), G, 1, false, &v2_report())).no_router_alert,
        1
    );
    let leave = igmp_bytes(&IgmpRepr::LeaveV2 { group: G });
    assert_eq!(
        dropped(&ip_packet(h(1), ALL_ROUTERS, 1, false, &leave)).no_router_alert,
        1
    );
    let v3 = igmp_bytes(&IgmpRepr::ReportV3 { records: vec![] });
    assert_eq!(
        dropped(&ip_packet(h(1), V3_ROUTERS, 1, false, &v3)).no_router_alert,
        1
    );
    // IGMPv1 reports and queries are accepted without it (on a link where routers
    // may query).
    let mut l = Link::new(shared());
    let v1 = igmp_bytes(&IgmpRepr::ReportV1 { group: G });
    l.deliver(&ip_packet(h(1), G, 1, false, &v1));
    assert_eq!(l.igmp.groups().count(), 1);
    let q = igmp_bytes(&IgmpRepr::QueryV2 {
        group: Ipv4Addr::UNSPECIFIED,
        max_resp_time: 100,
    });
    l.deliver(&ip_packet(
        Ipv4Addr::new(10, 0, 0, 1),
        ALL_SYSTEMS,
        1,
        false,
        &q,
    ));
    assert!(!l.igmp.is_querier());
}

#[test]
fn rfc3376_4_2_14_wrong_destination_is_dropped() {
    let v3 = IgmpRepr::ReportV3 {
        records: vec![mcgate_wire::igmp::GroupRecord {
            kind: IS_EX,
            group: G,
            sources: vec![],
            aux_data: vec![],
        }],
    };
    assert_eq!(
        dropped(&emit_ip_packet(h(1), ALL_SYSTEMS, &v3)).wrong_destination,
        1
    );
    let other = Ipv4Addr::new(239, 9, 9, 9);
    assert_eq!(
        dropped(&emit_ip_packet(
            h(1),
            other,
            &IgmpRepr::ReportV2 { group: G }
        ))
        .wrong_destination,
        1
    );
    assert_eq!(
        dropped(&emit_ip_packet(
            h(1),
            ALL_SYSTEMS,
            &IgmpRepr::LeaveV2 { group: G }
        ))
        .wrong_destination,
        1
    );
    // Unicast to the router is accepted; so is a leave sent to the group.
    let mut l = Link::new(Config::default());
    l.send(h(1), ROUTER, &v3);
    assert_eq!(l.igmp.groups().count(), 1);
    l.send(h(1), G, &IgmpRepr::LeaveV2 { group: G });
    assert_eq!(l.igmp.stats().received.leave_v2, 1);
    assert_eq!(l.igmp.stats().dropped, Dropped::default());
}

#[test]
fn report_flood_is_rate_limited() {
    let mut l = Link::new(Config {
        report_rate_limit: 10,
        report_burst: 10,
        ..shared()
    });
    for i in 0..50u8 {
        l.report_v2(h(1), Ipv4Addr::new(239, 0, 1, i));
    }
    assert_eq!(l.igmp.stats().dropped.rate_limited, 40);
    assert_eq!(l.igmp.groups().count(), 10);
    assert_eq!(l.igmp.stats().received.report_v2, 50);
    // Queries are never limited; reports flow again as tokens come back.
    l.query_v2(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::UNSPECIFIED);
    assert_eq!(l.igmp.stats().received.query_v2, 1);
    l.wait(secs(0.5));
    for i in 50..60u8 {
        l.report_v2(h(1), Ipv4Addr::new(239, 0, 1, i));
    }
    assert_eq!(l.igmp.groups().count(), 15);
}

#[test]
fn group_and_source_tables_are_bounded() {
    let mut l = Link::new(Config {
        report_rate_limit: 0,
        ..Config::default()
    });
    let n = u32::try_from(mcgate_igmp::MAX_GROUPS).unwrap() + 1;
    for i in 0..n {
        let g = Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 1, 0, 0)) + i);
        l.igmp
            .handle_igmp(l.now, h(1), g, &IgmpRepr::ReportV2 { group: g });
    }
    assert_eq!(l.igmp.groups().count(), mcgate_igmp::MAX_GROUPS);
    assert_eq!(l.igmp.stats().dropped.state_limit, 1);

    let mut l = Link::new(Config::default());
    let many: Vec<Ipv4Addr> = (0..=mcgate_igmp::MAX_SOURCES_PER_GROUP as u32)
        .map(|i| Ipv4Addr::from(0x0a01_0000 + i))
        .collect();
    let report = IgmpRepr::ReportV3 {
        records: vec![mcgate_wire::igmp::GroupRecord {
            kind: IS_IN,
            group: G,
            sources: many,
            aux_data: vec![],
        }],
    };
    l.send(h(1), V3_ROUTERS, &report);
    assert_eq!(l.igmp.stats().dropped.state_limit, 1);
    assert_eq!(l.state(), None);
}

#[test]
fn total_sources_per_interface_are_bounded() {
    let mut l = Link::new(Config::default());
    let per = 500u32;
    let groups = u32::try_from(mcgate_igmp::MAX_SOURCES).unwrap() / per + 1;
    for i in 0..groups {
        let records = vec![mcgate_wire::igmp::GroupRecord {
            kind: IS_IN,
            group: Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 2, 0, 0)) + i),
            sources: (0..per).map(|n| Ipv4Addr::from(0x0a01_0000 + n)).collect(),
            aux_data: vec![],
        }];
        l.send(h(1), V3_ROUTERS, &IgmpRepr::ReportV3 { records });
    }
    let total: usize = l.igmp.groups().map(|(_, f)| f.sources.len()).sum();
    assert!(total <= mcgate_igmp::MAX_SOURCES);
    assert_eq!(l.igmp.stats().dropped.state_limit, 1);
    // Room comes back when sources go.
    l.wait(gmi());
    assert_eq!(l.igmp.groups().count(), 0);
}
