//! The VXLAN header (RFC 7348 section 5): 8 bytes after the outer UDP header (port
//! 4789), followed by the inner Ethernet frame.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use crate::{Error, Result};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The IANA UDP port of VXLAN (RFC 7348 section 5).
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid. RFC 7348 requires it set.
pub const FLAG_I: u8 = 0x08;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// Writes a VXLAN header for `vni` into the first 8 bytes of `buf`: I flag set, every
/// reserved field zero. Bits of `vni` above the 24th are dropped.
///
/// # Panics
/// If `buf` is shorter than [`HEADER_LEN`] (a caller bug).
pub fn emit_header(buf: &mut [u8], vni: u32) {
    let h = &mut buf[..HEADER_LEN];
    h[..4].copy_from_slice(&[FLAG_I, 0, 0, 0]);
    h[4..].copy_from_slice(&((vni & MAX_VNI) << 8).to_be_bytes());
}

fixed_header_view!(
    /// A read view of a VXLAN header and what follows it.
    Header,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> Header<T> {
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.header()[0]
    }

    /// Whether the I flag is set, as RFC 7348 requires of every packet.
    pub fn has_valid_flags(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VXLAN Network Identifier.
    pub fn vni(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes([0, h[4], h[5], h[6]])
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// A VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The VNI, 24 bits.
    pub vni: u32,
}

impl Repr {
    /// Reads a checked header. Without the I flag the packet is [`Error::Malformed`]
    /// (RFC 7348 section 5: the flag MUST be set); reserved bits are ignored, as the
    /// RFC asks of receivers.
    pub fn parse<T: AsRef<[u8]>>(header: &Header<T>) -> Result<Repr> {
        if !header.has_valid_flags() {
            return Err(Error::Malformed);
        }
        Ok(Repr { vni: header.vni() })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 8 bytes of `buf` (see [`emit_header`]).
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`] (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) {
        emit_header(buf, self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ethernet, ipv4, test_util::hex, udp};
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn emit_parse_round_trip(vni in 0u32..=MAX_VNI) {
            let repr = Repr { vni };
            let mut buf = [0u8; HEADER_LEN];
            repr.emit(&mut buf);
            prop_assert_eq!(Repr::parse(&Header::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            crate::fuzzing::vxlan(&bytes);
        }
    }

    #[test]
    fn flags_and_reserved_bits() {
        let mut h = [0u8; 8];
        emit_header(&mut h, 0x0123_4567);
        assert_eq!(h, [0x08, 0, 0, 0, 0x23, 0x45, 0x67, 0]);
        h[7] = 0xff; // reserved: ignored
        h[1] = 0xff;
        let v = Header::new_checked(&h[..]).unwrap();
        assert_eq!(Repr::parse(&v), Ok(Repr { vni: 0x23_4567 }));
        h[0] = 0x00;
        let v = Header::new_checked(&h[..]).unwrap();
        assert_eq!(Repr::parse(&v), Err(Error::Malformed));
        assert_eq!(Header::new_checked(&h[..7]), Err(Error::Truncated));
    }

    /// Golden bytes: a Linux VXLAN device (VNI 42) encapsulating one multicast UDP
    /// datagram to 233.252.0.5:5001 (fixtures/capture.sh). Every layer parses, and the
    /// header re-emits byte for byte.
    #[test]
    fn golden_kernel_vxlan() {
        let frame = hex(include_str!("../fixtures/vxlan-udp-multicast.eth.hex"));
        let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let outer = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(outer.dst_port(), UDP_PORT);
        let vx = Header::new_checked(outer.payload()).unwrap();
        let repr = Repr::parse(&vx).unwrap();
        assert_eq!(repr, Repr { vni: 42 });
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut out);
        assert_eq!(out[..], outer.payload()[..HEADER_LEN]);

        // The inner frame: to the group's MAC, IPv4, TTL 1, UDP without checksum.
        let group = Ipv4Addr::new(233, 252, 0, 5);
        let inner = ethernet::Frame::new_checked(vx.payload()).unwrap();
        assert_eq!(inner.dst(), ethernet::multicast_mac(group));
        assert_eq!(inner.ethertype(), ethernet::ETHERTYPE_IPV4);
        let inner_ip = ipv4::Packet::new_checked(inner.payload()).unwrap();
        let inner_repr = ipv4::Repr::parse(&inner_ip).unwrap();
        assert_eq!(inner_repr.dst, group);
        assert_eq!(inner_repr.ttl, 1);
        let d = udp::Packet::new_checked(inner_ip.payload()).unwrap();
        let d_repr = udp::Repr::parse(&d, inner_repr.src, inner_repr.dst).unwrap();
        assert_eq!(d_repr.dst_port, 5001);
        assert_eq!(d.checksum(), 0);
        assert_eq!(d.payload(), b"mcgate vxlan fixture\n");
    }
}
