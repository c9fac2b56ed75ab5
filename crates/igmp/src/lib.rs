//! mcgate-igmp: the router side of IGMP and MLD, as a pure state machine.
//!
//! One [`Interface`] per attached link implements RFC 3376 section 6 (multicast router
//! behaviour) with section 7 compatibility for IGMPv1/v2 hosts, and RFC 2236 in `v2` mode.
//! The same state machine, [`Router`], runs MLD over IPv6 as [`MldInterface`]: RFC 3810
//! sections 6 to 8 with MLDv1 (RFC 2710) compatibility, `Version::V2` standing for MLDv1
//! and `Version::V3` for MLDv2 there. A [`Family`] ([`Igmp`], [`Mld`]) supplies only
//! what differs: addresses, the acceptance checks of a packet, and the query encoding.
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
//! assert_eq!(
//!     igmp.poll_timeout(),
//!     Some(t0 + Config::default().settings.startup_query_interval())
//! );
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
//! - **Older querier** (RFC 3376 7.3.1 makes the version administrative configuration):
//!   a query of an older version is counted in [`Stats::older_version_queries`], reported
//!   for the log at most once per Query Interval ([`Event::RouterIgnored`]), and never
//!   changes the version the router speaks. Hosts that answer an older querier send
//!   older reports, and those still put their group in compatibility mode (7.3.2).
//! - **Links without other routers** ([`Config::other_queriers`] `false`, the default):
//!   a container's link carries hosts only, so every query and every router-only message
//!   is dropped and counted ([`Dropped::router_message`]) and this interface stays
//!   querier; no host can win the election. Set it only on links shared with routers.
//! - **Querier election with 0.0.0.0**: a query from 0.0.0.0 (a snooping switch's proxy
//!   querier, RFC 4541 2.1.1) never wins, and an interface without an address yields
//!   to any real querier.
//! - **Non-querier timers**: the querier's QRV and QQIC are adopted (RFC 3376 4.1.6,
//!   4.1.7); a group-specific query lowers timers to Last Member Query Count times its
//!   Max Resp Time (RFC 2236 section 3), so we never drop a member the querier is
//!   still waiting for.
//! - **Startup queries** may carry a shorter Max Resp Time than later ones
//!   ([`Config::startup_query_response_interval`]), so a restarted router relearns the
//!   hosts already joined within that time.
//! - **Reporters** (the hosts listed per group) are tracked from each report's IP source
//!   with the filter that host last stated. IGMPv3 hosts never suppress reports, so one
//!   silent for a Group Membership Interval is dropped; IGMPv1/v2 hosts do suppress, so
//!   they leave the list only with a Leave or with the group.
//! - **Fast leave** acts only when no other reporter of the group is known, so turning
//!   it on by mistake on a shared link cannot cut off a member we have heard from.
//! - **Flood protection** is per reporting host (the IP source): a token bucket of
//!   [`Config::report_burst`] reports refilled at [`Config::report_rate_limit`] per
//!   second, so a host joining hundreds of groups at once passes and a flooding host
//!   holds back only itself. Reports over the limit are counted
//!   ([`Dropped::rate_limited`]) and, when this interface is querier, answered with a
//!   general query once no report has been dropped for a second (at most five seconds
//!   after the first drop), so every host reports its groups again and no membership
//!   is lost until the next periodic query.
//! - **Bounds**: at most [`MAX_GROUPS`] groups, [`MAX_SOURCES_PER_GROUP`] sources per
//!   group and [`MAX_SOURCES`] per interface, and flood buckets for at most 1024 hosts
//!   (further hosts share one). Deadlines live in a timer table indexed by time, so a
//!   packet costs O(log n) in the number of groups plus the size of the records it
//!   carries.
//!
//! This crate must never do I/O or read a clock: time is always an argument.

#![forbid(unsafe_code)]

mod config;
mod election;
mod event;
mod family;
mod flood;
pub mod fuzzing;
mod group;
mod group_table;
mod interface;
mod packet;
pub mod proxy;
mod queries;
mod reports;
mod stats;
mod timers;

pub use config::{Config, ConfigError};
pub use event::{Event, GroupState, Ignored, Transmit};
pub use family::{Accepted, Family, Igmp, Message, Mld, MldVersion, Query};
pub use interface::{
    Interface, MAX_GROUPS, MAX_SOURCES, MAX_SOURCES_PER_GROUP, MldInterface, Router,
};
pub use mcgate_wire::igmp::{ALL_ROUTERS, ALL_SYSTEMS, ALL_V3_ROUTERS};
pub use mcgate_wire::mld::{ALL_MLDV2_ROUTERS, ALL_NODES};
pub use mcgate_wire::{FilterMode, IgmpSettings, SourceFilter, Version};
pub use stats::{Dropped, Received, Sent, Stats};
