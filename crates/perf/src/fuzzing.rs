//! The body of the `perf_datagram` fuzz target (`fuzz/fuzz_targets/perf_datagram.rs`),
//! here so that a unit test runs it over the seed corpus on stable Rust.
//!
//! The input is a run of datagrams as a receiver gets them from untrusted senders: each
//! is one length byte then that many payload bytes (fewer at the end of the input).
//! Each payload goes through what `mcgate perf recv` does with it (the iperf 2 header,
//! then the per-sender loss, reordering, jitter and latency accounting) and the
//! reports are rendered, checking:
//!
//! - a payload yields a header exactly when it holds [`header::MIN_PARSE_LEN`] bytes;
//! - a header written back by the sender's code ([`header::write`]) reads the same;
//! - every data datagram is counted once, and no report fails to render.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::header;
use crate::stats::SenderStats;

/// The arrival time used for every datagram (2026-01-01T00:00:00Z), in microseconds.
const ARRIVAL_US: i64 = 1_767_225_600_000_000;

/// Runs the datagrams of `data` through the receiver's accounting.
pub fn datagrams(data: &[u8]) {
    let mut stats = SenderStats::new(
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 101), 5001)),
        0.0,
    );
    let mut rest = data;
    let mut fed = 0u64;
    let mut t_s = 0.0;
    while let Some((&len, tail)) = rest.split_first() {
        let (payload, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        t_s += 0.001;
        let Some(h) = header::parse(payload) else {
            assert!(payload.len() < header::MIN_PARSE_LEN);
            continue;
        };
        assert!(payload.len() >= header::MIN_PARSE_LEN);
        let mut again = [0u8; header::MIN_SEND_LEN];
        header::init_payload(&mut again);
        header::write(&mut again, h.seq, h.tv_sec, h.tv_usec);
        assert_eq!(header::parse(&again), Some(h));
        if h.seq < 0 {
            stats.on_fin(h.seq, t_s);
        } else {
            stats.on_data(h.seq, payload.len(), ARRIVAL_US - h.sent_us(), t_s);
            fed += 1;
        }
        let _ = stats.cut_interval(t_s - 0.001, t_s);
    }
    let summary = stats.summary();
    assert_eq!(summary.datagrams, fed);
    assert!(serde_json::to_string(&summary).is_ok());
}

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    #[test]
    fn the_target_passes_its_seed_corpus() {
        for (_, data) in seeds("perf_datagram") {
            super::datagrams(&data);
        }
    }

    /// Inputs the corpus does not hold: random bytes, and sequence numbers at the edges
    /// of their range (FIN of the lowest number, a jump to the highest, wrap-around).
    #[test]
    fn random_and_extreme_inputs_pass() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000 {
            let data: Vec<u8> = (0..len % 300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            super::datagrams(&data);
        }
        let frame = |seq: i64, wide: bool| {
            let mut p = [0u8; 20];
            crate::header::init_payload(&mut p);
            crate::header::write(&mut p, seq, u32::MAX, u32::MAX);
            if !wide {
                p[16..20].fill(0);
            }
            let mut f = vec![20u8];
            f.extend_from_slice(&p);
            f
        };
        let mut data = Vec::new();
        for (seq, wide) in [
            (0, true),
            (i64::MAX, true),
            (5, true),
            (i64::MIN, true),
            (-1, false),
            (i64::from(i32::MAX), false),
            (i64::from(i32::MIN), false),
        ] {
            data.extend(frame(seq, wide));
        }
        super::datagrams(&data);
    }

    /// The seeds are real datagrams: each holds a header.
    #[test]
    fn seeds_hold_headers() {
        for (name, data) in seeds("perf_datagram") {
            let len = usize::from(data[0]);
            assert!(
                crate::header::parse(&data[1..=len]).is_some(),
                "{name}: no header in the first datagram"
            );
        }
    }
}
