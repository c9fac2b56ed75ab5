//! `--iface`: an interface name resolved to its index (what IPv6 needs) and IPv4 address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};

use crate::error::PerfError;

/// A network interface of this namespace.
#[derive(Debug, Clone)]
pub struct Iface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its first IPv4 address, if it has one.
    pub addr: Option<Ipv4Addr>,
}

impl Iface {
    /// Finds an interface by name.
    pub fn lookup(name: &str) -> Result<Iface, PerfError> {
        if name.is_empty() || name.len() >= 16 || name.contains(['/', '\0']) {
            return Err(PerfError::NoSuchInterface(name.to_string()));
        }
        let index = nix::net::if_::if_nametoindex(name)
            .map_err(|_| PerfError::NoSuchInterface(name.to_string()))?;
        let addr = nix::ifaddrs::getifaddrs().ok().and_then(|mut it| {
            it.find_map(|a| {
                (a.interface_name == name)
                    .then(|| a.address?.as_sockaddr_in().map(|s| s.ip()))
                    .flatten()
            })
        });
        Ok(Iface {
            name: name.to_string(),
            index,
            addr,
        })
    }

    /// Its IPv4 address, or the error saying it has none.
    pub fn ipv4(&self) -> Result<Ipv4Addr, PerfError> {
        self.addr
            .ok_or_else(|| PerfError::NoIpv4(self.name.clone()))
    }
}

/// `group:port` as a socket address to bind or send to. An IPv6 link-scope group gets
/// the interface's index as its scope: the kernel refuses such an address without one
/// (RFC 4007 section 6).
pub fn scoped(group: IpAddr, port: u16, iface: Option<&Iface>) -> SocketAddr {
    match group {
        IpAddr::V6(g) => {
            let scope = match iface {
                Some(i) if crate::args::is_link_scope(g) => i.index,
                _ => 0,
            };
            SocketAddr::V6(SocketAddrV6::new(g, port, 0, scope))
        }
        v4 => SocketAddr::new(v4, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exists_and_nonsense_does_not() {
        let lo = Iface::lookup("lo").unwrap();
        assert_eq!(lo.addr, Some(Ipv4Addr::LOCALHOST));
        assert!(matches!(
            Iface::lookup("nosuchif0"),
            Err(PerfError::NoSuchInterface(_))
        ));
        assert!(Iface::lookup("").is_err());
    }

    #[test]
    fn only_link_scope_groups_get_a_scope() {
        let lo = Iface::lookup("lo").unwrap();
        let at = |g: &str| scoped(g.parse().unwrap(), 5001, Some(&lo)).to_string();
        assert_eq!(at("ff02::1:3"), format!("[ff02::1:3%{}]:5001", lo.index));
        assert_eq!(at("ff3e::8000:1"), "[ff3e::8000:1]:5001");
        assert_eq!(at("233.252.0.5"), "233.252.0.5:5001");
        let none = scoped("ff02::1".parse().unwrap(), 7, None).to_string();
        assert_eq!(none, "[ff02::1]:7");
    }
}
