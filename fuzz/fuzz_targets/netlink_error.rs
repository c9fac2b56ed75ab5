//! Fuzz target: netlink acks, refusals with extended acks, and ends of dumps. The body lives in
//! `mcgate_dataplane::fuzzing::netlink_error` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::netlink_error(data));
