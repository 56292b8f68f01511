//! Log group and stream names as Fluent Bit's CloudWatch outputs make them
//! (shared/firelens.md §3):
//!
//! - `cloudwatch_logs`: record-accessor templates (`$key`, `$key['sub']`,
//!   `$TAG`, `$TAG[n]`) in `log_group_template` / `log_stream_template`;
//!   when a key is missing the static name is used instead;
//! - the `rewrite_tag` filter's new tag: a record-accessor template that
//!   may also name its rule's regex captures (`$0` to `$9`); what is
//!   missing is left out ([`Template::fill_lenient`]);
//! - the Go `cloudwatch` plugin: `$(ecs_task_id)`, `$(ecs_cluster)`,
//!   `$(ecs_task_arn)`, `$(uuid)`, `$(tag)`, `$(tag[n])` and `$(key)` /
//!   `$(key['sub'])` in `log_group_name` / `log_stream_name`; when one is
//!   missing or empty, `default_log_group_name` / `default_log_stream_name`.
//!
//! Sluice adds `ecs_task_id` (from task metadata or the FireLens tag) to
//! the record-accessor keys, which Fluent Bit lacks.

use serde_json::Value as Json;
use sluice_firelens::{FieldValue, Record};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A record key, then subkeys.
    Key(Vec<String>),
    /// The whole tag.
    Tag,
    /// The tag's n-th `.`-separated part.
    TagPart(usize),
    /// A regex capture (`$0` to `$9`).
    Capture(usize),
    /// ECS values the Go plugin knows.
    TaskId,
    Cluster,
    TaskArn,
    /// `$(uuid)`: the output's own, made once (see [`output_uuid`]).
    Uuid(String),
}

/// A parsed name template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// As written, for `check-config`.
    pub source: String,
}

/// What templates read besides the record.
pub struct TemplateInput<'a> {
    pub tag: &'a str,
    pub record: &'a Record,
    pub task_id: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub task_arn: Option<&'a str>,
    /// A rewrite_tag rule's match, for `$0` to `$9`.
    pub captures: Option<&'a regex::Captures<'a>>,
}

impl Template {
    /// Whether it has anything to fill in.
    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Whether it reads the record's keys: a name that does not is the
    /// same for every record with the same tag and task.
    pub fn reads_record(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Key(_)))
    }

    /// A record-accessor template (`cloudwatch_logs`).
    pub fn record_accessor(source: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(dollar) = rest.find('$') {
            text.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            // `$0` to `$9`: one digit, a regex capture.
            if let Some(digit) = rest.chars().next().and_then(|c| c.to_digit(10)) {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Capture(digit as usize));
                rest = &rest[1..];
                continue;
            }
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                text.push('$');
                continue;
            }
            let name = &rest[..name_len];
            rest = &rest[name_len..];
            let (subkeys, after) = subscripts(rest)?;
            rest = after;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(match (name, subkeys.as_slice()) {
                ("TAG", []) => Piece::Tag,
                ("TAG", [n]) => {
                    Piece::TagPart(n.parse().map_err(|_| format!("$TAG[{n}] needs a number"))?)
                }
                _ => {
                    let mut path = vec![name.to_string()];
                    path.extend(subkeys);
                    Piece::Key(path)
                }
            });
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            pieces,
            source: source.to_string(),
        })
    }

    /// A Go plugin template (`cloudwatch`); `$(uuid)` is `uuid`, the
    /// output's.
    pub fn go(source: &str, uuid: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("$(") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find(')')
                .ok_or_else(|| format!("{source:?} has a '$(' without ')'"))?;
            let inner = &rest[open + 2..open + close];
            rest = &rest[open + close + 1..];
            pieces.push(match inner {
                "ecs_task_id" => Piece::TaskId,
                "ecs_cluster" => Piece::Cluster,
                "ecs_task_arn" => Piece::TaskArn,
                "uuid" => Piece::Uuid(uuid.to_string()),
                "tag" => Piece::Tag,
                _ => {
                    let name_len = inner.find('[').unwrap_or(inner.len());
                    let (name, subs) = inner.split_at(name_len);
                    let (subkeys, after) = subscripts(subs)?;
                    if !after.is_empty() || name.is_empty() {
                        return Err(format!("{source:?}: $({inner}) is not a key"));
                    }
                    match (name, subkeys.as_slice()) {
                        ("tag", [n]) => Piece::TagPart(
                            n.parse()
                                .map_err(|_| format!("$(tag[{n}]) needs a number"))?,
                        ),
                        _ => {
                            let mut path = vec![name.to_string()];
                            path.extend(subkeys);
                            Piece::Key(path)
                        }
                    }
                }
            });
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            pieces,
            source: source.to_string(),
        })
    }

    /// A name with nothing to fill in.
    pub fn text(source: &str) -> Template {
        Template {
            pieces: vec![Piece::Text(source.to_string())],
            source: source.to_string(),
        }
    }

    /// The filled name; `None` when a value is missing (or empty), so the
    /// caller falls back.
    pub fn fill(&self, input: &TemplateInput<'_>) -> Option<String> {
        let mut out = String::with_capacity(self.source.len() + 32);
        for piece in &self.pieces {
            let value = value(piece, input).filter(|v| !v.is_empty())?;
            out.push_str(&value);
        }
        Some(out)
    }

    /// The filled text with what is missing left out, as
    /// `flb_ra_translate` fills a rewrite_tag rule's tag.
    pub fn fill_lenient(&self, input: &TemplateInput<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for piece in &self.pieces {
            if let Some(value) = value(piece, input) {
                out.push_str(&value);
            }
        }
        out
    }
}

