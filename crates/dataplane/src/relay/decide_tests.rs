//! The relay's decisions, table by table: source filters, static sources, link-local
//! groups, MTU, unknown peers, wrong VNIs and loops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

use mcgate_domain::SourceFilter;
use mcgate_domain::api::{
    Domain, DomainState, HostMember, IgmpMode, IgmpSettings, Peer, StaticMemberSpec,
    StaticSourceSpec, StreamMessage, Tunnel,
};
use mcgate_domain::forwarding::{DomainView, ForwardingTable, LocalMembership};
use mcgate_wire::vxlan;

use super::*;
use crate::inspect::tests::{G6, S6, frame, frame6, frame6_with, mld6};

const G: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);
const LL: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const S1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const S2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);
const LINKS: [&str; 3] = ["tk1", "tk2", "tk3"];
const MTU: usize = 1500;

fn underlay(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 4789)
}

/// Domain `vni` with hosts h1 (this one) to h3.
fn domain(vni: u32, static_sources: bool) -> DomainState {
    DomainState {
        domain: Domain {
            name: format!("d{vni}"),
            vni,
            igmp: IgmpMode::V3,
            static_sources,
            igmp_settings: IgmpSettings::default(),
            subnets: vec![],
            hosts: vec![],
            tunnel: Tunnel::Vxlan,
        },
        peers: (1..=3)
            .map(|n| Peer {
                host: format!("h{n}"),
                underlay: underlay(n),
                public_key: String::new(),
                wireguard: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                tunnel_address: Ipv4Addr::UNSPECIFIED,
                egress: Vec::new(),
            })
            .collect(),
        members: vec![],
        static_members: vec![],
        static_sources: vec![],
        gateways: Vec::new(),
    }
}

fn member<A: Into<IpAddr>>(host: &str, group: A, filter: SourceFilter<A>) -> HostMember
where
    SourceFilter<A>: Into<SourceFilter<IpAddr>>,
{
    HostMember {
        host: host.into(),
        group: group.into(),
        filter: filter.into(),
    }
}

fn table(domains: Vec<DomainState>, local: &[(&str, Ipv4Addr, SourceFilter)]) -> ForwardingTable {
    let local: Vec<_> = local
        .iter()
        .map(|(l, g, f)| (*l, IpAddr::V4(*g), f.clone().into()))
        .collect();
    table_ip(domains, &local)
}

/// [`table`] with local members of either family.
fn table_ip(
    domains: Vec<DomainState>,
    local: &[(&str, IpAddr, SourceFilter<IpAddr>)],
) -> ForwardingTable {
    let mut v = DomainView::new();
    v.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains,
    });
    let local: LocalMembership = local
        .iter()
        .map(|(l, g, f)| (((*l).to_string(), *g), f.clone()))
        .collect();
    let links: Vec<String> = LINKS.iter().map(|l| l.to_string()).collect();
    ForwardingTable::compute(&v, "h1", &links, &local)
}

fn index(name: &str) -> Option<usize> {
    LINKS.iter().position(|l| *l == name)
}

fn mcast(source: Ipv4Addr, group: Ipv4Addr, payload: usize) -> McastFrame {
    inspect(&frame(source, group, payload, 0)).expect("a valid frame")
}

/// The plan for `m` captured on `LINKS[ingress]`.
fn captured(t: &ForwardingTable, ingress: usize, m: &McastFrame, mtu: usize) -> Plan {
    let mut p = Plan::default();
    from_link(t, &index, ingress, m, mtu, &mut p);
    p
}

fn datagram(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; vxlan::HEADER_LEN];
    vxlan::emit_header(&mut d, vni);
    d.extend_from_slice(inner);
    d
}

/// The plan for a VXLAN datagram from `peer`.
fn tunnelled(
    t: &ForwardingTable,
    peer: Option<Ipv4Addr>,
    bytes: &[u8],
) -> (Result<Tunnelled, DropReason>, Plan) {
    let mut p = Plan::default();
    let r = from_tunnel(t, &index, Via::Underlay(peer), bytes, &mut p);
    (r, p)
}

fn copy(vni: u32, n: u8) -> TunnelCopy {
    TunnelCopy {
        vni,
        dst: underlay(n),
        inner: None,
    }
}

