//! The group records of IGMPv3 reports an upstream interface sends: state-change records
//! (RFC 3376 5.1) and current-state records answering queries (5.2), and how they are
//! packed into messages.

use core::net::Ipv4Addr;
use std::collections::BTreeSet;

use mcgate_wire::igmp::{GroupRecord, RecordType};
use mcgate_wire::{FilterMode, SourceFilter};

/// IGMP payload bytes per report: what fits a 1500-byte link with the IPv4 header and
/// Router Alert (24 bytes) and the report header (8).
pub(crate) const MAX_REPORT_PAYLOAD: usize = 1500 - 24 - 8;

fn record(
    kind: RecordType,
    group: Ipv4Addr,
    sources: impl IntoIterator<Item = Ipv4Addr>,
) -> GroupRecord {
    GroupRecord {
        kind,
        group,
        sources: sources.into_iter().collect(),
        aux_data: Vec::new(),
    }
}

/// The records that tell a router the interface state of `group` went from `old` to
/// `new` (no membership is INCLUDE {}), as RFC 3376 5.1 lists them: a filter-mode
/// change is TO_IN(B) or TO_EX(B); a source-list change is ALLOW and BLOCK of the
/// difference (only the non-empty ones).
pub(crate) fn state_change(
    group: Ipv4Addr,
    old: &SourceFilter,
    new: &SourceFilter,
) -> Vec<GroupRecord> {
    use FilterMode::*;
    let diff = |a: &BTreeSet<Ipv4Addr>, b: &BTreeSet<Ipv4Addr>| -> Vec<Ipv4Addr> {
        a.difference(b).copied().collect()
    };
    match (old.mode, new.mode) {
        (Include, Exclude) => vec![record(
            RecordType::ChangeToExclude,
            group,
            new.sources.iter().copied(),
        )],
        (Exclude, Include) => vec![record(
            RecordType::ChangeToInclude,
            group,
            new.sources.iter().copied(),
        )],
        (Include, Include) => allow_block(
            group,
            diff(&new.sources, &old.sources),
            diff(&old.sources, &new.sources),
        ),
        (Exclude, Exclude) => allow_block(
            group,
            diff(&old.sources, &new.sources),
            diff(&new.sources, &old.sources),
        ),
    }
}

/// ALLOW(allow) and BLOCK(block), the non-empty ones.
fn allow_block(group: Ipv4Addr, allow: Vec<Ipv4Addr>, block: Vec<Ipv4Addr>) -> Vec<GroupRecord> {
    [
        (RecordType::AllowNewSources, allow),
        (RecordType::BlockOldSources, block),
    ]
    .into_iter()
    .filter(|(_, s)| !s.is_empty())
    .map(|(k, s)| record(k, group, s))
    .collect()
}

/// The filter-mode-change record stating the whole of `filter`: TO_EX(X) or TO_IN(A).
/// A retransmission whose group changed again since carries this one, which says the
/// current state whatever the router missed.
pub(crate) fn full_state_change(group: Ipv4Addr, filter: &SourceFilter) -> GroupRecord {
    let kind = match filter.mode {
        FilterMode::Exclude => RecordType::ChangeToExclude,
        FilterMode::Include => RecordType::ChangeToInclude,
    };
    record(kind, group, filter.sources.iter().copied())
}

/// The current-state record answering a general or group-specific query: IS_EX(X) or
/// IS_IN(A) (RFC 3376 5.2).
pub(crate) fn current_state(group: Ipv4Addr, filter: &SourceFilter) -> GroupRecord {
    let kind = match filter.mode {
        FilterMode::Exclude => RecordType::ModeIsExclude,
        FilterMode::Include => RecordType::ModeIsInclude,
    };
    record(kind, group, filter.sources.iter().copied())
}

/// The record answering a group-and-source-specific query for `queried`: IS_IN of the
/// queried sources the interface wants (A*Q in INCLUDE, Q-X in EXCLUDE), or nothing when
/// it wants none of them (RFC 3376 5.2).
pub(crate) fn source_state(
    group: Ipv4Addr,
    filter: &SourceFilter,
    queried: &BTreeSet<Ipv4Addr>,
) -> Option<GroupRecord> {
    let wanted: Vec<Ipv4Addr> = queried
        .iter()
        .copied()
        .filter(|s| filter.allows(*s))
        .collect();
    (!wanted.is_empty()).then(|| record(RecordType::ModeIsInclude, group, wanted))
}

/// Packs records into reports of at most [`MAX_REPORT_PAYLOAD`] bytes of records each
/// (a single larger record travels alone).
pub(crate) fn pack(records: Vec<GroupRecord>) -> Vec<Vec<GroupRecord>> {
    let mut out: Vec<Vec<GroupRecord>> = Vec::new();
    let mut size = 0;
    for r in records {
        let len = r.buffer_len();
        match out.last_mut() {
            Some(last) if size + len <= MAX_REPORT_PAYLOAD => {
                last.push(r);
                size += len;
            }
            _ => {
                out.push(vec![r]);
                size = len;
            }
        }
    }
    out
}
