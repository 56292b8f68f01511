//! One classified line as one JSON object: the shape `sluice parse` prints
//! and `sluice run` writes, with the event's metadata when there is one.

use serde_json::{Map, Value as Json};
use sluice_parser::{json_out, Classified, Classifier, Redactor, RouteTable};

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
}

/// What [`LineRenderer::render_event`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub access: bool,
    /// The event's time in ms: the access record's start time, else the
    /// forward event's time.
    pub time_ms: i64,
    /// What statistics need from an access record (when collected).
    pub facts: Option<RequestFacts>,
    /// Access-record fields the redactor changed.
    pub redactions: usize,
}

/// Where a line came from: written between `kind` and the record's fields.
pub struct EventMeta<'a> {
    /// Milliseconds since the epoch the forward client gave the event.
    pub time_ms: i64,
    pub tag: &'a str,
    /// The forward record.
    pub record: &'a Map<String, Json>,
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
        out: &mut String,
    ) -> Rendered {
        let event_time = meta.map_or(0, |m| m.time_ms);
        let classified = if meta.is_some_and(|m| !self.may_be_access(m)) {
            Classified::App(sluice_parser::trim_line_ending(line))
        } else {
            self.classifier.classify(line)
        };
        match classified {
            Classified::Access(mut record) => {
                let redactions = self.redactor.redact_record(&mut record);
                out.push_str("{\"kind\":\"access\"");
                let time_ms = record.start_time_ms().unwrap_or(event_time);
                if let Some(meta) = meta {
                    self.write_meta(meta, time_ms, out);
                }
                out.push(',');
                if !record.write_json_members(out) {
                    out.pop();
                }
                out.push_str(",\"route\":");
                let route = self.routes.route_key(&record);
                json_out::write_str(out, &route);
                out.push('}');
                let facts = self
                    .collect_facts
                    .then(|| RequestFacts::from_record(&record, route, meta.map(|m| m.container)));
                Rendered {
                    access: true,
                    time_ms,
                    facts,
                    redactions,
                }
            }
            Classified::App(text) if !self.app_lines_as_json => {
                out.push_str(&self.redactor.redact_text(text));
                Rendered {
                    access: false,
                    time_ms: event_time,
                    facts: None,
                    redactions: 0,
                }
            }
            Classified::App(text) => {
                out.push_str("{\"kind\":\"app\"");
                if let Some(meta) = meta {
                    self.write_meta(meta, meta.time_ms, out);
                }
                out.push_str(",\"log\":");
                json_out::write_str(out, &self.redactor.redact_text(text));
                out.push('}');
                Rendered {
                    access: false,
                    time_ms: event_time,
                    facts: None,
                    redactions: 0,
                }
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
        out: &mut String,
    ) -> Rendered {
        let classified = if self.may_be_access(meta) {
            self.classifier.classify(line)
        } else {
            Classified::App(sluice_parser::trim_line_ending(line))
        };
        if let Classified::Access(mut record) = classified {
            let redactions = self.redactor.redact_record(&mut record);
            let time_ms = record.start_time_ms().unwrap_or(meta.time_ms);
            out.push('{');
            if record.write_json_members(out) {
                out.push(',');
            }
            out.push_str("\"route\":");
            let route = self.routes.route_key(&record);
            json_out::write_str(out, &route);
            if log_key.is_none() {
                for (key, value) in meta.record {
                    if Some(key.as_str()) != meta.line_key {
                        out.push(',');
                        self.write_member(key, value, out);
                    }
                }
            }
            out.push('}');
            let facts = self
                .collect_facts
                .then(|| RequestFacts::from_record(&record, route, Some(meta.container)));
            return Rendered {
                access: true,
                time_ms,
                facts,
                redactions,
            };
        }
        match log_key.and_then(|k| meta.record.get(k)) {
            Some(Json::String(s)) => out.push_str(&self.redactor.redact_text(s)),
            Some(other) => out.push_str(&self.redactor.redact_text(&other.to_string())),
            None => {
                out.push('{');
                for (i, (key, value)) in meta.record.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_member(key, value, out);
                }
                out.push('}');
            }
        }
        Rendered {
            access: false,
            time_ms: meta.time_ms,
            facts: None,
            redactions: 0,
        }
    }

    /// `"key":value`, the value redacted.
    fn write_member(&self, key: &str, value: &Json, out: &mut String) {
        json_out::write_str(out, key);
        out.push(':');
        match value {
            Json::String(s) => json_out::write_str(out, &self.redactor.redact_text(s)),
            other => out.push_str(&self.redactor.redact_text(&other.to_string())),
        }
    }

    fn may_be_access(&self, meta: &EventMeta<'_>) -> bool {
        if self.access_containers.is_empty() {
            return true;
        }
        self.access_containers.iter().any(|c| c == meta.container)
    }

    fn write_meta(&self, meta: &EventMeta<'_>, time_ms: i64, out: &mut String) {
        out.push_str(",\"timestamp\":");
        out.push_str(&time_ms.to_string());
        out.push_str(",\"tag\":");
        json_out::write_str(out, meta.tag);
        for key in TOP_LEVEL_KEYS {
            if let Some(Json::String(value)) = meta.record.get(key) {
                out.push(',');
                json_out::write_str(out, key);
                out.push(':');
                // The task-definition name, not Docker's "/ecs-…-name-…".
                let value = if key == "container_name" {
                    meta.container
                } else {
                    value
                };
                json_out::write_str(out, &self.redactor.redact_text(value));
            }
        }
        let extra: Vec<(&String, &Json)> = match meta.line_key {
            None => Vec::new(),
            Some(line_key) => meta
                .record
                .iter()
                .filter(|(k, _)| !TOP_LEVEL_KEYS.contains(&k.as_str()) && k.as_str() != line_key)
                .collect(),
        };
        if !extra.is_empty() {
            out.push_str(",\"extra\":{");
            for (i, (key, value)) in extra.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_out::write_str(out, key);
                out.push(':');
                match value {
                    Json::String(s) => json_out::write_str(out, &self.redactor.redact_text(s)),
                    other => out.push_str(&self.redactor.redact_text(&other.to_string())),
                }
            }
            out.push('}');
        }
    }
}
