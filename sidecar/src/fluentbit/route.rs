//! The plan at work on each record: filters in order, then every output
//! whose `Match` takes the tag (Fluent Bit sends a record to each of them),
//! with the group and stream each output names.

use std::sync::Arc;
use std::time::Instant;

use sluice_firelens::Record;

use super::lua_filter::LuaOutcome;
use super::plan::{
    CloudWatchOutput, DropIn, Fallback, Filter, FilterAction, Grep, LogicalOp, NameRule,
    OutputKind, ParserFilter, RecordModifier, TagMatch,
};
use super::plugin_metrics::{FilterCounts, PluginMetrics};
use super::template::TemplateInput;
use crate::cloudwatch::ship::{GroupPolicies, GroupPolicy};
use crate::streams::{group_name, stream_name, StreamKey};

/// Applies a [`DropIn`] plan to records.
pub struct Router {
    plan: DropIn,
    /// Where the shipper learns each group's creation and retention.
    policies: Arc<GroupPolicies>,
    /// Per output, the last key it named and what it was named from. For
    /// an output whose names do not read the record, the next record of
    /// the same tag and task gets the same key without filling and
    /// cleaning the templates again (about a sixth of drop-in's work per
    /// record); for every output, a group is registered with the shipper
    /// only when it differs from the last key's, so that registering
    /// takes a lock only when a group is new.
    last_keys: Vec<Option<NamedKey>>,
    /// Per output, whether its group or stream template reads the record.
    names_read_record: Vec<bool>,
    /// The filters and the outputs that take the last tag looked up.
    last_filters: LastMatches,
    last_outputs: LastMatches,
    /// Whether a record reached [`MAX_COPIES`] (logged once).
    rewrite_limit_logged: bool,
    /// Whether an output is `stdout`.
    has_stdout: bool,
    /// The plugin instances' counters (`/api/v1/metrics`).
    metrics: Option<Arc<PluginMetrics>>,
}

/// Which of a list of filters or outputs take a tag, kept for the last tag
/// asked about: a container's records come in runs of one tag, and
/// matching a tag against every `Match` pattern again for each record took
/// about 600 instructions per record (`benches/callgrind_burst.py
/// --drop-in`).
#[derive(Default)]
struct LastMatches(Option<(String, Arc<[usize]>)>);

impl LastMatches {
    fn indexes<'m>(
        &mut self,
        tag: &str,
        matchers: impl Iterator<Item = &'m TagMatch>,
    ) -> Arc<[usize]> {
        if let Some((last, indexes)) = &self.0 {
            if last == tag {
                return indexes.clone();
            }
        }
        let indexes: Arc<[usize]> = matchers
            .enumerate()
            .filter(|(_, m)| m.matches(tag))
            .map(|(i, _)| i)
            .collect();
        self.0 = Some((tag.to_string(), indexes.clone()));
        indexes
    }
}

/// A copy of a record that a rewrite_tag filter or a `[STREAM_TASK]` sent
/// on with a new tag, after the filters of that tag.
#[derive(Debug)]
pub struct Rewritten {
    pub tag: String,
    pub record: Record,
    pub time_ns: i64,
}

/// The filters at work on one record and the copies it gives.
struct FilterRun<'a> {
    filters: &'a [Filter],
    last: &'a mut LastMatches,
    is_access: &'a dyn Fn(&str, &Record) -> bool,
    rewritten: &'a mut Vec<Rewritten>,
    /// Copies this record may still make ([`MAX_COPIES`]).
    copies_left: usize,
    /// Set once the limit was logged.
    limit_logged: &'a mut bool,
    /// The plugin instances' counters, when they are served.
    metrics: Option<&'a PluginMetrics>,
}

/// At most this many rewrite_tag copies of one record. Each copy runs the
/// filters of its tag, where another rewrite_tag filter may copy it again:
/// with several filters that keep their records and match each other's
/// tags, the copies of one record would grow as the orderings of those
/// filters (Fluent Bit loops forever on the simplest such configuration).
/// Past the limit, a rule that matches makes no copy and the record goes
/// on as it is, which is logged once.
const MAX_COPIES: usize = 16;

