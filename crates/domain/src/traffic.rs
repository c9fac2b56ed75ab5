//! Domain-wide traffic figures: what each agent counts and sends the controller every
//! second ([`TrafficReport`], `POST /v1/agents/{host}/traffic`), and the view the
//! controller computes from the reports of a domain's hosts ([`TrafficView`],
//! `GET /v1/domains/{name}/traffic`).
//!
//! Agents send cumulative counters stamped with their own monotonic clock; rates are
//! the difference between two reports of one host over the difference of their stamps,
//! so neither the controller's clock nor the report's transit time enters a rate. A
//! figure a data plane does not count is named in `missing` and shown as `null`, never
//! as zero.

use core::net::Ipv4Addr;
use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema;

/// The most groups one report may carry (the userspace relay tracks 4096 and sums the
/// rest under 0.0.0.0).
pub const MAX_REPORT_GROUPS: usize = 4096;
/// The most hosts one group's per-host counters may name.
pub const MAX_REPORT_PEERS: usize = 1024;

/// Packets and bytes, cumulative since the agent's data plane started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Count {
    /// Packets.
    #[schema(schema_with = schema::u64_schema)]
    pub packets: u64,
    /// Bytes of the inner (Ethernet) frames.
    #[schema(schema_with = schema::u64_schema)]
    pub bytes: u64,
}

/// Packets and bytes to or from one other host of the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerCount {
    /// The other host's name.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// Packets.
    #[schema(schema_with = schema::u64_schema)]
    pub packets: u64,
    /// Bytes of the inner frames.
    #[schema(schema_with = schema::u64_schema)]
    pub bytes: u64,
}

/// One group's counters on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupCounts {
    /// The domain the group was counted in.
    #[schema(schema_with = schema::domain_name)]
    pub domain: String,
    /// The group (0.0.0.0: the sum of groups past the data plane's tracking limit).
    #[schema(schema_with = schema::ipv4)]
    pub group: Ipv4Addr,
    /// Frames local senders sent into the fabric (captured on the host's links).
    #[serde(default)]
    pub sent: Count,
    /// Copies delivered to local receivers (on the host's links).
    #[serde(default)]
    pub delivered: Count,
    /// Copies tunnelled, per remote host.
    #[serde(default)]
    pub tunnel_tx: Vec<PeerCount>,
    /// Packets received from the tunnel, per remote host.
    #[serde(default)]
    pub tunnel_rx: Vec<PeerCount>,
    /// Drops by reason (the data plane's reason names, as in the agent's `/metrics`).
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
}

/// One of the host's links as its querier sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkState {
    /// Interface name.
    #[schema(schema_with = schema::link_name)]
    pub name: String,
    /// The interface's IPv4 address, if it has one.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_or_null)]
    pub address: Option<Ipv4Addr>,
    /// Whether this agent is the link's IGMP querier (RFC 3376 section 6.6.2).
    #[serde(default)]
    pub querier: bool,
    /// The IGMP version the link's querier runs (1, 2 or 3); `null` when IGMP is off.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3)]
    pub igmp_version: Option<u8>,
    /// Groups with members on the link.
    #[serde(default)]
    #[schema(schema_with = schema::count)]
    pub groups: usize,
}

/// Body of `POST /v1/agents/{host}/traffic`: the host's counters, sent every second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficReport {
    /// The session from the registration.
    #[schema(schema_with = schema::u64_schema)]
    pub session: u64,
    /// The agent's monotonic clock, in milliseconds, when the counters were read.
    #[schema(schema_with = schema::u64_schema)]
    pub uptime_ms: u64,
    /// The data plane that counted ("userspace" or "kernel").
    pub dataplane: String,
    /// Figures this data plane does not count: any of `sent`, `delivered`,
    /// `tunnel_tx`, `tunnel_rx`, `drops`, `tunnel_tx_per_host`, `tunnel_rx_per_host`.
    #[serde(default)]
    pub missing: Vec<String>,
    /// VXLAN datagrams sent, all domains.
    #[serde(default)]
    pub tunnel_tx: Count,
    /// VXLAN datagrams received, all domains.
    #[serde(default)]
    pub tunnel_rx: Count,
    /// Every drop of the host's data plane, by reason.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Per (domain, group).
    #[serde(default)]
    pub groups: Vec<GroupCounts>,
    /// The host's links.
    #[serde(default)]
    pub links: Vec<LinkState>,
    /// The host's upstream interface, on a gateway host (`mcgate agent --upstream`);
    /// absent on other hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamReport>,
}

/// The most group ranges and (group, source) pairs an upstream report may carry.
pub const MAX_UPSTREAM_RANGES: usize = 256;
/// See [`MAX_UPSTREAM_RANGES`].
pub const MAX_UPSTREAM_SOURCES: usize = 1024;

/// A gateway host's upstream interface in its traffic report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamReport {
    /// The interface (`--upstream`).
    #[schema(schema_with = schema::link_name)]
    pub interface: String,
    /// The group ranges the gateway brings in (`--upstream-groups`).
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_list)]
    pub groups: Vec<Ipv4Net>,
    /// Whether the interface exists now.
    #[serde(default)]
    pub present: bool,
    /// Multicast arriving on the interface per (group, source), cumulative since the
    /// data plane started.
    #[serde(default)]
    pub sources: Vec<UpstreamSource>,
}

