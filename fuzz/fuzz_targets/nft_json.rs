//! Fuzz target: what `nft -j` prints about mcgate's filter (counters, tables). The body lives in
//! `mcgate_dataplane::fuzzing::nft_json` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::nft_json(data));