#[test]
fn a_captured_frame_goes_to_remote_members_and_other_local_links() {
    let mut d = domain(42, false);
    d.members = vec![
        member("h2", G, SourceFilter::any_source()),
        member("h3", G, SourceFilter::any_source()),
    ];
    let t = table(
        vec![d],
        &[
            ("tk1", G, SourceFilter::any_source()),
            ("tk3", G, SourceFilter::any_source()),
        ],
    );
    let p = captured(&t, 0, &mcast(S1, G, 100), MTU);
    assert_eq!(p.tunnel, vec![copy(42, 2), copy(42, 3)]);
    // Never back to the link it came from (no loop), once to every other member link.
    assert_eq!(p.deliver, vec![2]);
    assert_eq!((p.too_big, p.dropped), (0, None));
}

#[test]
fn source_filters_of_remote_hosts_and_links_are_applied_per_source() {
    let filters = [
        SourceFilter::any_source(),
        SourceFilter::include([S1]),
        SourceFilter::include([S2]),
        SourceFilter::exclude([S1]),
        SourceFilter::exclude([S1, S2]),
    ];
    // Every filter on a remote host and on a local link, from either source.
    for remote in &filters {
        for local in &filters {
            let mut d = domain(42, false);
            d.members = vec![member("h2", G, remote.clone())];
            let t = table(vec![d], &[("tk2", G, local.clone())]);
            for source in [S1, S2] {
                let p = captured(&t, 0, &mcast(source, G, 10), MTU);
                let want_remote = remote.allows(source);
                let want_local = local.allows(source);
                assert_eq!(
                    p.tunnel,
                    if want_remote {
                        vec![copy(42, 2)]
                    } else {
                        vec![]
                    },
                    "remote {remote:?} local {local:?} source {source}"
                );
                assert_eq!(p.deliver, if want_local { vec![1] } else { vec![] });
                let nobody = !want_remote && !want_local;
                assert_eq!(p.dropped, nobody.then_some(DropReason::NoMembers));
                // The same from the tunnel: only the local half applies.
                let bytes = datagram(42, &frame(source, G, 10, 0));
                let (r, p) = tunnelled(&t, Some(Ipv4Addr::new(10, 0, 0, 2)), &bytes);
                assert!(r.is_ok());
                assert!(p.tunnel.is_empty());
                assert_eq!(p.deliver, if want_local { vec![1] } else { vec![] });
                assert_eq!(p.dropped, (!want_local).then_some(DropReason::NoMembers));
            }
        }
    }
}

#[test]
fn a_static_sources_domain_forwards_registered_sources_only() {
    let mut d = domain(42, true);
    d.members = vec![member("h2", G, SourceFilter::any_source())];
    d.static_sources = vec![StaticSourceSpec {
        group: IpAddr::V4(G),
        address: IpAddr::V4(S1),
        host: None,
        interface: None,
    }];
    d.static_members = vec![StaticMemberSpec {
        group: IpAddr::V4(G),
        host: "h1".into(),
        interface: Some("tk2".into()),
        address: None,
    }];
    let t = table(vec![d], &[]);
    let p = captured(&t, 0, &mcast(S1, G, 10), MTU);
    assert_eq!((p.tunnel, p.deliver), (vec![copy(42, 2)], vec![1]));
    let p = captured(&t, 0, &mcast(S2, G, 10), MTU);
    assert!(p.tunnel.is_empty() && p.deliver.is_empty());
    assert_eq!(p.dropped, Some(DropReason::SourceNotAllowed));
    let peer = Some(Ipv4Addr::new(10, 0, 0, 2));
    let (r, p) = tunnelled(&t, peer, &datagram(42, &frame(S2, G, 10, 0)));
    assert!(r.is_ok());
    assert!(p.deliver.is_empty());
    assert_eq!(p.dropped, Some(DropReason::SourceNotAllowed));
    let (_, p) = tunnelled(&t, peer, &datagram(42, &frame(S1, G, 10, 0)));
    assert_eq!((p.deliver, p.dropped), (vec![1], None));
}

