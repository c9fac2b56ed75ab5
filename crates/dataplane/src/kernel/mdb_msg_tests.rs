//! Unit tests of `mdb_msg.rs`.

use std::net::Ipv6Addr;

use super::*;
use crate::kernel::nl::{NLA_F_NESTED, NLMSG_HDRLEN};

const G: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const D: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const S1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
const S2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 6);

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

fn entry_bytes(port: u32, group: [u8; 4]) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend_from_slice(&port.to_ne_bytes());
    e.extend_from_slice(&[1, 0, 0, 0]); // permanent, flags 0, vid 0
    e.extend_from_slice(&group);
    e.extend_from_slice(&[0u8; 12]);
    e.extend_from_slice(&[0x08, 0x00, 0, 0]); // ETH_P_IP big-endian, pad
    e
}

#[test]
fn vxlan_star_g_add_exact_bytes() {
    let e = VxlanMdbEntry::new(G, D);
    let got = vxlan_add(11, &e, false).finish(7);
    let mut want = hdr(16 + 8 + 32 + 12, RTM_NEWMDB, 0x1 | 0x4 | 0x400 | 0x200, 7);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&11u32.to_ne_bytes());
    attr(
        &mut want,
        MDBA_SET_ENTRY,
        32,
        &entry_bytes(11, [239, 1, 2, 3]),
    );
    attr(&mut want, MDBA_SET_ENTRY_ATTRS | NLA_F_NESTED, 12, &[]);
    attr(&mut want, MDBE_ATTR_DST, 8, &[10, 9, 0, 2]);
    assert_eq!(got, want);
}

#[test]
fn vxlan_include_replace_exact_bytes() {
    let e = VxlanMdbEntry {
        dst_port: Some(8472),
        vni: Some(77),
        ..VxlanMdbEntry::new(G, D).with_filter(SourceFilter::include([S2, S1]))
    };
    let got = vxlan_add(11, &e, true).finish(8);
    let mut want = hdr(0, RTM_NEWMDB, 0x1 | 0x4 | 0x400 | 0x100, 8);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&11u32.to_ne_bytes());
    attr(
        &mut want,
        MDBA_SET_ENTRY,
        32,
        &entry_bytes(11, [239, 1, 2, 3]),
    );
    // attrs: mode 8 + list (4 + 2 * (4 + 8)) 28 + dst 8 + port 8 + vni 8 = 60, +4.
    attr(&mut want, MDBA_SET_ENTRY_ATTRS | NLA_F_NESTED, 64, &[]);
    attr(&mut want, MDBE_ATTR_GROUP_MODE, 5, &[1, 0, 0, 0]);
    attr(&mut want, MDBE_ATTR_SRC_LIST | NLA_F_NESTED, 28, &[]);
    for s in [[10, 1, 0, 5], [10, 1, 0, 6]] {
        // Sources in ascending order, each its own nested entry.
        attr(&mut want, MDBE_SRC_LIST_ENTRY | NLA_F_NESTED, 12, &[]);
        attr(&mut want, MDBE_SRCATTR_ADDRESS, 8, &s);
    }
    attr(&mut want, MDBE_ATTR_DST, 8, &[10, 9, 0, 2]);
    attr(&mut want, MDBE_ATTR_DST_PORT, 6, &8472u16.to_ne_bytes());
    want.extend_from_slice(&[0, 0]);
    attr(&mut want, MDBE_ATTR_VNI, 8, &77u32.to_ne_bytes());
    let len = want.len() as u32;
    want[0..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(got, want);
}

