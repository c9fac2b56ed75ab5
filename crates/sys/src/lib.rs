//! mcgate-sys: every `unsafe` block and raw system call of mcgate, in one small crate.
//!
//! Safe wrappers over batched socket calls (`recvmmsg`/`sendmmsg`), AF_PACKET sockets (and
//! their registration with the tokio reactor) and raw netlink, each with the invariants
//! it relies on written next to the `unsafe` block.
//! Everything else in mcgate denies `unsafe_code`.
//!
//! This crate must never hold protocol logic or policy: it moves bytes and reports errors.

#![allow(unsafe_code)]

/// `AsRawFd` and `AsFd` for a socket type that owns its descriptor in a field `fd`.
macro_rules! fd_traits {
    ($t:ty) => {
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.fd)
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.fd)
            }
        }
    };
}

#[cfg(feature = "tokio")]
pub mod async_packet;
pub mod fds;
pub mod if_inet6;
pub mod mcast;
pub mod mmsg;
pub mod packet;
pub mod poll;
mod sockopt;
pub mod tun;
pub mod tunnel;
