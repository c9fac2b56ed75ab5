//! Every way `mcgate perf` can fail, each with one sentence saying what to do.

use std::net::{IpAddr, Ipv6Addr};
use std::process::ExitCode;

/// A `mcgate perf` failure.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// `--group` is not a multicast address.
    #[error(
        "'{0}' is not a multicast group: give an IPv4 address in 224.0.0.0/4 or an IPv6 one in ff00::/8, for example --group 233.252.0.5 or --group ff3e::8000:1"
    )]
    NotMulticast(String),
    /// `--source` is not a unicast address.
    #[error(
        "'{0}' is not a unicast source address: give the sender's address, for example --source 10.0.1.5 or --source fd00::5"
    )]
    BadSource(String),
    /// `--source` is not of the group's address family.
    #[error(
        "--source {sender} and --group {group} are of different address families: a source-specific join takes sources of the group's family, for example {example}"
    )]
    SourceFamily {
        /// The source given.
        sender: IpAddr,
        /// The group given.
        group: IpAddr,
        /// A matching pair.
        example: &'static str,
    },
    /// An IPv6 link-scope group without `--iface`.
    #[error(
        "--group {0} is an IPv6 link-scope group (scope 0 to 2, such as ff02::/16), which exists only on one link: name it, for example --iface eth0"
    )]
    LinkScopeNeedsIface(Ipv6Addr),
    /// `--rate` does not parse.
    #[error(
        "'{0}' is not a rate: give bits per second with an optional k, m or g suffix, or datagrams per second ending in pps, for example --rate 10k, --rate 2.5g or --rate 50kpps"
    )]
    BadRate(String),
    /// `--len` does not parse.
    #[error("'{0}' is not a datagram length: give a whole number of bytes, for example --len 1470")]
    BadLen(String),
    /// `--len` cannot hold the header or does not fit in a UDP datagram.
    #[error(
        "--len {0} is out of range: a datagram needs room for the 20-byte iperf 2 header and fits in 65507 bytes, for example --len 1470"
    )]
    LenOutOfRange(usize),
    /// `--buffer` does not parse or is absurd.
    #[error(
        "'{0}' is not a buffer size between 4K and 1024M: give bytes with an optional K or M suffix, for example --buffer 4M"
    )]
    BadBuffer(String),
    /// `--time` or `--interval` is not a positive number of seconds.
    #[error("{flag} {value} is not a positive number of seconds: for example {flag} 10")]
    BadSeconds {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: f64,
    },
    /// `--iface` names no interface.
    #[error(
        "interface '{0}' does not exist in this network namespace: give one that `ip link` lists, for example --iface eth0"
    )]
    NoSuchInterface(String),
    /// `--iface` has no IPv4 address to send or join from.
    #[error(
        "interface '{0}' has no IPv4 address: add one (for example `ip addr add 10.0.0.2/24 dev {0}`) or pick another interface"
    )]
    NoIpv4(String),
    /// A socket call failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
}

impl PerfError {
    /// 2 for bad input (like clap's usage errors), 1 for failures at run time.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PerfError::Io { .. } => ExitCode::FAILURE,
            _ => ExitCode::from(2),
        }
    }
}

/// Wraps an I/O error with what was being done.
pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> PerfError {
    move |source| PerfError::Io { what, source }
}
