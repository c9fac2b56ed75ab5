//! Reports and leaves: flood admission per reporting host, the compatibility
//! translation of RFC 3376 7.3.2, and the transitions of 6.4 with the queries they ask
//! for (6.6.3).

use std::collections::BTreeSet;
use std::time::Instant;

use mcgate_wire::Version;
use mcgate_wire::record::{Record as WireRecord, RecordType};

use crate::group::{Group, Record};
use crate::interface::{MAX_GROUPS, MAX_SOURCES, MAX_SOURCES_PER_GROUP};
use crate::{Family, FilterMode, Router};

fn record_kind(kind: RecordType) -> Option<Record> {
    Some(match kind {
        RecordType::ModeIsInclude => Record::IsIn,
        RecordType::ModeIsExclude => Record::IsEx,
        RecordType::ChangeToInclude => Record::ToIn,
        RecordType::ChangeToExclude => Record::ToEx,
        RecordType::AllowNewSources => Record::Allow,
        RecordType::BlockOldSources => Record::Block,
        RecordType::Unknown(_) => return None,
    })
}

impl<F: Family> Router<F> {
    /// Runs `handle` on a report (or leave) from `src` if the host is within its flood
    /// limit; otherwise counts the drop and schedules the recovery query.
    pub(crate) fn on_report(&mut self, now: Instant, src: F::Addr, handle: impl FnOnce(&mut Self)) {
        if self.limiter.admit(src, now) {
            handle(self);
        } else {
            self.stats.dropped.rate_limited += 1;
            self.schedule_recovery(now);
        }
    }

    /// Checks a report's group; false (and counted) when it carries no membership.
    fn group_ok(&mut self, group: F::Addr) -> bool {
        if !F::is_multicast(group) {
            self.stats.dropped.invalid_group += 1;
            false
        } else if F::is_link_scope(group) {
            // RFC 3376 section 5: hosts never report 224.0.0.0/24. RFC 3810 section 6:
            // link-scope addresses (ff02::1:ffXX:XXXX too) carry no router state.
            self.stats.ignored_link_local += 1;
            false
        } else {
            true
        }
    }

    /// 7.3.2: an IGMPv1 or v2 report sets the group's older-host-present timer and
    /// counts as IS_EX({}).
    pub(crate) fn on_old_report(
        &mut self,
        now: Instant,
        src: F::Addr,
        group: F::Addr,
        version: Version,
    ) {
        if !self.group_ok(group) {
            return;
        }
        let gmi = self.gmi();
        let Some(mut state) = self.group_entry(group) else {
            return;
        };
        // 8.13: Older Version Host Present Timeout = Group Membership Interval.
        if version == Version::V1 {
            state.v1_host = Some(now + gmi);
        } else {
            state.v2_host = Some(now + gmi);
        }
        state.track_reporter(src, Record::IsEx, &BTreeSet::new(), None);
        drop(state);
        self.apply(now, src, group, Record::IsEx, &BTreeSet::new());
    }

    /// An IGMPv2 leave: TO_IN({}) (7.3.2), ignored while an IGMPv1 host is present
    /// (7.3.2; RFC 2236 section 4).
    pub(crate) fn on_leave(&mut self, now: Instant, src: F::Addr, group: F::Addr) {
        if !self.group_ok(group) {
            return;
        }
        let version = self.version();
        let Some(mut state) = self.groups.get_mut(group, &mut self.timers) else {
            return;
        };
        state.track_reporter(src, Record::ToIn, &BTreeSet::new(), None);
        let ignored = state.compat().min(version) == Version::V1;
        drop(state);
        if ignored {
            return;
        }
        self.apply(now, src, group, Record::ToIn, &BTreeSet::new());
    }

