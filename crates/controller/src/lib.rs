//! mcgate-controller: the domain controller daemon and the admin CLI commands.

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// `mcgate controller`: run the controller daemon.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// TCP address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Also serve the API on this Unix socket.
    #[arg(long)]
    pub unix: Option<std::path::PathBuf>,
    /// Directory of the persistent store.
    #[arg(long, default_value = "/var/lib/mcgate")]
    pub data_dir: std::path::PathBuf,
}

/// The admin commands, each a top-level `mcgate` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create, delete, list and associate multicast domains.
    Domain,
    /// Register and deregister static members.
    Members,
    /// Register and deregister static sources.
    Sources,
    /// List the agents the controller knows.
    Agents,
    /// Search the group table.
    Groups,
}

/// Runs the controller daemon.
pub fn run_daemon(args: ControllerArgs) -> ExitCode {
    eprintln!("error: mcgate controller {args:?} is not built yet");
    ExitCode::FAILURE
}

/// Runs an admin command.
pub fn run_admin(cmd: AdminCommand) -> ExitCode {
    eprintln!("error: {cmd:?} is not built yet");
    ExitCode::FAILURE
}
