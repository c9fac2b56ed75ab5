//! Bodies of the fuzz targets in `fuzz/` for the bytes this crate parses, kept here so
//! they build and run on stable Rust: a unit test runs each over its seed corpus
//! (kernel replies and captured frames written by `fixtures/capture.py`).
//!
//! Each function takes arbitrary bytes and parses them as the data plane does. A parser
//! must never panic; the `assert!`s are the invariants the fuzzer hunts for violations
//! of, so a panic from this module is a bug in the crate, never a property of the input.

use std::net::IpAddr;

use crate::inspect::McastFrame;
use crate::kernel::wireguard::uapi;
use crate::kernel::{filter, host_port, link_msg, mdb_msg, nl};
use crate::relay::checksum::{complete_checksum, complete_partial_udp};
use crate::relay::decide::parse_capture;
use mcgate_sys::packet::{VNET_HDR_LEN, VnetHdr};
use mcgate_wire::{checksum, ethernet, ipv4, ipv6, udp};

/// A netlink datagram of link replies (RTM_NEWLINK, any family).
pub fn netlink_link(data: &[u8]) {
    for m in nl::split_messages(data).unwrap_or_default() {
        if let Ok(link) = link_msg::parse_link(m.payload) {
            // The name is read as text whatever the bytes, and the index is the header's.
            assert_eq!(
                nl::read_u32(m.payload, 4).unwrap_or(0),
                link.ifindex,
                "{link:?}"
            );
        }
    }
}

/// A netlink datagram of multicast table dump replies (RTM_NEWMDB).
pub fn netlink_mdb(data: &[u8]) {
    for m in nl::split_messages(data).unwrap_or_default() {
        if let Ok(records) = mdb_msg::parse_dump_msg(m.payload) {
            for r in records {
                assert!(
                    r.group
                        .is_none_or(|g| !g.is_unspecified() || r.group.is_some())
                );
            }
        }
    }
}

/// A netlink datagram of acks, refusals (NLMSG_ERROR with extended-ack attributes) and
/// ends of dumps (NLMSG_DONE).
pub fn netlink_error(data: &[u8]) {
    for m in nl::split_messages(data).unwrap_or_default() {
        let ack = match m.msg_type {
            nl::NLMSG_ERROR => nl::parse_error(m.payload, m.flags),
            nl::NLMSG_DONE => nl::parse_done(m.payload, m.flags),
            _ => continue,
        };
        if let Ok(a) = ack {
            assert!(a.errno >= 0, "errno is reported positive: {a:?}");
        }
    }
}

/// A netlink datagram of tc replies (RTM_NEWQDISC, RTM_NEWTFILTER).
pub fn netlink_tc(data: &[u8]) {
    for m in nl::split_messages(data).unwrap_or_default() {
        let _ = host_port::has_filter([m.payload]);
        let index = nl::read_u32(m.payload, 4).unwrap_or(0);
        let _ = host_port::clsact_drops(index, [m.payload]);
    }
}

/// A frame as the relay's capture socket reads it: a `virtio_net_hdr`, then the frame.
/// The header's checksum offsets are the sender's kernel's, hence untrusted too.
pub fn vnet(data: &[u8]) {
    let Ok((v, m)) = parse_capture(data, false) else {
        return;
    };
    assert!(m.len <= data.len() - VNET_HDR_LEN);
    let mut frame = data
        .get(VNET_HDR_LEN..VNET_HDR_LEN + m.len)
        .unwrap_or(&[])
        .to_vec();
    if v.flags & VnetHdr::NEEDS_CSUM != 0 {
        let start = usize::from(v.csum_start);
        if complete_checksum(&mut frame, start, usize::from(v.csum_offset))
            && is_udp_at(&frame, &m, start)
            && v.csum_offset == 6
        {
            // Completed where the UDP header is: the checksum now verifies.
            assert!(udp_verifies(&frame, &m), "{frame:02x?}");
        }
    }
    let _ = complete_partial_udp(&mut frame);
}

/// Where the UDP datagram of `frame` starts and ends, and the sum of its pseudo-header:
/// IPv4, or IPv6 with UDP directly after the fixed header (as the relay's seeds are).
fn udp_of(frame: &[u8], m: &McastFrame) -> Option<(usize, usize, u16)> {
    let e = ethernet::Frame::new_checked(frame).ok()?;
    let (start, end, protocol) = match (m.source, m.group) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let ip = ipv4::Packet::new_checked(e.payload()).ok()?;
            let start = ethernet::HEADER_LEN + ip.header_len();
            (
                start,
                ethernet::HEADER_LEN + usize::from(ip.total_len()),
                ip.protocol(),
            )
        }
        _ => {
            let ip = ipv6::Packet::new_checked(e.payload()).ok()?;
            let start = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
            let end = start + usize::from(ip.payload_len());
            (start, end, ip.next_header())
        }
    };
    if protocol != ipv4::PROTOCOL_UDP || start > end {
        return None;
    }
    let len = u16::try_from(end - start).ok()?;
    let pseudo = match (m.source, m.group) {
        (IpAddr::V4(s), IpAddr::V4(g)) => checksum::pseudo_header(s, g, protocol, len),
        (IpAddr::V6(s), IpAddr::V6(g)) => {
            checksum::pseudo_header_v6(s, g, protocol, u32::from(len))
        }
        _ => return None,
    };
    Some((start, end, pseudo))
}

