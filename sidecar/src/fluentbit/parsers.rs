//! Fluent Bit parsers that a `[FILTER] parser` may name: the `json` format,
//! which is what AWS's `parse-json.conf` uses (aws-for-fluent-bit's
//! `/fluent-bit/configs/parse-json.conf`: `Parser json` on `log`), and the
//! `regex` format of users' own `[PARSER]` sections.
//!
//! A parser is known by name from, in order of precedence, the `[PARSER]`
//! sections of the configuration (and of the files `[SERVICE]
//! Parsers_File` names), then these parsers of Fluent Bit's own
//! `conf/parsers.conf`, which aws-for-fluent-bit ships as
//! `/fluent-bit/parsers/parsers.conf`: `json` and `docker`, and the web
//! servers' `apache`, `apache2`, `apache_error` and `nginx` (AWS's FireLens
//! example for common log formats names `apache`), with the keys and times
//! Fluent Bit's give, and `logfmt`; `[PARSER]` sections of the json, regex,
//! logfmt and ltsv formats, with their `Decode_Field` and `Decode_Field_As`
//! rules ([`super::decode`]).
//!
//! JSON parsing is `flb_parser_json_do`'s: the value must be one JSON
//! object ([`super::decode::one_json_object`]); the time key, when present, a string and of `Time_Format`,
//! gives the record's time and is removed unless `Time_Keep`; a time that
//! does not read leaves the key and the record's time as they were.
//!
//! Regex parsing is `flb_parser_regex_do`'s: the first match anywhere in
//! the value; each named group a string key, an empty one left out unless
//! `Skip_Empty_Values Off`; the time key read as above, except that a time
//! that does not read is left out. Patterns are read as Fluent Bit means
//! them ([`super::onig`]), and a pattern Rust cannot compile is an error at
//! start. logfmt and ltsv are read as `flb_parser_logfmt.c` and
//! `flb_parser_ltsv.c` read them.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value as Json};
use sluice_parser::StrpTime;

use super::classic::Section;
use super::decode::{one_json_object, unescape_utf8, Decoders};
use super::time_zone::TimeZone;
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
    /// The zone of times whose format gives none.
    pub zone: Zone,
    /// `Time_Strict` (default on); off, a time is what strptime read
    /// before the value stopped matching `Time_Format`.
    pub time_strict: bool,
    /// `Skip_Empty_Values` (regex parsers; default on).
    pub skip_empty: bool,
    /// `Types` (regex parsers; a JSON parser's values keep their JSON
    /// types, and Fluent Bit ignores its `Types`).
    pub types: Vec<(String, Cast)>,
    /// `Decode_Field` and `Decode_Field_As`.
    pub decoders: Decoders,
    /// What a filter that uses the parser notes at start: options read
    /// as Fluent Bit reads them, which may not be what was meant.
    pub notes: Vec<String>,
}

/// Where a parser places a time whose format gives no zone.
#[derive(Debug, PartialEq)]
pub enum Zone {
    /// `Time_Offset` (default 0): milliseconds east of UTC.
    Offset(i64),
    /// `Time_System_Timezone On`: the system's zone (`TZ`, else
    /// `/etc/localtime`).
    System,
    /// `Time_Zone`: a zone of the system's time zone database.
    Named(TimeZone),
}

/// A `Types` cast, as `flb_parser_typecast` makes it: C's `atoll`,
/// `strtoull(.., 16)` and `atof` (a value that does not read is 0), a
/// `true`/`false` prefix (else the value stays a string).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cast {
    Integer,
    Hex,
    Float,
    Bool,
    String,
}

#[derive(Debug)]
pub enum Format {
    Json,
    Regex(Regex),
    /// `no_bare_keys`: `Logfmt_No_Bare_Keys`, a line with a key without
    /// `=` is not read at all.
    Logfmt {
        no_bare_keys: bool,
    },
    Ltsv,
}

/// What one parse gave.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub fields: Map<String, Json>,
    /// The record's new time, in ms since the epoch.
    pub time_ms: Option<i64>,
}

impl Parsed {
    /// The record's new time in ns, if any: Fluent Bit takes a parsed time
    /// of 0 as none.
    pub fn time_ns(&self) -> Option<i64> {
        self.time_ms
            .filter(|&ms| ms != 0)
            .map(|ms| ms.saturating_mul(1_000_000))
    }
}

impl Parser {
    /// A parser of `format` with Fluent Bit's defaults: time key `time`,
    /// no time format, strict times, empty values skipped.
    fn new(name: &str, format: Format) -> Parser {
        Parser {
            name: name.to_string(),
            format,
            time_key: "time".to_string(),
            time_format: None,
            time_keep: false,
            zone: Zone::Offset(0),
            time_strict: true,
            skip_empty: true,
            types: Vec::new(),
            decoders: Decoders::default(),
            notes: Vec::new(),
        }
    }

    /// `None` when `value` is not what the parser reads: not one JSON
    /// object, or no match of the regex. `now_ms` is when the value is
    /// read (the record's time): a `Time_Format` without a year takes its
    /// year.
    pub fn parse(&self, value: &str, now_ms: i64) -> Option<Parsed> {
        let mut parsed = match &self.format {
            // Decodes before it reads the time, as Fluent Bit's does.
            Format::Json => return self.parse_json(value, now_ms),
            Format::Regex(re) => self.parse_regex(re, value, now_ms),
            Format::Logfmt { no_bare_keys } => self.parse_logfmt(*no_bare_keys, value, now_ms),
            Format::Ltsv => self.parse_ltsv(value, now_ms),
        }?;
        self.decoders.apply(&mut parsed.fields);
        Some(parsed)
    }

    /// `false` when [`Parser::parse`] surely gives `None`, found without
    /// parsing: a JSON parser's value must start with `{`.
    pub fn may_read(&self, value: &str) -> bool {
        match self.format {
            Format::Json => value.trim_start().starts_with('{'),
            Format::Regex(_) | Format::Logfmt { .. } | Format::Ltsv => true,
        }
    }

    fn parse_json(&self, value: &str, now_ms: i64) -> Option<Parsed> {
        // Cheap refusal of the common case, a line that is not JSON.
        if !self.may_read(value) {
            return None;
        }
        let mut fields = one_json_object(value)?;
        self.decoders.apply(&mut fields);
        let mut time_ms = None;
        if let Some(format) = &self.time_format {
            if let Some(Json::String(text)) = fields.get(&self.time_key) {
                time_ms = self.epoch_ms(format, text, now_ms);
                if time_ms.is_some() && !self.time_keep {
                    fields.remove(&self.time_key);
                }
            }
        }
        Some(Parsed { fields, time_ms })
    }

    fn parse_regex(&self, re: &Regex, value: &str, now_ms: i64) -> Option<Parsed> {
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
                time_ms = self.epoch_ms(format, text, now_ms);
                if time_ms.is_none() || !self.time_keep {
                    continue;
                }
            }
            let value = match self.types.iter().find(|(key, _)| key == name) {
                Some((_, to)) => cast(text, *to),
                None => Json::String(text.to_string()),
            };
            fields.insert(name.to_string(), value);
        }
        Some(Parsed { fields, time_ms })
    }
}

