use std::io::Write;
use std::process::{Command, Stdio};

use mcgate_dataplane::kernel::plane::DeviceStatus;

use super::*;
use crate::view::{FrameCounters, LinkView};

fn sample() -> (AgentView, ControllerStatus, DataplaneStats, KernelStatus) {
    let stats = mcgate_igmp::Stats {
        received: mcgate_igmp::Received {
            report_v2: 5,
            ..Default::default()
        },
        sent: mcgate_igmp::Sent {
            general_queries: 2,
            ..Default::default()
        },
        dropped: mcgate_igmp::Dropped {
            rate_limited: 3,
            ..Default::default()
        },
        ignored_link_local: 1,
        ..Default::default()
    };
    let view = AgentView {
        host: "h1".into(),
        links: vec![LinkView {
            name: "tk1".into(),
            ifindex: 4,
            address: None,
            querier: true,
            igmp_version: Some(3),
            igmp: Some(stats),
            igmp_frames: FrameCounters {
                received: 8,
                socket_overflow: 2,
                queue_full: 1,
                oversize: 1,
            },
            bad_frames: 0,
            frames_without_querier: 0,
            query_send_errors: 0,
            groups: vec![],
            mld: crate::view::MldView {
                state: "running",
                querier: true,
                version: Some(2),
                counters: Some(crate::view::MldStats {
                    received: crate::view::MldReceived {
                        report_v2: 4,
                        done_v1: 1,
                        ..Default::default()
                    },
                    sent: mcgate_igmp::Sent {
                        general_queries: 3,
                        ..Default::default()
                    },
                    ignored_link_scope: 6,
                    ..Default::default()
                }),
                frames: FrameCounters {
                    received: 11,
                    ..Default::default()
                },
                frames_without_querier: 2,
                ..Default::default()
            },
        }],
        peer_liveness: crate::liveness_task::LivenessView {
            enabled: true,
            port: 51821,
            tx_interval_ms: 100,
            detect_mult: 3,
            sent: 30,
            received: 20,
            detections: 1,
            refused: crate::liveness_task::Refusals {
                not_authenticated: 2,
                ..Default::default()
            },
            peers: vec![crate::liveness_task::PeerLivenessView {
                host: "h2".into(),
                address: "10.0.0.2".parse().unwrap(),
                state: "down",
                since_ms: 5,
                last_heard_ms: Some(305),
                detection_time_ms: 300,
                received: 20,
                detections: 1,
            }],
            ..Default::default()
        },
        ..AgentView::default()
    };
    let status = ControllerStatus {
        url: "http://127.0.0.1:7400".into(),
        session: Some(1),
        heartbeats: 7,
        heartbeat_failures: 2,
        failovers: 3,
        stream_resumes: 4,
        ..ControllerStatus::default()
    };
    let mut dp = DataplaneStats {
        name: "userspace",
        ..DataplaneStats::default()
    };
    dp.links.insert("tk1".into(), Default::default());
    dp.groups
        .insert("233.252.0.5".parse().unwrap(), Default::default());
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
    (view, status, dp, k)
}

fn all(format: Format) -> String {
    let (view, status, dp, k) = sample();
    render(format, &view, &status, &dp, Some(&k))
}

/// `promtool check metrics` (Debian package `prometheus`) on `text`: its complaints.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said
    } else {
        format!("promtool failed: {said}")
    }
}

/// promtool reads the 0.0.4 text format, which is what a scraper that does not ask for
/// OpenMetrics (curl, promtool itself, older Prometheus) gets.
#[test]
fn promtool_finds_nothing_to_say() {
    let text = all(Format::PrometheusText);
    let said = promtool(&text);
    assert_eq!(said.trim(), "", "{said}\n{text}");
    let (view, status, dp, _) = sample();
    let userspace = render(Format::PrometheusText, &view, &status, &dp, None);
    assert_eq!(promtool(&userspace).trim(), "");
}

#[test]
fn every_family_has_help_and_type_and_counters_are_typed_for_0_0_4_parsers() {
    let text = all(Format::PrometheusText);
    assert!(!text.contains("# EOF"), "{text}");
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        names.insert(name.to_string());
    }
    for name in &names {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    assert!(text.contains("# TYPE mcgate_agent_igmp_received_total counter"));
    assert!(text.contains("# TYPE mcgate_agent_kernel_reconciles_total counter"));
    let om = all(Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1);
}

