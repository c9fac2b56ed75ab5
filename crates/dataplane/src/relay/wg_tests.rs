//! Two hosts' WireGuard states talking in memory: handshakes, data, replays, strangers
//! and key rotation on either side without a lost packet.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use mcgate_domain::api::{Domain, DomainState, Peer, StreamMessage, Tunnel};
use mcgate_domain::forwarding::{DomainView, ForwardingTable, LocalMembership};

use super::*;

fn endpoint(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 51820)
}

fn address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 255, 0, n)
}

/// The table host `me` computes when hosts 1 and 2 have `keys`.
fn table(me: u8, keys: &[&HostKey]) -> ForwardingTable {
    let hosts: Vec<(u8, &HostKey)> = (1u8..).zip(keys.iter().copied()).collect();
    table_of(me, &hosts)
}

/// The table host `me` computes when the domain has `hosts` (number, key).
fn table_of(me: u8, hosts: &[(u8, &HostKey)]) -> ForwardingTable {
    let peers = hosts
        .iter()
        .map(|&(n, k)| Peer {
            host: format!("h{n}"),
            underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 4789),
            public_key: k.public_base64(),
            wireguard: endpoint(n),
            tunnel_address: address(n),
            egress: Vec::new(),
        })
        .collect();
    let state = DomainState {
        domain: Domain {
            name: "d".into(),
            vni: 7,
            igmp: Default::default(),
            static_sources: false,
            igmp_settings: Default::default(),
            subnets: vec![],
            hosts: vec![],
            tunnel: Tunnel::Wireguard,
        },
        peers,
        members: vec![],
        static_members: vec![],
        static_sources: vec![],
        gateways: Vec::new(),
    };
    let mut v = DomainView::new();
    v.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains: vec![state],
    });
    ForwardingTable::compute(&v, &format!("h{me}"), &[], &LocalMembership::new())
}

/// Host n's state with its own queue of messages in flight to the other host.
struct Host {
    n: u8,
    wg: Wg,
    /// Messages this host sent: (destination, bytes).
    sent: VecDeque<(SocketAddrV4, Vec<u8>)>,
    /// Inner packets it received, decrypted.
    got: Vec<Vec<u8>>,
    drops: Vec<DropReason>,
}

impl Host {
    fn new(n: u8, key: HostKey, now: Instant) -> Self {
        Self {
            n,
            wg: Wg::new(key, now),
            sent: VecDeque::new(),
            got: Vec::new(),
            drops: Vec::new(),
        }
    }

    fn seal(&mut self, to: u8, inner: &[u8], now: Instant) {
        let mut out = vec![0u8; inner.len() + WG_OVERHEAD + MIN_OUT];
        let mut sent = Vec::new();
        let r = self
            .wg
            .seal(address(to), inner, &mut out, now, &mut |d, m| {
                sent.push((d, m.to_vec()))
            });
        if let Some((d, len)) = r {
            sent.push((d, out[..len].to_vec()));
        }
        self.sent.extend(sent);
    }

    fn open(&mut self, from: u8, msg: &[u8], now: Instant) {
        let mut out = vec![0u8; msg.len() + MIN_OUT];
        let mut sent = Vec::new();
        let r = self
            .wg
            .open(endpoint(from), msg, &mut out, now, &mut |d, m| {
                sent.push((d, m.to_vec()))
            });
        match r {
            Ok(Some(o)) => {
                assert_eq!(o.peer, address(from));
                self.got.push(out[..o.len].to_vec());
            }
            Ok(None) => {}
            Err(e) => self.drops.push(e),
        }
        self.sent.extend(sent);
    }

    fn tick(&mut self, now: Instant) {
        let mut sent = Vec::new();
        self.wg.tick(now, &mut |d, m| sent.push((d, m.to_vec())));
        self.sent.extend(sent);
    }
}

/// Delivers every message in flight, both ways, until none is left; returns the
/// messages host `a` sent, for replays.
fn run(a: &mut Host, b: &mut Host, now: Instant) -> Vec<Vec<u8>> {
    let mut captured = Vec::new();
    for _ in 0..16 {
        if a.sent.is_empty() && b.sent.is_empty() {
            break;
        }
        while let Some((d, m)) = a.sent.pop_front() {
            assert_eq!(d, endpoint(b.n));
            captured.push(m.clone());
            b.open(a.n, &m, now);
        }
        while let Some((d, m)) = b.sent.pop_front() {
            assert_eq!(d, endpoint(a.n));
            a.open(b.n, &m, now);
        }
    }
    captured
}

/// An inner packet numbered `i` (the relay's real inner packets are IPv4; boringtun
/// checks the version and length).
fn inner(i: u8) -> Vec<u8> {
    let mut h = [0u8; super::super::inner::INNER_HEADER_LEN];
    super::super::inner::emit_header(&mut h, address(1), address(2), 50000, 1).unwrap();
    let mut p = h.to_vec();
    p.push(i);
    p
}

fn pair(now: Instant) -> (Host, Host, HostKey, HostKey) {
    let (ka, kb) = (HostKey::generate(), HostKey::generate());
    let mut a = Host::new(1, ka.clone(), now);
    let mut b = Host::new(2, kb.clone(), now);
    a.wg.set_table(&table(1, &[&ka, &kb]));
    b.wg.set_table(&table(2, &[&ka, &kb]));
    (a, b, ka, kb)
}

