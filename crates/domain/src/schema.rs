//! JSON Schema pieces for the API types of [`crate::api`], used by their `utoipa::ToSchema`
//! derives, so the OpenAPI document states exactly what the checks of [`crate::validate`]
//! accept: IPv4 addresses as canonical dotted quads (no leading zeros, as Rust parses
//! them), IPv6 addresses in hexadecimal groups with at most one `::` (RFC 4291 section
//! 2.2, without the embedded dotted form), groups in 224.0.0.0/4 (RFC 5771) or ff00::/8,
//! routable groups outside 224.0.0.0/24 and outside IPv6 scopes 0 to 2, unicast
//! addresses, names with their character sets and lengths. Fields that take either
//! family have the format `ip` and a pattern with one alternative per family.
//!
//! Each pattern is an ECMA-262 regular expression anchored at both ends. The tests at the
//! bottom check each one against the validator it mirrors; the one exception is the
//! IPv6 unicast pattern, which does not single out `::` and `::1` written with zeros
//! (the server refuses them).

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Schema, SchemaFormat, SchemaType, Type,
};

/// One decimal octet, 0 to 255, without leading zeros.
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
/// One decimal octet, 1 to 255.
const NONZERO_OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[1-9])";
/// First octets of unicast addresses: 1 to 126 and 128 to 223 (0, 127 and 224 up are not).
const UNICAST_FIRST: &str =
    "(?:22[0-3]|2[01][0-9]|1[3-9][0-9]|12[0-689]|1[01][0-9]|[1-9][0-9]|[1-9])";
/// A port, 0 to 65535.
const PORT: &str =
    "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)";
/// A prefix length, 0 to 32.
const PREFIX_LEN: &str = "(?:3[0-2]|[12][0-9]|[0-9])";

/// Characters of a host name: printable ASCII without space, `/`, `?`, `#` or `%`.
pub const HOST_NAME_PATTERN: &str = "^[!\"$&-.0->@-~]{1,253}$";
/// A domain name: letters, digits, `-`, `_`, `.`, starting with a letter or digit.
pub const DOMAIN_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";
/// An interface name: 1 to 64 printable ASCII characters.
pub const LINK_NAME_PATTERN: &str = "^[!-~]{1,64}$";

fn quad(first: &str) -> String {
    format!("{first}\\.{OCTET}\\.{OCTET}\\.{OCTET}")
}

/// One group of an IPv6 address: 1 to 4 hexadecimal digits.
const HEXTET: &str = "[0-9a-fA-F]{1,4}";
/// The first group of an IPv6 multicast address: ffXY.
const V6_GROUP_FIRST: &str = "[fF]{2}[0-9a-fA-F]{2}";
/// The first group of an IPv6 multicast address of scope 3 to 15 (the low nibble of
/// the second byte, RFC 4291 section 2.7).
const V6_ROUTABLE_FIRST: &str = "[fF]{2}[0-9a-fA-F][3-9a-fA-F]";
/// A first group that is not ffXY (every IPv6 address outside ff00::/8).
const V6_UNICAST_FIRST: &str =
    "(?:[0-9a-fA-F]{1,3}|[0-9a-eA-E][0-9a-fA-F]{3}|[fF][0-9a-eA-E][0-9a-fA-F]{2})";

/// An IPv6 address in hexadecimal groups (no embedded dotted quad), unanchored: eight
/// groups, or fewer with one `::`. With `first`, the first group is written out and
/// matches `first`; without, it may also be elided (`::` at the start).
fn ipv6_body(first: Option<&str>) -> String {
    let f = first.unwrap_or(HEXTET);
    let mut alternatives = vec![format!("{f}(?::{HEXTET}){{7}}")];
    for left in 1..=7 {
        let right = match 7 - left {
            0 => String::new(),
            n => format!("(?:{HEXTET}(?::{HEXTET}){{0,{}}})?", n - 1),
        };
        alternatives.push(format!("{f}(?::{HEXTET}){{{}}}::{right}", left - 1));
    }
    if first.is_none() {
        alternatives.push(format!("::(?:{HEXTET}(?::{HEXTET}){{0,6}})?"));
    }
    format!("(?:{})", alternatives.join("|"))
}

/// One alternative per family, anchored.
fn either(v4: &str, v6: &str) -> String {
    format!("^(?:{v4}|{v6})$")
}

/// Any IPv4 address.
pub fn ipv4_pattern() -> String {
    format!("^{}$", quad(OCTET))
}

