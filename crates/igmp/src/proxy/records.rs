//! The group records of IGMPv3 and MLDv2 reports an upstream interface sends:
//! state-change records (RFC 3376 5.1, RFC 3810 6.1) and current-state records answering
//! queries (RFC 3376 5.2, RFC 3810 6.2), and how they are packed into messages.

use std::collections::BTreeSet;

use mcgate_wire::record::{Address, Record, RecordType};
use mcgate_wire::{FilterMode, SourceFilter};

fn record<A: Address>(
    kind: RecordType,
    group: A,
    sources: impl IntoIterator<Item = A>,
) -> Record<A> {
    Record {
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
pub(crate) fn state_change<A: Address + Ord>(
    group: A,
    old: &SourceFilter<A>,
    new: &SourceFilter<A>,
) -> Vec<Record<A>> {
    use FilterMode::*;
    let diff = |a: &BTreeSet<A>, b: &BTreeSet<A>| -> Vec<A> { a.difference(b).copied().collect() };
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
fn allow_block<A: Address>(group: A, allow: Vec<A>, block: Vec<A>) -> Vec<Record<A>> {
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
pub(crate) fn full_state_change<A: Address>(group: A, filter: &SourceFilter<A>) -> Record<A> {
    let kind = match filter.mode {
        FilterMode::Exclude => RecordType::ChangeToExclude,
        FilterMode::Include => RecordType::ChangeToInclude,
    };
    record(kind, group, filter.sources.iter().copied())
}

/// The current-state record answering a general or group-specific query: IS_EX(X) or
/// IS_IN(A) (RFC 3376 5.2).
pub(crate) fn current_state<A: Address>(group: A, filter: &SourceFilter<A>) -> Record<A> {
    let kind = match filter.mode {
        FilterMode::Exclude => RecordType::ModeIsExclude,
        FilterMode::Include => RecordType::ModeIsInclude,
    };
    record(kind, group, filter.sources.iter().copied())
}

/// The record answering a group-and-source-specific query for `queried`: IS_IN of the
/// queried sources the interface wants (A*Q in INCLUDE, Q-X in EXCLUDE), or nothing when
/// it wants none of them (RFC 3376 5.2).
pub(crate) fn source_state<A: Address + Ord>(
    group: A,
    filter: &SourceFilter<A>,
    queried: &BTreeSet<A>,
) -> Option<Record<A>> {
    let wanted: Vec<A> = queried
        .iter()
        .copied()
        .filter(|s| filter.allows(*s))
        .collect();
    (!wanted.is_empty()).then(|| record(RecordType::ModeIsInclude, group, wanted))
}

/// Packs records into reports of at most `max_payload` bytes of records each (a single
/// larger record travels alone).
pub(crate) fn pack<A: Address>(records: Vec<Record<A>>, max_payload: usize) -> Vec<Vec<Record<A>>> {
    let mut out: Vec<Vec<Record<A>>> = Vec::new();
    let mut size = 0;
    for r in records {
        let len = r.buffer_len();
        match out.last_mut() {
            Some(last) if size + len <= max_payload => {
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
