//! Fluent Bit parsers that a `[FILTER] parser` may name: the `json` format,
//! which is what AWS's `parse-json.conf` uses (aws-for-fluent-bit's
//! `/fluent-bit/configs/parse-json.conf`: `Parser json` on `log`).
//!
//! A parser is known by name from, in order of precedence, the `[PARSER]`
//! sections of the configuration (and of the files `[SERVICE]
//! Parsers_File` names), then the JSON parsers of Fluent Bit's own
//! `conf/parsers.conf`, which aws-for-fluent-bit ships as
//! `/fluent-bit/parsers/parsers.conf`: `json` and `docker`. A parser of
//! another format (regex, logfmt, ltsv) is refused when a filter uses it.
//!
//! Parsing is `flb_parser_json_do`'s: the value must be exactly one JSON
//! object; the time key, when present, a string and of `Time_Format`, gives
//! the record's time and is removed unless `Time_Keep`; a time that does not
//! read leaves the key and the record's time as they were.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_parser::StrpTime;

use super::classic::Section;
use crate::config::layer::fluent_bool;

/// A `Format json` parser.
#[derive(Debug)]
pub struct JsonParser {
    pub name: String,
    /// `Time_Key` (default `time`).
    pub time_key: String,
    /// `Time_Format`: without it the time key is left alone.
    pub time_format: Option<StrpTime>,
    /// `Time_Keep`.
    pub time_keep: bool,
}

/// What one parse gave.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub fields: Map<String, Json>,
    /// The record's new time, in ms since the epoch.
    pub time_ms: Option<i64>,
}

impl JsonParser {
    /// `None` when `value` is not one JSON object.
    pub fn parse(&self, value: &str) -> Option<Parsed> {
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
}

/// A parser by name, or why it cannot be used.
pub type Parsers = HashMap<String, Result<Arc<JsonParser>, String>>;

/// Fluent Bit's `conf/parsers.conf` JSON parsers (v5.1.1), which
/// aws-for-fluent-bit ships as `/fluent-bit/parsers/parsers.conf`.
fn built_in() -> Parsers {
    let parser = |name: &str, format: &str, keep: bool| {
        let parser = JsonParser {
            name: name.to_string(),
            time_key: "time".to_string(),
            time_format: Some(StrpTime::new(format).expect("a built-in time format reads")),
            time_keep: keep,
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
        parsers.insert(name, json_parser(section).map(Arc::new));
    }
    parsers
}

fn json_parser(section: &Section) -> Result<JsonParser, String> {
    let at = &section.at;
    let name = section.get("name").unwrap_or("");
    let format = section.get("format").unwrap_or("").to_ascii_lowercase();
    if format != "json" {
        return Err(format!(
            "[PARSER] {name} at {at} has Format {format:?}; Sluice runs json parsers only"
        ));
    }
    let mut parser = JsonParser {
        name: name.to_string(),
        time_key: "time".to_string(),
        time_format: None,
        time_keep: false,
    };
    for (key, value) in &section.entries {
        match key.to_ascii_lowercase().as_str() {
            "name" | "format" => {}
            "time_key" => parser.time_key = value.clone(),
            "time_format" => {
                parser.time_format = Some(
                    StrpTime::new(value)
                        .map_err(|e| format!("[PARSER] {name} at {at}: Time_Format {e}"))?,
                )
            }
            "time_keep" => {
                parser.time_keep = fluent_bool(value)
                    .ok_or_else(|| format!("[PARSER] {name} at {at}: Time_Keep {value:?} is not On or Off"))?
            }
            _ => {
                return Err(format!(
                    "[PARSER] {name} at {at}: {key} is not supported by Sluice (it takes Time_Key, Time_Format, Time_Keep)"
                ))
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
        let regex = section(&[("Name", "apache"), ("Format", "regex"), ("Regex", "^x$")]);
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
            "[PARSER] apache at p.conf:1 has Format \"regex\"; Sluice runs json parsers only"
        );
        assert_eq!(
            parsers["typed"].as_ref().unwrap_err(),
            "[PARSER] typed at p.conf:1: Types is not supported by Sluice (it takes Time_Key, Time_Format, Time_Keep)"
        );
        assert!(parsers["docker"].is_ok());
    }
}
