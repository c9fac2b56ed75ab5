//! Router behaviour of RFC 3376 and RFC 2236 (and, in `mld`, of RFC 3810 and RFC 2710)
//! driven through the public API with simulated time and real packets. Each test names the RFC section it checks.

mod compat;
mod conformance;
mod flood;
mod harness;
mod kernel;
mod membership;
mod mld;
mod properties;
mod querier;
mod transitions;
mod validation;
