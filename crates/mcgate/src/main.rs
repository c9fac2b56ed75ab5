//! `mcgate`: the one binary. Each subcommand is a thin call into the crate that owns it.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A multicast gateway for containers: IGMP-driven multicast across hosts whose network
/// carries none, over VXLAN.
#[derive(Debug, Parser)]
#[command(name = "mcgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the reference deployment (two zones, two hosts, one sender, two receivers) on
    /// this machine and show that multicast crosses hosts.
    Demo(mcgate_lab::DemoArgs),
    /// Build, inspect and remove whole deployments on this machine.
    #[command(subcommand)]
    Lab(mcgate_lab::LabCommand),
    /// Multicast sender and receiver, measured (iperf 2 compatible).
    #[command(subcommand)]
    Perf(mcgate_perf::PerfCommand),
    /// Run the domain controller.
    Controller(Box<mcgate_controller::ControllerArgs>),
    /// Run the host agent.
    Agent(Box<mcgate_agent::AgentArgs>),
    #[command(flatten)]
    Admin(mcgate_controller::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => mcgate_lab::run_demo(args),
        Command::Lab(cmd) => mcgate_lab::run(cmd),
        Command::Perf(cmd) => mcgate_perf::run(cmd),
        Command::Controller(args) => mcgate_controller::run_daemon(*args),
        Command::Agent(args) => mcgate_agent::run(*args),
        Command::Admin(cmd) => mcgate_controller::run_admin(cmd),
    }
}
