//! Latency histogram: HdrHistogram (the `hdrhistogram` crate) with two significant
//! digits, so every reported percentile is within 1% of the truth and values below 256
//! are exact. Recording is an index computation and an increment: no allocation after
//! creation.

/// Values up to 2^40 (about 12.7 days in microseconds) are kept; larger ones are clamped.
const MAX: u64 = 1 << 40;
/// Significant decimal digits kept per value.
const SIGNIFICANT_DIGITS: u8 = 2;

/// Counts of values (microseconds here), plus the exact maximum (the histogram's own
/// is the top of its bucket).
#[derive(Clone, Debug)]
pub struct Histogram {
    hdr: hdrhistogram::Histogram<u64>,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            hdr: hdrhistogram::Histogram::new_with_bounds(1, MAX, SIGNIFICANT_DIGITS)
                .expect("constant bounds are valid"),
            max: 0,
        }
    }

    /// Adds one value (clamped to the range).
    pub fn record(&mut self, v: u64) {
        self.hdr.saturating_record(v);
        self.max = self.max.max(v);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hdr.len()
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `p` percent of the values fall (reported as the top of its
    /// bucket, never above the maximum); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.hdr.is_empty() {
            return None;
        }
        Some(self.hdr.value_at_quantile(p / 100.0).min(self.max))
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Histogram) {
        // Both have the same bounds, so the counts always fit.
        let _ = self.hdr.add(&other.hdr);
        self.max = self.max.max(other.max);
    }

    /// Empties it (reused every interval, so no allocation).
    pub fn clear(&mut self) {
        self.hdr.reset();
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_within_relative_error() {
        for v in [1u64, 127, 128, 129, 1000, 12_345, 999_999, 10_000_000_000] {
            let mut h = Histogram::new();
            h.record(v);
            h.record(v.saturating_add(v / 2));
            let p = h.percentile(50.0).unwrap();
            assert!(
                p >= v && (p - v) as f64 <= v as f64 / 100.0 + 1.0,
                "{v} -> {p}"
            );
        }
        let mut h = Histogram::new();
        h.record(u64::MAX);
        assert_eq!(h.count(), 1, "values over the range are clamped, not lost");
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(90.0), Some(90));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.max(), 100);
        h.record(5000);
        assert_eq!(h.percentile(100.0), Some(5000));
        let p = h.percentile(99.5).unwrap();
        assert!((4900..=5000).contains(&p), "{p}");
        h.clear();
        assert_eq!(h.count(), 0);
        assert_eq!(h.percentile(99.0), None);
    }
}