/// One (group, source) pair arriving on an upstream interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSource {
    /// The group.
    #[schema(schema_with = schema::ipv4)]
    pub group: Ipv4Addr,
    /// The source (a host of the upstream network).
    #[schema(schema_with = schema::ipv4)]
    pub source: Ipv4Addr,
    /// Packets.
    #[schema(schema_with = schema::u64_schema)]
    pub packets: u64,
    /// Bytes of the frames.
    #[schema(schema_with = schema::u64_schema)]
    pub bytes: u64,
}

impl TrafficReport {
    /// Whether the report is within the sizes the controller keeps; the error names the
    /// field at fault.
    pub fn check_size(&self) -> Result<(), (&'static str, String)> {
        if self.groups.len() > MAX_REPORT_GROUPS {
            return Err((
                "groups",
                format!("at most {MAX_REPORT_GROUPS} groups per report"),
            ));
        }
        if self
            .groups
            .iter()
            .any(|g| g.tunnel_tx.len() > MAX_REPORT_PEERS || g.tunnel_rx.len() > MAX_REPORT_PEERS)
        {
            return Err((
                "groups",
                format!("at most {MAX_REPORT_PEERS} hosts per group"),
            ));
        }
        if let Some(u) = &self.upstream {
            if u.groups.len() > MAX_UPSTREAM_RANGES {
                return Err((
                    "upstream",
                    format!("at most {MAX_UPSTREAM_RANGES} group ranges"),
                ));
            }
            if u.sources.len() > MAX_UPSTREAM_SOURCES {
                return Err((
                    "upstream",
                    format!("at most {MAX_UPSTREAM_SOURCES} upstream sources"),
                ));
            }
        }
        Ok(())
    }
}

/// A rate over the last reporting interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rate {
    /// Packets per second.
    pub pps: f64,
    /// Bits per second of the inner frames.
    pub bits_per_s: f64,
}

/// One host of a domain with its traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostTraffic {
    /// Host name.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// "up" while the agent's lease holds, "expired" after.
    pub state: String,
    /// The zone the agent said it runs in, if it said.
    #[serde(default)]
    pub zone: Option<String>,
    /// The host's subnet, if known.
    #[serde(default)]
    #[schema(schema_with = schema::ipv4_net_or_null)]
    pub subnet: Option<Ipv4Net>,
    /// The agent's data plane, if it said.
    #[serde(default)]
    pub dataplane: Option<String>,
    /// Milliseconds since this controller received the host's last traffic report;
    /// `null` when none came.
    #[serde(default)]
    #[schema(schema_with = schema::u64_or_null)]
    pub report_age_ms: Option<u64>,
    /// The host's links, their querier state and IGMP version (from its last report).
    #[serde(default)]
    pub links: Vec<LinkState>,
    /// What local senders sent into the fabric, all groups of the domain.
    pub sent: Option<Rate>,
    /// What was delivered to local receivers, all groups of the domain.
    pub delivered: Option<Rate>,
    /// Tunnelled copies, all domains of the host.
    pub tunnel_tx: Option<Rate>,
    /// Tunnel packets received, all domains of the host.
    pub tunnel_rx: Option<Rate>,
    /// Drops per second by reason, all domains of the host.
    #[serde(default)]
    pub drops: BTreeMap<String, f64>,
    /// Figures the host's data plane does not count (shown as `null`).
    #[serde(default)]
    pub missing: Vec<String>,
}

/// A host and its rate for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostRate {
    /// Host name.
    #[schema(schema_with = schema::host_name)]
    pub host: String,
    /// The rate; `null` when the host's data plane does not count it or sent no
    /// report yet.
    pub rate: Option<Rate>,
}

/// Copies of one group from one host to another through the tunnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Flow {
    /// The sending host.
    #[schema(schema_with = schema::host_name)]
    pub from: String,
    /// The receiving host.
    #[schema(schema_with = schema::host_name)]
    pub to: String,
    /// Copies `from` tunnelled to `to`.
    pub sent: Option<Rate>,
    /// Copies `to` received from `from`.
    pub received: Option<Rate>,
    /// Packets per second sent but not received (never negative); `null` unless both
    /// ends count per host. Reports of two hosts cover slightly different seconds, so a
    /// steady flow can show about one packet per second either way.
    pub lost_pps: Option<f64>,
}

/// One group of a domain with its senders, receivers and flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupTraffic {
    /// The group.
    #[schema(schema_with = schema::ipv4)]
    pub group: Ipv4Addr,
    /// Hosts whose local senders sent to the group in the last interval.
    pub senders: Vec<HostRate>,
    /// Hosts with members (IGMP or static), with their local delivery rate.
    pub receivers: Vec<HostRate>,
    /// Tunnelled copies between hosts.
    pub flows: Vec<Flow>,
    /// Drops per second of the group by reason, all hosts.
    #[serde(default)]
    pub drops: BTreeMap<String, f64>,
}

/// Answer of `GET /v1/domains/{name}/traffic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrafficView {
    /// The domain.
    #[schema(schema_with = schema::domain_name)]
    pub domain: String,
    /// The controller's revision of the forwarding state the membership is from.
    #[schema(schema_with = schema::u64_schema)]
    pub revision: u64,
    /// Every host of the domain.
    pub hosts: Vec<HostTraffic>,
    /// Every group with members or senders.
    pub groups: Vec<GroupTraffic>,
}
