//! The agent's settings: command-line flags, optionally over a TOML file with the same
//! keys. Every mistake is reported with the file and key at fault.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use mcgate_dataplane::choose::Requested;
use mcgate_domain::api::{VXLAN_PORT, WIREGUARD_PORT};
use mcgate_igmp::proxy::GroupRange;
use serde::Deserialize;

use crate::AgentArgs;
use crate::core::peer_liveness::LivenessSettings;

/// The default UDP port of the peer keepalives: next to WireGuard's.
pub const LIVENESS_PORT: u16 = 51821;

/// Where the admin endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    /// A TCP address.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// The agent's resolved settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Controller URLs: replicas of one control plane, tried in this order (at least
    /// one; all `https://` or all `unix:`).
    pub controllers: Vec<String>,
    /// The join token given on the command line, if any.
    pub join_token: Option<String>,
    /// The file holding the join token, if given (read when the agent joins).
    pub token_file: Option<PathBuf>,
    /// The controller's CA file, if given.
    pub ca: Option<PathBuf>,
    /// Where the joined credential is kept, if anywhere.
    pub credential_file: Option<PathBuf>,
    /// This host's name.
    pub host: String,
    /// The zone this host runs in, if given.
    pub zone: Option<String>,
    /// The local VXLAN endpoint.
    pub underlay: SocketAddrV4,
    /// Interface names or glob patterns (`*`, `?`) of the links to attach.
    pub attach: Vec<String>,
    /// Attached links where another multicast router may be (glob patterns); none by
    /// default.
    pub router_links: Vec<String>,
    /// The admin endpoint, if any.
    pub admin: Option<AdminAddr>,
    /// The data plane asked for (`auto` lets the agent choose at start).
    pub dataplane: Requested,
    /// Where the state file is kept, if anywhere.
    pub state_dir: Option<PathBuf>,
    /// The local WireGuard endpoint: the underlay address and this port.
    pub wireguard_port: u16,
    /// Generate a new WireGuard key pair at start.
    pub rotate_key: bool,
    /// The upstream interface (IGMP proxy, RFC 4605), if any.
    pub upstream: Option<String>,
    /// The group ranges reported on the upstream interface; none by default.
    pub upstream_groups: Vec<GroupRange>,
    /// The group ranges the domain's senders may send out on the upstream interface;
    /// none by default (no egress).
    pub upstream_egress: Vec<GroupRange>,
    /// The peer keepalives' UDP port; `None`: keepalives off.
    pub liveness_port: Option<u16>,
    /// How keepalives are sent.
    pub liveness: crate::core::peer_liveness::LivenessSettings,
}

impl AgentConfig {
    /// The local WireGuard endpoint.
    pub fn wireguard(&self) -> SocketAddrV4 {
        SocketAddrV4::new(*self.underlay.ip(), self.wireguard_port)
    }
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (it names the key and line).
        message: String,
    },
    /// A required setting is missing.
    #[error("missing setting `{key}`: give --{key} or `{key} = ...` in the config file")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("bad value for `{key}` ({value:?}): {why}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        why: String,
    },
}

/// The config file: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    controller: Option<OneOrMany>,
    #[serde(rename = "token-file")]
    token_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    #[serde(rename = "credential-file")]
    credential_file: Option<PathBuf>,
    host: Option<String>,
    zone: Option<String>,
    underlay: Option<String>,
    #[serde(default)]
    attach: Vec<String>,
    #[serde(default, rename = "router-links")]
    router_links: Vec<String>,
    admin: Option<String>,
    dataplane: Option<String>,
    #[serde(rename = "state-dir")]
    state_dir: Option<PathBuf>,
    #[serde(rename = "wireguard-port")]
    wireguard_port: Option<u16>,
    upstream: Option<String>,
    #[serde(rename = "upstream-groups")]
    upstream_groups: Option<OneOrMany>,
    #[serde(rename = "upstream-egress")]
    upstream_egress: Option<OneOrMany>,
    #[serde(rename = "liveness-port")]
    liveness_port: Option<u16>,
    #[serde(rename = "liveness-interval-ms")]
    liveness_interval_ms: Option<u64>,
    #[serde(rename = "liveness-multiplier")]
    liveness_multiplier: Option<u8>,
}

