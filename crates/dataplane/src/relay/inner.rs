//! The inner packet of a WireGuard transport message between two hosts' tunnel
//! addresses: IPv4 (RFC 791) + UDP (RFC 768) to port 4789, carrying the unchanged VXLAN
//! packet (RFC 7348). It is what a Linux VXLAN device routed over a WireGuard device
//! sends, so userspace relays and kernel data planes interoperate. No I/O, no clock.
//!
//! The UDP checksum is 0 (RFC 768: none; allowed over IPv4, and what Linux VXLAN sends by
//! default): the WireGuard AEAD tag already covers every byte.

use core::net::Ipv4Addr;

use mcgate_domain::api::VXLAN_PORT;
use mcgate_wire::{ipv4, udp};

use crate::counters::DropReason;

/// Bytes of the inner IPv4 (20, no options) and UDP (8) headers.
pub const INNER_HEADER_LEN: usize = 20 + 8;
/// TTL of the inner packet: it crosses one hop, the tunnel.
const INNER_TTL: u8 = 64;

/// Writes the inner IPv4 + UDP headers for a VXLAN packet of `vxlan_len` bytes from
/// tunnel address `src` to `dst`. `sport` spreads flows the way a VXLAN device does
/// (RFC 7348 section 5: a hash of the inner frame). Returns `None` when the packet
/// would exceed IPv4's 65535 bytes.
pub fn emit_header(
    buf: &mut [u8; INNER_HEADER_LEN],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    vxlan_len: usize,
) -> Option<()> {
    let udp_len = u16::try_from(8 + vxlan_len).ok()?;
    let repr = ipv4::Repr {
        src,
        dst,
        protocol: ipv4::PROTOCOL_UDP,
        ttl: INNER_TTL,
        tos: 0,
        payload_len: usize::from(udp_len),
        router_alert: false,
        dont_frag: true,
    };
    if repr.buffer_len() > usize::from(u16::MAX) {
        return None;
    }
    let (ip, u) = buf.split_at_mut(20);
    repr.emit(ip);
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
    u[4..6].copy_from_slice(&udp_len.to_be_bytes());
    u[6..8].copy_from_slice(&[0, 0]);
    Some(())
}

/// A checked inner packet: its tunnel addresses and where the VXLAN packet lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// Inner source: the sending host's tunnel address.
    pub src: Ipv4Addr,
    /// Inner destination: this host's tunnel address.
    pub dst: Ipv4Addr,
    /// Offset of the VXLAN packet in the inner packet.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

/// Checks a decrypted inner packet from the peer whose tunnel address is `peer` to
/// this host's `local`: IPv4 with a valid header checksum, not a fragment, UDP to port
/// 4789, lengths that agree, from exactly `peer` and to exactly `local` (WireGuard's
/// cryptokey routing: a peer may only speak as its own address).
pub fn check(packet: &[u8], peer: Ipv4Addr, local: Ipv4Addr) -> Result<Inner, DropReason> {
    let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
    let repr = ipv4::Repr::parse(&ip).map_err(|_| DropReason::Malformed)?;
    if repr.src != peer || repr.dst != local {
        return Err(DropReason::WrongInnerSource);
    }
    if repr.protocol != ipv4::PROTOCOL_UDP {
        return Err(DropReason::WrongInnerSource);
    }
    let u = udp::Packet::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
    if u.dst_port() != VXLAN_PORT {
        return Err(DropReason::WrongInnerSource);
    }
    let header = ip.header_len() + 8;
    Ok(Inner {
        src: repr.src,
        dst: repr.dst,
        offset: header,
        len: u.payload().len(),
    })
}

/// The UDP source port for an inner frame: a hash of its Ethernet and IP addresses,
/// in the dynamic range (RFC 6335), so one flow keeps one port.
pub fn source_port(frame: &[u8]) -> u16 {
    // Destination and source MAC, then the IPv4 or IPv6 source and destination.
    let addresses = if frame.get(12..14) == Some(&[0x86, 0xdd]) {
        22..54
    } else {
        26..34
    };
    let mut h: u32 = 0x811c_9dc5;
    for range in [0..12, addresses] {
        for &b in frame.get(range).unwrap_or(&[]) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    49152 + (h % 16384) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);

    fn packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let mut h = [0u8; INNER_HEADER_LEN];
        emit_header(&mut h, src, dst, 50000, payload.len()).unwrap();
        let mut p = h.to_vec();
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn round_trip() {
        let vxlan = [0x08, 0, 0, 0, 0, 0, 42, 0, 1, 2, 3];
        let p = packet(A, B, &vxlan);
        let inner = check(&p, A, B).unwrap();
        assert_eq!(&p[inner.offset..inner.offset + inner.len], &vxlan);
        assert_eq!(p[9], ipv4::PROTOCOL_UDP);
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), VXLAN_PORT);
    }

    #[test]
    fn cryptokey_routing_and_shape_are_enforced() {
        let p = packet(A, B, &[0; 16]);
        // Another peer's address, or not to us.
        assert_eq!(check(&p, B, B), Err(DropReason::WrongInnerSource));
        assert_eq!(check(&p, A, A), Err(DropReason::WrongInnerSource));
        // Not UDP.
        let mut q = p.clone();
        q[9] = 6;
        q[10..12].fill(0);
        let sum = mcgate_wire::checksum::checksum(&q[..20]);
        q[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(check(&q, A, B), Err(DropReason::WrongInnerSource));
        // Not port 4789.
        let mut q = p.clone();
        q[22..24].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(check(&q, A, B), Err(DropReason::WrongInnerSource));
        // A bad header checksum, truncations and garbage.
        let mut q = p.clone();
        q[12] ^= 1;
        assert_eq!(check(&q, A, B), Err(DropReason::Malformed));
        for n in 0..p.len() - 16 {
            assert!(check(&p[..n], A, B).is_err(), "{n} bytes");
        }
        assert!(check(&[0xff; 64], A, B).is_err());
    }

    #[test]
    fn ports_are_stable_and_dynamic() {
        let f = [7u8; 64];
        assert_eq!(source_port(&f), source_port(&f));
        assert!(source_port(&f) >= 49152);
        assert!(source_port(&[]) >= 49152);
    }
}
