//! UDP datagrams (RFC 768) over IPv4, the carrier of VXLAN (RFC 7348 section 5) and of
//! the multicast data mcgate relays.

use core::net::Ipv4Addr;

use crate::{Error, Result, checksum, ipv4::PROTOCOL_UDP};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

view!(
    /// A read (and, over a mutable buffer, write) view of a UDP datagram.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds a header and that the length field is at
    /// least 8 and within the buffer. Bytes past the length field are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        let Some(h) = b.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn be16(&self, i: usize) -> u16 {
        let b = self.buffer.as_ref();
        // new_checked guarantees the 8 header bytes.
        u16::from_be_bytes([
            b.get(i).copied().unwrap_or(0),
            b.get(i + 1).copied().unwrap_or(0),
        ])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.be16(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.be16(2)
    }

    /// Length field: header plus payload.
    pub fn len(&self) -> u16 {
        self.be16(4)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Checksum field (0: the sender computed none).
    pub fn checksum(&self) -> u16 {
        self.be16(6)
    }

    /// The datagram up to its length field.
    fn datagram(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(..usize::from(self.len()))
            .unwrap_or(&[])
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Whether the checksum verifies against the IPv4 pseudo-header. A zero checksum
    /// means the sender computed none, which RFC 768 allows over IPv4: it verifies.
    pub fn verify_checksum(&self, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let ph = checksum::pseudo_header(src_ip, dst_ip, PROTOCOL_UDP, self.len());
        checksum::combine(&[ph, checksum::data(self.datagram())]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes and writes the checksum over the pseudo-header, header and payload.
    pub fn fill_checksum(&mut self, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) {
        let len = self.len();
        let b = self.buffer.as_mut();
        if let Some(d) = b.get_mut(..usize::from(len)) {
            d[6] = 0;
            d[7] = 0;
            let sum = !checksum::combine(&[
                checksum::pseudo_header(src_ip, dst_ip, PROTOCOL_UDP, len),
                checksum::data(d),
            ]);
            // RFC 768: a computed zero is sent as all ones, zero meaning "no checksum".
            let sum = if sum == 0 { 0xffff } else { sum };
            d[6..8].copy_from_slice(&sum.to_be_bytes());
        }
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..len)
            .unwrap_or(&mut [])
    }
}

/// The header fields of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked datagram; the checksum must verify against the pseudo-header
    /// (see [`Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
    ) -> Result<Repr> {
        if !packet.verify_checksum(src_ip, dst_ip) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// Length of the datagram: header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes header and `payload` into `buf` and computes the checksum over the IPv4
    /// pseudo-header of `src_ip` and `dst_ip`.
    ///
    /// # Panics
    /// If `payload.len()` differs from `payload_len`, if `buf` is shorter than
    /// [`Repr::buffer_len`], or if the datagram is longer than 65535 bytes (caller bugs).
    pub fn emit(&self, buf: &mut [u8], src_ip: Ipv4Addr, dst_ip: Ipv4Addr, payload: &[u8]) {
        assert_eq!(
            payload.len(),
            self.payload_len,
            "payload_len and payload differ"
        );
        let len = u16::try_from(self.buffer_len()).expect("UDP datagram over 65535 bytes");
        let d = &mut buf[..usize::from(len)];
        d[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        d[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        d[4..6].copy_from_slice(&len.to_be_bytes());
        d[HEADER_LEN..].copy_from_slice(payload);
        if let Ok(mut p) = Packet::new_checked(d) {
            p.fill_checksum(src_ip, dst_ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ipv4, test_util::hex};
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

    proptest! {
        #[test]
        fn emit_parse_round_trip(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, src, dst, &payload);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.checksum() != 0);
            prop_assert_eq!(Repr::parse(&p, src, dst).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            crate::fuzzing::udp(&bytes);
        }
    }

    #[test]
    fn zero_checksum_means_none_and_corruption_is_caught() {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 3,
        };
        let mut buf = [0u8; 11];
        repr.emit(&mut buf, SRC, DST, b"abc");
        buf[8] ^= 1;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST), Err(Error::Checksum));
        buf[6] = 0;
        buf[7] = 0;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(Repr::parse(&p, SRC, DST).is_ok());
        assert_eq!(Packet::new_checked(&buf[..7]), Err(Error::Truncated));
        buf[5] = 7;
        assert_eq!(Packet::new_checked(&buf[..]), Err(Error::Malformed));
        buf[5] = 12;
        assert_eq!(Packet::new_checked(&buf[..]), Err(Error::Truncated));
    }

    /// Golden bytes: the outer UDP of the kernel's VXLAN packet (fixtures/capture.sh),
    /// destination port 4789, a kernel-computed checksum; re-emitting gives the same bytes.
    #[test]
    fn golden_kernel_vxlan_udp() {
        let ip = hex(include_str!("../fixtures/vxlan-udp-multicast.ipv4.hex"));
        let ip = ipv4::Packet::new_checked(&ip[..]).unwrap();
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.dst_port(), 4789);
        assert_eq!(usize::from(p.len()), ip.payload().len());
        let repr = Repr::parse(&p, ip.src_addr(), ip.dst_addr()).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out, ip.src_addr(), ip.dst_addr(), p.payload());
        if p.checksum() == 0 {
            // The kernel sent no checksum: only the checksum field may differ.
            out[6] = 0;
            out[7] = 0;
        }
        assert_eq!(out, ip.payload());
    }
}
