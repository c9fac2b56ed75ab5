//! mcgate-agent: the per-host agent daemon.

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// `mcgate agent`: run the host agent.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Controller URL (`http://HOST:PORT` or `unix:PATH`).
    #[arg(long)]
    pub controller: Option<String>,
    /// This host's name.
    #[arg(long)]
    pub host: Option<String>,
    /// Underlay address other hosts tunnel to, `IP[:PORT]` (port 4789 by default).
    #[arg(long)]
    pub underlay: Option<String>,
    /// Container-facing links to attach to.
    #[arg(long, num_args = 1..)]
    pub attach: Vec<String>,
}

/// Runs the agent.
pub fn run(args: AgentArgs) -> ExitCode {
    eprintln!("error: mcgate agent {args:?} is not built yet");
    ExitCode::FAILURE
}
