//! Ethernet II frames (IEEE 802.3 with an EtherType) and the IPv4 (RFC 1112 section 6.4)
//! and IPv6 (RFC 2464 section 7) multicast MAC mappings.
//!
//! Frames have no FCS here: Linux delivers and takes frames without it.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::Result;

/// Length of the Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The MAC address an IPv4 multicast group maps to (RFC 1112 section 6.4): 01:00:5e
/// followed by the low 23 bits of the group address.
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Whether `mac` lies in the range IPv4 multicast maps to (01:00:5e:00:00:00 to
/// 01:00:5e:7f:ff:ff).
pub fn is_ipv4_multicast_mac(mac: &[u8; 6]) -> bool {
    mac[0] == 0x01 && mac[1] == 0x00 && mac[2] == 0x5e && mac[3] & 0x80 == 0
}

/// The MAC address an IPv6 multicast address maps to (RFC 2464 section 7): 33:33
/// followed by the last four bytes of the address (ff02::1 gives 33:33:00:00:00:01).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Whether `mac` lies in the range IPv6 multicast maps to (33:33:00:00:00:00 to
/// 33:33:ff:ff:ff:ff).
pub fn is_ipv6_multicast_mac(mac: &[u8; 6]) -> bool {
    mac[0] == 0x33 && mac[1] == 0x33
}

fixed_header_view!(
    /// A read (and, over a mutable buffer, write) view of an Ethernet II frame.
    Frame,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> Frame<T> {
    /// Destination MAC address.
    pub fn dst(&self) -> [u8; 6] {
        let h = self.header();
        [h[0], h[1], h[2], h[3], h[4], h[5]]
    }

    /// Source MAC address.
    pub fn src(&self) -> [u8; 6] {
        let h = self.header();
        [h[6], h[7], h[8], h[9], h[10], h[11]]
    }

    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[12], h[13]])
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    fn header_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let n = b.len().min(HEADER_LEN);
        &mut b[..n]
    }

    /// Sets the destination MAC address.
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        if let Some(d) = self.header_mut().get_mut(0..6) {
            d.copy_from_slice(&mac);
        }
    }

    /// Sets the source MAC address.
    pub fn set_src(&mut self, mac: [u8; 6]) {
        if let Some(d) = self.header_mut().get_mut(6..12) {
            d.copy_from_slice(&mac);
        }
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        if let Some(d) = self.header_mut().get_mut(12..14) {
            d.copy_from_slice(&ethertype.to_be_bytes());
        }
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// The header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        Ok(Repr {
            dst: frame.dst(),
            src: frame.src(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`] (a caller bug: size it with
    /// [`Repr::buffer_len`]).
    pub fn emit(&self, buf: &mut [u8]) {
        let h = &mut buf[..HEADER_LEN];
        h[0..6].copy_from_slice(&self.dst);
        h[6..12].copy_from_slice(&self.src);
        h[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::test_util::hex;
    use proptest::prelude::*;

    #[test]
    fn multicast_mac_mapping() {
        // RFC 1112 section 6.4: the high bit of the second octet is dropped.
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 129, 2, 3)),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
        assert_eq!(
            multicast_mac(Ipv4Addr::new(224, 0, 0, 22)),
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x16]
        );
        assert!(is_ipv4_multicast_mac(&multicast_mac(Ipv4Addr::new(
            233, 252, 0, 5
        ))));
        assert!(!is_ipv4_multicast_mac(&[
            0x01, 0x00, 0x5e, 0x80, 0x00, 0x01
        ]));
        assert!(!is_ipv4_multicast_mac(&[
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01
        ]));
    }

    #[test]
    fn short_frames_are_truncated() {
        for n in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&[0u8; 20][..n]), Err(Error::Truncated));
        }
        assert!(Frame::new_checked(&[0u8; HEADER_LEN][..]).is_ok());
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(), ethertype in any::<u16>()) {
            let repr = Repr { dst, src, ethertype };
            let mut buf = vec![0u8; repr.buffer_len() + 3];
            repr.emit(&mut buf);
            let frame = Frame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&frame).unwrap(), repr);
            prop_assert_eq!(frame.payload().len(), 3);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            crate::fuzzing::ethernet(&bytes);
        }
    }

    /// Golden bytes: frames the Linux kernel sent (fixtures/capture.sh).
    #[test]
    fn golden_kernel_frames() {
        // A host's IGMPv2 report for 239.1.2.3 goes to the group's MAC.
        let report = hex(include_str!("../fixtures/igmpv2-report.eth.hex"));
        let frame = Frame::new_checked(&report[..]).unwrap();
        let repr = Repr::parse(&frame).unwrap();
        assert_eq!(repr.dst, multicast_mac(Ipv4Addr::new(239, 1, 2, 3)));
        assert_eq!(repr.ethertype, ETHERTYPE_IPV4);
        let mut out = vec![0u8; HEADER_LEN];
        repr.emit(&mut out);
        assert_eq!(out[..], report[..HEADER_LEN]);
        assert_eq!(frame.payload(), &report[HEADER_LEN..]);

        // IGMPv3 reports go to 224.0.0.22, the bridge's query to 224.0.0.1.
        let v3 = hex(include_str!("../fixtures/igmpv3-join-to-ex.eth.hex"));
        let f = Frame::new_checked(&v3[..]).unwrap();
        assert_eq!(f.dst(), multicast_mac(Ipv4Addr::new(224, 0, 0, 22)));
        let q = hex(include_str!("../fixtures/bridge-igmpv3-query.eth.hex"));
        let f = Frame::new_checked(&q[..]).unwrap();
        assert_eq!(f.dst(), multicast_mac(Ipv4Addr::new(224, 0, 0, 1)));
        assert!(is_ipv4_multicast_mac(&f.dst()));
        assert_eq!(f.src()[0] & 1, 0, "a source MAC is unicast");
    }

    /// Golden bytes: every MLD frame the kernel sent (fixtures/capture-mld.sh) goes to
    /// the 33:33 MAC of its IPv6 destination (RFC 2464 section 7).
    #[test]
    fn golden_kernel_mld_frames_use_the_ipv6_multicast_mac() {
        for (name, eth, ip, _) in crate::test_util::MLD_FIXTURES {
            let frame = hex(eth);
            let f = Frame::new_checked(&frame[..]).unwrap();
            assert_eq!(f.ethertype(), ETHERTYPE_IPV6, "{name}");
            let dst = <[u8; 16]>::try_from(&hex(ip)[24..40]).unwrap();
            assert_eq!(f.dst(), ipv6_multicast_mac(Ipv6Addr::from(dst)), "{name}");
            assert!(is_ipv6_multicast_mac(&f.dst()), "{name}");
            assert!(!is_ipv4_multicast_mac(&f.dst()), "{name}");
            assert_eq!(f.payload(), &hex(ip)[..], "{name}");
        }
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(ipv6_multicast_mac(all_nodes), [0x33, 0x33, 0, 0, 0, 1]);
        let sn: Ipv6Addr = "ff02::1:ff12:4cb7".parse().unwrap();
        assert_eq!(ipv6_multicast_mac(sn), [0x33, 0x33, 0xff, 0x12, 0x4c, 0xb7]);
        assert!(!is_ipv6_multicast_mac(&multicast_mac(Ipv4Addr::new(
            239, 1, 1, 1
        ))));
    }

    #[test]
    fn setters_write_the_header() {
        let mut buf = [0u8; 20];
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst([1, 2, 3, 4, 5, 6]);
        f.set_src([7, 8, 9, 10, 11, 12]);
        f.set_ethertype(ETHERTYPE_IPV4);
        f.payload_mut()[0] = 0x45;
        assert_eq!(
            buf[..15],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45]
        );
    }
}
