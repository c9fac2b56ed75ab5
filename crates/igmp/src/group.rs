//! The router's state for one group (RFC 3376 6.2.1) and its transitions on reports
//! (6.4.1, 6.4.2) and timer expiry (6.3, 6.5).
//!
//! A timer is a deadline; "timer > 0" means a deadline after now, "0" is `None`. The
//! interface processes every deadline that is due before it looks at a group, so a
//! `Some` deadline is always in the future when a transition runs.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use mcgate_wire::Version;

use crate::{Family, FilterMode, SourceFilter};

/// The six group record types of RFC 3376 4.2.12, as the transition tables name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// MODE_IS_INCLUDE, IS_IN.
    IsIn,
    /// MODE_IS_EXCLUDE, IS_EX.
    IsEx,
    /// CHANGE_TO_INCLUDE_MODE, TO_IN.
    ToIn,
    /// CHANGE_TO_EXCLUDE_MODE, TO_EX.
    ToEx,
    /// ALLOW_NEW_SOURCES, ALLOW.
    Allow,
    /// BLOCK_OLD_SOURCES, BLOCK.
    Block,
}

/// Per-source state: the source timer and the query retransmissions still owed
/// (RFC 3376 6.6.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) timer: Option<Instant>,
    pub(crate) retransmit: u8,
}

/// A host that reported the group, with the filter it last stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reporter<F: Family> {
    pub(crate) filter: SourceFilter<F::Addr>,
    /// IGMPv3 hosts never suppress their reports, so one silent for a whole Group
    /// Membership Interval is gone. IGMPv1/v2 hosts suppress reports when another member
    /// answers first, so they carry no expiry and leave with a Leave or with the group.
    pub(crate) expires: Option<Instant>,
}

/// What a transition asks the querier to send: "Send Q(G)" and "Send Q(G,X)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actions<F: Family> {
    pub(crate) query_group: bool,
    pub(crate) query_sources: BTreeSet<F::Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group<F: Family> {
    pub(crate) mode: FilterMode,
    /// Group timer (6.2.2); only runs in EXCLUDE mode.
    pub(crate) timer: Option<Instant>,
    pub(crate) sources: BTreeMap<F::Addr, Source>,
    /// Older Version Host Present timers (7.3.2).
    pub(crate) v1_host: Option<Instant>,
    pub(crate) v2_host: Option<Instant>,
    pub(crate) reporters: BTreeMap<F::Addr, Reporter<F>>,
    /// Group-specific query retransmissions still owed (6.6.3.1) and when the next is due.
    pub(crate) group_query_left: u8,
    pub(crate) group_query_next: Option<Instant>,
    /// When the next group-and-source-specific retransmission is due (6.6.3.2).
    pub(crate) source_query_next: Option<Instant>,
}

impl<F: Family> Default for Actions<F> {
    fn default() -> Self {
        Self {
            query_group: false,
            query_sources: BTreeSet::new(),
        }
    }
}

impl<F: Family> Group<F> {
    /// A group with no state is INCLUDE {} (RFC 3376 6.2.1: "no record" is the same).
    pub(crate) fn new() -> Self {
        Self {
            mode: FilterMode::Include,
            timer: None,
            sources: BTreeMap::new(),
            v1_host: None,
            v2_host: None,
            reporters: BTreeMap::new(),
            group_query_left: 0,
            group_query_next: None,
            source_query_next: None,
        }
    }

    /// Group Compatibility Mode (7.3.2): the oldest host version heard recently.
    pub(crate) fn compat(&self) -> Version {
        if self.v1_host.is_some() {
            Version::V1
        } else if self.v2_host.is_some() {
            Version::V2
        } else {
            Version::V3
        }
    }

    /// INCLUDE {} with nothing pending: the router keeps no state for it.
    pub(crate) fn is_dead(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }

    /// The forwarding state (6.3). `version` is the lowest version in use for the
    /// group; below 3 an EXCLUDE group means any source (7.3.2).
    pub(crate) fn filter(&self, version: Version) -> Option<SourceFilter<F::Addr>> {
        match self.mode {
            FilterMode::Include if self.sources.is_empty() => None,
            FilterMode::Include => Some(SourceFilter::include(self.sources.keys().copied())),
            FilterMode::Exclude if version.min(self.compat()) < Version::V3 => {
                Some(SourceFilter::any_source())
            }
            FilterMode::Exclude => Some(SourceFilter::exclude(self.blocked())),
        }
    }

