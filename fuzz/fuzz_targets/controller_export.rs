//! Fuzz target: `controller_export` (see `mcgate_controller::fuzzing`, whose unit test replays the
//! seed corpus on stable Rust).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_controller::fuzzing::controller_export(data));
