//! AF_PACKET sockets bound to one link: whole Ethernet frames in and out.
//!
//! The agent uses one per attached link and purpose: an IGMP socket (the querier's
//! reports in, queries out) and a data socket (multicast data sent by local containers
//! in, deliveries out). Each socket gets a classic BPF filter so the kernel hands it only
//! the frames of its purpose, and `PACKET_IGNORE_OUTGOING` so it never sees frames sent
//! on the link (its own deliveries included): that is what keeps the relay loop-free.

use crate::sockopt::{bind, getsockopt, setsockopt, socket};
use std::io;
use std::mem::{MaybeUninit, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The most frames one [`PacketSocket::recv_batch`] or [`PacketSocket::send_batch`] call
/// moves.
pub const MAX_BATCH: usize = 64;

/// Which frames the kernel hands a [`PacketSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// IPv4 with protocol 2 (IGMP), any destination.
    Igmp,
    /// IGMP as [`Filter::Igmp`], or MLD: IPv6 whose ICMPv6 type is 130, 131, 132 or 143
    /// (query, v1 report, done, v2 report), either right after the fixed header or after
    /// one Hop-by-Hop Options header (where MLD's Router Alert is, RFC 3810 section 5).
    /// What the querier refuses in such a frame is counted there.
    Membership,
    /// IPv4 to a multicast destination (224.0.0.0/4) that is not IGMP, or IPv6 to a
    /// multicast destination of scope 3 or more (ff00::/8 but not interface-, link-local
    /// or reserved scope 0: Neighbor Discovery and MLDv2 reports stay out; nothing of
    /// link scope has members to forward to). The relay's `inspect` drops and counts
    /// what else it must not forward (an MLDv1 report to its group).
    MulticastData,
    /// Every frame (tests and diagnostics).
    All,
}

