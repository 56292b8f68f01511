//! Which log group and stream an event goes to: the `[cloudwatch]` templates
//! filled from the event's metadata, made safe as CloudWatch names (and, for
//! the file output, as file names).

use sluice_firelens::Record;

pub use crate::event::StreamKey;

/// Fills `{container_name}`, `{task_id}`, `{cluster}`, `{tag}` and `{date}`.
pub struct StreamTemplates {
    pub log_group: String,
    pub access_stream: String,
    pub app_stream: String,
    pub stats_stream: String,
}

/// The metadata templates read, taken from a forward event.
pub struct StreamVars<'a> {
    pub tag: &'a str,
    pub record: &'a Record,
    pub time_ms: i64,
    /// The container's task-definition name (see `ecs::Identity`).
    pub container: &'a str,
}

impl StreamVars<'_> {
    fn get(&self, name: &str) -> String {
        let field = |key: &str| self.record.get_str(key);
        match name {
            "container_name" => self.container.to_string(),
            // FireLens tags are `<container>-firelens-<task id>`; the task
            // ARN ends in the task id too.
            "task_id" => field("ecs_task_arn")
                .and_then(|arn| arn.rsplit('/').next())
                .or_else(|| crate::ecs::split_firelens_tag(self.tag).map(|(_, id)| id))
                .unwrap_or("unknown")
                .to_string(),
            "cluster" => {
                let cluster = field("ecs_cluster").unwrap_or("default");
                // A cluster may be given as an ARN.
                cluster.rsplit('/').next().unwrap_or(cluster).to_string()
            }
            "tag" => self.tag.to_string(),
            "date" => utc_date(self.time_ms),
            _ => String::new(),
        }
    }
}

impl StreamTemplates {
    /// The group and stream for the statistics of an access record.
    pub fn stats_key(&self, vars: &StreamVars<'_>) -> StreamKey {
        StreamKey::new(
            group_name(&fill(&self.log_group, vars)),
            stream_name(&fill(&self.stats_stream, vars)),
        )
    }

    /// The group and stream for an access record or an application line.
    pub fn key(&self, access: bool, vars: &StreamVars<'_>) -> StreamKey {
        let stream = if access {
            &self.access_stream
        } else {
            &self.app_stream
        };
        StreamKey::new(
            group_name(&fill(&self.log_group, vars)),
            stream_name(&fill(stream, vars)),
        )
    }
}

/// Which of the templates' streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Access,
    App,
    Stats,
}

/// [`StreamTemplates`] with the last event's inputs and the keys they
/// gave: consecutive events of one container and task (the common case)
/// reuse them instead of filling and cleaning the templates again.
pub struct CachedTemplates {
    templates: StreamTemplates,
    inputs: Option<MemoInputs>,
    keys: [Option<StreamKey>; 3],
}

/// Everything a template can read from an event (`{date}` as the day).
#[derive(PartialEq, Eq)]
struct MemoInputs {
    tag: String,
    container: String,
    task_arn: Option<String>,
    cluster: Option<String>,
    day: i64,
}

impl MemoInputs {
    fn matches(&self, vars: &StreamVars<'_>) -> bool {
        let field = |key: &str| vars.record.get_str(key);
        self.tag == vars.tag
            && self.container == vars.container
            && self.task_arn.as_deref() == field("ecs_task_arn")
            && self.cluster.as_deref() == field("ecs_cluster")
            && self.day == vars.time_ms.div_euclid(86_400_000)
    }

    fn of(vars: &StreamVars<'_>) -> MemoInputs {
        let field = |key: &str| vars.record.get_str(key).map(str::to_string);
        MemoInputs {
            tag: vars.tag.to_string(),
            container: vars.container.to_string(),
            task_arn: field("ecs_task_arn"),
            cluster: field("ecs_cluster"),
            day: vars.time_ms.div_euclid(86_400_000),
        }
    }
}

impl CachedTemplates {
    pub fn new(templates: StreamTemplates) -> CachedTemplates {
        CachedTemplates {
            templates,
            inputs: None,
            keys: [None, None, None],
        }
    }

    /// The cache made valid for one event's inputs, for any number of
    /// that event's keys (its log stream and its statistics stream)
    /// without comparing the inputs again.
    pub fn checked<'c, 'v>(&'c mut self, vars: &'c StreamVars<'v>) -> CheckedTemplates<'c, 'v> {
        if !self.inputs.as_ref().is_some_and(|m| m.matches(vars)) {
            self.inputs = Some(MemoInputs::of(vars));
            self.keys = [None, None, None];
        }
        CheckedTemplates { cache: self, vars }
    }
}

/// [`CachedTemplates`] valid for one event's inputs.
pub struct CheckedTemplates<'c, 'v> {
    cache: &'c mut CachedTemplates,
    vars: &'c StreamVars<'v>,
}

impl CheckedTemplates<'_, '_> {
    pub fn key(&mut self, kind: StreamKind) -> &StreamKey {
        let t = &self.cache.templates;
        let vars = self.vars;
        self.cache.keys[kind as usize].get_or_insert_with(|| match kind {
            StreamKind::Access => t.key(true, vars),
            StreamKind::App => t.key(false, vars),
            StreamKind::Stats => t.stats_key(vars),
        })
    }
}

