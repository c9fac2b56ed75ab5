//! Peer liveness in the data plane, without I/O and without a clock: which peers of the
//! host's domains are alive, judged by the keepalives they send ([`mcgate_wire::keepalive`]),
//! when to send ours, and when to look again.
//!
//! The shape is BFD's asynchronous mode (RFC 5880 section 3.2): every host sends each
//! peer a keepalive every `tx_interval` (less up to 25% jitter, section 6.8.7), and a
//! peer whose keepalives stopped for its detection time, its own Detect Mult times its
//! own interval as its keepalives say (section 6.8.4), is declared down. Unlike BFD
//! there is no three-way session handshake: a peer is judged only once it has been
//! heard (`Unknown` until then), so a peer that sends no keepalives (an agent without
//! them) is never declared down, and the controller's lease stays its only judge.
//!
//! What a state change means is for the caller: the agent stops replicating to a peer
//! that is down at once and tells the controller, which removes the host's members
//! only when its own heartbeats confirm it (see `docs/agent.md#peer-liveness`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Shortest keepalive interval, sent or accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest keepalive interval, sent or accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10);

/// How this host sends keepalives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessSettings {
    /// Time between keepalives to each peer (RFC 5880 "Desired Min TX Interval").
    pub tx_interval: Duration,
    /// Missed intervals that make this host dead to its peers (RFC 5880 "Detect Mult").
    pub detect_mult: u8,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        Self {
            tx_interval: Duration::from_millis(100),
            detect_mult: 3,
        }
    }
}

impl LivenessSettings {
    /// The settings kept within bounds: the interval within 10 ms..=10 s, the
    /// multiplier at least 1.
    pub fn clamped(self) -> Self {
        Self {
            tx_interval: self.tx_interval.clamp(MIN_INTERVAL, MAX_INTERVAL),
            detect_mult: self.detect_mult.max(1),
        }
    }

    /// How long peers wait before declaring this host down.
    pub fn detection_time(&self) -> Duration {
        self.tx_interval * u32::from(self.detect_mult)
    }
}

/// A peer's state as this host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerState {
    /// Never heard from: not judged (RFC 5880's session is not up yet).
    Unknown,
    /// Heard within its detection time.
    Up,
    /// Its keepalives stopped for its detection time.
    Down,
}

impl PeerState {
    /// The name in stats and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Up => "up",
            PeerState::Down => "down",
        }
    }
}

/// A keepalive as the driver received and authenticated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// The sender's sequence number.
    pub sequence: u64,
    /// The sender's interval.
    pub tx_interval: Duration,
    /// The sender's multiplier.
    pub detect_mult: u8,
    /// The sender is going away on purpose (a restart): not judged until heard again.
    pub admin_down: bool,
}

/// Why a keepalive was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The sender is not a peer of this host now.
    UnknownPeer,
    /// Its sequence number is not above the last one taken: a replay.
    Replay,
}

/// One peer's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLiveness {
    /// Where it is reached (its underlay address).
    pub address: Ipv4Addr,
    /// Its state.
    pub state: PeerState,
    /// When its last keepalive arrived.
    pub last_heard: Option<Instant>,
    /// Its detection time, from its last keepalive.
    pub detection_time: Duration,
    /// The last sequence number taken from it.
    last_sequence: Option<u64>,
    /// Since when it is in its state.
    pub since: Instant,
    /// Keepalives taken from it.
    pub received: u64,
    /// Times it was declared down.
    pub detections: u64,
}

/// The host's view of its peers. See the module documentation.
#[derive(Debug, Clone)]
pub struct PeerMonitor {
    settings: LivenessSettings,
    peers: BTreeMap<String, PeerLiveness>,
    next_tx: Instant,
    /// Keepalives refused, by reason: unknown sender, replay.
    pub refused_unknown: u64,
    /// Replays refused.
    pub refused_replay: u64,
}

