//! Unit tests of `link_msg.rs`.

use super::*;

// Wire numbers the expected bytes are written with (the code gets them from
// netlink-packet-route).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_LINK: u16 = 3;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFLA_VXLAN_TTL: u16 = 5;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PORT: u16 = 15;
const IFLA_BR_MCAST_SNOOPING: u16 = 23;
const IFLA_BR_MCAST_QUERIER: u16 = 25;
const IFLA_BR_MCAST_LAST_MEMBER_CNT: u16 = 28;
const IFLA_BR_MCAST_QUERY_INTVL: u16 = 33;
const IFLA_BR_MCAST_QUERY_RESPONSE_INTVL: u16 = 34;
const IFLA_BR_MCAST_IGMP_VERSION: u16 = 43;
const IFLA_BR_MCAST_MLD_VERSION: u16 = 44;
const IFLA_BR_MCAST_QUERIER_STATE: u16 = 47;
const BRIDGE_QUERIER_IP_ADDRESS: u16 = 1;
const BRIDGE_QUERIER_IP_OTHER_TIMER: u16 = 3;
use crate::kernel::nl::NLA_F_NESTED;

fn hdr(len: u32, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v
}

fn attr(v: &mut Vec<u8>, ty: u16, len: u16, payload: &[u8]) {
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(payload);
}

#[test]
fn new_vxlan_exact_bytes() {
    let spec = VxlanConfig {
        underlay_ifindex: Some(3),
        ..VxlanConfig::new(42, Ipv4Addr::new(10, 0, 0, 1), "br0")
    };
    let got = new_vxlan(&spec, Some(7)).finish(5);
    let mut want = hdr(112, RTM_NEWLINK, 0x1 | 0x4 | 0x400 | 0x200, 5);
    want.extend_from_slice(&[0u8; 16]); // ifinfomsg, all zero
    attr(&mut want, IFLA_IFNAME, 12, b"mcgvx42\0");
    attr(&mut want, IFLA_MASTER, 8, &7u32.to_ne_bytes());
    // netlink-packet-route leaves NLA_F_NESTED off IFLA_LINKINFO and IFLA_INFO_DATA,
    // which the kernel parses the same way either way (nla_parse_nested_deprecated).
    attr(&mut want, IFLA_LINKINFO, 60, &[]);
    attr(&mut want, IFLA_INFO_KIND, 10, b"vxlan\0\0\0");
    attr(&mut want, IFLA_INFO_DATA, 44, &[]);
    attr(&mut want, IFLA_VXLAN_ID, 8, &42u32.to_ne_bytes());
    attr(&mut want, IFLA_VXLAN_LOCAL, 8, &[10, 0, 0, 1]);
    attr(&mut want, IFLA_VXLAN_PORT, 6, &[0x12, 0xb5, 0, 0]);
    attr(&mut want, IFLA_VXLAN_LEARNING, 5, &[0, 0, 0, 0]);
    attr(&mut want, IFLA_VXLAN_LINK, 8, &3u32.to_ne_bytes());
    assert_eq!(got.len(), 112);
    assert_eq!(got, want);
}

#[test]
fn set_port_flags_exact_bytes() {
    let f = PortFlags {
        learning: false,
        unicast_flood: false,
        mcast_flood: false,
        bcast_flood: false,
        multicast_router: 0,
    };
    let got = set_port_flags(9, f).finish(1);
    let mut want = hdr(16 + 16 + 4 + 5 * 8, RTM_SETLINK, 0x5, 1);
    let mut ifi = [0u8; 16];
    ifi[0] = 7; // AF_BRIDGE
    ifi[4..8].copy_from_slice(&9u32.to_ne_bytes());
    want.extend_from_slice(&ifi);
    attr(&mut want, IFLA_PROTINFO | NLA_F_NESTED, 44, &[]);
    for t in [8u16, 9, 27, 30, 25] {
        attr(&mut want, t, 5, &[0, 0, 0, 0]);
    }
    assert_eq!(got, want);
}

#[test]
fn set_up_and_delete_exact_bytes() {
    let got = set_up(4, true).finish(2);
    let mut want = hdr(32, RTM_NEWLINK, 0x5, 2);
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&4u32.to_ne_bytes());
    ifi[8..12].copy_from_slice(&1u32.to_ne_bytes());
    ifi[12..16].copy_from_slice(&1u32.to_ne_bytes());
    want.extend_from_slice(&ifi);
    assert_eq!(got, want);
    let got = del_link(4).finish(3);
    let mut want = hdr(32, RTM_DELLINK, 0x5, 3);
    ifi[8..16].fill(0);
    want.extend_from_slice(&ifi);
    assert_eq!(got, want);
}

