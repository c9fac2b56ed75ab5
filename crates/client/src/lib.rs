//! mcgate-client: a small HTTP/1.1 JSON client for the controller's API, over TLS on
//! TCP (`https://`, trusting only the domain CA, with a bearer credential) or a Unix
//! socket (`unix:`, local admin), used by the CLI and the agents.
//!
//! It must never retry on its own or hide an error: callers decide what a failure means.

#![forbid(unsafe_code)]

pub mod credentials;
mod lines;
pub mod table;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

pub use credentials::{Credentials, CredentialsError};
pub use lines::LineStream;

/// Where labs keep their state; a lab's controller socket is
/// `LAB_STATE_ROOT/<lab>/controller.sock`.
pub const LAB_STATE_ROOT: &str = "/run/mcgate/labs";

/// The controller address used when nothing else is given.
pub const DEFAULT_CONTROLLER: &str = "https://127.0.0.1:7400";

/// What can go wrong talking to the controller.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is neither `https://HOST:PORT` nor `unix:PATH`.
    #[error("controller address {0:?} is not of the form https://HOST:PORT or unix:PATH")]
    BadUrl(String),
    /// A plain `http://` URL: the controller serves TLS only.
    #[error(
        "controller address {0:?} is plain HTTP, which the controller does not serve: use https://HOST:PORT (with --credentials) or unix:PATH"
    )]
    PlainHttp(String),
    /// An `https://` URL with no CA to check the controller's certificate against.
    #[error(
        "no CA to check the controller at {url} against: give a credential file (--credentials or MCGATE_CREDENTIALS)"
    )]
    NoCa {
        /// The controller URL.
        url: String,
    },
    /// The TLS handshake or the CA failed.
    #[error("TLS with the controller at {url} failed: {message}")]
    Tls {
        /// The controller URL.
        url: String,
        /// The cause.
        message: String,
    },
    /// A credential file could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// Several labs are up and none was named.
    #[error(
        "several labs are up ({}); pick one with --controller {} (or MCGATE_CONTROLLER)",
        labs.join(", "),
        sockets.first().map(|s| format!("unix:{}", s.display())).unwrap_or_default()
    )]
    SeveralLabs {
        /// The labs' names.
        labs: Vec<String>,
        /// Their controller sockets, in the same order.
        sockets: Vec<PathBuf>,
    },
    /// The controller's socket exists but this user may not connect to it.
    #[error(
        "permission denied connecting to the controller at {url}: the socket belongs to another user (a lab's is root's); run as that user, e.g. with sudo"
    )]
    PermissionDenied {
        /// The controller URL.
        url: String,
    },
    /// Could not connect.
    #[error("cannot reach the controller at {url}: {source} (is `mcgate controller` running?)")]
    Connect {
        /// The controller URL.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed midway.
    #[error("connection to the controller at {url} failed: {message}")]
    Http {
        /// The controller URL.
        url: String,
        /// The cause.
        message: String,
    },
    /// The controller answered with an error status.
    #[error("{message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The controller's sentence (from the JSON error body).
        message: String,
        /// The field at fault, if the controller named one.
        field: Option<String>,
    },
    /// The answer was not the JSON expected.
    #[error("the controller's answer could not be read: {0}")]
    Decode(String),
}

#[derive(Debug, Clone)]
enum Target {
    Tcp {
        authority: String,
        name: rustls_pki_types::ServerName<'static>,
    },
    Unix {
        path: PathBuf,
    },
}

/// A handle on one controller. Cheap to clone; each request opens its own connection,
/// which keeps failures independent (a broken stream never poisons an admin call),
/// unless the client keeps connections alive ([`Client::keep_alive`]).
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    target: Target,
    pool: Option<Arc<Pool>>,
    tls: Option<Tls>,
    /// Shared by the clones of one client, so [`Client::set_token`] reaches them all.
    token: Arc<Bearer>,
}