#[test]
fn first_packet_waits_for_the_handshake_and_arrives() {
    let now = Instant::now();
    let (mut a, mut b, ..) = pair(now);
    a.seal(2, &inner(1), now);
    assert_eq!(a.sent.len(), 1, "a handshake initiation only");
    assert_eq!(a.sent[0].1.first(), Some(&1));
    run(&mut a, &mut b, now);
    a.seal(2, &inner(2), now);
    run(&mut a, &mut b, now);
    assert_eq!(b.got, vec![inner(1), inner(2)]);
    assert!(
        b.drops.is_empty() && a.drops.is_empty(),
        "{:?} {:?}",
        a.drops,
        b.drops
    );
    // And back.
    b.seal(1, &inner(3), now);
    run(&mut b, &mut a, now);
    assert_eq!(a.got, vec![inner(3)]);
}

#[test]
fn replays_strangers_and_garbage_are_dropped() {
    let now = Instant::now();
    let (mut a, mut b, ka, kb) = pair(now);
    a.seal(2, &inner(1), now);
    run(&mut a, &mut b, now);
    a.seal(2, &inner(2), now);
    let captured = run(&mut a, &mut b, now);
    let data = captured.last().unwrap().clone();
    b.open(1, &data, now);
    assert_eq!(b.drops, vec![DropReason::Replay]);
    assert_eq!(b.got.len(), 2);
    // A host whose key the table does not hold.
    let mut stranger = Host::new(1, HostKey::generate(), now);
    stranger.wg.set_table(&table(1, &[&ka, &kb]));
    stranger.seal(2, &inner(9), now);
    let (_, init) = stranger.sent.pop_front().unwrap();
    b.drops.clear();
    b.open(1, &init, now);
    // A forged data message for a live index, and garbage of every message size.
    let mut forged = data.clone();
    forged[16] ^= 0x55;
    forged[8] = forged[8].wrapping_add(100);
    b.open(1, &forged, now);
    for len in [0, 3, 32, 92, 148, 200] {
        b.open(1, &vec![4u8; len], now);
        b.open(1, &vec![1u8; len], now);
    }
    assert!(b.sent.is_empty(), "no answer to strangers: {:?}", b.sent);
    assert_eq!(b.got.len(), 2);
    assert_eq!(b.drops.len(), 14);
    assert!(
        b.drops.iter().all(|d| *d == DropReason::NotAuthenticated),
        "{:?}",
        b.drops
    );
}

#[test]
fn a_host_no_longer_a_peer_is_refused_at_once() {
    let now = Instant::now();
    let (mut a, mut b, _, kb) = pair(now);
    a.seal(2, &inner(1), now);
    run(&mut a, &mut b, now);
    // h1 leaves the domain: b's table names only itself.
    b.wg.set_table(&table_of(2, &[(2, &kb)]));
    a.seal(2, &inner(2), now);
    run(&mut a, &mut b, now);
    assert_eq!(b.got, vec![inner(1)]);
    assert_eq!(b.drops, vec![DropReason::NotAuthenticated]);
}

/// Rotates `rotating`'s key while packets flow both ways; nothing is lost.
fn rotation(rotate_a: bool) {
    let t0 = Instant::now();
    let (mut a, mut b, ka, kb) = pair(t0);
    let mut sent_ab = Vec::new();
    let mut sent_ba = Vec::new();
    let mut step = |a: &mut Host, b: &mut Host, i: u8, now: Instant| {
        a.seal(2, &inner(i), now);
        b.seal(1, &inner(i), now);
        sent_ab.push(inner(i));
        sent_ba.push(inner(i));
        run(a, b, now);
        a.tick(now);
        b.tick(now);
        run(a, b, now);
    };
    for i in 0..5 {
        step(&mut a, &mut b, i, t0);
    }
    let new = HostKey::generate();
    let (ka2, kb2) = if rotate_a {
        a.wg.set_key(new.clone(), t0);
        (new, kb)
    } else {
        b.wg.set_key(new.clone(), t0);
        (ka, new)
    };
    // The rotating host's new key reaches the other through the controller a little
    // later: packets flow meanwhile.
    for i in 5..10 {
        step(&mut a, &mut b, i, t0);
    }
    a.wg.set_table(&table(1, &[&ka2, &kb2]));
    b.wg.set_table(&table(2, &[&ka2, &kb2]));
    let mut now = t0;
    for i in 10..60 {
        now += Duration::from_millis(500);
        step(&mut a, &mut b, i, now);
    }
    assert_eq!(b.got, sent_ab, "a to b lost packets: {:?}", b.drops);
    assert_eq!(a.got, sent_ba, "b to a lost packets: {:?}", a.drops);
    // The old sessions and key are gone: one session each, with the new keys.
    assert_eq!(a.wg.sessions.len(), 1);
    assert_eq!(b.wg.sessions.len(), 1);
    assert_eq!(a.wg.keys.len(), 1);
    assert_eq!(b.wg.keys.len(), 1);
}

#[test]
fn rotating_the_senders_key_loses_nothing() {
    rotation(true);
}

#[test]
fn rotating_the_receivers_key_loses_nothing() {
    rotation(false);
}

#[test]
fn a_tick_makes_sessions_before_traffic_needs_them() {
    let now = Instant::now();
    let (mut a, mut b, ..) = pair(now);
    a.tick(now);
    assert_eq!(a.sent.len(), 1, "one handshake initiation to h2");
    run(&mut a, &mut b, now);
    // The first packet goes out at once, sealed, with no handshake before it.
    a.seal(2, &inner(1), now);
    assert_eq!(a.sent.len(), 1);
    assert_eq!(a.sent[0].1.first(), Some(&4), "a transport message");
    run(&mut a, &mut b, now);
    assert_eq!(b.got, vec![inner(1)]);
}
