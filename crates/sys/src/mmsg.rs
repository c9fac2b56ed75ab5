//! Batched UDP I/O: `recvmmsg(2)` and `sendmmsg(2)` over preallocated buffers, with the
//! kernel's per-datagram receive timestamp (`SO_TIMESTAMPNS`).
//!
//! The batch types own every buffer, `iovec`, `mmsghdr`, address and control area they
//! hand to the kernel, so a call allocates nothing. The pointers inside the `mmsghdr`
//! array are rewritten before every call from the owned vectors, so moving a batch value
//! between calls can never leave a stale pointer behind.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// Bytes of control space per datagram: `CMSG_SPACE(sizeof(struct timespec))` is 32 on
/// 64-bit Linux; twice that leaves room for one more small message the kernel might add.
const CTRL_WORDS: usize = 8;

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The bytes that fit in the slot (the start of the datagram).
    pub data: &'a [u8],
    /// The datagram's real length on the wire (UDP payload), even when `data` is shorter.
    pub len: usize,
    /// The sender's address (IPv4 or IPv6; `None` if the kernel gave another family).
    pub source: Option<SocketAddr>,
    /// When the kernel received it (CLOCK_REALTIME, since the Unix epoch), if the socket
    /// has `SO_TIMESTAMPNS` enabled.
    pub timestamp: Option<Duration>,
}

/// Preallocated state for `recvmmsg(2)` on an IPv4 or IPv6 UDP socket.
pub struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    ctrl: Vec<[u64; CTRL_WORDS]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    filled: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.hdrs.len())
            .field("slot", &self.slot)
            .field("filled", &self.filled)
            .finish()
    }
}

fn zeroed_sockaddr_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is a plain C struct of integers (with private padding, so
    // it cannot be built field by field); all-zero is a valid value (family AF_UNSPEC).
    unsafe { std::mem::zeroed() }
}

