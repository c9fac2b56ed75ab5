//! Fuzz target: `mcgate perf recv`'s datagram header (iperf 2's) and per-sender
//! accounting. The body lives in `mcgate_perf::fuzzing::datagrams` so that a unit test
//! runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_perf::fuzzing::datagrams(data));
