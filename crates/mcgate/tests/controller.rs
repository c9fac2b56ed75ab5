//! The real `mcgate controller` binary and the admin CLI: state survives `kill -9`, and
//! errors reach the user as one sentence with a non-zero exit.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mcgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A controller process, killed by PID when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(data: &Path, sock: &Path) -> Self {
        let child = Command::new(support::mcgate())
            .args(["controller", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--unix")
            .arg(sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mcgate controller");
        let d = Self(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cli(sock, &["domain", "list", "--json"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the controller did not come up within 10 s");
    }

    fn kill9(mut self) {
        support::sh(&["kill", "-9", &self.0.id().to_string()]);
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(sock: &Path, args: &[&str]) -> Output {
    Command::new(support::mcgate())
        .args(args)
        .arg("--controller")
        .arg(format!("unix:{}", sock.display()))
        .output()
        .expect("run mcgate")
}

fn ok(sock: &Path, args: &[&str]) -> String {
    let out = cli(sock, args);
    assert!(
        out.status.success(),
        "mcgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn state_survives_kill_9_and_errors_are_sentences() {
    let dir = Scratch::new("ctl-kill9");
    let data = dir.0.join("data");
    let sock = dir.0.join("controller.sock");
    let d = Daemon::start(&data, &sock);
    ok(
        &sock,
        &[
            "domain",
            "create",
            "prod",
            "--vni",
            "7",
            "--igmp",
            "v3",
            "--query-interval",
            "2m",
            "--robustness",
            "3",
            "--tunnel",
            "vxlan",
        ],
    );
    ok(
        &sock,
        &["domain", "associate", "prod", "--subnet", "10.0.2.0/24"],
    );
    ok(
        &sock,
        &["domain", "associate", "prod", "--subnet", "10.0.3.0/24"],
    );
    ok(
        &sock,
        &[
            "members",
            "register",
            "--domain",
            "prod",
            "--group",
            "233.252.0.5",
            "--host",
            "host-b",
            "--interface",
            "eth1",
            "--address",
            "10.0.3.7",
        ],
    );
    ok(
        &sock,
        &[
            "sources",
            "register",
            "--domain",
            "prod",
            "--group",
            "233.252.0.5",
            "--address",
            "10.0.2.9",
        ],
    );
    // A burst of creates; each that returned success must be there after the crash.
    for i in 0..10 {
        ok(&sock, &["domain", "create", &format!("d{i}")]);
    }
    d.kill9();

    let d = Daemon::start(&data, &sock);
    let list = ok(&sock, &["domain", "list", "--json"]);
    for i in 0..10 {
        assert!(list.contains(&format!("\"name\": \"d{i}\"")), "{list}");
    }
    // WireGuard unless asked otherwise; the table shows each domain's tunnel.
    let table = ok(&sock, &["domain", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("d0 ") && l.contains("wireguard")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("prod ") && l.contains("vxlan")),
        "{table}"
    );
    let show = ok(&sock, &["domain", "show", "prod", "--json"]);
    for needle in [
        "\"vni\": 7",
        "\"igmp\": \"v3\"",
        "\"query_interval_ms\": 120000",
        "\"robustness\": 3",
        "\"tunnel\": \"vxlan\"",
        "10.0.2.0/24",
        "10.0.3.0/24",
    ] {
        assert!(show.contains(needle), "{needle} missing from {show}");
    }
    let groups = ok(&sock, &["groups", "--json", "--type", "static"]);
    assert!(groups.trim_start().starts_with('['), "{groups}");
    assert!(
        groups.contains("\"host\": \"host-b\"") && groups.contains("10.0.2.9"),
        "{groups}"
    );
    let table = ok(&sock, &["groups", "--domain", "prod"]);
    assert!(
        table.starts_with("DOMAIN") && table.lines().count() == 3,
        "{table}"
    );

    // Errors: one sentence on stderr, non-zero exit.
    for (args, needle) in [
        (&["domain", "create", "prod"][..], "already exists"),
        (
            &["domain", "create", "x", "--vni", "16777216"],
            "field `vni`",
        ),
        (
            &["domain", "associate", "d1", "--subnet", "10.0.2.0/25"],
            "one domain only",
        ),
        (
            &[
                "members",
                "register",
                "--domain",
                "nope",
                "--group",
                "233.252.0.5",
                "--host",
                "h",
            ],
            "no domain named",
        ),
        (
            &[
                "sources",
                "register",
                "--domain",
                "prod",
                "--group",
                "233.252.0.5",
                "--address",
                "224.1.1.1",
            ],
            "not a unicast",
        ),
        (&["domain", "show", "missing"], "no domain named"),
    ] {
        let out = cli(&sock, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    drop(d);
    // No controller: a clear sentence too.
    let out = cli(&sock, &["agents"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the controller"));
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let dir = Scratch::new("ctl-term");
    let sock = dir.0.join("controller.sock");
    let mut d = Daemon::start(&dir.0.join("data"), &sock);
    support::sh(&["kill", "-TERM", &d.0.id().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = d.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(!sock.exists());
}

/// A flood of idle connections against a controller with few file descriptors: the
/// connection limit keeps descriptors free and the header timeout recycles the idle
/// connections, so `/v1/healthz` still answers.
#[test]
fn idle_connections_cannot_exhaust_the_descriptors_healthz_needs() {
    let dir = Scratch::new("ctl-fd");
    let log = dir.0.join("log");
    // `ulimit -n` lowers the soft and the hard limit, so the controller cannot raise it.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec {} controller --listen 127.0.0.1:0 --data-dir {} --header-timeout-ms 500 2>{}",
            support::mcgate(),
            dir.0.join("data").display(),
            log.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("start mcgate controller");
    let _daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(a) = text
            .split("listen=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            break a.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut idle = Vec::new();
    for _ in 0..300 {
        let sock: std::net::SocketAddr = addr.parse().unwrap();
        if let Ok(c) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(1)) {
            idle.push(c);
        }
    }
    assert!(idle.len() > 128, "only {} connections opened", idle.len());
    // TLS, checked against the controller's own CA.
    let out = Command::new("curl")
        .args(["-sS", "-m", "15", "--cacert"])
        .arg(dir.0.join("data").join("ca.pem"))
        .arg(format!("https://{addr}/v1/healthz"))
        .output()
        .expect("run curl");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("\"status\":\"ok\""),
        "healthz did not answer within 15 s behind {} idle connections: {out:?}",
        idle.len()
    );
}

fn mcgate_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(support::mcgate());
    c.args(args)
        .env_remove("MCGATE_CREDENTIALS")
        .env_remove("MCGATE_CONTROLLER");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run mcgate")
}

/// The CLI over TLS: the admin credential the controller wrote (flag or environment),
/// plain HTTP refused with a sentence, a viewer credential file that reads but cannot
/// write, join tokens listed without secrets and revoked; the Unix socket is 0600.
#[test]
fn the_cli_uses_credential_files_and_refuses_plain_http() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("ctl-creds");
    let data = dir.0.join("data");
    let sock = dir.0.join("controller.sock");
    let _d = Daemon::start(&data, &sock);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600, "the socket makes its opener admin");
    let admin = data.join("admin.credentials");
    assert_eq!(mode(&admin), 0o600);
    assert_eq!(mode(&data.join("ca.key")), 0o600);
    let a = admin.to_str().unwrap();
    let run_ok = |args: &[&str], env: &[(&str, &Path)]| {
        let o = mcgate_env(args, env);
        assert!(
            o.status.success(),
            "mcgate {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run_ok(&["domain", "create", "prod", "--credentials", a], &[]);
    let list = run_ok(
        &["domain", "list", "--json"],
        &[("MCGATE_CREDENTIALS", &admin)],
    );
    assert!(list.contains("\"prod\""), "{list}");
    // Plain HTTP: one sentence that says what to do.
    let url: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&admin).unwrap()).unwrap();
    let http = url["controller"]
        .as_str()
        .unwrap()
        .replace("https://", "http://");
    let o = mcgate_env(
        &["domain", "list", "--controller", &http, "--credentials", a],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("use https://"), "{err}");
    // A viewer credential file: reads pass, writes are refused with a 403 sentence.
    let viewer = dir.0.join("viewer.credentials");
    run_ok(
        &[
            "credential",
            "create",
            "--role",
            "viewer",
            "--output",
            viewer.to_str().unwrap(),
            "--credentials",
            a,
        ],
        &[],
    );
    assert_eq!(mode(&viewer), 0o600);
    let v = viewer.to_str().unwrap();
    run_ok(&["domain", "list", "--credentials", v], &[]);
    let o = mcgate_env(&["domain", "create", "other", "--credentials", v], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("viewer credential may not"),
        "{err}"
    );
    // Join tokens: issued, listed without their secret, revoked.
    let t = run_ok(
        &[
            "token",
            "create",
            "--host",
            "h1",
            "--ttl",
            "10m",
            "--json",
            "--credentials",
            a,
        ],
        &[],
    );
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    let secret = t["token"].as_str().unwrap();
    let id = t["id"].as_str().unwrap();
    let table = run_ok(&["token", "list", "--credentials", a], &[]);
    assert!(
        table.contains(id) && table.contains("join") && !table.contains(secret),
        "{table}"
    );
    run_ok(&["token", "revoke", id, "--credentials", a], &[]);
    let table = run_ok(&["token", "list", "--credentials", a], &[]);
    assert!(!table.contains(id), "{table}");
    // Over the socket no credential is needed.
    let unix = format!("unix:{}", sock.display());
    run_ok(&["token", "list", "--controller", &unix], &[]);
}
