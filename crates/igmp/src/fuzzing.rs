//! Bodies of the `igmp_router`, `mld_router`, `igmp_proxy` and `mld_proxy` fuzz targets
//! in `fuzz/`, kept here so they build and run on stable Rust: unit tests run them over
//! their seed corpora (`fuzz/corpus/<target>`).
//!
//! The input drives one [`crate::Interface`] (or [`crate::MldInterface`]) through a session: the first
//! byte picks the configuration, then each record is `[delay in tenths of a second]
//! [length: 2 bytes, big endian] [IP packet]`. Every packet is fed as it is and again
//! with its checksums (IPv4 header and IGMP; for MLD the IPv6 payload length and the
//! ICMPv6 checksum) fixed up, so the fuzzer reaches the state machine behind the checks. The
//! `assert!`s are the invariants it hunts for violations of: no timer is left due, and
//! the events replay to exactly the group table.

use core::net::{Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use mcgate_wire::{Version, checksum, icmpv6, ipv4, ipv6};

use crate::{Config, Event, Family, Igmp, Mld, Router, SourceFilter};

/// Runs one IGMP session; see the module documentation.
pub fn router(data: &[u8]) {
    let _ = session::<Igmp>(data, Ipv4Addr::new(10, 99, 0, 10), fixed);
}

/// Runs one MLD session; see the module documentation. The router's link-local address
/// is above the Linux bridge's of the fixtures, so the bridge's queries win the election.
pub fn mld_router(data: &[u8]) {
    let _ = session::<Mld>(data, MLD_ROUTER, fixed_mld);
}

/// The MLD router's link-local address.
const MLD_ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0, 0, 0x10);

/// Runs one session and gives the interface back (none for an empty input).
fn session<F: Family>(
    data: &[u8],
    address: F::Addr,
    fix: fn(&[u8]) -> Vec<u8>,
) -> Option<Router<F>> {
    let (&flags, mut rest) = data.split_first()?;
    let config = Config {
        version: if flags & 1 != 0 {
            Version::V2
        } else {
            Version::V3
        },
        other_queriers: flags & 2 != 0,
        report_rate_limit: if flags & 4 != 0 { 0 } else { 5 },
        report_burst: 5,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut igmp = Router::<F>::new(config, address, now);
    let mut published = BTreeMap::new();
    drain(&mut igmp, &mut published);
    while let Some((delay, packet)) = next_record(&mut rest) {
        let end = now + delay;
        while let Some(t) = igmp.poll_timeout().filter(|t| *t <= end) {
            assert!(t >= now, "a deadline in the past");
            now = t;
            igmp.handle_timeout(now);
            drain(&mut igmp, &mut published);
        }
        now = end;
        igmp.handle_packet(now, packet);
        drain(&mut igmp, &mut published);
        igmp.handle_packet(now, &fix(packet));
        drain(&mut igmp, &mut published);
        assert!(
            igmp.poll_timeout().is_none_or(|t| t > now),
            "a timer left due"
        );
    }
    Some(igmp)
}

/// Body of the `igmp_proxy` fuzz target: an upstream interface ([`crate::proxy::Upstream`])
/// through a session in the framing of [`router`], the first byte choosing the
/// membership (bit i: 233.252.0.i any-source; bit 7 also INCLUDE {10.99.0.1} for
/// 233.252.0.9). Each packet is fed as it is and with its checksums fixed; after it the
/// membership flips between the chosen one and none, so state changes interleave with
/// queries. Invariants: no timer left due, nothing sent is a query, and everything sent
/// passes the checks a router makes.
pub fn proxy(data: &[u8]) {
    let group = |i: u8| Ipv4Addr::new(233, 252, 0, i);
    let me = Ipv4Addr::new(10, 99, 0, 10);
    proxy_session::<Igmp>(data, me, group, Ipv4Addr::new(10, 99, 0, 1), fixed);
}

/// Body of the `mld_proxy` fuzz target: [`proxy`] over MLD ([`crate::proxy::MldUpstream`]),
/// the groups ff3e::8000:i and the source 2001:db8::1, from a link-local address.
pub fn mld_proxy(data: &[u8]) {
    let group = |i: u8| Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, u16::from(i));
    let me = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10);
    let source = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    proxy_session::<Mld>(data, me, group, source, fixed_mld);
}

