//! The alias codec: the bridge's multicast settings, as mcgate found them, written into
//! the alias (`IFLA_IFALIAS`) of each VXLAN device it creates.
//!
//! The alias is the one place that outlives the agent: after a crash (SIGKILL) the next
//! agent reads it back from the stale devices and puts the bridge as it was. The text is
//! one line of `key=value` words after a tag, e.g.
//! `mcgate-bridge br=4 snoop=0 querier=0 ver=2 qi=12500` (times in centiseconds, as
//! the kernel keeps them); it stays under the kernel's 256-byte alias limit. Anything
//! else (an alias someone else wrote, a word we do not know) decodes to `None`.

use super::link_msg::BridgeSettings;

/// Marks the alias of mcgate's VXLAN devices that carries the bridge's settings.
pub const ALIAS_TAG: &str = "mcgate-bridge";

/// The settings in an alias written by [`encode_alias`], if it is one.
pub fn decode_alias(alias: &str) -> Option<(u32, BridgeSettings)> {
    let mut words = alias.split_whitespace();
    if words.next()? != ALIAS_TAG {
        return None;
    }
    let mut bridge = None;
    let mut s = BridgeSettings::default();
    for w in words {
        let (k, v) = w.split_once('=')?;
        let n: u64 = v.parse().ok()?;
        let n32 = u32::try_from(n).ok();
        match k {
            "br" => bridge = n32,
            "snoop" => s.snooping = Some(n != 0),
            "querier" => s.querier = Some(n != 0),
            "ver" => s.igmp_version = u8::try_from(n).ok(),
            "mld" => s.mld_version = u8::try_from(n).ok(),
            "lmc" => s.last_member_count = n32,
            "sqc" => s.startup_query_count = n32,
            "lmi" => s.last_member_interval = Some(n),
            "mi" => s.membership_interval = Some(n),
            "qri" => s.query_response_interval = Some(n),
            "qrii" => s.querier_interval = Some(n),
            "qi" => s.query_interval = Some(n),
            "sqi" => s.startup_query_interval = Some(n),
            _ => return None,
        }
    }
    Some((bridge?, s))
}

/// The alias recording bridge `bridge`'s settings before mcgate changed them.
pub fn encode_alias(bridge: u32, s: &BridgeSettings) -> String {
    let mut out = format!("{ALIAS_TAG} br={bridge}");
    let mut put = |k: &str, v: Option<u64>| {
        if let Some(v) = v {
            out.push_str(&format!(" {k}={v}"));
        }
    };
    put("snoop", s.snooping.map(u64::from));
    put("querier", s.querier.map(u64::from));
    put("ver", s.igmp_version.map(u64::from));
    put("mld", s.mld_version.map(u64::from));
    put("lmc", s.last_member_count.map(u64::from));
    put("sqc", s.startup_query_count.map(u64::from));
    put("lmi", s.last_member_interval);
    put("mi", s.membership_interval);
    put("qri", s.query_response_interval);
    put("qrii", s.querier_interval);
    put("qi", s.query_interval);
    put("sqi", s.startup_query_interval);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_round_trip_and_foreign_ones_are_ignored() {
        let s = BridgeSettings {
            snooping: Some(false),
            querier: Some(false),
            igmp_version: Some(2),
            mld_version: Some(1),
            last_member_count: Some(2),
            query_interval: Some(12_500),
            ..BridgeSettings::default()
        };
        let a = encode_alias(7, &s);
        assert!(a.len() < 256, "{a}");
        assert_eq!(decode_alias(&a), Some((7, s)));
        assert_eq!(decode_alias("my alias"), None);
        assert_eq!(decode_alias("mcgate-bridge snoop=1"), None); // no bridge
        assert_eq!(decode_alias("mcgate-bridge br=3 bogus=1"), None);
        assert_eq!(decode_alias("mcgate-bridge br=x"), None);
    }
}
