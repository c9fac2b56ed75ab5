//! ICMPv6 messages (RFC 4443): the common 4-byte header, the message type numbers mcgate
//! knows, and the checksum over the IPv6 pseudo-header (RFC 4443 section 2.3, RFC 8200
//! section 8.1). The MLD messages carried in ICMPv6 are parsed by [`crate::mld`].
//!
//! Unlike IGMP's, the ICMPv6 checksum covers the IPv6 source and destination, so every
//! check and fill here takes them. The view never does I/O and never panics on input.

use core::net::Ipv6Addr;

use crate::checksum;
use crate::ipv6::NEXT_HEADER_ICMPV6;

/// Length of the common header: type, code, checksum.
pub const HEADER_LEN: usize = 4;

/// ICMPv6 message type numbers (RFC 4443 section 2.1, RFC 2710 section 3, RFC 3810
/// section 5).
pub mod msg_type {
    /// Destination Unreachable (RFC 4443 section 3.1).
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet Too Big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request (RFC 4443 section 4.1).
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Multicast Listener Query, MLDv1 and MLDv2 (RFC 2710 section 3.6, RFC 3810
    /// section 5.1).
    pub const MLD_QUERY: u8 = 130;
    /// Version 1 Multicast Listener Report (RFC 2710).
    pub const MLD_REPORT_V1: u8 = 131;
    /// Multicast Listener Done (RFC 2710).
    pub const MLD_DONE: u8 = 132;
    /// Version 2 Multicast Listener Report (RFC 3810 section 5.2).
    pub const MLD_REPORT_V2: u8 = 143;

    /// Whether `t` is an error message (types 0 to 127, RFC 4443 section 2.1).
    pub fn is_error(t: u8) -> bool {
        t < 128
    }
}

fixed_header_view!(
    /// A read (and, over a mutable buffer, write) view of an ICMPv6 message: the whole
    /// upper-layer payload of its IPv6 packet.
    Packet,
    HEADER_LEN
);

/// The checksum to write into an ICMPv6 message `msg` (whose checksum field is zero)
/// from `src` to `dst`: the pseudo-header with the message length and Next Header 58.
/// A message longer than 4 GiB cannot exist; its length saturates.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    !sum(src, dst, msg)
}

fn sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    checksum::combine(&[
        checksum::pseudo_header_v6(src, dst, NEXT_HEADER_ICMPV6, len),
        checksum::data(msg),
    ])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The message type (see [`msg_type`]).
    pub fn msg_type(&self) -> u8 {
        self.header()[0]
    }

    /// The code.
    pub fn code(&self) -> u8 {
        self.header()[1]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[2], h[3]])
    }

    /// The message body: everything after the 4-byte header.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Whether the checksum over the pseudo-header of `src` and `dst` and the whole
    /// message verifies.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        sum(src, dst, self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and writes the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        b[2..4].fill(0);
        let sum = checksum(src, dst, b);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::test_util::{MLD_FIXTURES, hex};

    fn addrs(ip: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
        let a = |i: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip[i..i + 16]).unwrap());
        (a(8), a(24))
    }

    #[test]
    fn short_messages_are_truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&[0u8; 8][..n]), Err(Error::Truncated));
        }
        let p = Packet::new_checked(&[128u8, 0, 0, 0][..]).unwrap();
        assert!(p.body().is_empty());
        assert!(!msg_type::is_error(p.msg_type()) && msg_type::is_error(1));
    }

    /// Golden bytes: the checksum of every kernel MLD message verifies over its own
    /// addresses, not over others, and filling it again gives the same bytes.
    #[test]
    fn golden_kernel_checksums() {
        for (name, _, ip, icmp) in MLD_FIXTURES {
            let (src, dst) = addrs(&hex(ip));
            let bytes = hex(icmp);
            let p = Packet::new_checked(&bytes[..]).unwrap();
            assert!(p.verify_checksum(src, dst), "{name}");
            assert!(!p.verify_checksum(src, src), "{name}");
            assert!(!p.verify_checksum(src, Ipv6Addr::UNSPECIFIED), "{name}");
            assert_eq!(p.code(), 0, "{name}");
            let mut copy = bytes.clone();
            copy[2..4].copy_from_slice(&[0x12, 0x34]);
            let mut q = Packet::new_checked(&mut copy[..]).unwrap();
            q.fill_checksum(src, dst);
            assert_eq!(copy, bytes, "{name}");
        }
    }
}
