//! Querier election (RFC 3376 6.6.2, RFC 2236 section 3) and the non-querier's part:
//! adopting the querier's robustness and interval (4.1.6, 4.1.7) and lowering timers on
//! its group-specific queries (6.6.1).

use core::time::Duration;
use std::time::Instant;

use mcgate_wire::Version;
use mcgate_wire::record::Address;

use crate::family::Query;
use crate::timers::Timer;
use crate::{Config, Event, Family, FilterMode, Router};

/// The other router currently elected querier (RFC 3376 6.6.2). Its version is not
/// kept: the link runs the configured version whatever other queriers speak (7.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtherQuerier<A> {
    pub(crate) address: A,
    /// Robustness and query interval it announced (4.1.6, 4.1.7), adopted while it is
    /// querier.
    robustness: Option<u8>,
    query_interval: Option<Duration>,
}

/// Lower wins the election (RFC 3376 6.6.2, RFC 3810 7.6.2: the lowest link-local
/// address, compared as a number). The unspecified address, the address of a router with
/// none of its own on the link (a proxy querier, RFC 4541 2.1.1), loses to any real
/// address.
pub(crate) fn election_key<F: Family>(a: F::Addr) -> u128 {
    if F::is_unspecified(a) {
        u128::MAX
    } else {
        let mut bytes = [0u8; 16];
        a.write(&mut bytes[16 - F::Addr::LEN..]);
        u128::from_be_bytes(bytes)
    }
}

impl<F: Family> Router<F> {
    /// A query from another router, on a link where other queriers may exist.
    pub(crate) fn on_query(&mut self, now: Instant, src: F::Addr, query: &Query<F::Addr>) {
        let version = query.version;
        let group = query.group;
        // An IGMPv1 query carries no response time to act on.
        let heard = (version > Version::V1).then_some(query);
        // Our own query looped back is not another router.
        if !F::is_unspecified(self.address) && src == self.address {
            return;
        }
        if version < self.config.version {
            // 7.3.1: the version is configuration; an older query is counted (the RFC's
            // warning) and never changes the version the link runs.
            self.stats.older_version_queries += 1;
            self.warn(now, src, crate::Ignored::OlderVersionQuery(version));
        }
        // 6.6.2: a query from a lower address than ours (and not higher than the
        // querier we already know) makes its sender the querier.
        let wins = election_key::<F>(src) < election_key::<F>(self.address)
            && self
                .other_querier
                .as_ref()
                .is_none_or(|q| election_key::<F>(src) <= election_key::<F>(q.address));
        if wins {
            self.elect(now, src, version, heard);
        }
        // 6.6.1: a non-querier lowers its timers on a group(-and-source)-specific query
        // without the S flag; RFC 2236 section 3: to Last Member Query Count times the
        // query's Max Response Time.
        let Some(h) = heard else { return };
        if self.is_querier() || h.suppress || F::is_unspecified(group) {
            return;
        }
        let lmqt = h.max_resp * u32::from(self.config.settings.last_member_count());
        let Some(mut state) = self.groups.get_mut(group, &mut self.timers) else {
            return;
        };
        let lowered = now + lmqt;
        if h.sources.is_empty() {
            if state.mode == FilterMode::Exclude {
                state.timer = state.timer.map(|t| t.min(lowered));
            }
        } else {
            for s in &h.sources {
                if let Some(src) = state.sources.get_mut(s) {
                    src.timer = src.timer.map(|t| t.min(lowered));
                }
            }
        }
    }

    /// `src` becomes the querier: we stop querying and follow its parameters.
    fn elect(
        &mut self,
        now: Instant,
        src: F::Addr,
        version: Version,
        heard: Option<&Query<F::Addr>>,
    ) {
        let was_querier = self.is_querier();
        let previous = self.querier();
        let (robustness, query_interval) = match heard {
            Some(h) if version == Version::V3 => (
                (h.qrv != 0).then_some(h.qrv),
                (!h.qqi.is_zero()).then_some(h.qqi),
            ),
            _ => (None, None),
        };
        let querier = OtherQuerier {
            address: src,
            robustness,
            query_interval,
        };
        let mut adopted = self.config.clone();
        querier.adopt(&mut adopted);
        self.timers.set(
            Timer::OtherQuerierPresent,
            now + adopted.other_querier_present_interval(),
        );
        self.other_querier = Some(querier);
        if was_querier {
            self.timers.stop(Timer::GeneralQuery);
            self.timers.stop(Timer::Recovery);
            self.flood_since = None;
            self.startup_left = 0;
            self.groups
                .for_each_mut(&mut self.timers, |_, state| state.cancel_queries());
        }
        if previous != Some(src) {
            self.events
                .push_back(Event::QuerierChanged { querier: Some(src) });
        }
    }

    /// 6.6.2: when the Other Querier Present timer expires, resume the role of querier.
    pub(crate) fn on_other_querier_expired(&mut self, t: Instant) {
        self.timers.stop(Timer::OtherQuerierPresent);
        self.resume_querier(t);
    }

    /// Becomes querier again, with a general query at `t`.
    pub(crate) fn resume_querier(&mut self, t: Instant) {
        self.other_querier = None;
        self.events
            .push_back(Event::QuerierChanged { querier: None });
        self.startup_left = 0;
        self.timers.set(Timer::GeneralQuery, t);
    }

    /// The parameters in use: ours, with the querier's robustness and query interval
    /// adopted while another router is querier (RFC 3376 4.1.6, 4.1.7).
    pub(crate) fn effective(&self) -> Config {
        let mut c = self.config.clone();
        if let Some(q) = &self.other_querier {
            q.adopt(&mut c);
        }
        c
    }

    /// Group Membership Interval in force (8.4).
    pub(crate) fn gmi(&self) -> Duration {
        self.effective().group_membership_interval()
    }
}

impl<A> OtherQuerier<A> {
    fn adopt(&self, c: &mut Config) {
        if let Some(r) = self.robustness {
            c.settings.robustness = r;
        }
        if let Some(qi) = self.query_interval {
            c.settings.query_interval_ms = u64::try_from(qi.as_millis()).unwrap_or(u64::MAX);
        }
    }
}