impl Parser {
    /// `flb_parser_logfmt_do`: `key=value`, `key="quoted \"value\""` and
    /// bare `key`s (`true`), with anything that is not a key byte between
    /// them, up to the line's end. A line with no pair is not read; the
    /// time key, when it has a value that does not read, fails the line.
    fn parse_logfmt(&self, no_bare_keys: bool, line: &str, now_ms: i64) -> Option<Parsed> {
        // Any byte above a space but `=` and `"` (UTF-8 sequences whole).
        let is_key_byte = |b: u8| b > b' ' && b != b'=' && b != b'"';
        let bytes = line.as_bytes();
        let mut fields = Map::new();
        let mut time_ms = None;
        let mut at = 0;
        while at < bytes.len() {
            while at < bytes.len() && !is_key_byte(bytes[at]) {
                at += 1;
            }
            if at == bytes.len() {
                break;
            }
            let key_start = at;
            while at < bytes.len() && is_key_byte(bytes[at]) {
                at += 1;
            }
            let key = &line[key_start..at];
            // The value: none (a bare key), a run of key bytes, or quoted.
            let mut value: Option<(&str, bool, bool)> = None;
            if bytes.get(at) == Some(&b'=') {
                at += 1;
                let start = at;
                if bytes.get(at) == Some(&b'"') {
                    at += 1;
                    let start = at;
                    let mut escaped = false;
                    while at < bytes.len() && bytes[at] != b'"' {
                        if bytes[at] == b'\\' {
                            escaped = true;
                            at += 1;
                        }
                        at = (at + 1).min(bytes.len());
                    }
                    value = Some((&line[start..at], true, escaped));
                    if at < bytes.len() {
                        at += 1;
                    }
                } else {
                    while at < bytes.len() && is_key_byte(bytes[at]) {
                        at += 1;
                    }
                    value = Some((&line[start..at], false, false));
                }
            }
            let text = value.map_or("", |(text, _, _)| text);
            if no_bare_keys && value.is_none() {
                return None;
            }
            self.put_pair(
                &mut fields,
                &mut time_ms,
                now_ms,
                key,
                text,
                || match value {
                    None | Some(("", false, _)) => Json::Bool(true),
                    Some((text, _, true)) => Json::String(unescape_utf8(text)),
                    Some((text, _, false)) => Json::String(text.to_string()),
                },
            )?;
            match bytes.get(at) {
                Some(b'\r') | Some(b'\n') | None => break,
                Some(_) => {}
            }
        }
        (!fields.is_empty()).then_some(Parsed { fields, time_ms })
    }
}

impl Parser {
    /// The time `text` gives in `format`, in the parser's zone when the
    /// format gives none (as `flb_parser_time_lookup` and
    /// `flb_parser_tm2time_parser` place it).
    fn epoch_ms(&self, format: &StrpTime, text: &str, now_ms: i64) -> Option<i64> {
        // A format without a year reads in the year (and date) the zone
        // has at `now_ms`; no other format reads `now_ms`, so the zone's
        // offset is looked up only for those.
        let read_at = match &self.zone {
            _ if !format.is_year_less() => now_ms,
            Zone::Offset(_) => now_ms,
            Zone::System => now_ms + super::local_time::offset_ms_at(now_ms),
            Zone::Named(zone) => now_ms + zone.offset_ms_at(now_ms),
        };
        let read = format.read(text, read_at, !self.time_strict)?;
        let ms = match &self.zone {
            Zone::System if read.zone_ms.is_none() => {
                super::local_time::wall_clock_to_epoch_ms(read.wall_ms)?
            }
            // Fluent Bit asks the format, not the value: a lenient read of
            // a zoned format that stopped before its zone is UTC.
            Zone::Named(zone) if !format.has_zone() => zone.wall_clock_to_epoch_ms(read.wall_ms),
            // flb_parser_time_lookup sets Time_Offset only once the whole
            // format was read.
            &Zone::Offset(offset_ms) if read.whole => read.epoch_ms(offset_ms),
            _ => read.epoch_ms(0),
        };
        // A lenient read that stopped before the year is in 1899 or 1900:
        // Fluent Bit sends the record with that time, which no output
        // keeps; Sluice keeps the time the record was read.
        (self.time_strict || ms >= 0).then_some(ms)
    }

    /// One pair of a logfmt or ltsv line, as both put it: the time key (a
    /// value that does not read fails the line: `None`), kept only with
    /// `Time_Keep`; with `Types`, the raw text cast; else `untyped()`.
    fn put_pair(
        &self,
        fields: &mut Map<String, Json>,
        time_ms: &mut Option<i64>,
        now_ms: i64,
        key: &str,
        text: &str,
        untyped: impl FnOnce() -> Json,
    ) -> Option<()> {
        if let Some(format) = self.time_format.as_ref() {
            if key == self.time_key && !text.is_empty() {
                *time_ms = Some(self.epoch_ms(format, text, now_ms)?);
                if !self.time_keep {
                    return Some(());
                }
            }
        }
        let json = if self.types.is_empty() {
            untyped()
        } else {
            match self.types.iter().find(|(k, _)| k == key) {
                Some((_, to)) => cast(text, *to),
                None => Json::String(text.to_string()),
            }
        };
        fields.insert(key.to_string(), json);
        Some(())
    }

    /// `flb_parser_ltsv_do`: `label:value` fields separated by tabs, up to
    /// the line's end. A label is `[0-9A-Za-z_.-]+`; reading stops, keeping
    /// what was read, at a label not followed by `:`.
    fn parse_ltsv(&self, line: &str, now_ms: i64) -> Option<Parsed> {
        let is_label_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        let is_value_byte = |b: u8| !matches!(b, 0 | b'\t' | b'\n' | b'\r');
        let bytes = line.as_bytes();
        let mut fields = Map::new();
        let mut time_ms = None;
        let mut at = 0;
        while at < bytes.len() {
            let label_start = at;
            while at < bytes.len() && is_label_byte(bytes[at]) {
                at += 1;
            }
            if bytes.get(at) != Some(&b':') {
                break;
            }
            let label = &line[label_start..at];
            at += 1;
            let value_start = at;
            while at < bytes.len() && is_value_byte(bytes[at]) {
                at += 1;
            }
            let value = &line[value_start..at];
            if !label.is_empty() {
                self.put_pair(&mut fields, &mut time_ms, now_ms, label, value, || {
                    Json::String(value.to_string())
                })?;
            }
            if bytes.get(at) == Some(&b'\t') {
                at += 1;
            }
            if matches!(bytes.get(at), Some(b'\r' | b'\n')) {
                break;
            }
        }
        (!fields.is_empty()).then_some(Parsed { fields, time_ms })
    }
}

/// A parser by name, or why it cannot be used.
pub type Parsers = HashMap<String, Result<Arc<Parser>, String>>;

/// The parser an input's `Parser` option names (`plugin` is the input,
/// `[INPUT] tail`, for the message): its own error when its section was
/// refused.
pub fn named(parsers: &Parsers, plugin: &str, name: &str) -> Result<Arc<Parser>, String> {
    match parsers.get(name) {
        Some(Ok(parser)) => Ok(parser.clone()),
        Some(Err(why)) => Err(why.clone()),
        None => Err(format!("{plugin} Parser {name}: no parser of that name")),
    }
}

/// The time of a web server's access log line (`[10/Oct/2000:13:55:36
/// -0700]`).
const ACCESS_LOG_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

