//! Fuzz target: netlink link replies (RTM_NEWLINK). The body lives in
//! `mcgate_dataplane::fuzzing::netlink_link` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::netlink_link(data));
