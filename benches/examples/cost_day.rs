//! What a day of requests costs in CloudWatch Logs ingestion: Service
//! Connect's own JSON and TEXT records, Fluent Bit's parsed record, and
//! Sluice with its defaults and with `sampling.rate = 0.05`.
//!
//! A generated day: 98 % of requests 2xx/3xx (1.5 % 4xx, 0.5 % 5xx), 70 %
//! of lines Envoy access lines (the rest application lines, which are not
//! counted), a dozen routes with ids in their paths, Service Connect's TEXT
//! format (its default, query strings off). CloudWatch bills each event's
//! UTF-8 bytes plus 26.
//!
//! Sluice's figures are measured, not modelled: the given `sluice` binary
//! runs with the file output (the same text the CloudWatch output sends),
//! receives the day's lines as Docker's driver sends them, and the access
//! and statistics streams it wrote are counted. Statistics are one EMF event
//! per route and interval, whatever the volume, so their cost per request
//! depends on the volume: each volume's minute of traffic is run once and
//! its statistics bytes multiplied by the 1,440 minutes of a day.
//!
//! ```sh
//! cargo build --release -p sluice
//! cargo run --release -p sluice-benches --example cost_day -- --sluice target/release/sluice
//! ```

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_benches::forward::docker_message_frame;
use sluice_benches::{uuid, Rng};

/// Requests whose records are averaged.
const SAMPLE: usize = 40_000;
/// Volumes of the table, in requests per day.
const VOLUMES: [u64; 3] = [100_000, 1_000_000, 10_000_000];
/// USD per GB ingested (Standard class, Asia Pacific (Tokyo)).
const PRICE_PER_GB: f64 = 0.76;
const EVENT_OVERHEAD: usize = 26;

/// One request's facts.
struct Request {
    start: String,
    method: &'static str,
    path: String,
    code: u16,
    received: u64,
    sent: u64,
    duration: u64,
    upstream: u64,
    forwarded_for: Option<String>,
    agent: &'static str,
    id: String,
    authority: &'static str,
    upstream_host: String,
}

const ROUTES: [(&str, &str); 12] = [
    ("GET", "/api/v1/users/{n}"),
    ("GET", "/api/v1/users/{n}/orders"),
    ("GET", "/api/v1/catalog/items"),
    ("GET", "/api/v1/catalog/items/{n}"),
    ("POST", "/api/v1/carts/{uuid}/items"),
    ("GET", "/api/v1/carts/{uuid}"),
    ("POST", "/api/v1/checkout"),
    ("GET", "/api/v1/search"),
    ("GET", "/healthz"),
    ("PUT", "/api/v1/users/{n}/address"),
    ("GET", "/api/v1/recommendations/{n}"),
    ("DELETE", "/api/v1/carts/{uuid}/items/{n}"),
];
const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0",
    "Go-http-client/1.1",
    "grpc-go/1.60.1",
    "python-requests/2.31.0",
];

fn request(rng: &mut Rng, i: usize) -> Request {
    let (method, template) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
    let path = template
        .replace("{n}", &rng.below(1_000_000).to_string())
        .replace("{uuid}", &uuid(rng));
    let roll = rng.below(1000);
    let code = match roll {
        0..=899 => 200,
        900..=929 => 201,
        930..=949 => 204,
        950..=979 => 304,
        980..=984 => 400,
        985..=989 => 401,
        990..=994 => 404,
        995..=997 => 503,
        _ => 500,
    };
    // Roughly log-normal: most fast, a long tail.
    let duration =
        1 + rng.below(20) + rng.below(40) * rng.below(4) + rng.below(900) / (1 + rng.below(40));
    let secs = i as u64 * 86_400 / SAMPLE as u64;
    Request {
        start: format!(
            "2026-11-25T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            rng.below(1000)
        ),
        method,
        path,
        code,
        received: if method == "GET" {
            0
        } else {
            200 + rng.below(2000)
        },
        sent: if code == 204 || code == 304 {
            0
        } else {
            100 + rng.below(20_000)
        },
        duration,
        upstream: duration.saturating_sub(1 + rng.below(2)),
        forwarded_for: (rng.below(2) == 0).then(|| format!("203.0.113.{}", rng.below(256))),
        agent: AGENTS[rng.below(AGENTS.len() as u64) as usize],
        id: uuid(rng),
        authority: "orders",
        upstream_host: format!("10.0.{}.{}:8080", rng.below(4), rng.below(256)),
    }
}