    pub(crate) fn reporter_list(&self) -> Vec<F::Addr> {
        self.reporters.keys().copied().collect()
    }

    /// X in EXCLUDE mode: sources with a running timer (still forwarded).
    pub(crate) fn requested(&self) -> BTreeSet<F::Addr> {
        self.sources_with_timer(true)
    }

    /// Y in EXCLUDE mode: sources whose timer is 0 (blocked).
    pub(crate) fn blocked(&self) -> BTreeSet<F::Addr> {
        self.sources_with_timer(false)
    }

    fn sources_with_timer(&self, running: bool) -> BTreeSet<F::Addr> {
        self.sources
            .iter()
            .filter(|(_, s)| s.timer.is_some() == running)
            .map(|(a, _)| *a)
            .collect()
    }

    fn all(&self) -> BTreeSet<F::Addr> {
        self.sources.keys().copied().collect()
    }

    fn set_timer(&mut self, source: F::Addr, timer: Option<Instant>) {
        self.sources.entry(source).or_default().timer = timer;
    }

    /// Applies one record (after the compatibility translation of 7.3.2) to the state,
    /// returning the queries the tables ask for. `gmi` is the Group Membership Interval.
    pub(crate) fn apply(
        &mut self,
        record: Record,
        b: &BTreeSet<F::Addr>,
        now: Instant,
        gmi: Duration,
    ) -> Actions<F> {
        use FilterMode::{Exclude, Include};
        use Record::*;
        let gmi_at = Some(now + gmi);
        let mut actions = Actions::default();
        match (self.mode, record) {
            // 6.4.1 / 6.4.2: INCLUDE (A) + IS_IN (B) or ALLOW (B) -> INCLUDE (A+B); (B)=GMI.
            (Include, IsIn | Allow) => {
                for s in b {
                    self.set_timer(*s, gmi_at);
                }
            }
            // 6.4.1 INCLUDE (A) + IS_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0, Delete (A-B),
            // Group Timer=GMI.  6.4.2 TO_EX (B): the same, and Send Q(G,A*B).
            (Include, IsEx | ToEx) => {
                let a = self.all();
                for s in a.difference(b) {
                    self.sources.remove(s);
                }
                for s in b.difference(&a) {
                    self.set_timer(*s, None);
                }
                self.mode = Exclude;
                self.timer = gmi_at;
                if record == ToEx {
                    actions.query_sources = a.intersection(b).copied().collect();
                }
            }
            // 6.4.2 INCLUDE (A) + BLOCK (B) -> INCLUDE (A); Send Q(G,A*B).
            (Include, Block) => {
                actions.query_sources = self.all().intersection(b).copied().collect();
            }
            // 6.4.2 INCLUDE (A) + TO_IN (B) -> INCLUDE (A+B); (B)=GMI, Send Q(G,A-B).
            (Include, ToIn) => {
                actions.query_sources = self.all().difference(b).copied().collect();
                for s in b {
                    self.set_timer(*s, gmi_at);
                }
            }
            // 6.4.1 / 6.4.2: EXCLUDE (X,Y) + IS_IN (A) or ALLOW (A) -> EXCLUDE (X+A, Y-A);
            // (A)=GMI.
            (Exclude, IsIn | Allow) => {
                for s in b {
                    self.set_timer(*s, gmi_at);
                }
            }
            // 6.4.1 EXCLUDE (X,Y) + IS_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=GMI,
            // Delete (X-A), Delete (Y-A), Group Timer=GMI.
            // 6.4.2 TO_EX (A): the same but (A-X-Y)=Group Timer, and Send Q(G,A-Y).
            (Exclude, IsEx | ToEx) => {
                let known = self.all();
                let y = self.blocked();
                let new_timer = if record == IsEx { gmi_at } else { self.timer };
                for s in known.difference(b) {
                    self.sources.remove(s);
                }
                for s in b.difference(&known) {
                    self.set_timer(*s, new_timer);
                }
                self.timer = gmi_at;
                if record == ToEx {
                    actions.query_sources = b.difference(&y).copied().collect();
                }
            }
            // 6.4.2 EXCLUDE (X,Y) + BLOCK (A) -> EXCLUDE (X+(A-Y), Y); (A-X-Y)=Group Timer,
            // Send Q(G,A-Y).
            (Exclude, Block) => {
                let known = self.all();
                let y = self.blocked();
                for s in b.difference(&known) {
                    self.set_timer(*s, self.timer);
                }
                actions.query_sources = b.difference(&y).copied().collect();
            }
            // 6.4.2 EXCLUDE (X,Y) + TO_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI,
            // Send Q(G,X-A), Send Q(G).
            (Exclude, ToIn) => {
                actions.query_sources = self.requested().difference(b).copied().collect();
                actions.query_group = true;
                for s in b {
                    self.set_timer(*s, gmi_at);
                }
            }
        }
        actions
    }

