//! A fixed-size log-linear latency histogram (the HDR histogram idea): exact below 128,
//! then 64 buckets per power of two, so every reported value is within 1.6% of the truth.
//! Recording is an index computation and an increment: no allocation after creation.

/// Sub-buckets per power of two, as a power of two.
const PRECISION_BITS: u32 = 6;
const SUB: u64 = 1 << PRECISION_BITS;
/// Values up to 2^40 (about 12.7 days in microseconds) are kept; larger ones are clamped.
const MAX_EXP: u32 = 40;
const BUCKETS: usize = ((MAX_EXP - PRECISION_BITS + 1) as usize) * SUB as usize + SUB as usize;

/// Counts of values (microseconds here) in log-linear buckets, plus the exact maximum.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    let v = v.min((1u64 << (MAX_EXP + 1)) - 1);
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - PRECISION_BITS;
    (u64::from(shift) * SUB + (v >> shift)) as usize
}

/// The highest value that lands in bucket `i`.
fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mantissa = i - shift * SUB;
    ((mantissa + 1) << shift) - 1
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `p` percent of the values fall (reported as the top of its
    /// bucket, never above the maximum); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(highest(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Empties it (reused every interval, so no allocation).
    pub fn clear(&mut self) {
        if self.total != 0 {
            self.counts.fill(0);
        }
        self.total = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for v in 0..200_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            assert!(highest(i) >= v, "bucket {i} top {} below {v}", highest(i));
            last = i;
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn values_are_within_relative_error() {
        for v in [1u64, 127, 128, 129, 1000, 12_345, 999_999, 10_000_000_000] {
            let top = highest(index(v));
            assert!(
                top >= v && (top - v) as f64 <= v as f64 / 64.0 + 1.0,
                "{v} -> {top}"
            );
        }
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
