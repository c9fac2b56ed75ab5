//! RTM_*MDB messages for the VXLAN device's and the bridge's multicast tables, and the
//! entry types they carry.
//!
//! Layout (`include/uapi/linux/if_bridge.h`, Linux >= 6.3 for the VXLAN attributes):
//! `struct br_port_msg` (u8 family = AF_BRIDGE, 3 pad bytes, u32 ifindex of the device
//! that owns the table), then `MDBA_SET_ENTRY` carrying a 28-byte `struct br_mdb_entry`
//! (u32 port ifindex, u8 state, u8 flags, u16 vid, 16-byte address field with an IPv4
//! group in its first 4 bytes or an IPv6 group in all 16, be16 proto `ETH_P_IP` or
//! `ETH_P_IPV6`, 2 pad bytes), then the nested
//! `MDBA_SET_ENTRY_ATTRS` (`MDBE_ATTR_*`). Dumps answer with `MDBA_MDB` >
//! `MDBA_MDB_ENTRY` > `MDBA_MDB_ENTRY_INFO`, whose payload is a `br_mdb_entry` followed
//! by `MDBA_MDB_EATTR_*` attributes.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::error::Error;
use super::link_msg::AF_BRIDGE;
use super::nl::{
    self, MsgBuilder, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, read_ip,
    read_u16, read_u32,
};
use super::socket::REQ_ACK;

pub(crate) const RTM_NEWMDB: u16 = 84;
pub(crate) const RTM_DELMDB: u16 = 85;
pub(crate) const RTM_GETMDB: u16 = 86;

const MDBA_SET_ENTRY: u16 = 1;
const MDBA_SET_ENTRY_ATTRS: u16 = 2;

const MDBE_ATTR_SOURCE: u16 = 1;
const MDBE_ATTR_SRC_LIST: u16 = 2;
const MDBE_ATTR_GROUP_MODE: u16 = 3;
const MDBE_ATTR_DST: u16 = 5;
const MDBE_ATTR_DST_PORT: u16 = 6;
const MDBE_ATTR_VNI: u16 = 7;
const MDBE_SRC_LIST_ENTRY: u16 = 1;
const MDBE_SRCATTR_ADDRESS: u16 = 1;

const MDBA_MDB: u16 = 1;
const MDBA_MDB_ENTRY: u16 = 1;
const MDBA_MDB_ENTRY_INFO: u16 = 1;
const MDBA_MDB_EATTR_SRC_LIST: u16 = 2;
const MDBA_MDB_EATTR_GROUP_MODE: u16 = 3;
const MDBA_MDB_EATTR_SOURCE: u16 = 4;
const MDBA_MDB_EATTR_DST: u16 = 6;
const MDBA_MDB_EATTR_DST_PORT: u16 = 7;
const MDBA_MDB_EATTR_VNI: u16 = 8;
const MDBA_MDB_SRCLIST_ENTRY: u16 = 1;
const MDBA_MDB_SRCATTR_ADDRESS: u16 = 1;

pub(crate) const MDB_PERMANENT: u8 = 1;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const MCAST_EXCLUDE: u8 = 0;
const MCAST_INCLUDE: u8 = 1;
const BR_MDB_ENTRY_LEN: usize = 28;

/// The IGMPv3 or MLDv2 source filter of a (*, G) entry (RFC 3376 section 6.2.1, RFC
/// 3810 section 7.2 semantics); the sources are of the group's family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SourceFilter {
    /// Every source: EXCLUDE with an empty list. The only filter an (S, G) entry has.
    #[default]
    Any,
    /// Only these sources (must not be empty).
    Include(BTreeSet<IpAddr>),
    /// Every source but these (must not be empty; use `Any` for none).
    Exclude(BTreeSet<IpAddr>),
}

impl SourceFilter {
    /// INCLUDE `sources` (IPv4 or IPv6 addresses).
    pub fn include<A: Into<IpAddr>>(sources: impl IntoIterator<Item = A>) -> Self {
        Self::Include(sources.into_iter().map(Into::into).collect())
    }