#[test]
fn vxlan_sg_delete_carries_only_the_key() {
    let e = VxlanMdbEntry {
        vni: Some(5),
        ..VxlanMdbEntry::new(G, D).with_source(S1)
    };
    let got = vxlan_del(11, &e).finish(9);
    let mut want = hdr(16 + 8 + 32 + 20, RTM_DELMDB, 0x5, 9);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&11u32.to_ne_bytes());
    attr(
        &mut want,
        MDBA_SET_ENTRY,
        32,
        &entry_bytes(11, [239, 1, 2, 3]),
    );
    attr(&mut want, MDBA_SET_ENTRY_ATTRS | NLA_F_NESTED, 20, &[]);
    attr(&mut want, MDBE_ATTR_SOURCE, 8, &[10, 1, 0, 5]);
    attr(&mut want, MDBE_ATTR_DST, 8, &[10, 9, 0, 2]);
    assert_eq!(got, want);
}

#[test]
fn bridge_entry_exact_bytes() {
    let got = bridge_add(3, 11, G.into(), false).finish(1);
    let mut want = hdr(16 + 8 + 32, RTM_NEWMDB, 0x1 | 0x4 | 0x400 | 0x200, 1);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&3u32.to_ne_bytes());
    attr(
        &mut want,
        MDBA_SET_ENTRY,
        32,
        &entry_bytes(11, [239, 1, 2, 3]),
    );
    assert_eq!(got, want);
    let del = bridge_del(3, 11, G.into()).finish(1);
    assert_eq!(&del[4..6], &RTM_DELMDB.to_ne_bytes());
    assert_eq!(&del[6..8], &0x5u16.to_ne_bytes());
    assert_eq!(&del[NLMSG_HDRLEN..], &want[NLMSG_HDRLEN..]);
    let d = dump().finish(2);
    assert_eq!(d.len(), 24);
    assert_eq!(&d[6..8], &0x301u16.to_ne_bytes());
    assert_eq!(&d[16..24], &[7, 0, 0, 0, 0, 0, 0, 0]);
}

/// A dump message shaped like `vxlan_mdb_entry_info_fill` writes it.
fn kernel_dump_msg() -> Vec<u8> {
    let mut info = entry_bytes(11, [239, 1, 2, 3]);
    attr(&mut info, 1, 8, &0u32.to_ne_bytes()); // timer
    attr(&mut info, MDBA_MDB_EATTR_RTPROT_FOR_TEST, 5, &[4, 0, 0, 0]);
    attr(&mut info, MDBA_MDB_EATTR_GROUP_MODE, 5, &[1, 0, 0, 0]);
    let mut list = Vec::new();
    for s in [[10, 1, 0, 6], [10, 1, 0, 5]] {
        attr(&mut list, MDBA_MDB_SRCLIST_ENTRY | NLA_F_NESTED, 20, &[]);
        attr(&mut list, MDBA_MDB_SRCATTR_ADDRESS, 8, &s);
        attr(&mut list, 2, 8, &0u32.to_ne_bytes());
    }
    attr(
        &mut info,
        MDBA_MDB_EATTR_SRC_LIST | NLA_F_NESTED,
        4 + list.len() as u16,
        &list,
    );
    attr(&mut info, MDBA_MDB_EATTR_DST, 8, &[10, 9, 0, 2]);
    attr(&mut info, MDBA_MDB_EATTR_VNI, 8, &77u32.to_ne_bytes());
    dump_msg(&info)
}

/// One dump message of device 11 holding one `MDBA_MDB_ENTRY_INFO` with payload `info`.
fn dump_msg(info: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    attr(
        &mut entry,
        MDBA_MDB_ENTRY_INFO | NLA_F_NESTED,
        4 + info.len() as u16,
        info,
    );
    let mut mdb = Vec::new();
    attr(
        &mut mdb,
        MDBA_MDB_ENTRY | NLA_F_NESTED,
        4 + entry.len() as u16,
        &entry,
    );
    let mut p = vec![7, 0, 0, 0];
    p.extend_from_slice(&11u32.to_ne_bytes());
    attr(&mut p, MDBA_MDB | NLA_F_NESTED, 4 + mdb.len() as u16, &mdb);
    p
}
const MDBA_MDB_EATTR_RTPROT_FOR_TEST: u16 = 5;

