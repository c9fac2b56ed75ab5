//! Which WireGuard the kernel data plane uses: the kernel's `wireguard` link where the
//! kernel can create one, otherwise the userspace TUN device. Like the VXLAN probe, the
//! answer comes from trying, in a throwaway network namespace on a scratch thread.

use nix::sched::{CloneFlags, unshare};

use super::super::link_msg;
use super::super::socket::Netlink;

/// The WireGuard implementation in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireguardKind {
    /// The kernel's `wireguard` link.
    Kernel,
    /// A TUN device with WireGuard run in the agent (boringtun).
    Userspace,
}

/// What the probe found, with one sentence for the log and `/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WireguardSupport {
    /// Whether the kernel can create `wireguard` links.
    pub kernel_module: bool,
    /// What the data plane uses.
    pub kind: WireguardKind,
    /// Why.
    pub reason: String,
}

/// Tries to create a `wireguard` link in a scratch namespace, once per process: the
/// data plane's choice and its start both ask, and each try costs a thread, a
/// namespace and a netlink round trip.
///
/// The kernel data plane drives the userspace device in both cases for now: it is the
/// one way configured through one protocol (UAPI) on every kernel; the sentence says
/// so when the kernel has the module.
pub fn probe() -> WireguardSupport {
    static FOUND: std::sync::OnceLock<WireguardSupport> = std::sync::OnceLock::new();
    FOUND.get_or_init(probe_now).clone()
}

fn probe_now() -> WireguardSupport {
    let attempt = std::thread::Builder::new()
        .name("mcgate-wgprobe".into())
        .spawn(try_kernel_link)
        .map_err(|e| format!("cannot start the probe thread: {e}"))
        .and_then(|h| {
            h.join()
                .map_err(|_| "the probe thread panicked".to_string())
        })
        .and_then(|r| r);
    match attempt {
        Ok(()) => WireguardSupport {
            kernel_module: true,
            kind: WireguardKind::Userspace,
            reason: "the kernel can create wireguard links; mcgate runs its userspace \
                     WireGuard TUN device (boringtun) all the same, configured the same \
                     way on every kernel"
                .into(),
        },
        Err(why) => WireguardSupport {
            kernel_module: false,
            kind: WireguardKind::Userspace,
            reason: format!(
                "the kernel cannot create a wireguard link ({why}): the WireGuard module \
                 is missing, so mcgate runs a userspace WireGuard TUN device (boringtun)"
            ),
        },
    }
}

fn try_kernel_link() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    let mut nl = Netlink::open().map_err(|e| e.to_string())?;
    nl.request(
        &link_msg::new_wireguard("mcgwgprobe0"),
        "create a scratch wireguard link",
    )
    .map_err(|e| match e.errno() {
        // The kernel's own words ("Unknown device type"), not the VXLAN hint.
        Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        None => e.to_string(),
    })
}
