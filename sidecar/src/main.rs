//! `sluice`: the log sidecar for Envoy on Amazon ECS.

use std::process::ExitCode;

use clap::Parser;
use sluice::{cli, config, parse_cmd, run};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Parse(args) => parse_cmd::run(args),
        cli::Command::Run(args) => run::run(args),
        cli::Command::CheckConfig(args) => check_config(&args.file),
        cli::Command::Healthcheck(args) => healthcheck(args.config.as_deref()),
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
    match config::load(Some(&text), std::env::vars()) {
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

/// `sluice healthcheck`: can a client connect to the forward listener?
fn healthcheck(path: Option<&std::path::Path>) -> ExitCode {
    let text = match path.map(std::fs::read_to_string).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("healthcheck: cannot read the configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match config::load(text.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!(
                "healthcheck: the configuration has {} error(s)",
                errors.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let timeout = std::time::Duration::from_secs(2);
    let reachable = match (config.forward.listen, &config.forward.unix_path) {
        (Some(addr), _) => std::net::TcpStream::connect_timeout(&addr, timeout).is_ok(),
        (None, Some(path)) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        (None, None) => false,
    };
    if reachable {
        ExitCode::SUCCESS
    } else {
        eprintln!("healthcheck: the forward listener does not accept connections");
        ExitCode::FAILURE
    }
}
