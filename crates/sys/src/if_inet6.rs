//! `/proc/net/if_inet6`: the IPv6 addresses of a network namespace's interfaces, as the
//! kernel lists them (one address a line: 32 hex digits, ifindex, prefix length, scope,
//! `IFA_F_*` flags, name; all hexadecimal). Text only: reading the file is the caller's.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

/// The link-local scope as the file writes it (`IPV6_ADDR_LINKLOCAL`).
const SCOPE_LINK: u32 = 0x20;

/// The link-local addresses of each interface with their `IFA_F_*` flags, from the text
/// of `/proc/net/if_inet6`. Lines that do not parse are skipped.
pub fn parse_if_inet6(text: &str) -> BTreeMap<String, Vec<(Ipv6Addr, u32)>> {
    let mut out: BTreeMap<String, Vec<(Ipv6Addr, u32)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, name] = f.as_slice() else {
            continue;
        };
        let (Ok(addr), Ok(scope), Ok(flags)) = (
            u128::from_str_radix(addr, 16),
            u32::from_str_radix(scope, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        if scope == SCOPE_LINK {
            out.entry((*name).to_string())
                .or_default()
                .push((Ipv6Addr::from(addr), flags));
        }
    }
    out
}
