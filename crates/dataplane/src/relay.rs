//! The userspace relay: head-end replication of local multicast over VXLAN, and delivery
//! of what arrives, on one dedicated thread.
//!
//! - Capture: one AF_PACKET socket per attached link, filtered in the kernel to IPv4
//!   multicast data and blind to outgoing frames, so the relay never sees its own
//!   deliveries (no loops, however many hosts).
//! - Replicate: per captured frame, one VXLAN copy per remote host whose filter admits
//!   the source, sent with `sendmmsg` from the receive buffers themselves (the VXLAN
//!   header and the frame are gathered by the kernel: no copy), and one copy per other
//!   local link with members, written back with `sendmmsg` on that link's socket.
//! - Receive: `recvmmsg` on the underlay UDP socket; accepted only from the domain's
//!   peers with the domain's VNI and the I flag; the inner frame is checked and delivered
//!   unchanged (TTL untouched) to local links that want (source, group). A tunnelled
//!   packet is never sent back into the tunnel.
//!
//! Buffers are allocated once; the per-packet path does no allocation (a group seen for
//! the first time adds one counter entry, up to a bound). The forwarding table is an
//! `Arc` swapped by a command between batches.

use std::collections::HashMap;
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcgate_domain::forwarding::{ForwardingTable, Verdict, is_link_local_group};
use mcgate_sys::packet::{
    self, Filter, FrameBatch, MAX_BATCH, PacketSocket, Part, SendOutcome, VNET_HDR_LEN, VnetHdr,
};
use mcgate_sys::poll::{self, PollFd, READABLE};
use mcgate_sys::tunnel::{GsoScratch, TunnelSocket, TunnelTx};
use mcgate_wire::{checksum, vxlan};

use crate::counters::{Counter, DataplaneStats, DropReason, Drops, GroupCounters, LinkCounters};
use crate::inspect::inspect;

use crate::{Dataplane, DataplaneConfig, DataplaneError, LinkSpec};

/// Outer IPv4 (20) + UDP (8) + VXLAN (8) bytes added to each inner frame.
pub const ENCAP_OVERHEAD: usize = 20 + 8 + vxlan::HEADER_LEN;

/// Receive slot size: room for a 9000-byte jumbo frame plus the VXLAN header.
const SLOT: usize = 9216 + 64;
/// Tunnel receive slot size: a whole UDP GRO super-datagram.
const GRO_SLOT: usize = 65536;
/// Batches taken from one socket before looking at the others (fairness).
const BATCHES_PER_WAKE: usize = 8;
/// Groups with their own counters; traffic to more groups is counted under 0.0.0.0.
const MAX_TRACKED_GROUPS: usize = 4096;
/// How often the counters are published for readers.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// How long a link whose capture failed is left out of the poll set.
const PAUSE_ON_ERROR: Duration = Duration::from_millis(250);
/// How often a link whose socket could not be opened is retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Socket buffers: deep enough to ride out a scheduling hiccup at line rate.
const CAPTURE_RCVBUF: usize = 8 << 20;
const TUNNEL_BUF: usize = 16 << 20;

enum Command {
    Table(Arc<ForwardingTable>),
    Links(Vec<LinkSpec>),
    Mtu(usize),
    Shutdown,
}

