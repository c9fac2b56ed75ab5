//! Host Compatibility Mode of the upstream interface (RFC 3376 section 7.2.1): an older
//! querier's query makes the proxy answer in that version until the Older Version
//! Querier Present Timeout (section 8.12) passes without another one.

use core::time::Duration;
use std::time::Instant;

use mcgate_wire::Version;

/// The querier's variables as last heard (RFC 3376 4.1.6, 4.1.7), which set the
/// timeout; the RFC's defaults until an IGMPv3 query says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuerierVariables {
    pub(crate) robustness: u32,
    pub(crate) query_interval: Duration,
    pub(crate) query_response_interval: Duration,
}

impl Default for QuerierVariables {
    fn default() -> Self {
        Self {
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
        }
    }
}

impl QuerierVariables {
    /// Older Version Querier Present Timeout: Robustness Variable times Query Interval
    /// plus one Query Response Interval (RFC 3376 8.12).
    pub(crate) fn older_querier_timeout(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval
    }
}

/// The two Older Version Querier Present timers.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostCompat {
    v1_until: Option<Instant>,
    v2_until: Option<Instant>,
}

impl HostCompat {
    /// The mode now: IGMPv1 while an IGMPv1 querier is present, else IGMPv2 while an
    /// IGMPv2 querier is, else IGMPv3 (RFC 3376 7.2.1).
    pub(crate) fn mode(&self, now: Instant) -> Version {
        if self.v1_until.is_some_and(|t| t > now) {
            Version::V1
        } else if self.v2_until.is_some_and(|t| t > now) {
            Version::V2
        } else {
            Version::V3
        }
    }

    /// A query of `version` was heard at `now`.
    pub(crate) fn heard(&mut self, now: Instant, version: Version, timeout: Duration) {
        match version {
            Version::V1 => self.v1_until = Some(now + timeout),
            Version::V2 => self.v2_until = Some(now + timeout),
            Version::V3 => {}
        }
    }

    /// The next time the mode may change by itself.
    pub(crate) fn next_expiry(&self, now: Instant) -> Option<Instant> {
        [self.v1_until, self.v2_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// Forgets expired timers.
    pub(crate) fn expire(&mut self, now: Instant) {
        for t in [&mut self.v1_until, &mut self.v2_until] {
            if t.is_some_and(|t| t <= now) {
                *t = None;
            }
        }
    }
}