const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_VNET_HDR` (linux/if_packet.h).
const PACKET_VNET_HDR: libc::c_int = 15;

/// Length of the `virtio_net_hdr` a [`PacketSocket::open_capture`] socket puts before
/// every frame.
pub const VNET_HDR_LEN: usize = 10;

/// The offload state of a captured frame, from its `virtio_net_hdr` (native byte order,
/// as the kernel writes it for packet sockets on a little- or big-endian host alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` flags: 1 = the transport checksum still has to be computed.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`: 0 = a single packet, else a segmentation offload super-packet.
    pub gso_type: u8,
    /// Where the checksummed range starts, from the start of the frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
    pub const NEEDS_CSUM: u8 = 1;

    /// Reads the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h: &[u8; VNET_HDR_LEN] = buf.first_chunk()?;
        Some(Self {
            flags: h[0],
            gso_type: h[1],
            csum_start: u16::from_ne_bytes([h[6], h[7]]),
            csum_offset: u16::from_ne_bytes([h[8], h[9]]),
        })
    }
}
const SNAP_LEN: u32 = 0x0004_0000;

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LDH_ABS: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
const LDB_ABS: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const JEQ_K: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const AND_K: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;
const LDB_IND: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_IND;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
const JGE_K: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JGT_K: u32 = libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K;
const ADD_K: u32 = libc::BPF_ALU | libc::BPF_ADD | libc::BPF_K;
const LSH_K: u32 = libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K;
const TAX: u32 = libc::BPF_MISC | libc::BPF_TAX;

/// EtherType at 12, IPv4 protocol at 14 + 9, first byte of the IPv4 destination at
/// 14 + 16. Jump offsets count from the next instruction.
const IGMP_PROGRAM: [libc::sock_filter; 6] = [
    stmt(LDH_ABS, 12),
    jump(JEQ_K, 0x0800, 0, 3),
    stmt(LDB_ABS, 23),
    jump(JEQ_K, 2, 0, 1),
    stmt(RET_K, SNAP_LEN),
    stmt(RET_K, 0),
];

/// [`Filter::Membership`]: the IGMP test, then for IPv6 (EtherType 0x86dd) the Next
/// Header at 14 + 6: ICMPv6 (58) has its type at 14 + 40; Hop-by-Hop (0) must be
/// followed by ICMPv6 (its Next Header at 54), whose type is at 54 + (Hdr Ext Len + 1)
/// x 8 (X holds that length). A load past the frame's end rejects it.
const MEMBERSHIP_PROGRAM: [libc::sock_filter; 22] = [
    stmt(LDH_ABS, 12),          // 0: EtherType
    jump(JEQ_K, 0x0800, 0, 2),  // 1: IPv4? else 4
    stmt(LDB_ABS, 23),          // 2: IPv4 protocol
    jump(JEQ_K, 2, 16, 17),     // 3: IGMP: accept, else reject
    jump(JEQ_K, 0x86dd, 0, 16), // 4: IPv6? else reject
    stmt(LDB_ABS, 20),          // 5: Next Header
    jump(JEQ_K, 58, 0, 2),      // 6: ICMPv6? else 9
    stmt(LDB_ABS, 54),          // 7: its type
    stmt(JA, 8),                // 8: to 17
    jump(JEQ_K, 0, 0, 11),      // 9: Hop-by-Hop? else reject
    stmt(LDB_ABS, 54),          // 10: its Next Header
    jump(JEQ_K, 58, 0, 9),      // 11: ICMPv6? else reject
    stmt(LDB_ABS, 55),          // 12: Hdr Ext Len
    stmt(ADD_K, 1),             // 13
    stmt(LSH_K, 3),             // 14: x 8
    stmt(TAX, 0),               // 15: X = Hop-by-Hop length
    stmt(LDB_IND, 54),          // 16: the ICMPv6 type
    jump(JEQ_K, 143, 2, 0),     // 17: MLDv2 report: accept
    jump(JGE_K, 130, 0, 2),     // 18: below 130: reject
    jump(JGT_K, 132, 1, 0),     // 19: above 132: reject, else accept
    stmt(RET_K, SNAP_LEN),      // 20: accept
    stmt(RET_K, 0),             // 21: reject
];

const DATA_PROGRAM: [libc::sock_filter; 15] = [
    stmt(LDH_ABS, 12),         // 0: EtherType
    jump(JEQ_K, 0x0800, 0, 5), // 1: IPv4? else 7
    stmt(LDB_ABS, 30),         // 2: first byte of the destination
    stmt(AND_K, 0xf0),         // 3
    jump(JEQ_K, 0xe0, 0, 9),   // 4: 224.0.0.0/4? else reject
    stmt(LDB_ABS, 23),         // 5: protocol
    jump(JEQ_K, 2, 7, 6),      // 6: IGMP: reject, else accept
    jump(JEQ_K, 0x86dd, 0, 6), // 7: IPv6? else reject
    stmt(LDB_ABS, 38),         // 8: first byte of the destination
    jump(JEQ_K, 0xff, 0, 4),   // 9: ff00::/8? else reject
    stmt(LDB_ABS, 39),         // 10: flags and scope
    stmt(AND_K, 0x0f),         // 11: the scope
    jump(JGT_K, 2, 0, 1),      // 12: beyond link scope? accept, else reject
    stmt(RET_K, SNAP_LEN),     // 13: accept
    stmt(RET_K, 0),            // 14: reject
];

/// A non-blocking AF_PACKET raw socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// Receive buffers for [`PacketSocket::recv_batch`]: `MAX_BATCH` slots of a fixed size,
/// allocated once.
#[derive(Debug)]
pub struct FrameBatch {
    pub(crate) slot: usize,
    pub(crate) data: Vec<u8>,
    pub(crate) lens: Vec<usize>,
    pub(crate) truncated: Vec<bool>,
    /// Per datagram, the segment size when the kernel coalesced several (UDP GRO), else 0.
    pub(crate) seg: Vec<u16>,
    pub(crate) count: usize,
}

/// A byte range inside one slot of a [`FrameBatch`]: what to send, without copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The slot (frame index).
    pub slot: u16,
    /// Where in the slot the bytes start.
    pub offset: u16,
    /// How many bytes.
    pub len: u16,
}

/// What a batched send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Messages the kernel took.
    pub sent: usize,
    /// Messages refused because they exceed the MTU (`EMSGSIZE`).
    pub too_big: usize,
    /// Messages not sent because the socket or device queue was full.
    pub would_block: usize,
    /// Messages refused for any other reason (or naming bytes outside the batch).
    pub failed: usize,
}

impl SendOutcome {
    /// Adds another outcome to this one.
    pub fn add(&mut self, o: SendOutcome) {
        self.sent += o.sent;
        self.too_big += o.too_big;
        self.would_block += o.would_block;
        self.failed += o.failed;
    }
}

/// Sends `items` in batches through `send` (which returns how many of a batch the kernel
/// took), skipping and counting the ones the kernel refuses.
pub(crate) fn send_all_with<T>(
    items: &[T],
    mut send: impl FnMut(&[T]) -> io::Result<usize>,
) -> SendOutcome {
    let mut out = SendOutcome::default();
    let mut rest = items;
    while !rest.is_empty() {
        match send(rest) {
            Ok(0) => {
                out.would_block += rest.len();
                break;
            }
            Ok(k) => {
                out.sent += k;
                rest = rest.get(k..).unwrap_or(&[]);
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => {
                    out.would_block += rest.len();
                    break;
                }
                io::ErrorKind::Interrupted => {}
                _ => {
                    if e.raw_os_error() == Some(libc::EMSGSIZE) {
                        out.too_big += 1;
                    } else if e.raw_os_error() == Some(libc::ENOBUFS) {
                        out.would_block += 1;
                    } else {
                        out.failed += 1;
                    }
                    rest = rest.get(1..).unwrap_or(&[]);
                }
            },
        }
    }
    out
}

impl FrameBatch {
    /// The bytes `part` names, if they lie inside its slot.
    pub fn part(&self, part: Part) -> Option<&[u8]> {
        let slot = usize::from(part.slot);
        if slot >= MAX_BATCH {
            return None;
        }
        let off = usize::from(part.offset);
        let end = off.checked_add(usize::from(part.len))?;
        if end > self.slot {
            return None;
        }
        let start = slot * self.slot;
        self.data.get(start + off..start + end)
    }

    /// Buffers for `MAX_BATCH` frames of up to `slot` bytes each.
    pub fn new(slot: usize) -> Self {
        Self {
            slot: slot.max(64),
            data: vec![0; slot.max(64) * MAX_BATCH],
            lens: vec![0; MAX_BATCH],
            truncated: vec![false; MAX_BATCH],
            seg: vec![0; MAX_BATCH],
            count: 0,
        }
    }

    /// How many frames the last receive filled.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Frame `i` of the last receive, and whether it was longer than a slot (then only
    /// its first slot-size bytes are here).
    pub fn frame(&self, i: usize) -> Option<(&[u8], bool)> {
        if i >= self.count {
            return None;
        }
        let start = i * self.slot;
        let len = self.lens[i].min(self.slot);
        Some((&self.data[start..start + len], self.truncated[i]))
    }

    /// When datagram `i` of the last receive holds several datagrams coalesced by the
    /// kernel (UDP GRO), their size (the last one may be shorter); else `None`.
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        self.seg.get(i).copied().filter(|&s| s > 0).map(usize::from)
    }

    /// Frame `i` of the last receive, writable (to complete a checksum in place).
    pub fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= self.count {
            return None;
        }
        let start = i * self.slot;
        let len = self.lens[i].min(self.slot);
        self.data.get_mut(start..start + len)
    }

    /// Slot `i` as a writable buffer (for tests and for receivers that fill slots).
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= MAX_BATCH {
            return None;
        }
        let start = i * self.slot;
        Some(&mut self.data[start..start + self.slot])
    }

    /// The slot size.
    pub fn slot_size(&self) -> usize {
        self.slot
    }
}

/// Sets a socket's receive buffer to `bytes`, past `rmem_max` when the process may
/// (`SO_RCVBUFFORCE` needs CAP_NET_ADMIN), else as far as `SO_RCVBUF` allows.
pub fn set_recv_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
        .or_else(|_| setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &v))
}

/// Sets a socket's send buffer to `bytes` (`SO_SNDBUFFORCE`, else `SO_SNDBUF`).
pub fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v)
        .or_else(|_| setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &v))
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex` that receives the frames `filter` selects,
    /// never the frames sent on the interface, and turns on all-multicast reception on
    /// the interface for as long as the socket lives.
    pub fn open(ifindex: u32, filter: Filter) -> io::Result<Self> {
        Self::open_inner(ifindex, Some(filter), false)
    }

    /// Like [`PacketSocket::open`], but each received frame is preceded by a
    /// [`VnetHdr`] of [`VNET_HDR_LEN`] bytes telling whether its transport checksum is
    /// still to be computed (a container's kernel leaves that to the "hardware" on a
    /// veth). Such a socket must not be used to send: use [`PacketSocket::open_tx`].
    pub fn open_capture(ifindex: u32, filter: Filter) -> io::Result<Self> {
        Self::open_inner(ifindex, Some(filter), true)
    }

    /// A socket that only sends on interface `ifindex` (it receives nothing).
    pub fn open_tx(ifindex: u32) -> io::Result<Self> {
        Self::open_inner(ifindex, None, false)
    }

    fn open_inner(ifindex: u32, filter: Option<Filter>, vnet_hdr: bool) -> io::Result<Self> {
        let ifindex_c = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // Protocol 0: the socket receives nothing until `bind` names a protocol, so no
        // frame slips in before the filter is attached.
        let fd = socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )?;
        let raw = fd.as_raw_fd();
        let one: libc::c_int = 1;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)?;
        if vnet_hdr {
            setsockopt(raw, libc::SOL_PACKET, PACKET_VNET_HDR, &one)?;
        }
        let program: &[libc::sock_filter] = match filter {
            Some(Filter::Igmp) => &IGMP_PROGRAM,
            Some(Filter::Membership) => &MEMBERSHIP_PROGRAM,
            Some(Filter::MulticastData) => &DATA_PROGRAM,
            Some(Filter::All) | None => &[],
        };
        if !program.is_empty() {
            let prog = libc::sock_fprog {
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast_mut(),
            };
            // The kernel copies the program during the call and never writes to it.
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        }
        if filter.is_some() {
            // SAFETY: all-zero is a valid `packet_mreq`.
            let mut mreq: libc::packet_mreq = unsafe { zeroed() };
            mreq.mr_ifindex = ifindex_c;
            mreq.mr_type = libc::PACKET_MR_ALLMULTI as libc::c_ushort;
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        }
        // SAFETY: all-zero is a valid `sockaddr_ll`.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        // Protocol 0 on a send-only socket: bound to the interface, it receives nothing.
        sll.sll_protocol = if filter.is_some() {
            ETH_P_ALL.to_be()
        } else {
            0
        };
        sll.sll_ifindex = ifindex_c;
        bind(raw, &sll)?;
        Ok(Self { fd, ifindex })
    }

    /// The interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Frames the kernel dropped because this socket's receive queue was full, since the
    /// last call (`PACKET_STATISTICS`, which resets on read).
    pub fn take_drops(&self) -> io::Result<u64> {
        // struct tpacket_stats { unsigned int tp_packets; unsigned int tp_drops; }
        let mut stats = [0u32; 2];
        const PACKET_STATISTICS: libc::c_int = 6;
        getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            &mut stats,
        )?;
        Ok(u64::from(stats[1]))
    }

    /// Receives one frame into `buf`: `Ok(None)` when none is waiting, else its length
    /// and whether it was longer than `buf` (then `buf` holds its start).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        Ok(Some((n.min(buf.len()), n > buf.len())))
    }

    /// Receives up to `MAX_BATCH` frames in one `recvmmsg` call; returns how many (0 when
    /// none is waiting).
    pub fn recv_batch(&self, batch: &mut FrameBatch) -> io::Result<usize> {
        // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: the headers carry no address or control pointer.
        unsafe { recv_into(self.fd.as_raw_fd(), batch, &mut hdrs) }
    }

    /// Sends one whole Ethernet frame on the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the whole call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends up to `MAX_BATCH` frames in one `sendmmsg` call; returns how many the kernel
    /// took (the rest were not sent).
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let n = frames.len().min(MAX_BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut iovs: [MaybeUninit<libc::iovec>; MAX_BATCH] = [MaybeUninit::uninit(); MAX_BATCH];
        // SAFETY: all-zero is a valid `mmsghdr`.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for ((iov, hdr), frame) in iovs.iter_mut().zip(hdrs.iter_mut()).zip(frames) {
            let iov = iov.write(libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast(),
                iov_len: frame.len(),
            });
            hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers each point at one iovec over a frame borrowed for
        // the whole call; the kernel only reads them.
        unsafe { send_now(self.fd.as_raw_fd(), &mut hdrs, n) }
    }
}