/// `controller = "URL"` or `controller = ["URL", ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Checks the controller URLs: each usable by the client, none twice, all of one kind
/// (replicas of one control plane are reached the same way, with one credential).
pub fn check_controllers(urls: &[String]) -> Result<(), ConfigError> {
    let invalid = |value: &str, why: String| ConfigError::Invalid {
        key: "controller",
        value: value.to_string(),
        why,
    };
    if urls.is_empty() {
        return Err(ConfigError::Missing { key: "controller" });
    }
    for (i, url) in urls.iter().enumerate() {
        if url.trim().is_empty() {
            return Err(invalid(
                &urls.join(","),
                format!("controller URL number {} is empty", i + 1),
            ));
        }
        mcgate_client::Client::new(url).map_err(|e| invalid(url, e.to_string()))?;
        if urls[..i].contains(url) {
            return Err(invalid(url, "listed twice".into()));
        }
        if url.starts_with("unix:") != urls[0].starts_with("unix:") {
            return Err(invalid(
                url,
                format!(
                    "mixes unix: and https:// controllers (the first is {:?}): replicas are all reached the same way",
                    urls[0]
                ),
            ));
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Parses `IP[:PORT]`, the port defaulting to 4789.
pub fn parse_underlay(value: &str) -> Result<SocketAddrV4, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        key: "underlay",
        value: value.to_string(),
        why: why.to_string(),
    };
    let addr = if let Ok(sa) = value.parse::<SocketAddrV4>() {
        sa
    } else if let Ok(ip) = value.parse::<Ipv4Addr>() {
        SocketAddrV4::new(ip, VXLAN_PORT)
    } else {
        return Err(invalid("expected an IPv4 address, optionally with :PORT"));
    };
    if addr.ip().is_unspecified() || addr.ip().is_multicast() || addr.ip().is_broadcast() {
        return Err(invalid("the underlay must be this host's unicast address"));
    }
    if addr.port() == 0 {
        return Err(invalid("the port must not be 0"));
    }
    Ok(addr)
}

/// Parses `ADDR` (TCP) or `unix:PATH`.
pub fn parse_admin(value: &str) -> Result<AdminAddr, ConfigError> {
    if let Some(path) = value.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(ConfigError::Invalid {
                key: "admin",
                value: value.to_string(),
                why: "unix: needs a path".into(),
            });
        }
        return Ok(AdminAddr::Unix(PathBuf::from(path)));
    }
    if value.parse::<std::net::SocketAddr>().is_err() {
        return Err(ConfigError::Invalid {
            key: "admin",
            value: value.to_string(),
            why: "expected IP:PORT or unix:PATH".into(),
        });
    }
    Ok(AdminAddr::Tcp(value.to_string()))
}

/// `--upstream` and `--upstream-groups`, flags over the file: one interface name (not a
/// pattern), and ranges only together with it.
fn resolve_upstream(
    args: &AgentArgs,
    file_upstream: Option<String>,
    file_groups: Option<OneOrMany>,
) -> Result<(Option<String>, Vec<GroupRange>), ConfigError> {
    let upstream = args.upstream.clone().or(file_upstream);
    if let Some(u) = &upstream
        && (u.is_empty()
            || u.len() > 15
            || u.contains(['/', '*', '?'])
            || u.chars().any(char::is_whitespace))
    {
        return Err(ConfigError::Invalid {
            key: "upstream",
            value: u.clone(),
            why: "give one interface name (1 to 15 characters, no '/', spaces or globs)".into(),
        });
    }
    let ranges = group_ranges(
        "upstream-groups",
        args.upstream_groups.as_deref(),
        file_groups,
        upstream.is_some(),
        "needs --upstream IFACE, the interface to report them on",
    )?;
    Ok((upstream, ranges))
}

/// Group ranges of `key`, the flag's (comma-separated) over the file's; refused
/// (`why_not`) without an upstream interface.
fn group_ranges(
    key: &'static str,
    flag: Option<&str>,
    file: Option<OneOrMany>,
    has_upstream: bool,
    why_not: &str,
) -> Result<Vec<GroupRange>, ConfigError> {
    let groups: Vec<String> = match (flag, file) {
        (Some(g), _) => g.split(',').map(str::to_string).collect(),
        (None, Some(g)) => g.into_vec(),
        (None, None) => Vec::new(),
    };
    let mut ranges = Vec::with_capacity(groups.len());
    for g in &groups {
        ranges.push(g.parse::<GroupRange>().map_err(|e| ConfigError::Invalid {
            key,
            value: g.clone(),
            why: e.to_string(),
        })?);
    }
    if !has_upstream && !ranges.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            value: groups.join(","),
            why: why_not.into(),
        });
    }
    Ok(ranges)
}

