//! Per-sender measurements: counts, loss, jitter and one-way latency, for the current
//! interval and for the whole run.

use std::net::SocketAddr;

use serde::Serialize;

use crate::histogram::Histogram;
use crate::seq::{Arrival, SeqTracker};

/// Interarrival jitter as RFC 3550 section 6.4.1 (and RFC 1889, and iperf 2) defines it:
/// with transit = arrival time - send time, `J += (|D| - J) / 16` where `D` is the change
/// in transit between consecutive datagrams. Clock offset between the ends cancels out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    last_transit_us: Option<i64>,
    jitter_us: f64,
}

impl Jitter {
    /// Feeds one datagram's transit time (microseconds; may be negative when the clocks
    /// of the two ends differ).
    pub fn update(&mut self, transit_us: i64) {
        if let Some(last) = self.last_transit_us {
            let d = (transit_us - last).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit_us);
    }

    /// The current estimate in milliseconds.
    pub fn ms(&self) -> f64 {
        self.jitter_us / 1000.0
    }
}

/// Counters that intervals are cut from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Data datagrams received (duplicates included).
    pub datagrams: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// See [`SeqTracker::lost`].
    pub lost: i64,
    /// Datagrams that arrived more than once.
    pub duplicates: u64,
    /// Datagrams that arrived after a higher-numbered one.
    pub out_of_order: u64,
}

impl Counters {
    fn minus(&self, earlier: &Counters) -> Counters {
        Counters {
            datagrams: self.datagrams - earlier.datagrams,
            bytes: self.bytes - earlier.bytes,
            lost: self.lost - earlier.lost,
            duplicates: self.duplicates - earlier.duplicates,
            out_of_order: self.out_of_order - earlier.out_of_order,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    fn of(h: &Histogram) -> Option<Latency> {
        Some(Latency {
            p50: h.percentile(50.0)?,
            p90: h.percentile(90.0)?,
            p99: h.percentile(99.0)?,
            max: h.max(),
        })
    }
}

/// One report line: an interval or a sender's summary. Serialized as-is for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecvReport {
    /// Seconds since the receiver started.
    pub start: f64,
    /// Seconds since the receiver started.
    pub end: f64,
    /// The sender, `ip:port`.
    pub sender: String,
    /// UDP payload bytes received.
    pub bytes: u64,
    /// Data datagrams received (duplicates included).
    pub datagrams: u64,
    /// Datagrams missing from the sequence (negative when late arrivals fill gaps
    /// counted in an earlier interval).
    pub lost: i64,
    /// Datagrams received more than once.
    pub duplicates: u64,
    /// Datagrams received after a higher-numbered one.
    pub out_of_order: u64,
    /// RFC 3550 interarrival jitter at the end of the period, milliseconds.
    pub jitter_ms: f64,
    /// One-way latency from the sender's timestamp, when any was plausible.
    pub latency_us: Option<Latency>,
    /// True on the final report of a sender.
    pub summary: bool,
}

/// Latency above this is taken as clocks that disagree, not as a measurement.
const MAX_PLAUSIBLE_LATENCY_US: i64 = 3_600 * 1_000_000;

/// Everything known about one sender.
#[derive(Debug)]
pub struct SenderStats {
    /// The sender's address.
    pub addr: SocketAddr,
    seq: SeqTracker,
    jitter: Jitter,
    now: Counters,
    at_interval_start: Counters,
    interval_latency: Histogram,
    total_latency: Histogram,
    /// Seconds since receiver start of the first and the latest datagram.
    first_s: f64,
    last_s: f64,
}

impl SenderStats {
    /// A sender first seen at `t_s` seconds since the receiver started.
    pub fn new(addr: SocketAddr, t_s: f64) -> Self {
        Self {
            addr,
            seq: SeqTracker::new(),
            jitter: Jitter::default(),
            now: Counters::default(),
            at_interval_start: Counters::default(),
            interval_latency: Histogram::new(),
            total_latency: Histogram::new(),
            first_s: t_s,
            last_s: t_s,
        }
    }

    fn sync(&mut self) {
        self.now.lost = self.seq.lost;
        self.now.duplicates = self.seq.duplicates;
        self.now.out_of_order = self.seq.out_of_order;
    }

