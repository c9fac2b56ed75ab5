//! The agent's `/metrics`: every series in one registry, encoded in the format the
//! scraper asks for (`Accept`): OpenMetrics 1.0 when it names
//! `application/openmetrics-text` above the other types it accepts, else the Prometheus
//! text format 0.0.4 (where a counter's `# TYPE` line names the `_total` series, so
//! 0.0.4 parsers see typed counters). Every family has `# HELP` and `# TYPE`.

use mcgate_dataplane::DataplaneStats;
use mcgate_dataplane::kernel::plane::KernelStatus;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::control::ControllerStatus;
use crate::view::AgentView;

/// `Content-Type` of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = prometheus_text::CONTENT_TYPE;

/// The two text formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (the default).
    PrometheusText,
}

impl Format {
    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }

    /// The format an `Accept` header asks for: the highest quality (`q`) among
    /// OpenMetrics and plain text or wildcards; OpenMetrics only when ranked strictly
    /// higher. A missing or unreadable header gets 0.0.4 text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut openmetrics = 0.0f32;
        let mut plain = 0.0f32;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite())
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if openmetrics > plain {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

type Labels = Vec<(String, String)>;

fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauges(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

/// A counter without labels that holds `value`.
fn counter(reg: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    reg.register(name, help, c);
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The numeric fields of a serialised counters struct, by field name.
fn fields(v: &Value) -> Vec<(String, u64)> {
    match v {
        Value::Object(m) => m
            .iter()
            .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The IGMP or MLD families of the link queriers, one per kind of count, so that none
/// mixes received, sent and dropped messages: `igmp_*` and `mld_*`, the same shape.
struct QuerierFamilies {
    received: Family<Labels, Counter>,
    sent: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
    ignored: Family<Labels, Counter>,
    frames: Family<Labels, Counter>,
    frame_drops: Family<Labels, Counter>,
}

impl QuerierFamilies {
    /// The families named `{proto}_*` (`igmp` or `mld`), `name` the protocol in the help.
    fn register(reg: &mut Registry, proto: &str, name: &str) -> Self {
        let mut family =
            |suffix: &str, help: String| counters(reg, &format!("{proto}_{suffix}"), &help);
        Self {
            received: family(
                "received",
                format!("Valid {name} messages received per link and message type"),
            ),
            sent: family(
                "sent",
                format!("{name} queries sent per link and query type"),
            ),
            dropped: family(
                "dropped",
                format!("{name} messages or records dropped by the querier per link and reason"),
            ),
            ignored: family(
                "ignored",
                format!("{name} records ignored per link and reason (they carry no membership)"),
            ),
            frames: family(
                "frames_received",
                format!("{name} frames read from each link's socket and handed to the querier"),
            ),
            frame_drops: family(
                "frames_dropped",
                format!("{name} frames lost before the querier per link and reason"),
            ),
        }
    }

    /// One link's IGMP counters.
    fn add_igmp(&self, link: &crate::view::LinkView) {
        let f = link.igmp_frames;
        self.add_frames(
            &link.name,
            f.received,
            &[
                ("socket_overflow", f.socket_overflow),
                ("queue_full", f.queue_full),
                ("oversize", f.oversize),
                ("not_ipv4", link.bad_frames),
                ("no_querier", link.frames_without_querier),
            ],
        );
        if let Some(stats) = &link.igmp {
            self.add_stats(&link.name, stats);
        }
    }

    /// One link's MLD counters (the kernel's overflows of the socket, which takes both
    /// families, are counted under IGMP's).
    fn add_mld(&self, link: &crate::view::LinkView) {
        let m = &link.mld;
        self.add_frames(
            &link.name,
            m.frames.received,
            &[
                ("queue_full", m.frames.queue_full),
                ("oversize", m.frames.oversize),
                ("no_querier", m.frames_without_querier),
            ],
        );
        if let Some(stats) = &m.counters {
            self.add_stats(&link.name, stats);
        }
    }

    fn add_frames(&self, name: &str, received: u64, drops: &[(&str, u64)]) {
        self.frames
            .get_or_create(&labels(&[("link", name)]))
            .inc_by(received);
        for (reason, n) in drops {
            self.frame_drops
                .get_or_create(&labels(&[("link", name), ("reason", reason)]))
                .inc_by(*n);
        }
    }

    fn add_stats(&self, name: &str, stats: &impl serde::Serialize) {
        let v = serde_json::to_value(stats).unwrap_or(Value::Null);
        for (key, family, label) in [
            ("received", &self.received, "type"),
            ("sent", &self.sent, "type"),
            ("dropped", &self.dropped, "reason"),
        ] {
            for (field, n) in fields(v.get(key).unwrap_or(&Value::Null)) {
                family
                    .get_or_create(&labels(&[("link", name), (label, &field)]))
                    .inc_by(n);
            }
        }
        // The scalar counters beside those groups: records ignored, and messages
        // refused for another reason (a query of an older version, RFC 3376 7.3.1).
        for (field, n) in fields(&v) {
            let (family, reason) = match field.strip_prefix("ignored_") {
                Some(r) => (&self.ignored, r.to_string()),
                None => (&self.dropped, field),
            };
            family
                .get_or_create(&labels(&[("link", name), ("reason", &reason)]))
                .inc_by(n);
        }
    }
}

fn register_dataplane(reg: &mut Registry, dp: &DataplaneStats) {
    let [
        link_packets,
        link_bytes,
        link_drops,
        group_packets,
        group_bytes,
        group_drops,
        drops,
        tunnel_packets,
        tunnel_bytes,
    ] = [
        ("link_packets", "Multicast frames per link and direction"),
        ("link_bytes", "Multicast bytes per link and direction"),
        ("link_drops", "Frames dropped per link and reason"),
        ("group_packets", "Packets per group, path and direction"),
        ("group_bytes", "Bytes per group, path and direction"),
        ("group_drops", "Packets dropped per group and reason"),
        (
            "dataplane_drops",
            "Packets dropped by the data plane, per reason",
        ),
        ("tunnel_packets", "VXLAN datagrams per direction"),
        ("tunnel_bytes", "VXLAN inner bytes per direction"),
    ]
    .map(|(name, help)| counters(reg, name, help));
    for (name, c) in &dp.links {
        for (dir, cnt) in [("rx", c.rx), ("tx", c.tx)] {
            let l = labels(&[("link", name), ("direction", dir)]);
            link_packets.get_or_create(&l).inc_by(cnt.packets);
            link_bytes.get_or_create(&l).inc_by(cnt.bytes);
        }
        for (r, n) in c.drops.iter() {
            link_drops
                .get_or_create(&labels(&[("link", name), ("reason", r.as_str())]))
                .inc_by(n);
        }
    }
    for (g, c) in &dp.groups {
        let g = g.to_string();
        for (path, dir, cnt) in [
            ("local", "rx", c.rx_local),
            ("tunnel", "rx", c.rx_tunnel),
            ("local", "tx", c.tx_local),
            ("tunnel", "tx", c.tx_tunnel),
        ] {
            let l = labels(&[("group", &g), ("path", path), ("direction", dir)]);
            group_packets.get_or_create(&l).inc_by(cnt.packets);
            group_bytes.get_or_create(&l).inc_by(cnt.bytes);
        }
        for (r, n) in c.drops.iter() {
            group_drops
                .get_or_create(&labels(&[("group", &g), ("reason", r.as_str())]))
                .inc_by(n);
        }
    }
    for r in mcgate_dataplane::DropReason::ALL {
        drops
            .get_or_create(&labels(&[("reason", r.as_str())]))
            .inc_by(dp.drops.get(r));
    }
    for (dir, c) in [("rx", dp.tunnel_rx), ("tx", dp.tunnel_tx)] {
        let l = labels(&[("direction", dir)]);
        tunnel_packets.get_or_create(&l).inc_by(c.packets);
        tunnel_bytes.get_or_create(&l).inc_by(c.bytes);
    }
}

/// The kernel data plane's own series (its packet counters are the shared `tunnel_*`
/// and `dataplane_drops` ones): programmed entries per device, reconciles, refusals.
fn register_kernel(reg: &mut Registry, k: &KernelStatus) {
    let reg = reg.sub_registry_with_prefix("kernel");
    let memberships = gauges(
        reg,
        "memberships",
        "Remote memberships (group, remote host) programmed per VXLAN device",
    );
    let groups = gauges(
        reg,
        "groups",
        "Groups the bridge hands to each VXLAN device",
    );
    for d in &k.devices {
        let l = labels(&[("device", &d.name), ("vni", &d.vni.to_string())]);
        memberships.get_or_create(&l).set(d.memberships as i64);
        groups.get_or_create(&l).set(d.groups as i64);
    }
    counter(
        reg,
        "reconciles",
        "Kernel table reconciliations",
        k.reconciles,
    );
    counter(
        reg,
        "failures",
        "Table changes the kernel refused (retried every second)",
        k.failures,
    );
}

/// The upstream interface's series: its IGMP proxy's counters by kind (queries heard,
/// reports and leaves sent, messages ignored or bad) and the groups it reports.
fn register_upstream(reg: &mut Registry, u: &crate::view::UpstreamView) {
    let igmp = counters(
        reg,
        "upstream_igmp",
        "IGMP messages of the upstream interface (RFC 4605 proxy) per kind",
    );
    let v = serde_json::to_value(&u.igmp).unwrap_or(Value::Null);
    for (kind, n) in fields(&v) {
        igmp.get_or_create(&labels(&[("interface", &u.interface), ("kind", &kind)]))
            .inc_by(n);
    }
    let groups = gauges(
        reg,
        "upstream_groups",
        "Groups reported on the upstream interface",
    );
    groups
        .get_or_create(&labels(&[("interface", &u.interface)]))
        .set(u.membership.len() as i64);
}

/// The peer keepalives' series: each peer's state (1 for the state it is in), its
/// detections, and the keepalives sent, taken and dropped by reason.
fn register_liveness(reg: &mut Registry, l: &crate::liveness_task::LivenessView) {
    if !l.enabled {
        return;
    }
    let state = gauges(
        reg,
        "peer_state",
        "Peer liveness by keepalives: 1 for the state each peer is in (unknown, up, down)",
    );
    let detections = counters(
        reg,
        "peer_detections",
        "Times each peer was declared down by its keepalives stopping",
    );
    for p in &l.peers {
        for s in ["unknown", "up", "down"] {
            state
                .get_or_create(&labels(&[("peer", &p.host), ("state", s)]))
                .set(i64::from(p.state == s));
        }
        detections
            .get_or_create(&labels(&[("peer", &p.host)]))
            .inc_by(p.detections);
    }
    let refused = counters(
        reg,
        "keepalives_refused",
        "Peer keepalives dropped, by reason",
    );
    for (reason, n) in [
        ("malformed", l.refused.malformed),
        ("unknown_peer", l.refused.unknown_peer),
        ("not_authenticated", l.refused.not_authenticated),
        ("replay", l.refused.replay),
    ] {
        refused
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(n);
    }
    for (name, help, value) in [
        ("keepalives_sent", "Peer keepalives sent", l.sent),
        (
            "keepalive_send_errors",
            "Peer keepalives the socket refused to send",
            l.send_errors,
        ),
        (
            "keepalives_received",
            "Peer keepalives received and taken",
            l.received,
        ),
        (
            "peer_down_detections",
            "Peers declared down by their keepalives stopping, in total",
            l.detections,
        ),
    ] {
        counter(reg, name, help, value);
    }
}

/// The whole `/metrics` document in `format`.
pub fn render(
    format: Format,
    view: &AgentView,
    status: &ControllerStatus,
    dp: &DataplaneStats,
    kernel: Option<&KernelStatus>,
) -> String {
    let mut reg = Registry::with_prefix("mcgate_agent");
    register_dataplane(&mut reg, dp);
    let igmp = QuerierFamilies::register(&mut reg, "igmp", "IGMP");
    let mld = QuerierFamilies::register(&mut reg, "mld", "MLD");
    let members = gauges(&mut reg, "link_groups", "Groups with members per link");
    let mld_members = gauges(
        &mut reg,
        "mld_link_groups",
        "IPv6 groups with listeners per link (MLD querier)",
    );
    let mld_querier = gauges(
        &mut reg,
        "mld_querier",
        "1 while this agent is the MLD querier of the link",
    );
    for l in &view.links {
        members
            .get_or_create(&labels(&[("link", &l.name)]))
            .set(l.groups.len() as i64);
        mld_members
            .get_or_create(&labels(&[("link", &l.name)]))
            .set(l.mld.groups.len() as i64);
        mld_querier
            .get_or_create(&labels(&[("link", &l.name)]))
            .set(i64::from(l.mld.querier));
        igmp.add_igmp(l);
        mld.add_mld(l);
    }
    if let Some(u) = &view.upstream {
        register_upstream(&mut reg, u);
    }
    register_liveness(&mut reg, &view.peer_liveness);
    let registered = gauges(
        &mut reg,
        "controller_registered",
        "1 while registered with the controller",
    );
    registered
        .get_or_create(&labels(&[("controller", &status.url)]))
        .set(i64::from(status.session.is_some()));
    for (name, help, value) in [
        (
            "stream_oversize_messages",
            "Controller stream messages refused for being longer than the limit",
            status.oversize_messages,
        ),
        (
            "controller_heartbeats",
            "Heartbeats the controller answered",
            status.heartbeats,
        ),
        (
            "controller_heartbeat_failures",
            "Heartbeats that failed or went unanswered within their timeout",
            status.heartbeat_failures,
        ),
        (
            "controller_failovers",
            "Moves from one controller URL to the next after a failure",
            status.failovers,
        ),
        (
            "controller_traffic_reports",
            "Traffic reports the controller accepted",
            status.traffic_reports,
        ),
        (
            "controller_traffic_report_failures",
            "Traffic reports that failed or went unanswered (never resent)",
            status.traffic_report_failures,
        ),
        (
            "stream_resumes",
            "Controller stream connections resumed from the last revision rather than a snapshot",
            status.stream_resumes,
        ),
    ] {
        counter(&mut reg, name, help, value);
    }
    if let Some(k) = kernel {
        register_kernel(&mut reg, k);
    }
    let mut out = String::new();
    let res = match format {
        Format::OpenMetrics => text::encode(&mut out, &reg),
        Format::PrometheusText => prometheus_text::encode(&mut out, &reg),
    };
    if res.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests;
