//! The UDP socket that carries VXLAN between hosts: batched receive with source
//! addresses, batched zero-copy send of (header, frame) pairs to many destinations.
//!
//! The socket has `IP_MTU_DISCOVER = IP_PMTUDISC_DO`: the kernel never fragments what it
//! sends and refuses (`EMSGSIZE`) a datagram larger than the path MTU.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::packet::{FrameBatch, MAX_BATCH, Part, SendOutcome, send_all_with};

/// A non-blocking IPv4 UDP socket bound to the underlay address.
#[derive(Debug)]
pub struct TunnelSocket {
    fd: OwnedFd,
    local: SocketAddrV4,
}

/// One datagram to send: `header` then `payload`, gathered by the kernel (no copy).
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Where to.
    pub dst: SocketAddrV4,
    /// The first bytes (the VXLAN header).
    pub header: &'a [u8],
    /// The rest (the inner frame).
    pub payload: &'a [u8],
}

/// One VXLAN datagram to send from a received batch: `header`, then the bytes `part`
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelTx {
    /// Where to.
    pub dst: SocketAddrV4,
    /// The VXLAN header.
    pub header: [u8; 8],
    /// The inner frame, inside the batch.
    pub part: Part,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid `sockaddr_in`.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*addr.ip()).to_be(),
    };
    sa
}

