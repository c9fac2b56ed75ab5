//! Fuzz target: the `api_credential_spec` request body of the controller's API (POST /v1/credentials). The
//! body lives in `mcgate_domain::fuzzing::credential_spec` so that a unit test runs it over the
//! seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcgate_domain::fuzzing::credential_spec(data));
