//! RTM_*LINK messages: create a VXLAN device, set bridge-port flags, bring a device up,
//! delete it, look it up, and parse what the kernel says about a link. Requests and
//! replies go through `netlink-packet-route`'s types; the bridge-port attributes it
//! has no variant for are its `DefaultNla`s.
//!
//! Layouts: `struct ifinfomsg` (16 bytes: u8 family, u8 pad, u16 type, i32 index,
//! u32 flags, u32 change) then `IFLA_*` attributes (`include/uapi/linux/if_link.h`).

use std::net::Ipv4Addr;

use netlink_packet_core::{DefaultNla, Emitable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkHeader,
    LinkInfo as LinkInfoAttr, LinkMessage, LinkProtoInfoBridge,
};

use super::nl::{self, MsgBuilder, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use super::socket::REQ_ACK;
use super::vxlan::VxlanConfig;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;

pub(crate) const AF_BRIDGE: u8 = 7;

const IFLA_STATS64: u16 = 23;

const IFLA_BRPORT_LEARNING: u16 = 8;
const IFLA_BRPORT_UNICAST_FLOOD: u16 = 9;
const IFLA_BRPORT_MULTICAST_ROUTER: u16 = 25;
const IFLA_BRPORT_MCAST_FLOOD: u16 = 27;
const IFLA_BRPORT_BCAST_FLOOD: u16 = 30;

/// A request carrying `msg` (struct ifinfomsg and attributes, emitted by
/// `netlink-packet-route`).
fn link_request(msg_type: u16, flags: u16, msg: &LinkMessage) -> MsgBuilder {
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    let mut m = MsgBuilder::new(msg_type, flags);
    m.header(&buf);
    m
}

/// A link message about device `index` (0: none) of address family `family`.
fn link_message(family: AddressFamily, index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header = LinkHeader {
        interface_family: family,
        index,
        ..LinkHeader::default()
    };
    msg.attributes = attributes;
    msg
}

/// RTM_NEWLINK creating a VXLAN device, down, already enslaved to the bridge `master`
/// (`None` only for the probe's scratch device) so that no frame can cross it before its
/// port flags are set. `spec.bridge` is not read: the caller resolved it to `master`.
pub(crate) fn new_vxlan(spec: &VxlanConfig, master: Option<u32>) -> MsgBuilder {
    let mut attrs = vec![LinkAttribute::IfName(spec.name.to_string())];
    if let Some(mtu) = spec.mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(master) = master {
        attrs.push(LinkAttribute::Controller(master));
    }
    // No learning: remote destinations come only from the MDB entries we program.
    let mut data = vec![
        InfoVxlan::Id(spec.vni),
        InfoVxlan::Local(spec.local),
        InfoVxlan::Port(spec.port),
        InfoVxlan::Learning(false),
    ];
    if let Some(link) = spec.underlay_ifindex {
        data.push(InfoVxlan::Link(link));
    }
    if let Some(ttl) = spec.ttl {
        data.push(InfoVxlan::Ttl(ttl));
    }
    attrs.push(LinkAttribute::LinkInfo(vec![
        LinkInfoAttr::Kind(InfoKind::Vxlan),
        LinkInfoAttr::Data(InfoData::Vxlan(data)),
    ]));
    link_request(
        RTM_NEWLINK,
        REQ_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &link_message(AddressFamily::Unspec, 0, attrs),
    )
}

/// RTM_NEWLINK creating a kernel WireGuard device (only the probe uses it: whether the
/// `wireguard` link kind exists).
pub(crate) fn new_wireguard(name: &str) -> MsgBuilder {
    let attrs = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::LinkInfo(vec![LinkInfoAttr::Kind(InfoKind::Wireguard)]),
    ];
    link_request(
        RTM_NEWLINK,
        REQ_ACK | NLM_F_CREATE | NLM_F_EXCL,
        &link_message(AddressFamily::Unspec, 0, attrs),
    )
}

