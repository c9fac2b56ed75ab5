//! The lab's state directory and its JSON state file.
//!
//! `/run/mcgate/labs/<lab>/` holds `state.json` (what was planned, built and started,
//! with PIDs and their start times), `controller.sock`, the controller's data directory,
//! the agents' admin sockets, each agent's state directory `agent-<host>/` and
//! `logs/<node>.log` + `logs/<node>.exit`. The file is written before anything is built
//! and after every step, so `lab down` can always undo whatever a crashed `lab up` left.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::topology::Dataplane;

/// The root of every lab's state directory.
pub fn labs_root() -> PathBuf {
    PathBuf::from(mcgate_client::LAB_STATE_ROOT)
}

/// A lab's state directory.
pub fn lab_dir(lab: &str) -> PathBuf {
    labs_root().join(lab)
}

/// A process the lab started, identified by PID and the kernel's start time (so a
/// reused PID is never mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The supervisor's PID (also its process group and session).
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
    pub start_time: u64,
}

/// How to (re)start a node's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// Namespace it runs in; empty: the root namespace (the UI forwarder, which must
    /// listen there).
    pub netns: String,
    /// Program and arguments (program resolved: `mcgate` is this binary).
    pub argv: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its process, once started.
    #[serde(default)]
    pub running: Option<Running>,
    /// Runs in a mount namespace of its own with an empty tmpfs over `/run`, so it
    /// cannot read the lab's state and credentials there (tasks; a real container sees
    /// none of its host's `/run` either).
    #[serde(default)]
    pub private_run: bool,
}

/// A subnet as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetState {
    /// Name.
    pub name: String,
    /// Network.
    pub cidr: Ipv4Net,
    /// Zone.
    pub zone: String,
    /// The VPC router's bridge for it.
    pub bridge: String,
    /// The gateway (.1), on that bridge.
    pub gateway: Ipv4Addr,
}

/// The controller as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Its address on the VPC.
    pub ip: Ipv4Addr,
    /// The VPC router's end of its link.
    pub vpc_ip: Ipv4Addr,
    /// `https://ip:7400`.
    pub url: String,
    /// The Unix socket, reachable from the root namespace.
    pub socket: PathBuf,
    /// The domain created in it.
    pub domain: String,
    /// The process.
    pub launch: Launch,
}

/// The control plane of a lab whose controllers share an etcd cluster: a /28 on a
/// bridge of the VPC router, the etcd members and the controller replicas, each in a
/// namespace of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneState {
    /// Its network.
    pub net: Ipv4Net,
    /// The VPC router's address on it (the members' and replicas' gateway).
    pub router_ip: Ipv4Addr,
    /// The VPC router's bridge for it.
    pub bridge: String,
    /// etcd members, in order.
    pub etcd: Vec<EtcdState>,
    /// Controller replicas, in order.
    pub replicas: Vec<ReplicaState>,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdState {
    /// Node name and etcd member name (`etcd-N`).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The VPC router's port towards it.
    pub vpc_port: String,
    /// `http://ip:2379`.
    pub client_url: String,
    /// Its data directory (kept by `lab restart`).
    pub data_dir: PathBuf,
    /// The process.
    pub launch: Launch,
}

/// One controller replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Node name and `--replica` (`controller-N`).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The VPC router's port towards it.
    pub vpc_port: String,
    /// `https://ip:7400`.
    pub url: String,
    /// Its Unix socket, reachable from the root namespace.
    pub socket: PathBuf,
    /// Its data directory (its own `admin.credentials` and `ca.pem`).
    pub data_dir: PathBuf,
    /// The process.
    pub launch: Launch,
}

/// The forwarder that makes the controller's API, and its web view at `/ui/`,
/// reachable from the root namespace on 127.0.0.1 (`forward`), and the viewer
/// credential to use there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiState {
    /// Its port on 127.0.0.1 (0 until the forwarder said which one it got).
    pub port: u16,
    /// The viewer credential file (`viewer.credentials`, 0600).
    pub credentials: PathBuf,
    /// The lab CA's certificate, which signed the controller's.
    pub ca: PathBuf,
    /// The forwarder's process, in the root namespace.
    pub launch: Launch,
}

/// The multicast domain the lab creates in its controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSetup {
    /// Its name.
    pub name: String,
    /// IGMP version of its querier.
    pub igmp: mcgate_domain::api::IgmpMode,
    /// Only registered sources may send.
    pub static_sources: bool,
    /// How its traffic crosses between hosts.
    #[serde(default)]
    pub tunnel: mcgate_domain::api::Tunnel,
    /// Names of the subnets associated with it.
    pub subnets: Vec<String>,
}

