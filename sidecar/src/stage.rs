//! The output stage of `sluice run`: one plain thread that takes the
//! pipeline's deliveries, joins Docker's split lines and stack traces, names
//! each event's container, filters and routes it, renders it, counts its
//! statistics, samples, hands it to the sink, and then accepts the
//! deliveries (which acks their chunks) once the sink has their events.
//!
//! A delivery that asked for an ack is accepted only when every line of it
//! has been written: lines held by the multiline joiner hold its ack, and
//! deliveries are accepted in order.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sluice_firelens::{now_ns, Delivery, Event, MemoryBudget, PartialAssembler, Record};
use sluice_parser::json_out::Escaped;
use sluice_parser::{Classified, Classifier};
use tokio::sync::mpsc;

use crate::config::{AppFormat, Config, OutputType};
use crate::ecs::{self, split_firelens_tag, Identity, LastTag};
use crate::event::record_line;
use crate::fluentbit::plugin_metrics::OutputCounts;
use crate::fluentbit::route::{Rewritten, Router};
use crate::fluentbit::template::TemplateInput;
use crate::metrics::PipelineCounters;
use crate::multiline::Joiner;
use crate::output::Sink;
use crate::render::{EventMeta, LineRenderer, MemberCache, Metadata, Rendered};
use crate::stats::sampling::{self, SamplingConfig};
use crate::stats::{Aggregator, RouteTotals};
use crate::streams::{CachedTemplates, StreamKey, StreamKind, StreamTemplates, StreamVars};

/// Frames queued between the listeners and the output. Small: a frame can
/// hold thousands of events, and a full queue is what pushes back on clients.
/// Four, not 64: what waits here was decoded on another core and goes cold;
/// with 64, a burst of frames of 1,000 held about 25 MiB more at its peak
/// (45 against 70 MiB) for the same CPU per event (BENCHMARKS.md, issue 14,
/// seventh part).
pub const PIPELINE_FRAMES: usize = 4;

/// Docker splits lines at 16 KiB; joined lines longer than this go out in
/// pieces (CloudWatch's event limit is 1 MiB).
const MAX_JOINED_LINE: usize = 1 << 20;
/// A split line whose last part has not come for this long goes out as is.
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Tags logged as unrouted at most; past this they are only counted.
const MAX_UNROUTED_TAGS_LOGGED: usize = 64;

/// Everything the output thread keeps between events.
pub struct OutputStage {
    renderer: LineRenderer,
    /// Stack traces joined into one event (`[multiline]`).
    joiner: Option<Joiner>,
    /// The events the joiner lets out for one line, kept between lines.
    released: Vec<Event>,
    /// Set when Sluice stops: held lines go out at the next tick.
    stopping: Arc<AtomicBool>,
    /// Container names and the task's ECS keys (apart from the writer, so
    /// that a name can be borrowed while the writer is busy).
    identity: Identity,
    out: Writer,
}

/// What routes, counts and writes rendered events: apart from the renderer,
/// so that a classified line (which borrows the renderer) can be written.
struct Writer {
    /// Sluice's own `[cloudwatch]` templates: every event's route, or in
    /// drop-in mode that of events no output of the file takes.
    templates: CachedTemplates,
    /// FireLens drop-in mode: the Fluent Bit configuration's routes.
    router: Option<Router>,
    /// Tags already logged as matching no output (drop-in).
    unrouted_tags: Vec<String>,
    /// Drop-in mode: the statistics stream last counted into, kept for
    /// the next record of the same group and task.
    drop_in_stats_key: Option<StreamKey>,
    /// Drop-in mode: the last record's members as rendered.
    members: MemberCache,
    stats: Option<Aggregator>,
    sampling: Option<SamplingConfig>,
    counters: Arc<PipelineCounters>,
    /// The container name and task id of the last tag seen.
    tags: LastTag,
    text: String,
    written: u64,
    /// Set while a rewrite_tag copy is written after its record was
    /// counted: an access record copied to a second tag is still one
    /// request in the statistics.
    counted_already: bool,
}

