//! `sluice run` with the CloudWatch output against moto's server, with a
//! recording and fault-injecting proxy in between (proxy.rs) that checks
//! every request against the PutLogEvents rules moto does not enforce.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};

use crate::proxy::{put_log_events_violations, Fault, FaultProxy, Recorded};
use crate::support::{client_with, wait_until, CloudWatchDump, Moto, Sidecar};

/// The settings every test here uses, with the endpoint and extra keys
/// (which win). Statistics are off unless a test turns them on: these
/// tests count log events.
pub fn cloudwatch_env(endpoint: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = [
        ("SLUICE_OUTPUT_TYPE", "cloudwatch"),
        ("SLUICE_CLOUDWATCH_ENDPOINT", endpoint),
        ("SLUICE_CLOUDWATCH_REGION", "us-east-1"),
        ("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "200ms"),
        ("SLUICE_STATS_ENABLED", "false"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        // No profile or instance metadata lookups from the test machine.
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env.into_iter().collect()
}

/// moto, a proxy that passes everything and records it, and a sidecar
/// sending through it with `extra` settings.
fn start_recorded(extra: &[(&str, &str)]) -> (Moto, FaultProxy, Sidecar) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    let sidecar = start(&cloudwatch_env(&proxy.endpoint(), extra));
    (moto, proxy, sidecar)
}

pub fn start(env: &[(String, String)]) -> Sidecar {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Sidecar::start(&env)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Sends `count` events with ids `first..` (even ids: Envoy access lines
/// from container envoy; odd: application lines from container app).
pub fn send_bulk(sidecar: &Sidecar, first: usize, count: usize) {
    let (count_arg, first_arg) = (count.to_string(), first.to_string());
    let out = client_with("bulk", &sidecar.tcp, &[&count_arg, &first_arg]);
    let frames = count.div_ceil(500);
    assert_eq!(out, [format!("{{\"acks\": {frames}}}")]);
}

/// The id (`id-N`) an event carries.
pub fn event_id(message: &str) -> usize {
    let at = message.find("id-").expect("an id") + 3;
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("digits")
}

/// How many times each id arrived.
pub fn id_counts(dump: &CloudWatchDump) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for e in &dump.events {
        *counts.entry(event_id(&e.message)).or_default() += 1;
    }
    counts
}

fn put_requests(recorded: &[Recorded]) -> Vec<&Recorded> {
    recorded
        .iter()
        .filter(|r| r.operation == "PutLogEvents")
        .collect()
}

/// Every PutLogEvents request the sidecar sent keeps every API rule.
pub fn assert_all_requests_valid(recorded: &[Recorded]) {
    for r in put_requests(recorded) {
        let wrong = put_log_events_violations(&r.body);
        assert!(
            wrong.is_empty(),
            "an invalid PutLogEvents request: {wrong:?}"
        );
    }
}

pub fn log_lines_with(sidecar_logs: &[String], message: &str) -> Vec<Json> {
    sidecar_logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["fields"]["message"] == message)
        .collect()
}

#[test]
fn containers_go_to_their_groups_and_streams_with_retention() {
    let (moto, proxy, sidecar) = start_recorded(&[("SLUICE_CLOUDWATCH_RETENTION_DAYS", "14")]);
    let before = now_ms();
    send_bulk(&sidecar, 0, 4);
    // 1.5 MB: more than one event may hold; it arrives in two marked parts.
    let out = client_with("big", &sidecar.tcp, &["1500000"]);
    assert_eq!(out, [r#"{"ack": {"ack": "big"}}"#]);
    let after = now_ms();
    let logs = sidecar.logs.clone();
    let (status, stdout) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    assert!(stdout.is_empty(), "nothing on stdout: {stdout:?}");

    let dump = moto.dump();
    assert_eq!(
        dump.groups,
        BTreeMap::from([
            ("/ecs/prod/app".to_string(), Some(14)),
            ("/ecs/prod/envoy".to_string(), Some(14)),
        ])
    );
    let mut streams: Vec<(String, String, usize)> = Vec::new();
    for e in &dump.events {
        match streams.last_mut() {
            Some((g, s, n)) if *g == e.group && *s == e.stream => *n += 1,
            _ => streams.push((e.group.clone(), e.stream.clone(), 1)),
        }
    }
    assert_eq!(
        streams,
        [
            ("/ecs/prod/app".to_string(), "0123abcd/app".to_string(), 4),
            (
                "/ecs/prod/envoy".to_string(),
                "0123abcd/access".to_string(),
                2
            ),
        ]
    );

    // Application lines: the line as it was, with the URL query redacted.
    let (big, app): (Vec<&str>, Vec<&str>) = dump.events[..4]
        .iter()
        .map(|e| e.message.as_str())
        .partition(|m| m.starts_with("[sluice part"));
    assert_eq!(
        app,
        [
            "app line id-1 GET /login?password=REDACTED done",
            "app line id-3 GET /login?password=REDACTED done"
        ]
    );
    // Both parts have the event's time. They went out in two requests, in
    // parallel, so they may be stored in either order: the marker tells.
    let mut big = big;
    big.sort_unstable();
    assert_eq!(big.len(), 2);
    assert!(big[0].starts_with("[sluice part 1/2] big xxx"));
    assert!(big[1].starts_with("[sluice part 2/2] xxx"));
    let joined: String = big
        .iter()
        .map(|m| m.split_once("] ").expect("marker").1)
        .collect();
    assert!(
        joined == format!("big {}", "x".repeat(1_500_000 - 4)),
        "the parts do not join into the line"
    );
    // Access records: JSON with what varies per request and its route; the
    // metadata is in the group and stream names, and the request's start
    // time is the event's CloudWatch timestamp.
    for (e, id) in dump.events[4..].iter().zip([0, 2]) {
        let record: Json = serde_json::from_str(&e.message).expect("JSON");
        assert!((before - 1000..=after).contains(&e.timestamp));
        let status = [200, 503, 404][id % 3];
        assert_eq!(
            record,
            json!({
                "method": "GET",
                "path": format!("/orders/id-{id}?token=REDACTED&page=REDACTED"),
                "protocol": "HTTP/1.1",
                "response_code": status,
                "bytes_received": 0,
                "bytes_sent": 100 + id % 7,
                "duration": 12,
                "upstream_service_time": 10,
                "forwarded_for": "10.0.0.1",
                "user_agent": "curl/8",
                "request_id": format!("req-{id}"),
                "authority": "orders",
                "upstream_host": "10.0.2.1:80",
                "route": format!("GET /orders/id-{id}"),
            })
        );
    }

    let recorded = proxy.recorded();
    assert_all_requests_valid(&recorded);
    // Group, retention and stream were created once each, when the first
    // PutLogEvents found them missing.
    let count = |op: &str| recorded.iter().filter(|r| r.operation == op).count();
    assert_eq!(count("CreateLogGroup"), 2);
    assert_eq!(count("PutRetentionPolicy"), 2);
    assert_eq!(count("CreateLogStream"), 2);
    // No secret reached CloudWatch or the sidecar's own logs.
    let sent =
        serde_json::to_string(&recorded.iter().map(|r| &r.body).collect::<Vec<_>>()).expect("JSON");
    for secret in ["s3cret", "hunter2"] {
        assert!(!sent.contains(secret), "{secret} was sent");
        assert!(!logs
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains(secret)));
    }
}

#[test]
fn a_hundred_thousand_events_arrive_once_through_throttling_errors_and_drops() {
    let moto = Moto::start();
    let puts = std::sync::atomic::AtomicUsize::new(0);
    // Of every 7 PutLogEvents requests, one is throttled, one gets a 500
    // and one loses its connection.
    let proxy = FaultProxy::start(
        moto.addr,
        Box::new(move |op, _| {
            if op != "PutLogEvents" {
                return Fault::Pass;
            }
            match puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 7 {
                1 => Fault::Throttle,
                3 => Fault::Unavailable,
                5 => Fault::Drop,
                _ => Fault::Pass,
            }
        }),
    );
    let sidecar = start(&cloudwatch_env(&proxy.endpoint(), &[]));
    const N: usize = 100_000;
    send_bulk(&sidecar, 0, N);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");

    let dump = moto.dump();
    let counts = id_counts(&dump);
    let missing: Vec<usize> = (0..N).filter(|i| !counts.contains_key(i)).collect();
    let duplicated: Vec<(&usize, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(missing, Vec::<usize>::new(), "missing events");
    assert_eq!(
        duplicated,
        Vec::<(&usize, &usize)>::new(),
        "duplicated events"
    );
    assert_eq!(dump.events.len(), N);
    // Every event is in the stream its kind belongs to.
    for e in &dump.events {
        let expected = if event_id(&e.message).is_multiple_of(2) {
            ("/ecs/prod/envoy", "0123abcd/access")
        } else {
            ("/ecs/prod/app", "0123abcd/app")
        };
        assert_eq!((e.group.as_str(), e.stream.as_str()), expected);
    }

    let recorded = proxy.recorded();
    assert_all_requests_valid(&recorded);
    let faults = |f: Fault| {
        put_requests(&recorded)
            .iter()
            .filter(|r| r.fault == f)
            .count()
    };
    assert!(
        faults(Fault::Throttle) > 0 && faults(Fault::Unavailable) > 0 && faults(Fault::Drop) > 0
    );
    let logs = logs.lock().expect("lock").clone();
    let totals = log_lines_with(&logs, "CloudWatch has every event");
    assert_eq!(totals.len(), 1, "{logs:?}");
    assert_eq!(totals[0]["fields"]["events_delivered"], N);
    assert_eq!(totals[0]["fields"]["events_refused"], 0);
    assert_eq!(
        totals[0]["fields"]["retries"],
        faults(Fault::Throttle) + faults(Fault::Unavailable) + faults(Fault::Drop)
    );
}

#[test]
fn sigterm_sends_what_is_still_buffered() {
    // Nothing is due before the sidecar is stopped.
    let (moto, proxy, sidecar) = start_recorded(&[("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "10m")]);
    send_bulk(&sidecar, 0, 1000);
    // Acked, so in the batchers; not sent yet.
    assert_eq!(put_requests(&proxy.recorded()).len(), 0);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let counts = id_counts(&moto.dump());
    assert_eq!(counts, (0..1000).map(|i| (i, 1)).collect());
    let logs = logs.lock().expect("lock").clone();
    let totals = log_lines_with(&logs, "CloudWatch has every event");
    assert_eq!(totals[0]["fields"]["events_delivered"], 1000);
    // One accepted request per stream: everything buffered went out at the
    // stop. (Before each, one found the stream missing.)
    let puts = put_requests(&proxy.recorded())
        .iter()
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(puts.iter().filter(|s| **s == 200).count(), 2, "{puts:?}");
    assert_eq!(puts.len(), 4, "{puts:?}");
}

#[test]
fn an_event_cloudwatch_refuses_is_isolated_and_the_rest_delivered() {
    let moto = Moto::start();
    // CloudWatch refuses any request that holds event 13.
    let proxy = FaultProxy::start(
        moto.addr,
        Box::new(|op, body| {
            let poisoned = body["logEvents"].as_array().is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e["message"].as_str().is_some_and(|m| m.contains("id-13 ")))
            });
            if op == "PutLogEvents" && poisoned {
                Fault::Invalid
            } else {
                Fault::Pass
            }
        }),
    );
    let env = cloudwatch_env(
        &proxy.endpoint(),
        &[("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "10m")],
    );
    let sidecar = start(&env);
    send_bulk(&sidecar, 0, 40);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");

    let counts = id_counts(&moto.dump());
    assert_eq!(
        counts,
        (0..40).filter(|i| *i != 13).map(|i| (i, 1)).collect()
    );
    // The 20 app events were bisected down to event 13 alone; the 20
    // access events went out in one request.
    let recorded = proxy.recorded();
    let accepted = put_requests(&recorded)
        .iter()
        .filter(|r| r.status == 200)
        .count();
    let refused: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.fault == Fault::Invalid)
        .collect();
    let sizes: Vec<usize> = refused
        .iter()
        .map(|r| r.body["logEvents"].as_array().map_or(0, Vec::len))
        .collect();
    // Each refused request was half of the one before, down to event 13 alone.
    assert_eq!(sizes.first(), Some(&20));
    assert_eq!(sizes.last(), Some(&1));
    assert!(sizes
        .windows(2)
        .all(|w| w[1] == w[0] / 2 || w[1] == w[0].div_ceil(2)));
    // One accepted request for the access events, and for the app events
    // the accepted half beside each split.
    assert_eq!(accepted, 1 + (refused.len() - 1));
    let logs = logs.lock().expect("lock").clone();
    let refusal = log_lines_with(&logs, "CloudWatch refused an event");
    assert_eq!(refusal.len(), 1, "{logs:?}");
    assert_eq!(refusal[0]["fields"]["group"], "/ecs/prod/app");
    assert_eq!(
        refusal[0]["fields"]["bytes"],
        "app line id-13 GET /login?password=REDACTED done".len()
    );
    let totals = log_lines_with(
        &logs,
        "events could not be delivered to CloudWatch before the grace ran out",
    );
    assert!(totals.is_empty());
    let done = log_lines_with(&logs, "CloudWatch has every event");
    assert_eq!(done[0]["fields"]["events_delivered"], 39);
    assert_eq!(done[0]["fields"]["events_refused"], 1);
}

#[test]
fn without_auto_create_events_wait_for_the_group() {
    let (moto, proxy, sidecar) = start_recorded(&[
        ("SLUICE_CLOUDWATCH_AUTO_CREATE", "false"),
        ("SLUICE_CLOUDWATCH_LOG_GROUP", "/shared"),
        ("SLUICE_CLOUDWATCH_APP_STREAM", "app"),
        ("SLUICE_CLOUDWATCH_ACCESS_STREAM", "access"),
    ]);
    send_bulk(&sidecar, 0, 10);
    // Wait until the sidecar has been told the group is missing.
    wait_until("no PutLogEvents", Duration::from_millis(50), || {
        put_requests(&proxy.recorded()).len() >= 2
    });
    moto.create_group("/shared");
    moto.create_stream("/shared", "app");
    moto.create_stream("/shared", "access");
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let dump = moto.dump();
    assert_eq!(id_counts(&dump), (0..10).map(|i| (i, 1)).collect());
    let recorded = proxy.recorded();
    assert!(!recorded.iter().any(|r| r.operation.starts_with("Create")));
}

#[test]
fn a_log_group_deleted_while_running_is_created_again() {
    let (moto, proxy, sidecar) = start_recorded(&[]);
    send_bulk(&sidecar, 0, 10);
    wait_until(
        "the first events never arrived",
        Duration::from_millis(200),
        || moto.dump().events.len() >= 10,
    );
    moto.delete_group("/ecs/prod/app");
    send_bulk(&sidecar, 10, 10);
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let dump = moto.dump();
    // The deleted group took ids 1, 3, .., 9 with it; everything sent
    // after the deletion is there once.
    let expected: BTreeMap<usize, usize> = (0..20)
        .filter(|i| i % 2 == 0 || *i >= 10)
        .map(|i| (i, 1))
        .collect();
    assert_eq!(id_counts(&dump), expected);
    let creates = proxy
        .recorded()
        .iter()
        .filter(|r| r.operation == "CreateLogGroup" && r.body["logGroupName"] == "/ecs/prod/app")
        .count();
    assert_eq!(creates, 2);
}