fn fill(template: &str, vars: &StreamVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(&vars.get(&rest[open + 1..open + close]));
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A valid log group name: 1-512 of `[.-_/#A-Za-z0-9]`, not starting with
/// `aws/`; anything else becomes `_`.
pub fn group_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#') {
                c
            } else {
                '_'
            }
        })
        .take(512)
        .collect();
    if out.starts_with("aws/") {
        out.replace_range(..3, "_aw");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// A valid log stream name: 1-512 characters, no `:` or `*`.
pub fn stream_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if matches!(c, ':' | '*') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .take(512)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// One path component for a CloudWatch name: `/` and `%` are escaped, so a
/// name can never climb out of the directory or collide with another.
pub fn file_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
    if out.chars().all(|c| c == '.') {
        // "." and ".." are directories, not names.
        out = out.replace('.', "%2E");
    }
    out
}

/// `YYYY-MM-DD` (UTC) of a time in ms.
fn utc_date(ms: i64) -> String {
    let (y, m, d) = sluice_parser::utc_date(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::*;

    fn templates() -> StreamTemplates {
        StreamTemplates {
            log_group: "/ecs/{cluster}/{container_name}".into(),
            access_stream: "{task_id}/access".into(),
            app_stream: "{task_id}/{container_name}/{date}".into(),
            stats_stream: "{task_id}/stats".into(),
        }
    }

    #[test]
    fn cached_keys_follow_every_input() {
        let mut cached = CachedTemplates::new(templates());
        let object = |v: Json| -> &'static Record {
            match v {
                Json::Object(m) => Box::leak(Box::new(m.into())),
                _ => unreachable!(),
            }
        };
        let envoy = object(json!({"container_name": "/envoy", "ecs_task_arn": "a/t1"}));
        let app = object(json!({"container_name": "/app", "ecs_task_arn": "a/t1"}));
        let vars = |record: &'static Record, time_ms| StreamVars {
            tag: "t",
            record,
            time_ms,
            container: &record.get_str("container_name").unwrap_or("")[1..],
        };
        let day = 86_400_000;
        for (record, time_ms, kind) in [
            (envoy, 0, StreamKind::App),
            (envoy, 5, StreamKind::App),
            (envoy, 5, StreamKind::Access),
            (app, 5, StreamKind::App),
            (app, day, StreamKind::App),
            (envoy, day, StreamKind::Stats),
        ] {
            let v = vars(record, time_ms);
            let expected = match kind {
                StreamKind::Access => templates().key(true, &v),
                StreamKind::App => templates().key(false, &v),
                StreamKind::Stats => templates().stats_key(&v),
            };
            let mut checked = cached.checked(&v);
            assert_eq!(checked.key(kind), &expected);
            // The statistics' key of the same event, after its own.
            assert_eq!(checked.key(StreamKind::Stats), &templates().stats_key(&v));
        }
    }

    #[test]
    fn firelens_metadata_fills_the_templates() {
        let Json::Object(record) = json!({
            "container_name": "/envoy",
            "ecs_cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            "ecs_task_arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/5a0a7b1c",
        }) else {
            unreachable!()
        };
        let record = Record::from(record);
        let vars = StreamVars {
            tag: "envoy-firelens-5a0a7b1c",
            record: &record,
            time_ms: 1_700_000_000_000,
            container: "envoy",
        };
        assert_eq!(
            templates().key(true, &vars),
            StreamKey::new("/ecs/prod/envoy".into(), "5a0a7b1c/access".into())
        );
        assert_eq!(
            templates().key(false, &vars).stream(),
            "5a0a7b1c/envoy/2023-11-14"
        );
    }

    #[test]
    fn missing_metadata_and_hostile_names() {
        let Json::Object(record) = json!({"container_name": "../../etc:*x y"}) else {
            unreachable!()
        };
        let record = Record::from(record);
        let vars = StreamVars {
            tag: "app-firelens-t9",
            record: &record,
            time_ms: 0,
            container: "../../etc:*x y",
        };
        let key = templates().key(false, &vars);
        // `/` and `.` are valid in group names; the file output escapes them.
        assert_eq!(key.group(), "/ecs/default/../../etc__x_y");
        assert_eq!(
            file_component(key.group()),
            "%2Fecs%2Fdefault%2F..%2F..%2Fetc__x_y"
        );
        assert_eq!(key.stream(), "t9/../../etc__x y/1970-01-01");
        assert_eq!(
            file_component(key.stream()),
            "t9%2F..%2F..%2Fetc__x y%2F1970-01-01"
        );
        assert_eq!(file_component(".."), "%2E%2E");
        assert_eq!(file_component("a%2Fb"), "a%252Fb");
        let vars = StreamVars {
            tag: "plain",
            record: &Record::default(),
            time_ms: 0,
            container: "unknown",
        };
        assert_eq!(templates().key(true, &vars).stream(), "unknown/access");
        assert_eq!(group_name("aws/x"), "_aw/x");
    }
}
