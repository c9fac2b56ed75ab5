//! One interface's IGMP router: querier election, queries, group table and events.

use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use mcgate_wire::igmp::{GroupRecord, IgmpRepr, QueryV3, RecordType, decode_code, encode_code};

use crate::group::{Actions, Group, Record};
use crate::rate::TokenBucket;
use crate::{Config, Event, FilterMode, GroupState, SourceFilter, Stats, Transmit};

/// All-systems group, destination of general queries (RFC 3376 4.1.12).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// All-routers group, destination of IGMPv2 leaves (RFC 2236 section 3).
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// All IGMPv3-capable routers, destination of IGMPv3 reports (RFC 3376 4.2.14).
pub const ALL_IGMPV3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

/// Most groups one interface tracks; records for more are dropped and counted, so a
/// host cannot grow the table without bound.
pub const MAX_GROUPS: usize = 4096;
/// Most sources one group tracks (a full-size report record carries at most 366).
pub const MAX_SOURCES_PER_GROUP: usize = 512;
/// Most sources one interface tracks over all its groups. With [`MAX_GROUPS`] this
/// bounds both the memory of an interface and the work of one timer scan.
pub const MAX_SOURCES: usize = 16_384;

/// The kinds of timer an interface runs (quinn-proto style timer table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Next general query, startup or periodic (6.6.2, 8.2, 8.6).
    GeneralQuery,
    /// Other Querier Present timer (6.6.2, 8.5).
    OtherQuerierPresent,
    /// Any timer of a group: group, source, older-host-present, reporter, query
    /// retransmission.
    Group(Ipv4Addr),
}

/// The other router currently elected querier (RFC 3376 6.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OtherQuerier {
    address: Ipv4Addr,
    /// The version of its queries; below ours it rules the link (7.3.1).
    version: u8,
    expires: Instant,
    /// Robustness and query interval it announced (4.1.6, 4.1.7), adopted while it is
    /// querier.
    robustness: Option<u8>,
    query_interval: Option<Duration>,
}

/// The router side of IGMP on one interface. See the crate documentation.
#[derive(Debug, Clone)]
pub struct Interface {
    config: Config,
    address: Ipv4Addr,
    groups: BTreeMap<Ipv4Addr, Group>,
    other_querier: Option<OtherQuerier>,
    general_query_next: Option<Instant>,
    startup_left: u8,
    bucket: TokenBucket,
    stats: Stats,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// What the last events said about each group, to emit only real changes.
    published: BTreeMap<Ipv4Addr, (SourceFilter, Vec<Ipv4Addr>)>,
    marks: Marks,
    /// Each group's earliest deadline, indexed so the next timer is found without
    /// scanning every group and source.
    deadlines: BTreeSet<(Instant, Ipv4Addr)>,
    /// What the index holds for each group: its deadline and its number of sources.
    indexed: BTreeMap<Ipv4Addr, (Option<Instant>, usize)>,
    /// Sources over all groups, as of the last [`Interface::reindex`].
    total_sources: usize,
    /// The latest time handed in; earlier times are treated as this one.
    last_now: Instant,
}

/// Lower wins the election (6.6.2). 0.0.0.0, the address of a router with no address of
/// its own on the link (a proxy querier, RFC 4541 2.1.1), loses to any real address.
fn election_key(a: Ipv4Addr) -> u64 {
    if a.is_unspecified() {
        u64::MAX
    } else {
        u64::from(u32::from(a))
    }
}

/// Link-local groups (224.0.0.0/24) are never reported (RFC 3376 section 5).
fn is_link_local(g: Ipv4Addr) -> bool {
    let [a, b, c, _] = g.octets();
    a == 224 && b == 0 && c == 0
}

fn tenths(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX)
}

fn record_kind(kind: RecordType) -> Option<Record> {
    Some(match kind {
        RecordType::ModeIsInclude => Record::IsIn,
        RecordType::ModeIsExclude => Record::IsEx,
        RecordType::ChangeToInclude => Record::ToIn,
        RecordType::ChangeToExclude => Record::ToEx,
        RecordType::AllowNewSources => Record::Allow,
        RecordType::BlockOldSources => Record::Block,
        RecordType::Unknown(_) => return None,
    })
}