#[test]
fn link_local_groups_stay_on_the_host() {
    let mut d = domain(42, false);
    // The table never lists remotes for a link-local group; a local member is delivered.
    d.members = vec![member("h2", LL, SourceFilter::any_source())];
    let t = table(vec![d], &[("tk2", LL, SourceFilter::any_source())]);
    let p = captured(&t, 0, &mcast(S1, LL, 10), MTU);
    assert!(p.tunnel.is_empty());
    assert_eq!((p.deliver, p.dropped), (vec![1], None));
    // Arriving through the tunnel, it is dropped whatever the table says.
    let bytes = datagram(42, &frame(S1, LL, 10, 0));
    let (r, p) = tunnelled(&t, Some(Ipv4Addr::new(10, 0, 0, 3)), &bytes);
    assert_eq!(r.map(|t| t.frame.group), Ok(LL.into()));
    assert!(p.deliver.is_empty());
    assert_eq!(p.dropped, Some(DropReason::LinkLocal));
}

#[test]
fn a_copy_over_the_underlay_mtu_is_counted_never_sent_and_local_delivery_goes_on() {
    let mut d = domain(42, false);
    d.members = vec![
        member("h2", G, SourceFilter::any_source()),
        member("h3", G, SourceFilter::any_source()),
    ];
    let t = table(vec![d], &[("tk2", G, SourceFilter::any_source())]);
    let m = mcast(S1, G, 1000);
    let exact = m.len + ENCAP_OVERHEAD;
    let p = captured(&t, 0, &m, exact);
    assert_eq!(p.tunnel.len(), 2, "a packet that just fits goes");
    let p = captured(&t, 0, &m, exact - 1);
    assert_eq!((p.tunnel.len(), p.too_big), (0, 2));
    assert_eq!((p.deliver, p.dropped), (vec![1], None));
    // With no local member either, the drops are the too-big ones only.
    let mut d = domain(42, false);
    d.members = vec![member("h2", G, SourceFilter::any_source())];
    let t = table(vec![d], &[]);
    let p = captured(&t, 0, &m, exact - 1);
    assert_eq!((p.too_big, p.dropped), (1, None));
}

#[test]
fn nothing_is_forwarded_without_a_domain_or_members() {
    let t = ForwardingTable::empty();
    let p = captured(&t, 0, &mcast(S1, G, 10), MTU);
    assert_eq!(p.dropped, Some(DropReason::NoDomain));
    let (r, _) = tunnelled(
        &t,
        Some(Ipv4Addr::new(10, 0, 0, 2)),
        &datagram(42, &frame(S1, G, 10, 0)),
    );
    assert_eq!(r, Err(DropReason::NoDomain));
    let t = table(vec![domain(42, false)], &[]);
    let p = captured(&t, 0, &mcast(S1, G, 10), MTU);
    assert_eq!(p.dropped, Some(DropReason::NoMembers));
}

#[test]
fn the_tunnel_accepts_the_domains_peers_with_its_vni_and_the_i_flag_only() {
    let t = table(
        vec![domain(42, false)],
        &[("tk1", G, SourceFilter::any_source())],
    );
    let good = datagram(42, &frame(S1, G, 10, 0));
    let peer = Some(Ipv4Addr::new(10, 0, 0, 2));
    let (r, p) = tunnelled(&t, peer, &good);
    assert_eq!(r.map(|t| t.vni), Ok(42));
    assert_eq!(p.deliver, vec![0]);
    // This host itself and strangers are not peers.
    for stranger in [
        Some(Ipv4Addr::new(10, 0, 0, 1)),
        Some(Ipv4Addr::new(192, 0, 2, 9)),
        None,
    ] {
        assert_eq!(
            tunnelled(&t, stranger, &good).0,
            Err(DropReason::UnknownPeer)
        );
    }
    // Another VNI is no domain of ours.
    let other = datagram(43, &frame(S1, G, 10, 0));
    assert_eq!(tunnelled(&t, peer, &other).0, Err(DropReason::NoDomain));
    // No I flag.
    let mut flagless = good.clone();
    flagless[0] = 0;
    assert_eq!(tunnelled(&t, peer, &flagless).0, Err(DropReason::BadVxlan));
    // Short, or an inner frame that is not IPv4 multicast.
    assert_eq!(
        tunnelled(&t, peer, &good[..4]).0,
        Err(DropReason::Malformed)
    );
    let unicast = datagram(42, &frame(S1, Ipv4Addr::new(10, 1, 0, 99), 10, 0));
    assert_eq!(
        tunnelled(&t, peer, &unicast).0,
        Err(DropReason::NotMulticast)
    );
    // No input panics.
    for n in 0..good.len() {
        let _ = tunnelled(&t, peer, &good[..n]);
    }
}

