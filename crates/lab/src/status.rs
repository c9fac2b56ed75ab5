//! `mcgate lab status --json`, typed: what scripts and tests read.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabStatus {
    /// The lab's name.
    pub name: String,
    /// The controller; `null` for a lab without a `[domain]`, and for an HA lab (see
    /// `controllers`).
    pub controller: Option<ControllerStatus>,
    /// Every controller replica of an HA lab (`[controller] store = "etcd"`), in order;
    /// empty otherwise.
    #[serde(default)]
    pub controllers: Vec<ReplicaStatus>,
    /// Every etcd member of an HA lab, in order; empty otherwise.
    #[serde(default)]
    pub etcd: Vec<EtcdMemberStatus>,
    /// The forwarder to the controller's API and web view from 127.0.0.1; `null` for a
    /// lab without controllers.
    #[serde(default)]
    pub ui: Option<UiStatus>,
    /// Hosts, in file order.
    pub hosts: Vec<HostStatus>,
    /// Tasks, in placement order.
    pub tasks: Vec<TaskStatus>,
    /// External multicast networks (`[[externals]]`), in file order; empty without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub externals: Vec<ExternalStatus>,
}

/// An external multicast network and its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalStatus {
    /// Its name (the node name of its sender).
    pub name: String,
    /// Its network.
    pub cidr: String,
    /// Its bridge's address: the IGMP querier's and the sender's.
    pub address: Ipv4Addr,
    /// The gateway host.
    pub host: String,
    /// The gateway host's link to it (its agent's `--upstream`).
    pub host_link: String,
    /// The group ranges the gateway brings in.
    pub groups: Vec<String>,
    /// The sender's supervisor's PID, if it has a sender that started.
    pub pid: Option<i32>,
    /// The sender's state: "running", "exited", "not started", or "no sender".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerStatus {
    /// Its supervisor's PID.
    pub pid: Option<i32>,
    /// Its URL on the VPC.
    pub url: String,
    /// Its Unix socket, reachable from the root namespace.
    pub socket: PathBuf,
    /// "running", "exited" or "not started".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The forwarder to the controller from the root namespace, and how to use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiStatus {
    /// The controller's web view, `https://127.0.0.1:PORT/ui/` (the API is under
    /// `/v1` at the same address).
    pub url: String,
    /// The viewer credential file (its `token` is the bearer secret).
    pub credentials: PathBuf,
    /// The lab CA's certificate, which signed the controller's.
    pub ca: PathBuf,
    /// The forwarder's supervisor PID.
    pub pid: Option<i32>,
    /// "running", "exited" or "not started".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// A controller replica, with what its `GET /v1/healthz` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Node name and replica name (`controller-N`).
    pub name: String,
    /// Its URL on the VPC.
    pub url: String,
    /// Its Unix socket, reachable from the root namespace.
    pub socket: PathBuf,
    /// Its supervisor's PID.
    pub pid: Option<i32>,
    /// The process: "running", "exited" or "not started".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// "up" (answers its healthz within a second), "down" or "unknown" (its socket
    /// is root's: run as root).
    pub health: String,
    /// "leader", "follower" or "standalone", as it says; `null` while it does not answer.
    pub role: Option<String>,
    /// The replica it names as leader.
    pub leader: Option<String>,
    /// Whether it takes writes.
    pub writable: Option<bool>,
}

/// An etcd member, with what its status endpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMemberStatus {
    /// Node name and member name (`etcd-N`).
    pub name: String,
    /// Its client URL.
    pub client_url: String,
    /// Its supervisor's PID.
    pub pid: Option<i32>,
    /// The process: "running", "exited" or "not started".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// "up" (answers and knows a leader), "no-leader" (answers, no quorum), "down"
    /// (does not answer within a second) or "unknown" (not asked: needs root).
    pub health: String,
    /// Its member ID in hex, once it answered.
    pub id: Option<String>,
    /// Whether it is the raft leader.
    pub leader: bool,
}

/// A host and its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Host name.
    pub name: String,
    /// Subnet name.
    pub subnet: String,
    /// Zone.
    pub zone: String,
    /// The host's address (where other hosts tunnel to).
    pub underlay_ip: Ipv4Addr,
    /// The agent's supervisor PID (none without a `[domain]`).
    pub agent_pid: Option<i32>,
    /// The agent's state: "running", "exited" or "not started".
    pub state: String,
    /// When exited: the agent's exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The data plane the agent chose ("kernel" or "userspace"), as its admin endpoint
    /// reports it; `null` while the agent does not answer.
    pub dataplane: Option<String>,
    /// The data plane asked for in the topology ("auto", "kernel" or "userspace").
    pub dataplane_requested: String,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// `<service>-<n>`.
    pub name: String,
    /// Service.
    pub service: String,
    /// Host.
    pub host: String,
    /// Zone.
    pub zone: String,
    /// Its own address.
    pub ip: Ipv4Addr,
    /// Its supervisor's PID.
    pub pid: Option<i32>,
    /// "running", "exited" or "not started".
    pub state: String,
    /// When exited: its exit code, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl LabStatus {
    /// Reads the output of `mcgate lab status --json`.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// An etcd member by name.
    pub fn etcd_member(&self, name: &str) -> Option<&EtcdMemberStatus> {
        self.etcd.iter().find(|e| e.name == name)
    }

    /// A task by name.
    pub fn task(&self, name: &str) -> Option<&TaskStatus> {
        self.tasks.iter().find(|t| t.name == name)
    }
}
