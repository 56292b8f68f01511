//! One classified line as one JSON object: the shape `sluice parse` prints
//! and `sluice run` writes, with the event's metadata when there is one.

use sluice_firelens::{FieldValue, Record};
use sluice_parser::json_out::{write_str_contents, JsonOut};
use sluice_parser::{AccessRecord, Classified, Classifier, Field, Redactor, RouteTable};

use crate::stats::RequestFacts;

/// Everything needed to turn a raw line into its redacted JSON object.
pub struct LineRenderer {
    pub classifier: Classifier,
    pub redactor: Redactor,
    pub routes: RouteTable,
    /// Containers whose lines may be access records; empty means every
    /// container. Lines of other containers are application lines.
    pub access_containers: Vec<String>,
    /// Application lines with metadata as JSON objects (stdout, files, and
    /// CloudWatch with `app_format = "json"`), or as the redacted line alone.
    pub app_lines_as_json: bool,
    /// Whether [`Rendered::facts`] is filled for access records (statistics
    /// and sampling need them).
    pub collect_facts: bool,
    /// Which metadata each event carries.
    pub metadata: Metadata,
}

/// Drop-in mode's record members as last rendered, by position in the
/// record. The keys Docker and the generated `record_modifier` give
/// (`container_id`, `container_name`, `source`, the `ecs_*` keys) are the
/// same for every record of a container; redacting and escaping each again
/// took about 580 instructions per member (`benches/callgrind_burst.py
/// --drop-in`). The renderings kept are redacted; the values they came
/// from are kept only to compare the next record's with, and no `Debug`
/// can print them.
#[derive(Default)]
pub struct MemberCache {
    members: Vec<CachedMember>,
}

impl MemberCache {
    /// Longer members (key and value), which are seldom metadata, are
    /// rendered each time and not kept.
    const MOST_BYTES: usize = 256;
    /// Members past the first 16 of a record are rendered each time: the
    /// cache stays under about 20 KiB whatever records arrive.
    const MOST_MEMBERS: usize = 16;
}

#[derive(Default)]
struct CachedMember {
    key: String,
    value: String,
    /// `"key":value`, redacted, as plain JSON.
    json: String,
    /// `json` escaped, as CloudWatch messages carry it.
    escaped_json: String,
}

/// The metadata an event carries besides what varies per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// Everything: `sluice parse` and stdout, where one stream mixes every
    /// container and kind.
    All,
    /// Only these (`cloudwatch.metadata`): in a log stream, what is the
    /// same for every event (kind, container, task) is said by the group
    /// and stream names, and `@timestamp` is the event's time.
    Only(Vec<String>),
}

impl Metadata {
    fn includes(&self, field: &str) -> bool {
        match self {
            Metadata::All => true,
            Metadata::Only(fields) => fields.iter().any(|f| f == field),
        }
    }
}

/// The fields `cloudwatch.metadata` may list.
pub const METADATA_FIELDS: [&str; 10] = [
    "kind",
    "timestamp",
    "tag",
    "start_time",
    "container_name",
    "container_id",
    "source",
    "ecs_cluster",
    "ecs_task_arn",
    "ecs_task_definition",
];

/// What [`LineRenderer::render_event`] found. Its facts borrow from the
/// classified line and the event's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<'a> {
    pub access: bool,
    /// The event's time in ms: the access record's start time, else the
    /// forward event's time.
    pub time_ms: i64,
    /// What statistics need from an access record (when collected).
    pub facts: Option<RequestFacts<'a>>,
    /// Access-record fields the redactor changed.
    pub redactions: usize,
}

impl Rendered<'_> {
    /// An application line's rendering: its time, nothing for statistics.
    fn app(time_ms: i64) -> Rendered<'static> {
        Rendered {
            access: false,
            time_ms,
            facts: None,
            redactions: 0,
        }
    }

    /// The same, with the facts' text copied out of the line it borrows.
    pub fn into_owned(self) -> Rendered<'static> {
        Rendered {
            facts: self.facts.map(RequestFacts::into_owned),
            access: self.access,
            time_ms: self.time_ms,
            redactions: self.redactions,
        }
    }
}

/// Where a line came from: written between `kind` and the record's fields.
pub struct EventMeta<'a> {
    /// Milliseconds since the epoch the forward client gave the event.
    pub time_ms: i64,
    pub tag: &'a str,
    /// The forward record.
    pub record: &'a Record,
    /// The record key the line came from (`log`, `message`), left out of
    /// `extra`; `None` when the whole record was the line.
    pub line_key: Option<&'a str>,
    /// The container's task-definition name (see `ecs::Identity`).
    pub container: &'a str,
}

