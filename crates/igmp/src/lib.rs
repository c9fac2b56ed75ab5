//! mcgate-igmp: the router side of IGMP, as a pure state machine.
//!
//! One [`Interface`] per attached link implements RFC 3376 section 6 (multicast router
//! behaviour) with section 7 compatibility for IGMPv1/v2 hosts, and RFC 2236 in `v2` mode.
//! It is driven in the shape of quinn-proto: feed it received packets
//! ([`Interface::handle_packet`]) and timeouts ([`Interface::handle_timeout`]) with the
//! current time; take what it wants sent ([`Interface::poll_transmit`]), the membership
//! changes ([`Interface::poll_event`]) and the next time it wants to be woken
//! ([`Interface::poll_timeout`]).
//!
//! This crate must never do I/O or read a clock: time is always an argument.

#![forbid(unsafe_code)]

mod filter;

pub use filter::{FilterMode, SourceFilter};
