//! The controller's HTTP surface against hostile or careless clients, on loopback: bodies
//! that are not JSON, oversized bodies announced up front, clients that never finish their
//! headers, idle connections past the limit, empty query values.

use std::net::SocketAddr;
use std::time::Duration;

use mcgate_client::{Client, ClientError};
use mcgate_controller::server::ConnLimits;
use mcgate_controller::{Config, Controller, Running, serve_tls};
use mcgate_domain::api::{ApiError, Domain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    running: Running,
    client: Client,
    /// The Unix socket, for the exchanges written by hand (TCP is TLS).
    sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(connections: ConnLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            connections,
            ..Config::default()
        };
        let ctl = Controller::open(config, dir.path()).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sock = dir.path().join("ctl.sock");
        let unix = tokio::net::UnixListener::bind(&sock).unwrap();
        let (running, admin) = serve_tls(ctl, dir.path(), tcp, Some(unix), &[]).unwrap();
        let client = Client::from_credentials(&admin).unwrap();
        Self {
            running,
            client,
            sock,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.addr
    }
}

/// Sends `head` (and `body`), then reads the answer until the server closes or 5 s pass.
/// Returns the status (0 when none came) and the body.
async fn exchange(sock: &std::path::Path, head: &str, body: &[u8]) -> (u16, String) {
    let mut c = tokio::net::UnixStream::connect(sock).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let _ = c.write_all(body).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer within 5 s to {head:?}");
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

fn post_head(content_type: Option<&str>, len: usize) -> String {
    let ct = content_type
        .map(|t| format!("content-type: {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /v1/domains HTTP/1.1\r\nhost: x\r\n{ct}content-length: {len}\r\nconnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused_with_415_and_change_nothing() {
    let s = Server::start(ConnLimits::default()).await;
    let json = br#"{"name": "evil"}"#;
    for (ct, body) in [
        (Some("application/x-www-form-urlencoded"), &b"name=evil"[..]),
        (Some("text/plain"), json),
        (Some("multipart/form-data; boundary=x"), json),
        (Some("application/jsonx"), json),
        (None, json),
    ] {
        let (code, text) = exchange(&s.sock, &post_head(ct, body.len()), body).await;
        assert_eq!(code, 415, "{ct:?}: {text}");
        let err: ApiError = serde_json::from_str(&text).unwrap();
        assert!(err.error.contains("application/json"), "{}", err.error);
    }
    let domains: Vec<Domain> = s.client.get("/v1/domains").await.unwrap();
    assert!(domains.is_empty(), "{domains:?}");
    // JSON with parameters and in any case is JSON.
    let (code, text) = exchange(
        &s.sock,
        &post_head(Some("Application/JSON; charset=utf-8"), json.len()),
        json,
    )
    .await;
    assert_eq!(code, 201, "{text}");
}

#[tokio::test]
async fn an_announced_oversized_body_is_refused_before_it_is_sent() {
    let s = Server::start(ConnLimits::default()).await;
    // The body never comes: an answer can only be the server refusing at the headers.
    let (code, text) = exchange(
        &s.sock,
        &post_head(Some("application/json"), (1 << 20) + 1),
        b"",
    )
    .await;
    assert_eq!(code, 413, "{text}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let s = Server::start(ConnLimits {
        header_timeout: Duration::from_millis(300),
        ..ConnLimits::default()
    })
    .await;
    for partial in ["", "GET /v1/healthz HTTP/1.1\r\nhost: x\r\n"] {
        let mut c = TcpStream::connect(s.addr()).await.unwrap();
        c.write_all(partial.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "the connection ({partial:?}) was still open after 5 s"
        );
    }
    // A kept-alive connection idle after its request is cut off the same way.
    let mut c = tokio::net::UnixStream::connect(&s.sock).await.unwrap();
    c.write_all(b"GET /v1/healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "an idle kept-alive connection was still open after 5 s"
    );
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn idle_connections_past_the_limit_do_not_starve_healthz() {
    let s = Server::start(ConnLimits {
        max_connections: 8,
        header_timeout: Duration::from_millis(500),
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(TcpStream::connect(s.addr()).await.unwrap());
    }
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        s.client.get::<serde_json::Value>("/v1/healthz"),
    )
    .await
    .expect("healthz answered within 10 s despite 32 idle connections")
    .unwrap();
    assert_eq!(health["status"], "ok");
    drop(idle);
}

#[tokio::test]
async fn an_empty_query_value_is_a_400_not_no_filter() {
    let s = Server::start(ConnLimits::default()).await;
    for q in ["source=", "group=", "domain=", "type=", "host="] {
        match s
            .client
            .get::<serde_json::Value>(&format!("/v1/groups?{q}"))
            .await
        {
            Err(ClientError::Status { status, field, .. }) => {
                assert_eq!(status, 400, "{q}");
                assert_eq!(field.as_deref(), Some(q.trim_end_matches('=')), "{q}");
            }
            other => panic!("?{q} was answered {other:?}"),
        }
    }
    let rows: Vec<serde_json::Value> = s.client.get("/v1/groups").await.unwrap();
    assert!(rows.is_empty());
}
