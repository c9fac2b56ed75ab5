//! The topology file as serde reads it: every key, with its default, and the values that
//! stand alone (enums, ranges, networks) checked by their own types, so a wrong value is
//! reported at its line with what to write instead. Cross-references (a host's subnet, a
//! service's host) are checked by `sections`.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use mcgate_domain::api::{IgmpMode, Tunnel};
use serde::Deserialize;
use toml::Spanned;

use super::{Dataplane, Store};

/// The default `max_tasks`: a t3.small's three network interfaces.
pub const DEFAULT_MAX_TASKS: u32 = 3;
/// The most tasks a host may hold; interface names and addresses stay readable below it.
pub const MAX_TASKS_PER_HOST: u32 = 64;
/// The most tasks a service may ask for.
pub const MAX_COUNT: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopology {
    pub name: Spanned<String>,
    pub vpc: RawVpc,
    #[serde(default)]
    pub subnets: Vec<RawSubnet>,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub domain: Option<RawDomain>,
    #[serde(default)]
    pub controller: Option<Spanned<RawController>>,
    #[serde(default)]
    pub services: Vec<Spanned<RawService>>,
    #[serde(default)]
    pub externals: Vec<Spanned<RawExternal>>,
    #[serde(default)]
    pub ipv6: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternal {
    pub name: Spanned<String>,
    pub cidr: Spanned<Cidr>,
    pub host: Spanned<String>,
    pub groups: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub igmp_version: Option<Spanned<i64>>,
    #[serde(default)]
    pub sender: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVpc {
    pub cidr: Spanned<Cidr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubnet {
    pub name: Spanned<String>,
    pub cidr: Spanned<Cidr>,
    #[serde(default)]
    pub zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: Spanned<String>,
    pub subnet: Spanned<String>,
    #[serde(default)]
    pub max_tasks: MaxTasks,
    #[serde(default)]
    pub force_igmp_version: ForceIgmpVersion,
    #[serde(default)]
    pub dataplane: DataplaneSetting,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDomain {
    pub name: Spanned<String>,
    #[serde(default)]
    pub igmp: IgmpSetting,
    #[serde(default)]
    pub static_sources: bool,
    #[serde(default)]
    pub tunnel: TunnelSetting,
    #[serde(default)]
    pub subnets: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawController {
    #[serde(default)]
    pub replicas: Option<Spanned<Replicas>>,
    #[serde(default)]
    pub store: Option<Spanned<StoreSetting>>,
    #[serde(default)]
    pub etcd_members: Option<Spanned<EtcdMembers>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<String>,
    #[serde(default)]
    pub count: Count,
    pub command: Spanned<Vec<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub zone: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub runtime: Option<Spanned<String>>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub build: Option<Spanned<String>>,
}

/// An IPv4 network written ADDRESS/PREFIX with no host bits set.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub Ipv4Net);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let net: Ipv4Net = s.parse().map_err(|_| {
            format!(
                "cidr {s:?} is not an IPv4 network; write it as ADDRESS/PREFIX, like \"10.0.2.0/24\""
            )
        })?;
        if net.trunc() != net {
            return Err(format!(
                "cidr {s} has host bits set; write \"{}\"",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

/// `max_tasks`: 0 to [`MAX_TASKS_PER_HOST`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct MaxTasks(pub u32);

impl Default for MaxTasks {
    fn default() -> Self {
        Self(DEFAULT_MAX_TASKS)
    }
}

impl TryFrom<i64> for MaxTasks {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u32::try_from(v)
            .ok()
            .filter(|n| *n <= MAX_TASKS_PER_HOST)
            .map(Self)
            .ok_or_else(|| {
                format!(
                    "max_tasks = {v} is out of range; write a number from 0 to {MAX_TASKS_PER_HOST}"
                )
            })
    }
}

/// `force_igmp_version`: 0 (none), 1, 2 or 3.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(try_from = "i64")]
pub struct ForceIgmpVersion(pub u8);

impl TryFrom<i64> for ForceIgmpVersion {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        u8::try_from(n)
            .ok()
            .filter(|v| *v <= 3)
            .map(Self)
            .ok_or_else(|| {
                format!(
                    "force_igmp_version = {n} is not an IGMP version; write 0 (none), 1, 2 or 3"
                )
            })
    }
}

/// A service's `count`: 0 to [`MAX_COUNT`], 1 when absent.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct Count(pub u32);

impl Default for Count {
    fn default() -> Self {
        Self(1)
    }
}

impl TryFrom<i64> for Count {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u32::try_from(v)
            .ok()
            .filter(|n| *n <= MAX_COUNT)
            .map(Self)
            .ok_or_else(|| {
                format!("count = {v} is out of range; write a number from 0 to {MAX_COUNT}")
            })
    }
}

/// A host's `dataplane`, `auto` when absent.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct DataplaneSetting(pub Dataplane);

impl Default for DataplaneSetting {
    fn default() -> Self {
        Self(Dataplane::Auto)
    }
}

impl TryFrom<String> for DataplaneSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "auto" => Ok(Self(Dataplane::Auto)),
            "kernel" => Ok(Self(Dataplane::Kernel)),
            "userspace" => Ok(Self(Dataplane::Userspace)),
            _ => Err(format!(
                "dataplane {s:?} is not known; write \"auto\", \"kernel\" or \"userspace\""
            )),
        }
    }
}

