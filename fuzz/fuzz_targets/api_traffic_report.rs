//! Fuzz target: the `api_traffic_report` request body of the controller's API. The body lives in
//! `mcgate_domain::fuzzing::membership` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_domain::fuzzing::traffic_report(data));
