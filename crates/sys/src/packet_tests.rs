//! Unit tests of `packet.rs`.

use super::*;

#[test]
fn filters_jump_inside_their_programs() {
    for prog in [
        &IGMP_PROGRAM[..],
        &DATA_PROGRAM[..],
        &MEMBERSHIP_PROGRAM[..],
    ] {
        for (i, ins) in prog.iter().enumerate() {
            if ins.code as u32 == JA {
                assert!(i + 1 + (ins.k as usize) < prog.len());
            } else if ins.code as u32 & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (ins.jt as usize) < prog.len());
                assert!(i + 1 + (ins.jf as usize) < prog.len());
            }
        }
        assert_eq!(prog.last().unwrap().code as u32, RET_K);
    }
}

/// Runs a classic BPF program over `pkt` as the kernel does, for the instructions the
/// programs here use: the value it returns (0 rejects).
fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    loop {
        let ins = prog[pc];
        pc += 1;
        let code = ins.code as u32;
        let load = |off: usize, n: usize| {
            pkt.get(off..off + n)
                .map(|b| b.iter().fold(0u32, |v, b| v << 8 | u32::from(*b)))
        };
        match code {
            LDH_ABS | LDB_ABS | LDB_IND => {
                let off = ins.k as usize + if code == LDB_IND { x as usize } else { 0 };
                match load(off, if code == LDH_ABS { 2 } else { 1 }) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            ADD_K => a = a.wrapping_add(ins.k),
            LSH_K => a <<= ins.k,
            AND_K => a &= ins.k,
            TAX => x = a,
            JA => pc += ins.k as usize,
            JEQ_K | JGE_K | JGT_K => {
                let taken = match code {
                    JEQ_K => a == ins.k,
                    JGE_K => a >= ins.k,
                    _ => a > ins.k,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            RET_K => return ins.k,
            other => panic!("instruction {other:#x} not simulated"),
        }
    }
}

/// An Ethernet frame with an IPv6 packet whose Next Header is `next`, then `ext` (the
/// extension headers) and an ICMPv6 message of type `icmp_type`.
fn ipv6_frame(next: u8, ext: &[u8], icmp_type: u8) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 0, 0, 0x16, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let payload = ext.len() + 28;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload as u16).to_be_bytes());
    f.extend_from_slice(&[next, 1]);
    f.extend_from_slice(&[0xfe, 0x80]);
    f.extend_from_slice(&[0; 14]);
    f.extend_from_slice(&[0xff, 0x02]);
    f.extend_from_slice(&[0; 13]);
    f.push(0x16);
    f.extend_from_slice(ext);
    f.push(icmp_type);
    f.extend_from_slice(&[0; 27]);
    f
}

/// A Hop-by-Hop header with a Router Alert (value 0) padded with PadN, `words` 8-byte
/// units long, followed by ICMPv6.
fn hop_by_hop(words: usize) -> Vec<u8> {
    let mut h = vec![58, (words - 1) as u8, 5, 2, 0, 0, 1, 0];
    h.resize(words * 8, 0);
    if words > 1 {
        h[7] = (words * 8 - 8) as u8;
    }
    h
}

#[test]
fn the_membership_filter_takes_igmp_and_mld_and_nothing_else() {
    let pass = |f: &[u8]| run(&MEMBERSHIP_PROGRAM, f) != 0;
    let mut igmp = vec![0u8; 14 + 32];
    igmp[12..14].copy_from_slice(&[0x08, 0x00]);
    igmp[14 + 9] = 2;
    assert!(pass(&igmp), "IGMP");
    let mut udp = igmp.clone();
    udp[14 + 9] = 17;
    assert!(!pass(&udp), "IPv4 UDP");
    for t in [130, 131, 132, 143] {
        assert!(pass(&ipv6_frame(0, &hop_by_hop(1), t)), "MLD type {t}");
        assert!(
            pass(&ipv6_frame(0, &hop_by_hop(3), t)),
            "MLD type {t}, long header"
        );
        assert!(
            pass(&ipv6_frame(58, &[], t)),
            "MLD type {t} without Hop-by-Hop"
        );
    }
    for t in [128, 129, 133, 134, 135, 136, 142, 144, 151] {
        assert!(!pass(&ipv6_frame(0, &hop_by_hop(1), t)), "ICMPv6 type {t}");
        assert!(!pass(&ipv6_frame(58, &[], t)), "ICMPv6 type {t}");
    }
    let mut to_udp = hop_by_hop(1);
    to_udp[0] = 17;
    assert!(!pass(&ipv6_frame(0, &to_udp, 130)), "Hop-by-Hop then UDP");
    assert!(!pass(&ipv6_frame(17, &[], 130)), "UDP");
    let mut short = ipv6_frame(0, &hop_by_hop(1), 131);
    short.truncate(14 + 40 + 8);
    assert!(!pass(&short), "cut before the ICMPv6 type");
    let mut arp = igmp.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(!pass(&arp), "ARP");
    // The IGMP program takes no MLD.
    assert_eq!(run(&IGMP_PROGRAM, &ipv6_frame(0, &hop_by_hop(1), 143)), 0);
    assert_ne!(run(&IGMP_PROGRAM, &igmp), 0);
}

#[test]
fn the_data_filter_takes_multicast_of_both_families_but_igmp() {
    let pass = |f: &[u8]| run(&DATA_PROGRAM, f) != 0;
    let mut udp = vec![0u8; 14 + 32];
    udp[12..14].copy_from_slice(&[0x08, 0x00]);
    udp[14 + 9] = 17;
    udp[14 + 16] = 233;
    assert!(pass(&udp), "IPv4 multicast UDP");
    let mut igmp = udp.clone();
    igmp[14 + 9] = 2;
    assert!(!pass(&igmp), "IGMP");
    let mut unicast = udp.clone();
    unicast[14 + 16] = 10;
    assert!(!pass(&unicast), "IPv4 unicast");
    let mut v6 = ipv6_frame(17, &[], 0);
    assert!(!pass(&v6), "IPv6 link scope (ff02::16)");
    for scope in [0u8, 1, 2] {
        v6[14 + 25] = 0x30 | scope;
        assert!(!pass(&v6), "scope {scope}");
    }
    for scope in [3u8, 5, 8, 0xe] {
        v6[14 + 25] = 0x30 | scope;
        assert!(pass(&v6), "scope {scope}");
    }
    let mut v6_unicast = v6.clone();
    v6_unicast[14 + 24] = 0xfd;
    assert!(!pass(&v6_unicast), "IPv6 unicast");
    let mut arp = udp.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(!pass(&arp), "ARP");
    assert!(!pass(&v6[..14 + 24]), "cut before the destination");
}

#[test]
fn frame_batch_bounds_are_checked() {
    let mut b = FrameBatch::new(128);
    assert!(b.frame(0).is_none());
    assert!(b.slot_mut(MAX_BATCH).is_none());
    assert_eq!(b.slot_mut(0).unwrap().len(), 128);
}
