//! End-to-end load: Forward frames in, PutLogEvents out, through a real
//! `sluice run` process.
//!
//! The generator starts a counting CloudWatch Logs endpoint on loopback (it
//! answers every call with 200 and counts the events of each PutLogEvents;
//! moto is far too slow for this), starts the given `sluice` binary with
//! the CloudWatch output pointed at it, sends Docker-style Message-mode
//! frames of mixed Envoy access and application lines over TCP, and waits
//! until the endpoint has counted every event. It reports events/s, the
//! sidecar's CPU time (from /proc), CPU seconds per GB of input, and its
//! peak RSS (VmHWM).
//!
//! ```sh
//! cargo build --release -p sluice
//! cargo run --release -p sluice-benches --example e2e_load -- \
//!     --sluice target/release/sluice --events 2000000
//! # Peak RSS at a fixed rate, default settings:
//! cargo run --release -p sluice-benches --example e2e_load -- \
//!     --sluice target/release/sluice --events 1500000 --rate 50000
//! # Frames of 500 events, each sent after the previous one's ack, with
//! # the spool on:
//! cargo run --release -p sluice-benches --example e2e_load -- \
//!     --sluice target/release/sluice --events 1000000 --acked 500 \
//!     --env SLUICE_SPOOL_DIR=/tmp/sluice-bench-spool
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_benches::forward::{ack, acked_forward_frame, docker_message_frame};
use sluice_benches::mixed_lines;

struct Args {
    sluice: String,
    events: usize,
    /// Events per second; 0 for as fast as the sidecar takes them.
    rate: u64,
    access_percent: u64,
    /// Events per frame in frames that ask for an ack, each sent after
    /// the previous one's ack (Fluent Bit with require_ack_response);
    /// 0 for Docker's one-event Message frames without acks.
    acked: usize,
    extra_env: Vec<(String, String)>,
}

fn parse_args() -> Args {
    let mut args = Args {
        sluice: "target/release/sluice".to_string(),
        events: 1_000_000,
        rate: 0,
        access_percent: 70,
        acked: 0,
        extra_env: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sluice" => args.sluice = value(),
            "--events" => args.events = value().parse().expect("--events N"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--acked" => args.acked = value().parse().expect("--acked N"),
            "--access-percent" => {
                args.access_percent = value().parse().expect("--access-percent N")
            }
            // KEY=VALUE for the sidecar's environment, e.g. SLUICE_LIMITS_MEMORY=16MiB.
            "--env" => {
                let kv = value();
                let (k, v) = kv.split_once('=').expect("--env KEY=VALUE");
                args.extra_env.push((k.to_string(), v.to_string()));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// Counts what the sidecar sends: events and message bytes of PutLogEvents.
#[derive(Default)]
struct Counts {
    /// Log lines delivered: a Java exception and its `at` line (both in
    /// the input) arrive joined, as one event.
    lines: AtomicU64,
    requests: AtomicU64,
}

/// A minimal HTTP/1.1 server with keep-alive that answers every AWS JSON
/// call with `{}` and counts PutLogEvents events.
fn start_endpoint(counts: Arc<Counts>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("endpoint port");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || serve(conn, &counts));
        }
    });
    port
}

