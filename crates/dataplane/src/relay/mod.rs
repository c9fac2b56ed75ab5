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
//! - WireGuard: for `tunnel = "wireguard"` domains (the default) the copies are sealed
//!   instead ([`wg`], boringtun's Noise sessions; the inner IPv4/UDP packet in
//!   [`inner`]) and sent from a second socket on the WireGuard port; what arrives there
//!   is opened, its inner packet checked, and handed to the same decision.
//!
//! Buffers are allocated once; the per-packet path does no allocation (a group seen for
//! the first time adds one counter entry, up to a bound). The forwarding table is an
//! `Arc` swapped by a command between batches.
//!
//! Where each frame goes is decided in [`decide`] (pure, unit-tested); this module is
//! the driver: it waits on the sockets, hands each frame to the decision, sends what the
//! [`decide::Plan`] says and counts.

pub mod checksum;
pub mod decide;
mod execute;
pub mod inner;
pub mod wg;
mod worker;
mod worker_wg;

use std::io::{PipeWriter, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_sys::packet;
use mcgate_sys::tunnel::TunnelSocket;

pub use self::decide::ENCAP_OVERHEAD;
use self::worker::Worker;
use self::worker_wg::WgPlane;
use crate::counters::DataplaneStats;
use crate::{Dataplane, DataplaneConfig, DataplaneError, HostKey, LinkSpec};

/// Socket buffers: deep enough to ride out a scheduling hiccup at line rate.
const TUNNEL_BUF: usize = 16 << 20;

pub(crate) enum Command {
    Table(Arc<ForwardingTable>),
    Links(Vec<LinkSpec>),
    Mtu(usize),
    Key(HostKey),
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
        let wg = match config.wireguard {
            Some(w) => {
                let sock = TunnelSocket::bind(w.listen).map_err(|source| {
                    DataplaneError::BindWireguard {
                        addr: w.listen,
                        source,
                    }
                })?;
                for (what, r) in [
                    ("receive", packet::set_recv_buffer(sock.as_fd(), TUNNEL_BUF)),
                    ("send", packet::set_send_buffer(sock.as_fd(), TUNNEL_BUF)),
                ] {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "cannot enlarge the WireGuard socket's {what} buffer");
                    }
                }
                Some((sock, w.key))
            }
            None => None,
        };
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
        let build = move || {
            Worker::new(
                rx,
                reader,
                worker_wake,
                tunnel,
                wg.map(|(sock, key)| WgPlane::new(sock, key)),
                config.underlay_mtu,
                published,
            )
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

    fn set_key(&self, key: HostKey) {
        self.command(Command::Key(key));
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
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
