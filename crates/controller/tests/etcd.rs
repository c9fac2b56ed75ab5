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

/// etcd members on free loopback ports of their own; each killed (by its PID) when
/// dropped or asked.
struct Etcd {
    members: Vec<Member>,
    dir: tempfile::TempDir,
    cluster: String,
}

struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
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
        Self::cluster(1).await
    }

    async fn cluster(n: usize) -> Self {
        let members: Vec<Member> = (1..=n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                child: None,
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut e = Self {
            members,
            dir: tempfile::tempdir().unwrap(),
            cluster,
        };
        for i in 0..n {
            e.run(i);
        }
        e.wait_leader().await;
        e
    }

    fn run(&mut self, i: usize) {
        let m = &self.members[i];
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(self.dir.path().join(&m.name))
            .args([
                "--listen-client-urls",
                &m.client,
                "--advertise-client-urls",
                &m.client,
            ])
            .args([
                "--listen-peer-urls",
                &m.peer,
                "--initial-advertise-peer-urls",
                &m.peer,
            ])
            .args([
                "--initial-cluster",
                &self.cluster,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--listen-metrics-urls", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server; scripts/test installs it)");
        self.members[i].child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Until a running member answers a status call naming a leader.
    async fn wait_leader(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            for m in self.members.iter().filter(|m| m.child.is_some()) {
                if let Ok(mut c) = etcd_client::Client::connect([&m.client], None).await
                    && let Ok(s) = c.status().await
                    && s.leader() != 0
                {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "etcd has no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
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
        endpoints: etcd.urls(),
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
        zone: None,
        upstream: None,
    }
}

fn join(session: u64, seq: u64) -> MembershipReport {
    MembershipReport {
        session,
        seq,
        snapshot: false,
        entries: vec![LinkMembership {
            link: "veth0".into(),
            group: G.into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_are_refused_reads_go_on_and_all_heals() {
    let mut etcd = Etcd::cluster(3).await;
    let a = replica(&etcd, "a", "/t3/").await;
    let _: Value = a
        .client
        .post("/v1/domains", &json!({"name": "prod"}))
        .await
        .unwrap();

    // One member of three gone: nothing changes for users.
    etcd.kill(2);
    let _: Value = a
        .client
        .post("/v1/domains", &json!({"name": "one-down"}))
        .await
        .unwrap();

    // Two gone: no quorum. Once the member left knows it (status shows it), writes get
    // a 503 that says why and that nothing changed; reads answer from the last state.
    etcd.kill(1);
    until(10, "status shows no quorum", || async {
        let h = a.health().await;
        h.writable == Some(false) && h.status == "degraded"
    })
    .await;
    let refused = a
        .client
        .post::<_, Value>("/v1/domains", &json!({"name": "no-quorum"}))
        .await;
    // A try sent to a member as it lost its leader may time out and still be applied
    // later (etcd keeps the proposal): then the answer must say so.
    let surely_not_made = match refused {
        Err(ClientError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 503);
            assert!(message.contains("quorum"), "{message}");
            let sure = message.contains("Nothing was changed");
            assert!(
                sure || message.contains("may still make the change"),
                "{message}"
            );
            sure
        }
        other => panic!("a write without quorum answered {other:?}"),
    };
    let domains: Vec<Domain> = a.get("/v1/domains").await;
    assert_eq!(domains.len(), 2);
    let h = a.health().await;
    let members = h.etcd_members.unwrap();
    assert_eq!(
        members.iter().filter(|m| m.reachable).count(),
        1,
        "{members:?}"
    );

    // Quorum back: writes work again, on the state as it was.
    etcd.run(1);
    etcd.run(2);
    etcd.wait_leader().await;
    until(20, "writes work again", || async {
        a.client
            .post::<_, Value>("/v1/domains", &json!({"name": "healed"}))
            .await
            .is_ok()
    })
    .await;
    let mut names: Vec<String> = a
        .get::<Vec<Domain>>("/v1/domains")
        .await
        .into_iter()
        .map(|d| d.name)
        .collect();
    if !surely_not_made {
        names.retain(|n| n != "no-quorum");
    }
    assert_eq!(names, ["healed", "one-down", "prod"]);
    until(10, "status healthy", || async {
        a.health().await.writable == Some(true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_export_imports_into_running_replicas() {
    use mcgate_controller::{StoreArgs, StoreKind, migrate};
    let etcd = Etcd::start().await;
    let a = replica(&etcd, "a", "/t4/").await;
    let old = tempfile::tempdir().unwrap();
    let args = |store: StoreKind, dir: &std::path::Path| StoreArgs {
        data_dir: dir.to_path_buf(),
        store,
        etcd_endpoints: etcd.urls(),
        etcd_prefix: "/t4/".into(),
        etcd_cacert: None,
        etcd_cert: None,
        etcd_key: None,
        etcd_user: None,
        etcd_password_file: None,
    };
    // An embedded controller's domain, with an association.
    {
        let ctl = Controller::open(Config::default(), old.path()).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (running, admin) = serve_tls(ctl, old.path(), tcp, None, &[]).unwrap();
        let c = Client::from_credentials(&admin).unwrap();
        let _: Value = c
            .post("/v1/domains", &json!({"name": "moved", "vni": 77}))
            .await
            .unwrap();
        let _: Value = c
            .post(
                "/v1/domains/moved/associations",
                &json!({"subnet": "10.9.0.0/16"}),
            )
            .await
            .unwrap();
        running.shutdown().await.unwrap();
    }
    let records = migrate::read(&args(StoreKind::Embedded, old.path()))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    migrate::write(&args(StoreKind::Etcd, old.path()), &records, false)
        .await
        .unwrap();
    until(5, "the imported domain on the running replica", || async {
        let d: Result<Domain, _> = a.client.get("/v1/domains/moved").await;
        d.is_ok_and(|d| d.vni == 77 && d.subnets.len() == 1)
    })
    .await;
    // Importing again without --replace is refused.
    let e = migrate::write(&args(StoreKind::Etcd, old.path()), &records, false)
        .await
        .unwrap_err();
    assert!(e.contains("--replace"), "{e}");
}
