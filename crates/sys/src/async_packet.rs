//! An AF_PACKET socket registered with the tokio reactor, for the agent's IGMP sockets.
//!
//! tokio's safe `AsyncFd` constructors are deprecated as unsound: nothing stops the
//! caller from closing or replacing the descriptor while the reactor still watches it.
//! [`AsyncPacketSocket`] registers with `AsyncFd::register_with_interest` instead and
//! keeps the invariant that call needs by owning the socket and never handing out a
//! mutable reference to it.

use std::io;

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::packet::PacketSocket;

/// A [`PacketSocket`] whose readiness is driven by the tokio reactor.
#[derive(Debug)]
pub struct AsyncPacketSocket {
    fd: AsyncFd<PacketSocket>,
}

impl AsyncPacketSocket {
    /// Registers `sock` for readability with the current tokio runtime's reactor.
    ///
    /// Errors: the reactor refused the registration (the socket is then closed). Must be
    /// called from within a tokio runtime with I/O enabled.
    pub fn new(sock: PacketSocket) -> io::Result<Self> {
        // SAFETY: `register_with_interest` requires that the descriptor stays open and
        // refers to the same file description, and that `as_raw_fd` returns it, for as
        // long as the `AsyncFd` owns the socket. `PacketSocket` owns its descriptor (an
        // `OwnedFd` closed only when the socket drops), has no method that closes or
        // replaces it, and `AsyncFd` drops its inner value only after deregistering.
        // This type never exposes `&mut PacketSocket` (through which a caller could swap
        // the socket for another) nor `into_inner`, so the invariant holds until drop.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// The socket, for non-blocking reads and sends.
    pub fn get_ref(&self) -> &PacketSocket {
        self.fd.get_ref()
    }

    /// Waits until the socket may be readable. Clear the guard's readiness when a read
    /// finds nothing (`Ok(None)` from [`PacketSocket::recv`]).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, PacketSocket>> {
        self.fd.readable().await
    }
}