fn serve(conn: TcpStream, counts: &Counts) {
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::with_capacity(1 << 16, conn);
    let needle = memchr::memmem::Finder::new(b"\"timestamp\":");
    // A joined event holds its lines with `\n` between them, escaped in
    // the body; the input lines hold no backslash followed by `n`.
    let newline = memchr::memmem::Finder::new(b"\\n");
    let mut body = Vec::new();
    loop {
        let (mut len, mut put) = (0usize, false);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("x-amz-target:") && lower.contains("putlogevents") {
                put = true;
            }
        }
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if put {
            // `"timestamp":` with an unescaped quote cannot occur inside a
            // JSON string, so this counts events exactly.
            let events = needle.find_iter(&body).count();
            let joins = newline.find_iter(&body).count();
            counts
                .lines
                .fetch_add((events + joins) as u64, Ordering::Relaxed);
            counts.requests.fetch_add(1, Ordering::Relaxed);
        }
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// A line of /proc/PID/status in KiB, such as VmHWM (peak RSS).
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn start_sidecar(args: &Args, endpoint_port: u16, forward_port: u16) -> Child {
    let mut cmd = Command::new(&args.sluice);
    cmd.arg("run")
        .env("SLUICE_OUTPUT_TYPE", "cloudwatch")
        .env(
            "SLUICE_CLOUDWATCH_ENDPOINT",
            format!("http://127.0.0.1:{endpoint_port}"),
        )
        .env("SLUICE_CLOUDWATCH_REGION", "us-east-1")
        .env("SLUICE_FORWARD_LISTEN", format!("127.0.0.1:{forward_port}"))
        // No admin endpoint: its fixed port would clash with another run.
        .env("SLUICE_ADMIN_LISTEN", "")
        // Not the generated configuration of an ECS task this may run in.
        .env("SLUICE_FIRELENS_CONFIG", "")
        .env("SLUICE_SHUTDOWN_DRAIN", "0s")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &args.extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("sluice starts")
}

fn main() {
    let args = parse_args();
    let counts = Arc::new(Counts::default());
    let endpoint_port = start_endpoint(counts.clone());
    let forward_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut sidecar = start_sidecar(&args, endpoint_port, forward_port);
    let pid = sidecar.id();

    // Frames built before the clock starts; offsets mark event boundaries.
    let lines = mixed_lines(args.events, args.access_percent, 42);
    let line_bytes: usize = lines.iter().map(String::len).sum();
    let mut wire = Vec::with_capacity(args.events * 600);
    let mut ends = Vec::with_capacity(args.events);
    if args.acked == 0 {
        for (i, line) in lines.iter().enumerate() {
            docker_message_frame(&mut wire, i, line);
            ends.push(wire.len());
        }
    } else {
        // Here `ends` marks frame boundaries.
        for (f, group) in lines.chunks(args.acked).enumerate() {
            acked_forward_frame(&mut wire, f * args.acked, group, &format!("c{f}"));
            ends.push(wire.len());
        }
    }
    drop(lines);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", forward_port)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("sluice did not listen: {e}"),
        }
    };
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    if args.acked > 0 {
        let mut offset = 0usize;
        for (f, end) in ends.iter().enumerate() {
            conn.write_all(&wire[offset..*end]).expect("send");
            offset = *end;
            let want = ack(&format!("c{f}"));
            let mut got = vec![0u8; want.len()];
            conn.read_exact(&mut got).expect("an ack");
            assert_eq!(got, want, "the ack of frame {f}");
        }
    } else if args.rate == 0 {
        conn.write_all(&wire).expect("send");
    } else {
        // Every 10 ms, the events due by then.
        let mut sent = 0usize;
        let mut offset = 0usize;
        while sent < args.events {
            let due =
                ((start.elapsed().as_secs_f64() * args.rate as f64) as usize).min(args.events);
            if due > sent {
                let end = ends[due - 1];
                conn.write_all(&wire[offset..end]).expect("send");
                offset = end;
                sent = due;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let sent_at = start.elapsed();
    let expected = args.events as u64;
    while counts.lines.load(Ordering::Relaxed) < expected {
        std::thread::sleep(Duration::from_millis(2));
        if start.elapsed() > Duration::from_secs(600) {
            panic!(
                "only {} of {expected} lines arrived",
                counts.lines.load(Ordering::Relaxed)
            );
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak_rss_kib = status_kib(pid, "VmHWM:");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = sidecar.wait();

    let wire_gb = wire.len() as f64 / 1e9;
    let secs = elapsed.as_secs_f64();
    println!("events:                 {}", args.events);
    println!("access lines:           {} %", args.access_percent);
    println!(
        "rate asked:             {}",
        if args.rate == 0 {
            "as fast as possible".to_string()
        } else {
            format!("{} events/s", args.rate)
        }
    );
    println!(
        "forward bytes sent:     {:.1} MB ({:.1} MB of log lines)",
        wire.len() as f64 / 1e6,
        line_bytes as f64 / 1e6
    );
    println!("all sent after:         {:.2} s", sent_at.as_secs_f64());
    println!("all counted after:      {secs:.2} s");
    println!(
        "PutLogEvents requests:  {}",
        counts.requests.load(Ordering::Relaxed)
    );
    println!(
        "end-to-end rate:        {:.0} events/s",
        args.events as f64 / secs
    );
    println!(
        "sidecar CPU:            {cpu:.2} s ({:.0} events per CPU second)",
        args.events as f64 / cpu
    );
    println!("CPU per GB of input:    {:.1} s", cpu / wire_gb);
    println!(
        "sidecar peak RSS:       {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
}
