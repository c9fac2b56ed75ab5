//! The vocabulary of group membership shared by the IGMP router, the domain model and
//! the data planes: IGMP versions, filter modes and source filters (RFC 3376 section
//! 3.2), and which groups must stay on their link: 224.0.0.0/24 (RFC 5771 section 4)
//! and IPv6 multicast of interface-local or link-local scope (RFC 4291 section 2.7).
//!
//! It lives here, below every other crate, so that naming a filter mode never requires
//! compiling the IGMP router.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::BTreeSet;

/// An IGMP version: of a message, of a querier, or of a group's compatibility mode
/// (RFC 3376 section 7). Ordered: `V1 < V2 < V3`, so the version in force between two
/// parties is the `min` of theirs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// IGMPv1, RFC 1112 appendix I.
    V1,
    /// IGMPv2, RFC 2236.
    V2,
    /// IGMPv3, RFC 3376.
    V3,
}

impl Version {
    /// The version number: 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The version numbered `n`, if it is one.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// Whether `group` is in 224.0.0.0/24, the Local Network Control Block: never forwarded
/// off the link (RFC 5771 section 4) and never reported by hosts (RFC 3376 section 5).
pub fn is_link_local_group(group: Ipv4Addr) -> bool {
    let [a, b, c, _] = group.octets();
    a == 224 && b == 0 && c == 0
}

/// The scope of an IPv6 multicast address (RFC 4291 section 2.7): the low four bits of
/// its second byte, 0 to 15 (1 interface-local, 2 link-local, 5 site-local, 8
/// organization-local, 14 global). `None` if `addr` is not multicast (not in ff00::/8).
pub fn multicast_scope(addr: Ipv6Addr) -> Option<u8> {
    let [first, flags_scope, ..] = addr.octets();
    (first == 0xff).then_some(flags_scope & 0x0f)
}

/// Whether `group` is an IPv6 multicast address that must never leave its link: scope
/// 0 (reserved), 1 (interface-local) or 2 (link-local), such as ff02::/16, whatever its
/// flags (ff12::, ff32:: ...). The IPv6 counterpart of [`is_link_local_group`]: never
/// forwarded off the link (RFC 4291 section 2.7), and, like ff02::1, of no use to a
/// router's forwarding state. A non-multicast address is not a group: `false`.
pub fn is_link_scope_group(group: Ipv6Addr) -> bool {
    multicast_scope(group).is_some_and(|scope| scope <= 2)
}

/// The solicited-node multicast address of `unicast` (RFC 4291 section 2.7.1):
/// ff02::1:ff00:0/104 followed by the low 24 bits of the address.
pub fn solicited_node(unicast: Ipv6Addr) -> Ipv6Addr {
    let o = unicast.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `group` is a solicited-node multicast address (in ff02::1:ff00:0/104).
pub fn is_solicited_node(group: Ipv6Addr) -> bool {
    group.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// INCLUDE or EXCLUDE (RFC 3376 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Only the listed sources are wanted.
    Include,
    /// Every source but the listed ones is wanted.
    Exclude,
}

/// A filter mode and its source list. `EXCLUDE {}` is plain any-source membership (*,G).
/// The sources are IPv4 addresses by default, or IPv6 ones (MLDv2, RFC 3810 section 2):
/// the filter logic is the same for both families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(bound(deserialize = "A: Ord + serde::Deserialize<'de>"))]
pub struct SourceFilter<A = Ipv4Addr> {
    /// The filter mode.
    pub mode: FilterMode,
    /// The source list, sorted and without duplicates.
    pub sources: BTreeSet<A>,
}

impl<A: Ord + Copy> SourceFilter<A> {
    /// Any-source membership: EXCLUDE {}.
    pub fn any_source() -> Self {
        Self {
            mode: FilterMode::Exclude,
            sources: BTreeSet::new(),
        }
    }

    /// INCLUDE with the given sources.
    pub fn include(sources: impl IntoIterator<Item = A>) -> Self {
        Self {
            mode: FilterMode::Include,
            sources: sources.into_iter().collect(),
        }
    }

    /// EXCLUDE with the given sources.
    pub fn exclude(sources: impl IntoIterator<Item = A>) -> Self {
        Self {
            mode: FilterMode::Exclude,
            sources: sources.into_iter().collect(),
        }
    }

    /// Whether traffic from `source` passes this filter.
    pub fn allows(&self, source: A) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.contains(&source),
            FilterMode::Exclude => !self.sources.contains(&source),
        }
    }

    /// Whether this filter lets nothing through (INCLUDE {}), which means no membership.
    pub fn is_empty(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }

    /// The union of two memberships on one host or link, as RFC 3376 section 3.2 merges
    /// socket states into an interface state: any EXCLUDE makes the result EXCLUDE of the
    /// sources excluded by every EXCLUDE and included by none.
    pub fn merge(&self, other: &Self) -> Self {
        use FilterMode::*;
        match (self.mode, other.mode) {
            (Include, Include) => Self::include(self.sources.union(&other.sources).copied()),
            (Exclude, Exclude) => Self::exclude(self.sources.intersection(&other.sources).copied()),
            (Exclude, Include) => Self::exclude(self.sources.difference(&other.sources).copied()),
            (Include, Exclude) => Self::exclude(other.sources.difference(&self.sources).copied()),
        }
    }