/// The request line of an access log, `"GET /path HTTP/1.1"`, or `"-"`
/// when there was none.
const REQUEST: &str = r#""(?<method>[^ "]+)(?: (?<path>[^ "]*)(?: [^"]*)?)?""#;

/// Parsers of the names Fluent Bit's `conf/parsers.conf` (v5.1.1) defines,
/// which aws-for-fluent-bit ships as `/fluent-bit/parsers/parsers.conf`:
/// the same keys, time key and time format (all but its Kubernetes and
/// kernel parsers, [`NOT_BUILT_IN`]).
fn built_in() -> Parsers {
    let timed = |name: &str, format: Format, time: (&str, Option<&str>), keep: bool| {
        let (time_key, time_format) = time;
        let parser = Parser {
            time_key: time_key.to_string(),
            time_format: time_format
                .map(|f| StrpTime::new(f).expect("a built-in time format reads")),
            time_keep: keep,
            ..Parser::new(name, format)
        };
        (name.to_string(), Ok(Arc::new(parser)))
    };
    let parser = |name: &str, format: Format, time_format: Option<&str>, keep: bool| {
        timed(name, format, ("time", time_format), keep)
    };
    let regex =
        |pattern: String| Format::Regex(Regex::new(&pattern).expect("a built-in pattern compiles"));
    // Apache's common log format (`%h %l %u %t "%r" %>s %b`), and its
    // combined format, which adds the referer and the user agent.
    let apache = |agent: &str| {
        regex(format!(
            r#"^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] {REQUEST} (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^"]*)" "(?<agent>{agent})")?$"#
        ))
    };
    // nginx's `combined`: the remote address, then `-` (read as `host`),
    // and the referer and user agent always; anything may follow.
    let nginx = regex(format!(
        r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] {REQUEST} (?<code>[^ ]*) (?<size>[^ ]*) "(?<referer>[^"]*)" "(?<agent>[^"]*)""#
    ));
    // `[Wed Oct 11 14:32:52.123 2000] [core:error] [pid 35] [client
    // 10.0.0.1:5000] message`: the time stays a string, as in Fluent Bit.
    let apache_error = regex(
        r"^\[[^ ]* (?<time>[^\]]*)\] \[(?<level>[^\]]*)\](?: \[pid (?<pid>[^\]]*)\])?(?: \[client (?<client>[^\]]*)\])? (?<message>.*)$"
            .to_string(),
    );
    // Syslog: `<pri>`, then RFC 5424's version 1 and its fields, or
    // RFC 3164's `Mmm dd hh:mm:ss` (a year-less time), the host (not in
    // the `-local` form), and `ident[pid]:` before the message.
    let rfc5424 = regex(
        r"^<(?<pri>[0-9]{1,5})>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[-0-9]+) (?<msgid>[^ ]+) (?<extradata>\[.*?\]|-) (?<message>.+)$"
            .to_string(),
    );
    let rfc3164 = |host: &str| {
        regex(format!(
            r"^<(?<pri>[0-9]+)>(?<time>[^ ]* {{1,2}}[^ ]* [^ ]*) {host}(?<ident>[a-zA-Z0-9_/.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^:]*:)? *(?<message>.*)$"
        ))
    };
    // MongoDB's text log (before 4.4): time, severity letter, component,
    // `[context]`, the message, and a trailing duration; like Fluent Bit's
    // pattern, a message ending in digits gives them as `ms`.
    let mongodb = regex(
        r"^(?<time>[^ ]*)\s+(?<severity>\w)\s+(?<component>[^ ]+)\s+\[(?<context>[^\]]+)]\s+(?<message>.*?) *(?<ms>[0-9]+)?(?::?ms)?$"
            .to_string(),
    );
    let docker_daemon =
        regex(r#"time="(?<time>[^ ]*)" level=(?<level>[^ ]*) msg="(?<msg>[^ ].*)""#.to_string());
    let cri = regex(
        r"^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>[^ ]*) (?<message>.*)$".to_string(),
    );
    let envoy_time = ("start_time", Some("%Y-%m-%dT%H:%M:%S.%L%z"));
    [
        parser("json", Format::Json, Some(ACCESS_LOG_TIME), false),
        parser("docker", Format::Json, Some("%Y-%m-%dT%H:%M:%S.%L"), true),
        parser("apache", apache(r#"[^"]*"#), Some(ACCESS_LOG_TIME), false),
        // apache2's user agent may hold quotes.
        parser("apache2", apache(".*"), Some(ACCESS_LOG_TIME), false),
        parser("apache_error", apache_error, None, false),
        parser("nginx", nginx, Some(ACCESS_LOG_TIME), false),
        parser(
            "logfmt",
            Format::Logfmt {
                no_bare_keys: false,
            },
            None,
            false,
        ),
        parser(
            "syslog-rfc5424",
            rfc5424,
            Some("%Y-%m-%dT%H:%M:%S.%L%z"),
            true,
        ),
        parser(
            "syslog-rfc3164",
            rfc3164("(?<host>[^ ]*) "),
            Some("%b %d %H:%M:%S"),
            true,
        ),
        parser(
            "syslog-rfc3164-local",
            rfc3164(""),
            Some("%b %d %H:%M:%S"),
            true,
        ),
        parser("mongodb", mongodb, Some("%Y-%m-%dT%H:%M:%S.%L"), true),
        parser(
            "docker-daemon",
            docker_daemon,
            Some("%Y-%m-%dT%H:%M:%S.%L"),
            true,
        ),
        parser("cri", cri, Some("%Y-%m-%dT%H:%M:%S.%L%z"), true),
        timed("envoy", regex(envoy_pattern(false)), envoy_time, true),
        timed(
            "istio-envoy-proxy",
            regex(envoy_pattern(true)),
            envoy_time,
            true,
        ),
    ]
    .into_iter()
    .collect()
}

/// The names of the built-in parsers, in `parsers.conf`'s order of kinds,
/// for messages that list them.
pub const BUILT_IN: [&str; 15] = [
    "json",
    "docker",
    "docker-daemon",
    "cri",
    "apache",
    "apache2",
    "apache_error",
    "nginx",
    "logfmt",
    "syslog-rfc5424",
    "syslog-rfc3164",
    "syslog-rfc3164-local",
    "mongodb",
    "envoy",
    "istio-envoy-proxy",
];

/// The parsers of Fluent Bit's `conf/parsers.conf` that are not built in:
/// Kubernetes file names and kernel netfilter lines, which no ECS task's
/// records are. A `[PARSER]` section of the name still defines one.
pub const NOT_BUILT_IN: [&str; 3] = ["k8s-nginx-ingress", "kube-custom", "kmsg-netfilter-log"];

/// Envoy's default access log format (`envoy`), or Istio's (`istio-envoy-proxy`:
/// response code details and connection termination details after the
/// flags, the upstream failure reason, and the upstream and downstream
/// addresses, server name and route after the upstream host), with the
/// keys Fluent Bit's parsers give them. Sluice reads Envoy's own lines
/// into access records before any parser filter sees them (the filter
/// leaves them as they are), so these read only lines it does not take
/// for Envoy's.
fn envoy_pattern(istio: bool) -> String {
    let quoted = |name: &str| format!(r#""(?<{name}>[^"]*)""#);
    let quoted_token = |name: &str| format!(r#""(?<{name}>[^ ]*)""#);
    let token = |name: &str| format!("(?<{name}>[^ ]*)");
    let mut fields = vec![
        r"^\[(?<start_time>[^\]]*)\]".to_string(),
        r#""(?<method>\S+)(?: +(?<path>[^"]*?)(?: +\S*)?)? (?<protocol>\S+)""#.to_string(),
        token(if istio { "response_code" } else { "code" }),
        token("response_flags"),
    ];
    if istio {
        fields.push(token("response_code_details"));
        fields.push(token("connection_termination_details"));
        fields.push(quoted_token("upstream_transport_failure_reason"));
    }
    for name in [
        "bytes_received",
        "bytes_sent",
        "duration",
        "x_envoy_upstream_service_time",
    ] {
        fields.push(token(name));
    }
    fields.push(quoted_token("x_forwarded_for"));
    fields.push(quoted("user_agent"));
    fields.push(quoted(if istio { "x_request_id" } else { "request_id" }));
    fields.push(quoted_token("authority"));
    fields.push(quoted_token("upstream_host"));
    if istio {
        for name in [
            "upstream_cluster",
            "upstream_local_address",
            "downstream_local_address",
            "downstream_remote_address",
            "requested_server_name",
            "route_name",
        ] {
            fields.push(token(name));
        }
    }
    let mut pattern = fields.join(" ");
    if istio {
        pattern.push('$');
    }
    pattern
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
            Format::Regex(super::onig::regex(pattern).map_err(|e| {
                error(format!(
                    "Regex {pattern:?} is not a regular expression Sluice can use: {e}"
                ))
            })?)
        }
        "logfmt" => Format::Logfmt {
            no_bare_keys: false,
        },
        "ltsv" => Format::Ltsv,
        other => {
            return Err(error(format!(
                "Format {other:?}: Sluice runs json, regex, logfmt and ltsv parsers"
            )))
        }
    };
    let regex = matches!(format, Format::Regex(_));
    let logfmt = matches!(format, Format::Logfmt { .. });
    let mut parser = Parser::new(name, format);
    let (mut offset, mut system, mut zone) = (None, false, None);
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
            "time_strict" => parser.time_strict = flag(key, value)?,
            "time_offset" => {
                offset = Some(time_offset(value).ok_or_else(|| {
                    error(format!(
                        "Time_Offset {value:?} is not Z, +HHMM, -HHMM or +HH:MM"
                    ))
                })?)
            }
            "time_system_timezone" => system = flag(key, value)?,
            // As Fluent Bit reads it, an empty value is none.
            "time_zone" => zone = Some(value.as_str()).filter(|v| !v.is_empty()),
            "skip_empty_values" if regex => parser.skip_empty = flag(key, value)?,
            "logfmt_no_bare_keys" if logfmt => {
                parser.format = Format::Logfmt {
                    no_bare_keys: flag(key, value)?,
                }
            }
            "types" => {
                let (types, notes) = types(value);
                parser.types = types;
                parser
                    .notes
                    .extend(notes.into_iter().map(|n| error(format!("Types {n}"))));
            }
            "decode_field" | "decode_field_as" => parser
                .decoders
                .add(key.eq_ignore_ascii_case("decode_field"), value)
                .map_err(|e| error(format!("{key} {e}")))?,
            _ => {
                return Err(error(format!(
                "{key} is not supported by Sluice (it takes Time_Key, Time_Format, Time_Keep, Time_Offset, Time_System_Timezone, Time_Zone, Time_Strict, Types, Decode_Field, Decode_Field_As{})",
                if regex {
                    ", Regex, Skip_Empty_Values"
                } else if logfmt {
                    ", Logfmt_No_Bare_Keys"
                } else {
                    ""
                }
            )))
            }
        }
    }
    parser.zone = match (zone, system, offset) {
        (Some(_), _, _) if parser.time_format.is_none() => {
            return Err(error("Time_Zone needs a Time_Format".into()))
        }
        (Some(_), true, _) => {
            return Err(error(
                "Time_Zone cannot be combined with Time_System_Timezone On, as in Fluent Bit"
                    .into(),
            ))
        }
        (Some(_), _, Some(_)) => {
            return Err(error(
                "Time_Zone cannot be combined with Time_Offset, as in Fluent Bit".into(),
            ))
        }
        (Some(name), false, None) => {
            Zone::Named(TimeZone::load(name).map_err(|e| error(format!("Time_Zone {e}")))?)
        }
        (None, true, offset) => {
            if offset.is_some_and(|ms| ms != 0) {
                // flb_parser_create reads Time_Offset only without it.
                parser.notes.push(error(
                    "Time_Offset does not apply: Time_System_Timezone On puts times without a zone in the system's zone, as in Fluent Bit".into(),
                ));
            }
            Zone::System
        }
        (None, false, offset) => Zone::Offset(offset.unwrap_or(0)),
    };
    Ok(parser)
}