    /// Accounts for one data datagram: sequence number `seq` (non-negative), `len`
    /// payload bytes, `transit_us` = arrival - send time, at `t_s` seconds since start.
    pub fn on_data(&mut self, seq: i64, len: usize, transit_us: i64, t_s: f64) {
        self.now.datagrams += 1;
        self.now.bytes += len as u64;
        self.last_s = t_s;
        let arrival = self.seq.on_data(seq);
        self.sync();
        if arrival == Arrival::Duplicate {
            return;
        }
        self.jitter.update(transit_us);
        if (0..MAX_PLAUSIBLE_LATENCY_US).contains(&transit_us) {
            // One record per datagram; the interval is folded into the total when it
            // is cut.
            self.interval_latency.record(transit_us as u64);
        }
    }

    /// Accounts for the sender's end-of-stream marker.
    pub fn on_fin(&mut self, seq: i64, t_s: f64) {
        if !self.seq.finished {
            self.last_s = t_s;
        }
        self.seq.on_fin(seq);
        self.sync();
    }

    /// True once the sender said its stream is over.
    pub fn finished(&self) -> bool {
        self.seq.finished
    }

    /// Whether anything changed since the interval started.
    pub fn interval_active(&self) -> bool {
        self.now != self.at_interval_start
    }

    /// Closes the interval `[start, end]` and returns its report.
    pub fn cut_interval(&mut self, start: f64, end: f64) -> RecvReport {
        let d = self.now.minus(&self.at_interval_start);
        let report = self.report(start, end, &d, Latency::of(&self.interval_latency), false);
        self.at_interval_start = self.now;
        self.total_latency.add(&self.interval_latency);
        self.interval_latency.clear();
        report
    }

    /// The whole run's report for this sender, from its first to its last datagram.
    pub fn summary(&self) -> RecvReport {
        let mut all = self.total_latency.clone();
        all.add(&self.interval_latency);
        self.report(
            self.first_s,
            self.last_s,
            &self.now,
            Latency::of(&all),
            true,
        )
    }

    fn report(
        &self,
        start: f64,
        end: f64,
        c: &Counters,
        latency_us: Option<Latency>,
        summary: bool,
    ) -> RecvReport {
        RecvReport {
            start: round6(start),
            end: round6(end),
            sender: self.addr.to_string(),
            bytes: c.bytes,
            datagrams: c.datagrams,
            lost: c.lost,
            duplicates: c.duplicates,
            out_of_order: c.out_of_order,
            jitter_ms: round6(self.jitter.ms()),
            latency_us,
            summary,
        }
    }
}

/// Rounds to the microsecond, so JSON stays short.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut j = Jitter::default();
        j.update(1000);
        assert_eq!(j.ms(), 0.0);
        j.update(1160); // |D| = 160 us -> J = 10 us
        assert!((j.ms() - 0.010).abs() < 1e-12);
        j.update(1160); // |D| = 0 -> J = 10 - 10/16
        assert!((j.ms() - 0.009375).abs() < 1e-12);
        // A constant clock offset does not matter.
        let mut k = Jitter::default();
        for t in [1000, 1160, 1160] {
            k.update(t - 5_000_000);
        }
        assert!((k.ms() - j.ms()).abs() < 1e-12);
    }

    #[test]
    fn intervals_add_up_to_the_summary() {
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut s = SenderStats::new(a, 0.5);
        for seq in [1, 2, 4] {
            s.on_data(seq, 100, 50, 0.6);
        }
        let i1 = s.cut_interval(0.0, 1.0);
        assert_eq!((i1.datagrams, i1.bytes, i1.lost), (3, 300, 1));
        assert_eq!(i1.latency_us.unwrap().p50, 50);
        assert!(!s.interval_active());
        s.on_data(3, 100, 70, 1.2); // late: fills the gap
        s.on_data(4, 100, 70, 1.3); // duplicate
        s.on_fin(-7, 1.4); // 5 and 6 never came
        let i2 = s.cut_interval(1.0, 2.0);
        assert_eq!(
            (i2.datagrams, i2.lost, i2.duplicates, i2.out_of_order),
            (2, 1, 1, 1)
        );
        let sum = s.summary();
        assert!(sum.summary);
        assert_eq!((sum.start, sum.end), (0.5, 1.4));
        assert_eq!((sum.datagrams, sum.bytes, sum.lost), (5, 500, 2));
        assert_eq!(sum.latency_us.unwrap().max, 70);
        assert_eq!(sum.sender, "10.0.0.1:4000");
    }

    #[test]
    fn implausible_latency_is_not_recorded() {
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut s = SenderStats::new(a, 0.0);
        s.on_data(1, 10, -40, 0.0);
        assert_eq!(s.summary().latency_us, None);
        let json = serde_json::to_string(&s.summary()).unwrap();
        assert!(json.contains("\"latency_us\":null"), "{json}");
    }
}
