//! The host side of an IGMP/MLD proxy's upstream interface (RFC 4605 section 4.1), as a
//! pure state machine: no I/O, no clock.
//!
//! One machine serves both families ([`Upstream`] over IGMP, [`MldUpstream`] over MLD):
//! RFC 3810 sections 6 and 8 give an MLDv2 host the rules of RFC 3376 sections 5 and 7
//! with MLDv1 (RFC 2710) in place of IGMPv2 and no IGMPv1, so on an MLD interface
//! [`Version::V2`] is MLDv1 and [`Version::V3`] MLDv2, as in the router
//! ([`crate::family`]); a Done (to ff02::2) is MLDv1's Leave Group.
//!
//! An [`Upstream`] is told the membership to report (the merged membership of every
//! downstream, RFC 4605 4.1, filtered by the driver to the configured ranges) with
//! [`Upstream::set_membership`], hears the upstream querier through
//! [`Upstream::handle_packet`], and asks for reports through [`Upstream::poll_transmit`]
//! at the times of [`Upstream::poll_timeout`]. It behaves as an RFC 3376 host with one
//! interface whose interface state is that membership:
//!
//! - **State changes** (RFC 3376 5.1): a change is reported at once and repeated
//!   Robustness Variable - 1 more times at random within the Unsolicited Report
//!   Interval; a group whose state changes again while repeats are pending repeats a
//!   TO_IN/TO_EX record of its whole new state instead.
//! - **Queries** (5.2): answered at a random delay within the query's Max Resp Time,
//!   with current-state records (IS_IN/IS_EX); a group-and-source query with the queried
//!   sources the membership wants.
//! - **Host Compatibility Mode** (7.2.1): an IGMPv1 or IGMPv2 query switches the
//!   interface to that version until the Older Version Querier Present Timeout (8.12)
//!   passes; then joins are IGMPv1/v2 reports to the group, leaves IGMPv2 Leave Group
//!   messages to 224.0.0.2 (IGMPv1 has none), and pending responses and repeats are
//!   cancelled on the switch.
//! - **Never a querier**: it sends no query and takes no part in the election (RFC 4605
//!   4.1); reports of other hosts on the link are counted and ignored (an IGMPv1/v2
//!   host would suppress its own report; a proxy reporting for a whole domain does not).

mod compat;
#[cfg(test)]
mod mld_tests;
mod range;
mod records;
mod settings;
#[cfg(test)]
mod tests;

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use mcgate_wire::record::Record;
use mcgate_wire::{SourceFilter, Version};

use crate::family::{Family, Igmp, Message, Mld};
use crate::{Dropped, Transmit};
use compat::{HostCompat, QuerierVariables};
pub use range::{GroupRange, RangeError, parse_ranges};
pub use settings::{ProxyConfig, ProxyStats};

/// A repeat of a state change still to go out.
#[derive(Debug, Clone)]
struct Repeat<A> {
    at: Instant,
    remaining: u32,
    /// IGMPv3/MLDv2 records to repeat (unused in the older versions' mode, where the
    /// report is for the group's current membership).
    records: Vec<Record<A>>,
}

/// A pending answer to a group-specific (`None`) or group-and-source-specific query.
#[derive(Debug, Clone)]
struct GroupAnswer<A> {
    at: Instant,
    sources: Option<BTreeSet<A>>,
}

/// The upstream interface of an IGMP proxy, or of an MLD proxy with `F` = [`Mld`]. See
/// the module documentation.
#[derive(Debug, Clone)]
pub struct Upstream<F: Family = Igmp> {
    config: ProxyConfig,
    address: F::Addr,
    membership: BTreeMap<F::Addr, SourceFilter<F::Addr>>,
    compat: HostCompat,
    querier_vars: QuerierVariables,
    learned_robustness: Option<u32>,
    mode: Version,
    querier: Option<(F::Addr, Instant)>,
    general_answer: Option<Instant>,
    group_answers: BTreeMap<F::Addr, GroupAnswer<F::Addr>>,
    repeats: BTreeMap<F::Addr, Repeat<F::Addr>>,
    transmits: VecDeque<Transmit<F>>,
    rng: u64,
    last_now: Instant,
    stats: ProxyStats,
}

