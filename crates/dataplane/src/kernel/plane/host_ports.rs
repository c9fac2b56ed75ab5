//! The plane's task ports as host ports (see [`kernel::host_port`](super::super::host_port)):
//! which ports are guarded, which have the bridge's `fast_leave` flag (single-host
//! ports, when the domain allows it), and their drop counts, kept so totals never go
//! back when a port goes away.

use std::collections::{BTreeMap, BTreeSet};

use super::super::error::Error;
use super::super::socket::Netlink;
use crate::LinkSpec;

/// Guarded ports by ifindex: (link name, router-only packets dropped as last read).
#[derive(Debug, Default)]
pub(super) struct HostPorts {
    guarded: BTreeMap<u32, (String, u64)>,
    /// Guarded ports whose `fast_leave` flag mcgate turned on.
    fast_leave: BTreeSet<u32>,
    /// Drops counted on ports no longer guarded.
    retired: u64,
}

impl HostPorts {
    /// Guards every attached link that is a port of `bridge` and not guarded yet, and
    /// forgets (unguarding when it still exists) every port no longer attached; sets
    /// each guarded port's `fast_leave` flag to what `fast_leave` says of its link.
    pub(super) fn sync(
        &mut self,
        nl: &mut Netlink,
        bridge: u32,
        links: &[LinkSpec],
        fast_leave: &dyn Fn(&LinkSpec) -> bool,
    ) -> Result<(), Error> {
        // A link that may hold another router is no host port: unguarded like one gone.
        let links: Vec<&LinkSpec> = links.iter().filter(|l| !l.routers).collect();
        let gone: Vec<u32> = self
            .guarded
            .keys()
            .filter(|p| !links.iter().any(|l| l.ifindex == **p))
            .copied()
            .collect();
        for port in gone {
            if let Some((name, n)) = self.guarded.remove(&port) {
                self.retired += n;
                self.leave_fast_leave(nl, port, &name);
                match nl.unguard_host_port(port) {
                    Ok(()) => tracing::debug!(link = %name, "host-port filter removed"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(link = %name, error = %e, "cannot remove the host-port filter")
                    }
                }
            }
        }
        let mut first_error = None;
        for l in &links {
            if self.guarded.contains_key(&l.ifindex) {
                continue;
            }
            match nl.link_by_index(l.ifindex) {
                Ok(info) if info.master == Some(bridge) => {}
                Ok(_) => continue,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            match nl.guard_host_port(l.ifindex) {
                Ok(()) => {
                    tracing::info!(link = %l.name, "task port is a host port: never a multicast router port; queries and other router messages from it are dropped");
                    self.guarded.insert(l.ifindex, (l.name.clone(), 0));
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for l in &links {
            let want = fast_leave(l);
            if !self.guarded.contains_key(&l.ifindex)
                || want == self.fast_leave.contains(&l.ifindex)
            {
                continue;
            }
            match nl.set_port_fast_leave(l.ifindex, want) {
                Ok(()) => {
                    tracing::info!(link = %l.name, fast_leave = want, "bridge port fast_leave set");
                    if want {
                        self.fast_leave.insert(l.ifindex);
                    } else {
                        self.fast_leave.remove(&l.ifindex);
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Turns `port`'s `fast_leave` back off if mcgate turned it on (the kernel's
    /// default), as the port stops being a task port of ours.
    fn leave_fast_leave(&mut self, nl: &mut Netlink, port: u32, name: &str) {
        if !self.fast_leave.remove(&port) {
            return;
        }
        match nl.set_port_fast_leave(port, false) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(link = %name, error = %e, "cannot turn fast_leave off"),
        }
    }

    /// Reads the drop counters back from the kernel (one qdisc dump): the total and per
    /// link name.
    pub(super) fn drops(&mut self, nl: &mut Netlink) -> (u64, BTreeMap<String, u64>) {
        let ports: Vec<u32> = self.guarded.keys().copied().collect();
        let now = if ports.is_empty() {
            Vec::new()
        } else {
            nl.ingress_drops(&ports).unwrap_or_default()
        };
        let mut per_link = BTreeMap::new();
        for (i, (name, last)) in self.guarded.values_mut().enumerate() {
            if let Some(&n) = now.get(i) {
                // A filter re-added (port re-created) starts from zero: keep the total.
                if n < *last {
                    self.retired += *last;
                }
                *last = n;
            }
            per_link.insert(name.clone(), *last);
        }
        let total = self.retired + per_link.values().sum::<u64>();
        (total, per_link)
    }

    /// Removes every filter and sets the ports' `multicast_router` back.
    pub(super) fn release(&mut self, nl: &mut Netlink) {
        for (port, (name, n)) in std::mem::take(&mut self.guarded) {
            self.retired += n;
            self.leave_fast_leave(nl, port, &name);
            match nl.unguard_host_port(port) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(link = %name, error = %e, "cannot remove the host-port filter")
                }
            }
        }
    }
}
