//! mcgate-perf: `mcgate perf send` and `mcgate perf recv`, an IPv4 and IPv6 multicast
//! sender and receiver that speak iperf 2's UDP datagram format and measure loss,
//! duplicates, reordering, jitter and one-way latency per sender.
//!
//! Each command is one thread around one socket with batched system calls
//! (`sendmmsg`/`recvmmsg`, in `mcgate-sys`) and no allocation per datagram, so the tool is
//! not what limits a measurement. It never sends anywhere but the group it is given, and
//! never panics on what arrives: short or odd datagrams are counted and skipped.

#![forbid(unsafe_code)]

mod args;
mod error;
pub mod fuzzing;
pub mod header;
pub mod histogram;
mod iface;
pub mod rate;
mod recv;
mod report;
mod send;
pub mod seq;
pub mod stats;

use std::process::ExitCode;

pub use args::{RecvArgs, SendArgs};
pub use error::PerfError;
pub use send::SendReport;
pub use stats::RecvReport;

/// `mcgate perf ...`
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Send multicast datagrams (IPv4 or IPv6) at a paced rate, with iperf 2's header
    /// (sequence number and send time), so `mcgate perf recv` or `iperf -s -u -B GROUP`
    /// (add -V for IPv6) can measure them.
    Send(SendArgs),
    /// Join a group, IPv4 or IPv6 (any source, or only --source ones) and measure what
    /// arrives per sender: rate, loss, duplicates, reordering, jitter, one-way latency.
    /// Works with iperf 2 senders (`iperf -c GROUP -u`, add -V for IPv6).
    Recv(RecvArgs),
}

/// Runs a perf command: exit code 0 on success, 2 for bad input, 1 for a failure while
/// running.
pub fn run(cmd: PerfCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cmd: PerfCommand) -> Result<(), PerfError> {
    let stop = mcgate_sys::mmsg::stop_on_signals().map_err(error::io("install signal handlers"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::LineWriter::new(stdout.lock());
    match cmd {
        PerfCommand::Send(a) => send::run(&a.check()?, stop, &mut out),
        PerfCommand::Recv(a) => recv::run(&a.check()?, stop, &mut out),
    }
}
