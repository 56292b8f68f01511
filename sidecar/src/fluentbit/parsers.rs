//! Fluent Bit parsers that a `[FILTER] parser` may name: the `json` format,
//! which is what AWS's `parse-json.conf` uses (aws-for-fluent-bit's
//! `/fluent-bit/configs/parse-json.conf`: `Parser json` on `log`), and the
//! `regex` format of users' own `[PARSER]` sections.
//!
//! A parser is known by name from, in order of precedence, the `[PARSER]`
//! sections of the configuration (and of the files `[SERVICE]
//! Parsers_File` names), then the JSON parsers of Fluent Bit's own
//! `conf/parsers.conf`, which aws-for-fluent-bit ships as
//! `/fluent-bit/parsers/parsers.conf`: `json` and `docker`. A parser of
//! another format (logfmt, ltsv) is refused when a filter uses it.
//!
//! JSON parsing is `flb_parser_json_do`'s: the value must be exactly one
//! JSON object; the time key, when present, a string and of `Time_Format`,
//! gives the record's time and is removed unless `Time_Keep`; a time that
//! does not read leaves the key and the record's time as they were.
//!
//! Regex parsing is `flb_parser_regex_do`'s: the first match anywhere in
//! the value; each named group a string key, an empty one left out unless
//! `Skip_Empty_Values Off`; the time key read as above, except that a time
//! that does not read is left out. Patterns are Rust regular expressions:
//! Onigmo's `(?<name>...)` groups read the same, and a pattern Rust cannot
//! compile is an error at start.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value as Json};
use sluice_parser::StrpTime;

use super::classic::Section;
use crate::config::layer::fluent_bool;

/// A `[PARSER]` Sluice can run.
#[derive(Debug)]
pub struct Parser {
    pub name: String,
    pub format: Format,
    /// `Time_Key` (default `time`).
    pub time_key: String,
    /// `Time_Format`: without it the time key is left alone.
    pub time_format: Option<StrpTime>,
    /// `Time_Keep`.
    pub time_keep: bool,
    /// `Skip_Empty_Values` (regex parsers; default on).
    pub skip_empty: bool,
}

#[derive(Debug)]
pub enum Format {
    Json,
    Regex(Regex),
}

/// What one parse gave.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub fields: Map<String, Json>,
    /// The record's new time, in ms since the epoch.
    pub time_ms: Option<i64>,
}

impl Parser {
    /// `None` when `value` is not what the parser reads: not one JSON
    /// object, or no match of the regex.
    pub fn parse(&self, value: &str) -> Option<Parsed> {
        match &self.format {
            Format::Json => self.parse_json(value),
            Format::Regex(re) => self.parse_regex(re, value),
        }
    }

    fn parse_json(&self, value: &str) -> Option<Parsed> {
        // Cheap refusal of the common case, a line that is not JSON.
        if !value.trim_start().starts_with('{') {
            return None;
        }
        let Ok(Json::Object(mut fields)) = serde_json::from_str::<Json>(value) else {
            return None;
        };
        let mut time_ms = None;
        if let Some(format) = &self.time_format {
            if let Some(Json::String(text)) = fields.get(&self.time_key) {
                time_ms = format.epoch_ms(text);
                if time_ms.is_some() && !self.time_keep {
                    fields.remove(&self.time_key);
                }
            }
        }
        Some(Parsed { fields, time_ms })
    }

    fn parse_regex(&self, re: &Regex, value: &str) -> Option<Parsed> {
        let captures = re.captures(value)?;
        let mut fields = Map::new();
        let mut time_ms = None;
        for name in re.capture_names().flatten() {
            let text = captures.name(name).map_or("", |m| m.as_str());
            if text.is_empty() && self.skip_empty {
                continue;
            }
            if let Some(format) = self.time_format.as_ref().filter(|_| name == self.time_key) {
                // A time that does not read is left out, as Fluent Bit does.
                time_ms = format.epoch_ms(text);
                if time_ms.is_none() || !self.time_keep {
                    continue;
                }
            }
            fields.insert(name.to_string(), Json::String(text.to_string()));
        }
        Some(Parsed { fields, time_ms })
    }
}

