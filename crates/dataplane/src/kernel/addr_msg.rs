//! RTM_NEWADDR/RTM_DELADDR and RTM_NEWROUTE/RTM_DELROUTE messages for the WireGuard
//! device: its tunnel address (/32) and a /32 route to each peer's through it. Laid out
//! by `netlink-packet-route`'s types (`include/uapi/linux/if_addr.h`, `rtnetlink.h`).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::Emitable;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use super::error::Error;
use super::nl::{MsgBuilder, NLM_F_CREATE, NLM_F_REPLACE};
use super::socket::{Netlink, REQ_ACK};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;

fn request(msg_type: u16, flags: u16, header_and_attrs: &impl Emitable) -> MsgBuilder {
    let mut buf = vec![0u8; header_and_attrs.buffer_len()];
    header_and_attrs.emit(&mut buf);
    let mut m = MsgBuilder::new(msg_type, flags);
    m.header(&buf);
    m
}

fn address(ifindex: u32, addr: Ipv4Addr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = 32;
    msg.header.scope = AddressScope::Universe;
    msg.header.index = ifindex;
    msg.attributes = vec![
        AddressAttribute::Local(IpAddr::V4(addr)),
        AddressAttribute::Address(IpAddr::V4(addr)),
    ];
    msg
}

/// `ip addr replace ADDR/32 dev IFINDEX`.
pub(crate) fn add_address(ifindex: u32, addr: Ipv4Addr) -> MsgBuilder {
    request(
        RTM_NEWADDR,
        REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        &address(ifindex, addr),
    )
}

/// `ip addr del ADDR/32 dev IFINDEX`.
pub(crate) fn del_address(ifindex: u32, addr: Ipv4Addr) -> MsgBuilder {
    request(RTM_DELADDR, REQ_ACK, &address(ifindex, addr))
}

fn route(dst: Ipv4Addr, ifindex: u32) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: 32,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Static,
        scope: RouteScope::Link,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet(dst)),
        RouteAttribute::Oif(ifindex),
    ];
    msg
}

/// `ip route replace DST/32 dev IFINDEX scope link proto static`.
pub(crate) fn replace_route(dst: Ipv4Addr, ifindex: u32) -> MsgBuilder {
    request(
        RTM_NEWROUTE,
        REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        &route(dst, ifindex),
    )
}

/// `ip route del DST/32 dev IFINDEX`.
pub(crate) fn del_route(dst: Ipv4Addr, ifindex: u32) -> MsgBuilder {
    request(RTM_DELROUTE, REQ_ACK, &route(dst, ifindex))
}

impl Netlink {
    /// Gives device `ifindex` the address `addr/32`.
    pub fn add_address(&mut self, ifindex: u32, addr: Ipv4Addr) -> Result<(), Error> {
        self.request(
            &add_address(ifindex, addr),
            &format!("add address {addr}/32 to device #{ifindex}"),
        )
    }

    /// Removes `addr/32` from device `ifindex`; an address already gone is not an error.
    pub fn del_address(&mut self, ifindex: u32, addr: Ipv4Addr) -> Result<(), Error> {
        match self.request(
            &del_address(ifindex, addr),
            &format!("remove address {addr}/32 from device #{ifindex}"),
        ) {
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// Routes `dst/32` through device `ifindex` (replacing any route to it).
    pub fn replace_route(&mut self, dst: Ipv4Addr, ifindex: u32) -> Result<(), Error> {
        self.request(
            &replace_route(dst, ifindex),
            &format!("route {dst}/32 through device #{ifindex}"),
        )
    }

    /// Removes the route to `dst/32` through device `ifindex`; one already gone is not
    /// an error.
    pub fn del_route(&mut self, dst: Ipv4Addr, ifindex: u32) -> Result<(), Error> {
        match self.request(
            &del_route(dst, ifindex),
            &format!("remove the route to {dst}/32"),
        ) {
            Err(e) if e.is_not_found() || e.errno() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }
}