impl FilterRun<'_> {
    /// Sends `copy` on with `tag`, through the filters of that tag but the
    /// rewrite_tag filters in `lineage`; `false`, and nothing sent, once
    /// the record has made [`MAX_COPIES`] (logged once).
    fn send_copy(
        &mut self,
        tag: &str,
        mut copy: Record,
        mut time_ns: i64,
        lineage: &[usize],
    ) -> bool {
        if self.copies_left == 0 {
            // Without the tags: a new tag may hold what a rule captured
            // from the record, unredacted.
            if !std::mem::replace(self.limit_logged, true) {
                tracing::warn!(limit = MAX_COPIES, "rewrite_tag filters and stream tasks made as many copies of one record as Sluice makes; the record goes on with its tag (do the filters' new tags match each other's Match?)");
            }
            return false;
        }
        self.copies_left -= 1;
        if self.record(tag, &mut copy, &mut time_ns, lineage) {
            self.rewritten.push(Rewritten {
                tag: tag.to_string(),
                record: copy,
                time_ns,
            });
        }
        true
    }

    /// The filters that match `tag`, in order, but the rewrite_tag filters
    /// in `applied`, which made this record: Fluent Bit would send their
    /// copies round again, forever, when the new tag matches them too.
    fn record(
        &mut self,
        tag: &str,
        record: &mut Record,
        time_ns: &mut i64,
        applied: &[usize],
    ) -> bool {
        self.record_from(0, tag, record, time_ns, applied)
    }

    /// [`FilterRun::record`] from the filter at index `from` on: the
    /// records a lua filter split one into go on from the filter after it.
    fn record_from(
        &mut self,
        from: usize,
        tag: &str,
        record: &mut Record,
        time_ns: &mut i64,
        applied: &[usize],
    ) -> bool {
        // A filter's dropped bytes are the record's as its input made it,
        // whatever the filters before changed (Fluent Bit counts the
        // chunk's bytes as they were appended): sized here, when a filter
        // may drop it.
        let ingested = match self.metrics {
            Some(m) if m.filters_may_drop() => record.msgpack_event_size(),
            _ => 0,
        };
        let filters = self.filters;
        let matching = self.last.indexes(tag, filters.iter().map(|f| &f.matcher));
        for &i in matching.iter().filter(|&&i| i >= from) {
            let counts = self.metrics.and_then(|m| m.filter(i));
            if let Some(c) = counts {
                FilterCounts::add(&c.records, 1);
            }
            // A filter that removes the record is counted here, one that
            // changes it after its arm (`revision`).
            let dropped = || {
                if let Some(c) = counts {
                    FilterCounts::add(&c.drop_records, 1);
                    FilterCounts::add(&c.drop_bytes, ingested);
                }
                false
            };
            let revision = record.revision();
            match &filters[i].action {
                FilterAction::Grep(grep) => {
                    if !keeps(grep, record) {
                        return dropped();
                    }
                }
                FilterAction::RecordModifier(m) => modify(m, record),
                FilterAction::Parser(p) => parse(p, record, time_ns, self.is_access),
                FilterAction::Modify(m) => m.apply(record),
                FilterAction::Nest(n) => n.apply(record),
                FilterAction::Aws(a) => a.apply(record),
                FilterAction::Throttle(t) => {
                    if !t.keeps(Instant::now()) {
                        return dropped();
                    }
                }
                FilterAction::Lua(lua) => match lua.apply(tag, record, *time_ns) {
                    LuaOutcome::Keep => {}
                    LuaOutcome::Drop => return dropped(),
                    LuaOutcome::Replace(records, new_time) => {
                        if let Some(t) = new_time {
                            *time_ns = t;
                        }
                        if let (Some(c), false) = (counts, records.is_empty()) {
                            FilterCounts::add(&c.add_records, records.len() - 1);
                            let bytes = records.iter().map(Record::msgpack_event_size).sum();
                            FilterCounts::add(&c.bytes, bytes);
                        }
                        let mut records = records.into_iter();
                        let Some(first) = records.next() else {
                            return dropped();
                        };
                        *record = first;
                        // The others go on from the next filter, each an
                        // event of its own with the record's tag.
                        for mut other in records {
                            let mut other_time = *time_ns;
                            if self.record_from(i + 1, tag, &mut other, &mut other_time, applied) {
                                self.rewritten.push(Rewritten {
                                    tag: tag.to_string(),
                                    record: other,
                                    time_ns: other_time,
                                });
                            }
                        }
                        // Its bytes are counted above, not again below.
                        continue;
                    }
                },
                FilterAction::RewriteTag(r) if !applied.contains(&i) => {
                    let Some(rewrite) = r.apply(tag, record) else {
                        continue;
                    };
                    // As Fluent Bit's emitter takes it: the record as the
                    // filters before this one left it, from the first filter.
                    let lineage: Vec<usize> = applied.iter().copied().chain([i]).collect();
                    let size = counts.map(|_| record.msgpack_event_size());
                    if !self.send_copy(&rewrite.tag, record.clone(), *time_ns, &lineage) {
                        continue;
                    }
                    if let (Some(c), Some(size)) = (counts, size) {
                        FilterCounts::add(&c.emit_records, 1);
                        FilterCounts::add(&c.emit_bytes, size);
                    }
                    if !rewrite.keep {
                        return dropped();
                    }
                    // Fluent Bit writes the kept original out again.
                    if let (Some(c), Some(size)) = (counts, size) {
                        FilterCounts::add(&c.bytes, size);
                    }
                    continue;
                }
                FilterAction::RewriteTag(_) => {}
            }
            if record.revision() != revision {
                if let Some(c) = counts {
                    // As each filter's encoder writes the record out.
                    let size = match &filters[i].action {
                        FilterAction::RecordModifier(_)
                        | FilterAction::Nest(_)
                        | FilterAction::Aws(_) => record.msgpack_event_size_built(),
                        _ => record.msgpack_event_size(),
                    };
                    FilterCounts::add(&c.bytes, size);
                }
            }
        }
        true
    }
}

/// A key and the values its templates were filled with.
struct NamedKey {
    tag: String,
    task_id: Option<String>,
    cluster: Option<String>,
    task_arn: Option<String>,
    key: StreamKey,
}

impl NamedKey {
    fn named_from(&self, input: &TemplateInput<'_>) -> bool {
        self.tag == input.tag
            && self.task_id.as_deref() == input.task_id
            && self.cluster.as_deref() == input.cluster
            && self.task_arn.as_deref() == input.task_arn
    }
}

impl Router {
    pub fn new(
        plan: DropIn,
        policies: Arc<GroupPolicies>,
        metrics: Option<Arc<PluginMetrics>>,
    ) -> Router {
        let last_keys = plan.outputs.iter().map(|_| None).collect();
        let names_read_record = plan
            .outputs
            .iter()
            .map(|o| match &o.kind {
                OutputKind::CloudWatch(cw) => [&cw.group, &cw.stream]
                    .iter()
                    .any(|rule| rule.template.as_ref().is_some_and(|t| t.reads_record())),
                OutputKind::Null | OutputKind::Stdout(_) => false,
            })
            .collect();
        let has_stdout = plan
            .outputs
            .iter()
            .any(|o| matches!(o.kind, OutputKind::Stdout(_)));
        Router {
            has_stdout,
            metrics,
            plan,
            policies,
            last_keys,
            names_read_record,
            last_filters: LastMatches::default(),
            last_outputs: LastMatches::default(),
            rewrite_limit_logged: false,
        }
    }

    /// Runs the filters that match `tag`, in order; `false` when a grep
    /// filter dropped the record. A parser filter may set the record's
    /// time, `time_ns`. `is_access(value, record)` says whether a value a
    /// parser filter may unpack is an Envoy access line: those stay as
    /// they are, for Sluice parses them into access records itself (with
    /// their route and statistics), which a JSON parser's unpacking would
    /// prevent.
    ///
    /// A rewrite_tag filter's copies of the record, each through the
    /// filters of its new tag, go to `rewritten` (`false` also when the
    /// rule did not keep the original), and so do the copies the
    /// `[STREAM_TASK]`s make of the record the filters kept.
    pub fn filter(
        &mut self,
        tag: &str,
        record: &mut Record,
        time_ns: &mut i64,
        is_access: &dyn Fn(&str, &Record) -> bool,
        rewritten: &mut Vec<Rewritten>,
    ) -> bool {
        let mut run = FilterRun {
            filters: &self.plan.filters,
            last: &mut self.last_filters,
            is_access,
            rewritten,
            copies_left: MAX_COPIES,
            limit_logged: &mut self.rewrite_limit_logged,
            metrics: self.metrics.as_deref(),
        };
        if !run.record(tag, record, time_ns, &[]) {
            return false;
        }
        // The stream processor sees the record as the filters left it; a
        // copy it makes runs the filters of its new tag, from the first.
        for task in &self.plan.stream_tasks {
            let Some(copy) = task.select(tag, record) else {
                continue;
            };
            if !run.send_copy(&task.tag, copy, *time_ns, &[]) {
                break;
            }
        }
        true
    }

