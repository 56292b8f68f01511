//! Per-route statistics end to end: EMF events read back from moto's stats
//! stream and checked against the EMF rules, /metrics parsed by
//! prometheus_client's parser, /healthz, the cardinality guard, and
//! sampling that keeps every error while the statistics stay exact.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use crate::proxy::{put_log_events_violations, Fault, FaultProxy};
use crate::support::{client_with, scrape, wait_until, Moto, Sidecar};

/// What the EMF specification asks of one event (shared/specs.md §4).
fn emf_violations(message: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let Ok(Json::Object(root)) = serde_json::from_str::<Json>(message) else {
        return vec!["not one JSON object".to_string()];
    };
    let aws = &root["_aws"];
    if !aws["Timestamp"].is_i64() {
        wrong.push("_aws.Timestamp is not an integer of ms".to_string());
    }
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if directives.is_empty() {
        wrong.push("no metric directive".to_string());
    }
    for d in directives {
        if !d["Namespace"].is_string() {
            wrong.push("Namespace is not a string".to_string());
        }
        let sets = d["Dimensions"].as_array().cloned().unwrap_or_default();
        if sets.is_empty() {
            wrong.push("no dimension set".to_string());
        }
        for set in sets {
            let names = set.as_array().cloned().unwrap_or_default();
            if names.len() > 30 {
                wrong.push(format!("{} dimensions in a set", names.len()));
            }
            for name in names {
                match root.get(name.as_str().unwrap_or_default()) {
                    Some(Json::String(v)) if v.chars().count() <= 1024 => {}
                    other => wrong.push(format!("dimension {name} is {other:?}")),
                }
            }
        }
        let metrics = d["Metrics"].as_array().cloned().unwrap_or_default();
        if metrics.len() > 100 {
            wrong.push(format!("{} metrics", metrics.len()));
        }
        for m in metrics {
            let name = m["Name"].as_str().unwrap_or_default();
            if !root.get(name).is_some_and(Json::is_number) {
                wrong.push(format!("metric {name} is not a top-level number"));
            }
        }
    }
    wrong
}

