//! The topology file: parsing and validation.
//!
//! A topology is untrusted input: every mistake becomes a [`TopologyError`] naming the
//! file, the line and what to write instead, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use crate::names::{RESERVED_NODE_NAMES, check_name};

/// The reference deployment (`examples/ecs-multicast.toml`), built in for `lab up` with
/// no file and for `mcgate demo`.
pub const REFERENCE_TOPOLOGY: &str = include_str!("../../../examples/ecs-multicast.toml");

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
    /// Services in file order.
    pub services: Vec<Service>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    name: Spanned<String>,
    vpc: Spanned<RawVpc>,
    #[serde(default)]
    subnets: Vec<Spanned<RawSubnet>>,
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
    #[serde(default)]
    domain: Option<Spanned<RawDomain>>,
    #[serde(default)]
    services: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVpc {
    cidr: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    name: Spanned<String>,
    cidr: Spanned<String>,
    #[serde(default)]
    zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    subnet: Spanned<String>,
    #[serde(default)]
    max_tasks: Option<Spanned<i64>>,
    #[serde(default)]
    force_igmp_version: Option<Spanned<i64>>,
    #[serde(default)]
    dataplane: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Spanned<String>,
    #[serde(default)]
    igmp: Option<Spanned<String>>,
    #[serde(default)]
    static_sources: Option<bool>,
    #[serde(default)]
    subnets: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    #[serde(default)]
    count: Option<Spanned<i64>>,
    command: Spanned<Vec<String>>,
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    zone: Option<Spanned<String>>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    runtime: Option<Spanned<String>>,
    #[serde(default)]
    image: Option<Spanned<String>>,
    #[serde(default)]
    build: Option<Spanned<String>>,
}

/// `runtime` and `image` of a service: the image when its tasks are containers.
fn service_image(
    ctx: &Ctx<'_>,
    r: &RawService,
    sname: &str,
) -> Result<Option<String>, TopologyError> {
    let podman = match &r.runtime {
        None => false,
        Some(rt) => match rt.get_ref().as_str() {
            "namespace" => false,
            "podman" => true,
            other => {
                return Err(ctx.err(
                    rt.span(),
                    format!("runtime {other:?} is not known; use \"namespace\" (the default) or \"podman\""),
                ));
            }
        },
    };
    match (&r.image, podman) {
        (Some(img), true) if !img.get_ref().trim().is_empty() => Ok(Some(img.get_ref().clone())),
        (Some(img), true) => Err(ctx.err(img.span(), "image is empty; name the image to run")),
        (None, true) => Err(ctx.err(
            r.runtime.as_ref().map_or(r.name.span(), |s| s.span()),
            format!("service {sname} runs in podman but names no image; add image = \"...\""),
        )),
        (Some(img), false) => Err(ctx.err(
            img.span(),
            format!(
                "service {sname} names an image but runs as a process; add runtime = \"podman\""
            ),
        )),
        (None, false) => Ok(None),
    }
}