/// The upstream interface of an MLD proxy (RFC 4605 over RFC 3810 and RFC 2710).
pub type MldUpstream = Upstream<Mld>;

impl<F: Family> Upstream<F> {
    /// An upstream interface with address `address` (IGMP: 0.0.0.0 when it has none, as
    /// RFC 3376 4.2.13 allows; MLD: its link-local address, RFC 3810 5.2.13), reporting
    /// nothing yet. `seed` feeds the random response delays.
    pub fn new(config: ProxyConfig, address: F::Addr, now: Instant, seed: u64) -> Self {
        Self {
            config,
            address,
            membership: BTreeMap::new(),
            compat: HostCompat::default(),
            querier_vars: QuerierVariables::default(),
            learned_robustness: None,
            mode: Version::V3,
            querier: None,
            general_answer: None,
            group_answers: BTreeMap::new(),
            repeats: BTreeMap::new(),
            transmits: VecDeque::new(),
            rng: seed | 1,
            last_now: now,
            stats: ProxyStats::default(),
        }
    }

    /// The interface's address changed; later reports come from it.
    pub fn set_address(&mut self, address: F::Addr) {
        self.address = address;
    }

    /// The membership reported now.
    pub fn membership(&self) -> &BTreeMap<F::Addr, SourceFilter<F::Addr>> {
        &self.membership
    }

    /// The counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// The Host Compatibility Mode: the version reports are sent in.
    pub fn mode(&self) -> Version {
        self.mode
    }

    /// The upstream querier last heard, and when.
    pub fn querier(&self) -> Option<(F::Addr, Instant)> {
        self.querier
    }

    /// The membership to report from now on; groups with an empty filter (INCLUDE {})
    /// are no membership. Each group whose state differs is reported at once.
    pub fn set_membership(
        &mut self,
        now: Instant,
        membership: BTreeMap<F::Addr, SourceFilter<F::Addr>>,
    ) {
        let now = self.advance(now);
        let new: BTreeMap<F::Addr, SourceFilter<F::Addr>> = membership
            .into_iter()
            .filter(|(_, f)| !f.is_empty())
            .collect();
        let none = SourceFilter::include([]);
        let groups: BTreeSet<F::Addr> = self.membership.keys().chain(new.keys()).copied().collect();
        let mut v3_records = Vec::new();
        for group in groups {
            let old = self.membership.get(&group).unwrap_or(&none).clone();
            let cur = new.get(&group).unwrap_or(&none);
            if old == *cur {
                continue;
            }
            match self.mode {
                Version::V3 => {
                    let change = records::state_change(group, &old, cur);
                    let repeat = match self.repeats.get(&group) {
                        Some(_) => vec![records::full_state_change(group, cur)],
                        None => change.clone(),
                    };
                    v3_records.extend(change);
                    self.schedule_repeat(now, group, repeat);
                }
                Version::V2 | Version::V1 => {
                    if old.is_empty() {
                        self.send_older_report(group);
                        self.schedule_repeat(now, group, Vec::new());
                    } else if cur.is_empty() {
                        self.repeats.remove(&group);
                        if self.mode == Version::V2 {
                            self.send(Message::Leave { group });
                            self.stats.leaves_v2 += 1;
                        }
                    }
                    // A change of sources only means nothing to an IGMPv1/v2 router.
                }
            }
        }
        self.membership = new;
        self.send_v3(v3_records);
    }

