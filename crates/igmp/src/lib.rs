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
//! # Choices the RFCs leave open
//!
//! - **`Version::V2`** is an RFC 2236 router: it sends only IGMPv2 queries and keeps
//!   any-source membership. IGMPv3 reports (sent by hosts before they hear our first
//!   query) are read as the Linux bridge reads them: a record that leaves every source
//!   (TO_IN({})) is a leave, BLOCK and IS_IN({}) are ignored, anything else is a join.
//! - **Older querier** (RFC 3376 7.3.1 asks for administrative configuration): in `V3`,
//!   an IGMPv1/v2 query from the elected querier makes the link run that version (no
//!   source lists, counted in [`Stats::older_version_queries`]) until that querier's
//!   Other Querier Present timer expires.
//! - **Querier election with 0.0.0.0**: a query from 0.0.0.0 (a snooping switch's proxy
//!   querier, RFC 4541 2.1.1) never wins, and an interface without an address yields
//!   to any real querier.
//! - **Non-querier timers**: the querier's QRV and QQIC are adopted (RFC 3376 4.1.6,
//!   4.1.7); a group-specific query lowers timers to Last Member Query Count times its
//!   Max Resp Time (RFC 2236 section 3), so we never drop a member the querier is
//!   still waiting for.
//! - **Reporters** (the hosts listed per group) are tracked from each report's IP source
//!   with the filter that host last stated. IGMPv3 hosts never suppress reports, so one
//!   silent for a Group Membership Interval is dropped; IGMPv1/v2 hosts do suppress, so
//!   they leave the list only with a Leave or with the group.
//! - **Fast leave** acts only when no other reporter of the group is known, so turning
//!   it on by mistake on a shared link cannot cut off a member we have heard from.
//! - **Bounds**: at most [`MAX_GROUPS`] groups, [`MAX_SOURCES_PER_GROUP`] sources per
//!   group and [`MAX_SOURCES`] per interface; reports beyond the token bucket of
//!   [`Config::report_rate_limit`] are dropped. Deadlines are indexed, so a packet
//!   costs O(log n) in the number of groups plus the size of the records it carries.
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