/// Record keys written at the top level; the others go under `extra`.
const TOP_LEVEL_KEYS: [&str; 6] = [
    "container_name",
    "container_id",
    "source",
    "ecs_cluster",
    "ecs_task_arn",
    "ecs_task_definition",
];

impl LineRenderer {
    /// Appends `{"kind":"access",...,"route":"..."}` or
    /// `{"kind":"app","log":"..."}` for `line` (without a newline).
    pub fn render(&self, line: &str, out: &mut String) {
        let _access = self.render_event(line, None, out);
    }

    /// [`LineRenderer::render`] with the event's metadata: `timestamp` (the
    /// access record's start time, else the event time, in ms), `tag`, the
    /// FireLens/Docker fields, and any other record keys under `extra`.
    /// Application lines are the redacted line alone unless
    /// `app_lines_as_json`.
    pub fn render_event(
        &self,
        line: &str,
        meta: Option<&EventMeta<'_>>,
        out: &mut impl JsonOut,
    ) -> Rendered<'static> {
        let mut classified = Classified::App(line);
        self.classify_into(line, meta.map(|m| m.container), &mut classified);
        self.render_classified(&mut classified, meta, out)
            .into_owned()
    }

    /// Whether `line`, of `container`, is an Envoy access line.
    pub fn is_access_line(&self, line: &str, container: &str) -> bool {
        let mut classified = Classified::App(line);
        self.classify_into(line, Some(container), &mut classified);
        matches!(classified, Classified::Access(_))
    }

    /// An access record or an application line; lines of containers that
    /// `access_containers` leaves out are application lines.
    /// Filled where the caller keeps it (see [`Classifier::classify_into`]).
    pub fn classify_into<'a>(
        &'a self,
        line: &'a str,
        container: Option<&str>,
        classified: &mut Classified<'a>,
    ) {
        if container.is_some_and(|c| !self.may_be_access(c)) {
            *classified = Classified::App(sluice_parser::trim_line_ending(line));
        } else {
            self.classifier.classify_into(line, classified);
        }
    }

    /// [`LineRenderer::render_event`] of a line already classified. The
    /// record is redacted in place: it is borrowed, not moved, because
    /// moving an `AccessRecord` (744 bytes) is a copy each time.
    pub fn render_classified<'r>(
        &self,
        classified: &'r mut Classified<'_>,
        meta: Option<&EventMeta<'r>>,
        out: &mut impl JsonOut,
    ) -> Rendered<'r> {
        let event_time = meta.map_or(0, |m| m.time_ms);
        match classified {
            Classified::Access(record) => {
                let redactions = self.redactor.redact_record(record);
                let record: &'r AccessRecord = record;
                let time_ms = record.start_time_ms().unwrap_or(event_time);
                out.char('{');
                let mut first = true;
                self.write_meta("access", meta, time_ms, out, &mut first);
                // `start_time` says to the millisecond what the event's
                // CloudWatch timestamp says: left out unless asked for.
                let skip_start_time = record.start_time_ms().is_some()
                    && meta.is_some()
                    && !self.metadata.includes("start_time");
                let skip = skip_start_time.then_some(Field::StartTime);
                if !first {
                    out.char(',');
                }
                if record.write_json_members_except(out, skip) {
                    out.char(',');
                }
                let facts = self.write_route(record, meta.map(|m| m.container), out);
                out.char('}');
                Rendered {
                    access: true,
                    time_ms,
                    facts,
                    redactions,
                }
            }
            Classified::App(text) if !self.app_lines_as_json => {
                out.text(&self.redactor.redact_text(text));
                Rendered::app(event_time)
            }
            Classified::App(text) => {
                out.char('{');
                let mut first = true;
                self.write_meta("app", meta, event_time, out, &mut first);
                if !first {
                    out.char(',');
                }
                out.member_name("log");
                out.string(&self.redactor.redact_text(text));
                out.char('}');
                Rendered::app(event_time)
            }
        }
    }

    /// The event as Fluent Bit's CloudWatch outputs send it (FireLens
    /// drop-in mode): the record as a JSON object, every value redacted, or
    /// `log_key`'s value alone. An Envoy access line becomes its parsed,
    /// redacted record and `route`, followed by the record's other keys
    /// (the metadata; left out with `log_key`).
    pub fn render_fluentbit(
        &self,
        line: &str,
        meta: &EventMeta<'_>,
        log_key: Option<&str>,
        out: &mut impl JsonOut,
    ) -> Rendered<'static> {
        let mut classified = Classified::App(line);
        self.classify_into(line, Some(meta.container), &mut classified);
        let members = &mut MemberCache::default();
        self.render_fluentbit_classified(&mut classified, meta, log_key, members, out)
            .into_owned()
    }

    /// [`LineRenderer::render_fluentbit`] of a line already classified,
    /// with the record's members rendered through `members`, which the
    /// caller keeps from one record to the next.
    pub fn render_fluentbit_classified<'r>(
        &self,
        classified: &'r mut Classified<'_>,
        meta: &EventMeta<'r>,
        log_key: Option<&str>,
        members: &mut MemberCache,
        out: &mut impl JsonOut,
    ) -> Rendered<'r> {
        if let Classified::Access(record) = classified {
            let redactions = self.redactor.redact_record(record);
            let record: &'r AccessRecord = record;
            let time_ms = record.start_time_ms().unwrap_or(meta.time_ms);
            out.char('{');
            if record.write_json_members(out) {
                out.char(',');
            }
            let facts = self.write_route(record, Some(meta.container), out);
            if log_key.is_none() {
                // Positions in the whole record, as the application
                // lines below count them: records of both kinds share the
                // cache.
                let others = meta
                    .record
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| Some(*k) != meta.line_key);
                for (position, (key, value)) in others {
                    out.char(',');
                    self.write_cached_member(members, position, key, value, out);
                }
            }
            out.char('}');
            return Rendered {
                access: true,
                time_ms,
                facts,
                redactions,
            };
        }
        match log_key.and_then(|k| meta.record.get(k)) {
            Some(FieldValue::Str(s)) => out.text(&self.redactor.redact_text(s)),
            Some(FieldValue::Json(other)) => {
                out.text(&self.redactor.redact_text(&other.to_string()))
            }
            None => {
                out.char('{');
                for (position, (key, value)) in meta.record.iter().enumerate() {
                    if position > 0 {
                        out.char(',');
                    }
                    // The line itself differs from record to record.
                    if Some(key) == meta.line_key {
                        self.write_member(key, value, out);
                    } else {
                        self.write_cached_member(members, position, key, value, out);
                    }
                }
                out.char('}');
            }
        }
        Rendered::app(meta.time_ms)
    }

    /// `"route":"…"` for an access record; returns the record's facts when
    /// statistics are collected.
    fn write_route<'r>(
        &self,
        record: &'r AccessRecord<'_>,
        container: Option<&'r str>,
        out: &mut impl JsonOut,
    ) -> Option<RequestFacts<'r>> {
        out.member_name("route");
        let route = self.routes.route_key(record);
        out.string(&route);
        self.collect_facts
            .then(|| RequestFacts::from_record(record, route, container))
    }

    /// `"key":value`, the value redacted.
    fn write_member(&self, key: &str, value: FieldValue<'_>, out: &mut impl JsonOut) {
        out.string(key);
        out.char(':');
        match value {
            FieldValue::Str(s) => out.string(&self.redactor.redact_text(s)),
            FieldValue::Json(other) => out.text(&self.redactor.redact_text(&other.to_string())),
        }
    }

    /// [`LineRenderer::write_member`] through the cache: a short string
    /// value rendered at the same position of the last record, under the
    /// same key, is written from its rendering then.
    fn write_cached_member(
        &self,
        members: &mut MemberCache,
        position: usize,
        key: &str,
        value: FieldValue<'_>,
        out: &mut impl JsonOut,
    ) {
        let kept = |v: &&str| {
            key.len() + v.len() <= MemberCache::MOST_BYTES && position < MemberCache::MOST_MEMBERS
        };
        let Some(text) = value.as_str().filter(kept) else {
            self.write_member(key, value, out);
            return;
        };
        if members.members.len() <= position {
            members
                .members
                .resize_with(position + 1, CachedMember::default);
        }
        let cached = &mut members.members[position];
        if cached.key != key || cached.value != text {
            cached.key.clear();
            cached.key.push_str(key);
            cached.value.clear();
            cached.value.push_str(text);
            cached.json.clear();
            self.write_member(key, value, &mut cached.json);
            cached.escaped_json.clear();
            write_str_contents(&mut cached.escaped_json, &cached.json);
        }
        out.rendered(&cached.json, &cached.escaped_json);
    }

    fn may_be_access(&self, container: &str) -> bool {
        self.access_containers.is_empty() || self.access_containers.iter().any(|c| c == container)
    }

    /// The metadata members `self.metadata` selects (with a comma before
    /// each but the first): `kind`, `timestamp`, `tag`, the FireLens and
    /// Docker keys; then the record's other keys under `extra`, which vary
    /// per event and are always written.
    fn write_meta<O: JsonOut>(
        &self,
        kind: &str,
        meta: Option<&EventMeta<'_>>,
        time_ms: i64,
        out: &mut O,
        first: &mut bool,
    ) {
        let mut member = |out: &mut O, key: &str| {
            if !*first {
                out.char(',');
            }
            *first = false;
            out.member_name(key);
        };
        if self.metadata.includes("kind") {
            member(out, "kind");
            out.string(kind);
        }
        let Some(meta) = meta else { return };
        if self.metadata.includes("timestamp") {
            member(out, "timestamp");
            out.int(time_ms);
        }
        if self.metadata.includes("tag") {
            member(out, "tag");
            out.string(meta.tag);
        }
        for key in TOP_LEVEL_KEYS {
            if !self.metadata.includes(key) {
                continue;
            }
            if let Some(value) = meta.record.get_str(key) {
                member(out, key);
                // The task-definition name, not Docker's "/ecs-…-name-…".
                let value = if key == "container_name" {
                    meta.container
                } else {
                    value
                };
                out.string(&self.redactor.redact_text(value));
            }
        }
        let Some(line_key) = meta.line_key else {
            return;
        };
        // Written as found, with no list gathered first: most records
        // (Docker's) have no extra key at all.
        let extras = meta
            .record
            .iter()
            .filter(|(k, _)| *k != line_key && !TOP_LEVEL_KEYS.contains(k));
        let mut any = false;
        for (key, value) in extras {
            if any {
                out.char(',');
            } else {
                member(out, "extra");
                out.char('{');
                any = true;
            }
            self.write_member(key, value, out);
        }
        if any {
            out.char('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_parser::json_out::{escape, Escaped};
    use sluice_parser::QueryMode;

    use super::*;

    fn renderer(app_lines_as_json: bool, metadata: Metadata) -> LineRenderer {
        LineRenderer {
            classifier: Classifier::new(),
            redactor: Redactor::new(QueryMode::Redact),
            routes: RouteTable::new(),
            access_containers: Vec::new(),
            app_lines_as_json,
            collect_facts: true,
            metadata,
        }
    }

    const LINES: [&str; 4] = [
        r#"[2025-11-04T06:49:07.518Z] "GET /api/v1/users/7?token=s3cret HTTP/1.1" 200 - 0 512 12 11 "10.0.0.1" "agent \"quoted\" \\ back" "5f1c2d3e-aaaa-4bbb-8ccc-123456789abc" "orders.internal:8080" "10.0.2.9:8080""#,
        "2025-11-04 06:49:07,518 INFO  tab\there \"quoted\" é \u{1}",
        r#"{"level":"info","msg":"a \"json\" line"}"#,
        "",
    ];

    /// What the output stage writes for CloudWatch (escaped) is the plain
    /// rendering escaped, and its length is the plain rendering's.
    #[test]
    fn escaped_rendering_is_the_plain_rendering_escaped() {
        let record = Record::from(
            json!({
                "container_name": "/ecs-orders-3-envoy-8ac2",
                "source": "stdout",
                "log": "ignored",
                "other": "x\"y",
                "n": 7,
            })
            .as_object()
            .cloned()
            .unwrap(),
        );
        let meta = EventMeta {
            time_ms: 1_762_238_947_518,
            tag: "envoy-firelens-5a0a",
            record: &record,
            line_key: Some("log"),
            container: "envoy",
        };
        let renderers = [
            renderer(true, Metadata::All),
            renderer(false, Metadata::Only(vec!["kind".into()])),
        ];
        for r in &renderers {
            for line in LINES {
                let mut plain = String::new();
                let expected = r.render_event(line, Some(&meta), &mut plain);
                let mut text = String::new();
                let mut escaped = Escaped::new(&mut text);
                let rendered = r.render_event(line, Some(&meta), &mut escaped);
                assert_eq!(rendered, expected, "{line}");
                assert_eq!(escaped.len(), plain.len(), "{line}");
                assert_eq!(text, escape(&plain), "{line}");
                for log_key in [None, Some("log")] {
                    let mut plain = String::new();
                    let expected = r.render_fluentbit(line, &meta, log_key, &mut plain);
                    let mut text = String::new();
                    let mut escaped = Escaped::new(&mut text);
                    let rendered = r.render_fluentbit(line, &meta, log_key, &mut escaped);
                    assert_eq!(rendered, expected, "{line}");
                    assert_eq!(escaped.len(), plain.len(), "{line}");
                    assert_eq!(text, escape(&plain), "{line}");
                }
            }
        }
    }

    /// Drop-in members written from the cache are what rendering each
    /// record afresh writes, plain and escaped, as the records' values and
    /// positions change; what the cache holds is redacted.
    #[test]
    fn members_from_the_cache_are_the_fresh_rendering() {
        let r = renderer(false, Metadata::All);
        let records = [
            json!({"container_id": "abc", "source": "stdout", "log": "first", "url": "/a?token=s3cret", "q": "x\"y"}),
            json!({"container_id": "abc", "source": "stdout", "log": "second", "url": "/a?token=s3cret", "q": "x\"y"}),
            json!({"container_id": "abc", "source": "stderr", "log": "third", "url": "/a?token=other", "q": "x\"y"}),
            json!({"n": 7, "container_id": "abc", "source": "stdout", "log": "fourth", "q": "x\"y"}),
            // The same value as the last record's first, under another
            // key; a value too long to keep.
            json!({"a": "abc", "source": "stdout", "log": "x", "q": "x\"y", "url": format!("/{}?token=s3cret", "a".repeat(300))}),
        ]
        // Keys in serde_json's order (sorted), so "n" moves the members
        // after it one position on.
        .map(|v| Record::from(v.as_object().cloned().unwrap()));
        let mut plain_cache = MemberCache::default();
        let mut escaped_cache = MemberCache::default();
        let mut plain_lines = Vec::new();
        for record in &records {
            for line in [LINES[0], LINES[1]] {
                let meta = EventMeta {
                    time_ms: 1_762_238_947_518,
                    tag: "app-firelens-5a0a",
                    record,
                    line_key: Some("log"),
                    container: "app",
                };
                let mut expected = String::new();
                r.render_fluentbit(line, &meta, None, &mut expected);
                let mut plain = String::new();
                let mut classified = r.classifier.classify(line);
                r.render_fluentbit_classified(
                    &mut classified,
                    &meta,
                    None,
                    &mut plain_cache,
                    &mut plain,
                );
                assert_eq!(plain, expected);
                let mut text = String::new();
                let mut escaped = Escaped::new(&mut text);
                let mut classified = r.classifier.classify(line);
                r.render_fluentbit_classified(
                    &mut classified,
                    &meta,
                    None,
                    &mut escaped_cache,
                    &mut escaped,
                );
                assert_eq!(escaped.len(), expected.len());
                assert_eq!(text, escape(&expected));
                if line == LINES[1] {
                    plain_lines.push(plain);
                }
            }
        }
        assert_eq!(
            plain_lines[..4],
            [
                r#"{"container_id":"abc","log":"first","q":"x\"y","source":"stdout","url":"/a?token=REDACTED"}"#,
                r#"{"container_id":"abc","log":"second","q":"x\"y","source":"stdout","url":"/a?token=REDACTED"}"#,
                r#"{"container_id":"abc","log":"third","q":"x\"y","source":"stderr","url":"/a?token=REDACTED"}"#,
                r#"{"container_id":"abc","log":"fourth","n":7,"q":"x\"y","source":"stdout"}"#,
            ]
        );
        assert!(plain_cache
            .members
            .iter()
            .all(|m| !m.json.contains("s3cret")));
        assert_eq!(plain_cache.members.len(), 5);

        // However many members a record has, the cache keeps 16, and no
        // member longer than 256 bytes.
        let mut many: serde_json::Map<String, serde_json::Value> = (0..40)
            .map(|i| (format!("k{i:02}"), json!(format!("v{i}"))))
            .collect();
        many.insert("a".repeat(300), json!("v"));
        let many = Record::from(many);
        let meta = EventMeta {
            time_ms: 0,
            tag: "t",
            record: &many,
            line_key: Some("log"),
            container: "app",
        };
        let mut expected = String::new();
        r.render_fluentbit(LINES[1], &meta, None, &mut expected);
        let mut plain = String::new();
        let mut classified = r.classifier.classify(LINES[1]);
        r.render_fluentbit_classified(&mut classified, &meta, None, &mut plain_cache, &mut plain);
        assert_eq!(plain, expected);
        assert_eq!(plain_cache.members.len(), 16);
        assert!(plain_cache.members.iter().all(|m| m.key.len() < 256));
    }
}
