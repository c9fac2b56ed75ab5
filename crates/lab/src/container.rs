//! Tasks as real OCI containers (`runtime = "podman"` on a service).
//!
//! The lab still builds each task's network namespace (its veth, its address in the
//! host's subnet, its routes and IGMP settings); podman then starts the container in
//! that namespace (`--network ns:/run/netns/<task namespace>`), so the container has
//! the task's own address, like an awsvpc task, and the host's agent sees the task's
//! veth like any other link. `podman run` stays in the foreground under the lab's
//! supervisor, so logs, exit codes, `lab restart` and `lab down` work as for any task;
//! containers are named `mcgl-<lab>-<task>` and `lab down` removes whatever is left of
//! them. A service with `build` has its image built by `lab up` before anything else,
//! labelled with the lab's name, so that `lab down --images` removes exactly those.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::LabError;
use crate::names;
use crate::topology::Topology;

/// The label on images a lab built: its value is the lab's name.
pub const LAB_LABEL: &str = "io.mcgate.lab";

/// The program that runs container tasks.
pub const PODMAN: &str = "podman";

/// The command line that runs `command` in a container of `image`, in the network
/// namespace `netns`, named after the task.
pub fn run_argv(
    lab: &str,
    task: &str,
    netns: &str,
    image: &str,
    env: &BTreeMap<String, String>,
    command: &[String],
) -> Vec<String> {
    let mut argv: Vec<String> = [
        PODMAN,
        "run",
        "--rm",
        "--replace",
        "--name",
        &names::netns(lab, task),
        "--network",
        &format!("ns:/run/netns/{netns}"),
        // Signals (the lab's SIGINT, SIGTERM) reach the task's process.
        "--sig-proxy=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, v) in env {
        argv.push("--env".into());
        argv.push(format!("{k}={v}"));
    }
    argv.push(image.to_string());
    argv.extend(command.iter().cloned());
    argv
}

/// Whether a task runs in a container (its command line starts podman).
pub fn is_container(argv: &[String]) -> bool {
    argv.first().is_some_and(|p| p == PODMAN)
}

/// Removes every container of lab `lab` that is left (a task killed before podman
/// could remove its container). Returns how many; podman missing means none.
pub fn remove_left(lab: &str) -> usize {
    let prefix = names::netns(lab, "");
    let Ok(out) = Command::new(PODMAN)
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return 0;
    };
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return 0;
    }
    let _ = Command::new(PODMAN)
        .args(["rm", "-f", "-t", "2"])
        .args(&names)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    names.len()
}

/// Builds the images of the services that name a `build` Containerfile (relative to
/// the topology file; the build context is the Containerfile's directory), each once.
/// The build may fetch packages, so it uses the machine's network.
pub fn build_images(topo: &Topology) -> Result<(), LabError> {
    let base = Path::new(&topo.file).parent().unwrap_or(Path::new("."));
    let mut done: Vec<&str> = Vec::new();
    for svc in &topo.services {
        let (Some(image), Some(build)) = (&svc.image, &svc.build) else {
            continue;
        };
        if done.contains(&image.as_str()) {
            continue;
        }
        done.push(image);
        let file = base.join(build);
        let context = file.parent().unwrap_or(Path::new("."));
        println!("building image {image} from {}", file.display());
        let out = Command::new(PODMAN)
            .args(["build", "--network", "host", "--label"])
            .arg(format!("{LAB_LABEL}={}", topo.name))
            .args(["-t", image, "-f"])
            .arg(&file)
            .arg(context)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LabError::Command {
                command: format!("{PODMAN} build -t {image}"),
                stderr: e.to_string(),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
            return Err(LabError::Command {
                command: format!("{PODMAN} build -t {image} -f {}", file.display()),
                stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
    }
    Ok(())
}

/// Removes the images lab `lab` built (`lab down --images`). Returns how many.
pub fn remove_images(lab: &str) -> usize {
    let Ok(out) = Command::new(PODMAN)
        .args(["images", "-q", "--filter"])
        .arg(format!("label={LAB_LABEL}={lab}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return 0;
    };
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        let _ = Command::new(PODMAN)
            .args(["rmi", "-f"])
            .args(&ids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    ids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_runs_in_the_tasks_namespace_with_its_env_and_command() {
        let env = BTreeMap::from([("RUST_LOG".to_string(), "debug".to_string())]);
        let argv = run_argv(
            "lab1",
            "receiver-1",
            "mcgl-lab1-receiver-1",
            "localhost/iperf:lab",
            &env,
            &["iperf".into(), "-s".into()],
        );
        assert!(is_container(&argv));
        assert!(
            argv.windows(2)
                .any(|w| w == ["--name", "mcgl-lab1-receiver-1"])
        );
        assert!(
            argv.windows(2)
                .any(|w| w == ["--network", "ns:/run/netns/mcgl-lab1-receiver-1"])
        );
        assert!(argv.windows(2).any(|w| w == ["--env", "RUST_LOG=debug"]));
        assert_eq!(
            argv[argv.len() - 3..],
            ["localhost/iperf:lab", "iperf", "-s"]
        );
        assert!(!is_container(&["mcgate".to_string()]));
    }
}
