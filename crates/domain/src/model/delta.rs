//! How a host's view changes become stream changes, and the merge of a host's
//! memberships over its links and static members (RFC 3376 section 3.2).

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::SourceFilter;
use crate::api::*;
use crate::validate::{self};

/// The changes that turn `before` into `after` for `host`.
pub fn diff_host(
    host: &str,
    before: Option<&HostView>,
    after: Option<&HostView>,
    out: &mut Vec<Effect>,
) {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = before
        .iter()
        .flat_map(|v| v.domains.keys())
        .chain(after.iter().flat_map(|v| v.domains.keys()))
        .collect();
    for d in names {
        let b = before.and_then(|v| v.domains.get(d));
        let a = after.and_then(|v| v.domains.get(d));
        let delta = |change| Effect::Delta {
            domain: d.clone(),
            change,
        };
        let b_peer = b.and(before.map(|v| &v.peer));
        let a_peer = a.and(after.map(|v| &v.peer));
        if let Some(peer) = a_peer
            && a_peer != b_peer
        {
            out.push(delta(Change::PeerUp {
                domain: d.clone(),
                peer: peer.clone(),
            }));
        }
        let (bm, am) = (b.unwrap_or(&empty), a.unwrap_or(&empty));
        for (g, f) in am {
            if bm.get(g) != Some(f) {
                out.push(delta(Change::Member {
                    domain: d.clone(),
                    host: host.to_string(),
                    group: *g,
                    filter: Some(f.clone()),
                }));
            }
        }
        for g in bm.keys() {
            if !am.contains_key(g) {
                out.push(delta(Change::Member {
                    domain: d.clone(),
                    host: host.to_string(),
                    group: *g,
                    filter: None,
                }));
            }
        }
        if b_peer.is_some() && a_peer.is_none() {
            out.push(delta(Change::PeerDown {
                domain: d.clone(),
                host: host.to_string(),
            }));
        }
    }
    if let Some(a) = after {
        let same_domains = before.is_some_and(|b| b.domains.keys().eq(a.domains.keys()));
        if !same_domains {
            out.push(Effect::Resnapshot {
                host: host.to_string(),
            });
        }
    }
}

/// A host's members in a domain: its IGMP memberships (every link) merged with its
/// static members, per group (RFC 3376 section 3.2 merge). Link-local groups
/// (224.0.0.0/24, IPv6 scopes 0 to 2) are never forwarded and so never listed.
pub(super) fn merged_members(
    rec: &DomainRecord,
    host: &str,
    agent: &AgentRecord,
) -> BTreeMap<IpAddr, SourceFilter<IpAddr>> {
    let mut out: BTreeMap<IpAddr, SourceFilter<IpAddr>> = BTreeMap::new();
    for (g, links) in &agent.groups {
        if validate::is_link_scope(*g) {
            continue;
        }
        for (_, e) in links {
            merge_into(&mut out, *g, &e.filter);
        }
    }
    for m in rec.static_members.iter().filter(|m| m.host == host) {
        // A static member wants every source and ignores IGMP leaves.
        merge_into(&mut out, m.group, &SourceFilter::any_source());
    }
    out
}

fn merge_into(
    out: &mut BTreeMap<IpAddr, SourceFilter<IpAddr>>,
    g: IpAddr,
    f: &SourceFilter<IpAddr>,
) {
    match out.get_mut(&g) {
        Some(cur) => *cur = cur.merge(f),
        None => {
            out.insert(g, f.clone());
        }
    }
}
