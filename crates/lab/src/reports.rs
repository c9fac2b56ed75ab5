//! What the lab's receivers report: the `perf recv --json` lines in a task's log, read
//! back per sender, and the table the demo prints of them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::table;

/// One receiver's numbers for one sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The sender as the receiver printed it.
    pub sender: String,
    /// Its address.
    pub sender_ip: Option<IpAddr>,
    /// Datagrams received.
    pub datagrams: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Out of order.
    pub out_of_order: u64,
    /// Jitter, as printed.
    pub jitter: String,
    /// Latency, as printed.
    pub latency: String,
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn show_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| {
                format!("{f:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            })
            .unwrap_or_else(|| n.to_string()),
        // Percentiles in their natural order (p50/p90/p99/max), then anything else.
        Some(Value::Object(o)) => {
            let order = ["p50", "p90", "p99", "max"];
            let known: Vec<String> = order
                .iter()
                .filter_map(|k| o.get(*k).map(|v| show_value(Some(v))))
                .collect();
            if known.len() == order.len() {
                known.join("/")
            } else {
                o.iter()
                    .map(|(k, v)| format!("{k} {}", show_value(Some(v))))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// The address of a sender printed as `A.B.C.D:PORT` or `[IPV6%SCOPE]:PORT`.
fn sender_ip(s: &str) -> Option<IpAddr> {
    let host = match s.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?.split('%').next()?,
        None => s.split(':').next()?,
    };
    host.parse().ok()
}

/// Reads a receiver's log of `perf recv --json` lines (each after a timestamp): the
/// summary per sender when it printed one, else the sum of its interval reports.
pub fn receiver_reports(path: &std::path::Path) -> Vec<Report> {
    let body = std::fs::read_to_string(path).unwrap_or_default();
    parse_reports(&body)
}

/// [`receiver_reports`] of a log already read (or of `perf recv --json` output).
pub fn parse_reports(body: &str) -> Vec<Report> {
    let mut summaries: BTreeMap<String, Report> = BTreeMap::new();
    let mut sums: BTreeMap<String, Report> = BTreeMap::new();
    for line in body.lines() {
        let text = line.split_once(' ').map(|x| x.1).unwrap_or(line);
        let Some(start) = text.find('{') else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(text.get(start..).unwrap_or("")) else {
            continue;
        };
        let sender = match v.get("sender") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => continue,
        };
        let r = Report {
            sender_ip: sender_ip(&sender),
            sender: sender.clone(),
            datagrams: num(&v, "datagrams"),
            bytes: num(&v, "bytes"),
            lost: num(&v, "lost"),
            duplicates: num(&v, "duplicates"),
            out_of_order: num(&v, "out_of_order"),
            jitter: show_value(v.get("jitter_ms")),
            latency: show_value(v.get("latency_us")),
        };
        if v.get("summary").and_then(Value::as_bool) == Some(true) {
            summaries.insert(sender, r);
        } else {
            let e = sums.entry(sender).or_insert_with(|| Report {
                datagrams: 0,
                bytes: 0,
                lost: 0,
                duplicates: 0,
                out_of_order: 0,
                ..r.clone()
            });
            e.datagrams += r.datagrams;
            e.bytes += r.bytes;
            e.lost += r.lost;
            e.duplicates += r.duplicates;
            e.out_of_order += r.out_of_order;
            e.jitter = r.jitter;
            e.latency = r.latency;
        }
    }
    for (k, v) in sums {
        summaries.entry(k).or_insert(v);
    }
    summaries.into_values().collect()
}

/// The demo's table of receivers' reports: one row per (receiver task, its host, one
/// sender's numbers).
pub fn receivers_table(rows: &[(String, String, Report)]) -> String {
    let rows: Vec<[String; 11]> = rows
        .iter()
        .map(|(task, host, r)| {
            [
                task.clone(),
                host.clone(),
                r.sender.clone(),
                r.datagrams.to_string(),
                r.bytes
                    .checked_div(r.datagrams)
                    .map(|b| format!("{b} B"))
                    .unwrap_or("-".into()),
                r.bytes.to_string(),
                r.lost.to_string(),
                r.duplicates.to_string(),
                r.out_of_order.to_string(),
                r.jitter.clone(),
                r.latency.clone(),
            ]
        })
        .collect();
    table::render(
        [
            "RECEIVER",
            "HOST",
            "FROM",
            "DATAGRAMS",
            "SIZE",
            "BYTES",
            "LOST",
            "DUP",
            "REORDERED",
            "JITTER ms",
            "LATENCY us",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_wins_over_intervals_and_garbage_is_skipped() {
        let log = "\
2026-01-01T00:00:00.000Z [lab] starting: mcgate perf recv
2026-01-01T00:00:01.000Z {\"start\":0,\"end\":1,\"sender\":\"10.0.2.101:5001\",\"bytes\":1470,\"datagrams\":1,\"lost\":0,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.01,\"latency_us\":120}
2026-01-01T00:00:02.000Z {\"start\":1,\"end\":2,\"sender\":\"10.0.2.101:5001\",\"bytes\":2940,\"datagrams\":2,\"lost\":1,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.02,\"latency_us\":130}
2026-01-01T00:00:02.500Z {not json
2026-01-01T00:00:03.000Z {\"start\":3,\"end\":4,\"sender\":\"10.0.3.100:5001\",\"bytes\":1470,\"datagrams\":1,\"lost\":0}
2026-01-01T00:00:04.000Z {\"summary\":true,\"start\":0,\"end\":4,\"sender\":\"10.0.2.101:5001\",\"bytes\":5880,\"datagrams\":4,\"lost\":0,\"duplicates\":0,\"out_of_order\":0,\"jitter_ms\":0.015,\"latency_us\":{\"avg\":125}}
";
        let r = parse_reports(log);
        assert_eq!(r.len(), 2);
        let a = r
            .iter()
            .find(|x| x.sender.starts_with("10.0.2.101"))
            .unwrap();
        assert_eq!((a.datagrams, a.lost), (4, 0), "the summary, not the sum");
        assert_eq!(a.sender_ip, Some(IpAddr::from([10, 0, 2, 101])));
        assert_eq!(
            sender_ip("[fe80::1%2]:5001"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(a.latency, "avg 125");
        let v: Value = serde_json::from_str(r#"{"p50":1,"p90":2,"p99":3.5,"max":40}"#).unwrap();
        assert_eq!(show_value(Some(&v)), "1/2/3.5/40");
        let b = r
            .iter()
            .find(|x| x.sender.starts_with("10.0.3.100"))
            .unwrap();
        assert_eq!(b.datagrams, 1);
        assert!(parse_reports("").is_empty());
    }

    #[test]
    fn every_receivers_value_sits_under_its_own_header() {
        let r = Report {
            sender: "10.0.2.101:5001".into(),
            sender_ip: Some(IpAddr::from([10, 0, 2, 101])),
            datagrams: 4,
            bytes: 5880,
            lost: 7,
            duplicates: 8,
            out_of_order: 9,
            jitter: "0.015".into(),
            latency: "1/2/3/4".into(),
        };
        let text = receivers_table(&[("rx-1".into(), "h1".into(), r)]);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
        let row: Vec<&str> = lines[1]
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(header.len(), row.len(), "{text}");
        let cell = |name: &str| row[header.iter().position(|h| h.trim() == name).unwrap()];
        assert_eq!(cell("SIZE"), "1470 B");
        assert_eq!(cell("BYTES"), "5880");
        assert_eq!(cell("LOST"), "7");
        assert_eq!(cell("DUP"), "8");
        assert_eq!(cell("REORDERED"), "9");
        assert_eq!(cell("LATENCY us"), "1/2/3/4");
    }
}