impl PeerMonitor {
    /// A monitor with no peers; the first keepalives are due at `now`.
    pub fn new(settings: LivenessSettings, now: Instant) -> Self {
        Self {
            settings: settings.clamped(),
            peers: BTreeMap::new(),
            next_tx: now,
            refused_unknown: 0,
            refused_replay: 0,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> LivenessSettings {
        self.settings
    }

    /// The peers now, by host name with their underlay addresses. Peers that stay keep
    /// their state; a peer whose address changed starts again as `Unknown`.
    pub fn set_peers(&mut self, peers: &BTreeMap<String, Ipv4Addr>, now: Instant) {
        self.peers.retain(|h, p| peers.get(h) == Some(&p.address));
        for (host, address) in peers {
            self.peers.entry(host.clone()).or_insert(PeerLiveness {
                address: *address,
                state: PeerState::Unknown,
                last_heard: None,
                detection_time: Duration::ZERO,
                last_sequence: None,
                since: now,
                received: 0,
                detections: 0,
            });
        }
    }

    /// The peer whose underlay address is `address`, if any.
    pub fn peer_at(&self, address: Ipv4Addr) -> Option<&str> {
        self.peers
            .iter()
            .find(|(_, p)| p.address == address)
            .map(|(h, _)| h.as_str())
    }

    /// Takes an authenticated keepalive from `host` at `now`. A peer that was down or
    /// unknown is up again at once (RFC 5880 section 6.8.6: a packet from the peer);
    /// one that says it is going away (AdminDown) is no longer judged, so its restart
    /// is left to the controller's lease and never reported.
    pub fn handle_keepalive(
        &mut self,
        host: &str,
        k: Keepalive,
        now: Instant,
    ) -> Result<(), Refused> {
        let Some(p) = self.peers.get_mut(host) else {
            self.refused_unknown += 1;
            return Err(Refused::UnknownPeer);
        };
        if p.last_sequence.is_some_and(|s| k.sequence <= s) {
            self.refused_replay += 1;
            return Err(Refused::Replay);
        }
        p.last_sequence = Some(k.sequence);
        p.last_heard = Some(now);
        p.received += 1;
        let interval = k.tx_interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        p.detection_time = interval * u32::from(k.detect_mult.max(1));
        if k.admin_down {
            if p.state != PeerState::Unknown {
                p.state = PeerState::Unknown;
                p.since = now;
            }
            return Ok(());
        }
        if p.state != PeerState::Up {
            p.state = PeerState::Up;
            p.since = now;
        }
        Ok(())
    }

    /// Declares down every peer not heard for its detection time; returns whether any
    /// changed state.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for p in self.peers.values_mut() {
            if p.state == PeerState::Up
                && let Some(heard) = p.last_heard
                && now.saturating_duration_since(heard) >= p.detection_time
            {
                p.state = PeerState::Down;
                p.since = now;
                p.detections += 1;
                changed = true;
            }
        }
        changed
    }

    /// Whether keepalives are due at `now`; if so the next round is scheduled, one
    /// interval less `jitter_percent` (0..=25, RFC 5880 section 6.8.7) later.
    pub fn poll_transmit(&mut self, now: Instant, jitter_percent: u8) -> bool {
        if now < self.next_tx {
            return false;
        }
        let keep = 100 - u32::from(jitter_percent.min(25));
        self.next_tx = now + self.settings.tx_interval * keep / 100;
        true
    }

    /// Where keepalives go: every peer's address, by host name.
    pub fn destinations(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.peers.iter().map(|(h, p)| (h.as_str(), p.address))
    }

    /// When to call [`Self::handle_timeout`] and [`Self::poll_transmit`] next.
    pub fn poll_timeout(&self) -> Instant {
        self.peers
            .values()
            .filter(|p| p.state == PeerState::Up)
            .filter_map(|p| p.last_heard.map(|t| t + p.detection_time))
            .fold(self.next_tx, Instant::min)
    }

