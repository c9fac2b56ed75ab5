//! The controller session's liveness decisions, without I/O and without a clock: how
//! often to heartbeat and how long to wait for each one, and what a failed heartbeat or
//! membership report means for the session.
//!
//! Heartbeats run on their own connection, apart from membership reports, so a slow
//! report (a large snapshot on a loaded controller) never holds up the lease renewal.

use std::time::{Duration, Instant};

/// Shortest heartbeat interval accepted from the controller.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest heartbeat interval accepted from the controller.
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest time a heartbeat is given to be answered (within half the lease): a
/// short interval must not make a loaded controller's answers count as failures.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// When to heartbeat and how long each heartbeat may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatTiming {
    /// Time between heartbeats: the controller's `heartbeat_ms`, kept within
    /// 100 ms..=60 s.
    pub interval: Duration,
    /// How long one heartbeat may go unanswered before it is given up (and the next one
    /// sent on a fresh connection): the interval, but at least 1 s, and at most half the
    /// lease, so an unanswered heartbeat never delays the next one past the lease.
    pub timeout: Duration,
    /// The lease: the controller drops the session when no heartbeat reached it for
    /// this long.
    pub lease: Duration,
}

impl HeartbeatTiming {
    /// The timing for a registration reply's `lease_ms` and `heartbeat_ms`.
    pub fn new(lease_ms: u64, heartbeat_ms: u64) -> Self {
        let lease = Duration::from_millis(lease_ms.max(1));
        let interval = Duration::from_millis(heartbeat_ms).clamp(MIN_INTERVAL, MAX_INTERVAL);
        let timeout = interval
            .max(MIN_TIMEOUT)
            .min(lease / 2)
            .max(Duration::from_millis(1));
        Self {
            interval,
            timeout,
            lease,
        }
    }
}

/// How one heartbeat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The controller renewed the lease.
    Renewed,
    /// The controller no longer knows the session (404/409: lease expired, restarted).
    SessionLost,
    /// No answer within the timeout, or the connection failed.
    NoAnswer,
}

/// What the session does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The session stands.
    Keep,
    /// Register again and resend the snapshot.
    Register,
}

/// The lease as the agent sees it: when the controller last renewed it.
#[derive(Debug, Clone)]
pub struct Liveness {
    timing: HeartbeatTiming,
    renewed: Instant,
}

impl Liveness {
    /// A session registered at `now` (registration starts the lease).
    pub fn new(timing: HeartbeatTiming, now: Instant) -> Self {
        Self {
            timing,
            renewed: now,
        }
    }

    /// The timing in use.
    pub fn timing(&self) -> HeartbeatTiming {
        self.timing
    }

    /// Takes the outcome of a heartbeat that ended at `now`. A heartbeat that went
    /// unanswered is not a reason to register again while the lease may still run: the
    /// next one may get through. Once a whole lease passed without a renewal the
    /// controller has dropped the session, so the agent registers again at once.
    pub fn heartbeat(&mut self, now: Instant, outcome: HeartbeatOutcome) -> Verdict {
        match outcome {
            HeartbeatOutcome::Renewed => {
                self.renewed = now;
                Verdict::Keep
            }
            HeartbeatOutcome::SessionLost => Verdict::Register,
            HeartbeatOutcome::NoAnswer
                if now.saturating_duration_since(self.renewed) >= self.timing.lease =>
            {
                Verdict::Register
            }
            HeartbeatOutcome::NoAnswer => Verdict::Keep,
        }
    }
}

/// What a failed membership report means: registering again only when the controller
/// said the session is gone. A report that was slow or failed on the way leaves the
/// session to the heartbeats; the agent resends its whole membership as a snapshot in
/// the same session (a higher `seq`, so a late copy of the failed report is ignored).
pub fn after_report_failure(session_lost: bool) -> ReportVerdict {
    if session_lost {
        ReportVerdict::Register
    } else {
        ReportVerdict::Resnapshot
    }
}

/// What the session does after a failed membership report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportVerdict {
    /// Register again and resend the snapshot.
    Register,
    /// Resend the whole membership as a snapshot in this session.
    Resnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn heartbeat_timeout_is_shorter_than_the_lease() {
        let t = HeartbeatTiming::new(3_000, 1_000);
        assert_eq!(
            (t.interval, t.timeout, t.lease),
            (ms(1_000), ms(1_000), ms(3_000))
        );
        // A short interval still gives each heartbeat a second to be answered.
        let t = HeartbeatTiming::new(3_000, 250);
        assert_eq!((t.interval, t.timeout), (ms(250), ms(1_000)));
        // A heartbeat interval as long as the lease still times out within half of it.
        let t = HeartbeatTiming::new(3_000, 5_000);
        assert_eq!((t.interval, t.timeout), (ms(5_000), ms(1_500)));
        // Out-of-range intervals are clamped.
        assert_eq!(HeartbeatTiming::new(3_000, 0).interval, ms(100));
        assert_eq!(HeartbeatTiming::new(600_000, u64::MAX).interval, ms(60_000));
        let t = HeartbeatTiming::new(0, 0);
        assert!(t.timeout > Duration::ZERO && t.timeout <= t.lease);
    }

    #[test]
    fn unanswered_heartbeats_keep_the_session_until_the_lease_runs_out() {
        let t0 = Instant::now();
        let mut live = Liveness::new(HeartbeatTiming::new(3_000, 1_000), t0);
        assert_eq!(
            live.heartbeat(t0 + ms(1_000), HeartbeatOutcome::NoAnswer),
            Verdict::Keep
        );
        assert_eq!(
            live.heartbeat(t0 + ms(2_000), HeartbeatOutcome::Renewed),
            Verdict::Keep
        );
        // The lease counts from the last renewal, not from registration.
        assert_eq!(
            live.heartbeat(t0 + ms(4_999), HeartbeatOutcome::NoAnswer),
            Verdict::Keep
        );
        assert_eq!(
            live.heartbeat(t0 + ms(5_000), HeartbeatOutcome::NoAnswer),
            Verdict::Register
        );
    }

    #[test]
    fn a_lost_session_registers_again_at_once() {
        let t0 = Instant::now();
        let mut live = Liveness::new(HeartbeatTiming::new(3_000, 1_000), t0);
        assert_eq!(
            live.heartbeat(t0 + ms(1), HeartbeatOutcome::SessionLost),
            Verdict::Register
        );
    }

    #[test]
    fn a_slow_report_resends_the_snapshot_without_registering() {
        assert_eq!(after_report_failure(false), ReportVerdict::Resnapshot);
        assert_eq!(after_report_failure(true), ReportVerdict::Register);
    }
}
