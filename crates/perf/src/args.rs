//! Command-line arguments and their checks. Values are taken as text and checked here,
//! so that a bad value gets one sentence with an example and exit code 2.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::error::PerfError;
use crate::header::{MAX_LEN, MIN_SEND_LEN};
use crate::iface::Iface;
use crate::rate::{self, Rate};

/// `mcgate perf send`
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Multicast group to send to, IPv4 or IPv6, for example 233.252.0.5 or ff3e::8000:1.
    #[arg(long, short = 'g')]
    pub group: String,
    /// UDP destination port.
    #[arg(long, short = 'p', default_value_t = 5001)]
    pub port: u16,
    /// Sending rate: bits per second with k/m/g suffix (10k, 1m, 2.5g) or datagrams per
    /// second (50kpps). A rate above what the machine can do means "as fast as possible".
    #[arg(long, short = 'b', default_value = "1m")]
    pub rate: String,
    /// UDP payload bytes per datagram (at least 20, for the iperf 2 header). Default
    /// 1470, or 1450 for an IPv6 group, as iperf 2: with the IP and UDP headers (28 or
    /// 48 bytes) a datagram then fits a 1500-byte MTU unfragmented.
    #[arg(long, short = 'l')]
    pub len: Option<String>,
    /// IPv4 time to live, or IPv6 hop limit, of the datagrams (1 keeps them on the local
    /// link).
    #[arg(long, default_value_t = 1)]
    pub ttl: u8,
    /// Seconds to send for.
    #[arg(long, short = 't', default_value_t = 10.0)]
    pub time: f64,
    /// Seconds between interval reports.
    #[arg(long, short = 'i', default_value_t = 1.0)]
    pub interval: f64,
    /// Interface to send on (default: the route to the group). Required for IPv6
    /// link-scope groups (ff02::/16 and the like).
    #[arg(long, visible_alias = "interface")]
    pub iface: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `mcgate perf recv`
#[derive(Debug, Clone, clap::Args)]
pub struct RecvArgs {
    /// Multicast group to join, IPv4 or IPv6, for example 233.252.0.5 or ff3e::8000:1.
    #[arg(long, short = 'g')]
    pub group: String,
    /// UDP port to listen on.
    #[arg(long, short = 'p', default_value_t = 5001)]
    pub port: u16,
    /// Accept only this sender, an address of the group's family (source-specific join:
    /// IGMPv3, or MLDv2 for an IPv6 group; the source-specific ranges are 232.0.0.0/8 and
    /// ff3x::/32); repeat for several.
    #[arg(long, short = 's')]
    pub source: Vec<String>,
    /// Interface to join on (default: the route to the group). Required for IPv6
    /// link-scope groups (ff02::/16 and the like).
    #[arg(long, visible_alias = "interface")]
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
    pub group: IpAddr,
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
    pub group: IpAddr,
    pub port: u16,
    pub sources: Vec<IpAddr>,
    pub iface: Option<Iface>,
    pub interval: Duration,
    pub time: Option<Duration>,
    pub buffer: usize,
    pub json: bool,
}

/// Parses and checks a multicast group, IPv4 (224.0.0.0/4) or IPv6 (ff00::/8).
pub fn group(text: &str) -> Result<IpAddr, PerfError> {
    match text.trim().parse::<IpAddr>() {
        Ok(g) if g.is_multicast() => Ok(g),
        _ => Err(PerfError::NotMulticast(text.to_string())),
    }
}

/// Parses and checks a source of `group`: unicast and of the group's family.
fn source(text: &str, group: IpAddr) -> Result<IpAddr, PerfError> {
    let s = match text.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(s)) if !s.is_multicast() && !s.is_unspecified() && !s.is_broadcast() => {
            IpAddr::V4(s)
        }
        Ok(IpAddr::V6(s)) if !s.is_multicast() && !s.is_unspecified() => IpAddr::V6(s),
        _ => return Err(PerfError::BadSource(text.to_string())),
    };
    if s.is_ipv4() != group.is_ipv4() {
        let example = if group.is_ipv4() {
            "--group 232.1.1.1 --source 10.0.1.5"
        } else {
            "--group ff3e::8000:1 --source fd00::5"
        };
        return Err(PerfError::SourceFamily {
            sender: s,
            group,
            example,
        });
    }
    Ok(s)
}

/// The interface, required for an IPv6 link-scope group: its address means nothing
/// without the link (RFC 4291 section 2.7), and the kernel needs the index to bind,
/// join and send.
fn iface(name: Option<&str>, group: IpAddr) -> Result<Option<Iface>, PerfError> {
    match (name, group) {
        (Some(n), _) => Iface::lookup(n).map(Some),
        (None, IpAddr::V6(g)) if is_link_scope(g) => Err(PerfError::LinkScopeNeedsIface(g)),
        (None, _) => Ok(None),
    }
}

/// Whether `group` is an IPv6 group of scope 0 to 2 (ff02::/16 and the like).
pub fn is_link_scope(group: Ipv6Addr) -> bool {
    mcgate_wire::membership::is_link_scope_group(group)
}

