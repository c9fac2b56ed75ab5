//! Fuzz target: the upstream interface of an MLD proxy (RFC 4605) over a session of
//! packets. The body lives in `mcgate_igmp::fuzzing::mld_proxy` so that a unit test runs it
//! over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_igmp::fuzzing::mld_proxy(data));
