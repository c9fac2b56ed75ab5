//! The relay's forwarding thread: waits on the sockets, hands each frame to
//! [`decide`](super::decide), sends what the plan says (batched) and keeps the counters.

use std::collections::HashMap;
use std::io::{PipeReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_sys::packet::{
    self, Filter, FrameBatch, MAX_BATCH, PacketSocket, Part, SendOutcome, VNET_HDR_LEN, VnetHdr,
};
use mcgate_sys::poll::{self, PollFd, READABLE};
use mcgate_sys::tunnel::{GsoScratch, TunnelSocket, TunnelTx};
use mcgate_wire::vxlan;

use super::Command;
use super::checksum::{complete_checksum, complete_partial_udp};
use super::decide::{self, Plan};
use super::execute::{egress, execute, forward_tunnelled, queues};
use super::worker_wg::{SealTx, WgPlane};
use crate::LinkSpec;
use crate::counters::{
    Counter, DataplaneStats, DropReason, Drops, GroupCounters, LinkCounters, add_source,
};

/// Receive slot size: room for a 9000-byte jumbo frame plus the VXLAN header.
pub(super) const SLOT: usize = 9216 + 64;
/// Tunnel receive slot size: a whole UDP GRO super-datagram.
const GRO_SLOT: usize = 65536;
/// Batches taken from one socket before looking at the others (fairness).
const BATCHES_PER_WAKE: usize = 8;
/// How often the counters are published for readers.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// How long a link whose capture failed is left out of the poll set.
const PAUSE_ON_ERROR: Duration = Duration::from_millis(250);
/// How often a link whose socket could not be opened is retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Socket buffers: deep enough to ride out a scheduling hiccup at line rate.
const CAPTURE_RCVBUF: usize = 8 << 20;

pub(super) struct LinkSlot {
    pub(super) spec: LinkSpec,
    /// Captures what local containers send (each frame behind a `virtio_net_hdr`).
    sock: PacketSocket,
    /// Delivers frames on the link.
    tx: PacketSocket,
    pub(super) counters: LinkCounters,
    /// Frames of the current batch to deliver on this link.
    pub(super) pending: Vec<Part>,
    /// Not polled until then, after a capture error.
    paused_until: Option<Instant>,
}

impl LinkSlot {
    /// Sends one frame on the link now (egress copies, which are not part of a batch).
    pub(super) fn send_now(&self, frame: &[u8]) -> std::io::Result<()> {
        self.tx.send(frame)
    }
}

pub(super) struct Worker {
    cmds: Receiver<Command>,
    wake: PipeReader,
    wake_pending: Arc<AtomicBool>,
    tunnel: TunnelSocket,
    /// Scratch for UDP GSO sends, and whether the path accepts them.
    gso: GsoScratch,
    gso_on: bool,
    /// The VXLAN socket's kernel drop count at the last publication.
    tunnel_drops_seen: u64,
    /// Tunnelled frames whose partial UDP checksum the relay completed.
    pub(super) checksums_completed: u64,
    pub(super) table: Arc<ForwardingTable>,
    pub(super) links: Vec<LinkSlot>,
    wanted: Vec<LinkSpec>,
    retired: HashMap<String, LinkCounters>,
    /// The current receive batch (captures; the tunnel batch while it is handled).
    pub(super) rx: FrameBatch,
    /// The tunnel's receive batch, with room for UDP GRO's coalesced datagrams.
    trx: FrameBatch,
    sources: [SocketAddrV4; MAX_BATCH],
    pub(super) tunnel_tx: Vec<TunnelTx>,
    /// Copies of the batch at hand to seal for WireGuard domains.
    pub(super) sealed: Vec<SealTx>,
    /// The WireGuard socket and sessions, when the host has a key.
    pub(super) wg: Option<WgPlane>,
    /// The decision for the frame at hand (storage reused).
    pub(super) plan: Plan,
    pub(super) groups: HashMap<IpAddr, GroupCounters>,
    pub(super) tunnel_rx_c: Counter,
    pub(super) tunnel_tx_c: Counter,
    pub(super) drops: Drops,
    pub(super) batches: u64,
    tables: u64,
    mtu: usize,
    published: Arc<Mutex<DataplaneStats>>,
    last_publish: Instant,
    last_retry: Instant,
}

impl Worker {
    pub(super) fn new(
        cmds: Receiver<Command>,
        wake: PipeReader,
        wake_pending: Arc<AtomicBool>,
        tunnel: TunnelSocket,
        wg: Option<WgPlane>,
        mtu: usize,
        published: Arc<Mutex<DataplaneStats>>,
    ) -> Self {
        Self {
            cmds,
            wake,
            wake_pending,
            tunnel,
            gso: GsoScratch::default(),
            gso_on: true,
            tunnel_drops_seen: 0,
            checksums_completed: 0,
            table: Arc::new(ForwardingTable::empty()),
            links: Vec::new(),
            wanted: Vec::new(),
            retired: HashMap::new(),
            rx: FrameBatch::new(SLOT),
            trx: FrameBatch::new(GRO_SLOT),
            sources: [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); MAX_BATCH],
            tunnel_tx: Vec::with_capacity(MAX_BATCH * 16),
            sealed: Vec::with_capacity(MAX_BATCH * 16),
            wg,
            plan: Plan::default(),
            groups: HashMap::new(),
            tunnel_rx_c: Counter::default(),
            tunnel_tx_c: Counter::default(),
            drops: Drops::default(),
            batches: 0,
            tables: 0,
            mtu,
            published,
            last_publish: Instant::now(),
            last_retry: Instant::now(),
        }
    }

    pub(super) fn run(mut self) {
        let mut fds: Vec<PollFd> = Vec::new();
        let mut fds_dirty = true;
        loop {
            if fds_dirty {
                fds.clear();
                fds.push(PollFd::new(self.wake.as_raw_fd(), READABLE));
                fds.push(PollFd::new(self.tunnel.as_raw_fd(), READABLE));
                // Without WireGuard the place stays, with a descriptor poll ignores.
                let wg_fd = self.wg.as_ref().map_or(-1, |w| w.socket().as_raw_fd());
                fds.push(PollFd::new(wg_fd, READABLE));
                let now = Instant::now();
                for l in &mut self.links {
                    // A paused link keeps its place with a negative descriptor, which
                    // poll ignores.
                    let fd = match l.paused_until {
                        Some(t) if t > now => -1,
                        _ => {
                            l.paused_until = None;
                            l.sock.as_raw_fd()
                        }
                    };
                    fds.push(PollFd::new(fd, READABLE));
                }
                fds_dirty = false;
            }
            if let Err(e) = poll::poll(&mut fds, 100) {
                tracing::error!(error = %e, "data plane poll failed");
                std::thread::sleep(Duration::from_millis(100));
            }
            if fds.first().is_some_and(PollFd::ready) {
                // Drain the pipe before clearing the flag: cleared first, a command
                // sent in between writes a byte this read swallows, the flag stays set
                // with the pipe empty, and no later command wakes the thread again.
                let mut buf = [0u8; 64];
                let _ = self.wake.read(&mut buf);
                self.wake_pending.store(false, Ordering::Release);
                match self.commands() {
                    Flow::Stop => {
                        self.publish();
                        return;
                    }
                    Flow::LinksChanged => fds_dirty = true,
                    Flow::Continue => {}
                }
            }
            if fds.get(1).is_some_and(PollFd::ready) {
                for _ in 0..BATCHES_PER_WAKE {
                    match self.tunnel.recv_batch(&mut self.trx, &mut self.sources) {
                        Ok(0) => break,
                        Ok(_) => self.handle_tunnel_batch(),
                        Err(e) => {
                            tracing::warn!(error = %e, "VXLAN receive failed");
                            break;
                        }
                    }
                }
            }
            if fds.get(2).is_some_and(PollFd::ready) {
                for _ in 0..BATCHES_PER_WAKE {
                    if self.handle_wg_batch() == 0 {
                        break;
                    }
                }
            }
            for i in 0..self.links.len() {
                if !fds.get(3 + i).is_some_and(PollFd::ready) {
                    continue;
                }
                for _ in 0..BATCHES_PER_WAKE {
                    let Some(slot) = self.links.get_mut(i) else {
                        break;
                    };
                    match slot.sock.recv_batch(&mut self.rx) {
                        Ok(0) => break,
                        Ok(_) => self.handle_capture_batch(i),
                        Err(e) => {
                            // The link went down or away under us (the agent will drop
                            // it if it is gone). Its socket stays readable with the
                            // error: pause it rather than spin.
                            tracing::debug!(link = %slot.spec.name, error = %e, "capture failed; pausing the link");
                            slot.paused_until = Some(Instant::now() + PAUSE_ON_ERROR);
                            fds_dirty = true;
                            break;
                        }
                    }
                }
            }
            let now = Instant::now();
            if let Some(wg) = self.wg.as_mut() {
                wg.maybe_tick(now, &mut self.tunnel_tx_c);
            }
            if self
                .links
                .iter()
                .any(|l| l.paused_until.is_some_and(|t| t <= now))
            {
                fds_dirty = true;
            }
            if self.wanted.len() != self.links.len() && now - self.last_retry >= RETRY_EVERY {
                self.last_retry = now;
                if self.open_missing_links() {
                    fds_dirty = true;
                }
            }
            if now - self.last_publish >= PUBLISH_EVERY {
                self.publish();
            }
        }
    }

    fn commands(&mut self) -> Flow {
        let mut flow = Flow::Continue;
        loop {
            match self.cmds.try_recv() {
                Ok(Command::Table(t)) => {
                    if let Some(wg) = self.wg.as_mut() {
                        wg.set_table(&t);
                    }
                    self.table = t;
                    self.tables += 1;
                }
                Ok(Command::Links(specs)) => {
                    self.set_links(specs);
                    flow = Flow::LinksChanged;
                }
                Ok(Command::Mtu(mtu)) => self.mtu = mtu,
                Ok(Command::Key(key)) => {
                    if let Some(wg) = self.wg.as_mut() {
                        wg.set_key(key);
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return Flow::Stop,
                Err(TryRecvError::Empty) => return flow,
            }
        }
    }

    fn set_links(&mut self, specs: Vec<LinkSpec>) {
        let mut kept = Vec::with_capacity(self.links.len());
        for slot in self.links.drain(..) {
            if specs.contains(&slot.spec) {
                kept.push(slot);
            } else {
                tracing::info!(link = %slot.spec.name, "data plane detached from link");
                self.retired.insert(slot.spec.name.clone(), slot.counters);
            }
        }
        self.links = kept;
        self.wanted = specs;
        self.open_missing_links();
    }

    /// Opens sockets for wanted links that have none; returns whether any opened.
    fn open_missing_links(&mut self) -> bool {
        let mut opened = false;
        for spec in &self.wanted {
            if self.links.iter().any(|l| l.spec == *spec) {
                continue;
            }
            let sockets = PacketSocket::open_capture(spec.ifindex, Filter::MulticastData)
                .and_then(|cap| Ok((cap, PacketSocket::open_tx(spec.ifindex)?)));
            match sockets {
                Ok((sock, tx)) => {
                    if let Err(e) = packet::set_recv_buffer(sock.as_fd(), CAPTURE_RCVBUF) {
                        tracing::debug!(error = %e, "cannot enlarge a capture buffer");
                    }
                    let counters = self.retired.remove(&spec.name).unwrap_or_default();
                    tracing::info!(link = %spec.name, ifindex = spec.ifindex, "data plane attached to link");
                    self.links.push(LinkSlot {
                        spec: spec.clone(),
                        sock,
                        tx,
                        counters,
                        pending: Vec::with_capacity(MAX_BATCH),
                        paused_until: None,
                    });
                    opened = true;
                }
                Err(e) => {
                    tracing::warn!(link = %spec.name, error = %e, "cannot capture on link; will retry");
                }
            }
        }
        opened
    }

    /// Frames sent by local containers on link `ingress`.
    fn handle_capture_batch(&mut self, ingress: usize) {
        self.batches += 1;
        let table = self.table.clone();
        self.tunnel_tx.clear();
        for i in 0..self.rx.len() {
            let Some((bytes, truncated)) = self.rx.frame(i) else {
                break;
            };
            let Some(in_link) = self.links.get_mut(ingress) else {
                return;
            };
            in_link
                .counters
                .rx
                .add(bytes.len().saturating_sub(VNET_HDR_LEN));
            let (vnet, m) = match decide::parse_capture(bytes, truncated) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    in_link.counters.drops.add(reason, 1);
                    self.drops.add(reason, 1);
                    continue;
                }
            };
            // Where routers are (the upstream interface), which sources send: the
            // group table's upstream rows.
            // A standby gateway's ranges come in through the elected one.
            if let IpAddr::V4(group) = m.group
                && in_link.spec.standby_for(group)
            {
                in_link.counters.drops.add(DropReason::Standby, 1);
                self.drops.add(DropReason::Standby, 1);
                continue;
            }
            if in_link.spec.routers
                && let (IpAddr::V4(group), IpAddr::V4(source)) = (m.group, m.source)
            {
                add_source(&mut in_link.counters.sources, group, source, m.len);
            }
            // The sender's kernel left the UDP checksum to the (virtual) hardware: finish
            // it now, or every receiver would drop the copy.
            if vnet.flags & VnetHdr::NEEDS_CSUM != 0
                && let Some(f) = self.rx.frame_mut(i)
                && !complete_checksum(
                    f.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + m.len)
                        .unwrap_or(&mut []),
                    usize::from(vnet.csum_start),
                    usize::from(vnet.csum_offset),
                )
            {
                self.drops.add(DropReason::Malformed, 1);
                continue;
            }
            let links = &self.links;
            let index = |name: &str| links.iter().position(|s| s.spec.name == name);
            decide::from_link(&table, &index, ingress, &m, self.mtu, &mut self.plan);
            let part = Part {
                slot: i as u16,
                offset: VNET_HDR_LEN as u16,
                len: m.len as u16,
            };
            let frame = self
                .rx
                .frame(i)
                .and_then(|(b, _)| b.get(VNET_HDR_LEN..))
                .unwrap_or(&[]);
            let mut q = queues!(self);
            egress(&mut q, &mut self.plan, Some(ingress), frame, &m);
            execute(&self.plan, q, &m, part, None);
        }
        self.flush();
    }

    /// VXLAN datagrams from other hosts, received into `trx`.
    fn handle_tunnel_batch(&mut self) {
        // Work on the tunnel batch as the current batch (`flush` sends from `rx`): a swap
        // of two buffers, no copy.
        std::mem::swap(&mut self.rx, &mut self.trx);
        self.batches += 1;
        // Inner frames from a kernel VXLAN peer may carry partial UDP checksums.
        for i in 0..self.rx.len() {
            let seg = self
                .rx
                .segment_size(i)
                .unwrap_or(usize::MAX)
                .max(vxlan::HEADER_LEN + 1);
            let Some(whole) = self.rx.frame_mut(i) else {
                break;
            };
            for datagram in whole.chunks_mut(seg) {
                if let Some(inner) = datagram.get_mut(vxlan::HEADER_LEN..)
                    && complete_partial_udp(inner)
                {
                    self.checksums_completed += 1;
                }
            }
        }
        let table = self.table.clone();
        self.tunnel_tx.clear();
        for i in 0..self.rx.len() {
            let Some((whole, truncated)) = self.rx.frame(i) else {
                break;
            };
            if truncated {
                self.tunnel_rx_c.add(whole.len());
                self.drops.add(DropReason::Truncated, 1);
                continue;
            }
            // With UDP GRO one receive may hold many datagrams of `seg` bytes each.
            let seg = self.rx.segment_size(i).unwrap_or(whole.len()).max(1);
            let peer = self.sources.get(i).map(|s| *s.ip());
            let mut next = 0;
            while next < whole.len() {
                let start = next;
                next = (start + seg).min(whole.len());
                let bytes = whole.get(start..next).unwrap_or(&[]);
                self.tunnel_rx_c.add(bytes.len());
                forward_tunnelled(
                    &table,
                    &mut self.plan,
                    queues!(self),
                    decide::Via::Underlay(peer),
                    bytes,
                    i,
                    start,
                );
            }
        }
        self.flush();
        std::mem::swap(&mut self.rx, &mut self.trx);
    }

    /// Sends what the batch planned: tunnel copies (sealed ones first), then local
    /// deliveries.
    pub(super) fn flush(&mut self) {
        self.flush_sealed();
        if !self.tunnel_tx.is_empty() {
            let out = if self.gso_on {
                match self
                    .tunnel
                    .send_parts_gso(&self.rx, &self.tunnel_tx, &mut self.gso)
                {
                    Ok(out) => out,
                    Err(e) => {
                        tracing::info!(error = %e, "UDP GSO refused on the underlay; sending datagram by datagram");
                        self.gso_on = false;
                        self.tunnel.send_parts(&self.rx, &self.tunnel_tx)
                    }
                }
            } else {
                self.tunnel.send_parts(&self.rx, &self.tunnel_tx)
            };
            let bytes: usize = self
                .tunnel_tx
                .iter()
                .take(out.sent)
                .map(|t| usize::from(t.part.len))
                .sum();
            self.tunnel_tx_c.packets += out.sent as u64;
            self.tunnel_tx_c.bytes += bytes as u64;
            self.count_send_drops(out, None);
            self.tunnel_tx.clear();
        }
        for j in 0..self.links.len() {
            let Some(slot) = self.links.get_mut(j) else {
                break;
            };
            if slot.pending.is_empty() {
                continue;
            }
            let out = slot.tx.send_parts(&self.rx, &slot.pending);
            let bytes: usize = slot
                .pending
                .iter()
                .take(out.sent)
                .map(|p| usize::from(p.len))
                .sum();
            slot.counters.tx.packets += out.sent as u64;
            slot.counters.tx.bytes += bytes as u64;
            slot.pending.clear();
            self.count_send_drops(out, Some(j));
        }
    }

    fn count_send_drops(&mut self, out: SendOutcome, link: Option<usize>) {
        for (reason, n) in [
            (DropReason::TooBig, out.too_big),
            (DropReason::QueueFull, out.would_block),
            (DropReason::SendError, out.failed),
        ] {
            if n == 0 {
                continue;
            }
            self.drops.add(reason, n as u64);
            if let Some(slot) = link.and_then(|j| self.links.get_mut(j)) {
                slot.counters.drops.add(reason, n as u64);
            }
        }
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Ok(total) = self.tunnel.drops()
            && total > self.tunnel_drops_seen
        {
            self.drops
                .add(DropReason::TunnelRxOverflow, total - self.tunnel_drops_seen);
            self.tunnel_drops_seen = total;
        }
        for l in &mut self.links {
            if let Ok(n) = l.sock.take_drops()
                && n > 0
            {
                l.counters.drops.add(DropReason::RxOverflow, n);
                self.drops.add(DropReason::RxOverflow, n);
            }
        }
        let mut links = self
            .retired
            .clone()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>();
        for l in &self.links {
            links.insert(l.spec.name.clone(), l.counters.clone());
        }
        let stats = DataplaneStats {
            name: "userspace",
            links,
            groups: self.groups.iter().map(|(k, v)| (*k, v.clone())).collect(),
            tunnel_rx: self.tunnel_rx_c,
            tunnel_tx: self.tunnel_tx_c,
            drops: self.drops,
            underlay_mtu: self.mtu,
            tables_installed: self.tables,
            checksums_completed: self.checksums_completed,
            batches: self.batches,
        };
        match self.published.lock() {
            Ok(mut s) => *s = stats,
            Err(p) => *p.into_inner() = stats,
        }
    }
}

enum Flow {
    Continue,
    LinksChanged,
    Stop,
}
