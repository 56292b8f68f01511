//! The sidecar's own counters, and their Prometheus text exposition for
//! `/metrics` (format 0.0.4): `sluice_..._total` counters, gauges, and
//! per-route request statistics as counters and summaries, in base units
//! (seconds, bytes).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_firelens::{Counters, MemoryBudget};

use crate::cloudwatch::ship::ShipCounters;
use crate::spool::SpoolShared;
use crate::stats::{RouteTotals, STATUS_CLASSES};

/// Counters of the output stage.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    pub access_records: AtomicU64,
    pub app_lines: AtomicU64,
    /// Access-record fields the redactor changed (a path with its query,
    /// a URL header, a pattern match).
    pub redactions: AtomicU64,
    /// Access records not written because of sampling.
    pub sampled_out: AtomicU64,
    /// Requests counted under `other` by the cardinality guard.
    pub stats_folded: AtomicU64,
    pub stats_events: AtomicU64,
    /// Bytes of events written, plus CloudWatch's 26 per event: what
    /// ingestion is billed, by kind (access, app, stats).
    pub ingest_bytes: [AtomicU64; 3],
    /// FireLens drop-in: records a grep filter dropped.
    pub dropin_filtered: AtomicU64,
    /// FireLens drop-in: records whose tag no output matches (Fluent Bit
    /// drops them too; counted and logged once per tag).
    pub dropin_unrouted: AtomicU64,
    /// FireLens drop-in: records that only `null` outputs took.
    pub dropin_discarded: AtomicU64,
    /// Unix ms of the output stage's last pass (for /healthz).
    pub last_progress_ms: AtomicU64,
}

/// The kinds of [`PipelineCounters::ingest_bytes`], in order.
pub const INGEST_KINDS: [&str; 3] = ["access", "app", "stats"];

/// CloudWatch Logs bills each event's UTF-8 bytes plus this.
pub const EVENT_OVERHEAD: u64 = 26;

impl PipelineCounters {
    /// Counts one written event of `kind` (an index of [`INGEST_KINDS`]).
    pub fn ingested(&self, kind: usize, message_bytes: usize) {
        if let Some(c) = self.ingest_bytes.get(kind) {
            c.fetch_add(message_bytes as u64 + EVENT_OVERHEAD, Ordering::Relaxed);
        }
    }
}