    /// The peers that are down.
    pub fn down(&self) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Down)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Every peer's state, by host name.
    pub fn peers(&self) -> &BTreeMap<String, PeerLiveness> {
        &self.peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ka(sequence: u64) -> Keepalive {
        Keepalive {
            sequence,
            tx_interval: 100 * MS,
            detect_mult: 3,
            admin_down: false,
        }
    }

    fn monitor(t0: Instant) -> PeerMonitor {
        let mut m = PeerMonitor::new(LivenessSettings::default(), t0);
        let peers = [
            ("b".to_string(), Ipv4Addr::new(10, 0, 0, 2)),
            ("c".to_string(), Ipv4Addr::new(10, 0, 0, 3)),
        ]
        .into();
        m.set_peers(&peers, t0);
        m
    }

    #[test]
    fn a_peer_never_heard_is_never_declared_down() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        assert!(!m.handle_timeout(t0 + Duration::from_secs(60)));
        assert!(m.down().is_empty());
        assert_eq!(m.peers()["b"].state, PeerState::Unknown);
    }

    #[test]
    fn a_silent_peer_is_down_after_its_detection_time_and_up_when_heard_again() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        m.handle_keepalive("b", ka(1), t0).unwrap();
        m.handle_keepalive("c", ka(1), t0).unwrap();
        // Heard every interval: stays up, however long.
        for i in 1..50u64 {
            let t = t0 + MS * (100 * i as u32);
            m.handle_keepalive("b", ka(1 + i), t).unwrap();
            assert!(!m.handle_timeout(t) || m.down() == ["c".to_string()].into());
        }
        let t = t0 + MS * 4_900;
        m.handle_keepalive("b", ka(100), t).unwrap();
        // 3 x 100 ms after b's last keepalive, not a moment before.
        assert!(!m.handle_timeout(t + 299 * MS) || !m.down().contains("b"));
        m.handle_timeout(t + 300 * MS);
        assert!(m.down().contains("b"));
        assert_eq!(m.peers()["b"].detections, 1);
        // The wake-up never lies beyond a detection.
        assert!(m.poll_timeout() <= t + 300 * MS);
        // Heard again: up at once.
        m.handle_keepalive("b", ka(101), t + 2_000 * MS).unwrap();
        assert_eq!(m.peers()["b"].state, PeerState::Up);
        assert!(!m.down().contains("b"));
    }

    #[test]
    fn the_detection_time_is_the_senders_own() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        let slow = Keepalive {
            sequence: 1,
            tx_interval: Duration::from_secs(1),
            detect_mult: 5,
            admin_down: false,
        };
        m.handle_keepalive("b", slow, t0).unwrap();
        assert!(!m.handle_timeout(t0 + Duration::from_millis(4_999)));
        assert!(m.handle_timeout(t0 + Duration::from_secs(5)));
        // Out-of-range timers are kept within bounds, never zero.
        let zero = Keepalive {
            sequence: 2,
            tx_interval: Duration::ZERO,
            detect_mult: 0,
            admin_down: false,
        };
        m.handle_keepalive("b", zero, t0).unwrap();
        assert_eq!(m.peers()["b"].detection_time, MIN_INTERVAL);
    }

    #[test]
    fn a_peer_going_away_on_purpose_is_not_judged_until_heard_again() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        m.handle_keepalive("b", ka(1), t0).unwrap();
        let going = Keepalive {
            admin_down: true,
            ..ka(2)
        };
        m.handle_keepalive("b", going, t0 + 50 * MS).unwrap();
        assert_eq!(m.peers()["b"].state, PeerState::Unknown);
        assert!(!m.handle_timeout(t0 + Duration::from_secs(30)) || !m.down().contains("b"));
        assert_eq!(m.peers()["b"].detections, 0);
        // Its successor's first keepalive makes it up again.
        m.handle_keepalive("b", ka(3), t0 + Duration::from_secs(31))
            .unwrap();
        assert_eq!(m.peers()["b"].state, PeerState::Up);
    }

    #[test]
    fn replays_and_strangers_are_refused() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        m.handle_keepalive("b", ka(5), t0).unwrap();
        assert_eq!(m.handle_keepalive("b", ka(5), t0), Err(Refused::Replay));
        assert_eq!(m.handle_keepalive("b", ka(4), t0), Err(Refused::Replay));
        assert_eq!(
            m.handle_keepalive("x", ka(9), t0),
            Err(Refused::UnknownPeer)
        );
        assert_eq!((m.refused_replay, m.refused_unknown), (2, 1));
        // A replay does not keep a dead peer alive.
        m.handle_timeout(t0 + 300 * MS);
        assert_eq!(
            m.handle_keepalive("b", ka(5), t0 + 301 * MS),
            Err(Refused::Replay)
        );
        assert!(m.down().contains("b"));
    }

    #[test]
    fn peers_that_go_or_move_are_forgotten() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        m.handle_keepalive("b", ka(1), t0).unwrap();
        m.handle_timeout(t0 + 300 * MS);
        assert!(m.down().contains("b"));
        // The controller removed b: it is no longer a peer, so no longer down.
        let only_c = [("c".to_string(), Ipv4Addr::new(10, 0, 0, 3))].into();
        m.set_peers(&only_c, t0 + 400 * MS);
        assert!(m.down().is_empty());
        assert_eq!(m.peer_at(Ipv4Addr::new(10, 0, 0, 2)), None);
        // b registers again (a restart): judged afresh, from its first keepalive.
        let both = [
            ("b".to_string(), Ipv4Addr::new(10, 0, 0, 2)),
            ("c".to_string(), Ipv4Addr::new(10, 0, 0, 9)),
        ]
        .into();
        m.set_peers(&both, t0 + 500 * MS);
        assert_eq!(m.peers()["b"].state, PeerState::Unknown);
        assert_eq!(m.peer_at(Ipv4Addr::new(10, 0, 0, 9)), Some("c"));
    }

    #[test]
    fn keepalives_go_every_interval_less_jitter() {
        let t0 = Instant::now();
        let mut m = monitor(t0);
        assert!(m.poll_transmit(t0, 0));
        assert!(!m.poll_transmit(t0 + 99 * MS, 0));
        assert!(m.poll_transmit(t0 + 100 * MS, 25));
        assert_eq!(m.poll_timeout(), t0 + 175 * MS);
        assert!(m.poll_transmit(t0 + 175 * MS, 200));
        assert_eq!(m.poll_timeout(), t0 + 250 * MS);
        assert_eq!(m.destinations().count(), 2);
    }
}
