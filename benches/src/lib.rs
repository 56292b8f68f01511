//! Deterministic corpora for Sluice's benchmarks: realistic Envoy access
//! lines (default format, Service Connect JSON) and application lines.
//! Deterministic so that every run measures the same bytes.

/// A small xorshift generator: no dependency, same sequence everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const PATHS: [&str; 8] = [
    "/api/v1/users/{n}",
    "/api/v1/users/{n}/orders?page=2&token=eyJhbGciOiJIUzI1NiJ9",
    "/api/v1/catalog/items",
    "/healthz",
    "/api/v1/carts/{uuid}",
    "/static/js/app.3f9a2c.js",
    "/api/v1/search?q=red+shoes&size=42",
    "/shop.Cart/GetCart",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "grpc-go/1.60.1",
];
const FLAGS: [&str; 8] = ["-", "-", "-", "-", "-", "UF,URX", "DC", "UT"];
const CODES: [u64; 8] = [200, 200, 200, 201, 204, 404, 503, 500];

/// A random (v4-shaped) UUID.
pub fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn path(rng: &mut Rng) -> String {
    let p = rng.pick(&PATHS);
    p.replace("{n}", &rng.below(100_000).to_string())
        .replace("{uuid}", &uuid(rng))
}

fn timestamp(rng: &mut Rng) -> String {
    format!(
        "2025-11-04T06:{:02}:{:02}.{:03}Z",
        rng.below(60),
        rng.below(60),
        rng.below(1000)
    )
}

/// One line of Envoy's default access-log format.
pub fn envoy_default_line(rng: &mut Rng) -> String {
    let code = CODES[rng.below(8) as usize];
    format!(
        r#"[{}] "{} {} HTTP/1.1" {} {} {} {} {} {} "10.0.{}.{}" "{}" "{}" "orders.internal:8080" "10.0.2.{}:8080""#,
        timestamp(rng),
        rng.pick(&METHODS),
        path(rng),
        code,
        rng.pick(&FLAGS),
        rng.below(2000),
        rng.below(200_000),
        rng.below(900),
        rng.below(800),
        rng.below(256),
        rng.below(256),
        rng.pick(&AGENTS),
        uuid(rng),
        rng.below(256),
    )
}

/// One ECS Service Connect JSON access line (typed values, null for unset).
pub fn service_connect_json_line(rng: &mut Rng) -> String {
    let code = CODES[rng.below(8) as usize];
    format!(
        r#"{{"start_time":"{}","method":"{}","path":"{}","protocol":"HTTP/1.1","response_code":{},"bytes_received":{},"bytes_sent":{},"duration_ms":{},"upstream_service_time":"{}","forwarded_for":null,"user_agent":"{}","request_id":"{}","authority":"orders.internal:8080","upstream_host":"10.0.2.{}:8080"}}"#,
        timestamp(rng),
        rng.pick(&METHODS),
        path(rng),
        code,
        rng.below(2000),
        rng.below(200_000),
        rng.below(900),
        rng.below(800),
        rng.pick(&AGENTS),
        uuid(rng),
        rng.below(256),
    )
}

const APP_LINES: [&str; 6] = [
    "[2025-11-04 06:49:07.518][1][info][main] [source/server/server.cc:932] starting main dispatch loop",
    "[2025-11-04 06:49:08.002][15][warning][config] [source/extensions/config_subscription/grpc/grpc_stream.h:190] StreamAggregatedResources gRPC config stream to xds closed: 13",
    r#"{"level":"info","ts":"2025-11-04T06:49:07.518Z","logger":"orders","msg":"order placed","order_id":81234,"amount_cents":4599}"#,
    "2025-11-04 06:49:07,518 INFO  [orders.service] Order 81234 placed by customer 5521 in 12 ms",
    "java.lang.IllegalStateException: cart is empty",
    "\tat com.example.orders.CartService.checkout(CartService.java:88)",
];

/// One application or Envoy-internal line.
pub fn app_line(rng: &mut Rng) -> String {
    rng.pick(&APP_LINES).to_string()
}

/// `n` lines, `access_percent` of them Envoy default-format access lines and
/// the rest application lines, shuffled deterministically.
pub fn mixed_lines(n: usize, access_percent: u64, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            if rng.below(100) < access_percent {
                envoy_default_line(&mut rng)
            } else {
                app_line(&mut rng)
            }
        })
        .collect()
}

