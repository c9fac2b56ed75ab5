//! The lab's processes: launching them detached inside a namespace under a supervisor,
//! telling whether they still run, and stopping them.
//!
//! Each node's process runs as `ip netns exec NS mcgate lab _run --log L --exit E --
//! CMD...`. `ip netns exec` execs in place, so the PID recorded at spawn is the
//! supervisor's. The supervisor starts a new session (so nothing ties it to the
//! terminal that ran `lab up`), runs CMD as its child, prefixes every output line with
//! a UTC timestamp into the log, and records the exit code when CMD ends. Stopping a
//! node signals its whole process group, after checking that the PID still belongs to
//! the process started (same start time in `/proc/<pid>/stat`): a reused PID is never
//! signalled.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::state::{ExitRecord, Running};
use crate::timefmt::utc_now;

/// Field 22 (start time) and field 3 (state) of `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = s.get(s.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Whether the process recorded still runs (and is the same process).
pub fn is_running(r: &Running) -> bool {
    match proc_stat(r.pid) {
        Some((start, state)) => start == r.start_time && state != 'Z' && state != 'X',
        None => false,
    }
}

/// The path of this very binary, which is what `mcgate` in a command means.
pub fn self_exe() -> Result<PathBuf, LabError> {
    std::env::current_exe().map_err(|e| LabError::io(Path::new("/proc/self/exe"), e))
}