/// The domain's `tunnel`, `wireguard` when absent.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct TunnelSetting(pub Tunnel);

impl TryFrom<String> for TunnelSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "wireguard" => Ok(Self(Tunnel::Wireguard)),
            "vxlan" => Ok(Self(Tunnel::Vxlan)),
            _ => Err(format!(
                "tunnel = {s:?} is not known; write \"wireguard\" or \"vxlan\""
            )),
        }
    }
}

/// The domain's `igmp`, `v2` when absent (like the reference gateway).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct IgmpSetting(pub IgmpMode);

impl TryFrom<String> for IgmpSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "v2" => Ok(Self(IgmpMode::V2)),
            "v3" => Ok(Self(IgmpMode::V3)),
            "off" => Ok(Self(IgmpMode::Off)),
            _ => Err(format!(
                "igmp = {s:?} is not known; write \"v2\", \"v3\" or \"off\""
            )),
        }
    }
}

/// The most controller replicas: the control plane's /28 holds 7 of them beside the
/// VPC router and up to 5 etcd members.
pub const MAX_REPLICAS: u32 = 7;

/// `[controller] replicas`: 1 to [`MAX_REPLICAS`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct Replicas(pub u32);

impl TryFrom<i64> for Replicas {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u32::try_from(v)
            .ok()
            .filter(|n| (1..=MAX_REPLICAS).contains(n))
            .map(Self)
            .ok_or_else(|| {
                format!("replicas = {v} is out of range; write a number from 1 to {MAX_REPLICAS}")
            })
    }
}

/// `[controller] etcd_members`: 1, 3 or 5. An even count tolerates no more failures
/// than the odd count below it, so it is refused.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct EtcdMembers(pub u32);

impl TryFrom<i64> for EtcdMembers {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1 | 3 | 5 => Ok(Self(v as u32)),
            _ => Err(format!(
                "etcd_members = {v} is not allowed; write 3 (survives one failure), 5 (two) or 1 (none)"
            )),
        }
    }
}

/// `[controller] store`: `embedded` (default) or `etcd`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct StoreSetting(pub Store);

impl TryFrom<String> for StoreSetting {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "embedded" => Ok(Self(Store::Embedded)),
            "etcd" => Ok(Self(Store::Etcd)),
            _ => Err(format!(
                "store = {s:?} is not known; write \"embedded\" (one controller) or \"etcd\" (replicas sharing an etcd cluster)"
            )),
        }
    }
}