/// Bridge-port settings of the VXLAN port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortFlags {
    pub learning: bool,
    pub unicast_flood: bool,
    pub mcast_flood: bool,
    pub bcast_flood: bool,
    /// 0 disabled, 1 learn from queries, 2 permanent router port.
    pub multicast_router: u8,
}

/// RTM_SETLINK, family AF_BRIDGE, with the port attributes nested in IFLA_PROTINFO. The
/// bridge (`br_setlink`) only reads them as port attributes when the nest flag is set
/// (the crate sets it).
pub(crate) fn set_port_flags(port_ifindex: u32, f: PortFlags) -> MsgBuilder {
    let port = |t: u16, v: u8| LinkProtoInfoBridge::Other(DefaultNla::new(t, vec![v]));
    let attrs = vec![LinkAttribute::ProtoInfoBridge(vec![
        port(IFLA_BRPORT_LEARNING, f.learning.into()),
        port(IFLA_BRPORT_UNICAST_FLOOD, f.unicast_flood.into()),
        port(IFLA_BRPORT_MCAST_FLOOD, f.mcast_flood.into()),
        port(IFLA_BRPORT_BCAST_FLOOD, f.bcast_flood.into()),
        port(IFLA_BRPORT_MULTICAST_ROUTER, f.multicast_router),
    ])];
    link_request(
        RTM_SETLINK,
        REQ_ACK,
        &link_message(AddressFamily::Bridge, port_ifindex, attrs),
    )
}

/// RTM_NEWLINK on an existing device setting IFF_UP (or clearing it).
pub(crate) fn set_up(ifindex: u32, up: bool) -> MsgBuilder {
    let mut msg = link_message(AddressFamily::Unspec, ifindex, vec![]);
    if up {
        msg.header.flags = LinkFlags::Up;
    }
    msg.header.change_mask = LinkFlags::Up;
    link_request(RTM_NEWLINK, REQ_ACK, &msg)
}

pub(crate) fn del_link(ifindex: u32) -> MsgBuilder {
    link_request(
        RTM_DELLINK,
        REQ_ACK,
        &link_message(AddressFamily::Unspec, ifindex, vec![]),
    )
}

/// RTM_GETLINK of one device by name (answered by one RTM_NEWLINK, then the ack).
pub(crate) fn get_link_by_name(name: &str) -> MsgBuilder {
    let attrs = vec![LinkAttribute::IfName(name.to_string())];
    link_request(
        RTM_GETLINK,
        REQ_ACK,
        &link_message(AddressFamily::Unspec, 0, attrs),
    )
}

/// RTM_GETLINK of one device by index.
pub(crate) fn get_link_by_index(ifindex: u32) -> MsgBuilder {
    link_request(
        RTM_GETLINK,
        REQ_ACK,
        &link_message(AddressFamily::Unspec, ifindex, vec![]),
    )
}

pub(crate) fn dump_links() -> MsgBuilder {
    link_request(
        RTM_GETLINK,
        NLM_F_REQUEST | NLM_F_DUMP,
        &link_message(AddressFamily::Unspec, 0, vec![]),
    )
}

/// RTM_NEWLINK on an existing device setting one attribute.
fn set_attribute(ifindex: u32, attribute: LinkAttribute) -> MsgBuilder {
    link_request(
        RTM_NEWLINK,
        REQ_ACK,
        &link_message(AddressFamily::Unspec, ifindex, vec![attribute]),
    )
}

/// RTM_NEWLINK on an existing device setting its MTU.
pub(crate) fn set_mtu(ifindex: u32, mtu: u32) -> MsgBuilder {
    set_attribute(ifindex, LinkAttribute::Mtu(mtu))
}

/// RTM_NEWLINK on an existing device setting its transmit queue length
/// (`ip link set DEV txqueuelen N`).
pub(crate) fn set_txqueuelen(ifindex: u32, len: u32) -> MsgBuilder {
    set_attribute(ifindex, LinkAttribute::TxQueueLen(len))
}

