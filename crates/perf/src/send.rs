//! `mcgate perf send`: paced multicast datagrams carrying iperf 2's header.
//!
//! Pacing is against absolute time on the monotonic clock: datagram `k` is due at
//! `start + k * gap`, so sleeping late never lowers the average rate, and whatever is due
//! goes out in one `sendmmsg` batch. At 10 kbit/s that is one datagram every 1.18 s; at a
//! rate above what the machine can do every call is a full batch.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcgate_sys::mmsg::SendBatch;
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::args::SendConfig;
use crate::error::{PerfError, io as ioerr};
use crate::header;
use crate::report;

/// Datagrams per `sendmmsg` call at most.
const BATCH: usize = 64;
/// Longest single sleep, so signals and report times are looked at.
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Shortest sleep: below this the wakeups themselves would cost more CPU than the
/// datagrams; what falls due meanwhile goes out in the next batch (at 40k datagrams/s,
/// bursts of 4 every 100 us; the average rate stays exact).
const MIN_SLEEP: Duration = Duration::from_micros(100);
/// After `--time`, datagrams still due are sent if there are at most this many...
const CATCH_UP_MAX: u64 = 4096;
/// ... and for at most this long.
const CATCH_UP_TIME: f64 = 0.25;
/// How many times the end-of-stream datagram is sent (receivers ignore repeats).
const FIN_COPIES: usize = 3;

/// One sender report line. Serialized as-is for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendReport {
    /// Seconds since the sender started.
    pub start: f64,
    /// Seconds since the sender started.
    pub end: f64,
    /// The destination, `group:port`.
    pub group: String,
    /// Datagrams sent in the period.
    pub datagrams: u64,
    /// UDP payload bytes sent in the period.
    pub bytes: u64,
    /// Payload bits per second over the period.
    pub bits_per_second: f64,
    /// Datagrams per second over the period.
    pub datagrams_per_second: f64,
    /// Sends the kernel refused for lack of buffer space (retried).
    pub send_errors: u64,
    /// True on the final report.
    pub summary: bool,
}

