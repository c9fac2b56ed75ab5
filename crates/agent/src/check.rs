//! `mcgate agent --check`: what this host offers the agent, and which data plane
//! `--dataplane auto` would choose here, with the reasons.
//!
//! It changes nothing on the host: it reads `/proc` and `/sys`, opens (and closes) a
//! packet socket and a netlink socket, and runs the kernel probe, which works in a
//! throwaway network namespace. [`gather`] does that I/O into [`Facts`]; [`assess`]
//! turns facts into verdict lines and the data plane choice without any I/O, so every
//! verdict is tested on made-up hosts.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use mcgate_dataplane::choose::{self, Choice, LinkMasters, Requested};
use mcgate_dataplane::kernel::{KernelSupport, Netlink, Support};
use mcgate_dataplane::{DataplaneKind, LinkSpec};

use crate::config::{AgentConfig, parse_underlay};
use crate::{AgentArgs, netdev};

/// Capability numbers (`linux/capability.h`).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;

/// The interface holding the underlay address and its MTU, or why none does.
pub type UnderlayFound = Result<(String, usize), String>;

/// What was found on the host.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `uname -r`.
    pub kernel_release: String,
    /// The effective capability set (`CapEff` of `/proc/self/status`), if readable.
    pub capabilities: Option<u64>,
    /// Whether an `AF_PACKET` socket opens (the error otherwise).
    pub packet_socket: Result<(), String>,
    /// Whether a route netlink socket opens (the error otherwise).
    pub netlink: Result<(), String>,
    /// The kernel probe's answer (VXLAN MDB entries with a destination).
    pub kernel: Result<Support, String>,
    /// `net.ipv4.conf.all.force_igmp_version`, if readable.
    pub force_igmp_version: Option<u8>,
    /// The underlay asked for, and the interface holding it with its MTU (or why not).
    pub underlay: Option<(String, UnderlayFound)>,
    /// The attach patterns.
    pub attach: Vec<String>,
    /// The links matching them now.
    pub links: Vec<String>,
    /// Each of those links' IPv6 state: what its MLD querier waits for, if anything.
    pub links_ipv6: Vec<(String, netdev::Ipv6Link)>,
    /// Where those links sit (the error when netlink could not tell).
    pub masters: Result<LinkMasters, String>,
    /// For a bridge holding the links: whether it has IGMP snooping (the sysfs knob
    /// exists only with `CONFIG_BRIDGE_IGMP_SNOOPING`) and its current value.
    pub bridge_snooping: Option<(String, Option<bool>)>,
    /// The data plane asked for.
    pub requested: Requested,
}

/// How one finding bears on running the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, with a limit worth knowing.
    Note,
    /// The agent cannot run as configured.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The verdict.
    pub verdict: Verdict,
    /// What was checked.
    pub what: &'static str,
    /// What was found, in a sentence.
    pub detail: String,
}

fn has(caps: Option<u64>, cap: u32) -> Option<bool> {
    caps.map(|c| c & (1 << cap) != 0)
}

fn finding(verdict: Verdict, what: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        verdict,
        what,
        detail: detail.into(),
    }
}

