//! Fuzz target: the MLD router core (the IGMP router over the `Mld` family) over a
//! session of IPv6 packets. The body lives in `mcgate_igmp::fuzzing::mld_router` so that
//! a unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_igmp::fuzzing::mld_router(data));
