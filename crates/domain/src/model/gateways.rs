//! The election of one forwarding gateway per upstream range (RFC 4605 proxies of one
//! external network): among the live hosts of a domain that registered the range, the
//! one whose candidacy is oldest. A candidacy starts with a registration of a host that
//! was not live (first start, or back after its lease ran out) and lasts while it
//! re-registers live, so a second gateway never displaces the first, and a gateway that
//! comes back after losing its lease does not take the role back from its successor.
//! The choice is a function of the stored records, so every replica makes the same one.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::*;
use crate::api::{Change, GatewayElection};

/// Domain → range → elected host.
pub(super) type Elections = BTreeMap<String, BTreeMap<Ipv4Net, String>>;

impl Model {
    /// Every domain's elected gateways.
    pub(super) fn elections(&self) -> Elections {
        // (candidacy, host) per (domain, range): the smallest wins.
        let mut best: BTreeMap<String, BTreeMap<Ipv4Net, (u64, &str)>> = BTreeMap::new();
        for (h, a) in self.agents.iter().filter(|(_, a)| a.live()) {
            let Some(up) = &a.registration.upstream else {
                continue;
            };
            for rec in self
                .domains
                .values()
                .filter(|r| r.has_host(h, Some(&a.registration)))
            {
                let ranges = best.entry(rec.domain.name.clone()).or_default();
                for r in &up.groups {
                    let cand = (a.gateway_since, h.as_str());
                    let e = ranges.entry(*r).or_insert(cand);
                    if cand < *e {
                        *e = cand;
                    }
                }
            }
        }
        best.into_iter()
            .map(|(d, rs)| {
                let rs = rs
                    .into_iter()
                    .map(|(r, (_, h))| (r, h.to_string()))
                    .collect();
                (d, rs)
            })
            .collect()
    }

    /// The elected gateways of one domain, by range.
    pub fn gateways_of(&self, domain: &str) -> Vec<GatewayElection> {
        self.elections()
            .remove(domain)
            .unwrap_or_default()
            .into_iter()
            .map(|(range, host)| GatewayElection { range, host })
            .collect()
    }

    /// The candidacy a registration of `host` in `session` holds: the one it had while
    /// live, else a new one.
    pub(super) fn candidacy(&self, host: &str, session: u64) -> u64 {
        match self.agents.get(host) {
            Some(a) if a.live() && a.registration.upstream.is_some() => a.gateway_since,
            _ => session,
        }
    }
}

/// The stream changes that turn `before` into `after`, for domains that still exist.
pub(super) fn diff_elections(
    model: &Model,
    before: &Elections,
    after: &Elections,
    out: &mut Vec<Effect>,
) {
    let empty = BTreeMap::new();
    let domains: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for d in domains
        .into_iter()
        .filter(|d| model.domains.contains_key(*d))
    {
        let (b, a) = (
            before.get(d).unwrap_or(&empty),
            after.get(d).unwrap_or(&empty),
        );
        let ranges: BTreeSet<&Ipv4Net> = b.keys().chain(a.keys()).collect();
        for r in ranges {
            if b.get(r) != a.get(r) {
                out.push(Effect::Delta {
                    domain: d.clone(),
                    change: Change::Gateway {
                        domain: d.clone(),
                        range: *r,
                        host: a.get(r).cloned(),
                    },
                });
            }
        }
    }
}
