//! `sluice`: the log sidecar for Envoy on Amazon ECS.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod config;
mod output;
mod parse_cmd;
mod render;
mod run;
mod streams;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Parse(args) => parse_cmd::run(args),
        cli::Command::Run(args) => run::run(args),
        cli::Command::CheckConfig(args) => check_config(&args.file),
    }
}

/// `sluice check-config FILE`: every error with its key, exit 1; or "ok".
fn check_config(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match config::load(Some(&text), |name| std::env::var(name).ok()) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}
