//! The topology file: parsing and validation.
//!
//! A topology is untrusted input: every mistake becomes a [`TopologyError`] naming the
//! file, the line and what to write instead, never a panic. `raw` holds the file as serde
//! reads it (each value's own type checks it: enums, ranges, networks); `sections`
//! checks what entries refer to and must not share.

mod raw;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use raw::RawTopology;
use sections::Ctx;

/// The reference deployment (`examples/ecs-multicast.toml`), built in for `lab up` with
/// no file and for `mcgate demo`.
pub const REFERENCE_TOPOLOGY: &str = include_str!("../../../../examples/ecs-multicast.toml");

/// The name used for the built-in reference topology in messages.
pub const REFERENCE_FILE_NAME: &str = "<built-in ecs-multicast.toml>";

/// A topology file error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct TopologyError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// How a host's agent forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataplane {
    /// The agent picks (kernel when it can).
    Auto,
    /// Linux VXLAN and bridge multicast tables.
    Kernel,
    /// The userspace relay.
    Userspace,
}

impl Dataplane {
    /// The word used in files and on the agent's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
        }
    }
}

/// Where the controller keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// One controller, a file in its data directory.
    Embedded,
    /// Replicas sharing an etcd cluster the lab runs.
    Etcd,
}

impl Store {
    /// The word used in files and on the controller's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Etcd => "etcd",
        }
    }
}

/// The `[controller]` section: how many replicas and where they keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPlane {
    /// Controller replicas (1 unless `store` is etcd).
    pub replicas: u32,
    /// Embedded or etcd.
    pub store: Store,
    /// etcd members (0 with the embedded store).
    pub etcd_members: u32,
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self {
            replicas: 1,
            store: Store::Embedded,
            etcd_members: 0,
        }
    }
}

/// A subnet of the VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Its name.
    pub name: String,
    /// Its network.
    pub cidr: Ipv4Net,
    /// Its availability zone.
    pub zone: String,
}

/// A container host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name.
    pub name: String,
    /// Index into [`Topology::subnets`].
    pub subnet: usize,
    /// How many tasks it can hold.
    pub max_tasks: u32,
    /// `net.ipv4.conf.{all,default}.force_igmp_version` in the host and its tasks.
    pub force_igmp_version: u8,
    /// Which data plane its agent runs.
    pub dataplane: Dataplane,
}

/// The multicast domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Its name.
    pub name: String,
    /// "v2", "v3" or "off".
    pub igmp: mcgate_domain::api::IgmpMode,
    /// Only registered sources may send.
    pub static_sources: bool,
    /// "wireguard" (the default) or "vxlan".
    pub tunnel: mcgate_domain::api::Tunnel,
    /// Indexes into [`Topology::subnets`].
    pub subnets: Vec<usize>,
}

/// A service: `count` identical tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name; tasks are `<name>-<n>`.
    pub name: String,
    /// How many tasks.
    pub count: u32,
    /// The command each task runs; `mcgate` as the program means this binary.
    pub command: Vec<String>,
    /// Pinned to this host (index into [`Topology::hosts`]).
    pub host: Option<usize>,
    /// Pinned to this zone.
    pub zone: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// With `runtime = "podman"`: the image its tasks run as containers (else they are
    /// processes in their namespaces).
    pub image: Option<String>,
    /// The Containerfile `lab up` builds that image from, relative to the topology file.
    pub build: Option<String>,
    /// Line of the service in the file, for placement errors.
    pub line: usize,
}

/// An external multicast network (`[[externals]]`): a namespace of its own with its own
/// subnet, reachable only from one gateway host, with an IGMP querier (its bridge's) and
/// an optional sender; the gateway host's agent runs `--upstream` towards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// Its name: namespace `mcgl-<lab>-<name>`, and the node name of its sender.
    pub name: String,
    /// Its network, outside the VPC: its bridge takes the first address, the gateway
    /// host the second.
    pub cidr: Ipv4Net,
    /// The gateway host (index into [`Topology::hosts`]).
    pub host: usize,
    /// The group ranges the gateway brings in (`--upstream-groups`).
    pub groups: Vec<Ipv4Net>,
    /// The version of the bridge's IGMP querier (2 or 3).
    pub igmp_version: u8,
    /// The sender's command, run in the external namespace; `mcgate` means this binary.
    pub sender: Option<Vec<String>>,
    /// The sender's extra environment.
    pub env: BTreeMap<String, String>,
}

