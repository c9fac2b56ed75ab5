//! One attached link: its IGMP socket, its querier state machine, and the frames the
//! querier sends.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use mcgate_igmp::{Config, Event, Interface};
use mcgate_sys::packet::{Filter, PacketSocket};
use mcgate_wire::ethernet;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::netdev::NetDev;

/// An IGMP frame received on a link.
#[derive(Debug)]
pub struct IgmpFrame {
    /// The link's name.
    pub link: String,
    /// The link's index when the frame arrived (a re-created link has a new one).
    pub ifindex: u32,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// An attached link.
pub struct Link {
    /// The interface as last scanned.
    pub dev: NetDev,
    sock: Arc<AsyncFd<PacketSocket>>,
    reader: JoinHandle<()>,
    /// The querier, when IGMP is on.
    pub igmp: Option<Interface>,
    /// Queries that could not be sent.
    pub send_errors: u64,
    /// Frames that were not IPv4 IGMP (should not pass the socket filter).
    pub bad_frames: u64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Link {
    /// Opens the link's IGMP socket and starts reading it into `tx`.
    pub fn open(dev: NetDev, tx: mpsc::Sender<IgmpFrame>) -> std::io::Result<Self> {
        let sock = PacketSocket::open(dev.ifindex, Filter::Igmp)?;
        // `AsyncFd::new` is deprecated because a caller could close the descriptor while
        // it is registered. Here the descriptor is owned by the `PacketSocket` inside the
        // `AsyncFd` and is closed only when the `AsyncFd` drops, after deregistration:
        // exactly the contract `AsyncFd::register` states, without an `unsafe` block in a
        // crate that forbids them.
        #[allow(deprecated)]
        let sock = Arc::new(AsyncFd::new(sock)?);
        let reader = tokio::spawn(read_loop(sock.clone(), dev.name.clone(), dev.ifindex, tx));
        Ok(Self {
            dev,
            sock,
            reader,
            igmp: None,
            send_errors: 0,
            bad_frames: 0,
        })
    }

    /// The address queries are sent from: the link's own, or 0.0.0.0 when it has none
    /// (as the reference gateway does; Linux hosts accept IGMP from 0.0.0.0).
    pub fn query_source(&self) -> Ipv4Addr {
        self.dev.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Starts (or reconfigures) the querier with `config`, or stops it with `None`.
    pub fn set_igmp(&mut self, config: Option<&Config>, now: Instant) {
        match (config, &mut self.igmp) {
            (None, _) => self.igmp = None,
            (Some(c), Some(i)) => {
                if i.config() != c {
                    i.set_config(now, c.clone());
                }
            }
            (Some(c), None) => {
                self.igmp = Some(Interface::new(c.clone(), self.query_source(), now));
            }
        }
    }

    /// Feeds one received frame to the querier.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        let Some(igmp) = self.igmp.as_mut() else {
            return;
        };
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            self.bad_frames += 1;
            return;
        };
        if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
            self.bad_frames += 1;
            return;
        }
        igmp.handle_packet(now, eth.payload());
    }

    /// Sends what the querier wants sent and returns its events.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(igmp) = self.igmp.as_mut() else {
            return events;
        };
        while let Some(t) = igmp.poll_transmit() {
            let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + t.packet.len());
            frame.extend_from_slice(&ethernet::multicast_mac(t.dst));
            frame.extend_from_slice(&self.dev.mac);
            frame.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
            frame.extend_from_slice(&t.packet);
            if let Err(e) = self.sock.get_ref().send(&frame) {
                self.send_errors += 1;
                tracing::debug!(link = %self.dev.name, error = %e, "cannot send a query");
            }
        }
        while let Some(ev) = igmp.poll_event() {
            events.push(ev);
        }
        events
    }
}

async fn read_loop(
    sock: Arc<AsyncFd<PacketSocket>>,
    link: String,
    ifindex: u32,
    tx: mpsc::Sender<IgmpFrame>,
) {
    let mut buf = vec![0u8; 9216];
    loop {
        let mut guard = match sock.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        loop {
            match sock.get_ref().recv(&mut buf) {
                Ok(Some((n, truncated))) => {
                    if truncated {
                        continue;
                    }
                    let frame = IgmpFrame {
                        link: link.clone(),
                        ifindex,
                        frame: buf.get(..n).unwrap_or(&[]).to_vec(),
                    };
                    // A full queue means the agent is behind; dropping IGMP is safe
                    // (hosts repeat reports, the querier re-queries).
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(frame) {
                        return;
                    }
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
    }
}
