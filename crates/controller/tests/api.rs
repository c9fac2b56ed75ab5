//! The controller's API against a real server on loopback (port 0), through the same
//! HTTP client the agents and the CLI use.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mcgate_client::{Client, ClientError, LineStream};
use mcgate_controller::{Config, Controller, Running, serve_tls};
use mcgate_domain::SourceFilter;
use mcgate_domain::api::*;
use serde_json::{Value, json};

const G: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);

struct Server {
    /// The Unix socket, for the exchanges written by hand (TCP is TLS).
    sock: std::path::PathBuf,
    running: Option<Running>,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ctl = Controller::open(config, dir.path()).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sock = dir.path().join("ctl.sock");
        let unix = tokio::net::UnixListener::bind(&sock).unwrap();
        let (running, admin) = serve_tls(ctl, dir.path(), tcp, Some(unix), &[]).unwrap();
        // Kept alive: a TLS handshake per heartbeat would make the lease tests slow.
        let client = Client::from_credentials(&admin).unwrap().keep_alive();
        Self {
            sock,
            running: Some(running),
            client,
            _dir: dir,
        }
    }

    async fn default() -> Self {
        Self::start(Config::default()).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.client.post(path, &body).await
    }

    async fn del(&self, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        self.client.delete(path, body.as_ref()).await
    }

    async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.client.get(path).await
    }

    /// The reference deployment's domain: two private subnets.
    async fn reference(&self) {
        self.post("/v1/domains", json!({"name": "prod"}))
            .await
            .unwrap();
        for s in ["10.0.2.0/24", "10.0.3.0/24"] {
            self.post("/v1/domains/prod/associations", json!({"subnet": s}))
                .await
                .unwrap();
        }
    }

    async fn register(&self, host: &str, ip: [u8; 4], subnet: &str) -> RegistrationReply {
        let reg = AgentRegistration {
            host: host.into(),
            underlay: SocketAddrV4::new(ip.into(), VXLAN_PORT),
            subnet: Some(subnet.parse().unwrap()),
            links: vec![],
            dataplane: Some("userspace".into()),
            public_key: String::new(),
            wireguard: None,
            zone: None,
            upstream: None,
        };
        self.client.post("/v1/agents", &reg).await.unwrap()
    }

    async fn join(&self, host: &str, session: u64, seq: u64, link: &str, reporter: [u8; 4]) {
        let report = MembershipReport {
            session,
            seq,
            snapshot: false,
            entries: vec![LinkMembership {
                link: link.into(),
                group: G.into(),
                filter: Some(SourceFilter::any_source()),
                reporters: vec![reporter.into()],
            }],
        };
        let ack: MembershipAck = self
            .client
            .post(&format!("/v1/agents/{host}/membership"), &report)
            .await
            .unwrap();
        assert_eq!(ack.seq, seq);
    }
}

fn status(r: Result<Value, ClientError>) -> (u16, Option<String>) {
    match r {
        Err(ClientError::Status { status, field, .. }) => (status, field),
        other => panic!("expected an error status, got {other:?}"),
    }
}

async fn next(s: &mut LineStream) -> StreamMessage {
    let line = tokio::time::timeout(Duration::from_secs(5), s.next_line())
        .await
        .expect("a stream line within 5 s")
        .unwrap()
        .expect("the stream is open");
    serde_json::from_slice(&line).unwrap()
}

/// The next line that is not a keepalive.
async fn next_change(s: &mut LineStream) -> StreamMessage {
    loop {
        match next(s).await {
            StreamMessage::Keepalive { .. } => continue,
            m => return m,
        }
    }
}

