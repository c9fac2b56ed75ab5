//! The socket system calls the packet and tunnel sockets share: open, bind, and socket
//! options read or written as plain C values.

use std::io;
use std::mem::size_of;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A libc return value as an `io::Result` (`errno` when negative).
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `socket(2)`, owned.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments; the result is checked.
    let raw = cvt(unsafe { libc::socket(domain, ty, protocol) })?;
    // SAFETY: `raw` is a descriptor just opened and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `bind(2)` to `addr`, a C socket address (`sockaddr_in`, `sockaddr_ll`, ...).
pub(crate) fn bind<A>(fd: RawFd, addr: &A) -> io::Result<()> {
    // SAFETY: `addr` is a valid, initialised `A` for the duration of the call and the
    // length passed is exactly its size; the kernel only reads that many bytes.
    cvt(unsafe {
        libc::bind(
            fd,
            (addr as *const A).cast(),
            size_of::<A>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// `setsockopt(2)` with `value` as the option's C value.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a valid, initialised `T` for the duration of the call and the
    // length passed is exactly its size; the kernel only reads that many bytes.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    cvt(ret).map(|_| ())
}

/// `getsockopt(2)` into `value` (a plain C value: any bytes are a valid `T`, such as an
/// integer array).
pub(crate) fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is valid for writes of `len` bytes and `len` is passed by pointer
    // as getsockopt requires; the kernel writes at most `len` bytes, and every bit
    // pattern is a valid `T` for the plain C values this is called with.
    cvt(unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) })
        .map(|_| ())
}
