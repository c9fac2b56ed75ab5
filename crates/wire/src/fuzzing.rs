//! Bodies of the fuzz targets in `fuzz/` (one per parser), kept here so they build and
//! run on stable Rust: a unit test runs each over its seed corpus, and the proptests of
//! each format run them over random bytes.
//!
//! Each function takes arbitrary bytes, parses them, and when they parse, re-emits the
//! result and checks the round-trip invariants. Random bytes seldom carry a valid
//! checksum, so the IPv4, UDP, IGMP, IPv6 (its ICMPv6 payload) and MLD bodies also
//! parse a copy with the checksum fixed up, which lets the fuzzer reach the code behind
//! the checksum test. A parser must never panic; the
//! `assert!`s here are the invariants the fuzzer hunts for violations of, so a panic
//! from this module is a bug in the crate, never a property of the input.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{ethernet, icmpv6, igmp, ipv4, ipv6, keepalive, mld, udp, vxlan};

/// Ethernet frames; an IPv4 payload goes on to [`ipv4()`], an IPv6 one to [`ipv6()`].
pub fn ethernet(data: &[u8]) {
    let Ok(frame) = ethernet::Frame::new_checked(data) else {
        return;
    };
    let repr = ethernet::Repr::parse(&frame).expect("a checked frame always parses");
    let mut out = [0u8; ethernet::HEADER_LEN];
    repr.emit(&mut out);
    // The Ethernet header is lossless: the bytes come back exactly.
    assert_eq!(out[..], data[..ethernet::HEADER_LEN]);
    assert_eq!(frame.payload().len(), data.len() - ethernet::HEADER_LEN);
    let _ = ethernet::is_ipv4_multicast_mac(&frame.dst());
    let _ = ethernet::is_ipv6_multicast_mac(&frame.dst());
    match frame.ethertype() {
        ethernet::ETHERTYPE_IPV4 => ipv4(frame.payload()),
        ethernet::ETHERTYPE_IPV6 => ipv6(frame.payload()),
        _ => {}
    }
}

/// IPv4 packets; an IGMP payload goes on to [`igmp()`].
pub fn ipv4(data: &[u8]) {
    ipv4_once(data);
    if let Ok(mut p) = ipv4::Packet::new_checked(data.to_vec()) {
        p.fill_checksum();
        ipv4_once(&p.into_inner());
    }
}

fn ipv4_once(data: &[u8]) {
    let Ok(packet) = ipv4::Packet::new_checked(data) else {
        return;
    };
    // Every accessor works on every checked packet.
    let ra = packet.has_router_alert();
    let payload = packet.payload();
    assert!(packet.header_len() + payload.len() == usize::from(packet.total_len()));
    assert!(packet.options().len() == packet.header_len() - ipv4::MIN_HEADER_LEN);
    let _ = (packet.dscp_ecn(), packet.ident(), packet.frag_offset());
    let Ok(repr) = ipv4::Repr::parse(&packet) else {
        return;
    };
    assert!(packet.verify_checksum());
    assert_eq!(repr.router_alert, ra);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out);
    let hl = repr.header_len();
    out[hl..].copy_from_slice(payload);
    let again = ipv4::Packet::new_checked(&out[..]).expect("emitted packet is well formed");
    assert_eq!(ipv4::Repr::parse(&again), Ok(repr));
    assert_eq!(again.payload(), payload);
    // Without options other than Router Alert and with identification 0, the header
    // comes back byte for byte.
    let canonical_opts = packet.options().is_empty() || packet.options() == ipv4::ROUTER_ALERT;
    let canonical_flags = data[6] & 0xbf == 0 && data[7] == 0;
    if canonical_opts && canonical_flags && packet.ident() == 0 {
        // One's complement has two zeros: a header whose sum is all ones verifies with
        // 0x0000 and with 0xffff in the field, and emit writes 0x0000.
        if packet.checksum() == 0xffff && out[10..12] == [0, 0] {
            out[10..12].copy_from_slice(&[0xff, 0xff]);
        }
        assert_eq!(out[..], data[..out.len()]);
    }
    if repr.protocol == ipv4::PROTOCOL_IGMP {
        igmp(payload);
    }
}

