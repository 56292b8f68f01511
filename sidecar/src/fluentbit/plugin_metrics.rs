//! Fluent Bit's plugin metrics for a FireLens configuration: each input's
//! and output's counters under the names Fluent Bit gives its plugin
//! instances (`forward.0`, `tcp.2`, `cloudwatch_logs.1`, or an `Alias`),
//! served as `/api/v1/metrics` (JSON) and `/api/v1/metrics/prometheus`
//! (`src/http_server/api/v1/metrics.c`'s text), so that aws-for-fluent-bit's
//! `plugin-metrics-to-cloudwatch.conf` (an exec input running `curl`
//! against them) and CloudWatch metric filters on its records work.
//!
//! What each counts, in Sluice's terms:
//! - an input's `records` are the records it took; its `bytes` the bytes
//!   its clients sent (a forward input's frames as read, compressed or
//!   not) or a tail, tcp or exec input read, or the size of a dummy
//!   input's records (below). A second forward input on a listener an
//!   earlier one already has shares its counts with that one.
//! - a CloudWatch output's `proc_records` and `proc_bytes` are the events
//!   CloudWatch took and their messages' bytes, counted for the output
//!   that named their log stream first; `retries` are failed requests sent
//!   again, `retried_records` their events; `errors` requests CloudWatch
//!   refused for good (an invalid event alone), and `dropped_records` the
//!   events it refused (too old, too new, expired, invalid). Sluice sends
//!   a batch until CloudWatch has it, so `retries_failed` stays 0.
//! - a null or stdout output's `proc_records` are the records it took, and
//!   `proc_bytes` their size.
//! - a filter's `records` are the records that reached it (its `Match`
//!   took their tag); `drop_records` those it removed (grep, throttle, a
//!   lua filter's drop, a rewrite_tag rule that keeps no original),
//!   `drop_bytes` their size as their input made them; `add_records` the
//!   records a lua filter made beyond the one it was given; `bytes` the
//!   size of the records it changed (as changed), or kept after a
//!   rewrite_tag copy.
//!
//! A size is the record's as Fluent Bit holds it, msgpack
//! `[[time, {}], record]` ([`Record::msgpack_event_size`]; a few bytes
//! more where Fluent Bit's encoder writes a map with a 5-byte header, as
//! record_modifier, nest and aws filters do). Fluent Bit counts per chunk
//! what Sluice counts per record: the same figures for Docker's one-record
//! frames. A rewrite_tag filter's `emit_records` are its copies, which its
//! emitter input (`emitter_for_<filter>`, or its `Emitter_Name`, listed
//! after the configuration's inputs) counts in records and bytes. A
//! multiline filter is served by Sluice's joiner, outside the filters: it
//! has no metrics (and no emitter input).
//!
//! [`Record::msgpack_event_size`]: sluice_firelens::Record::msgpack_event_size

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_firelens::Counters;

use super::plan::{DropIn, FilterAction, InputKind};
use crate::streams::StreamKey;

/// Records and bytes an input took.
#[derive(Debug, Default)]
pub struct InputCounts {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

impl InputCounts {
    pub fn add(&self, records: usize, bytes: usize) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Where an input's counts are kept.
#[derive(Debug)]
enum InputSource {
    /// The forward server's, by transport.
    ForwardTcp,
    ForwardUnix,
    /// The input's own (tcp, tail, exec, dummy, health check).
    Own(InputKind, Arc<InputCounts>),
    /// The emitter of the `n`th filter (a rewrite_tag filter's copies).
    Emitter(usize),
}

/// One filter's counters, Fluent Bit's five, and a rewrite_tag filter's
/// copies (`emit_records`, and their bytes for its emitter input).
///
/// Only the router adds to them, through its `&mut`: one writer, so
/// [`FilterCounts::add`] is a plain load and store, not a locked add, on
/// a path every record of a drop-in takes; the admin endpoint only reads.
#[derive(Debug, Default)]
pub struct FilterCounts {
    pub records: AtomicU64,
    pub drop_records: AtomicU64,
    pub drop_bytes: AtomicU64,
    pub add_records: AtomicU64,
    pub bytes: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_bytes: AtomicU64,
    /// Whether the filter is a rewrite_tag filter (it has `emit_records`).
    rewrites_tags: bool,
}

impl FilterCounts {
    /// Adds `n` to `counter`; for the router only (see above).
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.store(
            counter.load(Ordering::Relaxed) + n as u64,
            Ordering::Relaxed,
        );
    }

