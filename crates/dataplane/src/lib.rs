//! mcgate-dataplane: the forwarders behind one forwarding table.
//!
//! A [`Dataplane`] takes a [`ForwardingTable`] (swapped whole on every change), the set of
//! attached links and the underlay MTU, and moves multicast between local links and the
//! VXLAN tunnel to other hosts. [`DataplaneKind`] names the implementations: the
//! userspace relay ([`relay`]) and the kernel data plane ([`kernel::plane`]), which
//! programs Linux's bridge and VXLAN multicast tables so the kernel replicates;
//! [`choose`] picks one for `--dataplane auto`.
//!
//! This crate must never block on the controller: it forwards on the last table it holds.
//! It never does protocol work for IGMP (the agent's querier does) and never holds
//! `unsafe` (every system call is in `mcgate-sys`).

#![forbid(unsafe_code)]

pub mod choose;
pub mod counters;
pub mod fuzzing;
pub mod host_key;
pub mod inspect;
pub mod kernel;
pub mod relay;

use std::any::Any;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

pub use host_key::HostKey;

pub use counters::{Counter, DataplaneStats, DropReason, Drops, GroupCounters, LinkCounters};
use mcgate_domain::forwarding::ForwardingTable;
use mcgate_wire::{IgmpSettings, Version};

/// The data planes mcgate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataplaneKind {
    /// The userspace relay: AF_PACKET capture, batched VXLAN over a UDP socket.
    #[default]
    Userspace,
    /// The kernel data plane: Linux's bridge and VXLAN devices replicate (Linux >= 6.3).
    Kernel,
}

impl DataplaneKind {
    /// Every kind, for help texts.
    pub const ALL: [DataplaneKind; 2] = [DataplaneKind::Userspace, DataplaneKind::Kernel];

    /// The kind's name on the command line and in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            DataplaneKind::Userspace => "userspace",
            DataplaneKind::Kernel => "kernel",
        }
    }
}

impl std::str::FromStr for DataplaneKind {
    type Err = DataplaneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataplaneKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| DataplaneError::UnknownKind(s.to_string()))
    }
}

/// A link the data plane captures on and delivers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkSpec {
    /// Interface name.
    pub name: String,
    /// Interface index (a link that is re-created gets a new one).
    pub ifindex: u32,
    /// Another multicast router may be on this link (`mcgate agent --router-links`).
    /// False for task links, the default: containers are hosts, so the kernel plane
    /// makes such a bridge port a host port (never a router port, router messages
    /// dropped).
    pub routers: bool,
    /// The link carries a single host (a task's veth), so the domain's
    /// `single_host_fast_leave` applies to it: the kernel plane sets the bridge port's
    /// `fast_leave` flag.
    pub single_host: bool,
    /// Group ranges (network, prefix length) the domain's traffic may leave on this
    /// link as a routed hop: the upstream interface's `--upstream-egress`. Empty for
    /// every other link, and by default.
    pub egress: Vec<(core::net::Ipv4Addr, u8)>,
    /// Group ranges (network, prefix length) whose traffic arriving on this link is
    /// not taken in, counted as `standby` drops: the upstream ranges this gateway is
    /// standby for (another gateway, elected through the controller, brings them in).
    /// Empty for every other link.
    pub standby: Vec<(core::net::Ipv4Addr, u8)>,
}

impl LinkSpec {
    /// Whether traffic to `group` may leave on this link ([`LinkSpec::egress`]; never a
    /// link-local group).
    pub fn egress_allows(&self, group: core::net::Ipv4Addr) -> bool {
        !mcgate_wire::is_link_local_group(group) && in_ranges(&self.egress, group)
    }

    /// Whether traffic to `group` arriving on this link is dropped ([`LinkSpec::standby`]).
    pub fn standby_for(&self, group: core::net::Ipv4Addr) -> bool {
        in_ranges(&self.standby, group)
    }
}

fn in_ranges(ranges: &[(core::net::Ipv4Addr, u8)], group: core::net::Ipv4Addr) -> bool {
    ranges.iter().any(|(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        u32::from(group) & mask == u32::from(*net) & mask
    })
}

/// What a data plane needs to start.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// The local VXLAN endpoint (underlay address and UDP port).
    pub underlay: SocketAddrV4,
    /// The MTU of the underlay interface: encapsulated packets larger than this are
    /// dropped and counted, never fragmented.
    pub underlay_mtu: usize,
    /// The host's WireGuard key pair and the local endpoint WireGuard messages arrive
    /// on; `None`: domains with `tunnel = "wireguard"` carry nothing.
    pub wireguard: Option<WireguardConfig>,
}

/// The WireGuard side of a data plane.
#[derive(Debug, Clone)]
pub struct WireguardConfig {
    /// The host's key pair (the private key stays in this process).
    pub key: HostKey,
    /// The local WireGuard UDP endpoint (underlay address, port 51820 by default).
    pub listen: SocketAddrV4,
}