/// A host as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// Name.
    pub name: String,
    /// Subnet name.
    pub subnet: String,
    /// Zone.
    pub zone: String,
    /// Namespace.
    pub netns: String,
    /// Its address (on br0): where other hosts tunnel to.
    pub underlay_ip: Ipv4Addr,
    /// Prefix length of its subnet.
    pub prefix_len: u8,
    /// Default gateway.
    pub gateway: Ipv4Addr,
    /// The VPC router's end of its uplink.
    pub vpc_port: String,
    /// `force_igmp_version` set in it and its tasks.
    pub force_igmp_version: u8,
    /// Data plane of its agent.
    pub dataplane: Dataplane,
    /// Its agent, when the lab has a domain.
    pub agent: Option<Launch>,
}

/// A task as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// `<service>-<n>`.
    pub name: String,
    /// Service name.
    pub service: String,
    /// Host name.
    pub host: String,
    /// Zone.
    pub zone: String,
    /// Its own address in the host's subnet.
    pub ip: Ipv4Addr,
    /// Host-side link name (`tk...`).
    pub link: String,
    /// The process.
    pub launch: Launch,
}

/// An external multicast network as built (`[[externals]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalState {
    /// Name (the node name of its sender).
    pub name: String,
    /// Its namespace: a bridge `br0` with the network's first address, the IGMP querier.
    pub netns: String,
    /// Its network.
    pub cidr: Ipv4Net,
    /// The bridge's address (the querier's, and the sender's source).
    pub address: Ipv4Addr,
    /// The querier's IGMP version.
    pub igmp_version: u8,
    /// The gateway host's name.
    pub host: String,
    /// The gateway host's link to it (its agent's `--upstream`).
    pub host_link: String,
    /// The gateway host's address on it.
    pub host_address: Ipv4Addr,
    /// The group ranges the gateway brings in.
    pub groups: Vec<Ipv4Net>,
    /// The sender, if any.
    pub sender: Option<Launch>,
}

/// Everything `lab status`, `lab down` and friends need, from any later invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name.
    pub name: String,
    /// The topology file it came from.
    pub file: String,
    /// "building" until `lab up` finished, then "up".
    pub phase: String,
    /// The VPC's network.
    pub vpc: Ipv4Net,
    /// The VPC router's namespace.
    pub vpc_netns: String,
    /// Subnets.
    pub subnets: Vec<SubnetState>,
    /// The controller, when the lab has a domain.
    pub controller: Option<ControllerState>,
    /// The controller's namespace, when the lab has a domain.
    pub controller_netns: Option<String>,
    /// With the etcd store: the etcd cluster and the controller replicas (then
    /// `controller` is `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneState>,
    /// The binary that supervises the lab's processes (`BIN lab _run ...`); `None`:
    /// this one. Set by Rust callers that are not `mcgate` (the lab crate's tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<PathBuf>,
    /// The forwarder to the controller from 127.0.0.1, when the lab has a controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiState>,
    /// The domain, when the lab has one.
    pub domain_setup: Option<DomainSetup>,
    /// Hosts.
    pub hosts: Vec<HostState>,
    /// Tasks.
    pub tasks: Vec<TaskState>,
    /// Every namespace of the lab, in creation order.
    pub namespaces: Vec<String>,
    /// External multicast networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub externals: Vec<ExternalState>,
    /// IPv6 is on in the hosts' and tasks' namespaces (the topology's `ipv6`).
    #[serde(default)]
    pub ipv6: bool,
}

