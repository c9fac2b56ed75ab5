//! One interface's IGMP or MLD router: its state, the driver-facing API, and the
//! dispatch of received messages and expired timers to the files that handle them
//! (`election.rs`, `reports.rs`, `queries.rs`).

use core::net::{Ipv4Addr, Ipv6Addr};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use mcgate_wire::Version;
use mcgate_wire::igmp::IgmpRepr;
use mcgate_wire::mld::MldRepr;

use crate::election::{OtherQuerier, election_key};
use crate::family::{Message, MldVersion, igmp_message, mld_message};
use crate::flood::ReportLimiter;
use crate::group::Group;
use crate::group_table::GroupTable;
use crate::timers::{Timer, TimerTable};
use crate::{Config, Event, Family, GroupState, Igmp, Ignored, Mld, SourceFilter, Stats, Transmit};

/// Most groups one interface tracks; records for more are dropped and counted, so a
/// host cannot grow the table without bound.
pub const MAX_GROUPS: usize = 4096;
/// Most sources one group tracks (a full-size report record carries at most 366).
pub const MAX_SOURCES_PER_GROUP: usize = 512;
/// Most sources one interface tracks over all its groups. With [`MAX_GROUPS`] this
/// bounds both the memory of an interface and the work of one timer scan.
pub const MAX_SOURCES: usize = 16_384;

/// The router side of IGMP on one interface: [`Router`] over [`Igmp`]. See the crate
/// documentation.
pub type Interface = Router<Igmp>;

/// The router side of MLD on one interface: [`Router`] over [`Mld`].
pub type MldInterface = Router<Mld>;

/// The router of one interface for the address family `F` ([`Interface`] for IGMP,
/// [`MldInterface`] for MLD). One state machine for both families: RFC 3810 sections
/// 6 to 8 are RFC 3376 sections 5 to 7 with other names.
#[derive(Debug, Clone)]
pub struct Router<F: Family> {
    pub(crate) config: Config,
    pub(crate) address: F::Addr,
    pub(crate) groups: GroupTable<F>,
    pub(crate) timers: TimerTable<F>,
    pub(crate) other_querier: Option<OtherQuerier<F::Addr>>,
    /// Startup queries still to send (RFC 3376 8.7).
    pub(crate) startup_left: u8,
    pub(crate) limiter: ReportLimiter<F>,
    /// When the first report of the current flood was dropped, while a recovery query is
    /// pending.
    pub(crate) flood_since: Option<Instant>,
    pub(crate) stats: Stats,
    pub(crate) transmits: VecDeque<Transmit<F>>,
    pub(crate) events: VecDeque<Event<F::Addr>>,
    /// What the last events said about each group, to emit only real changes.
    published: BTreeMap<F::Addr, Published<F::Addr>>,
    /// When each kind of ignored router message was last reported in an event.
    warned: BTreeMap<Ignored, Instant>,
    /// The latest time handed in; earlier times are treated as this one.
    last_now: Instant,
}

/// A group's filter and reporters as the last event gave them.
type Published<A> = (SourceFilter<A>, Vec<A>);

