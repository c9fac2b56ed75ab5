//! From a topology and its placement to the concrete lab: namespace and link names,
//! addresses, and the command line of every process. Pure: nothing is built here.
//!
//! Addresses, in each subnet: the VPC router's gateway at .1 (the first address), hosts
//! from .10 in file order, tasks from .100 in placement order. The controller sits on a
//! /30 at the top of the VPC that no subnet uses (10.0.255.254 for 10.0.0.0/16).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::container;
use crate::error::LabError;
use crate::names;
use crate::placement::Placed;
use crate::state::{
    ControllerState, DomainSetup, ExternalState, HostState, LabState, Launch, SubnetState,
    TaskState, lab_dir,
};
use crate::topology::Topology;

/// The controller's TCP port on the VPC.
pub const CONTROLLER_PORT: u16 = 7400;

/// Which optional flags this binary's `mcgate agent` takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentFlags {
    /// `--admin unix:PATH`.
    pub admin: bool,
    /// `--dataplane auto|kernel|userspace`.
    pub dataplane: bool,
    /// `--state-dir DIR`.
    pub state_dir: bool,
    /// `--token-file FILE --ca FILE` (an agent that joins with a token over TLS).
    pub token: bool,
    /// `--zone NAME` (the zone the agent names in its registration).
    pub zone: bool,
}

/// The file of a host's join token in the lab's directory (mode 0600, written by
/// `lab up` just before the agent starts).
pub fn agent_token_file(lab_dir: &Path, host: &str) -> std::path::PathBuf {
    lab_dir.join(format!("agent-{host}.token"))
}

/// A host's agent's state directory in the lab's: `lab restart` keeps it (the new agent
/// restores the membership the old one learned), `lab down` removes it with the rest.
pub fn agent_state_dir(lab_dir: &Path, host: &str) -> std::path::PathBuf {
    lab_dir.join(format!("agent-{host}"))
}

fn nth(net: &ipnet::Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let a = u32::from(net.network()).checked_add(n)?;
    (a < u32::from(net.broadcast())).then(|| Ipv4Addr::from(a))
}

/// The daemons write to log files: no terminal colour codes.
pub(crate) fn quiet_env() -> BTreeMap<String, String> {
    BTreeMap::from([("NO_COLOR".to_string(), "1".to_string())])
}

/// `mcgate` as a command's program means this binary.
pub fn resolve_argv(cmd: &[String], exe: &Path) -> Vec<String> {
    let mut v = cmd.to_vec();
    if let Some(first) = v.first_mut()
        && first == "mcgate"
    {
        *first = exe.display().to_string();
    }
    v
}