/// The findings, and the data plane the agent would run (or why it cannot). Pure.
pub fn assess(f: &Facts) -> (Vec<Finding>, Result<Choice, String>) {
    use Verdict::{Fail, Note, Ok};
    let mut out = vec![finding(Ok, "kernel", format!("Linux {}", f.kernel_release))];
    let cap_line = |cap, name: &str, why: &str| match has(f.capabilities, cap) {
        Some(true) => finding(Ok, "capability", format!("{name}: held")),
        Some(false) => finding(Note, "capability", format!("{name}: missing ({why})")),
        None => finding(Note, "capability", format!("{name}: unknown ({why})")),
    };
    out.push(cap_line(
        CAP_NET_RAW,
        "CAP_NET_RAW",
        "packet sockets on the links need it",
    ));
    out.push(cap_line(
        CAP_NET_ADMIN,
        "CAP_NET_ADMIN",
        "the kernel data plane and SO_RCVBUFFORCE need it",
    ));
    out.push(cap_line(
        CAP_SYS_ADMIN,
        "CAP_SYS_ADMIN",
        "optional: without it auto compares the kernel release instead of probing",
    ));
    out.push(match &f.packet_socket {
        Result::Ok(()) => finding(Ok, "packet sockets", "AF_PACKET opens"),
        Err(e) => finding(
            Fail,
            "packet sockets",
            format!("AF_PACKET does not open ({e}): no IGMP and no relay on the links"),
        ),
    });
    out.push(match &f.netlink {
        Result::Ok(()) => finding(Ok, "netlink", "route netlink opens"),
        Err(e) => finding(
            Note,
            "netlink",
            format!("route netlink does not open ({e})"),
        ),
    });
    let kernel_ok = match &f.kernel {
        Result::Ok(s) => {
            let v = if s.vxlan_mdb { Ok } else { Note };
            out.push(finding(v, "VXLAN multicast tables", s.reason.clone()));
            s.vxlan_mdb
        }
        Err(e) => {
            out.push(finding(
                Note,
                "VXLAN multicast tables",
                format!("probe failed: {e}"),
            ));
            false
        }
    };
    out.push(match f.force_igmp_version {
        Some(0) => finding(
            Ok,
            "IGMP version",
            "force_igmp_version 0: hosts speak their default (IGMPv3 on Linux)",
        ),
        Some(v) => finding(
            Ok,
            "IGMP version",
            format!("force_igmp_version {v}: new namespaces speak IGMPv{v}"),
        ),
        None => finding(
            Note,
            "IGMP version",
            "net.ipv4.conf.all.force_igmp_version unreadable",
        ),
    });
    match &f.underlay {
        None => out.push(finding(
            Note,
            "underlay",
            "not given (--underlay): not checked",
        )),
        Some((given, Result::Ok((iface, mtu)))) => out.push(finding(
            Ok,
            "underlay",
            format!(
                "{given} is on {iface}, MTU {mtu} (frames up to {} bytes fit in VXLAN)",
                mtu.saturating_sub(50)
            ),
        )),
        Some((given, Err(e))) => out.push(finding(Fail, "underlay", format!("{given}: {e}"))),
    }
    if f.attach.is_empty() {
        out.push(finding(
            Note,
            "links",
            "no --attach given: links not checked",
        ));
    } else if f.links.is_empty() {
        out.push(finding(
            Note,
            "links",
            format!(
                "none matches {:?} yet (they are looked for every second)",
                f.attach
            ),
        ));
    } else {
        out.push(finding(
            Ok,
            "links",
            format!(
                "{} match {:?}: {}",
                f.links.len(),
                f.attach,
                f.links.join(" ")
            ),
        ));
    }
    if let Some(line) = mld_line(&f.links_ipv6) {
        out.push(line);
    }
    let masters = match &f.masters {
        Result::Ok(m) => m.clone(),
        Err(e) => LinkMasters::NotOneBridge(format!("cannot tell where the links sit: {e}")),
    };
    match &masters {
        LinkMasters::Bridge(b) => {
            out.push(finding(Ok, "bridge", format!("the links are ports of {b}")))
        }
        LinkMasters::NotOneBridge(why) => out.push(finding(Note, "bridge", why.clone())),
        LinkMasters::NoLinks => {}
    }
    if let Some((bridge, snooping)) = &f.bridge_snooping {
        out.push(match snooping {
            Some(on) => finding(
                Ok,
                "bridge snooping",
                format!(
                    "{bridge} has IGMP snooping (now {})",
                    if *on { "on" } else { "off" }
                ),
            ),
            None => finding(
                Note,
                "bridge snooping",
                format!("{bridge} has no IGMP snooping (CONFIG_BRIDGE_IGMP_SNOOPING)"),
            ),
        });
    }
    let reason = match &f.kernel {
        Result::Ok(s) => s.reason.as_str(),
        Err(e) => e.as_str(),
    };
    let snooping_missing = matches!(f.bridge_snooping, Some((_, None)));
    let mut choice = choose::decide(
        f.requested,
        kernel_ok && !snooping_missing,
        reason,
        &masters,
    );
    if let Result::Ok(c) = &mut choice
        && c.kind == DataplaneKind::Kernel
        && has(f.capabilities, CAP_NET_ADMIN) == Some(false)
    {
        if f.requested == Requested::Auto {
            *c = Choice {
                kind: DataplaneKind::Userspace,
                reason: "the kernel data plane needs CAP_NET_ADMIN".into(),
            };
        } else {
            choice = Err("the kernel data plane needs CAP_NET_ADMIN".into());
        }
    }
    (out, choice)
}

