//! The agent's local admin endpoint: `GET /metrics` (Prometheus text) and
//! `GET /v1/stats` (JSON), on TCP or a Unix socket. Read-only.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcgate_dataplane::{Counter, Dataplane, DataplaneStats, Drops};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::config::AdminAddr;
use crate::control::SharedStatus;
use crate::daemon::AgentView;

/// What the endpoint reads.
#[derive(Clone)]
pub struct AdminState {
    /// The agent's state.
    pub view: Arc<Mutex<AgentView>>,
    /// The controller connection.
    pub status: SharedStatus,
    /// The data plane, for its counters.
    pub dataplane: Arc<dyn Dataplane>,
}

/// A bound admin listener.
pub enum AdminListener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// Unix socket.
    Unix(tokio::net::UnixListener),
}

/// Binds the admin address (a stale Unix socket file is replaced).
pub async fn bind(addr: &AdminAddr) -> std::io::Result<AdminListener> {
    match addr {
        AdminAddr::Tcp(a) => Ok(AdminListener::Tcp(tokio::net::TcpListener::bind(a).await?)),
        AdminAddr::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                std::fs::remove_file(path)?;
            }
            Ok(AdminListener::Unix(tokio::net::UnixListener::bind(path)?))
        }
    }
}

/// Serves until the task is aborted.
pub async fn serve(listener: AdminListener, state: AdminState) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/stats", get(stats))
        .with_state(state);
    let res = match listener {
        AdminListener::Tcp(l) => axum::serve(l, app).await,
        AdminListener::Unix(l) => axum::serve(l, app).await,
    };
    if let Err(e) = res {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}

fn lock<T: Clone>(m: &Mutex<T>) -> T {
    match m.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn counter_json(c: &Counter) -> Value {
    json!({ "packets": c.packets, "bytes": c.bytes })
}

fn drops_json(d: &Drops) -> Value {
    let map: serde_json::Map<String, Value> = d
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), json!(n)))
        .collect();
    Value::Object(map)
}

/// The whole JSON document of `/v1/stats`.
pub fn stats_json(
    view: &AgentView,
    status: &crate::control::ControllerStatus,
    dp: &DataplaneStats,
) -> Value {
    let links: Vec<Value> = view
        .links
        .iter()
        .map(|l| {
            let c = dp.links.get(&l.name).cloned().unwrap_or_default();
            json!({
                "name": l.name,
                "ifindex": l.ifindex,
                "address": l.address,
                "querier": l.querier,
                "igmp_version": l.igmp_version,
                "igmp": l.igmp,
                "query_send_errors": l.query_send_errors,
                "groups": l.groups,
                "rx": counter_json(&c.rx),
                "tx": counter_json(&c.tx),
                "drops": drops_json(&c.drops),
            })
        })
        .collect();
    let groups: Vec<Value> = dp
        .groups
        .iter()
        .map(|(g, c)| {
            let member_links: Vec<&str> = view
                .links
                .iter()
                .filter(|l| l.groups.iter().any(|m| m.group == *g))
                .map(|l| l.name.as_str())
                .collect();
            json!({
                "group": g,
                "links": member_links,
                "rx_local": counter_json(&c.rx_local),
                "rx_tunnel": counter_json(&c.rx_tunnel),
                "tx_local": counter_json(&c.tx_local),
                "tx_tunnel": counter_json(&c.tx_tunnel),
                "drops": drops_json(&c.drops),
            })
        })
        .collect();
    json!({
        "host": view.host,
        "underlay": view.underlay,
        "underlay_interface": view.underlay_interface,
        "igmp_mode": view.igmp_mode,
        "controller": status,
        "domains": view.domains,
        "links": links,
        "groups": groups,
        "dataplane": {
            "name": dp.name,
            "chosen_because": view.dataplane_chosen_because,
            "underlay_mtu": dp.underlay_mtu,
            "tunnel_rx": counter_json(&dp.tunnel_rx),
            "tunnel_tx": counter_json(&dp.tunnel_tx),
            "drops": drops_json(&dp.drops),
            "tables_installed": dp.tables_installed,
            "batches": dp.batches,
            "checksums_completed": dp.checksums_completed,
        },
    })
}

async fn stats(State(s): State<AdminState>) -> Response {
    let view = lock(&s.view);
    let status = lock(&s.status);
    let dp = s.dataplane.stats();
    let mut doc = stats_json(&view, &status, &dp);
    if let Some(k) = s.dataplane.kernel_status()
        && let Some(d) = doc.get_mut("dataplane").and_then(Value::as_object_mut)
    {
        d.insert(
            "kernel".into(),
            serde_json::to_value(k).unwrap_or(Value::Null),
        );
    }
    axum::Json(doc).into_response()
}

type Labels = Vec<(String, String)>;

fn family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, PCounter> {
    let f = Family::<Labels, PCounter>::default();
    reg.register(name, help, f.clone());
    f
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Adds the non-zero numeric fields of a serialised counters struct under `prefix`.
fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, u64)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                flatten(v, &p, out);
            }
        }
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                out.push((prefix.to_string(), n));
            }
        }
        _ => {}
    }
}

