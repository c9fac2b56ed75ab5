//! The upstream interface over MLD (RFC 4605 4.1 with RFC 3810 6 and 8, RFC 2710): the
//! same machine as over IGMP, with MLDv2 reports to ff02::16 and MLDv1 reports and
//! Dones behind an MLDv1 querier. Every packet sent passes a router's MLD checks.

use core::net::Ipv6Addr;
use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use mcgate_wire::mld::{self, AddressRecord, MldRepr, QueryV2};
use mcgate_wire::record::RecordType;
use mcgate_wire::{SourceFilter, Version};

use super::{MldUpstream, ProxyConfig};

const ME: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const QUERIER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fn g(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, n)
}

fn s(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
}

/// Everything sent, as (destination, message); each packet is what an MLD router
/// accepts: Hop Limit 1, Router Alert, ICMPv6 checksum, from our link-local address.
fn drain(u: &mut MldUpstream) -> Vec<(Ipv6Addr, MldRepr)> {
    std::iter::from_fn(|| u.poll_transmit())
        .map(|t| {
            let p = crate::packet::check_mld(&t.packet).expect("a valid MLD packet");
            assert_eq!((p.src, p.dst), (ME, t.dst));
            assert_eq!(p.message, t.message);
            (t.dst, t.message)
        })
        .collect()
}

fn run_until(u: &mut MldUpstream, until: Instant) -> Vec<(Ipv6Addr, MldRepr)> {
    let mut out = Vec::new();
    while let Some(t) = u.poll_timeout().filter(|t| *t <= until) {
        u.handle_timeout(t);
        out.extend(drain(u));
    }
    out
}

fn rec(kind: RecordType, group: Ipv6Addr, sources: &[Ipv6Addr]) -> AddressRecord {
    AddressRecord {
        kind,
        group,
        sources: sources.to_vec(),
        aux_data: Vec::new(),
    }
}

fn v2_query(group: Ipv6Addr, sources: &[Ipv6Addr]) -> Vec<u8> {
    let dst = if group.is_unspecified() {
        mld::ALL_NODES
    } else {
        group
    };
    let q = MldRepr::QueryV2(QueryV2 {
        group,
        max_resp_code: 1000,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: sources.to_vec(),
    });
    mld::emit_ip_packet(QUERIER, dst, &q)
}

fn upstream(t0: Instant) -> MldUpstream {
    MldUpstream::new(ProxyConfig::default(), ME, t0, 7)
}

#[test]
fn rfc3810_6_1_joins_and_source_changes_are_mldv2_reports_to_ff02_16() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    let want = |f: SourceFilter<Ipv6Addr>| BTreeMap::from([(g(1), f)]);
    u.set_membership(t0, want(SourceFilter::include([s(1)])));
    assert_eq!(
        drain(&mut u),
        [(
            mld::ALL_MLDV2_ROUTERS,
            MldRepr::ReportV2 {
                records: vec![rec(RecordType::AllowNewSources, g(1), &[s(1)])]
            }
        )]
    );
    u.set_membership(t0, want(SourceFilter::include([s(2)])));
    assert_eq!(
        drain(&mut u),
        [(
            mld::ALL_MLDV2_ROUTERS,
            MldRepr::ReportV2 {
                records: vec![
                    rec(RecordType::AllowNewSources, g(1), &[s(2)]),
                    rec(RecordType::BlockOldSources, g(1), &[s(1)]),
                ]
            }
        )]
    );
    // Robustness Variable - 1 repeats within the Unsolicited Report Interval (1 s).
    let repeats = run_until(&mut u, t0 + Duration::from_secs(1));
    assert_eq!(repeats.len(), 1, "{repeats:?}");
    assert_eq!(u.stats().reports_v3, 3);
}

