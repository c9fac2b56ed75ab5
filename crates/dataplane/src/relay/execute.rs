//! Executing a [`Plan`]: queueing its sends on the batch's outgoing lists and counting
//! them per group and per drop reason.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use mcgate_sys::packet::Part;
use mcgate_sys::tunnel::TunnelTx;
use mcgate_wire::vxlan;

use super::decide::Plan;
use super::worker::LinkSlot;
use super::worker_wg::SealTx;
use crate::counters::{DropReason, Drops, GroupCounters};
use crate::inspect::McastFrame;

/// Groups with their own counters; traffic to more groups is counted under 0.0.0.0.
const MAX_TRACKED_GROUPS: usize = 4096;

fn group_counters(
    groups: &mut HashMap<Ipv4Addr, GroupCounters>,
    group: Ipv4Addr,
) -> &mut GroupCounters {
    let key = if groups.len() >= MAX_TRACKED_GROUPS && !groups.contains_key(&group) {
        Ipv4Addr::UNSPECIFIED
    } else {
        group
    };
    groups.entry(key).or_default()
}

/// Where a plan's sends are queued and counted (fields of the worker that the receive
/// batch being read does not borrow).
pub(super) struct Queues<'a> {
    pub groups: &'a mut HashMap<Ipv4Addr, GroupCounters>,
    pub drops: &'a mut Drops,
    pub tunnel_tx: &'a mut Vec<TunnelTx>,
    pub sealed: &'a mut Vec<SealTx>,
    pub links: &'a mut [LinkSlot],
}

/// Queues the sends of `plan` for frame `m` (at `part` of the batch) and counts them;
/// `captured`: it came from a local link (else from the tunnel).
pub(super) fn execute(plan: &Plan, q: Queues<'_>, m: &McastFrame, part: Part, captured: bool) {
    let g = group_counters(q.groups, m.group);
    if captured {
        g.rx_local.add(m.len);
    } else {
        g.rx_tunnel.add(m.len);
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
