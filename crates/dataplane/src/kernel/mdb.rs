//! The two multicast tables mcgate keeps per domain: the VXLAN device's (which remote
//! hosts get a group) and the bridge's entries on the VXLAN port (which groups reach the
//! VXLAN device at all). Both reconcile to a desired set: dump, diff, apply the
//! difference, so the kernel ends up exactly at the desired state whatever it held.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use super::error::Error;
use super::mdb_msg::{self, MdbRecord, RTM_GETMDB, RTM_NEWMDB, SourceFilter, VxlanMdbEntry};
use super::membership::{RemoteMembership, compile};
use super::nl::MsgBuilder;
use super::socket::Netlink;
use super::vxlan::VxlanDevice;

/// What a reconcile changed.
#[derive(Debug, Default)]
pub struct ReconcileStats {
    /// Entries created.
    pub added: usize,
    /// Entries whose settings (filter, port, VNI) were replaced in place.
    pub replaced: usize,
    /// Entries deleted.
    pub removed: usize,
    /// Entries already as desired.
    pub unchanged: usize,
    /// Changes the kernel refused; the first few refusals are in `errors`.
    pub failed: usize,
    /// Up to [`MAX_ERRORS`] refusals, for the log.
    pub errors: Vec<Error>,
}

/// How many refusals a [`ReconcileStats`] keeps.
pub const MAX_ERRORS: usize = 8;

impl ReconcileStats {
    fn record(&mut self, r: Result<(), Error>, ok: fn(&mut Self)) {
        match r {
            Ok(()) => ok(self),
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < MAX_ERRORS {
                    self.errors.push(e);
                }
            }
        }
    }
}

fn dump_records(nl: &mut Netlink, op: &str) -> Result<Vec<MdbRecord>, Error> {
    let mut out = Vec::new();
    for r in nl.dump(&mdb_msg::dump(), op)? {
        // The bridge answers dumps with RTM_GETMDB (and family 0), the VXLAN driver
        // with RTM_NEWMDB; both carry the same layout.
        if r.msg_type != RTM_NEWMDB && r.msg_type != RTM_GETMDB {
            continue;
        }
        out.extend(
            mdb_msg::parse_dump_msg(&r.payload).map_err(|detail| Error::malformed(op, detail))?,
        );
    }
    Ok(out)
}

/// The multicast table of one VXLAN device: per group, the remote hosts that get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanMdb {
    ifindex: u32,
    port: u16,
    vni: u32,
}

/// The change a reconcile makes to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Add(VxlanMdbEntry),
    Replace(VxlanMdbEntry),
    Remove(VxlanMdbEntry),
}

impl VxlanMdb {
    /// The table of `dev`.
    pub fn new(dev: &VxlanDevice) -> Self {
        Self {
            ifindex: dev.ifindex,
            port: dev.port,
            vni: dev.vni,
        }
    }

    /// Adds an entry; fails if one with the same group, source and destination exists.
    pub fn add(&self, nl: &mut Netlink, e: &VxlanMdbEntry) -> Result<(), Error> {
        e.validate()?;
        nl.request(
            &mdb_msg::vxlan_add(self.ifindex, e, false),
            &format!("add VXLAN MDB entry {e}"),
        )
    }

    /// Adds an entry, or replaces the settings of the one with the same group, source
    /// and destination.
    pub fn replace(&self, nl: &mut Netlink, e: &VxlanMdbEntry) -> Result<(), Error> {
        e.validate()?;
        nl.request(
            &mdb_msg::vxlan_add(self.ifindex, e, true),
            &format!("replace VXLAN MDB entry {e}"),
        )
    }

    /// Deletes the entry with `e`'s group, source and destination.
    pub fn delete(&self, nl: &mut Netlink, e: &VxlanMdbEntry) -> Result<(), Error> {
        nl.request(
            &mdb_msg::vxlan_del(self.ifindex, e),
            &format!("delete VXLAN MDB entry {e}"),
        )
    }

