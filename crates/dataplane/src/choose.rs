//! `--dataplane auto`: the kernel data plane where the kernel can do the job, the
//! userspace relay where it cannot.
//!
//! The kernel path needs two things: VXLAN MDB entries with a remote destination
//! (Linux 6.3 or newer, found by [`KernelSupport::probe`]) and task links that are ports
//! of a bridge, whose snooping then delivers locally. Anything else (links on no bridge,
//! on several bridges, an older kernel) gets the relay, and the reason is logged.
//!
//! When the kernel data plane is chosen, the reason also says which WireGuard carries
//! its `tunnel = "wireguard"` domains and why ([`wireguard::probe`]): the kernel's
//! `wireguard` link where the kernel has the module, otherwise (module missing) a
//! userspace WireGuard TUN device in the agent. The sentence reaches the agent's log and
//! `/v1/stats` (`dataplane_chosen_because`, and `dataplane.kernel.wireguard`).

use crate::kernel::wireguard::{self, WireguardSupport};
use crate::kernel::{KernelSupport, Netlink};
use crate::{DataplaneError, DataplaneKind, LinkSpec};

/// What `--dataplane` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Requested {
    /// Let the agent decide ([`choose`]).
    #[default]
    Auto,
    /// This one, or fail.
    Kind(DataplaneKind),
}

impl Requested {
    /// The value's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Requested::Auto => "auto",
            Requested::Kind(k) => k.as_str(),
        }
    }
}

impl std::str::FromStr for Requested {
    type Err = DataplaneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Requested::Auto);
        }
        s.parse().map(Requested::Kind)
    }
}

/// The data plane picked, and why (one sentence for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The data plane.
    pub kind: DataplaneKind,
    /// Why.
    pub reason: String,
}

/// What the links were found to sit on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMasters {
    /// No attached link exists yet.
    NoLinks,
    /// Every attached link is a port of this bridge.
    Bridge(String),
    /// Some link is on no bridge (named), or they are on several bridges.
    NotOneBridge(String),
}

/// Finds the bridge the attached links are ports of.
pub fn link_masters(links: &[LinkSpec]) -> Result<LinkMasters, crate::kernel::Error> {
    if links.is_empty() {
        return Ok(LinkMasters::NoLinks);
    }
    let mut nl = Netlink::open()?;
    let mut bridge: Option<String> = None;
    for l in links {
        let link = nl.link_by_index(l.ifindex)?;
        let master = match link.master {
            Some(m) => nl.link_by_index(m)?,
            None => {
                return Ok(LinkMasters::NotOneBridge(format!(
                    "link {} is not a port of a bridge",
                    l.name
                )));
            }
        };
        if master.kind != "bridge" {
            return Ok(LinkMasters::NotOneBridge(format!(
                "link {} is enslaved to {} (a {:?} device), not a bridge",
                l.name, master.name, master.kind
            )));
        }
        match &bridge {
            Some(b) if *b != master.name => {
                return Ok(LinkMasters::NotOneBridge(format!(
                    "the links are on two bridges ({b} and {})",
                    master.name
                )));
            }
            _ => bridge = Some(master.name),
        }
    }
    Ok(bridge.map_or(LinkMasters::NoLinks, LinkMasters::Bridge))
}

/// The decision, from what was asked, whether the kernel supports VXLAN MDB entries
/// with a destination (and the probe's sentence), and where the links are. Pure.
pub fn decide(
    requested: Requested,
    kernel_ok: bool,
    kernel_reason: &str,
    masters: &LinkMasters,
) -> Result<Choice, String> {
    let kernel_blocker = if !kernel_ok {
        Some(kernel_reason.to_string())
    } else {
        match masters {
            LinkMasters::Bridge(_) => None,
            LinkMasters::NoLinks => Some(
                "no attached link exists yet, so nothing shows the task links sit on a bridge"
                    .to_string(),
            ),
            LinkMasters::NotOneBridge(why) => Some(why.clone()),
        }
    };
    match (requested, kernel_blocker) {
        (Requested::Kind(DataplaneKind::Userspace), _) => Ok(Choice {
            kind: DataplaneKind::Userspace,
            reason: "asked for".into(),
        }),
        (Requested::Kind(DataplaneKind::Kernel), _) if kernel_ok => {
            // Asked for explicitly: links may still appear later; the kernel data
            // plane waits for a bridge port.
            Ok(Choice {
                kind: DataplaneKind::Kernel,
                reason: match masters {
                    LinkMasters::Bridge(b) => format!("asked for; the task links are on {b}"),
                    _ => "asked for; waiting for task links on a bridge".into(),
                },
            })
        }
        (Requested::Kind(DataplaneKind::Kernel), why) => Err(why.unwrap_or_default()),
        (Requested::Auto, None) => Ok(Choice {
            kind: DataplaneKind::Kernel,
            reason: format!(
                "{kernel_reason}, and the task links are on bridge {}",
                match masters {
                    LinkMasters::Bridge(b) => b.as_str(),
                    _ => "?",
                }
            ),
        }),
        (Requested::Auto, Some(why)) => Ok(Choice {
            kind: DataplaneKind::Userspace,
            reason: format!("the kernel data plane cannot be used: {why}"),
        }),
    }
}

