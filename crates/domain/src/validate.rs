//! Checks on everything the API accepts, with an error that names the field at fault.

use core::net::{IpAddr, Ipv6Addr};

use crate::api::{IgmpMode, IgmpSettings};

/// What kind of refusal an error is; the controller maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range (400).
    Invalid,
    /// The named domain, agent, member or source does not exist (404).
    NotFound,
    /// The request conflicts with existing state: a duplicate, a subnet already taken (409).
    Conflict,
    /// The agent's session is stale or its lease expired: it must register again (409).
    Stale,
}

/// A refused request: a sentence for a person and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// The kind of refusal.
    pub kind: ErrorKind,
    /// One sentence: what is wrong and what to do.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl ModelError {
    /// A 400-class error on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Invalid,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A not-found error.
    pub fn not_found(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    /// A conflict with existing state.
    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    /// A stale session or an expired lease.
    pub fn stale(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Stale,
            message: message.into(),
            field: Some("session".to_string()),
        }
    }
}

/// The most peers one heartbeat may report dead.
pub const MAX_PEERS_DOWN: usize = 4_096;

/// The most upstream ranges one gateway may register.
pub const MAX_UPSTREAM_RANGES: usize = 256;

/// The largest VXLAN network identifier (24 bits, RFC 7348 section 5).
pub const MAX_VNI: u32 = 0x00FF_FFFF;

/// `Ok` when `ok`, else the invalid-field error that `why` words.
fn require(ok: bool, field: &str, why: impl FnOnce() -> String) -> Result<(), ModelError> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(field, why()))
    }
}