    /// The entries programmed on this device, without the (S, G) entries the kernel
    /// derives from (*, G) source lists. Port and VNI equal to the device's are `None`.
    pub fn dump(&self, nl: &mut Netlink) -> Result<BTreeSet<VxlanMdbEntry>, Error> {
        let records = dump_records(nl, "dump the VXLAN multicast table")?;
        Ok(self.entries_of(&records))
    }

    /// Every record of this device, derived ones included (for inspection).
    pub fn dump_all(&self, nl: &mut Netlink) -> Result<Vec<VxlanMdbEntry>, Error> {
        let records = dump_records(nl, "dump the VXLAN multicast table")?;
        Ok(records
            .iter()
            .filter(|r| r.dev == self.ifindex)
            .filter_map(MdbRecord::to_vxlan_entry)
            .collect())
    }

    fn entries_of(&self, records: &[MdbRecord]) -> BTreeSet<VxlanMdbEntry> {
        let mine: Vec<VxlanMdbEntry> = records
            .iter()
            .filter(|r| r.dev == self.ifindex)
            .filter_map(MdbRecord::to_vxlan_entry)
            .collect();
        without_derived(mine)
    }

    /// Makes the device's table exactly what `memberships` need (see
    /// [`compile`](super::compile)): the usual entry point for the agent.
    pub fn reconcile_memberships(
        &self,
        nl: &mut Netlink,
        memberships: &BTreeSet<RemoteMembership>,
    ) -> Result<ReconcileStats, Error> {
        let entries = compile(memberships)?;
        self.reconcile(nl, &entries)
    }

    /// Makes the device's table exactly `desired`: deletes what is not desired, replaces
    /// entries whose settings differ, adds what is missing. Changes go to the kernel in
    /// batches; a refused change is counted and the rest still applied.
    pub fn reconcile(
        &self,
        nl: &mut Netlink,
        desired: &BTreeSet<VxlanMdbEntry>,
    ) -> Result<ReconcileStats, Error> {
        let desired: BTreeSet<VxlanMdbEntry> = desired
            .iter()
            .map(|e| e.clone().normalized(self.port, self.vni))
            .collect();
        for e in &desired {
            e.validate()?;
        }
        check_no_overlap(&desired)?;
        let current = self.dump(nl)?;
        let (changes, unchanged) = diff(&current, &desired);
        let mut stats = ReconcileStats {
            unchanged,
            ..ReconcileStats::default()
        };
        // Removals first: a replaced (*, G) source list may re-create an (S, G) that an
        // explicit entry being removed still holds.
        let mut msgs: Vec<(MsgBuilder, &Change)> = Vec::with_capacity(changes.len());
        for c in &changes {
            let m = match c {
                Change::Remove(e) => mdb_msg::vxlan_del(self.ifindex, e),
                Change::Replace(e) => mdb_msg::vxlan_add(self.ifindex, e, true),
                Change::Add(e) => mdb_msg::vxlan_add(self.ifindex, e, false),
            };
            msgs.push((m, c));
        }
        let builders: Vec<MsgBuilder> = msgs.iter().map(|(m, _)| m.clone()).collect();
        let describe = |i: usize| match msgs.get(i).map(|(_, c)| *c) {
            Some(Change::Add(e)) => format!("add VXLAN MDB entry {e}"),
            Some(Change::Replace(e)) => format!("replace VXLAN MDB entry {e}"),
            Some(Change::Remove(e)) => format!("delete VXLAN MDB entry {e}"),
            None => "change the VXLAN multicast table".to_string(),
        };
        let results = nl.batch(&builders, &describe)?;
        for ((_, c), r) in msgs.iter().zip(results) {
            match c {
                Change::Add(_) => stats.record(r, |s| s.added += 1),
                Change::Replace(_) => stats.record(r, |s| s.replaced += 1),
                // Already gone (e.g. removed with its (*, G)) is what we wanted.
                Change::Remove(_) => stats.record(
                    r.or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
                    |s| s.removed += 1,
                ),
            }
        }
        Ok(stats)
    }
}