#[test]
fn set_address_exact_bytes() {
    let mac = [0x02, 0x6d, 0x63, 0, 0, 1];
    let got = set_address(4, mac).finish(5);
    let mut want = hdr(44, RTM_NEWLINK, 0x5, 5);
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&4u32.to_ne_bytes());
    want.extend_from_slice(&ifi);
    attr(
        &mut want,
        IFLA_ADDRESS,
        10,
        &[0x02, 0x6d, 0x63, 0, 0, 1, 0, 0],
    );
    assert_eq!(got, want);
}

#[test]
fn optional_vxlan_attributes_and_lookups_exact_bytes() {
    let spec = VxlanConfig {
        name: "v".into(),
        port: 8472,
        mtu: Some(1450),
        ttl: Some(16),
        ..VxlanConfig::new(1, Ipv4Addr::new(192, 0, 2, 1), "")
    };
    let got = new_vxlan(&spec, None).finish(1);
    let mut want = hdr(0, RTM_NEWLINK, 0x1 | 0x4 | 0x400 | 0x200, 1);
    want.extend_from_slice(&[0u8; 16]);
    attr(&mut want, IFLA_IFNAME, 6, b"v\0\0\0");
    attr(&mut want, IFLA_MTU, 8, &1450u32.to_ne_bytes());
    attr(&mut want, IFLA_LINKINFO, 60, &[]);
    attr(&mut want, IFLA_INFO_KIND, 10, b"vxlan\0\0\0");
    attr(&mut want, IFLA_INFO_DATA, 44, &[]);
    attr(&mut want, IFLA_VXLAN_ID, 8, &1u32.to_ne_bytes());
    attr(&mut want, IFLA_VXLAN_LOCAL, 8, &[192, 0, 2, 1]);
    attr(&mut want, IFLA_VXLAN_PORT, 6, &[0x21, 0x18, 0, 0]);
    attr(&mut want, IFLA_VXLAN_LEARNING, 5, &[0, 0, 0, 0]);
    attr(&mut want, IFLA_VXLAN_TTL, 5, &[16, 0, 0, 0]);
    let len = want.len() as u32;
    want[0..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(got, want);

    let got = get_link_by_name("br0").finish(4);
    let mut want = hdr(40, RTM_GETLINK, 0x5, 4);
    want.extend_from_slice(&[0u8; 16]);
    attr(&mut want, IFLA_IFNAME, 8, b"br0\0");
    assert_eq!(got, want);

    let got = get_link_by_index(9).finish(5);
    let mut want = hdr(32, RTM_GETLINK, 0x5, 5);
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&9u32.to_ne_bytes());
    want.extend_from_slice(&ifi);
    assert_eq!(got, want);

    let got = dump_links().finish(6);
    let mut want = hdr(32, RTM_GETLINK, 0x301, 6);
    want.extend_from_slice(&[0u8; 16]);
    assert_eq!(got, want);
}

#[test]
fn parses_a_vxlan_link_with_stats() {
    let mut p = Vec::new();
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&12u32.to_ne_bytes());
    ifi[8..12].copy_from_slice(&1u32.to_ne_bytes());
    p.extend_from_slice(&ifi);
    attr(&mut p, IFLA_IFNAME, 12, b"mcgvx42\0");
    attr(&mut p, IFLA_MASTER, 8, &7u32.to_ne_bytes());
    attr(&mut p, IFLA_ADDRESS, 10, &[2, 0, 0, 0, 0, 9, 0, 0]);
    let mut stats = Vec::new();
    for i in 1..=24u64 {
        stats.extend_from_slice(&i.to_ne_bytes());
    }
    attr(&mut p, IFLA_STATS64, 4 + 192, &stats);
    attr(&mut p, IFLA_LINKINFO | NLA_F_NESTED, 4 + 12 + 20, &[]);
    attr(&mut p, IFLA_INFO_KIND, 9, b"vxlan\0\0\0");
    attr(&mut p, IFLA_INFO_DATA | NLA_F_NESTED, 20, &[]);
    attr(&mut p, IFLA_VXLAN_ID, 8, &42u32.to_ne_bytes());
    attr(&mut p, IFLA_VXLAN_PORT, 6, &[0x12, 0xb5, 0, 0]);
    let l = parse_link(&p).unwrap();
    assert_eq!(l.ifindex, 12);
    assert!(l.up);
    assert_eq!(l.name, "mcgvx42");
    assert_eq!(l.master, Some(7));
    assert_eq!(l.address, Some([2, 0, 0, 0, 0, 9]));
    assert_eq!(l.kind, "vxlan");
    let x = l.vxlan.unwrap();
    assert_eq!((x.vni, x.port, x.local), (Some(42), Some(4789), None));
    let s = l.stats.unwrap();
    assert_eq!((s.rx_packets, s.tx_packets, s.tx_dropped), (1, 2, 8));
}

