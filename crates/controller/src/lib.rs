//! mcgate-controller: the domain controller daemon and the admin CLI commands.
//!
//! The daemon holds the domains (persisted in an embedded store), knows every agent
//! through its lease, and streams to each agent the forwarding state of its domains: a
//! snapshot, then coalesced deltas stamped with revisions. The rules live in the pure
//! model (`mcgate_domain::model`); this crate is the driver: HTTP handlers
//! ([`routes`], with their OpenAPI document in [`openapi`]), the bounded accept loop
//! ([`server`]), the store, the lease timer, the streams ([`hub`]) and [`metrics`].
//!
//! The API is TLS on TCP (certificates from the controller's own CA, [`auth::pki`]) and
//! every request is authenticated ([`auth`]); the Unix socket is for local admin.
//!
//! It must never block its state lock on the network (a slow agent loses its stream, not
//! everyone's), never answer bad input with a 5xx or a crash, and never lose a committed
//! admin change on a crash.

#![forbid(unsafe_code)]

pub mod auth;
pub mod auth_routes;
mod cli;
pub mod etcd;
pub mod extract;
pub mod fuzzing;
pub mod hub;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod traffic;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub use cli::AdminCommand;
pub use state::{Config, Controller};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `mcgate controller`: run the controller daemon, or one of its store commands.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ControllerArgs {
    /// A command instead of the daemon.
    #[command(subcommand)]
    pub command: Option<cli::ControllerCmd>,
    /// Where the state is kept.
    #[command(flatten)]
    pub storage: StoreArgs,
    /// TCP address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Also serve the API on this Unix socket (created mode 0600: whoever may open it
    /// is admin).
    #[arg(long)]
    pub unix: Option<std::path::PathBuf>,
    /// One more name (IP address or DNS name) for the controller's TLS certificate,
    /// besides the listen address, 127.0.0.1 and localhost; repeat as needed.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_san: Vec<String>,
    /// An agent with no heartbeat or report for this many milliseconds loses its members.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub lease_ms: u64,
    /// How often agents are told to heartbeat, in milliseconds (keep it well under the
    /// lease, and under --peer-confirm-ms).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
    /// An agent that peers report dead (their keepalives from it stopped) loses its
    /// members once it has also sent no heartbeat for this many milliseconds, before its
    /// lease runs out. Keep it above two heartbeat intervals (default: 2.4 heartbeat
    /// intervals, 600 ms with the default heartbeat). 0: only the lease removes members.
    /// Embedded store only (with etcd the lease alone decides).
    #[arg(long)]
    pub peer_confirm_ms: Option<u64>,
    /// How long changes are gathered before they are streamed, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub coalesce_ms: u64,
    /// Lines queued per agent stream before a lagging agent is disconnected.
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(16..))]
    pub stream_queue: u64,
    /// HTTP connections served at once per listener; more wait until one ends (default:
    /// the open-file limit less a headroom of 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Milliseconds a client has to send a request's headers; slower or idle
    /// connections are closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub header_timeout_ms: u64,
    /// The IPv4 prefix agents' tunnel addresses come from (one per agent, the inner
    /// source of its WireGuard traffic). It must not overlap the underlay or the tasks'
    /// subnets.
    #[arg(long, value_name = "CIDR", default_value = "10.255.0.0/16")]
    pub tunnel_pool: ipnet::Ipv4Net,
    /// This replica's name, unique among the replicas (`--store etcd`; default: the
    /// machine's host name).
    #[arg(long)]
    pub replica: Option<String>,
}

/// Where a controller keeps its state (the daemon, `export` and `import`).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory of the persistent store, the CA (`ca.pem`, `ca.key`), the join tokens and
    /// credentials (`tokens.json`) and the admin credential (`admin.credentials`).
    #[arg(long, default_value = "/var/lib/mcgate")]
    pub data_dir: std::path::PathBuf,
    /// Where the state is kept: `embedded` (one controller, a file in --data-dir) or
    /// `etcd` (any number of replicas sharing an etcd cluster; see docs/ha.md).
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// etcd client URLs, comma-separated (`--store etcd`).
    #[arg(long, value_delimiter = ',', value_name = "URL,URL,...")]
    pub etcd_endpoints: Vec<String>,
    /// Every key lives under this prefix (several domains' controllers can share one etcd).
    #[arg(long, default_value = etcd::keys::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// CA bundle of etcd's server certificates (as etcdctl's --cacert).
    #[arg(long, value_name = "FILE")]
    pub etcd_cacert: Option<std::path::PathBuf>,
    /// Client certificate for etcd (as etcdctl's --cert).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<std::path::PathBuf>,
    /// Client key for etcd (as etcdctl's --key).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<std::path::PathBuf>,
    /// etcd user (as etcdctl's --user, without the password).
    #[arg(long, requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password (never on the command line).
    #[arg(long, value_name = "FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<std::path::PathBuf>,
}

/// Where a controller keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// One controller; a redb file in the data directory.
    Embedded,
    /// Replicas sharing an etcd cluster.
    Etcd,
}