impl<F: Family> Router<F> {
    /// Starts the router on an interface with `address` (0.0.0.0 when it has none: its
    /// queries then come from 0.0.0.0; for MLD, the interface's link-local address, from
    /// which every query is sent, RFC 3810 section 5.1.14). It assumes it is querier and sends the first
    /// startup query at once (RFC 3376 6.6.2, 8.7). The config is used with every value
    /// forced into range; see [`Config::validate`] to reject bad values instead.
    pub fn new(config: Config, address: F::Addr, now: Instant) -> Self {
        let config = config.sanitized();
        let mut timers = TimerTable::default();
        timers.set(Timer::GeneralQuery, now);
        let mut this = Self {
            limiter: ReportLimiter::new(config.report_rate_limit, config.report_burst, now),
            startup_left: config.settings.startup_query_count(),
            config,
            address,
            groups: GroupTable::default(),
            timers,
            other_querier: None,
            flood_since: None,
            stats: Stats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            published: BTreeMap::new(),
            warned: BTreeMap::new(),
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
    pub fn address(&self) -> F::Addr {
        self.address
    }

    /// The interface's address changed (a CNI often sets it just after the link came up,
    /// while the router already runs). Queries go out from the new address, and the
    /// election is held again with it (RFC 3376 6.6.2): if the new address is lower than
    /// the present querier's, this router resumes the querier role at once, as it would
    /// on hearing that querier's next query.
    pub fn set_address(&mut self, now: Instant, address: F::Addr) {
        let now = self.advance(now);
        self.address = address;
        let wins = self
            .other_querier
            .as_ref()
            .is_some_and(|q| election_key::<F>(address) < election_key::<F>(q.address));
        if wins {
            self.on_other_querier_expired(now);
            self.run_timers(now);
        }
        self.flush_events();
    }

    /// Replaces the configuration (the domain's version or timers changed). A version
    /// change restarts the startup queries so hosts learn it quickly; shorter intervals
    /// take effect at once. Marking the link as one without other queriers ends the
    /// other querier's term at once.
    pub fn set_config(&mut self, now: Instant, config: Config) {
        let now = self.advance(now);
        let config = config.sanitized();
        let old_version = self.version();
        self.limiter
            .set_limits(config.report_rate_limit, config.report_burst, now);
        self.config = config;
        if !self.config.other_queriers && self.other_querier.is_some() {
            self.timers.stop(Timer::OtherQuerierPresent);
            self.resume_querier(now);
        }
        self.version_changed(old_version);
        if self.is_querier() {
            if self.version() != old_version {
                self.startup_left = self.config.settings.startup_query_count();
                self.timers.set(Timer::GeneralQuery, now);
            } else {
                let latest = now + self.config.query_interval();
                if self
                    .timers
                    .get(Timer::GeneralQuery)
                    .is_none_or(|t| t > latest)
                {
                    self.timers.set(Timer::GeneralQuery, latest);
                }
            }
        }
        self.groups.mark_all();
        self.run_timers(now);
        self.flush_events();
    }

    /// Feeds one received message, in family-neutral form, whose IP header was already
    /// checked (TTL 1, Router Alert where needed). `src` and `dst` are the IP addresses.
    /// The message's destination is checked here, router messages are dropped on a link
    /// without other queriers, reports are rate limited per host, and the state updated.
    pub fn handle_message(
        &mut self,
        now: Instant,
        src: F::Addr,
        dst: F::Addr,
        msg: &Message<F::Addr>,
    ) {
        let now = self.advance(now);
        let is_query = matches!(msg, Message::Query(_));
        // Our own query looped back is no other router's.
        let own = !F::is_unspecified(self.address) && src == self.address;
        if is_query && !own && !self.config.other_queriers {
            // Containers are hosts, not routers: nobody on this link may query.
            self.stats.dropped.router_message += 1;
            self.warn(now, src, Ignored::HostsOnlyLink);
        } else if !self.destination_ok(dst, msg) {
            self.stats.dropped.wrong_destination += 1;
        } else {
            self.count_received(msg);
            match msg {
                Message::Query(q) => self.on_query(now, src, q),
                Message::OldReport { version, group } => self.on_report(now, src, |this| {
                    this.on_old_report(now, src, *group, *version)
                }),
                Message::Leave { group } => {
                    self.on_report(now, src, |this| this.on_leave(now, src, *group))
                }
                Message::Report(records) => self.on_report(now, src, |this| {
                    for r in records {
                        this.on_record(now, src, r);
                    }
                }),
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

    /// Feeds one received IP packet (header included). It is checked and dropped with a
    /// counted reason when bad (see [`Stats`]): for IGMP the IPv4 header, TTL 1, the
    /// IGMP checksum and format, Router Alert on IGMPv2/v3 reports and leaves; for MLD
    /// the IPv6 extension headers, Hop Limit 1, Router Alert 0, the ICMPv6 checksum
    /// and format and a link-local source; then the destination for both.
    pub fn handle_packet(&mut self, now: Instant, ip_packet: &[u8]) {
        match F::accept(
            ip_packet,
            &mut self.stats.dropped,
            self.config.other_queriers,
        ) {
            Ok(p) => self.handle_message(now, p.src, p.dst, &p.message),
            Err(router) => {
                if let Some(from) = router {
                    let now = self.advance(now);
                    self.warn(now, from, Ignored::HostsOnlyLink);
                }
                self.handle_timeout(now);
            }
        }
    }

    /// The next packet to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit<F>> {
        self.transmits.pop_front()
    }

    /// The next membership or querier change, if any.
    pub fn poll_event(&mut self) -> Option<Event<F::Addr>> {
        self.events.pop_front()
    }

    /// When [`Interface::handle_timeout`] must next be called; `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(t, _)| t)
    }

    /// The forwarding state of every group with members (RFC 3376 6.3).
    pub fn groups(&self) -> impl Iterator<Item = (F::Addr, SourceFilter<F::Addr>)> + '_ {
        let version = self.version();
        self.groups
            .iter()
            .filter_map(move |(g, state)| state.filter(version).map(|f| (g, f)))
    }

    /// The hosts known to be members of `group` (the IP sources of their reports), sorted.
    pub fn reporters(&self, group: F::Addr) -> Vec<F::Addr> {
        self.groups
            .get(group)
            .map(Group::reporter_list)
            .unwrap_or_default()
    }

    /// The full state of `group` with its timers, if the router keeps any.
    pub fn group_state(&self, group: F::Addr) -> Option<GroupState<F::Addr>> {
        let g = self.groups.get(group)?;
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
    pub fn querier(&self) -> Option<F::Addr> {
        self.other_querier.as_ref().map(|q| q.address)
    }

    /// The IGMP version the router speaks on the link: the configured one, whatever the
    /// version of other queriers (RFC 3376 7.3.1). Each group's own compatibility mode
    /// (7.3.2) is in [`GroupState::compatibility`].
    pub fn version(&self) -> Version {
        self.config.version
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

    /// Fires timers in time order, each at its own deadline, so a late call behaves as
    /// if it had been on time (except that missed periodic queries are sent once).
    pub(crate) fn run_timers(&mut self, now: Instant) {
        while let Some((t, timer)) = self.timers.next() {
            if t > now {
                break;
            }
            match timer {
                Timer::GeneralQuery => self.on_general_query_timer(t, now),
                Timer::OtherQuerierPresent => self.on_other_querier_expired(t),
                Timer::Recovery => self.on_recovery_timer(t),
                Timer::Group(g) => self.on_group_timer(g, t),
            }
        }
    }

    fn on_group_timer(&mut self, g: F::Addr, t: Instant) {
        let due = self.groups.get_mut(g, &mut self.timers).map(|mut state| {
            state.expire(t);
            (
                state.group_query_next.is_some_and(|n| n <= t),
                state.source_query_next.is_some_and(|n| n <= t),
            )
        });
        let Some((group_query_due, source_query_due)) = due else {
            // A timer left by a group already gone.
            self.timers.stop(Timer::Group(g));
            return;
        };
        if group_query_due {
            self.send_group_query(g, t, false);
        }
        if source_query_due {
            self.send_source_query(g, t, None);
        }
        self.groups.reap(g, &mut self.timers);
    }

    /// Deletes a group the router no longer keeps any state for.
    pub(crate) fn reap(&mut self, g: F::Addr) {
        self.groups.reap(g, &mut self.timers);
    }

    // ---- received messages ----

    fn count_received(&mut self, msg: &Message<F::Addr>) {
        let r = &mut self.stats.received;
        let counter = match msg {
            Message::Query(q) => match q.version {
                Version::V1 => &mut r.query_v1,
                Version::V2 => &mut r.query_v2,
                Version::V3 => &mut r.query_v3,
            },
            Message::OldReport {
                version: Version::V1,
                ..
            } => &mut r.report_v1,
            Message::OldReport { .. } => &mut r.report_v2,
            Message::Leave { .. } => &mut r.leave_v2,
            Message::Report(_) => &mut r.report_v3,
        };
        *counter += 1;
    }

    /// Where each message may be sent (RFC 3376 4.1.12 and 4.2.14, RFC 2236 section 3,
    /// RFC 3810 5.1.15 and 5.2.14, RFC 2710 section 5); a unicast to this interface is
    /// accepted for every type.
    fn destination_ok(&self, dst: F::Addr, msg: &Message<F::Addr>) -> bool {
        if !F::is_unspecified(self.address) && dst == self.address {
            return true;
        }
        match msg {
            Message::Query(q) => {
                dst == F::ALL_NODES || (!F::is_unspecified(q.group) && dst == q.group)
            }
            Message::OldReport { group, .. } => dst == *group,
            // RFC 2236 asks routers to also accept a leave sent to the group itself, as
            // some older hosts do.
            Message::Leave { group } => dst == F::ALL_ROUTERS || dst == *group,
            Message::Report(_) => dst == F::REPORT_DESTINATION,
        }
    }

    // ---- events ----

    /// Reports an ignored router message, at most once per Query Interval per kind.
    pub(crate) fn warn(&mut self, now: Instant, from: F::Addr, reason: Ignored) {
        let quiet = self.config.query_interval();
        if self
            .warned
            .get(&reason)
            .is_some_and(|t| now.saturating_duration_since(*t) < quiet)
        {
            return;
        }
        self.warned.insert(reason, now);
        self.events.push_back(Event::RouterIgnored { from, reason });
    }

    fn flush_events(&mut self) {
        let version = self.version();
        for g in self.groups.take_changed() {
            let current = self
                .groups
                .get(g)
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

impl Router<Igmp> {
    /// Feeds one received IGMP message whose IP header was already checked (TTL 1,
    /// Router Alert where needed). `src` and `dst` are the IP addresses. The message's
    /// destination is checked here, router messages are dropped on a link without other
    /// queriers, reports are rate limited per host, and the state updated.
    pub fn handle_igmp(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, msg: &IgmpRepr) {
        self.handle_message(now, src, dst, &igmp_message(msg.clone()));
    }
}

impl Router<Mld> {
    /// The MLD version the router speaks on the link: the configured one (RFC 3810
    /// 8.3.1), as [`Router::version`] gives it in IGMP's terms.
    pub fn mld_version(&self) -> MldVersion {
        // `Config` never keeps V1 (it is raised to V2), which is MLDv1.
        MldVersion::from_version(self.version()).unwrap_or(MldVersion::V1)
    }

    /// Feeds one received MLD message whose IPv6 header was already checked (Hop Limit
    /// 1, Router Alert 0, link-local source), as [`Router::handle_igmp`] does for IGMP.
    pub fn handle_mld(&mut self, now: Instant, src: Ipv6Addr, dst: Ipv6Addr, msg: &MldRepr) {
        self.handle_message(now, src, dst, &mld_message(msg.clone()));
    }
}
