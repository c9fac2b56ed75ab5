//! The controller's book of traffic reports: the rates of each host, computed when its
//! report arrives, and the domain-wide [`TrafficView`] assembled from them.
//!
//! Pure: the caller passes the time (milliseconds on its own monotonic clock) and the
//! domain's hosts and members. A rate is the difference between two consecutive reports
//! of one host over the difference of their `uptime_ms` stamps (the agent's clock): no
//! rate after a host's first report, a new session or counters that went backwards (an
//! agent restart). A host whose last report is older than [`STALE_MS`] shows no rates.

use core::net::Ipv4Addr;
use std::collections::{BTreeMap, BTreeSet};

use crate::api::{AgentInfo, HostMember};
use crate::traffic::*;

/// A host's rates are dropped when its last report is older than this: three missed
/// reports.
pub const STALE_MS: u64 = 3_500;

/// One group's rates on one host.
#[derive(Debug, Clone, Default, PartialEq)]
struct GroupRates {
    sent: Rate,
    delivered: Rate,
    tunnel_tx: BTreeMap<String, Rate>,
    tunnel_rx: BTreeMap<String, Rate>,
    drops: BTreeMap<String, f64>,
}

/// An upstream source is listed in the group table this long after its counters last
/// grew.
pub const UPSTREAM_SOURCE_HOLD_MS: u64 = 10_000;

/// What one host's last two reports say.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    last: TrafficReport,
    received_ms: u64,
    /// `None` until two reports of one session arrived.
    rates: Option<HostRates>,
    /// On a gateway: per upstream (group, source), its packet count and when it last
    /// grew.
    upstream_seen: BTreeMap<(Ipv4Addr, Ipv4Addr), (u64, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct HostRates {
    groups: BTreeMap<(String, Ipv4Addr), GroupRates>,
    tunnel_tx: Rate,
    tunnel_rx: Rate,
    drops: BTreeMap<String, f64>,
}

/// The rates of every host that reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficBook {
    hosts: BTreeMap<String, Sample>,
}

fn rate(prev: Count, last: Count, dt_s: f64) -> Option<Rate> {
    let packets = last.packets.checked_sub(prev.packets)?;
    let bytes = last.bytes.checked_sub(prev.bytes)?;
    Some(Rate {
        pps: packets as f64 / dt_s,
        bits_per_s: bytes as f64 * 8.0 / dt_s,
    })
}

fn drop_rates(
    prev: &BTreeMap<String, u64>,
    last: &BTreeMap<String, u64>,
    dt_s: f64,
) -> Option<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (reason, n) in last {
        let d = n.checked_sub(prev.get(reason).copied().unwrap_or(0))?;
        if d > 0 {
            out.insert(reason.clone(), d as f64 / dt_s);
        }
    }
    Some(out)
}

fn peer_rates(prev: &[PeerCount], last: &[PeerCount], dt_s: f64) -> Option<BTreeMap<String, Rate>> {
    let mut out = BTreeMap::new();
    for p in last {
        let before = prev
            .iter()
            .find(|q| q.host == p.host)
            .map_or(Count::default(), |q| Count {
                packets: q.packets,
                bytes: q.bytes,
            });
        let now = Count {
            packets: p.packets,
            bytes: p.bytes,
        };
        out.insert(p.host.clone(), rate(before, now, dt_s)?);
    }
    Some(out)
}

/// Rates between two reports of one session; `None` when counters went backwards.
fn host_rates(prev: &TrafficReport, last: &TrafficReport) -> Option<HostRates> {
    let dt_ms = last
        .uptime_ms
        .checked_sub(prev.uptime_ms)
        .filter(|d| *d > 0)?;
    let dt_s = dt_ms as f64 / 1000.0;
    let before: BTreeMap<(&str, Ipv4Addr), &GroupCounts> = prev
        .groups
        .iter()
        .map(|g| ((g.domain.as_str(), g.group), g))
        .collect();
    let empty = GroupCounts {
        domain: String::new(),
        group: Ipv4Addr::UNSPECIFIED,
        sent: Count::default(),
        delivered: Count::default(),
        tunnel_tx: Vec::new(),
        tunnel_rx: Vec::new(),
        drops: BTreeMap::new(),
    };
    let mut groups = BTreeMap::new();
    for g in &last.groups {
        let p = before
            .get(&(g.domain.as_str(), g.group))
            .copied()
            .unwrap_or(&empty);
        groups.insert(
            (g.domain.clone(), g.group),
            GroupRates {
                sent: rate(p.sent, g.sent, dt_s)?,
                delivered: rate(p.delivered, g.delivered, dt_s)?,
                tunnel_tx: peer_rates(&p.tunnel_tx, &g.tunnel_tx, dt_s)?,
                tunnel_rx: peer_rates(&p.tunnel_rx, &g.tunnel_rx, dt_s)?,
                drops: drop_rates(&p.drops, &g.drops, dt_s)?,
            },
        );
    }
    Some(HostRates {
        groups,
        tunnel_tx: rate(prev.tunnel_tx, last.tunnel_tx, dt_s)?,
        tunnel_rx: rate(prev.tunnel_rx, last.tunnel_rx, dt_s)?,
        drops: drop_rates(&prev.drops, &last.drops, dt_s)?,
    })
}