impl StoreArgs {
    /// The etcd options these arguments give, for replica `replica`.
    pub fn etcd_options(&self, replica: Option<String>) -> etcd::conn::EtcdOptions {
        etcd::conn::EtcdOptions {
            endpoints: self.etcd_endpoints.clone(),
            prefix: self.etcd_prefix.clone(),
            cacert: self.etcd_cacert.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password_file: self.etcd_password_file.clone(),
            replica: replica.unwrap_or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "controller".into())
            }),
        }
    }
}

/// A controller serving on its listeners.
#[derive(Debug)]
pub struct Running {
    /// The TCP address it serves on.
    pub addr: SocketAddr,
    /// Its state.
    pub controller: Arc<Controller>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Asks for a graceful shutdown (streams end, in-flight requests finish) and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Serves the API of `controller` on `tcp` with TLS `tls` (and `unix`, if given) until
/// [`Running::shutdown`]; also runs the flush and lease loops.
pub fn serve(
    controller: Arc<Controller>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<Running> {
    let addr = tcp.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let ctl = controller.clone();
    let task = tokio::spawn(async move {
        let flush = tokio::spawn(ctl.clone().flush_loop());
        let lease = tokio::spawn(ctl.clone().lease_loop());
        let replica = etcd::spawn(&ctl);
        let app = routes::router(ctl.clone());
        let limits = ctl.config.connections;
        // Streams never end by themselves; end them so the graceful shutdown can.
        let streams = {
            let (ctl, mut rx) = (ctl.clone(), rx.clone());
            tokio::spawn(async move {
                let _ = rx.wait_for(|v| *v).await;
                ctl.close_streams();
            })
        };
        let tls = Some(tokio_rustls::TlsAcceptor::from(tls));
        let tcp_srv = server::serve(tcp, app.clone(), limits, tls, auth::Origin::Tcp, rx.clone());
        match unix {
            Some(u) => {
                let unix_srv = server::serve(u, app, limits, None, auth::Origin::Unix, rx.clone());
                tokio::join!(tcp_srv, unix_srv);
            }
            None => tcp_srv.await,
        }
        let _ = streams.await;
        // Wait for the aborted tasks to be gone: they hold the controller (and so its
        // store's file lock), which a caller may want to reopen once this returns.
        for t in [flush, lease].into_iter().chain(replica) {
            t.abort();
            let _ = t.await;
        }
        if let Some(rep) = ctl.etcd() {
            etcd::leader::resign(rep).await;
        }
        Ok(())
    });
    Ok(Running {
        addr,
        controller,
        shutdown: tx,
        task,
    })
}

/// Makes the controller's TLS configuration for `addr` (its CA first, on the first
/// start) and its admin credential file `DATA_DIR/admin.credentials`: created with a
/// new admin secret when missing, else only its `controller` URL and CA brought up to
/// date (the secret is not kept in the clear, so it cannot be rewritten).
pub fn bootstrap(
    controller: &Controller,
    data_dir: &std::path::Path,
    addr: SocketAddr,
    sans: &[String],
) -> Result<(Arc<rustls::ServerConfig>, mcgate_client::Credentials), String> {
    use mcgate_domain::auth_api::{Role, TokenKind};
    let ca = auth::pki::Ca::load_or_create(data_dir)?;
    let tls = ca.server_config(&auth::pki::server_names(addr, sans))?;
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let url = format!("https://{host}");
    let path = data_dir.join(mcgate_client::credentials::ADMIN_CREDENTIALS_FILE);
    let creds = match mcgate_client::Credentials::load(&path) {
        Ok(mut c) => {
            c.controller = url;
            c.ca = ca.cert_pem.clone();
            c
        }
        Err(_) => {
            let t = controller.tokens.issue(
                TokenKind::Credential,
                Role::Admin,
                None,
                None,
                auth::tokens::unix_now(),
            )?;
            tracing::info!(id = %t.id, file = %path.display(), "admin credential created");
            mcgate_client::Credentials {
                controller: url,
                ca: ca.cert_pem.clone(),
                token: t.token,
                role: "admin".into(),
                host: None,
            }
        }
    };
    creds.save(&path).map_err(|e| e.to_string())?;
    Ok((tls, creds))
}

/// [`bootstrap`] then [`serve`]: a controller on `tcp` with TLS, and its admin
/// credential.
pub fn serve_tls(
    controller: Arc<Controller>,
    data_dir: &std::path::Path,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    sans: &[String],
) -> Result<(Running, mcgate_client::Credentials), String> {
    let addr = tcp.local_addr().map_err(|e| e.to_string())?;
    let (tls, creds) = bootstrap(&controller, data_dir, addr, sans)?;
    let running = serve(controller, tcp, unix, tls).map_err(|e| e.to_string())?;
    Ok((running, creds))
}

/// Runs the controller daemon.
pub fn run_daemon(args: ControllerArgs) -> ExitCode {
    if let Some(cmd) = args.command {
        return cli::run_controller_cmd(cmd);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let nofile = raise_fd_limit();
    block_on(
        tokio::runtime::Builder::new_multi_thread(),
        daemon(args, nofile),
        |e| e,
    )
}

/// Runs `main` on a runtime from `builder`: success, or the error (as `say` words it)
/// on stderr and failure.
pub(crate) fn block_on<E>(
    mut builder: tokio::runtime::Builder,
    main: impl std::future::Future<Output = Result<(), E>>,
    say: impl FnOnce(E) -> String,
) -> ExitCode {
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", say(e));
            ExitCode::FAILURE
        }
    }
}

/// The silence that confirms peers' reports of a dead host, when not given: 2.4
/// heartbeat intervals, so one late heartbeat never removes a live host.
fn default_peer_confirm_ms(heartbeat_ms: u64) -> u64 {
    heartbeat_ms.saturating_mul(12) / 5
}

async fn daemon(args: ControllerArgs, nofile: u64) -> Result<(), String> {
    if args.heartbeat_ms >= args.lease_ms {
        return Err(format!(
            "--heartbeat-ms {} must be shorter than --lease-ms {}, or every agent's lease would run out between heartbeats",
            args.heartbeat_ms, args.lease_ms
        ));
    }
    let peer_confirm_ms = args
        .peer_confirm_ms
        .unwrap_or_else(|| default_peer_confirm_ms(args.heartbeat_ms));
    if peer_confirm_ms != 0 && peer_confirm_ms <= args.heartbeat_ms {
        return Err(format!(
            "--peer-confirm-ms {} must be longer than --heartbeat-ms {} (twice as long or more), or a live agent between two heartbeats could be removed; give 0 to turn early removal off",
            peer_confirm_ms, args.heartbeat_ms
        ));
    }
    let config = Config {
        lease_ms: args.lease_ms,
        heartbeat_ms: args.heartbeat_ms,
        peer_confirm_ms,
        coalesce_ms: args.coalesce_ms,
        stream_queue: usize::try_from(args.stream_queue).unwrap_or(1_024),
        connections: server::ConnLimits {
            max_connections: match args.max_connections {
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                None => server::max_connections_for(nofile),
            },
            header_timeout: std::time::Duration::from_millis(args.header_timeout_ms),
        },
        tunnel_pool: args.tunnel_pool.trunc(),
        ..Config::default()
    };
    let st = &args.storage;
    let controller = match st.store {
        StoreKind::Embedded => {
            if !st.etcd_endpoints.is_empty() {
                return Err("--etcd-endpoints needs --store etcd".into());
            }
            Controller::open(config, &st.data_dir).map_err(|e| e.to_string())?
        }
        StoreKind::Etcd => {
            if args.lease_ms < 2_000 {
                return Err(format!(
                    "--lease-ms {} is shorter than etcd's shortest lease (2 s): give --lease-ms 2000 or more",
                    args.lease_ms
                ));
            }
            if peer_confirm_ms > 0 {
                tracing::info!(
                    "with --store etcd the lease alone expires agents: --peer-confirm-ms is not used (agents still stop sending to a peer whose keepalives stop)"
                );
            }
            let opts = st.etcd_options(args.replica.clone());
            Controller::open_etcd(config, opts, &st.data_dir).await?
        }
    };
    let tcp = TcpListener::bind(&args.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (is another controller running? pick another --listen)",
            args.listen
        )
    })?;
    let unix = match &args.unix {
        Some(path) => Some(bind_unix(path).await?),
        None => None,
    };
    let (running, _) = serve_tls(controller, &st.data_dir, tcp, unix, &args.tls_san)?;
    tracing::info!(
        listen = %running.addr,
        unix = ?args.unix,
        data_dir = %st.data_dir.display(),
        "controller serving"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    let result = running.shutdown().await.map_err(|e| e.to_string());
    if let Some(p) = &args.unix {
        let _ = std::fs::remove_file(p);
    }
    result
}

async fn bind_unix(path: &PathBuf) -> Result<UnixListener, String> {
    if path.exists() {
        // A socket file left by a controller that died: remove it, but never steal a
        // live controller's socket.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another controller is serving on {}; stop it or pick another --unix",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Whoever can open the socket is admin: create it 0600 (the umask covers the window
    // between bind and chmod).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    Ok(listener)
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Each agent holds one long-lived stream: lift the soft open-file limit to the hard one
/// so a thousand agents do not exhaust the usual 1024. Returns the soft limit in force
/// (1024 when it cannot be read).
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1_024,
    }
}

/// Runs an admin command.
pub fn run_admin(cmd: AdminCommand) -> ExitCode {
    cli::run(cmd)
}

#[cfg(test)]
mod peer_confirm_tests {
    #[test]
    fn the_default_confirmation_follows_the_heartbeat() {
        assert_eq!(super::default_peer_confirm_ms(250), 600);
        assert_eq!(super::default_peer_confirm_ms(1_000), 2_400);
        assert!(super::default_peer_confirm_ms(u64::MAX) > 0);
    }
}