/// The addresses the UDP target checks checksums against (those of the seed corpus,
/// so its seeds verify).
pub const UDP_SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// See [`UDP_SRC`].
pub const UDP_DST: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// UDP datagrams between [`UDP_SRC`] and [`UDP_DST`]; a payload to port 4789 goes on to
/// [`vxlan()`].
pub fn udp(data: &[u8]) {
    udp_once(data);
    if let Ok(mut p) = udp::Packet::new_checked(data.to_vec()) {
        p.fill_checksum(UDP_SRC, UDP_DST);
        udp_once(&p.into_inner());
    }
}

fn udp_once(data: &[u8]) {
    let Ok(packet) = udp::Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.src_port(), packet.is_empty());
    let Ok(repr) = udp::Repr::parse(&packet, UDP_SRC, UDP_DST) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, UDP_SRC, UDP_DST, packet.payload());
    let again = udp::Packet::new_checked(&out[..]).expect("emitted datagram is well formed");
    assert_eq!(udp::Repr::parse(&again, UDP_SRC, UDP_DST), Ok(repr));
    // A datagram that carried a verified checksum comes back byte for byte (a computed
    // zero is always sent as 0xffff, and a received 0 means "no checksum").
    if packet.checksum() != 0 {
        assert_eq!(out[..], data[..out.len()]);
    }
    if repr.dst_port == vxlan::UDP_PORT {
        vxlan(packet.payload());
    }
}

/// VXLAN headers; the inner frame goes on to [`ethernet()`].
pub fn vxlan(data: &[u8]) {
    let Ok(header) = vxlan::Header::new_checked(data) else {
        return;
    };
    assert!(header.vni() <= vxlan::MAX_VNI);
    let Ok(repr) = vxlan::Repr::parse(&header) else {
        assert!(!header.has_valid_flags());
        return;
    };
    let mut out = [0u8; vxlan::HEADER_LEN];
    repr.emit(&mut out);
    let mut direct = [0u8; vxlan::HEADER_LEN];
    vxlan::emit_header(&mut direct, repr.vni);
    assert_eq!(out, direct);
    let again = vxlan::Header::new_checked(&out[..]).expect("8 bytes");
    assert_eq!(vxlan::Repr::parse(&again), Ok(repr));
    ethernet(header.payload());
}

/// IGMP messages (the IPv4 payload) of every version.
pub fn igmp(data: &[u8]) {
    igmp_once(data);
    if data.len() >= igmp::HEADER_LEN {
        let mut fixed = data.to_vec();
        fixed[2..4].fill(0);
        let sum = crate::checksum::checksum(&fixed);
        fixed[2..4].copy_from_slice(&sum.to_be_bytes());
        assert!(igmp::Packet::new_checked(&fixed[..]).is_ok_and(|p| p.verify_checksum()));
        igmp_once(&fixed);
    }
}

fn igmp_once(data: &[u8]) {
    let Ok(repr) = igmp::IgmpRepr::parse(data) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out);
    // Parsing drops only what the RFCs say to ignore (reserved fields, bytes past the
    // last source or record), so the emitted message is never longer.
    assert!(out.len() <= data.len());
    assert_eq!(igmp::IgmpRepr::parse(&out).as_ref(), Ok(&repr));
    let ip = igmp::emit_ip_packet(UDP_SRC, igmp::ALL_V3_ROUTERS, &repr);
    let packet = ipv4::Packet::new_checked(&ip[..]).expect("emitted packet is well formed");
    assert!(packet.has_router_alert() && packet.verify_checksum());
    assert_eq!(packet.ttl(), 1);
    assert_eq!(igmp::IgmpRepr::parse(packet.payload()), Ok(repr));
}

