//! The group ranges a proxy reports upstream (`--upstream-groups 233.252.0.0/24,...`).

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// One IPv4 multicast prefix, `a.b.c.d/n`, inside 224.0.0.0/4 and never covering the
/// link-local block 224.0.0.0/24 alone (those groups never leave a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupRange {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a group range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not `ADDRESS/LENGTH`.
    #[error("expected a multicast prefix like 233.252.0.0/24")]
    Syntax,
    /// The length is above 32.
    #[error("the prefix length must be 4 to 32")]
    Length,
    /// Host bits are set.
    #[error("host bits are set: the network address of /{0} is {1}")]
    HostBits(u8, Ipv4Addr),
    /// Not inside 224.0.0.0/4.
    #[error("not a multicast range: it must lie inside 224.0.0.0/4")]
    NotMulticast,
    /// Only the link-local block, whose groups never leave a link.
    #[error("224.0.0.0/24 is link-local (RFC 5771): its groups never leave a link")]
    LinkLocal,
}

impl GroupRange {
    /// The range `network/prefix`, checked as [`FromStr`] checks it.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, RangeError> {
        if prefix > 32 {
            return Err(RangeError::Length);
        }
        if prefix < 4 {
            return Err(RangeError::NotMulticast);
        }
        let mask = mask(prefix);
        let net = Ipv4Addr::from(u32::from(network) & mask);
        if net != network {
            return Err(RangeError::HostBits(prefix, net));
        }
        if !network.is_multicast() {
            return Err(RangeError::NotMulticast);
        }
        if prefix >= 24 && mcgate_wire::is_link_local_group(network) {
            return Err(RangeError::LinkLocal);
        }
        Ok(Self { network, prefix })
    }

    /// The range's network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The range's prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `group` is inside the range (link-local groups never are).
    pub fn contains(&self, group: Ipv4Addr) -> bool {
        !mcgate_wire::is_link_local_group(group)
            && u32::from(group) & mask(self.prefix) == u32::from(self.network)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for GroupRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, RangeError> {
        let (addr, len) = s.trim().split_once('/').ok_or(RangeError::Syntax)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| RangeError::Syntax)?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeError::Syntax);
        }
        let prefix: u8 = len.parse().map_err(|_| RangeError::Syntax)?;
        Self::new(network, prefix)
    }
}

impl fmt::Display for GroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a comma-separated list of ranges (`--upstream-groups`); empty parts are
/// refused, so a stray comma is reported rather than ignored.
pub fn parse_ranges(s: &str) -> Result<Vec<GroupRange>, (String, RangeError)> {
    s.split(',')
        .map(|part| part.parse().map_err(|e| (part.to_string(), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_contains() {
        let r: GroupRange = "233.252.0.0/24".parse().unwrap();
        assert_eq!(r.to_string(), "233.252.0.0/24");
        assert!(r.contains("233.252.0.9".parse().unwrap()));
        assert!(!r.contains("233.252.1.9".parse().unwrap()));
        let all: GroupRange = "224.0.0.0/4".parse().unwrap();
        assert!(all.contains("239.1.1.1".parse().unwrap()));
        // Link-local groups are never proxied, even inside a wide range.
        assert!(!all.contains("224.0.0.22".parse().unwrap()));
        for (bad, err) in [
            (
                "233.252.0.1/24",
                RangeError::HostBits(24, "233.252.0.0".parse().unwrap()),
            ),
            ("10.0.0.0/8", RangeError::NotMulticast),
            ("0.0.0.0/0", RangeError::NotMulticast),
            ("224.0.0.0/24", RangeError::LinkLocal),
            ("233.252.0.0/33", RangeError::Length),
            ("233.252.0.0", RangeError::Syntax),
            ("233.252.0.0/+8", RangeError::Syntax),
            ("233.252.0.0/", RangeError::Syntax),
            ("", RangeError::Syntax),
        ] {
            assert_eq!(bad.parse::<GroupRange>(), Err(err), "{bad}");
        }
        assert_eq!(
            parse_ranges("233.252.0.0/24,239.1.0.0/16").unwrap().len(),
            2
        );
        assert_eq!(parse_ranges("233.252.0.0/24,").unwrap_err().0, "");
    }
}
