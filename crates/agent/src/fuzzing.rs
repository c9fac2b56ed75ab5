//! Fuzz bodies for the agent's parsers of bytes from outside (see `fuzz/README.md`):
//! the `Accept` header of `/metrics`, the state file, the controller's stream lines
//! fed to the core, and the kernel's `/proc/net/if_inet6`. They live here so that a unit test runs each over its seed corpus
//! on stable Rust; `fuzz/` only wraps them for libFuzzer.
//!
//! A parser must never panic; the `assert!`s are invariants the fuzzer hunts for
//! violations of, so a panic from this module is a bug in the crate, never a property of
//! the input.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mcgate_domain::api::StreamMessage;

use crate::control::StreamEvent;
use crate::core::{AgentCore, HostIdentity};
use crate::metrics::Format;
use crate::netdev::NetDev;
use crate::persist::{self, SavedMembership};

/// An `Accept` header: a format is always chosen, and OpenMetrics only when named.
pub fn accept(data: &[u8]) {
    let header = String::from_utf8_lossy(data);
    let format = Format::negotiate(Some(&header));
    if !header
        .to_ascii_lowercase()
        .contains("application/openmetrics-text")
    {
        assert_eq!(format, Format::PrometheusText);
    }
}

/// A state file of host `h1`: parsed or refused, and what parses survives a save and a
/// load unchanged.
pub fn state_file(data: &[u8]) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Ok(m) = persist::parse(data, "h1", now) else {
        return;
    };
    let again = serde_json::json!({
        "format": persist::FORMAT,
        "host": "h1",
        "saved_at_ms": 1_800_000_000_000u64,
        "membership": m,
    });
    let bytes = serde_json::to_vec(&again).unwrap_or_default();
    assert!(persist::parse(&bytes, "h1", now).is_ok_and(|m2| m2 == m));
}

/// The text of `/proc/net/if_inet6`: parsed without panicking, and each interface's
/// state names one of its own addresses or none.
pub fn if_inet6(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (_, addrs) in crate::netdev::parse_if_inet6(&text) {
        match crate::netdev::ipv6_link(true, &addrs) {
            crate::netdev::Ipv6Link::Ready(a) | crate::netdev::Ipv6Link::Tentative(a) => {
                assert!(addrs.iter().any(|(b, _)| *b == a));
            }
            _ => {}
        }
    }
}

/// Newline-separated stream lines from a controller, applied to a core with one link
/// (a state file's membership restored on it): whatever the lines hold, the core
/// decides without panicking and never asks to wake in the past.
pub fn stream_lines(data: &[u8]) {
    let t0 = Instant::now();
    let host = HostIdentity {
        name: "h1".into(),
        zone: None,
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 4789),
        underlay_if: "eth0".into(),
        subnet: Some("10.1.0.0/24".into()),
        dataplane: "userspace",
        dataplane_chosen_because: "fuzzing".into(),
        public_key: String::new(),
        wireguard: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 51820),
    };
    let mut core = AgentCore::new(host, 1500, SavedMembership::default(), t0);
    core.handle_links(
        t0,
        vec![NetDev {
            name: "tk1".into(),
            ifindex: 4,
            mac: [2, 0, 0, 0, 0, 4],
            mtu: 1500,
            address: Some(Ipv4Addr::new(10, 0, 0, 1)),
            kind: "veth".into(),
            ipv6: crate::netdev::Ipv6Link::Ready(std::net::Ipv6Addr::new(
                0xfe80, 0, 0, 0, 0, 0, 0, 1,
            )),
        }],
    );
    core.handle_stream(t0, StreamEvent::Connected);
    let mut now = t0;
    for (i, line) in data.split(|b| *b == b'\n').take(64).enumerate() {
        now += Duration::from_millis(700);
        if i % 8 == 7 {
            core.handle_stream(now, StreamEvent::Connected);
        }
        if let Ok(msg) = serde_json::from_slice::<StreamMessage>(line) {
            core.handle_stream(now, StreamEvent::Message(msg));
        }
        core.handle_timeout(now);
        while core.poll_action().is_some() {}
        assert!(core.poll_timeout().is_none_or(|t| t > now));
        let _ = core.view();
    }
}

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    use super::*;

    /// Each body over every seed of its corpus and over every prefix of it.
    #[test]
    fn every_target_passes_its_seed_corpus() {
        mcgate_testbed::corpus::replay_with_prefixes(&[
            ("agent_accept", accept),
            ("agent_state_file", state_file),
            ("agent_stream", stream_lines),
            ("agent_if_inet6", if_inet6),
        ]);
    }

    /// The seeds are what they claim: a state file that loads, stream lines that parse.
    #[test]
    fn seeds_parse() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (_, data) in seeds("agent_state_file") {
            assert!(persist::parse(&data, "h1", now).is_ok());
        }
        for (_, data) in seeds("agent_stream") {
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                serde_json::from_slice::<StreamMessage>(line)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
            }
        }
    }
}