#[test]
fn tunnelled_frames_never_go_back_into_the_tunnel() {
    let mut d = domain(42, false);
    d.members = vec![
        member("h2", G, SourceFilter::any_source()),
        member("h3", G, SourceFilter::any_source()),
    ];
    let t = table(vec![d], &[]);
    let (r, p) = tunnelled(
        &t,
        Some(Ipv4Addr::new(10, 0, 0, 2)),
        &datagram(42, &frame(S1, G, 10, 0)),
    );
    assert!(r.is_ok());
    assert!(p.tunnel.is_empty() && p.deliver.is_empty());
    assert_eq!(p.dropped, Some(DropReason::NoMembers));
}

#[test]
fn a_link_in_two_domains_gets_one_copy_and_each_domain_tunnels_with_its_vni() {
    let mut a = domain(42, false);
    a.members = vec![member("h2", G, SourceFilter::any_source())];
    let mut b = domain(43, false);
    b.members = vec![member("h3", G, SourceFilter::any_source())];
    let t = table(vec![a, b], &[("tk3", G, SourceFilter::any_source())]);
    let p = captured(&t, 0, &mcast(S1, G, 10), MTU);
    assert_eq!(p.tunnel, vec![copy(42, 2), copy(43, 3)]);
    assert_eq!(p.deliver, vec![2]);
}

#[test]
fn links_not_attached_are_skipped() {
    let mut d = domain(42, false);
    d.static_members = vec![StaticMemberSpec {
        group: IpAddr::V4(G),
        host: "h1".into(),
        interface: None,
        address: None,
    }];
    let t = table(vec![d], &[]);
    // Only tk1 and tk2 are attached now (tk3 went away since the table was computed).
    let two = |name: &str| index(name).filter(|&i| i < 2);
    let mut p = Plan::default();
    from_link(&t, &two, 0, &mcast(S1, G, 10), MTU, &mut p);
    assert_eq!(p.deliver, vec![1]);
}

#[test]
fn captures_are_checked_before_any_decision() {
    let f = frame(S1, G, 10, 0);
    let mut bytes = vec![0u8; VNET_HDR_LEN];
    bytes.extend_from_slice(&f);
    let (vnet, m) = parse_capture(&bytes, false).expect("valid");
    assert_eq!((vnet.flags, m.group, m.source), (0, G.into(), S1.into()));
    assert_eq!(
        parse_capture(&bytes[..4], false).err(),
        Some(DropReason::Malformed)
    );
    assert_eq!(
        parse_capture(&bytes, true).err(),
        Some(DropReason::Truncated)
    );
    let mut gso = bytes.clone();
    gso[1] = 1;
    assert_eq!(parse_capture(&gso, false).err(), Some(DropReason::TooBig));
    let mut igmp = bytes.clone();
    igmp[VNET_HDR_LEN + 14 + 9] = 2;
    assert_eq!(parse_capture(&igmp, false).err(), Some(DropReason::Igmp));
    // Containers are hosts, not routers: PIM from a task goes nowhere, counted.
    let mut pim = bytes.clone();
    pim[VNET_HDR_LEN + 14 + 9] = crate::inspect::PROTOCOL_PIM;
    assert_eq!(
        parse_capture(&pim, false).err(),
        Some(DropReason::RouterMessage)
    );
    for n in 0..bytes.len() {
        let _ = parse_capture(&bytes[..n], false);
    }
}

/// Domain `vni` tunnelled in WireGuard, hosts h1 (this one) to h3 with keys and tunnel
/// addresses 10.255.0.n; h3 has no key yet.
fn wg_domain(vni: u32) -> DomainState {
    let mut d = domain(vni, false);
    d.domain.tunnel = Tunnel::Wireguard;
    for (p, n) in d.peers.iter_mut().zip(1u8..) {
        if n != 3 {
            p.public_key = mcgate_domain::keys::encode_key(&[n; 32]);
        }
        p.wireguard = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 51820);
        p.tunnel_address = Ipv4Addr::new(10, 255, 0, n);
    }
    d.members = vec![
        member("h1", G, SourceFilter::any_source()),
        member("h2", G, SourceFilter::any_source()),
        member("h3", G, SourceFilter::any_source()),
    ];
    d
}

