//! mcgate-dataplane: the forwarders behind one forwarding table.
//!
//! This crate must never block on the controller: it forwards on the last table it holds.

#![forbid(unsafe_code)]
