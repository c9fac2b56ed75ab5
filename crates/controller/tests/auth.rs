//! Who may do what, against a real controller on loopback (TLS, port 0): every
//! operation of the OpenAPI document without a credential, with a viewer's and with
//! another host's agent credential; join tokens that expire, are spent or are refused
//! for a live host; revocation that shuts an agent out and removes its members.

use std::time::Duration;

use hyper::Method;
use mcgate_client::{Client, ClientError, Credentials};
use mcgate_controller::{Config, Controller, Running, serve_tls};
use serde_json::{Value, json};

struct Server {
    _running: Running,
    admin: Client,
    creds: Credentials,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ctl = Controller::open(Config::default(), dir.path()).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (running, creds) = serve_tls(ctl, dir.path(), tcp, None, &[]).unwrap();
        let admin = Client::from_credentials(&creds).unwrap().keep_alive();
        admin
            .post::<_, Value>("/v1/domains", &json!({"name": "d1"}))
            .await
            .unwrap();
        admin
            .post::<_, Value>(
                "/v1/domains/d1/associations",
                &json!({"subnet": "10.0.2.0/24"}),
            )
            .await
            .unwrap();
        Self {
            _running: running,
            admin,
            creds,
            _dir: dir,
        }
    }

    /// A client of this controller with `token` (or none).
    fn with(&self, token: Option<&str>) -> Client {
        let c = Client::new(&self.creds.controller)
            .unwrap()
            .with_ca(&self.creds.ca)
            .unwrap();
        match token {
            Some(t) => c.with_token(t),
            None => c,
        }
    }

    async fn issue(&self, path: &str, body: Value) -> Value {
        self.admin.post(path, &body).await.unwrap()
    }

    /// Joins `host` with a new join token; returns the agent credential's secret.
    async fn agent(&self, host: &str) -> String {
        let t = self.issue("/v1/tokens", json!({"host": host})).await;
        let joined: Value = self
            .with(t["token"].as_str())
            .post("/v1/join", &json!(null))
            .await
            .unwrap();
        assert_eq!(joined["role"], "agent");
        assert_eq!(joined["host"], host);
        joined["token"].as_str().unwrap().to_string()
    }
}

fn registration(host: &str, last: u8) -> Value {
    json!({"host": host, "underlay": format!("10.0.2.{last}:4789"), "subnet": "10.0.2.0/24", "links": []})
}

fn report(session: u64) -> Value {
    json!({"session": session, "seq": 1, "snapshot": false, "entries": [
        {"link": "tk1", "group": "233.252.0.5", "filter": {"mode": "exclude", "sources": []}, "reporters": ["10.0.2.4"]}
    ]})
}

/// The status of a refused call (0 if it was accepted).
async fn status(c: &Client, method: &Method, path: &str, body: &Value) -> (u16, String) {
    match c.call::<_, Value>(method.clone(), path, Some(body)).await {
        // Accepted (a text answer such as /metrics is accepted too).
        Ok(_) | Err(ClientError::Decode(_)) => (0, String::new()),
        Err(ClientError::Status {
            status, message, ..
        }) => (status, message),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// Every operation of the served document, with its path parameters filled in:
/// `{host}` is `host-b`, another host than the agent credential's.
fn operations(doc: &Value) -> Vec<(Method, String, bool)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            let public = op["security"] == json!([{}]);
            let path = path
                .replace("{name}", "d1")
                .replace("{host}", "host-b")
                .replace("{id}", "000000000000");
            ops.push((method, path, public));
        }
    }
    ops
}