/// iperf 2's default datagram length for the group's family: the largest that fits a
/// 1500-byte MTU after the IPv4 and UDP headers (20 + 8), and 20 less for IPv6's fixed
/// header (40 + 8), since a fragmented datagram costs two packets.
fn default_len(group: IpAddr) -> usize {
    if group.is_ipv4() { 1470 } else { 1450 }
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
        let group = group(&self.group)?;
        Ok(SendConfig {
            group,
            port: self.port,
            rate: rate::parse(&self.rate).ok_or_else(|| PerfError::BadRate(self.rate.clone()))?,
            len: match &self.len {
                Some(text) => len(text)?,
                None => default_len(group),
            },
            ttl: self.ttl,
            time: seconds("--time", self.time)?,
            interval: seconds("--interval", self.interval)?,
            iface: iface(self.iface.as_deref(), group)?,
            json: self.json,
        })
    }
}

impl RecvArgs {
    /// Checks every value.
    pub fn check(&self) -> Result<RecvConfig, PerfError> {
        let group = group(&self.group)?;
        Ok(RecvConfig {
            group,
            port: self.port,
            sources: self
                .source
                .iter()
                .map(|s| source(s, group))
                .collect::<Result<_, _>>()?,
            iface: iface(self.iface.as_deref(), group)?,
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
        assert_eq!(
            group(" ff3e::8000:1").unwrap(),
            "ff3e::8000:1".parse::<IpAddr>().unwrap()
        );
        assert!(group("ff02::1").is_ok());
        for bad in [
            "10.0.0.1",
            "239.1",
            "banana",
            "",
            "240.0.0.1",
            "fd00::1",
            "::",
            "fe80::1",
            "ff3e::1%2",
        ] {
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
        let v4 = group("232.1.1.1").unwrap();
        assert!(source("10.0.0.1", v4).is_ok());
        assert!(source("233.252.0.5", v4).is_err());
        assert!(source("0.0.0.0", v4).is_err());
        let v6 = group("ff3e::8000:1").unwrap();
        assert!(source("fd00::1", v6).is_ok());
        assert!(source("fe80::1", v6).is_ok());
        for bad in ["ff3e::1", "::", "banana"] {
            let e = source(bad, v6).unwrap_err();
            assert!(matches!(e, PerfError::BadSource(_)), "{bad}: {e}");
            assert!(e.to_string().contains("for example"), "{e}");
        }
    }

    #[test]
    fn sources_are_of_the_group_family() {
        let v6 = group("ff3e::8000:1").unwrap();
        let e = source("10.0.0.1", v6).unwrap_err();
        assert!(matches!(e, PerfError::SourceFamily { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("10.0.0.1") && text.contains("ff3e::8000:1"),
            "{text}"
        );
        assert!(text.contains("--source fd00::5"), "{text}");
        let v4 = group("232.1.1.1").unwrap();
        let e = source("fd00::1", v4).unwrap_err();
        assert!(e.to_string().contains("--source 10.0.1.5"), "{e}");
    }

    #[test]
    fn link_scope_groups_need_an_interface() {
        for g in ["ff02::1:3", "ff12::8000:1", "ff32::8000:1", "ff01::1"] {
            let e = iface(None, group(g).unwrap()).unwrap_err();
            assert!(matches!(e, PerfError::LinkScopeNeedsIface(_)), "{g}: {e}");
            assert!(e.to_string().contains("--iface"), "{e}");
        }
        for g in [
            "ff05::1:3",
            "ff3e::8000:1",
            "ff0e::1",
            "233.252.0.5",
            "224.0.0.1",
        ] {
            assert!(iface(None, group(g).unwrap()).unwrap().is_none(), "{g}");
        }
        let lo = iface(Some("lo"), group("ff02::1").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(lo.name, "lo");
    }

    #[test]
    fn send_and_recv_check_the_family_and_scope() {
        use clap::Parser;
        #[derive(Parser)]
        enum Cli {
            Send(SendArgs),
            Recv(RecvArgs),
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied()).unwrap();
        let Cli::Send(a) = parse(&["x", "send", "--group", "ff3e::8000:1", "--ttl", "3"]) else {
            unreachable!()
        };
        let c = a.check().unwrap();
        assert_eq!(c.group, "ff3e::8000:1".parse::<IpAddr>().unwrap());
        assert_eq!(c.ttl, 3);
        assert_eq!(c.len, 1450, "fits a 1500-byte MTU after 48 header bytes");
        let Cli::Send(a) = parse(&["x", "send", "--group", "233.252.0.5"]) else {
            unreachable!()
        };
        assert_eq!(a.check().unwrap().len, 1470);
        let Cli::Send(a) = parse(&["x", "send", "--group", "ff3e::1", "--len", "1470"]) else {
            unreachable!()
        };
        assert_eq!(a.check().unwrap().len, 1470);
        let Cli::Recv(a) = parse(&[
            "x",
            "recv",
            "-g",
            "ff3e::8000:1",
            "-s",
            "fd00::1",
            "-s",
            "fd00::2",
            "--interface",
            "lo",
        ]) else {
            unreachable!()
        };
        let c = a.check().unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.iface.unwrap().name, "lo");
        let Cli::Recv(a) = parse(&["x", "recv", "-g", "ff02::1:3"]) else {
            unreachable!()
        };
        assert!(matches!(a.check(), Err(PerfError::LinkScopeNeedsIface(_))));
        let Cli::Send(a) = parse(&["x", "send", "-g", "ff02::1:3"]) else {
            unreachable!()
        };
        assert!(matches!(a.check(), Err(PerfError::LinkScopeNeedsIface(_))));
        let Cli::Recv(a) = parse(&["x", "recv", "-g", "ff3e::8000:1", "-s", "10.0.0.1"]) else {
            unreachable!()
        };
        assert!(matches!(a.check(), Err(PerfError::SourceFamily { .. })));
    }
}
