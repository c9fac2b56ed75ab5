//! WireGuard sessions with the peers of the host's `tunnel = "wireguard"` domains, on
//! boringtun's Noise IK state machine ([`Tunn`]): one per (own key, peer key) pair.
//!
//! - Peers come from the forwarding table only: a message is accepted when it
//!   authenticates under the static key the controller gave for one of the domains'
//!   hosts. Handshake initiations are matched to a peer by the static key they carry
//!   ([`parse_handshake_anon`], tried with each of the host's own keys), every other
//!   message by its receiver index (the top 24 bits name the session's [`Tunn`]).
//! - Key rotation, on either side, never cuts a flow: a new key pair gets new [`Tunn`]s
//!   beside the old ones; traffic keeps going out on the newest one with a session,
//!   and the older ones are dropped [`SWITCH_GRACE`] after the newest has one (or
//!   [`KEY_GRACE`] after the rotation at the latest).
//! - Timers (handshake retries, keepalives, rekeying) run from [`Wg::tick`], which the
//!   relay's thread calls a few times a second; a tick also starts a handshake with
//!   every current peer that has no session, so flows never wait for one. This module
//!   reads the clock only through its callers and boringtun.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::PublicKey;
use mcgate_domain::api::Tunnel;
use mcgate_domain::forwarding::ForwardingTable;
use mcgate_domain::keys::decode_key;

use crate::HostKey;
use crate::counters::DropReason;

/// How long older sessions keep being accepted after the newest one is up, so packets
/// already on the way when the peer switched are still delivered.
pub const SWITCH_GRACE: Duration = Duration::from_secs(5);
/// The longest an old own key stays usable after a rotation.
pub const KEY_GRACE: Duration = Duration::from_secs(120);
/// Bytes WireGuard adds to an inner packet: type, receiver, counter (16) and tag (16).
pub const WG_OVERHEAD: usize = 32;
/// The smallest output buffer boringtun accepts (a handshake initiation).
pub const MIN_OUT: usize = 148;
/// The largest inner packet sealed (a 9216-byte jumbo frame with its headers) plus
/// the message overhead: boringtun panics on a shorter output buffer.
const SCRATCH: usize = 16 << 10;

/// A peer as the table names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerInfo {
    host: String,
    endpoint: SocketAddrV4,
    tunnel_address: Ipv4Addr,
}

/// One Noise session state machine between one own key and one peer key.
struct Session {
    tunn: Tunn,
    own: [u8; 32],
    peer: [u8; 32],
    created: Instant,
    /// When it first had a session.
    up_since: Option<Instant>,
}

/// An authenticated, decrypted inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Length of the inner packet at the start of the output buffer.
    pub len: usize,
    /// The sending peer's tunnel address (what its inner source must be).
    pub peer: Ipv4Addr,
}

/// What to send after handling a message or a tick: (destination, bytes) pairs are
/// handed to `send` as they come.
pub type Send<'a> = &'a mut dyn FnMut(SocketAddrV4, &[u8]);