    /// EXCLUDE `sources` (IPv4 or IPv6 addresses).
    pub fn exclude<A: Into<IpAddr>>(sources: impl IntoIterator<Item = A>) -> Self {
        Self::Exclude(sources.into_iter().map(Into::into).collect())
    }
}

/// One remote destination of a group in the VXLAN device's table: frames for `group`
/// (from `source`, or filtered by `filter`) are sent to the remote host `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VxlanMdbEntry {
    /// Multicast group, IPv4 or IPv6; 0.0.0.0 is the device's catch-all for any group.
    pub group: IpAddr,
    /// Source of an (S, G) entry, of the group's family; `None` for (*, G).
    pub source: Option<IpAddr>,
    /// Source filter of a (*, G) entry. The kernel derives its own (S, G) entries from
    /// it; those are not listed by [`VxlanMdb::dump`](super::VxlanMdb::dump).
    pub filter: SourceFilter,
    /// Underlay address of the remote host.
    pub dst: Ipv4Addr,
    /// UDP port at the remote host; `None` uses the device's port.
    pub dst_port: Option<u16>,
    /// VNI sent to the remote host; `None` uses the device's VNI.
    pub vni: Option<u32>,
}

impl VxlanMdbEntry {
    /// A (*, G) entry sending every source of `group` to `dst`.
    pub fn new(group: impl Into<IpAddr>, dst: Ipv4Addr) -> Self {
        Self {
            group: group.into(),
            source: None,
            filter: SourceFilter::Any,
            dst,
            dst_port: None,
            vni: None,
        }
    }

    /// The (S, G) entry for `source`.
    pub fn with_source(mut self, source: impl Into<IpAddr>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The source filter of a (*, G) entry.
    pub fn with_filter(mut self, filter: SourceFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Checks what the kernel would refuse, so the refusal reads in our words and
    /// happens before any change.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::InvalidEntry {
                entry: self.to_string(),
                reason: reason.to_string(),
            })
        };
        let catch_all = self.group == IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        if !catch_all && !self.group.is_multicast() {
            return bad("the group is not a multicast address");
        }
        if let Err(reason) = check_routable(self.group) {
            return bad(reason);
        }
        if self.dst.is_unspecified() || self.dst.is_multicast() || self.dst.is_broadcast() {
            return bad("the destination must be a unicast underlay address");
        }
        if let Some(v) = self.vni
            && (v == 0 || v > 0x00ff_ffff)
        {
            return bad("the VNI must be between 1 and 16777215");
        }
        if self.dst_port == Some(0) {
            return bad("the destination port must not be 0");
        }
        if let Some(s) = self.source {
            if catch_all {
                return bad("the catch-all group 0.0.0.0 cannot have a source");
            }
            if !is_unicast_source(s) {
                return bad("the source must be a unicast address");
            }
            if s.is_ipv4() != self.group.is_ipv4() {
                return bad("the source must be of the group's family");
            }
            if self.filter != SourceFilter::Any {
                return bad("an (S, G) entry cannot have a source filter");
            }
        }
        match &self.filter {
            SourceFilter::Any => {}
            SourceFilter::Include(s) | SourceFilter::Exclude(s) => {
                if s.is_empty() {
                    return bad("an INCLUDE or EXCLUDE filter needs at least one source");
                }
                if catch_all {
                    return bad("the catch-all group 0.0.0.0 cannot have a source filter");
                }
                if s.iter().any(|a| !is_unicast_source(*a)) {
                    return bad("every filter source must be a unicast address");
                }
                if s.iter().any(|a| a.is_ipv4() != self.group.is_ipv4()) {
                    return bad("every filter source must be of the group's family");
                }
            }
        }
        Ok(())
    }

    /// The entry with the device's own port and VNI written as `None`, the way the
    /// kernel reports them in dumps.
    pub(crate) fn normalized(mut self, dev_port: u16, dev_vni: u32) -> Self {
        if self.dst_port == Some(dev_port) {
            self.dst_port = None;
        }
        if self.vni == Some(dev_vni) {
            self.vni = None;
        }
        self
    }

    /// What identifies the kernel's record: changing anything else is a replace.
    pub(crate) fn key(&self) -> (IpAddr, Option<IpAddr>, Ipv4Addr) {
        (self.group, self.source, self.dst)
    }
}

