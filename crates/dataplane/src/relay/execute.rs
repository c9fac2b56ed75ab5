//! Executing a [`Plan`]: queueing its sends on the batch's outgoing lists and counting
//! them per group and per drop reason.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use mcgate_sys::packet::Part;
use mcgate_sys::tunnel::TunnelTx;
use mcgate_wire::vxlan;

use mcgate_domain::forwarding::ForwardingTable;

use super::decide::{self, Plan, Via};
use super::worker::LinkSlot;
use super::worker_wg::SealTx;
use crate::counters::{DropReason, Drops, GroupCounters, add_keyed};
use crate::inspect::McastFrame;

/// Groups with their own counters; traffic to more groups (of either family) is counted
/// under 0.0.0.0.
const MAX_TRACKED_GROUPS: usize = 4096;

fn group_counters(
    groups: &mut HashMap<IpAddr, GroupCounters>,
    group: IpAddr,
) -> &mut GroupCounters {
    let key = if groups.len() >= MAX_TRACKED_GROUPS && !groups.contains_key(&group) {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        group
    };
    groups.entry(key).or_default()
}

/// Where a plan's sends are queued and counted (fields of the worker that the receive
/// batch being read does not borrow).
pub(super) struct Queues<'a> {
    pub groups: &'a mut HashMap<IpAddr, GroupCounters>,
    pub drops: &'a mut Drops,
    pub tunnel_tx: &'a mut Vec<TunnelTx>,
    pub sealed: &'a mut Vec<SealTx>,
    pub links: &'a mut [LinkSlot],
}

/// The worker's [`Queues`]: a macro rather than a method, so that the receive buffer a
/// frame came from can stay borrowed meanwhile.
macro_rules! queues {
    ($w:ident) => {
        $crate::relay::execute::Queues {
            groups: &mut $w.groups,
            drops: &mut $w.drops,
            tunnel_tx: &mut $w.tunnel_tx,
            sealed: &mut $w.sealed,
            links: &mut $w.links,
        }
    };
}
pub(super) use queues;

/// A VXLAN datagram out of the tunnel (its header at `vxlan_at` of receive slot
/// `slot`), plain or opened from WireGuard: decided against `table` and its copies
/// queued and counted, or dropped and counted with the reason.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_tunnelled(
    table: &ForwardingTable,
    plan: &mut Plan,
    q: Queues<'_>,
    via: Via,
    datagram: &[u8],
    slot: usize,
    vxlan_at: usize,
) {
    let links: &[LinkSlot] = q.links;
    let index = |name: &str| links.iter().position(|s| s.spec.name == name);
    let t = match decide::from_tunnel(table, &index, via, datagram, plan) {
        Ok(t) => t,
        Err(reason) => {
            q.drops.add(reason, 1);
            return;
        }
    };
    let (Ok(slot), Ok(offset), Ok(len)) = (
        u16::try_from(slot),
        u16::try_from(vxlan_at + vxlan::HEADER_LEN),
        u16::try_from(t.frame.len),
    ) else {
        q.drops.add(DropReason::Malformed, 1);
        return;
    };
    // A plain VXLAN datagram passed `from_tunnel` only from a known peer address.
    let from = match via {
        Via::Underlay(ip) => ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        Via::Wireguard(ip) => ip,
    };
    let mut q = q;
    let inner = datagram.get(vxlan::HEADER_LEN..).unwrap_or(&[]);
    egress(&mut q, plan, None, inner, &t.frame);
    execute(plan, q, &t.frame, Part { slot, offset, len }, Some(from));
}

/// Egress: when an attached link other than `ingress` lets `m`'s group leave (the
/// upstream interface's `--upstream-egress`), sends it a copy with its TTL decremented
/// at once (a routed hop: TTL 1 or less is dropped and counted). `frame` holds the
/// Ethernet frame. Returns whether a copy went out. Nothing leaves for a frame the
/// domain refused (`plan.dropped` is `SourceNotAllowed`), nor for an IPv6 frame (the
/// upstream network is IPv4).
pub(super) fn egress(
    q: &mut Queues<'_>,
    plan: &mut Plan,
    ingress: Option<usize>,
    frame: &[u8],
    m: &McastFrame,
) -> bool {
    let IpAddr::V4(group) = m.group else {
        return false;
    };
    let Some(out) = q
        .links
        .iter()
        .position(|l| !l.spec.egress.is_empty() && l.spec.egress_allows(group))
    else {
        return false;
    };
    if Some(out) == ingress || plan.dropped == Some(DropReason::SourceNotAllowed) {
        return false;
    }
    let g = group_counters(q.groups, m.group);
    let Some(slot) = q.links.get_mut(out) else {
        return false;
    };
    match decide::egress_copy(frame, m.len) {
        Ok(copy) => match slot.send_now(&copy) {
            Ok(()) => {
                slot.counters.tx.add(copy.len());
                g.tx_local.add(copy.len());
                // It reached someone: not a frame nobody wanted.
                if plan.dropped == Some(DropReason::NoMembers) {
                    plan.dropped = None;
                }
                true
            }
            Err(_) => {
                slot.counters.drops.add(DropReason::SendError, 1);
                q.drops.add(DropReason::SendError, 1);
                false
            }
        },
        Err(reason) => {
            slot.counters.drops.add(reason, 1);
            g.drops.add(reason, 1);
            q.drops.add(reason, 1);
            false
        }
    }
}

/// Queues the sends of `plan` for frame `m` (at `part` of the batch) and counts them;
/// `tunnel_peer`: `None` when it was captured on a local link, else the peer it came
/// from through the tunnel (its outer source, or its tunnel address for WireGuard).
pub(super) fn execute(
    plan: &Plan,
    q: Queues<'_>,
    m: &McastFrame,
    part: Part,
    tunnel_peer: Option<Ipv4Addr>,
) {
    let g = group_counters(q.groups, m.group);
    match tunnel_peer {
        None => g.rx_local.add(m.len),
        Some(peer) => {
            g.rx_tunnel.add(m.len);
            add_keyed(&mut g.rx_tunnel_from, peer, m.len);
        }
    }
    let mut header = [0u8; vxlan::HEADER_LEN];
    for t in &plan.tunnel {
        match t.inner {
            None => {
                vxlan::emit_header(&mut header, t.vni);
                q.tunnel_tx.push(TunnelTx {
                    dst: t.dst,
                    header,
                    part,
                });
            }
            Some((src, dst)) => q.sealed.push(SealTx {
                vni: t.vni,
                src,
                dst,
                part,
            }),
        }
        g.tx_tunnel.add(m.len);
        add_keyed(&mut g.tx_tunnel_to, t.dst, m.len);
    }
    for &out in &plan.deliver {
        if let Some(slot) = q.links.get_mut(out) {
            slot.pending.push(part);
            g.tx_local.add(m.len);
        }
    }
    g.drops.add(DropReason::TooBig, plan.too_big);
    q.drops.add(DropReason::TooBig, plan.too_big);
    g.drops.add(DropReason::TunnelMismatch, plan.unencryptable);
    q.drops.add(DropReason::TunnelMismatch, plan.unencryptable);
    if let Some(reason) = plan.dropped {
        g.drops.add(reason, 1);
        q.drops.add(reason, 1);
    }
}
