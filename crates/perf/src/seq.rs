//! Loss, duplicate and reordering accounting from sequence numbers, per sender.
//!
//! Loss is counted from the first datagram seen, so a receiver that joins late does not
//! count what was sent before it joined. A gap is counted as lost when a higher number
//! arrives; when a missing number arrives later it is counted out of order and taken back
//! out of the loss (so an interval's loss can be negative, as RTP's cumulative loss can,
//! RFC 3550 section 6.4.1). A bitmap of the last [`WINDOW`] numbers tells a duplicate from
//! a late arrival; anything older than that is counted out of order.

/// How many recent sequence numbers are remembered for duplicate detection.
pub const WINDOW: u64 = 1 << 16;
const WORDS: usize = (WINDOW / 64) as usize;

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next number or a later one (a gap before it counts as lost).
    InOrder,
    /// A number below the highest seen that had not arrived yet.
    OutOfOrder,
    /// A number that had already arrived.
    Duplicate,
}

/// Sequence-number state of one sender's stream.
#[derive(Clone)]
pub struct SeqTracker {
    started: bool,
    lowest: i64,
    highest: i64,
    seen: Box<[u64; WORDS]>,
    /// Datagrams missing (may go down when late ones arrive).
    pub lost: i64,
    /// Datagrams that arrived more than once.
    pub duplicates: u64,
    /// Datagrams that arrived after a higher-numbered one.
    pub out_of_order: u64,
    /// The stream's end-of-stream marker arrived (the sender said it is done).
    pub finished: bool,
}

