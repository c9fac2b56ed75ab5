//! The plan of an HA control plane (`[controller] store = "etcd"`): an etcd cluster and
//! controller replicas, each in a namespace of its own on a /28 at the top of the VPC.
//! Pure: nothing is built here.
//!
//! Addresses on the /28 (10.0.255.240/28 for 10.0.0.0/16): the VPC router's bridge
//! `cp` at .241, replicas from .242 (at most 7, to .248), etcd members from .250 (at
//! most 5, to .254). Every member listens for clients on 2379 and peers on 2380; every
//! replica on 7400, as the single controller does.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::error::LabError;
use crate::names;
use crate::plan::{CONTROLLER_PORT, quiet_env};
use crate::state::{ControlPlaneState, EtcdState, Launch, ReplicaState};
use crate::topology::Topology;

/// etcd's client port.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER_PORT: u16 = 2380;
/// The etcd server program (Debian's `etcd-server` package).
pub const ETCD_PROGRAM: &str = "etcd";
/// First host number of the replicas and of the etcd members on the /28.
const FIRST_REPLICA: u32 = 2;
const FIRST_ETCD: u32 = 10;

fn host(net: &Ipv4Net, n: u32) -> Result<Ipv4Addr, LabError> {
    u32::from(net.network())
        .checked_add(n)
        .map(Ipv4Addr::from)
        .filter(|a| net.contains(a) && *a != net.broadcast())
        .ok_or_else(|| {
            LabError::Addresses(format!(
                "the control plane network {net} has no address .{n}"
            ))
        })
}

/// The etcd cluster and replicas of `topo`, or `None` with the embedded store.
/// `dir` is the lab's state directory, `exe` the mcgate binary.
pub fn control_plane(
    topo: &Topology,
    dir: &Path,
    exe: &Path,
) -> Result<Option<ControlPlaneState>, LabError> {
    let Some(net) = topo.control_plane_net() else {
        return Ok(None);
    };
    let lab = &topo.name;
    let c = topo.controller;
    let mut etcd = Vec::new();
    for i in 0..c.etcd_members as usize {
        let ip = host(&net, FIRST_ETCD + i as u32)?;
        let name = names::etcd_node(i);
        etcd.push((name, ip));
    }
    let initial_cluster = etcd
        .iter()
        .map(|(n, ip)| format!("{n}=http://{ip}:{ETCD_PEER_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    let etcd: Vec<EtcdState> = etcd
        .into_iter()
        .map(|(name, ip)| {
            let data_dir = dir.join(&name);
            let client_url = format!("http://{ip}:{ETCD_CLIENT_PORT}");
            let peer_url = format!("http://{ip}:{ETCD_PEER_PORT}");
            // On a restart the data directory holds the membership and etcd ignores the
            // --initial-* flags, so the same command line serves both.
            let argv = [
                ETCD_PROGRAM,
                "--name",
                &name,
                "--data-dir",
                &data_dir.display().to_string(),
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--initial-cluster",
                &initial_cluster,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                lab,
                // No metrics listener of its own: nothing else may bind in the namespace.
                "--listen-metrics-urls",
                "",
            ]
            .map(str::to_string)
            .to_vec();
            EtcdState {
                launch: Launch {
                    netns: names::netns(lab, &name),
                    argv,
                    env: quiet_env(),
                    running: None,
                    private_run: false,
                },
                vpc_port: names::control_port(&name),
                name,
                ip,
                client_url,
                data_dir,
            }
        })
        .collect();
    let endpoints = etcd
        .iter()
        .map(|e| e.client_url.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut replicas = Vec::new();
    for i in 0..c.replicas as usize {
        let ip = host(&net, FIRST_REPLICA + i as u32)?;
        let name = names::replica_node(i);
        let ns_node = names::replica_netns_node(i);
        let socket = dir.join(format!("{name}.sock"));
        let data_dir = dir.join(&name);
        let argv = vec![
            exe.display().to_string(),
            "controller".into(),
            "--store".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            endpoints.clone(),
            "--replica".into(),
            name.clone(),
            "--listen".into(),
            format!("{ip}:{CONTROLLER_PORT}"),
            "--unix".into(),
            socket.display().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        replicas.push(ReplicaState {
            launch: Launch {
                netns: names::netns(lab, &ns_node),
                argv,
                env: quiet_env(),
                running: None,
                private_run: false,
            },
            vpc_port: names::control_port(&ns_node),
            url: format!("https://{ip}:{CONTROLLER_PORT}"),
            name,
            ip,
            socket,
            data_dir,
        });
    }
    Ok(Some(ControlPlaneState {
        net,
        router_ip: host(&net, 1)?,
        bridge: names::CONTROL_BRIDGE.to_string(),
        etcd,
        replicas,
    }))
}

/// Every replica's URL, comma-separated: the agents' `--controller`.
pub fn agent_controller_arg(cp: &ControlPlaneState) -> String {
    cp.replicas
        .iter()
        .map(|r| r.url.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The CA certificate the agents trust in an HA lab: the lab copies it here from the
/// first replica that answers (every replica holds the same CA, kept in etcd).
pub fn shared_ca(dir: &Path) -> std::path::PathBuf {
    dir.join("ca.pem")
}
