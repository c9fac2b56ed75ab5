//! Packets the Linux kernel really sends (the golden fixtures captured for mcgate-wire)
//! drive the router: a host's v1/v2/v3 joins and leaves, and the Linux bridge's own
//! queries. Nothing a real kernel sends may be dropped.

use std::net::Ipv4Addr;

use mcgate_igmp::{Config, Dropped, SourceFilter};
use mcgate_wire::igmp::IgmpRepr;

use crate::harness::*;

const HOST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const BRIDGE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn fixture(name: &str) -> Vec<u8> {
    wire_fixture(&format!("{name}.ipv4.hex"))
}

fn router() -> Link {
    Link::with_address(Config::default(), Ipv4Addr::new(10, 99, 0, 10))
}

fn g(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(239, 1, 2, last)
}

#[test]
fn linux_v3_host_join_and_leave() {
    // Linux joins with TO_EX({}) and leaves with TO_IN({}) (RFC 3376 6.4.2 rows
    // INCLUDE + TO_EX and EXCLUDE + TO_IN).
    let mut l = router();
    l.deliver(&fixture("igmpv3-join-to-ex"));
    assert_eq!(l.filter(g(4)), Some(SourceFilter::any_source()));
    assert_eq!(l.igmp.reporters(g(4)), vec![HOST]);
    l.deliver(&fixture("igmpv3-report-is-ex"));
    assert_eq!(l.filter(g(5)), Some(SourceFilter::any_source()));
    l.deliver(&fixture("igmpv3-leave-to-in"));
    assert_eq!(l.igmp.reporters(g(4)), Vec::<Ipv4Addr>::new());
    let sent = l.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, g(4));
    assert!(matches!(&sent[0].2, IgmpRepr::QueryV3(q) if q.group == g(4)));
    l.wait(lmqt());
    assert_eq!(l.filter(g(4)), None);
    assert_eq!(l.filter(g(5)), Some(SourceFilter::any_source()));
    assert_eq!(l.igmp.stats().dropped, Dropped::default());
}

#[test]
fn linux_v3_source_specific_join_and_leave() {
    // ALLOW(S) creates INCLUDE(S); BLOCK(S) sends Q(G,S) and S times out after LMQT.
    let ssm = Ipv4Addr::new(232, 1, 1, 1);
    let source = Ipv4Addr::new(10, 99, 0, 9);
    let mut l = router();
    l.deliver(&fixture("igmpv3-ssm-join-allow"));
    assert_eq!(l.filter(ssm), Some(SourceFilter::include([source])));
    l.deliver(&fixture("igmpv3-ssm-leave-block"));
    let sent = l.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, ssm);
    assert!(matches!(&sent[0].2, IgmpRepr::QueryV3(q) if q.sources == vec![source]));
    l.wait(lmqt());
    assert_eq!(l.filter(ssm), None);
    assert_eq!(l.igmp.stats().dropped, Dropped::default());
}

#[test]
fn linux_v1_and_v2_hosts() {
    let mut l = router();
    l.deliver(&fixture("igmpv1-report"));
    assert_eq!(l.igmp.group_state(g(1)).unwrap().compatibility, Version::V1);
    l.deliver(&fixture("igmpv2-report"));
    l.deliver(&fixture("igmpv2-report-after-v2-query"));
    assert_eq!(l.igmp.group_state(g(3)).unwrap().compatibility, Version::V2);
    assert_eq!(l.filter(g(5)), Some(SourceFilter::any_source()));
    l.deliver(&fixture("igmpv2-leave"));
    l.wait(lmqt());
    assert_eq!(l.filter(g(3)), None);
    assert_eq!(l.filter(g(1)), Some(SourceFilter::any_source()));
    assert_eq!(l.igmp.stats().received.report_v1, 1);
    assert_eq!(l.igmp.stats().received.report_v2, 2);
    assert_eq!(l.igmp.stats().received.leave_v2, 1);
    assert_eq!(l.igmp.stats().dropped, Dropped::default());
}

#[test]
fn linux_bridge_querier_wins_election_on_a_shared_link() {
    // The bridge queries from 10.99.0.1, below our 10.99.0.10 (RFC 3376 6.6.2); its
    // IGMPv2 query is counted but does not change our version (7.3.1).
    let mut l = Link::with_address(shared(), Ipv4Addr::new(10, 99, 0, 10));
    l.deliver(&fixture("bridge-igmpv3-query"));
    assert_eq!(l.igmp.querier(), Some(BRIDGE));
    assert_eq!(l.igmp.version(), Version::V3);
    l.deliver(&fixture("bridge-igmpv2-query"));
    assert_eq!(l.igmp.version(), Version::V3);
    assert_eq!(l.igmp.stats().older_version_queries, 1);
    assert_eq!(l.igmp.stats().received.query_v3, 1);
    assert_eq!(l.igmp.stats().received.query_v2, 1);
    assert_eq!(l.igmp.stats().dropped, Dropped::default());
}

#[test]
fn linux_queries_on_a_hosts_only_link_are_dropped() {
    // A task link carries hosts only: the kernel's queries are router messages there.
    let mut l = router();
    l.deliver(&fixture("bridge-igmpv3-query"));
    l.deliver(&fixture("bridge-igmpv2-query"));
    assert!(l.igmp.is_querier());
    assert_eq!(l.igmp.stats().dropped.router_message, 2);
    assert_eq!(l.igmp.stats().received, Default::default());
}