/// RTM_NEWLINK on an existing device setting its MAC address (`ip link set DEV address
/// MAC`). On a bridge this also fixes the address: a bridge whose address was never
/// set takes the lowest of its ports' addresses, and changes it when a port joins.
pub(crate) fn set_address(ifindex: u32, mac: [u8; 6]) -> MsgBuilder {
    set_attribute(ifindex, LinkAttribute::Address(mac.to_vec()))
}

/// RTM_NEWLINK on an existing device setting its alias (`ip link set DEV alias TEXT`).
pub(crate) fn set_alias(ifindex: u32, alias: &str) -> MsgBuilder {
    set_attribute(ifindex, LinkAttribute::IfAlias(alias.to_string()))
}

/// A bridge's IGMP snooping and querier settings (`ip link set BR type bridge
/// mcast_...`). `None` leaves a setting as it is. Intervals are in centiseconds, the
/// unit the kernel uses on netlink (USER_HZ).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeSettings {
    /// `mcast_snooping`.
    pub snooping: Option<bool>,
    /// `mcast_querier`: the bridge's own querier.
    pub querier: Option<bool>,
    /// `mcast_igmp_version` (2 or 3).
    pub igmp_version: Option<u8>,
    /// `mcast_mld_version` (1 or 2).
    pub mld_version: Option<u8>,
    /// `mcast_last_member_count`.
    pub last_member_count: Option<u32>,
    /// `mcast_startup_query_count`.
    pub startup_query_count: Option<u32>,
    /// `mcast_last_member_interval`.
    pub last_member_interval: Option<u64>,
    /// `mcast_membership_interval`.
    pub membership_interval: Option<u64>,
    /// `mcast_querier_interval` (other querier present interval).
    pub querier_interval: Option<u64>,
    /// `mcast_query_interval`.
    pub query_interval: Option<u64>,
    /// `mcast_query_response_interval`.
    pub query_response_interval: Option<u64>,
    /// `mcast_startup_query_interval`.
    pub startup_query_interval: Option<u64>,
}

/// A bridge attribute carrying an interval (centiseconds).
type IntervalAttr = fn(u64) -> InfoBridge;

/// RTM_NEWLINK changing bridge `ifindex`'s multicast settings (`br_changelink`). The
/// kernel applies them in attribute-number order whatever the order in the message:
/// `mcast_querier` before the intervals.
pub(crate) fn set_bridge(ifindex: u32, s: &BridgeSettings) -> MsgBuilder {
    let mut data = Vec::new();
    if let Some(v) = s.snooping {
        data.push(InfoBridge::MulticastSnooping(v));
    }
    if let Some(v) = s.querier {
        data.push(InfoBridge::MulticastQuerier(v));
    }
    if let Some(v) = s.last_member_count {
        data.push(InfoBridge::MulticastLastMemberCount(v));
    }
    if let Some(v) = s.startup_query_count {
        data.push(InfoBridge::MulticastStartupQueryCount(v));
    }
    let intervals: [(IntervalAttr, Option<u64>); 6] = [
        (
            InfoBridge::MulticastLastMemberInterval,
            s.last_member_interval,
        ),
        (
            InfoBridge::MulticastMembershipInterval,
            s.membership_interval,
        ),
        (InfoBridge::MulticastQuerierInterval, s.querier_interval),
        (InfoBridge::MulticastQueryInterval, s.query_interval),
        (
            InfoBridge::MulticastQueryResponseInterval,
            s.query_response_interval,
        ),
        (
            InfoBridge::MulticastStartupQueryInterval,
            s.startup_query_interval,
        ),
    ];
    for (attr, v) in intervals {
        if let Some(v) = v {
            data.push(attr(v));
        }
    }
    if let Some(v) = s.igmp_version {
        data.push(InfoBridge::MulticastIgmpVersion(v));
    }
    if let Some(v) = s.mld_version {
        data.push(InfoBridge::MulticastMldVersion(v));
    }
    let attrs = vec![LinkAttribute::LinkInfo(vec![
        LinkInfoAttr::Kind(InfoKind::Bridge),
        LinkInfoAttr::Data(InfoData::Bridge(data)),
    ])];
    link_request(
        RTM_NEWLINK,
        REQ_ACK,
        &link_message(AddressFamily::Unspec, ifindex, attrs),
    )
}