/// Plans the whole lab.
pub fn plan(
    topo: &Topology,
    placed: &[Placed],
    exe: &Path,
    flags: AgentFlags,
) -> Result<LabState, LabError> {
    let lab = &topo.name;
    let dir = lab_dir(lab);
    let mut subnets = Vec::new();
    for (i, s) in topo.subnets.iter().enumerate() {
        subnets.push(SubnetState {
            name: s.name.clone(),
            cidr: s.cidr,
            zone: s.zone.clone(),
            bridge: names::subnet_bridge(i),
            gateway: nth(&s.cidr, 1).ok_or_else(|| {
                LabError::Addresses(format!("subnet {} has no room for a gateway", s.name))
            })?,
        });
    }
    let vpc_netns = names::netns(lab, "vpc");
    let mut namespaces = vec![vpc_netns.clone()];

    let control_plane = match &topo.domain {
        Some(_) => crate::plan_ha::control_plane(topo, &dir, exe)?,
        None => None,
    };
    if let Some(cp) = &control_plane {
        namespaces.extend(cp.etcd.iter().map(|e| e.launch.netns.clone()));
        namespaces.extend(cp.replicas.iter().map(|r| r.launch.netns.clone()));
    }
    let (controller, controller_netns) = match &topo.domain {
        None => (None, None),
        Some(_) if control_plane.is_some() => (None, None),
        Some(d) => {
            let net = topo.controller_net().ok_or_else(|| {
                LabError::Addresses(format!(
                    "the VPC {} has no free /30 for the controller",
                    topo.vpc
                ))
            })?;
            let vpc_ip = nth(&net, 1).unwrap_or(net.network());
            let ip = nth(&net, 2).unwrap_or(net.network());
            let ns = names::netns(lab, "ctl");
            namespaces.push(ns.clone());
            let socket = dir.join("controller.sock");
            let argv = vec![
                exe.display().to_string(),
                "controller".into(),
                "--listen".into(),
                format!("{ip}:{CONTROLLER_PORT}"),
                "--unix".into(),
                socket.display().to_string(),
                "--data-dir".into(),
                dir.join("controller").display().to_string(),
            ];
            (
                Some(ControllerState {
                    ip,
                    vpc_ip,
                    url: format!("https://{ip}:{CONTROLLER_PORT}"),
                    socket,
                    domain: d.name.clone(),
                    launch: Launch {
                        netns: ns.clone(),
                        argv,
                        env: quiet_env(),
                        running: None,
                        private_run: false,
                    },
                }),
                Some(ns),
            )
        }
    };

    let mut hosts = Vec::new();
    let mut per_subnet_hosts = vec![0u32; topo.subnets.len()];
    for (i, h) in topo.hosts.iter().enumerate() {
        let s = &topo.subnets[h.subnet];
        let k = per_subnet_hosts[h.subnet];
        per_subnet_hosts[h.subnet] += 1;
        if k >= 90 {
            return Err(LabError::Addresses(format!(
                "subnet {} holds more than 90 hosts (.10 to .99); spread them over more subnets",
                s.name
            )));
        }
        let underlay_ip = nth(&s.cidr, 10 + k).ok_or_else(|| {
            LabError::Addresses(format!("subnet {} has no room for host {}", s.name, h.name))
        })?;
        let netns = names::netns(lab, &h.name);
        namespaces.push(netns.clone());
        // The agent's controllers and the CA it trusts: the one controller's, or every
        // replica's URL (it fails over between them) and the CA they share.
        let controllers = match (&controller, &control_plane) {
            (Some(c), _) => Some((c.url.clone(), dir.join("controller").join("ca.pem"))),
            (None, Some(cp)) => Some((
                crate::plan_ha::agent_controller_arg(cp),
                crate::plan_ha::shared_ca(&dir),
            )),
            (None, None) => None,
        };
        let agent = controllers.as_ref().map(|(urls, ca)| {
            let mut argv = vec![
                exe.display().to_string(),
                "agent".into(),
                "--controller".into(),
                urls.clone(),
                "--host".into(),
                h.name.clone(),
                "--underlay".into(),
                underlay_ip.to_string(),
                "--attach".into(),
                "tk*".into(),
            ];
            if flags.admin {
                argv.push("--admin".into());
                argv.push(format!(
                    "unix:{}",
                    dir.join(format!("agent-{}.sock", h.name)).display()
                ));
            }
            // Every value is passed, "auto" included, so the agent's command line says
            // what the topology asked for whatever the agent's own default is.
            if flags.dataplane {
                argv.push("--dataplane".into());
                argv.push(h.dataplane.as_str().into());
            }
            if flags.state_dir {
                argv.push("--state-dir".into());
                argv.push(agent_state_dir(&dir, &h.name).display().to_string());
            }
            // The host's zone is its subnet's, which always has one (the subnet's name
            // by default).
            if flags.zone {
                argv.push("--zone".into());
                argv.push(s.zone.clone());
            }
            // The gateway of an external network: its IGMP proxy and relay towards it.
            if let Some(e) = topo.externals.iter().find(|e| e.host == i) {
                argv.push("--upstream".into());
                argv.push(names::external_link(&e.name));
                argv.push("--upstream-groups".into());
                argv.push(
                    e.groups
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            if flags.token {
                argv.push("--token-file".into());
                argv.push(agent_token_file(&dir, &h.name).display().to_string());
                argv.push("--ca".into());
                argv.push(ca.display().to_string());
            }
            Launch {
                netns: netns.clone(),
                argv,
                env: quiet_env(),
                running: None,
                private_run: false,
            }
        });
        hosts.push(HostState {
            name: h.name.clone(),
            subnet: s.name.clone(),
            zone: s.zone.clone(),
            netns,
            underlay_ip,
            prefix_len: s.cidr.prefix_len(),
            gateway: subnets[h.subnet].gateway,
            vpc_port: names::vpc_port(&h.name, i),
            force_igmp_version: h.force_igmp_version,
            dataplane: h.dataplane,
            agent,
        });
    }

    let mut tasks = Vec::new();
    let mut per_subnet_tasks = vec![0u32; topo.subnets.len()];
    for (i, p) in placed.iter().enumerate() {
        let h = &topo.hosts[p.host];
        let s = &topo.subnets[h.subnet];
        let svc = &topo.services[p.service];
        let j = per_subnet_tasks[h.subnet];
        per_subnet_tasks[h.subnet] += 1;
        let ip = nth(&s.cidr, 100 + j).ok_or_else(|| {
            LabError::Addresses(format!(
                "subnet {} ({}) has no address left for task {} (tasks take .100 and up); use a larger subnet",
                s.name, s.cidr, p.name
            ))
        })?;
        let netns = names::netns(lab, &p.name);
        namespaces.push(netns.clone());
        tasks.push(TaskState {
            name: p.name.clone(),
            service: svc.name.clone(),
            host: h.name.clone(),
            zone: s.zone.clone(),
            ip,
            link: names::task_link(&p.name, i),
            launch: match &svc.image {
                // The container gets the environment; `mcgate` is the image's own.
                Some(image) => Launch {
                    argv: container::run_argv(lab, &p.name, &netns, image, &svc.env, &svc.command),
                    netns,
                    env: BTreeMap::new(),
                    running: None,
                    private_run: false,
                },
                None => Launch {
                    netns,
                    argv: resolve_argv(&svc.command, exe),
                    env: svc.env.clone(),
                    running: None,
                    private_run: true,
                },
            },
        });
    }

    let mut externals = Vec::new();
    for e in &topo.externals {
        let netns = names::netns(lab, &e.name);
        namespaces.push(netns.clone());
        let no_room = || {
            LabError::Addresses(format!(
                "external network {} ({}) has no room for its addresses",
                e.name, e.cidr
            ))
        };
        externals.push(ExternalState {
            name: e.name.clone(),
            cidr: e.cidr,
            address: nth(&e.cidr, 1).ok_or_else(no_room)?,
            igmp_version: e.igmp_version,
            host: topo.hosts[e.host].name.clone(),
            host_link: names::external_link(&e.name),
            host_address: nth(&e.cidr, 2).ok_or_else(no_room)?,
            groups: e.groups.clone(),
            sender: e.sender.as_ref().map(|cmd| Launch {
                netns: netns.clone(),
                argv: resolve_argv(cmd, exe),
                env: e.env.clone(),
                running: None,
                private_run: true,
            }),
            netns,
        });
    }

    Ok(LabState {
        name: lab.clone(),
        file: topo.file.clone(),
        phase: "building".into(),
        vpc: topo.vpc,
        vpc_netns,
        subnets,
        controller,
        controller_netns,
        control_plane,
        supervisor: None,
        ui: None,
        domain_setup: topo.domain.as_ref().map(|d| DomainSetup {
            name: d.name.clone(),
            igmp: d.igmp,
            static_sources: d.static_sources,
            tunnel: d.tunnel,
            subnets: d
                .subnets
                .iter()
                .filter_map(|&i| topo.subnets.get(i))
                .map(|s| s.name.clone())
                .collect(),
        }),
        hosts,
        tasks,
        namespaces,
        externals,
        ipv6: topo.ipv6,
    })
}

/// The plan of a topology (`src`, named `name`), with an agent of no optional flags.
#[cfg(test)]
pub(crate) fn plan_example(name: &str, src: &str) -> LabState {
    let t = Topology::parse(name, src).unwrap();
    plan(
        &t,
        &crate::placement::place(&t).unwrap(),
        Path::new("/x"),
        AgentFlags::default(),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::place;
    use crate::topology::REFERENCE_TOPOLOGY;

    #[test]
    fn reference_plan() {
        let t = Topology::parse("r", REFERENCE_TOPOLOGY).unwrap();
        let p = place(&t).unwrap();
        let exe = Path::new("/usr/bin/mcgate");
        let st = plan(
            &t,
            &p,
            exe,
            AgentFlags {
                admin: true,
                dataplane: true,
                state_dir: true,
                token: true,
                zone: true,
            },
        )
        .unwrap();
        assert_eq!(st.vpc_netns, "mcgl-ecs-multicast-vpc");
        assert_eq!(st.subnets[1].gateway.to_string(), "10.0.3.1");
        let c = st.controller.as_ref().unwrap();
        assert_eq!(c.url, "https://10.0.255.254:7400");
        assert_eq!(c.vpc_ip.to_string(), "10.0.255.253");
        assert_eq!(st.hosts[0].underlay_ip.to_string(), "10.0.2.10");
        assert_eq!(st.hosts[1].underlay_ip.to_string(), "10.0.3.10");
        let ips: Vec<String> = st.tasks.iter().map(|t| t.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.2.100", "10.0.3.100", "10.0.2.101"]);
        assert_eq!(st.tasks[0].link, "tkreceiver-1");
        assert_eq!(st.tasks[2].launch.argv[0], "/usr/bin/mcgate");
        let agent = st.hosts[0].agent.as_ref().unwrap();
        assert!(agent.argv.windows(2).any(|w| w == ["--attach", "tk*"]));
        // Each agent names its host's zone.
        assert!(agent.argv.windows(2).any(|w| w == ["--zone", "a"]));
        let b = st.hosts[1].agent.as_ref().unwrap();
        assert!(
            b.argv.windows(2).any(|w| w == ["--zone", "b"]),
            "{:?}",
            b.argv
        );
        assert!(
            agent.argv.windows(2).any(|w| w == ["--dataplane", "auto"]),
            "auto is passed too: {:?}",
            agent.argv
        );
        assert!(
            agent
                .argv
                .iter()
                .any(|a| a.starts_with("unix:/run/mcgate/labs/ecs-multicast/agent-host-a.sock"))
        );
        // Each agent keeps its membership in its own directory inside the lab's.
        assert!(
            agent
                .argv
                .windows(2)
                .any(|w| w == ["--state-dir", "/run/mcgate/labs/ecs-multicast/agent-host-a"]),
            "{:?}",
            agent.argv
        );
        let other = st.hosts[1].agent.as_ref().unwrap();
        assert!(
            other
                .argv
                .windows(2)
                .any(|w| w == ["--state-dir", "/run/mcgate/labs/ecs-multicast/agent-host-b"]),
            "{:?}",
            other.argv
        );
        assert_eq!(
            st.namespaces.len(),
            2 + 2 + 3,
            "vpc, ctl, 2 hosts, 3 tasks: {:?}",
            st.namespaces
        );
    }

    #[test]
    fn example_addresses_are_the_documented_ones() {
        let src = include_str!("../../../examples/igmpv3-source-filter.toml");
        let st = plan_example("ssm", src);
        let at = |n: &str| {
            let t = st.tasks.iter().find(|t| t.name == n).unwrap();
            (t.ip.to_string(), t.host.clone())
        };
        assert_eq!(at("feed-a-1"), ("10.0.2.100".into(), "host-a".into()));
        assert_eq!(at("feed-b-1"), ("10.0.3.100".into(), "host-b".into()));
        assert_eq!(at("ssm-receiver-1"), ("10.0.3.101".into(), "host-b".into()));
        assert_eq!(at("any-receiver-1"), ("10.0.2.101".into(), "host-a".into()));

        let src = include_str!("../../../examples/fanout.toml");
        let st = plan_example("fanout", src);
        for h in &st.hosts {
            let n = st
                .tasks
                .iter()
                .filter(|t| t.host == h.name && t.service == "receiver")
                .count();
            assert_eq!(n, 2, "{}", h.name);
        }
    }

    #[test]
    fn upstream_feed_plan_connects_the_exchange_to_the_gateway_only() {
        let src = include_str!("../../../examples/upstream-feed.toml");
        let st = plan_example("upstream-feed", src);
        assert_eq!(st.externals.len(), 1);
        let e = &st.externals[0];
        assert_eq!(e.netns, "mcgl-upstream-feed-exchange");
        assert!(st.namespaces.contains(&e.netns));
        assert_eq!(
            (e.address.to_string(), e.host_address.to_string()),
            ("192.0.2.1".into(), "192.0.2.2".into())
        );
        assert_eq!(
            (e.host.as_str(), e.host_link.as_str()),
            ("gateway", "ext-exchange")
        );
        let sender = e.sender.as_ref().expect("a sender");
        assert_eq!(sender.netns, e.netns);
        assert_eq!(sender.argv[1..3], ["perf", "send"]);
        assert!(st.node_names().contains(&"exchange".to_string()));
        let mut st2 = st.clone();
        assert!(st2.launch_mut("exchange").is_some());
        let argv = |h: &str| {
            st.hosts
                .iter()
                .find(|x| x.name == h)
                .and_then(|x| x.agent.as_ref())
                .map(|a| a.argv.join(" "))
                .unwrap_or_default()
        };
        assert!(
            argv("gateway").contains("--upstream ext-exchange --upstream-groups 233.252.0.0/24"),
            "{}",
            argv("gateway")
        );
        assert!(!argv("host-b").contains("--upstream"), "{}", argv("host-b"));
    }

    #[test]
    fn small_subnet_runs_out_of_task_addresses() {
        let mut src = String::from(
            "name = \"t\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n[[subnets]]\nname = \"s\"\ncidr = \"10.0.2.0/25\"\n",
        );
        src.push_str("[[hosts]]\nname = \"h\"\nsubnet = \"s\"\nmax_tasks = 64\n");
        src.push_str("[[services]]\nname = \"r\"\ncount = 28\ncommand = [\"x\"]\n");
        let t = Topology::parse("t", &src).unwrap();
        let p = place(&t).unwrap();
        let e = plan(&t, &p, Path::new("/x"), AgentFlags::default()).unwrap_err();
        assert!(
            e.to_string().contains("no address left for task r-28"),
            "{e}"
        );
    }

    #[test]
    fn ha_plan_names_addresses_and_command_lines() {
        let src = include_str!("../../../examples/ha.toml");
        let t = Topology::parse("ha", src).unwrap();
        let flags = AgentFlags {
            admin: true,
            dataplane: true,
            state_dir: true,
            token: true,
            zone: false,
        };
        let st = plan(&t, &place(&t).unwrap(), Path::new("/usr/bin/mcgate"), flags).unwrap();
        assert!(st.controller.is_none() && st.controller_netns.is_none());
        let cp = st.control_plane.as_ref().unwrap();
        assert_eq!(cp.net.to_string(), "10.0.255.240/28");
        assert_eq!(cp.router_ip.to_string(), "10.0.255.241");
        let etcd: Vec<(&str, String, &str)> = cp
            .etcd
            .iter()
            .map(|e| (e.name.as_str(), e.ip.to_string(), e.launch.netns.as_str()))
            .collect();
        assert_eq!(
            etcd,
            [
                ("etcd-1", "10.0.255.250".into(), "mcgl-ha-etcd-1"),
                ("etcd-2", "10.0.255.251".into(), "mcgl-ha-etcd-2"),
                ("etcd-3", "10.0.255.252".into(), "mcgl-ha-etcd-3"),
            ]
        );
        let e2 = &cp.etcd[1];
        assert_eq!(e2.vpc_port, "c-etcd-2");
        assert_eq!(
            e2.launch.argv.join(" "),
            "etcd --name etcd-2 --data-dir /run/mcgate/labs/ha/etcd-2 \
             --listen-peer-urls http://10.0.255.251:2380 \
             --initial-advertise-peer-urls http://10.0.255.251:2380 \
             --listen-client-urls http://10.0.255.251:2379 \
             --advertise-client-urls http://10.0.255.251:2379 \
             --initial-cluster etcd-1=http://10.0.255.250:2380,etcd-2=http://10.0.255.251:2380,etcd-3=http://10.0.255.252:2380 \
             --initial-cluster-state new --initial-cluster-token ha --listen-metrics-urls "
        );
        assert_eq!(e2.launch.argv.last().map(String::as_str), Some(""));
        let r = &cp.replicas[2];
        assert_eq!(
            (r.name.as_str(), r.ip.to_string(), r.launch.netns.as_str()),
            ("controller-3", "10.0.255.244".into(), "mcgl-ha-ctl-3")
        );
        assert_eq!(r.vpc_port, "c-ctl-3");
        assert_eq!(
            r.launch.argv.join(" "),
            "/usr/bin/mcgate controller --store etcd \
             --etcd-endpoints http://10.0.255.250:2379,http://10.0.255.251:2379,http://10.0.255.252:2379 \
             --replica controller-3 --listen 10.0.255.244:7400 \
             --unix /run/mcgate/labs/ha/controller-3.sock --data-dir /run/mcgate/labs/ha/controller-3"
        );
        let agent = st.hosts[2].agent.as_ref().unwrap();
        assert!(
            agent.argv.windows(2).any(|w| w
                == [
                    "--controller",
                    "https://10.0.255.242:7400,https://10.0.255.243:7400,https://10.0.255.244:7400"
                ]),
            "{:?}",
            agent.argv
        );
        assert!(
            agent
                .argv
                .windows(2)
                .any(|w| w == ["--ca", "/run/mcgate/labs/ha/ca.pem"])
        );
        // An agent without `--zone` is not given one.
        assert!(
            !agent.argv.iter().any(|a| a == "--zone"),
            "{:?}",
            agent.argv
        );
        // vpc, 3 etcd, 3 replicas, 3 hosts, 4 tasks.
        assert_eq!(
            st.namespaces.len(),
            1 + 3 + 3 + 3 + 4,
            "{:?}",
            st.namespaces
        );
        assert_eq!(
            st.controller_sockets(),
            (1..=3)
                .map(|n| std::path::PathBuf::from(format!(
                    "/run/mcgate/labs/ha/controller-{n}.sock"
                )))
                .collect::<Vec<_>>()
        );
    }
}
