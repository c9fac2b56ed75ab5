//! Closing inherited descriptors on `exec`: a library that opens a file without
//! `O_CLOEXEC` leaks it into every child process, which then keeps it open.
//!
//! boringtun opens `/dev/net/tun` that way; a TUN device lives as long as any process
//! holds it, so a child started later (a helper program, a test's capture) would keep
//! the WireGuard device alive after the agent removed it.

use std::io;

/// Sets `FD_CLOEXEC` on every descriptor of this process open on `path` (compared with
/// the `/proc/self/fd` link text). Returns how many descriptors it set.
pub fn set_cloexec_on(path: &str) -> io::Result<usize> {
    let mut set = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A descriptor closed since the directory was read has no link: skip it.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.as_os_str() != path {
            continue;
        }
        // SAFETY: fcntl on a descriptor number only reads and sets its flags; a number
        // closed (or reused) meanwhile makes it fail with EBADF or set the flag on the
        // new descriptor, which is harmless (close-on-exec only).
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            continue;
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        set += 1;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn sets_the_flag_on_matching_descriptors_only() {
        // std opens with O_CLOEXEC; clear it to see the call set it again.
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        // SAFETY: clearing the flags of a descriptor this test owns.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        assert!(set_cloexec_on("/dev/null").unwrap() >= 1);
        // SAFETY: reading the flags of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(set_cloexec_on("/no/such/file").unwrap(), 0);
    }
}