#[tokio::test]
async fn every_operation_refuses_the_wrong_caller() {
    let s = Server::start().await;
    let doc: Value = s.with(None).get("/v1/openapi.json").await.unwrap();
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let viewer = s.issue("/v1/credentials", json!({"role": "viewer"})).await;
    let viewer = s.with(viewer["token"].as_str());
    let agent_a = s.with(Some(&s.agent("host-a").await));
    let anonymous = s.with(None);
    let forged = s.with(Some("mcg_000000000000_0000"));
    let ops = operations(&doc);
    assert!(ops.len() >= 25, "{} operations", ops.len());
    let mut public = Vec::new();
    for (method, path, is_public) in &ops {
        let body = if path == "/v1/agents" {
            registration("host-b", 11)
        } else {
            json!({})
        };
        if *is_public {
            public.push(path.clone());
            assert_eq!(status(&anonymous, method, path, &body).await.0, 0);
            continue;
        }
        for (who, c) in [("anonymous", &anonymous), ("forged", &forged)] {
            let (code, text) = status(c, method, path, &body).await;
            assert_eq!(code, 401, "{who} {method} {path}: {text}");
        }
        let (code, text) = status(&agent_a, method, path, &body).await;
        assert_eq!(code, 403, "host-a's agent {method} {path}: {text}");
        let (code, text) = status(&viewer, method, path, &body).await;
        let read = *method == Method::GET
            && path != "/v1/tokens"
            && !path.starts_with("/v1/agents/host-b");
        if read {
            assert_ne!(code, 401, "viewer {method} {path}: {text}");
            assert_ne!(code, 403, "viewer {method} {path}: {text}");
        } else {
            assert_eq!(code, 403, "viewer {method} {path}: {text}");
        }
    }
    // Every operation documents its refusals; only healthz and the document are public.
    public.sort();
    assert_eq!(public, ["/v1/healthz", "/v1/openapi.json"]);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if public.contains(path) {
                continue;
            }
            for code in ["401", "403"] {
                let r = &op["responses"][code]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(r, "#/components/schemas/ApiError", "{m} {path} {code}");
            }
        }
    }
}

