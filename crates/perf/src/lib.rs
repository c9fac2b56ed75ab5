//! mcgate-perf: `mcgate perf send` and `mcgate perf recv`, a multicast sender and
//! receiver that speak iperf 2's UDP datagram format and measure loss, jitter and latency.

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// `mcgate perf ...`
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Send multicast datagrams at a paced rate.
    Send,
    /// Join a group and measure what arrives.
    Recv,
}

/// Runs a perf command.
pub fn run(cmd: PerfCommand) -> ExitCode {
    eprintln!("error: mcgate perf {cmd:?} is not built yet");
    ExitCode::FAILURE
}
