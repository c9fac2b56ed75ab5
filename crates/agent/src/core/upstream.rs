//! The upstream interface in the core (`--upstream IFACE`): the IGMP proxy's host side
//! towards an upstream multicast network (RFC 4605), fed with the domain-wide
//! membership within `--upstream-groups`.

use std::net::Ipv4Addr;
use std::time::Instant;

use mcgate_domain::api::UpstreamSpec;
use mcgate_domain::upstream::upstream_membership;
use mcgate_igmp::proxy::{GroupRange, ProxyConfig, Upstream};
use mcgate_wire::ethernet;

use super::gateway_role::{self, GatewayRole};
use super::{Action, AgentCore};
use crate::netdev::NetDev;
use ipnet::Ipv4Net;

/// The upstream interface: its name, the ranges reported on it, and, while the
/// interface exists, its device and the proxy's state.
#[derive(Debug)]
pub(crate) struct UpstreamLink {
    pub(crate) name: String,
    pub(crate) ranges: Vec<GroupRange>,
    /// The group ranges the domain's traffic may leave on it (none: no egress).
    pub(crate) egress: Vec<GroupRange>,
    pub(crate) dev: Option<NetDev>,
    pub(crate) proxy: Option<Upstream>,
    seed: u64,
    /// The agent is stopping and left every group: nothing is reported any more.
    leaving: bool,
    /// Until when the controller's lease surely holds (a heartbeat's send time plus the
    /// lease); `None` before the first registration.
    lease_until: Option<Instant>,
    /// Which ranges it forwards, from the controller's election and the lease.
    pub(crate) role: GatewayRole,
}

impl AgentCore {
    /// Makes `name` the upstream interface, reporting the groups inside `ranges` (none
    /// reports nothing). `seed` feeds the random report delays.
    pub fn with_upstream(mut self, name: String, ranges: Vec<GroupRange>, seed: u64) -> Self {
        let role = GatewayRole {
            role: "standby",
            reason: "waiting for the controller's election".into(),
            standby: ranges.clone(),
            ..GatewayRole::default()
        };
        self.upstream = Some(UpstreamLink {
            name,
            ranges,
            egress: Vec::new(),
            dev: None,
            proxy: None,
            seed,
            leaving: false,
            lease_until: None,
            role,
        });
        self
    }

    /// Lets the domain's traffic to groups inside `ranges` leave on the upstream
    /// interface (a routed hop, in the data plane); none by default.
    pub fn with_upstream_egress(mut self, ranges: Vec<GroupRange>) -> Self {
        if let Some(u) = self.upstream.as_mut() {
            u.egress = ranges;
        }
        self
    }

    /// The upstream interface's name, if there is one.
    pub fn upstream_name(&self) -> Option<&str> {
        self.upstream.as_ref().map(|u| u.name.as_str())
    }

    pub(super) fn is_upstream(&self, name: &str) -> bool {
        self.upstream_name() == Some(name)
    }

    /// The upstream interface as found by a rescan (with an open IGMP socket), or
    /// `None` when it is missing. A new or re-created interface starts a new proxy,
    /// which reports the whole membership at once.
    pub fn handle_upstream_link(&mut self, now: Instant, found: Option<NetDev>) {
        let now = self.advance(now);
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        match (found, &up.dev) {
            (None, None) => return,
            (None, Some(_)) => {
                tracing::warn!(link = %up.name, "upstream interface gone");
                up.dev = None;
                up.proxy = None;
            }
            (Some(d), Some(old)) if d.ifindex == old.ifindex => {
                if d.address != old.address {
                    tracing::info!(link = %up.name, address = ?d.address, "upstream address changed");
                    if let Some(p) = up.proxy.as_mut() {
                        p.set_address(d.address.unwrap_or(Ipv4Addr::UNSPECIFIED));
                    }
                }
                up.dev = Some(d);
                return;
            }
            (Some(d), _) => {
                tracing::info!(link = %up.name, ifindex = d.ifindex, ranges = ?up.ranges.iter().map(ToString::to_string).collect::<Vec<_>>(), "upstream interface attached (IGMP proxy, RFC 4605)");
                let address = d.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
                up.seed = up.seed.wrapping_add(1);
                up.proxy = Some(Upstream::new(ProxyConfig::default(), address, now, up.seed));
                up.dev = Some(d);
            }
        }
        // The data plane takes traffic arriving on it into the domain.
        self.push_links();
        self.refresh_upstream();
    }

    /// What the registration says of the upstream interface: its name and ranges, so
    /// the controller elects one gateway per range.
    pub(super) fn upstream_spec(&self) -> Option<UpstreamSpec> {
        let up = self.upstream.as_ref()?;
        Some(UpstreamSpec {
            interface: up.name.clone(),
            groups: as_nets(&up.ranges),
            egress: as_nets(&up.egress),
        })
    }

    /// The lease as the heartbeats see it: it surely holds until `until` (`None`: no
    /// session). A gateway forwards only while it does.
    pub fn handle_lease(&mut self, now: Instant, until: Option<Instant>) {
        self.advance(now);
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        if up.lease_until != until {
            up.lease_until = until;
            self.refresh_upstream();
        }
    }

    /// When an active gateway's lease stops surely holding (it must then stop).
    pub(super) fn fence_timeout(&self) -> Option<Instant> {
        let up = self.upstream.as_ref()?;
        up.lease_until.filter(|_| !up.role.active.is_empty())
    }

