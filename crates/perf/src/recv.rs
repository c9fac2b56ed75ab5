//! `mcgate perf recv`: joins a group and measures every sender in it.
//!
//! One thread, one socket bound to the group's address and port (like `iperf -s -u -B G`),
//! `recvmmsg` batches into preallocated slots that keep only the start of each datagram
//! (the header is all that is measured; the real length still comes back), and the
//! kernel's receive timestamp per datagram, so latency and jitter measure the network and
//! not how long the datagram waited for this process.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcgate_sys::mmsg::RecvBatch;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::args::RecvConfig;
use crate::error::{PerfError, io as ioerr};
use crate::header;
use crate::report;
use crate::stats::{RecvReport, SenderStats};

/// Datagrams per `recvmmsg` call.
const BATCH: usize = 64;
/// Bytes kept of each datagram: enough for iperf 2's headers.
const SLOT: usize = 128;
/// Senders tracked at most; datagrams from more are counted but not measured, so a flood
/// of spoofed sources cannot grow memory without bound.
const MAX_SENDERS: usize = 4096;
/// Longest wait in one call, so the interval clock and signals are looked at.
const POLL: Duration = Duration::from_millis(50);
/// Pause after a call that returned a partial batch. While this thread sleeps instead of
/// waiting in `recvmmsg`, delivering a datagram wakes nobody, which spares the CPU that
/// runs the network stack (often the sender's) one wakeup per datagram; the datagrams
/// wait in the socket buffer and the next call takes a full batch. Timing is unaffected:
/// arrival times are the kernel's receive timestamps.
const COALESCE: Duration = Duration::from_micros(200);

