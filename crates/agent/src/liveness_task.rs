//! The peer keepalive driver: one UDP socket at the underlay address and one thread of
//! its own (so a busy tokio runtime never delays a keepalive or a detection), feeding
//! [`PeerMonitor`] what arrives and sending what it says, when it says.
//!
//! Keepalives go straight over the underlay, beside the data plane, so they work the
//! same for both data planes and both tunnels (`wireguard`, `vxlan`), and they are
//! authenticated in both ([`crate::keepalive_auth`]). The set of peers that are down is
//! published on a watch channel: the agent's loop takes it out of the forwarding table
//! (the data plane stops sending to them at once) and the heartbeats carry it to the
//! controller.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mcgate_dataplane::HostKey;
use mcgate_domain::keys::{KEY_LEN, decode_key};
use mcgate_wire::keepalive::{self, HEADER_LEN};
use serde::Serialize;
use tokio::sync::watch;

use crate::core::peer_liveness::{Keepalive, LivenessSettings, PeerMonitor, Refused};
use crate::keepalive_auth::PairKey;

/// How often the view is published for the admin endpoint.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The longest the thread waits for a keepalive before looking at its timers and
/// commands again.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// How long after a key rotation keepalives are also sent under the old key, until
/// every peer has the new public key from the controller.
const OLD_KEY_GRACE: Duration = Duration::from_secs(10);

/// A peer as the forwarding table names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKey {
    /// Host name.
    pub host: String,
    /// Underlay address: where keepalives go and come from.
    pub address: Ipv4Addr,
    /// WireGuard public key (standard base64).
    pub public_key: String,
}

enum Command {
    Peers(Vec<PeerKey>),
    Key(HostKey),
    Goodbye,
}

/// Drop counters of received keepalives.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Refusals {
    /// Not a keepalive (bad length, magic, version or field).
    pub malformed: u64,
    /// From an address that is no peer of this host.
    pub unknown_peer: u64,
    /// The tag did not verify (a forgery, or keys not yet in step after a rotation).
    pub not_authenticated: u64,
    /// A sequence number already seen: a replay.
    pub replay: u64,
}

/// One peer as the admin endpoint shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerLivenessView {
    /// Host name.
    pub host: String,
    /// Underlay address.
    pub address: Ipv4Addr,
    /// "unknown" (never heard, or restarting), "up" or "down".
    pub state: &'static str,
    /// Milliseconds in this state.
    pub since_ms: u64,
    /// Milliseconds since its last keepalive, if any came.
    pub last_heard_ms: Option<u64>,
    /// Its detection time from its own timers, in milliseconds.
    pub detection_time_ms: u64,
    /// Keepalives taken from it.
    pub received: u64,
    /// Times it was declared down.
    pub detections: u64,
}

/// The keepalives' state and counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LivenessView {
    /// Whether keepalives run (`--liveness-port` not 0).
    pub enabled: bool,
    /// The UDP port.
    pub port: u16,
    /// Milliseconds between keepalives.
    pub tx_interval_ms: u64,
    /// Intervals missed before a peer is declared down.
    pub detect_mult: u8,
    /// Keepalives sent.
    pub sent: u64,
    /// Keepalives the socket refused to send.
    pub send_errors: u64,
    /// Keepalives received and taken.
    pub received: u64,
    /// Keepalives dropped, by reason.
    pub refused: Refusals,
    /// Peers declared down, in total (also those no longer peers).
    pub detections: u64,
    /// Every peer, by host name.
    pub peers: Vec<PeerLivenessView>,
}

impl LivenessView {
    /// The peers that are down now.
    pub fn down(&self) -> impl Iterator<Item = &PeerLivenessView> {
        self.peers.iter().filter(|p| p.state == "down")
    }
}

/// The running keepalives: a handle on their thread.
pub struct Liveness {
    tx: Sender<Command>,
    view: Arc<Mutex<LivenessView>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness").finish_non_exhaustive()
    }
}