/// The bearer secret, never shown by `Debug`.
#[derive(Default)]
struct Bearer(std::sync::RwLock<Option<Arc<str>>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

/// The TLS connector (which has no `Debug` of its own).
#[derive(Clone)]
struct Tls(TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Most idle connections a keep-alive client keeps: a caller that makes one request
/// at a time needs one.
const POOL_MAX: usize = 4;

/// The idle connections of a keep-alive client, shared by its clones.
#[derive(Debug, Default)]
struct Pool {
    idle: std::sync::Mutex<Vec<SendRequest<Full<Bytes>>>>,
    opened: AtomicU64,
}

impl Pool {
    fn take(&self) -> Option<SendRequest<Full<Bytes>>> {
        match self.idle.lock() {
            Ok(mut v) => v.pop(),
            Err(p) => p.into_inner().pop(),
        }
    }

    fn put(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = match self.idle.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        if idle.len() < POOL_MAX {
            idle.push(sender);
        }
    }
}

impl Client {
    /// Parses `https://HOST:PORT[/]` or `unix:PATH`. An `https://` client needs the
    /// CA ([`Client::with_ca`]) before it can connect; `http://` is refused.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let target = if let Some(rest) = url.strip_prefix("https://") {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(ClientError::BadUrl(url.to_string()));
            }
            let name =
                tls::server_name(authority).ok_or_else(|| ClientError::BadUrl(url.to_string()))?;
            Target::Tcp {
                authority: authority.to_string(),
                name,
            }
        } else if url.starts_with("http://") {
            return Err(ClientError::PlainHttp(url.to_string()));
        } else if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ClientError::BadUrl(url.to_string()));
            }
            Target::Unix {
                path: PathBuf::from(path),
            }
        } else {
            return Err(ClientError::BadUrl(url.to_string()));
        };
        Ok(Self {
            url: url.to_string(),
            target,
            pool: None,
            tls: None,
            token: Arc::default(),
        })
    }

    /// The controller of a credential file, with its CA and token.
    pub fn from_credentials(c: &Credentials) -> Result<Self, ClientError> {
        Self::new(&c.controller)?
            .with_ca(&c.ca)
            .map(|cl| cl.with_token(&c.token))
    }

    /// Trusts the CA certificates of `ca_pem` (and only them) for `https://`.
    pub fn with_ca(mut self, ca_pem: &str) -> Result<Self, ClientError> {
        self.tls = Some(Tls(tls::connector(ca_pem).map_err(|message| {
            ClientError::Tls {
                url: self.url.clone(),
                message,
            }
        })?));
        Ok(self)
    }

    /// Another controller (a replica serving the same API) with this client's CA and
    /// bearer credential. The credential is shared, not copied: [`Client::set_token`]
    /// on either reaches both. Connections are not: a keep-alive client's copy gets a
    /// pool of its own.
    pub fn with_url(&self, url: &str) -> Result<Self, ClientError> {
        let mut c = Self::new(url)?;
        c.tls.clone_from(&self.tls);
        c.token = self.token.clone();
        c.pool = self.pool.as_ref().map(|_| Arc::default());
        Ok(c)
    }

    /// Sends `token` as `Authorization: Bearer` on every request.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Arc::new(Bearer(std::sync::RwLock::new(Some(Arc::from(token)))));
        self
    }

    /// Replaces the bearer token of this client and of every clone of it (an agent
    /// that has just joined).
    pub fn set_token(&self, token: &str) {
        let mut t = self.token.0.write().unwrap_or_else(|p| p.into_inner());
        *t = Some(Arc::from(token));
    }

    /// The same controller, with connections kept open and reused between requests
    /// (a pool of its own: a clone of a kept-alive client gets new connections)
    /// (HTTP/1.1 keep-alive), for a caller that talks to it all the time, such as an
    /// agent's heartbeats and membership reports. Streams always get a connection of
    /// their own. A request whose idle connection turns out closed before the request
    /// was written goes out on a new connection; nothing else is retried.
    pub fn keep_alive(mut self) -> Self {
        self.pool = Some(Arc::default());
        self
    }

    /// Connections a keep-alive client has opened so far (0 for other clients).
    pub fn connections_opened(&self) -> u64 {
        self.pool
            .as_ref()
            .map_or(0, |p| p.opened.load(Ordering::Relaxed))
    }

    /// The controller to use when the user gave none: the running lab's, if exactly one
    /// lab is up on this machine; [`DEFAULT_CONTROLLER`] when none is;
    /// [`ClientError::SeveralLabs`] when several are, rather than a silent guess.
    pub fn default_url() -> Result<String, ClientError> {
        default_url_in(Path::new(LAB_STATE_ROOT))
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// `POST path` with a JSON body, decoding a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path` with an optional JSON body, decoding a JSON answer.
    pub async fn delete<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, body).await
    }

    /// Any method, JSON in and out. An empty answer body decodes as JSON `null`.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let resp = self.request(method, path, body, true).await?;
        let bytes = self.read_body(resp).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` for a newline-delimited stream; read it with [`LineStream::next_line`].
    pub async fn stream(&self, path: &str) -> Result<LineStream, ClientError> {
        let resp = self.request(Method::GET, path, None::<&()>, false).await?;
        Ok(LineStream {
            body: resp.into_body(),
            buf: BytesMut::new(),
            scanned: 0,
            url: self.url.clone(),
        })
    }

    /// `GET path` for a long-lived streamed body, handed over unread so that the caller
    /// frames it with its own bound on a message's size.
    pub async fn stream_body(&self, path: &str) -> Result<Incoming, ClientError> {
        Ok(self
            .request(Method::GET, path, None::<&()>, false)
            .await?
            .into_body())
    }

    async fn request<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        reuse: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let body = match body {
            Some(b) => {
                Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let host = match &self.target {
            Target::Tcp { authority, .. } => authority.clone(),
            Target::Unix { .. } => "localhost".to_string(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        let token = self
            .token
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| self.http_err(e))?;
        let resp = self.dispatch(req, reuse).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = self.read_body(resp).await?;
        Err(status_error(status, &bytes))
    }

    /// The whole body of `resp`.
    async fn read_body(&self, resp: Response<Incoming>) -> Result<Bytes, ClientError> {
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.http_err(e))?
            .to_bytes())
    }

    /// Sends `req` on an idle connection of the pool when `reuse` allows, else on a new
    /// one (kept for reuse afterwards when the client keeps connections alive).
    async fn dispatch(
        &self,
        mut req: Request<Full<Bytes>>,
        reuse: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let pool = self.pool.as_ref().filter(|_| reuse);
        if let Some(pool) = pool {
            while let Some(mut sender) = pool.take() {
                // Fails when the server closed the connection while it was idle.
                if sender.ready().await.is_err() {
                    continue;
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        pool.put(sender);
                        return Ok(resp);
                    }
                    Err(mut e) => match e.take_message() {
                        // Never written: safe to send on another connection.
                        Some(r) => req = r,
                        None => return Err(self.http_err(e.into_error())),
                    },
                }
            }
        }
        let mut sender = self.connect().await?;
        if let Some(p) = &self.pool {
            p.opened.fetch_add(1, Ordering::Relaxed);
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.http_err(e))?;
        if let Some(pool) = pool {
            pool.put(sender);
        }
        Ok(resp)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        match &self.target {
            Target::Tcp { authority, name } => {
                let tls = self.tls.as_ref().ok_or_else(|| ClientError::NoCa {
                    url: self.url.clone(),
                })?;
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|source| self.connect_err(source))?;
                let _ = stream.set_nodelay(true);
                let stream =
                    tls.0
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| ClientError::Tls {
                            url: self.url.clone(),
                            message: e.to_string(),
                        })?;
                self.handshake(TokioIo::new(stream)).await
            }
            Target::Unix { path } => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| self.connect_err(source))?;
                self.handshake(TokioIo::new(stream)).await
            }
        }
    }

    async fn handshake<I>(&self, io: I) -> Result<SendRequest<Full<Bytes>>, ClientError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.http_err(e))?;
        tokio::spawn(async move {
            // The connection ends with the last handle on it (or with the response
            // body); its error, if any, surfaces through the request or the body read.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn connect_err(&self, source: std::io::Error) -> ClientError {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            return ClientError::PermissionDenied {
                url: self.url.clone(),
            };
        }
        ClientError::Connect {
            url: self.url.clone(),
            source,
        }
    }

    fn http_err(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Http {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }
}

fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => ClientError::Status {
            status: status.as_u16(),
            message: b.error,
            field: b.field,
        },
        Err(_) => ClientError::Status {
            status: status.as_u16(),
            message: format!(
                "the controller answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            ),
            field: None,
        },
    }
}

fn default_url_in(root: &Path) -> Result<String, ClientError> {
    let mut labs: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let sock = lab_socket(&e.path())?;
            Some((e.file_name().to_string_lossy().into_owned(), sock))
        })
        .collect();
    labs.sort();
    match labs.as_slice() {
        [] => Ok(DEFAULT_CONTROLLER.to_string()),
        [(_, one)] => Ok(format!("unix:{}", one.display())),
        _ => Err(ClientError::SeveralLabs {
            labs: labs.iter().map(|(n, _)| n.clone()).collect(),
            sockets: labs.into_iter().map(|(_, p)| p).collect(),
        }),
    }
}

/// A lab's controller socket: `controller.sock`, or in a lab of controller replicas
/// (`controller-1.sock`, `controller-2.sock`, ...) the first that accepts a connection
/// (one this user may not open counts: the error then says so), else the first.
fn lab_socket(dir: &Path) -> Option<PathBuf> {
    let single = dir.join("controller.sock");
    if single.exists() {
        return Some(single);
    }
    let mut replicas: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name
                .strip_prefix("controller-")?
                .strip_suffix(".sock")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    replicas.sort();
    let live = replicas
        .iter()
        .find(|(_, p)| match std::os::unix::net::UnixStream::connect(p) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
        });
    live.or(replicas.first()).map(|(_, p)| p.clone())
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
