//! What the agent reads of the host's interfaces: names, indexes, MAC addresses, MTUs
//! and IPv4 addresses, from sysfs and `getifaddrs`, and each link's IPv6 link-local
//! address with its DAD state, from `/proc/net/if_inet6`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet_lite::Ipv4Subnet;

/// One interface as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// MAC address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: usize,
    /// First IPv4 address, if any.
    pub address: Option<Ipv4Addr>,
    /// The device kind (`IFLA_INFO_KIND`: "veth", "bridge"...), empty for a plain
    /// device or when the kernel could not be asked.
    pub kind: String,
    /// IPv6 on the link: whether it has a link-local address to send MLD queries from.
    pub ipv6: Ipv6Link,
}

/// IPv6 on one link, as the MLD querier needs it: a link-local address that has left
/// duplicate address detection (RFC 3810 section 5.1.14: queries come from a link-local
/// source; RFC 4862 section 5.4: a tentative address must not be used yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6Link {
    /// IPv6 is off on the link (`disable_ipv6`) or in the kernel: no MLD querier.
    #[default]
    Disabled,
    /// IPv6 is on but the link has no link-local address (yet, or `addr_gen_mode none`).
    NoLinkLocal,
    /// The link-local address is still in DAD (or DAD failed): it cannot source queries.
    Tentative(Ipv6Addr),
    /// The link-local address queries come from.
    Ready(Ipv6Addr),
}

impl Ipv6Link {
    /// The address to send queries from, once there is one.
    pub fn ready(self) -> Option<Ipv6Addr> {
        match self {
            Ipv6Link::Ready(a) => Some(a),
            _ => None,
        }
    }

    /// The state's name in `/v1/stats` (`mld.state` when no querier runs).
    pub fn name(self) -> &'static str {
        match self {
            Ipv6Link::Disabled => "ipv6_disabled",
            Ipv6Link::NoLinkLocal => "no_link_local",
            Ipv6Link::Tentative(_) => "tentative",
            Ipv6Link::Ready(_) => "ready",
        }
    }
}

/// `IFA_F_DADFAILED` and `IFA_F_TENTATIVE` (linux/if_addr.h).
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

pub use mcgate_sys::if_inet6::parse_if_inet6;

/// A link's IPv6 state from whether IPv6 is on there and its link-local addresses with
/// their flags: the lowest address out of DAD, else the lowest one still in it.
pub fn ipv6_link(enabled: bool, link_local: &[(Ipv6Addr, u32)]) -> Ipv6Link {
    if !enabled {
        return Ipv6Link::Disabled;
    }
    let unusable = |flags: u32| flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0;
    let ready = link_local
        .iter()
        .filter(|(_, f)| !unusable(*f))
        .map(|(a, _)| *a)
        .min();
    let tentative = link_local.iter().map(|(a, _)| *a).min();
    match (ready, tentative) {
        (Some(a), _) => Ipv6Link::Ready(a),
        (None, Some(a)) => Ipv6Link::Tentative(a),
        (None, None) => Ipv6Link::NoLinkLocal,
    }
}

/// Whether IPv6 is on for interface `name` (no `disable_ipv6`, and a kernel with IPv6).
fn ipv6_enabled(name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"))
        .is_ok_and(|s| s.trim() == "0")
}

impl NetDev {
    /// Whether the link carries a single host: a veth has exactly one network namespace
    /// at its other end (a task's, or a pod's). A bridge, a physical port or a macvlan
    /// may carry many. Fast leave is only right on such a link (RFC 3376 6.6.3 assumes
    /// several hosts may share one).
    pub fn single_host(&self) -> bool {
        self.kind == "veth"
    }
}

/// Whether `name` matches any of `patterns` (see [`glob_match`]).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, name))
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters and `?` one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| m(rest, n.get(i..).unwrap_or(&[]))),
            Some(('?', rest)) => n.split_first().is_some_and(|(_, nr)| m(rest, nr)),
            Some((c, rest)) => n.split_first().is_some_and(|(x, nr)| x == c && m(rest, nr)),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

fn read_sys(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// IPv4 addresses (with prefix length) by interface name.
pub fn ipv4_addresses() -> BTreeMap<String, Vec<(Ipv4Addr, u8)>> {
    let mut out: BTreeMap<String, Vec<(Ipv4Addr, u8)>> = BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for a in addrs {
        let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        let prefix = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|m| u32::from(m.ip()).count_ones() as u8)
            .unwrap_or(32);
        out.entry(a.interface_name.clone())
            .or_default()
            .push((ip, prefix));
    }
    out
}

/// Whether an interface with these sysfs `flags` and `operstate` can carry frames now:
/// administratively up and not known to be down. A veth is "lowerlayerdown" until its peer
/// is up, and a query sent before then is lost (`ENETDOWN`), which would leave a new task's
/// early reports unanswered until the next startup query. Devices that report no state
/// ("unknown": tun, dummy) count as up.
pub fn usable(flags: u32, operstate: &str) -> bool {
    const IFF_UP: u32 = 0x1;
    flags & IFF_UP != 0 && !matches!(operstate, "down" | "lowerlayerdown" | "notpresent")
}

