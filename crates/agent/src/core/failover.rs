//! Which controller replica the agent talks to, and how long it waits before trying
//! again, without I/O and without a clock.
//!
//! With several controller URLs (replicas sharing one store) the agent sticks to one
//! and moves to the next, round robin, when that one fails: no connection, no answer
//! in time, a 5xx (503: the replica cannot write, e.g. its store lost quorum) or its
//! stream ending. An answer in the 4xx range is not a failure of the replica: it
//! works, and says something about the request (404/409: the session is gone, which
//! the session handles by registering again on the same replica).
//!
//! The session, its heartbeats and the stream share one [`Failover`]: whichever sees
//! the current replica fail moves all of them. Each remembers the [`Pick`] it used, so
//! that two of them failing on the same replica move the agent once, not twice (which
//! would skip a replica, or with two URLs, come straight back to the failed one).
//!
//! [`Retry`] spaces the attempts of one task: the exponential backoff with jitter of
//! [`crate::backoff`], its window doubling once per round over all the URLs rather
//! than per attempt, so the next replica is tried within the first window while one
//! replica that keeps failing is not hammered. With one URL both are what the agent
//! always did: the same controller, the window doubling at every failure.

use std::time::Duration;

use crate::backoff::Backoff;

/// A controller chosen for some requests: which URL, and at which switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index into the URLs.
    pub index: usize,
    /// Switches made before this pick; a failure reported with an older one was
    /// already acted on.
    pub generation: u64,
}

/// Whether a request's outcome says the controller it went to is unusable: `None` is
/// no HTTP answer at all (connection refused or broken, TLS, timeout, an unreadable
/// answer), `Some(status)` an error status.
pub fn is_controller_failure(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500)
}

/// The controller in use, shared by the session, its heartbeats and the stream.
#[derive(Debug, Clone)]
pub struct Failover {
    urls: usize,
    current: Pick,
    failovers: u64,
}

impl Failover {
    /// Starts with the first of `urls` URLs (at least one).
    pub fn new(urls: usize) -> Self {
        Self {
            urls: urls.max(1),
            current: Pick {
                index: 0,
                generation: 0,
            },
            failovers: 0,
        }
    }

    /// The controller to use now.
    pub fn current(&self) -> Pick {
        self.current
    }

    /// Whether the agent moved on from `seen` (a task still talking to it must
    /// follow).
    pub fn moved_from(&self, seen: Pick) -> bool {
        seen.generation != self.current.generation
    }

    /// The controller picked as `seen` failed. Moves to the next URL unless the agent
    /// already moved on from `seen` (another task saw the same failure first) or there
    /// is only one. Returns the pick to use now and whether this call moved.
    pub fn failed(&mut self, seen: Pick) -> (Pick, bool) {
        if self.moved_from(seen) || self.urls == 1 {
            return (self.current, false);
        }
        self.current = Pick {
            index: (self.current.index + 1) % self.urls,
            generation: self.current.generation + 1,
        };
        self.failovers += 1;
        (self.current, true)
    }

    /// How many times the agent moved to another controller.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }
}

/// The retry schedule of one task (registration, reports, stream) over `urls` URLs.
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    urls: usize,
    failures: usize,
}

impl Retry {
    /// The schedule for `urls` URLs, with the agent's usual windows.
    pub fn new(urls: usize) -> Self {
        Self::with_backoff(urls, Backoff::default())
    }

    /// The schedule for `urls` URLs with the windows of `backoff`.
    pub fn with_backoff(urls: usize, backoff: Backoff) -> Self {
        Self {
            backoff,
            urls: urls.max(1),
            failures: 0,
        }
    }

    /// The wait before the next attempt after a failure, from a uniformly random
    /// `random`: within the upper half of the window, which doubles after each whole
    /// round of failures over the URLs.
    pub fn after_failure(&mut self, random: u64) -> Duration {
        let delay = self.backoff.delay(random);
        self.failures += 1;
        if self.failures.is_multiple_of(self.urls) {
            self.backoff.widen();
        }
        delay
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::{BASE, MAX};

    #[test]
    fn only_a_missing_answer_or_a_5xx_is_a_controller_failure() {
        assert!(is_controller_failure(None));
        assert!(is_controller_failure(Some(503)));
        assert!(is_controller_failure(Some(500)));
        for answered in [400, 401, 403, 404, 409, 413] {
            assert!(!is_controller_failure(Some(answered)), "{answered}");
        }
    }

    #[test]
    fn failures_move_round_robin_and_count() {
        let mut f = Failover::new(3);
        let a = f.current();
        assert_eq!(a.index, 0);
        let (b, moved) = f.failed(a);
        assert!(moved && b.index == 1 && f.moved_from(a) && !f.moved_from(b));
        let (c, _) = f.failed(b);
        let (a2, _) = f.failed(c);
        assert_eq!((c.index, a2.index), (2, 0), "round robin wraps");
        assert_eq!(f.failovers(), 3);
    }

    /// The heartbeats and the stream both see replica A fail: the agent moves to B
    /// once, and the second report (about A) does not move it on to C.
    #[test]
    fn two_tasks_failing_on_the_same_controller_move_once() {
        let mut f = Failover::new(3);
        let seen = f.current();
        let (now, moved) = f.failed(seen);
        assert!(moved);
        assert_eq!(f.failed(seen), (now, false));
        assert_eq!((f.current().index, f.failovers()), (1, 1));
    }

    #[test]
    fn one_url_never_moves() {
        let mut f = Failover::new(1);
        let p = f.current();
        assert_eq!(f.failed(p), (p, false));
        assert!(!f.moved_from(p));
        assert_eq!(f.failovers(), 0);
        // Zero URLs cannot happen (the config refuses it) and is taken as one.
        assert_eq!(Failover::new(0).failed(p), (p, false));
    }

    #[test]
    fn the_window_doubles_once_per_round_over_the_urls() {
        let top = |r: &mut Retry| r.after_failure(u64::MAX);
        let mut r = Retry::new(2);
        // A fails, then B: both tried within the first window.
        assert!(top(&mut r) <= BASE && top(&mut r) <= BASE);
        // The second round waits within the doubled window.
        let d = top(&mut r);
        assert!(d > BASE && d <= BASE * 2, "{d:?}");
        for _ in 0..40 {
            assert!(top(&mut r) <= MAX);
        }
        r.reset();
        assert!(top(&mut r) <= BASE);
    }

    #[test]
    fn with_one_url_the_schedule_is_the_plain_backoff() {
        let mut plain = Backoff::default();
        let mut r = Retry::new(1);
        for i in 0..12u64 {
            let random = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(r.after_failure(random), plain.next_delay(random));
        }
    }
}