    /// The same filter over other addresses: the mode kept, each source mapped by `f`
    /// (`None` leaves it out).
    pub fn filter_map<B: Ord + Copy>(&self, f: impl FnMut(A) -> Option<B>) -> SourceFilter<B> {
        SourceFilter {
            mode: self.mode,
            sources: self.sources.iter().copied().filter_map(f).collect(),
        }
    }
}

impl From<SourceFilter<Ipv4Addr>> for SourceFilter<IpAddr> {
    /// An IGMP filter as a family-neutral one (the domain model's).
    fn from(f: SourceFilter<Ipv4Addr>) -> Self {
        f.filter_map(|a| Some(IpAddr::V4(a)))
    }
}

impl From<SourceFilter<Ipv6Addr>> for SourceFilter<IpAddr> {
    /// An MLD filter as a family-neutral one (the domain model's).
    fn from(f: SourceFilter<Ipv6Addr>) -> Self {
        f.filter_map(|a| Some(IpAddr::V6(a)))
    }
}

impl SourceFilter<IpAddr> {
    /// The filter's IPv4 sources only, for an IPv4 group (a validated filter has no
    /// other).
    pub fn to_v4(&self) -> SourceFilter<Ipv4Addr> {
        self.filter_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn versions_order_and_number() {
        assert!(Version::V1 < Version::V2 && Version::V2 < Version::V3);
        assert_eq!(Version::V3.min(Version::V2), Version::V2);
        for v in [Version::V1, Version::V2, Version::V3] {
            assert_eq!(Version::from_number(v.number()), Some(v));
        }
        assert_eq!(Version::from_number(0), None);
        assert_eq!(Version::from_number(4), None);
        assert_eq!(Version::V2.to_string(), "v2");
    }

    #[test]
    fn filters_convert_between_families() {
        let v4 = SourceFilter::include([a(1), a(2)]);
        let ip: SourceFilter<IpAddr> = v4.clone().into();
        assert_eq!(ip.mode, FilterMode::Include);
        assert_eq!(ip.to_v4(), v4);
        let v6: SourceFilter<IpAddr> =
            SourceFilter::exclude(["2001:db8::1".parse::<Ipv6Addr>().unwrap()]).into();
        assert_eq!(v6.to_v4(), SourceFilter::any_source());
        // The same JSON as the IPv4 filter it came from.
        assert_eq!(
            serde_json::to_string(&ip).unwrap(),
            serde_json::to_string(&v4).unwrap()
        );
    }

    #[test]
    fn link_local_block_is_224_0_0_slash_24() {
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 22)));
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 255)));
        assert!(!is_link_local_group(Ipv4Addr::new(224, 0, 1, 1)));
        assert!(!is_link_local_group(Ipv4Addr::new(239, 0, 0, 1)));
    }

    #[test]
    fn ipv6_link_scope_is_scope_2_or_below() {
        let g = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        for link in [
            "ff02::1",
            "ff02::16",
            "ff02::1:ff12:4cb7",
            "ff01::1",
            "ff12::5",
            "ff32::8000:1",
            "ff00::1",
        ] {
            assert!(is_link_scope_group(g(link)), "{link}");
        }
        for wide in [
            "ff05::1:3",
            "ff0e::1",
            "ff3e::8000:1",
            "ff08::2",
            "fe80::1",
            "2001:db8::1",
            "::",
        ] {
            assert!(!is_link_scope_group(g(wide)), "{wide}");
        }
        assert_eq!(multicast_scope(g("ff3e::1")), Some(14));
        assert_eq!(multicast_scope(g("ff15::1")), Some(5));
        assert_eq!(multicast_scope(g("fe80::1")), None);
    }

    #[test]
    fn solicited_node_takes_the_low_24_bits() {
        // The host of fixtures/mldv2-report-current reports its own solicited-node group.
        let host: Ipv6Addr = "fe80::14a1:63ff:fe12:4cb7".parse().unwrap();
        let sn = solicited_node(host);
        assert_eq!(sn, "ff02::1:ff12:4cb7".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node(sn) && is_link_scope_group(sn));
        assert!(!is_solicited_node("ff02::1:fe12:4cb7".parse().unwrap()));
        assert!(!is_solicited_node("ff02::1".parse().unwrap()));
    }

    #[test]
    fn merge_follows_rfc3376_section_3_2() {
        let inc = SourceFilter::include([a(1), a(2)]);
        let exc = SourceFilter::exclude([a(2), a(3)]);
        assert_eq!(inc.merge(&exc), SourceFilter::exclude([a(3)]));
        assert_eq!(exc.merge(&inc), SourceFilter::exclude([a(3)]));
        assert_eq!(
            inc.merge(&SourceFilter::include([a(4)])),
            SourceFilter::include([a(1), a(2), a(4)])
        );
        assert_eq!(
            exc.merge(&SourceFilter::exclude([a(3), a(4)])),
            SourceFilter::exclude([a(3)])
        );
        assert!(exc.allows(a(1)) && !exc.allows(a(2)));
        assert!(inc.allows(a(1)) && !inc.allows(a(3)));
    }
}
