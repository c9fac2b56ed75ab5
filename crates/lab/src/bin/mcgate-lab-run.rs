//! `mcgate-lab-run lab _run --log L --exit E -- CMD...`: the lab's process supervisor
//! alone, with the very command line `mcgate lab _run` takes.
//!
//! The lab starts every process under `BIN lab _run`, where BIN is normally `mcgate`
//! itself. Rust callers that are not the `mcgate` binary (this crate's namespace tests)
//! name this one instead (`UpOptions::supervisor`), so they need no `mcgate` build.

use std::process::ExitCode;

use clap::Parser;
use mcgate_lab::LabCommand;

#[derive(Parser)]
#[command(name = "mcgate-lab-run", about = "The mcgate lab's process supervisor")]
struct Cli {
    #[command(subcommand)]
    top: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    /// `lab _run ...`
    Lab {
        #[command(subcommand)]
        cmd: LabCommand,
    },
}

fn main() -> ExitCode {
    let Top::Lab { cmd } = Cli::parse().top;
    match cmd {
        LabCommand::Supervise(_) => mcgate_lab::run(cmd),
        _ => {
            eprintln!("error: mcgate-lab-run only supervises (`lab _run`); use `mcgate lab`");
            ExitCode::from(2)
        }
    }
}
