//! `poll(2)` over a handful of descriptors, for the data plane's threads.

use std::io;
use std::os::fd::RawFd;

/// Readable (`POLLIN`).
pub const READABLE: i16 = libc::POLLIN;

/// One descriptor to wait on and what happened to it.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    /// Waits for `events` (e.g. [`READABLE`]) on `fd`.
    pub fn new(fd: RawFd, events: i16) -> Self {
        Self(libc::pollfd {
            fd,
            events,
            revents: 0,
        })
    }

    /// Whether the last poll saw the descriptor readable, or in error or hung up (a read
    /// then tells which).
    pub fn ready(&self) -> bool {
        self.0.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
    }

    /// The descriptor.
    pub fn fd(&self) -> RawFd {
        self.0.fd
    }
}

/// Waits until one of `fds` is ready or `timeout_ms` passed (-1: forever); returns how
/// many are ready. An interrupted wait returns 0.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `PollFd` is `repr(transparent)` over `pollfd`, so the slice is a valid
    // array of `fds.len()` pollfds, exclusively borrowed for the call.
    let n = unsafe {
        libc::poll(
            fds.as_mut_ptr().cast::<libc::pollfd>(),
            fds.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