/// Any IPv4 or IPv6 address.
pub fn ip_pattern() -> String {
    either(&quad(OCTET), &ipv6_body(None))
}

/// A group in 224.0.0.0/4 or ff00::/8.
pub fn group_pattern() -> String {
    either(
        &quad("(?:22[4-9]|23[0-9])"),
        &ipv6_body(Some(V6_GROUP_FIRST)),
    )
}

/// A group in 224.0.0.0/4 outside 224.0.0.0/24, or in ff00::/8 with a scope of 3 to 15.
pub fn routable_group_pattern() -> String {
    let v4 = format!(
        "(?:(?:22[5-9]|23[0-9])\\.{OCTET}\\.{OCTET}|224\\.{NONZERO_OCTET}\\.{OCTET}|224\\.0\\.{NONZERO_OCTET})\\.{OCTET}"
    );
    either(&v4, &ipv6_body(Some(V6_ROUTABLE_FIRST)))
}

/// A unicast address (see [`crate::validate::unicast`]).
fn unicast_body() -> String {
    // 0.0.0.0/8 other than 0.0.0.0 itself is accepted, as the validator does.
    format!(
        "(?:{}|0\\.(?:{NONZERO_OCTET}\\.{OCTET}\\.{OCTET}|0\\.{NONZERO_OCTET}\\.{OCTET}|0\\.0\\.{NONZERO_OCTET}))",
        quad(UNICAST_FIRST)
    )
}

/// A unicast address of either family.
pub fn unicast_pattern() -> String {
    let v6 = format!(
        "(?:{}|::(?:{HEXTET}(?::{HEXTET}){{0,6}})?)",
        ipv6_body(Some(V6_UNICAST_FIRST))
    );
    either(&unicast_body(), &v6)
}

/// A unicast address and a port, `A.B.C.D:PORT`.
pub fn underlay_pattern() -> String {
    format!("^{}:{PORT}$", unicast_body())
}

/// An IPv4 prefix, `A.B.C.D/LEN`.
pub fn ipv4_net_pattern() -> String {
    format!("^{}/{PREFIX_LEN}$", quad(OCTET))
}

/// An upstream range: a prefix inside 224.0.0.0/4, `A.B.C.D/LEN` with LEN 4 to 32
/// (see [`crate::validate::upstream_range`]).
pub fn upstream_range_pattern() -> String {
    format!(
        "^{}/(?:3[0-2]|[12][0-9]|[4-9])$",
        quad("(?:22[4-9]|23[0-9])")
    )
}

/// An IPv4 network, `A.B.C.D/LEN` with no host bits set (as `10.0.2.0/24`, never
/// `10.0.2.5/24`): one alternative per prefix length, whose partial octet lists the
/// multiples of its block size.
pub fn ipv4_network_pattern() -> String {
    let mut alternatives = Vec::with_capacity(33);
    for len in 0..=32u32 {
        let full = (len / 8) as usize;
        let mut octets = vec![OCTET.to_string(); full];
        if full < 4 {
            let bits = len % 8;
            let step = 1usize << (8 - bits);
            let values: Vec<String> = (0..256).step_by(step).map(|v| v.to_string()).collect();
            octets.push(if values.len() == 1 {
                "0".to_string()
            } else {
                format!("(?:{})", values.join("|"))
            });
            octets.resize(4, "0".to_string());
        }
        alternatives.push(format!("{}/{len}", octets.join("\\.")));
    }
    format!("^(?:{})$", alternatives.join("|"))
}

fn string(pattern: String, format: Option<KnownFormat>, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
        .pattern(Some(pattern))
        .examples([example])
}

/// A string of either address family: format `ip`, and an example of each.
fn ip_string(pattern: String, v4: &str, v6: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("ip".to_string())))
        .pattern(Some(pattern))
        .examples([v4, v6])
}

fn or_null(b: ObjectBuilder, t: Type) -> Schema {
    b.schema_type(SchemaType::from_iter([t, Type::Null])).into()
}

fn array(item: ObjectBuilder) -> Schema {
    ArrayBuilder::new().items(item).into()
}

fn named(pattern: &str, min: usize, max: usize, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .examples([example])
}

/// Any IPv4 address.
pub fn ipv4() -> Schema {
    string(ipv4_pattern(), Some(KnownFormat::Ipv4), "10.0.2.4").into()
}