impl TunnelSocket {
    /// Binds `local` (the underlay address and the VXLAN port).
    pub fn bind(local: SocketAddrV4) -> io::Result<Self> {
        // SAFETY: plain system call with constant arguments; the result is checked.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: `raw` is a descriptor we just opened and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let pmtu: libc::c_int = libc::IP_PMTUDISC_DO;
        // SAFETY: `pmtu` is an initialised c_int and the length is its size.
        cvt(unsafe {
            libc::setsockopt(
                raw,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&pmtu as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        let sa = sockaddr(local);
        // SAFETY: `sa` is an initialised `sockaddr_in` and the length is its size.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        })?;
        Ok(Self { fd, local })
    }

    /// The bound address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Receives up to `MAX_BATCH` datagrams in one `recvmmsg` call into `batch`, with
    /// their sources in `sources`; returns how many (0 when none is waiting).
    pub fn recv_batch(
        &self,
        batch: &mut FrameBatch,
        sources: &mut [SocketAddrV4; MAX_BATCH],
    ) -> io::Result<usize> {
        batch.count = 0;
        let slot = batch.slot;
        let mut iovs: [MaybeUninit<libc::iovec>; MAX_BATCH] = [MaybeUninit::uninit(); MAX_BATCH];
        // SAFETY: all-zero is a valid array of `sockaddr_in` and of `mmsghdr`.
        let mut names: [libc::sockaddr_in; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = batch.data.as_mut_ptr();
        for (i, ((iov, hdr), name)) in iovs
            .iter_mut()
            .zip(hdrs.iter_mut())
            .zip(names.iter_mut())
            .enumerate()
        {
            // SAFETY: `i * slot + slot <= data.len()` since `data` holds MAX_BATCH slots.
            let ptr = unsafe { base.add(i * slot) };
            let iov = iov.write(libc::iovec {
                iov_base: ptr.cast(),
                iov_len: slot,
            });
            hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        // SAFETY: every header points at one iovec over a distinct slot of `batch.data`
        // and at its own `sockaddr_in`, all alive and exclusively borrowed for the call.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                MAX_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = (n as usize).min(MAX_BATCH);
        for i in 0..n {
            batch.lens[i] = hdrs[i].msg_len as usize;
            batch.truncated[i] = hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            sources[i] = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(names[i].sin_addr.s_addr)),
                u16::from_be(names[i].sin_port),
            );
        }
        batch.count = n;
        Ok(n)
    }

    /// Sends up to `MAX_BATCH` datagrams in one `sendmmsg` call; returns how many the
    /// kernel took. An error means the first one was refused.
    pub fn send_batch(&self, datagrams: &[Datagram<'_>]) -> io::Result<usize> {
        let n = datagrams.len().min(MAX_BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut iovs: [[MaybeUninit<libc::iovec>; 2]; MAX_BATCH] =
            [[MaybeUninit::uninit(); 2]; MAX_BATCH];
        // SAFETY: all-zero is a valid array of `sockaddr_in` and of `mmsghdr`.
        let mut names: [libc::sockaddr_in; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for (((iov, hdr), name), d) in iovs
            .iter_mut()
            .zip(hdrs.iter_mut())
            .zip(names.iter_mut())
            .zip(datagrams)
        {
            *name = sockaddr(d.dst);
            iov[0].write(libc::iovec {
                iov_base: d.header.as_ptr().cast_mut().cast(),
                iov_len: d.header.len(),
            });
            iov[1].write(libc::iovec {
                iov_base: d.payload.as_ptr().cast_mut().cast(),
                iov_len: d.payload.len(),
            });
            hdr.msg_hdr.msg_iov = iov.as_mut_ptr().cast();
            hdr.msg_hdr.msg_iovlen = 2;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        // SAFETY: the first `n` headers each point at their own address and at two
        // initialised iovecs over slices borrowed for the whole call; the kernel only
        // reads them.
        let sent = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Sends every datagram, batch by batch, skipping (and counting) the ones the kernel
    /// refuses; stops a batch at a full socket buffer and counts the rest as
    /// `would_block`.
    pub fn send_all(&self, datagrams: &[Datagram<'_>]) -> SendOutcome {
        let mut out = SendOutcome::default();
        for chunk in datagrams.chunks(MAX_BATCH) {
            out.add(send_all_with(chunk, |d| self.send_batch(d)));
        }
        out
    }

    /// Sends `items`, each a header plus a frame held in `batch`, without copying the
    /// frames; items naming bytes outside the batch are counted as failed.
    pub fn send_parts(&self, batch: &FrameBatch, items: &[TunnelTx]) -> SendOutcome {
        let mut out = SendOutcome::default();
        let empty = Datagram {
            dst: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            header: &[],
            payload: &[],
        };
        for chunk in items.chunks(MAX_BATCH) {
            let mut dgrams: [Datagram<'_>; MAX_BATCH] = [empty; MAX_BATCH];
            let mut n = 0;
            for item in chunk {
                match batch.part(item.part) {
                    Some(payload) => {
                        dgrams[n] = Datagram {
                            dst: item.dst,
                            header: &item.header,
                            payload,
                        };
                        n += 1;
                    }
                    None => out.failed += 1,
                }
            }
            out.add(send_all_with(&dgrams[..n], |d| self.send_batch(d)));
        }
        out
    }
}

impl AsRawFd for TunnelSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TunnelSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_batch_round_trip() {
        let a = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        // Learn the ephemeral port through the kernel.
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = match b.local_addr().unwrap() {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        let hdr = [8u8, 0, 0, 0, 0, 0, 1, 0];
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let dgrams: Vec<Datagram<'_>> = payloads
            .iter()
            .map(|p| Datagram {
                dst,
                header: &hdr,
                payload: p,
            })
            .collect();
        let out = a.send_all(&dgrams);
        assert_eq!(out.sent, 5);
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            let (n, _) = b.recv_from(&mut buf).unwrap();
            assert_eq!(n, 8 + 10 + i as usize);
            assert_eq!(&buf[..8], &hdr);
            assert!(buf[8..n].iter().all(|&x| x == i));
        }
        // And back, received in one batch.
        let back = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let _ = back;
        let c = TunnelSocket::bind(dst_free()).unwrap();
        for i in 0..3u8 {
            b.send_to(&[i; 20], std::net::SocketAddr::V4(c.local()))
                .unwrap();
        }
        let mut batch = FrameBatch::new(128);
        let mut sources = [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); MAX_BATCH];
        let mut got = 0;
        for _ in 0..100 {
            got += c.recv_batch(&mut batch, &mut sources).unwrap();
            if got >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, 3);
        assert_eq!(sources[0], dst);
        assert_eq!(batch.frame(0).unwrap().0, &[0u8; 20][..]);
    }

    fn dst_free() -> SocketAddrV4 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => unreachable!(),
        }
    }
}
