//! The kernel fast path: programs Linux's own VXLAN and bridge multicast tables over
//! rtnetlink so the kernel replicates multicast to remote hosts (selective head-end
//! replication, Linux >= 6.3), instead of a userspace relay copying every packet.
//!
//! Per domain, the agent owns one VXLAN device on the host bridge ([`VxlanDevice`]):
//! no learning, no flooding of unknown unicast, broadcast or unregistered multicast to
//! it, not a multicast router port. Two tables decide what crosses:
//! - [`BridgeMdb`]: a permanent bridge entry on the VXLAN port per group that has
//!   members on other hosts, so the bridge hands those groups (and only those) to the
//!   VXLAN device. The bridge uses its table only while it sees a querier.
//! - [`VxlanMdb`]: per group, one entry per remote host (with the IGMPv3 source filter
//!   where there is one), so the VXLAN device sends one unicast copy to each. The
//!   agent describes what each remote wants ([`RemoteMembership`]); [`compile`] turns
//!   that into the entries the kernel's lookup (most specific entry wins) needs.
//!
//! [`DomainTables::reconcile`] keeps both tables of a device in step from one set of
//! memberships: the agent's usual call after every change of the forwarding table.
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use std::net::Ipv4Addr;
//! use mcgate_dataplane::kernel::*;
//! # fn main() -> Result<(), Error> {
//! let support = KernelSupport::probe()?;
//! if !support.vxlan_mdb {
//!     eprintln!("using the userspace relay: {}", support.reason);
//!     return Ok(());
//! }
//! let mut nl = Netlink::open()?;
//! VxlanDevice::remove_stale(&mut nl, DEVICE_PREFIX)?; // left by a killed predecessor
//! let underlay = nl.link_by_name("eth0")?;
//! let cfg = VxlanConfig {
//!     underlay_ifindex: Some(underlay.ifindex),
//!     ..VxlanConfig::new(42, Ipv4Addr::new(10, 0, 0, 1), "br0")
//! };
//! let dev = VxlanDevice::create(&mut nl, &cfg)?;
//! let tables = DomainTables::new(&dev);
//! let wanted: BTreeSet<RemoteMembership> = [RemoteMembership::any_source(
//!     Ipv4Addr::new(239, 1, 1, 1),
//!     Ipv4Addr::new(10, 0, 0, 2),
//! )]
//! .into();
//! let changed = tables.reconcile(&mut nl, &wanted)?;
//! let counters = dev.stats(&mut nl)?;
//! println!("{changed:?} {counters:?}\n{}", inspect(&mut nl, &dev)?);
//! dev.delete(&mut nl)?;
//! # Ok(())
//! # }
//! ```
//!
//! Both reconcile to a desired set (dump, diff, apply), so after any churn or a restart
//! the kernel holds exactly what the agent wants. Everything goes over a plain netlink
//! socket with extended acks: link and tc messages through `netlink-packet-route`'s
//! types, MDB messages (which that crate lacks) laid out by hand on
//! `netlink-packet-core`'s attribute framing; the kernel's own refusal
//! text ends up in [`Error::Kernel`]. Task ports are made host ports (never multicast
//! router ports; router-only messages from tasks dropped, see
//! [`Netlink::guard_host_port`]). This module never shells out, never touches devices it
//! did not create besides the bridge's multicast settings and the task ports' host-port
//! filter (both put back), and holds no `unsafe`.

mod addr_msg;
pub mod alias;
mod bridge_querier;
mod error;
pub mod filter;
pub(crate) mod host_port;
mod inspect;
pub(crate) mod link_msg;
mod links;
mod mdb;
pub(crate) mod mdb_msg;
mod membership;
pub(crate) mod nl;
pub mod plan;
pub mod plane;
mod probe;
mod socket;
mod status;
mod vxlan;
pub mod wireguard;

pub use error::Error;
pub use host_port::{FILTER_PRIORITY, ROUTER_ONLY, clsact_drops, has_filter};
pub use inspect::{Inspection, inspect};
pub use link_msg::{BridgeMulticast, BridgeSettings, DeviceStats, LinkInfo, VxlanLinkData};
pub use mdb::{BridgeMdb, DomainReconcile, DomainTables, MAX_ERRORS, ReconcileStats, VxlanMdb};
pub use mdb_msg::{SourceFilter, VxlanMdbEntry};
pub use membership::{RemoteMembership, compile};
pub use probe::{KernelSupport, MIN_KERNEL, ProbeMethod, Support};
pub use socket::Netlink;
pub use vxlan::{DEVICE_PREFIX, VXLAN_PORT, VxlanConfig, VxlanDevice, device_name};
