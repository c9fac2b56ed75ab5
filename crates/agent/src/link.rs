//! One attached link's IGMP and MLD socket: a reader task that hands each frame to the
//! agent's loop and counts every frame it cannot hand on, and the sending of queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mcgate_sys::async_packet::AsyncPacketSocket;
use mcgate_sys::packet::{Filter, PacketSocket, set_recv_buffer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::view::FrameCounters;

/// The largest frame read whole: an Ethernet header (with a VLAN tag) and the largest
/// IPv4 packet. An IGMP message on a jumbo link (12,000 bytes and more) fits.
pub const MAX_FRAME: usize = 18 + 65_535;
/// The IGMP socket's receive buffer: a burst of thousands of reports (a host joining
/// hundreds of groups, many hosts answering one query) waits here for the agent.
const RECV_BUFFER: usize = 4 << 20;

/// An IGMP or MLD frame received on a link.
#[derive(Debug)]
pub struct IgmpFrame {
    /// The link's name.
    pub link: String,
    /// The link's index when the frame arrived (a re-created link has a new one).
    pub ifindex: u32,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// The frame counters, IGMP ones at index 0 and MLD ones at 1 (by EtherType), but for
/// the kernel's overflows, which cannot be told apart.
#[derive(Debug, Default)]
struct Counters {
    received: [AtomicU64; 2],
    socket_overflow: AtomicU64,
    queue_full: [AtomicU64; 2],
    oversize: [AtomicU64; 2],
}

/// The counters' index of a frame: 1 for IPv6 (MLD), else 0 (IGMP).
fn family(frame: &[u8]) -> usize {
    usize::from(frame.get(12..14) == Some(&[0x86, 0xdd][..]))
}

/// An attached link's socket and reader.
pub struct LinkSocket {
    /// The link's index.
    pub ifindex: u32,
    sock: Arc<AsyncPacketSocket>,
    counters: Arc<Counters>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for LinkSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSocket")
            .field("ifindex", &self.ifindex)
            .finish_non_exhaustive()
    }
}

impl Drop for LinkSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LinkSocket {
    /// Opens the socket of link `name` for the frames `filter` selects (IGMP, or IGMP
    /// and MLD) and starts reading it into `tx`.
    pub fn open(
        name: &str,
        ifindex: u32,
        filter: Filter,
        tx: mpsc::Sender<IgmpFrame>,
    ) -> std::io::Result<Self> {
        let sock = PacketSocket::open(ifindex, filter)?;
        // Best effort: a smaller buffer only makes overflows likelier, and they are
        // counted.
        let _ = set_recv_buffer(std::os::fd::AsFd::as_fd(&sock), RECV_BUFFER);
        let sock = Arc::new(AsyncPacketSocket::new(sock)?);
        let counters = Arc::new(Counters::default());
        let reader = tokio::spawn(read_loop(
            sock.clone(),
            counters.clone(),
            name.to_string(),
            ifindex,
            tx,
        ));
        Ok(Self {
            ifindex,
            sock,
            counters,
            reader,
        })
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        self.sock.get_ref().send(frame)
    }

    /// The IGMP frame counters so far (with the socket's overflows, of either family).
    pub fn counters(&self) -> FrameCounters {
        self.family_counters(0, self.counters.socket_overflow.load(Ordering::Relaxed))
    }

    /// The MLD frame counters so far (overflows are counted with IGMP's).
    pub fn mld_counters(&self) -> FrameCounters {
        self.family_counters(1, 0)
    }

    fn family_counters(&self, i: usize, socket_overflow: u64) -> FrameCounters {
        let c = &self.counters;
        FrameCounters {
            received: c.received[i].load(Ordering::Relaxed),
            socket_overflow,
            queue_full: c.queue_full[i].load(Ordering::Relaxed),
            oversize: c.oversize[i].load(Ordering::Relaxed),
        }
    }
}

async fn read_loop(
    sock: Arc<AsyncPacketSocket>,
    counters: Arc<Counters>,
    link: String,
    ifindex: u32,
    tx: mpsc::Sender<IgmpFrame>,
) {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let mut guard = match sock.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        loop {
            match sock.get_ref().recv(&mut buf) {
                Ok(Some((n, truncated))) => {
                    let i = family(&buf);
                    if truncated {
                        counters.oversize[i].fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let frame = IgmpFrame {
                        link: link.clone(),
                        ifindex,
                        frame: buf.get(..n).unwrap_or(&[]).to_vec(),
                    };
                    // A full queue means the agent is behind; the frame is dropped and
                    // counted (hosts repeat reports, the querier re-queries).
                    match tx.try_send(frame) {
                        Ok(()) => counters.received[i].fetch_add(1, Ordering::Relaxed),
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            counters.queue_full[i].fetch_add(1, Ordering::Relaxed)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    };
                }
                Ok(None) => {
                    guard.clear_ready();
                    break;
                }
                Err(e) => {
                    tracing::debug!(link = %link, error = %e, "IGMP socket failed");
                    return;
                }
            }
        }
        // What the kernel dropped while the queue was full (reset on read).
        if let Ok(n) = sock.get_ref().take_drops() {
            counters.socket_overflow.fetch_add(n, Ordering::Relaxed);
        }
    }
}