/// A validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The file it came from, as named by the user.
    pub file: String,
    /// The lab's name.
    pub name: String,
    /// The VPC's network.
    pub vpc: Ipv4Net,
    /// Subnets in file order.
    pub subnets: Vec<Subnet>,
    /// Hosts in file order.
    pub hosts: Vec<Host>,
    /// The domain, if any: without one the lab runs no controller and no agents.
    pub domain: Option<Domain>,
    /// The `[controller]` section (defaults without one).
    pub controller: ControlPlane,
    /// Services in file order.
    pub services: Vec<Service>,
    /// External multicast networks in file order.
    pub externals: Vec<External>,
    /// IPv6 on in the hosts' and tasks' namespaces (`ipv6 = true`): every link gets a
    /// link-local address, tasks speak MLD and can send and join IPv6 groups. Off by
    /// default, so the links the agents watch carry no MLD or router solicitations.
    pub ipv6: bool,
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        " (check the spelling; docs/lab.md lists every key)"
    } else if message.contains("missing field") {
        " (add it; docs/lab.md lists every key and its default)"
    } else {
        ""
    }
}

impl Topology {
    /// Parses and validates a topology. `file` is how the user named it (for messages).
    pub fn parse(file: &str, src: &str) -> Result<Self, TopologyError> {
        let ctx = Ctx { file, src };
        let raw: RawTopology = toml::from_str(src).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim_end().to_string();
            let hint = hint_for(&msg);
            ctx.err(span, format!("{msg}{hint}"))
        })?;
        let name = sections::name(&ctx, &raw.name, "the lab name")?;
        let vpc = sections::vpc(&ctx, &raw.vpc.cidr)?;
        let subnets = sections::subnets(&ctx, vpc, &raw.subnets)?;
        let hosts = sections::hosts(&ctx, &subnets, &raw.hosts)?;
        let domain = match &raw.domain {
            Some(d) => Some(sections::domain(&ctx, &subnets, d)?),
            None => None,
        };
        let services = sections::services(&ctx, &subnets, &hosts, &raw.services)?;
        let controller = sections::controller(&ctx, raw.domain.is_some(), raw.controller.as_ref())?;
        let externals = sections::externals(
            &ctx,
            vpc,
            &hosts,
            &services,
            raw.domain.is_some(),
            &raw.externals,
        )?;
        let topo = Topology {
            file: file.to_string(),
            name,
            vpc,
            subnets,
            hosts,
            domain,
            controller,
            services,
            externals,
            ipv6: raw.ipv6,
        };
        if topo.controller_net().is_none() {
            return Err(ctx.err(
                raw.vpc.cidr.span(),
                format!("the VPC {vpc} has no free /30 left for the controller's link; leave some of it outside the subnets"),
            ));
        }
        if let Some(c) = &raw.controller
            && topo.controller.store == Store::Etcd
            && topo.control_plane_net().is_none()
        {
            return Err(ctx.err(
                c.span(),
                format!("the VPC {vpc} has no free /28 left for the controller replicas and etcd members; leave some of it outside the subnets"),
            ));
        }
        Ok(topo)
    }

    /// The /30 the controller's link uses: the highest one in the VPC no subnet overlaps.
    pub fn controller_net(&self) -> Option<Ipv4Net> {
        self.free_net(30)
    }

    /// With the etcd store, the control plane's network: the highest /28 in the VPC no
    /// subnet overlaps, a bridge in the VPC router holding its first address, the
    /// replicas from the second, the etcd members from the tenth (see `plan`).
    /// `None` with the embedded store, whose controller keeps its /30.
    pub fn control_plane_net(&self) -> Option<Ipv4Net> {
        match self.controller.store {
            Store::Embedded => None,
            Store::Etcd => self.free_net(28),
        }
    }

    /// The highest network of prefix length `len` in the VPC that no subnet overlaps.
    fn free_net(&self, len: u8) -> Option<Ipv4Net> {
        let size = 1u32.checked_shl(32 - u32::from(len))?;
        let top = u32::from(self.vpc.broadcast());
        let bottom = u32::from(self.vpc.network());
        let mut start = top.checked_sub(size - 1)?;
        loop {
            let net = Ipv4Net::new(Ipv4Addr::from(start), len).ok()?;
            if !self
                .subnets
                .iter()
                .any(|s| s.cidr.contains(&net) || net.contains(&s.cidr))
            {
                return Some(net);
            }
            start = start.checked_sub(size)?;
            if start < bottom {
                return None;
            }
        }
    }

    /// Zone of a host.
    pub fn host_zone(&self, host: usize) -> &str {
        self.hosts
            .get(host)
            .and_then(|h| self.subnets.get(h.subnet))
            .map(|s| s.zone.as_str())
            .unwrap_or("")
    }
}