#[test]
fn wireguard_domains_seal_every_copy_and_never_send_in_the_clear() {
    let t = table(vec![wg_domain(42)], &[]);
    let m = mcast(S1, G, 100);
    let p = captured(&t, 0, &m, MTU);
    assert_eq!(
        p.tunnel,
        vec![TunnelCopy {
            vni: 42,
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 51820),
            inner: Some((Ipv4Addr::new(10, 255, 0, 1), Ipv4Addr::new(10, 255, 0, 2))),
        }]
    );
    assert_eq!(p.unencryptable, 1, "h3 has no key: no copy, counted");
    assert_eq!(p.dropped, None);
    // WireGuard's 60 more bytes count against the MTU.
    let big = mcast(S1, G, MTU - 28 - 14 - ENCAP_OVERHEAD);
    assert_eq!(captured(&t, 0, &big, MTU).too_big, 1);
    assert_eq!(captured(&t, 0, &big, MTU + 60).tunnel.len(), 1);
}

#[test]
fn wireguard_domains_accept_only_authenticated_peers() {
    let t = table(
        vec![wg_domain(42), domain(43, false)],
        &[("tk1", G, SourceFilter::any_source())],
    );
    let inner = frame(S1, G, 10, 0);
    let via = |via: Via, vni: u32| {
        let mut p = Plan::default();
        from_tunnel(&t, &index, via, &datagram(vni, &inner), &mut p).map(|_| p.deliver)
    };
    let h2 = Ipv4Addr::new(10, 255, 0, 2);
    assert_eq!(via(Via::Wireguard(h2), 42), Ok(vec![0]));
    // A forged plain VXLAN packet from a real peer's underlay address.
    assert_eq!(
        via(Via::Underlay(Some(Ipv4Addr::new(10, 0, 0, 2))), 42),
        Err(DropReason::Unencrypted)
    );
    // An authenticated peer of no domain of that VNI, and the wrong tunnel.
    assert_eq!(
        via(Via::Wireguard(Ipv4Addr::new(10, 255, 0, 9)), 42),
        Err(DropReason::UnknownPeer)
    );
    assert_eq!(via(Via::Wireguard(h2), 43), Err(DropReason::TunnelMismatch));
    assert_eq!(via(Via::Wireguard(h2), 44), Err(DropReason::NoDomain));
}

/// A frame to `group` from `src` with this TTL and a correct header checksum.
fn frame_with_ttl(src: Ipv4Addr, group: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut f = frame(src, group, 32, 0);
    f[14 + 8] = ttl;
    f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = mcgate_wire::checksum::checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    f
}

/// RFC 1812 5.3.1: egress is a routed hop, TTL decremented with the header checksum
/// still right (RFC 1624); TTL 1 or 0 is not forwarded.
#[test]
fn egress_copies_decrement_the_ttl_and_keep_the_checksum_right() {
    for ttl in [2u8, 5, 64, 128, 255] {
        let f = frame_with_ttl(S1, G, ttl);
        let m = inspect(&f).unwrap();
        let out = egress_copy(&f, m.len).unwrap();
        assert_eq!(out.len(), m.len);
        assert_eq!(out[14 + 8], ttl - 1);
        assert!(mcgate_wire::checksum::verifies(&out[14..34]), "ttl {ttl}");
        // Only the TTL and the checksum changed.
        let differ: Vec<usize> = (0..out.len()).filter(|i| out[*i] != f[*i]).collect();
        assert!(
            differ.iter().all(|i| [22, 24, 25].contains(i)),
            "{differ:?}"
        );
    }
    for ttl in [0u8, 1] {
        let f = frame_with_ttl(S1, G, ttl);
        let m = inspect(&f).unwrap();
        assert_eq!(egress_copy(&f, m.len), Err(DropReason::TtlExpired));
    }
}

