//! What people and programs read: one text line per interval per sender and a summary,
//! or one JSON object per line with `--json`.

use std::io::{self, Write};

use serde::Serialize;

use crate::args::{RecvConfig, SendConfig};
use crate::rate::Rate;
use crate::send::SendReport;
use crate::stats::RecvReport;

/// One JSON object and a newline.
pub fn json_line(out: &mut impl Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

/// `1.23 Mbit/s` style.
pub fn bits(bps: f64) -> String {
    let (v, unit) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    format!("{v:.2} {unit}")
}

fn latency(r: &RecvReport) -> String {
    match r.latency_us {
        Some(l) => format!("{}/{}/{}/{} us", l.p50, l.p90, l.p99, l.max),
        None => "-".to_string(),
    }
}

fn loss_pct(r: &RecvReport) -> f64 {
    let unique = r.datagrams.saturating_sub(r.duplicates) as f64;
    let expected = unique + r.lost as f64;
    if expected > 0.0 {
        100.0 * r.lost as f64 / expected
    } else {
        0.0
    }
}

/// Header printed before the receiver's first line.
pub fn recv_banner(out: &mut impl Write, cfg: &RecvConfig) -> io::Result<()> {
    let sources = if cfg.sources.is_empty() {
        "any source".to_string()
    } else {
        let list: Vec<String> = cfg.sources.iter().map(|s| s.to_string()).collect();
        format!("sources {}", list.join(", "))
    };
    let on = cfg
        .iface
        .as_ref()
        .map(|i| format!(" on {}", i.name))
        .unwrap_or_default();
    let at = std::net::SocketAddr::new(cfg.group, cfg.port);
    writeln!(out, "receiving {at} ({sources}){on}")?;
    writeln!(
        out,
        "{:>15}  {:<21} {:>11} {:>14} {:>9} {:>17} {:>5} {:>5} {:>10}  latency p50/p90/p99/max",
        "interval", "sender", "bytes", "rate", "datagrams", "lost", "dup", "ooo", "jitter"
    )
}

/// One receiver line (interval or summary).
pub fn recv_line(out: &mut impl Write, r: &RecvReport) -> io::Result<()> {
    let dt = r.end - r.start;
    let rate = if dt > 0.0 {
        bits(r.bytes as f64 * 8.0 / dt)
    } else {
        "-".to_string()
    };
    writeln!(
        out,
        "{:>6.2}-{:>6.2} s{}  {:<21} {:>11} {:>14} {:>9} {:>8} ({:>5.2}%) {:>5} {:>5} {:>7.3} ms  {}",
        r.start,
        r.end,
        if r.summary { "*" } else { " " },
        r.sender,
        r.bytes,
        rate,
        r.datagrams,
        r.lost,
        loss_pct(r),
        r.duplicates,
        r.out_of_order,
        r.jitter_ms,
        latency(r)
    )
}

/// The receiver's closing lines.
pub fn recv_summary(
    out: &mut impl Write,
    summaries: &[RecvReport],
    elapsed: f64,
    malformed: u64,
    untracked: u64,
) -> io::Result<()> {
    writeln!(
        out,
        "summary after {elapsed:.2} s, {} sender(s) (* = from first to last datagram of the sender):",
        summaries.len()
    )?;
    for r in summaries {
        recv_line(out, r)?;
    }
    if malformed > 0 {
        writeln!(
            out,
            "{malformed} datagram(s) too short for an iperf 2 header were ignored"
        )?;
    }
    if untracked > 0 {
        writeln!(
            out,
            "{untracked} datagram(s) from senders beyond the first 4096 were not measured"
        )?;
    }
    Ok(())
}

/// Header printed before the sender's first line.
pub fn send_banner(out: &mut impl Write, cfg: &SendConfig) -> io::Result<()> {
    let rate = match cfg.rate {
        Rate::Bits(b) => bits(b),
        Rate::Packets(p) => format!("{p} datagrams/s"),
    };
    let on = cfg
        .iface
        .as_ref()
        .map(|i| format!(" on {}", i.name))
        .unwrap_or_default();
    let (at, ttl) = (
        std::net::SocketAddr::new(cfg.group, cfg.port),
        if cfg.group.is_ipv4() {
            "TTL"
        } else {
            "hop limit"
        },
    );
    writeln!(
        out,
        "sending to {at}{on}: {}-byte datagrams at {rate} ({:.1} datagrams/s), {ttl} {}, for {:.1} s",
        cfg.len,
        cfg.rate.packets_per_second(cfg.len),
        cfg.ttl,
        cfg.time.as_secs_f64()
    )
}

/// One sender line (text or JSON).
pub fn send_line(out: &mut impl Write, r: &SendReport, json: bool) -> io::Result<()> {
    if json {
        return json_line(out, r);
    }
    writeln!(
        out,
        "{:>6.2}-{:>6.2} s{} {:>10} datagrams {:>14} {:>12.1} datagrams/s{}",
        r.start,
        r.end,
        if r.summary { " total" } else { "      " },
        r.datagrams,
        bits(r.bits_per_second),
        r.datagrams_per_second,
        if r.send_errors > 0 {
            format!(" ({} sends refused, retried)", r.send_errors)
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn sample(summary: bool) -> RecvReport {
        RecvReport {
            start: 0.0,
            end: 1.0,
            sender: "10.0.0.1:5555".into(),
            bytes: 1470,
            datagrams: 1,
            lost: 0,
            duplicates: 0,
            out_of_order: 0,
            jitter_ms: 0.0,
            latency_us: Some(Latency {
                p50: 1,
                p90: 2,
                p99: 3,
                max: 4,
            }),
            summary,
        }
    }

    #[test]
    fn json_has_exactly_the_documented_keys() {
        let mut v = Vec::new();
        json_line(&mut v, &sample(true)).unwrap();
        let obj: serde_json::Value = serde_json::from_slice(&v).unwrap();
        let mut keys: Vec<&str> = obj
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bytes",
                "datagrams",
                "duplicates",
                "end",
                "jitter_ms",
                "latency_us",
                "lost",
                "out_of_order",
                "sender",
                "start",
                "summary"
            ]
        );
        assert_eq!(obj["latency_us"]["p99"], 3);
        assert_eq!(obj["summary"], true);
        assert!(v.ends_with(b"}\n"));
    }

    #[test]
    fn text_line_mentions_sender_and_rate() {
        let mut v = Vec::new();
        recv_line(&mut v, &sample(false)).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(
            s.contains("10.0.0.1:5555") && s.contains("11.76 kbit/s"),
            "{s}"
        );
    }
}
