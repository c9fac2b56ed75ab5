//! Looking up links over the socket.

use super::error::Error;
use super::link_msg::{self, BridgeMulticast, BridgeSettings, LinkInfo, RTM_NEWLINK};
use super::socket::Netlink;

impl Netlink {
    /// The device named `name`, or [`Error::NoSuchDevice`].
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkInfo, Error> {
        let op = format!("look up device {name:?}");
        let replies = match self.dump(&link_msg::get_link_by_name(name), &op) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Err(Error::NoSuchDevice(name.to_string())),
            Err(e) => return Err(e),
        };
        first_link(&replies, &op)?.ok_or_else(|| Error::NoSuchDevice(name.to_string()))
    }

    /// The device with index `ifindex`, or [`Error::NoSuchDevice`].
    pub fn link_by_index(&mut self, ifindex: u32) -> Result<LinkInfo, Error> {
        let op = format!("look up device index {ifindex}");
        let replies = match self.dump(&link_msg::get_link_by_index(ifindex), &op) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Err(Error::NoSuchDevice(format!("#{ifindex}"))),
            Err(e) => return Err(e),
        };
        first_link(&replies, &op)?.ok_or_else(|| Error::NoSuchDevice(format!("#{ifindex}")))
    }

    /// The IGMP snooping state of bridge `name`, or [`Error::WrongKind`] if it is not a
    /// bridge. The agent's `--dataplane auto` can use it: the kernel path needs
    /// snooping on and a querier the bridge can see.
    pub fn bridge_multicast(&mut self, name: &str) -> Result<BridgeMulticast, Error> {
        let link = self.link_by_name(name)?;
        match link.bridge {
            Some(b) if link.kind == "bridge" => Ok(b),
            _ => Err(Error::WrongKind {
                name: name.to_string(),
                found: link.kind,
                wanted: "bridge",
            }),
        }
    }

    /// Changes the multicast settings of bridge `ifindex` (`None` fields stay as they
    /// are). The kernel applies `mcast_querier` before the intervals of the same request.
    pub fn set_bridge_settings(
        &mut self,
        ifindex: u32,
        settings: &BridgeSettings,
    ) -> Result<(), Error> {
        self.request(
            &link_msg::set_bridge(ifindex, settings),
            &format!("set multicast settings of bridge #{ifindex}"),
        )
    }

    /// Sets the MTU of device `ifindex`.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> Result<(), Error> {
        self.request(
            &link_msg::set_mtu(ifindex, mtu),
            &format!("set the MTU of device #{ifindex} to {mtu}"),
        )
    }

    /// Sets the alias of device `ifindex` (at most 255 bytes).
    pub fn set_alias(&mut self, ifindex: u32, alias: &str) -> Result<(), Error> {
        self.request(
            &link_msg::set_alias(ifindex, alias),
            &format!("set the alias of device #{ifindex}"),
        )
    }

    /// Every device of this network namespace.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, Error> {
        let op = "list network devices";
        let replies = self.dump(&link_msg::dump_links(), op)?;
        let mut out = Vec::with_capacity(replies.len());
        for r in replies.iter().filter(|r| r.msg_type == RTM_NEWLINK) {
            out.push(
                link_msg::parse_link(&r.payload).map_err(|detail| Error::malformed(op, detail))?,
            );
        }
        Ok(out)
    }
}

fn first_link(replies: &[super::socket::Reply], op: &str) -> Result<Option<LinkInfo>, Error> {
    match replies.iter().find(|r| r.msg_type == RTM_NEWLINK) {
        None => Ok(None),
        Some(r) => link_msg::parse_link(&r.payload)
            .map(Some)
            .map_err(|detail| Error::malformed(op, detail)),
    }
}