/// The address the kernel wrote into `name` (`len` bytes of it), if IPv4 or IPv6.
fn socket_addr(name: &libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    let ptr: *const libc::sockaddr_storage = name;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked);
            // sockaddr_storage is at least as large and as aligned as sockaddr_in.
            let a = unsafe { &*ptr.cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6 (family AF_INET6, length checked).
            let a = unsafe { &*ptr.cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `count` iovecs over nothing; every call points them at its buffers first.
fn empty_iovecs(count: usize) -> Vec<libc::iovec> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    vec![empty; count]
}

/// `count` headers over nothing; every call points them at its iovecs first.
fn empty_mmsghdrs(count: usize) -> Vec<libc::mmsghdr> {
    (0..count)
        .map(|_| libc::mmsghdr {
            msg_hdr: empty_msghdr(),
            msg_len: 0,
        })
        .collect()
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct of integers and raw pointers (some fields are
    // private padding in the libc definition, so it cannot be built field by field);
    // all-zero is a valid value (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

impl RecvBatch {
    /// Room for `count` datagrams, keeping the first `slot` bytes of each.
    pub fn new(count: usize, slot: usize) -> Self {
        let count = count.clamp(1, 1024);
        let slot = slot.max(1);
        Self {
            slot,
            bufs: vec![0; count * slot],
            names: vec![zeroed_sockaddr_storage(); count],
            ctrl: vec![[0; CTRL_WORDS]; count],
            iovs: empty_iovecs(count),
            hdrs: empty_mmsghdrs(count),
            filled: 0,
        }
    }

    /// Receives up to the batch size: blocks until at least one datagram is there (or the
    /// socket's receive timeout expires: `WouldBlock`), then takes what is queued without
    /// waiting further (`MSG_WAITFORONE`). Returns how many datagrams were received.
    pub fn recv(&mut self, sock: &impl AsFd) -> io::Result<usize> {
        self.filled = 0;
        let base = self.bufs.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            self.iovs[i] = libc::iovec {
                // SAFETY: i * slot + slot <= bufs.len() by construction, so the pointer
                // stays inside the allocation.
                iov_base: unsafe { base.add(i * self.slot) }.cast(),
                iov_len: self.slot,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = std::mem::size_of::<[u64; CTRL_WORDS]>() as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let fd = sock.as_fd().as_raw_fd();
        // SAFETY: every mmsghdr points at buffers owned by `self` that live for the whole
        // call and whose lengths are the ones written above; the kernel writes at most
        // iov_len bytes per datagram, msg_namelen bytes of address and msg_controllen
        // bytes of control data. `self` is borrowed mutably, so nothing else touches them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_WAITFORONE | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// How many datagrams the last [`RecvBatch::recv`] returned.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// True when the last call returned nothing.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The `i`-th datagram of the last call.
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.filled {
            return None;
        }
        let hdr = &self.hdrs[i];
        let len = hdr.msg_len as usize;
        let start = i * self.slot;
        let data = self.bufs.get(start..start + len.min(self.slot))?;
        let source = socket_addr(&self.names[i], hdr.msg_hdr.msg_namelen as usize);
        Some(Datagram {
            data,
            len,
            source,
            timestamp: self.timestamp(i),
        })
    }

    fn timestamp(&self, i: usize) -> Option<Duration> {
        let hdr = &self.hdrs[i].msg_hdr;
        if hdr.msg_controllen == 0 {
            return None;
        }
        // SAFETY: the kernel filled msg_control/msg_controllen for this message during
        // the last recvmmsg; CMSG_FIRSTHDR/CMSG_NXTHDR only read inside that range and
        // return null at its end.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
        while !cmsg.is_null() {
            // SAFETY: cmsg is non-null and points at a complete cmsghdr inside the
            // control buffer (CMSG_FIRSTHDR/NXTHDR guarantee the header fits).
            let c = unsafe { &*cmsg };
            // SAFETY: CMSG_LEN is pure arithmetic on its argument.
            let want =
                unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) } as usize;
            if c.cmsg_level == libc::SOL_SOCKET
                && c.cmsg_type == libc::SCM_TIMESTAMPNS
                && c.cmsg_len as usize >= want
            {
                // SAFETY: cmsg_len covers a whole timespec after the header; the data
                // may be unaligned in principle, so it is read unaligned.
                let ts: libc::timespec =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                    return None;
                }
                return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            // SAFETY: as above; NXTHDR returns null past the end of the buffer.
            cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
        }
        None
    }
}

/// Preallocated state for `sendmmsg(2)` on a connected UDP socket.
pub struct SendBatch {
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("count", &self.hdrs.len())
            .finish()
    }
}

impl SendBatch {
    /// Room for up to `count` datagrams per call.
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, 1024);
        Self {
            iovs: empty_iovecs(count),
            hdrs: empty_mmsghdrs(count),
        }
    }

    /// The most datagrams one call sends.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends `data` as consecutive datagrams of `chunk` bytes each (the last one may be
    /// shorter) on a connected socket, in one `sendmmsg` call. Returns how many datagrams
    /// the kernel took (possibly fewer than asked; the caller sends the rest).
    pub fn send_chunks(
        &mut self,
        sock: &impl AsFd,
        data: &[u8],
        chunk: usize,
    ) -> io::Result<usize> {
        if data.is_empty() || chunk == 0 {
            return Ok(0);
        }
        let mut n = 0;
        for piece in data.chunks(chunk).take(self.hdrs.len()) {
            self.iovs[n] = libc::iovec {
                // The kernel only reads through this pointer (sendmmsg never writes to
                // the payload), so casting away const is sound.
                iov_base: piece.as_ptr().cast_mut().cast(),
                iov_len: piece.len(),
            };
            let h = &mut self.hdrs[n].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &raw mut self.iovs[n];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            n += 1;
        }
        let fd = sock.as_fd().as_raw_fd();
        // SAFETY: the first `n` mmsghdrs point at iovecs owned by `self` that describe
        // sub-slices of `data`, which is borrowed for the whole call; the kernel only
        // reads them (and writes msg_len in the headers we own).
        let sent = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

/// Set when SIGINT or SIGTERM arrives after [`stop_on_signals`].
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_stop(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Turns SIGINT and SIGTERM into a flag that a batched I/O loop polls, so the loop can
/// finish its work (print a summary) instead of dying. The handler is installed without
/// `SA_RESTART`, so a blocked `recvmmsg` returns `Interrupted` at once.
pub fn stop_on_signals() -> io::Result<&'static std::sync::atomic::AtomicBool> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is a plain C struct; all-zero is a valid starting value
        // (empty mask, no flags) before the handler is filled in.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = note_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: act is a valid sigaction; the handler only does an atomic store, which
        // is async-signal-safe; a null old-action pointer is allowed.
        let rc = unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(&STOP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn batch_round_trip_on_loopback() {
        round_trip("127.0.0.1:0");
    }

    #[test]
    fn batch_round_trip_on_ipv6_loopback() {
        round_trip("[::1]:0");
    }

    fn round_trip(local: &str) {
        let rx = UdpSocket::bind(local).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind(local).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut send = SendBatch::new(8);
        let data: Vec<u8> = (0..5 * 100).map(|i| (i / 100) as u8).collect();
        let mut off = 0;
        while off < data.len() {
            off += 100 * send.send_chunks(&tx, &data[off..], 100).unwrap();
        }
        // Slots shorter than the datagram: data is cut, len is the real length.
        let mut batch = RecvBatch::new(4, 16);
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let n = batch.recv(&rx).unwrap();
            for i in 0..n {
                let d = batch.get(i).unwrap();
                assert_eq!(d.len, 100);
                assert_eq!(d.data.len(), 16);
                assert_eq!(d.source.unwrap(), tx.local_addr().unwrap());
                seen.push(d.data[0]);
            }
            assert!(batch.get(n).is_none());
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    }
}
