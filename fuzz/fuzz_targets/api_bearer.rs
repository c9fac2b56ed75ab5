//! Fuzz target: an `Authorization: Bearer` secret as the controller reads it. The body
//! lives in `mcgate_domain::fuzzing::bearer` so that a unit test runs it over the seed
//! corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_domain::fuzzing::bearer(data));
