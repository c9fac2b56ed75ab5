//! mcgate-lab: whole multicast deployments on one Linux machine, and `mcgate demo`.
//!
//! `mcgate lab up FILE` builds from a topology file what the reference system builds on a
//! cloud: a VPC router, one network namespace per container host and per task (each
//! task with its own address in its host's subnet, like awsvpc), the controller and one
//! agent per host, then starts the services' tasks as processes in their namespaces.
//! Unicast is routed between any two tasks; multicast crosses hosts only through mcgate.
//! With `[controller] store = "etcd"` the control plane is highly available: a real etcd
//! cluster and several controller replicas, each in a namespace of its own, every agent
//! knowing every replica (`plan_ha`, `ops_ha`, `etcd`). See `docs/lab.md`.
//!
//! It must never touch anything it did not make: every namespace it creates is
//! `mcgl-<lab>-<node>`, no link is ever created in the root network namespace, and only
//! processes whose PID *and* start time it recorded are signalled.

#![forbid(unsafe_code)]

mod commands;
mod container;
mod demo;
mod error;
mod etcd;
mod forward;
pub mod fuzzing;
mod names;
mod net;
mod ops;
mod ops_ha;
mod placement;
mod plan;
mod plan_ha;
mod process;
mod reports;
mod state;
mod status;
mod status_ha;
mod table;
mod teardown;
mod timefmt;
mod topology;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

pub use error::LabError;
pub use ops::UpOptions;
pub use reports::{Report, parse_reports, receiver_reports};
pub use status::{
    ControllerStatus, EtcdMemberStatus, ExternalStatus, HostStatus, LabStatus, ReplicaStatus,
    TaskStatus, UiStatus,
};
pub use topology::{REFERENCE_TOPOLOGY, Topology, TopologyError};

/// `mcgate lab ...`
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build and start a lab from a topology file (default: the built-in reference
    /// deployment, examples/ecs-multicast.toml).
    Up(UpArgs),
    /// Show a lab's controller, hosts and tasks, and whether each runs.
    Status(StatusArgs),
    /// Print a task's output with timestamps (or the controller's, or a host's agent's).
    Logs(LogsArgs),
    /// Run a command inside a task's or host's namespace, passing its output and exit
    /// code through, e.g. `mcgate lab exec host-a -- cat /proc/net/igmp`.
    Exec(ExecArgs),
    /// Restart the controller, a controller replica, an etcd member, a host's agent (by
    /// host name) or a task.
    Restart(RestartArgs),
    /// Kill a node's process with SIGKILL, as a crash would: a controller replica, an
    /// etcd member, `controller`, a host's agent (by host name) or a task.
    Kill(KillArgs),
    /// Stop every process of a lab and remove every namespace, link and file it made.
    Down(DownArgs),
    /// Internal: supervise one node's process (timestamped log, recorded exit code).
    #[command(name = "_run", hide = true)]
    Supervise(SuperviseArgs),
    /// Internal: forward 127.0.0.1:PORT in the root namespace to the lab's controller.
    #[command(name = "_forward", hide = true)]
    Forward(ForwardArgs),
}

/// `mcgate lab up`
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Topology file (TOML). Without it, the built-in reference deployment.
    pub file: Option<PathBuf>,
    /// Name the lab this instead of the topology's `name` (to run one file twice).
    #[arg(long)]
    pub name: Option<String>,
    /// Port on 127.0.0.1 where the controller's API and web view are forwarded from
    /// the root namespace (default: any free port; `lab status` shows it).
    #[arg(long, value_name = "PORT")]
    pub ui_port: Option<u16>,
}

/// `mcgate lab _forward`
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// Port to listen on, on 127.0.0.1 only (0: any free port).
    #[arg(long)]
    pub port: u16,
    /// Where to write the address listened on, once listening.
    #[arg(long)]
    pub ready: Option<PathBuf>,
    /// Where to forward: `NS=IP:PORT` (connecting from inside namespace NS) or
    /// `IP:PORT`; repeated, tried in order until one accepts.
    #[arg(long, required = true)]
    pub to: Vec<String>,
}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Which lab, when more than one is up.
    #[arg(long)]
    pub name: Option<String>,
    /// Print one JSON object (keys: name, controller, hosts, tasks).
    #[arg(long)]
    pub json: bool,
}

/// `mcgate lab logs`
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A task, `controller`, or a host name (its agent).
    pub node: String,
    /// Keep printing new lines until the process ends (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Which lab, when more than one is up.
    #[arg(long)]
    pub name: Option<String>,
}

/// `mcgate lab exec`
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A task, a host, `controller` or `vpc`.
    pub node: String,
    /// Which lab, when more than one is up.
    #[arg(long)]
    pub name: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `mcgate lab restart`
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// `controller`, `controller-N`, `etcd-N` (its data directory is kept), a host
    /// name (its agent) or a task.
    pub node: String,
    /// Which lab, when more than one is up.
    #[arg(long)]
    pub name: Option<String>,
}

/// `mcgate lab kill`
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// `controller-N`, `etcd-N`, `controller`, a host name (its agent) or a task.
    pub node: String,
    /// Which lab, when more than one is up.
    #[arg(long)]
    pub name: Option<String>,
}

/// `mcgate lab down`
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The lab to remove (needed when more than one is up).
    #[arg(conflicts_with = "name")]
    pub lab: Option<String>,
    /// Same as the positional NAME.
    #[arg(long)]
    pub name: Option<String>,
    /// Also remove the container images the lab built (services with `build`).
    #[arg(long)]
    pub images: bool,
}

/// `mcgate lab _run`
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Log file (appended to).
    #[arg(long)]
    pub log: PathBuf,
    /// Where to record the exit code.
    #[arg(long)]
    pub exit: PathBuf,
    /// Run the command in a mount namespace of its own with an empty `/run`.
    #[arg(long)]
    pub private_run: bool,
    /// The command.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `mcgate demo`
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds to run the deployment before reporting.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Leave the lab up afterwards (remove it later with `mcgate lab down`).
    #[arg(long)]
    pub keep: bool,
    /// Name the demo's lab this instead of "ecs-multicast".
    #[arg(long)]
    pub name: Option<String>,
    /// Run the deployment over IPv6: the same tasks join and send the group
    /// ff3e::8000:5 (MLD instead of IGMP, from their link-local addresses).
    #[arg(long)]
    pub ipv6: bool,
}

/// Runs a lab command.
pub fn run(cmd: LabCommand) -> ExitCode {
    commands::run(cmd)
}

/// Builds and starts a lab from Rust (what `mcgate lab up` does), as `opts` say;
/// returns its name. On failure everything built is removed.
pub fn up(topo: &Topology, opts: &UpOptions) -> Result<String, LabError> {
    ops::up_with(topo, opts).map(|st| st.name)
}

/// What `mcgate lab status --json` prints, from Rust.
pub fn status(lab: &str) -> Result<LabStatus, LabError> {
    Ok(commands::status_of(&state::LabState::load(lab)?))
}

/// `mcgate lab kill NODE`, from Rust.
pub fn kill(lab: &str, node: &str) -> Result<(), LabError> {
    ops::kill_node(lab, node).map(drop)
}

/// `mcgate lab restart NODE`, from Rust.
pub fn restart(lab: &str, node: &str) -> Result<(), LabError> {
    ops::restart(lab, node).map(drop)
}

/// `mcgate lab down NAME`, from Rust.
pub fn down(lab: &str) -> Result<(), LabError> {
    ops::down(lab).map(drop)
}

/// Runs the demo.
pub fn run_demo(args: DemoArgs) -> ExitCode {
    demo::run(args)
}
