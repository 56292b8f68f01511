//! `sluice run`: the Fluent Forward input wired to an output.
//!
//! Until the configuration file arrives (issue 4), settings come from the
//! environment variables that will override it: `SLUICE_FORWARD_LISTEN`
//! (default 127.0.0.1:24224, empty for no TCP listener),
//! `SLUICE_FORWARD_UNIX_PATH` (default: none), `SLUICE_FORWARD_UNIX_MODE`
//! (octal, default 0600), `SLUICE_FORWARD_MAX_CONNECTIONS` (default 1024),
//! `SLUICE_FORWARD_SHARED_KEY` (default: none; TCP clients must then pass the
//! forward protocol's handshake), `SLUICE_FORWARD_IDLE_TIMEOUT` (seconds a
//! connection may stay silent between frames, default 3600; a stall in the
//! middle of a frame is cut after at most 60 s).
//! The output is stdout: one JSON object per event.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_firelens::{Counters, Delivery, Event, Limits, PartialAssembler, Server, ServerConfig};
use sluice_parser::{Classifier, QueryMode, Redactor, RouteTable};
use tokio::sync::{mpsc, watch};

use crate::cli::RunArgs;
use crate::render::{EventMeta, LineRenderer};

/// Frames queued between the listeners and the output. Small: a frame can
/// hold thousands of events, and a full queue is what pushes back on clients.
const PIPELINE_FRAMES: usize = 64;

pub fn run(args: RunArgs) -> ExitCode {
    init_logging();
    if let Some(path) = args.config {
        tracing::error!(
            path = %path.display(),
            "configuration files are not supported yet; use the SLUICE_FORWARD_* environment variables"
        );
        return ExitCode::from(2);
    }
    let config = match server_config() {
        Ok(c) => c,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

fn init_logging() {
    // The sidecar's own logs: JSON lines on stderr, stdout is for events.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(io::stderr)
        .with_current_span(false)
        .try_init();
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn server_config() -> Result<ServerConfig, String> {
    let tcp = match env("SLUICE_FORWARD_LISTEN").as_deref() {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 24224))),
        Some("") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            format!("SLUICE_FORWARD_LISTEN={addr:?} is not an address such as 127.0.0.1:24224")
        })?),
    };
    let mode = match env("SLUICE_FORWARD_UNIX_MODE") {
        None => 0o600,
        Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!("SLUICE_FORWARD_UNIX_MODE={m:?} is not an octal file mode such as 0600")
            })?,
    };
    let unix = env("SLUICE_FORWARD_UNIX_PATH")
        .filter(|p| !p.is_empty())
        .map(|p| (PathBuf::from(p), mode));
    let max_connections = match env("SLUICE_FORWARD_MAX_CONNECTIONS") {
        None => 1024,
        Some(n) => n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("SLUICE_FORWARD_MAX_CONNECTIONS={n:?} is not a positive number")
        })?,
    };
    let idle_timeout = match env("SLUICE_FORWARD_IDLE_TIMEOUT") {
        None => Duration::from_secs(3600),
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("SLUICE_FORWARD_IDLE_TIMEOUT={n:?} is not a positive number of seconds")
            })?,
    };
    if tcp.is_none() && unix.is_none() {
        return Err("no listener: set SLUICE_FORWARD_LISTEN or SLUICE_FORWARD_UNIX_PATH".into());
    }
    Ok(ServerConfig {
        tcp,
        unix,
        max_connections,
        idle_timeout,
        limits: Limits::default(),
        shared_key: env("SLUICE_FORWARD_SHARED_KEY").filter(|k| !k.is_empty()),
        self_hostname: hostname(),
    })
}

/// The name given in the forward handshake: the kernel's hostname (on ECS,
/// the task's), else "sluice".
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".to_string())
}

