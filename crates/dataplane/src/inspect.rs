//! Checks on the frames the data plane forwards: an Ethernet frame carrying IPv4 to a
//! multicast group, with sane lengths. Untrusted bytes in, a verdict out, never a panic.
//! Messages of multicast routing protocols are never forwarded: mcgate is the only
//! multicast router of its domains, and containers are hosts.

/// IP protocol number of PIM (RFC 7761 section 4.9).
pub const PROTOCOL_PIM: u8 = 103;

use core::net::Ipv4Addr;

use mcgate_wire::{ethernet, ipv4};

use crate::counters::DropReason;

/// What the data plane needs of a multicast frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McastFrame {
    /// The IPv4 source.
    pub source: Ipv4Addr,
    /// The group (IPv4 destination).
    pub group: Ipv4Addr,
    /// The frame's length without Ethernet padding: header plus the IPv4 total length.
    pub len: usize,
}

/// Checks `frame` is an Ethernet II frame carrying an IPv4 multicast packet (not IGMP,
/// which belongs to the querier) and returns its addresses and real length.
pub fn inspect(frame: &[u8]) -> Result<McastFrame, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
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
        source,
        group,
        len: ethernet::HEADER_LEN + usize::from(ip.total_len()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
        assert_eq!((m.source, m.group, m.len), (s, g, 14 + 32));
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
}