/// Whether the UDP header of `frame` starts at `start`, its length field consistent with
/// the IP header's.
fn is_udp_at(frame: &[u8], m: &McastFrame, start: usize) -> bool {
    udp_of(frame, m).is_some_and(|(at, end, _)| {
        at == start
            && m.len == end
            && frame.get(at..end).is_some_and(|d| {
                udp::Packet::new_checked(d).is_ok_and(|u| usize::from(u.len()) == end - at)
            })
    })
}

fn udp_verifies(frame: &[u8], m: &McastFrame) -> bool {
    udp_of(frame, m).is_some_and(|(at, end, pseudo)| {
        frame
            .get(at..end)
            .is_some_and(|d| checksum::combine(&[pseudo, checksum::data(d)]) == 0xffff)
    })
}

/// What `nft -j list counters` / `nft -j list tables` print: the filter's drop counters
/// and tables are read from it.
pub fn nft_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok((inet, bridge)) = filter::parse_drops(&text) {
        // Counts are summed, never invented: no counter, no drops.
        if !text.contains(filter::COUNTER) {
            assert_eq!((inet, bridge), (0, 0));
        }
    }
    if let Ok(tables) = filter::tables_in(&text) {
        assert!(tables.len() <= text.matches("\"table\"").count());
    }
}

/// A userspace WireGuard device's answer to a configuration request (`errno=N`).
pub fn wireguard_uapi(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(errno) = uapi::parse_answer(&text) {
        assert!(text.contains(&format!("errno={errno}")) || text.contains("errno="));
    }
}