/// Service Connect's TEXT format (Envoy's default without response flags).
fn sc_text(r: &Request) -> String {
    format!(
        r#"[{}] "{} {} HTTP/1.1" {} {} {} {} {} "{}" "{}" "{}" "{}" "{}""#,
        r.start,
        r.method,
        r.path,
        r.code,
        r.received,
        r.sent,
        r.duration,
        r.upstream,
        r.forwarded_for.as_deref().unwrap_or("-"),
        r.agent,
        r.id,
        r.authority,
        r.upstream_host
    )
}

/// Service Connect's JSON format (typed values; unset is null).
fn sc_json(r: &Request) -> String {
    let ff = r
        .forwarded_for
        .as_ref()
        .map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        r#"{{"start_time":"{}","method":"{}","path":"{}","protocol":"HTTP/1.1","response_code":{},"bytes_received":{},"bytes_sent":{},"duration_ms":{},"upstream_service_time":"{}","forwarded_for":{},"user_agent":"{}","request_id":"{}","authority":"{}","upstream_host":"{}"}}"#,
        r.start,
        r.method,
        r.path,
        r.code,
        r.received,
        r.sent,
        r.duration,
        r.upstream,
        ff,
        r.agent,
        r.id,
        r.authority,
        r.upstream_host
    )
}

/// What Fluent Bit sends after a regex parser (every value a string) with
/// `Reserve_Data On`: the fields and FireLens' metadata keys.
fn fluent_bit_parsed(r: &Request) -> String {
    format!(
        r#"{{"container_id":"{}","container_name":"/ecs-orders-7-envoy-9a8bf0e1d2c3b4a59600","source":"stdout","ecs_cluster":"prod","ecs_task_arn":"arn:aws:ecs:ap-northeast-1:123456789012:task/prod/5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e","ecs_task_definition":"orders:7","start_time":"{}","method":"{}","path":"{}","protocol":"HTTP/1.1","code":"{}","bytes_received":"{}","bytes_sent":"{}","duration":"{}","x_envoy_upstream_service_time":"{}","x_forwarded_for":"{}","user_agent":"{}","request_id":"{}","authority":"{}","upstream_host":"{}"}}"#,
        "e2".repeat(32),
        r.start,
        r.method,
        r.path,
        r.code,
        r.received,
        r.sent,
        r.duration,
        r.upstream,
        r.forwarded_for.as_deref().unwrap_or("-"),
        r.agent,
        r.id,
        r.authority,
        r.upstream_host
    )
}

const APP_LINES: [&str; 4] = [
    "2026-11-25 06:49:07,518 INFO  [orders.service] Order 81234 placed by customer 5521 in 12 ms",
    "[2026-11-25 06:49:08.002][15][warning][config] StreamAggregatedResources gRPC config stream to xds closed: 13",
    r#"{"level":"info","ts":"2026-11-25T06:49:07.518Z","logger":"orders","msg":"cart updated","cart":"c-9"}"#,
    "GET /internal/metrics 200 3ms",
];

/// The day's lines: 70 % access lines (the requests), 30 % app lines.
fn lines(requests: &[Request], rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::with_capacity(requests.len() * 10 / 7);
    for r in requests {
        out.push(sc_text(r));
        // 3 app lines for every 7 access lines.
        if rng.below(7) < 3 {
            out.push(APP_LINES[rng.below(4) as usize].to_string());
        }
    }
    out
}

fn mean_billed(records: impl Iterator<Item = String>) -> f64 {
    let (mut n, mut bytes) = (0usize, 0usize);
    for r in records {
        n += 1;
        bytes += r.len() + EVENT_OVERHEAD;
    }
    bytes as f64 / n.max(1) as f64
}

struct Run {
    /// Access events' billed bytes.
    access_bytes: usize,
    /// Statistics events' billed bytes.
    stats_bytes: usize,
    /// Distinct `_aws.Timestamp`s among the statistics events.
    intervals: usize,
}