/// What is worked out once for an event before it is written besides how
/// its line was classified: the record key the line came from, and its
/// container's name.
struct Seen<'a> {
    line_key: Option<&'static str>,
    container: &'a str,
}

impl OutputStage {
    /// The stage the configuration asks for.
    pub fn new(
        full: Config,
        router: Option<Router>,
        identity: Identity,
        budget: Arc<MemoryBudget>,
        counters: Arc<PipelineCounters>,
        totals: Arc<Mutex<RouteTotals>>,
    ) -> OutputStage {
        let templates = CachedTemplates::new(StreamTemplates {
            log_group: full.cloudwatch.log_group.clone(),
            access_stream: full.cloudwatch.access_stream.clone(),
            app_stream: full.cloudwatch.app_stream.clone(),
            stats_stream: full.cloudwatch.stats_stream.clone(),
        });
        let joiner = full.multiline.clone().map(|m| {
            let wait = i64::try_from(m.wait.as_nanos()).unwrap_or(i64::MAX);
            Joiner::new(m.rules, wait, m.max_bytes, Some(budget))
        });
        let drop_in = router.is_some();
        OutputStage {
            joiner,
            released: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
            identity,
            out: Writer {
                templates,
                router,
                unrouted_tags: Vec::new(),
                drop_in_stats_key: None,
                members: MemberCache::default(),
                stats: full
                    .stats
                    .clone()
                    .map(|c| Aggregator::new(c, now_ns().div_euclid(1_000_000), totals)),
                sampling: full.sampling.clone(),
                counters,
                tags: LastTag::default(),
                text: String::with_capacity(1 << 12),
                written: 0,
                counted_already: false,
            },
            renderer: renderer(full, drop_in),
        }
    }