impl AgentConfig {
    /// Flags first, then the file for what the flags leave out.
    pub fn resolve(args: &AgentArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let controllers = if args.controller.is_empty() {
            file.controller.map(OneOrMany::into_vec).unwrap_or_default()
        } else {
            args.controller.clone()
        };
        check_controllers(&controllers)?;
        let join_token = args.token.as_ref().map(|t| t.trim().to_string());
        let token_file = args.token_file.clone().or(file.token_file);
        let ca = args.ca.clone().or(file.ca);
        let host = args
            .host
            .clone()
            .or(file.host)
            .ok_or(ConfigError::Missing { key: "host" })?;
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                key: "host",
                value: host,
                why: "a host name is non-empty, without '/' or spaces".into(),
            });
        }
        let zone = args.zone.clone().or(file.zone);
        if let Some(z) = &zone {
            // Checked here too, so a bad value stops the agent at start, not at its
            // first registration.
            mcgate_domain::validate::zone("zone", z).map_err(|e| ConfigError::Invalid {
                key: "zone",
                value: z.clone(),
                why: e.to_string(),
            })?;
        }
        let underlay = args
            .underlay
            .clone()
            .or(file.underlay)
            .ok_or(ConfigError::Missing { key: "underlay" })?;
        let underlay = parse_underlay(&underlay)?;
        let attach = if args.attach.is_empty() {
            file.attach
        } else {
            args.attach.clone()
        };
        if attach.is_empty() {
            return Err(ConfigError::Missing { key: "attach" });
        }
        let router_links = if args.router_links.is_empty() {
            file.router_links
        } else {
            args.router_links.clone()
        };
        let admin = args
            .admin
            .clone()
            .or(file.admin)
            .map(|a| parse_admin(&a))
            .transpose()?;
        let dataplane = args
            .dataplane
            .clone()
            .or(file.dataplane)
            .unwrap_or_else(|| Requested::default().as_str().to_string());
        let dataplane = dataplane
            .parse::<Requested>()
            .map_err(|e| ConfigError::Invalid {
                key: "dataplane",
                value: dataplane.clone(),
                why: e.to_string(),
            })?;
        let state_dir = args.state_dir.clone().or(file.state_dir);
        if state_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::Invalid {
                key: "state-dir",
                value: String::new(),
                why: "give a directory".into(),
            });
        }
        let wireguard_port = args
            .wireguard_port
            .or(file.wireguard_port)
            .unwrap_or(WIREGUARD_PORT);
        if wireguard_port == 0 || wireguard_port == underlay.port() {
            return Err(ConfigError::Invalid {
                key: "wireguard-port",
                value: wireguard_port.to_string(),
                why: "give a UDP port other than 0 and the underlay's VXLAN port".into(),
            });
        }
        let (liveness_port, liveness) = resolve_liveness(
            args,
            (
                file.liveness_port,
                file.liveness_interval_ms,
                file.liveness_multiplier,
            ),
            underlay,
            wireguard_port,
        )?;
        let credential_file = args
            .credential_file
            .clone()
            .or(file.credential_file)
            .or_else(|| {
                state_dir
                    .as_ref()
                    .map(|d| crate::join::default_credential_file(d))
            });
        let (upstream, upstream_groups) =
            resolve_upstream(args, file.upstream, file.upstream_groups)?;
        let upstream_egress = group_ranges(
            "upstream-egress",
            args.upstream_egress.as_deref(),
            file.upstream_egress,
            upstream.is_some(),
            "needs --upstream IFACE, the interface the domain's traffic would leave on",
        )?;
        Ok(Self {
            controllers,
            join_token,
            token_file,
            ca,
            credential_file,
            host,
            zone,
            underlay,
            attach,
            router_links,
            admin,
            dataplane,
            state_dir,
            wireguard_port,
            rotate_key: args.rotate_key,
            upstream,
            upstream_groups,
            upstream_egress,
            liveness_port,
            liveness,
        })
    }
}

