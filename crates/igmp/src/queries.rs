//! The queries this router sends as querier: general queries (startup, periodic and
//! flood recovery; RFC 3376 6.6.2, 8.6, 8.7), group-specific Q(G) (6.6.3.1) and
//! group-and-source-specific Q(G,X) (6.6.3.2), in IGMPv3 or IGMPv2 form, and their MLD
//! counterparts (RFC 3810 sections 6 and 7), encoded by the family.

use core::time::Duration;
use std::collections::BTreeSet;
use std::time::Instant;

use mcgate_wire::Version;

use crate::family::{Message, Query};
use crate::group::Actions;
use crate::timers::Timer;
use crate::{Family, FilterMode, Router, Transmit};

/// A flood is over once no report has been dropped for this long; the recovery query
/// goes out then.
pub(crate) const RECOVERY_QUIET: Duration = Duration::from_secs(1);

/// The last-member timing of section 6.6.3, read from the settings once per query.
struct LastMember {
    /// Last Member Query Time.
    lmqt: Duration,
    /// Last Member Query Interval.
    lmqi: Duration,
    /// Last Member Query Count.
    count: u8,
}
/// A flood that goes on is answered with a recovery query at least this often, so a
/// host that keeps flooding cannot hold back the recovery of the others.
pub(crate) const RECOVERY_MAX_DELAY: Duration = Duration::from_secs(5);

impl<F: Family> Router<F> {
    pub(crate) fn on_general_query_timer(&mut self, t: Instant, now: Instant) {
        // 6.6.2 / 8.6 / 8.7: Startup Query Count queries at the Startup Query Interval,
        // then one every Query Interval.
        let startup = self.startup_left > 0;
        let resp = if startup {
            self.config.startup_query_response_interval()
        } else {
            self.config.query_response_interval()
        };
        self.send_general_query(resp);
        self.startup_left = self.startup_left.saturating_sub(1);
        let gap = if self.startup_left > 0 {
            self.config.settings.startup_query_interval()
        } else {
            self.config.query_interval()
        };
        let mut next = t + gap;
        if next <= now {
            next = now + gap;
        }
        self.timers.set(Timer::GeneralQuery, next);
    }

    /// Reports were dropped over a flood limit: once the flood is over, a general query
    /// makes every host report its groups again, so no membership is lost for long.
    /// Only the querier may send it; elsewhere the querier's next query recovers them.
    pub(crate) fn schedule_recovery(&mut self, now: Instant) {
        if !self.is_querier() {
            return;
        }
        let since = *self.flood_since.get_or_insert(now);
        let at = (now + RECOVERY_QUIET).min(since + RECOVERY_MAX_DELAY);
        self.timers.set(Timer::Recovery, at);
    }

    pub(crate) fn on_recovery_timer(&mut self, _t: Instant) {
        self.timers.stop(Timer::Recovery);
        self.flood_since = None;
        self.stats.sent.recovery_queries += 1;
        self.send_general_query(self.config.query_response_interval());
    }

    pub(crate) fn send_queries(&mut self, group: F::Addr, now: Instant, actions: Actions<F>) {
        if !actions.query_sources.is_empty() {
            self.send_source_query(group, now, Some(&actions.query_sources));
        }
        if actions.query_group {
            self.send_group_query(group, now, true);
        }
    }

    /// Called when the configured version changed: below 3 source lists mean nothing,
    /// so every group becomes any-source (7.3.1).
    pub(crate) fn version_changed(&mut self, old: Version) {
        let new = self.version();
        if new < Version::V3 && old >= Version::V3 {
            self.groups
                .for_each_mut(&mut self.timers, |_, state| state.downgrade());
            let all: Vec<F::Addr> = self.groups.iter().map(|(g, _)| g).collect();
            for g in all {
                self.reap(g);
            }
        }
        if new != old {
            self.groups.mark_all();
        }
    }

    fn queue(&mut self, query: Query<F::Addr>) {
        let (dst, message, packet) = F::emit(self.address, Message::Query(query));
        self.transmits.push_back(Transmit {
            dst,
            packet,
            message,
        });
    }

