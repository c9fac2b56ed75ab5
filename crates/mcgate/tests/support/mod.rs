//! Shared pieces of the namespace-based end-to-end tests: those of `mcgate-testbed`, and
//! the path of the `mcgate` binary under test.

#![allow(dead_code, unused_imports)]

pub use mcgate_testbed::{Netns, require_root, sh, veth, wait_until};

/// The `mcgate` binary built for this test run.
pub fn mcgate() -> &'static str {
    env!("CARGO_BIN_EXE_mcgate")
}