/// What a piece stands for; `None` when it is missing.
fn value<'a>(piece: &'a Piece, input: &TemplateInput<'a>) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    Some(match piece {
        Piece::Text(t) => Cow::Borrowed(t.as_str()),
        Piece::Tag => Cow::Borrowed(input.tag),
        Piece::TagPart(n) => Cow::Borrowed(input.tag.split('.').nth(*n)?),
        Piece::Capture(n) => Cow::Borrowed(input.captures?.get(*n)?.as_str()),
        Piece::TaskId => Cow::Borrowed(input.task_id?),
        Piece::Cluster => Cow::Borrowed(input.cluster?),
        Piece::TaskArn => Cow::Borrowed(input.task_arn?),
        Piece::Uuid(uuid) => Cow::Borrowed(uuid.as_str()),
        Piece::Key(path) => Cow::Owned(lookup(input, path)?),
    })
}

impl Template {}

/// `['a']['b']` at the start of `rest`: the subkeys and what follows.
pub(super) fn subscripts(mut rest: &str) -> Result<(Vec<String>, &str), String> {
    let mut keys = Vec::new();
    while let Some(after) = rest.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| format!("a '[' without ']' in {rest:?}"))?;
        let inner = after[..close].trim();
        let key = inner
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            .unwrap_or(inner);
        keys.push(key.to_string());
        rest = &after[close + 1..];
    }
    Ok((keys, rest))
}

/// A record value by path; strings as they are, numbers and booleans as
/// JSON text. `ecs_task_id` falls back to the task's id.
fn lookup(input: &TemplateInput<'_>, path: &[String]) -> Option<String> {
    let Some(value) = value_at(input.record, path) else {
        return (path == ["ecs_task_id"])
            .then(|| input.task_id.map(str::to_string))
            .flatten();
    };
    match value {
        FieldValue::Str(s) => Some(s.to_string()),
        FieldValue::Json(Json::String(s)) => Some(s.clone()),
        FieldValue::Json(n @ (Json::Number(_) | Json::Bool(_))) => Some(n.to_string()),
        FieldValue::Json(_) => None,
    }
}

/// The value at a record-accessor path (`$key['sub']...`): a top-level
/// key, then keys of nested objects.
pub fn value_at<'r>(record: &'r Record, path: &[String]) -> Option<FieldValue<'r>> {
    let (first, rest) = path.split_first()?;
    let value = record.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    let FieldValue::Json(mut json) = value else {
        return None;
    };
    for key in rest {
        json = json.as_object()?.get(key)?;
    }
    Some(FieldValue::Json(json))
}

/// `$key['sub']["sub2"]` (or `key`) as a path, as a filter's record
/// accessor names a value.
pub fn key_path(accessor: &str) -> Result<Vec<String>, String> {
    let text = accessor.strip_prefix('$').unwrap_or(accessor);
    let name_end = text.find('[').unwrap_or(text.len());
    let (name, rest) = text.split_at(name_end);
    if name.is_empty() {
        return Err(format!("{accessor:?} names no key"));
    }
    let (subkeys, rest) = subscripts(rest).map_err(|e| format!("{accessor:?}: {e}"))?;
    let mut path = vec![name.to_string()];
    path.extend(subkeys);
    if !rest.is_empty() {
        return Err(format!("{accessor:?} has {rest:?} after its key"));
    }
    Ok(path)
}