/// The report as printed, and whether the agent can run as configured.
pub fn render(
    findings: &[Finding],
    requested: Requested,
    choice: &Result<Choice, String>,
) -> (String, bool) {
    let mut s = String::new();
    for f in findings {
        let mark = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Note => "note",
            Verdict::Fail => "FAIL",
        };
        s.push_str(&format!("{mark}  {:<22} {}\n", f.what, f.detail));
    }
    let ok = !findings.iter().any(|f| f.verdict == Verdict::Fail) && choice.is_ok();
    match choice {
        Ok(c) => s.push_str(&format!(
            "data plane: {} (asked: {}): {}\n",
            c.kind.as_str(),
            requested.as_str(),
            c.reason
        )),
        Err(why) => s.push_str(&format!(
            "data plane: none (asked: {}): {why}\n",
            requested.as_str()
        )),
    }
    s.push_str(if ok {
        "verdict: the agent can run here\n"
    } else {
        "verdict: the agent cannot run here as configured\n"
    });
    (s, ok)
}

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether the links can have an MLD querier now: each needs a link-local address out of
/// DAD. `None` without links.
fn mld_line(links: &[(String, netdev::Ipv6Link)]) -> Option<Finding> {
    if links.is_empty() {
        return None;
    }
    let waiting: Vec<String> = links
        .iter()
        .filter(|(_, v6)| v6.ready().is_none())
        .map(|(name, v6)| format!("{name} {}", v6.name()))
        .collect();
    Some(if waiting.is_empty() {
        finding(
            Verdict::Ok,
            "MLD",
            "every link has a link-local address: an MLD querier runs on each",
        )
    } else {
        finding(
            Verdict::Note,
            "MLD",
            format!(
                "no MLD querier (IPv6) until a link-local address is out of DAD: {}",
                waiting.join(", ")
            ),
        )
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Looks at the host. `underlay`, `attach` and `requested` are the agent's settings.
pub fn gather(underlay: Option<&str>, attach: &[String], requested: Requested) -> Facts {
    let kernel_release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let packet_socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None)
        .map(drop)
        .map_err(|e| e.to_string());
    let netlink = Netlink::open().map(drop).map_err(|e| e.to_string());
    let kernel = KernelSupport::probe().map_err(|e| e.to_string());
    let force_igmp_version =
        read_trimmed("/proc/sys/net/ipv4/conf/all/force_igmp_version").and_then(|s| s.parse().ok());
    let mut underlay_if = None;
    let underlay = underlay.map(|u| {
        let found = match parse_underlay(u) {
            Err(e) => Err(e.to_string()),
            Ok(addr) => find_underlay(*addr.ip()).and_then(|found| {
                // The tunnel's port must be free (Calico's VXLAN device holds 4789).
                std::net::UdpSocket::bind(addr)
                    .map(|_| found)
                    .map_err(|e| format!("UDP port {} cannot be bound ({e})", addr.port()))
            }),
        };
        if let Ok((iface, _)) = &found {
            underlay_if = Some(iface.clone());
        }
        (u.to_string(), found)
    });
    let devs: Vec<_> = if attach.is_empty() {
        Vec::new()
    } else {
        netdev::scan(attach)
            .into_iter()
            .filter(|d| Some(&d.name) != underlay_if.as_ref())
            .collect()
    };
    let specs: Vec<LinkSpec> = devs
        .iter()
        .map(|d| LinkSpec {
            name: d.name.clone(),
            ifindex: d.ifindex,
            routers: false,
            single_host: d.single_host(),
            egress: Vec::new(),
            standby: Vec::new(),
        })
        .collect();
    let masters = choose::link_masters(&specs).map_err(|e| e.to_string());
    let bridge_snooping = match &masters {
        Ok(LinkMasters::Bridge(b)) => Some((
            b.clone(),
            read_trimmed(&format!("/sys/class/net/{b}/bridge/multicast_snooping"))
                .map(|v| v == "1"),
        )),
        _ => None,
    };
    Facts {
        kernel_release,
        capabilities: effective_capabilities(),
        packet_socket,
        netlink,
        kernel,
        force_igmp_version,
        underlay,
        attach: attach.to_vec(),
        links_ipv6: devs.iter().map(|d| (d.name.clone(), d.ipv6)).collect(),
        links: devs.into_iter().map(|d| d.name).collect(),
        masters,
        bridge_snooping,
        requested,
    }
}

fn find_underlay(ip: Ipv4Addr) -> UnderlayFound {
    netdev::underlay_interface(ip)
        .map(|(iface, mtu, _)| (iface, mtu))
        .ok_or_else(|| "not assigned to any interface of this host".to_string())
}

/// `mcgate agent --check`: prints the report; exit 0 when the agent can run as
/// configured, 1 when it cannot, 2 for unusable settings.
pub fn run(args: &AgentArgs) -> ExitCode {
    // With a config file the settings are the agent's own, complete; without one, the
    // flags given (controller and host do not matter here).
    let (underlay, attach, requested) = if args.config.is_some() {
        // The check needs neither the controller nor the host name, which a shared
        // config (a Kubernetes ConfigMap) may leave to flags.
        let mut args = AgentArgs {
            controller: args.controller.clone(),
            token: None,
            token_file: None,
            ca: None,
            credential_file: None,
            host: args.host.clone(),
            zone: None,
            underlay: args.underlay.clone(),
            attach: args.attach.clone(),
            router_links: args.router_links.clone(),
            admin: None,
            config: args.config.clone(),
            dataplane: args.dataplane.clone(),
            state_dir: None,
            check: true,
            wireguard_port: None,
            rotate_key: false,
            upstream: None,
            upstream_groups: None,
            upstream_egress: None,
            liveness_port: None,
            liveness_interval_ms: None,
            liveness_multiplier: None,
        };
        if args.controller.is_empty() {
            args.controller.push("https://127.0.0.1:7400".into());
        }
        args.host.get_or_insert_with(|| "check".into());
        match AgentConfig::resolve(&args) {
            Ok(c) => (Some(c.underlay.to_string()), c.attach, c.dataplane),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let requested = match args.dataplane.as_deref().unwrap_or("auto").parse() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        (args.underlay.clone(), args.attach.clone(), requested)
    };
    let facts = gather(underlay.as_deref(), &attach, requested);
    let (findings, choice) = assess(&facts);
    let (text, ok) = render(&findings, requested, &choice);
    print!("{text}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
