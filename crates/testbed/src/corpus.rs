//! The seed corpora of the fuzz targets (`fuzz/corpus/<target>/seed-*`), for the unit
//! tests that replay each target's body over its seeds on stable Rust.

use std::path::Path;

/// The `seed-*` files of `target`'s corpus as (file name, bytes), sorted by name. Other
/// files there are the fuzzer's own findings, not kept in the repository. Panics (it is
/// a test's precondition) when the corpus is missing or holds no seed.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{dir:?}: {e}")).path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("seed-") {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            out.push((name, data));
        }
    }
    assert!(!out.is_empty(), "no seed-* files in {dir:?}");
    out.sort();
    out
}

/// A fuzz target's body: the name of its corpus and the function libFuzzer calls.
pub type Target = (&'static str, fn(&[u8]));

/// Runs each target's body over every seed of its corpus and over every prefix of each
/// seed (input cut anywhere), so the fuzz targets keep compiling and working on stable
/// Rust.
pub fn replay_with_prefixes(targets: &[Target]) {
    for (name, body) in targets {
        for (_, data) in seeds(name) {
            for n in 0..=data.len() {
                body(&data[..n]);
            }
        }
    }
}