/// Opens the sending socket, connected to group:port.
pub fn open(cfg: &SendConfig) -> Result<Socket, PerfError> {
    let sock = Socket::new(
        Domain::for_address(dest(cfg)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(ioerr("open a UDP socket"))?;
    match cfg.group {
        IpAddr::V4(_) => {
            sock.set_multicast_ttl_v4(u32::from(cfg.ttl))
                .map_err(ioerr("set the multicast TTL"))?;
            // Receivers on this same host (or namespace) get a copy too.
            sock.set_multicast_loop_v4(true)
                .map_err(ioerr("turn on multicast loopback"))?;
            if let Some(i) = &cfg.iface {
                sock.set_multicast_if_v4(&i.ipv4()?)
                    .map_err(ioerr("pick the outgoing interface"))?;
            }
        }
        IpAddr::V6(_) => {
            sock.set_multicast_hops_v6(u32::from(cfg.ttl))
                .map_err(ioerr("set the multicast hop limit"))?;
            sock.set_multicast_loop_v6(true)
                .map_err(ioerr("turn on multicast loopback"))?;
            if let Some(i) = &cfg.iface {
                sock.set_multicast_if_v6(i.index)
                    .map_err(ioerr("pick the outgoing interface"))?;
            }
        }
    }
    if let Some(i) = &cfg.iface {
        sock.bind_device(Some(i.name.as_bytes()))
            .map_err(ioerr("bind to the outgoing interface"))?;
    }
    sock.connect(&SockAddr::from(dest(cfg))).map_err(ioerr(match cfg.group {
        IpAddr::V4(_) => {
            "send to the group (give --iface, or add a route: ip route add 224.0.0.0/4 dev IF)"
        }
        IpAddr::V6(_) => {
            "send to the group (give --iface, or add a route: ip -6 route add multicast ff00::/8 dev IF table local)"
        }
    }))?;
    Ok(sock)
}

fn dest(cfg: &SendConfig) -> SocketAddr {
    crate::iface::scoped(cfg.group, cfg.port, cfg.iface.as_ref())
}

fn wall() -> (u32, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_micros())
}

struct Tally {
    datagrams: u64,
    errors: u64,
}

/// Runs the sender for `--time` or until `stop` is set, printing reports to `out`.
pub fn run(cfg: &SendConfig, stop: &AtomicBool, out: &mut impl Write) -> Result<(), PerfError> {
    let sock = open(cfg)?;
    // Sleep precision: the default 50 us timer slack would blur pacing.
    let _ = nix::sys::prctl::set_timerslack(10_000);
    let len = cfg.len;
    // Kept as datagrams per second: a gap rounded to whole nanoseconds would drift.
    let pps = cfg.rate.packets_per_second(len);
    let mut buf = vec![0u8; BATCH * len];
    for chunk in buf.chunks_mut(len) {
        header::init_payload(chunk);
    }
    let mut batch = SendBatch::new(BATCH);
    let group = SocketAddr::new(cfg.group, cfg.port).to_string();
    if !cfg.json {
        report::send_banner(out, cfg).map_err(ioerr("write the report"))?;
    }
    let start = Instant::now();
    let total = cfg.time.as_secs_f64();
    let iv = cfg.interval.as_secs_f64();
    // Datagram k is due at k / pps, for every k / pps < total.
    let due_total = (total * pps - 1e-6).ceil().max(1.0) as u64;
    let mut sent: u64 = 0;
    let mut errors: u64 = 0;
    let mut at_interval = Tally {
        datagrams: 0,
        errors: 0,
    };
    let mut interval_no: u64 = 1;
    let mut end_t;
    loop {
        let t = start.elapsed().as_secs_f64();
        end_t = t.min(total);
        // Past the end, what was due before it still goes out (a stall near the end must
        // not shorten the run), unless the rate was never reachable (a large backlog) or
        // catching up drags on; then the loop stops.
        let behind = due_total.saturating_sub(sent);
        let done = stop.load(Ordering::Relaxed)
            || (t >= total && (behind == 0 || behind > CATCH_UP_MAX || t >= total + CATCH_UP_TIME));
        if (t >= interval_no as f64 * iv && t < total)
            || (done && end_t > (interval_no - 1) as f64 * iv)
        {
            let s = (interval_no - 1) as f64 * iv;
            let e = if done { end_t } else { (t / iv).floor() * iv };
            let r = make_report(
                &group,
                s,
                e,
                sent - at_interval.datagrams,
                len,
                errors - at_interval.errors,
                false,
            );
            report::send_line(out, &r, cfg.json).map_err(ioerr("write the report"))?;
            at_interval = Tally {
                datagrams: sent,
                errors,
            };
            interval_no = (t / iv).floor() as u64 + 1;
        }
        if done {
            break;
        }
        // Datagram k (from 0) is due at k * gap; everything due by now goes out.
        let due = ((t * pps).floor() as u64).saturating_add(1).min(due_total);
        if due <= sent {
            let next_due = sent as f64 / pps;
            let next_report = interval_no as f64 * iv;
            let wake = next_due.min(next_report).min(total);
            let wait = Duration::from_secs_f64((wake - t).max(0.0)).clamp(MIN_SLEEP, MAX_SLEEP);
            std::thread::sleep(wait);
            continue;
        }
        let n = (due - sent).min(BATCH as u64) as usize;
        let (sec, usec) = wall();
        for (k, chunk) in buf.chunks_mut(len).take(n).enumerate() {
            header::write(chunk, (sent + k as u64 + 1) as i64, sec, usec);
        }
        match batch.send_chunks(&sock, &buf[..n * len], len) {
            Ok(m) => sent += m as u64,
            Err(e) if transient(&e) => {
                errors += 1;
                std::thread::yield_now();
            }
            Err(e) => {
                return Err(PerfError::Io {
                    what: "send datagrams",
                    source: e,
                });
            }
        }
    }
    // End of stream, as iperf 2 marks it: the next sequence number, negated.
    if let Some(first) = buf.get_mut(..len) {
        let (sec, usec) = wall();
        header::write(first, -((sent + 1) as i64), sec, usec);
        for i in 0..FIN_COPIES {
            let _ = sock.send(first);
            if i + 1 < FIN_COPIES {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let r = make_report(&group, 0.0, end_t, sent, len, errors, true);
    report::send_line(out, &r, cfg.json).map_err(ioerr("write the report"))?;
    out.flush().map_err(ioerr("write the report"))?;
    Ok(())
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR | libc::ECONNREFUSED)
    )
}

fn make_report(
    group: &str,
    start: f64,
    end: f64,
    datagrams: u64,
    len: usize,
    errors: u64,
    summary: bool,
) -> SendReport {
    let dt = end - start;
    let bytes = datagrams * len as u64;
    let per_s = |x: f64| if dt > 0.0 { x / dt } else { 0.0 };
    SendReport {
        start: crate::stats::round6(start),
        end: crate::stats::round6(end),
        group: group.to_string(),
        datagrams,
        bytes,
        bits_per_second: per_s(bytes as f64 * 8.0).round(),
        datagrams_per_second: (per_s(datagrams as f64) * 10.0).round() / 10.0,
        send_errors: errors,
        summary,
    }
}
