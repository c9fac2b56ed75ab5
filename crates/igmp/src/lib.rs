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
//! ```
//! use std::time::{Duration, Instant};
//! use mcgate_igmp::{Config, Interface};
//!
//! let t0 = Instant::now(); // the driver's clock; this crate never reads one
//! let mut igmp = Interface::new(Config::default(), "10.0.0.1".parse().unwrap(), t0);
//! // The first startup query is due at once.
//! let q = igmp.poll_transmit().unwrap();
//! assert_eq!(q.dst, mcgate_igmp::ALL_SYSTEMS);
//! assert_eq!(igmp.poll_timeout(), Some(t0 + Config::default().startup_query_interval));
//! ```
//!
//! Time is a [`std::time::Instant`] the driver passes in; timers are deadlines, and a
//! late call behaves as if it had been on time. Every untrusted byte string ends in the
//! state machine or in a counted drop ([`Stats`]); nothing here panics on input.
//!
//! This crate must never do I/O or read a clock: time is always an argument.

#![forbid(unsafe_code)]

mod config;
mod event;
mod filter;
mod group;
mod interface;
mod packet;
mod rate;
mod stats;

pub use config::{Config, ConfigError, Version};
pub use event::{Event, GroupState, Transmit};
pub use filter::{FilterMode, SourceFilter};
pub use interface::{
    ALL_IGMPV3_ROUTERS, ALL_ROUTERS, ALL_SYSTEMS, Interface, MAX_GROUPS, MAX_SOURCES,
    MAX_SOURCES_PER_GROUP,
};
pub use stats::{Dropped, Received, Sent, Stats};
