//! What the kernel data plane's namespace tests share: hosts built like mcgate's lab,
//! the forwarding table a host gets, and a started plane.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use mcgate_dataplane::kernel::Netlink;
use mcgate_dataplane::kernel::plane::{KernelPlane, KernelPlaneConfig};
use mcgate_dataplane::kernel::wireguard::WireguardHost;
use mcgate_dataplane::{Dataplane, LinkSpec};
use mcgate_domain::SourceFilter;
use mcgate_domain::api::{
    Domain, DomainState, HostMember, IgmpMode, IgmpSettings, Peer, StreamMessage, Tunnel,
};
use mcgate_domain::forwarding::{DomainView, ForwardingTable, LocalMembership};
use mcgate_testbed::{Lab, in_netns};
use mcgate_wire::Version;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
/// These tests build network namespaces: without root they fail with a clear sentence.
#[macro_export]
macro_rules! require_root {
    () => {
        assert!(
            $crate::kernel_support::is_root(),
            "the kernel namespace tests build network namespaces and must run as root"
        );
    };
}

pub const VNI: u32 = 4300;
pub const G: Ipv4Addr = Ipv4Addr::new(233, 252, 7, 1);
pub const G_OTHER: Ipv4Addr = Ipv4Addr::new(233, 252, 7, 2);

/// A host built like the lab's: `br0` with the host's address and the `uplink` port,
/// snooping off, no port flooding multicast. Tasks `tk1`, `tk2` on it.
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    pub tasks: Vec<(String, String)>,
}

pub fn lab_hosts(lab: &mut Lab, n: u8) -> Vec<Host> {
    let r = lab.netns("r");
    lab.exec(&r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let mut hosts = Vec::new();
    for i in 1..=n {
        let h = lab.netns(&format!("h{i}"));
        let rport = format!("h{i}");
        lab.ip(
            &r,
            &[
                "link", "add", &rport, "type", "veth", "peer", "name", "uplink", "netns", &h,
            ],
        );
        lab.ip(
            &r,
            &["addr", "add", &format!("10.79.{i}.254/24"), "dev", &rport],
        );
        lab.ip(&r, &["link", "set", &rport, "up"]);
        lab.ip(
            &h,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        );
        lab.ip(&h, &["link", "set", "br0", "mtu", "9001"]);
        lab.ip(&h, &["link", "set", "uplink", "mtu", "9001"]);
        lab.ip(&r, &["link", "set", &rport, "mtu", "9001"]);
        lab.ip(&h, &["link", "set", "uplink", "master", "br0"]);
        lab.ip(
            &h,
            &[
                "link",
                "set",
                "uplink",
                "type",
                "bridge_slave",
                "mcast_flood",
                "off",
            ],
        );
        lab.ip(
            &h,
            &["addr", "add", &format!("10.79.{i}.1/24"), "dev", "br0"],
        );
        lab.ip(&h, &["link", "set", "uplink", "up"]);
        lab.ip(&h, &["link", "set", "br0", "up"]);
        lab.ip(
            &h,
            &["route", "add", "default", "via", &format!("10.79.{i}.254")],
        );
        let mut tasks = Vec::new();
        for j in 1..=2u8 {
            let t = lab.netns(&format!("t{i}{j}"));
            let port = format!("tk{j}");
            lab.ip(
                &t,
                &[
                    "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &h,
                ],
            );
            lab.ip(&h, &["link", "set", &port, "master", "br0"]);
            lab.ip(
                &h,
                &[
                    "link",
                    "set",
                    &port,
                    "type",
                    "bridge_slave",
                    "mcast_flood",
                    "off",
                ],
            );
            lab.ip(&h, &["link", "set", &port, "up"]);
            let addr = format!("10.79.{i}.{}", 10 + j);
            lab.ip(&t, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            lab.ip(&t, &["link", "set", "eth0", "up"]);
            lab.ip(&t, &["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            tasks.push((t, addr));
        }
        hosts.push(Host {
            ns: h,
            ip: Ipv4Addr::new(10, 79, i, 1),
            tasks,
        });
    }
    hosts
}

/// The table host `me` gets when `members` (host index, group) have members, the
/// domain's tunnel plain VXLAN.
pub fn table(hosts: &[Host], me: usize, members: &[(usize, Ipv4Addr)]) -> Arc<ForwardingTable> {
    table_with(hosts, me, members, Tunnel::Vxlan, &[])
}

/// Host `i`'s tunnel address.
pub fn tunnel_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 255, 0, 1 + i as u8)
}

/// The same through `tunnel`, host `i` with public key `public[i]` (standard base64,
/// none if missing), WireGuard on port 51820, tunnel address [`tunnel_address`].
pub fn table_with(
    hosts: &[Host],
    me: usize,
    members: &[(usize, Ipv4Addr)],
    tunnel: Tunnel,
    public: &[String],
) -> Arc<ForwardingTable> {
    let state = DomainState {
        domain: Domain {
            name: "d1".into(),
            vni: VNI,
            igmp: IgmpMode::V3,
            static_sources: false,
            igmp_settings: IgmpSettings::default(),
            subnets: vec![],
            hosts: vec![],
            tunnel,
        },
        peers: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Peer {
                host: format!("h{i}"),
                underlay: SocketAddrV4::new(h.ip, 4789),
                public_key: public.get(i).cloned().unwrap_or_default(),
                wireguard: SocketAddrV4::new(h.ip, 51820),
                tunnel_address: tunnel_address(i),
                egress: Vec::new(),
            })
            .collect(),
        members: members
            .iter()
            .map(|(i, g)| HostMember {
                host: format!("h{i}"),
                group: (*g).into(),
                filter: SourceFilter::any_source(),
            })
            .collect(),
        static_members: vec![],
        static_sources: vec![],
        gateways: Vec::new(),
    };
    let mut v = DomainView::new();
    v.apply(&StreamMessage::Snapshot {
        revision: 1,
        domains: vec![state],
    });
    Arc::new(ForwardingTable::compute(
        &v,
        &format!("h{me}"),
        &["tk1".into(), "tk2".into()],
        &LocalMembership::new(),
    ))
}

pub fn start_plane(h: &Host) -> (KernelPlane, Netlink) {
    start_plane_with(h, None)
}

/// A plane on `h` with this WireGuard identity.
pub fn start_plane_with(h: &Host, wireguard: Option<WireguardHost>) -> (KernelPlane, Netlink) {
    in_netns(&h.ns, || {
        let mut nl = Netlink::open().expect("netlink");
        let br = nl.link_by_name("br0").expect("br0");
        let plane = KernelPlane::start(KernelPlaneConfig {
            underlay: SocketAddrV4::new(h.ip, 4789),
            underlay_mtu: 9001,
            underlay_ifindex: Some(br.ifindex),
            wireguard,
        })
        .expect("start the kernel plane");
        let links = ["tk1", "tk2"]
            .iter()
            .map(|n| LinkSpec {
                name: n.to_string(),
                ifindex: nl.link_by_name(n).expect("task port").ifindex,
                routers: false,
                single_host: true,
                egress: Vec::new(),
                standby: Vec::new(),
            })
            .collect();
        plane.set_links(links);
        plane.set_querier(
            Version::V3,
            IgmpSettings {
                query_response_interval_ms: 2_000,
                ..IgmpSettings::default()
            },
        );
        (plane, nl)
    })
}