impl LabState {
    /// Its state directory.
    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.name)
    }

    /// Whether the lab runs controllers (one, or replicas on etcd).
    pub fn has_controller(&self) -> bool {
        self.controller.is_some()
            || self
                .control_plane
                .as_ref()
                .is_some_and(|cp| !cp.replicas.is_empty())
    }

    /// Every controller's Unix socket, in order (the replicas', or the one controller's).
    pub fn controller_sockets(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.controller.iter().map(|c| c.socket.clone()).collect();
        if let Some(cp) = &self.control_plane {
            v.extend(cp.replicas.iter().map(|r| r.socket.clone()));
        }
        v
    }

    /// The binary that runs `lab _run` for this lab's processes.
    pub fn supervisor(&self) -> Result<PathBuf, LabError> {
        match &self.supervisor {
            Some(p) => Ok(p.clone()),
            None => crate::process::self_exe(),
        }
    }

    /// Writes `state.json` atomically (write then rename).
    pub fn save(&self) -> Result<(), LabError> {
        let dir = self.dir();
        let tmp = dir.join("state.json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| LabError::State {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, body).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, dir.join("state.json"))
            .map_err(|e| LabError::io(&dir.join("state.json"), e))
    }

    /// Reads a lab's `state.json`.
    pub fn load(lab: &str) -> Result<Self, LabError> {
        let path = lab_dir(lab).join("state.json");
        let body = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::NoSuchLab(lab.to_string())
            } else {
                LabError::io(&path, e)
            }
        })?;
        serde_json::from_slice(&body).map_err(|e| LabError::State {
            path,
            message: e.to_string(),
        })
    }

    /// The launch spec of a node: `controller`, a replica or etcd member, a host name
    /// (its agent) or a task name.
    pub fn launch_mut(&mut self, node: &str) -> Option<&mut Launch> {
        if node == "controller" {
            return self.controller.as_mut().map(|c| &mut c.launch);
        }
        if node == crate::ui::UI_NODE {
            return self.ui.as_mut().map(|u| &mut u.launch);
        }
        if let Some(cp) = self.control_plane.as_mut() {
            if let Some(e) = cp.etcd.iter_mut().find(|e| e.name == node) {
                return Some(&mut e.launch);
            }
            if let Some(r) = cp.replicas.iter_mut().find(|r| r.name == node) {
                return Some(&mut r.launch);
            }
        }
        if let Some(h) = self.hosts.iter_mut().find(|h| h.name == node) {
            return h.agent.as_mut();
        }
        if let Some(e) = self.externals.iter_mut().find(|e| e.name == node) {
            return e.sender.as_mut();
        }
        self.tasks
            .iter_mut()
            .find(|t| t.name == node)
            .map(|t| &mut t.launch)
    }

    /// Names of every node with a process, for messages.
    pub fn node_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.controller.is_some() {
            v.push("controller".to_string());
        }
        if let Some(cp) = &self.control_plane {
            v.extend(cp.etcd.iter().map(|e| e.name.clone()));
            v.extend(cp.replicas.iter().map(|r| r.name.clone()));
        }
        if self.ui.is_some() {
            v.push(crate::ui::UI_NODE.to_string());
        }
        v.extend(
            self.hosts
                .iter()
                .filter(|h| h.agent.is_some())
                .map(|h| h.name.clone()),
        );
        v.extend(self.tasks.iter().map(|t| t.name.clone()));
        v.extend(
            self.externals
                .iter()
                .filter(|e| e.sender.is_some())
                .map(|e| e.name.clone()),
        );
        v
    }
}

/// Labs with a state directory, sorted.
pub fn list_labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(labs_root())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Picks the lab a command means: the one named, else the only one up.
pub fn pick_lab(name: Option<&str>) -> Result<String, LabError> {
    if let Some(n) = name {
        return Ok(n.to_string());
    }
    let labs = list_labs();
    match labs.as_slice() {
        [] => Err(LabError::NoLab),
        [one] => Ok(one.clone()),
        _ => Err(LabError::WhichLab(labs.join(", "))),
    }
}

/// Where a node's timestamped output goes.
pub fn log_path(dir: &Path, node: &str) -> PathBuf {
    dir.join("logs").join(format!("{node}.log"))
}

/// Where a node's exit status is recorded when it ends.
pub fn exit_path(dir: &Path, node: &str) -> PathBuf {
    dir.join("logs").join(format!("{node}.exit"))
}

/// What the supervisor records when a node's process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code; 128 + N when killed by signal N (as a shell reports it).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
}

/// Reads a node's exit record, if it ended and the supervisor saw it end.
pub fn read_exit(dir: &Path, node: &str) -> Option<ExitRecord> {
    let body = std::fs::read(exit_path(dir, node)).ok()?;
    serde_json::from_slice(&body).ok()
}

/// An exclusive lock on a lab's state, held while it is changed.
#[derive(Debug)]
pub struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

impl StateLock {
    /// Takes the lock (waits for another `lab` command to finish).
    pub fn take(dir: &Path) -> Result<Self, LabError> {
        let path = dir.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LabError::io(&path, e))?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| LabError::io(&path, std::io::Error::from(e)))?;
        Ok(Self { _lock: lock })
    }
}
