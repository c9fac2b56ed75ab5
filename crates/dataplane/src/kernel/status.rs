//! What the kernel data plane reports about itself, for `/v1/stats` and `/metrics`.

use std::net::Ipv4Addr;

use super::wireguard::WireguardKind;

/// One domain's device, for `/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStatus {
    /// Device name (`mcgvx<vni>`).
    pub name: String,
    /// VNI.
    pub vni: u32,
    /// Remote memberships programmed (one per group and remote host).
    pub memberships: usize,
    /// Groups handed to the device by the bridge.
    pub groups: usize,
    /// The device's counters.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received (decapsulated).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames with no destination (see the kernel data plane docs).
    pub tx_dropped: u64,
}

/// The WireGuard device of the kernel data plane, for `/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WireguardStatus {
    /// Which WireGuard is used.
    pub kind: WireguardKind,
    /// Why (the probe's sentence).
    pub reason: String,
    /// The device, while a domain tunnels through it.
    pub device: Option<String>,
    /// This host's tunnel address on it.
    pub tunnel_address: Option<Ipv4Addr>,
    /// Peers configured.
    pub peers: usize,
}

impl Default for WireguardStatus {
    fn default() -> Self {
        Self {
            kind: WireguardKind::Userspace,
            reason: String::new(),
            device: None,
            tunnel_address: None,
            peers: 0,
        }
    }
}

/// The kernel data plane's state, for `/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStatus {
    /// The host bridge the devices are ports of, once known.
    pub bridge: Option<String>,
    /// Whether the bridge's snooping and querier are set up.
    pub bridge_querier: bool,
    /// IGMP version of the bridge's querier.
    pub igmp_version: Option<u8>,
    /// One entry per domain.
    pub devices: Vec<DeviceStatus>,
    /// Reconciliations done.
    pub reconciles: u64,
    /// Table changes the kernel refused (retried every second).
    pub failures: u64,
    /// The last refusal, if the tables are not in step now.
    pub last_error: Option<String>,
    /// Stale devices removed at start.
    pub stale_removed: Vec<String>,
    /// Devices a previous agent left that this one took over at start (graceful
    /// restart): their tables kept forwarding while the agent relearned its state.
    pub adopted: Vec<String>,
    /// Whether the adopted tables are still held as found, waiting for the agent's
    /// first forwarding table with a domain in it.
    pub holding_previous_tables: bool,
    /// The WireGuard tunnel.
    pub wireguard: WireguardStatus,
    /// Whether the VXLAN source filter (nftables) is in place.
    pub filter: bool,
    /// VXLAN datagrams the filter dropped: not from a current peer of the VNI's domain.
    pub filter_dropped_not_peer: u64,
    /// VXLAN datagrams the filter dropped: sent by a task into the host bridge.
    pub filter_dropped_from_tasks: u64,
}