/// Why a data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The name given to `--dataplane` is not one we have.
    #[error("unknown data plane {0:?}: use \"auto\", \"kernel\" or \"userspace\"")]
    UnknownKind(String),
    /// The kernel data plane could not be set up.
    #[error("kernel data plane: {0}")]
    Kernel(#[from] kernel::Error),
    /// The kernel data plane was asked for but cannot work here.
    #[error(
        "the kernel data plane cannot be used: {0}; use --dataplane userspace (or auto, \
         which falls back to it)"
    )]
    KernelUnusable(String),
    /// The VXLAN socket could not be bound.
    #[error(
        "cannot bind the VXLAN socket on {addr}: {source} (is the underlay address assigned \
         to an interface of this host, and is the port free?)"
    )]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// The cause.
        source: std::io::Error,
    },
    /// The WireGuard socket could not be bound.
    #[error(
        "cannot bind the WireGuard socket on {addr}: {source} (is the port free? choose \
         another with --wireguard-port)"
    )]
    BindWireguard {
        /// The address.
        addr: SocketAddrV4,
        /// The cause.
        source: std::io::Error,
    },
    /// The forwarding thread could not be started.
    #[error("cannot start the data plane thread: {0}")]
    Thread(std::io::Error),
}

/// A running forwarder. Every method returns at once; the work happens on the data
/// plane's own threads.
pub trait Dataplane: Send + Sync {
    /// Its name, as in [`DataplaneKind::as_str`].
    fn name(&self) -> &'static str;
    /// Installs a new forwarding table; packets after the swap use it.
    fn set_table(&self, table: Arc<ForwardingTable>);
    /// Sets the attached links (all of them, replacing the previous set).
    fn set_links(&self, links: Vec<LinkSpec>);
    /// Sets the underlay MTU (it can change at run time).
    fn set_underlay_mtu(&self, mtu: usize);
    /// Replaces the host's WireGuard key pair (key rotation). Sessions made with the
    /// old key keep carrying traffic until the peers have completed a handshake with the
    /// new one, so established flows lose nothing.
    fn set_key(&self, _key: HostKey) {}
    /// The IGMP version and timers of the domain's querier. The kernel data plane runs
    /// the bridge's own querier with them (the bridge forwards by its snooping table only
    /// while it sees a querier); the userspace relay has no use for them.
    fn set_querier(&self, version: Version, settings: IgmpSettings) {
        let _ = (version, settings);
    }
    /// This host's static members, (link, group). The kernel data plane gives each a
    /// permanent bridge entry on its link (the bridge delivers by its table, and a static
    /// member need not answer IGMP); the relay reads them from the table.
    fn set_static_members(&self, members: BTreeSet<(String, Ipv4Addr)>) {
        let _ = members;
    }
    /// The data plane itself, for what only one kind has (see
    /// [`kernel_status`](trait.Dataplane.html#method.kernel_status)).
    fn as_any(&self) -> &dyn Any;
    /// The counters, as last published (at most a fraction of a second old).
    fn stats(&self) -> DataplaneStats;
    /// Stops forwarding and waits for the threads to end.
    fn shutdown(&self);
    /// Stops like [`shutdown`](Self::shutdown) but leaves what keeps forwarding without
    /// this process in place for a successor (graceful restart: an upgrade). The kernel
    /// data plane leaves its devices, tables and bridge settings, which the next agent
    /// takes over; the userspace relay forwards nothing without its process and just
    /// stops.
    fn detach(&self) {
        self.shutdown();
    }
}

impl dyn Dataplane {
    /// The kernel data plane's own state (bridge, devices, reconciles); `None` for
    /// other data planes.
    pub fn kernel_status(&self) -> Option<kernel::plane::KernelStatus> {
        self.as_any()
            .downcast_ref::<kernel::plane::KernelPlane>()
            .map(kernel::plane::KernelPlane::status)
    }
}

/// Starts a data plane of `kind`.
pub fn start(
    kind: DataplaneKind,
    config: DataplaneConfig,
) -> Result<Box<dyn Dataplane>, DataplaneError> {
    match kind {
        DataplaneKind::Userspace => {
            // A kernel-mode predecessor killed with SIGKILL leaves its VXLAN devices
            // holding UDP 4789 and the bridge snooping: sweep them first (best effort).
            match kernel::Netlink::open().and_then(|mut nl| kernel::plane::sweep_stale(&mut nl)) {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(devices = ?gone, "removed VXLAN devices a previous agent left")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "no stale-device sweep"),
            }
            Ok(Box::new(relay::Relay::start(config)?))
        }
        DataplaneKind::Kernel => Ok(Box::new(kernel::plane::KernelPlane::start(
            kernel::plane::KernelPlaneConfig {
                underlay: config.underlay,
                underlay_mtu: config.underlay_mtu,
                underlay_ifindex: underlay_ifindex(*config.underlay.ip()),
                wireguard: config
                    .wireguard
                    .as_ref()
                    .map(|w| kernel::wireguard::WireguardHost {
                        private_key: kernel::wireguard::Key(w.key.secret().to_bytes()),
                        listen_port: w.listen.port(),
                    }),
            },
        )?)),
    }
}

/// The index of the interface holding `ip`.
fn underlay_ifindex(ip: std::net::Ipv4Addr) -> Option<u32> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if a.address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .is_some_and(|s| s.ip() == ip)
        {
            return nix::net::if_::if_nametoindex(a.interface_name.as_str()).ok();
        }
    }
    None
}