#[test]
fn parses_a_vxlan_dump_record() {
    let recs = parse_dump_msg(&kernel_dump_msg()).unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.dev, r.port, r.state), (11, 11, 1));
    let e = r.to_vxlan_entry().unwrap();
    assert_eq!(
        e,
        VxlanMdbEntry {
            vni: Some(77),
            ..VxlanMdbEntry::new(G, D).with_filter(SourceFilter::include([S1, S2]))
        }
    );
    assert_eq!(
        e.to_string(),
        "grp 239.1.2.3 filter_mode include source_list 10.1.0.5,10.1.0.6 dst 10.9.0.2 vni 77"
    );
}

#[test]
fn truncated_dumps_are_errors_not_panics() {
    let full = kernel_dump_msg();
    for cut in 0..full.len() {
        // Any prefix either parses (attributes dropped whole) or is an error.
        let _ = parse_dump_msg(&full[..cut]);
    }
    let mut short_entry = vec![7, 0, 0, 0, 1, 0, 0, 0];
    attr(&mut short_entry, MDBA_MDB | NLA_F_NESTED, 16, &[]);
    attr(&mut short_entry, MDBA_MDB_ENTRY | NLA_F_NESTED, 12, &[]);
    attr(&mut short_entry, MDBA_MDB_ENTRY_INFO, 8, &[0, 0, 0, 0]);
    assert!(parse_dump_msg(&short_entry).is_err());
}

#[test]
fn validation_mirrors_kernel_refusals() {
    let ok = VxlanMdbEntry::new(G, D);
    assert!(ok.validate().is_ok());
    assert!(
        VxlanMdbEntry::new(Ipv4Addr::UNSPECIFIED, D)
            .validate()
            .is_ok()
    );
    let bad = [
        VxlanMdbEntry::new(Ipv4Addr::new(10, 0, 0, 1), D),
        VxlanMdbEntry::new(Ipv4Addr::new(224, 0, 0, 5), D),
        VxlanMdbEntry::new(G, Ipv4Addr::UNSPECIFIED),
        VxlanMdbEntry::new(G, D).with_filter(SourceFilter::Include(BTreeSet::new())),
        VxlanMdbEntry::new(G, D)
            .with_source(S1)
            .with_filter(SourceFilter::include([S2])),
        VxlanMdbEntry::new(Ipv4Addr::UNSPECIFIED, D).with_source(S1),
        VxlanMdbEntry {
            vni: Some(1 << 24),
            ..ok.clone()
        },
    ];
    for b in bad {
        assert!(b.validate().is_err(), "{b} should be refused");
    }
    assert!(validate_bridge_group(G.into()).is_ok());
    assert!(validate_bridge_group(Ipv4Addr::UNSPECIFIED.into()).is_err());
}

const G6: [u8; 16] = [0xff, 0x3e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 3];
const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];

fn g6() -> IpAddr {
    IpAddr::from(G6)
}

fn s6() -> IpAddr {
    IpAddr::from(S6)
}

/// A `br_mdb_entry` for an IPv6 group: the 16-byte address, proto ETH_P_IPV6.
fn entry6_bytes(port: u32) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend_from_slice(&port.to_ne_bytes());
    e.extend_from_slice(&[1, 0, 0, 0]);
    e.extend_from_slice(&G6);
    e.extend_from_slice(&[0x86, 0xdd, 0, 0]);
    e
}