fn proxy_session<F: Family>(
    data: &[u8],
    me: F::Addr,
    group: fn(u8) -> F::Addr,
    source: F::Addr,
    fix: fn(&[u8]) -> Vec<u8>,
) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut chosen = BTreeMap::new();
    for i in 0..7u8 {
        if flags & (1 << i) != 0 {
            chosen.insert(group(i), SourceFilter::any_source());
        }
    }
    if flags & 0x80 != 0 {
        chosen.insert(group(9), SourceFilter::include([source]));
    }
    let t0 = Instant::now();
    let mut now = t0;
    let mut up = crate::proxy::Upstream::<F>::new(crate::proxy::ProxyConfig::default(), me, now, 1);
    up.set_membership(now, chosen.clone());
    drain_proxy(&mut up);
    let mut on = true;
    while let Some((delay, packet)) = next_record(&mut rest) {
        let end = now + delay;
        while let Some(t) = up.poll_timeout().filter(|t| *t <= end) {
            assert!(t >= now, "a deadline in the past");
            now = t;
            up.handle_timeout(now);
            drain_proxy(&mut up);
        }
        now = end;
        up.handle_packet(now, packet);
        up.handle_packet(now, &fix(packet));
        on = !on;
        up.set_membership(now, if on { chosen.clone() } else { BTreeMap::new() });
        drain_proxy(&mut up);
        assert!(
            up.poll_timeout().is_none_or(|t| t > now),
            "a timer left due"
        );
    }
}

fn drain_proxy<F: Family>(up: &mut crate::proxy::Upstream<F>) {
    while let Some(t) = up.poll_transmit() {
        let sent = F::accept(&t.packet, &mut crate::Dropped::default(), true);
        assert!(sent.is_ok(), "a report a router refuses");
        assert!(
            !sent.is_ok_and(|a| matches!(a.message, crate::Message::Query(_))),
            "a proxy never queries upstream"
        );
    }
}

/// The next `[delay in tenths of a second] [length: 2 bytes] [packet]` record of a
/// session, the packet cut to what is left.
fn next_record<'a>(rest: &mut &'a [u8]) -> Option<(Duration, &'a [u8])> {
    let [delay, hi, lo, tail @ ..] = *rest else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
    let (packet, next) = tail.split_at(len);
    *rest = next;
    Some((Duration::from_millis(u64::from(*delay) * 100), packet))
}

/// Takes what the interface queued and checks that the events replay to its table.
/// What the events said about each group.
type Published<A> = BTreeMap<A, (SourceFilter<A>, Vec<A>)>;

fn drain<F: Family>(igmp: &mut Router<F>, published: &mut Published<F::Addr>) {
    while igmp.poll_transmit().is_some() {}
    while let Some(e) = igmp.poll_event() {
        if let Event::GroupChanged {
            group,
            filter,
            reporters,
        } = e
        {
            match filter {
                Some(f) => published.insert(group, (f, reporters)),
                None => published.remove(&group),
            };
        }
    }
    let table: BTreeMap<_, _> = igmp
        .groups()
        .map(|(g, f)| (g, (f, igmp.reporters(g))))
        .collect();
    assert_eq!(*published, table, "events do not replay to the table");
}