/// Any IPv4 address, or null.
pub fn ipv4_or_null() -> Schema {
    or_null(
        string(ipv4_pattern(), Some(KnownFormat::Ipv4), "10.0.2.4"),
        Type::String,
    )
}

/// An address schema of either family: its pattern and an example of each family.
struct IpSchema {
    pattern: fn() -> String,
    v4: &'static str,
    v6: &'static str,
}

impl IpSchema {
    fn string(&self) -> ObjectBuilder {
        ip_string((self.pattern)(), self.v4, self.v6)
    }
}

const ANY_IP: IpSchema = IpSchema {
    pattern: ip_pattern,
    v4: "10.0.2.4",
    v6: "fe80::1",
};
const GROUP: IpSchema = IpSchema {
    pattern: group_pattern,
    v4: "233.252.0.5",
    v6: "ff3e::8000:5",
};
const ROUTABLE_GROUP: IpSchema = IpSchema {
    pattern: routable_group_pattern,
    ..GROUP
};
const UNICAST: IpSchema = IpSchema {
    pattern: unicast_pattern,
    v4: "10.0.2.4",
    v6: "2001:db8::4",
};

/// Any IPv4 or IPv6 address.
pub fn ip() -> Schema {
    ANY_IP.string().into()
}

/// Any IPv4 or IPv6 address, or null.
pub fn ip_or_null() -> Schema {
    or_null(ANY_IP.string(), Type::String)
}

/// A list of IPv4 or IPv6 addresses.
pub fn ip_list() -> Schema {
    array(ANY_IP.string())
}

/// A group in 224.0.0.0/4 or ff00::/8.
pub fn group() -> Schema {
    GROUP.string().into()
}

/// A list of groups in 224.0.0.0/4 or ff00::/8.
pub fn groups() -> Schema {
    array(GROUP.string())
}

/// A group in 224.0.0.0/4 but not in 224.0.0.0/24, or in ff00::/8 of scope 3 to 15.
pub fn routable_group() -> Schema {
    ROUTABLE_GROUP.string().into()
}

/// A unicast address of either family.
pub fn unicast() -> Schema {
    UNICAST.string().into()
}

/// A unicast address of either family, or null.
pub fn unicast_or_null() -> Schema {
    or_null(UNICAST.string(), Type::String)
}

/// A unicast address and a UDP port.
pub fn underlay() -> Schema {
    string(underlay_pattern(), None, "10.0.2.10:4789").into()
}

/// A host's UDP endpoint, or null.
pub fn underlay_or_null() -> Schema {
    or_null(
        string(underlay_pattern(), None, "10.0.2.10:51820"),
        Type::String,
    )
}

/// A WireGuard public key: 32 bytes in standard base64 (44 characters), or empty.
pub fn public_key() -> Schema {
    string(
        "^([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)?$".to_string(),
        None,
        "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    )
    .into()
}

/// An IPv4 prefix.
pub fn ipv4_net() -> Schema {
    string(ipv4_net_pattern(), None, "10.0.2.0/24").into()
}

/// An IPv4 network (no host bits), or null.
pub fn ipv4_network_or_null() -> Schema {
    or_null(
        string(ipv4_network_pattern(), None, "10.0.2.0/24"),
        Type::String,
    )
}

/// An IPv4 prefix, or null.
pub fn ipv4_net_or_null() -> Schema {
    or_null(
        string(ipv4_net_pattern(), None, "10.0.2.0/24"),
        Type::String,
    )
}

/// A list of IPv4 prefixes.
pub fn ipv4_net_list() -> Schema {
    array(string(ipv4_net_pattern(), None, "10.0.2.0/24"))
}

/// A gateway's upstream ranges, at most [`crate::validate::MAX_UPSTREAM_RANGES`].
pub fn upstream_ranges() -> Schema {
    ArrayBuilder::new()
        .items(string(upstream_range_pattern(), None, "233.252.0.0/24"))
        .max_items(Some(crate::validate::MAX_UPSTREAM_RANGES))
        .into()
}

/// A host name.
pub fn host_name() -> Schema {
    named(HOST_NAME_PATTERN, 1, 253, "ip-10-0-2-10").into()
}

/// A host name, or null.
pub fn host_name_or_null() -> Schema {
    or_null(
        named(HOST_NAME_PATTERN, 1, 253, "ip-10-0-2-10"),
        Type::String,
    )
}

/// A list of host names.
pub fn host_name_list() -> Schema {
    array(named(HOST_NAME_PATTERN, 1, 253, "ip-10-0-2-10"))
}

/// A domain name.
pub fn domain_name() -> Schema {
    named(DOMAIN_NAME_PATTERN, 1, 63, "prod").into()
}

/// A zone name (the domain name rules), or null.
pub fn zone_or_null() -> Schema {
    or_null(
        named(DOMAIN_NAME_PATTERN, 1, 63, "eu-west-1a"),
        Type::String,
    )
}

/// A link (interface) name.
pub fn link_name() -> Schema {
    named(LINK_NAME_PATTERN, 1, 64, "eth0").into()
}

/// A link (interface) name, or null.
pub fn link_name_or_null() -> Schema {
    or_null(named(LINK_NAME_PATTERN, 1, 64, "eth0"), Type::String)
}

/// An IGMPv3 or MLDv2 source filter (RFC 3376 section 3.2, RFC 3810 section 2): a mode
/// and a list of sources, of the group's family.
pub fn source_filter() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A source filter (RFC 3376 section 3.2): INCLUDE these sources, or EXCLUDE them",
        ))
        .property(
            "mode",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["include", "exclude"])),
        )
        .required("mode")
        .property("sources", ip_list())
        .required("sources")
        .into()
}