#[test]
fn igmp_counts_are_split_into_received_sent_and_dropped_families() {
    let text = all(Format::PrometheusText);
    assert!(!text.contains("mcgate_agent_igmp_total"), "{text}");
    for series in [
        r#"mcgate_agent_igmp_received_total{link="tk1",type="report_v2"} 5"#,
        r#"mcgate_agent_igmp_sent_total{link="tk1",type="general_queries"} 2"#,
        r#"mcgate_agent_igmp_dropped_total{link="tk1",reason="rate_limited"} 3"#,
        r#"mcgate_agent_igmp_ignored_total{link="tk1",reason="link_local"} 1"#,
        r#"mcgate_agent_igmp_frames_received_total{link="tk1"} 8"#,
        r#"mcgate_agent_igmp_frames_dropped_total{link="tk1",reason="socket_overflow"} 2"#,
        r#"mcgate_agent_igmp_frames_dropped_total{link="tk1",reason="queue_full"} 1"#,
        r#"mcgate_agent_igmp_frames_dropped_total{link="tk1",reason="oversize"} 1"#,
        r#"mcgate_agent_kernel_memberships{device="mcgvx42",vni="42"} 3"#,
        r#"mcgate_agent_mld_received_total{link="tk1",type="report_v2"} 4"#,
        r#"mcgate_agent_mld_received_total{link="tk1",type="done_v1"} 1"#,
        r#"mcgate_agent_mld_sent_total{link="tk1",type="general_queries"} 3"#,
        r#"mcgate_agent_mld_ignored_total{link="tk1",reason="link_scope"} 6"#,
        r#"mcgate_agent_mld_frames_received_total{link="tk1"} 11"#,
        r#"mcgate_agent_mld_frames_dropped_total{link="tk1",reason="no_querier"} 2"#,
        r#"mcgate_agent_mld_querier{link="tk1"} 1"#,
        r#"mcgate_agent_mld_link_groups{link="tk1"} 0"#,
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
}

/// The controller connection's counters of `/v1/stats` are series too.
#[test]
fn heartbeat_counts_are_series() {
    let text = all(Format::PrometheusText);
    for series in [
        "mcgate_agent_controller_heartbeats_total 7",
        "mcgate_agent_controller_heartbeat_failures_total 2",
        "# TYPE mcgate_agent_controller_heartbeats_total counter",
        "mcgate_agent_controller_failovers_total 3",
        "# TYPE mcgate_agent_controller_failovers_total counter",
        "mcgate_agent_stream_resumes_total 4",
        "mcgate_agent_controller_registered{controller=\"http://127.0.0.1:7400\"} 1",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
}

/// The peer keepalives' state and counters are series; none while keepalives are off.
#[test]
fn peer_liveness_is_series() {
    let text = all(Format::PrometheusText);
    for series in [
        r#"mcgate_agent_peer_state{peer="h2",state="down"} 1"#,
        r#"mcgate_agent_peer_state{peer="h2",state="up"} 0"#,
        r#"mcgate_agent_peer_detections_total{peer="h2"} 1"#,
        r#"mcgate_agent_keepalives_refused_total{reason="not_authenticated"} 2"#,
        "mcgate_agent_keepalives_sent_total 30",
        "mcgate_agent_keepalives_received_total 20",
        "mcgate_agent_peer_down_detections_total 1",
        "# TYPE mcgate_agent_peer_down_detections_total counter",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
    let (mut view, status, dp, _) = sample();
    view.peer_liveness.enabled = false;
    let off = render(Format::PrometheusText, &view, &status, &dp, None);
    assert!(!off.contains("keepalive"), "{off}");
}

#[test]
fn the_accept_header_picks_the_format() {
    use Format::*;
    for (accept, want) in [
        (None, PrometheusText),
        (Some(""), PrometheusText),
        (Some("text/plain"), PrometheusText),
        (Some("*/*"), PrometheusText),
        (Some("application/openmetrics-text"), OpenMetrics),
        (
            Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
            ),
            OpenMetrics,
        ),
        (
            Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
            PrometheusText,
        ),
        (Some("application/openmetrics-text;q=0"), PrometheusText),
        (
            Some("application/openmetrics-text;q=nan,;;,=,q="),
            OpenMetrics,
        ),
        (Some("\u{0}\u{ffff};q=1e999"), PrometheusText),
    ] {
        assert_eq!(Format::negotiate(accept), want, "{accept:?}");
    }
}
