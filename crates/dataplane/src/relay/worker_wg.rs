//! The relay thread's WireGuard side: sealing the copies the plans send to
//! `tunnel = "wireguard"` domains, opening what arrives on the WireGuard socket, and
//! running the sessions' timers. The per-packet decisions stay in
//! [`decide`](super::decide), the inner packet's checks in [`inner`](super::inner), the
//! Noise sessions in [`wg`](super::wg).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_sys::packet::{FrameBatch, MAX_BATCH, Part};
use mcgate_sys::tunnel::{Datagram, GsoScratch, TunnelSocket, TunnelTx};
use mcgate_wire::vxlan;

use super::checksum::complete_partial_udp;
use super::decide::Via;
use super::execute::{forward_tunnelled, queues};
use super::inner::{self, INNER_HEADER_LEN};
use super::wg::{MIN_OUT, WG_OVERHEAD, Wg};
use super::worker::{SLOT, Worker};
use crate::HostKey;
use crate::counters::{Counter, DropReason, Drops};

/// Bytes a sealed message has beyond its inner frame.
const SEALED_OVERHEAD: usize = WG_OVERHEAD + INNER_HEADER_LEN + vxlan::HEADER_LEN;
/// How often the sessions' timers run (WireGuard's timers have second granularity).
const TICK: Duration = Duration::from_millis(250);
/// Sealed messages held before a send.
const OUT_SLOTS: usize = MAX_BATCH;
/// Room for one sealed message: the largest inner frame plus every header.
const OUT_SLOT: usize = SLOT + INNER_HEADER_LEN + vxlan::HEADER_LEN + WG_OVERHEAD + MIN_OUT;

/// One copy to seal: the domain's VNI, the inner packet's addresses, and the frame in
/// the batch at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SealTx {
    pub vni: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub part: Part,
}

/// The WireGuard socket and sessions.
pub(super) struct WgPlane {
    sock: TunnelSocket,
    state: Wg,
    /// What the socket received.
    rx: FrameBatch,
    /// The inner packets decrypted from `rx`, slot for slot.
    dec: FrameBatch,
    sources: [SocketAddrV4; MAX_BATCH],
    /// Sealed messages of the batch at hand, one per slot.
    out: FrameBatch,
    /// Each as a send of its first 8 bytes (type and receiver index: the same for
    /// every message of a session) and the rest, so that messages of equal size to one
    /// host go out as one UDP GSO send.
    pending: Vec<TunnelTx>,
    gso: GsoScratch,
    gso_on: bool,
    /// The inner packet being built.
    plain: Vec<u8>,
    /// This host's tunnel address.
    local: Option<Ipv4Addr>,
    last_tick: Instant,
}

impl WgPlane {
    pub(super) fn new(sock: TunnelSocket, key: HostKey) -> Self {
        let now = Instant::now();
        Self {
            sock,
            state: Wg::new(key, now),
            rx: FrameBatch::new(SLOT),
            dec: FrameBatch::new(SLOT),
            sources: [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); MAX_BATCH],
            out: FrameBatch::new(OUT_SLOT),
            pending: Vec::with_capacity(OUT_SLOTS),
            gso: GsoScratch::default(),
            gso_on: true,
            plain: vec![0; OUT_SLOT],
            local: None,
            last_tick: now,
        }
    }

    pub(super) fn socket(&self) -> &TunnelSocket {
        &self.sock
    }

    pub(super) fn set_table(&mut self, table: &ForwardingTable) {
        self.state.set_table(table);
        self.local = table.domains().iter().find_map(|d| d.tunnel_address);
    }

    pub(super) fn set_key(&mut self, key: HostKey) {
        self.state.set_key(key, Instant::now());
    }

    /// Runs the timers when due.
    pub(super) fn maybe_tick(&mut self, now: Instant, tx: &mut Counter) {
        if now.duration_since(self.last_tick) < TICK {
            return;
        }
        self.last_tick = now;
        let sock = &self.sock;
        self.state
            .tick(now, &mut |dst, m| send_one(sock, tx, dst, m));
    }

    /// Sends the sealed messages waiting; returns (sent, bytes, refused).
    fn send_pending(&mut self) -> (usize, usize, usize) {
        let out = if self.gso_on {
            match self
                .sock
                .send_parts_gso(&self.out, &self.pending, &mut self.gso)
            {
                Ok(out) => out,
                Err(e) => {
                    tracing::info!(error = %e, "UDP GSO refused for WireGuard; sending datagram by datagram");
                    self.gso_on = false;
                    self.sock.send_parts(&self.out, &self.pending)
                }
            }
        } else {
            self.sock.send_parts(&self.out, &self.pending)
        };
        let bytes = self
            .pending
            .iter()
            .take(out.sent)
            .map(|t| (usize::from(t.part.len) + t.header.len()).saturating_sub(SEALED_OVERHEAD))
            .sum();
        self.pending.clear();
        (out.sent, bytes, out.too_big + out.would_block + out.failed)
    }
}

/// Sends one message now (handshakes, keepalives, packets that waited for a
/// handshake); counts the data packets among them in `tx` (inner frame bytes).
fn send_one(sock: &TunnelSocket, tx: &mut Counter, dst: SocketAddrV4, m: &[u8]) {
    let sent = sock.send_all(&[Datagram {
        dst,
        header: &[],
        payload: m,
    }]);
    if sent.sent == 1 && m.first() == Some(&4) && m.len() > WG_OVERHEAD {
        tx.add(m.len() - SEALED_OVERHEAD);
    }
}

/// Counts what one send of the sealed batch did: (sent, bytes, refused).
fn count_sent(tx: &mut Counter, drops: &mut Drops, (sent, bytes, refused): (usize, usize, usize)) {
    tx.packets += sent as u64;
    tx.bytes += bytes as u64;
    drops.add(DropReason::SendError, refused as u64);
}