    /// Whether the plan has a `stdout` output.
    pub fn has_stdout_outputs(&self) -> bool {
        self.has_stdout
    }

    /// The plugin instances' counters.
    pub fn plugin_metrics(&self) -> Option<&PluginMetrics> {
        self.metrics.as_deref()
    }

    /// Whether output `index` is a `null` output.
    pub fn is_null_output(&self, index: usize) -> bool {
        matches!(self.plan.outputs[index].kind, OutputKind::Null)
    }

    /// Output `index`, when it is a `stdout` output.
    pub fn stdout_output(&self, index: usize) -> Option<&super::stdout_output::StdoutOutput> {
        match &self.plan.outputs[index].kind {
            OutputKind::Stdout(s) => Some(s),
            _ => None,
        }
    }

    /// The outputs that take `tag`, by index.
    pub fn outputs_for(&mut self, tag: &str) -> Arc<[usize]> {
        let outputs = &self.plan.outputs;
        self.last_outputs
            .indexes(tag, outputs.iter().map(|o| &o.matcher))
    }

    /// The group and stream output `index` names for a record, made valid
    /// for CloudWatch, and the output's `log_key`; the group's policy is
    /// registered for the shipper. `None` for an output that is not
    /// CloudWatch.
    pub fn key(
        &mut self,
        index: usize,
        input: &TemplateInput<'_>,
    ) -> Option<(&StreamKey, Option<&str>)> {
        let OutputKind::CloudWatch(output) = &self.plan.outputs[index].kind else {
            return None;
        };
        let last = &mut self.last_keys[index];
        let kept =
            !self.names_read_record[index] && last.as_ref().is_some_and(|l| l.named_from(input));
        if !kept {
            let key = name_key(output, input);
            // A lock, taken only when the output names another stream.
            if let Some(metrics) = self
                .metrics
                .as_ref()
                .filter(|_| last.as_ref().map(|l| &l.key) != Some(&key))
            {
                metrics.names_stream(&key, index);
            }
            if last.as_ref().map(|l| l.key.group()) != Some(key.group()) {
                self.policies.set(
                    key.group(),
                    GroupPolicy {
                        create_group: output.create_group,
                        create_stream: output.create_stream,
                        retention_days: output.retention_days,
                        infrequent_access: output.infrequent_access,
                        tags: output.new_group_tags.clone(),
                    },
                );
            }
            *last = Some(NamedKey {
                tag: input.tag.to_string(),
                task_id: input.task_id.map(str::to_string),
                cluster: input.cluster.map(str::to_string),
                task_arn: input.task_arn.map(str::to_string),
                key,
            });
        }
        let key = &last.as_ref()?.key;
        Some((key, output.log_key.as_deref()))
    }
}

fn name_key(output: &CloudWatchOutput, input: &TemplateInput<'_>) -> StreamKey {
    let group = fill(&output.group, input);
    let stream = fill(&output.stream, input);
    if output.go_names {
        StreamKey::new(go_group_name(&group), go_stream_name(&stream))
    } else {
        StreamKey::new(group_name(&group), stream_name(&stream))
    }
}

fn fill(rule: &NameRule, input: &TemplateInput<'_>) -> String {
    if let Some(filled) = rule.template.as_ref().and_then(|t| t.fill(input)) {
        return filled;
    }
    match &rule.fallback {
        Fallback::Name(name) => name.clone(),
        Fallback::PrefixAndTag(prefix) => format!("{prefix}{}", input.tag),
    }
}

/// The Go plugin's rule: characters outside `[A-Za-z0-9_./-]` become `.`.
fn go_group_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-') {
                c
            } else {
                '.'
            }
        })
        .collect();
    group_name(&cleaned)
}

/// The Go plugin's rule: `:` and `*` become `.`.
fn go_stream_name(name: &str) -> String {
    stream_name(&name.replace([':', '*'], "."))
}

/// Whether grep keeps the record (see [`LogicalOp`]).
fn keeps(grep: &Grep, record: &Record) -> bool {
    let matched = |rule: &super::plan::GrepRule| {
        super::template::string_at(record, &rule.path).is_some_and(|v| rule.regex.is_match(v))
    };
    let regexes = grep.rules.iter().filter(|r| !r.exclude);
    let mut excludes = grep.rules.iter().filter(|r| r.exclude).peekable();
    match grep.op {
        // `grep_filter_data`: in the order written, the first rule that
        // decides does. A Regex keeps the record when it matches and drops
        // it when not; an Exclude drops it when it matches, and otherwise
        // leaves it to the next rule. (So an Exclude after a Regex that
        // matched is never asked, as in Fluent Bit v5.1.1.)
        LogicalOp::Legacy => {
            for rule in &grep.rules {
                match (rule.exclude, matched(rule)) {
                    (false, keep) => return keep,
                    (true, true) => return false,
                    (true, false) => {}
                }
            }
            true
        }
        LogicalOp::And => {
            if excludes.peek().is_some() {
                !excludes.all(matched)
            } else {
                regexes.clone().all(matched)
            }
        }
        LogicalOp::Or => {
            if excludes.peek().is_some() {
                !excludes.any(matched)
            } else {
                regexes.clone().any(matched)
            }
        }
    }
}

fn modify(m: &RecordModifier, record: &mut Record) {
    for key in &m.remove_keys {
        record.remove(key);
    }
    if !m.allowlist_keys.is_empty() {
        record.retain(|k| m.allowlist_keys.iter().any(|a| a == k));
    }
    for (key, value) in &m.records {
        record.insert_shared(key, value);
    }
    if let Some(key) = &m.uuid_key {
        record.insert(key, super::template::output_uuid());
    }
}

