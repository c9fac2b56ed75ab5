//! The same router as MLD (RFC 3810 sections 6 to 8, RFC 2710 for MLDv1 hosts): a
//! [`MldInterface`] driven with real IPv6 packets built by mcgate-wire and with the
//! golden packets the Linux kernel sent (crates/wire/fixtures). Each test names the RFC
//! section it checks; the IGMP tests of the same behaviour are its twins.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mcgate_igmp::{
    Config, Dropped, Event, FilterMode, MldInterface, MldVersion, SourceFilter, Transmit, Version,
};
use mcgate_wire::icmpv6::msg_type;
use mcgate_wire::ipv6;
use mcgate_wire::mld::{
    ALL_MLDV2_ROUTERS, ALL_NODES, ALL_ROUTERS, AddressRecord, MldRepr, QueryV2,
    decode_max_resp_code, emit_ip_packet,
};
use mcgate_wire::record::RecordType;

use crate::harness::{ALLOW, BLOCK, IS_EX, TO_EX, TO_IN, gmi, lmqt, secs, shared, wire_fixture};

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

/// The router's link-local address.
fn router_ll() -> Ipv6Addr {
    a("fe80::10")
}

/// Host n's link-local address.
fn h(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100 + n)
}

/// Source n (global unicast).
fn s(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
}

/// The multicast address of most tests (organisation-local scope, so never link scope).
fn g() -> Ipv6Addr {
    a("ff05::1:3")
}

struct MldLink {
    now: Instant,
    mld: MldInterface,
    sent: Vec<Transmit<mcgate_igmp::Mld>>,
    events: Vec<Event<Ipv6Addr>>,
}

impl MldLink {
    fn new(config: Config) -> Self {
        Self::with_address(config, router_ll())
    }

    fn with_address(config: Config, address: Ipv6Addr) -> Self {
        let t0 = Instant::now();
        let mld = MldInterface::new(config, address, t0);
        let mut link = Self {
            now: t0,
            mld,
            sent: Vec::new(),
            events: Vec::new(),
        };
        link.collect();
        link
    }

    fn collect(&mut self) {
        while let Some(t) = self.mld.poll_transmit() {
            self.sent.push(t);
        }
        while let Some(e) = self.mld.poll_event() {
            self.events.push(e);
        }
    }

    fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.mld.poll_timeout().filter(|t| *t <= end) {
            self.now = t;
            self.mld.handle_timeout(t);
            self.collect();
        }
        self.now = end;
        self.mld.handle_timeout(end);
        self.collect();
    }

    fn deliver(&mut self, packet: &[u8]) {
        self.mld.handle_packet(self.now, packet);
        self.collect();
    }

    fn send(&mut self, src: Ipv6Addr, dst: Ipv6Addr, repr: &MldRepr) {
        self.deliver(&emit_ip_packet(src, dst, repr));
    }

    fn report(&mut self, host: Ipv6Addr, kind: RecordType, sources: &[u16]) {
        let records = vec![AddressRecord {
            kind,
            group: g(),
            sources: sources.iter().map(|n| s(*n)).collect(),
            aux_data: Vec::new(),
        }];
        self.send(host, ALL_MLDV2_ROUTERS, &MldRepr::ReportV2 { records });
    }

    fn filter(&self, group: Ipv6Addr) -> Option<SourceFilter<Ipv6Addr>> {
        self.mld.groups().find(|(x, _)| *x == group).map(|(_, f)| f)
    }

    fn take_sent(&mut self) -> Vec<Transmit<mcgate_igmp::Mld>> {
        std::mem::take(&mut self.sent)
    }
}

fn include(ns: &[u16]) -> Option<SourceFilter<Ipv6Addr>> {
    Some(SourceFilter::include(ns.iter().map(|n| s(*n))))
}

fn exclude(ns: &[u16]) -> Option<SourceFilter<Ipv6Addr>> {
    Some(SourceFilter::exclude(ns.iter().map(|n| s(*n))))
}

/// The MLDv2 query a transmit carries.
fn v2_query(t: &Transmit<mcgate_igmp::Mld>) -> &QueryV2 {
    match &t.message {
        MldRepr::QueryV2(q) => q,
        other => panic!("not an MLDv2 query: {other:?}"),
    }
}

