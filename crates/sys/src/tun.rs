//! One queue of a multi-queue TUN device, opened by name.
//!
//! A userspace WireGuard implementation that creates its own TUN reads the device's MTU
//! once, at creation, and never reads packets longer than that (boringtun without its
//! control socket file). Holding a queue of the device open first lets the caller create
//! the device and set its MTU before the implementation attaches its own queue and reads
//! it; the device lives on while any queue is attached.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens (creating if needed) a queue of the multi-queue, no-packet-info TUN device
/// `name`: the flags boringtun uses, so its queue attaches to the same device. The
/// descriptor is close-on-exec. Errors: a name of `IFNAMSIZ` bytes or more
/// (`InvalidInput`), no `/dev/net/tun`, or the kernel's refusal (a device of that name
/// with other flags: `EINVAL`; no `CAP_NET_ADMIN`: `EPERM`).
pub fn open_queue(name: &str) -> io::Result<File> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE,
        _pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads (and may write back the name into) an ifreq-sized struct;
    // `req` is a live, properly sized `#[repr(C)]` ifreq (16-byte name, flags, padding to
    // 40 bytes) for the duration of the call, and the descriptor is ours.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_size_of_an_ifreq() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn names_the_kernel_cannot_take_are_refused_before_any_call() {
        for bad in ["", "a-name-of-16-chr", "a\0b"] {
            let e = open_queue(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