#[test]
fn parses_bridge_snooping_and_querier_state() {
    let mut p = vec![0u8; 16];
    let mut data = Vec::new();
    attr(&mut data, IFLA_BR_MCAST_SNOOPING, 5, &[1, 0, 0, 0]);
    attr(&mut data, IFLA_BR_MCAST_QUERIER, 5, &[0, 0, 0, 0]);
    attr(&mut data, IFLA_BR_MCAST_IGMP_VERSION, 5, &[3, 0, 0, 0]);
    let mut q = Vec::new();
    attr(&mut q, BRIDGE_QUERIER_IP_ADDRESS, 8, &[10, 88, 0, 1]);
    attr(
        &mut q,
        BRIDGE_QUERIER_IP_OTHER_TIMER,
        12,
        &25_500u64.to_ne_bytes(),
    );
    attr(
        &mut data,
        IFLA_BR_MCAST_QUERIER_STATE | NLA_F_NESTED,
        4 + q.len() as u16,
        &q,
    );
    let mut li = Vec::new();
    attr(&mut li, IFLA_INFO_KIND, 11, b"bridge\0\0");
    attr(
        &mut li,
        IFLA_INFO_DATA | NLA_F_NESTED,
        4 + data.len() as u16,
        &data,
    );
    attr(
        &mut p,
        IFLA_LINKINFO | NLA_F_NESTED,
        4 + li.len() as u16,
        &li,
    );
    let b = parse_link(&p).unwrap().bridge.unwrap();
    assert!(b.snooping && !b.own_querier);
    assert_eq!(b.igmp_version, Some(3));
    assert_eq!(b.querier_address, Some(Ipv4Addr::new(10, 88, 0, 1)));
    assert_eq!(
        (b.querier_port, b.other_querier_timer),
        (None, Some(25_500))
    );
}

#[test]
fn set_bridge_exact_bytes_and_settings_read_back() {
    let s = BridgeSettings {
        snooping: Some(true),
        querier: Some(true),
        igmp_version: Some(3),
        query_response_interval: Some(100),
        ..BridgeSettings::default()
    };
    let got = set_bridge(5, &s).finish(9);
    let mut want = hdr(0, RTM_NEWLINK, 0x5, 9);
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&5u32.to_ne_bytes());
    want.extend_from_slice(&ifi);
    attr(&mut want, IFLA_LINKINFO, 4 + 12 + 4 + 8 + 8 + 12 + 8, &[]);
    attr(&mut want, IFLA_INFO_KIND, 11, b"bridge\0\0");
    attr(&mut want, IFLA_INFO_DATA, 4 + 8 + 8 + 12 + 8, &[]);
    attr(&mut want, IFLA_BR_MCAST_SNOOPING, 5, &[1, 0, 0, 0]);
    attr(&mut want, IFLA_BR_MCAST_QUERIER, 5, &[1, 0, 0, 0]);
    attr(
        &mut want,
        IFLA_BR_MCAST_QUERY_RESPONSE_INTVL,
        12,
        &100u64.to_ne_bytes(),
    );
    attr(&mut want, IFLA_BR_MCAST_IGMP_VERSION, 5, &[3, 0, 0, 0]);
    let len = want.len() as u32;
    want[0..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(got, want);

    // What a dump reports is what `set_bridge` would put back.
    let mut data = Vec::new();
    attr(&mut data, IFLA_BR_MCAST_SNOOPING, 5, &[0, 0, 0, 0]);
    attr(&mut data, IFLA_BR_MCAST_MLD_VERSION, 5, &[1, 0, 0, 0]);
    attr(
        &mut data,
        IFLA_BR_MCAST_LAST_MEMBER_CNT,
        8,
        &2u32.to_ne_bytes(),
    );
    attr(
        &mut data,
        IFLA_BR_MCAST_QUERY_INTVL,
        12,
        &12_500u64.to_ne_bytes(),
    );
    let b = parse_bridge(&data).unwrap();
    assert_eq!(
        b.settings,
        BridgeSettings {
            snooping: Some(false),
            mld_version: Some(1),
            last_member_count: Some(2),
            query_interval: Some(12_500),
            ..BridgeSettings::default()
        }
    );
}

#[test]
fn malformed_links_are_errors_not_panics() {
    assert!(parse_link(&[0u8; 8]).is_err());
    let mut p = vec![0u8; 16];
    attr(&mut p, IFLA_IFNAME, 200, b"x\0\0\0");
    assert!(parse_link(&p).is_err());
    // Short stats are ignored rather than misread.
    let mut p = vec![0u8; 16];
    attr(&mut p, IFLA_STATS64, 12, &[0u8; 8]);
    assert_eq!(parse_link(&p).unwrap().stats, None);
}
