//! Checks on the frames the data plane forwards: an Ethernet frame carrying IPv4 or IPv6
//! to a multicast group, with sane lengths. Untrusted bytes in, a verdict out, never a
//! panic. Messages of multicast routing and membership protocols are never forwarded:
//! mcgate is the only multicast router of its domains (and the IGMP and MLD querier of
//! its links), and containers are hosts.

/// IP protocol number of PIM (RFC 7761 section 4.9), in IPv4 and IPv6 alike.
pub const PROTOCOL_PIM: u8 = 103;

use core::net::IpAddr;

use mcgate_wire::icmpv6::msg_type as types;
use mcgate_wire::{ethernet, ipv4, ipv6};

use crate::counters::DropReason;

/// What the data plane needs of a multicast frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McastFrame {
    /// The IP source (of the group's family).
    pub source: IpAddr,
    /// The group (IP destination).
    pub group: IpAddr,
    /// The frame's length without Ethernet padding: the Ethernet header plus the IPv4
    /// total length, or plus 40 and the IPv6 payload length.
    pub len: usize,
}

/// Checks `frame` is an Ethernet II frame carrying an IPv4 or IPv6 multicast packet that
/// the data plane may forward, and returns its addresses and real length. IGMP and MLD
/// belong to the querier ([`DropReason::Igmp`]), PIM and Multicast Router Discovery to
/// no one ([`DropReason::RouterMessage`]).
pub fn inspect(frame: &[u8]) -> Result<McastFrame, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => inspect_v4(eth.payload()),
        ethernet::ETHERTYPE_IPV6 => {
            if !ethernet::is_ipv6_multicast_mac(&eth.dst()) {
                return Err(DropReason::NotMulticast);
            }
            inspect_v6(eth.payload())
        }
        _ => Err(DropReason::NotIpv4),
    }
}

fn inspect_v4(packet: &[u8]) -> Result<McastFrame, DropReason> {
    let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    let group = ip.dst_addr();
    if !group.is_multicast() {
        return Err(DropReason::NotMulticast);
    }
    let source = ip.src_addr();
    if source.is_multicast() || source.is_broadcast() {
        return Err(DropReason::Malformed);
    }
    match ip.protocol() {
        ipv4::PROTOCOL_IGMP => return Err(DropReason::Igmp),
        PROTOCOL_PIM => return Err(DropReason::RouterMessage),
        _ => {}
    }
    Ok(McastFrame {
        source: IpAddr::V4(source),
        group: IpAddr::V4(group),
        len: ethernet::HEADER_LEN + usize::from(ip.total_len()),
    })
}

/// ICMPv6 types of Multicast Router Discovery (RFC 4286 section 3): advertisement,
/// solicitation, termination.
const MRD_TYPES: [u8; 3] = [151, 152, 153];