/// A parser by name, or why it cannot be used.
pub type Parsers = HashMap<String, Result<Arc<Parser>, String>>;

/// Fluent Bit's `conf/parsers.conf` JSON parsers (v5.1.1), which
/// aws-for-fluent-bit ships as `/fluent-bit/parsers/parsers.conf`.
fn built_in() -> Parsers {
    let parser = |name: &str, format: &str, keep: bool| {
        let parser = Parser {
            name: name.to_string(),
            format: Format::Json,
            time_key: "time".to_string(),
            time_format: Some(StrpTime::new(format).expect("a built-in time format reads")),
            time_keep: keep,
            skip_empty: true,
        };
        (name.to_string(), Ok(Arc::new(parser)))
    };
    [
        parser("json", "%d/%b/%Y:%H:%M:%S %z", false),
        parser("docker", "%Y-%m-%dT%H:%M:%S.%L", true),
    ]
    .into_iter()
    .collect()
}

/// The parsers the built-ins and `[PARSER]` sections define; a section
/// overrides a built-in of its name, as a later Parsers_File does in
/// Fluent Bit. A section Sluice cannot run is kept as the reason, given
/// only if a filter names it.
pub fn parsers<'s>(sections: impl Iterator<Item = &'s Section>) -> Parsers {
    let mut parsers = built_in();
    for section in sections {
        let name = section.get("name").unwrap_or("").to_string();
        parsers.insert(name, parser(section).map(Arc::new));
    }
    parsers
}