impl Worker {
    /// Seals and sends the copies the batch's plans queued for WireGuard domains; the
    /// frames are in `self.rx`.
    pub(super) fn flush_sealed(&mut self) {
        if self.sealed.is_empty() {
            return;
        }
        let Some(wg) = self.wg.as_mut() else {
            // No WireGuard on this host: such copies cannot go anywhere.
            self.drops
                .add(DropReason::SendError, self.sealed.len() as u64);
            self.sealed.clear();
            return;
        };
        let now = Instant::now();
        for t in &self.sealed {
            let Some(frame) = self.rx.part(t.part) else {
                self.drops.add(DropReason::Malformed, 1);
                continue;
            };
            let vxlan_len = vxlan::HEADER_LEN + frame.len();
            let total = INNER_HEADER_LEN + vxlan_len;
            let Some(plain) = wg.plain.get_mut(..total) else {
                self.drops.add(DropReason::TooBig, 1);
                continue;
            };
            let mut header = [0u8; INNER_HEADER_LEN];
            let sport = inner::source_port(frame);
            if inner::emit_header(&mut header, t.src, t.dst, sport, vxlan_len).is_none() {
                self.drops.add(DropReason::TooBig, 1);
                continue;
            }
            let (h, rest) = plain.split_at_mut(INNER_HEADER_LEN);
            h.copy_from_slice(&header);
            let (v, f) = rest.split_at_mut(vxlan::HEADER_LEN);
            vxlan::emit_header(v, t.vni);
            f.copy_from_slice(frame);
            if wg.pending.len() == OUT_SLOTS {
                count_sent(&mut self.tunnel_tx_c, &mut self.drops, wg.send_pending());
            }
            let slot = wg.pending.len();
            let Some(out) = wg.out.slot_mut(slot) else {
                continue;
            };
            let sock = &wg.sock;
            let plain = wg.plain.get(..total).unwrap_or(&[]);
            let tx = &mut self.tunnel_tx_c;
            if let Some((dst, len)) = wg
                .state
                .seal(t.dst, plain, out, now, &mut |d, m| send_one(sock, tx, d, m))
                && let (Some(head), Ok(slot), Ok(len)) = (
                    out.get(..8),
                    u16::try_from(slot),
                    u16::try_from(len.saturating_sub(8)),
                )
            {
                let mut header = [0u8; 8];
                header.copy_from_slice(head);
                wg.pending.push(TunnelTx {
                    dst,
                    header,
                    part: Part {
                        slot,
                        offset: 8,
                        len,
                    },
                });
            }
        }
        self.sealed.clear();
        count_sent(&mut self.tunnel_tx_c, &mut self.drops, wg.send_pending());
    }

    /// Receives a batch on the WireGuard socket and delivers what authenticates;
    /// returns how many datagrams arrived.
    pub(super) fn handle_wg_batch(&mut self) -> usize {
        let Some(mut wg) = self.wg.take() else {
            return 0;
        };
        let n = match wg.sock.recv_batch(&mut wg.rx, &mut wg.sources) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "WireGuard receive failed");
                0
            }
        };
        if n > 0 {
            self.open_batch(&mut wg);
        }
        self.wg = Some(wg);
        n
    }

    fn open_batch(&mut self, wg: &mut WgPlane) {
        self.batches += 1;
        let now = Instant::now();
        let table = self.table.clone();
        self.tunnel_tx.clear();
        for i in 0..wg.rx.len() {
            let Some((bytes, truncated)) = wg.rx.frame(i) else {
                break;
            };
            if truncated {
                self.tunnel_rx_c.add(bytes.len());
                self.drops.add(DropReason::Truncated, 1);
                continue;
            }
            let from = wg.sources.get(i).copied();
            let (Some(from), Some(out)) = (from, wg.dec.slot_mut(i)) else {
                break;
            };
            let sock = &wg.sock;
            let tx = &mut self.tunnel_tx_c;
            let opened = wg
                .state
                .open(from, bytes, out, now, &mut |d, m| send_one(sock, tx, d, m));
            // Only transport messages that opened are tunnelled packets (as `tx` counts
            // only sealed data): handshakes and keepalives are not traffic, and what is
            // refused (a peer's handshake that arrives before this host's table names
            // it, a forgery) is counted under its drop reason alone.
            if matches!(opened, Ok(Some(_))) {
                self.tunnel_rx_c.add(bytes.len());
            }
            let opened = match opened {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(reason) => {
                    self.drops.add(reason, 1);
                    continue;
                }
            };
            let Some(local) = wg.local else {
                self.drops.add(DropReason::NoDomain, 1);
                continue;
            };
            let Some(packet) = out.get_mut(..opened.len) else {
                continue;
            };
            let inner = match inner::check(packet, opened.peer, local) {
                Ok(inner) => inner,
                Err(reason) => {
                    self.drops.add(reason, 1);
                    continue;
                }
            };
            let vxlan_at = inner.offset;
            let Some(datagram) = packet.get_mut(vxlan_at..vxlan_at + inner.len) else {
                continue;
            };
            if let Some(frame) = datagram.get_mut(vxlan::HEADER_LEN..)
                && complete_partial_udp(frame)
            {
                self.checksums_completed += 1;
            }
            forward_tunnelled(
                &table,
                &mut self.plan,
                queues!(self),
                Via::Wireguard(opened.peer),
                datagram,
                i,
                vxlan_at,
            );
        }
        // Deliver from the decrypted batch: `flush` sends from `self.rx`.
        std::mem::swap(&mut self.rx, &mut wg.dec);
        self.flush();
        std::mem::swap(&mut self.rx, &mut wg.dec);
    }
}
