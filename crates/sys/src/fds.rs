//! Closing inherited descriptors on `exec`: a library that opens a file without
//! `O_CLOEXEC` leaks it into every child process, which then keeps it open.
//!
//! boringtun opens `/dev/net/tun` that way; a TUN device lives as long as any process
//! holds it, so a child started later (a helper program, a test's capture) would keep
//! the WireGuard device alive after the agent removed it.

use std::io;

use crate::sockopt::getsockopt;

/// This process's descriptors with what each is open on (the `/proc/self/fd` link
/// text). A descriptor closed since the directory was read has no link and is left out.
fn open_descriptors() -> io::Result<Vec<(i32, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(entry.path()) {
            out.push((fd, target));
        }
    }
    Ok(out)
}

/// Sets `FD_CLOEXEC` on every descriptor of this process open on `path` (compared with
/// the `/proc/self/fd` link text). Returns how many descriptors it set.
pub fn set_cloexec_on(path: &str) -> io::Result<usize> {
    let mut set = 0;
    for (fd, target) in open_descriptors()? {
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

/// Sets the receive and send buffers (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, else as far as
/// `SO_RCVBUF`/`SO_SNDBUF` allow) of every UDP socket of this process bound to local
/// port `port`. For sockets a library made and does not hand out (boringtun's WireGuard
/// sockets, whose default buffers overflow under a burst). Returns how many it set.
pub fn set_udp_buffers_on_port(port: u16, bytes: usize) -> io::Result<usize> {
    let mut set = 0;
    for (fd, target) in open_descriptors()? {
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let mut ty: libc::c_int = 0;
        if getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, &mut ty).is_err() {
            continue;
        }
        if ty != libc::SOCK_DGRAM || local_port(fd) != Some(port) {
            continue;
        }
        // SAFETY: `fd` is open in this process (listed in /proc/self/fd and a socket
        // a moment ago); it is borrowed only for these two setsockopt calls, and a
        // descriptor closed meanwhile makes them fail with EBADF.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        crate::packet::set_recv_buffer(borrowed, bytes)?;
        crate::packet::set_send_buffer(borrowed, bytes)?;
        set += 1;
    }
    Ok(set)
}

/// The local port of socket `fd` if it is bound to an IPv4 or IPv6 address.
fn local_port(fd: i32) -> Option<u16> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `addr`, which is that large;
    // a descriptor that is not a socket (or closed meanwhile) makes it fail.
    let r = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) };
    if r != 0 {
        return None;
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage,
            // which is larger and suitably aligned for it.
            let a = unsafe { &*(&raw const addr).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6.
            let a = unsafe { &*(&raw const addr).cast::<libc::sockaddr_in6>() };
            Some(u16::from_be(a.sin6_port))
        }
        _ => None,
    }
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

    #[test]
    fn sets_the_buffers_of_the_udp_socket_on_the_port() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert_eq!(set_udp_buffers_on_port(port, 1 << 20).unwrap(), 1);
        let mut rcv: libc::c_int = 0;
        getsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &mut rcv).unwrap();
        // The kernel doubles what it is given; without CAP_NET_ADMIN rmem_max caps it.
        assert!(rcv >= 200_000, "{rcv}");
    }
}