/// An IPv6 packet around `repr` with the given Hop Limit and Router Alert.
fn packet_with(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    router_alert: Option<u16>,
    repr: &MldRepr,
) -> Vec<u8> {
    let ip = ipv6::Repr {
        src,
        dst,
        next_header: ipv6::NEXT_HEADER_ICMPV6,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
        payload_len: repr.buffer_len(),
        router_alert,
    };
    let mut buf = vec![0u8; ip.buffer_len()];
    ip.emit(&mut buf);
    repr.emit(src, dst, &mut buf[ip.header_len()..]);
    buf
}

fn fixture(name: &str) -> Vec<u8> {
    wire_fixture(&format!("{name}.ipv6.hex"))
}

#[test]
fn rfc3810_5_1_startup_query_is_mldv2_from_the_link_local_address() {
    let l = MldLink::new(Config::default());
    assert_eq!(l.mld.mld_version(), MldVersion::V2);
    assert_eq!(MldVersion::from_version(Version::V1), None);
    assert_eq!(MldVersion::V2.version(), Version::V3);
    assert_eq!(l.sent.len(), 1);
    let t = &l.sent[0];
    assert_eq!(t.dst, ALL_NODES);
    let q = v2_query(t);
    assert_eq!(q.group, Ipv6Addr::UNSPECIFIED);
    // Query Response Interval 10 s is 10 000 ms; QRV 2, QQIC 125 (section 9).
    assert_eq!((q.max_resp_code, q.qrv, q.qqic), (10_000, 2, 125));
    // The packet: Hop Limit 1, Router Alert 0, from our link-local address, and it
    // passes our own acceptance checks.
    let p = ipv6::Packet::new_checked(&t.packet[..]).expect("IPv6");
    assert_eq!(p.hop_limit(), 1);
    assert_eq!(p.src_addr(), router_ll());
    let upper = p.upper_layer().expect("walks");
    assert_eq!(upper.router_alert, Some(ipv6::ROUTER_ALERT_MLD));
    assert_eq!(upper.payload[0], msg_type::MLD_QUERY);
}

#[test]
fn rfc3810_5_1_3_long_response_delay_uses_the_exponential_code() {
    let mut config = Config::default();
    config.settings.query_response_interval_ms = 60_000;
    config.settings.query_interval_ms = 125_000;
    let l = MldLink::new(config);
    let q = v2_query(&l.sent[0]);
    // Above 32 767 ms the 16-bit code is floating point; it never means less time.
    assert!(q.max_resp_code >= 0x8000, "{:#x}", q.max_resp_code);
    assert!(decode_max_resp_code(q.max_resp_code) >= 60_000);
    assert!(decode_max_resp_code(q.max_resp_code) < 60_000 + 1024);
}

#[test]
fn rfc3810_8_mldv1_router_sends_mldv1_queries() {
    let l = MldLink::new(Config {
        version: Version::V2,
        ..Config::default()
    });
    assert_eq!(l.mld.mld_version(), MldVersion::V1);
    assert_eq!(
        l.sent[0].message,
        MldRepr::QueryV1 {
            group: Ipv6Addr::UNSPECIFIED,
            max_resp_delay: 10_000
        }
    );
}

#[test]
fn rfc3810_7_4_join_then_leave_with_address_specific_queries() {
    let mut l = MldLink::new(Config::default());
    l.take_sent();
    l.report(h(1), TO_EX, &[]);
    assert_eq!(l.filter(g()), Some(SourceFilter::any_source()));
    assert_eq!(l.mld.reporters(g()), vec![h(1)]);
    assert!(l.events.iter().any(|e| matches!(
        e,
        Event::GroupChanged { group, filter: Some(_), .. } if *group == g()
    )));
    // 7.4.2 EXCLUDE + TO_IN({}): Q(MA), sent Last Listener Query Count (2) times, one
    // Last Listener Query Interval (1 s) apart, to the address itself.
    l.report(h(1), TO_IN, &[]);
    let first = l.take_sent();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].dst, g());
    let q = v2_query(&first[0]);
    assert_eq!((q.group, q.max_resp_code, q.suppress), (g(), 1000, false));
    assert!(q.sources.is_empty());
    l.wait(secs(1.0));
    let second = l.take_sent();
    assert_eq!(second.len(), 1);
    assert_eq!(v2_query(&second[0]).group, g());
    l.wait(lmqt());
    assert_eq!(l.filter(g()), None);
    assert!(l.take_sent().is_empty());
    assert_eq!(l.mld.stats().sent.group_queries, 2);
    assert!(l.events.iter().any(|e| matches!(
        e,
        Event::GroupChanged { group, filter: None, .. } if *group == g()
    )));
}

