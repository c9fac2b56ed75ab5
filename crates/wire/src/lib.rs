//! mcgate-wire: the packet formats mcgate reads and writes.
//!
//! Ethernet II, IPv4 (with options such as Router Alert), IPv6 (with the Hop-by-Hop
//! Router Alert), UDP, ICMPv6, IGMP v1/v2/v3, MLD v1/v2 and the VXLAN header. Each format has a checked view over a byte buffer (`Packet<T>`,
//! `Frame<T>`, `Header<T>`) and a high-level representation (`Repr`) with `parse` and
//! `emit`, in the style of smoltcp. `emit` computes every checksum. [`membership`] holds
//! the vocabulary of group membership every other crate shares (IGMP versions, filter
//! modes, source filters, the groups that stay on their link), and [`record`] the report
//! records IGMPv3 and MLDv2 share.
//!
//! This crate must never do I/O, read a clock, allocate in the views, or panic on any
//! input: every parser takes untrusted bytes and returns a value or an [`Error`]. The only
//! panics are documented caller bugs in `emit` (a buffer shorter than `buffer_len()`).
//!
//! Tests compare against golden bytes the Linux kernel sent (`fixtures/`, captured by
//! `fixtures/capture.sh` and `fixtures/capture-mld.sh`), and [`fuzzing`] holds the bodies of the fuzz targets.

#![forbid(unsafe_code)]

#[macro_use]
mod view;

pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod fuzzing;
pub mod icmpv6;
pub mod igmp;
pub mod ipv4;
pub mod ipv6;
pub mod keepalive;
pub mod membership;
pub mod mld;
pub mod record;
pub mod settings;
pub mod udp;
pub mod vxlan;

pub use error::{Error, Result};
pub use membership::{
    FilterMode, SourceFilter, Version, is_link_local_group, is_link_scope_group, multicast_scope,
};
pub use settings::{IgmpSettings, SettingsError};

#[cfg(test)]
pub(crate) mod test_util {
    /// Decodes a fixture: hex digits, whitespace ignored.
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
        digits
            .chunks(2)
            .map(|p| {
                let s = core::str::from_utf8(p).expect("ascii");
                u8::from_str_radix(s, 16).expect("hex digit")
            })
            .collect()
    }

    /// (name, frame, IP packet, message) of a fixture whose IP packet and message files
    /// end in `.$ip.hex` and `.$msg.hex`.
    macro_rules! fixture {
        ($name:literal, $ip:literal, $msg:literal) => {
            (
                $name,
                include_str!(concat!("../fixtures/", $name, ".eth.hex")),
                include_str!(concat!("../fixtures/", $name, ".", $ip, ".hex")),
                include_str!(concat!("../fixtures/", $name, ".", $msg, ".hex")),
            )
        };
    }

    macro_rules! igmp_fixture {
        ($name:literal) => {
            fixture!($name, "ipv4", "igmp")
        };
    }

    macro_rules! mld_fixture {
        ($name:literal) => {
            fixture!($name, "ipv6", "icmpv6")
        };
    }

    /// Every MLD packet captured from the kernel (`fixtures/capture-mld.sh`): (name,
    /// frame, IPv6 packet, MLD message).
    pub const MLD_FIXTURES: [(&str, &str, &str, &str); 11] = [
        mld_fixture!("mldv1-report"),
        mld_fixture!("mldv1-done"),
        mld_fixture!("mldv1-report-after-v1-query"),
        mld_fixture!("mldv2-join-to-ex"),
        mld_fixture!("mldv2-leave-to-in"),
        mld_fixture!("mldv2-ssm-join-allow"),
        mld_fixture!("mldv2-ssm-leave-block"),
        mld_fixture!("mldv2-report-current"),
        mld_fixture!("bridge-mldv1-query"),
        mld_fixture!("bridge-mldv2-query"),
        mld_fixture!("bridge-mldv2-group-query"),
    ];

    /// Every IGMP packet captured from the kernel: (name, frame, IPv4 packet, IGMP).
    pub const IGMP_FIXTURES: [(&str, &str, &str, &str); 11] = [
        igmp_fixture!("igmpv1-report"),
        igmp_fixture!("igmpv2-report"),
        igmp_fixture!("igmpv2-leave"),
        igmp_fixture!("igmpv2-report-after-v2-query"),
        igmp_fixture!("igmpv3-join-to-ex"),
        igmp_fixture!("igmpv3-leave-to-in"),
        igmp_fixture!("igmpv3-ssm-join-allow"),
        igmp_fixture!("igmpv3-ssm-leave-block"),
        igmp_fixture!("igmpv3-report-is-ex"),
        igmp_fixture!("bridge-igmpv2-query"),
        igmp_fixture!("bridge-igmpv3-query"),
    ];
}