async fn serve(config: ServerConfig) -> ExitCode {
    let counters = Arc::new(Counters::default());
    let server = match Server::bind(config.clone(), counters.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for fluent forward");
            return ExitCode::FAILURE;
        }
    };
    let tcp = server
        .tcp_addr()
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let unix = config
        .unix
        .as_ref()
        .map_or_else(|| "none".to_string(), |(p, _)| p.display().to_string());
    tracing::info!(%tcp, %unix, "listening for fluent forward");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (pipeline_tx, pipeline_rx) = mpsc::channel(PIPELINE_FRAMES);
    let handle = tokio::runtime::Handle::current();
    let output = std::thread::spawn(move || write_stdout(pipeline_rx, handle));
    let server = tokio::spawn(server.run(pipeline_tx, shutdown_rx));

    let signal = wait_for_signal().await;
    tracing::info!(signal, "stopping: no new connections");
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    let written = tokio::task::spawn_blocking(move || output.join())
        .await
        .ok()
        .and_then(Result::ok);
    match written {
        Some(Ok(events)) => {
            tracing::info!(
                events_written = events,
                events_received = counters.events.load(Ordering::Relaxed),
                "stopped"
            );
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "stdout failed; unacked events will be resent by their clients");
            ExitCode::FAILURE
        }
        None => ExitCode::FAILURE,
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until the process is killed.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Docker splits lines at 16 KiB; joined lines longer than this go out in
/// pieces (CloudWatch's event limit is 1 MiB).
const MAX_JOINED_LINE: usize = 1 << 20;
/// A split line whose last part has not come for this long goes out as is.
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The stdout output: joins Docker's split lines, renders every event,
/// flushes, then accepts the delivery (which acks its chunk). Runs on its
/// own thread: stdout writes block.
fn write_stdout(
    mut pipeline: mpsc::Receiver<Delivery>,
    runtime: tokio::runtime::Handle,
) -> io::Result<u64> {
    let renderer = LineRenderer {
        classifier: Classifier::new(),
        redactor: Redactor::new(QueryMode::Redact),
        routes: RouteTable::new(),
    };
    let mut partials = PartialAssembler::new(
        MAX_JOINED_LINE,
        i64::try_from(PARTIAL_TIMEOUT.as_nanos()).unwrap_or(i64::MAX),
    );
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut json = String::with_capacity(1 << 12);
    let mut written = 0u64;
    let mut write =
        |event: &Event, out: &mut io::BufWriter<io::StdoutLock<'_>>| -> io::Result<()> {
            json.clear();
            let (line, line_key) = log_line(&event.record);
            let meta = EventMeta {
                time_ms: event.time_ns.div_euclid(1_000_000),
                tag: &event.tag,
                record: &event.record,
                line_key,
            };
            renderer.render_event(&line, Some(&meta), &mut json);
            json.push('\n');
            written += 1;
            out.write_all(json.as_bytes())
        };
    loop {
        // Wake at least once a second to let stale split lines out.
        let next = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), pipeline.recv()).await
        });
        let now = now_ns();
        match next {
            Ok(Some(delivery)) => {
                for event in &delivery.events {
                    for joined in partials.push(event.clone(), now) {
                        write(&joined, &mut out)?;
                    }
                }
                for stale in partials.expire(now) {
                    write(&stale, &mut out)?;
                }
                out.flush()?;
                delivery.accept();
            }
            Ok(None) => break,
            Err(_) => {
                for stale in partials.expire(now) {
                    write(&stale, &mut out)?;
                }
                out.flush()?;
            }
        }
    }
    for rest in partials.flush() {
        write(&rest, &mut out)?;
    }
    out.flush()?;
    Ok(written)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The text of an event: its `log` (Docker, FireLens), else `message`
/// (fluent-logger and many libraries), else the whole record as JSON.
/// Returns the line and the key it came from.
fn log_line(
    record: &serde_json::Map<String, Json>,
) -> (std::borrow::Cow<'_, str>, Option<&'static str>) {
    for key in ["log", "message"] {
        if let Some(Json::String(s)) = record.get(key) {
            return (
                std::borrow::Cow::Borrowed(sluice_parser::trim_line_ending(s)),
                Some(key),
            );
        }
    }
    (
        std::borrow::Cow::Owned(Json::Object(record.clone()).to_string()),
        None,
    )
}
