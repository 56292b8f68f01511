//! `[OUTPUT] stdout` in FireLens drop-in mode: the records an output
//! takes, redacted like every other, written to Sluice's standard output
//! as `plugins/out_stdout` (v5.1.1) writes them, for the debugging AWS's
//! troubleshooting guide describes. Each record is written at once, as a
//! chunk of its own:
//!
//! - `Format msgpack` (the default): `[0] tag: [[sec.nsec, {}], {"key"=>value, ...}]`,
//!   as `msgpack_object_print` prints;
//! - `json_lines` and `json_stream`: `{"date":..., ...}` and a newline;
//! - `json`: `[{"date":..., ...}]` and a newline.
//!
//! `json_date_key` (default `date`; `false` for none) and
//! `json_date_format` (`double`, `epoch`, `epoch_ms`, `iso8601`,
//! `java_sql_timestamp`) as Fluent Bit reads them.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::classic::Section;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StdoutFormat {
    Msgpack,
    JsonLines,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DateFormat {
    Double,
    Epoch,
    EpochMs,
    Iso8601,
    JavaSqlTimestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StdoutOutput {
    pub format: StdoutFormat,
    /// `None`: no date key.
    pub date_key: Option<String>,
    pub date_format: DateFormat,
}

impl StdoutOutput {
    pub fn from_section(section: &Section) -> Result<StdoutOutput, String> {
        let mut out = StdoutOutput {
            format: StdoutFormat::Msgpack,
            date_key: Some("date".into()),
            date_format: DateFormat::Double,
        };
        for (key, value) in &section.entries {
            let lower = value.to_ascii_lowercase();
            match key.to_ascii_lowercase().as_str() {
                "name" | "match" | "match_regex" | "alias" | "workers" | "retry_limit" => {}
                "format" => {
                    out.format = match lower.as_str() {
                        "msgpack" => StdoutFormat::Msgpack,
                        "json_lines" | "json_stream" => StdoutFormat::JsonLines,
                        "json" => StdoutFormat::Json,
                        _ => {
                            return Err(format!(
                                "[OUTPUT] stdout Format {value:?}: Sluice writes msgpack, json, json_lines and json_stream"
                            ))
                        }
                    }
                }
                "json_date_key" => {
                    out.date_key = match lower.as_str() {
                        "false" | "off" | "no" => None,
                        _ => Some(value.clone()),
                    }
                }
                "json_date_format" => {
                    out.date_format = match lower.as_str() {
                        "double" => DateFormat::Double,
                        "epoch" => DateFormat::Epoch,
                        "epoch_ms" => DateFormat::EpochMs,
                        "iso8601" => DateFormat::Iso8601,
                        "java_sql_timestamp" => DateFormat::JavaSqlTimestamp,
                        _ => {
                            return Err(format!(
                                "[OUTPUT] stdout json_date_format {value:?} is not double, epoch, epoch_ms, iso8601 or java_sql_timestamp"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "[OUTPUT] stdout has no option {key}; it takes Format, json_date_key, json_date_format"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The line (newline included) for one record, given as the JSON
    /// object text Sluice rendered for it.
    pub fn line(&self, tag: &str, time_ns: i64, record_json: &str) -> String {
        let (sec, nsec) = (
            time_ns.div_euclid(1_000_000_000),
            time_ns.rem_euclid(1_000_000_000),
        );
        match self.format {
            StdoutFormat::Msgpack => {
                let record: Json = serde_json::from_str(record_json).unwrap_or(Json::Null);
                let mut line = format!("[0] {tag}: [[{sec}.{nsec:09}, {{}}], ");
                print_value(&mut line, &record);
                line.push_str("]\n");
                line
            }
            StdoutFormat::JsonLines | StdoutFormat::Json => {
                let body = record_json
                    .trim()
                    .strip_prefix('{')
                    .unwrap_or("}")
                    .trim_start();
                let mut object = String::from("{");
                if let Some(key) = &self.date_key {
                    let _ = write!(
                        object,
                        "{}:{}",
                        Json::String(key.clone()),
                        self.date(sec, nsec)
                    );
                    if body != "}" {
                        object.push(',');
                    }
                }
                object.push_str(body);
                if self.format == StdoutFormat::Json {
                    format!("[{object}]\n")
                } else {
                    object + "\n"
                }
            }
        }
    }

    /// The date as `flb_pack_msgpack_to_json_format` writes it.
    fn date(&self, sec: i64, nsec: i64) -> String {
        let civil = || {
            let (year, month, day) = sluice_parser::utc_date(sec * 1000);
            let s = sec.rem_euclid(86_400);
            (year, month, day, s / 3600, s % 3600 / 60, s % 60)
        };
        match self.date_format {
            DateFormat::Double => format!("{sec}.{:06}", nsec / 1000),
            DateFormat::Epoch => sec.to_string(),
            DateFormat::EpochMs => (sec * 1000 + nsec / 1_000_000).to_string(),
            DateFormat::Iso8601 => {
                let (y, mo, d, h, mi, s) = civil();
                format!(
                    "\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z\"",
                    nsec / 1000
                )
            }
            DateFormat::JavaSqlTimestamp => {
                let (y, mo, d, h, mi, s) = civil();
                format!(
                    "\"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:06}\"",
                    nsec / 1000
                )
            }
        }
    }
}

/// `msgpack_object_print`: strings in quotes as they are, maps as
/// `{"key"=>value}`, arrays as `[a, b]`, `nil`, floats with six decimals.
fn print_value(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("nil"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => {
                let _ = write!(out, "{i}");
            }
            (None, Some(u)) => {
                let _ = write!(out, "{u}");
            }
            _ => {
                let _ = write!(out, "{:.6}", n.as_f64().unwrap_or(0.0));
            }
        },
        Json::String(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_value(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('"');
                out.push_str(k);
                out.push_str("\"=>");
                print_value(out, v);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    fn output(entries: &[(&str, &str)]) -> Result<StdoutOutput, String> {
        let head = [("Name", "stdout"), ("Match", "*")];
        StdoutOutput::from_section(&crate::fluentbit::tests::section(
            SectionKind::Output,
            "o.conf:1",
            &head,
            entries,
        ))
    }

    const TIME: i64 = 1_795_892_349_839_365_123;

    #[test]
    fn formats_as_fluent_bit_writes_them() {
        let record = r#"{"log":"GET /x?token=REDACTED","n":2,"f":2.5,"ok":true,"none":null,"a":[1,"b"],"m":{"k":"v"}}"#;
        assert_eq!(
            output(&[]).unwrap().line("app", TIME, record),
            "[0] app: [[1795892349.839365123, {}], {\"a\"=>[1, \"b\"], \"f\"=>2.500000, \"log\"=>\"GET /x?token=REDACTED\", \"m\"=>{\"k\"=>\"v\"}, \"n\"=>2, \"none\"=>nil, \"ok\"=>true}]\n"
        );
        assert_eq!(
            output(&[("Format", "json_lines")])
                .unwrap()
                .line("app", TIME, r#"{"log":"x"}"#),
            "{\"date\":1795892349.839365,\"log\":\"x\"}\n"
        );
        assert_eq!(
            output(&[
                ("Format", "json"),
                ("json_date_key", "time"),
                ("json_date_format", "iso8601")
            ])
            .unwrap()
            .line("app", TIME, r#"{"log":"x"}"#),
            "[{\"time\":\"2026-11-28T18:59:09.839365Z\",\"log\":\"x\"}]\n"
        );
        assert_eq!(
            output(&[("Format", "json_stream"), ("json_date_key", "false")])
                .unwrap()
                .line("app", TIME, r#"{"log":"x"}"#),
            "{\"log\":\"x\"}\n"
        );
        let dates = [
            ("epoch", "1795892349"),
            ("epoch_ms", "1795892349839"),
            ("java_sql_timestamp", "\"2026-11-28 18:59:09.839365\""),
        ];
        for (format, date) in dates {
            assert_eq!(
                output(&[("Format", "json_lines"), ("json_date_format", format)])
                    .unwrap()
                    .line("t", TIME, "{}"),
                format!("{{\"date\":{date}}}\n"),
                "{format}"
            );
        }
    }

    #[test]
    fn wrong_options_are_named() {
        for (entries, error) in [
            (("Format", "yaml"), "[OUTPUT] stdout Format \"yaml\": Sluice writes msgpack, json, json_lines and json_stream"),
            (("json_date_format", "rfc"), "[OUTPUT] stdout json_date_format \"rfc\" is not double, epoch, epoch_ms, iso8601 or java_sql_timestamp"),
            (("color", "on"), "[OUTPUT] stdout has no option color; it takes Format, json_date_key, json_date_format"),
        ] {
            assert_eq!(output(&[entries]).unwrap_err(), error);
        }
    }
}
