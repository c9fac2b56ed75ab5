//! What the agent reads of the host's interfaces: names, indexes, MAC addresses, MTUs
//! and IPv4 addresses, from sysfs and `getifaddrs`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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
        out.push(NetDev {
            name,
            ifindex,
            mac,
            mtu,
            address,
            kind,
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
    fn macs_and_subnets() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00"), None);
        assert_eq!(
            Ipv4Subnet::new(Ipv4Addr::new(10, 1, 2, 3), 24).network_string(),
            "10.1.2.0/24"
        );
    }
}