/// A device as the kernel describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` ("bridge", "vxlan", "veth"...), empty for a plain device.
    pub kind: String,
    /// Index of the master device (the bridge of a bridge port).
    pub master: Option<u32>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// VXLAN settings, for a VXLAN device.
    pub vxlan: Option<VxlanLinkData>,
    /// Multicast settings, for a bridge.
    pub bridge: Option<BridgeMulticast>,
    /// Device counters.
    pub stats: Option<DeviceStats>,
    /// The device's alias (`ip link set DEV alias TEXT`), if it has one.
    pub alias: Option<String>,
    /// The device's MAC address (`IFLA_ADDRESS`), for an Ethernet-like device.
    pub address: Option<[u8; 6]>,
}

/// The settings of a VXLAN device that mcgate cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VxlanLinkData {
    /// VNI.
    pub vni: Option<u32>,
    /// Local underlay address.
    pub local: Option<Ipv4Addr>,
    /// UDP destination port.
    pub port: Option<u16>,
    /// Underlay device.
    pub link: Option<u32>,
    /// Whether the device learns remote addresses.
    pub learning: Option<bool>,
}

/// A bridge's IGMP snooping state (`IFLA_BR_MCAST_*`). The bridge only forwards by its
/// multicast table (and so only hands groups with an entry to the VXLAN port) while
/// snooping is on and it counts a querier as present: its own (`own_querier`) or
/// another one whose queries it saw (`other_querier`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeMulticast {
    /// IGMP snooping enabled (`mcast_snooping`).
    pub snooping: bool,
    /// The bridge runs its own querier (`mcast_querier`).
    pub own_querier: bool,
    /// IGMP version the bridge's querier speaks (2 or 3), if reported.
    pub igmp_version: Option<u8>,
    /// The IPv4 querier the bridge currently follows (0.0.0.0 is reported as `None`).
    pub querier_address: Option<Ipv4Addr>,
    /// Port on which that querier was heard, if it is not the bridge itself.
    pub querier_port: Option<u32>,
    /// Time left before another querier is considered gone, in centiseconds.
    pub other_querier_timer: Option<u64>,
    /// Every setting as the kernel reported it, to put back later.
    pub settings: BridgeSettings,
}

/// Device counters from IFLA_STATS64 (`struct rtnl_link_stats64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Packets received (decapsulated, for a VXLAN device).
    pub rx_packets: u64,
    /// Packets sent (one per remote copy, for a VXLAN device).
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on transmit; on a VXLAN device, frames with no destination: a
    /// group without an MDB entry, and the host's own link-local frames sent on the
    /// bridge device (which the bridge floods to every port). None leave the host.
    pub tx_dropped: u64,
}

/// Parses an RTM_NEWLINK payload with `netlink-packet-route`. Returns `Err` on a
/// malformed layout.
pub(crate) fn parse_link(payload: &[u8]) -> Result<LinkInfo, String> {
    use netlink_packet_route::link::LinkAttribute as A;

    let msg = <LinkMessage as netlink_packet_core::Parseable<[u8]>>::parse(payload)
        .map_err(|e| format!("RTM_NEWLINK: {e}"))?;
    // The crate reads a short IFLA_STATS64 as zeros: keep only a whole one (the eight
    // counters used here), rather than report counters that went back to zero.
    let whole_stats = nl::attrs(payload.get(16..).unwrap_or(&[]))
        .flatten()
        .any(|(t, p)| t == IFLA_STATS64 && p.len() >= 64);
    let mut info = LinkInfo {
        ifindex: msg.header.index,
        up: msg.header.flags.contains(LinkFlags::Up),
        ..LinkInfo::default()
    };
    for a in msg.attributes {
        match a {
            A::IfName(n) => info.name = n,
            A::Mtu(m) => info.mtu = Some(m),
            A::Controller(m) => info.master = Some(m),
            A::IfAlias(a) => info.alias = Some(a).filter(|a| !a.is_empty()),
            A::Address(a) => info.address = <[u8; 6]>::try_from(a.as_slice()).ok(),
            A::Stats64(s) if whole_stats => {
                info.stats = Some(DeviceStats {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_errors: s.rx_errors,
                    tx_errors: s.tx_errors,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                });
            }
            A::LinkInfo(infos) => parse_linkinfo(infos, &mut info),
            _ => {}
        }
    }
    Ok(info)
}