    /// One event from the pipeline (Docker's partial messages joined).
    /// `ack`: its delivery's sequence number when that asked for an ack.
    pub fn write(
        &mut self,
        mut event: Event,
        ack: Option<u64>,
        now: i64,
        sink: &mut Sink,
    ) -> io::Result<()> {
        let out = &mut self.out;
        let routed = match &mut out.router {
            Some(router) => {
                // The configuration's filters decide, and its
                // record_modifier adds the ECS keys.
                let (renderer, identity) = (&self.renderer, &self.identity);
                let tag = &event.tag;
                // (A rewritten copy's container is still the one this
                // record's tag names.)
                let is_access = |line: &str, record: &Record| {
                    let container = identity.container_name(split_firelens_tag(tag), record);
                    renderer.is_access_line(line, &container)
                };
                let mut rewritten = Vec::new();
                let kept = router.filter(
                    tag,
                    &mut event.record,
                    &mut event.time_ns,
                    &is_access,
                    &mut rewritten,
                );
                if !rewritten.is_empty() {
                    return self.write_rewritten(kept.then_some(event), rewritten, ack, now, sink);
                }
                if !kept {
                    out.counters.dropin_filtered.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                !router.outputs_for(&event.tag).is_empty()
            }
            None => false,
        };
        self.write_filtered(event, routed, ack, now, sink)
    }

    /// A record a rewrite_tag filter copied under new tags: the original
    /// (when its rule kept it), then each copy, as events of their tags.
    fn write_rewritten(
        &mut self,
        original: Option<Event>,
        rewritten: Vec<Rewritten>,
        ack: Option<u64>,
        now: i64,
        sink: &mut Sink,
    ) -> io::Result<()> {
        let copies = rewritten.into_iter().map(|r| Event {
            tag: Arc::from(r.tag),
            time_ns: r.time_ns,
            record: r.record,
        });
        let mut written = Ok(());
        for (n, event) in original.into_iter().chain(copies).enumerate() {
            let routed = self
                .out
                .router
                .as_mut()
                .is_some_and(|router| !router.outputs_for(&event.tag).is_empty());
            // The first event written is the one the statistics count.
            self.out.counted_already = n > 0;
            written = self.write_filtered(event, routed, ack, now, sink);
            if written.is_err() {
                break;
            }
        }
        self.out.counted_already = false;
        written
    }

    /// An event past the drop-in filters (`routed`: an output of the
    /// configuration takes its tag): named, classified, and written, or
    /// held for the multiline joiner.
    fn write_filtered(
        &mut self,
        mut event: Event,
        routed: bool,
        ack: Option<u64>,
        now: i64,
        sink: &mut Sink,
    ) -> io::Result<()> {
        if !routed {
            self.identity.add_task_keys(&mut event.record);
        }
        let identity = &self.identity;
        let container = identity.container_name(self.out.tags.split(&event.tag), &event.record);
        let (line, line_key) = log_line(&event.record);
        let mut classified = Classified::App(&line);
        self.renderer
            .classify_into(&line, Some(&container), &mut classified);
        // Access records are never joined: classified (once) and written.
        let joiner = match &mut self.joiner {
            Some(joiner) if !matches!(classified, Classified::Access(_)) => joiner,
            _ => {
                let seen = Seen {
                    line_key,
                    container: &container,
                };
                let renderer = &self.renderer;
                let classified = &mut classified;
                return self
                    .out
                    .emit(renderer, identity, &event, classified, seen, sink);
            }
        };
        // An application line: its classification borrows from the event,
        // which the joiner takes.
        drop(classified);
        joiner.push_into(event, ack, now, &mut self.released);
        let mut written = Ok(());
        for ready in self.released.drain(..) {
            if written.is_ok() {
                written = self
                    .out
                    .emit_app_line(&self.renderer, identity, &ready, sink);
            }
        }
        written
    }

    /// After the last line of every delivery: when it asked for an ack,
    /// the lines held only because a stack trace might follow go out; the
    /// lines still held get a text of their own, apart from the frame's.
    pub fn end_of_delivery(&mut self, ack: Option<u64>, sink: &mut Sink) -> io::Result<()> {
        let Some(joiner) = &mut self.joiner else {
            return Ok(());
        };
        if let Some(seq) = ack {
            let ready = joiner.release_introducers(seq);
            self.write_app_lines(ready, sink)?;
        }
        // What is still held outlives the delivery and its frame.
        if let Some(joiner) = &mut self.joiner {
            joiner.detach_held();
        }
        Ok(())
    }

    /// The flag that tells the stage Sluice stops.
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// Writes the traces and lines that waited long enough (all of them
    /// once Sluice stops).
    pub fn expire(&mut self, now: i64, sink: &mut Sink) -> io::Result<usize> {
        let stopping = self.stopping.load(Ordering::Relaxed);
        let ready = match &mut self.joiner {
            Some(joiner) if stopping => joiner.flush(),
            Some(joiner) => joiner.expire(now),
            None => return Ok(0),
        };
        let written = self.write_app_lines(ready, sink)?;
        // Split lines that waited too long were pushed just before, outside
        // any delivery.
        if let Some(joiner) = &mut self.joiner {
            joiner.detach_held();
        }
        Ok(written)
    }

    /// Writes everything held (at shutdown).
    pub fn flush(&mut self, sink: &mut Sink) -> io::Result<usize> {
        let ready = match &mut self.joiner {
            Some(joiner) => joiner.flush(),
            None => return Ok(0),
        };
        self.write_app_lines(ready, sink)
    }

    fn write_app_lines(&mut self, ready: Vec<Event>, sink: &mut Sink) -> io::Result<usize> {
        let n = ready.len();
        for event in ready {
            self.out
                .emit_app_line(&self.renderer, &self.identity, &event, sink)?;
        }
        Ok(n)
    }

    /// Whether a tick has nothing to do here before `stats_due_in`: no
    /// line is held for the multiline joiner.
    pub fn is_settled(&self) -> bool {
        !self.joiner.as_ref().is_some_and(Joiner::holds_lines)
    }

    /// How long until the statistics interval ends, by the wall clock
    /// (`None` without statistics).
    pub fn stats_due_in(&self) -> Option<Duration> {
        let stats = self.out.stats.as_ref()?;
        let now_ms = now_ns().div_euclid(1_000_000);
        let left = stats.interval_end_ms().saturating_sub(now_ms).max(0);
        Some(Duration::from_millis(left as u64))
    }

    /// The oldest delivery that asked for an ack and has a line held.
    pub fn oldest_held_ack(&self) -> Option<u64> {
        self.joiner.as_ref().and_then(Joiner::oldest_held_ack)
    }

    /// Writes the statistics of the interval that ended (or, at shutdown,
    /// of the partial one).
    pub fn emit_stats(&mut self, sink: &mut Sink, force: bool) -> io::Result<()> {
        let out = &mut self.out;
        let now = now_ns().div_euclid(1_000_000);
        let Some(stats) = &mut out.stats else {
            return Ok(());
        };
        if !force && !stats.due(now) {
            return Ok(());
        }
        let start = stats.interval_start_ms();
        let events = stats.finish_interval(now);
        out.counters
            .stats_events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        for (key, text) in events {
            if !matches!(sink, Sink::Stdout(_)) {
                out.counters.ingested(2, text.len());
            }
            sink.write_stats(&key, start, &text)?;
        }
        Ok(())
    }

    pub fn counters(&self) -> &PipelineCounters {
        &self.out.counters
    }
}

impl Writer {
    /// Writes an event the multiline joiner let through (or joined) as an
    /// application line.
    fn emit_app_line(
        &mut self,
        renderer: &LineRenderer,
        identity: &Identity,
        event: &Event,
        sink: &mut Sink,
    ) -> io::Result<()> {
        let container = identity.container_name(self.tags.split(&event.tag), &event.record);
        let (line, line_key) = log_line(&event.record);
        let mut classified = Classified::App(sluice_parser::trim_line_ending(&line));
        let seen = Seen {
            line_key,
            container: &container,
        };
        self.emit(renderer, identity, event, &mut classified, seen, sink)
    }