#[test]
fn vxlan_ipv6_include_add_exact_bytes() {
    let e = VxlanMdbEntry::new(g6(), D).with_filter(SourceFilter::include([s6()]));
    let got = vxlan_add(11, &e, false).finish(3);
    let mut want = hdr(0, RTM_NEWMDB, 0x1 | 0x4 | 0x400 | 0x200, 3);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&11u32.to_ne_bytes());
    attr(&mut want, MDBA_SET_ENTRY, 32, &entry6_bytes(11));
    // attrs: mode 8 + list (4 + (4 + 20)) 28 + dst 8 = 44, +4.
    attr(&mut want, MDBA_SET_ENTRY_ATTRS | NLA_F_NESTED, 48, &[]);
    attr(&mut want, MDBE_ATTR_GROUP_MODE, 5, &[1, 0, 0, 0]);
    attr(&mut want, MDBE_ATTR_SRC_LIST | NLA_F_NESTED, 28, &[]);
    attr(&mut want, MDBE_SRC_LIST_ENTRY | NLA_F_NESTED, 24, &[]);
    attr(&mut want, MDBE_SRCATTR_ADDRESS, 20, &S6);
    attr(&mut want, MDBE_ATTR_DST, 8, &[10, 9, 0, 2]);
    let len = want.len() as u32;
    want[0..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(got, want);
}

#[test]
fn vxlan_ipv6_sg_delete_and_bridge_entry_exact_bytes() {
    let e = VxlanMdbEntry::new(g6(), D).with_source(s6());
    let got = vxlan_del(11, &e).finish(4);
    let mut want = hdr(16 + 8 + 32 + 32, RTM_DELMDB, 0x5, 4);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&11u32.to_ne_bytes());
    attr(&mut want, MDBA_SET_ENTRY, 32, &entry6_bytes(11));
    attr(&mut want, MDBA_SET_ENTRY_ATTRS | NLA_F_NESTED, 32, &[]);
    attr(&mut want, MDBE_ATTR_SOURCE, 20, &S6);
    attr(&mut want, MDBE_ATTR_DST, 8, &[10, 9, 0, 2]);
    assert_eq!(got, want);

    let got = bridge_add(3, 11, g6(), false).finish(5);
    let mut want = hdr(16 + 8 + 32, RTM_NEWMDB, 0x1 | 0x4 | 0x400 | 0x200, 5);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&3u32.to_ne_bytes());
    attr(&mut want, MDBA_SET_ENTRY, 32, &entry6_bytes(11));
    assert_eq!(got, want);
}

#[test]
fn parses_an_ipv6_vxlan_dump_record() {
    let mut info = entry6_bytes(11);
    attr(&mut info, MDBA_MDB_EATTR_SOURCE, 20, &S6);
    attr(&mut info, MDBA_MDB_EATTR_DST, 8, &[10, 9, 0, 2]);
    let recs = parse_dump_msg(&dump_msg(&info)).unwrap();
    let e = recs[0].to_vxlan_entry().unwrap();
    assert_eq!(e, VxlanMdbEntry::new(g6(), D).with_source(s6()));
    assert_eq!(
        e.to_string(),
        "grp ff3e::8000:3 src 2001:db8::9 dst 10.9.0.2"
    );
}

#[test]
fn ipv6_validation() {
    let ok = VxlanMdbEntry::new(g6(), D).with_filter(SourceFilter::exclude([s6()]));
    assert!(ok.validate().is_ok());
    assert!(
        VxlanMdbEntry::new(g6(), D)
            .with_source(s6())
            .validate()
            .is_ok()
    );
    let ff02: IpAddr = "ff02::1:3".parse().unwrap();
    let bad = [
        // Link scope stays on the link.
        VxlanMdbEntry::new(ff02, D),
        // Sources of the other family.
        VxlanMdbEntry::new(g6(), D).with_source(S1),
        VxlanMdbEntry::new(G, D).with_source(s6()),
        VxlanMdbEntry::new(g6(), D).with_filter(SourceFilter::include([S1])),
        // Not unicast.
        VxlanMdbEntry::new(g6(), D).with_source(Ipv6Addr::LOCALHOST),
        VxlanMdbEntry::new(g6(), D).with_filter(SourceFilter::include([g6()])),
        // :: is no catch-all.
        VxlanMdbEntry::new(Ipv6Addr::UNSPECIFIED, D),
    ];
    for b in bad {
        assert!(b.validate().is_err(), "{b} should be refused");
    }
    assert!(validate_bridge_group(g6()).is_ok());
    assert!(validate_bridge_group(ff02).is_err());
}