/// The kind of regex users write for Fluent Bit's `envoy` parser: one pattern
/// with every field of the default format as a named group.
pub const FLUENT_BIT_STYLE_ENVOY_REGEX: &str = r#"^\[(?<start_time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^"]*?)(?: +\S*)?)? (?<protocol>\S+)" (?<code>[^ ]*) (?<response_flags>[^ ]*) (?<bytes_received>[^ ]*) (?<bytes_sent>[^ ]*) (?<duration>[^ ]*) (?<x_envoy_upstream_service_time>[^ ]*) "(?<x_forwarded_for>[^"]*)" "(?<user_agent>[^"]*)" "(?<request_id>[^"]*)" "(?<authority>[^ ]*)" "(?<upstream_host>[^ ]*)"$"#;

/// Forward-protocol frames built byte by byte (no msgpack library), shaped
/// like what Docker's fluentd driver and Fluent Bit's out_forward send.
pub mod forward {
    use super::{envoy_default_line, mixed_lines, Rng};

    fn str(out: &mut Vec<u8>, s: &str) {
        let n = s.len();
        if n < 32 {
            out.push(0xa0 | n as u8);
        } else if n < 256 {
            out.extend_from_slice(&[0xd9, n as u8]);
        } else if n < 65_536 {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        out.extend_from_slice(s.as_bytes());
    }

    fn event_time(out: &mut Vec<u8>, secs: u32, nanos: u32) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    }

    fn record(out: &mut Vec<u8>, log: &str) {
        // FireLens record: container metadata and the ECS fields.
        out.push(0x87);
        for (k, v) in [
            (
                "container_id",
                "5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e-1234567890",
            ),
            ("container_name", "/ecs-orders-3-envoy-8ac2e1f0b1a2c3d4e5f6"),
            ("source", "stdout"),
            ("ecs_cluster", "prod"),
            (
                "ecs_task_arn",
                "arn:aws:ecs:us-east-1:123456789012:task/prod/5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e",
            ),
            ("ecs_task_definition", "orders:3"),
        ] {
            str(out, k);
            str(out, v);
        }
        str(out, "log");
        str(out, log);
    }

    /// One Message-mode frame per event, as Docker's driver writes:
    /// `[tag, EventTime, record, {}]`.
    pub fn docker_message_frames(n: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, line) in mixed_lines(n, 70, seed).iter().enumerate() {
            docker_message_frame(&mut out, i, line);
        }
        out
    }

    /// Appends the Message-mode frame of event number `i` with `line`.
    pub fn docker_message_frame(out: &mut Vec<u8>, i: usize, line: &str) {
        out.push(0x94);
        str(out, "envoy-firelens-5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e");
        event_time(
            out,
            1_700_000_000 + i as u32 / 1000,
            i as u32 % 1_000_000_000,
        );
        record(out, line);
        out.push(0x80);
    }

    /// One Forward-mode frame of `lines` (event numbers from `first`) that
    /// asks for an ack: `[tag, [[EventTime, record], ...], {"chunk": chunk}]`,
    /// as Fluent Bit writes with `require_ack_response`.
    pub fn acked_forward_frame(out: &mut Vec<u8>, first: usize, lines: &[String], chunk: &str) {
        out.push(0x93);
        str(out, "envoy-firelens-5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e");
        out.push(0xdd);
        out.extend_from_slice(&(lines.len() as u32).to_be_bytes());
        for (k, line) in lines.iter().enumerate() {
            let i = first + k;
            out.push(0x92);
            event_time(
                out,
                1_700_000_000 + i as u32 / 1000,
                i as u32 % 1_000_000_000,
            );
            record(out, line);
        }
        out.push(0x81);
        str(out, "chunk");
        str(out, chunk);
    }

    /// The server's answer to a frame with `chunk`: `{"ack": chunk}`.
    pub fn ack(chunk: &str) -> Vec<u8> {
        let mut out = vec![0x81];
        str(&mut out, "ack");
        str(&mut out, chunk);
        out
    }

    /// Forward-mode frames of `per_frame` Envoy access lines, as Fluent
    /// Bit's out_forward writes them: `[tag, [[EventTime, record], ...],
    /// {"size": n}]` with a map32 option header.
    pub fn fluent_bit_forward_frames(frames: usize, per_frame: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for f in 0..frames {
            out.push(0x93);
            str(&mut out, "envoy-firelens-5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e");
            out.push(0xdd);
            out.extend_from_slice(&(per_frame as u32).to_be_bytes());
            for i in 0..per_frame {
                out.push(0x92);
                event_time(&mut out, 1_700_000_000 + f as u32, i as u32);
                record(&mut out, &envoy_default_line(&mut rng));
            }
            out.extend_from_slice(&[0xdf, 0, 0, 0, 1]);
            str(&mut out, "size");
            out.push(0xce);
            out.extend_from_slice(&(per_frame as u32).to_be_bytes());
        }
        out
    }
}