/// `[FILTER] parser` on one record (`filter_parser.c`'s order: the parsed
/// object, then the kept keys, of which a later one wins).
fn parse(
    p: &ParserFilter,
    record: &mut Record,
    time_ns: &mut i64,
    is_access: &dyn Fn(&str, &Record) -> bool,
) {
    let Some(value) = record.get_str(&p.key_name) else {
        return;
    };
    // Asked before parsing, so that an Envoy access line is neither read
    // into a JSON map nor matched against a regex only to be left as it is.
    if !p.parsers.iter().any(|parser| parser.may_read(value)) || is_access(value, record) {
        return;
    }
    // The record's time is when its line was read: a time without a year
    // is read in that time's year.
    let read_ms = time_ns.div_euclid(1_000_000);
    let Some(parsed) = p
        .parsers
        .iter()
        .find_map(|parser| parser.parse(value, read_ms))
    else {
        return;
    };
    if let Some(ns) = parsed.time_ns() {
        *time_ns = ns;
    }
    // One sorted map, then one record built from it in key order: adding
    // a hostile line's thousands of keys to the record one by one would
    // shift its fields for each.
    let mut fields = parsed.fields;
    for (key, value) in record.iter() {
        let keep = if key == p.key_name {
            p.preserve_key
        } else {
            p.reserve_data
        };
        if keep {
            fields.insert(key.to_string(), value.to_json());
        }
    }
    record.replace_with(Record::from(fields));
}

#[cfg(test)]
mod tests {
    use super::*;
    fn router(conf: &str) -> (Router, Arc<GroupPolicies>) {
        let p = crate::fluentbit::tests::plan_of(conf).unwrap();
        let policies = Arc::new(GroupPolicies::new(GroupPolicy::default()));
        (Router::new(p, policies.clone(), None), policies)
    }

    use crate::fluentbit::tests::record;

    /// [`Router::filter`] where no line is an access line.
    fn keeps_record(r: &mut Router, tag: &str, record: &mut Record) -> bool {
        r.filter(tag, record, &mut 0, &|_, _| false, &mut Vec::new())
    }

    /// `record` filtered under `tag` with its time at 7: the record's text
    /// and its time, after checking it was kept.
    fn filtered(r: &mut Router, tag: &str, record: serde_json::Value) -> (String, i64) {
        let mut rec = self::record(&record.to_string());
        let mut time_ns = 7;
        assert!(r.filter(tag, &mut rec, &mut time_ns, &|_, _| false, &mut Vec::new()));
        (text(&rec), time_ns)
    }

    const INPUT: &str = "[INPUT]\n    Name forward\n    unix_path /var/run/fluent.sock\n";

