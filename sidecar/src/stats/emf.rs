//! One route's interval as one Embedded Metric Format event
//! (shared/specs.md §4): a single JSON object with `_aws.Timestamp` (ms) and
//! one metric directive. Members the directive names are top-level numbers;
//! dimension values are strings of at most 1,024 characters.

use serde_json::{json, Map, Value as Json};

use super::{RouteKey, RouteStats, StatsConfig, STATUS_CLASSES};

/// Every figure an event carries, with its unit. `stats.metrics` picks
/// which of them are metrics; all are fields.
pub const FIGURES: [(&str, &str); 19] = [
    ("requests", "Count"),
    ("status_0", "Count"),
    ("status_1xx", "Count"),
    ("status_2xx", "Count"),
    ("status_3xx", "Count"),
    ("status_4xx", "Count"),
    ("status_5xx", "Count"),
    ("bytes_received", "Bytes"),
    ("bytes_sent", "Bytes"),
    ("duration_p50", "Milliseconds"),
    ("duration_p90", "Milliseconds"),
    ("duration_p99", "Milliseconds"),
    ("duration_max", "Milliseconds"),
    ("upstream_service_time_p50", "Milliseconds"),
    ("upstream_service_time_p90", "Milliseconds"),
    ("upstream_service_time_p99", "Milliseconds"),
    ("upstream_service_time_max", "Milliseconds"),
    ("response_flags_total", "Count"),
    ("folded_requests", "Count"),
];

/// The dimensions an event can be split by.
pub const DIMENSIONS: [&str; 2] = ["service", "route"];

/// CloudWatch's limit on a dimension value's length.
const MAX_DIMENSION_VALUE: usize = 1024;

fn dimension_value(s: &str) -> String {
    match s.char_indices().nth(MAX_DIMENSION_VALUE) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s.to_string(),
    }
}

/// The figures of one route's interval, by name.
pub fn figures(stats: &RouteStats) -> Map<String, Json> {
    let mut f = Map::new();
    f.insert("requests".into(), stats.requests.into());
    for (class, n) in STATUS_CLASSES.iter().zip(stats.status) {
        f.insert(format!("status_{class}"), n.into());
    }
    f.insert("bytes_received".into(), stats.bytes_received.into());
    f.insert("bytes_sent".into(), stats.bytes_sent.into());
    for (name, sketch) in [
        ("duration", &stats.duration),
        ("upstream_service_time", &stats.upstream),
    ] {
        for (suffix, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            if let Some(v) = sketch.quantile(q) {
                // Whole hundredths of a millisecond: enough, and stable.
                let v = (v * 100.0).round() / 100.0;
                f.insert(format!("{name}_{suffix}"), json!(v));
            }
        }
        if sketch.count() > 0 {
            f.insert(format!("{name}_max"), sketch.max().into());
        }
    }
    f.insert(
        "response_flags_total".into(),
        stats.flags.values().sum::<u64>().into(),
    );
    if stats.folded > 0 {
        f.insert("folded_requests".into(), stats.folded.into());
    }
    f
}