    /// Renders and writes one classified event. The line's classification
    /// is borrowed: an access record is 744 bytes, and moving it here cost
    /// a copy per line.
    fn emit(
        &mut self,
        renderer: &LineRenderer,
        identity: &Identity,
        event: &Event,
        classified: &mut Classified<'_>,
        seen: Seen<'_>,
        sink: &mut Sink,
    ) -> io::Result<()> {
        // `None` outside drop-in mode (no allocation per event there).
        let outputs = self.router.as_mut().map(|r| r.outputs_for(&event.tag));
        if outputs.as_ref().is_some_and(|o| o.is_empty()) {
            self.unrouted(&event.tag);
        }
        let meta = EventMeta {
            time_ms: event.time_ns.div_euclid(1_000_000),
            tag: &event.tag,
            record: &event.record,
            line_key: seen.line_key,
            container: seen.container,
        };
        match outputs {
            Some(outputs) if !outputs.is_empty() => {
                let input = template_input(identity, &meta, self.tags.split(&event.tag));
                self.write_drop_in(renderer, &input, classified, &meta, &outputs, sink)
            }
            _ => self.write_native(renderer, classified, &meta, sink),
        }
    }

    /// Drop-in mode, a record no `[OUTPUT]` takes: Fluent Bit would drop
    /// it; Sluice sends it as its own configuration says, counts it and
    /// says so once per tag.
    fn unrouted(&mut self, tag: &str) {
        self.counters
            .dropin_unrouted
            .fetch_add(1, Ordering::Relaxed);
        if self.unrouted_tags.len() < MAX_UNROUTED_TAGS_LOGGED
            && !self.unrouted_tags.iter().any(|t| t == tag)
        {
            tracing::warn!(%tag, "no [OUTPUT] of the Fluent Bit configuration matches this tag; its records go where Sluice's own configuration says ([cloudwatch] templates), counted in sluice_firelens_unrouted_total");
            self.unrouted_tags.push(tag.to_string());
        }
    }