/// IPv6 packets: the extension header walk and the header round trip; an ICMPv6
/// payload goes on to the MLD parser (as is, and with its checksum fixed up).
pub fn ipv6(data: &[u8]) {
    let Ok(packet) = ipv6::Packet::new_checked(data) else {
        return;
    };
    let payload = packet.payload();
    assert_eq!(payload.len(), usize::from(packet.payload_len()));
    let _ = (
        packet.traffic_class(),
        packet.flow_label(),
        packet.hop_limit(),
    );
    let walked = packet.upper_layer();
    let Ok(repr) = ipv6::Repr::parse(&packet) else {
        return;
    };
    let upper = walked.expect("Repr::parse walks the same headers");
    assert_eq!(
        upper.offset + upper.payload.len(),
        ipv6::HEADER_LEN + payload.len()
    );
    assert_eq!(repr.payload_len, upper.payload.len());
    assert_eq!(repr.router_alert, upper.router_alert);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out);
    let hl = repr.header_len();
    out[hl..].copy_from_slice(upper.payload);
    let again = ipv6::Packet::new_checked(&out[..]).expect("emitted packet is well formed");
    assert_eq!(ipv6::Repr::parse(&again), Ok(repr));
    assert_eq!(again.upper_layer().map(|u| u.payload), Ok(upper.payload));
    // With no extension header, or only the Hop-by-Hop header emit writes, the packet
    // comes back byte for byte.
    let canonical = match repr.router_alert {
        None => upper.offset == ipv6::HEADER_LEN,
        Some(_) => {
            upper.offset == hl
                && payload.get(2..4) == Some(&[5, 2])
                && payload.get(6..8) == Some(&[1, 0])
        }
    };
    if canonical {
        assert_eq!(out[..], data[..out.len()]);
    }
    if repr.next_header == ipv6::NEXT_HEADER_ICMPV6 {
        mld_both(repr.src, repr.dst, upper.payload);
    }
}

/// The addresses of a fuzz input of [`mld()`]: its first 32 bytes.
fn mld_addrs(data: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, &[u8])> {
    let (src, rest) = data.split_first_chunk::<16>()?;
    let (dst, msg) = rest.split_first_chunk::<16>()?;
    Some((Ipv6Addr::from(*src), Ipv6Addr::from(*dst), msg))
}

/// MLD messages of both versions. The input is the IPv6 source (16 bytes), the
/// destination (16 bytes), then the ICMPv6 message: the checksum covers the addresses.
pub fn mld(data: &[u8]) {
    if let Some((src, dst, msg)) = mld_addrs(data) {
        mld_both(src, dst, msg);
    }
}

fn mld_both(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) {
    mld_once(src, dst, msg);
    if let Ok(mut p) = icmpv6::Packet::new_checked(msg.to_vec()) {
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        mld_once(src, dst, &p.into_inner());
    }
}

fn mld_once(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) {
    let Ok(repr) = mld::MldRepr::parse(src, dst, msg) else {
        return;
    };
    let _ = (repr.version(), repr.source_is_valid(src));
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(src, dst, &mut out);
    // Parsing drops only what the RFCs say to ignore (code, reserved fields, bytes past
    // the last source or record), so the emitted message is never longer.
    assert!(out.len() <= msg.len());
    assert_eq!(mld::MldRepr::parse(src, dst, &out).as_ref(), Ok(&repr));
    let ip = mld::emit_ip_packet(src, dst, &repr);
    let packet = ipv6::Packet::new_checked(&ip[..]).expect("emitted packet is well formed");
    let ip_repr = ipv6::Repr::parse(&packet).expect("emitted headers parse");
    assert_eq!(ip_repr.hop_limit, 1);
    assert_eq!(ip_repr.router_alert, Some(ipv6::ROUTER_ALERT_MLD));
    let upper = packet.upper_layer().expect("emitted headers walk");
    assert_eq!(mld::MldRepr::parse(src, dst, upper.payload), Ok(repr));
}

