//! The test runner's configuration tells the truth: no test is retried, so a race shows
//! as a failure instead of hiding behind a pass on the second try.

use std::path::Path;

/// Every `retries` setting in `value`, with its path.
fn retries(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = format!("{path}.{k}");
                if k == "retries" {
                    out.push(format!("{p} = {v}"));
                }
                retries(v, &p, out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                retries(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn nextest_retries_no_test() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.config/nextest.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    let config: toml::Value = toml::from_str(&text).expect("nextest.toml parses");
    let mut found = Vec::new();
    retries(&config, "", &mut found);
    assert!(found.is_empty(), "tests are retried: {found:?}");
}
