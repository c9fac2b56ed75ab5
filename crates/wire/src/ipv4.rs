//! IPv4 packets (RFC 791) with options, of which mcgate cares about one: Router Alert
//! (RFC 2113), which IGMPv2 and IGMPv3 messages carry (RFC 2236 section 2, RFC 3376
//! section 4).
//!
//! The relay forwards inner packets unchanged, so the view reads everything and writes
//! only what a sender fills in; [`Repr`] describes the headers mcgate itself emits.

use core::net::Ipv4Addr;

use crate::{Error, Result, checksum};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of IGMP.
pub const PROTOCOL_IGMP: u8 = 2;
/// IP protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// The Router Alert option as Linux and RFC 2113 section 2.1 write it: type 148 (copied,
/// class 0, number 20), length 4, value 0 ("router shall examine packet").
pub const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_ROUTER_ALERT: u8 = 0x94;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

view!(
    /// A read (and, over a mutable buffer, write) view of an IPv4 packet.
    ///
    /// [`Packet::new_checked`] is the only constructor, so every accessor can rely on the
    /// header and the total length lying within the buffer.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking the version is 4, the IHL is at least 5, and the
    /// header and the total length fit in the buffer. Bytes past the total length (such
    /// as Ethernet padding) are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        let Some(h) = b.first_chunk::<MIN_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        if h[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if b.len() < header_len || b.len() < total_len {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn byte(&self, i: usize) -> u8 {
        // Indices below MIN_HEADER_LEN are checked by new_checked.
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn be16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.byte(i), self.byte(i + 1)])
    }

    fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            self.byte(i),
            self.byte(i + 1),
            self.byte(i + 2),
            self.byte(i + 3),
        )
    }

    /// Header length in bytes (IHL times 4), 20 to 60.
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(0) & 0x0f) * 4
    }

    /// The TOS byte: DSCP in the high six bits, ECN in the low two.
    pub fn dscp_ecn(&self) -> u8 {
        self.byte(1)
    }

    /// Total length: header plus payload.
    pub fn total_len(&self) -> u16 {
        self.be16(2)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.be16(4)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.be16(6) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.be16(6) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.be16(6) & 0x1fff) << 3
    }

    /// Whether this packet is a fragment (more fragments follow, or it is not the first).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.byte(8)
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.byte(9)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(10)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr(12)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr(16)
    }

    /// The options: the header bytes past the first 20.
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..usize::from(self.total_len()))
            .unwrap_or(&[])
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        self.buffer
            .as_ref()
            .get(..self.header_len())
            .is_some_and(checksum::verifies)
    }

    /// Whether the options carry a Router Alert (RFC 2113). Options are walked by their
    /// length bytes; a malformed list (a length below 2 or past the header) ends the
    /// walk, and whatever was not reached counts as absent.
    pub fn has_router_alert(&self) -> bool {
        let mut opts = self.options();
        loop {
            match opts {
                [] | [OPT_END, ..] => return false,
                [OPT_NOP, rest @ ..] => opts = rest,
                [kind, len, ..] => {
                    let len = usize::from(*len);
                    if len < 2 || len > opts.len() {
                        return false;
                    }
                    if *kind == OPT_ROUTER_ALERT && len == 4 {
                        return true;
                    }
                    opts = opts.get(len..).unwrap_or(&[]);
                }
                [_] => return false,
            }
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_be16(&mut self, i: usize, v: u16) {
        if let Some(d) = self.buffer.as_mut().get_mut(i..i + 2) {
            d.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sets the identification field (the checksum must be filled again afterwards).
    pub fn set_ident(&mut self, ident: u16) {
        self.set_be16(4, ident);
    }

    /// Recomputes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        self.set_be16(10, 0);
        let sum = self.buffer.as_ref().get(..hl).map_or(0, checksum::checksum);
        self.set_be16(10, sum);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// The header fields of an IPv4 packet mcgate reads or writes.
///
/// It keeps Router Alert and drops every other option: a parsed packet with other
/// options re-emits without them. The identification is emitted as 0, as Linux does for
/// its Don't-Fragment IGMP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// The TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Whether the header carries a Router Alert option.
    pub router_alert: bool,
    /// Don't Fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Reads a checked packet: the header checksum must verify, and fragments are
    /// refused as [`Error::Malformed`] (mcgate never reassembles: IGMP messages are never
    /// fragmented, and the relay forwards packets as they are).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        if packet.is_fragment() {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            tos: packet.dscp_ecn(),
            payload_len: packet.payload().len(),
            router_alert: packet.has_router_alert(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the header [`Repr::emit`] writes: 20, or 24 with Router Alert.
    pub fn header_len(&self) -> usize {
        if self.router_alert {
            MIN_HEADER_LEN + ROUTER_ALERT.len()
        } else {
            MIN_HEADER_LEN
        }
    }

    /// Length of the whole packet: header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header (with its checksum) into the first [`Repr::header_len`] bytes of
    /// `buf`; the caller writes the payload after it. A payload too long for the 16-bit
    /// total length saturates at 65535.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Repr::header_len`] (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) {
        let hl = self.header_len();
        let h = &mut buf[..hl];
        let total = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        h[0] = 0x40 | (hl / 4) as u8;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&[0, 0]);
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        if self.router_alert {
            h[20..24].copy_from_slice(&ROUTER_ALERT);
        }
        let sum = checksum::checksum(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{IGMP_FIXTURES, hex};
    use proptest::prelude::*;

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            0usize..1500,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(s, d, protocol, ttl, tos, payload_len, ra, df)| Repr {
                src: s.into(),
                dst: d.into(),
                protocol,
                ttl,
                tos,
                payload_len,
                router_alert: ra,
                dont_frag: df,
            })
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), repr);
            prop_assert_eq!(p.header_len(), repr.header_len());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            crate::fuzzing::ipv4(&bytes);
        }

        #[test]
        fn options_scan_never_panics(opts in proptest::collection::vec(any::<u8>(), 0..40)) {
            let words = opts.len() / 4;
            let mut buf = vec![0u8; 20 + words * 4];
            buf[0] = 0x40 | (5 + words) as u8;
            let total = buf.len() as u16;
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            buf[20..].copy_from_slice(&opts[..words * 4]);
            let p = Packet::new_checked(&buf[..]).unwrap();
            let _ = p.has_router_alert();
        }
    }

    #[test]
    fn checked_constructor_rejects() {
        let good = hex(include_str!("../fixtures/igmpv2-report.ipv4.hex"));
        for n in 0..good.len() {
            assert!(Packet::new_checked(&good[..n]).is_err(), "length {n}");
        }
        let mut v6 = good.clone();
        v6[0] = 0x66;
        assert_eq!(Packet::new_checked(&v6[..]), Err(Error::Malformed));
        let mut short_ihl = good.clone();
        short_ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&short_ihl[..]), Err(Error::Malformed));
        let mut long_ihl = good.clone();
        long_ihl[0] = 0x4f; // 60-byte header in a 32-byte packet
        assert!(Packet::new_checked(&long_ihl[..]).is_err());
        let mut small_total = good.clone();
        small_total[3] = 16;
        assert_eq!(Packet::new_checked(&small_total[..]), Err(Error::Malformed));
        let mut bad_sum = good.clone();
        bad_sum[8] = 2; // TTL changed, checksum not
        let p = Packet::new_checked(&bad_sum[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Checksum));
    }

    #[test]
    fn router_alert_after_nops_and_other_options() {
        // NOP, NOP, a 4-byte unknown option, then Router Alert: IHL 8.
        let mut buf = [0u8; 32];
        buf[0] = 0x48;
        buf[3] = 32;
        buf[20..32].copy_from_slice(&[1, 1, 0x88, 4, 0, 0, 0x94, 4, 0, 0, 0, 0]);
        assert!(Packet::new_checked(&buf[..]).unwrap().has_router_alert());
        // End of list before it: not present.
        buf[20] = 0;
        assert!(!Packet::new_checked(&buf[..]).unwrap().has_router_alert());
        // A zero length byte would loop forever if taken at face value.
        buf[20..24].copy_from_slice(&[0x88, 0, 0x94, 4]);
        assert!(!Packet::new_checked(&buf[..]).unwrap().has_router_alert());
    }

    /// Golden bytes: every IGMP packet the kernel sent (fixtures/capture.sh) carries TTL 1,
    /// TOS 0xc0, DF, Router Alert, identification 0; re-emitting its header gives the
    /// same bytes.
    #[test]
    fn golden_kernel_igmp_headers() {
        for (name, eth, ip, _igmp) in IGMP_FIXTURES {
            let bytes = hex(ip);
            let p = Packet::new_checked(&bytes[..]).unwrap();
            assert!(p.verify_checksum(), "{name}");
            assert!(p.has_router_alert(), "{name}");
            assert_eq!(p.header_len(), 24, "{name}");
            let repr = Repr::parse(&p).unwrap();
            assert_eq!(repr.ttl, 1, "{name}");
            assert_eq!(repr.tos, 0xc0, "{name}");
            assert_eq!(repr.protocol, PROTOCOL_IGMP, "{name}");
            assert!(repr.dont_frag && repr.router_alert, "{name}");
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut out);
            out[24..].copy_from_slice(p.payload());
            assert_eq!(out, bytes, "{name}");
            // The frame holds exactly this packet after its 14-byte header.
            assert_eq!(hex(eth)[14..], bytes[..], "{name}");
        }
    }

    /// Golden bytes: the outer header of the kernel's VXLAN packet (no options, no DF,
    /// a random identification).
    #[test]
    fn golden_kernel_vxlan_outer_header() {
        let bytes = hex(include_str!("../fixtures/vxlan-udp-multicast.ipv4.hex"));
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.src, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(repr.dst, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(repr.protocol, PROTOCOL_UDP);
        assert!(!repr.router_alert && !repr.dont_frag);
        assert_eq!(repr.payload_len, bytes.len() - 20);
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out);
        out[20..].copy_from_slice(p.payload());
        let mut view = Packet::new_checked(&mut out[..]).unwrap();
        view.set_ident(p.ident());
        view.fill_checksum();
        assert_eq!(out, bytes);
    }
}