fn parser(section: &Section) -> Result<Parser, String> {
    let at = &section.at;
    let name = section.get("name").unwrap_or("");
    let error = |message: String| format!("[PARSER] {name} at {at}: {message}");
    let format = match section
        .get("format")
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "json" => Format::Json,
        "regex" => {
            let pattern = section
                .get("regex")
                .ok_or_else(|| error("Format regex needs a Regex".into()))?;
            Format::Regex(Regex::new(pattern).map_err(|e| {
                error(format!(
                    "Regex {pattern:?} is not a regular expression Sluice can use: {e}"
                ))
            })?)
        }
        other => {
            return Err(error(format!(
                "Format {other:?}: Sluice runs json and regex parsers"
            )))
        }
    };
    let regex = matches!(format, Format::Regex(_));
    let mut parser = Parser {
        name: name.to_string(),
        format,
        time_key: "time".to_string(),
        time_format: None,
        time_keep: false,
        skip_empty: true,
    };
    let flag = |key: &str, value: &str| {
        fluent_bool(value).ok_or_else(|| error(format!("{key} {value:?} is not On or Off")))
    };
    for (key, value) in &section.entries {
        match key.to_ascii_lowercase().as_str() {
            "name" | "format" => {}
            "regex" if regex => {}
            "time_key" => parser.time_key = value.clone(),
            "time_format" => {
                parser.time_format =
                    Some(StrpTime::new(value).map_err(|e| error(format!("Time_Format {e}")))?)
            }
            "time_keep" => parser.time_keep = flag(key, value)?,
            "skip_empty_values" if regex => parser.skip_empty = flag(key, value)?,
            _ => {
                return Err(error(format!(
                "{key} is not supported by Sluice (it takes Time_Key, Time_Format, Time_Keep{})",
                if regex {
                    ", Regex, Skip_Empty_Values"
                } else {
                    ""
                }
            )))
            }
        }
    }
    Ok(parser)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section(entries: &[(&str, &str)]) -> Section {
        Section {
            kind: super::super::classic::SectionKind::Parser,
            at: "p.conf:1".into(),
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_built_in_json_parser_takes_its_time_key() {
        let parsers = parsers(std::iter::empty());
        let json = parsers["json"].as_ref().unwrap();
        let parsed = json
            .parse(r#"{"level":"info","time":"03/Apr/2018:23:06:09 +0000","n":1}"#)
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"level": "info", "n": 1})
        );
        assert_eq!(parsed.time_ms, Some(1522796769000));
        // A time of another layout stays, and the record's time with it.
        let parsed = json.parse(r#"{"time":"2018-04-03T23:06:09Z"}"#).unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"time": "2018-04-03T23:06:09Z"})
        );
        assert_eq!(parsed.time_ms, None);
        // Not one object: no parse.
        for line in [
            "[1,2]",
            "{\"a\":1} {\"b\":2}",
            "{\"a\":",
            "plain text",
            "\"{\"",
        ] {
            assert_eq!(json.parse(line), None, "{line}");
        }
        // docker keeps its time key.
        let docker = parsers["docker"].as_ref().unwrap();
        let parsed = docker
            .parse(r#"{"log":"x","time":"2018-04-03T23:06:09.5Z"}"#)
            .unwrap();
        assert_eq!(parsed.time_ms, None, "the Z is not in docker's Time_Format");
        let parsed = docker
            .parse(r#"{"log":"x","time":"2018-04-03T23:06:09.5"}"#)
            .unwrap();
        assert_eq!(parsed.time_ms, Some(1522796769500));
        assert!(parsed.fields.contains_key("time"));
    }

    #[test]
    fn parser_sections_define_and_override() {
        let own = section(&[
            ("Name", "json"),
            ("Format", "json"),
            ("Time_Key", "ts"),
            ("Time_Format", "%s"),
            ("Time_Keep", "On"),
        ]);
        let regex = section(&[("Name", "apache"), ("Format", "logfmt")]);
        let odd = section(&[
            ("Name", "typed"),
            ("Format", "json"),
            ("Types", "n:integer"),
        ]);
        let parsers = parsers([&own, &regex, &odd].into_iter());
        let json = parsers["json"].as_ref().unwrap();
        let parsed = json.parse(r#"{"ts":"1522796769"}"#).unwrap();
        assert_eq!(parsed.time_ms, Some(1522796769000));
        assert!(parsed.fields.contains_key("ts"));
        assert_eq!(
            parsers["apache"].as_ref().unwrap_err(),
            "[PARSER] apache at p.conf:1: Format \"logfmt\": Sluice runs json and regex parsers"
        );
        assert_eq!(
            parsers["typed"].as_ref().unwrap_err(),
            "[PARSER] typed at p.conf:1: Types is not supported by Sluice (it takes Time_Key, Time_Format, Time_Keep)"
        );
        assert!(parsers["docker"].is_ok());
    }

    #[test]
    fn regex_parsers_read_named_groups() {
        let access = section(&[
            ("Name", "access"),
            ("Format", "regex"),
            (
                "Regex",
                r#"^(?<host>\S+) \[(?<time>[^\]]+)\] "(?<method>\S+) (?<path>\S*)" (?<code>\d+)(?: (?<size>\d+))?$"#,
            ),
            ("Time_Key", "time"),
            ("Time_Format", "%d/%b/%Y:%H:%M:%S %z"),
        ]);
        let keep_empty = section(&[
            ("Name", "keep"),
            ("Format", "regex"),
            ("Regex", r"^(?<a>x)(?<b>y?)$"),
            ("Skip_Empty_Values", "Off"),
        ]);
        let parsers = parsers([&access, &keep_empty].into_iter());
        let access = parsers["access"].as_ref().unwrap();
        let parsed = access
            .parse(r#"10.0.0.1 [03/Apr/2018:23:06:09 +0000] "GET /a?b=c" 200"#)
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"host": "10.0.0.1", "method": "GET", "path": "/a?b=c", "code": "200"})
        );
        assert_eq!(parsed.time_ms, Some(1522796769000));
        // A time that does not read is left out, and the time stays.
        let parsed = access.parse(r#"h [yesterday] "GET /" 200 12"#).unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"host": "h", "method": "GET", "path": "/", "code": "200", "size": "12"})
        );
        assert_eq!(parsed.time_ms, None);
        assert_eq!(access.parse("no match"), None);
        let keep = parsers["keep"].as_ref().unwrap();
        assert_eq!(
            Json::Object(keep.parse("x").unwrap().fields),
            json!({"a": "x", "b": ""})
        );
    }
}