/// Everything /metrics reports.
pub struct Sources {
    pub input: Arc<Counters>,
    pub budget: Arc<MemoryBudget>,
    pub pipeline: Arc<PipelineCounters>,
    pub ship: Option<Arc<ShipCounters>>,
    pub spool: Option<Arc<SpoolShared>>,
    /// Per-route figures: /metrics shows the totals since start.
    pub routes: Arc<Mutex<RouteTotals>>,
    /// Frames queued between the listeners and the output stage.
    pub queue_depth: Box<dyn Fn() -> u64 + Send + Sync>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A label value, escaped as the text format requires.
pub(crate) fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// The whole `/metrics` page.
pub fn render(s: &Sources) -> String {
    let mut e = Exposition(String::with_capacity(8 << 10));
    let i = &s.input;
    e.single(
        "sluice_forward_connections_accepted_total",
        "counter",
        "Forward connections accepted.",
        load(&i.connections_accepted),
    );
    e.single(
        "sluice_forward_connections_open",
        "gauge",
        "Forward connections open now.",
        load(&i.connections_open),
    );
    e.single(
        "sluice_forward_frames_total",
        "counter",
        "Forward frames decoded.",
        load(&i.frames),
    );
    e.single(
        "sluice_forward_events_total",
        "counter",
        "Events received.",
        load(&i.events),
    );
    e.single(
        "sluice_forward_acks_total",
        "counter",
        "Chunks acked.",
        load(&i.acks),
    );
    e.single(
        "sluice_forward_idle_timeouts_total",
        "counter",
        "Connections closed after the idle timeout.",
        load(&i.idle_timeouts),
    );
    e.single(
        "sluice_forward_handshake_refusals_total",
        "counter",
        "TCP clients refused by the shared_key handshake.",
        load(&i.handshake_refusals),
    );
    e.single(
        "sluice_forward_buffer_waits_total",
        "counter",
        "Times a connection waited for limits.memory to hold the part of a frame it had read.",
        load(&i.buffer_waits),
    );
    e.single(
        "sluice_forward_buffer_timeouts_total",
        "counter",
        "Connections closed after that wait passed 60 s while partial frames held half the budget.",
        load(&i.buffer_timeouts),
    );
    e.single(
        "sluice_forward_skipped_events_total",
        "counter",
        "Non-log events (fluent signals) skipped.",
        load(&i.skipped_non_logs),
    );
    e.family(
        "sluice_forward_frame_errors_total",
        "counter",
        "Frames rejected, by kind of problem.",
    );
    if let Ok(errors) = i.frame_errors.lock() {
        for (kind, n) in errors.iter() {
            e.sample(
                "sluice_forward_frame_errors_total",
                &format!("kind=\"{}\"", label(kind)),
                n,
            );
        }
    }
    e.single(
        "sluice_pipeline_queue_frames",
        "gauge",
        "Frames waiting for the output stage.",
        (s.queue_depth)(),
    );
    e.single(
        "sluice_memory_budget_bytes",
        "gauge",
        "The memory budget (limits.memory).",
        s.budget.total(),
    );
    e.single(
        "sluice_memory_budget_in_use_bytes",
        "gauge",
        "Bytes of the memory budget held by buffered events (estimates).",
        s.budget.in_use(),
    );
    if let Some(live) = s.budget.heap_bytes() {
        e.single(
            "sluice_heap_live_bytes",
            "gauge",
            "Heap bytes allocated and not freed, as the allocator counts them; connections stop reading while it holds 5/8 of limits.memory beyond what start-up needed.",
            live,
        );
        e.single(
            "sluice_heap_peak_bytes",
            "gauge",
            "The most heap bytes allocated and not freed at once since start.",
            crate::heap::peak_bytes() as u64,
        );
    }
    e.family(
        "sluice_log_messages_total",
        "counter",
        "Sluice's own log lines written, by level.",
    );
    let logs = crate::log_counts::LOG_COUNTS.get();
    for (level, n) in crate::log_counts::LEVELS.iter().zip(logs) {
        e.sample(
            "sluice_log_messages_total",
            &format!("level=\"{level}\""),
            n,
        );
    }

    let p = &s.pipeline;
    e.family(
        "sluice_lines_total",
        "counter",
        "Lines classified, by kind.",
    );
    e.sample(
        "sluice_lines_total",
        "kind=\"access\"",
        load(&p.access_records),
    );
    e.sample("sluice_lines_total", "kind=\"app\"", load(&p.app_lines));
    e.single(
        "sluice_redactions_total",
        "counter",
        "Access-record fields changed by redaction.",
        load(&p.redactions),
    );
    e.single(
        "sluice_sampled_out_total",
        "counter",
        "Access records not written because of sampling (statistics count them).",
        load(&p.sampled_out),
    );
    e.family(
        "sluice_ingest_bytes_total",
        "counter",
        "UTF-8 bytes of the events written plus 26 each (what CloudWatch Logs bills for ingestion), by kind.",
    );
    for (kind, bytes) in INGEST_KINDS.iter().zip(&p.ingest_bytes) {
        e.sample(
            "sluice_ingest_bytes_total",
            &format!("kind=\"{kind}\""),
            load(bytes),
        );
    }
    e.single(
        "sluice_firelens_filtered_total",
        "counter",
        "FireLens drop-in: records a grep filter of the Fluent Bit configuration dropped.",
        load(&p.dropin_filtered),
    );
    e.single(
        "sluice_firelens_unrouted_total",
        "counter",
        "FireLens drop-in: records whose tag no output of the Fluent Bit configuration matches.",
        load(&p.dropin_unrouted),
    );
    e.single(
        "sluice_firelens_discarded_total",
        "counter",
        "FireLens drop-in: records only null outputs took (the health check's).",
        load(&p.dropin_discarded),
    );
    e.single(
        "sluice_stats_folded_requests_total",
        "counter",
        "Requests counted under route \"other\" by the cardinality guard.",
        load(&p.stats_folded),
    );
    e.single(
        "sluice_stats_events_total",
        "counter",
        "EMF statistics events written.",
        load(&p.stats_events),
    );

    if let Some(c) = &s.ship {
        e.single(
            "sluice_cloudwatch_requests_total",
            "counter",
            "PutLogEvents requests sent.",
            load(&c.requests),
        );
        e.single(
            "sluice_cloudwatch_retries_total",
            "counter",
            "PutLogEvents requests retried.",
            load(&c.retries),
        );
        e.single(
            "sluice_cloudwatch_events_total",
            "counter",
            "Events CloudWatch accepted.",
            load(&c.events_delivered),
        );
        e.single(
            "sluice_cloudwatch_bytes_total",
            "counter",
            "Message bytes CloudWatch accepted.",
            load(&c.bytes_delivered),
        );
        e.single(
            "sluice_cloudwatch_batches_in_flight",
            "gauge",
            "Batches handed to the shipper and not done.",
            load(&c.outstanding),
        );
        e.family(
            "sluice_cloudwatch_rejected_events_total",
            "counter",
            "Events CloudWatch refused, by reason.",
        );
        for (reason, counter) in [
            ("too_new", &c.rejected_too_new),
            ("too_old", &c.rejected_too_old),
            ("expired", &c.rejected_expired),
            ("invalid", &c.rejected_invalid),
        ] {
            e.sample(
                "sluice_cloudwatch_rejected_events_total",
                &format!("reason=\"{reason}\""),
                load(counter),
            );
        }
        e.single(
            "sluice_cloudwatch_groups_created_total",
            "counter",
            "Log groups created.",
            load(&c.groups_created),
        );
        e.single(
            "sluice_cloudwatch_streams_created_total",
            "counter",
            "Log streams created.",
            load(&c.streams_created),
        );
    }

    if let Some(spool) = &s.spool {
        let (bytes, segments) = spool.usage();
        let c = &spool.counters;
        e.single(
            "sluice_spool_bytes",
            "gauge",
            "Bytes of spool segments on disk.",
            bytes,
        );
        e.single(
            "sluice_spool_segments",
            "gauge",
            "Spool segments on disk.",
            segments as u64,
        );
        for (name, help, counter) in [
            (
                "sluice_spool_replayed_events_total",
                "Events read back at start from an earlier run's segments.",
                &c.replayed_events,
            ),
            (
                "sluice_spool_damaged_segments_total",
                "Segments found torn or corrupt at start, cut at the damage.",
                &c.damaged_segments,
            ),
            (
                "sluice_spool_truncated_bytes_total",
                "Bytes cut from damaged segments.",
                &c.truncated_bytes,
            ),
            (
                "sluice_spool_write_errors_total",
                "Spool writes or fsyncs that failed (a full disk, an I/O error).",
                &c.write_errors,
            ),
            (
                "sluice_spool_full_waits_total",
                "Waits for room in the spool (max_size reached or a write failed).",
                &c.full_waits,
            ),
            (
                "sluice_spool_segments_deleted_total",
                "Segments deleted once CloudWatch had all their events.",
                &c.segments_deleted,
            ),
        ] {
            e.single(name, "counter", help, load(counter));
        }
    }

    // Merged under the lock, written after it: the output thread counts
    // into the same tables.
    let table = s.routes.lock().map(|t| t.since_start());
    if let Ok(table) = table {
        let routes = table.sorted();
        let ids: Vec<String> = routes
            .iter()
            .map(|(k, _)| {
                format!(
                    "service=\"{}\",route=\"{}\"",
                    label(&k.service),
                    label(&k.route)
                )
            })
            .collect();
        e.family(
            "sluice_route_requests_total",
            "counter",
            "Requests per route and status class (0: no response).",
        );
        for (id, (_, stats)) in ids.iter().zip(&routes) {
            for (class, n) in STATUS_CLASSES.iter().zip(stats.status) {
                if n > 0 {
                    e.sample(
                        "sluice_route_requests_total",
                        &format!("{id},status_class=\"{class}\""),
                        n,
                    );
                }
            }
        }
        e.family(
            "sluice_route_received_bytes_total",
            "counter",
            "Request bytes received per route.",
        );
        for (id, (_, stats)) in ids.iter().zip(&routes) {
            e.sample(
                "sluice_route_received_bytes_total",
                id,
                stats.bytes_received,
            );
        }
        e.family(
            "sluice_route_sent_bytes_total",
            "counter",
            "Response bytes sent per route.",
        );
        for (id, (_, stats)) in ids.iter().zip(&routes) {
            e.sample("sluice_route_sent_bytes_total", id, stats.bytes_sent);
        }
        for (name, help, pick) in [
            (
                "sluice_route_request_duration_seconds",
                "Request duration per route (quantiles within 1 %).",
                0,
            ),
            (
                "sluice_route_upstream_service_time_seconds",
                "Upstream service time per route (quantiles within 1 %).",
                1,
            ),
        ] {
            e.family(name, "summary", help);
            for (id, (_, stats)) in ids.iter().zip(&routes) {
                let sketch = if pick == 0 {
                    &stats.duration
                } else {
                    &stats.upstream
                };
                if sketch.count() == 0 {
                    continue;
                }
                for q in [0.5, 0.9, 0.99] {
                    let v = sketch.quantile(q).unwrap_or(0.0) / 1000.0;
                    e.sample(name, &format!("{id},quantile=\"{q}\""), v);
                }
                e.sample(&format!("{name}_count"), id, sketch.count());
                e.sample(&format!("{name}_sum"), id, sketch.sum() as f64 / 1000.0);
            }
        }
    }
    e.0
}