/// `packet` with its IPv4 header and IGMP checksums recomputed, when it is long enough
/// to carry them.
fn fixed(packet: &[u8]) -> Vec<u8> {
    let Ok(mut p) = ipv4::Packet::new_checked(packet.to_vec()) else {
        return packet.to_vec();
    };
    let igmp = p.payload_mut();
    if igmp.len() >= 4 {
        igmp[2..4].fill(0);
        let sum = checksum::checksum(igmp);
        igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p.fill_checksum();
    p.into_inner()
}

/// `packet` with its IPv6 payload length and ICMPv6 checksum recomputed, when it is an
/// IPv6 packet whose extension headers walk to ICMPv6.
fn fixed_mld(packet: &[u8]) -> Vec<u8> {
    let mut out = packet.to_vec();
    if let Some(len) = out.len().checked_sub(ipv6::HEADER_LEN) {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        out[4..6].copy_from_slice(&len.to_be_bytes());
    }
    let Ok(p) = ipv6::Packet::new_checked(&out[..]) else {
        return out;
    };
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let at = match p.upper_layer() {
        Ok(u) if u.protocol == ipv6::NEXT_HEADER_ICMPV6 && u.payload.len() >= 4 => u.offset,
        _ => return out,
    };
    out[at + 2..at + 4].fill(0);
    let sum = icmpv6::checksum(src, dst, &out[at..]);
    out[at + 2..at + 4].copy_from_slice(&sum.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_testbed::corpus::seeds;

    /// Runs the body over every seed, and over every prefix of each, so the fuzz target
    /// keeps compiling and working on stable Rust.
    #[test]
    fn igmp_router_passes_its_seed_corpus() {
        for (_, data) in seeds("igmp_router") {
            for end in 0..=data.len() {
                super::router(&data[..end]);
            }
        }
    }

    /// The proxies' bodies over their seeds and every prefix of each.
    #[test]
    fn the_proxies_pass_their_seed_corpora() {
        for (_, data) in seeds("mld_proxy") {
            for end in 0..=data.len() {
                super::mld_proxy(&data[..end]);
            }
        }
        for (_, data) in seeds("igmp_proxy") {
            for end in 0..=data.len() {
                super::proxy(&data[..end]);
            }
        }
    }

    #[test]
    fn mld_router_passes_its_seed_corpus() {
        for (_, data) in seeds("mld_router") {
            for end in 0..=data.len() {
                super::mld_router(&data[..end]);
            }
        }
    }

    /// Every seed with one byte flipped at each position in turn: headers, lengths,
    /// checksums and records of the kernel's packets go wrong one at a time, which must
    /// end in counted drops or state, never a panic or a broken invariant.
    #[test]
    fn one_byte_mutations_of_the_seeds() {
        for (target, body) in [
            ("igmp_router", super::router as fn(&[u8])),
            ("mld_router", super::mld_router),
        ] {
            for (_, data) in seeds(target) {
                for i in 1..data.len() {
                    let mut mutated = data.clone();
                    mutated[i] ^= 0xff;
                    body(&mutated);
                }
            }
        }
    }

    /// The seeds are sessions of packets the Linux kernel sent: each must get past the
    /// checks into the state machine, not just not panic.
    #[test]
    fn seeds_reach_the_state_machine() {
        for (path, data) in seeds("igmp_router") {
            let igmp = session::<Igmp>(&data, Ipv4Addr::new(10, 99, 0, 10), fixed)
                .expect("a seed is not empty");
            let r = &igmp.stats().received;
            assert!(r.report_v2 > 0 && r.report_v3 > 0, "{path:?}: {r:?}");
        }
        for (path, data) in seeds("mld_router") {
            let mld = session::<Mld>(&data, MLD_ROUTER, fixed_mld).expect("a seed is not empty");
            let r = &mld.stats().received;
            // MLDv1 reports count as report_v2, MLDv2 ones as report_v3.
            assert!(r.report_v2 > 0 && r.report_v3 > 0, "{path:?}: {r:?}");
            assert_eq!(mld.stats().dropped.bad_source, 0, "{path:?}");
        }
    }
}
