//! Fluent Bit's v2 metrics for a FireLens configuration, for scrapers and
//! dashboards written against Fluent Bit's `/api/v2` endpoint:
//! `/api/v2/metrics/prometheus` (cmetrics' Prometheus text, no
//! timestamps) and `/api/v2/metrics` (cmetrics' text, one
//! `time name{labels} = value` line a sample).
//!
//! The families are the ones Sluice keeps, under Fluent Bit's names, help
//! texts and order: the uptime, hot reloads (0: Sluice does not reload),
//! Sluice's own log events by level, each input's bytes and records, each
//! filter's counters, each output's (plugin_metrics.rs says what each
//! counts), the start time and the build. Families about Fluent Bit's own
//! machinery are left out rather than served as made-up zeros: its logger
//! queue, routing counts per input and output, ring buffers, chunk
//! storage, input rate gates and pauses, upstream connections, chunk
//! capacity and latency histograms.

use std::fmt::Write as _;

use sluice_parser::utc_date;

use super::plugin_metrics::{PluginMetrics, FILTER_COUNTERS, INPUT_COUNTERS, OUTPUT_COUNTERS};
use crate::log_counts::LEVELS;

/// What the families say about the process itself.
#[derive(Clone, Copy, Debug)]
pub struct Process<'a> {
    pub hostname: &'a str,
    pub started_unix_s: u64,
    pub uptime_s: u64,
    /// Sluice's log events by level ([`LEVELS`]' order).
    pub logs: [u64; 5],
}

/// One metric family: its samples' labels (as `k="v",…`) and values.
#[derive(Debug)]
struct Family {
    name: String,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, u64)>,
}

