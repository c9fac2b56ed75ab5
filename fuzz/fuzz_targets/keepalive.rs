//! Fuzz target: the peer keepalive parser. The body lives in
//! `mcgate_wire::fuzzing::keepalive` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_wire::fuzzing::keepalive(data));