fn is_unicast_source(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_loopback() || a.is_multicast()),
    }
}

/// Refuses the groups the kernel keeps on the link: 224.0.0.0/24 and IPv6 scopes 0 to 2
/// (ff02::/16 and the like; the bridge floods those and never forwards them by table).
fn check_routable(group: IpAddr) -> Result<(), &'static str> {
    match group {
        IpAddr::V4(g) if g.octets()[..3] == [224, 0, 0] => {
            Err("224.0.0.0/24 is link-local; the kernel does not forward it by table")
        }
        IpAddr::V6(g) if mcgate_wire::is_link_scope_group(g) => Err(
            "IPv6 groups of scope 0 to 2 stay on the link; the kernel does not forward them by table",
        ),
        _ => Ok(()),
    }
}

fn fmt_set(f: &mut fmt::Formatter<'_>, s: &BTreeSet<IpAddr>) -> fmt::Result {
    let list: Vec<String> = s.iter().map(|a| a.to_string()).collect();
    write!(f, "{}", list.join(","))
}

impl fmt::Display for VxlanMdbEntry {
    /// `bridge mdb show` style: `grp G [src S] [filter_mode include source_list A,B]
    /// dst D [dst_port P] [vni V]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grp {}", self.group)?;
        if let Some(s) = self.source {
            write!(f, " src {s}")?;
        }
        match &self.filter {
            SourceFilter::Any => {}
            SourceFilter::Include(s) => {
                f.write_str(" filter_mode include source_list ")?;
                fmt_set(f, s)?;
            }
            SourceFilter::Exclude(s) => {
                f.write_str(" filter_mode exclude source_list ")?;
                fmt_set(f, s)?;
            }
        }
        write!(f, " dst {}", self.dst)?;
        if let Some(p) = self.dst_port {
            write!(f, " dst_port {p}")?;
        }
        if let Some(v) = self.vni {
            write!(f, " vni {v}")?;
        }
        Ok(())
    }
}

/// Validates a group for a bridge entry: the bridge refuses 0.0.0.0 and link-scope
/// groups (224.0.0.0/24, IPv6 scopes 0 to 2).
pub(crate) fn validate_bridge_group(group: IpAddr) -> Result<(), Error> {
    if !group.is_multicast() || check_routable(group).is_err() {
        return Err(Error::InvalidEntry {
            entry: format!("grp {group}"),
            reason: "a bridge entry needs a multicast group outside 224.0.0.0/24 and of IPv6 scope 3 or more".into(),
        });
    }
    Ok(())
}

fn br_port_msg(ifindex: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = AF_BRIDGE;
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h
}

fn br_mdb_entry(port_ifindex: u32, group: IpAddr) -> [u8; BR_MDB_ENTRY_LEN] {
    let mut e = [0u8; BR_MDB_ENTRY_LEN];
    e[0..4].copy_from_slice(&port_ifindex.to_ne_bytes());
    e[4] = MDB_PERMANENT;
    // flags 0, vid 0: VLAN-unaware bridge. The address field is a union of the IPv4
    // group (first 4 bytes), the IPv6 group (16 bytes) and a MAC address.
    let proto = match group {
        IpAddr::V4(g) => {
            e[8..12].copy_from_slice(&g.octets());
            ETH_P_IP
        }
        IpAddr::V6(g) => {
            e[8..24].copy_from_slice(&g.octets());
            ETH_P_IPV6
        }
    };
    e[24..26].copy_from_slice(&proto.to_be_bytes());
    e
}

fn write_source_list(m: &mut MsgBuilder, mode: u8, sources: &BTreeSet<IpAddr>) {
    m.attr_u8(MDBE_ATTR_GROUP_MODE, mode);
    let list = m.begin_nest(MDBE_ATTR_SRC_LIST);
    for s in sources {
        let e = m.begin_nest(MDBE_SRC_LIST_ENTRY);
        m.attr_ip(MDBE_SRCATTR_ADDRESS, *s);
        m.end_nest(e);
    }
    m.end_nest(list);
}

