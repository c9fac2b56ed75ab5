//! Fuzz target: the IGMP router core over a session of packets. The body lives in
//! `mcgate_igmp::fuzzing::router` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_igmp::fuzzing::router(data));
