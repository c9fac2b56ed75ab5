//! Flood protection: a token bucket per reporting host, so one host that floods reports
//! cannot starve the others, while a host's legitimate join burst passes whole.

use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use crate::Family;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Most hosts with a bucket of their own; reports from further hosts share one bucket,
/// so spoofed sources cannot grow the table.
pub(crate) const MAX_LIMITED_HOSTS: usize = 1024;
/// How often a full table is swept of idle (full) buckets.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `rate` tokens per second up to `burst`. Tokens are kept in nano-units (one token =
/// 10^9 units) so refills are exact integers.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u32,
    burst: u32,
    units: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate,
            burst,
            units: u128::from(burst) * NANOS_PER_SEC,
            last: now,
        }
    }

    fn capacity(&self) -> u128 {
        u128::from(self.burst) * NANOS_PER_SEC
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

    /// Whether the bucket is full at `now`: a host that has been quiet long enough.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.units >= self.capacity()
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

/// One bucket per reporting host (the IP source of its reports), plus one shared by the
/// hosts beyond [`MAX_LIMITED_HOSTS`].
#[derive(Debug, Clone)]
pub(crate) struct ReportLimiter<F: Family> {
    rate: u32,
    burst: u32,
    hosts: BTreeMap<F::Addr, TokenBucket>,
    overflow: TokenBucket,
    last_sweep: Instant,
}

impl<F: Family> ReportLimiter<F> {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate,
            burst,
            hosts: BTreeMap::new(),
            overflow: TokenBucket::new(rate, burst, now),
            last_sweep: now,
        }
    }

    /// Changes the limits; every host starts again with a full bucket.
    pub(crate) fn set_limits(&mut self, rate: u32, burst: u32, now: Instant) {
        if (rate, burst) != (self.rate, self.burst) {
            *self = Self::new(rate, burst, now);
        }
    }

    /// Whether a report from `host` at `now` is within its limit (and counts it).
    pub(crate) fn admit(&mut self, host: F::Addr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        if !self.hosts.contains_key(&host) && self.hosts.len() >= MAX_LIMITED_HOSTS {
            self.sweep(now);
        }
        if let Some(b) = self.hosts.get_mut(&host) {
            return b.take(now);
        }
        if self.hosts.len() < MAX_LIMITED_HOSTS {
            let mut b = TokenBucket::new(self.rate, self.burst, now);
            let ok = b.take(now);
            self.hosts.insert(host, b);
            return ok;
        }
        self.overflow.take(now)
    }

    /// Forgets hosts whose bucket is full again (they are as if never seen), at most once
    /// per [`SWEEP_EVERY`] so a table full of busy hosts costs one scan a second.
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.hosts.retain(|_, b| !b.is_full(now));
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.hosts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Igmp;
    use core::net::Ipv4Addr;

    fn host(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 10, t0);
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
        let mut b = TokenBucket::new(0, 0, t0);
        assert!((0..1000).all(|_| b.take(t0)));
        let mut l = ReportLimiter::<Igmp>::new(0, 0, t0);
        assert!((0..1000).all(|_| l.admit(host(1), t0)));
    }

    #[test]
    fn limits_are_per_host() {
        let t0 = Instant::now();
        let mut l = ReportLimiter::<Igmp>::new(10, 100, t0);
        assert_eq!((0..150).filter(|_| l.admit(host(1), t0)).count(), 100);
        // Another host is not held back by the first one's flood.
        assert_eq!((0..100).filter(|_| l.admit(host(2), t0)).count(), 100);
    }

    #[test]
    fn table_is_bounded_and_idle_hosts_are_forgotten() {
        let t0 = Instant::now();
        let mut l = ReportLimiter::<Igmp>::new(10, 2, t0);
        let n = u32::try_from(MAX_LIMITED_HOSTS).unwrap();
        for i in 0..n {
            assert!(l.admit(host(i), t0));
        }
        assert_eq!(l.tracked(), MAX_LIMITED_HOSTS);
        // Beyond the table, new hosts share one bucket of the same size.
        assert!(l.admit(host(n), t0));
        assert!(l.admit(host(n + 1), t0));
        assert!(!l.admit(host(n + 2), t0));
        assert_eq!(l.tracked(), MAX_LIMITED_HOSTS);
        // Once the buckets are full again the table is swept.
        let later = t0 + Duration::from_secs(2);
        assert!(l.admit(host(n + 3), later));
        assert_eq!(l.tracked(), 1);
    }
}
