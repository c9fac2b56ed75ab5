//! Multicast socket options that neither socket2 nor nix offer: the protocol-independent
//! source-specific join (RFC 3678 section 5.2, `MCAST_JOIN_SOURCE_GROUP`), which is how
//! an IPv6 socket asks for an MLDv2 INCLUDE (source, group) membership.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd};

use crate::sockopt::setsockopt;

/// A `sockaddr_storage` holding `addr` as a `sockaddr_in6`.
fn storage_v6(addr: Ipv6Addr) -> libc::sockaddr_storage {
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: addr.octets(),
        },
        sin6_scope_id: 0,
    };
    // SAFETY: sockaddr_storage is plain C integers; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in6
    // (that is its purpose), so the write stays inside `ss` and is aligned.
    unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in6>(), sin6) };
    ss
}

/// Joins `group` on the interface with index `ifindex` (0: the kernel picks by route),
/// accepting only datagrams from `source` (`MCAST_JOIN_SOURCE_GROUP` at `IPPROTO_IPV6`).
/// Repeat for several sources. The membership ends when the socket is closed.
pub fn join_source_group_v6(
    sock: &impl AsFd,
    group: Ipv6Addr,
    source: Ipv6Addr,
    ifindex: u32,
) -> io::Result<()> {
    let req = libc::group_source_req {
        gsr_interface: ifindex,
        gsr_group: storage_v6(group),
        gsr_source: storage_v6(source),
    };
    setsockopt(
        sock.as_fd().as_raw_fd(),
        libc::IPPROTO_IPV6,
        libc::MCAST_JOIN_SOURCE_GROUP,
        &req,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddrV6, UdpSocket};

    fn read_back(ss: &libc::sockaddr_storage) -> SocketAddrV6 {
        // SAFETY: `ss` was written by `storage_v6` as a sockaddr_in6.
        let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        SocketAddrV6::new(Ipv6Addr::from(a.sin6_addr.s6_addr), a.sin6_port, 0, 0)
    }

    #[test]
    fn storage_holds_the_address() {
        let g: Ipv6Addr = "ff3e::8000:1".parse().unwrap();
        let ss = storage_v6(g);
        assert_eq!(i32::from(ss.ss_family), libc::AF_INET6);
        assert_eq!(read_back(&ss), SocketAddrV6::new(g, 0, 0, 0));
    }

    #[test]
    fn source_join_is_refused_for_a_unicast_group() {
        let sock = UdpSocket::bind("[::1]:0").unwrap();
        let e = join_source_group_v6(&sock, "fd00::1".parse().unwrap(), Ipv6Addr::LOCALHOST, 1)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    }
}
