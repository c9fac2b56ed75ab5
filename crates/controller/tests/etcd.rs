//! Controller replicas sharing a real etcd (Debian's `etcd-server`, one member on
//! loopback ports of its own): a change made on one replica is seen on the other,
//! agents' leases are etcd's, conflicting writes never both win, one replica leads and
//! another takes over when it stops.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcgate_client::{Client, ClientError};
use mcgate_controller::etcd::conn::EtcdOptions;
use mcgate_controller::{Config, Controller, Running, serve_tls};
use mcgate_domain::SourceFilter;
use mcgate_domain::api::*;
use serde_json::{Value, json};

const G: Ipv4Addr = Ipv4Addr::new(233, 252, 0, 5);

/// One etcd member on two free loopback ports; killed (by its PID) when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "m1", "--data-dir"])
            .arg(dir.path().join("m1"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("m1={peer_url}")])
            .args(["--listen-metrics-urls", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server; scripts/test installs it)");
        let e = Self {
            child,
            url,
            _dir: dir,
        };
        // Ready when it answers a status call with a leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = etcd_client::Client::connect([&e.url], None).await
                && let Ok(s) = c.status().await
                && s.leader() != 0
            {
                break e;
            }
            assert!(tokio::time::Instant::now() < deadline, "etcd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Replica {
    running: Option<Running>,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn replica(etcd: &Etcd, name: &str, prefix: &str) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        lease_ms: 2_000,
        heartbeat_ms: 500,
        ..Config::default()
    };
    let opts = EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: prefix.into(),
        cacert: None,
        cert: None,
        key: None,
        user: None,
        password_file: None,
        replica: name.into(),
    };
    let ctl = Controller::open_etcd(config, opts, dir.path())
        .await
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (running, admin) = serve_tls(ctl, dir.path(), tcp, None, &[]).unwrap();
    let client = Client::from_credentials(&admin).unwrap().keep_alive();
    Replica {
        running: Some(running),
        client,
        _dir: dir,
    }
}

impl Replica {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client.get(path).await.unwrap()
    }

    async fn health(&self) -> Health {
        self.get("/v1/healthz").await
    }

    async fn stop(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }
}

/// Waits (up to `secs`) until `check` holds.
async fn until<F: std::future::Future<Output = bool>>(
    secs: u64,
    what: &str,
    check: impl Fn() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn registration(host: &str) -> AgentRegistration {
    AgentRegistration {
        host: host.into(),
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 10), VXLAN_PORT),
        subnet: Some("10.0.2.0/24".parse().unwrap()),
        links: vec![],
        dataplane: Some("userspace".into()),
        public_key: String::new(),
        wireguard: None,
    }
}

fn join(session: u64, seq: u64) -> MembershipReport {
    MembershipReport {
        session,
        seq,
        snapshot: false,
        entries: vec![LinkMembership {
            link: "veth0".into(),
            group: G,
            filter: Some(SourceFilter::any_source()),
            reporters: vec![],
        }],
    }
}

