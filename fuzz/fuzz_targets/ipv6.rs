//! Fuzz target: the ipv6 parser (extension header walk, header round trip, and the MLD
//! parser behind it). The body lives in `mcgate_wire::fuzzing::ipv6` so that a unit test
//! runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_wire::fuzzing::ipv6(data));