    fn write_native(
        &mut self,
        renderer: &LineRenderer,
        classified: &mut Classified<'_>,
        meta: &EventMeta<'_>,
        sink: &mut Sink,
    ) -> io::Result<()> {
        self.text.clear();
        // In the form the sink keeps (see `Sink::escapes`), so that a
        // CloudWatch message is escaped here once, not again per request.
        let (rendered, text_len) = if sink.escapes() {
            let mut out = Escaped::new(&mut self.text);
            let rendered = renderer.render_classified(classified, Some(meta), &mut out);
            (rendered, out.len())
        } else {
            let rendered = renderer.render_classified(classified, Some(meta), &mut self.text);
            (rendered, self.text.len())
        };
        let vars = StreamVars {
            tag: meta.tag,
            record: meta.record,
            time_ms: meta.time_ms,
            container: meta.container,
        };
        // The inputs are compared once for both of the event's keys.
        let mut templates = self.templates.checked(&vars);
        let stats = if self.counted_already {
            &mut None
        } else {
            &mut self.stats
        };
        let keep = count_and_sample(&rendered, &self.counters, stats, &self.sampling, || {
            Cow::Borrowed(templates.key(StreamKind::Stats))
        });
        if !keep {
            return Ok(());
        }
        self.written += 1;
        let kind = if rendered.access {
            StreamKind::Access
        } else {
            StreamKind::App
        };
        self.counters
            .ingested(usize::from(!rendered.access), text_len);
        sink.write(
            || templates.key(kind),
            rendered.time_ms,
            &self.text,
            text_len,
        )
    }

    /// Drop-in mode: every output whose `Match` takes the tag gets the
    /// event, rendered as Fluent Bit would send it.
    fn write_drop_in(
        &mut self,
        renderer: &LineRenderer,
        input: &TemplateInput<'_>,
        classified: &mut Classified<'_>,
        meta: &EventMeta<'_>,
        outputs: &[usize],
        sink: &mut Sink,
    ) -> io::Result<()> {
        let Some(router) = &mut self.router else {
            return Ok(());
        };
        let task_id = input.task_id;
        let mut counted = false;
        let mut sent = false;
        // With stdout outputs in the plan, CloudWatch outputs go first, so
        // that a record's statistics go with the group of the first that
        // takes it; stdout outputs after, and they count none.
        let outputs: Cow<'_, [usize]> = if router.has_stdout_outputs() {
            let (stdout, others): (Vec<usize>, Vec<usize>) = outputs
                .iter()
                .partition(|&&i| router.stdout_output(i).is_some());
            Cow::Owned(others.into_iter().chain(stdout).collect())
        } else {
            Cow::Borrowed(outputs)
        };
        for (n, &index) in outputs.iter().enumerate() {
            // A null output's records are only counted, with plugin
            // metrics; the others go to stdout or to the stream a
            // CloudWatch output names.
            if router.is_null_output(index) {
                count_output(router, index, meta.record);
                continue;
            }
            let to_stdout = router.stdout_output(index).is_some();
            let (key, log_key) = if to_stdout {
                (None, None)
            } else {
                match router.key(index, input) {
                    Some((key, log_key)) => (Some(key), log_key),
                    None => continue,
                }
            };
            self.text.clear();
            // Each output redacts and renders a record of its own, since
            // redaction works in place: outputs before the last get a
            // copy, and the last (nearly always the only one) the record.
            let mut copy;
            let record = if n + 1 < outputs.len() {
                copy = classified.clone();
                &mut copy
            } else {
                &mut *classified
            };
            let (rendered, text_len) = if sink.escapes() && !to_stdout {
                let mut out = Escaped::new(&mut self.text);
                let rendered = renderer.render_fluentbit_classified(
                    record,
                    meta,
                    log_key,
                    &mut self.members,
                    &mut out,
                );
                (rendered, out.len())
            } else {
                let rendered = renderer.render_fluentbit_classified(
                    record,
                    meta,
                    log_key,
                    &mut self.members,
                    &mut self.text,
                );
                (rendered, self.text.len())
            };
            if !counted {
                counted = true;
                let cache = &mut self.drop_in_stats_key;
                let group = key.map_or("", |k| k.group());
                let stats_key = move || {
                    // The cache's borrow moves into the key (a closure
                    // called once), rather than being reborrowed.
                    let cache = cache;
                    Cow::Borrowed(drop_in_stats_key(
                        cache,
                        group,
                        task_id.unwrap_or("unknown"),
                    ))
                };
                let stats = if self.counted_already || to_stdout {
                    &mut None
                } else {
                    &mut self.stats
                };
                let keep =
                    count_and_sample(&rendered, &self.counters, stats, &self.sampling, stats_key);
                if !keep {
                    return Ok(());
                }
            }
            sent = true;
            self.written += 1;
            match key {
                Some(key) => {
                    self.counters
                        .ingested(usize::from(!rendered.access), text_len);
                    sink.write(|| key, rendered.time_ms, &self.text, text_len)?;
                }
                None => {
                    count_output(router, index, meta.record);
                    if let Some(stdout) = router.stdout_output(index) {
                        let time_ns = rendered.time_ms.saturating_mul(1_000_000);
                        let line = stdout.line(input.tag, time_ns, &self.text);
                        // A debugging copy: standard output closed must not
                        // stop the records' way to CloudWatch.
                        let _ = io::Write::write_all(&mut io::stdout().lock(), line.as_bytes());
                    }
                }
            }
        }
        if !sent {
            self.counters
                .dropin_discarded
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// What drop-in mode's templates may name: the task from the metadata
/// endpoint, else from the record's ECS keys or (the task id) its FireLens
/// tag, already split (`firelens`, from the stage's [`LastTag`]).
fn template_input<'a>(
    identity: &'a Identity,
    meta: &EventMeta<'a>,
    firelens: Option<(&'a str, &'a str)>,
) -> TemplateInput<'a> {
    let field = |key: &str| meta.record.get_str(key);
    let task = identity.task();
    // Each fallback is looked up only when needed (`or_else`): this runs
    // for every record.
    let task_arn = task
        .map(|t| t.task_arn.as_str())
        .or_else(|| field("ecs_task_arn"));
    TemplateInput {
        tag: meta.tag,
        record: meta.record,
        task_id: identity
            .task_id(firelens)
            .or_else(|| task_arn.map(ecs::last_part)),
        cluster: task
            .map(|t| t.cluster.as_str())
            .or_else(|| field("ecs_cluster").map(ecs::last_part)),
        task_arn,
        captures: None,
    }
}

/// Drop-in mode's statistics stream for `group` and `task`: the one in
/// `cache` when it is that, else made and kept there.
fn drop_in_stats_key<'c>(
    cache: &'c mut Option<StreamKey>,
    group: &str,
    task: &str,
) -> &'c StreamKey {
    const PREFIX: &str = "sluice-stats/";
    let fits = cache
        .as_ref()
        .is_some_and(|k| k.group() == group && k.stream().strip_prefix(PREFIX) == Some(task));
    if !fits {
        *cache = None;
    }
    cache.get_or_insert_with(|| StreamKey::new(group.to_string(), format!("{PREFIX}{task}")))
}

