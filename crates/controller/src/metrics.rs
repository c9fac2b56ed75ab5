//! The controller's Prometheus metrics, served at `GET /metrics`.
//!
//! Families (all prefixed `mcgate_controller_`): `http_requests_total{method,route,status}`,
//! `streams`, `lagging_streams`, `stream_overflows_total`, `agents{state}`, `domains`,
//! `memberships`, `lease_expiries_total`, `peer_confirmed_removals_total`, `revision`, `store_commit_seconds` (histogram).
//!
//! `prometheus-client` writes OpenMetrics; a scraper that asks for it in `Accept` gets
//! it, any other gets the Prometheus text format 0.0.4, where a counter family is named
//! with its `_total` suffix so 0.0.4 parsers (`promtool check metrics`) see it typed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a served request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The route template (`/v1/domains/{name}`), or `unmatched`.
    pub route: String,
    /// The answer's status code.
    pub status: u16,
}

/// Labels of the agent gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    state: &'static str,
}

/// What the metrics read from the controller's state at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Open agent streams.
    pub streams: usize,
    /// Streams more than half a queue behind.
    pub lagging: usize,
    /// Streams closed since start for lagging.
    pub overflows: u64,
    /// Agents whose lease holds.
    pub agents_up: usize,
    /// Agents whose lease expired (kept for display).
    pub agents_expired: usize,
    /// Domains.
    pub domains: usize,
    /// (link, group) memberships reported by live agents.
    pub memberships: usize,
    /// The published revision.
    pub revision: u64,
    /// Whether this controller leads (1), follows (0); standalone controllers lead.
    pub leader: bool,
    /// Whether writes can succeed now.
    pub writable: bool,
    /// Reachable etcd members (0 with the embedded store).
    pub etcd_members_up: usize,
}

/// The registry and the handles the controller updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Agents whose lease ran out.
    pub lease_expiries: Counter,
    /// Agents removed before their lease ran out: peers reported them dead and their
    /// heartbeats had stopped.
    pub peer_confirmed_removals: Counter,
    /// Time of each store commit, in seconds.
    pub store_commit: Histogram,
    overflows: Counter,
    streams: Gauge,
    lagging: Gauge,
    agents: Family<AgentLabels, Gauge>,
    domains: Gauge,
    memberships: Gauge,
    revision: Gauge,
    leader: Gauge,
    writable: Gauge,
    etcd_members_up: Gauge,
}

/// Registers each `(name, help, metric)` in `registry`, the metric a clone of the shared
/// handle.
macro_rules! register {
    ($registry:ident, $(($name:literal, $help:literal, $metric:expr)),* $(,)?) => {
        $($registry.register($name, $help, $metric.clone());)*
    };
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcgate_controller");
        let m = Self {
            requests: Family::default(),
            lease_expiries: Counter::default(),
            peer_confirmed_removals: Counter::default(),
            // 100 us to ~3 s: a commit is an fsync.
            store_commit: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            overflows: Counter::default(),
            streams: Gauge::default(),
            lagging: Gauge::default(),
            agents: Family::default(),
            domains: Gauge::default(),
            memberships: Gauge::default(),
            revision: Gauge::default(),
            leader: Gauge::default(),
            writable: Gauge::default(),
            etcd_members_up: Gauge::default(),
            registry: Registry::default(),
        };
        register!(
            registry,
            (
                "http_requests",
                "HTTP requests answered, by method, route and status",
                m.requests
            ),
            (
                "lease_expiries",
                "Agents whose lease ran out (their members were removed)",
                m.lease_expiries
            ),
            (
                "peer_confirmed_removals",
                "Agents removed before their lease ran out: peers reported their keepalives stopped and their heartbeats had stopped too",
                m.peer_confirmed_removals
            ),
            (
                "store_commit_seconds",
                "Time to commit an admin change to the store",
                m.store_commit
            ),
            (
                "stream_overflows",
                "Agent streams closed because the agent fell a whole queue behind",
                m.overflows
            ),
            ("streams", "Open agent streams", m.streams),
            (
                "lagging_streams",
                "Agent streams more than half a queue behind",
                m.lagging
            ),
            (
                "agents",
                "Agents known, by lease state (up, expired)",
                m.agents
            ),
            ("domains", "Multicast domains", m.domains),
            (
                "memberships",
                "(link, group) memberships reported by agents whose lease holds",
                m.memberships
            ),
            (
                "revision",
                "The forwarding-state revision last published to the streams",
                m.revision
            ),
            (
                "leader",
                "1 when this controller does the once-only work (the etcd leader, or standalone)",
                m.leader
            ),
            (
                "store_writable",
                "1 when the store can take writes (0: etcd without quorum)",
                m.writable
            ),
            (
                "etcd_members_up",
                "etcd members answering status calls (0 with the embedded store)",
                m.etcd_members_up
            ),
        );
        Self { registry, ..m }
    }

    /// Sets the gauges from `s` and encodes every family: OpenMetrics when `openmetrics`,
    /// else the text format 0.0.4.
    pub fn render(&self, s: &Snapshot, openmetrics: bool) -> String {
        let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.streams.set(gauge(s.streams));
        self.lagging.set(gauge(s.lagging));
        self.domains.set(gauge(s.domains));
        self.memberships.set(gauge(s.memberships));
        self.revision
            .set(i64::try_from(s.revision).unwrap_or(i64::MAX));
        self.leader.set(i64::from(s.leader));
        self.writable.set(i64::from(s.writable));
        self.etcd_members_up.set(gauge(s.etcd_members_up));
        self.agents
            .get_or_create(&AgentLabels { state: "up" })
            .set(gauge(s.agents_up));
        self.agents
            .get_or_create(&AgentLabels { state: "expired" })
            .set(gauge(s.agents_expired));
        // The hub counts overflows; catch the counter up (callers hold the state lock).
        let seen = self.overflows.get();
        if s.overflows > seen {
            self.overflows.inc_by(s.overflows - seen);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        if openmetrics { out } else { text_004(&out) }
    }
}

/// The content type for an `Accept` header: OpenMetrics only when asked for.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// `Content-Type` of each format.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the text format 0.0.4.
pub const TEXT_004_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites OpenMetrics text as the Prometheus text format 0.0.4: counter families take
/// their `_total` name in `# HELP` and `# TYPE`, and `# UNIT` and `# EOF` go.
pub fn text_004(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_in_text_004() {
        let m = Metrics::new();
        m.lease_expiries.inc();
        let om = m.render(&Snapshot::default(), true);
        assert!(om.contains("# TYPE mcgate_controller_lease_expiries counter"));
        assert!(om.ends_with("# EOF\n"));
        let text = m.render(&Snapshot::default(), false);
        assert!(text.contains("# TYPE mcgate_controller_lease_expiries_total counter"));
        assert!(text.contains("# HELP mcgate_controller_lease_expiries_total Agents"));
        assert!(text.contains("mcgate_controller_lease_expiries_total 1"));
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE mcgate_controller_streams gauge"));
    }

    #[test]
    fn overflows_catch_up_once() {
        let m = Metrics::new();
        let s = Snapshot {
            overflows: 3,
            ..Snapshot::default()
        };
        m.render(&s, false);
        let text = m.render(&s, false);
        assert!(
            text.contains("mcgate_controller_stream_overflows_total 3"),
            "{text}"
        );
    }

    #[test]
    fn accept_picks_the_format() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