    /// In the order Fluent Bit lists them.
    fn values(&self) -> Vec<(&'static str, u64)> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut values = vec![
            ("drop_records", load(&self.drop_records)),
            ("add_records", load(&self.add_records)),
            ("records", load(&self.records)),
            ("bytes", load(&self.bytes)),
            ("drop_bytes", load(&self.drop_bytes)),
        ];
        if self.rewrites_tags {
            values.push(("emit_records", load(&self.emit_records)));
        }
        values
    }
}

/// One output's counters, Fluent Bit's seven.
#[derive(Debug, Default)]
pub struct OutputCounts {
    pub proc_records: AtomicU64,
    pub proc_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub retries_failed: AtomicU64,
    pub dropped_records: AtomicU64,
    pub retried_records: AtomicU64,
}

impl OutputCounts {
    fn values(&self) -> [(&'static str, u64); 7] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("proc_records", load(&self.proc_records)),
            ("proc_bytes", load(&self.proc_bytes)),
            ("errors", load(&self.errors)),
            ("retries", load(&self.retries)),
            ("retries_failed", load(&self.retries_failed)),
            ("dropped_records", load(&self.dropped_records)),
            ("retried_records", load(&self.retried_records)),
        ]
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The plugin instances' counters, shared by the inputs, the router, the
/// CloudWatch shipper and the admin endpoint.
#[derive(Debug)]
pub struct PluginMetrics {
    inputs: Vec<(String, InputSource)>,
    /// The configuration's filters, but its multiline filters.
    filters: Vec<(String, FilterCounts)>,
    filters_may_drop: bool,
    outputs: Vec<(String, OutputCounts)>,
    /// The output each log stream's events are counted for: the first to
    /// name it.
    streams: Mutex<HashMap<StreamKey, usize>>,
    /// The forward server's counters, once it exists.
    forward: std::sync::OnceLock<Arc<Counters>>,
}

impl PluginMetrics {
    pub fn new(plan: &DropIn) -> PluginMetrics {
        let mut inputs: Vec<(String, InputSource)> = plan
            .input_names
            .iter()
            .map(|(name, kind)| {
                let source = match kind {
                    InputKind::ForwardTcp => InputSource::ForwardTcp,
                    InputKind::ForwardUnix => InputSource::ForwardUnix,
                    _ => InputSource::Own(*kind, Arc::default()),
                };
                (name.clone(), source)
            })
            .collect();
        // Fluent Bit makes a rewrite_tag filter's emitter input as it
        // starts the filter: after the configuration's inputs.
        for (i, filter) in plan.filters.iter().enumerate() {
            if let FilterAction::RewriteTag(r) = &filter.action {
                let name = r
                    .emitter_name
                    .clone()
                    .unwrap_or_else(|| format!("emitter_for_{}", filter.name));
                inputs.push((name, InputSource::Emitter(i)));
            }
        }
        let filters = plan
            .filters
            .iter()
            .map(|f| {
                let counts = FilterCounts {
                    rewrites_tags: matches!(f.action, FilterAction::RewriteTag(_)),
                    ..FilterCounts::default()
                };
                (f.name.clone(), counts)
            })
            .collect();
        let filters_may_drop = plan.filters.iter().any(|f| {
            matches!(
                f.action,
                FilterAction::Grep(_)
                    | FilterAction::Throttle(_)
                    | FilterAction::Lua(_)
                    | FilterAction::RewriteTag(_)
            )
        });
        PluginMetrics {
            inputs,
            filters,
            filters_may_drop,
            outputs: plan
                .outputs
                .iter()
                .map(|o| (o.name.clone(), OutputCounts::default()))
                .collect(),
            streams: Mutex::default(),
            forward: std::sync::OnceLock::new(),
        }
    }

    /// The forward server's counters, for the forward inputs' figures.
    pub fn set_forward(&self, counters: Arc<Counters>) {
        let _ = self.forward.set(counters);
    }

    /// The counts of the tcp (or health check), tail, exec or dummy input `kind`
    /// names; the forward inputs' are the forward server's.
    pub fn input(&self, kind: InputKind) -> Option<Arc<InputCounts>> {
        self.inputs.iter().find_map(|(_, source)| match source {
            InputSource::Own(k, counts) if *k == kind => Some(counts.clone()),
            _ => None,
        })
    }

    /// Whether a filter may remove records (grep, throttle, lua,
    /// rewrite_tag): only then does the router size each record as it
    /// comes, for the bytes a filter drops.
    pub fn filters_may_drop(&self) -> bool {
        self.filters_may_drop
    }

    /// The counters of the `index`th filter of the plan.
    pub fn filter(&self, index: usize) -> Option<&FilterCounts> {
        self.filters.get(index).map(|(_, c)| c)
    }

    /// The counters of the `index`th output.
    pub fn output(&self, index: usize) -> Option<&OutputCounts> {
        self.outputs.get(index).map(|(_, c)| c)
    }

    /// Output `index` sends to `key` (the router tells each stream it
    /// names; the first output to name one keeps it).
    pub fn names_stream(&self, key: &StreamKey, index: usize) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.entry(key.clone()).or_insert(index);
        }
    }

