//! Everything a `lab` command can fail with, each a sentence saying what to do next.

use std::path::{Path, PathBuf};

use crate::placement::CapacityError;
use crate::topology::TopologyError;

/// A lab failure.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error(
        "{0} needs root: it creates network namespaces, veth links and bridges and starts processes inside them (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo"
    )]
    NotRoot(&'static str),
    /// The topology file could not be read.
    #[error("cannot read the topology file {path}: {source}")]
    ReadTopology {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The topology is wrong.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A service does not fit.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// A subnet has no room for the addresses its hosts and tasks need.
    #[error("{0}")]
    Addresses(String),
    /// The demo cannot run as asked.
    #[error("{0}")]
    Demo(String),
    /// A lab of that name is up.
    #[error(
        "a lab named {0} is already up (state in {1}); run `mcgate lab down {0}` first, or give the topology another name"
    )]
    AlreadyUp(String, PathBuf),
    /// A namespace the lab needs is taken.
    #[error(
        "network namespace {0} already exists, left over from an earlier lab {1}; run `mcgate lab down {1}` to remove it"
    )]
    NamespaceTaken(String, String),
    /// No lab is up.
    #[error("no lab is up; start one with `mcgate lab up [FILE]`")]
    NoLab,
    /// No lab of that name.
    #[error("no lab named {0} is up (see `mcgate lab status` for the labs that are)")]
    NoSuchLab(String),
    /// More than one lab is up.
    #[error("several labs are up ({0}); say which with --name")]
    WhichLab(String),
    /// No such node.
    #[error("lab {lab} has no node named {node}; its nodes are: {known}")]
    NoSuchNode {
        /// The lab.
        lab: String,
        /// What was asked.
        node: String,
        /// What exists.
        known: String,
    },
    /// The node has no process to act on.
    #[error("{node} of lab {lab} is not running; start it with `mcgate lab restart {node}`")]
    NotRunning {
        /// Which node.
        node: String,
        /// The lab.
        lab: String,
    },
    /// A program the lab needs is missing.
    #[error("{program} is not installed (looked in PATH); {install}")]
    Missing {
        /// The program.
        program: String,
        /// What to do.
        install: String,
    },
    /// The topology asks for replicas on etcd but this binary's controller cannot.
    #[error(
        "the topology asks for store = \"etcd\" but the controller of {0} has no --store etcd; build mcgate with the HA controller, or use store = \"embedded\" and replicas = 1"
    )]
    NoEtcdController(PathBuf),
    /// A command that builds the network failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file is unreadable.
    #[error(
        "the lab state file {path} cannot be read ({message}); run `mcgate lab down NAME` to clean up"
    )]
    State {
        /// The path.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A process of the lab failed to start or stay up.
    #[error("{node} did not come up: {why}{log}")]
    NodeFailed {
        /// Which node.
        node: String,
        /// What happened.
        why: String,
        /// The end of its log, indented, if any.
        log: String,
    },
    /// Ctrl-C or a stop signal arrived.
    #[error("interrupted")]
    Interrupted,
    /// A failure injected by a test (`MCGATE_LAB_FAIL_AT`).
    #[error("failure injected after step {0} (MCGATE_LAB_FAIL_AT)")]
    Injected(String),
    /// The controller refused a setup call.
    #[error("the lab's controller refused {what}: {source}")]
    Controller {
        /// The call.
        what: String,
        /// The cause.
        source: mcgate_client::ClientError,
    },
}

impl LabError {
    /// An I/O error on a path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
