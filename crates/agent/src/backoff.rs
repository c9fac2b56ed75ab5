//! Delays between attempts to reach the controller: exponential backoff with jitter.
//!
//! After a controller restart every agent loses it at the same moment. Retrying at a
//! fixed interval would bring all of them back in lockstep, every attempt; here the
//! n-th delay is drawn uniformly from the upper half of `min(max, base * 2^n)` ("equal
//! jitter"), so attempts spread over a window that doubles each time while no agent
//! retries sooner than half the window. Pure: the caller supplies the randomness.

use std::time::Duration;

/// The first window: the first retry comes 125-250 ms after a failure.
pub const BASE: Duration = Duration::from_millis(250);
/// The largest window: a controller away for long is tried every 5-10 s, so it is
/// found again within 10 s of its return while 1,000 agents still spread their
/// attempts over 5 s.
pub const MAX: Duration = Duration::from_secs(10);

/// The retry schedule of one kind of request.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, MAX)
    }
}

impl Backoff {
    /// A schedule whose windows start at `base` and double up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The window of the next attempt: `min(max, base * 2^attempts)`.
    pub fn window(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt, from a uniformly random `random`: within the
    /// upper half of the window. Each call widens the next window.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let d = self.delay(random);
        self.widen();
        d
    }

    /// A delay within the upper half of the current window, leaving the window as it
    /// is (for schedules that widen less often than every attempt).
    pub fn delay(&self, random: u64) -> Duration {
        let half = u64::try_from(self.window().as_micros() / 2).unwrap_or(u64::MAX);
        let jitter = random % half.saturating_add(1);
        Duration::from_micros(half.saturating_add(jitter))
    }

    /// Doubles the window (up to the largest).
    pub fn widen(&mut self) {
        if self.window() < self.max {
            self.attempt += 1;
        }
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A delay from the process's random generator.
pub fn next_delay(b: &mut Backoff) -> Duration {
    b.next_delay(fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let mut windows = Vec::new();
        for _ in 0..12 {
            windows.push(b.window());
            let d = b.next_delay(u64::MAX);
            assert!(d <= *windows.last().unwrap() && d >= *windows.last().unwrap() / 2);
        }
        assert_eq!(windows[0], Duration::from_millis(250));
        assert_eq!(windows[1], Duration::from_millis(500));
        assert_eq!(windows[4], Duration::from_secs(4));
        assert_eq!(windows[11], MAX);
        for _ in 0..100 {
            assert!(b.next_delay(7) <= MAX);
        }
        b.reset();
        assert_eq!(b.window(), BASE);
    }

    /// 1,000 agents that lost the controller at the same instant: their retries spread
    /// over the window instead of arriving together, attempt after attempt.
    #[test]
    fn a_thousand_agents_do_not_retry_in_lockstep() {
        let mut rng = fastrand::Rng::with_seed(12_648_430);
        let mut agents: Vec<Backoff> = (0..1000).map(|_| Backoff::default()).collect();
        let mut at = vec![Duration::ZERO; agents.len()];
        for attempt in 0..6 {
            for (b, t) in agents.iter_mut().zip(at.iter_mut()) {
                *t += b.next_delay(rng.u64(..));
            }
            // No millisecond holds more than 3% of the agents (lockstep would put all of
            // them in one), and the attempts cover most of the window.
            let mut slots = std::collections::BTreeMap::<u128, usize>::new();
            for t in &at {
                *slots.entry(t.as_millis()).or_default() += 1;
            }
            let busiest = slots.values().copied().max().unwrap();
            assert!(
                busiest <= 30,
                "attempt {attempt}: {busiest} agents in one millisecond"
            );
            let spread = *at.iter().max().unwrap() - *at.iter().min().unwrap();
            let window = BASE * (1 << attempt);
            assert!(
                spread >= window * 2 / 5,
                "attempt {attempt}: spread {spread:?}"
            );
        }
    }
}