/// Runs `sluice` with the file output over `lines`; counts what it wrote.
fn run_sluice(sluice: &str, lines: &[String], env: &[(&str, &str)]) -> Run {
    let dir = std::env::temp_dir().join(format!("sluice-cost-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child: Child = Command::new(sluice)
        .arg("run")
        .env("SLUICE_FORWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_ADMIN_LISTEN", "")
        .env("SLUICE_FIRELENS_CONFIG", "")
        .env("SLUICE_OUTPUT_TYPE", "file")
        .env("SLUICE_FILE_DIR", &dir)
        .env("SLUICE_SHUTDOWN_DRAIN", "0s")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("sluice did not listen: {e}"),
        }
    };
    let mut frames = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        docker_message_frame(&mut frames, i, line);
    }
    stream.write_all(&frames).expect("sent");
    drop(stream);
    // Let the output take everything, then stop: SIGTERM flushes.
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("sluice exits");
    assert!(status.success(), "sluice exited with {status}");
    let mut run = Run {
        access_bytes: 0,
        stats_bytes: 0,
        intervals: 0,
    };
    let mut timestamps = std::collections::BTreeSet::new();
    for file in files(&dir) {
        let name = file.to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines() {
            let billed = line.len() + EVENT_OVERHEAD;
            if name.ends_with("%2Faccess.ndjson") {
                run.access_bytes += billed;
            } else if name.ends_with("%2Fstats.ndjson") {
                run.stats_bytes += billed;
                if let Some(t) = line.split("\"Timestamp\":").nth(1) {
                    timestamps.insert(t.split([',', '}']).next().unwrap_or("").to_string());
                }
            }
        }
    }
    run.intervals = timestamps.len();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn monthly_usd(bytes_per_request: f64, per_day: u64) -> f64 {
    bytes_per_request * per_day as f64 * 30.0 / 1e9 * PRICE_PER_GB
}

fn main() {
    let mut sluice = "target/release/sluice".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--sluice" => sluice = args.next().expect("--sluice PATH"),
            other => panic!("unknown flag {other}"),
        }
    }
    let mut rng = Rng::new(2026);
    let requests: Vec<Request> = (0..SAMPLE).map(|i| request(&mut rng, i)).collect();
    let day = lines(&requests, &mut rng);

    let sc_json_b = mean_billed(requests.iter().map(sc_json));
    let sc_text_b = mean_billed(requests.iter().map(sc_text));
    let fb_b = mean_billed(requests.iter().map(fluent_bit_parsed));

    let defaults = run_sluice(&sluice, &day, &[]);
    let sampled = run_sluice(&sluice, &day, &[("SLUICE_SAMPLING_RATE", "0.05")]);
    let access_default = defaults.access_bytes as f64 / SAMPLE as f64;
    let access_sampled = sampled.access_bytes as f64 / SAMPLE as f64;

    // Statistics: one minute of each volume's traffic, scaled to a day.
    let stats_per_request: Vec<f64> = VOLUMES
        .iter()
        .map(|&per_day| {
            let minute = (per_day / 1440) as usize;
            let slice: Vec<Request> = (0..minute).map(|i| request(&mut rng, i)).collect();
            let lines = lines(&slice, &mut rng);
            let run = run_sluice(&sluice, &lines, &[]);
            // A run that crossed a minute boundary has two intervals.
            let per_interval = run.stats_bytes as f64 / run.intervals.max(1) as f64;
            per_interval * 1440.0 / per_day as f64
        })
        .collect();

    println!("Requests in the sample: {SAMPLE}; price ${PRICE_PER_GB}/GB; each event + {EVENT_OVERHEAD} B.\n");
    println!("| record | B/request at 100k/day | at 1M/day | at 10M/day | vs SC JSON (1M/day) | $/month at 100k/day | at 1M/day | at 10M/day |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let row = |name: &str, per_volume: [f64; 3]| {
        let cells: Vec<String> = per_volume.iter().map(|b| format!("{b:.0}")).collect();
        let costs: Vec<String> = VOLUMES
            .iter()
            .zip(per_volume)
            .map(|(v, b)| format!("{:.2}", monthly_usd(b, *v)))
            .collect();
        println!(
            "| {name} | {} | {:.2}x | {} |",
            cells.join(" | "),
            per_volume[1] / sc_json_b,
            costs.join(" | ")
        );
    };
    row("Service Connect JSON", [sc_json_b; 3]);
    row("Service Connect TEXT", [sc_text_b; 3]);
    row("Fluent Bit, regex-parsed record", [fb_b; 3]);
    row(
        "Sluice, defaults (access + statistics)",
        [0, 1, 2].map(|i| access_default + stats_per_request[i]),
    );
    row(
        "Sluice, sampling.rate = 0.05 (access + statistics)",
        [0, 1, 2].map(|i| access_sampled + stats_per_request[i]),
    );
    println!(
        "\nSluice access records alone: {access_default:.0} B/request with the defaults, {access_sampled:.0} B/request sampled; statistics: {:.1} / {:.1} / {:.1} B/request at 100k / 1M / 10M requests a day.",
        stats_per_request[0], stats_per_request[1], stats_per_request[2]
    );
}
