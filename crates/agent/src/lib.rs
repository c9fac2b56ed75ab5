//! mcgate-agent: the per-host agent daemon.
//!
//! It attaches to the host's container-facing links, runs the IGMP querier on each
//! (learning which local containers want which groups), reports that membership to the
//! controller, follows the controller's forwarding-state stream, and hands the resulting
//! forwarding table to the data plane, which moves the packets on its own threads.
//!
//! It must never make forwarding wait on the controller: with the controller away it
//! keeps forwarding on the last state and keeps learning local membership, and resyncs
//! (registration, full snapshot) when the controller returns. It holds no `unsafe`.
//!
//! The decisions live in [`core::AgentCore`], which takes the current time as an
//! argument and returns what to do; [`daemon`] is the tokio loop that drives it. The
//! IGMP router itself is `mcgate-igmp`, the packets move in `mcgate-dataplane`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backoff;
pub mod check;
pub mod config;
pub mod control;
pub mod controllers;
pub mod core;
pub mod daemon;
pub mod fuzzing;
pub mod host_key;
pub mod igmp_plan;
pub mod join;
pub mod keepalive_auth;
pub mod link;
pub mod liveness_task;
pub mod metrics;
pub mod netdev;
pub mod persist;
pub mod traffic;
pub mod traffic_task;
pub mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// `mcgate agent`: run the host agent.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Controller URL (`https://HOST:PORT` or `unix:PATH`). Several replicas of one
    /// control plane (sharing a store): a comma-separated list, or the flag repeated.
    /// The agent uses one and moves to the next, round robin, when it fails (no
    /// connection, no answer in time, a 5xx, its stream ending), keeping its session.
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    pub controller: Vec<String>,
    /// A join token (from `mcgate token create --host NAME`) to exchange for this host's
    /// credential on the first start. It shows in the process list: prefer --token-file.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the join token (read once; the credential it buys is kept in
    /// --state-dir, mode 0600, and reused on later starts).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The controller's CA certificate (its `ca.pem`), for the first join over https.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Where the agent keeps the credential a join buys (mode 0600; default:
    /// STATE_DIR/credentials.json; without either, it lives in memory only).
    #[arg(long, value_name = "FILE")]
    pub credential_file: Option<PathBuf>,
    /// This host's name, unique among the controller's agents.
    #[arg(long)]
    pub host: Option<String>,
    /// The zone (availability zone, rack, site) this host runs in, sent with its
    /// registration for display: 1 to 63 letters, digits, `-`, `_` or `.`.
    #[arg(long)]
    pub zone: Option<String>,
    /// Underlay address other hosts tunnel to, `IP[:PORT]` (port 4789 by default). It
    /// must be assigned to an interface of this host; that interface's MTU bounds what
    /// is tunnelled.
    #[arg(long)]
    pub underlay: Option<String>,
    /// Container-facing links to attach to: names or glob patterns (`tk*`), re-evaluated
    /// every second as links come and go.
    #[arg(long, num_args = 1..)]
    pub attach: Vec<String>,
    /// Attached links where another multicast router may be (names or glob patterns).
    /// Every other attached link carries hosts only, the right default for task links:
    /// IGMP queries and router messages from them are dropped and counted, the agent's
    /// querier never yields to them, and the kernel plane never makes them router ports.
    #[arg(long = "router-links", value_name = "PATTERN", num_args = 1..)]
    pub router_links: Vec<String>,
    /// Upstream interface towards a multicast network outside the domain: the agent is
    /// an IGMP proxy there (RFC 4605), reporting the whole domain's membership within
    /// --upstream-groups to the upstream querier, and takes the traffic of those groups
    /// arriving on it into the domain. Never attached as a task link.
    #[arg(long, value_name = "IFACE")]
    pub upstream: Option<String>,
    /// Group ranges reported upstream, `CIDR[,CIDR...]` (e.g. `233.252.0.0/24`).
    /// None by default: without it the upstream interface reports nothing.
    #[arg(long = "upstream-groups", value_name = "CIDR,...")]
    pub upstream_groups: Option<String>,
    /// Group ranges the domain's own senders may send out on the upstream interface,
    /// `CIDR[,CIDR...]`, as a routed hop (TTL decremented; TTL 1 or less is dropped and
    /// counted). None by default: nothing of the domain's leaves.
    #[arg(long = "upstream-egress", value_name = "CIDR,...")]
    pub upstream_egress: Option<String>,
    /// Admin endpoint for `/metrics` and `/v1/stats`: `IP:PORT` or `unix:PATH`.
    #[arg(long)]
    pub admin: Option<String>,
    /// TOML file with the same keys as these flags (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data plane: "userspace" (the relay), "kernel" (Linux bridge and VXLAN
    /// tables, Linux 6.3+, task links on one bridge) or "auto" (the kernel one where it
    /// can work, else the relay; the default).
    #[arg(long)]
    pub dataplane: Option<String>,
    /// Directory for the agent's state file: the membership it learned, so that a
    /// restarted agent forwards to its receivers at once. With it, SIGTERM keeps the
    /// host's registration for the next agent instead of deregistering.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// UDP port WireGuard messages from other hosts arrive on, at the underlay address
    /// (51820 by default). Domains with `tunnel = "wireguard"` (the default) travel
    /// there, encrypted with this host's key pair.
    #[arg(long = "wireguard-port", value_name = "PORT")]
    pub wireguard_port: Option<u16>,
    /// Replace this host's WireGuard key pair with a new one at start (the old private
    /// key file is overwritten). A running agent rotates with `POST /v1/rotate-key` on
    /// its admin endpoint; either way peers keep their sessions until the new handshake
    /// completes.
    #[arg(long = "rotate-key")]
    pub rotate_key: bool,
    /// UDP port of the peer keepalives, at the underlay address (51821 by default; the
    /// same on every host of a domain). Each agent sends each peer an authenticated
    /// keepalive every --liveness-interval-ms and stops sending traffic to a peer it has
    /// not heard for --liveness-multiplier intervals (see docs/agent.md). 0 turns
    /// keepalives off: peers then judge this host by the controller's lease alone.
    #[arg(long = "liveness-port", value_name = "PORT")]
    pub liveness_port: Option<u16>,
    /// Milliseconds between keepalives to each peer (10..=10000; 100 by default).
    #[arg(long = "liveness-interval-ms", value_name = "MS")]
    pub liveness_interval_ms: Option<u64>,
    /// Keepalive intervals missed before peers declare this host down (1..=50; 3 by
    /// default).
    #[arg(long = "liveness-multiplier", value_name = "N")]
    pub liveness_multiplier: Option<u8>,
    /// Check this host instead of running: capabilities, packet sockets, the kernel's
    /// VXLAN multicast tables, the underlay, the links matching --attach and the bridge
    /// they sit on, and which data plane `auto` would choose and why. Changes nothing;
    /// exits 0 when the agent can run as configured, 1 when it cannot.
    #[arg(long)]
    pub check: bool,
}

/// The log subscriber: `RUST_LOG` filters (`info` by default), colour only when `ansi`
/// (the output is a terminal), never in files, pipes or journald.
pub fn log_subscriber<W>(writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(ansi)
        .with_writer(writer)
        .finish()
}

/// Runs the agent.
pub fn run(args: AgentArgs) -> ExitCode {
    if args.check {
        return check::run(&args);
    }
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing::subscriber::set_global_default(log_subscriber(std::io::stderr, ansi));
    let cfg = match config::AgentConfig::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(ansi: bool) -> String {
        let buf = Buffer::default();
        let w = buf.clone();
        let sub = super::log_subscriber(move || w.clone(), ansi);
        tracing::subscriber::with_default(sub, || tracing::info!(link = "tk1", "attached"));
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn logs_carry_no_colour_codes_when_not_on_a_terminal() {
        let plain = logged(false);
        assert!(
            plain.contains("attached") && plain.contains("tk1"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'), "{plain:?}");
        // The same line on a terminal is coloured: the check above can fail.
        assert!(logged(true).contains('\x1b'));
    }
}
