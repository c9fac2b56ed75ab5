//! Test support shared by mcgate's namespace tests (`crates/mcgate/tests`,
//! `crates/dataplane/tests`): network namespaces that remove themselves, processes
//! killed by PID when a test ends, multicast receivers and senders on real kernel
//! sockets, bounded waits, and the fuzz targets' seed corpora. Tests only: never a dependency of the product.

pub mod corpus;
pub mod lab;
pub mod netns;

pub use lab::{Lab, Received, in_netns, run, wait_until};
pub use netns::{Netns, require_root, sh, veth};