#[test]
fn rfc3810_7_4_source_filtering_include_and_exclude() {
    let mut l = MldLink::new(Config::default());
    l.take_sent();
    // INCLUDE {} + ALLOW (B) -> INCLUDE (B).
    l.report(h(1), ALLOW, &[1, 2]);
    assert_eq!(l.filter(g()), include(&[1, 2]));
    // INCLUDE (A) + BLOCK (B) -> INCLUDE (A); Send Q(MA, A*B).
    l.report(h(1), BLOCK, &[1]);
    let sent = l.take_sent();
    assert_eq!(sent.len(), 1);
    let q = v2_query(&sent[0]);
    assert_eq!((q.group, q.sources.clone()), (g(), vec![s(1)]));
    l.wait(lmqt());
    assert_eq!(l.filter(g()), include(&[2]));
    // INCLUDE (A) + TO_EX (B) -> EXCLUDE (A*B, B-A).
    l.report(h(1), TO_EX, &[3]);
    assert_eq!(l.filter(g()), exclude(&[3]));
    assert_eq!(
        l.mld.group_state(g()).expect("state").mode,
        FilterMode::Exclude
    );
    l.take_sent();
    // EXCLUDE (X, Y) + TO_IN (A) -> EXCLUDE (X+A, Y-A); Send Q(MA): when nobody
    // answers, the filter timer runs out and the router goes back to INCLUDE (A).
    l.report(h(1), TO_IN, &[4]);
    assert!(l.take_sent().iter().any(|t| v2_query(t).sources.is_empty()));
    l.wait(lmqt() + secs(0.1));
    assert_eq!(l.filter(g()), include(&[4]));
    l.wait(gmi());
    assert_eq!(l.filter(g()), None);
    assert_eq!(l.mld.stats().dropped, Dropped::default());
}

#[test]
fn rfc3810_8_3_2_mldv1_listener_puts_the_address_in_mldv1_mode() {
    let mut l = MldLink::new(Config::default());
    l.take_sent();
    l.send(h(1), g(), &MldRepr::ReportV1 { group: g() });
    let st = l.mld.group_state(g()).expect("state");
    assert_eq!(st.compatibility, Version::V2, "MLDv1 mode");
    assert!(st.v2_host_timer.is_some());
    assert_eq!(l.filter(g()), Some(SourceFilter::any_source()));
    // In MLDv1 mode BLOCK is ignored and TO_EX loses its sources (8.3.2).
    l.report(h(2), BLOCK, &[1]);
    assert!(l.take_sent().is_empty());
    l.report(h(2), TO_EX, &[1]);
    assert_eq!(l.filter(g()), Some(SourceFilter::any_source()));
    // A Done is TO_IN({}): queries, then the address is gone.
    l.report(h(2), TO_IN, &[]);
    l.take_sent();
    l.send(h(1), ALL_ROUTERS, &MldRepr::DoneV1 { group: g() });
    assert!(!l.take_sent().is_empty());
    l.wait(lmqt() + secs(0.1));
    assert_eq!(l.filter(g()), None);
    let r = &l.mld.stats().received;
    assert_eq!((r.report_v2, r.leave_v2, r.report_v3), (1, 1, 3));
}