    /// The proxy goes away (the agent stops): every group reported is left at once, as
    /// a state change to no membership (RFC 3376 5.1; RFC 4605 4.1 has the upstream
    /// interface behave as a host): in IGMPv3 TO_IN({}) from EXCLUDE and BLOCK(A) from
    /// INCLUDE(A), in IGMPv2 a Leave Group to 224.0.0.2, in IGMPv1 nothing (there is no
    /// leave). The change is repeated as any other ([`Upstream::next_repeat`]); pending
    /// query answers are dropped. Returns how many groups were left.
    pub fn leave_all(&mut self, now: Instant) -> usize {
        let left = self.membership.len();
        self.set_membership(now, BTreeMap::new());
        self.general_answer = None;
        self.group_answers.clear();
        left
    }

    /// When the next repeat of a state change is due, if any is pending (what a
    /// stopping driver waits for after [`Upstream::leave_all`]).
    pub fn next_repeat(&self) -> Option<Instant> {
        self.repeats.values().map(|r| r.at).min()
    }

    /// One IP packet received on the interface (with its IGMP or MLD message).
    /// Untrusted: anything that fails the family's checks (RFC 3376 4, RFC 3810 5) is
    /// counted in [`ProxyStats::bad_packets`].
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.advance(now);
        let Ok(p) = F::accept(bytes, &mut Dropped::default(), true) else {
            self.stats.bad_packets += 1;
            return;
        };
        let q = match p.message {
            Message::Query(q) => q,
            Message::OldReport { .. } | Message::Leave { .. } | Message::Report(_) => {
                // Our own reports, looped back by a socket that sees outgoing frames,
                // are not another host's.
                if p.src != self.address || F::is_unspecified(self.address) {
                    self.stats.other_hosts_messages += 1;
                }
                return;
            }
        };
        let (version, group, sources) = (q.version, q.group, q.sources);
        let max_resp = match version {
            Version::V1 => {
                self.stats.queries_v1 += 1;
                // RFC 3376 7.1: an IGMPv1 query means a Max Resp Time of 10 s.
                Duration::from_secs(10)
            }
            Version::V2 => {
                self.stats.queries_v2 += 1;
                q.max_resp
            }
            Version::V3 => {
                self.stats.queries_v3 += 1;
                if F::is_unspecified(group) {
                    // RFC 3376 4.1.6, 4.1.7, 8.12 (RFC 3810 5.1.8, 5.1.9, 9.12): the
                    // querier's variables (0 means unknown or above 7: keep what we had).
                    if q.qrv > 0 {
                        self.querier_vars.robustness = u32::from(q.qrv);
                        self.learned_robustness = Some(u32::from(q.qrv));
                    }
                    if !q.qqi.is_zero() {
                        self.querier_vars.query_interval = q.qqi;
                    }
                    self.querier_vars.query_response_interval = q.max_resp;
                }
                q.max_resp
            }
        };
        self.querier = Some((p.src, now));
        self.compat
            .heard(now, version, self.querier_vars.older_querier_timeout());
        self.update_mode(now);
        let at = now + self.random_delay(max_resp);
        if F::is_unspecified(group) {
            // RFC 3376 5.2 rule 1: an earlier pending general answer stands.
            if self.general_answer.is_none_or(|t| t > at) {
                self.general_answer = Some(at);
            }
            return;
        }
        if !self.membership.contains_key(&group) || self.general_answer.is_some_and(|t| t <= at) {
            return;
        }
        let sources = (!sources.is_empty() && self.mode == Version::V3)
            .then(|| sources.into_iter().collect::<BTreeSet<_>>());
        let answer = match self.group_answers.remove(&group) {
            // Rules 3 to 5: the earlier time, and the union of the sources asked about
            // (any group-specific query makes it a group answer).
            Some(old) => GroupAnswer {
                at: old.at.min(at),
                sources: match (old.sources, sources) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                },
            },
            None => GroupAnswer { at, sources },
        };
        self.group_answers.insert(group, answer);
    }

    /// When [`Upstream::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.general_answer
            .into_iter()
            .chain(self.group_answers.values().map(|a| a.at))
            .chain(self.repeats.values().map(|r| r.at))
            .chain(self.compat.next_expiry(self.last_now))
            .min()
    }

    /// Sends whatever is due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.update_mode(now);
        if self.general_answer.is_some_and(|t| t <= now) {
            self.general_answer = None;
            self.answer_general();
        }
        let due: Vec<(F::Addr, GroupAnswer<F::Addr>)> = self
            .group_answers
            .iter()
            .filter(|(_, a)| a.at <= now)
            .map(|(g, a)| (*g, a.clone()))
            .collect();
        let mut v3_records = Vec::new();
        for (group, answer) in due {
            self.group_answers.remove(&group);
            let Some(filter) = self.membership.get(&group).cloned() else {
                continue;
            };
            match (self.mode, answer.sources) {
                (Version::V3, None) => v3_records.push(records::current_state(group, &filter)),
                (Version::V3, Some(q)) => {
                    v3_records.extend(records::source_state(group, &filter, &q))
                }
                _ => self.send_older_report(group),
            }
        }
        let due: Vec<F::Addr> = self
            .repeats
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(g, _)| *g)
            .collect();
        for group in due {
            let Some(mut r) = self.repeats.remove(&group) else {
                continue;
            };
            match self.mode {
                Version::V3 => v3_records.extend(r.records.iter().cloned()),
                _ if self.membership.contains_key(&group) => self.send_older_report(group),
                _ => {}
            }
            r.remaining = r.remaining.saturating_sub(1);
            if r.remaining > 0 {
                r.at = now + self.random_delay(self.config.unsolicited_report_interval);
                self.repeats.insert(group, r);
            }
        }
        self.send_v3(v3_records);
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit<F>> {
        self.transmits.pop_front()
    }

    fn answer_general(&mut self) {
        // A general answer covers every pending group answer (RFC 3376 5.2 rule 2).
        self.group_answers.clear();
        match self.mode {
            Version::V3 => {
                let all = self
                    .membership
                    .iter()
                    .map(|(g, f)| records::current_state(*g, f))
                    .collect();
                self.send_v3(all);
            }
            _ => {
                let groups: Vec<F::Addr> = self.membership.keys().copied().collect();
                for g in groups {
                    self.send_older_report(g);
                }
            }
        }
    }

    fn update_mode(&mut self, now: Instant) {
        self.compat.expire(now);
        let mode = self.compat.mode(now);
        if mode != self.mode {
            self.stats.mode_changes += 1;
            // RFC 3376 7.2.1: pending responses and retransmissions are cancelled when
            // the mode changes.
            self.group_answers.clear();
            self.repeats.clear();
            self.general_answer = None;
            self.mode = mode;
        }
    }

    fn schedule_repeat(&mut self, now: Instant, group: F::Addr, records: Vec<Record<F::Addr>>) {
        let robustness = self.learned_robustness.unwrap_or(self.config.robustness);
        if robustness <= 1 {
            self.repeats.remove(&group);
            return;
        }
        let at = now + self.random_delay(self.config.unsolicited_report_interval);
        self.repeats.insert(
            group,
            Repeat {
                at,
                remaining: robustness - 1,
                records,
            },
        );
    }

    fn send_older_report(&mut self, group: F::Addr) {
        if self.mode == Version::V1 {
            self.stats.reports_v1 += 1;
        } else {
            self.stats.reports_v2 += 1;
        }
        let version = self.mode;
        self.send(Message::OldReport { version, group });
    }

    fn send_v3(&mut self, all: Vec<Record<F::Addr>>) {
        for records in records::pack(all, F::MAX_REPORT_PAYLOAD) {
            self.stats.reports_v3 += 1;
            self.send(Message::Report(records));
        }
    }

    fn send(&mut self, message: Message<F::Addr>) {
        let (dst, message, packet) = F::emit(self.address, message);
        self.transmits.push_back(Transmit {
            dst,
            packet,
            message,
        });
    }

    /// A delay drawn uniformly from [0, max), in milliseconds (xorshift64).
    fn random_delay(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Duration::ZERO;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_millis(self.rng % ms)
    }

    fn advance(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }
}
