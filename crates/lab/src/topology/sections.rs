//! From the file as read (`raw`) to a [`Topology`](super::Topology), one section at a
//! time: names, what each entry refers to (a host's subnet, a service's host or zone)
//! and what entries must not share (names, networks). Each mistake becomes a
//! [`TopologyError`] at the line of the value, saying what to write instead.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::raw::{Cidr, RawController, RawDomain, RawExternal, RawHost, RawService, RawSubnet};
use super::{
    ControlPlane, Dataplane, Domain, External, Host, Service, Store, Subnet, TopologyError,
    line_col,
};
use crate::names::{check_name, is_reserved};

/// The file being read, for locating errors.
pub struct Ctx<'a> {
    /// The file as the user named it.
    pub file: &'a str,
    /// Its text.
    pub src: &'a str,
}

impl Ctx<'_> {
    /// An error at byte range `span` of the text.
    pub fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> TopologyError {
        let (line, column) = line_col(self.src, span.start);
        TopologyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// A checked name; `what` starts the message ("the host name").
pub fn name(ctx: &Ctx, s: &Spanned<String>, what: &str) -> Result<String, TopologyError> {
    check_name(s.get_ref()).map_err(|why| ctx.err(s.span(), format!("{what} {why}")))?;
    Ok(s.get_ref().clone())
}

/// The VPC's network: a /28 or larger.
pub fn vpc(ctx: &Ctx, cidr: &Spanned<Cidr>) -> Result<Ipv4Net, TopologyError> {
    let vpc = cidr.get_ref().0;
    if vpc.prefix_len() > 28 {
        return Err(ctx.err(
            cidr.span(),
            format!("the VPC {vpc} is too small; use a /28 or larger, like \"10.0.0.0/16\""),
        ));
    }
    Ok(vpc)
}

/// Subnets: inside the VPC, room for hosts and tasks, no overlap, unique names.
pub fn subnets(ctx: &Ctx, vpc: Ipv4Net, raw: &[RawSubnet]) -> Result<Vec<Subnet>, TopologyError> {
    let mut subnets: Vec<Subnet> = Vec::new();
    for r in raw {
        let sname = name(ctx, &r.name, "the subnet name")?;
        if subnets.iter().any(|x| x.name == sname) {
            return Err(ctx.err(
                r.name.span(),
                format!(
                    "a subnet named {sname:?} is already defined; give each subnet its own name"
                ),
            ));
        }
        let cidr = r.cidr.get_ref().0;
        let at = r.cidr.span();
        if !vpc.contains(&cidr) {
            return Err(ctx.err(
                at,
                format!(
                    "subnet {sname} ({cidr}) is outside the VPC {vpc}; pick a network inside it"
                ),
            ));
        }
        if cidr.prefix_len() > 25 {
            return Err(ctx.err(
                at,
                format!("subnet {sname} ({cidr}) is too small: hosts take .10 to .99 and tasks .100 and up; use a /25 or larger, like a /24"),
            ));
        }
        if let Some(other) = subnets
            .iter()
            .find(|x| x.cidr.contains(&cidr) || cidr.contains(&x.cidr))
        {
            return Err(ctx.err(
                at,
                format!(
                    "subnet {sname} ({cidr}) overlaps subnet {} ({}); give it a network of its own",
                    other.name, other.cidr
                ),
            ));
        }
        let zone = match &r.zone {
            Some(z) => name(ctx, z, "the zone")?,
            None => sname.clone(),
        };
        subnets.push(Subnet {
            name: sname,
            cidr,
            zone,
        });
    }
    Ok(subnets)
}

/// The names of `subnets`, for "write one of" hints.
fn subnet_names(subnets: &[Subnet]) -> String {
    subnets
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the subnet named by `s`; `what` starts the message.
fn subnet_index(
    ctx: &Ctx,
    subnets: &[Subnet],
    s: &Spanned<String>,
    what: &str,
) -> Result<usize, TopologyError> {
    subnets
        .iter()
        .position(|x| x.name == *s.get_ref())
        .ok_or_else(|| {
            ctx.err(
                s.span(),
                format!(
                    "{what} {:?}, which is not defined; write one of: {}",
                    s.get_ref(),
                    subnet_names(subnets)
                ),
            )
        })
}

/// Hosts: unique, unreserved names in defined subnets.
pub fn hosts(ctx: &Ctx, subnets: &[Subnet], raw: &[RawHost]) -> Result<Vec<Host>, TopologyError> {
    let mut hosts: Vec<Host> = Vec::new();
    for r in raw {
        let hname = name(ctx, &r.name, "the host name")?;
        if is_reserved(&hname) {
            return Err(ctx.err(
                r.name.span(),
                format!("{hname:?} is reserved for the lab itself; name the host something else, like \"host-a\""),
            ));
        }
        if hosts.iter().any(|x| x.name == hname) {
            return Err(ctx.err(
                r.name.span(),
                format!("a host named {hname:?} is already defined; give each host its own name"),
            ));
        }
        let what = format!("host {hname} is in subnet");
        let subnet = subnet_index(ctx, subnets, &r.subnet, &what)?;
        hosts.push(Host {
            name: hname,
            subnet,
            max_tasks: r.max_tasks.0,
            force_igmp_version: r.force_igmp_version.0,
            dataplane: r.dataplane.0,
        });
    }
    Ok(hosts)
}

/// The domain: its subnets (every subnet when not listed), each once.
pub fn domain(ctx: &Ctx, subnets: &[Subnet], raw: &RawDomain) -> Result<Domain, TopologyError> {
    let dname = name(ctx, &raw.name, "the domain name")?;
    let mut ds = Vec::new();
    match &raw.subnets {
        None => ds.extend(0..subnets.len()),
        Some(list) => {
            for s in list {
                let idx = subnet_index(ctx, subnets, s, "the domain names subnet")?;
                if ds.contains(&idx) {
                    return Err(ctx.err(
                        s.span(),
                        format!("subnet {:?} is listed twice; list it once", s.get_ref()),
                    ));
                }
                ds.push(idx);
            }
        }
    }
    Ok(Domain {
        name: dname,
        igmp: raw.igmp.0,
        static_sources: raw.static_sources,
        tunnel: raw.tunnel.0,
        subnets: ds,
    })
}

/// Services: unique names, a command, pins to defined hosts and zones that agree, task
/// names that clash with nothing, valid environment names.
pub fn services(
    ctx: &Ctx,
    subnets: &[Subnet],
    hosts: &[Host],
    raw: &[Spanned<RawService>],
) -> Result<Vec<Service>, TopologyError> {
    let zones: BTreeSet<&str> = subnets.iter().map(|s| s.zone.as_str()).collect();
    let mut services: Vec<Service> = Vec::new();
    let mut task_names: BTreeSet<String> = BTreeSet::new();
    for s in raw {
        let r = s.get_ref();
        let sname = name(ctx, &r.name, "the service name")?;
        if services.iter().any(|x| x.name == sname) {
            return Err(ctx.err(
                r.name.span(),
                format!(
                    "a service named {sname:?} is already defined; give each service its own name"
                ),
            ));
        }
        if r.command.get_ref().first().is_none_or(String::is_empty) {
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
            Some(z) => Some(zone(
                ctx,
                &sname,
                z,
                &zones,
                host.map(|h| (&hosts[h], subnets)),
            )?),
        };
        let count = r.count.0;
        for n in 1..=count {
            let tname = format!("{sname}-{n}");
            let clash = hosts.iter().any(|h| h.name == tname)
                || is_reserved(&tname)
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
        if let Some(key) = r
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(ctx.err(
                s.span(),
                format!(
                    "environment variable name {key:?} is not valid; use letters, digits and _"
                ),
            ));
        }
        let image = service_image(ctx, r, &sname)?;
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
            env: r.env.clone(),
            image,
            build: r.build.as_ref().map(|b| b.get_ref().clone()),
            line: line_col(ctx.src, s.span().start).0,
        });
    }
    Ok(services)
}

