//! `--iface`: an interface name resolved to its index and IPv4 address.

use std::net::Ipv4Addr;

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
}
