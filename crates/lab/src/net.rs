//! Building and removing the lab's network with iproute2.
//!
//! Every link is created directly inside its namespaces (`ip link add A netns X type veth
//! peer name B netns Y`), so the root namespace never holds one, even for a moment.
//! Underlay links (uplinks, the VPC's bridges, hosts' br0) have MTU 9001 like an EC2
//! network interface, so a 1500-byte frame plus VXLAN's 50 bytes crosses unfragmented;
//! tasks keep 1500.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::error::LabError;
use crate::state::{
    ControlPlaneState, ControllerState, ExternalState, HostState, LabState, TaskState,
};

/// MTU of the underlay links.
pub const UNDERLAY_MTU: &str = "9001";

fn run(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| LabError::Command {
            command: args.join(" "),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Command {
        command: args.join(" "),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// `ip -n NS ...`
fn ipn(ns: &str, args: &[&str]) -> Result<(), LabError> {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Sets sysctls inside a namespace.
fn sysctl(ns: &str, settings: &[String]) -> Result<(), LabError> {
    let mut v = vec!["ip", "netns", "exec", ns, "sysctl", "-q", "-w"];
    v.extend(settings.iter().map(String::as_str));
    run(&v)
}

/// Makes a namespace with loopback up and IPv6 off (no router solicitations or MLD
/// chatter on the links the agents watch).
fn add_netns(ns: &str) -> Result<(), LabError> {
    run(&["ip", "netns", "add", ns])?;
    ipn(ns, &["link", "set", "lo", "up"])?;
    sysctl(
        ns,
        &[
            "net.ipv6.conf.all.disable_ipv6=1".into(),
            "net.ipv6.conf.default.disable_ipv6=1".into(),
        ],
    )
}

/// Lists every network namespace on the machine (names only).
pub fn list_netns() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// PIDs of processes inside a namespace.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Removes a namespace (and with it every link inside); absent is fine.
pub fn del_netns(ns: &str) -> Result<(), LabError> {
    if !std::path::Path::new("/run/netns").join(ns).exists() {
        return Ok(());
    }
    run(&["ip", "netns", "del", ns])
}

/// `addr` on `dev`, `dev` up.
fn address_up(ns: &str, addr: &str, dev: &str) -> Result<(), LabError> {
    ipn(ns, &["addr", "add", addr, "dev", dev])?;
    ipn(ns, &["link", "set", dev, "up"])
}

/// `addr` on `dev`, `dev` up, and the default route via `gateway`.
fn address_up_via(ns: &str, addr: &str, dev: &str, gateway: &str) -> Result<(), LabError> {
    address_up(ns, addr, dev)?;
    ipn(ns, &["route", "add", "default", "via", gateway])
}

/// A locally administered MAC address made from the IPv4 address a bridge holds
/// (02:00:a.b.c.d), unique within a lab.
fn bridge_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// A bridge without STP or IGMP snooping, with a MAC address of its own made from
/// `ip` (`extra`: more `ip link add` settings). A bridge created without one takes its
/// lowest port's address and changes it as ports come and go (a task starting, the
/// agent adding its VXLAN device): neighbours that cached the old address would send
/// to nobody until their ARP entries expired.
fn add_bridge(ns: &str, name: &str, ip: Ipv4Addr, extra: &[&str]) -> Result<(), LabError> {
    let mac = bridge_mac(ip);
    let mut args = vec!["link", "add", name, "address", &mac];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["type", "bridge", "stp_state", "0", "mcast_snooping", "0"]);
    ipn(ns, &args)
}

/// `port` joins `bridge` as a port that multicast is never flooded to.
fn enslave_without_flood(ns: &str, port: &str, bridge: &str) -> Result<(), LabError> {
    ipn(ns, &["link", "set", port, "master", bridge])?;
    ipn(
        ns,
        &[
            "link",
            "set",
            port,
            "type",
            "bridge_slave",
            "mcast_flood",
            "off",
        ],
    )
}

/// A veth pair at the underlay MTU: `name` in `ns`, `peer` in `peer_ns`.
fn add_underlay_veth(ns: &str, name: &str, peer_ns: &str, peer: &str) -> Result<(), LabError> {
    run(&[
        "ip",
        "link",
        "add",
        name,
        "netns",
        ns,
        "mtu",
        UNDERLAY_MTU,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        peer_ns,
        "mtu",
        UNDERLAY_MTU,
    ])
}

/// The VPC router: forwarding on, a bridge per subnet holding its gateway. The bridges
/// carry no multicast at all (no snooping, no flooding on any port), like a cloud VPC.
pub fn build_vpc(st: &LabState) -> Result<(), LabError> {
    let ns = &st.vpc_netns;
    add_netns(ns)?;
    sysctl(ns, &["net.ipv4.ip_forward=1".into()])?;
    for s in &st.subnets {
        add_bridge(ns, &s.bridge, s.gateway, &["mtu", UNDERLAY_MTU])?;
        let addr = format!("{}/{}", s.gateway, s.cidr.prefix_len());
        address_up(ns, &addr, &s.bridge)?;
    }
    Ok(())
}

/// The controller's namespace and its /30 link to the VPC router.
pub fn build_controller(st: &LabState, ctl: &ControllerState, ns: &str) -> Result<(), LabError> {
    add_netns(ns)?;
    add_underlay_veth(&st.vpc_netns, "ctl", ns, "eth0")?;
    address_up(&st.vpc_netns, &format!("{}/30", ctl.vpc_ip), "ctl")?;
    address_up_via(
        ns,
        &format!("{}/30", ctl.ip),
        "eth0",
        &ctl.vpc_ip.to_string(),
    )
}

/// The HA control plane: a bridge `cp` in the VPC router holding the router's address
/// on the /28, and each etcd member and replica in a namespace of its own whose `eth0`
/// is a port of that bridge. The bridge, like the subnets', carries no multicast.
pub fn build_control_plane(st: &LabState, cp: &ControlPlaneState) -> Result<(), LabError> {
    let vpc = &st.vpc_netns;
    add_bridge(vpc, &cp.bridge, cp.router_ip, &["mtu", UNDERLAY_MTU])?;
    address_up(
        vpc,
        &format!("{}/{}", cp.router_ip, cp.net.prefix_len()),
        &cp.bridge,
    )?;
    let nodes = cp
        .etcd
        .iter()
        .map(|e| (&e.launch.netns, &e.vpc_port, e.ip))
        .chain(
            cp.replicas
                .iter()
                .map(|r| (&r.launch.netns, &r.vpc_port, r.ip)),
        );
    for (ns, port, ip) in nodes {
        add_netns(ns)?;
        add_underlay_veth(vpc, port, ns, "eth0")?;
        enslave_without_flood(vpc, port, &cp.bridge)?;
        ipn(vpc, &["link", "set", port, "up"])?;
        address_up_via(
            ns,
            &format!("{ip}/{}", cp.net.prefix_len()),
            "eth0",
            &cp.router_ip.to_string(),
        )?;
    }
    Ok(())
}

fn igmp_sysctls(v: u8) -> Vec<String> {
    vec![
        format!("net.ipv4.conf.all.force_igmp_version={v}"),
        format!("net.ipv4.conf.default.force_igmp_version={v}"),
    ]
}

/// IPv6 on in a namespace and on the links made in it from now on (the lab's `ipv6`).
fn enable_ipv6(ns: &str) -> Result<(), LabError> {
    sysctl(
        ns,
        &[
            "net.ipv6.conf.all.disable_ipv6=0".into(),
            "net.ipv6.conf.default.disable_ipv6=0".into(),
        ],
    )
}

/// A host: br0 with the host's address, an uplink into its subnet's VPC bridge. No
/// snooping and no multicast flooding on any br0 port: the agent alone delivers
/// multicast to tasks.
pub fn build_host(st: &LabState, h: &HostState) -> Result<(), LabError> {
    let ns = &h.netns;
    add_netns(ns)?;
    if st.ipv6 {
        enable_ipv6(ns)?;
    }
    // New namespaces copy IPv4 conf/all from the root namespace, not from the host:
    // set the host's value explicitly, 0 included.
    sysctl(ns, &igmp_sysctls(h.force_igmp_version))?;
    add_bridge(ns, "br0", h.underlay_ip, &[])?;
    // Set after creation, so the bridge keeps it when 1500-byte task ports join.
    ipn(ns, &["link", "set", "br0", "mtu", UNDERLAY_MTU])?;
    let bridge = st
        .subnets
        .iter()
        .find(|s| s.name == h.subnet)
        .map(|s| s.bridge.clone())
        .unwrap_or_default();
    add_underlay_veth(ns, "uplink", &st.vpc_netns, &h.vpc_port)?;
    enslave_without_flood(ns, "uplink", "br0")?;
    enslave_without_flood(&st.vpc_netns, &h.vpc_port, &bridge)?;
    ipn(&st.vpc_netns, &["link", "set", &h.vpc_port, "up"])?;
    ipn(ns, &["link", "set", "uplink", "up"])?;
    address_up_via(
        ns,
        &format!("{}/{}", h.underlay_ip, h.prefix_len),
        "br0",
        &h.gateway.to_string(),
    )
}

/// A task: its own namespace, `eth0` with its own address in the host's subnet, the
/// host end `tk...` on the host's br0 (no multicast flooding).
pub fn build_task(st: &LabState, h: &HostState, t: &TaskState) -> Result<(), LabError> {
    let ns = &t.launch.netns;
    add_netns(ns)?;
    if st.ipv6 {
        enable_ipv6(ns)?;
    }
    sysctl(ns, &igmp_sysctls(h.force_igmp_version))?;
    run(&[
        "ip", "link", "add", &t.link, "netns", &h.netns, "type", "veth", "peer", "name", "eth0",
        "netns", ns,
    ])?;
    enslave_without_flood(&h.netns, &t.link, "br0")?;
    ipn(&h.netns, &["link", "set", &t.link, "up"])?;
    address_up_via(
        ns,
        &format!("{}/{}", t.ip, h.prefix_len),
        "eth0",
        &h.gateway.to_string(),
    )?;
    ipn(ns, &["route", "add", "224.0.0.0/4", "dev", "eth0"])
}

/// An external multicast network: its namespace with a bridge `br0` holding the
/// network's first address and running the IGMP querier (snooping on, `mcast_querier`,
/// queries from its address, every 10 s), a route for 224.0.0.0/4 there (the sender's),
/// and one port `gw0` whose peer is the gateway host's link (`ext-<name>`, with the
/// host's address in the network). The port gets no flooded multicast: only the groups
/// the gateway joined reach it, as from a real IGMP router.
pub fn build_external(st: &LabState, e: &ExternalState) -> Result<(), LabError> {
    let ns = &e.netns;
    let Some(host) = st.hosts.iter().find(|h| h.name == e.host) else {
        return Err(LabError::Addresses(format!(
            "external network {} names gateway host {}, which the lab does not have",
            e.name, e.host
        )));
    };
    add_netns(ns)?;
    let mac = bridge_mac(e.address);
    let version = e.igmp_version.to_string();
    ipn(
        ns,
        &[
            "link",
            "add",
            "br0",
            "address",
            &mac,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "1",
            "mcast_querier",
            "1",
            "mcast_query_use_ifaddr",
            "1",
            "mcast_igmp_version",
            &version,
            "mcast_query_interval",
            "1000",
            "mcast_query_response_interval",
            "200",
            "mcast_last_member_interval",
            "50",
        ],
    )?;
    run(&[
        "ip",
        "link",
        "add",
        &e.host_link,
        "netns",
        &host.netns,
        "type",
        "veth",
        "peer",
        "name",
        "gw0",
        "netns",
        ns,
    ])?;
    enslave_without_flood(ns, "gw0", "br0")?;
    ipn(ns, &["link", "set", "gw0", "up"])?;
    let prefix = e.cidr.prefix_len();
    address_up(ns, &format!("{}/{prefix}", e.address), "br0")?;
    ipn(ns, &["route", "add", "224.0.0.0/4", "dev", "br0"])?;
    address_up(
        &host.netns,
        &format!("{}/{prefix}", e.host_address),
        &e.host_link,
    )
}