/// `Time_Offset` as `flb_parser_tzone_offset` reads it: `Z`, or a sign
/// with hours and minutes (`+0200`, `-05:30`); milliseconds east of UTC.
fn time_offset(value: &str) -> Option<i64> {
    let value = value.trim();
    if value.starts_with('Z') {
        return Some(0);
    }
    let (sign, rest) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => return None,
    };
    let digits: String = match rest.len() {
        4 => rest.to_string(),
        5 if rest.as_bytes()[2] == b':' => rest.replace(':', ""),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    if hours > 59 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60) * 1000)
}

/// `Types KEY:TYPE ...` as `proc_types_str` reads it: items split at
/// spaces, the key before the first `:`; an item without one is skipped,
/// and a type other than integer, hex, float and bool is a string (the
/// value left as it is). So `a:integer,b:integer` (commas, as in Fluent
/// Bit's own parsers_extra.conf) is `a` as a string. Those two are noted.
fn types(value: &str) -> (Vec<(String, Cast)>, Vec<String>) {
    let mut notes = Vec::new();
    let types = value
        .split(' ')
        .filter(|item| !item.is_empty())
        .filter_map(|item| {
            let Some((key, to)) = item.split_once(':') else {
                notes.push(format!("{item:?} is not KEY:TYPE, and is skipped as Fluent Bit skips it"));
                return None;
            };
            let to = match to.to_ascii_lowercase().as_str() {
                "integer" => Cast::Integer,
                "hex" => Cast::Hex,
                "float" => Cast::Float,
                "bool" => Cast::Bool,
                "string" => Cast::String,
                other => {
                    notes.push(format!(
                        "{item:?}: {other:?} is not integer, hex, float, bool or string, so {key} stays a string, as in Fluent Bit"
                    ));
                    Cast::String
                }
            };
            Some((key.to_string(), to))
        })
        .collect();
    (types, notes)
}

fn cast(text: &str, to: Cast) -> Json {
    let string = || Json::String(text.to_string());
    match to {
        Cast::Integer => Json::from(c_integer(text)),
        Cast::Hex => Json::from(c_hex(text)),
        Cast::Float => {
            serde_json::Number::from_f64(c_float(text)).map_or_else(string, Json::Number)
        }
        Cast::Bool => {
            let starts = |word: &str| {
                text.get(..word.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(word))
            };
            if starts("true") {
                Json::Bool(true)
            } else if starts("false") {
                Json::Bool(false)
            } else {
                string()
            }
        }
        Cast::String => string(),
    }
}

/// The sign and what follows it, after C's leading white space.
pub(super) fn c_sign(text: &str) -> (bool, &str) {
    let t = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    }
}

