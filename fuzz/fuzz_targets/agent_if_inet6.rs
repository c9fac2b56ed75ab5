//! Fuzz target: the kernel's `/proc/net/if_inet6` text, read for each link's IPv6
//! link-local address. The body lives in `mcgate_agent::fuzzing::if_inet6` so that a
//! unit test runs it over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_agent::fuzzing::if_inet6(data));
