//! Properties: a record rendered through a format string parses back to the
//! same fields, and redaction never lets a query value out.

use proptest::prelude::*;
use sluice_parser::{
    Classified, Classifier, Field, Format, QueryMode, Redactor, RouteTable, Value, ENVOY_DEFAULT,
    SERVICE_CONNECT_GRPC, SERVICE_CONNECT_TCP,
};

/// Values of the fields of the default format (and the Service Connect ones).
#[derive(Debug, Clone)]
struct Fields {
    start_ms: i64,
    method: String,
    path: String,
    protocol: String,
    code: u64,
    flags: Option<String>,
    grpc: Option<String>,
    received: u64,
    sent: u64,
    duration: u64,
    upstream_time: Option<u64>,
    forwarded_for: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    authority: Option<String>,
    upstream_host: Option<String>,
    stream_id: String,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:/\\[\\]{}=,-]{1,24}".prop_filter("not the absent marker", |s| s != "-")
}

fn fields() -> impl Strategy<Value = Fields> {
    let flags = prop::collection::vec("[A-Z]{1,4}", 1..4).prop_map(|f| f.join(","));
    (
        (
            0i64..4_102_444_800_000,
            "[A-Z]{3,7}",
            "/[A-Za-z0-9/._~%-]{0,40}(\\?[A-Za-z0-9=&%]{0,20})?",
            prop_oneof![Just("HTTP/1.1"), Just("HTTP/2"), Just("HTTP/3")],
            0u64..600,
            prop::option::of(flags),
            prop::option::of("[A-Za-z]{1,16}"),
        ),
        (
            any::<u32>().prop_map(u64::from),
            any::<u64>(),
            0u64..10_000_000,
            prop::option::of(0u64..100_000),
            prop::option::of(
                "[0-9., ]{1,30}".prop_filter("not absent", |s| s != "-" && !s.is_empty()),
            ),
            // Any printable text, quotes and `" "` included: the user agent
            // is the one field Envoy prints unescaped.
            prop::option::of("[ -~]{1,40}".prop_filter("not absent", |s| s != "-")),
            prop::option::of(token()),
            prop::option::of(token()),
            prop::option::of(token()),
            token(),
        ),
    )
        .prop_map(|(a, b)| Fields {
            start_ms: a.0,
            method: a.1,
            path: a.2,
            protocol: a.3.to_string(),
            code: a.4,
            flags: a.5,
            grpc: a.6,
            received: b.0,
            sent: b.1,
            duration: b.2,
            upstream_time: b.3,
            forwarded_for: b.4,
            user_agent: b.5,
            request_id: b.6,
            authority: b.7,
            upstream_host: b.8,
            stream_id: b.9,
        })
}

/// Renders `ms` the way Envoy's default START_TIME does. Written out here,
/// not taken from the crate, so the test does not check the parser with its
/// own arithmetic.
fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Substitutes the values into an Envoy format string, as Envoy would.
fn render(format: &str, f: &Fields) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
    format
        .replace("%START_TIME%", &iso(f.start_ms))
        .replace("%REQ(:METHOD)%", &f.method)
        .replace("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &f.path)
        .replace("%PROTOCOL%", &f.protocol)
        .replace("%RESPONSE_CODE%", &f.code.to_string())
        .replace("%RESPONSE_FLAGS%", &opt(&f.flags))
        .replace("%GRPC_STATUS()%", &opt(&f.grpc))
        .replace("%BYTES_RECEIVED%", &f.received.to_string())
        .replace("%BYTES_SENT%", &f.sent.to_string())
        .replace("%DURATION%", &f.duration.to_string())
        .replace(
            "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
            &num(f.upstream_time),
        )
        .replace("%REQ(X-FORWARDED-FOR)%", &opt(&f.forwarded_for))
        .replace("%REQ(USER-AGENT)%", &opt(&f.user_agent))
        .replace("%REQ(X-REQUEST-ID)%", &opt(&f.request_id))
        .replace("%REQ(:AUTHORITY)%", &opt(&f.authority))
        .replace("%UPSTREAM_HOST%", &opt(&f.upstream_host))
        .replace("%STREAM_ID%", &f.stream_id)
        .replace("%DOWNSTREAM_REMOTE_ADDRESS%", &opt(&f.upstream_host))
        .replace("%DOWNSTREAM_REMOTE_PORT%", &f.code.to_string())
        .replace("%CONNECTION_TERMINATION_DETAILS%", &opt(&f.user_agent))
        .replace("%CONNECTION_ID%", &f.duration.to_string())
}