    /// A query of `group` in the link's version; a version below 3 (IGMPv2, MLDv1) has
    /// no S flag, QRV, QQIC or sources, and the family leaves them out.
    fn query(
        &self,
        group: F::Addr,
        resp: Duration,
        suppress: bool,
        sources: Vec<F::Addr>,
    ) -> Query<F::Addr> {
        Query {
            version: self.version(),
            group,
            max_resp: resp,
            suppress,
            qrv: self.config.settings.robustness,
            qqi: self.config.query_interval(),
            sources,
        }
    }

    /// The last-member timing of 6.6.3: LMQT, LMQI and Last Member Query Count.
    fn last_member(&self) -> LastMember {
        LastMember {
            lmqt: self.config.last_member_query_time(),
            lmqi: self.config.settings.last_member_interval(),
            count: self.config.settings.last_member_count(),
        }
    }

    /// 6.6.2 / RFC 2236 section 3: a general query to 224.0.0.1 with Max Resp Time
    /// `resp`.
    fn send_general_query(&mut self, resp: Duration) {
        let msg = self.query(F::UNSPECIFIED, resp, false, Vec::new());
        self.stats.sent.general_queries += 1;
        self.queue(msg);
    }

    /// 6.6.3.1: Q(G). The first lowers the group timer to LMQT and owes Last Member
    /// Query Count - 1 retransmissions every LMQI; each carries the S flag when the
    /// group timer is above LMQT (a report raised it since).
    pub(crate) fn send_group_query(&mut self, group: F::Addr, now: Instant, first: bool) {
        let LastMember { lmqt, lmqi, count } = self.last_member();
        let Some(mut state) = self.groups.get_mut(group, &mut self.timers) else {
            return;
        };
        if first {
            if state.mode == FilterMode::Exclude {
                state.timer = state.timer.map(|t| t.min(now + lmqt));
            }
            state.group_query_left = count;
        }
        if state.group_query_left == 0 {
            state.group_query_next = None;
            return;
        }
        let suppress = state.timer.is_some_and(|t| t > now + lmqt);
        state.group_query_left -= 1;
        state.group_query_next = (state.group_query_left > 0).then(|| now + lmqi);
        drop(state);
        let msg = self.query(group, lmqi, suppress, Vec::new());
        self.stats.sent.group_queries += 1;
        self.queue(msg);
    }

    /// 6.6.3.2: Q(G,X). Sources of X with a timer above LMQT get their timer lowered to
    /// LMQT and Last Member Query Count retransmissions. Each round sends up to two
    /// queries: S set for sources whose timer is above LMQT again, S clear for the rest.
    pub(crate) fn send_source_query(
        &mut self,
        group: F::Addr,
        now: Instant,
        x: Option<&BTreeSet<F::Addr>>,
    ) {
        let LastMember { lmqt, lmqi, count } = self.last_member();
        let version = self.version();
        let Some(mut state) = self.groups.get_mut(group, &mut self.timers) else {
            return;
        };
        if let Some(x) = x {
            for s in x {
                if let Some(src) = state.sources.get_mut(s)
                    && src.timer.is_some_and(|t| t > now + lmqt)
                {
                    src.timer = Some(now + lmqt);
                    src.retransmit = count;
                }
            }
        }
        let mut with_s = Vec::new();
        let mut without_s = Vec::new();
        for (a, s) in state.sources.iter_mut() {
            if s.retransmit == 0 {
                continue;
            }
            s.retransmit -= 1;
            if s.timer.is_some_and(|t| t > now + lmqt) {
                with_s.push(*a);
            } else {
                without_s.push(*a);
            }
        }
        state.source_query_next = state
            .sources
            .values()
            .any(|s| s.retransmit > 0)
            .then(|| now + lmqi);
        drop(state);
        // IGMPv1/v2 and MLDv1 queries cannot carry sources; the group then falls back to its
        // timers alone.
        if version < Version::V3 {
            return;
        }
        for (suppress, sources) in [(true, with_s), (false, without_s)] {
            if !sources.is_empty() {
                let msg = self.query(group, lmqi, suppress, sources);
                self.stats.sent.group_source_queries += 1;
                self.queue(msg);
            }
        }
    }
}
