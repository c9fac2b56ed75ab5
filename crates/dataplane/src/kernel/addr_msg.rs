//! RTM_NEWADDR/RTM_DELADDR and RTM_NEWROUTE messages for the WireGuard device: its
//! tunnel address (/32) and the route to the tunnel address pool through it. Laid out
//! by `netlink-packet-route`'s types (`include/uapi/linux/if_addr.h`, `rtnetlink.h`).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
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

/// `ip route replace POOL dev IFINDEX scope link proto static`.
pub(crate) fn replace_route(pool: Ipv4Net, ifindex: u32) -> MsgBuilder {
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: pool.prefix_len(),
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Static,
        scope: RouteScope::Link,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet(pool.network())),
        RouteAttribute::Oif(ifindex),
    ];
    request(RTM_NEWROUTE, REQ_ACK | NLM_F_CREATE | NLM_F_REPLACE, &msg)
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

    /// Routes `pool` through device `ifindex` (replacing any route to it).
    pub fn replace_route(&mut self, pool: Ipv4Net, ifindex: u32) -> Result<(), Error> {
        self.request(
            &replace_route(pool, ifindex),
            &format!("route {pool} through device #{ifindex}"),
        )
    }
}