#[test]
fn rfc3810_6_2_queries_are_answered_with_current_state_records() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    u.set_membership(
        t0,
        BTreeMap::from([
            (g(1), SourceFilter::any_source()),
            (g(2), SourceFilter::include([s(1), s(2)])),
        ]),
    );
    run_until(&mut u, t0 + Duration::from_secs(2));
    let t1 = t0 + Duration::from_secs(5);
    u.handle_packet(t1, &v2_query(Ipv6Addr::UNSPECIFIED, &[]));
    assert_eq!(u.querier(), Some((QUERIER, t1)));
    assert_eq!(u.stats().queries_v3, 1);
    // Within the query's Maximum Response Delay (1000 ms).
    let answer = run_until(&mut u, t1 + Duration::from_millis(1000));
    assert_eq!(
        answer,
        [(
            mld::ALL_MLDV2_ROUTERS,
            MldRepr::ReportV2 {
                records: vec![
                    rec(RecordType::ModeIsExclude, g(1), &[]),
                    rec(RecordType::ModeIsInclude, g(2), &[s(1), s(2)]),
                ]
            }
        )]
    );
    // A multicast-address-and-source-specific query: the queried sources wanted.
    let t2 = t1 + Duration::from_secs(5);
    u.handle_packet(t2, &v2_query(g(2), &[s(2), s(3)]));
    let answer = run_until(&mut u, t2 + Duration::from_millis(1000));
    assert_eq!(
        answer,
        [(
            mld::ALL_MLDV2_ROUTERS,
            MldRepr::ReportV2 {
                records: vec![rec(RecordType::ModeIsInclude, g(2), &[s(2)])]
            }
        )]
    );
}

#[test]
fn rfc3810_8_an_mldv1_querier_gets_mldv1_reports_and_dones() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    let q = MldRepr::QueryV1 {
        group: Ipv6Addr::UNSPECIFIED,
        max_resp_delay: 1000,
    };
    u.handle_packet(t0, &mld::emit_ip_packet(QUERIER, mld::ALL_NODES, &q));
    // MLDv1 is the older version: the state machine's V2.
    assert_eq!(u.mode(), Version::V2);
    assert_eq!(u.stats().queries_v2, 1);
    u.set_membership(t0, BTreeMap::from([(g(1), SourceFilter::any_source())]));
    assert_eq!(drain(&mut u), [(g(1), MldRepr::ReportV1 { group: g(1) })]);
    u.set_membership(t0, BTreeMap::new());
    assert_eq!(
        drain(&mut u),
        [(mld::ALL_ROUTERS, MldRepr::DoneV1 { group: g(1) })]
    );
    assert_eq!(u.stats().leaves_v2, 1);
}

#[test]
fn mld_reports_of_other_hosts_and_garbage_are_counted_not_obeyed() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9);
    let report = MldRepr::ReportV1 { group: g(1) };
    u.handle_packet(t0, &mld::emit_ip_packet(other, g(1), &report));
    assert_eq!(u.stats().other_hosts_messages, 1);
    u.handle_packet(t0, &[0x60, 0, 0]);
    // An IGMP packet on an MLD interface is garbage too.
    let igmp = mcgate_wire::igmp::emit_ip_packet(
        core::net::Ipv4Addr::new(192, 0, 2, 1),
        mcgate_wire::igmp::ALL_SYSTEMS,
        &mcgate_wire::igmp::IgmpRepr::QueryV1,
    );
    u.handle_packet(t0, &igmp);
    assert_eq!(u.stats().bad_packets, 2);
    assert!(drain(&mut u).is_empty());
    assert_eq!(u.poll_timeout(), None);
}

#[test]
fn many_mld_records_are_packed_into_reports_that_fit_the_link() {
    let t0 = Instant::now();
    let mut u = upstream(t0);
    // 200 groups with 3 sources each: 20 + 3 x 16 = 68 bytes per record.
    let all = (1..=200)
        .map(|n| (g(n), SourceFilter::include([s(1), s(2), s(3)])))
        .collect();
    u.set_membership(t0, all);
    let sent = drain(&mut u);
    assert!(sent.len() > 1);
    let mut groups = 0;
    for (_, m) in &sent {
        let MldRepr::ReportV2 { records } = m else {
            panic!("{m:?}")
        };
        let bytes: usize = records.iter().map(|r| r.buffer_len()).sum();
        assert!(bytes <= 1500 - 40 - 8 - 8, "{bytes}");
        groups += records.len();
    }
    assert_eq!(groups, 200);
}