#[test]
fn egress_ranges_of_a_link() {
    let spec = crate::LinkSpec {
        name: "up0".into(),
        ifindex: 9,
        routers: true,
        single_host: false,
        egress: vec![(Ipv4Addr::new(239, 20, 0, 0), 16), (G, 32)],
        standby: vec![(Ipv4Addr::new(233, 252, 0, 0), 24)],
    };
    // A standby gateway's range is not taken in; others are.
    assert!(spec.standby_for(Ipv4Addr::new(233, 252, 0, 6)));
    assert!(!spec.standby_for(Ipv4Addr::new(233, 252, 1, 6)));
    assert!(spec.egress_allows(Ipv4Addr::new(239, 20, 7, 1)));
    assert!(spec.egress_allows(G));
    assert!(!spec.egress_allows(Ipv4Addr::new(239, 21, 0, 1)));
    assert!(!spec.egress_allows(Ipv4Addr::new(233, 252, 0, 6)));
    let all = crate::LinkSpec {
        egress: vec![(Ipv4Addr::new(224, 0, 0, 0), 4)],
        ..spec.clone()
    };
    assert!(all.egress_allows(Ipv4Addr::new(239, 1, 1, 1)));
    assert!(!all.egress_allows(LL), "link-local groups never leave");
    let none = crate::LinkSpec {
        egress: Vec::new(),
        ..spec
    };
    assert!(!none.egress_allows(G));
}

const S6B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12);

/// A table of domain 42 where h2 wants IPv6 group `group` with `remote` and link tk3
/// with `local`.
fn table6(
    group: Ipv6Addr,
    remote: SourceFilter<Ipv6Addr>,
    local: SourceFilter<Ipv6Addr>,
) -> ForwardingTable {
    let mut d = domain(42, false);
    d.members = vec![member("h2", group, remote)];
    table_ip(vec![d], &[("tk3", group.into(), local.into())])
}

fn mcast6(source: Ipv6Addr, group: Ipv6Addr, payload: usize) -> McastFrame {
    inspect(&frame6(source, group, payload)).expect("a valid frame")
}

#[test]
fn an_ipv6_frame_goes_to_remote_members_and_local_links_like_an_ipv4_one() {
    let t = table6(G6, SourceFilter::any_source(), SourceFilter::any_source());
    let p = captured(&t, 0, &mcast6(S6, G6, 100), MTU);
    assert_eq!(p.tunnel, vec![copy(42, 2)]);
    assert_eq!((p.deliver, p.dropped), (vec![2], None));
    // Not back to its own link.
    let p = captured(&t, 2, &mcast6(S6, G6, 100), MTU);
    assert_eq!((p.tunnel, p.deliver), (vec![copy(42, 2)], vec![]));
    // From the tunnel: the local member link only.
    let bytes = datagram(42, &frame6(S6, G6, 100));
    let (r, p) = tunnelled(&t, Some(Ipv4Addr::new(10, 0, 0, 2)), &bytes);
    assert_eq!(
        r.map(|t| (t.frame.group, t.frame.source)),
        Ok((G6.into(), S6.into()))
    );
    assert_eq!((p.tunnel, p.deliver, p.dropped), (vec![], vec![2], None));
    // A group nobody joined.
    let other = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 2);
    let p = captured(&t, 0, &mcast6(S6, other, 10), MTU);
    assert_eq!(p.dropped, Some(DropReason::NoMembers));
}

#[test]
fn ipv6_source_filters_apply_per_ipv6_source() {
    let t = table6(G6, SourceFilter::include([S6]), SourceFilter::exclude([S6]));
    let p = captured(&t, 0, &mcast6(S6, G6, 10), MTU);
    assert_eq!((p.tunnel, p.deliver), (vec![copy(42, 2)], vec![]));
    let p = captured(&t, 0, &mcast6(S6B, G6, 10), MTU);
    assert_eq!((p.tunnel, p.deliver), (vec![], vec![2]));
    let peer = Some(Ipv4Addr::new(10, 0, 0, 2));
    let (_, p) = tunnelled(&t, peer, &datagram(42, &frame6(S6, G6, 10)));
    assert_eq!(p.dropped, Some(DropReason::NoMembers));
    let (_, p) = tunnelled(&t, peer, &datagram(42, &frame6(S6B, G6, 10)));
    assert_eq!(p.deliver, vec![2]);
}