impl PacketSocket {
    /// Sends the frames `parts` names in `batch`, in `sendmmsg` batches; parts outside
    /// the batch are counted as failed.
    pub fn send_parts(&self, batch: &FrameBatch, parts: &[Part]) -> SendOutcome {
        let mut out = SendOutcome::default();
        for chunk in parts.chunks(MAX_BATCH) {
            let mut frames: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
            let mut n = 0;
            for p in chunk {
                match batch.part(*p) {
                    Some(bytes) => {
                        frames[n] = bytes;
                        n += 1;
                    }
                    None => out.failed += 1,
                }
            }
            out.add(send_all_with(&frames[..n], |f| self.send_batch(f)));
        }
        out
    }
}

fd_traits!(PacketSocket);

/// One `recvmmsg(2)` call that does not wait: points header `i` of `hdrs` at slot `i` of
/// `batch` (an address or control area the caller set stays), receives, and records each
/// frame's length and truncation (`seg` 0). Returns how many arrived: 0 when none was
/// waiting or a signal came first.
///
/// # Safety
/// Every `msg_name` and `msg_control` pointer in `hdrs` is null or valid for writes of its
/// length for the whole call.
pub(crate) unsafe fn recv_into(
    fd: RawFd,
    batch: &mut FrameBatch,
    hdrs: &mut [libc::mmsghdr; MAX_BATCH],
) -> io::Result<usize> {
    batch.count = 0;
    let slot = batch.slot;
    let mut iovs: [MaybeUninit<libc::iovec>; MAX_BATCH] = [MaybeUninit::uninit(); MAX_BATCH];
    let base = batch.data.as_mut_ptr();
    for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
        // SAFETY: `i * slot + slot <= data.len()` since `data` holds MAX_BATCH slots.
        let ptr = unsafe { base.add(i * slot) };
        let iov = iov.write(libc::iovec {
            iov_base: ptr.cast(),
            iov_len: slot,
        });
        hdr.msg_hdr.msg_iov = iov as *mut libc::iovec;
        hdr.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one iovec covering a distinct slot of `batch.data`,
    // all alive and exclusively borrowed for the call, and (by the contract above) at
    // writable address and control areas or none.
    let n = unsafe {
        libc::recvmmsg(
            fd,
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
    for (i, hdr) in hdrs.iter().enumerate().take(n) {
        batch.seg[i] = 0;
        batch.lens[i] = hdr.msg_len as usize;
        batch.truncated[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
    }
    batch.count = n;
    Ok(n)
}

/// One `sendmmsg(2)` call of the first `n` of `hdrs` that does not wait; returns how many
/// the kernel took.
///
/// # Safety
/// Each of the first `n` headers points only at memory valid for reads for the whole call.
pub(crate) unsafe fn send_now(
    fd: RawFd,
    hdrs: &mut [libc::mmsghdr],
    n: usize,
) -> io::Result<usize> {
    let n = n.min(hdrs.len());
    // SAFETY: the caller's contract; `n` headers exist.
    let sent =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
