//! Fuzz target: the MLD (ICMPv6) parser. The input is the IPv6 source and destination
//! (16 bytes each, covered by the checksum) and then the message. The body lives in
//! `mcgate_wire::fuzzing::mld` so that a unit test runs it over the seed corpus on
//! stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_wire::fuzzing::mld(data));
