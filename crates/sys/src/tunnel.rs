//! The UDP socket that carries VXLAN between hosts: batched receive with source
//! addresses, batched zero-copy send of (header, frame) pairs to many destinations.
//!
//! The socket has `IP_MTU_DISCOVER = IP_PMTUDISC_DO`: the kernel never fragments what it
//! sends and refuses (`EMSGSIZE`) a datagram larger than the path MTU.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::packet::{FrameBatch, MAX_BATCH, Part, SendOutcome, recv_into, send_all_with, send_now};
use crate::sockopt::{bind, getsockopt, setsockopt, socket};

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
        let fd = socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )?;
        let raw = fd.as_raw_fd();
        let pmtu: libc::c_int = libc::IP_PMTUDISC_DO;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &pmtu)?;
        bind(raw, &sockaddr(local))?;
        Ok(Self { fd, local })
    }

    /// The bound address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Datagrams the kernel dropped because this socket's receive queue was full, since
    /// the socket was opened (`SO_MEMINFO`, `SK_MEMINFO_DROPS`).
    pub fn drops(&self) -> io::Result<u64> {
        const SO_MEMINFO: libc::c_int = 55;
        let mut info = [0u32; 9];
        getsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, &mut info)?;
        Ok(u64::from(info[libc::SK_MEMINFO_DROPS as usize]))
    }

    /// Asks the kernel to coalesce datagrams that arrive as one segmentation-offload
    /// packet (`UDP_GRO`): one receive then returns many, and
    /// [`FrameBatch::segment_size`] tells how to split them. Slots must then hold
    /// 65535 bytes.
    pub fn enable_gro(&self) -> io::Result<()> {
        const UDP_GRO: libc::c_int = 104;
        let one: libc::c_int = 1;
        setsockopt(self.fd.as_raw_fd(), libc::SOL_UDP, UDP_GRO, &one)
    }

    /// Receives up to `MAX_BATCH` datagrams in one `recvmmsg` call into `batch`, with
    /// their sources in `sources`; returns how many (0 when none is waiting).
    pub fn recv_batch(
        &self,
        batch: &mut FrameBatch,
        sources: &mut [SocketAddrV4; MAX_BATCH],
    ) -> io::Result<usize> {
        // SAFETY: all-zero is a valid array of `sockaddr_in` and of `mmsghdr`.
        let mut names: [libc::sockaddr_in; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        // Room for one UDP_GRO control message (CMSG_SPACE(4) = 24 bytes) per datagram.
        let mut ctrl = [[0u64; 4]; MAX_BATCH];
        for ((hdr, name), ctrl) in hdrs.iter_mut().zip(names.iter_mut()).zip(ctrl.iter_mut()) {
            hdr.msg_hdr.msg_control = ctrl.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = size_of::<[u64; 4]>() as _;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        // SAFETY: each header's address and control area are its own entries of `names`
        // and `ctrl`, alive and exclusively borrowed for the call.
        let n = unsafe { recv_into(self.fd.as_raw_fd(), batch, &mut hdrs)? };
        for i in 0..n {
            batch.seg[i] = gro_segment_size(&hdrs[i].msg_hdr);
            sources[i] = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(names[i].sin_addr.s_addr)),
                u16::from_be(names[i].sin_port),
            );
        }
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
        unsafe { send_now(self.fd.as_raw_fd(), &mut hdrs, n) }
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

/// The segment size of a `UDP_GRO` control message in a received message, or 0.
fn gro_segment_size(msg: &libc::msghdr) -> u16 {
    const UDP_GRO: libc::c_int = 104;
    // SAFETY: `msg` is a message header the kernel just filled; its control pointer and
    // length describe a buffer that is still alive (the caller's `ctrl` array), and the
    // CMSG_* macros only walk inside `msg_controllen` bytes of it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == UDP_GRO
                && (*c).cmsg_len as usize >= libc::CMSG_LEN(4) as usize
            {
                let v = libc::CMSG_DATA(c).cast::<libc::c_int>().read_unaligned();
                return u16::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    0
}

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// The most segments one GSO send carries (the kernel allows 64 or more).
const GSO_MAX_SEGMENTS: usize = 64;
/// The most bytes one GSO send carries (an IPv4 datagram's limit, with headroom).
const GSO_MAX_BYTES: usize = 60_000;

/// Scratch space for [`TunnelSocket::send_parts_gso`], allocated once and reused. It
/// holds raw pointers between calls only as stale values that are rewritten before use,
/// so keep one per thread.
#[derive(Debug, Default)]
pub struct GsoScratch {
    order: Vec<usize>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_in>,
    ctrl: Vec<[u64; 4]>,
    /// Where each message's items start in `order`, and how many it carries.
    spans: Vec<(usize, usize)>,
}

impl TunnelSocket {
    /// Like [`TunnelSocket::send_parts`], but datagrams of equal size to the same
    /// destination go out as one UDP GSO send (`UDP_SEGMENT`): the kernel builds the
    /// datagrams from one super-packet, and the path to the other host carries it as
    /// one until it must be split. The datagrams on the wire are identical.
    ///
    /// Returns `Err` with nothing sent when the kernel refuses GSO on this path (no
    /// checksum offload on the way out); the caller then uses `send_parts`.
    pub fn send_parts_gso(
        &self,
        batch: &FrameBatch,
        items: &[TunnelTx],
        scratch: &mut GsoScratch,
    ) -> io::Result<SendOutcome> {
        let mut out = SendOutcome::default();
        let s = scratch;
        s.order.clear();
        s.order
            .extend((0..items.len()).filter(|&i| batch.part(items[i].part).is_some()));
        out.failed += items.len() - s.order.len();
        // Group by destination (and header), keeping frame order inside a group.
        s.order.sort_unstable_by_key(|&i| {
            let t = &items[i];
            (u32::from(*t.dst.ip()), t.dst.port(), t.header, i)
        });
        // Cut the order into messages: runs of same destination, header and length.
        s.spans.clear();
        let mut start = 0;
        while start < s.order.len() {
            let first = &items[s.order[start]];
            let seg = usize::from(first.part.len) + first.header.len();
            let max = GSO_MAX_SEGMENTS.min((GSO_MAX_BYTES / seg.max(1)).max(1));
            let mut end = start + 1;
            while end < s.order.len() && end - start < max {
                let t = &items[s.order[end]];
                if t.dst != first.dst || t.header != first.header || t.part.len != first.part.len {
                    break;
                }
                end += 1;
            }
            s.spans.push((start, end - start));
            start = end;
        }
        let nmsg = s.spans.len();
        let niov: usize = s.spans.iter().map(|(_, n)| 2 * n).sum();
        // SAFETY: all-zero is a valid iovec, mmsghdr and sockaddr_in; the vectors only
        // grow here and are fully rewritten below before the kernel sees them.
        unsafe {
            s.iovs.resize(niov, zeroed());
            s.hdrs.resize(nmsg, zeroed());
            s.names.resize(nmsg, zeroed());
        }
        s.ctrl.resize(nmsg, [0; 4]);
        let mut iov_at = 0;
        for (m, &(start, n)) in s.spans.iter().enumerate() {
            let first = &items[s.order[start]];
            s.names[m] = sockaddr(first.dst);
            let iov_start = iov_at;
            for &i in &s.order[start..start + n] {
                let t = &items[i];
                let payload = batch.part(t.part).unwrap_or(&[]);
                s.iovs[iov_at] = libc::iovec {
                    iov_base: t.header.as_ptr().cast_mut().cast(),
                    iov_len: t.header.len(),
                };
                s.iovs[iov_at + 1] = libc::iovec {
                    iov_base: payload.as_ptr().cast_mut().cast(),
                    iov_len: payload.len(),
                };
                iov_at += 2;
            }
            // SAFETY: all-zero is a valid mmsghdr.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (&mut s.names[m] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: `iov_start + 2n <= iovs.len()` by construction of `niov`.
            h.msg_hdr.msg_iov = unsafe { s.iovs.as_mut_ptr().add(iov_start) };
            h.msg_hdr.msg_iovlen = 2 * n;
            if n > 1 {
                let seg = (usize::from(first.part.len) + first.header.len()) as u16;
                let ctrl = &mut s.ctrl[m];
                let cmsg = ctrl.as_mut_ptr().cast::<libc::cmsghdr>();
                // SAFETY: `ctrl` is 32 bytes, 8-byte aligned: room for one cmsghdr (16
                // bytes) and its 2-byte payload at CMSG_DATA (offset 16), which is
                // CMSG_SPACE(2) = 24 bytes.
                unsafe {
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    libc::CMSG_DATA(cmsg).cast::<u16>().write_unaligned(seg);
                    h.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                }
                h.msg_hdr.msg_control = cmsg.cast();
            }
            s.hdrs[m] = h;
        }
        // Send the messages in sendmmsg batches.
        let mut m = 0;
        while m < nmsg {
            let k = (nmsg - m).min(MAX_BATCH);
            // SAFETY: headers m..m+k point at names, iovecs (over the batch's buffers and
            // the items' headers, all borrowed for this call) and control buffers that
            // live in `s` and `items`; the kernel only reads them.
            let sent = unsafe { send_now(self.fd.as_raw_fd(), &mut s.hdrs[m..], k) };
            let sent = match sent {
                Ok(sent) => sent,
                Err(e) => {
                    let segs = s.spans[m].1;
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                            out.would_block += s.spans[m..].iter().map(|(_, n)| n).sum::<usize>();
                            return Ok(out);
                        }
                        Some(libc::EINTR) => continue,
                        // GSO refused on this path: nothing of this message went out.
                        Some(libc::EIO) | Some(libc::EINVAL) if segs > 1 && out.sent == 0 => {
                            return Err(e);
                        }
                        Some(libc::EMSGSIZE) => out.too_big += segs,
                        _ => out.failed += segs,
                    }
                    m += 1;
                    continue;
                }
            };
            out.sent += s.spans[m..m + sent].iter().map(|(_, n)| n).sum::<usize>();
            m += sent.max(1).min(k);
            if sent == 0 {
                break;
            }
        }
        Ok(out)
    }
}

fd_traits!(TunnelSocket);

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