/// C's `atoll`, saturating as glibc's `strtoll` does.
pub(super) fn c_integer(text: &str) -> i64 {
    let (negative, rest) = c_sign(text);
    let magnitude = rest
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i128, |n, d| (n * 10 + i128::from(d - b'0')).min(1 << 64));
    let value = if negative { -magnitude } else { magnitude };
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// C's `strtoull(text, NULL, 16)`: an optional `0x`, saturating; a minus
/// sign negates in unsigned arithmetic, as C does.
fn c_hex(text: &str) -> u64 {
    let (negative, rest) = c_sign(text);
    let digits = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .filter(|d| d.as_bytes().first().is_some_and(u8::is_ascii_hexdigit))
        .unwrap_or(rest);
    let mut value: u64 = 0;
    for digit in digits.chars().map_while(|c| c.to_digit(16)) {
        match value
            .checked_mul(16)
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => return u64::MAX,
        }
    }
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// C's `atof` on decimal text: the longest prefix that reads, else 0.
pub(super) fn c_float(text: &str) -> f64 {
    let (negative, rest) = c_sign(text);
    let b = rest.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_end = digits_from(0);
    let mut end = int_end;
    if b.get(end) == Some(&b'.') {
        let after = digits_from(end + 1);
        if int_end > 0 || after > end + 1 {
            end = after;
        }
    }
    if end == 0 {
        return 0.0;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let exp_end = digits_from(end + 1 + sign);
        if exp_end > end + 1 + sign {
            end = exp_end;
        }
    }
    let value: f64 = rest[..end].parse().unwrap_or(0.0);
    if negative {
        -value
    } else {
        value
    }
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
            .parse(
                r#"{"level":"info","time":"03/Apr/2018:23:06:09 +0000","n":1}"#,
                0,
            )
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"level": "info", "n": 1})
        );
        assert_eq!(parsed.time_ms, Some(1522796769000));
        // A time of another layout stays, and the record's time with it.
        let parsed = json.parse(r#"{"time":"2018-04-03T23:06:09Z"}"#, 0).unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"time": "2018-04-03T23:06:09Z"})
        );
        assert_eq!(parsed.time_ms, None);
        // What follows the object and is not JSON is ignored, as Fluent
        // Bit ignores it.
        let parsed = json.parse("{\"a\":3}{", 0).unwrap();
        assert_eq!(Json::Object(parsed.fields), json!({"a": 3}));
        // Not one object: no parse.
        for line in [
            "[1,2]",
            "{\"a\":1} {\"b\":2}",
            "x {\"a\":1}",
            "{\"a\":",
            "plain text",
            "\"{\"",
        ] {
            assert_eq!(json.parse(line, 0), None, "{line}");
        }
        // docker keeps its time key. Docker's `Z` after the fraction is not
        // in its Time_Format, and not read: Fluent Bit v5.1.1 gives this
        // record 2018-04-03T23:06:09.500000Z.
        let docker = parsers["docker"].as_ref().unwrap();
        let parsed = docker
            .parse(r#"{"log":"x","time":"2018-04-03T23:06:09.5Z"}"#, 0)
            .unwrap();
        assert_eq!(parsed.time_ms, Some(1522796769500));
        let parsed = docker
            .parse(r#"{"log":"x","time":"2018-04-03T23:06:09.5"}"#, 0)
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
        let regex = section(&[("Name", "apache"), ("Format", "csv")]);
        let odd = section(&[
            ("Name", "typed"),
            ("Format", "json"),
            ("Decode_Field", "json"),
        ]);
        let parsers = parsers([&own, &regex, &odd].into_iter());
        let json = parsers["json"].as_ref().unwrap();
        let parsed = json.parse(r#"{"ts":"1522796769"}"#, 0).unwrap();
        assert_eq!(parsed.time_ms, Some(1522796769000));
        assert!(parsed.fields.contains_key("ts"));
        assert_eq!(
            parsers["apache"].as_ref().unwrap_err(),
            "[PARSER] apache at p.conf:1: Format \"csv\": Sluice runs json, regex, logfmt and ltsv parsers"
        );
        assert_eq!(
            parsers["typed"].as_ref().unwrap_err(),
            "[PARSER] typed at p.conf:1: Decode_Field \"json\" is not DECODER FIELD [ACTION]"
        );
        assert!(parsers["docker"].is_ok());
    }

    #[test]
    fn time_offset_places_times_without_a_zone() {
        let local = section(&[
            ("Name", "local"),
            ("Format", "regex"),
            ("Regex", "^(?<time>[^ ]+ [^ ]+) (?<msg>.*)$"),
            ("Time_Format", "%Y-%m-%d %H:%M:%S"),
            ("Time_Offset", "+0200"),
        ]);
        let zoned = section(&[
            ("Name", "zoned"),
            ("Format", "json"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S%z"),
            ("Time_Offset", "-05:30"),
        ]);
        let wrong = section(&[
            ("Name", "wrong"),
            ("Format", "json"),
            ("Time_Offset", "CET"),
        ]);
        let strict = section(&[
            ("Name", "strict"),
            ("Format", "json"),
            ("Time_Strict", "maybe"),
        ]);
        let parsers = parsers([&local, &zoned, &wrong, &strict].into_iter());
        assert_eq!(
            parsers["strict"].as_ref().unwrap_err(),
            "[PARSER] strict at p.conf:1: Time_Strict \"maybe\" is not On or Off"
        );
        // 12:00 two hours east of UTC is 10:00Z.
        let parsed = parsers["local"]
            .as_ref()
            .unwrap()
            .parse("2018-04-03 12:00:00 up", 0)
            .unwrap();
        assert_eq!(parsed.time_ms, Some(1522749600000));
        // A format with a zone ignores the offset, as Fluent Bit does.
        let parsed = parsers["zoned"]
            .as_ref()
            .unwrap()
            .parse(r#"{"time":"2018-04-03T10:00:00+0000"}"#, 0)
            .unwrap();
        assert_eq!(parsed.time_ms, Some(1522749600000));
        assert_eq!(
            parsers["wrong"].as_ref().unwrap_err(),
            "[PARSER] wrong at p.conf:1: Time_Offset \"CET\" is not Z, +HHMM, -HHMM or +HH:MM"
        );
        for (text, ms) in [
            ("Z", Some(0)),
            ("+0000", Some(0)),
            ("-0530", Some(-19_800_000)),
            ("+05:30", Some(19_800_000)),
            ("+5", None),
            ("0200", None),
            ("+02x0", None),
        ] {
            assert_eq!(time_offset(text), ms, "{text}");
        }
    }

    #[test]
    fn decode_rules_run_on_what_a_parser_read() {
        // The rules of Fluent Bit's docker parser, commented out in its
        // parsers.conf and often copied into users' files.
        let docker = section(&[
            ("Name", "docker_decoded"),
            ("Format", "json"),
            ("Time_Key", "time"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S.%L"),
            ("Decode_Field_As", "escaped_utf8 log do_next"),
            ("Decode_Field_As", "json log"),
        ]);
        // A JSON parser decodes before it reads the time: a time key that
        // Decode_Field adds gives the record's time.
        let merged = section(&[
            ("Name", "merged"),
            ("Format", "json"),
            ("Time_Key", "ts"),
            ("Time_Format", "%s"),
            ("Decode_Field", "json log"),
        ]);
        // A regex parser decodes what its groups read.
        let quoted = section(&[
            ("Name", "quoted"),
            ("Format", "regex"),
            ("Regex", r"^(?<level>\w+) (?<msg>.*)$"),
            ("Decode_Field_As", "mysql_quoted msg"),
        ]);
        let parsers = parsers([&docker, &merged, &quoted].into_iter());
        let docker = parsers["docker_decoded"].as_ref().unwrap();
        let parsed = docker
            .parse(
                r#"{"log":"{\"level\":\"info\",\"n\":2}\n","time":"2018-04-03T23:06:09.5"}"#,
                0,
            )
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"log": {"level": "info", "n": 2}})
        );
        assert_eq!(parsed.time_ms, Some(1522796769500));
        let parsed = parsers["merged"]
            .as_ref()
            .unwrap()
            .parse(r#"{"log":"{\"ts\":\"1522796769\",\"k\":\"v\"}"}"#, 0)
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"log": "{\"ts\":\"1522796769\",\"k\":\"v\"}", "k": "v"})
        );
        assert_eq!(parsed.time_ms, Some(1522796769000));
        let parsed = parsers["quoted"]
            .as_ref()
            .unwrap()
            .parse(r"warn 'it\'s'", 0)
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"level": "warn", "msg": "it's"})
        );
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
            .parse(
                r#"10.0.0.1 [03/Apr/2018:23:06:09 +0000] "GET /a?b=c" 200"#,
                0,
            )
            .unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"host": "10.0.0.1", "method": "GET", "path": "/a?b=c", "code": "200"})
        );
        assert_eq!(parsed.time_ms, Some(1522796769000));
        // A time that does not read is left out, and the time stays.
        let parsed = access.parse(r#"h [yesterday] "GET /" 200 12"#, 0).unwrap();
        assert_eq!(
            Json::Object(parsed.fields),
            json!({"host": "h", "method": "GET", "path": "/", "code": "200", "size": "12"})
        );
        assert_eq!(parsed.time_ms, None);
        assert_eq!(access.parse("no match", 0), None);
        let keep = parsers["keep"].as_ref().unwrap();
        assert_eq!(
            Json::Object(keep.parse("x", 0).unwrap().fields),
            json!({"a": "x", "b": ""})
        );
    }

    #[test]
    fn the_listed_names_are_the_built_in_parsers() {
        let mut listed = BUILT_IN.to_vec();
        listed.sort_unstable();
        let built = built_in();
        let mut names: Vec<&str> = built.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(listed, names);
    }

    #[test]
    fn web_server_parsers_are_built_in() {
        let parsers = parsers(std::iter::empty());
        let parse = |name: &str, line: &str| {
            let parsed = parsers[name].as_ref().unwrap().parse(line, 0).unwrap();
            (Json::Object(parsed.fields), parsed.time_ms)
        };
        // AWS's FireLens example line for common log formats.
        assert_eq!(
            parse(
                "nginx",
                r#"172.17.0.1 - - [03/Oct/2019:00:06:20 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.54.0" "-""#
            ),
            (
                json!({"remote": "172.17.0.1", "host": "-", "user": "-", "method": "GET", "path": "/", "code": "200", "size": "612", "referer": "-", "agent": "curl/7.54.0"}),
                Some(1570061180000)
            )
        );
        let combined = r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?user=x HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
        let fields = json!({"host": "10.0.0.1", "user": "frank", "method": "GET", "path": "/apache_pb.gif?user=x", "code": "200", "size": "2326", "referer": "http://www.example.com/start.html", "agent": "Mozilla/4.08 [en] (Win98; I ;Nav)"});
        assert_eq!(
            parse("apache", combined),
            (fields.clone(), Some(971211336000))
        );
        assert_eq!(parse("apache2", combined), (fields, Some(971211336000)));
        // The common format, and a request line Apache logs as "-".
        assert_eq!(
            parse(
                "apache",
                r#"10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "-" 408 -"#
            ),
            (
                json!({"host": "10.0.0.1", "user": "-", "method": "-", "code": "408", "size": "-"}),
                Some(971211336000)
            )
        );
        // apache2 takes a user agent with quotes in it; apache does not.
        let quoted = r#"h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "a "b" c""#;
        assert_eq!(parse("apache2", quoted).0["agent"], r#"a "b" c"#);
        assert!(parsers["apache"]
            .as_ref()
            .unwrap()
            .parse(quoted, 0)
            .is_none());
        assert_eq!(
            parse(
                "apache_error",
                "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35:tid 8] [client 10.0.0.1:5000] AH00128: File does not exist: /var/www/favicon.ico"
            ),
            (
                json!({"time": "Oct 11 14:32:52.123456 2000", "level": "core:error", "pid": "35:tid 8", "client": "10.0.0.1:5000", "message": "AH00128: File does not exist: /var/www/favicon.ico"}),
                None
            )
        );
        assert!(parsers["nginx"]
            .as_ref()
            .unwrap()
            .parse("GET / 200", 0)
            .is_none());
    }

    /// Lines read by Fluent Bit v5.1.1 with its own `conf/parsers.conf`
    /// (a dummy input, a parser filter on `log`, stdout in json_lines, on
    /// 2026-11-28), one per line of `testdata/fluent_bit_parsers.jsonl`:
    /// `[parser, line, the record's keys, the record's time in ms]`, the
    /// time `null` where Fluent Bit could not read it and kept the time
    /// the record had. The year-less syslog times took 2026.
    #[test]
    fn fluent_bit_s_other_parsers_read_as_v5_1_1_reads_them() {
        let parsers = parsers(std::iter::empty());
        let read_in_2026 = 1_795_860_000_000; // 2026-11-28T10:00:00Z
        let cases = include_str!("testdata/fluent_bit_parsers.jsonl");
        let mut names = std::collections::BTreeSet::new();
        for case in cases.lines() {
            let (name, line, keys, time_ms): (String, String, Json, Option<i64>) =
                serde_json::from_str(case).unwrap();
            let parsed = parsers[&name]
                .as_ref()
                .unwrap()
                .parse(&line, read_in_2026)
                .unwrap_or_else(|| panic!("{name} did not read {line}"));
            assert_eq!(Json::Object(parsed.fields), keys, "{name}: {line}");
            assert_eq!(parsed.time_ms, time_ms, "{name}: {line}");
            names.insert(name);
        }
        assert_eq!(names.len(), 8);
        // What is not such a line is not read.
        for name in names {
            let parser = parsers[&name].as_ref().unwrap();
            assert_eq!(parser.parse("plain text", read_in_2026), None, "{name}");
        }
    }

    #[test]
    fn logfmt_as_fluent_bit_reads_it() {
        let built_in = parsers(std::iter::empty());
        let logfmt = built_in["logfmt"].as_ref().unwrap();
        let fields = |p: &Parser, line: &str| p.parse(line, 0).map(|p| Json::Object(p.fields));
        assert_eq!(
            fields(
                logfmt,
                r#"level=info msg="GET /a \"b\"\tc" dur=12ms ok empty= quoted="" ü=ß"#
            ),
            Some(
                json!({"level": "info", "msg": "GET /a \"b\"\tc", "dur": "12ms", "ok": true, "empty": true, "quoted": "", "ü": "ß"})
            )
        );
        // Anything but key bytes separates pairs; a newline after a pair
        // ends the line.
        assert_eq!(
            fields(logfmt, "  a=1,\tb=x=y \"c\"=2\nd=4"),
            Some(json!({"a": "1,", "b": "x", "y": true, "c": true, "2": true}))
        );
        // Plain text reads as bare keys, as in Fluent Bit; nothing, not at all.
        assert_eq!(
            fields(logfmt, "hello world"),
            Some(json!({"hello": true, "world": true}))
        );
        assert_eq!(fields(logfmt, "  = \"\" "), None);
        assert_eq!(
            fields(logfmt, r#"m="\u00e9\x41\n\q" t="unterminated \""#),
            Some(json!({"m": "éA\nq", "t": "unterminated \""}))
        );
        let own = section(&[
            ("Name", "go"),
            ("Format", "logfmt"),
            ("Time_Key", "ts"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S%z"),
            ("Logfmt_No_Bare_Keys", "On"),
        ]);
        let typed = section(&[
            ("Name", "typed"),
            ("Format", "logfmt"),
            ("Types", "n:integer"),
        ]);
        let own_parsers = parsers([&own, &typed].into_iter());
        let go = own_parsers["go"].as_ref().unwrap();
        let parsed = go
            .parse("ts=2018-04-03T23:06:09+0000 level=warn", 0)
            .unwrap();
        assert_eq!(
            (Json::Object(parsed.fields), parsed.time_ms),
            (json!({"level": "warn"}), Some(1522796769000))
        );
        // A time that does not read fails the line; so does a bare key.
        assert_eq!(fields(go, "ts=yesterday level=warn"), None);
        assert_eq!(fields(go, "level=warn oops"), None);
        let typed = own_parsers["typed"].as_ref().unwrap();
        assert_eq!(
            fields(typed, r#"n=42 s="a\"b""#),
            Some(json!({"n": 42, "s": "a\\\"b"}))
        );
    }

    #[test]
    fn ltsv_as_fluent_bit_reads_it() {
        let own = section(&[
            ("Name", "ltsv"),
            ("Format", "ltsv"),
            ("Time_Key", "time"),
            ("Time_Format", "%d/%b/%Y:%H:%M:%S %z"),
            ("Types", "status:integer"),
        ]);
        let parsers = parsers([&own].into_iter());
        let ltsv = parsers["ltsv"].as_ref().unwrap();
        let parse = |line: &str| {
            ltsv.parse(line, 0)
                .map(|p| (Json::Object(p.fields), p.time_ms))
        };
        assert_eq!(
            parse("host:10.0.0.1\tident:-\ttime:[03/Apr/2018:23:06:09 +0000]\treq:GET /a?b=c HTTP/1.1\tstatus:200\t:skipped\tua:curl/8 x"),
            None,
            "the time key's value holds brackets, which the format does not read"
        );
        assert_eq!(
            parse("host:10.0.0.1\ttime:03/Apr/2018:23:06:09 +0000\treq:GET /a?b=c HTTP/1.1\tstatus:200\t:skipped\tempty:\tua:curl/8 x"),
            Some((
                json!({"host": "10.0.0.1", "req": "GET /a?b=c HTTP/1.1", "status": 200, "empty": "", "ua": "curl/8 x"}),
                Some(1522796769000)
            ))
        );
        // Reading stops at a label without ':', or at a line's end.
        assert_eq!(
            parse("a:1\tnot a label\tb:2"),
            Some((json!({"a": "1"}), None))
        );
        assert_eq!(parse("a:1\nb:2"), Some((json!({"a": "1"}), None)));
        assert_eq!(parse("plain text"), None);
    }

    proptest::proptest! {
        /// Any line, hostile bytes and escapes included, is read or not,
        /// never a panic.
        #[test]
        fn logfmt_and_ltsv_read_any_line(line in "[ a-z=:\"\\\\\\n\\tué\u{1F600}xU0-9]{0,40}") {
            let own = section(&[("Name", "ltsv"), ("Format", "ltsv")]);
            let parsers = parsers([&own].into_iter());
            let _ = parsers["logfmt"].as_ref().unwrap().parse(&line, 0);
            let _ = parsers["ltsv"].as_ref().unwrap().parse(&line, 0);
        }
    }

    /// `Time_Strict Off`: the time is what strptime read before the value
    /// stopped matching, as Fluent Bit v5.1.1 gave each of these (its
    /// stdout output, `scripts/same_as_fluent_bit.py`); `Time_Offset` only
    /// for a time read whole. A value that gives no year keeps the read
    /// time, where Fluent Bit gives 31 December 1899 and drops the record.
    #[test]
    fn a_lenient_time_is_what_strptime_read() {
        let lenient = |name: &str, format: &str, offset: Option<&str>| {
            let mut options = vec![
                ("Name", name),
                ("Format", "regex"),
                ("Regex", r"^(?<time>[^|]*)\|(?<msg>.*)$"),
                ("Time_Key", "time"),
                ("Time_Format", format),
                ("Time_Strict", "Off"),
            ];
            options.extend(offset.map(|o| ("Time_Offset", o)));
            section(&options)
        };
        let sections = [
            lenient("loose", "%Y-%m-%d %H:%M:%S", None),
            lenient("zoned", "%Y-%m-%dT%H:%M:%S.%L%z", None),
            lenient("syslog", "%b %d %H:%M:%S", None),
            lenient("offset", "%Y-%m-%d %H:%M:%S", Some("+0200")),
        ];
        let parsers = parsers(sections.iter());
        // 2026-11-29T02:14:07Z, when Fluent Bit read the syslog lines.
        let now_ms = 1_795_918_447_000;
        let time = |parser: &str, line: &str| {
            let parsed = parsers[parser]
                .as_ref()
                .unwrap()
                .parse(line, now_ms)
                .unwrap();
            (parsed.time_ms, parsed.fields.contains_key("time"))
        };
        // A table, one value a row.
        #[rustfmt::skip]
        let cases = [
            ("loose", "2021-03-09 17:32:02|exact", Some(1_615_311_122_000)),
            ("loose", "2021-03-09|date only", Some(1_615_248_000_000)),
            ("loose", "2021-03-09T17:32:02|with T", Some(1_615_248_000_000)),
            ("loose", "2021-03-09 17:32|no seconds", Some(1_615_311_120_000)),
            ("loose", "2021-13-01 10:00:00|month 13", Some(1_609_372_800_000)),
            ("loose", "2021-02-30 10:00:00|feb 30", Some(1_614_679_200_000)),
            ("loose", "2021-02-03 25:00:00|hour 25", Some(1_612_310_400_000)),
            ("loose", "2021|year only", Some(1_609_372_800_000)),
            ("loose", "garbage|no time at all", None),
            ("zoned", "2021-03-09T17:32:02.5+0100|ms exact", Some(1_615_307_522_500)),
            ("zoned", "2021-03-09T17:32:02|ms missing", Some(1_615_311_122_000)),
            ("zoned", "2021-03-09T17:32:02.123|zone missing", Some(1_615_311_122_123)),
            ("syslog", "Jul  4 10:00:00|syslog whole", Some(1_783_159_200_000)),
            ("syslog", "Jul|syslog month only", Some(1_785_283_200_000)),
            ("syslog", "xyz|syslog nothing", Some(1_795_910_400_000)),
            ("offset", "2021-03-09 17:32:02|offset whole", Some(1_615_303_922_000)),
            ("offset", "2021-03-09|offset partial", Some(1_615_248_000_000)),
        ];
        for (parser, line, want) in cases {
            // Without Time_Keep the time is not a key of the record,
            // whether it reads or not (a regex parser's rule).
            assert_eq!(time(parser, line), (want, false), "{line}");
        }
    }

    /// `Time_System_Timezone On` takes the place of `Time_Offset`, which
    /// is noted; the option is On or Off.
    #[test]
    fn the_system_time_zone_replaces_time_offset() {
        let local = section(&[
            ("Name", "local"),
            ("Format", "json"),
            ("Time_Format", "%Y-%m-%d %H:%M:%S"),
            ("Time_Offset", "+0200"),
            ("Time_System_Timezone", "On"),
        ]);
        let bad = section(&[
            ("Name", "bad"),
            ("Format", "json"),
            ("Time_System_Timezone", "local"),
        ]);
        let parsers = parsers([&local, &bad].into_iter());
        let local = parsers["local"].as_ref().unwrap();
        assert_eq!(local.zone, Zone::System);
        assert_eq!(
            local.notes,
            ["[PARSER] local at p.conf:1: Time_Offset does not apply: Time_System_Timezone On puts times without a zone in the system's zone, as in Fluent Bit"]
        );
        assert_eq!(
            parsers["bad"].as_ref().unwrap_err(),
            "[PARSER] bad at p.conf:1: Time_System_Timezone \"local\" is not On or Off"
        );
    }

    /// `Time_Zone` places times whose format gives no zone in that zone,
    /// a format without a year in the zone's year, and refuses what
    /// Fluent Bit refuses.
    #[test]
    fn a_named_time_zone_places_times_without_a_zone() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-zoneinfo-")
            .tempdir()
            .unwrap();
        std::fs::write(
            tmp.path().join("Berlin"),
            crate::fluentbit::time_zone::tests::berlin_2021(),
        )
        .unwrap();
        let berlin = || Zone::Named(TimeZone::load_from(tmp.path(), "Berlin").unwrap());
        let with_format = |name: &str, format: &str| {
            let mut parser = parser(&section(&[
                ("Name", name),
                ("Format", "json"),
                ("Time_Format", format),
            ]))
            .unwrap();
            parser.zone = berlin();
            parser
        };
        let local = with_format("local", "%Y-%m-%d %H:%M:%S");
        let zoned = with_format("zoned", "%Y-%m-%dT%H:%M:%S%z");
        let syslog = with_format("syslog", "%b %d %H:%M:%S");
        let time = |parser: &Parser, value: &str, now_ms: i64| {
            parser
                .parse(&format!(r#"{{"time":"{value}"}}"#), now_ms)
                .unwrap()
                .time_ms
        };
        // Summer and winter, two and one hours east of UTC.
        assert_eq!(
            time(&local, "2021-07-01 12:00:00", 0),
            Some(1_625_133_600_000)
        );
        assert_eq!(
            time(&local, "2021-01-15 12:00:00", 0),
            Some(1_610_708_400_000)
        );
        // A zoned format keeps its own zone.
        assert_eq!(
            time(&zoned, "2021-07-01T12:00:00+0000", 0),
            Some(1_625_140_800_000)
        );
        // 2021-12-31T23:30:00Z is already 2022 in the zone.
        let new_year_ms = 1_640_993_400_000;
        assert_eq!(
            time(&syslog, "Jan 01 00:15:00", new_year_ms),
            Some(1_640_992_500_000)
        );
        for (entries, error) in [
            (
                vec![("Time_Zone", "Berlin")],
                "[PARSER] p at p.conf:1: Time_Zone needs a Time_Format",
            ),
            (
                vec![
                    ("Time_Format", "%s"),
                    ("Time_Zone", "Berlin"),
                    ("Time_System_Timezone", "On"),
                ],
                "[PARSER] p at p.conf:1: Time_Zone cannot be combined with Time_System_Timezone On, as in Fluent Bit",
            ),
            (
                vec![
                    ("Time_Format", "%s"),
                    ("Time_Offset", "+0000"),
                    ("Time_Zone", "Berlin"),
                ],
                "[PARSER] p at p.conf:1: Time_Zone cannot be combined with Time_Offset, as in Fluent Bit",
            ),
            (
                vec![("Time_Format", "%s"), ("Time_Zone", "../etc/passwd")],
                r#"[PARSER] p at p.conf:1: Time_Zone "../etc/passwd" is not a time zone name (an IANA name such as Europe/Berlin)"#,
            ),
        ] {
            let mut all = vec![("Name", "p"), ("Format", "json")];
            all.extend(entries);
            assert_eq!(parser(&section(&all)).unwrap_err(), error);
        }
        // An empty Time_Zone is none, as Fluent Bit reads it.
        let empty = parser(&section(&[
            ("Name", "p"),
            ("Format", "json"),
            ("Time_Zone", ""),
        ]))
        .unwrap();
        assert_eq!(empty.zone, Zone::Offset(0));
    }

    #[test]
    fn types_cast_as_fluent_bit_casts() {
        let typed = section(&[
            ("Name", "typed"),
            ("Format", "regex"),
            (
                "Regex",
                r"^(?<code>\S+) (?<size>\S+) (?<id>\S+) (?<ok>\S+) (?<ms>\S+) (?<s>\S+)$",
            ),
            (
                "Types",
                "code:integer size:integer id:hex ok:bool ms:float s:string",
            ),
        ]);
        // As Fluent Bit's parsers_extra.conf writes them: only `a` is
        // read, as a string.
        let bad = section(&[
            ("Name", "bad"),
            ("Format", "regex"),
            ("Regex", "^(?<a>[^,]*),(?<b>.*)$"),
            ("Types", "a:integer,b:integer  c"),
        ]);
        let parsers = parsers([&typed, &bad].into_iter());
        let typed = parsers["typed"].as_ref().unwrap();
        let fields = |line: &str| Json::Object(typed.parse(line, 0).unwrap().fields);
        assert_eq!(
            fields("200 12kB 0x1F TRUE 1.5e3ms 7"),
            json!({"code": 200, "size": 12, "id": 31, "ok": true, "ms": 1500.0, "s": "7"})
        );
        assert_eq!(
            fields("-7 abc ff nope -.5 x"),
            json!({"code": -7, "size": 0, "id": 255, "ok": "nope", "ms": -0.5, "s": "x"})
        );
        assert_eq!(
            fields("99999999999999999999 1 ffffffffffffffffff false 1e999 x"),
            json!({"code": i64::MAX, "size": 1, "id": u64::MAX, "ok": false, "ms": "1e999", "s": "x"})
        );
        let bad = parsers["bad"].as_ref().unwrap();
        assert_eq!(
            Json::Object(bad.parse("7,8", 0).unwrap().fields),
            json!({"a": "7", "b": "8"})
        );
        assert_eq!(
            bad.notes,
            [
                "[PARSER] bad at p.conf:1: Types \"a:integer,b:integer\": \"integer,b:integer\" is not integer, hex, float, bool or string, so a stays a string, as in Fluent Bit",
                "[PARSER] bad at p.conf:1: Types \"c\" is not KEY:TYPE, and is skipped as Fluent Bit skips it"
            ]
        );
    }
}
