//! `sluice`: the log sidecar for Envoy on Amazon ECS.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod parse_cmd;
mod render;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Parse(args) => parse_cmd::run(args),
        cli::Command::Run(_) => {
            // Honest until the forward input lands (issue 3): nothing listens yet.
            eprintln!(
                "sluice run: the Fluent Forward input is not built yet; \
                 only `sluice parse` works in this version"
            );
            ExitCode::from(2)
        }
    }
}