#[test]
fn rfc3810_7_6_2_election_by_lowest_link_local_address() {
    let mut l = MldLink::new(shared());
    let general = |from: Ipv6Addr| {
        emit_ip_packet(
            from,
            ALL_NODES,
            &MldRepr::QueryV2(QueryV2 {
                group: Ipv6Addr::UNSPECIFIED,
                max_resp_code: 10_000,
                suppress: false,
                qrv: 2,
                qqic: 125,
                sources: vec![],
            }),
        )
    };
    // A higher link-local address does not win.
    l.deliver(&general(a("fe80::20")));
    assert!(l.mld.is_querier());
    // A lower one does, and we stop querying.
    l.deliver(&general(a("fe80::5")));
    assert_eq!(l.mld.querier(), Some(a("fe80::5")));
    assert!(l.events.contains(&Event::QuerierChanged {
        querier: Some(a("fe80::5"))
    }));
    l.take_sent();
    l.wait(secs(200.0));
    assert!(l.take_sent().is_empty(), "a non-querier sends no query");
    // The Other Querier Present Interval (255 s) runs out: querier again.
    l.wait(secs(60.0));
    assert!(l.mld.is_querier());
    // A query from a global address is not from a router on this link: dropped.
    l.deliver(&general(a("2001:db8::1")));
    assert!(l.mld.is_querier());
    assert_eq!(l.mld.stats().dropped.bad_source, 1);
}

#[test]
fn rfc3810_6_link_scope_addresses_carry_no_state() {
    let mut l = MldLink::new(Config::default());
    for group in [a("ff02::fb"), a("ff02::1:ff12:4cb7"), a("ff01::1")] {
        let records = vec![AddressRecord {
            kind: IS_EX,
            group,
            sources: vec![],
            aux_data: vec![],
        }];
        l.send(h(1), ALL_MLDV2_ROUTERS, &MldRepr::ReportV2 { records });
        l.send(h(1), group, &MldRepr::ReportV1 { group });
    }
    assert_eq!(l.mld.groups().count(), 0);
    assert_eq!(l.mld.stats().ignored_link_local, 6);
    // A unicast address is no group at all.
    l.send(h(1), s(1), &MldRepr::ReportV1 { group: s(1) });
    assert_eq!(l.mld.stats().dropped.invalid_group, 1);
}

#[test]
fn rfc3810_5_and_7_4_bad_packets_are_dropped_and_counted() {
    let mut l = MldLink::new(Config::default());
    let report = MldRepr::ReportV1 { group: g() };
    // Hop Limit other than 1: routed here.
    l.deliver(&packet_with(h(1), g(), 64, Some(0), &report));
    // No Router Alert, or one of another value.
    l.deliver(&packet_with(h(1), g(), 1, None, &report));
    l.deliver(&packet_with(h(1), g(), 1, Some(1), &report));
    // A global or unspecified source.
    l.deliver(&packet_with(s(1), g(), 1, Some(0), &report));
    l.deliver(&packet_with(
        Ipv6Addr::UNSPECIFIED,
        g(),
        1,
        Some(0),
        &report,
    ));
    // A bad ICMPv6 checksum.
    let mut bad = emit_ip_packet(h(1), g(), &report);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    l.deliver(&bad);
    // Not MLD: an Echo Request, and no IPv6 at all.
    let mut echo = emit_ip_packet(h(1), g(), &report);
    let icmp = ipv6::HEADER_LEN + ipv6::HOP_BY_HOP_RA_LEN;
    echo[icmp] = msg_type::ECHO_REQUEST;
    l.deliver(&echo);
    l.deliver(&[0x45, 0, 0, 20]);
    let d = &l.mld.stats().dropped;
    let want = Dropped {
        bad_ttl: 1,
        no_router_alert: 2,
        bad_source: 2,
        checksum: 1,
        not_igmp: 1,
        bad_ip: 1,
        ..Dropped::default()
    };
    assert_eq!(*d, want);
    assert_eq!(l.mld.groups().count(), 0);
    // On a hosts-only link (the default) a query is a host acting as a router.
    l.deliver(&fixture("bridge-mldv2-query"));
    assert_eq!(l.mld.stats().dropped.router_message, 1);
    assert!(l.mld.is_querier());
}