/// The Prometheus text of `/metrics`.
pub fn metrics_text(
    view: &AgentView,
    status: &crate::control::ControllerStatus,
    dp: &DataplaneStats,
) -> String {
    let mut reg = Registry::with_prefix("mcgate_agent");
    let link_packets = family(
        &mut reg,
        "link_packets",
        "Multicast frames per link and direction",
    );
    let link_bytes = family(
        &mut reg,
        "link_bytes",
        "Multicast bytes per link and direction",
    );
    let link_drops = family(&mut reg, "link_drops", "Frames dropped per link and reason");
    let group_packets = family(
        &mut reg,
        "group_packets",
        "Packets per group, path and direction",
    );
    let group_bytes = family(
        &mut reg,
        "group_bytes",
        "Bytes per group, path and direction",
    );
    let group_drops = family(
        &mut reg,
        "group_drops",
        "Packets dropped per group and reason",
    );
    let drops = family(
        &mut reg,
        "dataplane_drops",
        "Packets dropped by the data plane, per reason",
    );
    let tunnel_packets = family(&mut reg, "tunnel_packets", "VXLAN datagrams per direction");
    let tunnel_bytes = family(&mut reg, "tunnel_bytes", "VXLAN inner bytes per direction");
    let igmp = family(
        &mut reg,
        "igmp",
        "IGMP messages per link: received, sent and dropped by kind",
    );
    let members = Family::<Labels, Gauge>::default();
    reg.register(
        "link_groups",
        "Groups with members per link",
        members.clone(),
    );
    let connected = Family::<Labels, Gauge>::default();
    reg.register(
        "controller_registered",
        "1 while registered with the controller",
        connected.clone(),
    );

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
    for l in &view.links {
        members
            .get_or_create(&labels(&[("link", &l.name)]))
            .set(l.groups.len() as i64);
        if let Some(stats) = &l.igmp {
            let mut flat = Vec::new();
            flatten(
                &serde_json::to_value(stats).unwrap_or(Value::Null),
                "",
                &mut flat,
            );
            for (kind, n) in flat {
                igmp.get_or_create(&labels(&[("link", &l.name), ("kind", &kind)]))
                    .inc_by(n);
            }
        }
    }
    connected
        .get_or_create(&labels(&[("controller", &status.url)]))
        .set(i64::from(status.session.is_some()));
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

/// The kernel data plane's own series (its packet counters are the shared
/// `tunnel_*` and `dataplane_drops` ones): programmed entries per device, reconciles
/// and refusals. Empty for the userspace data plane.
pub fn kernel_metrics(k: Option<&mcgate_dataplane::kernel::plane::KernelStatus>) -> String {
    let Some(k) = k else {
        return String::new();
    };
    let mut reg = Registry::with_prefix("mcgate_agent_kernel");
    let memberships = Family::<Labels, Gauge>::default();
    reg.register(
        "memberships",
        "Remote memberships (group, remote host) programmed per VXLAN device",
        memberships.clone(),
    );
    let groups = Family::<Labels, Gauge>::default();
    reg.register(
        "groups",
        "Groups the bridge hands to each VXLAN device",
        groups.clone(),
    );
    for d in &k.devices {
        let l = labels(&[("device", &d.name), ("vni", &d.vni.to_string())]);
        memberships.get_or_create(&l).set(d.memberships as i64);
        groups.get_or_create(&l).set(d.groups as i64);
    }
    let reconciles = PCounter::<u64>::default();
    reconciles.inc_by(k.reconciles);
    reg.register("reconciles", "Kernel table reconciliations", reconciles);
    let failures = PCounter::<u64>::default();
    failures.inc_by(k.failures);
    reg.register(
        "failures",
        "Table changes the kernel refused (retried every second)",
        failures,
    );
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

/// Appends the kernel series to the main document: both end with `# EOF`, which only
/// the end of the whole may carry.
pub fn join_metrics(main: String, kernel: &str) -> String {
    if kernel.is_empty() {
        return main;
    }
    let mut out = main
        .strip_suffix("# EOF\n")
        .map(str::to_string)
        .unwrap_or(main);
    out.push_str(kernel);
    out
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let view = lock(&s.view);
    let status = lock(&s.status);
    let dp = s.dataplane.stats();
    let kernel = s.dataplane.kernel_status();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        join_metrics(
            metrics_text(&view, &status, &dp),
            &kernel_metrics(kernel.as_ref()),
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_dataplane::kernel::plane::{DeviceStatus, KernelStatus};

    #[test]
    fn kernel_series_join_the_document_before_its_single_eof() {
        let k = KernelStatus {
            devices: vec![DeviceStatus {
                name: "mcgvx42".into(),
                vni: 42,
                memberships: 3,
                groups: 2,
                ..DeviceStatus::default()
            }],
            reconciles: 5,
            ..KernelStatus::default()
        };
        let kernel = kernel_metrics(Some(&k));
        assert!(
            kernel.contains(r#"mcgate_agent_kernel_memberships{device="mcgvx42",vni="42"} 3"#),
            "{kernel}"
        );
        assert!(
            kernel.contains("mcgate_agent_kernel_reconciles_total 5"),
            "{kernel}"
        );
        let all = join_metrics("a 1\n# EOF\n".into(), &kernel);
        assert_eq!(all.matches("# EOF").count(), 1, "{all}");
        assert!(
            all.ends_with("# EOF\n") && all.starts_with("a 1\n"),
            "{all}"
        );
        assert_eq!(kernel_metrics(None), "");
        assert_eq!(join_metrics("a 1\n# EOF\n".into(), ""), "a 1\n# EOF\n");
    }
}
