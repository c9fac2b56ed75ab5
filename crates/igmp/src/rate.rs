//! A token bucket that limits how many reports one interface accepts, so a host that
//! floods reports cannot starve the others of the agent's time.

use std::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `rate` tokens per second, burst `rate`. Tokens are kept in nano-units (one token =
/// 10^9 units) so refills are exact integers.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u32,
    units: u128,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        Self {
            rate,
            units: u128::from(rate) * NANOS_PER_SEC,
            last: now,
        }
    }

    /// Changes the rate, keeping the tokens already earned (up to the new burst).
    pub(crate) fn set_rate(&mut self, rate: u32, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.units = self.units.min(self.capacity());
    }

    fn capacity(&self) -> u128 {
        u128::from(self.rate) * NANOS_PER_SEC
    }

    fn refill(&mut self, now: Instant) {
        // A clock that goes backwards (a caller bug) earns nothing rather than panicking.
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        if now > self.last {
            self.last = now;
        }
        self.units = self
            .units
            .saturating_add(elapsed.saturating_mul(u128::from(self.rate)))
            .min(self.capacity());
    }

    /// Takes one token; false when the bucket is empty. A rate of 0 never limits.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        if self.units >= NANOS_PER_SEC {
            self.units -= NANOS_PER_SEC;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        // 100 ms earns exactly one token.
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 10);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, t0);
        assert!((0..1000).all(|_| b.take(t0)));
    }
}
