//! The interface's timer table (in the manner of quinn-proto's): every timer the
//! interface runs has one entry, set, stopped and read through [`TimerTable`], and the
//! next to fire is found in O(log n).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::Family;

/// The kinds of timer an interface runs. The order is the firing order of timers due at
/// the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer<F: Family> {
    /// Next general query, startup or periodic (RFC 3376 6.6.2, 8.2, 8.6).
    GeneralQuery,
    /// Other Querier Present timer (6.6.2, 8.5).
    OtherQuerierPresent,
    /// The general query that recovers reports dropped by flood protection.
    Recovery,
    /// The earliest timer of a group: group, source, older-host-present, reporter or
    /// query retransmission (6.2.1, 6.6.3, 7.3.2).
    Group(F::Addr),
}

/// Each timer's deadline, indexed by time.
#[derive(Debug, Clone)]
pub(crate) struct TimerTable<F: Family> {
    deadlines: BTreeMap<Timer<F>, Instant>,
    order: BTreeSet<(Instant, Timer<F>)>,
}

impl<F: Family> Default for TimerTable<F> {
    fn default() -> Self {
        Self {
            deadlines: BTreeMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<F: Family> TimerTable<F> {
    /// Sets `timer` to fire at `at`, replacing any earlier setting.
    pub(crate) fn set(&mut self, timer: Timer<F>, at: Instant) {
        if let Some(old) = self.deadlines.insert(timer, at) {
            self.order.remove(&(old, timer));
        }
        self.order.insert((at, timer));
    }

    /// Stops `timer`; a stopped timer never fires.
    pub(crate) fn stop(&mut self, timer: Timer<F>) {
        if let Some(old) = self.deadlines.remove(&timer) {
            self.order.remove(&(old, timer));
        }
    }

    /// Sets `timer` to `at`, or stops it when `None`.
    pub(crate) fn set_or_stop(&mut self, timer: Timer<F>, at: Option<Instant>) {
        match at {
            Some(at) => self.set(timer, at),
            None => self.stop(timer),
        }
    }

    /// When `timer` fires, if it runs.
    pub(crate) fn get(&self, timer: Timer<F>) -> Option<Instant> {
        self.deadlines.get(&timer).copied()
    }

    /// The next timer to fire and when.
    pub(crate) fn next(&self) -> Option<(Instant, Timer<F>)> {
        self.order.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use core::time::Duration;

    use crate::Igmp;

    #[test]
    fn set_stop_next() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let g = Timer::<Igmp>::Group(Ipv4Addr::new(239, 1, 1, 1));
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(g, t0 + s);
        t.set(Timer::GeneralQuery, t0 + 2 * s);
        assert_eq!(t.next(), Some((t0 + s, g)));
        // Setting again moves the timer rather than adding a second deadline.
        t.set(g, t0 + 3 * s);
        assert_eq!(t.next(), Some((t0 + 2 * s, Timer::GeneralQuery)));
        t.stop(Timer::GeneralQuery);
        assert_eq!(t.next(), Some((t0 + 3 * s, g)));
        assert_eq!(t.get(Timer::GeneralQuery), None);
        // Timers due together fire in the order of their kinds.
        t.set(Timer::OtherQuerierPresent, t0 + 3 * s);
        assert_eq!(t.next(), Some((t0 + 3 * s, Timer::OtherQuerierPresent)));
        t.set_or_stop(g, None);
        t.set_or_stop(Timer::OtherQuerierPresent, None);
        assert_eq!(t.next(), None);
    }
}