/// The running relay: a handle on its thread.
pub struct Relay {
    tx: Sender<Command>,
    wake: PipeWriter,
    wake_pending: Arc<AtomicBool>,
    stats: Arc<Mutex<DataplaneStats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds the VXLAN socket and starts the forwarding thread.
    pub fn start(config: DataplaneConfig) -> Result<Self, DataplaneError> {
        let tunnel =
            TunnelSocket::bind(config.underlay).map_err(|source| DataplaneError::Bind {
                addr: config.underlay,
                source,
            })?;
        if let Err(e) = packet::set_recv_buffer(tunnel.as_fd(), TUNNEL_BUF) {
            tracing::warn!(error = %e, "cannot enlarge the VXLAN socket's receive buffer");
        }
        if let Err(e) = packet::set_send_buffer(tunnel.as_fd(), TUNNEL_BUF) {
            tracing::warn!(error = %e, "cannot enlarge the VXLAN socket's send buffer");
        }
        // Datagrams a peer sent as one GSO message arrive as one receive.
        if let Err(e) = tunnel.enable_gro() {
            tracing::info!(error = %e, "no UDP GRO on the VXLAN socket; receiving datagram by datagram");
        }
        let (reader, writer) = std::io::pipe().map_err(DataplaneError::Thread)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Mutex::new(DataplaneStats {
            name: "userspace",
            underlay_mtu: config.underlay_mtu,
            ..DataplaneStats::default()
        }));
        let wake_pending = Arc::new(AtomicBool::new(false));
        let published = stats.clone();
        let worker_wake = wake_pending.clone();
        let build = move || Worker {
            cmds: rx,
            wake: reader,
            wake_pending: worker_wake,
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
            groups: HashMap::new(),
            tunnel_rx_c: Counter::default(),
            tunnel_tx_c: Counter::default(),
            drops: Drops::default(),
            batches: 0,
            tables: 0,
            mtu: config.underlay_mtu,
            published,
            last_publish: Instant::now(),
            last_retry: Instant::now(),
        };
        // The worker is built on its own thread: its GSO scratch holds raw pointers.
        let thread = std::thread::Builder::new()
            .name("mcgate-relay".into())
            .spawn(move || build().run())
            .map_err(DataplaneError::Thread)?;
        Ok(Self {
            tx,
            wake: writer,
            wake_pending,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn command(&self, cmd: Command) {
        if self.tx.send(cmd).is_err() {
            return;
        }
        // One byte in the pipe is enough to wake the thread; it drains every command.
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = (&self.wake).write_all(&[1]);
        }
    }
}

impl Dataplane for Relay {
    fn name(&self) -> &'static str {
        "userspace"
    }

    fn set_table(&self, table: Arc<ForwardingTable>) {
        self.command(Command::Table(table));
    }

    fn set_links(&self, links: Vec<LinkSpec>) {
        self.command(Command::Links(links));
    }

    fn set_underlay_mtu(&self, mtu: usize) {
        self.command(Command::Mtu(mtu));
    }