impl Interface {
    /// Starts the router on an interface with `address` (0.0.0.0 when it has none: its
    /// queries then come from 0.0.0.0). It assumes it is querier and sends the first
    /// startup query at once (RFC 3376 6.6.2, 8.7). The config is used with every value
    /// forced into range; see [`Config::validate`] to reject bad values instead.
    pub fn new(config: Config, address: Ipv4Addr, now: Instant) -> Self {
        let config = config.sanitized();
        let mut this = Self {
            bucket: TokenBucket::new(config.report_rate_limit, now),
            startup_left: config.startup_query_count,
            config,
            address,
            groups: BTreeMap::new(),
            other_querier: None,
            general_query_next: Some(now),
            stats: Stats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            published: BTreeMap::new(),
            marks: Marks::default(),
            deadlines: BTreeSet::new(),
            indexed: BTreeMap::new(),
            total_sources: 0,
            last_now: now,
        };
        this.handle_timeout(now);
        this
    }

    /// The configuration in use (after range checks).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This interface's address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The interface's address changed (a CNI often sets it just after the link came up,
    /// while the router already runs). Queries go out from the new address, and the
    /// election is held again with it (RFC 3376 6.6.2): if the new address is lower than
    /// the present querier's, this router resumes the querier role at once, as it would
    /// on hearing that querier's next query.
    pub fn set_address(&mut self, now: Instant, address: Ipv4Addr) {
        let now = self.advance(now);
        self.address = address;
        let wins = self
            .other_querier
            .as_ref()
            .is_some_and(|q| election_key(address) < election_key(q.address));
        if wins {
            self.on_other_querier_expired(now);
            self.run_timers(now);
        }
        self.flush_events();
    }

    /// Replaces the configuration (the domain's version or timers changed). A version
    /// change restarts the startup queries so hosts learn it quickly; shorter intervals
    /// take effect at once.
    pub fn set_config(&mut self, now: Instant, config: Config) {
        let now = self.advance(now);
        let config = config.sanitized();
        let old_version = self.version();
        let version_changed = config.version != self.config.version;
        self.bucket.set_rate(config.report_rate_limit, now);
        self.config = config;
        self.version_changed(old_version);
        if self.is_querier() {
            if version_changed {
                self.startup_left = self.config.startup_query_count;
                self.general_query_next = Some(now);
            } else {
                let latest = now + self.config.query_interval;
                if self.general_query_next.is_none_or(|t| t > latest) {
                    self.general_query_next = Some(latest);
                }
            }
        }
        self.marks.extend(self.groups.keys().copied());
        self.run_timers(now);
        self.flush_events();
    }

    /// Feeds one received IGMP message whose IP header was already checked (TTL 1,
    /// Router Alert where needed). `src` and `dst` are the IP addresses. The message's
    /// destination is checked here, reports are rate limited, and the state updated.
    pub fn handle_igmp(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, msg: &IgmpRepr) {
        let now = self.advance(now);
        if !self.destination_ok(dst, msg) {
            self.stats.dropped.wrong_destination += 1;
        } else {
            self.count_received(msg);
            match msg {
                IgmpRepr::QueryV1 => self.on_query(now, src, 1, Ipv4Addr::UNSPECIFIED, None),
                IgmpRepr::QueryV2 {
                    group,
                    max_resp_time,
                } => self.on_query(
                    now,
                    src,
                    2,
                    *group,
                    Some(HeardQuery {
                        max_resp_tenths: u32::from(*max_resp_time),
                        suppress: false,
                        sources: &[],
                        qrv: 0,
                        qqic: 0,
                    }),
                ),
                IgmpRepr::QueryV3(q) => self.on_query(
                    now,
                    src,
                    3,
                    q.group,
                    Some(HeardQuery {
                        max_resp_tenths: decode_code(q.max_resp_code),
                        suppress: q.suppress,
                        sources: &q.sources,
                        qrv: q.qrv,
                        qqic: q.qqic,
                    }),
                ),
                IgmpRepr::ReportV1 { group } => {
                    if self.bucket.take(now) {
                        self.on_old_report(now, src, *group, 1);
                    } else {
                        self.stats.dropped.rate_limited += 1;
                    }
                }
                IgmpRepr::ReportV2 { group } => {
                    if self.bucket.take(now) {
                        self.on_old_report(now, src, *group, 2);
                    } else {
                        self.stats.dropped.rate_limited += 1;
                    }
                }
                IgmpRepr::LeaveV2 { group } => {
                    if self.bucket.take(now) {
                        self.on_leave(now, src, *group);
                    } else {
                        self.stats.dropped.rate_limited += 1;
                    }
                }
                IgmpRepr::ReportV3 { records } => {
                    if self.bucket.take(now) {
                        for r in records {
                            self.on_record(now, src, r);
                        }
                    } else {
                        self.stats.dropped.rate_limited += 1;
                    }
                }
            }
        }
        // Fast leave may have expired timers at `now`.
        self.run_timers(now);
        self.flush_events();
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.flush_events();
    }