/// RTM_NEWMDB for the VXLAN device `dev`: a new entry (CREATE|EXCL), or with `replace`
/// an entry created or replaced in place (CREATE|REPLACE).
pub(crate) fn vxlan_add(dev: u32, e: &VxlanMdbEntry, replace: bool) -> MsgBuilder {
    let flags = if replace {
        REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE
    } else {
        REQ_ACK | NLM_F_CREATE | NLM_F_EXCL
    };
    let mut m = MsgBuilder::new(RTM_NEWMDB, flags);
    vxlan_body(&mut m, dev, e, true);
    m
}

/// RTM_DELMDB for the VXLAN device `dev`. The key is group, source and destination; the
/// kernel needs the destination even to delete.
pub(crate) fn vxlan_del(dev: u32, e: &VxlanMdbEntry) -> MsgBuilder {
    let mut m = MsgBuilder::new(RTM_DELMDB, REQ_ACK);
    vxlan_body(&mut m, dev, e, false);
    m
}

fn vxlan_body(m: &mut MsgBuilder, dev: u32, e: &VxlanMdbEntry, with_settings: bool) {
    m.header(&br_port_msg(dev));
    // For a VXLAN table the "port" is the VXLAN device itself.
    m.attr(MDBA_SET_ENTRY, &br_mdb_entry(dev, e.group));
    let attrs = m.begin_nest(MDBA_SET_ENTRY_ATTRS);
    if let Some(s) = e.source {
        m.attr_ip(MDBE_ATTR_SOURCE, s);
    }
    if with_settings {
        match &e.filter {
            SourceFilter::Any => {}
            SourceFilter::Include(s) => write_source_list(m, MCAST_INCLUDE, s),
            SourceFilter::Exclude(s) => write_source_list(m, MCAST_EXCLUDE, s),
        }
    }
    m.attr_ipv4(MDBE_ATTR_DST, e.dst);
    if with_settings {
        if let Some(p) = e.dst_port {
            m.attr_u16(MDBE_ATTR_DST_PORT, p); // host order, unlike IFLA_VXLAN_PORT
        }
        if let Some(v) = e.vni {
            m.attr_u32(MDBE_ATTR_VNI, v);
        }
    }
    m.end_nest(attrs);
}

/// RTM_NEWMDB on bridge `bridge`: a permanent (*, G) entry for port `port`.
pub(crate) fn bridge_add(bridge: u32, port: u32, group: IpAddr, replace: bool) -> MsgBuilder {
    let flags = if replace {
        REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE
    } else {
        REQ_ACK | NLM_F_CREATE | NLM_F_EXCL
    };
    let mut m = MsgBuilder::new(RTM_NEWMDB, flags);
    m.header(&br_port_msg(bridge));
    m.attr(MDBA_SET_ENTRY, &br_mdb_entry(port, group));
    m
}

pub(crate) fn bridge_del(bridge: u32, port: u32, group: IpAddr) -> MsgBuilder {
    let mut m = MsgBuilder::new(RTM_DELMDB, REQ_ACK);
    m.header(&br_port_msg(bridge));
    m.attr(MDBA_SET_ENTRY, &br_mdb_entry(port, group));
    m
}

/// RTM_GETMDB dump of every device's table (the kernel does not filter by device).
pub(crate) fn dump() -> MsgBuilder {
    let mut m = MsgBuilder::new(RTM_GETMDB, NLM_F_REQUEST | NLM_F_DUMP);
    m.header(&br_port_msg(0));
    m
}

/// One `MDBA_MDB_ENTRY_INFO` of a dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MdbRecord {
    /// The device owning the table (bridge or VXLAN device).
    pub dev: u32,
    /// The port (for a VXLAN table, the VXLAN device itself).
    pub port: u32,
    pub state: u8,
    pub flags: u8,
    /// IPv4 or IPv6 group; `None` for L2 (MAC) entries, which mcgate does not program.
    pub group: Option<IpAddr>,
    pub source: Option<IpAddr>,
    pub filter_mode: Option<u8>,
    pub src_list: BTreeSet<IpAddr>,
    pub dst: Option<Ipv4Addr>,
    pub dst_port: Option<u16>,
    pub vni: Option<u32>,
}

