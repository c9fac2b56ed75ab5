//! Fuzz target: a userspace WireGuard device's answer to a configuration request. The body lives in
//! `mcgate_dataplane::fuzzing::wireguard_uapi` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::wireguard_uapi(data));