/// The peer keepalive port (`None` when 0: off) and timers, from flags, file, defaults.
fn resolve_liveness(
    args: &AgentArgs,
    (file_port, file_interval_ms, file_mult): (Option<u16>, Option<u64>, Option<u8>),
    underlay: SocketAddrV4,
    wireguard_port: u16,
) -> Result<(Option<u16>, LivenessSettings), ConfigError> {
    let port = args.liveness_port.or(file_port).unwrap_or(LIVENESS_PORT);
    if port != 0 && (port == underlay.port() || port == wireguard_port) {
        return Err(ConfigError::Invalid {
            key: "liveness-port",
            value: port.to_string(),
            why: "give a UDP port other than the VXLAN and WireGuard ports (or 0: off)".into(),
        });
    }
    let defaults = LivenessSettings::default();
    let interval_ms = args
        .liveness_interval_ms
        .or(file_interval_ms)
        .unwrap_or(defaults.tx_interval.as_millis() as u64);
    if !(10..=10_000).contains(&interval_ms) {
        return Err(ConfigError::Invalid {
            key: "liveness-interval-ms",
            value: interval_ms.to_string(),
            why: "give milliseconds from 10 to 10000".into(),
        });
    }
    let mult = args
        .liveness_multiplier
        .or(file_mult)
        .unwrap_or(defaults.detect_mult);
    if !(1..=50).contains(&mult) {
        return Err(ConfigError::Invalid {
            key: "liveness-multiplier",
            value: mult.to_string(),
            why: "give a count from 1 to 50".into(),
        });
    }
    let settings = LivenessSettings {
        tx_interval: std::time::Duration::from_millis(interval_ms),
        detect_mult: mult,
    };
    Ok(((port != 0).then_some(port), settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AgentArgs {
        AgentArgs {
            controller: vec![],
            token: None,
            token_file: None,
            ca: None,
            credential_file: None,
            host: None,
            zone: None,
            underlay: None,
            attach: vec![],
            router_links: vec![],
            admin: None,
            config: None,
            dataplane: None,
            state_dir: None,
            check: false,
            wireguard_port: None,
            rotate_key: false,
            upstream: None,
            upstream_groups: None,
            upstream_egress: None,
            liveness_port: None,
            liveness_interval_ms: None,
            liveness_multiplier: None,
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_apply() {
        let dir = tempfile_dir("flags");
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            "controller = \"https://10.0.0.1:7400\"\nhost = \"h1\"\nunderlay = \"10.1.0.5\"\nattach = [\"tk*\"]\nadmin = \"unix:/run/a.sock\"\nstate-dir = \"/var/lib/mcgate\"\nca = \"/etc/mcgate/ca.pem\"\ntoken-file = \"/etc/mcgate/join-token\"\nzone = \"a\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        a.host = Some("h2".into());
        let c = AgentConfig::resolve(&a).unwrap();
        assert_eq!(c.host, "h2");
        assert_eq!(c.zone.as_deref(), Some("a"));
        a.zone = Some("eu-west-1b".into());
        assert_eq!(
            AgentConfig::resolve(&a).unwrap().zone.as_deref(),
            Some("eu-west-1b")
        );
        a.zone = Some("no spaces".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("`zone`"), "{e}");
        a.zone = None;
        let c = AgentConfig::resolve(&a).unwrap();
        assert_eq!(c.underlay, "10.1.0.5:4789".parse().unwrap());
        assert_eq!(c.attach, ["tk*"]);
        assert_eq!(c.admin, Some(AdminAddr::Unix("/run/a.sock".into())));
        assert_eq!(c.dataplane, Requested::Auto);
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/mcgate")));
        // The credential is kept in the state directory unless placed elsewhere.
        assert_eq!(
            c.credential_file,
            Some(PathBuf::from("/var/lib/mcgate/credentials.json"))
        );
        assert_eq!(c.ca, Some(PathBuf::from("/etc/mcgate/ca.pem")));
        assert_eq!(c.token_file, Some(PathBuf::from("/etc/mcgate/join-token")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let dir = tempfile_dir("errors");
        let path = dir.join("agent.toml");
        std::fs::write(&path, "hots = \"h1\"\n").unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("agent.toml") && e.contains("hots"), "{e}");
        let mut a = args();
        a.controller = vec!["https://x:1".into()];
        a.host = Some("h".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("`underlay`"), "{e}");
        // Plain HTTP is refused with the way out.
        a.controller = vec!["http://x:1".into()];
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("use https://"), "{e}");
        assert!(parse_underlay("224.0.0.1").is_err());
        assert!(parse_underlay("10.0.0.1:0").is_err());
        assert_eq!(
            parse_underlay("10.0.0.1:5000").unwrap(),
            "10.0.0.1:5000".parse().unwrap()
        );
        assert!(parse_admin("nope").is_err());
        assert!(parse_admin("127.0.0.1:9000").is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn several_controllers_from_flags_or_file_and_each_checked() {
        let dir = tempfile_dir("controllers");
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            "controller = [\"https://10.0.0.1:7400\", \"https://10.0.0.2:7400\"]\nhost = \"h1\"\nunderlay = \"10.1.0.5\"\nattach = [\"tk*\"]\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let c = AgentConfig::resolve(&a).unwrap();
        assert_eq!(
            c.controllers,
            ["https://10.0.0.1:7400", "https://10.0.0.2:7400"]
        );
        // A string still works, and the flags win over the file.
        std::fs::write(
            &path,
            "controller = \"https://10.0.0.1:7400\"\nhost = \"h1\"\nunderlay = \"10.1.0.5\"\nattach = [\"tk*\"]\n",
        )
        .unwrap();
        assert_eq!(
            AgentConfig::resolve(&a).unwrap().controllers,
            ["https://10.0.0.1:7400"]
        );
        a.controller = vec!["unix:/run/a.sock".into(), "unix:/run/b.sock".into()];
        assert_eq!(AgentConfig::resolve(&a).unwrap().controllers.len(), 2);
        // Each bad URL is named.
        for (bad, named, why) in [
            (
                vec!["https://a:1", "http://b:2"],
                "http://b:2",
                "use https://",
            ),
            (vec!["https://a:1", "b:2"], "b:2", "https://HOST:PORT"),
            (vec!["https://a:1", "https://a:1"], "https://a:1", "twice"),
            (vec!["https://a:1", ""], "https://a:1,", "number 2 is empty"),
            (vec!["unix:/a", "https://b:1"], "https://b:1", "mixes"),
        ] {
            a.controller = bad.iter().map(|s| s.to_string()).collect();
            let e = AgentConfig::resolve(&a).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{named:?}")) && e.contains(why),
                "{bad:?}: {e}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn upstream_and_its_ranges_from_flags_or_file() {
        let dir = tempfile_dir("upstream");
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            "controller = \"https://10.0.0.1:7400\"\nhost = \"h1\"\nunderlay = \"10.1.0.5\"\nattach = [\"tk*\"]\nupstream = \"ex0\"\nupstream-groups = [\"233.252.0.0/24\"]\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let c = AgentConfig::resolve(&a).unwrap();
        assert_eq!(c.upstream.as_deref(), Some("ex0"));
        assert_eq!(c.upstream_groups, ["233.252.0.0/24".parse().unwrap()]);
        a.upstream_groups = Some("233.252.0.0/24,239.1.0.0/16".into());
        assert_eq!(AgentConfig::resolve(&a).unwrap().upstream_groups.len(), 2);
        a.upstream_groups = Some("233.252.0.1/24".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(
            e.contains("`upstream-groups`") && e.contains("233.252.0.0"),
            "{e}"
        );
        a.upstream = Some("ex*".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("`upstream`"), "{e}");
        // Ranges without an interface are a mistake, said so.
        let mut a = args();
        a.controller = vec!["https://x:1".into()];
        a.host = Some("h".into());
        a.underlay = Some("10.0.0.1".into());
        a.attach = vec!["tk*".into()];
        let c = AgentConfig::resolve(&a).unwrap();
        assert!(c.upstream.is_none() && c.upstream_groups.is_empty());
        a.upstream_groups = Some("233.252.0.0/24".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(e.contains("needs --upstream"), "{e}");
        // Egress: off by default, ranges only with an interface.
        a.upstream_groups = None;
        a.upstream_egress = Some("239.20.0.0/16".into());
        let e = AgentConfig::resolve(&a).unwrap_err().to_string();
        assert!(
            e.contains("`upstream-egress`") && e.contains("needs --upstream"),
            "{e}"
        );
        a.upstream = Some("ex0".into());
        let c = AgentConfig::resolve(&a).unwrap();
        assert_eq!(c.upstream_egress, ["239.20.0.0/16".parse().unwrap()]);
        a.upstream_egress = None;
        assert!(AgentConfig::resolve(&a).unwrap().upstream_egress.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mcgate-agent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