#[tokio::test]
async fn an_agent_credential_acts_only_for_its_own_host() {
    let s = Server::start().await;
    let a = s.with(Some(&s.agent("host-a").await));
    let reg: Value = a
        .post("/v1/agents", &registration("host-a", 10))
        .await
        .unwrap();
    let session = reg["session"].as_u64().unwrap();
    let ack: Value = a
        .post("/v1/agents/host-a/membership", &report(session))
        .await
        .unwrap();
    assert_eq!(ack["seq"], 1);
    // host-b's agent and the admin register host-b; host-a's credential cannot write
    // host-b's registration, heartbeat, membership, nor read its stream.
    s.admin
        .post::<_, Value>("/v1/agents", &registration("host-b", 11))
        .await
        .unwrap();
    for (method, path, body) in [
        (Method::POST, "/v1/agents", registration("host-b", 12)),
        (
            Method::POST,
            "/v1/agents/host-b/heartbeat",
            json!({"session": session}),
        ),
        (
            Method::POST,
            "/v1/agents/host-b/membership",
            report(session),
        ),
        (Method::GET, "/v1/agents/host-b/stream", json!(null)),
        (Method::DELETE, "/v1/agents/host-b", json!(null)),
    ] {
        let (code, text) = status(&a, &method, path, &body).await;
        assert_eq!(code, 403, "{method} {path}: {text}");
        assert!(text.contains("bound to host host-a"), "{text}");
    }
    // A second join for the live host-a is refused: no take-over of a live name.
    let t = s.issue("/v1/tokens", json!({"host": "host-a"})).await;
    let (code, text) = status(
        &s.with(t["token"].as_str()),
        &Method::POST,
        "/v1/join",
        &json!(null),
    )
    .await;
    assert_eq!(code, 409, "{text}");
    // A join token serves nothing but the join.
    let (code, _) = status(
        &s.with(t["token"].as_str()),
        &Method::POST,
        "/v1/agents",
        &registration("host-a", 10),
    )
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn join_tokens_expire_and_are_spent_once() {
    let s = Server::start().await;
    let t = s
        .issue("/v1/tokens", json!({"host": "host-c", "ttl_s": 1}))
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    // Wait (bounded) until the controller itself says the token expired.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list: Value = s.admin.get("/v1/tokens").await.unwrap();
        let state = list
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id.as_str())
            .map(|x| x["state"].clone());
        if state == Some(json!("expired")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = status(
        &s.with(t["token"].as_str()),
        &Method::POST,
        "/v1/join",
        &json!(null),
    )
    .await;
    assert_eq!(code, 401);
    // A fresh token joins once; the second use is refused.
    let t = s.issue("/v1/tokens", json!({"host": "host-c"})).await;
    let joiner = s.with(t["token"].as_str());
    joiner
        .post::<_, Value>("/v1/join", &json!(null))
        .await
        .unwrap();
    let (code, _) = status(&joiner, &Method::POST, "/v1/join", &json!(null)).await;
    assert_eq!(code, 401);
    // The listing never shows a secret.
    let text = serde_json::to_string(&s.admin.get::<Value>("/v1/tokens").await.unwrap()).unwrap();
    assert!(!text.contains("mcg_"), "{text}");
}

#[tokio::test]
async fn a_revoked_host_is_refused_and_its_members_go() {
    let s = Server::start().await;
    let a = s.with(Some(&s.agent("host-a").await));
    let reg: Value = a
        .post("/v1/agents", &registration("host-a", 10))
        .await
        .unwrap();
    let session = reg["session"].as_u64().unwrap();
    a.post::<_, Value>("/v1/agents/host-a/membership", &report(session))
        .await
        .unwrap();
    let rows: Value = s.admin.get("/v1/groups?host=host-a").await.unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    s.admin
        .delete::<(), Value>("/v1/hosts/host-a/credentials", None)
        .await
        .unwrap();
    let (code, _) = status(
        &a,
        &Method::POST,
        "/v1/agents/host-a/heartbeat",
        &json!({"session": session}),
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = status(&a, &Method::POST, "/v1/agents", &registration("host-a", 10)).await;
    assert_eq!(code, 401);
    let agents: Value = s.admin.get("/v1/agents").await.unwrap();
    assert!(agents.as_array().unwrap().is_empty(), "{agents}");
    let rows: Value = s.admin.get("/v1/groups?host=host-a").await.unwrap();
    assert!(rows.as_array().unwrap().is_empty(), "{rows}");
    // The host can join again with a new token, its name being free.
    let again = s.with(Some(&s.agent("host-a").await));
    again
        .post::<_, Value>("/v1/agents", &registration("host-a", 10))
        .await
        .unwrap();
    // Revoking one credential by id works the same way.
    let v = s.issue("/v1/credentials", json!({"role": "viewer"})).await;
    let viewer = s.with(v["token"].as_str());
    viewer.get::<Value>("/v1/domains").await.unwrap();
    s.admin
        .delete::<(), Value>(&format!("/v1/tokens/{}", v["id"].as_str().unwrap()), None)
        .await
        .unwrap();
    let (code, _) = status(&viewer, &Method::GET, "/v1/domains", &json!(null)).await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn plain_http_is_refused_with_a_sentence() {
    let s = Server::start().await;
    let url = s.creds.controller.replace("https://", "http://");
    let e = Client::new(&url).unwrap_err().to_string();
    assert!(e.contains("use https://"), "{e}");
    // A client that trusts another CA does not reach it.
    let other = tempfile::tempdir().unwrap();
    let ctl = Controller::open(Config::default(), other.path()).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_r2, creds2) = serve_tls(ctl, other.path(), tcp, None, &[]).unwrap();
    let wrong = Client::new(&s.creds.controller)
        .unwrap()
        .with_ca(&creds2.ca)
        .unwrap()
        .with_token(&s.creds.token);
    let e = wrong.get::<Value>("/v1/domains").await.unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e}");
}

#[tokio::test]
async fn the_web_view_files_are_public_its_data_is_not() {
    let s = Server::start().await;
    let anon = s.with(None);
    let none = Value::Null;
    for p in ["/ui/", "/ui/app.js", "/ui/vendor/cytoscape.min.js"] {
        assert_eq!(status(&anon, &Method::GET, p, &none).await.0, 0, "{p}");
    }
    assert_eq!(status(&anon, &Method::GET, "/ui/x.js", &none).await.0, 404);
    for (m, p) in [
        (Method::GET, "/v1/domains/d1/traffic"),
        (Method::GET, "/v1/groups"),
        (Method::POST, "/ui/"),
    ] {
        assert_eq!(status(&anon, &m, p, &none).await.0, 401, "{m} {p}");
    }
    let viewer = s.issue("/v1/credentials", json!({"role": "viewer"})).await;
    let v = s.with(viewer["token"].as_str());
    assert_eq!(
        status(&v, &Method::GET, "/v1/domains/d1/traffic", &none)
            .await
            .0,
        0
    );
}