/// A source filter, or null.
pub fn source_filter_or_null() -> RefOr<Schema> {
    // `oneOf` of the object and null: a type list cannot carry the object's properties
    // for generators that read only `type`.
    Schema::OneOf(
        OneOfBuilder::new()
            .item(source_filter())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    )
    .into()
}

impl utoipa::PartialSchema for crate::api::AssociationSpec {
    /// `subnet` and `host`, exactly one of them given and not null.
    fn schema() -> RefOr<Schema> {
        let fields = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("subnet", ipv4_network_or_null())
            .property("host", host_name_or_null())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let given = |name: &str| {
            ObjectBuilder::new()
                .property(name, ObjectBuilder::new().schema_type(Type::String))
                .required(name)
        };
        let exactly_one = OneOfBuilder::new()
            .item(given("subnet"))
            .item(given("host"));
        Schema::AllOf(
            AllOfBuilder::new()
                .description(Some("Exactly one of `subnet` and `host`"))
                .item(fields)
                .item(exactly_one)
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for crate::api::AssociationSpec {}

/// `mcgate_wire::IgmpSettings` (RFC 3376 section 8), every field optional with the RFC's
/// default, unknown fields refused. Written here rather than derived because the wire
/// crate stays free of documentation dependencies; a test checks it names exactly the
/// fields the type has.
pub fn igmp_settings() -> Schema {
    let int = |min: u64, max: u64, default: u64, text: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
            .default(Some(default.into()))
            .description(Some(text))
    };
    let count = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1u64))
        .maximum(Some(7u64))
        .description(Some(
            "Last Member Query Count (8.9). Default: the robustness",
        ));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("IGMP timers of a domain; defaults are RFC 3376 section 8's"))
        .property("robustness", int(1, 7, 2, "Robustness Variable (8.1)"))
        .property(
            "query_interval_ms",
            int(1_000, 31_744_000, 125_000, "Query Interval in ms (8.2)"),
        )
        .property(
            "query_response_interval_ms",
            int(
                100,
                3_174_400,
                10_000,
                "Query Response Interval in ms (8.3): shorter than the query interval; at most 25500 with IGMPv2 (an 8-bit count of tenths, RFC 2236 section 2.2)",
            ),
        )
        .property(
            "last_member_interval_ms",
            int(
                100,
                3_174_400,
                1_000,
                "Last Member Query Interval in ms (8.8): at most 25500 with IGMPv2",
            ),
        )
        .property("last_member_count", count)
        .property(
            "fast_leave",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .default(Some(false.into()))
                .description(Some(
                    "Act on a leave at once on every link; only right on links that carry a single host",
                )),
        )
        .property(
            "single_host_fast_leave",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .default(Some(true.into()))
                .description(Some(
                    "Act on a leave at once on links known to carry a single host (a task's veth); last-member queries (RFC 3376 6.6.3) elsewhere",
                )),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// An unsigned integer of `bits` bits (`minimum` 0, `maximum` 2^bits - 1).
pub fn unsigned(bits: u32) -> Schema {
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0u64))
        .maximum(Some(max))
        .into()
}

/// A 64-bit unsigned integer.
pub fn u64_schema() -> Schema {
    unsigned(64)
}

