//! `GET /metrics` of a live controller: every family the controller promises, in a text
//! `promtool check metrics` (Debian package `prometheus`, installed by scripts/test)
//! passes, and OpenMetrics when the scraper asks for it.

use std::io::Write;
use std::process::{Command, Stdio};

use mcgate_controller::{Config, Controller, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(sock: &std::path::Path, accept: Option<&str>) -> (String, String) {
    let mut c = tokio::net::UnixStream::connect(sock).await.unwrap();
    let accept = accept
        .map(|a| format!("accept: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET /metrics HTTP/1.1\r\nhost: x\r\n{accept}connection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (ct, body.to_string())
}

#[tokio::test]
async fn metrics_pass_promtool_and_honour_accept() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::open(Config::default(), dir.path()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sock = dir.path().join("ctl.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    let (running, admin) = serve_tls(ctl, dir.path(), tcp, Some(unix), &[]).unwrap();
    let client = mcgate_client::Client::from_credentials(&admin).unwrap();
    let _: serde_json::Value = client
        .post("/v1/domains", &serde_json::json!({"name": "prod"}))
        .await
        .unwrap();
    let _ = client.get::<serde_json::Value>("/v1/domains/nope").await;

    let (ct, text) = scrape(&sock, None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    for family in [
        "# TYPE mcgate_controller_http_requests_total counter",
        "# TYPE mcgate_controller_streams gauge",
        "# TYPE mcgate_controller_lagging_streams gauge",
        "# TYPE mcgate_controller_stream_overflows_total counter",
        "# TYPE mcgate_controller_agents gauge",
        "# TYPE mcgate_controller_domains gauge",
        "# TYPE mcgate_controller_memberships gauge",
        "# TYPE mcgate_controller_lease_expiries_total counter",
        "# TYPE mcgate_controller_store_commit_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    assert!(text.contains("mcgate_controller_domains 1"), "{text}");
    assert!(
        text.contains(r#"route="/v1/domains/{name}",status="404""#),
        "{text}"
    );
    assert!(
        text.contains("mcgate_controller_store_commit_seconds_count 1"),
        "{text}"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package `prometheus`; scripts/test installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (ct, om) = scrape(&sock, Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    running.shutdown().await.unwrap();
}
