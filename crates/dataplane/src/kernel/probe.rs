//! Does this kernel keep per-group remote destinations on a VXLAN device (Linux >= 6.3)?
//!
//! The reliable answer is to try: in a throwaway network namespace (made on a scratch
//! thread with `unshare(CLONE_NEWNET)`, gone when the thread ends) create a VXLAN device
//! and add an MDB entry with a destination. Nothing on the host is touched. Where the
//! namespace cannot be made (no CAP_SYS_ADMIN), fall back to the kernel version.

use std::net::Ipv4Addr;

use nix::sched::{CloneFlags, unshare};
use nix::sys::utsname::uname;

use super::error::Error;
use super::link_msg;
use super::mdb_msg::{self, VxlanMdbEntry};
use super::socket::Netlink;
use super::vxlan::VxlanConfig;

/// The first Linux release with VXLAN MDB entries (`MDBE_ATTR_DST`).
pub const MIN_KERNEL: (u32, u32) = (6, 3);

/// How the answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// An MDB entry with a destination was added to a scratch VXLAN device.
    ScratchDevice,
    /// Only the kernel release was compared with [`MIN_KERNEL`].
    KernelVersion,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// True when VXLAN MDB entries with a destination work.
    pub vxlan_mdb: bool,
    /// `uname -r`.
    pub kernel_release: String,
    /// How the answer was found.
    pub method: ProbeMethod,
    /// One sentence for the agent's log: why the kernel path is or is not usable.
    pub reason: String,
}

/// Entry point of the probe.
#[derive(Debug, Clone, Copy)]
pub struct KernelSupport;

impl KernelSupport {
    /// Probes the running kernel. Errors only when even the kernel release cannot be read.
    pub fn probe() -> Result<Support, Error> {
        let release = uname()
            .map_err(|e| Error::Probe(format!("uname failed: {e}")))?
            .release()
            .to_string_lossy()
            .into_owned();
        let scratch = std::thread::Builder::new()
            .name("mcgate-kprobe".into())
            .spawn(try_in_scratch_namespace)
            .map_err(|e| Error::Probe(format!("cannot start the probe thread: {e}")))?
            .join()
            .map_err(|_| Error::Probe("the probe thread panicked".into()))?;
        Ok(match scratch {
            Ok(()) => Support {
                vxlan_mdb: true,
                reason: format!(
                    "kernel {release} accepted a VXLAN MDB entry with a remote destination on a scratch device"
                ),
                kernel_release: release,
                method: ProbeMethod::ScratchDevice,
            },
            Err(Attempt::Refused(e)) => Support {
                vxlan_mdb: false,
                reason: format!(
                    "kernel {release} refused a VXLAN MDB entry with a remote destination ({e}); \
                     Linux {}.{} or newer is needed",
                    MIN_KERNEL.0, MIN_KERNEL.1
                ),
                kernel_release: release,
                method: ProbeMethod::ScratchDevice,
            },
            Err(Attempt::CannotTry(why)) => {
                let ok = parse_release(&release).is_some_and(|v| v >= MIN_KERNEL);
                Support {
                    vxlan_mdb: ok,
                    reason: format!(
                        "could not test on a scratch device ({why}); kernel {release} is {} {}.{}",
                        if ok { "at least" } else { "older than" },
                        MIN_KERNEL.0,
                        MIN_KERNEL.1
                    ),
                    kernel_release: release,
                    method: ProbeMethod::KernelVersion,
                }
            }
        })
    }
}

enum Attempt {
    /// The namespace or device could not be made: no verdict from the kernel.
    CannotTry(String),
    /// The kernel refused the MDB entry itself.
    Refused(Error),
}

/// Runs on its own thread: `unshare` moves only this thread into a fresh namespace,
/// which disappears with the thread and the socket.
fn try_in_scratch_namespace() -> Result<(), Attempt> {
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| Attempt::CannotTry(format!("unshare(CLONE_NEWNET): {e}")))?;
    let mut nl = Netlink::open().map_err(|e| Attempt::CannotTry(e.to_string()))?;
    let spec = VxlanConfig {
        name: "mcgprobe0".into(),
        ..VxlanConfig::new(1, Ipv4Addr::new(192, 0, 2, 1), "")
    };
    nl.request(
        &link_msg::new_vxlan(&spec, None),
        "create a scratch VXLAN device",
    )
    .map_err(|e| Attempt::CannotTry(e.to_string()))?;
    let dev = nl
        .link_by_name(&spec.name)
        .map_err(|e| Attempt::CannotTry(e.to_string()))?;
    let entry = VxlanMdbEntry::new(Ipv4Addr::new(239, 255, 0, 1), Ipv4Addr::new(192, 0, 2, 2));
    nl.request(
        &mdb_msg::vxlan_add(dev.ifindex, &entry, false),
        "add a VXLAN MDB entry with a destination",
    )
    .map_err(Attempt::Refused)
}

/// `major.minor` of a release string such as `6.18.44-fc-v669`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_release("6.3.0"), Some((6, 3)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("garbage"), None);
        assert!((6, 1) < MIN_KERNEL && (6, 18) >= MIN_KERNEL && (7, 0) >= MIN_KERNEL);
    }
}