#[test]
fn linux_mld_hosts_and_bridge_are_understood() {
    let mut l = MldLink::new(Config::default());
    let host = a("fe80::14a1:63ff:fe12:4cb7");
    l.deliver(&fixture("mldv2-join-to-ex"));
    assert_eq!(l.filter(a("ff05::1:4")), Some(SourceFilter::any_source()));
    assert_eq!(l.mld.reporters(a("ff05::1:4")), vec![host]);
    l.deliver(&fixture("mldv2-ssm-join-allow"));
    assert_eq!(
        l.filter(a("ff3e::8000:1")),
        Some(SourceFilter::include([a("2001:db8::9")]))
    );
    l.deliver(&fixture("mldv2-report-current"));
    // The solicited-node address in the report is link scope: no state.
    assert_eq!(l.mld.groups().count(), 4);
    assert_eq!(l.mld.stats().ignored_link_local, 1);
    l.deliver(&fixture("mldv1-report"));
    assert_eq!(
        l.mld.group_state(g()).expect("state").compatibility,
        Version::V2
    );
    l.deliver(&fixture("mldv1-done"));
    l.deliver(&fixture("mldv2-leave-to-in"));
    l.deliver(&fixture("mldv2-ssm-leave-block"));
    assert_eq!(l.mld.stats().dropped, Dropped::default());
    let r = &l.mld.stats().received;
    assert_eq!((r.report_v2, r.leave_v2, r.report_v3), (1, 1, 5));
    // On a link shared with routers, the bridge's queries take part in the election,
    // which its link-local address wins against a higher one.
    let mut shared_link = MldLink::with_address(shared(), a("fe80::ffff:ffff:ffff:ffff"));
    for name in [
        "bridge-mldv2-query",
        "bridge-mldv1-query",
        "bridge-mldv2-group-query",
    ] {
        shared_link.deliver(&fixture(name));
    }
    assert_eq!(shared_link.mld.stats().dropped, Dropped::default());
    assert_eq!(
        shared_link.mld.querier(),
        Some(a("fe80::c80c:4ff:fede:2c5"))
    );
    assert_eq!(shared_link.mld.stats().older_version_queries, 1);
}

#[test]
fn rfc3810_7_6_1_non_querier_lowers_timers_on_address_specific_queries() {
    let mut l = MldLink::with_address(shared(), a("fe80::ffff:ffff:ffff:ffff"));
    let querier = a("fe80::5");
    let query = |group: Ipv6Addr, suppress: bool| {
        MldRepr::QueryV2(QueryV2 {
            group,
            max_resp_code: 1000,
            suppress,
            qrv: 2,
            qqic: 125,
            sources: vec![],
        })
    };
    l.send(querier, ALL_NODES, &query(Ipv6Addr::UNSPECIFIED, false));
    assert_eq!(l.mld.querier(), Some(querier));
    l.report(h(1), TO_EX, &[]);
    let timer = |l: &MldLink| l.mld.group_state(g()).and_then(|st| st.group_timer);
    assert_eq!(timer(&l), Some(l.now + gmi()));
    // With the S flag set the timers are left alone.
    l.send(querier, g(), &query(g(), true));
    assert_eq!(timer(&l), Some(l.now + gmi()));
    // Without it: Last Listener Query Count (2) times the query's 1 s delay.
    l.send(querier, g(), &query(g(), false));
    assert_eq!(timer(&l), Some(l.now + secs(2.0)));
    // An MLDv1 address-specific query (Maximum Response Delay in ms) does the same.
    l.report(h(1), IS_EX, &[]);
    let v1 = MldRepr::QueryV1 {
        group: g(),
        max_resp_delay: 500,
    };
    l.send(querier, g(), &v1);
    assert_eq!(timer(&l), Some(l.now + secs(1.0)));
    assert_eq!(l.mld.stats().dropped, Dropped::default());
}

#[test]
fn rfc4286_router_messages_on_a_hosts_only_link_are_counted() {
    let mut l = MldLink::new(Config::default());
    let mut advert = emit_ip_packet(h(1), ALL_NODES, &MldRepr::ReportV1 { group: g() });
    advert[ipv6::HEADER_LEN + ipv6::HOP_BY_HOP_RA_LEN] = 151;
    l.deliver(&advert);
    assert_eq!(l.mld.stats().dropped.router_message, 1);
    assert!(
        l.events
            .iter()
            .any(|e| matches!(e, Event::RouterIgnored { from, .. } if *from == h(1)))
    );
}