    /// The counters of the output whose stream `key` is.
    pub fn stream_output(&self, key: &StreamKey) -> Option<&OutputCounts> {
        let index = *self.streams.lock().ok()?.get(key)?;
        self.output(index)
    }

    /// Each input's records and bytes, in the configuration's order.
    pub(super) fn input_values(&self) -> Vec<(&str, [(&'static str, u64); 2])> {
        let forward = self.forward.get();
        self.inputs
            .iter()
            .map(|(name, source)| {
                let (records, bytes) = match (source, forward) {
                    (InputSource::ForwardTcp, Some(f)) => (&f.tcp.events, &f.tcp.bytes),
                    (InputSource::ForwardUnix, Some(f)) => (&f.unix.events, &f.unix.bytes),
                    (InputSource::Own(_, c), _) => (&c.records, &c.bytes),
                    (InputSource::Emitter(i), _) => {
                        let c = &self.filters[*i].1;
                        (&c.emit_records, &c.emit_bytes)
                    }
                    (_, None) => return (name.as_str(), [("records", 0), ("bytes", 0)]),
                };
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                (
                    name.as_str(),
                    [("records", load(records)), ("bytes", load(bytes))],
                )
            })
            .collect()
    }

    /// Each filter's counters (but a multiline filter's), in the
    /// configuration's order.
    pub(super) fn filter_values(&self) -> Vec<(&str, Vec<(&'static str, u64)>)> {
        self.filters
            .iter()
            .map(|(name, c)| (name.as_str(), c.values()))
            .collect()
    }

    /// Each output's counters, in the configuration's order.
    pub(super) fn output_values(&self) -> Vec<(&str, [(&'static str, u64); 7])> {
        self.outputs
            .iter()
            .map(|(name, c)| (name.as_str(), c.values()))
            .collect()
    }

    /// `/api/v1/metrics`: `{"input":{name:{"records":N,"bytes":N}},
    /// "filter":{name:{"records":N,...}},"output":{name:{"proc_records":N,...}}}`.
    pub fn json(&self) -> String {
        let section = |entries: Vec<(&str, Vec<(&'static str, u64)>)>| {
            let map: serde_json::Map<String, serde_json::Value> = entries
                .into_iter()
                .map(|(name, values)| {
                    let values: serde_json::Map<String, serde_json::Value> = values
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.into()))
                        .collect();
                    (name.to_string(), values.into())
                })
                .collect();
            serde_json::Value::Object(map)
        };
        let inputs = self
            .input_values()
            .into_iter()
            .map(|(name, values)| (name, values.to_vec()))
            .collect();
        let filters = self.filter_values();
        let outputs = self
            .output_values()
            .into_iter()
            .map(|(name, values)| (name, values.to_vec()))
            .collect();
        serde_json::json!({"input": section(inputs), "filter": section(filters), "output": section(outputs)})
            .to_string()
    }

    /// `/api/v1/metrics/prometheus` as Fluent Bit writes it: one line per
    /// plugin and counter, `fluentbit_<input|filter|output>_<counter>_total{name=
    /// "<instance>"} <value> <now, ms>`, sorted, each counter's first line
    /// after its `# HELP` and `# TYPE`; then the uptime, the start time and
    /// the build.
    pub fn prometheus(&self, now_ms: u64, started_unix_s: u64, uptime_s: u64) -> String {
        let mut lines = Vec::new();
        let mut add = |kind: &str, name: &str, values: &[(&str, u64)]| {
            for (counter, value) in values {
                lines.push(format!(
                    "fluentbit_{kind}_{counter}_total{{name=\"{name}\"}} {value} {now_ms}\n"
                ));
            }
        };
        for (name, values) in self.input_values() {
            add("input", name, &values);
        }
        for (name, values) in self.filter_values() {
            add("filter", name, &values);
        }
        for (name, values) in self.output_values() {
            add("output", name, &values);
        }
        lines.sort();
        let mut out = String::new();
        let mut last_metric = "";
        for line in &lines {
            let metric = &line[..line.find('{').unwrap_or(0)];
            if metric != last_metric {
                let _ = write!(
                    out,
                    "# HELP {metric} {}\n# TYPE {metric} counter\n",
                    help(metric)
                );
                last_metric = metric;
            }
            out.push_str(line);
        }
        let _ = write!(
            out,
            "# HELP fluentbit_uptime Number of seconds that Fluent Bit has been running.\n# TYPE fluentbit_uptime counter\nfluentbit_uptime {uptime_s}\n\
             # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started_unix_s}\n\
             # HELP fluentbit_build_info Build version information.\n# TYPE fluentbit_build_info gauge\nfluentbit_build_info{{version=\"{}\",edition=\"Sluice\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Each input counter and Fluent Bit's `# HELP` text of it, in the order
/// its v2 metrics list them.
pub(super) const INPUT_COUNTERS: &[(&str, &str)] = &[
    ("bytes", "Number of input bytes."),
    ("records", "Number of input records."),
];

/// [`INPUT_COUNTERS`] of a filter (v2's texts: v1 has none of its own).
pub(super) const FILTER_COUNTERS: &[(&str, &str)] = &[
    ("records", "Total number of new records processed."),
    ("bytes", "Total number of new bytes processed."),
    ("add_records", "Total number of new added records."),
    ("drop_records", "Total number of dropped records."),
    ("drop_bytes", "Total number of dropped bytes."),
    ("emit_records", "Total number of emitted records"),
];

/// [`INPUT_COUNTERS`] of an output.
pub(super) const OUTPUT_COUNTERS: &[(&str, &str)] = &[
    ("proc_records", "Number of processed output records."),
    ("proc_bytes", "Number of processed output bytes."),
    ("errors", "Number of output errors."),
    ("retries", "Number of output retries."),
    (
        "retries_failed",
        "Number of abandoned batches because the maximum number of re-tries was reached.",
    ),
    ("dropped_records", "Number of dropped records."),
    ("retried_records", "Number of retried records."),
];

/// Fluent Bit's v1 `# HELP` text of a counter: an input's or output's
/// own, and a generic one for a filter's.
fn help(metric: &str) -> &'static str {
    let own = |prefix: &str, table: &[(&str, &'static str)]| {
        let counter = metric.strip_prefix(prefix)?.strip_suffix("_total")?;
        table.iter().find(|(c, _)| *c == counter).map(|(_, h)| *h)
    };
    own("fluentbit_input_", INPUT_COUNTERS)
        .or_else(|| own("fluentbit_output_", OUTPUT_COUNTERS))
        .unwrap_or("Fluentbit metrics.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::tests::plan_of;

    /// v1's help texts: an input's and output's own, a filter's generic.
    #[test]
    fn v1_help_texts() {
        assert_eq!(
            help("fluentbit_input_bytes_total"),
            "Number of input bytes."
        );
        assert_eq!(
            help("fluentbit_output_retries_total"),
            "Number of output retries."
        );
        assert_eq!(help("fluentbit_filter_records_total"), "Fluentbit metrics.");
        assert_eq!(help("fluentbit_input_records"), "Fluentbit metrics.");
    }

    /// As the agent generates it, with a health check, and a user's exec
    /// input and aliased CloudWatch output.
    const CONF: &str = "[INPUT]\n    Name forward\n    unix_path /var/run/fluent.sock\n[INPUT]\n    Name forward\n    Listen 0.0.0.0\n    Port 24224\n[INPUT]\n    Name tcp\n    Tag firelens-healthcheck\n    Listen 127.0.0.1\n    Port 8877\n[INPUT]\n    Name exec\n    Command date\n    Tag fb_metrics\n[OUTPUT]\n    Name null\n    Match firelens-healthcheck\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    Alias to_cw\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n";

    #[test]
    fn served_as_fluent_bit_serves_them() {
        let plan = plan_of(CONF).unwrap();
        let metrics = PluginMetrics::new(&plan);
        let forward = Arc::new(Counters::default());
        forward.unix.events.store(7, Ordering::Relaxed);
        forward.unix.bytes.store(700, Ordering::Relaxed);
        metrics.set_forward(forward);
        let health: std::net::SocketAddr = "127.0.0.1:8877".parse().unwrap();
        metrics.input(InputKind::Tcp(health)).unwrap().add(1, 20);
        metrics.input(InputKind::Exec(0)).unwrap().add(3, 90);
        let key = StreamKey::new("g".into(), "s".into());
        metrics.names_stream(&key, 1);
        let cw = metrics.stream_output(&key).unwrap();
        OutputCounts::add(&cw.proc_records, 9);
        OutputCounts::add(&cw.proc_bytes, 512);
        OutputCounts::add(&cw.retries, 1);
        OutputCounts::add(&cw.retried_records, 4);
        let text = metrics.prometheus(1_700_000_000_123, 1_699_999_990, 10);
        let want = "\
# HELP fluentbit_input_bytes_total Number of input bytes.
# TYPE fluentbit_input_bytes_total counter
fluentbit_input_bytes_total{name=\"exec.3\"} 90 1700000000123
fluentbit_input_bytes_total{name=\"forward.0\"} 700 1700000000123
fluentbit_input_bytes_total{name=\"forward.1\"} 0 1700000000123
fluentbit_input_bytes_total{name=\"tcp.2\"} 20 1700000000123
# HELP fluentbit_input_records_total Number of input records.
# TYPE fluentbit_input_records_total counter
fluentbit_input_records_total{name=\"exec.3\"} 3 1700000000123
fluentbit_input_records_total{name=\"forward.0\"} 7 1700000000123
fluentbit_input_records_total{name=\"forward.1\"} 0 1700000000123
fluentbit_input_records_total{name=\"tcp.2\"} 1 1700000000123
# HELP fluentbit_output_dropped_records_total Number of dropped records.
# TYPE fluentbit_output_dropped_records_total counter
fluentbit_output_dropped_records_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_dropped_records_total{name=\"to_cw\"} 0 1700000000123
# HELP fluentbit_output_errors_total Number of output errors.
# TYPE fluentbit_output_errors_total counter
fluentbit_output_errors_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_errors_total{name=\"to_cw\"} 0 1700000000123
# HELP fluentbit_output_proc_bytes_total Number of processed output bytes.
# TYPE fluentbit_output_proc_bytes_total counter
fluentbit_output_proc_bytes_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_proc_bytes_total{name=\"to_cw\"} 512 1700000000123
# HELP fluentbit_output_proc_records_total Number of processed output records.
# TYPE fluentbit_output_proc_records_total counter
fluentbit_output_proc_records_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_proc_records_total{name=\"to_cw\"} 9 1700000000123
# HELP fluentbit_output_retried_records_total Number of retried records.
# TYPE fluentbit_output_retried_records_total counter
fluentbit_output_retried_records_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_retried_records_total{name=\"to_cw\"} 4 1700000000123
# HELP fluentbit_output_retries_failed_total Number of abandoned batches because the maximum number of re-tries was reached.
# TYPE fluentbit_output_retries_failed_total counter
fluentbit_output_retries_failed_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_retries_failed_total{name=\"to_cw\"} 0 1700000000123
# HELP fluentbit_output_retries_total Number of output retries.
# TYPE fluentbit_output_retries_total counter
fluentbit_output_retries_total{name=\"null.0\"} 0 1700000000123
fluentbit_output_retries_total{name=\"to_cw\"} 1 1700000000123
# HELP fluentbit_uptime Number of seconds that Fluent Bit has been running.
# TYPE fluentbit_uptime counter
fluentbit_uptime 10
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1699999990
# HELP fluentbit_build_info Build version information.
# TYPE fluentbit_build_info gauge
";
        assert_eq!(
            text,
            format!(
                "{want}fluentbit_build_info{{version=\"{}\",edition=\"Sluice\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            metrics.json(),
            r#"{"filter":{},"input":{"exec.3":{"bytes":90,"records":3},"forward.0":{"bytes":700,"records":7},"forward.1":{"bytes":0,"records":0},"tcp.2":{"bytes":20,"records":1}},"output":{"null.0":{"dropped_records":0,"errors":0,"proc_bytes":0,"proc_records":0,"retried_records":0,"retries":0,"retries_failed":0},"to_cw":{"dropped_records":0,"errors":0,"proc_bytes":512,"proc_records":9,"retried_records":4,"retries":1,"retries_failed":0}}}"#
        );
    }
}