/// Each device's kind by index, from one rtnetlink dump; empty if the dump fails (then
/// no link counts as single-host, the safe side).
fn link_kinds() -> BTreeMap<u32, String> {
    let dump = mcgate_dataplane::kernel::Netlink::open().and_then(|mut nl| nl.links());
    match dump {
        Ok(links) => links.into_iter().map(|l| (l.ifindex, l.kind)).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list device kinds; no link counts as single-host");
            BTreeMap::new()
        }
    }
}

/// Every interface whose name matches one of `patterns` and that is [`usable`] now.
pub fn scan(patterns: &[String]) -> Vec<NetDev> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let addrs = ipv4_addresses();
    let link_local =
        parse_if_inet6(&std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default());
    let kinds = link_kinds();
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches_any(patterns, &name) {
            continue;
        }
        let flags = read_sys(&name, "flags")
            .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        if !usable(flags, &read_sys(&name, "operstate").unwrap_or_default()) {
            continue;
        }
        let Some(ifindex) = read_sys(&name, "ifindex").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let mac = read_sys(&name, "address")
            .and_then(|s| parse_mac(&s))
            .unwrap_or([0; 6]);
        let mtu = read_sys(&name, "mtu")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500);
        let address = addrs.get(&name).and_then(|v| v.first()).map(|(ip, _)| *ip);
        let kind = kinds.get(&ifindex).cloned().unwrap_or_default();
        let ipv6 = ipv6_link(
            ipv6_enabled(&name),
            link_local.get(&name).map(Vec::as_slice).unwrap_or_default(),
        );
        out.push(NetDev {
            name,
            ifindex,
            mac,
            mtu,
            address,
            kind,
            ipv6,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The interface holding `ip`, its MTU and the subnet of that address.
pub fn underlay_interface(ip: Ipv4Addr) -> Option<(String, usize, Ipv4Subnet)> {
    for (name, list) in ipv4_addresses() {
        for (addr, prefix) in list {
            if addr == ip {
                let mtu = read_sys(&name, "mtu")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1500);
                return Some((name, mtu, Ipv4Subnet::new(addr, prefix)));
            }
        }
    }
    None
}

/// A tiny IPv4 subnet type, so this module needs no extra dependency.
pub mod ipnet_lite {
    use std::net::Ipv4Addr;

    /// An address with a prefix length.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Ipv4Subnet {
        /// The address.
        pub addr: Ipv4Addr,
        /// The prefix length.
        pub prefix: u8,
    }

    impl Ipv4Subnet {
        /// A subnet from an address and a prefix length (clamped to 32).
        pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
            Self {
                addr,
                prefix: prefix.min(32),
            }
        }

        /// The network in `a.b.c.d/n` form, host bits cleared.
        pub fn network_string(&self) -> String {
            let mask = if self.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(self.prefix))
            };
            let net = Ipv4Addr::from(u32::from(self.addr) & mask);
            format!("{net}/{}", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_that_carry_frames_are_usable() {
        assert!(usable(0x1003, "up"));
        assert!(usable(0x1091, "unknown"));
        assert!(!usable(0x1002, "down"), "administratively down");
        assert!(!usable(0x1003, "lowerlayerdown"), "veth whose peer is down");
        assert!(!usable(0x1003, "down"));
        assert!(!usable(0x1003, "notpresent"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("tk*", "tk1"));
        assert!(glob_match("tk*", "tk"));
        assert!(!glob_match("tk*", "br0"));
        assert!(glob_match("eth?", "eth0"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(glob_match("br0", "br0"));
        assert!(glob_match("*a*b", "xxaYYb"));
    }

    #[test]
    fn link_local_addresses_and_their_dad_state() {
        let text = "\
fe800000000000000000000000000002 04 40 20 80     tk1
fe800000000000000000000000000001 05 40 20 c0     tk2
fe800000000000000000000000000003 05 40 20 80     tk2
20010db8000000000000000000000001 04 40 00 80     tk1
fe800000000000000000000000000009 06 40 20 48     tk3
garbage line
";
        let ll = parse_if_inet6(text);
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let state =
            |name: &str| ipv6_link(true, ll.get(name).map(Vec::as_slice).unwrap_or_default());
        assert_eq!(
            state("tk1"),
            Ipv6Link::Ready(a("fe80::2")),
            "the global address is not one"
        );
        assert_eq!(
            state("tk2"),
            Ipv6Link::Ready(a("fe80::3")),
            "fe80::1 is tentative (0x40)"
        );
        assert_eq!(
            state("tk3"),
            Ipv6Link::Tentative(a("fe80::9")),
            "DAD failed"
        );
        assert_eq!(state("tk4"), Ipv6Link::NoLinkLocal);
        assert_eq!(ipv6_link(false, &ll["tk1"]), Ipv6Link::Disabled);
        assert_eq!(Ipv6Link::Ready(a("fe80::2")).ready(), Some(a("fe80::2")));
        assert_eq!(Ipv6Link::Tentative(a("fe80::2")).ready(), None);
    }

    #[test]
    fn macs_and_subnets() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00"), None);
        assert_eq!(
            Ipv4Subnet::new(Ipv4Addr::new(10, 1, 2, 3), 24).network_string(),
            "10.1.2.0/24"
        );
    }
}
