//! Command-line arguments and their checks. Values are taken as text and checked here,
//! so that a bad value gets one sentence with an example and exit code 2.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::PerfError;
use crate::header::{MAX_LEN, MIN_SEND_LEN};
use crate::iface::Iface;
use crate::rate::{self, Rate};

/// `mcgate perf send`
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Multicast group to send to, for example 233.252.0.5.
    #[arg(long, short = 'g')]
    pub group: String,
    /// UDP destination port.
    #[arg(long, short = 'p', default_value_t = 5001)]
    pub port: u16,
    /// Sending rate: bits per second with k/m/g suffix (10k, 1m, 2.5g) or datagrams per
    /// second (50kpps). A rate above what the machine can do means "as fast as possible".
    #[arg(long, short = 'b', default_value = "1m")]
    pub rate: String,
    /// UDP payload bytes per datagram (at least 20, for the iperf 2 header).
    #[arg(long, short = 'l', default_value = "1470")]
    pub len: String,
    /// IP time to live of the datagrams (1 keeps them on the local link).
    #[arg(long, default_value_t = 1)]
    pub ttl: u8,
    /// Seconds to send for.
    #[arg(long, short = 't', default_value_t = 10.0)]
    pub time: f64,
    /// Seconds between interval reports.
    #[arg(long, short = 'i', default_value_t = 1.0)]
    pub interval: f64,
    /// Interface to send on (default: the route to the group).
    #[arg(long)]
    pub iface: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `mcgate perf recv`
#[derive(Debug, Clone, clap::Args)]
pub struct RecvArgs {
    /// Multicast group to join, for example 233.252.0.5.
    #[arg(long, short = 'g')]
    pub group: String,
    /// UDP port to listen on.
    #[arg(long, short = 'p', default_value_t = 5001)]
    pub port: u16,
    /// Accept only this sender (source-specific join, IGMPv3); repeat for several.
    #[arg(long, short = 's')]
    pub source: Vec<String>,
    /// Interface to join on (default: the route to the group).
    #[arg(long)]
    pub iface: Option<String>,
    /// Seconds between interval reports.
    #[arg(long, short = 'i', default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, short = 't')]
    pub time: Option<f64>,
    /// Socket receive buffer in bytes, with an optional K or M suffix (powers of 1024);
    /// the kernel doubles it for its bookkeeping, as for iperf's -w.
    #[arg(long, short = 'w', default_value = "4M")]
    pub buffer: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A checked `send` configuration.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub group: Ipv4Addr,
    pub port: u16,
    pub rate: Rate,
    pub len: usize,
    pub ttl: u8,
    pub time: Duration,
    pub interval: Duration,
    pub iface: Option<Iface>,
    pub json: bool,
}

/// A checked `recv` configuration.
#[derive(Debug, Clone)]
pub struct RecvConfig {
    pub group: Ipv4Addr,
    pub port: u16,
    pub sources: Vec<Ipv4Addr>,
    pub iface: Option<Iface>,
    pub interval: Duration,
    pub time: Option<Duration>,
    pub buffer: usize,
    pub json: bool,
}

/// Parses and checks a multicast group.
pub fn group(text: &str) -> Result<Ipv4Addr, PerfError> {
    match text.trim().parse::<Ipv4Addr>() {
        Ok(g) if g.is_multicast() => Ok(g),
        _ => Err(PerfError::NotMulticast(text.to_string())),
    }
}

fn source(text: &str) -> Result<Ipv4Addr, PerfError> {
    match text.trim().parse::<Ipv4Addr>() {
        Ok(s) if !s.is_multicast() && !s.is_unspecified() && !s.is_broadcast() => Ok(s),
        _ => Err(PerfError::BadSource(text.to_string())),
    }
}

/// Parses and checks a datagram length.
pub fn len(text: &str) -> Result<usize, PerfError> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| PerfError::BadLen(text.to_string()))?;
    if !(MIN_SEND_LEN..=MAX_LEN).contains(&n) {
        return Err(PerfError::LenOutOfRange(n));
    }
    Ok(n)
}

/// Parses a buffer size: bytes, or a number with a K or M suffix (powers of 1024).
pub fn buffer(text: &str) -> Result<usize, PerfError> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1usize << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        _ => (t.as_str(), 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| (4096..=(1 << 30)).contains(n))
        .ok_or_else(|| PerfError::BadBuffer(text.to_string()))
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, PerfError> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(PerfError::BadSeconds { flag, value })
    }
}

impl SendArgs {
    /// Checks every value.
    pub fn check(&self) -> Result<SendConfig, PerfError> {
        Ok(SendConfig {
            group: group(&self.group)?,
            port: self.port,
            rate: rate::parse(&self.rate).ok_or_else(|| PerfError::BadRate(self.rate.clone()))?,
            len: len(&self.len)?,
            ttl: self.ttl,
            time: seconds("--time", self.time)?,
            interval: seconds("--interval", self.interval)?,
            iface: self.iface.as_deref().map(Iface::lookup).transpose()?,
            json: self.json,
        })
    }
}

impl RecvArgs {
    /// Checks every value.
    pub fn check(&self) -> Result<RecvConfig, PerfError> {
        Ok(RecvConfig {
            group: group(&self.group)?,
            port: self.port,
            sources: self
                .source
                .iter()
                .map(|s| source(s))
                .collect::<Result<_, _>>()?,
            iface: self.iface.as_deref().map(Iface::lookup).transpose()?,
            interval: seconds("--interval", self.interval)?,
            time: self.time.map(|t| seconds("--time", t)).transpose()?,
            buffer: buffer(&self.buffer)?,
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_must_be_multicast() {
        assert!(group("233.252.0.5").is_ok());
        for bad in ["10.0.0.1", "239.1", "banana", "", "240.0.0.1"] {
            let e = group(bad).unwrap_err();
            assert!(e.to_string().contains("--group 233.252.0.5"), "{e}");
        }
    }

    #[test]
    fn len_bounds() {
        assert_eq!(len("1470").unwrap(), 1470);
        assert_eq!(len("20").unwrap(), 20);
        assert!(matches!(len("19"), Err(PerfError::LenOutOfRange(19))));
        assert!(matches!(len("65508"), Err(PerfError::LenOutOfRange(_))));
        assert!(matches!(len("1k"), Err(PerfError::BadLen(_))));
    }

    #[test]
    fn buffer_sizes() {
        assert_eq!(buffer("4M").unwrap(), 4 << 20);
        assert_eq!(buffer("512k").unwrap(), 512 << 10);
        assert_eq!(buffer("65536").unwrap(), 65536);
        for bad in ["", "4G", "1", "-1M", "lots"] {
            assert!(buffer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_unicast() {
        assert!(source("10.0.0.1").is_ok());
        assert!(source("233.252.0.5").is_err());
        assert!(source("0.0.0.0").is_err());
    }
}