#[test]
fn ipv6_link_scope_groups_stay_on_the_host() {
    // ff02::fb (mDNS), ff01::1 (interface-local) and ff00::... (reserved scope 0).
    for group in [
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb),
        Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0x99),
    ] {
        let t = table6(
            group,
            SourceFilter::any_source(),
            SourceFilter::any_source(),
        );
        let p = captured(&t, 0, &mcast6(S6, group, 10), MTU);
        assert!(p.tunnel.is_empty(), "{group}");
        assert_eq!((p.deliver, p.dropped), (vec![2], None));
        let bytes = datagram(42, &frame6(S6, group, 10));
        let (r, p) = tunnelled(&t, Some(Ipv4Addr::new(10, 0, 0, 2)), &bytes);
        assert!(r.is_ok());
        assert!(p.deliver.is_empty());
        assert_eq!(p.dropped, Some(DropReason::LinkLocal));
    }
    // Site scope (5) crosses hosts.
    let site = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x42);
    let t = table6(site, SourceFilter::any_source(), SourceFilter::any_source());
    assert_eq!(captured(&t, 0, &mcast6(S6, site, 10), MTU).tunnel.len(), 1);
}

#[test]
fn mld_is_never_forwarded() {
    let t = table6(G6, SourceFilter::any_source(), SourceFilter::any_source());
    for msg_type in [130, 131, 132, 143] {
        let f = mld6(S6, G6, msg_type);
        let mut bytes = vec![0u8; VNET_HDR_LEN];
        bytes.extend_from_slice(&f);
        assert_eq!(parse_capture(&bytes, false).err(), Some(DropReason::Igmp));
        let (r, _) = tunnelled(&t, Some(Ipv4Addr::new(10, 0, 0, 2)), &datagram(42, &f));
        assert_eq!(r, Err(DropReason::Igmp));
    }
}

#[test]
fn an_ipv6_fragment_is_forwarded_as_it_is() {
    let t = table6(G6, SourceFilter::any_source(), SourceFilter::any_source());
    let fragment = [17, 0, 0, 1, 0, 0, 0, 9];
    let f = frame6_with(S6, G6, 44, &fragment, &[0xab; 1000], 0);
    let mut bytes = vec![0u8; VNET_HDR_LEN];
    bytes.extend_from_slice(&f);
    let (_, m) = parse_capture(&bytes, false).expect("a fragment is forwarded");
    assert_eq!(m.len, f.len());
    let p = captured(&t, 0, &m, MTU);
    assert_eq!((p.tunnel, p.deliver), (vec![copy(42, 2)], vec![2]));
}

#[test]
fn an_ipv6_copy_over_the_underlay_mtu_is_counted_with_its_40_byte_header() {
    let t = table6(G6, SourceFilter::any_source(), SourceFilter::any_source());
    let m = mcast6(S6, G6, 1000);
    assert_eq!(m.len, 14 + 40 + 8 + 1000);
    let exact = m.len + ENCAP_OVERHEAD;
    assert_eq!(captured(&t, 0, &m, exact).tunnel.len(), 1);
    let p = captured(&t, 0, &m, exact - 1);
    assert_eq!((p.tunnel.len(), p.too_big), (0, 1));
    assert_eq!((p.deliver, p.dropped), (vec![2], None));
}

#[test]
fn ipv6_frames_travel_sealed_in_wireguard_domains() {
    let mut d = wg_domain(42);
    d.members = vec![member("h2", G6, SourceFilter::any_source())];
    let t = table_ip(vec![d], &[]);
    let p = captured(&t, 0, &mcast6(S6, G6, 100), MTU);
    assert_eq!(
        p.tunnel.iter().map(|c| c.inner).collect::<Vec<_>>(),
        [Some((
            Ipv4Addr::new(10, 255, 0, 1),
            Ipv4Addr::new(10, 255, 0, 2)
        ))]
    );
    let t = table_ip(
        vec![wg_domain(42)],
        &[("tk1", G6.into(), SourceFilter::any_source())],
    );
    let mut p = Plan::default();
    let via = Via::Wireguard(Ipv4Addr::new(10, 255, 0, 2));
    let r = from_tunnel(&t, &index, via, &datagram(42, &frame6(S6, G6, 10)), &mut p);
    assert!(r.is_ok());
    assert_eq!(p.deliver, vec![0]);
}