impl MdbRecord {
    /// The VXLAN entry this record describes, or `None` if it is not an IP VXLAN entry
    /// with an IPv4 destination.
    pub(crate) fn to_vxlan_entry(&self) -> Option<VxlanMdbEntry> {
        let filter = if self.source.is_some() {
            SourceFilter::Any
        } else {
            match self.filter_mode {
                Some(MCAST_INCLUDE) => SourceFilter::Include(self.src_list.clone()),
                _ if self.src_list.is_empty() => SourceFilter::Any,
                _ => SourceFilter::Exclude(self.src_list.clone()),
            }
        };
        Some(VxlanMdbEntry {
            group: self.group?,
            source: self.source,
            filter,
            dst: self.dst?,
            dst_port: self.dst_port,
            vni: self.vni,
        })
    }
}

/// Parses one RTM_NEWMDB message of a dump into its entries.
pub(crate) fn parse_dump_msg(payload: &[u8]) -> Result<Vec<MdbRecord>, String> {
    let dev = read_u32(payload, 4).ok_or("br_port_msg shorter than 8 bytes")?;
    let mut out = Vec::new();
    for a in nl::attrs(payload.get(8..).unwrap_or(&[])) {
        let (t, p) = a?;
        if t != MDBA_MDB {
            continue; // MDBA_ROUTER and newer attributes
        }
        for a in nl::attrs(p) {
            let (t, p) = a?;
            if t != MDBA_MDB_ENTRY {
                continue;
            }
            for a in nl::attrs(p) {
                let (t, p) = a?;
                if t == MDBA_MDB_ENTRY_INFO {
                    out.push(parse_entry_info(dev, p)?);
                }
            }
        }
    }
    Ok(out)
}

fn parse_entry_info(dev: u32, p: &[u8]) -> Result<MdbRecord, String> {
    let e = p
        .get(..BR_MDB_ENTRY_LEN)
        .ok_or_else(|| format!("br_mdb_entry needs 28 bytes, got {}", p.len()))?;
    let proto = read_u16(e, 24).map(u16::from_be).unwrap_or(0);
    let mut r = MdbRecord {
        dev,
        port: read_u32(e, 0).unwrap_or(0),
        state: e[4],
        flags: e[5],
        group: match proto {
            ETH_P_IP => read_ip(&e[8..12]),
            ETH_P_IPV6 => read_ip(&e[8..24]),
            _ => None,
        },
        ..MdbRecord::default()
    };
    for a in nl::attrs(p.get(nl::align4(BR_MDB_ENTRY_LEN)..).unwrap_or(&[])) {
        let (t, v) = a?;
        match t {
            MDBA_MDB_EATTR_SOURCE => r.source = read_ip(v),
            MDBA_MDB_EATTR_GROUP_MODE => r.filter_mode = v.first().copied(),
            MDBA_MDB_EATTR_DST => {
                r.dst = match read_ip(v) {
                    Some(IpAddr::V4(d)) => Some(d),
                    _ => None, // an IPv6 underlay, which mcgate does not use
                }
            }
            MDBA_MDB_EATTR_DST_PORT => r.dst_port = read_u16(v, 0),
            MDBA_MDB_EATTR_VNI => r.vni = read_u32(v, 0),
            MDBA_MDB_EATTR_SRC_LIST => {
                for a in nl::attrs(v) {
                    let (t, v) = a?;
                    if t != MDBA_MDB_SRCLIST_ENTRY {
                        continue;
                    }
                    for a in nl::attrs(v) {
                        let (t, v) = a?;
                        if t == MDBA_MDB_SRCATTR_ADDRESS
                            && let Some(s) = read_ip(v)
                        {
                            r.src_list.insert(s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
#[path = "mdb_msg_tests.rs"]
mod tests;