/// The string at `path`: a rule (rewrite_tag's, grep's) matches strings
/// only, as Fluent Bit's record accessor does.
pub fn string_at<'r>(record: &'r Record, path: &[String]) -> Option<&'r str> {
    match value_at(record, path)? {
        FieldValue::Str(s) => Some(s),
        FieldValue::Json(json) => json.as_str(),
    }
}

/// What an output's `$(uuid)` stands for: made once per output when the
/// configuration is read, so that its events share one stream, as the Go
/// plugin makes one per output instance (a KSUID there; a random v4 UUID
/// here, from the process's random hasher seeds, which is enough for a
/// name).
pub fn output_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(sluice_firelens::now_ns() as u64);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(tag: &'a str, record: &'a Record) -> TemplateInput<'a> {
        TemplateInput {
            tag,
            record,
            task_id: Some("abc123"),
            cluster: Some("prod"),
            task_arn: Some("arn:aws:ecs:r:1:task/prod/abc123"),
            captures: None,
        }
    }

    fn record() -> Record {
        serde_json::from_str::<serde_json::Map<_, _>>(r#"{"ecs_cluster":"prod","container_name":"/ecs-x","kubernetes":{"pod_name":"p1"},"n":7,"empty":""}"#).unwrap().into()
    }

    #[test]
    fn record_accessor_templates() {
        let r = record();
        let i = input("app-firelens-abc123", &r);
        let fill = |t: &str| Template::record_accessor(t).unwrap().fill(&i);
        assert_eq!(
            fill("/ecs/$ecs_cluster/app").as_deref(),
            Some("/ecs/prod/app")
        );
        assert_eq!(fill("$kubernetes['pod_name'].$n").as_deref(), Some("p1.7"));
        assert_eq!(fill("$TAG").as_deref(), Some("app-firelens-abc123"));
        assert_eq!(fill("$TAG[0]").as_deref(), Some("app-firelens-abc123"));
        assert_eq!(fill("app/$ecs_task_id").as_deref(), Some("app/abc123"));
        assert_eq!(fill("x-$missing"), None);
        assert_eq!(fill("x-$empty"), None);
        assert_eq!(fill("costs $ 5").as_deref(), Some("costs $ 5"));
        let t = Template::record_accessor("a.b.c").unwrap();
        assert!(t.is_static());
        let dotted = Record::default();
        let d = input("a.b.c", &dotted);
        assert_eq!(
            Template::record_accessor("$TAG[2]")
                .unwrap()
                .fill(&d)
                .as_deref(),
            Some("c")
        );
    }

    #[test]
    fn rewrite_tag_templates() {
        let r = record();
        let re = regex::Regex::new(r"^/ecs-(\w+)$").unwrap();
        let captures = re.captures("/ecs-x").unwrap();
        let mut i = input("app.web", &r);
        i.captures = Some(&captures);
        let fill = |t: &str| Template::record_accessor(t).unwrap().fill_lenient(&i);
        assert_eq!(fill("errors.$1.$TAG[1]"), "errors.x.web");
        assert_eq!(fill("$0-$n"), "/ecs-x-7");
        // What is missing is left out; `$12` is capture 1, then "2".
        assert_eq!(fill("a.$missing.$5.$TAG[9].b"), "a....b");
        assert_eq!(fill("$12"), "x2");
        assert_eq!(
            Template::record_accessor("$1")
                .unwrap()
                .fill(&input("t", &r)),
            None
        );
    }

    #[test]
    fn go_templates() {
        let r = record();
        let i = input("app.web", &r);
        let fill = |t: &str| Template::go(t, "u-1").unwrap().fill(&i);
        assert_eq!(
            fill("/ecs/$(ecs_cluster)/$(ecs_task_id)").as_deref(),
            Some("/ecs/prod/abc123")
        );
        assert_eq!(fill("$(tag)-$(tag[1])").as_deref(), Some("app.web-web"));
        assert_eq!(fill("$(kubernetes['pod_name'])").as_deref(), Some("p1"));
        assert_eq!(fill("$(container_name)").as_deref(), Some("/ecs-x"));
        assert_eq!(fill("$(nope)"), None);
        assert_eq!(fill("app-$(uuid)").as_deref(), Some("app-u-1"));
        assert!(Template::go("$(tag", "u-1").is_err());
    }
}
