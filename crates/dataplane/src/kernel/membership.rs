//! From "what each remote host wants of a group" to the VXLAN device's entries.
//!
//! The VXLAN device forwards a packet by the most specific entry only: if an (S, G)
//! entry exists for the packet's source, its remotes alone get the packet; (*, G)
//! remotes are not consulted (`vxlan_mdb_entry_skb_get`). The kernel creates (S, G)
//! entries itself from (*, G) source lists (forwarding ones for INCLUDE, blocked ones
//! for EXCLUDE), but it does not add the other remotes of the group to them. So when
//! any remote names source S, every remote whose filter admits S without naming it
//! (EXCLUDE without S, or any-source) needs an explicit (S, G) entry too, or it would
//! stop getting S. [`compile`] adds exactly those.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use super::error::Error;
use super::mdb_msg::{SourceFilter, VxlanMdbEntry};

/// What one remote host wants of one group: its merged IGMPv3 or MLDv2 filter (RFC 3376
/// section 3.2, RFC 3810 section 4.2: INCLUDE / EXCLUDE with a source list; any-source
/// is EXCLUDE {}).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteMembership {
    /// The group, IPv4 or IPv6 (the tunnel is IPv4 either way).
    pub group: IpAddr,
    /// The remote host's underlay address.
    pub dst: Ipv4Addr,
    /// Which sources it wants.
    pub filter: SourceFilter,
    /// UDP port at the remote host; `None` uses the device's port.
    pub dst_port: Option<u16>,
    /// VNI sent to the remote host; `None` uses the device's VNI.
    pub vni: Option<u32>,
}

impl RemoteMembership {
    /// `dst` wants every source of `group`.
    pub fn any_source(group: impl Into<IpAddr>, dst: Ipv4Addr) -> Self {
        Self {
            group: group.into(),
            dst,
            filter: SourceFilter::Any,
            dst_port: None,
            vni: None,
        }
    }

    fn admits_unnamed(&self, s: IpAddr) -> bool {
        match &self.filter {
            SourceFilter::Any => true,
            SourceFilter::Exclude(l) => !l.contains(&s),
            SourceFilter::Include(_) => false,
        }
    }
}

/// The VXLAN entries that make the device forward each group to exactly the remotes
/// that want each source. Fails on two memberships for the same group and remote.
pub fn compile<'a>(
    memberships: impl IntoIterator<Item = &'a RemoteMembership>,
) -> Result<BTreeSet<VxlanMdbEntry>, Error> {
    let mut by_group: BTreeMap<IpAddr, BTreeMap<Ipv4Addr, &RemoteMembership>> = BTreeMap::new();
    for m in memberships {
        if by_group
            .entry(m.group)
            .or_default()
            .insert(m.dst, m)
            .is_some()
        {
            return Err(Error::InvalidEntry {
                entry: format!("grp {} dst {}", m.group, m.dst),
                reason: "two memberships for the same group and remote host".into(),
            });
        }
    }
    let mut out = BTreeSet::new();
    for (group, remotes) in &by_group {
        let mut named: BTreeSet<IpAddr> = BTreeSet::new();
        for m in remotes.values() {
            if let SourceFilter::Include(l) | SourceFilter::Exclude(l) = &m.filter {
                named.extend(l.iter().copied());
            }
        }
        for m in remotes.values() {
            let star = VxlanMdbEntry {
                group: *group,
                source: None,
                filter: m.filter.clone(),
                dst: m.dst,
                dst_port: m.dst_port,
                vni: m.vni,
            };
            for s in named.iter().filter(|s| m.admits_unnamed(**s)) {
                out.insert(VxlanMdbEntry {
                    source: Some(*s),
                    filter: SourceFilter::Any,
                    ..star.clone()
                });
            }
            out.insert(star);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const D: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
    const S1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const S2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

    fn m(dst: Ipv4Addr, filter: SourceFilter) -> RemoteMembership {
        RemoteMembership {
            filter,
            ..RemoteMembership::any_source(G, dst)
        }
    }

    #[test]
    fn any_source_only_needs_star_g() {
        let got = compile(&[m(B, SourceFilter::Any), m(C, SourceFilter::Any)]).unwrap();
        assert_eq!(
            got,
            [VxlanMdbEntry::new(G, B), VxlanMdbEntry::new(G, C)].into()
        );
    }

    #[test]
    fn remotes_that_admit_a_named_source_get_explicit_sg() {
        // B: INCLUDE {S1}; C: any; D: EXCLUDE {S2}.
        let ms = [
            m(B, SourceFilter::include([S1])),
            m(C, SourceFilter::Any),
            m(D, SourceFilter::exclude([S2])),
        ];
        let got = compile(&ms).unwrap();
        let want: BTreeSet<_> = [
            VxlanMdbEntry::new(G, B).with_filter(SourceFilter::include([S1])),
            VxlanMdbEntry::new(G, C),
            VxlanMdbEntry::new(G, C).with_source(S1),
            VxlanMdbEntry::new(G, C).with_source(S2),
            VxlanMdbEntry::new(G, D).with_filter(SourceFilter::exclude([S2])),
            // D admits S1 without naming it; S2 it excludes (the kernel blocks it).
            VxlanMdbEntry::new(G, D).with_source(S1),
        ]
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn duplicate_membership_is_refused() {
        assert!(compile(&[m(B, SourceFilter::Any), m(B, SourceFilter::include([S1]))]).is_err());
    }
}
