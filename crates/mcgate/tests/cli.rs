//! The binary's own surface: help and version.

mod support;

use std::process::Command;

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(support::mcgate())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "demo",
        "lab",
        "perf",
        "controller",
        "agent",
        "domain",
        "members",
        "sources",
        "agents",
        "groups",
    ] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}