    pub(crate) fn on_record(&mut self, now: Instant, src: F::Addr, r: &WireRecord<F::Addr>) {
        let Some(kind) = record_kind(r.kind) else {
            // 4.2.12: records of unknown types are ignored.
            self.stats.ignored_records += 1;
            return;
        };
        if !self.group_ok(r.group) {
            return;
        }
        let sources: BTreeSet<F::Addr> = r.sources.iter().copied().collect();
        let version = self.version();
        let compat = self
            .groups
            .get(r.group)
            .map_or(Version::V3, Group::compat)
            .min(version);
        let translated = if version <= Version::V2 {
            // An IGMPv2 router (RFC 2236) knows only join and leave: a record that
            // leaves every source is a leave (ignored while IGMPv1 hosts are present,
            // RFC 2236 section 4), any other wish is a join of all sources.
            match kind {
                Record::ToIn if sources.is_empty() => {
                    (compat > Version::V1).then(|| (Record::ToIn, BTreeSet::new()))
                }
                Record::IsIn if sources.is_empty() => None,
                Record::Block => None,
                _ => Some((Record::IsEx, BTreeSet::new())),
            }
        } else {
            // 7.3.2: with older hosts present, BLOCK is ignored and TO_EX loses its
            // source list; with IGMPv1 hosts, TO_IN is ignored too.
            match (compat, kind) {
                (Version::V1 | Version::V2, Record::Block) => None,
                (Version::V1 | Version::V2, Record::ToEx) => Some((Record::ToEx, BTreeSet::new())),
                (Version::V1, Record::ToIn) => None,
                _ => Some((kind, sources.clone())),
            }
        };
        let creates = matches!(
            translated,
            Some((
                Record::IsIn | Record::Allow | Record::IsEx | Record::ToEx,
                _
            ))
        ) || matches!(&translated, Some((Record::ToIn, s)) if !s.is_empty());
        let expires = Some(now + self.gmi());
        let total = self.groups.total_sources();
        if !self.groups.contains(r.group) && !creates {
            return;
        }
        let Some(mut state) = self.group_entry(r.group) else {
            return;
        };
        state.track_reporter(src, kind, &sources, expires);
        let room = state.sources.len().saturating_add(sources.len()) <= MAX_SOURCES_PER_GROUP
            && total.saturating_add(sources.len()) <= MAX_SOURCES;
        drop(state);
        match translated {
            Some((record, sources)) if room => self.apply(now, src, r.group, record, &sources),
            Some(_) => self.stats.dropped.state_limit += 1,
            None => {}
        }
        self.reap(r.group);
    }

    /// The state of `group`, created (INCLUDE {}) when absent and the table has room.
    fn group_entry(&mut self, group: F::Addr) -> Option<crate::group_table::GroupMut<'_, F>> {
        if !self.groups.contains(group) && self.groups.len() >= MAX_GROUPS {
            self.stats.dropped.state_limit += 1;
            return None;
        }
        Some(self.groups.entry(group, &mut self.timers))
    }

    /// Runs a transition of 6.4 and the queries it asks for (6.6.3).
    fn apply(
        &mut self,
        now: Instant,
        src: F::Addr,
        group: F::Addr,
        record: Record,
        sources: &BTreeSet<F::Addr>,
    ) {
        let gmi = self.gmi();
        let fast_leave = self.config.settings.fast_leave;
        let is_querier = self.is_querier();
        let Some(mut state) = self.groups.get_mut(group, &mut self.timers) else {
            return;
        };
        let actions = state.apply(record, sources, now, gmi);
        // Fast leave: with no other member known, what the queries would ask about is
        // treated as already timed out, at once and with no query sent.
        let alone = state.reporters.keys().all(|r| *r == src);
        if fast_leave && alone {
            for s in &actions.query_sources {
                match state.mode {
                    FilterMode::Include => {
                        state.sources.remove(s);
                    }
                    FilterMode::Exclude => {
                        if let Some(s) = state.sources.get_mut(s) {
                            s.timer = None;
                            s.retransmit = 0;
                        }
                    }
                }
            }
            if actions.query_group && state.mode == FilterMode::Exclude {
                state.timer = Some(now);
            }
            drop(state);
        } else {
            drop(state);
            if is_querier {
                self.send_queries(group, now, actions);
            }
        }
        self.reap(group);
    }
}
