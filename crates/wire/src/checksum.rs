//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement
//! sum of the data taken as big-endian 16-bit words.
//!
//! The data plane may checksum every packet it builds, so [`data`] adds 32-bit words
//! into a 64-bit accumulator and folds once at the end instead of adding byte pairs:
//! because 2^16 = 1 (mod 2^16 - 1), the one's complement sum of 32-bit words folds to the
//! same value as the sum of 16-bit words (RFC 1071 section 2 (B) and (C)).

use core::net::{Ipv4Addr, Ipv6Addr};

/// One's complement sum of `bytes` (an odd last byte is padded with a zero byte), folded
/// to 16 bits but not complemented. Combine partial sums with [`combine`].
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        // Two 32-bit words per step; the 64-bit accumulator cannot overflow for any
        // buffer shorter than 2^32 words.
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    while let [a, b, tail @ ..] = rest {
        acc += u64::from(u16::from_be_bytes([*a, *b]));
        rest = tail;
    }
    if let [last] = rest {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Adds partial sums (from [`data`] or [`pseudo_header`]) in one's complement.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The checksum to put in a header: the complement of the sum of `bytes` (with the
/// checksum field itself set to zero).
pub fn checksum(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// The sum of the IPv4 pseudo-header used by UDP and TCP (RFC 768): source, destination,
/// zero, protocol, and the upper-layer length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&s);
    buf[4..8].copy_from_slice(&d);
    buf[9] = protocol;
    buf[10..].copy_from_slice(&length.to_be_bytes());
    data(&buf)
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1) used by ICMPv6, UDP and
/// TCP over IPv6: source, destination, the 32-bit upper-layer packet length (the length
/// of the upper-layer header and data, without the extension headers before it), three
/// zero bytes and the upper-layer protocol (Next Header) number.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut buf = [0u8; 40];
    buf[..16].copy_from_slice(&src.octets());
    buf[16..32].copy_from_slice(&dst.octets());
    buf[32..36].copy_from_slice(&length.to_be_bytes());
    buf[39] = next_header;
    data(&buf)
}

/// Whether data that includes its own checksum field verifies (its sum is all ones).
pub fn verifies(bytes: &[u8]) -> bool {
    data(bytes) == 0xffff
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 bits.
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious byte-pair implementation the fast one must agree with.
    fn reference(bytes: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            acc += hi | lo;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xff; 9]), reference(&[0xff; 9]));
    }

    #[test]
    fn kernel_ipv4_header_verifies() {
        // An IGMPv2 report header as Linux sent it (fixtures/igmpv2-report.ipv4.hex).
        let h = [
            0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0xe8, 0xae, 0x0a, 0x63,
            0x00, 0x02, 0xef, 0x01, 0x02, 0x03, 0x94, 0x04, 0x00, 0x00,
        ];
        assert!(verifies(&h));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xe8ae);
    }

    #[test]
    fn kernel_mld_report_verifies_over_the_ipv6_pseudo_header() {
        // fixtures/mldv1-report: from fe80::14a1:63ff:fe12:4cb7 to ff05::1:3, 24 bytes.
        let src: Ipv6Addr = "fe80::14a1:63ff:fe12:4cb7".parse().unwrap();
        let dst: Ipv6Addr = "ff05::1:3".parse().unwrap();
        let mut msg = [0u8; 24];
        msg[..4].copy_from_slice(&[0x83, 0x00, 0xbc, 0xad]);
        msg[8..].copy_from_slice(&dst.octets());
        let sum = |m: &[u8]| combine(&[pseudo_header_v6(src, dst, 58, 24), data(m)]);
        assert_eq!(sum(&msg), 0xffff);
        msg[2..4].fill(0);
        assert_eq!(!sum(&msg), 0xbcad);
        // Another destination does not verify: the pseudo-header is covered.
        assert_ne!(
            combine(&[pseudo_header_v6(src, src, 58, 24), data(&msg)]),
            0xffff
        );
    }

    proptest! {
        #[test]
        fn matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        #[test]
        fn combine_of_even_split_is_whole(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut * 2).min(bytes.len() & !1);
            let (a, b) = bytes.split_at(cut);
            prop_assert_eq!(combine(&[data(a), data(b)]), combine(&[data(&bytes)]));
        }
    }
}