impl std::fmt::Debug for SeqTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqTracker")
            .field("lowest", &self.lowest)
            .field("highest", &self.highest)
            .field("lost", &self.lost)
            .field("duplicates", &self.duplicates)
            .field("out_of_order", &self.out_of_order)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqTracker {
    /// A stream that has seen nothing yet.
    pub fn new() -> Self {
        Self {
            started: false,
            lowest: 0,
            highest: 0,
            seen: Box::new([0; WORDS]),
            lost: 0,
            duplicates: 0,
            out_of_order: 0,
            finished: false,
        }
    }

    fn slot(seq: i64) -> (usize, u64) {
        let bit = (seq as u64) % WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    fn test_and_set(&mut self, seq: i64) -> bool {
        let (w, m) = Self::slot(seq);
        let was = self.seen[w] & m != 0;
        self.seen[w] |= m;
        was
    }

    /// Moves the window's top to `to`, forgetting the numbers that fall out of it.
    fn advance(&mut self, to: i64) {
        let step = to.saturating_sub(self.highest);
        if step <= 0 {
            return;
        }
        if step as u64 >= WINDOW {
            self.seen.fill(0);
        } else {
            for s in self.highest + 1..=to {
                let (w, m) = Self::slot(s);
                self.seen[w] &= !m;
            }
        }
        self.highest = to;
    }

    /// Accounts for a data datagram with sequence number `seq` (non-negative).
    pub fn on_data(&mut self, seq: i64) -> Arrival {
        if !self.started {
            self.started = true;
            self.lowest = seq;
            self.highest = seq;
            self.test_and_set(seq);
            return Arrival::InOrder;
        }
        if seq > self.highest {
            self.lost += seq - self.highest - 1;
            self.advance(seq);
            self.test_and_set(seq);
            return Arrival::InOrder;
        }
        let in_window = (self.highest - seq) < WINDOW as i64;
        if in_window && self.test_and_set(seq) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.out_of_order += 1;
        if seq < self.lowest {
            // Sent before the first datagram we saw but overtaken by it: never counted
            // as lost, so nothing to take back; the stream now starts here.
            self.lowest = seq;
        } else {
            self.lost -= 1;
        }
        Arrival::OutOfOrder
    }

    /// Accounts for the end-of-stream marker `-(last + 1)`: datagrams after the highest
    /// one seen that never arrived are lost too.
    pub fn on_fin(&mut self, fin: i64) {
        let last = fin.unsigned_abs().saturating_sub(1).min(i64::MAX as u64) as i64;
        if self.finished {
            return;
        }
        self.finished = true;
        if self.started && last > self.highest {
            self.lost += last - self.highest;
            self.advance(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[i64]) -> SeqTracker {
        let mut t = SeqTracker::new();
        for &s in seqs {
            if s < 0 {
                t.on_fin(s);
            } else {
                t.on_data(s);
            }
        }
        t
    }

    #[test]
    fn clean_stream() {
        let t = feed(&[1, 2, 3, 4, -5]);
        assert_eq!((t.lost, t.duplicates, t.out_of_order), (0, 0, 0));
        assert!(t.finished);
    }

    #[test]
    fn late_join_is_not_loss() {
        let t = feed(&[1000, 1001, 1002]);
        assert_eq!(t.lost, 0);
    }

    #[test]
    fn gaps_are_lost_and_the_fin_reveals_lost_tail() {
        let t = feed(&[1, 2, 5, 6, -10]);
        // 3, 4 missing; 7, 8, 9 never came.
        assert_eq!(t.lost, 5);
    }

    #[test]
    fn reordering_is_not_loss() {
        let t = feed(&[1, 3, 2, 4, 6, 5, -7]);
        assert_eq!((t.lost, t.out_of_order, t.duplicates), (0, 2, 0));
    }

    #[test]
    fn duplicates_are_counted_once_each() {
        let t = feed(&[1, 1, 2, 3, 3, 3, 2]);
        assert_eq!((t.lost, t.out_of_order, t.duplicates), (0, 0, 4));
    }

    #[test]
    fn reorder_across_the_first_datagram() {
        // Joined as 11 arrived, 10 overtaken by it: out of order, not loss.
        let t = feed(&[11, 10, 12]);
        assert_eq!((t.lost, t.out_of_order), (0, 1));
        // ... and 10 again is a duplicate.
        let t = feed(&[11, 10, 10]);
        assert_eq!(t.duplicates, 1);
    }

    #[test]
    fn data_after_fin_still_fills_gaps() {
        let t = feed(&[1, 2, -5, 4, 3]);
        assert_eq!((t.lost, t.out_of_order), (0, 2));
    }

    #[test]
    fn huge_jump_and_window_wrap() {
        let mut t = SeqTracker::new();
        t.on_data(1);
        t.on_data(1 + 3 * WINDOW as i64);
        assert_eq!(t.lost, 3 * WINDOW as i64 - 1);
        // Too old to tell: counted as a late arrival.
        assert_eq!(t.on_data(2), Arrival::OutOfOrder);
        // Within the window, fresh bits: not a duplicate.
        assert_eq!(t.on_data(3 * WINDOW as i64), Arrival::OutOfOrder);
        assert_eq!(t.on_data(3 * WINDOW as i64), Arrival::Duplicate);
    }

    #[test]
    fn hostile_numbers_do_not_panic() {
        let mut t = SeqTracker::new();
        for s in [0, i64::MAX, 0, 1, i64::MAX - 1, i64::MAX, 5] {
            t.on_data(s);
        }
        t.on_fin(i64::MIN);
        t.on_fin(-1);
        let mut u = SeqTracker::new();
        u.on_fin(i64::MIN);
        u.on_data(i64::MAX);
        assert!(t.lost >= 0 && u.lost == 0);
    }

    #[test]
    fn random_permutations_with_drops_and_dups_are_exact() {
        // Deterministic pseudo-random stream: drop ~10%, duplicate ~5%, local reorder.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 20_000i64;
        let mut arrivals = Vec::new();
        let mut dropped = 0;
        let mut dups = 0;
        for s in 1..=n {
            let r = rnd() % 100;
            if r < 10 && s != 1 && s != n {
                dropped += 1;
                continue;
            }
            arrivals.push(s);
            if r >= 95 {
                arrivals.push(s);
                dups += 1;
            }
        }
        for i in (1..arrivals.len() - 1).step_by(7) {
            arrivals.swap(i, i + 1);
        }
        let mut t = SeqTracker::new();
        for &s in &arrivals {
            t.on_data(s);
        }
        t.on_fin(-(n + 1));
        assert_eq!(t.lost, dropped);
        assert_eq!(t.duplicates, dups);
    }
}
