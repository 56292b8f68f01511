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

fn uuid(rng: &mut Rng) -> String {
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