    #[test]
    fn grep_and_record_modifier() {
        let conf = format!("{INPUT}[FILTER]\n    Name   grep\n    Match app-firelens*\n    Regex  log ^(GET|POST)\n[FILTER]\n    Name   grep\n    Match app-firelens*\n    Exclude log health\n[FILTER]\n    Name record_modifier\n    Match *\n    Record ecs_cluster prod\n    Remove_key source\n");
        let (mut r, _) = router(&conf);
        let mut keep = record(r#"{"log":"GET /a","source":"stdout"}"#);
        assert!(keeps_record(&mut r, "app-firelens-1", &mut keep));
        assert_eq!(keep, record(r#"{"log":"GET /a","ecs_cluster":"prod"}"#));
        assert!(!keeps_record(
            &mut r,
            "app-firelens-1",
            &mut record(r#"{"log":"GET /health"}"#)
        ));
        assert!(!keeps_record(
            &mut r,
            "app-firelens-1",
            &mut record(r#"{"log":"started"}"#)
        ));
        // Another container's records pass the grep filters.
        let mut other = record(r#"{"log":"started"}"#);
        assert!(keeps_record(&mut r, "envoy-firelens-1", &mut other));
        assert_eq!(other, record(r#"{"log":"started","ecs_cluster":"prod"}"#));
        // The filters that take the last tag are kept: back on the first
        // tag, its grep filters apply again.
        assert!(!keeps_record(
            &mut r,
            "app-firelens-1",
            &mut record(r#"{"log":"started"}"#)
        ));
        let mut again = record(r#"{"log":"POST /b"}"#);
        assert!(keeps_record(&mut r, "app-firelens-1", &mut again));
        assert_eq!(again, record(r#"{"log":"POST /b","ecs_cluster":"prod"}"#));
    }

    #[test]
    fn names_per_output() {
        let conf = format!("{INPUT}[OUTPUT]\n    Name null\n    Match firelens-healthcheck\n[OUTPUT]\n    Name cloudwatch_logs\n    Match app-firelens*\n    region us-east-1\n    log_group_name /ecs/fallback\n    log_group_template /ecs/$ecs_cluster\n    log_stream_prefix app/\n    auto_create_group true\n    log_retention_days 7\n    log_group_class INFREQUENT_ACCESS\n[OUTPUT]\n    Name cloudwatch\n    Match envoy-firelens*\n    region us-east-1\n    log_group_name /go/$(ecs_cluster)\n    log_stream_name $(tag[0])/$(ecs_task_id):x\n    new_log_group_tags team=payments, env = prod ,=x,team=orders\n");
        let (mut r, policies) = router(&conf);
        assert_eq!(*r.outputs_for("app-firelens-abc"), [1]);
        assert_eq!(*r.outputs_for("app-firelens-abc"), [1]);
        assert_eq!(*r.outputs_for("firelens-healthcheck"), [0]);
        assert!(r.outputs_for("other").is_empty());
        let with = record(r#"{"ecs_cluster":"prod"}"#);
        let without = Record::default();
        let input = |tag, record| TemplateInput {
            tag,
            record,
            task_id: Some("abc"),
            cluster: Some("meta"),
            task_arn: None,
            captures: None,
        };
        let key = |r: &mut Router, i, tag, rec| r.key(i, &input(tag, rec)).unwrap().0.clone();
        assert_eq!(
            key(&mut r, 1, "app-firelens-abc", &with),
            StreamKey::new("/ecs/prod".into(), "app/app-firelens-abc".into())
        );
        assert_eq!(
            key(&mut r, 1, "app-firelens-abc", &without),
            StreamKey::new("/ecs/fallback".into(), "app/app-firelens-abc".into())
        );
        assert_eq!(
            key(&mut r, 2, "envoy-firelens-abc", &without),
            StreamKey::new("/go/meta".into(), "envoy-firelens-abc/abc.x".into())
        );
        // Output 2's names read only the tag and the task: the key is kept
        // for the next record of the tag, and made again when either
        // changes. Output 1's group reads the record: made every time
        // (above, one tag gave two groups).
        assert_eq!(
            key(&mut r, 2, "envoy-firelens-abc", &with),
            StreamKey::new("/go/meta".into(), "envoy-firelens-abc/abc.x".into())
        );
        assert_eq!(
            key(&mut r, 2, "envoy-firelens-def", &with),
            StreamKey::new("/go/meta".into(), "envoy-firelens-def/abc.x".into())
        );
        let other_task = TemplateInput {
            task_id: Some("xyz"),
            ..input("envoy-firelens-def", &with)
        };
        assert_eq!(
            r.key(2, &other_task).unwrap().0.stream(),
            "envoy-firelens-def/xyz.x"
        );
        assert_eq!(
            policies.get("/ecs/prod"),
            GroupPolicy {
                create_group: true,
                create_stream: true,
                retention_days: Some(7),
                infrequent_access: true,
                tags: None,
            }
        );
        assert_eq!(
            policies.get("/go/meta"),
            GroupPolicy {
                create_group: false,
                create_stream: true,
                retention_days: None,
                infrequent_access: false,
                // As the Go plugin reads them: trimmed, the empty key
                // skipped, the last `team` winning.
                tags: Some(Arc::from(vec![
                    ("env".to_string(), "prod".to_string()),
                    ("team".to_string(), "orders".to_string()),
                ])),
            }
        );
        assert!(r.key(0, &input("firelens-healthcheck", &without)).is_none());
    }

    #[test]
    fn an_outputs_uuid_names_one_stream() {
        // The Go plugin makes one `$(uuid)` per output: every record of
        // the output goes to one stream, not a stream per record.
        let output = |m: &str| {
            format!("[OUTPUT]\n    Name cloudwatch\n    Match {m}\n    region us-east-1\n    log_group_name /g/$(uuid)\n    log_stream_name s-$(uuid)\n")
        };
        let conf = format!("{INPUT}{}{}", output("app-*"), output("envoy-*"));
        let (mut r, _) = router(&conf);
        let rec = Record::default();
        let input = |tag| TemplateInput {
            tag,
            record: &rec,
            task_id: None,
            cluster: None,
            task_arn: None,
            captures: None,
        };
        let first = r.key(0, &input("app-1")).unwrap().0.clone();
        assert_eq!(*r.key(0, &input("app-2")).unwrap().0, first);
        let uuid = first.stream().strip_prefix("s-").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(first.group(), format!("/g/{uuid}"));
        let other = r.key(1, &input("envoy-1")).unwrap().0.clone();
        assert_ne!(other.stream(), first.stream());
    }

    #[test]
    fn record_modifier_uuid_key_gives_each_record_its_own() {
        let conf = format!(
            "{INPUT}[FILTER]\n    Name record_modifier\n    Match *\n    Uuid_key event_id\n"
        );
        let (mut r, _) = router(&conf);
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let mut one = record(r#"{"log":"a"}"#);
                assert!(keeps_record(&mut r, "t", &mut one));
                assert_eq!(one.get_str("log"), Some("a"));
                one.get_str("event_id").unwrap().to_string()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            // As flb_utils_uuid_v4_gen writes one: 8-4-4-4-12 lower-case
            // hex digits, version 4, the RFC 4122 variant.
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.chars()
                    .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')),
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
    }

    /// Without Logical_Op, the first rule that decides does, in the order
    /// written: Fluent Bit v5.1.1's grep kept exactly these lines.
    #[test]
    fn legacy_grep_takes_the_first_rule_that_decides() {
        let lines = ["GET /a 200", "POST /b 500", "GET /health 200", "error: x"];
        let kept = |rules: &str| {
            let (mut r, _) = router(&format!(
                "{INPUT}[FILTER]\n    Name grep\n    Match *\n{rules}"
            ));
            lines
                .into_iter()
                .filter(|line| {
                    let json = serde_json::json!({ "log": line }).to_string();
                    keeps_record(&mut r, "t", &mut record(&json))
                })
                .collect::<Vec<_>>()
        };
        // A Regex that matches keeps the record: the Exclude after it is
        // never asked.
        assert_eq!(
            kept("    Regex log ^(GET|POST)\n    Exclude log health\n"),
            ["GET /a 200", "POST /b 500", "GET /health 200"]
        );
        assert_eq!(
            kept("    Exclude log health\n    Regex log ^GET\n    Regex log 200$\n"),
            ["GET /a 200"]
        );
    }

    /// A rule's key is a record accessor: a nested string matches, a
    /// number does not (Fluent Bit v5.1.1's grep kept the same records).
    #[test]
    fn grep_keys_are_record_accessors() {
        let conf = format!("{INPUT}[FILTER]\n    Name grep\n    Match *\n    Regex $k['s'] ^abc\n");
        let (mut r, _) = router(&conf);
        assert!(keeps_record(
            &mut r,
            "t",
            &mut record(r#"{"log":"x","k":{"s":"abc"}}"#)
        ));
        assert!(!keeps_record(
            &mut r,
            "t",
            &mut record(r#"{"log":"y","k":{"s":"zzz"}}"#)
        ));
        assert!(!keeps_record(
            &mut r,
            "t",
            &mut record(r#"{"log":"z","k":"abc"}"#)
        ));
        let conf = format!("{INPUT}[FILTER]\n    Name grep\n    Match *\n    Regex n ^5$\n");
        let (mut r, _) = router(&conf);
        assert!(!keeps_record(&mut r, "t", &mut record(r#"{"n":5}"#)));
        assert!(keeps_record(&mut r, "t", &mut record(r#"{"n":"5"}"#)));
    }

    #[test]
    fn logical_ops() {
        let conf = format!("{INPUT}[FILTER]\n    Name grep\n    Match *\n    Logical_Op or\n    Regex log ^a\n    Regex log ^b\n");
        let (mut r, _) = router(&conf);
        assert!(keeps_record(&mut r, "t", &mut record(r#"{"log":"b1"}"#)));
        assert!(!keeps_record(&mut r, "t", &mut record(r#"{"log":"c1"}"#)));
        assert!(!keeps_record(&mut r, "t", &mut record(r#"{"other":"a"}"#)));
    }

    /// The record as its JSON text (keys in order).
    fn text(record: &Record) -> String {
        serde_json::Value::Object(record.to_json()).to_string()
    }

    #[test]
    fn parse_json_conf_unpacks_json_lines() {
        // aws-for-fluent-bit's /fluent-bit/configs/parse-json.conf filter.
        let conf = format!("{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data True\n");
        let (mut r, _) = router(&conf);
        let line = r#"{"level":"warn","msg":"slow","n":3,"nested":{"a":[1,"b"]},"time":"03/Apr/2018:23:06:09 +0000","source":"app"}"#;
        let record_of = |line: &str| serde_json::json!({"log": line, "source": "stdout", "container_name": "/ecs-app-1"});
        // The record's own `source` wins over the parsed one; `log` is gone;
        // the time key set the time and left.
        assert_eq!(
            filtered(&mut r, "app-firelens-1", record_of(line)),
            (
                r#"{"container_name":"/ecs-app-1","level":"warn","msg":"slow","n":3,"nested":{"a":[1,"b"]},"source":"stdout"}"#.to_string(),
                1_522_796_769_000_000_000
            )
        );
        // What is not one JSON object is left as it is, time included.
        for line in ["plain text", "{\"a\":", "[1]", "{} {}"] {
            let before = text(&record(&record_of(line).to_string()));
            assert_eq!(
                filtered(&mut r, "app-firelens-1", record_of(line)),
                (before, 7),
                "{line}"
            );
        }
        // An Envoy access line stays for Sluice's own parser.
        let access = r#"{"method":"GET","path":"/a","response_code":200}"#;
        let mut rec = record(&serde_json::json!({"log": access}).to_string());
        let before = text(&rec);
        let is_access = |line: &str, _: &Record| line == access;
        assert!(r.filter(
            "envoy-firelens-1",
            &mut rec,
            &mut 0,
            &is_access,
            &mut Vec::new()
        ));
        assert_eq!(text(&rec), before);
    }

    #[test]
    fn aws_s_parse_apache_conf_example() {
        // amazon-ecs-firelens-examples' parse-common-log-formats, which
        // relies on aws-for-fluent-bit's /fluent-bit/parsers/parsers.conf.
        let conf = format!("[SERVICE]\n    Log_Level info\n    Parsers_File /fluent-bit/parsers/parsers.conf\n\n{INPUT}[FILTER]\n    Name parser\n    Match **\n    Parser apache\n    Key_Name log\n");
        let (mut r, _) = router(&conf);
        let line = r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "-" "curl/8.5.0""#;
        let record =
            serde_json::json!({"log": line, "source": "stdout", "container_name": "/ecs-web-1"});
        // Without Reserve_Data only the parsed keys are left, as AWS's
        // example notes.
        assert_eq!(
            filtered(&mut r, "web-firelens-1", record),
            (
                r#"{"agent":"curl/8.5.0","code":"200","host":"10.0.0.1","method":"GET","path":"/a.gif","referer":"-","size":"2326","user":"frank"}"#.to_string(),
                971_211_336_000_000_000
            )
        );
    }

    #[test]
    fn a_syslog_time_without_a_year_takes_the_record_s_year() {
        let conf = format!("[SERVICE]\n    Parsers_File /fluent-bit/parsers/parsers.conf\n{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser syslog-rfc3164\n");
        let (mut r, _) = router(&conf);
        let mut rec = record(r#"{"log":"<13>Feb  5 17:32:18 host app[7]: hi","source":"stdout"}"#);
        // The record was read on 2026-11-28T10:00:00Z.
        let mut time_ns = 1_795_860_000_000_000_000;
        assert!(r.filter(
            "app",
            &mut rec,
            &mut time_ns,
            &|_, _| false,
            &mut Vec::new()
        ));
        assert_eq!(
            text(&rec),
            r#"{"host":"host","ident":"app","message":"hi","pid":"7","pri":"13","time":"Feb  5 17:32:18"}"#
        );
        // 2026-02-05T17:32:18Z.
        assert_eq!(time_ns, 1_770_312_738_000_000_000);
    }

    /// A lua filter between others: what it drops stops there, and the
    /// records it splits one into each go on from the filter after it.
    #[test]
    fn lua_filter_in_the_chain() {
        let conf = format!(
            "{INPUT}[FILTER]\n    Name record_modifier\n    Match *\n    Record before yes\n\
             [FILTER]\n    Name lua\n    Match *\n    call cb\n    code function cb(tag, ts, r) if r.log == 'drop' then return -1, ts, r end if r.log == 'split' then return 1, ts + 1, {{{{part = 'a', before = r.before}}, {{part = 'b'}}}} end return 0, ts, r end\n\
             [FILTER]\n    Name record_modifier\n    Match *\n    Record after yes\n"
        );
        let (mut r, _) = router(&conf);
        let mut run = |json: &str| {
            let mut rec = record(json);
            let mut rewritten = Vec::new();
            let mut time_ns = 1_000_000_000;
            let kept = r.filter("app", &mut rec, &mut time_ns, &|_, _| false, &mut rewritten);
            let copies: Vec<(String, String, i64)> = rewritten
                .iter()
                .map(|c| (c.tag.clone(), text(&c.record), c.time_ns))
                .collect();
            (kept.then(|| (text(&rec), time_ns)), copies)
        };
        assert_eq!(run(r#"{"log":"drop"}"#), (None, vec![]));
        assert_eq!(
            run(r#"{"log":"keep"}"#),
            (
                Some((
                    r#"{"after":"yes","before":"yes","log":"keep"}"#.to_string(),
                    1_000_000_000
                )),
                vec![]
            )
        );
        assert_eq!(
            run(r#"{"log":"split"}"#),
            (
                Some((
                    r#"{"after":"yes","before":"yes","part":"a"}"#.to_string(),
                    2_000_000_000
                )),
                vec![(
                    "app".to_string(),
                    r#"{"after":"yes","part":"b"}"#.to_string(),
                    2_000_000_000
                )]
            )
        );
    }

    /// AWS's example for splitting log streams by level: the parser
    /// filter unpacks the line, and the stream tasks copy the records of
    /// each level to a tag of their own, whose filters the copy runs.
    #[test]
    fn stream_tasks_copy_what_the_filters_left() {
        let conf = format!(
            "{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data True\n\
             [FILTER]\n    Name record_modifier\n    Match logs.*\n    Record split yes\n\
             [STREAM_TASK]\n    Name   debug_logs\n    Exec   CREATE STREAM debug WITH (tag='logs.debug') AS SELECT * from TAG:'app*' WHERE level = 'debug';\n\
             [STREAM_TASK]\n    Name   error_logs\n    Exec   CREATE STREAM error WITH (tag='logs.error') AS SELECT msg FROM TAG:'app*' WHERE level = 'error';\n\
             [OUTPUT]\n    Name cloudwatch\n    Match logs.*\n    region us-east-1\n    log_group_name streams-example\n    log_stream_prefix log-level-\n"
        );
        let (mut r, _) = router(&conf);
        let mut run = |json: &str| {
            let mut rec = record(json);
            let mut rewritten = Vec::new();
            let kept = r.filter(
                "app-firelens-1",
                &mut rec,
                &mut 5,
                &|_, _| false,
                &mut rewritten,
            );
            assert!(kept);
            let copies: Vec<(String, String)> = rewritten
                .iter()
                .map(|c| (c.tag.clone(), text(&c.record)))
                .collect();
            (text(&rec), copies)
        };
        assert_eq!(
            run(r#"{"log":"{\"level\":\"debug\",\"msg\":\"x\"}","source":"stdout"}"#),
            (
                r#"{"level":"debug","msg":"x","source":"stdout"}"#.to_string(),
                vec![(
                    "logs.debug".to_string(),
                    r#"{"level":"debug","msg":"x","source":"stdout","split":"yes"}"#.to_string()
                )]
            )
        );
        assert_eq!(
            run(r#"{"log":"{\"level\":\"error\",\"msg\":\"boom\"}"}"#).1,
            [(
                "logs.error".to_string(),
                r#"{"msg":"boom","split":"yes"}"#.to_string()
            )]
        );
        assert_eq!(run(r#"{"log":"{\"level\":\"info\"}"}"#).1, []);
        assert_eq!(r.outputs_for("logs.debug").len(), 1);
        assert_eq!(r.outputs_for("app-firelens-1").len(), 0);
    }

    /// Each filter's plugin metrics, as Fluent Bit counts one-record
    /// chunks (Docker's frames). Sizes are msgpack events
    /// `[[time, {}], record]`: `{"log":"GET /a","source":"stdout"}` is 39
    /// bytes, and 60 after record_modifier, whose encoder writes the map
    /// with a 5-byte header.
    #[test]
    fn filters_plugin_metrics_count_what_each_filter_did() {
        let conf = format!(
            "{INPUT}[FILTER]\n    Name record_modifier\n    Match *\n    Record ecs_cluster prod\n\
             [FILTER]\n    Name multiline\n    Match *\n    multiline.key_content log\n    multiline.parser java\n\
             [FILTER]\n    Name grep\n    Alias drop_get\n    Match app-*\n    Exclude log ^GET\n\
             [FILTER]\n    Name rewrite_tag\n    Match app-*\n    Rule $log ^(keep) new.$1 true\n\
             [FILTER]\n    Name lua\n    Match new.*\n    call cb\n    code function cb(t, ts, r) return 1, ts, {{{{log = 'a'}}, {{log = 'bc'}}}} end\n"
        );
        let plan = crate::fluentbit::tests::plan_of(&conf).unwrap();
        let metrics = Arc::new(PluginMetrics::new(&plan));
        let policies = Arc::new(GroupPolicies::new(GroupPolicy::default()));
        let mut r = Router::new(plan, policies, Some(metrics.clone()));
        let mut kept = Vec::new();
        for line in ["GET /a", "keep me", "other"] {
            let mut rec = record(&format!(r#"{{"log":"{line}","source":"stdout"}}"#));
            let mut rewritten = Vec::new();
            if r.filter(
                "app-firelens-1",
                &mut rec,
                &mut 0,
                &|_, _| false,
                &mut rewritten,
            ) {
                kept.push(text(&rec));
            }
            kept.extend(
                rewritten
                    .iter()
                    .map(|c| format!("{} {}", c.tag, text(&c.record))),
            );
        }
        assert_eq!(
            kept,
            [
                r#"{"ecs_cluster":"prod","log":"keep me","source":"stdout"}"#,
                // (The lua filter's second record first: it is handed on
                // while the copy is still in the filters.)
                r#"new.keep {"log":"bc"}"#,
                r#"new.keep {"log":"a"}"#,
                r#"{"ecs_cluster":"prod","log":"other","source":"stdout"}"#,
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&metrics.json()).unwrap();
        let zero = |m: serde_json::Value| {
            let mut all = serde_json::json!({"records": 0, "drop_records": 0, "drop_bytes": 0, "add_records": 0, "bytes": 0});
            all.as_object_mut()
                .unwrap()
                .extend(m.as_object().unwrap().clone());
            all
        };
        assert_eq!(
            json["filter"],
            serde_json::json!({
                // The three records and the copy (which it changes again:
                // its value is set anew).
                "record_modifier.0": zero(serde_json::json!({"records": 4, "bytes": 60 + 61 + 59 + 61})),
                // The first record, as its input made it.
                "drop_get": zero(serde_json::json!({"records": 3, "drop_records": 1, "drop_bytes": 39})),
                // One copy of 57 bytes; the original, kept, written again.
                "rewrite_tag.3": zero(serde_json::json!({"records": 2, "bytes": 57, "emit_records": 1})),
                // One record made two.
                "lua.4": zero(serde_json::json!({"records": 1, "add_records": 1, "bytes": 20 + 21})),
            })
        );
        assert_eq!(
            json["input"]["emitter_for_rewrite_tag.3"],
            serde_json::json!({"records": 1, "bytes": 57})
        );
    }

    #[test]
    fn rewrite_tag_sends_a_copy_through_its_new_tag_s_filters() {
        let conf = format!(
            "{INPUT}[FILTER]\n    Name rewrite_tag\n    Match app-*\n    Rule $log ^(ERROR|WARN) alerts.$1 false\n    Rule $level ^debug$ debug.$TAG true\n\
             [FILTER]\n    Name record_modifier\n    Match alerts.*\n    Record alert yes\n\
             [FILTER]\n    Name grep\n    Match debug.*\n    Exclude log noisy\n\
             [FILTER]\n    Name rewrite_tag\n    Match *\n    Rule $log ^ERROR again.$TAG false\n"
        );
        let (mut r, _) = router(&conf);
        let run = |r: &mut Router, json: &str| {
            let mut rec = record(json);
            let mut rewritten = Vec::new();
            let mut time_ns = 5;
            let kept = r.filter(
                "app-firelens-1",
                &mut rec,
                &mut time_ns,
                &|_, _| false,
                &mut rewritten,
            );
            let copies: Vec<(String, String, i64)> = rewritten
                .iter()
                .map(|c| (c.tag.clone(), text(&c.record), c.time_ns))
                .collect();
            (kept.then(|| text(&rec)), copies)
        };
        // Not kept: the copy alone goes on, through the filters of its tag
        // (the record_modifier; then the last rewrite_tag, whose copy
        // passes every filter again but the rewrite_tags that made it).
        assert_eq!(
            run(&mut r, r#"{"log":"ERROR disk full"}"#),
            (
                None,
                vec![(
                    "again.alerts.ERROR".to_string(),
                    r#"{"alert":"yes","log":"ERROR disk full"}"#.to_string(),
                    5
                ),]
            )
        );
        assert_eq!(
            run(&mut r, r#"{"log":"WARN slow"}"#),
            (
                None,
                vec![(
                    "alerts.WARN".to_string(),
                    r#"{"alert":"yes","log":"WARN slow"}"#.to_string(),
                    5
                )]
            )
        );
        // Kept: the original and the copy; a copy the new tag's grep drops
        // is gone.
        assert_eq!(
            run(&mut r, r#"{"log":"hi","level":"debug"}"#),
            (
                Some(r#"{"level":"debug","log":"hi"}"#.to_string()),
                vec![(
                    "debug.app-firelens-1".to_string(),
                    r#"{"level":"debug","log":"hi"}"#.to_string(),
                    5
                )]
            )
        );
        assert_eq!(
            run(&mut r, r#"{"log":"noisy","level":"debug"}"#),
            (
                Some(r#"{"level":"debug","log":"noisy"}"#.to_string()),
                vec![]
            )
        );
        assert_eq!(
            run(&mut r, r#"{"log":"fine"}"#),
            (Some(r#"{"log":"fine"}"#.to_string()), vec![])
        );
    }

    #[test]
    fn rewrite_tag_filters_that_feed_each_other_stop_at_the_limit() {
        // Three filters that keep their records and match every tag: each
        // copy is copied again by the filters that did not make it.
        let rule = "[FILTER]\n    Name rewrite_tag\n    Match *\n    Rule $log . x.$TAG true\n";
        let conf = format!("{INPUT}{rule}{rule}{rule}");
        let (mut r, _) = router(&conf);
        let mut rewritten = Vec::new();
        let mut rec = record(r#"{"log":"a"}"#);
        assert!(r.filter("t", &mut rec, &mut 0, &|_, _| false, &mut rewritten));
        // 3 + 3*2 + 3*2*1 = 15 orderings: under the limit, all made.
        assert_eq!(rewritten.len(), 15);
        assert!(!r.rewrite_limit_logged);
        let conf = format!("{INPUT}{rule}{rule}{rule}{rule}");
        let (mut r, _) = router(&conf);
        let mut rewritten = Vec::new();
        assert!(r.filter("t", &mut rec, &mut 0, &|_, _| false, &mut rewritten));
        assert_eq!(rewritten.len(), MAX_COPIES);
        assert!(r.rewrite_limit_logged);
    }

    #[test]
    fn parse_json_then_lift_a_nested_object() {
        let conf = format!("{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data On\n[FILTER]\n    Name nest\n    Match *\n    Operation lift\n    Nested_under req\n    Add_prefix req.\n");
        let (mut r, _) = router(&conf);
        let mut rec = record(
            r#"{"log":"{\"msg\":\"hi\",\"req\":{\"path\":\"/a\",\"tries\":2}}","source":"stdout"}"#,
        );
        assert!(keeps_record(&mut r, "t", &mut rec));
        assert_eq!(
            text(&rec),
            r#"{"msg":"hi","req.path":"/a","req.tries":2,"source":"stdout"}"#
        );
    }

    #[test]
    fn a_line_of_many_keys_is_unpacked_whole() {
        let conf = format!("{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data On\n");
        let (mut r, _) = router(&conf);
        let line: serde_json::Map<String, serde_json::Value> = (0..20_000)
            .map(|i| (format!("k{i:05}"), serde_json::Value::from(i)))
            .collect();
        let line = serde_json::Value::Object(line).to_string();
        let mut rec = record(&serde_json::json!({"log": line, "source": "stdout"}).to_string());
        assert!(keeps_record(&mut r, "t", &mut rec));
        assert_eq!(rec.len(), 20_001);
        assert_eq!(rec.get_str("source"), Some("stdout"));
        let keys: Vec<&str> = rec.iter().map(|(k, _)| k).collect();
        assert_eq!((keys[0], keys[19_999]), ("k00000", "k19999"));
        assert_eq!(rec.get("k12345").map(|v| v.to_json()), Some(12345.into()));
    }

    #[test]
    fn parser_filter_options() {
        let cases = [
            // Without Reserve_Data only the parsed keys are left.
            ("", r#"{"a":"1","log":"inner"}"#),
            (
                "    Preserve_Key On\n",
                r#"{"a":"1","log":"{\"a\":\"1\",\"log\":\"inner\"}"}"#,
            ),
            (
                "    Reserve_Data On\n",
                r#"{"a":"1","log":"inner","other":"x"}"#,
            ),
            (
                "    Reserve_Data On\n    Preserve_Key On\n",
                r#"{"a":"1","log":"{\"a\":\"1\",\"log\":\"inner\"}","other":"x"}"#,
            ),
        ];
        for (options, expected) in cases {
            let conf = format!("{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser docker\n    Parser json\n{options}");
            let (mut r, _) = router(&conf);
            let mut rec = record(r#"{"log":"{\"a\":\"1\",\"log\":\"inner\"}","other":"x"}"#);
            assert!(keeps_record(&mut r, "t", &mut rec));
            assert_eq!(text(&rec), expected, "{options}");
        }
        // A parser filter then a grep on a parsed key.
        let conf = format!("{INPUT}[FILTER]\n    Name parser\n    Match *\n    Key_Name $log\n    Parser json\n[FILTER]\n    Name grep\n    Match *\n    Regex level ^error$\n");
        let (mut r, _) = router(&conf);
        assert!(keeps_record(
            &mut r,
            "t",
            &mut record(r#"{"log":"{\"level\":\"error\"}"}"#)
        ));
        assert!(!keeps_record(
            &mut r,
            "t",
            &mut record(r#"{"log":"{\"level\":\"info\"}"}"#)
        ));
        // A value that is not a string is not parsed.
        let mut rec = record(r#"{"log":{"level":"error"}}"#);
        assert!(!keeps_record(&mut r, "t", &mut rec));
    }
}
