//! `sluice`: the log sidecar for Envoy on Amazon ECS.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod parse_cmd;
mod render;
mod run;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Parse(args) => parse_cmd::run(args),
        cli::Command::Run(args) => run::run(args),
    }
}