    fn stats(&self) -> DataplaneStats {
        self.stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn shutdown(&self) {
        self.command(Command::Shutdown);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct LinkSlot {
    spec: LinkSpec,
    /// Captures what local containers send (each frame behind a `virtio_net_hdr`).
    sock: PacketSocket,
    /// Delivers frames on the link.
    tx: PacketSocket,
    counters: LinkCounters,
    /// Frames of the current batch to deliver on this link.
    pending: Vec<Part>,
    /// Not polled until then, after a capture error.
    paused_until: Option<Instant>,
}

struct Worker {
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
    checksums_completed: u64,
    table: Arc<ForwardingTable>,
    links: Vec<LinkSlot>,
    wanted: Vec<LinkSpec>,
    retired: HashMap<String, LinkCounters>,
    /// The current receive batch (captures; the tunnel batch while it is handled).
    rx: FrameBatch,
    /// The tunnel's receive batch, with room for UDP GRO's coalesced datagrams.
    trx: FrameBatch,
    sources: [SocketAddrV4; MAX_BATCH],
    tunnel_tx: Vec<TunnelTx>,
    groups: HashMap<Ipv4Addr, GroupCounters>,
    tunnel_rx_c: Counter,
    tunnel_tx_c: Counter,
    drops: Drops,
    batches: u64,
    tables: u64,
    mtu: usize,
    published: Arc<Mutex<DataplaneStats>>,
    last_publish: Instant,
    last_retry: Instant,
}

fn group_counters(
    groups: &mut HashMap<Ipv4Addr, GroupCounters>,
    group: Ipv4Addr,
) -> &mut GroupCounters {
    let key = if groups.len() >= MAX_TRACKED_GROUPS && !groups.contains_key(&group) {
        Ipv4Addr::UNSPECIFIED
    } else {
        group
    };
    groups.entry(key).or_default()
}

impl Worker {
    fn run(mut self) {
        let mut fds: Vec<PollFd> = Vec::new();
        let mut fds_dirty = true;
        loop {
            if fds_dirty {
                fds.clear();
                fds.push(PollFd::new(self.wake.as_raw_fd(), READABLE));
                fds.push(PollFd::new(self.tunnel.as_raw_fd(), READABLE));
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
                self.wake_pending.store(false, Ordering::Release);
                let mut buf = [0u8; 64];
                let _ = self.wake.read(&mut buf);
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
            for i in 0..self.links.len() {
                if !fds.get(2 + i).is_some_and(PollFd::ready) {
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
                    self.table = t;
                    self.tables += 1;
                }
                Ok(Command::Links(specs)) => {
                    self.set_links(specs);
                    flow = Flow::LinksChanged;
                }
                Ok(Command::Mtu(mtu)) => self.mtu = mtu,
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
        let mtu = self.mtu;
        let in_ifindex = self.links.get(ingress).map_or(0, |l| l.spec.ifindex);
        self.tunnel_tx.clear();
        for i in 0..self.rx.len() {
            let Some((bytes, truncated)) = self.rx.frame(i) else {
                break;
            };
            let Some(in_link) = self.links.get_mut(ingress) else {
                return;
            };
            let vnet = VnetHdr::parse(bytes);
            let frame = bytes.get(VNET_HDR_LEN..).unwrap_or(&[]);
            in_link.counters.rx.add(frame.len());
            let reason = match vnet {
                None => Some(DropReason::Malformed),
                Some(_) if truncated => Some(DropReason::Truncated),
                // A segmentation-offload super-packet: larger than any MTU on the way.
                Some(v) if v.gso_type != 0 => Some(DropReason::TooBig),
                Some(_) => None,
            };
            let checked = match reason {
                Some(r) => Err(r),
                None => inspect(frame),
            };
            let m = match checked {
                Ok(m) => m,
                Err(reason) => {
                    in_link.counters.drops.add(reason, 1);
                    self.drops.add(reason, 1);
                    continue;
                }
            };
            // The sender's kernel left the UDP checksum to the (virtual) hardware: finish
            // it now, or every receiver would drop the copy.
            if let Some(v) = vnet.filter(|v| v.flags & VnetHdr::NEEDS_CSUM != 0)
                && let Some(f) = self.rx.frame_mut(i)
                && !complete_checksum(
                    f.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + m.len)
                        .unwrap_or(&mut []),
                    usize::from(v.csum_start),
                    usize::from(v.csum_offset),
                )
            {
                self.drops.add(DropReason::Malformed, 1);
                continue;
            }
            let g = group_counters(&mut self.groups, m.group);
            g.rx_local.add(m.len);
            if table.domains().is_empty() {
                g.drops.add(DropReason::NoDomain, 1);
                self.drops.add(DropReason::NoDomain, 1);
                continue;
            }
            let link_local = is_link_local_group(m.group);
            let part = Part {
                slot: i as u16,
                offset: VNET_HDR_LEN as u16,
                len: m.len as u16,
            };
            let mut copies = 0usize;
            let mut refused = false;
            let mut too_big = false;
            for d in table.domains() {
                if d.check_source(m.group, m.source) != Verdict::Forward {
                    refused = true;
                    continue;
                }
                let Some(route) = d.route(m.group) else {
                    continue;
                };
                if !link_local {
                    let mut header = [0u8; vxlan::HEADER_LEN];
                    vxlan::emit_header(&mut header, d.vni);
                    for r in &route.remotes {
                        if !r.filter.allows(m.source) {
                            continue;
                        }
                        if m.len + ENCAP_OVERHEAD > mtu {
                            g.drops.add(DropReason::TooBig, 1);
                            self.drops.add(DropReason::TooBig, 1);
                            too_big = true;
                            continue;
                        }
                        self.tunnel_tx.push(TunnelTx {
                            dst: r.underlay,
                            header,
                            part,
                        });
                        g.tx_tunnel.add(m.len);
                        copies += 1;
                    }
                }
                for l in &route.locals {
                    if !l.filter.allows(m.source) {
                        continue;
                    }
                    let Some(out) = self.links.iter_mut().find(|s| s.spec.name == l.link) else {
                        continue;
                    };
                    if out.spec.ifindex == in_ifindex || out.pending.last() == Some(&part) {
                        continue;
                    }
                    out.pending.push(part);
                    g.tx_local.add(m.len);
                    copies += 1;
                }
            }
            if copies == 0 && !too_big {
                let reason = if refused {
                    DropReason::SourceNotAllowed
                } else {
                    DropReason::NoMembers
                };
                g.drops.add(reason, 1);
                self.drops.add(reason, 1);
            }
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
            let source_ip = self.sources.get(i).map(|s| *s.ip());
            let mut next = 0;
            while next < whole.len() {
                let start = next;
                next = (start + seg).min(whole.len());
                let bytes = whole.get(start..next).unwrap_or(&[]);
                self.tunnel_rx_c.add(bytes.len());
                let Ok(header) = vxlan::Header::new_checked(bytes) else {
                    self.drops.add(DropReason::Malformed, 1);
                    continue;
                };
                if !header.has_valid_flags() {
                    self.drops.add(DropReason::BadVxlan, 1);
                    continue;
                }
                let Some(d) = table.by_vni(header.vni()) else {
                    self.drops.add(DropReason::NoDomain, 1);
                    continue;
                };
                if !source_ip.is_some_and(|ip| d.peers.contains(&ip)) {
                    self.drops.add(DropReason::UnknownPeer, 1);
                    continue;
                }
                let inner = bytes.get(vxlan::HEADER_LEN..).unwrap_or(&[]);
                let m = match inspect(inner) {
                    Ok(m) => m,
                    Err(reason) => {
                        self.drops.add(reason, 1);
                        continue;
                    }
                };
                let g = group_counters(&mut self.groups, m.group);
                g.rx_tunnel.add(m.len);
                let reason = if is_link_local_group(m.group) {
                    Some(DropReason::LinkLocal)
                } else if d.check_source(m.group, m.source) != Verdict::Forward {
                    Some(DropReason::SourceNotAllowed)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    g.drops.add(reason, 1);
                    self.drops.add(reason, 1);
                    continue;
                }
                let (Ok(offset), Ok(len)) = (
                    u16::try_from(start + vxlan::HEADER_LEN),
                    u16::try_from(m.len),
                ) else {
                    self.drops.add(DropReason::Malformed, 1);
                    continue;
                };
                let part = Part {
                    slot: i as u16,
                    offset,
                    len,
                };
                let mut copies = 0usize;
                if let Some(route) = d.route(m.group) {
                    for l in &route.locals {
                        if !l.filter.allows(m.source) {
                            continue;
                        }
                        let Some(out) = self.links.iter_mut().find(|s| s.spec.name == l.link)
                        else {
                            continue;
                        };
                        if out.pending.last() == Some(&part) {
                            continue;
                        }
                        out.pending.push(part);
                        g.tx_local.add(m.len);
                        copies += 1;
                    }
                }
                if copies == 0 {
                    g.drops.add(DropReason::NoMembers, 1);
                    self.drops.add(DropReason::NoMembers, 1);
                }
            }
        }
        self.flush();
        std::mem::swap(&mut self.rx, &mut self.trx);
    }

    /// Sends what the batch planned: tunnel copies, then local deliveries.
    fn flush(&mut self) {
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

/// If `frame` (Ethernet + IPv4 + UDP) carries a UDP checksum left partial by a sender's
/// checksum offload (the field holds just the pseudo-header sum), completes it in place
/// and returns true. A sender's kernel VXLAN device can hand over such frames: the
/// offload state does not survive the tunnel, and the receiving task would drop them.
/// A complete checksum that happens to equal the pseudo-header sum is left as it was
/// (completing it gives the same value).
fn complete_partial_udp(frame: &mut [u8]) -> bool {
    let Some(ip) = frame.get(14..34) else {
        return false;
    };
    if frame.get(12..14) != Some(&[0x08, 0x00]) || ip[9] != 17 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = 14 + ihl;
    if ihl < 20 || total < ihl + 8 || 14 + total > frame.len() {
        return false;
    }
    let Ok(udp_len) = u16::try_from(total - ihl) else {
        return false;
    };
    let field = match frame.get(udp + 6..udp + 8) {
        Some(f) => u16::from_be_bytes([f[0], f[1]]),
        None => return false,
    };
    if field == 0 || field != checksum::pseudo_header(src, dst, 17, udp_len) {
        return false;
    }
    let end = 14 + total;
    match frame.get_mut(..end) {
        Some(f) => complete_checksum(f, udp, 6),
        None => false,
    }
}

/// Completes a transport checksum left partial by checksum offload: the field at
/// `start + offset` holds the pseudo-header sum, so the complement of the sum from
/// `start` to the end of the packet is the checksum. Returns false when the offsets do
/// not fit the frame.
fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start.saturating_add(offset);
    if field.saturating_add(2) > frame.len() || start >= frame.len() {
        return false;
    }
    let Some(range) = frame.get(start..) else {
        return false;
    };
    let mut sum = checksum::checksum(range);
    // RFC 768: a computed UDP checksum of zero is sent as all ones.
    if sum == 0 {
        sum = 0xffff;
    }
    if let Some(dst) = frame.get_mut(field..field + 2) {
        dst.copy_from_slice(&sum.to_be_bytes());
    }
    true
}

enum Flow {
    Continue,
    LinksChanged,
    Stop,
}

#[cfg(test)]
mod tests {
    use super::complete_checksum;
    use crate::inspect::tests::frame;
    use mcgate_wire::checksum;
    use std::net::Ipv4Addr;

    #[test]
    fn completes_a_partial_checksum_from_the_tunnel_and_leaves_full_ones() {
        let src = Ipv4Addr::new(10, 1, 0, 2);
        let group = Ipv4Addr::new(233, 252, 0, 5);
        let mut f = frame(src, group, 9, 0);
        let udp_len = 8 + 9u16;
        let partial = checksum::pseudo_header(src, group, 17, udp_len);
        f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&partial.to_be_bytes());
        assert!(super::complete_partial_udp(&mut f));
        let done = f.clone();
        // Complete now: left alone.
        assert!(!super::complete_partial_udp(&mut f));
        assert_eq!(f, done);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&group.octets());
        pseudo.extend_from_slice(&[0, 17, 0, udp_len as u8]);
        pseudo.extend_from_slice(&f[14 + 20..]);
        assert!(checksum::verifies(&pseudo));
        // No input panics.
        for n in 0..f.len() {
            let mut cut = f[..n].to_vec();
            let _ = super::complete_partial_udp(&mut cut);
        }
    }

    #[test]
    fn completes_a_partial_udp_checksum() {
        let src = Ipv4Addr::new(10, 1, 0, 2);
        let group = Ipv4Addr::new(233, 252, 0, 5);
        let mut f = frame(src, group, 7, 0);
        let udp_len = 8 + 7;
        // What a kernel with checksum offload leaves: the pseudo-header sum.
        let partial = checksum::pseudo_header(src, group, 17, udp_len as u16);
        f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&partial.to_be_bytes());
        assert!(complete_checksum(&mut f, 14 + 20, 6));
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&group.octets());
        pseudo.extend_from_slice(&[0, 17, 0, udp_len as u8]);
        pseudo.extend_from_slice(&f[14 + 20..]);
        assert!(checksum::verifies(&pseudo));
        assert!(!complete_checksum(&mut f, 14 + 20, 100));
    }
}