    /// Feeds one received IPv4 packet (header included). It is checked (IP header, TTL
    /// 1, IGMP checksum and format, Router Alert on IGMPv2/v3 reports and leaves,
    /// destination) and dropped with a counted reason when bad; see [`Stats`].
    pub fn handle_packet(&mut self, now: Instant, ip_packet: &[u8]) {
        match crate::packet::check(ip_packet) {
            Ok(p) => self.handle_igmp(now, p.src, p.dst, &p.message),
            Err(reason) => {
                reason.count(&mut self.stats.dropped);
                self.handle_timeout(now);
            }
        }
    }

    /// The next packet to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next membership or querier change, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Interface::handle_timeout`] must next be called; `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(t, _)| t)
    }

    /// The forwarding state of every group with members (RFC 3376 6.3).
    pub fn groups(&self) -> impl Iterator<Item = (Ipv4Addr, SourceFilter)> + '_ {
        let version = self.version();
        self.groups
            .iter()
            .filter_map(move |(g, state)| state.filter(version).map(|f| (*g, f)))
    }

    /// The hosts known to be members of `group` (the IP sources of their reports), sorted.
    pub fn reporters(&self, group: Ipv4Addr) -> Vec<Ipv4Addr> {
        self.groups
            .get(&group)
            .map(Group::reporter_list)
            .unwrap_or_default()
    }

    /// The full state of `group` with its timers, if the router keeps any.
    pub fn group_state(&self, group: Ipv4Addr) -> Option<GroupState> {
        let g = self.groups.get(&group)?;
        Some(GroupState {
            mode: g.mode,
            group_timer: g.timer,
            sources: g.sources.iter().map(|(a, s)| (*a, s.timer)).collect(),
            compatibility: g.compat(),
            v1_host_timer: g.v1_host,
            v2_host_timer: g.v2_host,
        })
    }

    /// Whether this interface is the link's querier.
    pub fn is_querier(&self) -> bool {
        self.other_querier.is_none()
    }

    /// The other router that is querier, if one is.
    pub fn querier(&self) -> Option<Ipv4Addr> {
        self.other_querier.as_ref().map(|q| q.address)
    }

    /// The IGMP version in force on the link: ours, or an older querier's (7.3.1).
    pub fn version(&self) -> u8 {
        let ours = self.config.version.number();
        match &self.other_querier {
            Some(q) => ours.min(q.version),
            None => ours,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ---- time ----

    /// Makes time monotonic and runs the timers due by `now`.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.last_now);
        self.last_now = now;
        self.run_timers(now);
        now
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let general = self.general_query_next.map(|t| (t, Timer::GeneralQuery));
        let other = self
            .other_querier
            .as_ref()
            .map(|q| (q.expires, Timer::OtherQuerierPresent));
        let group = self.deadlines.first().map(|(t, g)| (*t, Timer::Group(*g)));
        general
            .into_iter()
            .chain(other)
            .chain(group)
            .min_by_key(|(t, _)| *t)
    }

    /// Brings the deadline index up to date for every group changed since last time.
    fn reindex(&mut self) {
        for g in std::mem::take(&mut self.marks.stale) {
            if let Some((old, count)) = self.indexed.remove(&g) {
                if let Some(t) = old {
                    self.deadlines.remove(&(t, g));
                }
                self.total_sources = self.total_sources.saturating_sub(count);
            }
            if let Some(state) = self.groups.get(&g) {
                let deadline = state.next_deadline();
                let count = state.sources.len();
                self.indexed.insert(g, (deadline, count));
                self.total_sources += count;
                if let Some(t) = deadline {
                    self.deadlines.insert((t, g));
                }
            }
        }
    }

    /// Fires timers in time order, each at its own deadline, so a late call behaves as
    /// if it had been on time (except that missed periodic queries are sent once).
    fn run_timers(&mut self, now: Instant) {
        loop {
            self.reindex();
            let Some((t, timer)) = self.next_timer() else {
                break;
            };
            if t > now {
                break;
            }
            match timer {
                Timer::GeneralQuery => self.on_general_query_timer(t, now),
                Timer::OtherQuerierPresent => self.on_other_querier_expired(t),
                Timer::Group(g) => self.on_group_timer(g, t),
            }
        }
    }

    fn on_general_query_timer(&mut self, t: Instant, now: Instant) {
        self.send_general_query();
        // 6.6.2 / 8.6 / 8.7: Startup Query Count queries at the Startup Query Interval,
        // then one every Query Interval.
        self.startup_left = self.startup_left.saturating_sub(1);
        let gap = if self.startup_left > 0 {
            self.config.startup_query_interval
        } else {
            self.config.query_interval
        };
        let mut next = t + gap;
        if next <= now {
            next = now + gap;
        }
        self.general_query_next = Some(next);
    }

    /// 6.6.2: when the Other Querier Present timer expires, resume the role of querier.
    fn on_other_querier_expired(&mut self, t: Instant) {
        let old_version = self.version();
        self.other_querier = None;
        self.events
            .push_back(Event::QuerierChanged { querier: None });
        self.version_changed(old_version);
        self.startup_left = 0;
        self.general_query_next = Some(t);
    }

    fn on_group_timer(&mut self, g: Ipv4Addr, t: Instant) {
        self.marks.insert(g);
        let Some(state) = self.groups.get_mut(&g) else {
            return;
        };
        state.expire(t);
        let group_query_due = state.group_query_next.is_some_and(|n| n <= t);
        let source_query_due = state.source_query_next.is_some_and(|n| n <= t);
        if group_query_due {
            self.send_group_query(g, t, false);
        }
        if source_query_due {
            self.send_source_query(g, t, None);
        }
        self.marks.insert(g);
        self.reap(g);
    }

    /// Deletes a group the router no longer keeps any state for.
    fn reap(&mut self, g: Ipv4Addr) {
        if self.groups.get(&g).is_some_and(Group::is_dead) {
            self.groups.remove(&g);
            self.marks.insert(g);
        }
    }

    // ---- effective parameters ----

    /// The parameters in use: ours, with the querier's robustness and query interval
    /// adopted while another router is querier (RFC 3376 4.1.6, 4.1.7).
    fn effective(&self) -> Config {
        let mut c = self.config.clone();
        if let Some(q) = &self.other_querier {
            if let Some(r) = q.robustness {
                c.robustness = r;
            }
            if let Some(qi) = q.query_interval {
                c.query_interval = qi;
            }
        }
        c
    }

    fn gmi(&self) -> Duration {
        self.effective().group_membership_interval()
    }

    // ---- received messages ----

    fn count_received(&mut self, msg: &IgmpRepr) {
        let r = &mut self.stats.received;
        match msg {
            IgmpRepr::QueryV1 => r.query_v1 += 1,
            IgmpRepr::QueryV2 { .. } => r.query_v2 += 1,
            IgmpRepr::QueryV3(_) => r.query_v3 += 1,
            IgmpRepr::ReportV1 { .. } => r.report_v1 += 1,
            IgmpRepr::ReportV2 { .. } => r.report_v2 += 1,
            IgmpRepr::LeaveV2 { .. } => r.leave_v2 += 1,
            IgmpRepr::ReportV3 { .. } => r.report_v3 += 1,
        }
    }

    /// Where each message may be sent (RFC 3376 4.1.12 and 4.2.14, RFC 2236 section 3);
    /// a unicast to this interface is accepted for every type.
    fn destination_ok(&self, dst: Ipv4Addr, msg: &IgmpRepr) -> bool {
        if !self.address.is_unspecified() && dst == self.address {
            return true;
        }
        match msg {
            IgmpRepr::QueryV1 => dst == ALL_SYSTEMS,
            IgmpRepr::QueryV2 { group, .. } | IgmpRepr::QueryV3(QueryV3 { group, .. }) => {
                dst == ALL_SYSTEMS || (!group.is_unspecified() && dst == *group)
            }
            IgmpRepr::ReportV1 { group } | IgmpRepr::ReportV2 { group } => dst == *group,
            // RFC 2236 asks routers to also accept a leave sent to the group itself, as
            // some older hosts do.
            IgmpRepr::LeaveV2 { group } => dst == ALL_ROUTERS || dst == *group,
            IgmpRepr::ReportV3 { .. } => dst == ALL_IGMPV3_ROUTERS,
        }
    }

    fn on_query(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        version: u8,
        group: Ipv4Addr,
        heard: Option<HeardQuery<'_>>,
    ) {
        // Our own query looped back is not another router.
        if !self.address.is_unspecified() && src == self.address {
            return;
        }
        // 6.6.2: a query from a lower address than ours (and not higher than the
        // querier we already know) makes its sender the querier.
        let wins = election_key(src) < election_key(self.address)
            && self
                .other_querier
                .as_ref()
                .is_none_or(|q| election_key(src) <= election_key(q.address));
        if wins {
            let old_version = self.version();
            let was_querier = self.is_querier();
            let previous = self.querier();
            let (robustness, query_interval) = match &heard {
                Some(h) if version == 3 => (
                    (h.qrv != 0).then_some(h.qrv),
                    (h.qqic != 0).then(|| Duration::from_secs(u64::from(decode_code(h.qqic)))),
                ),
                _ => (None, None),
            };
            if version < self.config.version.number() {
                // 7.3.1: an older querier rules the link; the RFC asks for a warning.
                self.stats.older_version_queries += 1;
            }
            let mut adopted = self.config.clone();
            if let Some(r) = robustness {
                adopted.robustness = r;
            }
            if let Some(qi) = query_interval {
                adopted.query_interval = qi;
            }
            self.other_querier = Some(OtherQuerier {
                address: src,
                version,
                expires: now + adopted.other_querier_present_interval(),
                robustness,
                query_interval,
            });
            if was_querier {
                self.general_query_next = None;
                self.startup_left = 0;
                for (g, state) in self.groups.iter_mut() {
                    state.cancel_queries();
                    self.marks.insert(*g);
                }
            }
            if previous != Some(src) {
                self.events
                    .push_back(Event::QuerierChanged { querier: Some(src) });
            }
            self.version_changed(old_version);
        }
        // 6.6.1: a non-querier lowers its timers on a group(-and-source)-specific query
        // without the S flag; RFC 2236 section 3: to Last Member Query Count times the
        // query's Max Response Time.
        let Some(h) = heard else { return };
        if self.is_querier() || h.suppress || group.is_unspecified() {
            return;
        }
        let lmqt = Duration::from_millis(u64::from(h.max_resp_tenths) * 100)
            * u32::from(self.config.last_member_count);
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        let lowered = now + lmqt;
        if h.sources.is_empty() {
            if state.mode == FilterMode::Exclude {
                state.timer = state.timer.map(|t| t.min(lowered));
            }
        } else {
            for s in h.sources {
                if let Some(src) = state.sources.get_mut(s) {
                    src.timer = src.timer.map(|t| t.min(lowered));
                }
            }
        }
        self.marks.insert(group);
    }

    /// Checks a report's group; false (and counted) when it carries no membership.
    fn group_ok(&mut self, group: Ipv4Addr) -> bool {
        if !group.is_multicast() {
            self.stats.dropped.invalid_group += 1;
            false
        } else if is_link_local(group) {
            self.stats.ignored_link_local += 1;
            false
        } else {
            true
        }
    }

    /// 7.3.2: an IGMPv1 or v2 report sets the group's older-host-present timer and
    /// counts as IS_EX({}).
    fn on_old_report(&mut self, now: Instant, src: Ipv4Addr, group: Ipv4Addr, version: u8) {
        if !self.group_ok(group) {
            return;
        }
        let gmi = self.gmi();
        let Some(state) = self.group_entry(group) else {
            return;
        };
        // 8.13: Older Version Host Present Timeout = Group Membership Interval.
        if version == 1 {
            state.v1_host = Some(now + gmi);
        } else {
            state.v2_host = Some(now + gmi);
        }
        state.track_reporter(src, Record::IsEx, &BTreeSet::new(), None);
        self.apply(now, src, group, Record::IsEx, &BTreeSet::new());
    }

    /// An IGMPv2 leave: TO_IN({}) (7.3.2), ignored while an IGMPv1 host is present
    /// (7.3.2; RFC 2236 section 4).
    fn on_leave(&mut self, now: Instant, src: Ipv4Addr, group: Ipv4Addr) {
        if !self.group_ok(group) {
            return;
        }
        let version = self.version();
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        state.track_reporter(src, Record::ToIn, &BTreeSet::new(), None);
        let ignored = state.compat().min(version) == 1;
        self.marks.insert(group);
        if ignored {
            return;
        }
        self.apply(now, src, group, Record::ToIn, &BTreeSet::new());
    }

    fn on_record(&mut self, now: Instant, src: Ipv4Addr, r: &GroupRecord) {
        let Some(kind) = record_kind(r.kind) else {
            // 4.2.12: records of unknown types are ignored.
            self.stats.ignored_records += 1;
            return;
        };
        if !self.group_ok(r.group) {
            return;
        }
        let sources: BTreeSet<Ipv4Addr> = r.sources.iter().copied().collect();
        let version = self.version();
        let compat = self
            .groups
            .get(&r.group)
            .map_or(3, Group::compat)
            .min(version);
        let translated = if version <= 2 {
            // An IGMPv2 router (RFC 2236) knows only join and leave: a record that
            // leaves every source is a leave (ignored while IGMPv1 hosts are present,
            // RFC 2236 section 4), any other wish is a join of all sources.
            match kind {
                Record::ToIn if sources.is_empty() => {
                    (compat > 1).then(|| (Record::ToIn, BTreeSet::new()))
                }
                Record::IsIn if sources.is_empty() => None,
                Record::Block => None,
                _ => Some((Record::IsEx, BTreeSet::new())),
            }
        } else {
            // 7.3.2: with older hosts present, BLOCK is ignored and TO_EX loses its
            // source list; with IGMPv1 hosts, TO_IN is ignored too.
            match (compat, kind) {
                (1 | 2, Record::Block) => None,
                (1 | 2, Record::ToEx) => Some((Record::ToEx, BTreeSet::new())),
                (1, Record::ToIn) => None,
                _ => Some((kind, sources.clone())),
            }
        };
        let creates = matches!(
            translated,
            Some((
                Record::IsIn | Record::Allow | Record::IsEx | Record::ToEx,
                _
            ))
        ) || matches!(&translated, Some((Record::ToIn, s)) if !s.is_empty());
        let expires = Some(now + self.gmi());
        self.reindex();
        let total = self.total_sources;
        if !self.groups.contains_key(&r.group) && !creates {
            return;
        }
        let Some(state) = self.group_entry(r.group) else {
            return;
        };
        state.track_reporter(src, kind, &sources, expires);
        let room = state.sources.len().saturating_add(sources.len()) <= MAX_SOURCES_PER_GROUP
            && total.saturating_add(sources.len()) <= MAX_SOURCES;
        match translated {
            Some((record, sources)) if room => self.apply(now, src, r.group, record, &sources),
            Some(_) => self.stats.dropped.state_limit += 1,
            None => {}
        }
        self.reap(r.group);
    }

    /// The state of `group`, created (INCLUDE {}) when absent and the table has room.
    fn group_entry(&mut self, group: Ipv4Addr) -> Option<&mut Group> {
        if !self.groups.contains_key(&group) && self.groups.len() >= MAX_GROUPS {
            self.stats.dropped.state_limit += 1;
            return None;
        }
        self.marks.insert(group);
        Some(self.groups.entry(group).or_insert_with(Group::new))
    }

    /// Runs a transition of 6.4 and the queries it asks for (6.6.3).
    fn apply(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        group: Ipv4Addr,
        record: Record,
        sources: &BTreeSet<Ipv4Addr>,
    ) {
        let gmi = self.gmi();
        let fast_leave = self.config.fast_leave;
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        let actions = state.apply(record, sources, now, gmi);
        self.marks.insert(group);
        // Fast leave: with no other member known, what the queries would ask about is
        // treated as already timed out, at once and with no query sent.
        let alone = state.reporters.keys().all(|r| *r == src);
        if fast_leave && alone {
            for s in &actions.query_sources {
                match state.mode {
                    FilterMode::Include => {
                        state.sources.remove(s);
                    }
                    FilterMode::Exclude => {
                        if let Some(s) = state.sources.get_mut(s) {
                            s.timer = None;
                            s.retransmit = 0;
                        }
                    }
                }
            }
            if actions.query_group && state.mode == FilterMode::Exclude {
                state.timer = Some(now);
            }
        } else if self.is_querier() {
            self.send_queries(group, now, actions);
        }
        self.reap(group);
    }

    // ---- queries sent ----

    fn send_queries(&mut self, group: Ipv4Addr, now: Instant, actions: Actions) {
        if !actions.query_sources.is_empty() {
            self.send_source_query(group, now, Some(&actions.query_sources));
        }
        if actions.query_group {
            self.send_group_query(group, now, true);
        }
    }

    /// Called when the link's version may have changed: below 3 source lists mean
    /// nothing, so every group becomes any-source (7.3.1).
    fn version_changed(&mut self, old: u8) {
        let new = self.version();
        if new < 3 && old >= 3 {
            for (g, state) in self.groups.iter_mut() {
                state.downgrade();
                self.marks.insert(*g);
            }
            let dead: Vec<Ipv4Addr> = self
                .groups
                .iter()
                .filter(|(_, s)| s.is_dead())
                .map(|(g, _)| *g)
                .collect();
            for g in dead {
                self.reap(g);
            }
        }
        if new != old {
            self.marks.extend(self.groups.keys().copied());
        }
    }

    fn queue(&mut self, dst: Ipv4Addr, message: IgmpRepr) {
        // From our address, 0.0.0.0 included (a querier without an address).
        let packet = mcgate_wire::igmp::emit_ip_packet(self.address, dst, &message);
        self.transmits.push_back(Transmit {
            dst,
            packet,
            message,
        });
    }

    fn v3_query(
        &self,
        group: Ipv4Addr,
        resp: Duration,
        suppress: bool,
        sources: Vec<Ipv4Addr>,
    ) -> IgmpRepr {
        let qrv = if self.config.robustness > 7 {
            0
        } else {
            self.config.robustness
        };
        let qqi = u32::try_from(self.config.query_interval.as_secs()).unwrap_or(u32::MAX);
        IgmpRepr::QueryV3(QueryV3 {
            group,
            max_resp_code: encode_code(tenths(resp)),
            suppress,
            qrv,
            qqic: encode_code(qqi),
            sources,
        })
    }

    fn v2_query(group: Ipv4Addr, resp: Duration) -> IgmpRepr {
        IgmpRepr::QueryV2 {
            group,
            max_resp_time: u8::try_from(tenths(resp)).unwrap_or(u8::MAX).max(1),
        }
    }

    /// 6.6.2 / RFC 2236 section 3: a general query to 224.0.0.1.
    fn send_general_query(&mut self) {
        let resp = self.config.query_response_interval;
        let msg = if self.version() >= 3 {
            self.v3_query(Ipv4Addr::UNSPECIFIED, resp, false, Vec::new())
        } else {
            Self::v2_query(Ipv4Addr::UNSPECIFIED, resp)
        };
        self.stats.sent.general_queries += 1;
        self.queue(ALL_SYSTEMS, msg);
    }

    /// 6.6.3.1: Q(G). The first lowers the group timer to LMQT and owes Last Member
    /// Query Count - 1 retransmissions every LMQI; each carries the S flag when the
    /// group timer is above LMQT (a report raised it since).
    fn send_group_query(&mut self, group: Ipv4Addr, now: Instant, first: bool) {
        let lmqt = self.config.last_member_query_time();
        let lmqi = self.config.last_member_interval;
        let count = self.config.last_member_count;
        let version = self.version();
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        if first {
            if state.mode == FilterMode::Exclude {
                state.timer = state.timer.map(|t| t.min(now + lmqt));
            }
            state.group_query_left = count;
        }
        if state.group_query_left == 0 {
            state.group_query_next = None;
            return;
        }
        let suppress = state.timer.is_some_and(|t| t > now + lmqt);
        state.group_query_left -= 1;
        state.group_query_next = (state.group_query_left > 0).then(|| now + lmqi);
        let msg = if version >= 3 {
            self.v3_query(group, lmqi, suppress, Vec::new())
        } else {
            Self::v2_query(group, lmqi)
        };
        self.stats.sent.group_queries += 1;
        self.queue(group, msg);
    }

    /// 6.6.3.2: Q(G,X). Sources of X with a timer above LMQT get their timer lowered to
    /// LMQT and Last Member Query Count retransmissions. Each round sends up to two
    /// queries: S set for sources whose timer is above LMQT again, S clear for the rest.
    fn send_source_query(&mut self, group: Ipv4Addr, now: Instant, x: Option<&BTreeSet<Ipv4Addr>>) {
        let lmqt = self.config.last_member_query_time();
        let lmqi = self.config.last_member_interval;
        let count = self.config.last_member_count;
        let version = self.version();
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        if let Some(x) = x {
            for s in x {
                if let Some(src) = state.sources.get_mut(s)
                    && src.timer.is_some_and(|t| t > now + lmqt)
                {
                    src.timer = Some(now + lmqt);
                    src.retransmit = count;
                }
            }
        }
        let mut with_s = Vec::new();
        let mut without_s = Vec::new();
        for (a, s) in state.sources.iter_mut() {
            if s.retransmit == 0 {
                continue;
            }
            s.retransmit -= 1;
            if s.timer.is_some_and(|t| t > now + lmqt) {
                with_s.push(*a);
            } else {
                without_s.push(*a);
            }
        }
        state.source_query_next = state
            .sources
            .values()
            .any(|s| s.retransmit > 0)
            .then(|| now + lmqi);
        // IGMPv1/v2 queries cannot carry sources; the group then falls back to its
        // timers alone.
        if version < 3 {
            return;
        }
        for (suppress, sources) in [(true, with_s), (false, without_s)] {
            if !sources.is_empty() {
                let msg = self.v3_query(group, lmqi, suppress, sources);
                self.stats.sent.group_source_queries += 1;
                self.queue(group, msg);
            }
        }
    }

    // ---- events ----

    fn flush_events(&mut self) {
        let version = self.version();
        self.reindex();
        for g in std::mem::take(&mut self.marks.dirty) {
            let current = self
                .groups
                .get(&g)
                .and_then(|s| s.filter(version).map(|f| (f, s.reporter_list())));
            if current.as_ref() == self.published.get(&g) {
                continue;
            }
            let event = match &current {
                Some((f, r)) => Event::GroupChanged {
                    group: g,
                    filter: Some(f.clone()),
                    reporters: r.clone(),
                },
                None => Event::GroupChanged {
                    group: g,
                    filter: None,
                    reporters: Vec::new(),
                },
            };
            self.events.push_back(event);
            match current {
                Some(c) => {
                    self.published.insert(g, c);
                }
                None => {
                    self.published.remove(&g);
                }
            }
        }
    }
}

/// Groups changed since the events were last flushed (`dirty`) and since the deadline
/// index was last updated (`stale`). Every change to a group marks it.
#[derive(Debug, Clone, Default)]
struct Marks {
    dirty: BTreeSet<Ipv4Addr>,
    stale: BTreeSet<Ipv4Addr>,
}

impl Marks {
    fn insert(&mut self, g: Ipv4Addr) {
        self.dirty.insert(g);
        self.stale.insert(g);
    }

    fn extend(&mut self, groups: impl IntoIterator<Item = Ipv4Addr>) {
        for g in groups {
            self.insert(g);
        }
    }
}

/// The parts of a received query the router acts on.
struct HeardQuery<'a> {
    max_resp_tenths: u32,
    suppress: bool,
    sources: &'a [Ipv4Addr],
    qrv: u8,
    qqic: u8,
}
