//! `mcgate traffic DOMAIN`: the domain's traffic view as tables (hosts, groups, flows),
//! once or redrawn on every server-sent event with `--watch`.

use mcgate_client::{Client, ClientError};
use mcgate_domain::traffic::{HostRate, Rate, TrafficView};

use super::print_json;
use super::table::Table;

/// Clears the terminal and puts the cursor home (ECMA-48 ED and CUP), as `top` does.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Shows the view at `path` once, or every event of its watch stream.
pub(super) async fn run(
    c: &Client,
    path: &str,
    watch: bool,
    json: bool,
) -> Result<(), ClientError> {
    if !watch {
        let v: TrafficView = c.get(path).await?;
        if json {
            print_json(&v);
        } else {
            print!("{}", render(&v));
        }
        return Ok(());
    }
    let mut lines = c.stream(&format!("{path}?watch=true")).await?;
    let mut event = String::new();
    while let Some(line) = lines.next_line().await? {
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data = data.trim_start();
            if event == "error" {
                let message = serde_json::from_str::<serde_json::Value>(data)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or_else(|| data.to_string());
                return Err(ClientError::Status {
                    status: 404,
                    message,
                    field: None,
                });
            }
            let v: TrafficView =
                serde_json::from_str(data).map_err(|e| ClientError::Decode(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string(&v).unwrap_or_default());
            } else {
                print!("{CLEAR}{}", render(&v));
            }
        }
    }
    Ok(())
}

/// A rate for people: packets and bits per second with SI prefixes; `n/a` when the
/// data plane does not count it.
fn rate(r: Option<Rate>) -> String {
    match r {
        None => "n/a".into(),
        Some(r) => format!("{} pps {}", si(r.pps), bits(r.bits_per_s)),
    }
}

fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn bits(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} Gb/s", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} Mb/s", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kb/s", b / 1e3)
    } else {
        format!("{b:.0} b/s")
    }
}

fn hosts_rates(list: &[HostRate]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|h| match h.rate {
            Some(r) => format!("{} ({} pps)", h.host, si(r.pps)),
            None => format!("{} (n/a)", h.host),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn drops(d: &std::collections::BTreeMap<String, f64>) -> String {
    if d.is_empty() {
        return "-".into();
    }
    d.iter()
        .map(|(reason, r)| format!("{reason} {}/s", si(*r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The view as three tables (hosts, groups, flows between hosts).
pub(super) fn render(v: &TrafficView) -> String {
    let mut out = format!("domain {}  (revision {})\n\n", v.domain, v.revision);
    let mut hosts = Table::new(&[
        "HOST",
        "STATE",
        "ZONE",
        "DATAPLANE",
        "SENT",
        "DELIVERED",
        "TUNNEL TX",
        "TUNNEL RX",
        "DROPS",
    ]);
    for h in &v.hosts {
        let reported = h.report_age_ms.is_some();
        let shown = |r: Option<Rate>, figure: &str| {
            if !reported {
                "-".to_string()
            } else if r.is_none() && !h.missing.iter().any(|m| m == figure) {
                // Counted, but no fresh rate (first report, restart, or stale).
                "-".to_string()
            } else {
                rate(r)
            }
        };
        hosts.row(vec![
            h.host.clone(),
            h.state.clone(),
            h.zone.clone().unwrap_or_else(|| "-".into()),
            h.dataplane.clone().unwrap_or_else(|| "-".into()),
            shown(h.sent, "sent"),
            shown(h.delivered, "delivered"),
            shown(h.tunnel_tx, "tunnel_tx"),
            shown(h.tunnel_rx, "tunnel_rx"),
            drops(&h.drops),
        ]);
    }
    out.push_str(&hosts.render());
    let mut groups = Table::new(&["GROUP", "SENDERS", "RECEIVERS", "DROPS"]);
    let mut flows = Table::new(&["GROUP", "FROM", "TO", "SENT", "RECEIVED", "LOST/S"]);
    for g in &v.groups {
        groups.row(vec![
            g.group.to_string(),
            hosts_rates(&g.senders),
            hosts_rates(&g.receivers),
            drops(&g.drops),
        ]);
        for f in &g.flows {
            flows.row(vec![
                g.group.to_string(),
                f.from.clone(),
                f.to.clone(),
                rate(f.sent),
                rate(f.received),
                f.lost_pps.map_or_else(|| "n/a".into(), si),
            ]);
        }
    }
    out.push('\n');
    if v.groups.is_empty() {
        out.push_str("no groups with members or traffic\n");
    } else {
        out.push_str(&groups.render());
        out.push('\n');
        if flows_empty(v) {
            out.push_str("no flows between hosts\n");
        } else {
            out.push_str(&flows.render());
        }
    }
    out
}

fn flows_empty(v: &TrafficView) -> bool {
    v.groups.iter().all(|g| g.flows.is_empty())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use mcgate_domain::traffic::{Flow, GroupTraffic, HostTraffic};

    use super::*;

    fn host(name: &str, dataplane: &str, sent: Option<Rate>, missing: &[&str]) -> HostTraffic {
        HostTraffic {
            host: name.into(),
            state: "up".into(),
            zone: Some("a".into()),
            subnet: None,
            dataplane: Some(dataplane.into()),
            report_age_ms: Some(200),
            links: Vec::new(),
            sent,
            delivered: None,
            tunnel_tx: None,
            tunnel_rx: None,
            drops: Default::default(),
            missing: missing.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tables_show_rates_and_say_what_is_not_counted() {
        let r = Rate {
            pps: 1500.0,
            bits_per_s: 12_000_000.0,
        };
        let v = TrafficView {
            domain: "prod".into(),
            revision: 4,
            hosts: vec![
                host("h1", "userspace", Some(r), &[]),
                host("h2", "kernel", None, &["sent"]),
            ],
            groups: vec![GroupTraffic {
                group: Ipv4Addr::new(239, 1, 1, 1),
                senders: vec![HostRate {
                    host: "h1".into(),
                    rate: Some(r),
                }],
                receivers: vec![HostRate {
                    host: "h2".into(),
                    rate: None,
                }],
                flows: vec![Flow {
                    from: "h1".into(),
                    to: "h2".into(),
                    sent: Some(r),
                    received: None,
                    lost_pps: None,
                }],
                drops: [("no_members".to_string(), 2.0)].into(),
            }],
        };
        let text = render(&v);
        assert!(text.contains("domain prod  (revision 4)"), "{text}");
        assert!(text.contains("1.5k pps 12.0 Mb/s"), "{text}");
        let h2 = text.lines().find(|l| l.starts_with("h2")).unwrap();
        assert!(h2.contains("n/a"), "kernel's missing sent figure: {h2}");
        assert!(text.contains("h1 (1.5k pps)"), "{text}");
        assert!(text.contains("h2 (n/a)"), "{text}");
        assert!(text.contains("no_members 2/s"), "{text}");
        let flow = text.lines().rev().find(|l| l.starts_with("239")).unwrap();
        assert!(flow.contains("h1") && flow.ends_with("n/a"), "{flow}");
    }
}
