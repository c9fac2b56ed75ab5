//! Checks a received IPv4 packet before its IGMP message reaches the state machine.

use core::net::Ipv4Addr;

use mcgate_wire::igmp::IgmpRepr;
use mcgate_wire::ipv4::{PROTOCOL_IGMP, Packet};

use crate::stats::Dropped;

/// Why a packet was dropped before the state machine saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    BadIp,
    NotIgmp,
    BadTtl,
    NoRouterAlert,
    /// The IGMP message is bad; `src` is the packet's IP source.
    Igmp(mcgate_wire::Error, Ipv4Addr),
}

impl Reject {
    /// Counts the drop under its reason. On a link without other routers, router-only
    /// message types are counted as such rather than as unknown, and their sender is
    /// returned.
    pub(crate) fn count(self, d: &mut Dropped, other_queriers: bool) -> Option<Ipv4Addr> {
        use mcgate_wire::Error;
        let counter = match self {
            Reject::Igmp(Error::UnknownType(t), src) if !other_queriers && is_router_only(t) => {
                d.router_message += 1;
                return Some(src);
            }
            Reject::BadIp => &mut d.bad_ip,
            Reject::NotIgmp => &mut d.not_igmp,
            Reject::BadTtl => &mut d.bad_ttl,
            Reject::NoRouterAlert => &mut d.no_router_alert,
            Reject::Igmp(Error::Truncated, _) => &mut d.truncated,
            Reject::Igmp(Error::Checksum, _) => &mut d.checksum,
            Reject::Igmp(Error::UnknownType(_), _) => &mut d.unknown_type,
            Reject::Igmp(Error::Malformed | Error::Overrun, _) => &mut d.malformed,
        };
        *counter += 1;
        None
    }
}

/// IGMP types only routers send: DVMRP (0x13), PIMv1 (0x14), mtrace response and query
/// (0x1e, 0x1f), Multicast Router Advertisement and Termination (RFC 4286: 0x30, 0x32).
fn is_router_only(t: u8) -> bool {
    matches!(t, 0x13 | 0x14 | 0x1e | 0x1f | 0x30 | 0x32)
}

/// A packet that passed the IP-level checks.
pub(crate) struct Accepted {
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) message: IgmpRepr,
}

/// IP-level checks of RFC 3376 section 4 and 9.1 and RFC 2236 section 2.
pub(crate) fn check(bytes: &[u8]) -> Result<Accepted, Reject> {
    let ip = Packet::new_checked(bytes).map_err(|_| Reject::BadIp)?;
    // IGMP messages are never fragmented; a fragment or a corrupt header is not one.
    if !ip.verify_checksum() || ip.is_fragment() {
        return Err(Reject::BadIp);
    }
    if ip.protocol() != PROTOCOL_IGMP {
        return Err(Reject::NotIgmp);
    }
    // Every IGMP message is sent with TTL 1; anything else was routed here.
    if ip.ttl() != 1 {
        return Err(Reject::BadTtl);
    }
    let message = IgmpRepr::parse(ip.payload()).map_err(|e| Reject::Igmp(e, ip.src_addr()))?;
    // RFC 3376 9.1: reports without Router Alert are ignored, as a defence against
    // forged ones. IGMPv1 messages and queries predate the option or are accepted
    // without it for interoperability.
    let needs_alert = matches!(
        message,
        IgmpRepr::ReportV2 { .. } | IgmpRepr::LeaveV2 { .. } | IgmpRepr::ReportV3 { .. }
    );
    if needs_alert && !ip.has_router_alert() {
        return Err(Reject::NoRouterAlert);
    }
    Ok(Accepted {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        message,
    })
}
