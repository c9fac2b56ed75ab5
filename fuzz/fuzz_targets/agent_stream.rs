//! Fuzz target: the controller's stream lines, applied to the agent's core. The body lives in `mcgate_agent::fuzzing::stream_lines` so that a
//! unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_agent::fuzzing::stream_lines(data));