/// A service's zone pin: a zone some subnet is in, and the pinned host's zone if both are
/// given.
fn zone(
    ctx: &Ctx,
    service: &str,
    z: &Spanned<String>,
    zones: &BTreeSet<&str>,
    host: Option<(&Host, &[Subnet])>,
) -> Result<String, TopologyError> {
    if !zones.contains(z.get_ref().as_str()) {
        return Err(ctx.err(
            z.span(),
            format!(
                "service {service} is pinned to zone {:?}, which no subnet is in; write one of: {}",
                z.get_ref(),
                zones.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if let Some((h, subnets)) = host {
        let hz = &subnets[h.subnet].zone;
        if hz != z.get_ref() {
            return Err(ctx.err(
                z.span(),
                format!(
                    "service {service} is pinned to host {} in zone {hz} and to zone {}; drop one of the two",
                    h.name,
                    z.get_ref()
                ),
            ));
        }
    }
    Ok(z.get_ref().clone())
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

/// The `[controller]` section: several replicas need the etcd store (the embedded one
/// is a file only one controller may own); etcd members only with the etcd store; and
/// a controller runs only for a `[domain]`.
pub fn controller(
    ctx: &Ctx,
    has_domain: bool,
    raw: Option<&Spanned<RawController>>,
) -> Result<ControlPlane, TopologyError> {
    let Some(c) = raw else {
        return Ok(ControlPlane::default());
    };
    if !has_domain {
        return Err(ctx.err(
            c.span(),
            "[controller] is set but there is no [domain], and without one the lab runs no controller; add a [domain] or remove [controller]",
        ));
    }
    let r = c.get_ref();
    let store = r.store.as_ref().map_or(Store::Embedded, |s| s.get_ref().0);
    let replicas = r.replicas.as_ref().map_or(1, |n| n.get_ref().0);
    if let (Store::Embedded, Some(n)) = (store, &r.replicas)
        && replicas > 1
    {
        return Err(ctx.err(
            n.span(),
            format!("replicas = {replicas} needs store = \"etcd\": the embedded store is one controller's file; add store = \"etcd\" or write replicas = 1"),
        ));
    }
    let etcd_members = match (store, &r.etcd_members) {
        (Store::Embedded, Some(m)) => {
            return Err(ctx.err(
                m.span(),
                "etcd_members is set but the store is embedded; add store = \"etcd\" or remove etcd_members",
            ));
        }
        (Store::Embedded, None) => 0,
        (Store::Etcd, m) => m.as_ref().map_or(DEFAULT_ETCD_MEMBERS, |m| m.get_ref().0),
    };
    Ok(ControlPlane {
        replicas,
        store,
        etcd_members,
    })
}

/// etcd members when `etcd_members` is not given: the smallest cluster that survives
/// the loss of one member.
pub const DEFAULT_ETCD_MEMBERS: u32 = 3;

/// External networks: unique, unreserved names no host or task has; a network outside
/// the VPC and the other external networks, /29 or larger; a defined gateway host with
/// the userspace data plane (or auto), one external network per host; multicast group
/// ranges; IGMP version 2 or 3; a domain (the gateway's agent is what brings the
/// traffic in).
pub fn externals(
    ctx: &Ctx,
    vpc: Ipv4Net,
    hosts: &[Host],
    services: &[Service],
    has_domain: bool,
    raw: &[Spanned<RawExternal>],
) -> Result<Vec<External>, TopologyError> {
    let mut out: Vec<External> = Vec::new();
    for s in raw {
        let r = s.get_ref();
        if !has_domain {
            return Err(ctx.err(
                s.span(),
                "an external network needs a [domain]: its gateway host's agent brings its traffic in; add one",
            ));
        }
        let ename = name(ctx, &r.name, "the external network name")?;
        let task_clash = services
            .iter()
            .any(|sv| (1..=sv.count).any(|n| format!("{}-{n}", sv.name) == ename));
        if is_reserved(&ename)
            || hosts.iter().any(|h| h.name == ename)
            || task_clash
            || out.iter().any(|x| x.name == ename)
        {
            return Err(ctx.err(
                r.name.span(),
                format!("{ename:?} is already the name of a host, task or external network, or reserved; name it something else, like \"exchange\""),
            ));
        }
        let cidr = r.cidr.get_ref().0;
        if cidr.prefix_len() > 29 {
            return Err(ctx.err(
                r.cidr.span(),
                format!("external network {ename} ({cidr}) is too small; use a /29 or larger, like a /24"),
            ));
        }
        if vpc.contains(&cidr) || cidr.contains(&vpc) || vpc.contains(&cidr.network()) {
            return Err(ctx.err(
                r.cidr.span(),
                format!("external network {ename} ({cidr}) overlaps the VPC {vpc}; pick a network outside it, like \"192.0.2.0/24\""),
            ));
        }
        if let Some(o) = out
            .iter()
            .find(|o| o.cidr.contains(&cidr) || cidr.contains(&o.cidr))
        {
            return Err(ctx.err(
                r.cidr.span(),
                format!("external network {ename} ({cidr}) overlaps external network {} ({}); give each its own network", o.name, o.cidr),
            ));
        }
        let host = hosts
            .iter()
            .position(|h| h.name == *r.host.get_ref())
            .ok_or_else(|| {
                ctx.err(
                    r.host.span(),
                    format!(
                        "external network {ename} has gateway host {:?}, which is not defined; write one of: {}",
                        r.host.get_ref(),
                        hosts.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
        if hosts[host].dataplane == Dataplane::Kernel {
            return Err(ctx.err(
                r.host.span(),
                format!("host {} is a gateway (its agent runs --upstream), which needs the userspace data plane; set its dataplane to \"userspace\" or \"auto\"", hosts[host].name),
            ));
        }
        if let Some(o) = out.iter().find(|o| o.host == host) {
            return Err(ctx.err(
                r.host.span(),
                format!("host {} is already the gateway of external network {}: an agent has one upstream interface; pick another host", hosts[host].name, o.name),
            ));
        }
        let mut groups = Vec::new();
        for g in r.groups.get_ref() {
            let net: Option<Ipv4Net> = g.get_ref().parse().ok();
            match net {
                Some(n) if n.trunc() == n && n.network().is_multicast() && n.prefix_len() >= 4 => {
                    groups.push(n)
                }
                _ => {
                    return Err(ctx.err(
                        g.span(),
                        format!("{:?} is not a multicast group range; write a prefix inside 224.0.0.0/4 with no host bits, like \"233.252.0.0/24\"", g.get_ref()),
                    ));
                }
            }
        }
        if groups.is_empty() {
            return Err(ctx.err(
                r.groups.span(),
                "list the group ranges the gateway brings in, like [\"233.252.0.0/24\"]",
            ));
        }
        let igmp_version = match &r.igmp_version {
            None => 3,
            Some(v) if matches!(*v.get_ref(), 2 | 3) => *v.get_ref() as u8,
            Some(v) => {
                return Err(ctx.err(
                    v.span(),
                    "the external network's querier runs IGMP version 2 or 3; write 2 or 3",
                ));
            }
        };
        if let Some(c) = &r.sender
            && c.get_ref().is_empty()
        {
            return Err(ctx.err(
                c.span(),
                "the sender's command is empty; write a program and its arguments, or leave sender out",
            ));
        }
        out.push(External {
            name: ename,
            cidr,
            host,
            groups,
            igmp_version,
            sender: r.sender.as_ref().map(|c| c.get_ref().clone()),
            env: r.env.clone(),
        });
    }
    Ok(out)
}