fn parse_linkinfo(infos: Vec<netlink_packet_route::link::LinkInfo>, info: &mut LinkInfo) {
    use netlink_packet_route::link::{InfoData, InfoVxlan, LinkInfo as I};
    for i in infos {
        match i {
            I::Kind(k) => info.kind = k.to_string(),
            I::Data(InfoData::Bridge(attrs)) => info.bridge = Some(bridge_from(attrs)),
            I::Data(InfoData::Vxlan(attrs)) => {
                let mut x = VxlanLinkData::default();
                for a in attrs {
                    match a {
                        InfoVxlan::Id(v) => x.vni = Some(v),
                        InfoVxlan::Local(a) => x.local = Some(a),
                        InfoVxlan::Port(p) => x.port = Some(p),
                        InfoVxlan::Link(l) => x.link = Some(l),
                        InfoVxlan::Learning(l) => x.learning = Some(l),
                        _ => {}
                    }
                }
                info.vxlan = Some(x);
            }
            _ => {}
        }
    }
}

fn bridge_from(attrs: Vec<netlink_packet_route::link::InfoBridge>) -> BridgeMulticast {
    use netlink_packet_route::link::{BridgeQuerierState as Q, InfoBridge as B};
    let mut b = BridgeMulticast::default();
    let s = &mut b.settings;
    for a in attrs {
        match a {
            B::MulticastSnooping(v) => {
                b.snooping = v;
                s.snooping = Some(v);
            }
            B::MulticastQuerier(v) => {
                b.own_querier = v;
                s.querier = Some(v);
            }
            B::MulticastIgmpVersion(v) => {
                b.igmp_version = Some(v);
                s.igmp_version = Some(v);
            }
            B::MulticastMldVersion(v) => s.mld_version = Some(v),
            B::MulticastLastMemberCount(v) => s.last_member_count = Some(v),
            B::MulticastStartupQueryCount(v) => s.startup_query_count = Some(v),
            B::MulticastLastMemberInterval(v) => s.last_member_interval = Some(v),
            B::MulticastMembershipInterval(v) => s.membership_interval = Some(v),
            B::MulticastQuerierInterval(v) => s.querier_interval = Some(v),
            B::MulticastQueryInterval(v) => s.query_interval = Some(v),
            B::MulticastQueryResponseInterval(v) => s.query_response_interval = Some(v),
            B::MulticastStartupQueryInterval(v) => s.startup_query_interval = Some(v),
            B::MulticastQuerierState(states) => {
                for q in states {
                    match q {
                        Q::Ipv4Address(a) => {
                            b.querier_address = Some(a).filter(|a| !a.is_unspecified());
                        }
                        Q::Ipv4Port(p) => b.querier_port = Some(p),
                        Q::Ipv4OtherTimer(t) => b.other_querier_timer = Some(t),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    b
}

/// The bridge attributes of `IFLA_INFO_DATA` (raw), as [`bridge_from`] reads them.
#[cfg(test)]
fn parse_bridge(d: &[u8]) -> Result<BridgeMulticast, String> {
    use netlink_packet_core::{NlasIterator, Parseable};
    let mut attrs = Vec::new();
    for nla in NlasIterator::new(d) {
        let nla = nla.map_err(|e| e.to_string())?;
        attrs.push(netlink_packet_route::link::InfoBridge::parse(&nla).map_err(|e| e.to_string())?);
    }
    Ok(bridge_from(attrs))
}

#[cfg(test)]
#[path = "link_msg_tests.rs"]
mod tests;
