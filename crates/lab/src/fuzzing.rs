//! The body of the `topology` fuzz target (`fuzz/fuzz_targets/topology.rs`), here so
//! that a unit test runs it over the seed corpus on stable Rust.
//!
//! A topology file is untrusted input. The body parses the bytes as one and, when it
//! parses, places its tasks and plans the lab (names, addresses, commands) as `lab up`
//! does before touching the machine, checking that:
//!
//! - bytes that are not UTF-8 are refused by the caller, never reach the parser;
//! - every refusal names the file and a line and column inside the input;
//! - a topology that parses plans without panicking, and every task placed is planned.

use std::path::Path;

use crate::placement::place;
use crate::plan::{AgentFlags, plan};
use crate::topology::{Topology, line_col};

/// The file name used in messages.
const FILE: &str = "fuzz.toml";

/// Parses, places and plans the topology in `data`.
pub fn topology(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let topo = match Topology::parse(FILE, src) {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e.file, FILE);
            let (last_line, _) = line_col(src, src.len());
            assert!(e.line >= 1 && e.line <= last_line, "{e}");
            assert!(e.column >= 1, "{e}");
            assert!(!e.message.is_empty());
            return;
        }
    };
    let Ok(placed) = place(&topo) else {
        return;
    };
    let flags = AgentFlags {
        admin: true,
        dataplane: true,
        state_dir: true,
        token: true,
        zone: true,
    };
    if let Ok(state) = plan(&topo, &placed, Path::new("/usr/bin/mcgate"), flags) {
        assert_eq!(state.tasks.len(), placed.len());
    }
}

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    #[test]
    fn the_target_passes_its_seed_corpus() {
        for (_, data) in seeds("topology") {
            super::topology(&data);
        }
    }

    /// The seeds are the example topologies: each must parse, not just not panic.
    #[test]
    fn seeds_parse() {
        for (name, data) in seeds("topology") {
            let src = String::from_utf8(data).unwrap();
            if let Err(e) = crate::topology::Topology::parse(&name, &src) {
                panic!("{e}");
            }
        }
    }

    /// Every prefix of every seed (a file cut anywhere) and a few mutations pass.
    #[test]
    fn cut_and_mutated_seeds_pass() {
        for (_, data) in seeds("topology") {
            for cut in (0..data.len()).step_by(7) {
                super::topology(&data[..cut]);
            }
            let text = String::from_utf8(data).unwrap();
            for (from, to) in [
                ("/16", "/0"),
                ("/24", "/32"),
                ("count = ", "count = 99999999999999999999"),
                ("max_tasks = ", "max_tasks = -"),
                ("\"", "'"),
                ("[[hosts]]", "[hosts]"),
            ] {
                super::topology(text.replace(from, to).as_bytes());
            }
        }
    }
}
