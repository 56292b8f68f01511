//! `sluice`: the log sidecar for Envoy on Amazon ECS.

use std::process::ExitCode;

use clap::Parser;
use sluice::{cli, config, fluentbit, heap, parse_cmd, run};

/// Counts live heap bytes, so that `limits.memory` bounds memory held.
#[global_allocator]
static ALLOCATOR: heap::CountingAllocator = heap::CountingAllocator;

/// jemalloc's options, read at its start (the `MALLOC_CONF` string, under
/// the prefixed name tikv-jemallocator builds it with): one arena (the
/// threads' own caches take the contention; more arenas each keep their
/// own free pages), freed pages returned to the kernel after a second
/// instead of ten, by jemalloc's own thread. jemalloc otherwise returns
/// them only while the process allocates: a sidecar that fell idle after a
/// burst held its peak (46-48 MiB) until the next traffic, instead of
/// 14.4-14.8 MiB five seconds later (BENCHMARKS.md, sixteenth part).
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_OPTIONS: &[u8; 70] =
    b"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true\0";

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
/// A Fluent Bit configuration (FireLens drop-in) is checked as `sluice run`
/// would serve it, and the routes it derived are printed.
fn check_config(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if looks_like_fluent_bit(&text) {
        return check_fluent_bit(path);
    }
    match config::load(Some(&text), config::environment()) {
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

/// Not TOML, and has a Fluent Bit section or command at column 0.
fn looks_like_fluent_bit(text: &str) -> bool {
    if text.parse::<toml::Table>().is_ok() {
        return false;
    }
    text.lines().any(|line| {
        let upper = line.trim_end().to_ascii_uppercase();
        ["[INPUT]", "[OUTPUT]", "[FILTER]", "[SERVICE]"].contains(&upper.as_str())
            || upper.starts_with("@INCLUDE ")
            || upper.starts_with("@SET ")
    })
}

fn check_fluent_bit(path: &std::path::Path) -> ExitCode {
    // `${VAR}`s as `run` reads them, task metadata included when ECS
    // gives its endpoint.
    let task = sluice::ecs::TaskMetadata::from_environment();
    // Sluice's own settings, from the environment as `run` reads them.
    let plan = config::load(None, config::environment())
        .and_then(|own| fluentbit::load_with(path, task.as_ref(), own.multiline.as_ref()));
    match plan {
        Ok(plan) => {
            print!("{}", fluentbit::describe(&plan));
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
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
    let config = match config::load(text.as_deref(), config::environment()) {
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
    let (mut tcp, mut unix) = (config.forward.listen, config.forward.unix_path.clone());
    // FireLens drop-in: the generated configuration's inputs are the ones
    // `sluice run` serves.
    if let Some(path) = config.firelens_config.as_deref().filter(|p| p.exists()) {
        let env = |name: &str| std::env::var(name).ok();
        // (The inputs are the generated file's, whatever the init image's
        // files would add.)
        let Ok(plan) = fluentbit::load(path, &env, &[]) else {
            eprintln!("healthcheck: {} has errors", path.display());
            return ExitCode::FAILURE;
        };
        (tcp, unix) = (None, None);
        for input in plan.forward {
            match input {
                fluentbit::plan::ForwardInput::Tcp(a) => tcp = tcp.or(Some(a)),
                fluentbit::plan::ForwardInput::Unix(p) => unix = unix.or(Some(p)),
            }
        }
        // A listener on every address is reached on loopback.
        tcp = tcp.map(|a| match a.ip().is_unspecified() {
            true => std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port()),
            false => a,
        });
    }
    let reachable = match (tcp, &unix) {
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
