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

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod control;
pub mod daemon;
pub mod link;
pub mod netdev;

use std::path::PathBuf;
use std::process::ExitCode;

/// `mcgate agent`: run the host agent.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Controller URL (`http://HOST:PORT` or `unix:PATH`).
    #[arg(long)]
    pub controller: Option<String>,
    /// This host's name, unique among the controller's agents.
    #[arg(long)]
    pub host: Option<String>,
    /// Underlay address other hosts tunnel to, `IP[:PORT]` (port 4789 by default). It
    /// must be assigned to an interface of this host; that interface's MTU bounds what
    /// is tunnelled.
    #[arg(long)]
    pub underlay: Option<String>,
    /// Container-facing links to attach to: names or glob patterns (`tk*`), re-evaluated
    /// every second as links come and go.
    #[arg(long, num_args = 1..)]
    pub attach: Vec<String>,
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
}

/// Runs the agent.
pub fn run(args: AgentArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
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
