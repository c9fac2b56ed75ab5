//! mcgate-wire: the packet formats mcgate reads and writes.
//!
//! Ethernet II, IPv4 (with options such as Router Alert), UDP, IGMP v1/v2/v3 and the
//! VXLAN header. Each format has a checked view over a byte buffer (`Packet<T>`) and a
//! high-level representation (`Repr`) with `parse` and `emit`, in the style of smoltcp.
//!
//! This crate must never do I/O, read a clock, allocate on the data path views, or panic
//! on any input: every parser takes untrusted bytes and returns a value or an [`Error`].

#![forbid(unsafe_code)]

pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod igmp;
pub mod ipv4;
pub mod udp;
pub mod vxlan;

pub use error::{Error, Result};
