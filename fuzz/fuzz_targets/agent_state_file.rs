//! Fuzz target: the agent's state file. The body lives in `mcgate_agent::fuzzing::state_file` so that a
//! unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_agent::fuzzing::state_file(data));