/// The default `max_tasks`: a t3.small's three network interfaces.
pub const DEFAULT_MAX_TASKS: u32 = 3;
/// The most tasks a host may hold; interface names and addresses stay readable below it.
pub const MAX_TASKS_PER_HOST: i64 = 64;

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> TopologyError {
        let (line, column) = line_col(self.src, span.start);
        TopologyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
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

fn parse_cidr(ctx: &Ctx, s: &Spanned<String>, what: &str) -> Result<Ipv4Net, TopologyError> {
    let net: Ipv4Net = s.get_ref().parse().map_err(|_| {
        ctx.err(
            s.span(),
            format!(
                "{what} {:?} is not an IPv4 network; write it as ADDRESS/PREFIX, like \"10.0.2.0/24\"",
                s.get_ref()
            ),
        )
    })?;
    if net.trunc() != net {
        return Err(ctx.err(
            s.span(),
            format!(
                "{what} {} has host bits set; write \"{}\"",
                s.get_ref(),
                net.trunc()
            ),
        ));
    }
    Ok(net)
}

fn name(ctx: &Ctx, s: &Spanned<String>, what: &str) -> Result<String, TopologyError> {
    check_name(s.get_ref()).map_err(|why| ctx.err(s.span(), format!("{what} {why}")))?;
    Ok(s.get_ref().clone())
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

        let lab_name = name(&ctx, &raw.name, "the lab name")?;
        let vpc = parse_cidr(&ctx, &raw.vpc.get_ref().cidr, "the VPC cidr")?;
        if vpc.prefix_len() > 28 {
            return Err(ctx.err(
                raw.vpc.get_ref().cidr.span(),
                format!("the VPC {vpc} is too small; use a /28 or larger, like \"10.0.0.0/16\""),
            ));
        }

        let mut subnets: Vec<Subnet> = Vec::new();
        for s in &raw.subnets {
            let r = s.get_ref();
            let sname = name(&ctx, &r.name, "the subnet name")?;
            if subnets.iter().any(|x| x.name == sname) {
                return Err(ctx.err(
                    r.name.span(),
                    format!(
                        "a subnet named {sname:?} is already defined; give each subnet its own name"
                    ),
                ));
            }
            let cidr = parse_cidr(&ctx, &r.cidr, "the subnet cidr")?;
            if !vpc.contains(&cidr) {
                return Err(ctx.err(
                    r.cidr.span(),
                    format!(
                        "subnet {sname} ({cidr}) is outside the VPC {vpc}; pick a network inside it"
                    ),
                ));
            }
            if cidr.prefix_len() > 25 {
                return Err(ctx.err(
                    r.cidr.span(),
                    format!("subnet {sname} ({cidr}) is too small: hosts take .10 to .99 and tasks .100 and up; use a /25 or larger, like a /24"),
                ));
            }
            if let Some(other) = subnets
                .iter()
                .find(|x| x.cidr.contains(&cidr) || cidr.contains(&x.cidr))
            {
                return Err(ctx.err(
                    r.cidr.span(),
                    format!(
                        "subnet {sname} ({cidr}) overlaps subnet {} ({}); give it a network of its own",
                        other.name, other.cidr
                    ),
                ));
            }
            let zone = match &r.zone {
                Some(z) => name(&ctx, z, "the zone")?,
                None => sname.clone(),
            };
            subnets.push(Subnet {
                name: sname,
                cidr,
                zone,
            });
        }
        let subnet_names = || {
            subnets
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };

        let mut hosts: Vec<Host> = Vec::new();
        for h in &raw.hosts {
            let r = h.get_ref();
            let hname = name(&ctx, &r.name, "the host name")?;
            if RESERVED_NODE_NAMES.contains(&hname.as_str()) {
                return Err(ctx.err(
                    r.name.span(),
                    format!("{hname:?} is reserved for the lab itself; name the host something else, like \"host-a\""),
                ));
            }
            if hosts.iter().any(|x| x.name == hname) {
                return Err(ctx.err(
                    r.name.span(),
                    format!(
                        "a host named {hname:?} is already defined; give each host its own name"
                    ),
                ));
            }
            let subnet = subnets
                .iter()
                .position(|s| s.name == *r.subnet.get_ref())
                .ok_or_else(|| {
                    ctx.err(
                        r.subnet.span(),
                        format!(
                            "host {hname} is in subnet {:?}, which is not defined; write one of: {}",
                            r.subnet.get_ref(),
                            subnet_names()
                        ),
                    )
                })?;
            let max_tasks = match &r.max_tasks {
                None => DEFAULT_MAX_TASKS,
                Some(m) => {
                    let v = *m.get_ref();
                    if !(0..=MAX_TASKS_PER_HOST).contains(&v) {
                        return Err(ctx.err(
                            m.span(),
                            format!("max_tasks = {v} is out of range; write a number from 0 to {MAX_TASKS_PER_HOST}"),
                        ));
                    }
                    u32::try_from(v).unwrap_or(0)
                }
            };
            let force_igmp_version = match &r.force_igmp_version {
                None => 0,
                Some(v) => {
                    let n = *v.get_ref();
                    if !(0..=3).contains(&n) {
                        return Err(ctx.err(
                            v.span(),
                            format!("force_igmp_version = {n} is not an IGMP version; write 0 (none), 1, 2 or 3"),
                        ));
                    }
                    u8::try_from(n).unwrap_or(0)
                }
            };
            let dataplane = match &r.dataplane {
                None => Dataplane::Auto,
                Some(d) => match d.get_ref().as_str() {
                    "auto" => Dataplane::Auto,
                    "kernel" => Dataplane::Kernel,
                    "userspace" => Dataplane::Userspace,
                    other => {
                        return Err(ctx.err(
                            d.span(),
                            format!("dataplane {other:?} is not known; write \"auto\", \"kernel\" or \"userspace\""),
                        ));
                    }
                },
            };
            hosts.push(Host {
                name: hname,
                subnet,
                max_tasks,
                force_igmp_version,
                dataplane,
            });
        }

        let domain = match &raw.domain {
            None => None,
            Some(d) => {
                let r = d.get_ref();
                let dname = name(&ctx, &r.name, "the domain name")?;
                let igmp = match &r.igmp {
                    None => mcgate_domain::api::IgmpMode::V2,
                    Some(i) => {
                        match i.get_ref().as_str() {
                            "v2" => mcgate_domain::api::IgmpMode::V2,
                            "v3" => mcgate_domain::api::IgmpMode::V3,
                            "off" => mcgate_domain::api::IgmpMode::Off,
                            other => {
                                return Err(ctx.err(
                                i.span(),
                                format!("igmp = {other:?} is not known; write \"v2\", \"v3\" or \"off\""),
                            ));
                            }
                        }
                    }
                };
                let mut ds = Vec::new();
                match &r.subnets {
                    None => ds.extend(0..subnets.len()),
                    Some(list) => {
                        for s in list {
                            let idx = subnets
                                .iter()
                                .position(|x| x.name == *s.get_ref())
                                .ok_or_else(|| {
                                    ctx.err(
                                        s.span(),
                                        format!(
                                            "the domain names subnet {:?}, which is not defined; write one of: {}",
                                            s.get_ref(),
                                            subnet_names()
                                        ),
                                    )
                                })?;
                            if ds.contains(&idx) {
                                return Err(ctx.err(
                                    s.span(),
                                    format!(
                                        "subnet {:?} is listed twice; list it once",
                                        s.get_ref()
                                    ),
                                ));
                            }
                            ds.push(idx);
                        }
                    }
                }
                Some(Domain {
                    name: dname,
                    igmp,
                    static_sources: r.static_sources.unwrap_or(false),
                    subnets: ds,
                })
            }
        };

        let zones: BTreeSet<&str> = subnets.iter().map(|s| s.zone.as_str()).collect();
        let mut services: Vec<Service> = Vec::new();
        let mut task_names: BTreeSet<String> = BTreeSet::new();
        for s in &raw.services {
            let r = s.get_ref();
            let sname = name(&ctx, &r.name, "the service name")?;
            if services.iter().any(|x| x.name == sname) {
                return Err(ctx.err(
                    r.name.span(),
                    format!("a service named {sname:?} is already defined; give each service its own name"),
                ));
            }
            let count = match &r.count {
                None => 1,
                Some(c) => {
                    let v = *c.get_ref();
                    if !(0..=1000).contains(&v) {
                        return Err(ctx.err(
                            c.span(),
                            format!("count = {v} is out of range; write a number from 0 to 1000"),
                        ));
                    }
                    u32::try_from(v).unwrap_or(0)
                }
            };
            if r.command.get_ref().is_empty() || r.command.get_ref()[0].is_empty() {
                return Err(ctx.err(
                    r.command.span(),
                    "the command is empty; write the program and its arguments, like [\"mcgate\", \"perf\", \"recv\", \"--group\", \"233.252.0.5\"]",
                ));
            }
            let host = match &r.host {
                None => None,
                Some(h) => Some(hosts.iter().position(|x| x.name == *h.get_ref()).ok_or_else(|| {
                    ctx.err(
                        h.span(),
                        format!(
                            "service {sname} is pinned to host {:?}, which is not defined; write one of: {}",
                            h.get_ref(),
                            hosts.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?),
            };
            let zone = match &r.zone {
                None => None,
                Some(z) => {
                    if !zones.contains(z.get_ref().as_str()) {
                        return Err(ctx.err(
                            z.span(),
                            format!(
                                "service {sname} is pinned to zone {:?}, which no subnet is in; write one of: {}",
                                z.get_ref(),
                                zones.iter().copied().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    if let Some(h) = host {
                        let hz = &subnets[hosts[h].subnet].zone;
                        if hz != z.get_ref() {
                            return Err(ctx.err(
                                z.span(),
                                format!(
                                    "service {sname} is pinned to host {} in zone {hz} and to zone {}; drop one of the two",
                                    hosts[h].name,
                                    z.get_ref()
                                ),
                            ));
                        }
                    }
                    Some(z.get_ref().clone())
                }
            };
            for n in 1..=count {
                let tname = format!("{sname}-{n}");
                let clash = hosts.iter().any(|h| h.name == tname)
                    || RESERVED_NODE_NAMES.contains(&tname.as_str())
                    || !task_names.insert(tname.clone());
                if clash {
                    return Err(ctx.err(
                        r.name.span(),
                        format!("task {tname} of service {sname} would have the same name as another host or task; rename the service"),
                    ));
                }
                if let Err(why) = check_name(&tname) {
                    return Err(ctx.err(r.name.span(), format!("task name {why}")));
                }
            }
            for key in r.env.iter().flat_map(|e| e.keys()) {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return Err(ctx.err(
                        s.span(),
                        format!("environment variable name {key:?} is not valid; use letters, digits and _"),
                    ));
                }
            }
            let image = service_image(&ctx, r, &sname)?;
            if let (Some(b), None) = (&r.build, &image) {
                return Err(ctx.err(
                    b.span(),
                    format!("service {sname} builds an image but runs as a process; add runtime = \"podman\" and image"),
                ));
            }
            services.push(Service {
                name: sname,
                count,
                command: r.command.get_ref().clone(),
                host,
                zone,
                env: r.env.clone().unwrap_or_default(),
                image,
                build: r.build.as_ref().map(|b| b.get_ref().clone()),
                line: line_col(src, s.span().start).0,
            });
        }

        let topo = Topology {
            file: file.to_string(),
            name: lab_name,
            vpc,
            subnets,
            hosts,
            domain,
            services,
        };
        if topo.controller_net().is_none() {
            return Err(ctx.err(
                raw.vpc.get_ref().cidr.span(),
                format!("the VPC {vpc} has no free /30 left for the controller's link; leave some of it outside the subnets"),
            ));
        }
        Ok(topo)
    }

    /// The /30 the controller's link uses: the highest one in the VPC no subnet overlaps.
    pub fn controller_net(&self) -> Option<Ipv4Net> {
        let top = u32::from(self.vpc.broadcast());
        let bottom = u32::from(self.vpc.network());
        let mut start = top.checked_sub(3)?;
        loop {
            let net = Ipv4Net::new(Ipv4Addr::from(start), 30).ok()?;
            if !self
                .subnets
                .iter()
                .any(|s| s.cidr.contains(&net) || net.contains(&s.cidr))
            {
                return Some(net);
            }
            start = start.checked_sub(4)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> TopologyError {
        Topology::parse("t.toml", src).expect_err("should fail")
    }

    const BASE: &str = r#"name = "t"
[vpc]
cidr = "10.0.0.0/16"
[[subnets]]
name = "s1"
cidr = "10.0.2.0/24"
zone = "a"
[[hosts]]
name = "h1"
subnet = "s1"
"#;

    #[test]
    fn reference_topology_parses() {
        let t = Topology::parse(REFERENCE_FILE_NAME, REFERENCE_TOPOLOGY).unwrap();
        assert_eq!(t.name, "ecs-multicast");
        assert_eq!(t.subnets.len(), 2);
        assert_eq!(t.hosts[0].max_tasks, 2);
        assert_eq!(t.hosts[0].force_igmp_version, 2);
        assert_eq!(t.hosts[1].force_igmp_version, 0);
        assert_eq!(t.hosts[1].dataplane, Dataplane::Auto);
        let d = t.domain.as_ref().unwrap();
        assert_eq!(d.subnets, vec![0, 1]);
        assert_eq!(d.igmp, mcgate_domain::api::IgmpMode::V2);
        assert_eq!(t.services[0].count, 2);
        assert_eq!(t.services[1].command[0], "mcgate");
        assert_eq!(t.controller_net().unwrap().to_string(), "10.0.255.252/30");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = err(&format!("{BASE}max_task = 2\n"));
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("max_task"), "{e}");
        assert!(e.to_string().starts_with("t.toml:11:"), "{e}");
    }

    #[test]
    fn missing_name_is_an_error_with_a_line() {
        let e = err("[vpc]\ncidr = \"10.0.0.0/16\"\n");
        assert!(e.message.contains("name"), "{e}");
        let e = err(&format!(
            "{BASE}[[services]]\ncount = 1\ncommand = [\"true\"]\n"
        ));
        assert!(e.message.contains("missing field `name`"), "{e}");
        assert!(e.line >= 11, "{e}");
    }

    #[test]
    fn subnet_outside_vpc_or_overlapping() {
        let e = err(&BASE.replace("10.0.2.0/24", "10.1.2.0/24"));
        assert_eq!(e.line, 6);
        assert!(e.message.contains("outside the VPC"), "{e}");
        let e = err(&format!(
            "{BASE}[[subnets]]\nname = \"s2\"\ncidr = \"10.0.2.0/25\"\n"
        ));
        assert_eq!(e.line, 13);
        assert!(e.message.contains("overlaps subnet s1"), "{e}");
        let e = err(&BASE.replace("10.0.2.0/24", "10.0.2.1/24"));
        assert!(e.message.contains("write \"10.0.2.0/24\""), "{e}");
    }

    #[test]
    fn host_in_unknown_subnet() {
        let e = err(&BASE.replace("subnet = \"s1\"", "subnet = \"s9\""));
        assert_eq!(e.line, 10);
        assert!(e.message.contains("\"s9\""), "{e}");
        assert!(e.message.contains("write one of: s1"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = err(&format!("{BASE}force_igmp_version = 7\n"));
        assert_eq!(e.line, 11);
        let e = err(&format!("{BASE}dataplane = \"ebpf\"\n"));
        assert!(e.message.contains("\"userspace\""), "{e}");
        let e = err(&format!("{BASE}[domain]\nname = \"d\"\nigmp = \"v4\"\n"));
        assert_eq!(e.line, 13);
        let e = err(&format!(
            "{BASE}[domain]\nname = \"d\"\nsubnets = [\"s1\", \"nope\"]\n"
        ));
        assert_eq!(e.line, 13);
        let e = err(&BASE.replace("name = \"h1\"", "name = \"vpc\""));
        assert!(e.message.contains("reserved"), "{e}");
        let e = err(&BASE.replace("name = \"h1\"", "name = \"H 1\""));
        assert_eq!(e.line, 9);
    }

    #[test]
    fn services_are_checked() {
        let e = err(&format!("{BASE}[[services]]\nname = \"r\"\ncommand = []\n"));
        assert_eq!(e.line, 13);
        let e = err(&format!(
            "{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\nhost = \"h2\"\n"
        ));
        assert_eq!(e.line, 14);
        let e = err(&format!(
            "{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\nzone = \"q\"\n"
        ));
        assert!(e.message.contains("write one of: a"), "{e}");
        let t = Topology::parse(
            "t.toml",
            &format!(
                "{BASE}[[services]]\nname = \"r\"\ncount = 2\ncommand = [\"x\"]\nenv = {{ A = \"1\" }}\n"
            ),
        )
        .unwrap();
        assert_eq!(t.services[0].env.get("A").map(String::as_str), Some("1"));
        assert_eq!(t.services[0].line, 11);
        assert!(t.domain.is_none());
    }

    #[test]
    fn every_example_parses_and_fits() {
        for (file, src) in [
            ("ecs-multicast.toml", REFERENCE_TOPOLOGY),
            (
                "ecs-multicast-iperf2.toml",
                include_str!("../../../examples/ecs-multicast-iperf2.toml"),
            ),
            (
                "igmpv3-source-filter.toml",
                include_str!("../../../examples/igmpv3-source-filter.toml"),
            ),
            ("fanout.toml", include_str!("../../../examples/fanout.toml")),
            (
                "ecs-multicast-containers.toml",
                include_str!("../../../examples/ecs-multicast-containers.toml"),
            ),
        ] {
            let t = Topology::parse(file, src).unwrap_or_else(|e| panic!("{e}"));
            crate::placement::place(&t).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn container_services_name_their_image() {
        let svc =
            |extra: &str| format!("{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\n{extra}");
        let t = Topology::parse(
            "t.toml",
            &svc("runtime = \"podman\"\nimage = \"localhost/iperf:lab\"\n"),
        )
        .unwrap();
        assert_eq!(t.services[0].image.as_deref(), Some("localhost/iperf:lab"));
        let t = Topology::parse("t.toml", &svc("runtime = \"namespace\"\n")).unwrap();
        assert_eq!(t.services[0].image, None);
        let e = err(&svc("runtime = \"podman\"\n"));
        assert!(e.message.contains("names no image"), "{e}");
        assert_eq!(e.line, 14);
        let e = err(&svc("image = \"i\"\n"));
        assert!(e.message.contains("add runtime = \"podman\""), "{e}");
        let e = err(&svc("runtime = \"docker\"\n"));
        assert!(
            e.message
                .contains("\"namespace\" (the default) or \"podman\""),
            "{e}"
        );
        let e = err(&svc("runtime = \"podman\"\nimage = \" \"\n"));
        assert!(e.message.contains("image is empty"), "{e}");
        let t = Topology::parse(
            "t.toml",
            &svc("runtime = \"podman\"\nimage = \"i\"\nbuild = \"Containerfile\"\n"),
        )
        .unwrap();
        assert_eq!(t.services[0].build.as_deref(), Some("Containerfile"));
        let e = err(&svc("build = \"Containerfile\"\n"));
        assert!(
            e.message.contains("builds an image but runs as a process"),
            "{e}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        for src in [
            "",
            "=",
            "name = 1",
            "[[hosts]]\n",
            "name=\"x\"\nvpc=3",
            "\u{0}",
        ] {
            assert!(Topology::parse("t.toml", src).is_err(), "{src:?}");
        }
    }
}
