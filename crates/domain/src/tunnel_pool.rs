//! Tunnel addresses: each agent gets one IPv4 address from the controller's pool, the
//! inner source of everything it sends through WireGuard and the only inner source its
//! peers accept from it (cryptokey routing).
//!
//! An address is derived from the host name (FNV-1a, then the next free one), so a
//! host usually gets the same address back after a controller restart, when the agents
//! re-register in any order.

use core::net::Ipv4Addr;
use std::collections::BTreeSet;

use ipnet::Ipv4Net;

/// The pool used when the controller is given none: 65,534 hosts.
pub const DEFAULT_POOL: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(10, 255, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("a /16 is a valid prefix"),
};

/// The first address of `pool` not in `used`, starting from one derived from `host`;
/// `None` when every usable address is taken. The network and broadcast addresses of
/// pools larger than /31 are never handed out.
pub fn assign(pool: Ipv4Net, host: &str, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (first, count) = usable(pool);
    if count == 0 {
        return None;
    }
    let start = u64::from(fnv1a(host.as_bytes())) % count;
    (0..count)
        .map(|i| {
            let offset = u32::try_from((start + i) % count).unwrap_or(0);
            Ipv4Addr::from(first.wrapping_add(offset))
        })
        .find(|a| !used.contains(a))
}

/// Whether `addr` is one [`assign`] could hand out from `pool`.
pub fn contains(pool: Ipv4Net, addr: Ipv4Addr) -> bool {
    let (first, count) = usable(pool);
    let a = u32::from(addr);
    a >= first && u64::from(a - first) < count
}

fn usable(pool: Ipv4Net) -> (u32, u64) {
    let net = u32::from(pool.network());
    let size = 1u64 << (32 - u32::from(pool.prefix_len()));
    if size <= 2 {
        (net, size)
    } else {
        (net + 1, size - 2)
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_stable_and_bounded() {
        let pool: Ipv4Net = "10.9.0.0/29".parse().unwrap();
        let mut used = BTreeSet::new();
        let first = assign(pool, "h1", &used).unwrap();
        assert_eq!(
            assign(pool, "h1", &used),
            Some(first),
            "same host, same address"
        );
        for i in 0..6 {
            let a = assign(pool, &format!("host-{i}"), &used).unwrap();
            assert!(contains(pool, a), "{a} in {pool}");
            assert_ne!(a, Ipv4Addr::new(10, 9, 0, 0));
            assert_ne!(a, Ipv4Addr::new(10, 9, 0, 7));
            assert!(used.insert(a), "{a} handed out twice");
        }
        assert_eq!(assign(pool, "one-too-many", &used), None);
    }

    #[test]
    fn tiny_pools() {
        let p31: Ipv4Net = "10.9.0.0/31".parse().unwrap();
        let p32: Ipv4Net = "10.9.0.1/32".parse().unwrap();
        let used = BTreeSet::new();
        assert!(contains(p31, assign(p31, "a", &used).unwrap()));
        assert_eq!(assign(p32, "a", &used), Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert!(contains(DEFAULT_POOL, Ipv4Addr::new(10, 255, 1, 1)));
        assert!(!contains(DEFAULT_POOL, Ipv4Addr::new(10, 254, 1, 1)));
    }
}