impl Liveness {
    /// Binds `addr` and starts sending keepalives with `settings` under `key`; the set
    /// of peers that are down goes to `down`.
    pub fn start(
        addr: SocketAddrV4,
        settings: LivenessSettings,
        key: HostKey,
        down: watch::Sender<BTreeSet<String>>,
    ) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(addr)?;
        let settings = settings.clamped();
        let view = Arc::new(Mutex::new(LivenessView {
            enabled: true,
            port: addr.port(),
            tx_interval_ms: settings.tx_interval.as_millis() as u64,
            detect_mult: settings.detect_mult,
            ..LivenessView::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut driver = Driver {
            sock,
            port: addr.port(),
            monitor: PeerMonitor::new(settings, Instant::now()),
            key,
            old_key: None,
            keys: HashMap::new(),
            sequence: 0,
            counters: LivenessView::default(),
            view: view.clone(),
            down,
            last_down: BTreeSet::new(),
            last_publish: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("mcgate-liveness".into())
            .spawn(move || driver.run(&rx))?;
        Ok(Self {
            tx,
            view,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The peers now (every other host of the host's domains).
    pub fn set_peers(&self, peers: Vec<PeerKey>) {
        let _ = self.tx.send(Command::Peers(peers));
    }

    /// A new own key pair (rotation).
    pub fn set_key(&self, key: HostKey) {
        let _ = self.tx.send(Command::Key(key));
    }

    /// The state as last published.
    pub fn view(&self) -> LivenessView {
        self.view
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Tells every peer this host is going away on purpose (AdminDown), so they do not
    /// report it, and stops.
    pub fn goodbye(&self) {
        let _ = self.tx.send(Command::Goodbye);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Driver {
    sock: UdpSocket,
    port: u16,
    monitor: PeerMonitor,
    key: HostKey,
    /// The key before the last rotation, until when keepalives are also sent under it.
    old_key: Option<(HostKey, Instant)>,
    /// Each peer's public key and the key it shares with this host.
    keys: HashMap<String, ([u8; KEY_LEN], Option<PairKey>)>,
    sequence: u64,
    counters: LivenessView,
    view: Arc<Mutex<LivenessView>>,
    down: watch::Sender<BTreeSet<String>>,
    last_down: BTreeSet<String>,
    last_publish: Instant,
}

impl Driver {
    fn run(&mut self, rx: &Receiver<Command>) {
        let mut buf = [0u8; 128];
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Command::Peers(p)) => self.set_peers(p),
                    Ok(Command::Key(k)) => {
                        let old = std::mem::replace(&mut self.key, k);
                        self.old_key = Some((old, Instant::now() + OLD_KEY_GRACE));
                        self.rekey();
                    }
                    Ok(Command::Goodbye) => {
                        self.send_all(true);
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            self.monitor.handle_timeout(now);
            if self.monitor.poll_transmit(now, fastrand::u8(0..=25)) {
                self.send_all(false);
            }
            self.publish(now);
            let wait = self
                .monitor
                .poll_timeout()
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), MAX_WAIT);
            let _ = self.sock.set_read_timeout(Some(wait));
            match self.sock.recv_from(&mut buf) {
                Ok((n, SocketAddr::V4(from))) => {
                    self.receive(*from.ip(), buf.get(..n).unwrap_or(&[]));
                }
                Ok(_) => self.counters.refused.unknown_peer += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "keepalive receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn set_peers(&mut self, peers: Vec<PeerKey>) {
        let by_host: BTreeMap<String, Ipv4Addr> =
            peers.iter().map(|p| (p.host.clone(), p.address)).collect();
        self.monitor.set_peers(&by_host, Instant::now());
        self.keys.retain(|h, _| by_host.contains_key(h));
        for p in peers {
            let Some(public) = decode_key(&p.public_key) else {
                // No usable key: nothing from it authenticates, so it is never judged.
                self.keys.remove(&p.host);
                continue;
            };
            if self.keys.get(&p.host).is_some_and(|(k, _)| *k == public) {
                continue;
            }
            let pair = PairKey::derive(&self.key, &public);
            self.keys.insert(p.host, (public, pair));
        }
    }

    fn rekey(&mut self) {
        for (public, pair) in self.keys.values_mut() {
            *pair = PairKey::derive(&self.key, public);
        }
    }

    fn next_sequence(&mut self) -> u64 {
        // Above every sequence number this host sent before, even in an earlier run:
        // the wall clock in microseconds, or one more than the last.
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.sequence = wall.max(self.sequence + 1);
        self.sequence
    }

    fn send_all(&mut self, admin_down: bool) {
        let settings = self.monitor.settings();
        let destinations: Vec<(String, Ipv4Addr)> = self
            .monitor
            .destinations()
            .map(|(h, a)| (h.to_string(), a))
            .collect();
        let old = self
            .old_key
            .take()
            .filter(|(_, until)| Instant::now() < *until);
        for (host, address) in destinations {
            let Some((public, pair)) = self.keys.get(&host).cloned() else {
                continue;
            };
            let mut under = Vec::with_capacity(2);
            if let Some(pair) = pair {
                under.push((*self.key.public().as_bytes(), pair));
            }
            if let Some((k, _)) = &old
                && let Some(pair) = PairKey::derive(k, &public)
            {
                under.push((*k.public().as_bytes(), pair));
            }
            for (own, pair) in under {
                let repr = keepalive::Repr {
                    detect_mult: settings.detect_mult,
                    tx_interval_us: settings.tx_interval.as_micros() as u32,
                    admin_down,
                    sequence: self.next_sequence(),
                };
                let mut header = [0u8; HEADER_LEN];
                repr.emit(&mut header);
                let packet = repr.to_packet(&pair.tag(&own, &header));
                match self
                    .sock
                    .send_to(&packet, SocketAddrV4::new(address, self.port))
                {
                    Ok(_) => self.counters.sent += 1,
                    Err(_) => self.counters.send_errors += 1,
                }
            }
        }
        self.old_key = old;
    }

    fn receive(&mut self, from: Ipv4Addr, bytes: &[u8]) {
        let (repr, tag) = match keepalive::Repr::parse(bytes) {
            Ok(p) => p,
            Err(_) => {
                self.counters.refused.malformed += 1;
                return;
            }
        };
        let Some(host) = self.monitor.peer_at(from).map(str::to_string) else {
            self.counters.refused.unknown_peer += 1;
            return;
        };
        let mut header = [0u8; HEADER_LEN];
        repr.emit(&mut header);
        // The header as sent, not as re-emitted: a reserved bit set by the sender
        // must fail the tag, not pass it.
        if bytes.get(..HEADER_LEN) != Some(&header[..]) {
            self.counters.refused.malformed += 1;
            return;
        }
        let authentic = self
            .keys
            .get(&host)
            .and_then(|(public, pair)| pair.as_ref().map(|p| p.verify(public, &header, &tag)))
            .unwrap_or(false);
        if !authentic {
            self.counters.refused.not_authenticated += 1;
            return;
        }
        let k = Keepalive {
            sequence: repr.sequence,
            tx_interval: Duration::from_micros(u64::from(repr.tx_interval_us)),
            detect_mult: repr.detect_mult,
            admin_down: repr.admin_down,
        };
        match self.monitor.handle_keepalive(&host, k, Instant::now()) {
            Ok(()) => self.counters.received += 1,
            Err(Refused::Replay) => self.counters.refused.replay += 1,
            Err(Refused::UnknownPeer) => self.counters.refused.unknown_peer += 1,
        }
    }

    /// Publishes the down set at once when it changed, and the view now and then.
    fn publish(&mut self, now: Instant) {
        let down = self.monitor.down();
        let changed = down != self.last_down;
        if changed {
            for h in down.difference(&self.last_down) {
                self.counters.detections += 1;
                tracing::warn!(peer = %h, "peer keepalives stopped: not sending to it, telling the controller");
            }
            for h in self.last_down.difference(&down) {
                tracing::info!(peer = %h, "peer is back (or gone from the domains)");
            }
            self.down.send_replace(down.clone());
            self.last_down = down;
        }
        if !changed && now.duration_since(self.last_publish) < PUBLISH_EVERY {
            return;
        }
        self.last_publish = now;
        let peers: Vec<PeerLivenessView> = self
            .monitor
            .peers()
            .iter()
            .map(|(h, p)| PeerLivenessView {
                host: h.clone(),
                address: p.address,
                state: p.state.as_str(),
                since_ms: now.saturating_duration_since(p.since).as_millis() as u64,
                last_heard_ms: p
                    .last_heard
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                detection_time_ms: p.detection_time.as_millis() as u64,
                received: p.received,
                detections: p.detections,
            })
            .collect();
        let mut view = self.counters.clone();
        view.peers = peers;
        if let Ok(mut v) = self.view.lock() {
            view.enabled = v.enabled;
            view.port = v.port;
            view.tx_interval_ms = v.tx_interval_ms;
            view.detect_mult = v.detect_mult;
            *v = view;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn state_of(l: &Liveness, host: &str) -> &'static str {
        l.view()
            .peers
            .iter()
            .find(|p| p.host == host)
            .map_or("", |p| p.state)
    }

    /// Two hosts on loopback addresses, keepalives every 20 ms: they see each other,
    /// refuse a forgery, take a goodbye as no death, and find a silent one down.
    #[test]
    fn two_hosts_judge_each_other_over_loopback() {
        let port = UdpSocket::bind("127.0.0.2:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let (ip_a, ip_b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
        let (ka, kb) = (HostKey::generate(), HostKey::generate());
        // 100 ms detection: short, yet a loaded machine's scheduling does not flap it.
        let settings = LivenessSettings {
            tx_interval: Duration::from_millis(20),
            detect_mult: 5,
        };
        let peer = |host: &str, address, key: &HostKey| PeerKey {
            host: host.into(),
            address,
            public_key: key.public_base64(),
        };
        let start_a = || {
            let a = Liveness::start(
                SocketAddrV4::new(ip_a, port),
                settings,
                ka.clone(),
                watch::channel(BTreeSet::new()).0,
            )
            .expect("bind a");
            a.set_peers(vec![peer("b", ip_b, &kb)]);
            a
        };
        let (down_b, down) = watch::channel(BTreeSet::new());
        let b = Liveness::start(SocketAddrV4::new(ip_b, port), settings, kb.clone(), down_b)
            .expect("bind b");
        b.set_peers(vec![peer("a", ip_a, &ka)]);
        let a = start_a();
        assert!(wait(
            || state_of(&b, "a") == "up" && state_of(&a, "b") == "up"
        ));

        // A keepalive from a's address tagged under another key is refused.
        let forger = UdpSocket::bind(SocketAddrV4::new(ip_a, 0)).expect("bind forger");
        let wrong = PairKey::derive(&HostKey::generate(), kb.public().as_bytes()).unwrap();
        let repr = keepalive::Repr {
            detect_mult: 5,
            tx_interval_us: 20_000,
            admin_down: true,
            sequence: u64::MAX,
        };
        let mut header = [0u8; HEADER_LEN];
        repr.emit(&mut header);
        let forged = repr.to_packet(&wrong.tag(ka.public().as_bytes(), &header));
        forger
            .send_to(&forged, SocketAddrV4::new(ip_b, port))
            .expect("send");
        assert!(wait(|| b.view().refused.not_authenticated >= 1));
        assert_eq!(state_of(&b, "a"), "up");

        // A goodbye: a is no longer judged, nothing is reported.
        a.goodbye();
        assert!(wait(|| state_of(&b, "a") == "unknown"));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(b.view().detections, 0);
        assert!(down.borrow().is_empty());

        // Back, then gone without a word: found down, and published.
        let a = start_a();
        assert!(wait(|| state_of(&b, "a") == "up"));
        drop(a);
        assert!(wait(|| down.borrow().contains("a")));
        assert_eq!(state_of(&b, "a"), "down");
        assert_eq!(b.view().detections, 1);
        b.goodbye();
    }
}