impl Family {
    fn new(name: impl Into<String>, help: &'static str, kind: &'static str) -> Family {
        Family {
            name: name.into(),
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn sample(mut self, labels: String, value: u64) -> Family {
        self.samples.push((labels, value));
        self
    }
}

/// `k="v"`, the value escaped as Prometheus' text format asks.
fn label(key: &str, value: &str) -> String {
    format!("{key}=\"{}\"", crate::metrics::label(value))
}

/// The families of one kind of plugin (`input`, `filter`, `output`), one per
/// counter in `counters`' order, each with a sample per instance that has
/// it; a family no instance has is left out, as Fluent Bit has no filter
/// families without filters.
fn plugin_families<V: AsRef<[(&'static str, u64)]>>(
    kind: &str,
    instances: &[(&str, V)],
    counters: &[(&'static str, &'static str)],
) -> Vec<Family> {
    counters
        .iter()
        .map(|&(counter, help)| {
            let mut family =
                Family::new(format!("fluentbit_{kind}_{counter}_total"), help, "counter");
            for (name, values) in instances {
                if let Some(&(_, value)) = values.as_ref().iter().find(|(c, _)| *c == counter) {
                    family.samples.push((label("name", name), value));
                }
            }
            family
        })
        .filter(|f| !f.samples.is_empty())
        .collect()
}

/// Every family, in Fluent Bit's order.
fn families(metrics: &PluginMetrics, process: &Process) -> Vec<Family> {
    let host = label("hostname", process.hostname);
    let mut logs = Family::new(
        "fluentbit_logger_logs_total",
        "Total number of logs",
        "counter",
    );
    for (level, count) in LEVELS.iter().zip(process.logs) {
        logs = logs.sample(label("message_type", level), count);
    }
    let mut all = vec![
        Family::new(
            "fluentbit_uptime",
            "Number of seconds that Fluent Bit has been running.",
            "counter",
        )
        .sample(host.clone(), process.uptime_s),
        Family::new(
            "fluentbit_hot_reloaded_times",
            "Collect the count of hot reloaded times.",
            "counter",
        )
        .sample(host.clone(), 0),
        logs,
    ];
    all.extend(plugin_families(
        "input",
        &metrics.input_values(),
        INPUT_COUNTERS,
    ));
    all.extend(plugin_families(
        "filter",
        &metrics.filter_values(),
        FILTER_COUNTERS,
    ));
    all.extend(plugin_families(
        "output",
        &metrics.output_values(),
        OUTPUT_COUNTERS,
    ));
    all.push(
        Family::new(
            "fluentbit_process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
        )
        .sample(host.clone(), process.started_unix_s),
    );
    // Fluent Bit's build info gauge holds its start time too.
    let build = format!(
        "{host},{},{}",
        label("version", env!("CARGO_PKG_VERSION")),
        label("os", std::env::consts::OS)
    );
    all.push(
        Family::new(
            "fluentbit_build_info",
            "Build version information.",
            "gauge",
        )
        .sample(build, process.started_unix_s),
    );
    all
}

/// `/api/v2/metrics/prometheus`.
pub fn prometheus(metrics: &PluginMetrics, process: &Process) -> String {
    let mut out = String::new();
    for family in families(metrics, process) {
        let name = &family.name;
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} {}\n",
            family.help, family.kind
        );
        for (labels, value) in &family.samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    out
}

/// `/api/v2/metrics`: every sample stamped `now_ns` (ns since the epoch),
/// where Fluent Bit stamps each with its last change.
pub fn text(metrics: &PluginMetrics, process: &Process, now_ns: u128) -> String {
    let stamp = rfc3339_ns(now_ns);
    let mut out = String::new();
    for family in families(metrics, process) {
        for (labels, value) in &family.samples {
            let _ = writeln!(out, "{stamp} {}{{{labels}}} = {value}", family.name);
        }
    }
    out
}

/// `2026-11-29T10:24:30.746712522Z`.
fn rfc3339_ns(ns: u128) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (y, mo, d) = utc_date(secs * 1000);
    let day_s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        day_s / 3600,
        day_s % 3600 / 60,
        day_s % 60,
        ns % 1_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use sluice_firelens::Counters;

    use super::*;
    use crate::fluentbit::plan::InputKind;
    use crate::fluentbit::plugin_metrics::{FilterCounts, OutputCounts};
    use crate::fluentbit::tests::plan_of;

    /// As the agent generates it (its unix and TCP inputs, the
    /// record_modifier that adds the task's metadata), with a user's
    /// grep filter, an aliased dummy input and a null output.
    const CONF: &str = "[INPUT]\n    Name forward\n    unix_path /var/run/fluent.sock\n[INPUT]\n    Name forward\n    Listen 0.0.0.0\n    Port 24224\n[INPUT]\n    Name dummy\n    Alias dum\n[FILTER]\n    Name record_modifier\n    Match *\n    Record ecs_cluster c1\n[FILTER]\n    Name grep\n    Match *\n    Exclude message x\n[OUTPUT]\n    Name null\n    Match *\n[OUTPUT]\n    Name cloudwatch_logs\n    Match app-*\n    Alias to_cw\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n";

    fn metrics() -> PluginMetrics {
        let metrics = PluginMetrics::new(&plan_of(CONF).unwrap());
        let forward = Arc::new(Counters::default());
        forward.unix.events.store(7, Ordering::Relaxed);
        forward.unix.bytes.store(700, Ordering::Relaxed);
        metrics.set_forward(forward);
        metrics.input(InputKind::Dummy(0)).unwrap().add(2, 56);
        let modifier = metrics.filter(0).unwrap();
        FilterCounts::add(&modifier.records, 9);
        FilterCounts::add(&modifier.bytes, 940);
        FilterCounts::add(&metrics.filter(1).unwrap().records, 9);
        FilterCounts::add(&metrics.filter(1).unwrap().drop_records, 1);
        OutputCounts::add(&metrics.output(0).unwrap().proc_records, 8);
        OutputCounts::add(&metrics.output(1).unwrap().retries, 1);
        metrics
    }

    const PROCESS: Process = Process {
        hostname: "ip-10-0-0-1",
        started_unix_s: 1_795_947_908,
        uptime_s: 3,
        logs: [1, 2, 30, 0, 0],
    };

    #[test]
    fn prometheus_text_in_fluent_bits_order() {
        let want = format!(
            "\
# HELP fluentbit_uptime Number of seconds that Fluent Bit has been running.
# TYPE fluentbit_uptime counter
fluentbit_uptime{{hostname=\"ip-10-0-0-1\"}} 3
# HELP fluentbit_hot_reloaded_times Collect the count of hot reloaded times.
# TYPE fluentbit_hot_reloaded_times counter
fluentbit_hot_reloaded_times{{hostname=\"ip-10-0-0-1\"}} 0
# HELP fluentbit_logger_logs_total Total number of logs
# TYPE fluentbit_logger_logs_total counter
fluentbit_logger_logs_total{{message_type=\"error\"}} 1
fluentbit_logger_logs_total{{message_type=\"warn\"}} 2
fluentbit_logger_logs_total{{message_type=\"info\"}} 30
fluentbit_logger_logs_total{{message_type=\"debug\"}} 0
fluentbit_logger_logs_total{{message_type=\"trace\"}} 0
# HELP fluentbit_input_bytes_total Number of input bytes.
# TYPE fluentbit_input_bytes_total counter
fluentbit_input_bytes_total{{name=\"forward.0\"}} 700
fluentbit_input_bytes_total{{name=\"forward.1\"}} 0
fluentbit_input_bytes_total{{name=\"dum\"}} 56
# HELP fluentbit_input_records_total Number of input records.
# TYPE fluentbit_input_records_total counter
fluentbit_input_records_total{{name=\"forward.0\"}} 7
fluentbit_input_records_total{{name=\"forward.1\"}} 0
fluentbit_input_records_total{{name=\"dum\"}} 2
# HELP fluentbit_filter_records_total Total number of new records processed.
# TYPE fluentbit_filter_records_total counter
fluentbit_filter_records_total{{name=\"record_modifier.0\"}} 9
fluentbit_filter_records_total{{name=\"grep.1\"}} 9
# HELP fluentbit_filter_bytes_total Total number of new bytes processed.
# TYPE fluentbit_filter_bytes_total counter
fluentbit_filter_bytes_total{{name=\"record_modifier.0\"}} 940
fluentbit_filter_bytes_total{{name=\"grep.1\"}} 0
# HELP fluentbit_filter_add_records_total Total number of new added records.
# TYPE fluentbit_filter_add_records_total counter
fluentbit_filter_add_records_total{{name=\"record_modifier.0\"}} 0
fluentbit_filter_add_records_total{{name=\"grep.1\"}} 0
# HELP fluentbit_filter_drop_records_total Total number of dropped records.
# TYPE fluentbit_filter_drop_records_total counter
fluentbit_filter_drop_records_total{{name=\"record_modifier.0\"}} 0
fluentbit_filter_drop_records_total{{name=\"grep.1\"}} 1
# HELP fluentbit_filter_drop_bytes_total Total number of dropped bytes.
# TYPE fluentbit_filter_drop_bytes_total counter
fluentbit_filter_drop_bytes_total{{name=\"record_modifier.0\"}} 0
fluentbit_filter_drop_bytes_total{{name=\"grep.1\"}} 0
# HELP fluentbit_output_proc_records_total Number of processed output records.
# TYPE fluentbit_output_proc_records_total counter
fluentbit_output_proc_records_total{{name=\"null.0\"}} 8
fluentbit_output_proc_records_total{{name=\"to_cw\"}} 0
# HELP fluentbit_output_proc_bytes_total Number of processed output bytes.
# TYPE fluentbit_output_proc_bytes_total counter
fluentbit_output_proc_bytes_total{{name=\"null.0\"}} 0
fluentbit_output_proc_bytes_total{{name=\"to_cw\"}} 0
# HELP fluentbit_output_errors_total Number of output errors.
# TYPE fluentbit_output_errors_total counter
fluentbit_output_errors_total{{name=\"null.0\"}} 0
fluentbit_output_errors_total{{name=\"to_cw\"}} 0
# HELP fluentbit_output_retries_total Number of output retries.
# TYPE fluentbit_output_retries_total counter
fluentbit_output_retries_total{{name=\"null.0\"}} 0
fluentbit_output_retries_total{{name=\"to_cw\"}} 1
# HELP fluentbit_output_retries_failed_total Number of abandoned batches because the maximum number of re-tries was reached.
# TYPE fluentbit_output_retries_failed_total counter
fluentbit_output_retries_failed_total{{name=\"null.0\"}} 0
fluentbit_output_retries_failed_total{{name=\"to_cw\"}} 0
# HELP fluentbit_output_dropped_records_total Number of dropped records.
# TYPE fluentbit_output_dropped_records_total counter
fluentbit_output_dropped_records_total{{name=\"null.0\"}} 0
fluentbit_output_dropped_records_total{{name=\"to_cw\"}} 0
# HELP fluentbit_output_retried_records_total Number of retried records.
# TYPE fluentbit_output_retried_records_total counter
fluentbit_output_retried_records_total{{name=\"null.0\"}} 0
fluentbit_output_retried_records_total{{name=\"to_cw\"}} 0
# HELP fluentbit_process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE fluentbit_process_start_time_seconds gauge
fluentbit_process_start_time_seconds{{hostname=\"ip-10-0-0-1\"}} 1795947908
# HELP fluentbit_build_info Build version information.
# TYPE fluentbit_build_info gauge
fluentbit_build_info{{hostname=\"ip-10-0-0-1\",version=\"{}\",os=\"linux\"}} 1795947908
",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(prometheus(&metrics(), &PROCESS), want);
    }

    #[test]
    fn text_lines_are_stamped_and_hold_the_same_samples() {
        let now_ns = 1_795_947_911_747_897_788;
        let text = text(&metrics(), &PROCESS, now_ns);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 39);
        assert_eq!(
            lines[0],
            "2026-11-29T10:25:11.747897788Z fluentbit_uptime{hostname=\"ip-10-0-0-1\"} = 3"
        );
        assert_eq!(
            lines[7],
            "2026-11-29T10:25:11.747897788Z fluentbit_input_bytes_total{name=\"forward.0\"} = 700"
        );
        assert_eq!(
            lines[22],
            "2026-11-29T10:25:11.747897788Z fluentbit_filter_drop_bytes_total{name=\"grep.1\"} = 0"
        );
        assert_eq!(
            lines[37],
            "2026-11-29T10:25:11.747897788Z fluentbit_process_start_time_seconds{hostname=\"ip-10-0-0-1\"} = 1795947908"
        );
    }

    /// A rewrite_tag filter has `emit_records`, and its emitter is an input
    /// that counts them.
    #[test]
    fn a_rewrite_tag_filter_adds_its_emitted_records_and_emitter() {
        let conf = "[INPUT]\n    Name forward\n    unix_path /var/run/fluent.sock\n[FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $log ^x x false\n[OUTPUT]\n    Name null\n    Match *\n";
        let metrics = PluginMetrics::new(&plan_of(conf).unwrap());
        FilterCounts::add(&metrics.filter(0).unwrap().emit_records, 4);
        let text = prometheus(&metrics, &PROCESS);
        let lines = |family: &str| -> Vec<&str> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect()
        };
        assert_eq!(
            lines("fluentbit_filter_emit_records_total"),
            ["fluentbit_filter_emit_records_total{name=\"rewrite_tag.0\"} 4"]
        );
        assert_eq!(
            lines("fluentbit_input_records_total"),
            [
                "fluentbit_input_records_total{name=\"forward.0\"} 0",
                "fluentbit_input_records_total{name=\"emitter_for_rewrite_tag.0\"} 4"
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("name", r#"a"b\c"#), r#"name="a\"b\\c""#);
        assert_eq!(label("name", "a\nb"), r#"name="a\nb""#);
    }

    #[test]
    fn stamps_are_rfc3339_with_nanoseconds() {
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ns(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }
}