/// Opens the receiving socket: bound to group:port, joined, only this group delivered.
pub fn open(cfg: &RecvConfig) -> Result<Socket, PerfError> {
    let sock = Socket::new(
        Domain::for_address(bind_addr(cfg)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(ioerr("open a UDP socket"))?;
    sock.set_reuse_address(true)
        .map_err(ioerr("set SO_REUSEADDR"))?;
    // SO_RCVBUFFORCE passes rmem_max when we are root; otherwise SO_RCVBUF gets what the
    // system allows.
    if nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &cfg.buffer)
        .is_err()
    {
        sock.set_recv_buffer_size(cfg.buffer)
            .map_err(ioerr("set the receive buffer size"))?;
    }
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
        .map_err(|e| PerfError::Io {
            what: "turn on receive timestamps",
            source: e.into(),
        })?;
    sock.bind(&SockAddr::from(bind_addr(cfg)))
        .map_err(ioerr("bind the group address and port"))?;
    match cfg.group {
        IpAddr::V4(g) => join_v4(&sock, cfg, g)?,
        IpAddr::V6(g) => join_v6(&sock, cfg, g)?,
    }
    sock.set_read_timeout(Some(POLL))
        .map_err(ioerr("set the receive timeout"))?;
    Ok(sock)
}

fn bind_addr(cfg: &RecvConfig) -> SocketAddr {
    crate::iface::scoped(cfg.group, cfg.port, cfg.iface.as_ref())
}

/// IGMP: any-source join, or one IGMPv3 source-specific join per source.
fn join_v4(sock: &Socket, cfg: &RecvConfig, group: Ipv4Addr) -> Result<(), PerfError> {
    // Without this Linux delivers every group any socket of the host joined on this port.
    sock.set_multicast_all_v4(false)
        .map_err(ioerr("turn off IP_MULTICAST_ALL"))?;
    if cfg.sources.is_empty() {
        let on = InterfaceIndexOrAddress::Index(cfg.iface.as_ref().map_or(0, |i| i.index));
        return sock.join_multicast_v4_n(&group, &on).map_err(ioerr(
            "join the group (give --iface, or add a route: ip route add 224.0.0.0/4 dev IF)",
        ));
    }
    let on = match &cfg.iface {
        Some(i) => i.ipv4()?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    for s in &cfg.sources {
        let IpAddr::V4(s) = s else { continue };
        sock.join_ssm_v4(s, &group, &on).map_err(ioerr(
            "join the group for a source (give --iface, or add a route: ip route add 224.0.0.0/4 dev IF)",
        ))?;
    }
    Ok(())
}

/// MLD: any-source join (IPV6_ADD_MEMBERSHIP), or one MLDv2 source-specific join per
/// source (MCAST_JOIN_SOURCE_GROUP, RFC 3678 section 5.2). Index 0 lets the kernel pick
/// the interface by route.
fn join_v6(sock: &Socket, cfg: &RecvConfig, group: Ipv6Addr) -> Result<(), PerfError> {
    sock.set_multicast_all_v6(false)
        .map_err(ioerr("turn off IPV6_MULTICAST_ALL"))?;
    let index = cfg.iface.as_ref().map_or(0, |i| i.index);
    if cfg.sources.is_empty() {
        return sock
            .join_multicast_v6(&group, index)
            .map_err(ioerr(
                "join the group (give --iface, or add a route: ip -6 route add multicast ff00::/8 dev IF table local)",
            ));
    }
    for s in &cfg.sources {
        let IpAddr::V6(s) = *s else { continue };
        mcgate_sys::mcast::join_source_group_v6(sock, group, s, index)
            .map_err(ioerr(
                "join the group for a source (give --iface, or add a route: ip -6 route add multicast ff00::/8 dev IF table local)",
            ))?;
    }
    Ok(())
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// All senders seen, looked up by address with a one-entry cache (a batch usually comes
/// from one sender).
struct Senders {
    index: HashMap<SocketAddr, usize>,
    list: Vec<SenderStats>,
    last: Option<(SocketAddr, usize)>,
    untracked: u64,
}

impl Senders {
    /// The sender's record; a new one is made only if `create` (an end-of-stream marker
    /// from a sender never seen says nothing worth a report).
    fn get(&mut self, addr: SocketAddr, t_s: f64, create: bool) -> Option<&mut SenderStats> {
        let i = match self.last {
            Some((a, i)) if a == addr => i,
            _ => match self.index.get(&addr) {
                Some(&i) => i,
                None if !create => return None,
                None if self.list.len() < MAX_SENDERS => {
                    self.list.push(SenderStats::new(addr, t_s));
                    self.index.insert(addr, self.list.len() - 1);
                    self.list.len() - 1
                }
                None => {
                    self.untracked += 1;
                    return None;
                }
            },
        };
        self.last = Some((addr, i));
        self.list.get_mut(i)
    }
}

/// Runs the receiver until `--time` passes or `stop` is set, printing reports to `out`.
pub fn run(cfg: &RecvConfig, stop: &AtomicBool, out: &mut impl Write) -> Result<(), PerfError> {
    let sock = open(cfg)?;
    // The default 50 us timer slack would stretch the short coalescing pauses.
    let _ = nix::sys::prctl::set_timerslack(10_000);
    let start = Instant::now();
    let start_wall_us = wall_us();
    let mut batch = RecvBatch::new(BATCH, SLOT);
    let mut senders = Senders {
        index: HashMap::new(),
        list: Vec::new(),
        last: None,
        untracked: 0,
    };
    let mut malformed: u64 = 0;
    let iv = cfg.interval.as_secs_f64();
    let mut interval_no: u64 = 1;
    let end_at = cfg.time.map(|t| start + t);
    if !cfg.json {
        report::recv_banner(out, cfg).map_err(ioerr("write the report"))?;
    }
    loop {
        let now = Instant::now();
        let t = now.duration_since(start).as_secs_f64();
        if t >= interval_no as f64 * iv {
            // After a stall, one report covers every boundary that passed.
            let passed = (t / iv).floor();
            let s = (interval_no - 1) as f64 * iv;
            emit_intervals(&mut senders.list, s, passed * iv, cfg.json, out)?;
            interval_no = passed as u64 + 1;
        }
        if stop.load(Ordering::Relaxed) || end_at.is_some_and(|e| now >= e) {
            let s = (interval_no - 1) as f64 * iv;
            if t > s {
                emit_intervals(&mut senders.list, s, t, cfg.json, out)?;
            }
            break;
        }
        let n = match batch.recv(&sock) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                return Err(PerfError::Io {
                    what: "receive datagrams",
                    source: e,
                });
            }
        };
        let fallback_us = wall_us();
        for i in 0..n {
            let Some(d) = batch.get(i) else { continue };
            let Some(src) = d.source else {
                malformed += 1;
                continue;
            };
            let Some(h) = header::parse(d.data) else {
                malformed += 1;
                continue;
            };
            let arrival_us = d
                .timestamp
                .map(|ts| ts.as_micros() as i64)
                .unwrap_or(fallback_us);
            let t_s = (arrival_us - start_wall_us) as f64 / 1e6;
            let Some(s) = senders.get(src, t_s, h.seq >= 0) else {
                continue;
            };
            if h.seq < 0 {
                s.on_fin(h.seq, t_s);
            } else {
                s.on_data(h.seq, d.len, arrival_us - h.sent_us(), t_s);
            }
        }
        if n < BATCH / 2 {
            std::thread::sleep(COALESCE);
        }
    }
    let summaries: Vec<RecvReport> = senders.list.iter().map(SenderStats::summary).collect();
    let elapsed = start.elapsed().as_secs_f64();
    if cfg.json {
        for r in &summaries {
            report::json_line(out, r).map_err(ioerr("write the report"))?;
        }
    } else {
        report::recv_summary(out, &summaries, elapsed, malformed, senders.untracked)
            .map_err(ioerr("write the report"))?;
    }
    out.flush().map_err(ioerr("write the report"))?;
    Ok(())
}

fn emit_intervals(
    list: &mut [SenderStats],
    start: f64,
    end: f64,
    json: bool,
    out: &mut impl Write,
) -> Result<(), PerfError> {
    for s in list.iter_mut().filter(|s| s.interval_active()) {
        let r = s.cut_interval(start, end);
        let res = if json {
            report::json_line(out, &r)
        } else {
            report::recv_line(out, &r)
        };
        res.map_err(ioerr("write the report"))?;
    }
    out.flush().map_err(ioerr("write the report"))?;
    Ok(())
}