/// IPv6 (RFC 8200): the extension headers are walked to the upper layer; a Fragment
/// header ends the walk and the fragment is forwarded as it is (group and source are in
/// the fixed header, and MLD is never fragmented).
fn inspect_v6(packet: &[u8]) -> Result<McastFrame, DropReason> {
    let ip = ipv6::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    let group = ip.dst_addr();
    if !group.is_multicast() {
        return Err(DropReason::NotMulticast);
    }
    let source = ip.src_addr();
    if source.is_multicast() {
        return Err(DropReason::Malformed);
    }
    let upper = ip.upper_layer().map_err(|_| DropReason::Malformed)?;
    match upper.protocol {
        ipv6::NEXT_HEADER_ICMPV6 => {
            let t = *upper.payload.first().ok_or(DropReason::Malformed)?;
            if matches!(
                t,
                types::MLD_QUERY | types::MLD_REPORT_V1 | types::MLD_DONE | types::MLD_REPORT_V2
            ) {
                return Err(DropReason::Igmp);
            }
            if MRD_TYPES.contains(&t) {
                return Err(DropReason::RouterMessage);
            }
        }
        PROTOCOL_PIM => return Err(DropReason::RouterMessage),
        _ => {}
    }
    Ok(McastFrame {
        source: IpAddr::V6(source),
        group: IpAddr::V6(group),
        len: ethernet::HEADER_LEN + ipv6::HEADER_LEN + usize::from(ip.payload_len()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    /// An Ethernet + IPv4 + UDP frame from `src` to `group` with `payload` bytes and
    /// `pad` bytes of Ethernet padding after the IP packet.
    pub(crate) fn frame(src: Ipv4Addr, group: Ipv4Addr, payload: usize, pad: usize) -> Vec<u8> {
        let total = 20 + 8 + payload;
        let mut f = Vec::new();
        f.extend_from_slice(&ethernet::multicast_mac(group));
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            1,
            17,
            0,
            0,
        ]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&group.octets());
        f.extend_from_slice(&[
            0x30,
            0x39,
            0x13,
            0x88,
            ((8 + payload) >> 8) as u8,
            (8 + payload) as u8,
            0,
            0,
        ]);
        f.extend(std::iter::repeat_n(0xab, payload + pad));
        f
    }

    #[test]
    fn accepts_multicast_udp_and_trims_padding() {
        let g = Ipv4Addr::new(233, 252, 0, 5);
        let s = Ipv4Addr::new(10, 1, 0, 2);
        let f = frame(s, g, 4, 14);
        let m = inspect(&f).unwrap();
        assert_eq!((m.source, m.group, m.len), (s.into(), g.into(), 14 + 32));
    }

    #[test]
    fn rejects_what_it_must_not_forward() {
        let g = Ipv4Addr::new(233, 252, 0, 5);
        let s = Ipv4Addr::new(10, 1, 0, 2);
        let good = frame(s, g, 4, 0);
        assert_eq!(inspect(&good[..20]), Err(DropReason::Malformed));
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(inspect(&arp), Err(DropReason::NotIpv4));
        assert_eq!(
            inspect(&frame(s, Ipv4Addr::new(10, 1, 0, 3), 4, 0)),
            Err(DropReason::NotMulticast)
        );
        let mut igmp = good.clone();
        igmp[23] = 2;
        assert_eq!(inspect(&igmp), Err(DropReason::Igmp));
        let mut pim = good.clone();
        pim[23] = PROTOCOL_PIM;
        assert_eq!(inspect(&pim), Err(DropReason::RouterMessage));
        let mut long = good.clone();
        long[16] = 0x40; // total length past the buffer
        assert_eq!(inspect(&long), Err(DropReason::Malformed));
        // No input panics.
        for n in 0..good.len() {
            let _ = inspect(&good[..n]);
        }
    }

    /// An Ethernet + IPv6 frame from `src` to `group`: `ext` (extension headers, their
    /// first Next Header being `first`), then `upper` (protocol `last`), then `pad` bytes
    /// of Ethernet padding. Built with the wire crate's `ipv6::Repr`.
    pub(crate) fn frame6_with(
        src: Ipv6Addr,
        group: Ipv6Addr,
        first: u8,
        ext: &[u8],
        upper: &[u8],
        pad: usize,
    ) -> Vec<u8> {
        let ip = ipv6::Repr {
            src,
            dst: group,
            next_header: first,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            payload_len: ext.len() + upper.len(),
            router_alert: None,
        };
        let mut f = vec![0u8; ethernet::HEADER_LEN + ip.buffer_len()];
        let eth = ethernet::Repr {
            dst: ethernet::ipv6_multicast_mac(group),
            src: [0x02, 0, 0, 0, 0, 1],
            ethertype: ethernet::ETHERTYPE_IPV6,
        };
        eth.emit(&mut f);
        ip.emit(&mut f[ethernet::HEADER_LEN..]);
        let at = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
        f[at..at + ext.len()].copy_from_slice(ext);
        f[at + ext.len()..].copy_from_slice(upper);
        f.extend(std::iter::repeat_n(0, pad));
        f
    }

    /// A UDP datagram of `payload` bytes (checksum left 0: nothing here verifies it).
    pub(crate) fn udp6(payload: usize) -> Vec<u8> {
        let len = 8 + payload;
        let mut u = vec![0x30, 0x39, 0x13, 0x88, (len >> 8) as u8, len as u8, 0, 0];
        u.extend(std::iter::repeat_n(0xab, payload));
        u
    }

    /// An Ethernet + IPv6 + UDP frame from `src` to `group` with `payload` bytes.
    pub(crate) fn frame6(src: Ipv6Addr, group: Ipv6Addr, payload: usize) -> Vec<u8> {
        frame6_with(src, group, ipv6::NEXT_HEADER_UDP, &[], &udp6(payload), 0)
    }

    /// An MLD message of `msg_type` (its body zeroes) from `src` to `group`, after a
    /// Hop-by-Hop Router Alert as hosts send it.
    pub(crate) fn mld6(src: Ipv6Addr, group: Ipv6Addr, msg_type: u8) -> Vec<u8> {
        let hop_by_hop = [ipv6::NEXT_HEADER_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
        let mut icmp = vec![0u8; 24];
        icmp[0] = msg_type;
        frame6_with(
            src,
            group,
            ipv6::NEXT_HEADER_HOP_BY_HOP,
            &hop_by_hop,
            &icmp,
            0,
        )
    }

    pub(crate) const G6: Ipv6Addr = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 1);
    pub(crate) const S6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11);

    #[test]
    fn accepts_ipv6_multicast_udp_and_trims_padding() {
        let f = frame6_with(G6, G6, ipv6::NEXT_HEADER_UDP, &[], &udp6(4), 20);
        assert_eq!(
            inspect(&f),
            Err(DropReason::Malformed),
            "a multicast source"
        );
        let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_UDP, &[], &udp6(4), 20);
        let m = inspect(&f).unwrap();
        assert_eq!(
            (m.source, m.group, m.len),
            (S6.into(), G6.into(), 14 + 40 + 12)
        );
        // Destination Options and Routing headers are walked over.
        let dest_opts = [43, 0, 1, 4, 0, 0, 0, 0];
        let routing = [17, 0, 0, 0, 0, 0, 0, 0];
        let ext = [dest_opts, routing].concat();
        let f = frame6_with(S6, G6, 60, &ext, &udp6(4), 0);
        assert_eq!(inspect(&f).map(|m| m.len), Ok(14 + 40 + 16 + 12));
    }

    #[test]
    fn a_fragment_is_forwarded_as_it_is() {
        // Fragment header (RFC 8200 section 4.5): offset 0 with M set, then UDP.
        let fragment = [17, 0, 0, 1, 0, 0, 0, 7];
        let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_FRAGMENT, &fragment, &udp6(64), 0);
        let m = inspect(&f).unwrap();
        assert_eq!((m.group, m.len), (G6.into(), f.len()));
        // A later fragment: no upper-layer header at all after it.
        let later = [17, 0, 0, 0x48, 0, 0, 0, 7];
        let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_FRAGMENT, &later, &[0xab; 40], 0);
        assert_eq!(inspect(&f).map(|m| m.source), Ok(S6.into()));
    }

    #[test]
    fn rejects_ipv6_it_must_not_forward() {
        for t in [130, 131, 132, 143] {
            assert_eq!(inspect(&mld6(S6, G6, t)), Err(DropReason::Igmp), "type {t}");
        }
        // ICMPv6 that is not MLD is forwarded like any other payload.
        let echo = [128u8, 0, 0, 0, 0, 1, 0, 1];
        let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_ICMPV6, &[], &echo, 0);
        assert!(inspect(&f).is_ok());
        for t in MRD_TYPES {
            let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_ICMPV6, &[], &[t, 0, 0, 0], 0);
            assert_eq!(inspect(&f), Err(DropReason::RouterMessage));
        }
        let f = frame6_with(S6, G6, PROTOCOL_PIM, &[], &[0x20; 8], 0);
        assert_eq!(inspect(&f), Err(DropReason::RouterMessage));
        let f = frame6_with(S6, G6, ipv6::NEXT_HEADER_ICMPV6, &[], &[], 0);
        assert_eq!(
            inspect(&f),
            Err(DropReason::Malformed),
            "ICMPv6 without a type"
        );
        // Unicast, by address or by MAC.
        let host = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let mut f = frame6(S6, host, 4);
        f[0..2].copy_from_slice(&[0x33, 0x33]);
        assert_eq!(inspect(&f), Err(DropReason::NotMulticast));
        let mut f = frame6(S6, G6, 4);
        f[0] = 0x02;
        assert_eq!(inspect(&f), Err(DropReason::NotMulticast));
        // A Hop-by-Hop header that is not first, an option that must not be skipped, and
        // a payload length past the buffer.
        let hbh = [17, 0, 1, 4, 0, 0, 0, 0];
        let dest_then_hbh = [[0, 0, 1, 4, 0, 0, 0, 0], hbh].concat();
        let f = frame6_with(S6, G6, 60, &dest_then_hbh, &udp6(4), 0);
        assert_eq!(inspect(&f), Err(DropReason::Malformed));
        let discard = [17, 0, 0x80, 4, 0, 0, 0, 0];
        let f = frame6_with(S6, G6, 0, &discard, &udp6(4), 0);
        assert_eq!(inspect(&f), Err(DropReason::Malformed));
        let mut long = frame6(S6, G6, 4);
        long[18] = 0x40;
        assert_eq!(inspect(&long), Err(DropReason::Malformed));
        let good = mld6(S6, G6, 143);
        for n in 0..good.len() {
            let _ = inspect(&good[..n]);
        }
    }
}