fn text(v: &Option<String>) -> Option<Value<'static>> {
    v.clone().map(|s| Value::Str(s.into()))
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises the count for a longer local run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn default_format_round_trips(f in fields()) {
        let format = Format::compile("envoy", ENVOY_DEFAULT).unwrap();
        let line = render(ENVOY_DEFAULT, &f);
        let r = format.parse(&line).expect("rendered line parses");
        prop_assert_eq!(r.start_time_ms(), Some(f.start_ms));
        prop_assert_eq!(r.str(Field::Method), Some(f.method.as_str()));
        prop_assert_eq!(r.str(Field::Path), Some(f.path.as_str()));
        prop_assert_eq!(r.str(Field::Protocol), Some(f.protocol.as_str()));
        prop_assert_eq!(r.uint(Field::ResponseCode), Some(f.code));
        prop_assert_eq!(r.get(Field::ResponseFlags).cloned(), text(&f.flags));
        prop_assert_eq!(r.uint(Field::BytesReceived), Some(f.received));
        prop_assert_eq!(r.uint(Field::BytesSent), Some(f.sent));
        prop_assert_eq!(r.uint(Field::Duration), Some(f.duration));
        prop_assert_eq!(r.uint(Field::UpstreamServiceTime), f.upstream_time);
        prop_assert_eq!(r.get(Field::ForwardedFor).cloned(), text(&f.forwarded_for));
        prop_assert_eq!(r.get(Field::UserAgent).cloned(), text(&f.user_agent));
        prop_assert_eq!(r.get(Field::RequestId).cloned(), text(&f.request_id));
        prop_assert_eq!(r.get(Field::Authority).cloned(), text(&f.authority));
        prop_assert_eq!(r.get(Field::UpstreamHost).cloned(), text(&f.upstream_host));
    }

    #[test]
    fn grpc_format_round_trips(f in fields()) {
        let format = Format::compile("sc-grpc", SERVICE_CONNECT_GRPC).unwrap();
        let line = render(SERVICE_CONNECT_GRPC, &f);
        let r = format.parse(&line).expect("rendered line parses");
        prop_assert_eq!(r.get(Field::GrpcStatus).cloned(), text(&f.grpc));
        prop_assert_eq!(r.get(Field::UserAgent).cloned(), text(&f.user_agent));
        prop_assert_eq!(r.get(Field::UpstreamHost).cloned(), text(&f.upstream_host));
        prop_assert_eq!(r.str(Field::StreamId), Some(f.stream_id.as_str()));
    }

    #[test]
    fn tcp_format_round_trips(f in fields()) {
        let format = Format::compile("sc-tcp", SERVICE_CONNECT_TCP).unwrap();
        let line = render(SERVICE_CONNECT_TCP, &f);
        let r = format.parse(&line).expect("rendered line parses");
        prop_assert_eq!(r.get(Field::DownstreamRemoteAddress).cloned(), text(&f.upstream_host));
        prop_assert_eq!(r.uint(Field::DownstreamRemotePort), Some(f.code));
        prop_assert_eq!(r.get(Field::ConnectionTerminationDetails).cloned(), text(&f.user_agent));
        let id = f.duration.to_string();
        prop_assert_eq!(r.str(Field::ConnectionId), Some(id.as_str()));
    }

    /// The classifier picks the right built-in for unambiguous lines (user
    /// agents without `" "`).
    #[test]
    fn classifier_finds_the_default_format(f in fields()) {
        let mut f = f;
        f.user_agent = f.user_agent.map(|ua| ua.replace('"', "'"));
        let line = render(ENVOY_DEFAULT, &f);
        let classifier = Classifier::new();
        let Classified::Access(r) = classifier.classify(&line) else {
            return Err(TestCaseError::fail(format!("not access: {line}")));
        };
        prop_assert_eq!(r.get(Field::ResponseFlags).cloned(), text(&f.flags));
        prop_assert_eq!(r.get(Field::UserAgent).cloned(), text(&f.user_agent));
        prop_assert_eq!(r.get(Field::UpstreamHost).cloned(), text(&f.upstream_host));
    }

    /// Whatever the parameters, no value of a parameter that is not on the
    /// allow-list appears in anything written for the record, nor in the
    /// redacted application line.
    #[test]
    fn redaction_never_leaks(
        params in prop::collection::vec(
            ("[A-Za-z_%0-9]{1,8}", "[A-Za-z0-9%._~+=;?/-]{1,16}"),
            1..6,
        ),
        path in "/[a-z0-9/]{0,20}",
        mode in prop_oneof![Just(QueryMode::Redact), Just(QueryMode::Drop)],
    ) {
        // Each value gets a marker so it cannot occur by chance elsewhere.
        let params: Vec<(String, String)> = params
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| (k, format!("SeCrEt{i}{v}")))
            .collect();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{path}?{}", query.join("&"));
        let line = format!(
            r#"[2025-11-04T06:49:07.518Z] "GET {url} HTTP/1.1" 200 - 0 1 2 - "-" "curl" "id" "host" "-""#
        );
        let mut redactor = Redactor::new(mode);
        redactor.allow("page");
        let classifier = Classifier::new();
        let Classified::Access(mut record) = classifier.classify(&line) else {
            return Err(TestCaseError::fail("not access"));
        };
        redactor.redact_record(&mut record);
        let mut out = String::new();
        record.write_json_members(&mut out);
        out.push_str(&RouteTable::new().route_key(&record));
        let app_line = format!("upstream said GET {url} failed");
        let app = redactor.redact_text(&app_line);
        for (key, value) in &params {
            if key.eq_ignore_ascii_case("page") {
                continue;
            }
            prop_assert!(!out.contains(value.as_str()), "{} leaked in {}", value, out);
            prop_assert!(!app.contains(value.as_str()), "{} leaked in {}", value, app);
        }
    }
}