#[test]
fn statistics_go_to_the_stats_stream_as_emf_and_to_metrics() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    let endpoint = proxy.endpoint();
    let sidecar = Sidecar::start(&[
        ("SLUICE_OUTPUT_TYPE", "cloudwatch"),
        ("SLUICE_CLOUDWATCH_ENDPOINT", &endpoint),
        ("SLUICE_CLOUDWATCH_REGION", "us-east-1"),
        ("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "200ms"),
        ("SLUICE_STATS_MAX_ROUTES", "50"),
        ("SLUICE_SAMPLING_RATE", "0.1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
    ]);
    // 400 events: 200 access records (ids 0, 2, ..; status 200, 503, 404
    // by id % 3; each its own route) and 200 application lines.
    let out = client_with("bulk", &sidecar.tcp, &["400", "0"]);
    assert_eq!(out, [r#"{"acks": 1}"#]);

    let health = std::process::Command::new(crate::support::python())
        .args([
            "-c",
            &format!(
                "import urllib.request as u; r = u.urlopen('http://{}/healthz'); print(r.status, r.read().decode().strip())",
                sidecar.admin
            ),
        ])
        .output()
        .expect("python");
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "200 ok");

    let (content_type, m) = scrape(&sidecar.admin);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(m["sluice_forward_events_total"], 400.0);
    assert_eq!(m["sluice_lines_total{kind=access}"], 200.0);
    assert_eq!(m["sluice_lines_total{kind=app}"], 200.0);
    // Every access line has a query to redact (one field each).
    assert_eq!(m["sluice_redactions_total"], 200.0);
    // 50 routes, the other 150 requests folded into "other".
    assert_eq!(m["sluice_stats_folded_requests_total"], 150.0);
    let route_requests: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("sluice_route_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(route_requests, 200.0);
    let other = |class: &str| {
        m.get(&format!(
            "sluice_route_requests_total{{route=other,service=orders,status_class={class}}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert_eq!(other("2xx") + other("4xx") + other("5xx"), 150.0);
    assert_eq!(
        m["sluice_route_request_duration_seconds{quantile=0.99,route=GET /orders/id-0,service=orders}"],
        0.012
    );
    assert_eq!(
        m["sluice_route_request_duration_seconds_count{route=other,service=orders}"],
        150.0
    );
    let sampled_out = m["sluice_sampled_out_total"];
    assert!(sampled_out > 0.0);

    // Sluice's own log lines by level: as many as it wrote to stderr, none
    // of them warnings or errors in this run, and none below info.
    let written = |level: &str| {
        let lines = sidecar.logs.lock().expect("lock");
        let tag = format!("\"level\":\"{level}\"");
        lines.iter().filter(|l| l.contains(&tag)).count() as f64
    };
    wait_until(
        "the counted info lines read",
        Duration::from_millis(100),
        || {
            let (_, m) = scrape(&sidecar.admin);
            m["sluice_log_messages_total{level=info}"] == written("INFO")
        },
    );
    let (_, m) = scrape(&sidecar.admin);
    for level in ["error", "warn", "debug", "trace"] {
        assert_eq!(
            m[&format!("sluice_log_messages_total{{level={level}}}")],
            0.0
        );
        assert_eq!(written(&level.to_uppercase()), 0.0);
    }
    assert!(written("INFO") > 0.0);

    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let logs = logs.lock().expect("lock").clone();
    assert!(!logs
        .iter()
        .any(|l| l.contains("s3cret") || l.contains("hunter2")));

    let dump = moto.dump();
    let stats: Vec<&crate::support::StoredEvent> = dump
        .events
        .iter()
        .filter(|e| e.stream == "0123abcd/stats")
        .collect();
    // One event per route of the (partial) interval: 50 routes and other.
    assert_eq!(stats.len(), 51);
    let mut requests = 0;
    let mut by_route = BTreeMap::new();
    for e in &stats {
        assert_eq!(e.group, "/ecs/prod/envoy");
        let wrong = emf_violations(&e.message);
        assert!(wrong.is_empty(), "{wrong:?} in {}", e.message);
        let v: Json = serde_json::from_str(&e.message).expect("JSON");
        assert_eq!(v["_aws"]["Timestamp"], json_i64(e.timestamp));
        requests += v["requests"].as_u64().expect("requests");
        by_route.insert(v["route"].as_str().expect("route").to_string(), v);
    }
    assert_eq!(requests, 200);
    let other = &by_route["other"];
    assert_eq!(other["requests"], 150);
    assert_eq!(other["folded_requests"], 150);
    assert_eq!(other["service"], "orders");
    let first = &by_route["GET /orders/id-0"];
    assert_eq!(first["duration_p99"], 12.0);
    assert_eq!(first["status_2xx"], 1);
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        serde_json::json!([
            {"Name": "requests", "Unit": "Count"},
            {"Name": "status_5xx", "Unit": "Count"},
            {"Name": "duration_p99", "Unit": "Milliseconds"},
        ])
    );

    // Sampling: every error (503) is written, the statistics counted all
    // 200, and what was written plus what was sampled out is all of them.
    let access: Vec<Json> = dump
        .events
        .iter()
        .filter(|e| e.stream == "0123abcd/access")
        .map(|e| serde_json::from_str(&e.message).expect("JSON"))
        .collect();
    let errors = access.iter().filter(|r| r["response_code"] == 503).count();
    assert_eq!(
        errors,
        (0..400).filter(|i| i % 2 == 0 && i % 3 == 1).count()
    );
    assert_eq!(access.len() as f64 + sampled_out, 200.0);

    // The stats stream's requests say they carry EMF; the others do not.
    for r in proxy.recorded() {
        if r.operation != "PutLogEvents" {
            continue;
        }
        assert!(put_log_events_violations(&r.body).is_empty());
        let is_stats = r.body["logStreamName"] == "0123abcd/stats";
        assert_eq!(r.logs_format.as_deref(), is_stats.then_some("json/emf"));
    }
}

fn json_i64(v: i64) -> Json {
    Json::from(v)
}
