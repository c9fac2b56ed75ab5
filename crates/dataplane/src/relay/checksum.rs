//! Completing transport checksums that a sender's checksum offload left partial.
//!
//! A task's kernel may hand a frame to its veth with the UDP checksum field holding only
//! the pseudo-header sum (`CHECKSUM_PARTIAL`): the capture socket says so in the frame's
//! `virtio_net_hdr`. A kernel VXLAN peer can tunnel such frames too, and the offload
//! state does not survive the tunnel. Either way the receiving task would drop the
//! copy, so the relay finishes the sum before forwarding.

use mcgate_wire::{checksum, ethernet, ipv4, udp};

/// If `frame` (Ethernet + IPv4 + UDP) carries a UDP checksum left partial by a sender's
/// checksum offload (the field holds just the pseudo-header sum, RFC 768), completes it
/// in place and returns true. A complete checksum that happens to equal the
/// pseudo-header sum is left as it was (completing it gives the same value).
pub fn complete_partial_udp(frame: &mut [u8]) -> bool {
    let Ok(mut eth) = ethernet::Frame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return false;
    }
    let Ok(mut ip) = ipv4::Packet::new_checked(eth.payload_mut()) else {
        return false;
    };
    if ip.protocol() != ipv4::PROTOCOL_UDP {
        return false;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(mut datagram) = udp::Packet::new_checked(ip.payload_mut()) else {
        return false;
    };
    let field = datagram.checksum();
    if field == 0 || field != checksum::pseudo_header(src, dst, ipv4::PROTOCOL_UDP, datagram.len())
    {
        return false;
    }
    datagram.fill_checksum(src, dst);
    true
}

/// Completes a transport checksum left partial by checksum offload, as a NIC would:
/// the field at `start + offset` (the `virtio_net_hdr`'s `csum_start` and `csum_offset`)
/// holds the pseudo-header sum, so the complement of the sum from `start` to the end of
/// `frame` is the checksum. Returns false when the offsets do not fit the frame.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start.saturating_add(offset);
    if field.saturating_add(2) > frame.len() || start >= frame.len() {
        return false;
    }
    let Some(range) = frame.get(start..) else {
        return false;
    };
    let mut sum = checksum::checksum(range);
    // RFC 768: a computed UDP checksum of zero is sent as all ones.
    if sum == 0 {
        sum = 0xffff;
    }
    if let Some(dst) = frame.get_mut(field..field + 2) {
        dst.copy_from_slice(&sum.to_be_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::tests::frame;
    use std::net::Ipv4Addr;

    fn verifies(f: &[u8], src: Ipv4Addr, group: Ipv4Addr) -> bool {
        let eth = ethernet::Frame::new_checked(f).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let d = udp::Packet::new_checked(ip.payload()).unwrap();
        d.checksum() != 0 && d.verify_checksum(src, group)
    }

    #[test]
    fn completes_a_partial_checksum_from_the_tunnel_and_leaves_full_ones() {
        let src = Ipv4Addr::new(10, 1, 0, 2);
        let group = Ipv4Addr::new(233, 252, 0, 5);
        let mut f = frame(src, group, 9, 0);
        let partial = checksum::pseudo_header(src, group, 17, 8 + 9);
        f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&partial.to_be_bytes());
        assert!(!verifies(&f, src, group));
        assert!(complete_partial_udp(&mut f));
        assert!(verifies(&f, src, group));
        let done = f.clone();
        // Complete now: left alone.
        assert!(!complete_partial_udp(&mut f));
        assert_eq!(f, done);
        // Not UDP, or no checksum at all: left alone.
        let mut none = frame(src, group, 9, 0);
        assert!(!complete_partial_udp(&mut none));
        let mut other = f.clone();
        other[14 + 9] = 6;
        assert!(!complete_partial_udp(&mut other));
        // No input panics.
        for n in 0..f.len() {
            let mut cut = f[..n].to_vec();
            let _ = complete_partial_udp(&mut cut);
        }
    }

    #[test]
    fn completes_a_partial_udp_checksum_at_the_offsets_given() {
        let src = Ipv4Addr::new(10, 1, 0, 2);
        let group = Ipv4Addr::new(233, 252, 0, 5);
        let mut f = frame(src, group, 7, 0);
        // What a kernel with checksum offload leaves: the pseudo-header sum.
        let partial = checksum::pseudo_header(src, group, 17, 8 + 7);
        f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&partial.to_be_bytes());
        assert!(complete_checksum(&mut f, 14 + 20, 6));
        assert!(verifies(&f, src, group));
        assert!(!complete_checksum(&mut f, 14 + 20, 100));
        assert!(!complete_checksum(&mut f, usize::MAX, 6));
    }
}