/// The EMF event (one line of JSON) for `key`'s interval starting at
/// `start_ms`.
///
/// Every event is billed (its bytes plus 26): figures that are not metrics
/// are left out when they are zero, the response flags when there are
/// none, and the mergeable sketches unless `stats.sketches` asks for them.
pub fn event(config: &StatsConfig, start_ms: i64, key: &RouteKey, stats: &RouteStats) -> String {
    let mut figures = figures(stats);
    figures.retain(|name, value| {
        config.metrics.iter().any(|m| m == name) || value.as_u64() != Some(0)
    });
    // Only metrics this event has a value for: a route without durations
    // (TCP) has no duration_p99.
    let metrics: Vec<Json> = config
        .metrics
        .iter()
        .filter(|name| figures.contains_key(name.as_str()))
        .map(|name| {
            let unit = FIGURES
                .iter()
                .find(|(n, _)| n == name)
                .map_or("None", |(_, u)| u);
            json!({"Name": name, "Unit": unit})
        })
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": start_ms,
            "CloudWatchMetrics": [{
                "Namespace": config.namespace,
                "Dimensions": config.dimensions,
                "Metrics": metrics,
            }],
        }),
    );
    root.insert("service".into(), dimension_value(&key.service).into());
    root.insert("route".into(), dimension_value(&key.route).into());
    root.insert(
        "interval_seconds".into(),
        (config.interval_ms / 1000).into(),
    );
    root.extend(figures);
    if !stats.flags.is_empty() {
        root.insert("response_flags".into(), json!(stats.flags));
    }
    if config.sketches {
        root.insert("duration_sketch".into(), stats.duration.to_json());
        root.insert(
            "upstream_service_time_sketch".into(),
            stats.upstream.to_json(),
        );
    }
    Json::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::facts;
    use super::*;

    #[test]
    fn an_event_with_the_default_metrics() {
        let mut stats = RouteStats::default();
        for d in [10, 20, 30, 40] {
            stats.add(&facts("GET /a", if d == 40 { 503 } else { 200 }, d));
        }
        let key = RouteKey {
            service: "orders".to_string(),
            route: "GET /a".to_string(),
        };
        let text = event(&StatsConfig::default(), 60_000, &key, &stats);
        let v: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["_aws"],
            json!({
                "Timestamp": 60_000,
                "CloudWatchMetrics": [{
                    "Namespace": "Sluice",
                    "Dimensions": [["service", "route"], ["service"]],
                    "Metrics": [
                        {"Name": "requests", "Unit": "Count"},
                        {"Name": "status_5xx", "Unit": "Count"},
                        {"Name": "duration_p99", "Unit": "Milliseconds"},
                    ],
                }],
            })
        );
        assert_eq!(v["service"], "orders");
        assert_eq!(v["route"], "GET /a");
        assert_eq!(v["requests"], 4);
        assert_eq!(v["status_2xx"], 3);
        assert_eq!(v["status_5xx"], 1);
        assert_eq!(v["bytes_sent"], 400);
        assert_eq!(v["duration_max"], 40);
        assert_eq!(v["interval_seconds"], 60);
        // p99 of 10, 20, 30, 40 (lower rank) is 30, within 1 %.
        let p99 = v["duration_p99"].as_f64().unwrap();
        assert!((p99 - 30.0).abs() <= 0.3, "{p99}");
        // Zero figures that are not metrics, empty flags and the sketches
        // (not asked for) are left out; metrics are there even when zero.
        for absent in [
            "status_0",
            "status_1xx",
            "status_3xx",
            "status_4xx",
            "response_flags_total",
            "response_flags",
            "duration_sketch",
            "upstream_service_time_sketch",
        ] {
            assert_eq!(v.get(absent), None, "{absent}");
        }
        let none = event(&StatsConfig::default(), 0, &key, &RouteStats::default());
        let none: Json = serde_json::from_str(&none).unwrap();
        assert_eq!(
            (&none["requests"], &none["status_5xx"]),
            (&json!(0), &json!(0))
        );
        let with = StatsConfig {
            sketches: true,
            ..StatsConfig::default()
        };
        let v: Json = serde_json::from_str(&event(&with, 60_000, &key, &stats)).unwrap();
        assert_eq!(v["duration_sketch"]["zeros"], 0);
        assert_eq!(v["upstream_service_time_sketch"]["zeros"], 0);
    }

    #[test]
    fn long_dimension_values_are_cut_to_1024_characters() {
        let key = RouteKey {
            service: "s".to_string(),
            route: "é".repeat(2000),
        };
        let text = event(&StatsConfig::default(), 0, &key, &RouteStats::default());
        let v: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(v["route"].as_str().unwrap().chars().count(), 1024);
        // No durations: no duration metric is named.
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "requests", "Unit": "Count"}, {"Name": "status_5xx", "Unit": "Count"}])
        );
    }
}