/// The agents' peer keepalives ([`keepalive`]): what parses re-emits to the same bytes.
pub fn keepalive(data: &[u8]) {
    let Ok((repr, tag)) = keepalive::Repr::parse(data) else {
        return;
    };
    assert!(repr.detect_mult > 0 && repr.tx_interval_us > 0);
    // Only the reserved byte may differ: it is written as zero.
    let mut again = repr.to_packet(&tag);
    again[7] = data[7];
    assert_eq!(again[..], data[..]);
}

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    /// Runs each target's body over every seed of its corpus and every prefix of it, so
    /// the fuzz targets keep compiling and working on stable Rust.
    #[test]
    fn every_target_passes_its_seed_corpus() {
        mcgate_testbed::corpus::replay_with_prefixes(&[
            ("ethernet", super::ethernet),
            ("ipv4", super::ipv4),
            ("udp", super::udp),
            ("igmp", super::igmp),
            ("vxlan", super::vxlan),
            ("ipv6", super::ipv6),
            ("mld", super::mld),
            ("keepalive", super::keepalive),
        ]);
    }

    proptest::proptest! {
        /// A cheap stand-in for libFuzzer on stable Rust: kernel packets with a few
        /// bytes changed (lengths, counts, option and record types) and possibly cut,
        /// through the IPv6, MLD and Ethernet bodies.
        #[test]
        fn mutated_seeds_never_panic(
            target in 0usize..3,
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..6,
            ),
            keep in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let (name, body): (&str, fn(&[u8])) =
                [("ipv6", super::ipv6 as fn(&[u8])), ("mld", super::mld), ("ethernet", super::ethernet)][target];
            let corpus = seeds(name);
            let mut data = corpus[pick.index(corpus.len())].1.clone();
            for (at, byte) in flips {
                let i = at.index(data.len());
                data[i] = byte;
            }
            data.truncate(keep.index(data.len() + 1).max(data.len() / 2));
            body(&data);
        }
    }

    /// The seeds are real packets, so each must get past its parser, not just not panic.
    #[test]
    fn seeds_parse() {
        use crate::{ethernet, igmp, ipv4, ipv6, mld, udp, vxlan};
        for (path, data) in seeds("igmp") {
            assert!(igmp::IgmpRepr::parse(&data).is_ok(), "{path:?}");
        }
        for (path, data) in seeds("ipv4") {
            let p = ipv4::Packet::new_checked(&data[..]).unwrap();
            assert!(ipv4::Repr::parse(&p).is_ok(), "{path:?}");
        }
        for (path, data) in seeds("ethernet") {
            let f = ethernet::Frame::new_checked(&data[..]).unwrap();
            let known = [ethernet::ETHERTYPE_IPV4, ethernet::ETHERTYPE_IPV6];
            assert!(known.contains(&f.ethertype()), "{path:?}");
        }
        for (path, data) in seeds("ipv6") {
            let p = ipv6::Packet::new_checked(&data[..]).unwrap();
            let r = ipv6::Repr::parse(&p).unwrap();
            assert_eq!(r.next_header, ipv6::NEXT_HEADER_ICMPV6, "{path:?}");
        }
        for (path, data) in seeds("mld") {
            let (src, dst, msg) = super::mld_addrs(&data).unwrap();
            assert!(mld::MldRepr::parse(src, dst, msg).is_ok(), "{path:?}");
        }
        for (path, data) in seeds("udp") {
            let p = udp::Packet::new_checked(&data[..]).unwrap();
            let r = udp::Repr::parse(&p, super::UDP_SRC, super::UDP_DST);
            assert!(r.is_ok(), "{path:?}");
        }
        for (path, data) in seeds("vxlan") {
            let h = vxlan::Header::new_checked(&data[..]).unwrap();
            assert!(vxlan::Repr::parse(&h).is_ok(), "{path:?}");
        }
    }
}