/// Picks the data plane for the links attached now: probes the kernel (in a scratch
/// network namespace) only when the kernel data plane is a candidate.
pub fn choose(requested: Requested, links: &[LinkSpec]) -> Result<Choice, DataplaneError> {
    if requested == Requested::Kind(DataplaneKind::Userspace) {
        return decide(requested, false, "", &LinkMasters::NoLinks)
            .map_err(DataplaneError::KernelUnusable);
    }
    let support = KernelSupport::probe().map_err(DataplaneError::Kernel)?;
    let masters = link_masters(links).map_err(DataplaneError::Kernel)?;
    let choice = decide(requested, support.vxlan_mdb, &support.reason, &masters)
        .map_err(DataplaneError::KernelUnusable)?;
    Ok(match choice.kind {
        DataplaneKind::Kernel => with_wireguard(choice, &wireguard::probe()),
        DataplaneKind::Userspace => choice,
    })
}

/// `choice` (the kernel data plane) with which WireGuard it tunnels through, and why.
/// Pure.
pub fn with_wireguard(choice: Choice, wg: &WireguardSupport) -> Choice {
    Choice {
        reason: format!("{}; WireGuard tunnels: {}", choice.reason, wg.reason),
        ..choice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br() -> LinkMasters {
        LinkMasters::Bridge("br0".into())
    }

    #[test]
    fn auto_takes_the_kernel_only_with_support_and_a_bridge() {
        let c = decide(Requested::Auto, true, "kernel 6.18 accepted", &br()).unwrap();
        assert_eq!(c.kind, DataplaneKind::Kernel);
        assert!(
            c.reason.contains("br0") && c.reason.contains("6.18"),
            "{}",
            c.reason
        );
        let c = decide(Requested::Auto, false, "kernel 5.15 refused", &br()).unwrap();
        assert_eq!(c.kind, DataplaneKind::Userspace);
        assert!(c.reason.contains("5.15"), "{}", c.reason);
        let c = decide(Requested::Auto, true, "ok", &LinkMasters::NoLinks).unwrap();
        assert_eq!(c.kind, DataplaneKind::Userspace);
        let not = LinkMasters::NotOneBridge("link tk1 is not a port of a bridge".into());
        let c = decide(Requested::Auto, true, "ok", &not).unwrap();
        assert_eq!(c.kind, DataplaneKind::Userspace);
        assert!(c.reason.contains("tk1"), "{}", c.reason);
    }

    #[test]
    fn the_kernel_choice_says_which_wireguard_and_why() {
        let c = decide(Requested::Auto, true, "kernel 6.18 accepted", &br()).unwrap();
        let wg = WireguardSupport {
            kernel_module: false,
            kind: wireguard::WireguardKind::Userspace,
            reason: "the WireGuard module is missing, so a userspace TUN device".into(),
        };
        let c = with_wireguard(c, &wg);
        assert_eq!(c.kind, DataplaneKind::Kernel);
        assert!(
            c.reason.contains("6.18") && c.reason.contains("module is missing"),
            "{}",
            c.reason
        );
    }

    #[test]
    fn explicit_choices_are_kept_or_refused_with_the_reason() {
        let u = Requested::Kind(DataplaneKind::Userspace);
        assert_eq!(
            decide(u, true, "ok", &br()).unwrap().kind,
            DataplaneKind::Userspace
        );
        let k = Requested::Kind(DataplaneKind::Kernel);
        assert_eq!(
            decide(k, true, "ok", &LinkMasters::NoLinks).unwrap().kind,
            DataplaneKind::Kernel
        );
        let e = decide(k, false, "kernel 5.15 refused", &br()).unwrap_err();
        assert!(e.contains("5.15"), "{e}");
        assert_eq!("auto".parse::<Requested>().unwrap(), Requested::Auto);
        assert_eq!("kernel".parse::<Requested>().unwrap(), k);
        assert!("ebpf".parse::<Requested>().is_err());
    }
}
