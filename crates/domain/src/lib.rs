//! mcgate-domain: the model of multicast domains and the messages of the control plane.
//!
//! Domains, subnet and host associations, agents, members (IGMP-learned or static),
//! sources and source policy, and the pure computation of each host's forwarding table
//! from them. [`api`] holds the JSON messages the controller, the agents and the CLI
//! exchange, [`schema`] their JSON Schema rules for the OpenAPI document, [`decode`] how
//! untrusted request bodies are read, and [`fuzzing`] the bodies of the API fuzz targets.
//!
//! This crate must never do I/O or read a clock: time, when needed, is an argument.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth_api;
pub mod decode;
pub mod domain_settings;
pub mod groups;
pub mod keys;
pub mod model;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod gateway_tests;
#[cfg(test)]
mod model_tests;

pub use mcgate_wire::{FilterMode, SourceFilter};
pub mod forwarding;
pub mod fuzzing;
pub mod traffic;
pub mod traffic_book;
pub mod tunnel_pool;
pub mod upstream;
