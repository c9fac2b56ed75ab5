//! Fuzz target: netlink multicast table dump replies (RTM_NEWMDB). The body lives in
//! `mcgate_dataplane::fuzzing::netlink_mdb` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_dataplane::fuzzing::netlink_mdb(data));
