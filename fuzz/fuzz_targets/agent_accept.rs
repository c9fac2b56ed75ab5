//! Fuzz target: the `Accept` header of the agent's `/metrics`. The body lives in `mcgate_agent::fuzzing::accept` so that a
//! unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_agent::fuzzing::accept(data));