/// Starts `argv` in namespace `netns` under the supervisor (`supervisor lab _run ...`),
/// detached; returns its PID and start time. The log and exit files are `log` and `exit`.
pub fn launch(
    supervisor: &Path,
    netns: &str,
    private_run: bool,
    argv: &[String],
    env: &BTreeMap<String, String>,
    log: &Path,
    exit: &Path,
) -> Result<Running, LabError> {
    let _ = std::fs::remove_file(exit);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    // A container task's podman joins the namespace itself (`--network ns:`), and must
    // not run under `ip netns exec`, whose private /sys hides the cgroup mounts. A node
    // of the root namespace (no `netns`) runs where `lab up` runs.
    let mut cmd = if crate::container::is_container(argv) || netns.is_empty() {
        Command::new(supervisor)
    } else {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns]).arg(supervisor);
        c
    };
    cmd.args(["lab", "_run", "--log"])
        .arg(log)
        .arg("--exit")
        .arg(exit);
    if private_run {
        cmd.arg("--private-run");
    }
    cmd.arg("--")
        .args(argv)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| LabError::Command {
        command: if netns.is_empty() {
            format!("{} lab _run ...", supervisor.display())
        } else {
            format!("ip netns exec {netns} ...")
        },
        stderr: e.to_string(),
    })?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // The child is not waited for here: it outlives this command. Its start time is
    // readable as soon as it exists.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if let Some((start_time, _)) = proc_stat(pid) {
            return Ok(Running { pid, start_time });
        }
        if Instant::now() > deadline {
            return Err(LabError::NodeFailed {
                node: if netns.is_empty() {
                    "root namespace"
                } else {
                    netns
                }
                .to_string(),
                why: format!("process {pid} vanished at once"),
                log: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal_group(r: &Running, sig: Signal) {
    if !is_running(r) {
        return;
    }
    // The supervisor leads its own process group once it has called setsid(); until then
    // (a few microseconds after spawn) signal the PID alone.
    if kill(Pid::from_raw(-r.pid), sig).is_err() {
        let _ = kill(Pid::from_raw(r.pid), sig);
    }
}

/// Run by `sh` in the command's new mount namespace: an empty tmpfs over `/run`, then
/// the command in place (`exec`, so signals and the exit code are its own).
const PRIVATE_RUN_SCRIPT: &str =
    "mount -t tmpfs -o mode=0755,size=4m mcgate-task-run /run && exec \"$@\"";

/// Stops processes: SIGINT first (so measuring tools print their summaries, as on
/// Ctrl-C), SIGTERM after `grace`, SIGKILL after another `grace`. Returns once none runs.
pub fn stop(procs: &[Running], grace: Duration) {
    for (sig, wait) in [
        (Signal::SIGINT, grace),
        (Signal::SIGTERM, grace),
        (Signal::SIGKILL, Duration::from_secs(2)),
    ] {
        let alive: Vec<&Running> = procs.iter().filter(|r| is_running(r)).collect();
        if alive.is_empty() {
            return;
        }
        for r in &alive {
            signal_group(r, sig);
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && alive.iter().any(|r| is_running(r)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends SIGKILL to the command a supervisor runs (its children), as a crash would: the
/// supervisor sees it die, records "killed by signal 9" and ends. Returns how many
/// processes were signalled (0: the command had already ended).
pub fn kill_command(r: &Running) -> usize {
    if !is_running(r) {
        return 0;
    }
    let children = children_of(r.pid);
    for &c in &children {
        let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
    }
    children.len()
}

/// PIDs whose parent is `pid` (field 4 of `/proc/<pid>/stat`).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.get(s.rfind(')')? + 1..)?.to_string();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Sends SIGKILL to a PID found inside one of the lab's own namespaces.
pub fn kill_pid(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// The hidden `mcgate lab _run`: runs `argv`, timestamps its output into `log`, records
/// its exit in `exit`. Never returns before the command ends.
pub fn supervise(log: &Path, exit: &Path, private_run: bool, argv: &[String]) -> ExitCode {
    // Like a service manager: nothing the caller of `lab up` had open (a lock held by
    // `flock`, the pipe of a `$(...)`) may live on in a process that outlives it.
    close_inherited_descriptors();
    // A session of its own: nothing of the terminal that started the lab reaches it.
    let _ = nix::unistd::setsid();
    // Stopping signals go to the whole group. The supervisor catches them and ends only
    // when the command ends, so the exit code is always recorded. Catching (rather than
    // ignoring or blocking) matters: caught signals return to their default action in
    // the command at exec, even when whoever started the lab ignored SIGINT (as shells
    // do for background jobs), so Ctrl-C-style stops reach the command.
    let _signals = catch_stop_signals();
    let file = match std::fs::File::options().create(true).append(true).open(log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open the log {}: {e}", log.display());
            return ExitCode::from(2);
        }
    };
    let written = file.metadata().map(|m| m.len()).unwrap_or(0);
    let out = Arc::new(Mutex::new(LogSink {
        file,
        path: log.to_path_buf(),
        written,
    }));
    let note = |msg: &str| {
        if let Ok(mut f) = out.lock() {
            f.write_line(format!("{} [lab] {msg}\n", utc_now()).as_bytes());
        }
    };
    let Some((prog, args)) = argv.split_first() else {
        note("no command given");
        write_exit(
            exit,
            ExitRecord {
                exit_code: 127,
                signal: None,
            },
        );
        return ExitCode::from(2);
    };
    note(&format!("starting: {}", shell_words(argv)));
    let mut command = if private_run {
        // The supervisor keeps the lab's /run for its log; only the command loses it.
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(PRIVATE_RUN_SCRIPT)
            .arg("sh")
            .arg(prog)
            .args(args);
        c
    } else {
        let mut c = Command::new(prog);
        c.args(args);
        c
    };
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            note(&format!("cannot start {prog}: {e}"));
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            write_exit(
                exit,
                ExitRecord {
                    exit_code: code,
                    signal: None,
                },
            );
            return ExitCode::SUCCESS;
        }
    };
    let mut readers = Vec::new();
    if let Some(s) = child.stdout.take() {
        readers.push(copy_lines(s, Arc::clone(&out)));
    }
    if let Some(s) = child.stderr.take() {
        readers.push(copy_lines(s, Arc::clone(&out)));
    }
    let rec = match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => ExitRecord {
                    exit_code: c,
                    signal: None,
                },
                (None, Some(s)) => ExitRecord {
                    exit_code: 128 + s,
                    signal: Some(s),
                },
                _ => ExitRecord {
                    exit_code: 255,
                    signal: None,
                },
            }
        }
        Err(_) => ExitRecord {
            exit_code: 255,
            signal: None,
        },
    };
    // Drain what the command printed last; a grandchild holding the pipe open must not
    // keep the supervisor alive, so wait a bounded time.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && readers.iter().any(|r| !r.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    match rec.signal {
        Some(s) => note(&format!(
            "exited: killed by signal {s} (code {})",
            rec.exit_code
        )),
        None => note(&format!("exited with code {}", rec.exit_code)),
    }
    write_exit(exit, rec);
    ExitCode::SUCCESS
}

/// Notices SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, a closed terminal) instead of
/// dying from them, so a half-built lab can be taken down before exiting.
#[derive(Debug)]
pub struct Interrupt {
    rt: tokio::runtime::Runtime,
    signals: Vec<tokio::signal::unix::Signal>,
    seen: bool,
}

impl Interrupt {
    /// Installs the handlers (for the rest of the process's life).
    pub fn install() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let signals = rt.block_on(async {
            [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
            ]
            .into_iter()
            .filter_map(|k| signal(k).ok())
            .collect()
        });
        Some(Self {
            rt,
            signals,
            seen: false,
        })
    }

    /// Whether one of the signals arrived (ever, since installed).
    pub fn pending(&mut self) -> bool {
        if self.seen {
            return true;
        }
        for sig in &mut self.signals {
            // A short timeout lets the runtime's driver run and read the signal.
            let got = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(1), sig.recv())
                    .await
                    .is_ok()
            });
            if got {
                self.seen = true;
            }
        }
        self.seen
    }
}