/// A domain name: 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit,
/// so it is safe in URLs, file names and tables.
pub fn domain_name(field: &str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    require(ok, field, || {
        format!(
            "domain name {name:?} is not valid: use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    })
}

/// A zone name: the same rules as a domain name (1 to 63 letters, digits, `-`, `_`, `.`).
pub fn zone(field: &str, name: &str) -> Result<(), ModelError> {
    domain_name(field, name).map_err(|_| {
        ModelError::invalid(
            field,
            format!(
                "zone {name:?} is not valid: use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        )
    })
}

/// A host name: 1 to 253 printable characters without spaces or `/` (it appears in URLs).
pub fn host_name(field: &str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != '?' && c != '#' && c != '%');
    require(ok, field, || {
        format!(
            "host name {name:?} is not valid: use 1 to 253 printable ASCII characters without spaces, '/', '?', '#' or '%'"
        )
    })
}

/// An interface name: 1 to 64 printable characters.
pub fn link_name(field: &str, name: &str) -> Result<(), ModelError> {
    require(
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_graphic()),
        field,
        || format!("interface name {name:?} is not valid: use 1 to 64 printable ASCII characters"),
    )
}

/// A multicast group: in 224.0.0.0/4 (RFC 5771) or ff00::/8 (RFC 4291 section 2.7).
pub fn group(field: &str, g: impl Into<IpAddr>) -> Result<(), ModelError> {
    let g = g.into();
    require(g.is_multicast(), field, || match g {
        IpAddr::V4(_) => format!("{g} is not a multicast group: a group must be in 224.0.0.0/4"),
        IpAddr::V6(_) => format!("{g} is not a multicast group: an IPv6 group must be in ff00::/8"),
    })
}

/// A group that may be forwarded between hosts: multicast and outside the link-local
/// block 224.0.0.0/24, which routers never forward (RFC 5771 section 4); for IPv6,
/// outside the scopes 0 to 2 (interface-local, link-local: ff02::/16 and the like,
/// RFC 4291 section 2.7), which never leave their link.
pub fn routable_group(field: &str, g: impl Into<IpAddr>) -> Result<(), ModelError> {
    let g = g.into();
    group(field, g)?;
    require(!is_link_scope(g), field, || match g {
        IpAddr::V4(_) => format!(
            "{g} is a link-local group (224.0.0.0/24), which is never forwarded between hosts"
        ),
        IpAddr::V6(_) => format!(
            "{g} is a link-scope group (scope 0 to 2, as ff02::/16), which is never forwarded between hosts: use scope 3 or above (ff05::/16, ff0e::/16, ff3e::/16)"
        ),
    })
}

pub use mcgate_wire::{is_link_local_group, is_link_scope_group};

/// Whether `g` must stay on its link: 224.0.0.0/24, or IPv6 multicast of scope 0 to 2.
pub fn is_link_scope(g: IpAddr) -> bool {
    match g {
        IpAddr::V4(g) => is_link_local_group(g),
        IpAddr::V6(g) => is_link_scope_group(g),
    }
}

/// An address of the family of `group` (a member's or a source's address); the error
/// names both.
pub fn same_family(field: &str, group: IpAddr, a: IpAddr) -> Result<(), ModelError> {
    require(a.is_ipv4() == group.is_ipv4(), field, || {
        format!(
            "{a} and the group {group} are of different address families: give an {} address for an {} group",
            family(group),
            family(group)
        )
    })
}

/// A filter whose sources are all of the family of `group`.
pub fn filter_family(
    field: &str,
    group: IpAddr,
    filter: &crate::SourceFilter<IpAddr>,
) -> Result<(), ModelError> {
    match filter
        .sources
        .iter()
        .find(|s| s.is_ipv4() != group.is_ipv4())
    {
        None => Ok(()),
        Some(s) => same_family(field, group, *s),
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// A gateway's upstream range: a prefix inside 224.0.0.0/4.
pub fn upstream_range(field: &str, r: ipnet::Ipv4Net) -> Result<(), ModelError> {
    require(
        r.prefix_len() >= 4 && r.network().is_multicast(),
        field,
        || format!("{r} is not a range of multicast groups: it must lie inside 224.0.0.0/4"),
    )
}

/// A unicast address: not unspecified, loopback, multicast, broadcast or 240.0.0.0/4;
/// for IPv6 not `::`, `::1`, multicast (ff00::/8) or IPv4-mapped (::ffff:0:0/96, give
/// the IPv4 address itself).
pub fn unicast(field: &str, a: impl Into<IpAddr>) -> Result<(), ModelError> {
    let a = a.into();
    let bad = match a {
        IpAddr::V4(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.octets()[0] >= 240
        }
        IpAddr::V6(a) => bad_v6_unicast(a),
    };
    require(!bad, field, || format!("{a} is not a unicast host address"))
}

fn bad_v6_unicast(a: Ipv6Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.to_ipv4_mapped().is_some()
}

/// A WireGuard public key: empty (none) or 32 bytes in standard base64.
pub fn public_key(field: &str, key: &str) -> Result<(), ModelError> {
    if key.is_empty() || crate::keys::decode_key(key).is_some() {
        return Ok(());
    }
    Err(ModelError::invalid(
        field,
        "a WireGuard public key is 32 bytes in standard base64 (44 characters ending in '=')",
    ))
}

/// A VNI: 1 to 2^24 - 1.
pub fn vni(field: &str, v: u32) -> Result<(), ModelError> {
    require((1..=MAX_VNI).contains(&v), field, || {
        format!("VNI {v} is out of range: a VXLAN network identifier is 1 to {MAX_VNI} (24 bits)")
    })
}

/// IGMP timer settings, within what the protocol can encode ([`IgmpSettings::validate`]:
/// RFC 3376 sections 4.1.1, 4.1.6, 4.1.7; RFC 2236 section 2.2). With IGMP off the
/// IGMPv3 ranges apply, so the settings stay valid when it is turned on as v3.
pub fn igmp_settings(mode: IgmpMode, s: &IgmpSettings) -> Result<(), ModelError> {
    let version = mode.version().unwrap_or(mcgate_wire::Version::V3);
    s.validate(version)
        .map_err(|e| ModelError::invalid(format!("igmp_settings.{}", e.field), e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn names_and_addresses() {
        assert!(domain_name("name", "prod-1.a_b").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(64)] {
            assert_eq!(
                domain_name("name", bad).unwrap_err().field.as_deref(),
                Some("name")
            );
        }
        assert!(host_name("host", "ip-10-0-2-7.ec2").is_ok());
        assert!(host_name("host", "a/b").is_err() && host_name("host", "").is_err());
        assert!(group("group", Ipv4Addr::new(233, 252, 0, 5)).is_ok());
        assert!(group("group", Ipv4Addr::new(10, 0, 0, 1)).is_err());
        assert!(routable_group("group", Ipv4Addr::new(224, 0, 0, 1)).is_err());
        assert!(unicast("address", Ipv4Addr::new(10, 0, 2, 4)).is_ok());
        for bad in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(239, 1, 1, 1),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(250, 0, 0, 1),
        ] {
            assert!(unicast("address", bad).is_err(), "{bad}");
        }
        assert!(vni("vni", 1).is_ok() && vni("vni", MAX_VNI).is_ok());
        assert!(vni("vni", 0).is_err() && vni("vni", MAX_VNI + 1).is_err());
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_groups_and_addresses() {
        for ok in ["ff3e::8000:1", "ff05::1", "ff0e::db8:1", "ff18::1"] {
            assert!(routable_group("group", v6(ok)).is_ok(), "{ok}");
        }
        for link in [
            "ff02::1",
            "ff02::1:ff00:1",
            "ff01::2",
            "ff12::5",
            "ff32::1",
            "ff00::1",
        ] {
            let e = routable_group("group", v6(link)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("group"));
            assert!(e.message.contains("link-scope"), "{}", e.message);
            assert!(group("group", v6(link)).is_ok());
        }
        let e = group("group", v6("2001:db8::1")).unwrap_err();
        assert!(e.message.contains("ff00::/8"), "{}", e.message);
        assert!(unicast("address", v6("2001:db8::5")).is_ok());
        assert!(unicast("address", v6("fe80::1")).is_ok());
        for bad in ["::", "::1", "ff3e::1", "::ffff:10.0.0.1"] {
            assert!(unicast("address", v6(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_filter_takes_sources_of_its_groups_family() {
        let g4 = IpAddr::V4(Ipv4Addr::new(232, 1, 1, 1));
        let g6 = v6("ff3e::1");
        let f6 = crate::SourceFilter::include([v6("2001:db8::1")]);
        assert!(filter_family("filter", g6, &f6).is_ok());
        let e = filter_family("entries[0].filter", g4, &f6).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(e.field.as_deref(), Some("entries[0].filter"));
        assert!(
            e.message.contains("different address families"),
            "{}",
            e.message
        );
        assert!(same_family("address", g4, v6("2001:db8::1")).is_err());
        assert!(same_family("address", g6, v6("2001:db8::1")).is_ok());
    }

    #[test]
    fn igmp_settings_bounds() {
        let ok = IgmpSettings::default();
        assert!(igmp_settings(IgmpMode::V2, &ok).is_ok());
        let long = IgmpSettings {
            query_response_interval_ms: 30_000,
            ..IgmpSettings::default()
        };
        assert!(igmp_settings(IgmpMode::V2, &long).is_err());
        assert!(igmp_settings(IgmpMode::V3, &long).is_ok());
        let zero = IgmpSettings {
            robustness: 0,
            ..IgmpSettings::default()
        };
        assert_eq!(
            igmp_settings(IgmpMode::V3, &zero)
                .unwrap_err()
                .field
                .as_deref(),
            Some("igmp_settings.robustness")
        );
    }
}