/// Drops the (S, G) records the kernel made itself from a (*, G) entry's source list
/// (same group and destination, source in the list).
fn without_derived(entries: Vec<VxlanMdbEntry>) -> BTreeSet<VxlanMdbEntry> {
    let derived: BTreeSet<(IpAddr, IpAddr, Ipv4Addr)> = entries
        .iter()
        .filter(|e| e.source.is_none())
        .flat_map(|e| {
            let srcs = match &e.filter {
                SourceFilter::Any => BTreeSet::new(),
                SourceFilter::Include(s) | SourceFilter::Exclude(s) => s.clone(),
            };
            srcs.into_iter().map(move |s| (e.group, s, e.dst))
        })
        .collect();
    entries
        .into_iter()
        .filter(|e| match e.source {
            Some(s) => !derived.contains(&(e.group, s, e.dst)),
            None => true,
        })
        .collect()
}

/// An explicit (S, G) entry for a destination whose (*, G) lists S would collide with
/// the entry the kernel derives; refuse the set rather than fight the kernel.
fn check_no_overlap(desired: &BTreeSet<VxlanMdbEntry>) -> Result<(), Error> {
    let mut lists: BTreeMap<(IpAddr, Ipv4Addr), &BTreeSet<IpAddr>> = BTreeMap::new();
    for e in desired.iter().filter(|e| e.source.is_none()) {
        if let SourceFilter::Include(s) | SourceFilter::Exclude(s) = &e.filter {
            lists.insert((e.group, e.dst), s);
        }
    }
    for e in desired {
        if let Some(s) = e.source
            && lists.get(&(e.group, e.dst)).is_some_and(|l| l.contains(&s))
        {
            return Err(Error::InvalidEntry {
                entry: e.to_string(),
                reason: "the (*, G) entry for the same destination already lists this source"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The changes that turn `current` into `desired`, removals first, and how many
/// entries stay as they are. Entries are matched on (group, source, destination).
pub(crate) fn diff(
    current: &BTreeSet<VxlanMdbEntry>,
    desired: &BTreeSet<VxlanMdbEntry>,
) -> (Vec<Change>, usize) {
    let cur: BTreeMap<_, _> = current.iter().map(|e| (e.key(), e)).collect();
    let want: BTreeMap<_, _> = desired.iter().map(|e| (e.key(), e)).collect();
    let mut removes = Vec::new();
    let mut rest = Vec::new();
    let mut unchanged = 0;
    for (k, e) in &cur {
        if !want.contains_key(k) {
            removes.push(Change::Remove((*e).clone()));
        }
    }
    for (k, e) in &want {
        match cur.get(k) {
            None => rest.push(Change::Add((*e).clone())),
            Some(c) if c == e => unchanged += 1,
            Some(_) => rest.push(Change::Replace((*e).clone())),
        }
    }
    removes.extend(rest);
    (removes, unchanged)
}

/// The bridge's permanent (*, G) entries on the VXLAN port: the groups that reach the
/// VXLAN device. Local ports keep being served by the bridge's own snooping, except
/// for static members, which get permanent entries on their port ([`BridgeMdb::on_port`]).
/// Only permanent entries are listed and reconciled: what the bridge snooped is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeMdb {
    bridge: u32,
    port: u32,
    /// Add with NLM_F_REPLACE: on a task port the bridge may already hold a snooped
    /// (temporary) entry for the group, which the permanent one replaces.
    replace: bool,
}

impl BridgeMdb {
    /// The entries of `dev`'s port on its bridge.
    pub fn new(dev: &VxlanDevice) -> Self {
        Self {
            bridge: dev.bridge_ifindex,
            port: dev.ifindex,
            replace: false,
        }
    }

    /// The permanent entries of any port `port` of bridge `bridge` (a task link with
    /// static members).
    pub fn on_port(bridge: u32, port: u32) -> Self {
        Self {
            bridge,
            port,
            replace: true,
        }
    }

    /// Adds a permanent entry for `group` on the VXLAN port.
    pub fn add(&self, nl: &mut Netlink, group: impl Into<IpAddr>) -> Result<(), Error> {
        let group = group.into();
        mdb_msg::validate_bridge_group(group)?;
        nl.request(
            &mdb_msg::bridge_add(self.bridge, self.port, group, self.replace),
            &format!("add bridge MDB entry for {group} on the VXLAN port"),
        )
    }

    /// Deletes the entry for `group` on the VXLAN port.
    pub fn delete(&self, nl: &mut Netlink, group: impl Into<IpAddr>) -> Result<(), Error> {
        let group = group.into();
        nl.request(
            &mdb_msg::bridge_del(self.bridge, self.port, group),
            &format!("delete bridge MDB entry for {group} on the VXLAN port"),
        )
    }

    /// The groups with an entry on the VXLAN port.
    pub fn dump(&self, nl: &mut Netlink) -> Result<BTreeSet<IpAddr>, Error> {
        let records = dump_records(nl, "dump the bridge multicast table")?;
        Ok(records
            .iter()
            .filter(|r| {
                r.dev == self.bridge
                    && r.port == self.port
                    && r.source.is_none()
                    && r.state == mdb_msg::MDB_PERMANENT
            })
            .filter_map(|r| r.group)
            .collect())
    }

    /// Makes the groups on the VXLAN port exactly `desired`.
    pub fn reconcile(
        &self,
        nl: &mut Netlink,
        desired: &BTreeSet<IpAddr>,
    ) -> Result<ReconcileStats, Error> {
        for g in desired {
            mdb_msg::validate_bridge_group(*g)?;
        }
        let current = self.dump(nl)?;
        let removes: Vec<IpAddr> = current.difference(desired).copied().collect();
        let adds: Vec<IpAddr> = desired.difference(&current).copied().collect();
        let mut stats = ReconcileStats {
            unchanged: current.intersection(desired).count(),
            ..ReconcileStats::default()
        };
        let mut builders = Vec::with_capacity(removes.len() + adds.len());
        builders.extend(
            removes
                .iter()
                .map(|g| mdb_msg::bridge_del(self.bridge, self.port, *g)),
        );
        builders.extend(
            adds.iter()
                .map(|g| mdb_msg::bridge_add(self.bridge, self.port, *g, self.replace)),
        );
        let n_removes = removes.len();
        let describe = |i: usize| {
            if i < n_removes {
                format!("delete bridge MDB entry for {}", removes[i])
            } else {
                adds.get(i - n_removes)
                    .map(|g| format!("add bridge MDB entry for {g}"))
                    .unwrap_or_else(|| "change the bridge multicast table".into())
            }
        };
        let results = nl.batch(&builders, &describe)?;
        for (i, r) in results.into_iter().enumerate() {
            if i < n_removes {
                stats.record(
                    r.or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
                    |s| s.removed += 1,
                );
            } else {
                stats.record(r, |s| s.added += 1);
            }
        }
        Ok(stats)
    }
}

/// Both tables of one domain's VXLAN device, kept in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainTables {
    /// The VXLAN device's table.
    pub vxlan: VxlanMdb,
    /// The bridge's entries on the VXLAN port.
    pub bridge: BridgeMdb,
}

/// What [`DomainTables::reconcile`] changed in each table.
#[derive(Debug, Default)]
pub struct DomainReconcile {
    /// The VXLAN device's table.
    pub vxlan: ReconcileStats,
    /// The bridge's entries on the VXLAN port.
    pub bridge: ReconcileStats,
}

impl DomainTables {
    /// The tables of `dev`.
    pub fn new(dev: &VxlanDevice) -> Self {
        Self {
            vxlan: VxlanMdb::new(dev),
            bridge: BridgeMdb::new(dev),
        }
    }

    /// Makes both tables match `memberships`: the VXLAN entries [`compile`] gives, and a
    /// bridge entry for every group with at least one remote member. Bridge entries
    /// go first for groups that leave and last for groups that join, so the bridge
    /// never hands the VXLAN device a group it has no destination for.
    pub fn reconcile(
        &self,
        nl: &mut Netlink,
        memberships: &BTreeSet<RemoteMembership>,
    ) -> Result<DomainReconcile, Error> {
        let groups: BTreeSet<IpAddr> = memberships.iter().map(|m| m.group).collect();
        let entries = compile(memberships)?;
        let current = self.bridge.dump(nl)?;
        let kept: BTreeSet<IpAddr> = current.intersection(&groups).copied().collect();
        let mut bridge = self.bridge.reconcile(nl, &kept)?;
        let vxlan = self.vxlan.reconcile(nl, &entries)?;
        let adds = self.bridge.reconcile(nl, &groups)?;
        bridge.added += adds.added;
        bridge.failed += adds.failed;
        bridge.errors.extend(adds.errors);
        bridge.errors.truncate(MAX_ERRORS);
        Ok(DomainReconcile { vxlan, bridge })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const D1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const D2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const S: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

    #[test]
    fn diff_removes_first_then_replaces_and_adds() {
        let keep = VxlanMdbEntry::new(G, D1);
        let old = VxlanMdbEntry::new(G, D2);
        let changed_now = VxlanMdbEntry::new(G, D1).with_source(S);
        let changed_want = VxlanMdbEntry {
            vni: Some(9),
            ..changed_now.clone()
        };
        let new = VxlanMdbEntry::new(Ipv4Addr::new(239, 1, 1, 2), D2);
        let current = [keep.clone(), old.clone(), changed_now].into();
        let desired = [keep, changed_want.clone(), new.clone()].into();
        let (changes, unchanged) = diff(&current, &desired);
        assert_eq!(unchanged, 1);
        assert_eq!(
            changes,
            vec![
                Change::Remove(old),
                Change::Replace(changed_want),
                Change::Add(new)
            ]
        );
    }

    #[test]
    fn derived_sg_records_are_hidden() {
        let star = VxlanMdbEntry::new(G, D1).with_filter(SourceFilter::include([S]));
        let derived = VxlanMdbEntry::new(G, D1).with_source(S);
        let other_dst = VxlanMdbEntry::new(G, D2).with_source(S);
        let got = without_derived(vec![star.clone(), derived, other_dst.clone()]);
        assert_eq!(got, [star, other_dst].into());
    }

    #[test]
    fn overlapping_explicit_sg_is_refused() {
        let star = VxlanMdbEntry::new(G, D1).with_filter(SourceFilter::exclude([S]));
        let sg = VxlanMdbEntry::new(G, D1).with_source(S);
        assert!(check_no_overlap(&[star.clone(), sg].into()).is_err());
        let sg_other = VxlanMdbEntry::new(G, D2).with_source(S);
        assert!(check_no_overlap(&[star, sg_other].into()).is_ok());
    }

    #[test]
    fn normalizing_drops_device_defaults() {
        let e = VxlanMdbEntry {
            dst_port: Some(4789),
            vni: Some(42),
            ..VxlanMdbEntry::new(G, D1)
        };
        let n = e.normalized(4789, 42);
        assert_eq!((n.dst_port, n.vni), (None, None));
        let e = VxlanMdbEntry {
            dst_port: Some(8472),
            vni: Some(7),
            ..VxlanMdbEntry::new(G, D1)
        };
        let n = e.normalized(4789, 42);
        assert_eq!((n.dst_port, n.vni), (Some(8472), Some(7)));
    }
}