fn status_of(r: Result<Value, ClientError>) -> u16 {
    match r {
        Err(ClientError::Status { status, .. }) => status,
        Ok(_) => 200,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_domains_agents_memberships_and_tokens() {
    let etcd = Etcd::start().await;
    let a = replica(&etcd, "a", "/t1/").await;
    let b = replica(&etcd, "b", "/t1/").await;

    // An admin change on a is read back on a at once and reaches b.
    let _: Value = a
        .client
        .post("/v1/domains", &json!({"name": "prod"}))
        .await
        .unwrap();
    let _: Value = a
        .client
        .post(
            "/v1/domains/prod/associations",
            &json!({"subnet": "10.0.0.0/8"}),
        )
        .await
        .unwrap();
    let on_a: Vec<Domain> = a.get("/v1/domains").await;
    assert_eq!(on_a.len(), 1);
    until(5, "the domain on b", || async {
        b.get::<Vec<Domain>>("/v1/domains").await.len() == 1
    })
    .await;

    // An agent registered on b reports on a; both group tables show it.
    let reply: RegistrationReply = b
        .client
        .post("/v1/agents", &registration("h1"))
        .await
        .unwrap();
    assert_eq!(reply.domains, ["prod"]);
    let ack: MembershipAck = a
        .client
        .post("/v1/agents/h1/membership", &join(reply.session, 1))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    for r in [&a, &b] {
        until(5, "the membership on both replicas", || async {
            let rows: Vec<Value> = r.get("/v1/groups?group=233.252.0.5").await;
            rows.iter().any(|row| row["host"] == "h1")
        })
        .await;
    }

    // A heartbeat on either renews the one etcd lease; without them it runs out and
    // both replicas drop the host's members.
    for r in [&a, &b] {
        let _: Value = r
            .client
            .post(
                "/v1/agents/h1/heartbeat",
                &json!({"session": reply.session}),
            )
            .await
            .unwrap();
    }
    for r in [&a, &b] {
        until(8, "the lease expiry on both replicas", || async {
            let agents: Vec<AgentInfo> = r.get("/v1/agents").await;
            agents
                .iter()
                .any(|x| x.host == "h1" && x.state == "expired")
        })
        .await;
    }
    let late = a
        .client
        .post::<_, Value>(
            "/v1/agents/h1/heartbeat",
            &json!({"session": reply.session}),
        )
        .await;
    assert_eq!(status_of(late), 409);

    // A token issued on a works on b.
    let issued: Value = a
        .client
        .post("/v1/tokens", &json!({"host": "h2"}))
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    until(5, "the token on b", || async {
        let anon = Client::new(b.client.url()).unwrap();
        let with_ca = anon
            .with_ca(&std::fs::read_to_string(b._dir.path().join("ca.pem")).unwrap())
            .unwrap()
            .with_token(&token);
        with_ca
            .post::<_, Value>("/v1/join", &json!({}))
            .await
            .is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_writes_never_both_win_and_leadership_moves() {
    let etcd = Etcd::start().await;
    let mut rs = vec![
        replica(&etcd, "a", "/t2/").await,
        replica(&etcd, "b", "/t2/").await,
    ];

    // The same new domain from both replicas at once: exactly one creates it.
    let body = json!({"name": "race", "vni": 4242});
    let (ra, rb) = tokio::join!(
        rs[0].client.post::<_, Value>("/v1/domains", &body),
        rs[1].client.post::<_, Value>("/v1/domains", &body),
    );
    let mut codes = [status_of(ra), status_of(rb)];
    codes.sort();
    assert_eq!(codes, [200, 409]);

    // One leader, named alike by both.
    until(10, "one leader", || async {
        let (ha, hb) = (rs[0].health().await, rs[1].health().await);
        let leaders = [&ha, &hb]
            .iter()
            .filter(|h| h.role.as_deref() == Some("leader"))
            .count();
        leaders == 1 && ha.leader.is_some() && ha.leader == hb.leader
    })
    .await;
    let h = rs[1].health().await;
    assert_eq!(h.store.as_deref(), Some("etcd"));
    assert_eq!(h.writable, Some(true));
    let members = h.etcd_members.unwrap_or_default();
    assert!(members.len() == 1 && members[0].reachable && members[0].leader);

    // Stopping the leader (its election lease lapses, 2 s) hands the role over.
    let leader = if rs[0].health().await.role.as_deref() == Some("leader") {
        0
    } else {
        1
    };
    let mut gone = rs.remove(leader);
    gone.stop().await;
    let other = &rs[0];
    until(8, "the other replica leads", || async {
        other.health().await.role.as_deref() == Some("leader")
    })
    .await;
    // And it writes: a new domain on the remaining replica.
    let _: Value = other
        .client
        .post("/v1/domains", &json!({"name": "after"}))
        .await
        .unwrap();
}