/// Installs handlers that swallow SIGINT, SIGTERM, SIGHUP and SIGQUIT for this process.
/// The returned runtime and streams must stay alive.
fn catch_stop_signals() -> Option<(tokio::runtime::Runtime, Vec<tokio::signal::unix::Signal>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let streams = rt.block_on(async {
        [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
            SignalKind::quit(),
        ]
        .into_iter()
        .filter_map(|k| signal(k).ok())
        .collect()
    });
    Some((rt, streams))
}

/// Closes every descriptor above stderr. Called first thing in the supervisor, which
/// then holds only what it inherited from `lab up`'s caller: Rust opens its own
/// descriptors close-on-exec, so only the caller's survive `ip netns exec`.
fn close_inherited_descriptors() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .filter(|fd| *fd > 2)
            .collect(),
        Err(_) => return,
    };
    // The directory's own descriptor is in the list and already closed: EBADF.
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}

fn write_exit(path: &Path, rec: ExitRecord) {
    if let Ok(body) = serde_json::to_vec(&rec) {
        let tmp = path.with_extension("exit.tmp");
        if std::fs::write(&tmp, body).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

/// A log keeps at most this much before it moves to `<log>.1` (replacing the previous
/// one) and starts afresh: the state directory is on tmpfs, in memory.
pub const LOG_LIMIT: u64 = 32 * 1024 * 1024;

/// The log file a supervisor writes, rotated at [`LOG_LIMIT`].
struct LogSink {
    file: std::fs::File,
    path: PathBuf,
    written: u64,
}

impl LogSink {
    fn write_line(&mut self, line: &[u8]) {
        if self.written >= LOG_LIMIT {
            let _ = std::fs::rename(&self.path, rotated(&self.path));
            if let Ok(f) = std::fs::File::options()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                self.file = f;
                self.written = 0;
            }
        }
        if self.file.write_all(line).is_ok() {
            self.written += line.len() as u64;
        }
    }
}

/// Where a rotated log goes.
pub fn rotated(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Longest line kept whole; longer output is split so memory stays bounded.
const MAX_LINE: usize = 16 * 1024;

fn copy_lines<R: Read + Send + 'static>(
    mut src: R,
    out: Arc<Mutex<LogSink>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        let emit = |line: &[u8]| {
            if let Ok(mut f) = out.lock() {
                let mut v = Vec::with_capacity(line.len() + 32);
                v.extend_from_slice(utc_now().as_bytes());
                v.push(b' ');
                v.extend_from_slice(line);
                v.push(b'\n');
                f.write_line(&v);
            }
        };
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(buf.get(..n).unwrap_or(&[]));
            while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                emit(line.strip_suffix(b"\r").unwrap_or(line));
            }
            if pending.len() > MAX_LINE {
                emit(&pending);
                pending.clear();
            }
        }
        if !pending.is_empty() {
            emit(&pending);
        }
    })
}

/// Quotes a command line for display.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let (start, _) = proc_stat(pid).unwrap();
        assert!(is_running(&Running {
            pid,
            start_time: start
        }));
        assert!(!is_running(&Running {
            pid,
            start_time: start + 1
        }));
        assert!(!is_running(&Running {
            pid: i32::MAX,
            start_time: start
        }));
    }

    #[test]
    fn log_rotates_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        std::fs::write(&path, b"old\n").unwrap();
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        let mut sink = LogSink {
            file,
            path: path.clone(),
            written: LOG_LIMIT - 1,
        };
        sink.write_line(b"a\n");
        sink.write_line(b"b\n");
        assert_eq!(std::fs::read(rotated(&path)).unwrap(), b"old\na\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"b\n");
        assert_eq!(sink.written, 2);
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_words(&["a".into(), "b c".into(), "it's".into()]),
            "a 'b c' 'it'\\''s'"
        );
    }
}