    /// Decides the role from the controller's election and the lease; a new role
    /// changes what the data plane takes in from the upstream interface.
    fn update_role(&mut self) {
        let now = self.last_now;
        let Some(up) = self.upstream.as_ref() else {
            return;
        };
        let elections: Vec<_> = self.view.gateways().collect();
        let role =
            gateway_role::decide(&self.host.name, &up.ranges, &elections, up.lease_until, now);
        if role == up.role {
            return;
        }
        let moved = role.active != up.role.active;
        if moved {
            tracing::info!(link = %up.name, role = role.role, reason = %role.reason, "upstream gateway role changed");
        }
        if let Some(up) = self.upstream.as_mut() {
            up.role = role;
        }
        if moved {
            self.push_links();
        }
    }

    /// Hands the proxy the domain-wide membership within the ranges this gateway
    /// forwards (none while standby: it reports nothing, and leaves what it had
    /// reported), and queues what it sends.
    pub(super) fn refresh_upstream(&mut self) {
        self.update_role();
        let now = self.last_now;
        let Some(up) = self.upstream.as_ref() else {
            return;
        };
        if up.proxy.is_none() || up.leaving {
            return;
        }
        let ranges = up.role.active.clone();
        let wanted = |g: Ipv4Addr| ranges.iter().any(|r| r.contains(g));
        let local = self.local_membership();
        let membership = match &self.stale {
            Some((old, _)) => upstream_membership(
                &self.view.merged_with_stale(old),
                &self.host.name,
                &local,
                &wanted,
            ),
            None => upstream_membership(&self.view, &self.host.name, &local, &wanted),
        };
        if let Some(p) = self.upstream.as_mut().and_then(|u| u.proxy.as_mut())
            && p.membership() != &membership
        {
            tracing::info!(groups = membership.len(), "upstream membership changed");
            p.set_membership(now, membership);
        }
        self.drain_upstream();
    }

    /// The agent stops: every group reported upstream is left at once (IGMPv3
    /// state-change records to INCLUDE {}, IGMPv2 Leave Group; see
    /// [`Upstream::leave_all`]), so the upstream router stops forwarding after its
    /// last-member queries rather than its Group Membership Interval. Nothing is
    /// reported afterwards. Returns how many groups were left.
    pub fn leave_upstream(&mut self, now: Instant) -> usize {
        let now = self.advance(now);
        let Some(up) = self.upstream.as_mut() else {
            return 0;
        };
        up.leaving = true;
        let (Some(p), Some(_)) = (up.proxy.as_mut(), up.dev.as_ref()) else {
            return 0;
        };
        let left = p.leave_all(now);
        if left > 0 {
            tracing::info!(link = %up.name, groups = left, "agent stopping: left every upstream group");
        }
        self.drain_upstream();
        left
    }

    /// While stopping: when the next repeat of the upstream leave is due, if any.
    pub fn upstream_leave_timeout(&self) -> Option<Instant> {
        self.upstream
            .as_ref()
            .filter(|u| u.leaving && u.dev.is_some())
            .and_then(|u| u.proxy.as_ref())
            .and_then(Upstream::next_repeat)
    }

    /// While stopping: sends the upstream leave's repeats due by `now`.
    pub fn handle_upstream_leave_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        self.upstream_handle_timeout(now);
    }

    /// An IPv4 packet from the upstream interface's IGMP socket.
    pub(super) fn upstream_packet(&mut self, now: Instant, ifindex: u32, frame: &[u8]) {
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        if up.dev.as_ref().is_none_or(|d| d.ifindex != ifindex) {
            return;
        }
        let Some(p) = up.proxy.as_mut() else {
            return;
        };
        match ethernet::Frame::new_checked(frame) {
            Ok(eth) if eth.ethertype() == ethernet::ETHERTYPE_IPV4 => {
                p.handle_packet(now, eth.payload())
            }
            // Counted by the proxy as a bad packet.
            _ => p.handle_packet(now, &[]),
        }
        self.drain_upstream();
    }

    pub(super) fn upstream_timeout(&self) -> Option<Instant> {
        self.upstream
            .as_ref()
            .and_then(|u| u.proxy.as_ref())
            .and_then(Upstream::poll_timeout)
    }

    pub(super) fn upstream_handle_timeout(&mut self, now: Instant) {
        if let Some(p) = self.upstream.as_mut().and_then(|u| u.proxy.as_mut())
            && p.poll_timeout().is_some_and(|t| t <= now)
        {
            p.handle_timeout(now);
        }
        self.drain_upstream();
    }

    fn drain_upstream(&mut self) {
        let Some(up) = self.upstream.as_mut() else {
            return;
        };
        let (Some(dev), Some(p)) = (up.dev.as_ref(), up.proxy.as_mut()) else {
            return;
        };
        while let Some(t) = p.poll_transmit() {
            tracing::debug!(link = %up.name, message = ?t.message, "upstream report");
            self.actions.push_back(Action::Transmit {
                link: up.name.clone(),
                ifindex: dev.ifindex,
                frame: super::membership::igmp_frame(&t, dev.mac),
            });
        }
    }
}

/// `ranges` as the API's prefixes.
fn as_nets(ranges: &[GroupRange]) -> Vec<Ipv4Net> {
    ranges
        .iter()
        .filter_map(|r| Ipv4Net::new(r.network(), r.prefix_len()).ok())
        .collect()
}

/// `ranges` as the data plane's (network, prefix length) pairs.
pub(super) fn as_pairs(ranges: &[GroupRange]) -> Vec<(Ipv4Addr, u8)> {
    ranges
        .iter()
        .map(|r| (r.network(), r.prefix_len()))
        .collect()
}