/// A null or stdout output's plugin metrics: the records it takes and
/// their bytes as Fluent Bit holds them (a CloudWatch output's count what
/// CloudWatch takes).
fn count_output(router: &Router, index: usize, record: &Record) {
    if let Some(metrics) = router.plugin_metrics().and_then(|m| m.output(index)) {
        OutputCounts::add(&metrics.proc_records, 1);
        OutputCounts::add(&metrics.proc_bytes, record.msgpack_event_size());
    }
}

/// Counts a rendered event, feeds the statistics (every access record)
/// and decides sampling: whether the event is written.
fn count_and_sample<'k>(
    rendered: &Rendered<'_>,
    c: &PipelineCounters,
    stats: &mut Option<Aggregator>,
    sampling: &Option<SamplingConfig>,
    stats_key: impl FnOnce() -> Cow<'k, StreamKey>,
) -> bool {
    if !rendered.access {
        c.app_lines.fetch_add(1, Ordering::Relaxed);
    } else {
        c.access_records.fetch_add(1, Ordering::Relaxed);
        c.redactions
            .fetch_add(rendered.redactions as u64, Ordering::Relaxed);
    }
    let Some(facts) = &rendered.facts else {
        return true;
    };
    if let Some(stats) = stats {
        if stats.record(&stats_key(), facts) {
            c.stats_folded.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(sampling) = sampling {
        if !sampling::keep(sampling, facts) {
            c.sampled_out.fetch_add(1, Ordering::Relaxed);
            return false;
        }
    }
    true
}

/// The classifier, redactor and routes the configuration asks for.
fn renderer(config: Config, drop_in: bool) -> LineRenderer {
    let mut classifier = Classifier::new();
    for format in config.envoy.formats {
        classifier.add_format(format);
    }
    LineRenderer {
        classifier,
        redactor: config.redact.redactor,
        routes: config.envoy.routes,
        access_containers: config.envoy.containers,
        // stdout and files always carry the metadata.
        app_lines_as_json: drop_in
            || config.output != OutputType::Cloudwatch
            || config.cloudwatch.app_format == AppFormat::Json,
        collect_facts: config.stats.is_some() || config.sampling.is_some(),
        // One stdout stream mixes every container and kind: it says all.
        metadata: if config.output == OutputType::Stdout && !drop_in {
            Metadata::All
        } else {
            Metadata::Only(config.cloudwatch.metadata.0.clone())
        },
    }
}

/// Deliveries whose events were handed to the sink, waiting to be
/// accepted in order: one that asked for an ack waits while a line of it
/// (or of an earlier delivery) is held.
#[derive(Default)]
struct Acceptance {
    waiting: VecDeque<(u64, Delivery)>,
    next_seq: u64,
}

impl Acceptance {
    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Accepts, in order, every delivery before `oldest_held`.
    fn accept_ready(&mut self, oldest_held: Option<u64>) {
        while let Some((seq, _)) = self.waiting.front() {
            if oldest_held.is_some_and(|held| *seq >= held) {
                break;
            }
            if let Some((_, delivery)) = self.waiting.pop_front() {
                delivery.accept();
            }
        }
    }

    fn any_wants_ack(&self) -> bool {
        self.waiting.iter().any(|(_, d)| d.wants_ack())
    }
}

/// The output thread's loop: until the pipeline closes, takes every queued
/// delivery at once (one wake-up, one flush and one pass for many small
/// frames: Docker sends one event per frame), writes their events, and
/// accepts them once the sink has them. Every 250 ms: split lines and
/// traces that waited long enough, statistics, and the sink's timers.
/// When none of those waits for a tick, the stage sleeps until input
/// comes or the statistics interval ends: an idle sidecar in every task
/// should not wake four times a second for nothing.
pub fn write_output(
    mut pipeline: mpsc::Receiver<Delivery>,
    runtime: tokio::runtime::Handle,
    mut stage: OutputStage,
    mut sink: Sink,
) -> io::Result<u64> {
    let mut partials = PartialAssembler::new(
        MAX_JOINED_LINE,
        i64::try_from(PARTIAL_TIMEOUT.as_nanos()).unwrap_or(i64::MAX),
    );
    let mut joined = Vec::new();
    let mut acceptance = Acceptance::default();
    // What an earlier run spooled and did not deliver goes first.
    sink.replay();
    const TICK: Duration = Duration::from_millis(250);
    let mut last_tick = Instant::now();
    loop {
        let room = sink.room_signal();
        // Cheapest and likeliest to fail first: while busy, some batch is
        // pending, and the joiner's streams (one per container) are not
        // scanned on every pass.
        let settled = partials.pending() == 0
            && acceptance.waiting.is_empty()
            && sink.is_settled()
            && stage.is_settled();
        // Never shorter than a tick, so that the tick below runs after an
        // idle wait ends (and an interval that just ended cannot spin).
        let wait = if settled {
            stage.stats_due_in().map(|left| left.max(TICK))
        } else {
            Some(TICK)
        };
        // `None`: the shipper finished a batch while due ones waited for
        // its room.
        let next = runtime.block_on(async {
            let room_freed = async {
                match &room {
                    Some(counters) => counters.finished.notified().await,
                    None => std::future::pending().await,
                }
            };
            let next = async {
                match wait {
                    Some(wait) => tokio::time::timeout(wait, pipeline.recv()).await,
                    None => Ok(pipeline.recv().await),
                }
            };
            tokio::select! {
                next = next => Some(next),
                () = room_freed => None,
            }
        });
        let now = now_ns();
        stage.counters().last_progress_ms.store(
            u64::try_from(now / 1_000_000).unwrap_or(0),
            Ordering::Relaxed,
        );
        match next {
            Some(Ok(Some(first))) => {
                let mut group = vec![first];
                // Frames without acks were gathered per read by the
                // connection (firelens Session); what else is queued goes
                // in the same pass.
                while group.len() < PIPELINE_FRAMES {
                    match pipeline.try_recv() {
                        Ok(delivery) => group.push(delivery),
                        Err(_) => break,
                    }
                }
                // The deliveries' events move on without a copy; their
                // shares of the memory budget move to the sink's buffers.
                let share = group
                    .iter_mut()
                    .filter_map(Delivery::take_reservation)
                    .reduce(|mut all, share| {
                        all.merge(share);
                        all
                    });
                sink.begin_delivery(share);
                let mut acked = false;
                for mut delivery in group {
                    let seq = acceptance.next_seq();
                    let ack = delivery.wants_ack().then_some(seq);
                    acked |= ack.is_some();
                    for event in std::mem::take(&mut delivery.events) {
                        partials.push(event, now, &mut joined);
                        for whole in joined.drain(..) {
                            stage.write(whole, ack, now, &mut sink)?;
                        }
                    }
                    stage.end_of_delivery(ack, &mut sink)?;
                    acceptance.waiting.push_back((seq, delivery));
                }
                sink.end_delivery(acked)?;
                acceptance.accept_ready(stage.oldest_held_ack());
            }
            Some(Ok(None)) => break,
            Some(Err(_)) => {}
            None => sink.send_due(Instant::now()),
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            let mut wrote = 0;
            for stale in partials.expire(now) {
                stage.write(stale, None, now, &mut sink)?;
                wrote += 1;
            }
            wrote += stage.expire(now, &mut sink)?;
            if wrote > 0 && !acceptance.waiting.is_empty() {
                // What a waiting delivery held is in the sink now: commit
                // it (to the spool) before its ack.
                sink.end_delivery(acceptance.any_wants_ack())?;
            }
            acceptance.accept_ready(stage.oldest_held_ack());
            stage.emit_stats(&mut sink, false)?;
            sink.tick(last_tick)?;
        }
    }
    for rest in partials.flush() {
        stage.write(rest, None, now_ns(), &mut sink)?;
    }
    stage.flush(&mut sink)?;
    sink.end_delivery(acceptance.any_wants_ack())?;
    acceptance.accept_ready(None);
    // The partial interval too: the last minute before a stop matters.
    stage.emit_stats(&mut sink, true)?;
    sink.flush()?;
    Ok(stage.out.written)
}

/// The text of an event: its `log` (Docker, FireLens), else `message`
/// (fluent-logger and many libraries), else the whole record as JSON.
/// Returns the line and the key it came from.
pub fn log_line(record: &Record) -> (Cow<'_, str>, Option<&'static str>) {
    match record_line(record) {
        Some((key, line)) => (Cow::Borrowed(line), Some(key)),
        None => (Cow::Owned(Json::Object(record.to_json()).to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_in_statistics_stream_follows_group_and_task() {
        let mut cache = None;
        let names = |k: &StreamKey| (k.group().to_string(), k.stream().to_string());
        let first = names(drop_in_stats_key(&mut cache, "/ecs/a", "t1"));
        assert_eq!(first, ("/ecs/a".into(), "sluice-stats/t1".into()));
        assert_eq!(names(drop_in_stats_key(&mut cache, "/ecs/a", "t1")), first);
        assert_eq!(
            names(drop_in_stats_key(&mut cache, "/ecs/a", "t2")),
            ("/ecs/a".into(), "sluice-stats/t2".into())
        );
        assert_eq!(
            names(drop_in_stats_key(&mut cache, "/ecs/b", "t2")),
            ("/ecs/b".into(), "sluice-stats/t2".into())
        );
    }
}
