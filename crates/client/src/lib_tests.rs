use super::*;

#[test]
fn parses_both_url_forms_and_rejects_others() {
    assert!(Client::new("https://127.0.0.1:7400").is_ok());
    assert!(Client::new("https://127.0.0.1:7400/").is_ok());
    assert!(Client::new("unix:/run/x.sock").is_ok());
    let e = Client::new("http://127.0.0.1:7400").unwrap_err();
    assert!(matches!(e, ClientError::PlainHttp(_)), "{e}");
    assert!(e.to_string().contains("use https://"), "{e}");
    for bad in [
        "",
        "127.0.0.1:7400",
        "ftp://x",
        "https://",
        "unix:",
        "https://a/b",
    ] {
        assert!(
            matches!(Client::new(bad), Err(ClientError::BadUrl(_))),
            "{bad}"
        );
    }
}

/// A server that answers `{}` to every request on a connection kept open, and
/// counts the connections it accepted.
async fn counting_server(tag: &str) -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile_dir(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let url = format!("unix:{}", path.display());
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers, then the body its Content-Length gives.
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn a_keep_alive_client_reuses_one_connection() {
    let (url, accepted) = counting_server("keep-alive").await;
    let client = Client::new(&url).unwrap().keep_alive();
    for _ in 0..5 {
        let _: serde_json::Value = client
            .post("/x", &serde_json::json!({"a": 1}))
            .await
            .unwrap();
        let _: serde_json::Value = client.clone().get("/y").await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(client.connections_opened(), 1);
    // Without keep-alive, one connection per request.
    let plain = Client::new(&url).unwrap();
    for _ in 0..3 {
        let _: serde_json::Value = plain.get("/y").await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[test]
fn default_url_prefers_a_single_running_lab_and_refuses_to_guess_among_several() {
    let dir = tempfile_dir("default-url");
    assert_eq!(default_url_in(&dir).unwrap(), DEFAULT_CONTROLLER);
    std::fs::create_dir_all(dir.join("lab1")).unwrap();
    std::fs::write(dir.join("lab1/controller.sock"), b"").unwrap();
    assert_eq!(
        default_url_in(&dir).unwrap(),
        format!("unix:{}", dir.join("lab1/controller.sock").display())
    );
    std::fs::create_dir_all(dir.join("lab2")).unwrap();
    std::fs::write(dir.join("lab2/controller.sock"), b"").unwrap();
    let e = default_url_in(&dir).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::SeveralLabs { ref labs, .. } if labs == &["lab1", "lab2"]));
    assert!(text.contains("several labs are up (lab1, lab2)"), "{text}");
    assert!(text.contains("--controller unix:"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lab_of_replicas_is_reached_through_the_first_replica_that_listens() {
    let dir = tempfile_dir("replicas");
    let lab = dir.join("ha");
    std::fs::create_dir_all(&lab).unwrap();
    // controller-1's socket is left behind by a killed replica: nothing listens.
    std::fs::write(lab.join("controller-1.sock"), b"").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(lab.join("controller-2.sock")).unwrap();
    std::fs::write(lab.join("controller-10.sock"), b"").unwrap();
    assert_eq!(
        default_url_in(&dir).unwrap(),
        format!("unix:{}", lab.join("controller-2.sock").display())
    );
    std::fs::remove_file(lab.join("controller-2.sock")).unwrap();
    assert_eq!(
        default_url_in(&dir).unwrap(),
        format!("unix:{}", lab.join("controller-1.sock").display()),
        "none listens: the first, so the error names a real socket"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcgate-client-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn a_socket_this_user_may_not_open_is_a_permission_error() {
    let e = Client::new("unix:/x")
        .unwrap()
        .connect_err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    let text = e.to_string();
    assert!(matches!(e, ClientError::PermissionDenied { .. }));
    assert!(
        text.contains("permission denied") && !text.contains("is `mcgate controller` running"),
        "{text}"
    );
    let e = Client::new("unix:/x")
        .unwrap()
        .connect_err(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert!(e.to_string().contains("is `mcgate controller` running"));
}

/// An agent with several controller replicas: one bearer credential for all of them,
/// set once (after its join) for every replica's client.
#[test]
fn a_replica_client_shares_the_credential_but_not_the_connections() {
    let a = Client::new("unix:/run/a.sock").unwrap().keep_alive();
    let b = a.with_url("unix:/run/b.sock").unwrap();
    assert_eq!(b.url(), "unix:/run/b.sock");
    a.set_token("secret");
    let token = |c: &Client| c.token.0.read().unwrap().as_deref().map(str::to_string);
    assert_eq!(token(&b).as_deref(), Some("secret"));
    assert!(!Arc::ptr_eq(
        a.pool.as_ref().unwrap(),
        b.pool.as_ref().unwrap()
    ));
    assert!(matches!(
        a.with_url("http://x:1"),
        Err(ClientError::PlainHttp(_))
    ));
}
