//! The groups of one interface, kept in step with the timer table and the list of groups
//! whose events are due.
//!
//! A group is changed only through [`GroupMut`], whose `Drop` re-arms the group's timer
//! and marks it for events, so no mutation can forget either.

use core::ops::{Deref, DerefMut};
use std::collections::{BTreeMap, BTreeSet};

use crate::Family;
use crate::group::Group;
use crate::timers::{Timer, TimerTable};

/// Every group with state, the number of their sources, and the groups changed since
/// events were last published.
#[derive(Debug, Clone)]
pub(crate) struct GroupTable<F: Family> {
    map: BTreeMap<F::Addr, Group<F>>,
    sources: usize,
    changed: BTreeSet<F::Addr>,
}

/// A group borrowed for change; see the module documentation.
pub(crate) struct GroupMut<'a, F: Family> {
    addr: F::Addr,
    group: &'a mut Group<F>,
    sources_before: usize,
    total_sources: &'a mut usize,
    changed: &'a mut BTreeSet<F::Addr>,
    timers: &'a mut TimerTable<F>,
}

impl<F: Family> Deref for GroupMut<'_, F> {
    type Target = Group<F>;
    fn deref(&self) -> &Group<F> {
        self.group
    }
}

impl<F: Family> DerefMut for GroupMut<'_, F> {
    fn deref_mut(&mut self) -> &mut Group<F> {
        self.group
    }
}

impl<F: Family> Drop for GroupMut<'_, F> {
    fn drop(&mut self) {
        self.timers
            .set_or_stop(Timer::Group(self.addr), self.group.next_deadline());
        *self.total_sources =
            self.total_sources.saturating_sub(self.sources_before) + self.group.sources.len();
        self.changed.insert(self.addr);
    }
}

impl<F: Family> Default for GroupTable<F> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            sources: 0,
            changed: BTreeSet::new(),
        }
    }
}

impl<F: Family> GroupTable<F> {
    pub(crate) fn get(&self, g: F::Addr) -> Option<&Group<F>> {
        self.map.get(&g)
    }

    pub(crate) fn contains(&self, g: F::Addr) -> bool {
        self.map.contains_key(&g)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Sources over all groups.
    pub(crate) fn total_sources(&self) -> usize {
        self.sources
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (F::Addr, &Group<F>)> {
        self.map.iter().map(|(g, s)| (*g, s))
    }

    /// `g` for change, if it has state.
    pub(crate) fn get_mut<'a>(
        &'a mut self,
        g: F::Addr,
        timers: &'a mut TimerTable<F>,
    ) -> Option<GroupMut<'a, F>> {
        // Present, so `entry` creates nothing.
        self.contains(g).then(|| self.entry(g, timers))
    }

    /// `g` for change, created as INCLUDE {} when absent (the caller checks the bound).
    pub(crate) fn entry<'a>(
        &'a mut self,
        g: F::Addr,
        timers: &'a mut TimerTable<F>,
    ) -> GroupMut<'a, F> {
        let group = self.map.entry(g).or_insert_with(Group::new);
        GroupMut {
            addr: g,
            sources_before: group.sources.len(),
            group,
            total_sources: &mut self.sources,
            changed: &mut self.changed,
            timers,
        }
    }

    /// Runs `f` on every group, each through a [`GroupMut`].
    pub(crate) fn for_each_mut(
        &mut self,
        timers: &mut TimerTable<F>,
        mut f: impl FnMut(F::Addr, &mut Group<F>),
    ) {
        let all: Vec<F::Addr> = self.map.keys().copied().collect();
        for g in all {
            if let Some(mut state) = self.get_mut(g, timers) {
                f(g, &mut state);
            }
        }
    }

    /// Deletes `g` if the router no longer keeps any state for it (INCLUDE {}).
    pub(crate) fn reap(&mut self, g: F::Addr, timers: &mut TimerTable<F>) {
        if self.map.get(&g).is_some_and(Group::is_dead)
            && let Some(old) = self.map.remove(&g)
        {
            self.sources = self.sources.saturating_sub(old.sources.len());
            timers.stop(Timer::Group(g));
            self.changed.insert(g);
        }
    }

    /// Marks every group for events (what they forward depends on the link's version).
    pub(crate) fn mark_all(&mut self) {
        self.changed.extend(self.map.keys().copied());
    }

    /// The groups changed since the last call.
    pub(crate) fn take_changed(&mut self) -> BTreeSet<F::Addr> {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use std::time::Instant;

    use crate::Igmp;
    use crate::group::Source;
    use core::net::Ipv4Addr;

    #[test]
    fn every_change_rearms_the_timer_and_counts_sources() {
        let t0 = Instant::now();
        let g = Ipv4Addr::new(239, 1, 1, 1);
        let s = |n: u8| Ipv4Addr::new(192, 0, 2, n);
        let mut timers = TimerTable::<Igmp>::default();
        let mut table = GroupTable::<Igmp>::default();
        {
            let mut state = table.entry(g, &mut timers);
            for n in 1..=3 {
                state.sources.insert(
                    s(n),
                    Source {
                        timer: Some(t0 + Duration::from_secs(u64::from(n))),
                        retransmit: 0,
                    },
                );
            }
        }
        assert_eq!(
            timers.next(),
            Some((t0 + Duration::from_secs(1), Timer::Group(g)))
        );
        assert_eq!(table.total_sources(), 3);
        assert_eq!(
            table.take_changed().into_iter().collect::<Vec<_>>(),
            vec![g]
        );
        if let Some(mut state) = table.get_mut(g, &mut timers) {
            state.sources.remove(&s(1));
        }
        assert_eq!(
            timers.next(),
            Some((t0 + Duration::from_secs(2), Timer::Group(g)))
        );
        assert_eq!(table.total_sources(), 2);
        // A group with state is not reaped; once INCLUDE {} it is, with its timer.
        table.reap(g, &mut timers);
        assert!(table.contains(g));
        table.for_each_mut(&mut timers, |_, state| state.sources.clear());
        assert_eq!(timers.next(), None);
        table.reap(g, &mut timers);
        assert!(!table.contains(g));
        assert_eq!(table.total_sources(), 0);
        assert_eq!(
            table.take_changed().into_iter().collect::<Vec<_>>(),
            vec![g]
        );
    }
}
