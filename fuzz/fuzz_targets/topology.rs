//! Fuzz target: the lab's topology file parser, then task placement and the lab plan.
//! The body lives in `mcgate_lab::fuzzing::topology` so that a unit test runs it over
//! the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_lab::fuzzing::topology(data));