#[tokio::test]
async fn domain_verbs_round_trip() {
    let s = Server::default().await;
    let d = s
        .post(
            "/v1/domains",
            json!({"name": "prod", "vni": 42, "igmp": "v3", "static_sources": true,
                   "igmp_settings": {"query_interval_ms": 120000, "robustness": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(d["vni"], 42);
    assert_eq!(d["igmp_settings"]["robustness"], 3);
    s.post("/v1/domains", json!({"name": "lab"})).await.unwrap();
    assert_eq!(
        s.get("/v1/domains")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let d = s
        .post(
            "/v1/domains/prod/associations",
            json!({"subnet": "10.0.2.0/24"}),
        )
        .await
        .unwrap();
    assert_eq!(d["subnets"], json!(["10.0.2.0/24"]));
    s.post("/v1/domains/prod/associations", json!({"host": "h1"}))
        .await
        .unwrap();
    let d = s.get("/v1/domains/prod").await.unwrap();
    assert_eq!(d["hosts"], json!(["h1"]));
    s.del("/v1/domains/prod/associations", Some(json!({"host": "h1"})))
        .await
        .unwrap();
    let member =
        json!({"group": "233.252.0.5", "host": "h2", "interface": "eth1", "address": "10.0.2.7"});
    s.post("/v1/domains/prod/members", member.clone())
        .await
        .unwrap();
    let source = json!({"group": "233.252.0.5", "address": "10.0.2.9"});
    s.post("/v1/domains/prod/sources", source.clone())
        .await
        .unwrap();
    let rows: Vec<GroupEntry> = s.client.get("/v1/groups?type=static").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.member && r.host == "h2"));
    assert!(
        rows.iter()
            .any(|r| r.source && r.address == Some([10, 0, 2, 9].into()))
    );
    let rows: Vec<GroupEntry> = s.client.get("/v1/groups?source=10.0.2.9").await.unwrap();
    assert_eq!(rows.len(), 1);
    let rows: Vec<GroupEntry> = s
        .client
        .get("/v1/groups?subnet=10.0.2.0%2F24&domain=prod")
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    s.del("/v1/domains/prod/members", Some(member.clone()))
        .await
        .unwrap();
    s.del("/v1/domains/prod/sources", Some(source.clone()))
        .await
        .unwrap();
    assert_eq!(
        status(s.del("/v1/domains/prod/members", Some(member)).await).0,
        404
    );
    assert_eq!(
        status(s.del("/v1/domains/prod/sources", Some(source)).await).0,
        404
    );
    s.del("/v1/domains/lab", None).await.unwrap();
    assert_eq!(status(s.get("/v1/domains/lab").await).0, 404);
    let health = s.get("/v1/healthz").await.unwrap();
    assert_eq!(
        (health["status"].as_str(), health["domains"].as_u64()),
        (Some("ok"), Some(1))
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field() {
    let s = Server::default().await;
    s.reference().await;
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("/v1/domains", json!({"name": 7}), 400, Some("name")),
        ("/v1/domains", json!({"nam": "x"}), 400, None),
        (
            "/v1/domains",
            json!({"name": "x", "vni": 16777216}),
            400,
            Some("vni"),
        ),
        (
            "/v1/domains",
            json!({"name": "x", "vni": -1}),
            400,
            Some("vni"),
        ),
        (
            "/v1/domains",
            json!({"name": "x", "igmp": "v4"}),
            400,
            Some("igmp"),
        ),
        ("/v1/domains", json!({"name": "prod"}), 409, Some("name")),
        (
            "/v1/domains",
            json!({"name": "has space"}),
            400,
            Some("name"),
        ),
        (
            "/v1/domains/prod/associations",
            json!({"subnet": "10.0.2.128/25"}),
            409,
            Some("subnet"),
        ),
        (
            "/v1/domains/prod/associations",
            json!({"subnet": "nope"}),
            400,
            Some("subnet"),
        ),
        (
            "/v1/domains/prod/associations",
            json!({}),
            400,
            Some("subnet"),
        ),
        (
            "/v1/domains/nope/associations",
            json!({"host": "h"}),
            404,
            Some("name"),
        ),
        (
            "/v1/domains/prod/members",
            json!({"group": "10.0.0.1", "host": "h"}),
            400,
            Some("group"),
        ),
        (
            "/v1/domains/prod/members",
            json!({"group": "233.252.0.5"}),
            400,
            None,
        ),
        (
            "/v1/domains/nope/members",
            json!({"group": "233.252.0.5", "host": "h"}),
            404,
            Some("name"),
        ),
        (
            "/v1/domains/prod/sources",
            json!({"group": "233.252.0.5", "address": "239.1.1.1"}),
            400,
            Some("address"),
        ),
        (
            "/v1/domains/prod/sources",
            json!({"group": "233.252.0.5", "address": "255.255.255.255"}),
            400,
            Some("address"),
        ),
        (
            "/v1/domains/prod/sources",
            json!({"group": 5, "address": "10.0.2.1"}),
            400,
            Some("group"),
        ),
        (
            "/v1/agents",
            json!({"host": "h", "underlay": "10.0.0.1"}),
            400,
            Some("underlay"),
        ),
        (
            "/v1/agents/nobody/heartbeat",
            json!({"session": 1}),
            404,
            Some("host"),
        ),
        (
            "/v1/agents/nobody/membership",
            json!({"session": 1, "seq": 1, "snapshot": true, "entries": []}),
            404,
            Some("host"),
        ),
    ];
    for (path, body, code, field) in cases {
        let (got, got_field) = status(s.post(path, body.clone()).await);
        assert_eq!(got, code, "{path} {body}");
        if let Some(f) = field {
            assert_eq!(got_field.as_deref(), Some(f), "{path} {body}");
        }
    }
    // Not JSON at all, an empty body, and a body over the limit, by raw HTTP.
    for (body, code) in [
        (b"{\"name\": ".to_vec(), 400),
        (Vec::new(), 400),
        (vec![b' '; (1 << 20) + 10], 413),
    ] {
        let (got, text) = raw_post(&s.sock, "/v1/domains", &body).await;
        assert_eq!(got, code, "{text}");
        let err: ApiError = serde_json::from_str(&text).unwrap();
        assert!(!err.error.is_empty());
    }
    assert_eq!(
        status(s.get("/v1/groups?group=10.1.1.1").await),
        (400, Some("group".into()))
    );
    assert_eq!(status(s.get("/v1/groups?type=both").await).0, 400);
    assert_eq!(status(s.get("/v1/groups?domain=nope").await).0, 404);
    assert_eq!(status(s.get("/v1/nowhere").await).0, 404);
    assert_eq!(status(s.del("/v1/domains", None).await).0, 405);
    // Still serving.
    assert_eq!(
        s.get("/v1/domains")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn raw_post(sock: &std::path::Path, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::UnixStream::connect(sock).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before reading an oversized body.
    let _ = c.write_all(body).await;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    // A body sent with chunked encoding would carry sizes; ours are small and fixed.
    (code, body)
}

#[tokio::test]
async fn reference_group_table_has_four_rows_and_the_sender_is_absent() {
    let s = Server::default().await;
    s.reference().await;
    let a = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    let b = s.register("host-b", [10, 0, 3, 10], "10.0.3.0/24").await;
    assert_eq!(a.domains, vec!["prod".to_string()]);
    s.join("host-a", a.session, 1, "veth-r1", [10, 0, 2, 4])
        .await;
    s.join("host-b", b.session, 1, "veth-r2", [10, 0, 3, 4])
        .await;
    let rows: Vec<GroupEntry> = s.client.get("/v1/groups").await.unwrap();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.group.to_string(), r.address.unwrap().to_string()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("224.0.0.1", "10.0.2.4"),
            ("224.0.0.1", "10.0.3.4"),
            ("233.252.0.5", "10.0.2.4"),
            ("233.252.0.5", "10.0.3.4"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // The JSON keys the CLI's --json promises.
    let raw = s.get("/v1/groups").await.unwrap();
    for k in [
        "domain",
        "group",
        "host",
        "subnet",
        "interface",
        "address",
        "member",
        "source",
        "member_type",
        "source_type",
        "source_filter",
    ] {
        assert!(raw[0].get(k).is_some(), "missing {k}");
    }
    let agents: Vec<AgentInfo> = s.client.get("/v1/agents").await.unwrap();
    assert_eq!(agents.len(), 2);
    assert!(agents.iter().all(|a| a.state == "up" && a.memberships == 1));
    // Deregistering host-b removes its rows.
    s.del("/v1/agents/host-b", None).await.unwrap();
    let rows: Vec<GroupEntry> = s.client.get("/v1/groups").await.unwrap();
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn ipv6_members_and_sources_are_accepted_listed_and_streamed() {
    let s = Server::default().await;
    s.reference().await;
    let a = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    s.register("host-b", [10, 0, 3, 10], "10.0.3.0/24").await;
    let mut stream = s.client.stream("/v1/agents/host-b/stream").await.unwrap();
    let StreamMessage::Snapshot { .. } = next(&mut stream).await else {
        panic!("a stream starts with a snapshot");
    };
    s.post(
        "/v1/domains/prod/members",
        json!({"group": "ff3e::8000:5", "host": "host-b", "address": "2001:db8::b"}),
    )
    .await
    .unwrap();
    s.post(
        "/v1/domains/prod/sources",
        json!({"group": "ff3e::8000:5", "address": "2001:db8::a", "host": "host-a"}),
    )
    .await
    .unwrap();
    // An MLD membership report: an IPv6 group, filter and reporter.
    let report = json!({"session": a.session, "seq": 1, "snapshot": false, "entries": [
        {"link": "veth1", "group": "ff3e::8000:5",
         "filter": {"mode": "include", "sources": ["2001:db8::a"]}, "reporters": ["fe80::4"]}]});
    s.post("/v1/agents/host-a/membership", report)
        .await
        .unwrap();
    // host-b's stream carries host-a's IPv6 member change.
    let want = Change::Member {
        domain: "prod".into(),
        host: "host-a".into(),
        group: "ff3e::8000:5".parse().unwrap(),
        filter: Some(SourceFilter::include(["2001:db8::a".parse().unwrap()])),
    };
    loop {
        match next_change(&mut stream).await {
            StreamMessage::Delta { changes, .. } if changes.contains(&want) => break,
            // The registrations' own snapshot may come first.
            StreamMessage::Snapshot { domains, .. }
                if domains[0].members.iter().any(|m| m.host == "host-a") =>
            {
                break;
            }
            _ => continue,
        }
    }
    let rows = s.get("/v1/groups?group=ff3e::8000:5").await.unwrap();
    let seen: Vec<(&str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap(),
                r["address"].as_str().unwrap(),
                r["member_type"]
                    .as_str()
                    .or(r["source_type"].as_str())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("host-a", "2001:db8::a", "static"),
            ("host-a", "fe80::4", "mld"),
            ("host-b", "2001:db8::b", "static"),
        ]
    );
    assert_eq!(
        rows[1]["source_filter"],
        json!({"mode": "include", "sources": ["2001:db8::a"]})
    );
    let rows = s.get("/v1/groups?source=2001:db8::a").await.unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    // Refused: link-scope groups, mixed families.
    for (path, body, field) in [
        (
            "/v1/domains/prod/members",
            json!({"group": "ff02::1", "host": "host-b"}),
            "group",
        ),
        (
            "/v1/domains/prod/sources",
            json!({"group": "ff02::1:ff00:1", "address": "2001:db8::1"}),
            "group",
        ),
        (
            "/v1/domains/prod/sources",
            json!({"group": "233.252.0.5", "address": "2001:db8::1"}),
            "address",
        ),
        (
            "/v1/agents/host-a/membership",
            json!({"session": a.session, "seq": 2, "snapshot": false, "entries": [
                {"link": "veth1", "group": "ff3e::1",
                 "filter": {"mode": "include", "sources": ["10.0.2.4"]}}]}),
            "entries[0].filter",
        ),
    ] {
        assert_eq!(
            status(s.post(path, body).await),
            (400, Some(field.into())),
            "{path}"
        );
    }
    let bad = s.get("/v1/groups?group=2001:db8::1").await;
    assert_eq!(status(bad), (400, Some("group".into())));
}

#[tokio::test]
async fn sessions_sequences_and_stale_reports() {
    let s = Server::default().await;
    s.reference().await;
    let a1 = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    s.join("host-a", a1.session, 1, "veth1", [10, 0, 2, 4])
        .await;
    // A duplicate sequence is acknowledged and ignored.
    s.join("host-a", a1.session, 1, "veth1", [10, 0, 2, 4])
        .await;
    let a2 = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    assert_ne!(a1.session, a2.session);
    let stale = s
        .post(
            "/v1/agents/host-a/heartbeat",
            json!({"session": a1.session}),
        )
        .await;
    assert_eq!(status(stale), (409, Some("session".into())));
    let stale = s
        .post(
            "/v1/agents/host-a/membership",
            json!({"session": a1.session, "seq": 2, "snapshot": true, "entries": []}),
        )
        .await;
    assert_eq!(status(stale).0, 409);
    s.post(
        "/v1/agents/host-a/heartbeat",
        json!({"session": a2.session}),
    )
    .await
    .unwrap();
    // The new session's snapshot replaces the memberships.
    s.post(
        "/v1/agents/host-a/membership",
        json!({"session": a2.session, "seq": 1, "snapshot": true, "entries": []}),
    )
    .await
    .unwrap();
    let rows: Vec<GroupEntry> = s.client.get("/v1/groups").await.unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn lease_expiry_removes_members_and_tells_the_others() {
    let s = Server::start(Config {
        lease_ms: 300,
        heartbeat_ms: 100,
        ..Config::default()
    })
    .await;
    s.reference().await;
    let a = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    let b = s.register("host-b", [10, 0, 3, 10], "10.0.3.0/24").await;
    assert_eq!(a.lease_ms, 300);
    s.join("host-a", a.session, 1, "veth1", [10, 0, 2, 4]).await;
    let last_heard = tokio::time::Instant::now();
    let mut stream = s.client.stream("/v1/agents/host-b/stream").await.unwrap();
    assert!(matches!(
        next(&mut stream).await,
        StreamMessage::Snapshot { .. }
    ));
    // host-b heartbeats; host-a falls silent.
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline && changes.len() < 2 {
        s.post("/v1/agents/host-b/heartbeat", json!({"session": b.session}))
            .await
            .unwrap();
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(100), stream.next_line()).await
            && let StreamMessage::Delta { changes: c, .. } = serde_json::from_slice(&line).unwrap()
        {
            changes.extend(c);
        }
    }
    // Not before the lease, and promptly after it (generous bound for a busy machine).
    let took = last_heard.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1_000),
        "{took:?}"
    );
    assert_eq!(
        changes,
        vec![
            Change::Member {
                domain: "prod".into(),
                host: "host-a".into(),
                group: G.into(),
                filter: None
            },
            Change::PeerDown {
                domain: "prod".into(),
                host: "host-a".into()
            }
        ]
    );
    let agents: Vec<AgentInfo> = s.client.get("/v1/agents").await.unwrap();
    let a_info = agents.iter().find(|x| x.host == "host-a").unwrap();
    assert_eq!((a_info.state.as_str(), a_info.memberships), ("expired", 0));
    assert_eq!(
        status(
            s.post("/v1/agents/host-a/heartbeat", json!({"session": a.session}))
                .await
        )
        .0,
        409
    );
    // It comes back by registering again.
    let a2 = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    s.post(
        "/v1/agents/host-a/heartbeat",
        json!({"session": a2.session}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stream_resumes_from_the_ring_or_resnapshots() {
    let s = Server::start(Config {
        ring_entries: 4,
        ..Config::default()
    })
    .await;
    s.reference().await;
    let a = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    s.register("host-b", [10, 0, 3, 10], "10.0.3.0/24").await;
    let mut stream = s.client.stream("/v1/agents/host-b/stream").await.unwrap();
    let StreamMessage::Snapshot { revision, domains } = next(&mut stream).await else {
        panic!("a stream starts with a snapshot");
    };
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].peers.len(), 2);
    // Wait for the registrations' own lines to pass, then disconnect.
    let mut last = revision;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(200), stream.next_line()).await
    {
        let m: StreamMessage = serde_json::from_slice(&line).unwrap();
        last = match m {
            StreamMessage::Snapshot { revision, .. }
            | StreamMessage::Delta { revision, .. }
            | StreamMessage::Keepalive { revision } => revision,
        };
    }
    drop(stream);
    // While host-b is away, host-a joins.
    s.join("host-a", a.session, 1, "veth1", [10, 0, 2, 4]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stream = s
        .client
        .stream(&format!("/v1/agents/host-b/stream?since={last}"))
        .await
        .unwrap();
    match next_change(&mut stream).await {
        StreamMessage::Delta { revision, changes } => {
            assert!(revision > last);
            assert_eq!(
                changes,
                vec![Change::Member {
                    domain: "prod".into(),
                    host: "host-a".into(),
                    group: G.into(),
                    filter: Some(SourceFilter::any_source())
                }]
            );
        }
        other => panic!("expected the missed delta, got {other:?}"),
    }
    drop(stream);
    // Push the old revision out of the ring (4 entries): it now re-snapshots.
    for seq in 2..8 {
        let report = json!({"session": a.session, "seq": seq, "snapshot": false, "entries": [
            {"link": "veth1", "group": format!("239.1.1.{seq}"), "filter": {"mode": "exclude", "sources": []}}]});
        s.post("/v1/agents/host-a/membership", report)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = s
        .client
        .stream(&format!("/v1/agents/host-b/stream?since={last}"))
        .await
        .unwrap();
    match next(&mut stream).await {
        StreamMessage::Snapshot { domains, .. } => {
            assert_eq!(domains[0].members.len(), 7);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    // A revision from the future, or garbage, is refused or re-snapshotted.
    let mut stream = s
        .client
        .stream("/v1/agents/host-b/stream?since=18446744073709551615")
        .await
        .unwrap();
    assert!(matches!(
        next(&mut stream).await,
        StreamMessage::Snapshot { .. }
    ));
    assert_eq!(
        status(
            s.client
                .stream("/v1/agents/host-b/stream?since=abc")
                .await
                .map(|_| Value::Null)
        ),
        (400, Some("since".into()))
    );
    assert_eq!(
        status(
            s.client
                .stream("/v1/agents/nobody/stream")
                .await
                .map(|_| Value::Null)
        )
        .0,
        404
    );
}

#[tokio::test]
async fn keepalives_flow_and_shutdown_ends_streams() {
    let mut s = Server::default().await;
    s.reference().await;
    s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    let mut stream = s.client.stream("/v1/agents/host-a/stream").await.unwrap();
    let StreamMessage::Snapshot { .. } = next(&mut stream).await else {
        panic!("snapshot first");
    };
    let mut keepalive = false;
    for _ in 0..5 {
        if let StreamMessage::Keepalive { .. } = next(&mut stream).await {
            keepalive = true;
            break;
        }
    }
    assert!(keepalive);
    let running = s.running.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("graceful shutdown within 5 s")
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match stream.next_line().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)));
}

#[tokio::test]
async fn a_burst_of_joins_is_coalesced_and_shared() {
    let s = Server::default().await;
    s.reference().await;
    let a = s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    s.register("host-b", [10, 0, 3, 10], "10.0.3.0/24").await;
    let mut stream = s.client.stream("/v1/agents/host-b/stream").await.unwrap();
    assert!(matches!(
        next(&mut stream).await,
        StreamMessage::Snapshot { .. }
    ));
    // Let the registrations' own lines pass (a host that registers gets a snapshot).
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(100), stream.next_line()).await
    {}
    let entries: Vec<Value> = (0..200)
        .map(|i| {
            json!({"link": "veth1", "group": format!("239.0.{}.{}", i / 250, i % 250 + 1),
                         "filter": {"mode": "exclude", "sources": []}})
        })
        .collect();
    s.post(
        "/v1/agents/host-a/membership",
        json!({"session": a.session, "seq": 1, "snapshot": true, "entries": entries}),
    )
    .await
    .unwrap();
    let mut members = 0;
    let mut lines = 0;
    let mut bytes = 0;
    while members < 200 {
        let line = tokio::time::timeout(Duration::from_secs(5), stream.next_line())
            .await
            .expect("a stream line within 5 s")
            .unwrap()
            .expect("the stream is open");
        if let StreamMessage::Delta { changes, .. } = serde_json::from_slice(&line).unwrap() {
            lines += 1;
            bytes += line.len();
            for c in &changes {
                members += match c {
                    Change::Member {
                        filter: Some(_), ..
                    } => 1,
                    // One host's joins with one filter travel as one list of groups.
                    Change::Members {
                        host,
                        groups,
                        filter: Some(_),
                        ..
                    } if host == "host-a" => groups.len(),
                    _ => 0,
                };
            }
        }
    }
    assert_eq!(members, 200);
    assert!(lines <= 2, "200 joins in one report took {lines} lines");
    assert!(
        bytes < 200 * 20,
        "200 joins took {bytes} bytes: not sent as one list of groups"
    );
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let s = Server::default().await;
    let doc = s.get("/v1/openapi.json").await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, methods) in [
        ("/v1/domains", &["get", "post"][..]),
        ("/v1/domains/{name}", &["get", "delete"]),
        ("/v1/domains/{name}/associations", &["post", "delete"]),
        ("/v1/domains/{name}/members", &["post", "delete"]),
        ("/v1/domains/{name}/sources", &["post", "delete"]),
        ("/v1/groups", &["get"]),
        ("/v1/agents", &["get", "post"]),
        ("/v1/agents/{host}", &["delete"]),
        ("/v1/agents/{host}/heartbeat", &["post"]),
        ("/v1/agents/{host}/membership", &["post"]),
        ("/v1/agents/{host}/stream", &["get"]),
        ("/v1/healthz", &["get"]),
        ("/v1/openapi.json", &["get"]),
        ("/metrics", &["get"]),
    ] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path}");
        }
    }
}

#[tokio::test]
async fn association_and_deletion_resnapshot_open_streams() {
    let s = Server::default().await;
    s.post("/v1/domains", json!({"name": "prod"}))
        .await
        .unwrap();
    s.register("host-a", [10, 0, 2, 10], "10.0.2.0/24").await;
    let mut stream = s.client.stream("/v1/agents/host-a/stream").await.unwrap();
    let StreamMessage::Snapshot { domains, .. } = next(&mut stream).await else {
        panic!("snapshot first");
    };
    assert!(domains.is_empty(), "not associated yet");
    s.post(
        "/v1/domains/prod/associations",
        json!({"subnet": "10.0.0.0/16"}),
    )
    .await
    .unwrap();
    // The host now belongs to the domain: a fresh snapshot on the open stream.
    let in_domain = loop {
        if let StreamMessage::Snapshot { domains, .. } = next_change(&mut stream).await
            && !domains.is_empty()
        {
            break domains;
        }
    };
    assert_eq!(in_domain[0].domain.name, "prod");
    assert_eq!(in_domain[0].peers.len(), 1);
    s.del("/v1/domains/prod", None).await.unwrap();
    loop {
        if let StreamMessage::Snapshot { domains, .. } = next_change(&mut stream).await
            && domains.is_empty()
        {
            break;
        }
    }
}

/// A traffic report of `session`: `n` packets of 100 bytes sent to G and tunnelled to
/// `peer` (when `sender`), or received from it and delivered (else).
fn traffic_report(session: u64, uptime_ms: u64, n: u64, sender: bool, peer: &str) -> Value {
    let c = json!({"packets": n, "bytes": n * 100});
    let zero = json!({"packets": 0, "bytes": 0});
    let per_peer = json!([{"host": peer, "packets": n, "bytes": n * 100}]);
    json!({
        "session": session, "uptime_ms": uptime_ms, "dataplane": "userspace",
        "tunnel_tx": if sender { &c } else { &zero },
        "tunnel_rx": if sender { &zero } else { &c },
        "groups": [{
            "domain": "prod", "group": G.to_string(),
            "sent": if sender { &c } else { &zero },
            "delivered": if sender { &zero } else { &c },
            "tunnel_tx": if sender { per_peer.clone() } else { json!([]) },
            "tunnel_rx": if sender { json!([]) } else { per_peer.clone() },
        }],
        "links": [{"name": "eth1", "querier": true, "igmp_version": 3, "groups": 1}],
    })
}

#[tokio::test]
async fn traffic_reports_become_rates_flows_and_watch_events() {
    let s = Server::default().await;
    s.reference().await;
    let a = s.register("h1", [10, 0, 2, 10], "10.0.2.0/24").await;
    let b = s.register("h2", [10, 0, 3, 10], "10.0.3.0/24").await;
    s.join("h2", b.session, 1, "eth1", [10, 0, 3, 20]).await;
    // A stale session is refused like a stale membership report.
    let stale = s
        .post(
            "/v1/agents/h1/traffic",
            traffic_report(a.session + 99, 0, 0, true, "h2"),
        )
        .await;
    assert_eq!(status(stale).0, 409);
    let mut watch = s
        .client
        .stream("/v1/domains/prod/traffic?watch=true")
        .await
        .unwrap();
    for (uptime_ms, n) in [(1_000, 0), (2_000, 500)] {
        s.post(
            "/v1/agents/h1/traffic",
            traffic_report(a.session, uptime_ms, n, true, "h2"),
        )
        .await
        .unwrap();
        s.post(
            "/v1/agents/h2/traffic",
            traffic_report(b.session, uptime_ms, n, false, "h1"),
        )
        .await
        .unwrap();
    }
    let v: mcgate_domain::traffic::TrafficView =
        serde_json::from_value(s.get("/v1/domains/prod/traffic").await.unwrap()).unwrap();
    let h1 = v.hosts.iter().find(|h| h.host == "h1").unwrap();
    assert_eq!(h1.sent.map(|r| r.pps), Some(500.0));
    assert_eq!(h1.links[0].igmp_version, Some(3));
    let g = &v.groups[0];
    assert_eq!(g.group, G);
    assert_eq!(g.senders[0].host, "h1");
    assert_eq!(g.receivers[0].host, "h2");
    assert_eq!(g.receivers[0].rate.map(|r| r.pps), Some(500.0));
    assert_eq!(g.flows.len(), 1);
    assert_eq!(g.flows[0].lost_pps, Some(0.0));
    // The watch answered at once with a `traffic` event whose data is a view; later
    // events carry the rates.
    let mut seen_rate = false;
    while !seen_rate {
        let line = tokio::time::timeout(Duration::from_secs(5), watch.next_line())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the watch is open");
        let line = String::from_utf8(line.to_vec()).unwrap();
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            let v: mcgate_domain::traffic::TrafficView = serde_json::from_str(data).unwrap();
            assert_eq!(v.domain, "prod");
            seen_rate = v.groups.iter().any(|g| !g.flows.is_empty());
        } else {
            let l = line.trim_end();
            assert!(l.is_empty() || l == "event: traffic", "{l:?}");
        }
    }
    // Bad parameters and unknown domains are the usual 400 and 404.
    assert_eq!(
        status(s.get("/v1/domains/prod/traffic?watch=yes").await).0,
        400
    );
    assert_eq!(status(s.get("/v1/domains/nope/traffic").await).0, 404);
}