    /// Records what `host` said about its own membership (best-effort explicit
    /// tracking); a host whose filter becomes INCLUDE {} is no longer a member.
    pub(crate) fn track_reporter(
        &mut self,
        host: F::Addr,
        record: Record,
        sources: &BTreeSet<F::Addr>,
        expires: Option<Instant>,
    ) {
        // Reports from 0.0.0.0 are valid (RFC 3376 4.2.13) but name no host.
        if F::is_unspecified(host) {
            return;
        }
        let old = self
            .reporters
            .get(&host)
            .map(|r| r.filter.clone())
            .unwrap_or_else(|| SourceFilter::include([]));
        let new = match record {
            Record::IsIn | Record::ToIn => SourceFilter::include(sources.iter().copied()),
            Record::IsEx | Record::ToEx => SourceFilter::exclude(sources.iter().copied()),
            Record::Allow => match old.mode {
                FilterMode::Include => SourceFilter::include(old.sources.union(sources).copied()),
                FilterMode::Exclude => {
                    SourceFilter::exclude(old.sources.difference(sources).copied())
                }
            },
            Record::Block => match old.mode {
                FilterMode::Include => {
                    SourceFilter::include(old.sources.difference(sources).copied())
                }
                FilterMode::Exclude => SourceFilter::exclude(old.sources.union(sources).copied()),
            },
        };
        if new.is_empty() {
            self.reporters.remove(&host);
        } else {
            self.reporters.insert(
                host,
                Reporter {
                    filter: new,
                    expires,
                },
            );
        }
    }

    /// The earliest deadline of this group, if any timer runs.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let sources = self.sources.values().filter_map(|s| s.timer);
        let reporters = self.reporters.values().filter_map(|r| r.expires);
        [
            self.timer,
            self.v1_host,
            self.v2_host,
            self.group_query_next,
            self.source_query_next,
        ]
        .into_iter()
        .flatten()
        .chain(sources)
        .chain(reporters)
        .min()
    }

    /// Runs every membership timer due at `now` (not the query retransmissions, which
    /// the interface sends).
    pub(crate) fn expire(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        // 6.3: in INCLUDE mode an expired source is deleted; in EXCLUDE mode it stays,
        // with timer 0, as a source not to forward.
        match self.mode {
            FilterMode::Include => self.sources.retain(|_, s| !due(s.timer)),
            FilterMode::Exclude => {
                for s in self.sources.values_mut() {
                    if due(s.timer) {
                        s.timer = None;
                        s.retransmit = 0;
                    }
                }
            }
        }
        // 6.5: when the group timer expires in EXCLUDE mode the group switches to
        // INCLUDE; sources with a running timer are kept, those at 0 are deleted.
        if due(self.timer) {
            self.timer = None;
            if self.mode == FilterMode::Exclude {
                self.mode = FilterMode::Include;
                self.sources.retain(|_, s| s.timer.is_some());
            }
        }
        if due(self.v1_host) {
            self.v1_host = None;
        }
        if due(self.v2_host) {
            self.v2_host = None;
        }
        self.reporters.retain(|_, r| !due(r.expires));
        if !self.sources.values().any(|s| s.retransmit > 0) {
            self.source_query_next = None;
        }
    }

    /// Drops every pending query retransmission (this router stopped being querier).
    pub(crate) fn cancel_queries(&mut self) {
        self.group_query_left = 0;
        self.group_query_next = None;
        self.source_query_next = None;
        for s in self.sources.values_mut() {
            s.retransmit = 0;
        }
    }

    /// Falls back to any-source membership when the link's version drops below 3:
    /// IGMPv1/v2 cannot express source lists, so the group becomes EXCLUDE {} with a
    /// group timer covering the longest source timer.
    pub(crate) fn downgrade(&mut self) {
        if self.mode == FilterMode::Include {
            self.timer = self.sources.values().filter_map(|s| s.timer).max();
        }
        if self.timer.is_some() {
            self.mode = FilterMode::Exclude;
        }
        self.sources.clear();
        self.source_query_next = None;
    }
}