/// A 64-bit unsigned integer, or null.
pub fn u64_or_null() -> Schema {
    or_null(
        ObjectBuilder::new()
            .minimum(Some(0u64))
            .maximum(Some(u64::MAX)),
        Type::Integer,
    )
}

/// A count (`usize` on a 64-bit host).
pub fn count() -> Schema {
    unsigned(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn re(p: &str) -> regex_lite::Regex {
        regex_lite::Regex::new(p).unwrap()
    }

    /// Every address of a sample that covers each first octet and the edge octets.
    fn sample() -> Vec<Ipv4Addr> {
        let mut v = Vec::new();
        for a in 0..=255u8 {
            for (b, c, d) in [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (255, 255, 255)] {
                v.push(Ipv4Addr::new(a, b, c, d));
            }
        }
        v
    }

    /// The address patterns, compiled once, checked against the validators.
    struct Patterns {
        any: regex_lite::Regex,
        grp: regex_lite::Regex,
        routable: regex_lite::Regex,
        uni: regex_lite::Regex,
    }

    impl Patterns {
        fn new(any: &str) -> Self {
            Self {
                any: re(any),
                grp: re(&group_pattern()),
                routable: re(&routable_group_pattern()),
                uni: re(&unicast_pattern()),
            }
        }

        /// `s`, the text of `a`, matches each pattern exactly when its validator
        /// accepts `a` (the unicast one only when `unicast_exact`).
        fn agree(&self, s: &str, a: IpAddr, unicast_exact: bool) {
            assert!(self.any.is_match(s), "{s}");
            assert_eq!(self.grp.is_match(s), validate::group("g", a).is_ok(), "{s}");
            assert_eq!(
                self.routable.is_match(s),
                validate::routable_group("g", a).is_ok(),
                "{s}"
            );
            if unicast_exact {
                assert_eq!(
                    self.uni.is_match(s),
                    validate::unicast("a", a).is_ok(),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn address_patterns_match_the_validators() {
        let p = Patterns::new(&ipv4_pattern());
        let any = &p.any;
        for a in sample() {
            p.agree(&a.to_string(), a.into(), true);
        }
        for bad in ["01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4 ", ""] {
            assert!(!any.is_match(bad), "{bad}");
        }
        let up = re(&upstream_range_pattern());
        for (s, ok) in [
            ("233.252.0.0/24", true),
            ("224.0.0.0/4", true),
            ("239.255.255.255/32", true),
            ("239.1.1.1/4", true),
            ("224.0.0.0/3", false),
            ("10.0.0.0/8", false),
            ("0.0.0.0/0", false),
            ("240.0.0.0/4", false),
        ] {
            let net: ipnet::Ipv4Net = s.parse().unwrap();
            assert_eq!(up.is_match(s), ok, "{s}");
            assert_eq!(validate::upstream_range("r", net).is_ok(), ok, "{s}");
        }
        let under = re(&underlay_pattern());
        assert!(under.is_match("10.0.2.10:4789") && under.is_match("10.0.2.10:65535"));
        assert!(!under.is_match("10.0.2.10:65536") && !under.is_match("224.0.0.1:1"));
        let network = re(&ipv4_network_pattern());
        for s in [
            "10.0.2.0/24",
            "0.0.0.0/0",
            "10.0.2.5/32",
            "10.0.2.128/25",
            "224.0.0.0/4",
        ] {
            assert!(network.is_match(s), "{s}");
        }
        for s in [
            "10.0.2.5/24",
            "10.0.2.0/33",
            "10.0.2.64/25",
            "1.0.0.0/0",
            "10.0.2.0",
        ] {
            assert!(!network.is_match(s), "{s}");
        }
        for len in 0..=32u8 {
            for a in sample() {
                let n = ipnet::Ipv4Net::new(a, len).unwrap();
                let s = n.to_string();
                assert_eq!(network.is_match(&s), n.trunc() == n, "{s}");
            }
        }
        let net = re(&ipv4_net_pattern());
        assert!(net.is_match("10.0.2.0/24") && net.is_match("0.0.0.0/0"));
        assert!(!net.is_match("10.0.2.0/33") && !net.is_match("10.0.2.0"));
    }

    /// IPv6 addresses of every scope and flag, and each count of zero groups.
    fn sample_v6() -> Vec<Ipv6Addr> {
        let mut v = vec![Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST];
        for first in [
            0u16, 1, 0x20, 0x2001, 0xfe80, 0xfc00, 0xfeff, 0xf0ff, 0xfff, 0xff00, 0xff01, 0xff02,
            0xff03, 0xff05, 0xff0e, 0xff0f, 0xff12, 0xff15, 0xff32, 0xff3e, 0xffff,
        ] {
            for rest in [
                [0u16; 7],
                [0, 0, 0, 0, 0, 0, 1],
                [0xdb8, 0, 0, 0, 0, 0, 5],
                [0, 0, 0, 0, 1, 0xff00, 1],
                [1, 2, 3, 4, 5, 6, 7],
                [0xabcd, 0, 0xffff, 0, 0, 0, 0],
                [0, 0, 0, 0, 0, 0xffff, 0x0a00],
            ] {
                let mut s = [0u16; 8];
                s[0] = first;
                s[1..].copy_from_slice(&rest);
                v.push(Ipv6Addr::from(s));
            }
        }
        v
    }

    #[test]
    fn ipv6_patterns_match_the_validators() {
        let p = Patterns::new(&ip_pattern());
        let any = &p.any;
        for a in sample_v6() {
            let long = a
                .segments()
                .iter()
                .map(|g| format!("{g:X}"))
                .collect::<Vec<_>>()
                .join(":");
            for s in [a.to_string(), long] {
                if s.contains('.') {
                    // Rust writes IPv4-mapped addresses dotted; the patterns do not
                    // take that form, and the server refuses such addresses.
                    assert!(validate::unicast("a", a).is_err(), "{s}");
                    continue;
                }
                // The unicast pattern does not single out `::` and `::1`.
                let zero_form = a.is_unspecified() || a.is_loopback();
                p.agree(&s, a.into(), !zero_form);
            }
        }
        for bad in [
            "ff3e:::1",
            "ff3e::1::2",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "ff3e:00001::1",
            ":1",
            "g::1",
            "ff3e::1 ",
            "",
        ] {
            assert!(!any.is_match(bad), "{bad}");
            assert!(bad.parse::<Ipv6Addr>().is_err(), "{bad}");
        }
        for ok in [
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "1::2:3:4:5:6:7",
            "FF3E::1",
        ] {
            assert!(any.is_match(ok) && ok.parse::<Ipv6Addr>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn igmp_settings_schema_names_every_field_and_its_default() {
        let Schema::Object(o) = igmp_settings() else {
            panic!("an object schema");
        };
        let serde_json::Value::Object(defaults) =
            serde_json::to_value(crate::api::IgmpSettings::default()).unwrap()
        else {
            panic!("an object");
        };
        let mut names: Vec<&String> = o.properties.keys().collect();
        let mut fields: Vec<&String> = defaults.keys().collect();
        names.sort();
        fields.sort();
        assert_eq!(names, fields);
        for (k, v) in &defaults {
            if let RefOr::T(Schema::Object(p)) = &o.properties[k]
                && !v.is_null()
            {
                assert_eq!(p.default.as_ref(), Some(v), "{k}");
            }
        }
        let ok = crate::validate::igmp_settings(
            crate::api::IgmpMode::V3,
            &crate::api::IgmpSettings::default(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn name_patterns_match_the_validators() {
        let (host, dom, link) = (
            re(HOST_NAME_PATTERN),
            re(DOMAIN_NAME_PATTERN),
            re(LINK_NAME_PATTERN),
        );
        for b in 0u8..=255 {
            let s = String::from_utf8_lossy(&[b]).to_string();
            assert_eq!(
                host.is_match(&s),
                validate::host_name("h", &s).is_ok(),
                "{b}"
            );
            assert_eq!(
                dom.is_match(&s),
                validate::domain_name("d", &s).is_ok(),
                "{b}"
            );
            assert_eq!(
                link.is_match(&s),
                validate::link_name("l", &s).is_ok(),
                "{b}"
            );
        }
        for len in [252, 253, 254] {
            let s = "h".repeat(len);
            assert_eq!(host.is_match(&s), validate::host_name("h", &s).is_ok());
        }
        for len in [63, 64] {
            let s = "d".repeat(len);
            assert_eq!(dom.is_match(&s), validate::domain_name("d", &s).is_ok());
        }
        for len in [64, 65] {
            let s = "l".repeat(len);
            assert_eq!(link.is_match(&s), validate::link_name("l", &s).is_ok());
        }
    }
}