/// A WireGuard message arriving from a peer's endpoint, opened as the relay does, and
/// the same bytes checked as the inner packet a transport message carries.
pub fn wireguard(data: &[u8]) {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Instant;

    use mcgate_domain::api::{Domain, DomainState, Peer, StreamMessage, Tunnel};
    use mcgate_domain::forwarding::{DomainView, ForwardingTable, LocalMembership};

    use crate::HostKey;
    use crate::relay::{inner, wg};

    let (local, peer_addr) = (Ipv4Addr::new(10, 255, 0, 1), Ipv4Addr::new(10, 255, 0, 2));
    if let Ok(i) = inner::check(data, peer_addr, local) {
        assert!(i.offset + i.len <= data.len(), "{i:?}");
        assert_eq!((i.src, i.dst), (peer_addr, local));
    }
    let (own, peer) = (HostKey::from_bytes([1; 32]), HostKey::from_bytes([2; 32]));
    let endpoint = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 51820);
    let host = |n: u8, key: &HostKey| Peer {
        host: format!("h{n}"),
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 4789),
        public_key: key.public_base64(),
        wireguard: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 51820),
        tunnel_address: Ipv4Addr::new(10, 255, 0, n),
        egress: Vec::new(),
    };
    let mut view = DomainView::new();
    view.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains: vec![DomainState {
            domain: Domain {
                name: "d".into(),
                vni: 1,
                igmp: Default::default(),
                static_sources: false,
                igmp_settings: Default::default(),
                subnets: vec![],
                hosts: vec![],
                tunnel: Tunnel::Wireguard,
            },
            peers: vec![host(1, &own), host(2, &peer)],
            members: vec![],
            static_members: vec![],
            static_sources: vec![],
            gateways: Vec::new(),
        }],
    });
    let table = ForwardingTable::compute(&view, "h1", &[], &LocalMembership::new());
    let mut state = wg::Wg::new(own, Instant::now());
    state.set_table(&table);
    let mut out = vec![0u8; data.len().max(wg::MIN_OUT)];
    let mut replies = 0usize;
    let opened = state.open(endpoint, data, &mut out, Instant::now(), &mut |_, m| {
        assert!(!m.is_empty());
        replies += 1;
    });
    if let Ok(Some(o)) = opened {
        assert!(o.len <= out.len());
        assert_eq!(o.peer, peer_addr);
    }
}

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    use super::*;

    /// Runs each target's body over every file of its seed corpus, and over every
    /// prefix of it (a datagram cut anywhere).
    #[test]
    fn every_target_passes_its_seed_corpus() {
        mcgate_testbed::corpus::replay_with_prefixes(&[
            ("netlink_link", netlink_link),
            ("netlink_mdb", netlink_mdb),
            ("netlink_error", netlink_error),
            ("netlink_tc", netlink_tc),
            ("vnet", vnet),
            ("nft_json", nft_json),
            ("wireguard_uapi", wireguard_uapi),
            ("wireguard", wireguard),
        ]);
    }

    /// The seeds are the kernel's own bytes, so each must get past its parser.
    #[test]
    fn seeds_parse() {
        let one = |data: &[u8]| {
            let msgs = nl::split_messages(data).expect("one whole message");
            assert_eq!(msgs.len(), 1);
            (msgs[0].msg_type, msgs[0].flags, msgs[0].payload.to_vec())
        };
        let mut vxlan = 0;
        for (path, data) in seeds("netlink_link") {
            let link =
                link_msg::parse_link(&one(&data).2).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            vxlan += usize::from(link.vxlan.is_some_and(|x| x.vni == Some(4200)));
        }
        assert!(vxlan >= 1, "the VXLAN device's seed reads as one");
        let mut groups = 0;
        let mut v6_bridge = std::collections::BTreeSet::new();
        let mut v6_vxlan = std::collections::BTreeSet::new();
        for (path, data) in seeds("netlink_mdb") {
            let r =
                mdb_msg::parse_dump_msg(&one(&data).2).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            groups += r.iter().filter(|r| r.group.is_some()).count();
            for r in r.iter().filter(|r| r.group.is_some_and(|g| g.is_ipv6())) {
                match r.to_vxlan_entry() {
                    Some(e) => v6_vxlan.insert(e.to_string()),
                    // Permanent ones: the bridge also snoops the host's own MLD reports.
                    None if r.state == mdb_msg::MDB_PERMANENT => {
                        v6_bridge.insert(format!("{:?} {:?}", r.group, r.source))
                    }
                    None => false,
                };
            }
        }
        assert!(groups >= 3, "{groups} entries");
        // The IPv6 entries capture.py programs, read back (the kernel also lists the
        // (S, G) records it derives from the INCLUDE list).
        let g = "ff3e::8000:";
        assert_eq!(
            v6_vxlan,
            [
                format!(
                    "grp {g}3 filter_mode include source_list 2001:db8::9,2001:db8::a dst 10.77.0.2"
                ),
                format!("grp {g}3 src 2001:db8::9 dst 10.77.0.2"),
                format!("grp {g}3 src 2001:db8::a dst 10.77.0.2"),
                format!("grp {g}3 src 2001:db8::b dst 10.77.0.3"),
            ]
            .into(),
        );
        assert_eq!(
            v6_bridge,
            [
                format!("Some({g}1) None"),
                format!("Some({g}2) Some(2001:db8::9)"),
                format!("Some({g}3) None"),
            ]
            .into(),
        );
        let mut refused = 0;
        for (path, data) in seeds("netlink_error") {
            let (t, flags, p) = one(&data);
            let ack = if t == nl::NLMSG_DONE {
                nl::parse_done(&p, flags)
            } else {
                nl::parse_error(&p, flags)
            };
            let ack = ack.unwrap_or_else(|e| panic!("{path:?}: {e}"));
            if ack.errno != 0 {
                assert!(ack.message.is_some(), "{path:?}: {ack:?}");
                refused += 1;
            }
        }
        assert_eq!(refused, 1);
        let (mut clsact, mut filter) = (0, 0);
        for (_, data) in seeds("netlink_tc") {
            let p = one(&data).2;
            let index = nl::read_u32(&p, 4).unwrap();
            clsact += usize::from(host_port::clsact_drops(index, [&p[..]]).is_some());
            filter += usize::from(host_port::has_filter([&p[..]]));
        }
        // One clsact; the filter dump has the priority's head and the filter itself.
        assert_eq!(clsact, 1);
        assert!(filter >= 1);
        let mut drops = (0, 0);
        for (path, data) in seeds("nft_json") {
            let text = String::from_utf8_lossy(&data);
            let d = filter::parse_drops(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            drops = (drops.0 + d.0, drops.1 + d.1);
        }
        // mcgate's own counters only (the seed also has another table's).
        assert_eq!(drops, (7, 3));
        for (path, data) in seeds("wireguard_uapi") {
            let errno = uapi::parse_answer(&String::from_utf8_lossy(&data));
            assert!(errno.is_ok(), "{path:?}: {errno:?}");
        }
        for (path, data) in seeds("vnet") {
            match parse_capture(&data, false) {
                // A fragment is forwarded with its checksum as it is.
                Ok((v, _)) if path.ends_with("seed-udp6-fragment") => {
                    assert_eq!(v.flags, 0);
                }
                Ok((v, m)) => {
                    assert_eq!(v.flags, VnetHdr::NEEDS_CSUM, "{path:?}");
                    let mut f = data[VNET_HDR_LEN..VNET_HDR_LEN + m.len].to_vec();
                    assert!(!udp_verifies(&f, &m), "partial before");
                    assert!(complete_checksum(
                        &mut f,
                        usize::from(v.csum_start),
                        usize::from(v.csum_offset)
                    ));
                    assert!(udp_verifies(&f, &m), "{path:?}");
                }
                Err(reason) => assert_eq!(reason, crate::DropReason::Igmp, "{path:?}"),
            }
        }
    }
}
