//! mcgate-lab: whole deployments on one machine, and `mcgate demo`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// `mcgate lab ...`
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build and start a lab from a topology file.
    Up,
    /// Stop and remove a lab.
    Down,
}

/// `mcgate demo`
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds to run the deployment.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Leave the lab up afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Runs a lab command.
pub fn run(cmd: LabCommand) -> ExitCode {
    eprintln!("error: mcgate lab {cmd:?} is not built yet");
    ExitCode::FAILURE
}

/// Runs the demo.
pub fn run_demo(args: DemoArgs) -> ExitCode {
    eprintln!("error: mcgate demo {args:?} is not built yet");
    ExitCode::FAILURE
}
