//! Fuzz target: a WireGuard message from a peer, and the same bytes as the inner packet
//! of a transport message. The body lives in `mcgate_dataplane::fuzzing::wireguard` so
//! that a unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::wireguard(data));
