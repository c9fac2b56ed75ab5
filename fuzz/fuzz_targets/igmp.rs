//! Fuzz target: the igmp parser. The body lives in `mcgate_wire::fuzzing::igmp` so that a
//! unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_wire::fuzzing::igmp(data));
