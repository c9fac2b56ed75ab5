//! Fuzz target: the `api_static_member` request body of the controller's API. The body lives in
//! `mcgate_domain::fuzzing::static_member` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_domain::fuzzing::static_member(data));