fn add(a: &mut Rate, b: Rate) {
    a.pps += b.pps;
    a.bits_per_s += b.bits_per_s;
}

fn is_flowing(r: &Rate) -> bool {
    r.pps > 0.0
}

impl TrafficBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `host`'s report, received at `now_ms`.
    pub fn record(&mut self, host: &str, report: TrafficReport, now_ms: u64) {
        let prev = self.hosts.get(host);
        let rates = prev
            .filter(|s| s.last.session == report.session)
            .and_then(|s| host_rates(&s.last, &report));
        let mut upstream_seen = BTreeMap::new();
        for src in report.upstream.iter().flat_map(|u| &u.sources) {
            let key = (src.group, src.source);
            let seen = match prev.and_then(|p| p.upstream_seen.get(&key)) {
                Some((packets, at)) if *packets == src.packets => *at,
                _ if src.packets > 0 => now_ms,
                _ => continue,
            };
            if now_ms.saturating_sub(seen) <= UPSTREAM_SOURCE_HOLD_MS {
                upstream_seen.insert(key, (src.packets, seen));
            }
        }
        self.hosts.insert(
            host.to_string(),
            Sample {
                last: report,
                received_ms: now_ms,
                rates,
                upstream_seen,
            },
        );
    }

    /// Forgets `host` (deregistered, or its record forgotten).
    pub fn forget(&mut self, host: &str) {
        self.hosts.remove(host);
    }

    /// Keeps only the hosts `keep` says to.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.hosts.retain(|h, _| keep(h));
    }

    /// Number of hosts with a report.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host reported.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The gateway hosts whose last report is fresh (within [`STALE_MS`]) and names an
    /// upstream interface, with the upstream sources whose counters grew within
    /// [`UPSTREAM_SOURCE_HOLD_MS`].
    pub fn upstream_gateways(&self, now_ms: u64) -> Vec<crate::groups::UpstreamGateway> {
        self.hosts
            .iter()
            .filter(|(_, s)| now_ms.saturating_sub(s.received_ms) <= STALE_MS)
            .filter_map(|(host, s)| {
                let u = s.last.upstream.as_ref()?;
                Some(crate::groups::UpstreamGateway {
                    host: host.clone(),
                    interface: u.interface.clone(),
                    ranges: u.groups.clone(),
                    sources: s
                        .upstream_seen
                        .iter()
                        .filter(|(_, (_, at))| {
                            now_ms.saturating_sub(*at) <= UPSTREAM_SOURCE_HOLD_MS
                        })
                        .map(|(k, _)| *k)
                        .collect(),
                })
            })
            .collect()
    }

    fn fresh_rates(&self, host: &str, now_ms: u64) -> Option<&HostRates> {
        let s = self.hosts.get(host)?;
        if now_ms.saturating_sub(s.received_ms) > STALE_MS {
            return None;
        }
        s.rates.as_ref()
    }

    /// The view of `domain` at `revision`: `hosts` are the domain's agents (live or
    /// expired), `members` its live (host, group) memberships, `now_ms` the time on the
    /// clock reports were recorded with.
    pub fn view(
        &self,
        domain: &str,
        revision: u64,
        hosts: &[AgentInfo],
        members: &[HostMember],
        now_ms: u64,
    ) -> TrafficView {
        let missing = |h: &str, figure: &str| {
            self.hosts
                .get(h)
                .is_some_and(|s| s.last.missing.iter().any(|m| m == figure))
        };
        let counted = |h: &str, figure: &str, r: Rate| (!missing(h, figure)).then_some(r);
        let mut host_views = Vec::new();
        for a in hosts {
            let sample = self.hosts.get(&a.host);
            let rates = self.fresh_rates(&a.host, now_ms);
            let (mut sent, mut delivered) = (Rate::default(), Rate::default());
            if let Some(r) = rates {
                for ((d, _), g) in &r.groups {
                    if d == domain {
                        add(&mut sent, g.sent);
                        add(&mut delivered, g.delivered);
                    }
                }
            }
            host_views.push(HostTraffic {
                host: a.host.clone(),
                state: a.state.clone(),
                zone: a.zone.clone(),
                subnet: a.subnet,
                dataplane: a.dataplane.clone(),
                report_age_ms: sample.map(|s| now_ms.saturating_sub(s.received_ms)),
                links: sample.map(|s| s.last.links.clone()).unwrap_or_default(),
                sent: rates.and_then(|_| counted(&a.host, "sent", sent)),
                delivered: rates.and_then(|_| counted(&a.host, "delivered", delivered)),
                tunnel_tx: rates.and_then(|r| counted(&a.host, "tunnel_tx", r.tunnel_tx)),
                tunnel_rx: rates.and_then(|r| counted(&a.host, "tunnel_rx", r.tunnel_rx)),
                drops: rates.map(|r| r.drops.clone()).unwrap_or_default(),
                missing: sample.map(|s| s.last.missing.clone()).unwrap_or_default(),
            });
        }
        let in_domain: BTreeSet<&str> = hosts.iter().map(|a| a.host.as_str()).collect();
        // Traffic is counted for IPv4 groups only: the data planes forward no IPv6 yet.
        let mut groups: BTreeSet<Ipv4Addr> = members
            .iter()
            .filter_map(|m| match m.group {
                core::net::IpAddr::V4(g) => Some(g),
                core::net::IpAddr::V6(_) => None,
            })
            .collect();
        for h in &in_domain {
            if let Some(r) = self.fresh_rates(h, now_ms) {
                for ((d, g), gr) in &r.groups {
                    let active = is_flowing(&gr.sent)
                        || is_flowing(&gr.delivered)
                        || gr.tunnel_tx.values().any(is_flowing)
                        || gr.tunnel_rx.values().any(is_flowing)
                        || !gr.drops.is_empty();
                    if d == domain && active {
                        groups.insert(*g);
                    }
                }
            }
        }
        let group_views = groups
            .into_iter()
            .map(|g| self.group_view(domain, g, &in_domain, members, now_ms, &missing))
            .collect();
        TrafficView {
            domain: domain.to_string(),
            revision,
            hosts: host_views,
            groups: group_views,
        }
    }

    fn group_view(
        &self,
        domain: &str,
        group: Ipv4Addr,
        hosts: &BTreeSet<&str>,
        members: &[HostMember],
        now_ms: u64,
        missing: &dyn Fn(&str, &str) -> bool,
    ) -> GroupTraffic {
        let key = (domain.to_string(), group);
        let of = |h: &str| self.fresh_rates(h, now_ms).and_then(|r| r.groups.get(&key));
        let counts =
            |h: &str, figure: &str| self.fresh_rates(h, now_ms).is_some() && !missing(h, figure);
        let senders = hosts
            .iter()
            .filter_map(|h| {
                let g = of(h)?;
                is_flowing(&g.sent).then(|| HostRate {
                    host: h.to_string(),
                    rate: Some(g.sent),
                })
            })
            .collect();
        let receiver_hosts: BTreeSet<&str> = members
            .iter()
            .filter(|m| m.group == core::net::IpAddr::V4(group))
            .map(|m| m.host.as_str())
            .collect();
        let receivers = receiver_hosts
            .iter()
            .map(|h| HostRate {
                host: h.to_string(),
                rate: counts(h, "delivered")
                    .then(|| of(h).map(|g| g.delivered).unwrap_or_default()),
            })
            .collect();
        let mut flows = Vec::new();
        let mut drops: BTreeMap<String, f64> = BTreeMap::new();
        for from in hosts {
            let Some(g) = of(from) else { continue };
            for (reason, r) in &g.drops {
                *drops.entry(reason.clone()).or_default() += r;
            }
            for (to, sent) in &g.tunnel_tx {
                if !is_flowing(sent) {
                    continue;
                }
                let received = counts(to, "tunnel_rx_per_host").then(|| {
                    of(to)
                        .and_then(|t| t.tunnel_rx.get(*from))
                        .copied()
                        .unwrap_or_default()
                });
                flows.push(Flow {
                    from: from.to_string(),
                    to: to.clone(),
                    sent: Some(*sent),
                    received,
                    lost_pps: received.map(|r| (sent.pps - r.pps).max(0.0)),
                });
            }
        }
        GroupTraffic {
            group,
            senders,
            receivers,
            flows,
            drops,
        }
    }
}

#[cfg(test)]
#[path = "traffic_book_tests.rs"]
mod tests;