/// The host's WireGuard state.
pub struct Wg {
    /// Own keys, newest last, with when each came.
    keys: Vec<(HostKey, Instant)>,
    /// Peers by static public key: every current key, and a rotated-away key while
    /// its host is still a peer.
    peers: HashMap<[u8; 32], PeerInfo>,
    /// Each peer tunnel address's current key.
    by_address: HashMap<Ipv4Addr, [u8; 32]>,
    /// Sessions by their 24-bit index.
    sessions: HashMap<u32, Session>,
    /// Session index by (own key, peer key): the per-packet lookup.
    pairs: HashMap<([u8; 32], [u8; 32]), u32>,
    next_index: u32,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Wg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wg")
            .field("peers", &self.peers.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn reason(e: &WireGuardError) -> DropReason {
    match e {
        WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter => DropReason::Replay,
        _ => DropReason::NotAuthenticated,
    }
}

impl Wg {
    /// The state of a host with key pair `key`, and no peers yet.
    pub fn new(key: HostKey, now: Instant) -> Self {
        Self {
            keys: vec![(key, now)],
            peers: HashMap::new(),
            by_address: HashMap::new(),
            sessions: HashMap::new(),
            pairs: HashMap::new(),
            next_index: 1,
            // Packets queued during a handshake are sealed here: room for the largest.
            scratch: vec![0; SCRATCH],
        }
    }

    fn newest_own(&self) -> Option<[u8; 32]> {
        self.keys.last().map(|(k, _)| *k.public().as_bytes())
    }

    fn own_key(&self, public: &[u8; 32]) -> Option<&HostKey> {
        self.keys
            .iter()
            .map(|(k, _)| k)
            .find(|k| k.public().as_bytes() == public)
    }

    /// A new own key pair (rotation); the old one stays for [`KEY_GRACE`] at most.
    pub fn set_key(&mut self, key: HostKey, now: Instant) {
        self.keys.push((key, now));
    }

    /// Takes the peers of the table's WireGuard domains. A peer whose key changed keeps
    /// its old key's sessions for the grace; a host no longer a peer loses them now.
    pub fn set_table(&mut self, table: &ForwardingTable) {
        let mut current: HashMap<[u8; 32], PeerInfo> = HashMap::new();
        for d in table
            .domains()
            .iter()
            .filter(|d| d.tunnel == Tunnel::Wireguard)
        {
            for p in &d.tunnel_peers {
                let Some(key) = decode_key(&p.public_key) else {
                    continue;
                };
                current.insert(
                    key,
                    PeerInfo {
                        host: p.host.clone(),
                        endpoint: p.wireguard,
                        tunnel_address: p.tunnel_address,
                    },
                );
            }
        }
        self.by_address = current
            .iter()
            .map(|(k, p)| (p.tunnel_address, *k))
            .collect();
        // An old key stays only while its host is a peer with another key.
        let hosts: HashMap<&str, &PeerInfo> =
            current.values().map(|p| (p.host.as_str(), p)).collect();
        let mut kept: HashMap<[u8; 32], PeerInfo> = HashMap::new();
        for (k, old) in &self.peers {
            if current.contains_key(k) {
                continue;
            }
            if let Some(now) = hosts.get(old.host.as_str()) {
                kept.insert(*k, (*now).clone());
            }
        }
        current.extend(kept);
        self.peers = current;
        let peers = &self.peers;
        self.sessions.retain(|_, s| peers.contains_key(&s.peer));
        self.forget_pairs();
    }

    /// Drops the pair entries of sessions that are gone.
    fn forget_pairs(&mut self) {
        let sessions = &self.sessions;
        self.pairs.retain(|_, i| sessions.contains_key(i));
    }

    fn new_session(&mut self, own: [u8; 32], peer: [u8; 32], now: Instant) -> Option<u32> {
        let secret = self.own_key(&own)?.secret().clone();
        let mut index = self.next_index;
        while self.sessions.contains_key(&index) || index == 0 {
            index = (index + 1) & 0x00ff_ffff;
        }
        self.next_index = (index + 1) & 0x00ff_ffff;
        let tunn = Tunn::new(secret, PublicKey::from(peer), None, None, index, None).ok()?;
        self.pairs.insert((own, peer), index);
        self.sessions.insert(
            index,
            Session {
                tunn,
                own,
                peer,
                created: now,
                up_since: None,
            },
        );
        Some(index)
    }

    fn find_session(&self, own: &[u8; 32], peer: &[u8; 32]) -> Option<u32> {
        self.pairs.get(&(*own, *peer)).copied()
    }

    /// Encrypts inner packet `inner` for the peer with tunnel address `to` into `out`
    /// (at least `inner.len() + 32` and 148 bytes); returns the message's length and
    /// where it goes. `None`: nothing to send now (no such peer, or the packet waits
    /// for a handshake, whose initiation went to `send`).
    pub fn seal(
        &mut self,
        to: Ipv4Addr,
        inner: &[u8],
        out: &mut [u8],
        now: Instant,
        send: Send<'_>,
    ) -> Option<(SocketAddrV4, usize)> {
        // boringtun panics on short buffers; a packet it could queue must fit the
        // scratch it is later sealed into.
        if out.len() < (inner.len() + WG_OVERHEAD).max(MIN_OUT)
            || inner.len() + WG_OVERHEAD > SCRATCH
        {
            return None;
        }
        let peer = *self.by_address.get(&to)?;
        let endpoint = self.peers.get(&peer)?.endpoint;
        let own = self.newest_own()?;
        let newest = match self.find_session(&own, &peer) {
            Some(i) => i,
            None => self.new_session(own, peer, now)?,
        };
        let newest_up = self
            .sessions
            .get(&newest)
            .is_some_and(|s| s.tunn.time_since_last_handshake().is_some());
        let index = if newest_up {
            newest
        } else {
            // Keep the flow on an older session with the peer while the new one is
            // being made, and make it.
            let older = self
                .sessions
                .iter()
                .filter(|(i, s)| {
                    **i != newest
                        && s.peer_host_is(&self.peers, &peer)
                        && s.tunn.time_since_last_handshake().is_some()
                })
                .max_by_key(|(_, s)| s.created)
                .map(|(i, _)| *i);
            match older {
                Some(o) => {
                    if let Some(s) = self.sessions.get_mut(&newest)
                        && let TunnResult::WriteToNetwork(m) =
                            s.tunn.format_handshake_initiation(&mut self.scratch, false)
                    {
                        send(endpoint, m);
                    }
                    o
                }
                None => newest,
            }
        };
        let s = self.sessions.get_mut(&index)?;
        match s.tunn.encapsulate(inner, out) {
            TunnResult::WriteToNetwork(m) => {
                let len = m.len();
                // A handshake initiation (type 1) means the packet was queued.
                if m.first() == Some(&1) {
                    send(endpoint, m);
                    return None;
                }
                Some((endpoint, len))
            }
            _ => None,
        }
    }

    /// Handles a message that arrived from `from`; an authenticated data packet is
    /// decrypted into `out` (as long as `datagram`). Replies (handshake responses,
    /// keepalives, packets queued during a handshake) go to `send`.
    pub fn open(
        &mut self,
        from: SocketAddrV4,
        datagram: &[u8],
        out: &mut [u8],
        now: Instant,
        send: Send<'_>,
    ) -> Result<Option<Opened>, DropReason> {
        if out.len() < datagram.len().max(MIN_OUT) {
            return Err(DropReason::Truncated);
        }
        let packet =
            Tunn::parse_incoming_packet(datagram).map_err(|_| DropReason::NotAuthenticated)?;
        let index = match packet {
            Packet::HandshakeInit(ref init) => {
                let (own, peer) = self
                    .keys
                    .iter()
                    .rev()
                    .find_map(|(k, _)| {
                        let half = parse_handshake_anon(k.secret(), &k.public(), init).ok()?;
                        Some((*k.public().as_bytes(), half.peer_static_public))
                    })
                    .ok_or(DropReason::NotAuthenticated)?;
                if !self.peers.contains_key(&peer) {
                    return Err(DropReason::NotAuthenticated);
                }
                match self.find_session(&own, &peer) {
                    Some(i) => i,
                    None => self
                        .new_session(own, peer, now)
                        .ok_or(DropReason::NotAuthenticated)?,
                }
            }
            Packet::HandshakeResponse(ref p) => p.receiver_idx >> 8,
            Packet::PacketCookieReply(ref p) => p.receiver_idx >> 8,
            Packet::PacketData(ref p) => p.receiver_idx >> 8,
        };
        let s = self
            .sessions
            .get_mut(&index)
            .ok_or(DropReason::NotAuthenticated)?;
        let info = self
            .peers
            .get(&s.peer)
            .ok_or(DropReason::NotAuthenticated)?;
        let (endpoint, address) = (info.endpoint, info.tunnel_address);
        let result = s
            .tunn
            .decapsulate(Some(IpAddr::V4(*from.ip())), datagram, out);
        let opened = match result {
            TunnResult::WriteToTunnelV4(p, _) => Some(Opened {
                len: p.len(),
                peer: address,
            }),
            TunnResult::WriteToNetwork(m) => {
                // A handshake response goes back where the initiation came from; a
                // keepalive or queued packets to the peer's endpoint.
                send(
                    if matches!(packet, Packet::HandshakeInit(_)) {
                        from
                    } else {
                        endpoint
                    },
                    m,
                );
                // Packets queued while the handshake ran follow it.
                while let TunnResult::WriteToNetwork(m) =
                    s.tunn.decapsulate(None, &[], &mut self.scratch)
                {
                    send(endpoint, m);
                }
                None
            }
            TunnResult::Done => None,
            TunnResult::Err(e) => return Err(reason(&e)),
            TunnResult::WriteToTunnelV6(..) => return Err(DropReason::WrongInnerSource),
        };
        if s.up_since.is_none() && s.tunn.time_since_last_handshake().is_some() {
            s.up_since = Some(now);
        }
        Ok(opened)
    }

    /// Runs every session's timers (retries, keepalives, rekeying; what they send goes
    /// to `send`) and retires sessions and own keys that rotation replaced.
    pub fn tick(&mut self, now: Instant, send: Send<'_>) {
        // Every current peer gets a session before traffic needs one: a burst at the
        // start of a flow would otherwise wait for the handshake, and boringtun queues
        // only so much meanwhile.
        if let Some(own) = self.newest_own() {
            let peers: Vec<[u8; 32]> = self.by_address.values().copied().collect();
            for peer in peers {
                let index = match self.find_session(&own, &peer) {
                    Some(i) => i,
                    None => match self.new_session(own, peer, now) {
                        Some(i) => i,
                        None => continue,
                    },
                };
                let endpoint = self.peers.get(&peer).map(|p| p.endpoint);
                if let (Some(s), Some(endpoint)) = (self.sessions.get_mut(&index), endpoint)
                    && s.tunn.time_since_last_handshake().is_none()
                    && let TunnResult::WriteToNetwork(m) =
                        s.tunn.format_handshake_initiation(&mut self.scratch, false)
                {
                    send(endpoint, m);
                }
            }
        }
        for s in self.sessions.values_mut() {
            let Some(endpoint) = self.peers.get(&s.peer).map(|p| p.endpoint) else {
                continue;
            };
            if let TunnResult::WriteToNetwork(m) = s.tunn.update_timers(&mut self.scratch) {
                send(endpoint, m);
            }
            if s.up_since.is_none() && s.tunn.time_since_last_handshake().is_some() {
                s.up_since = Some(now);
            }
        }
        self.retire(now);
    }

    fn retire(&mut self, now: Instant) {
        let newest_own = self.newest_own();
        // Per host: the newest pair (newest own key, the host's current key), when it
        // has been up for the grace, makes every other session with the host obsolete.
        let mut settled: HashMap<String, u32> = HashMap::new();
        for (i, s) in &self.sessions {
            let Some(info) = self.peers.get(&s.peer) else {
                continue;
            };
            let current = self.by_address.get(&info.tunnel_address) == Some(&s.peer);
            if current
                && Some(s.own) == newest_own
                && s.up_since
                    .is_some_and(|t| now.duration_since(t) >= SWITCH_GRACE)
            {
                settled.insert(info.host.clone(), *i);
            }
        }
        let peers = &self.peers;
        let keys = &self.keys;
        // When the own key of a session was replaced by a newer one, if it was.
        let replaced_at = |own: &[u8; 32]| -> Option<Option<Instant>> {
            let pos = keys
                .iter()
                .position(|(k, _)| k.public().as_bytes() == own)?;
            Some(keys.get(pos + 1).map(|(_, since)| *since))
        };
        let too_old = |s: &Session| match replaced_at(&s.own) {
            None => true,
            Some(None) => false,
            Some(Some(t)) => now.duration_since(t) >= KEY_GRACE,
        };
        self.sessions.retain(|i, s| {
            let Some(info) = peers.get(&s.peer) else {
                return false;
            };
            match settled.get(&info.host) {
                Some(keep) => keep == i,
                None => !too_old(s),
            }
        });
        self.forget_pairs();
        // Rotated-away peer keys with no session left are forgotten.
        let by_address = &self.by_address;
        let sessions = &self.sessions;
        self.peers.retain(|k, p| {
            by_address.get(&p.tunnel_address) == Some(k) || sessions.values().any(|s| &s.peer == k)
        });
        // An old own key answers handshakes of peers that have not learned the new
        // one yet; it goes when no session uses it after the switch grace, or after
        // the key grace.
        let used: Vec<[u8; 32]> = self.sessions.values().map(|s| s.own).collect();
        let replaced: Vec<Option<Instant>> = (0..self.keys.len())
            .map(|i| self.keys.get(i + 1).map(|(_, t)| *t))
            .collect();
        let mut i = 0;
        self.keys.retain(|(k, _)| {
            let keep = match replaced.get(i).copied().flatten() {
                None => true,
                Some(t) => {
                    let age = now.duration_since(t);
                    age < KEY_GRACE && (age < SWITCH_GRACE || used.contains(k.public().as_bytes()))
                }
            };
            i += 1;
            keep
        });
    }
}

impl Session {
    /// Whether this session is with the host that owns key `peer` (the same key or an
    /// older key of the same host).
    fn peer_host_is(&self, peers: &HashMap<[u8; 32], PeerInfo>, peer: &[u8; 32]) -> bool {
        match (peers.get(&self.peer), peers.get(peer)) {
            (Some(a), Some(b)) => a.host == b.host,
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "wg_tests.rs"]
mod tests;
