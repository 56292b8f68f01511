//! Configuration: a TOML file (or nothing: the embedded default), every key
//! overridable by an environment variable `SLUICE_<SECTION>_<KEY>`.
//!
//! Two stages, so that every mistake is found at once: the raw table (file
//! plus environment) is checked against [`KEYS`] for unknown sections, unknown
//! keys and wrong types, then the values are validated into [`Config`]. Each
//! problem is a [`ConfigError`] naming its key and what is allowed.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_parser::{Format, QueryMode, Redactor, RouteTable};

use crate::spool::SpoolConfig;
use crate::stats::{emf, StatsConfig};

/// `[sampling]`: which access records are written (statistics count all).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// The fraction of ordinary requests kept, chosen by request id.
    pub rate: f64,
    /// Requests at least this slow are always kept.
    pub slow_ms: Option<u64>,
}
use toml::{Table, Value};

/// The kind of value a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings. From the environment: a TOML array (`["a", "b"]`),
    /// or a comma-separated list when `split` is true, else one item.
    List {
        split: bool,
    },
    /// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, or an integer of seconds.
    Duration,
    /// `"64MiB"`, `"512KiB"`, `"1GiB"`, or an integer of bytes.
    Size,
    /// A number from 0 to 1, such as `0.1`.
    Fraction,
}

/// Every key: section, key, kind.
const KEYS: &[(&str, &str, Kind)] = &[
    ("forward", "listen", Kind::Str),
    ("forward", "unix_path", Kind::Str),
    ("forward", "unix_mode", Kind::Str),
    ("forward", "shared_key", Kind::Str),
    ("forward", "max_connections", Kind::Int),
    ("forward", "idle_timeout", Kind::Duration),
    ("output", "type", Kind::Str),
    ("file", "dir", Kind::Str),
    ("cloudwatch", "region", Kind::Str),
    ("cloudwatch", "endpoint", Kind::Str),
    ("cloudwatch", "log_group", Kind::Str),
    ("cloudwatch", "access_stream", Kind::Str),
    ("cloudwatch", "app_stream", Kind::Str),
    ("cloudwatch", "stats_stream", Kind::Str),
    ("cloudwatch", "auto_create", Kind::Bool),
    ("cloudwatch", "retention_days", Kind::Int),
    ("cloudwatch", "flush_interval", Kind::Duration),
    ("cloudwatch", "app_format", Kind::Str),
    ("envoy", "containers", Kind::List { split: true }),
    ("envoy", "formats", Kind::List { split: false }),
    ("envoy", "routes", Kind::List { split: true }),
    ("redact", "mode", Kind::Str),
    ("redact", "allow", Kind::List { split: true }),
    ("redact", "patterns", Kind::List { split: false }),
    ("limits", "memory", Kind::Size),
    ("shutdown", "drain", Kind::Duration),
    ("shutdown", "grace", Kind::Duration),
    ("stats", "enabled", Kind::Bool),
    ("stats", "interval", Kind::Duration),
    ("stats", "namespace", Kind::Str),
    ("stats", "service", Kind::Str),
    ("stats", "dimensions", Kind::List { split: false }),
    ("stats", "metrics", Kind::List { split: true }),
    ("stats", "max_routes", Kind::Int),
    ("admin", "listen", Kind::Str),
    ("sampling", "rate", Kind::Fraction),
    ("sampling", "slow", Kind::Duration),
    ("spool", "dir", Kind::Str),
    ("spool", "max_size", Kind::Size),
    ("spool", "segment_size", Kind::Size),
    ("spool", "fsync", Kind::Str),
];

/// The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
pub const RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Placeholders log group and stream templates may use.
pub const TEMPLATE_FIELDS: [&str; 5] = ["container_name", "task_id", "cluster", "tag", "date"];

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `section.key`, or `section` for a whole section, or `file`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputType {
    Stdout,
    File,
    Cloudwatch,
}

/// The validated configuration `sluice run` uses.
#[derive(Debug)]
pub struct Config {
    pub forward: ForwardConfig,
    pub output: OutputType,
    pub file_dir: Option<PathBuf>,
    /// The templates are used by the file output; the rest waits for the
    /// The CloudWatch output.
    pub cloudwatch: CloudwatchConfig,
    pub envoy: EnvoyConfig,
    pub redact: RedactConfig,
    /// Bytes that decoded events on their way through the pipeline may use.
    pub memory_limit: u64,
    /// After SIGTERM, how long input is still accepted.
    pub shutdown_drain: Duration,
    /// After SIGTERM, the time to be done by (ECS's stopTimeout is 30 s).
    pub shutdown_grace: Duration,
    /// `None` with `stats.enabled = false`.
    pub stats: Option<StatsConfig>,
    /// `None` with `admin.listen = ""`.
    pub admin_listen: Option<SocketAddr>,
    /// `None` unless a `[sampling]` key is set: every access record is kept.
    pub sampling: Option<SamplingConfig>,
    /// `None` unless `spool.dir` is set.
    pub spool: Option<SpoolConfig>,
}

#[derive(Debug)]
pub struct ForwardConfig {
    pub listen: Option<SocketAddr>,
    pub unix_path: Option<PathBuf>,
    pub unix_mode: u32,
    pub shared_key: Option<String>,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug)]
pub struct CloudwatchConfig {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub log_group: String,
    pub access_stream: String,
    pub app_stream: String,
    pub stats_stream: String,
    pub auto_create: bool,
    pub retention_days: Option<i64>,
    pub flush_interval: Duration,
    /// `app_format = "json"`: application lines as JSON objects with their
    /// metadata; by default (`"line"`) the redacted line as it was.
    pub app_lines_as_json: bool,
}

#[derive(Debug)]
pub struct EnvoyConfig {
    /// Containers whose lines may be access logs; empty means all.
    pub containers: Vec<String>,
    /// Extra format strings, compiled.
    pub formats: Vec<Format>,
    pub routes: RouteTable,
}

#[derive(Debug)]
pub struct RedactConfig {
    pub redactor: Redactor,
}

/// Reads the configuration: `file` is the TOML text (`None`: the embedded
/// default), `env` looks up environment variables.
pub fn load(
    file: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut table = match file.map(str::parse::<Table>) {
        None => Table::new(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return Err(vec![ConfigError {
                key: "file".into(),
                message: format!("not valid TOML: {}", e.message()),
            }])
        }
    };
    check_shape(&table, &mut errors);
    apply_env(&mut table, &env, &mut errors);
    let config = Reader {
        table: &table,
        errors: &mut errors,
    }
    .config();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn kind_of(section: &str, key: &str) -> Option<Kind> {
    KEYS.iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, kind)| *kind)
}

/// Unknown sections, unknown keys, values of the wrong type.
fn check_shape(table: &Table, errors: &mut Vec<ConfigError>) {
    let sections: Vec<&str> = {
        let mut s: Vec<&str> = KEYS.iter().map(|(s, _, _)| *s).collect();
        s.dedup();
        s
    };
    for (section, value) in table {
        if !sections.contains(&section.as_str()) {
            errors.push(ConfigError {
                key: section.clone(),
                message: format!("unknown section; the sections are {}", sections.join(", ")),
            });
            continue;
        }
        let Value::Table(keys) = value else {
            errors.push(ConfigError {
                key: section.clone(),
                message: format!("expected a [{section}] table"),
            });
            continue;
        };
        for (key, value) in keys {
            let full = format!("{section}.{key}");
            match kind_of(section, key) {
                None => {
                    let known: Vec<&str> = KEYS
                        .iter()
                        .filter(|(s, _, _)| s == section)
                        .map(|(_, k, _)| *k)
                        .collect();
                    errors.push(ConfigError {
                        key: full,
                        message: format!("unknown key; [{section}] takes {}", known.join(", ")),
                    });
                }
                Some(kind) => {
                    if !type_fits(kind, value) {
                        errors.push(ConfigError {
                            key: full,
                            message: format!("expected {}", describe(kind)),
                        });
                    }
                }
            }
        }
    }
}

fn type_fits(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (Kind::Str, Value::String(_))
        | (Kind::Int, Value::Integer(_))
        | (Kind::Bool, Value::Boolean(_)) => true,
        (Kind::List { .. }, Value::Array(items)) => items.iter().all(Value::is_str),
        (Kind::Duration | Kind::Size, Value::String(_) | Value::Integer(_)) => true,
        (Kind::Fraction, Value::Float(f)) => (0.0..=1.0).contains(f),
        (Kind::Fraction, Value::Integer(i)) => (0..=1).contains(i),
        // unix_mode may be written 0o600.
        (Kind::Str, Value::Integer(_)) => true,
        _ => false,
    }
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Bool => "true or false",
        Kind::List { .. } => "a list of strings",
        Kind::Duration => "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"",
        Kind::Size => "a size such as \"64MiB\"",
        Kind::Fraction => "a number from 0 to 1 such as 0.1",
    }
}

/// `SLUICE_<SECTION>_<KEY>` overrides the file, for every key in [`KEYS`].
fn apply_env(
    table: &mut Table,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    for (section, key, kind) in KEYS {
        let var = format!("SLUICE_{}_{}", section.to_uppercase(), key.to_uppercase());
        let Some(raw) = env(&var) else { continue };
        let value = match kind {
            Kind::Str | Kind::Duration | Kind::Size => Some(Value::String(raw)),
            Kind::Int => raw.trim().parse::<i64>().ok().map(Value::Integer),
            Kind::Fraction => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .map(Value::Float),
            Kind::Bool => match raw.trim() {
                "true" | "1" | "yes" => Some(Value::Boolean(true)),
                "false" | "0" | "no" => Some(Value::Boolean(false)),
                _ => None,
            },
            Kind::List { split } => env_list(&raw, *split).map(Value::Array),
        };
        match value {
            Some(v) => {
                let entry = table
                    .entry(section.to_string())
                    .or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(t) = entry {
                    t.insert(key.to_string(), v);
                }
            }
            None => errors.push(ConfigError {
                key: var,
                message: format!("expected {}", describe(*kind)),
            }),
        }
    }
}

fn env_list(raw: &str, split: bool) -> Option<Vec<Value>> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        let table: Table = format!("v = {trimmed}").parse().ok()?;
        return match table.get("v") {
            Some(Value::Array(items)) if items.iter().all(Value::is_str) => Some(items.clone()),
            _ => None,
        };
    }
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    let items: Vec<Value> = if split {
        trimmed
            .split(',')
            .map(|s| Value::String(s.trim().to_string()))
            .collect()
    } else {
        vec![Value::String(raw.to_string())]
    };
    Some(items)
}

/// Reads typed values out of the checked table, collecting errors.
struct Reader<'a> {
    table: &'a Table,
    errors: &'a mut Vec<ConfigError>,
}

impl Reader<'_> {
    fn value(&self, section: &str, key: &str) -> Option<&Value> {
        self.table.get(section)?.as_table()?.get(key)
    }

    fn error(&mut self, section: &str, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: format!("{section}.{key}"),
            message: message.into(),
        });
    }

    fn str(&self, section: &str, key: &str) -> Option<String> {
        self.value(section, key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn string_or(&self, section: &str, key: &str, default: &str) -> String {
        self.str(section, key)
            .unwrap_or_else(|| default.to_string())
    }

    fn int(&self, section: &str, key: &str) -> Option<i64> {
        self.value(section, key).and_then(Value::as_integer)
    }

    fn bool_or(&self, section: &str, key: &str, default: bool) -> bool {
        self.value(section, key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }

    fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.value(section, key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn duration_or(&mut self, section: &str, key: &str, default: Duration) -> Duration {
        match self.value(section, key) {
            None => default,
            Some(Value::Integer(n)) if *n >= 0 => Duration::from_secs(*n as u64),
            Some(Value::String(s)) => match parse_duration(s) {
                Some(d) => d,
                None => {
                    self.error(
                        section,
                        key,
                        format!("{s:?} is not {}", describe(Kind::Duration)),
                    );
                    default
                }
            },
            Some(_) => default, // reported by check_shape
        }
    }

    fn size_or(&mut self, section: &str, key: &str, default: u64) -> u64 {
        match self.value(section, key) {
            None => default,
            Some(Value::Integer(n)) if *n > 0 => *n as u64,
            Some(Value::String(s)) => match parse_size(s) {
                Some(n) => n,
                None => {
                    self.error(
                        section,
                        key,
                        format!("{s:?} is not {}", describe(Kind::Size)),
                    );
                    default
                }
            },
            Some(_) => default,
        }
    }

    fn config(mut self) -> Config {
        let drain = self.duration_or("shutdown", "drain", Duration::from_secs(2));
        let grace = self.duration_or("shutdown", "grace", Duration::from_secs(25));
        if drain >= grace {
            self.error(
                "shutdown",
                "drain",
                format!("{drain:?} must be shorter than shutdown.grace ({grace:?})"),
            );
        }
        Config {
            forward: self.forward(),
            output: self.output(),
            file_dir: self.str("file", "dir").map(PathBuf::from),
            cloudwatch: self.cloudwatch(),
            envoy: self.envoy(),
            redact: self.redact(),
            memory_limit: self.size_or("limits", "memory", 64 << 20),
            shutdown_drain: drain,
            shutdown_grace: grace,
            stats: self.stats(),
            admin_listen: self.admin(),
            sampling: self.sampling(),
            spool: self.spool(),
        }
    }

    fn spool(&mut self) -> Option<SpoolConfig> {
        let dir = self.str("spool", "dir").filter(|d| !d.is_empty());
        let max_size = self.size_or("spool", "max_size", 256 << 20);
        let segment_size = self.size_or("spool", "segment_size", 8 << 20);
        let fsync = match self.string_or("spool", "fsync", "batch").as_str() {
            "batch" => true,
            "off" => false,
            other => {
                self.error(
                    "spool",
                    "fsync",
                    format!("{other:?} is not \"batch\" (fsync before each ack) or \"off\""),
                );
                true
            }
        };
        if segment_size < 64 << 10 {
            self.error("spool", "segment_size", "must be at least 64KiB");
        }
        if max_size < 2 * segment_size {
            self.error(
                "spool",
                "max_size",
                format!("must be at least twice spool.segment_size ({segment_size} bytes)"),
            );
        }
        Some(SpoolConfig {
            dir: PathBuf::from(dir?),
            max_size,
            segment_size,
            fsync,
        })
    }

    fn stats(&mut self) -> Option<StatsConfig> {
        let defaults = StatsConfig::default();
        let interval = self.duration_or("stats", "interval", Duration::from_secs(60));
        if interval < Duration::from_secs(1) {
            self.error("stats", "interval", "must be at least 1s");
        }
        let dimensions: Vec<Vec<String>> = match self.value("stats", "dimensions") {
            None => defaults.dimensions.clone(),
            Some(_) => self
                .list("stats", "dimensions")
                .iter()
                .map(|set| {
                    set.split(',')
                        .map(|d| d.trim().to_string())
                        .filter(|d| !d.is_empty())
                        .collect()
                })
                .collect(),
        };
        for set in &dimensions {
            if let Some(bad) = set.iter().find(|d| !emf::DIMENSIONS.contains(&d.as_str())) {
                self.error(
                    "stats",
                    "dimensions",
                    format!("{bad:?} is not a dimension; sets are comma-separated lists of service, route"),
                );
            }
        }
        if dimensions.is_empty() {
            self.error("stats", "dimensions", "needs at least one dimension set");
        }
        let metrics = match self.value("stats", "metrics") {
            None => defaults.metrics.clone(),
            Some(_) => self.list("stats", "metrics"),
        };
        for name in &metrics {
            if !emf::FIGURES.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = emf::FIGURES.iter().map(|(n, _)| *n).collect();
                self.error(
                    "stats",
                    "metrics",
                    format!("{name:?} is not a figure; they are {}", known.join(", ")),
                );
            }
        }
        let max_routes = match self.int("stats", "max_routes") {
            None => defaults.max_routes,
            Some(n) if (1..=100_000).contains(&n) => n as usize,
            Some(n) => {
                self.error(
                    "stats",
                    "max_routes",
                    format!("{n} is not from 1 to 100000"),
                );
                defaults.max_routes
            }
        };
        let config = StatsConfig {
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1000),
            namespace: self.string_or("stats", "namespace", &defaults.namespace),
            service: self.str("stats", "service").filter(|s| !s.is_empty()),
            dimensions,
            metrics,
            max_routes,
        };
        self.bool_or("stats", "enabled", true).then_some(config)
    }

    fn admin(&mut self) -> Option<SocketAddr> {
        self.listen_address("admin", "127.0.0.1:2020", "none")
    }

    /// `section.listen`: a socket address, or `""` for `none_means`.
    fn listen_address(
        &mut self,
        section: &str,
        default: &str,
        none_means: &str,
    ) -> Option<SocketAddr> {
        let text = self.string_or(section, "listen", default);
        if text.is_empty() {
            return None;
        }
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    section,
                    "listen",
                    format!("{text:?} is not an address such as {default} (\"\" for {none_means})"),
                );
                None
            }
        }
    }

    fn sampling(&mut self) -> Option<SamplingConfig> {
        let rate = match self.value("sampling", "rate") {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Integer(i)) => Some(*i as f64),
            _ => None,
        };
        let slow = self
            .value("sampling", "slow")
            .is_some()
            .then(|| self.duration_or("sampling", "slow", Duration::ZERO));
        if rate.is_none() && slow.is_none() {
            return None;
        }
        Some(SamplingConfig {
            rate: rate.unwrap_or(1.0),
            slow_ms: slow.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }

    fn forward(&mut self) -> ForwardConfig {
        const DEFAULT_LISTEN: &str = "127.0.0.1:24224";
        let tcp_off = self
            .string_or("forward", "listen", DEFAULT_LISTEN)
            .is_empty();
        let listen = self.listen_address("forward", DEFAULT_LISTEN, "no TCP listener");
        let unix_path = self
            .str("forward", "unix_path")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let unix_mode = match self.value("forward", "unix_mode") {
            None => 0o600,
            Some(Value::Integer(n)) if (0..=0o777).contains(n) => *n as u32,
            Some(Value::String(s))
                if u32::from_str_radix(s.trim_start_matches("0o"), 8).is_ok_and(|m| m <= 0o777) =>
            {
                u32::from_str_radix(s.trim_start_matches("0o"), 8).unwrap_or(0o600)
            }
            Some(v) => {
                self.error(
                    "forward",
                    "unix_mode",
                    format!("{v} is not an octal file mode such as \"0600\""),
                );
                0o600
            }
        };
        let max_connections = match self.int("forward", "max_connections") {
            None => 1024,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                self.error(
                    "forward",
                    "max_connections",
                    format!("{n} is not a positive number"),
                );
                1024
            }
        };
        if tcp_off && unix_path.is_none() {
            self.error(
                "forward",
                "listen",
                "no listener: set forward.listen or forward.unix_path",
            );
        }
        ForwardConfig {
            listen,
            unix_path,
            unix_mode,
            shared_key: self.str("forward", "shared_key").filter(|k| !k.is_empty()),
            max_connections,
            idle_timeout: self.duration_or("forward", "idle_timeout", Duration::from_secs(3600)),
        }
    }

    fn output(&mut self) -> OutputType {
        match self.string_or("output", "type", "stdout").as_str() {
            "stdout" => OutputType::Stdout,
            "file" => {
                if self.str("file", "dir").is_none() {
                    self.error("file", "dir", "output.type = \"file\" needs a directory");
                }
                OutputType::File
            }
            "cloudwatch" => OutputType::Cloudwatch,
            other => {
                self.error(
                    "output",
                    "type",
                    format!("{other:?} is not one of stdout, file, cloudwatch"),
                );
                OutputType::Stdout
            }
        }
    }

    fn template(&mut self, key: &str, default: &str) -> String {
        let template = self.string_or("cloudwatch", key, default);
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                self.error(
                    "cloudwatch",
                    key,
                    format!("{template:?} has a '{{' without '}}'"),
                );
                break;
            };
            let name = &rest[open + 1..open + close];
            if !TEMPLATE_FIELDS.contains(&name) {
                self.error(
                    "cloudwatch",
                    key,
                    format!(
                        "{template:?} uses {{{name}}}; templates take {}",
                        TEMPLATE_FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                    ),
                );
            }
            rest = &rest[open + close + 1..];
        }
        if template.is_empty() {
            self.error("cloudwatch", key, "must not be empty");
        }
        template
    }

    fn cloudwatch(&mut self) -> CloudwatchConfig {
        let log_group = self.template("log_group", "/ecs/{cluster}/{container_name}");
        if log_group.starts_with("aws/") {
            self.error(
                "cloudwatch",
                "log_group",
                "log group names must not start with \"aws/\"",
            );
        }
        let retention_days = match self.int("cloudwatch", "retention_days") {
            None => None,
            Some(d) if RETENTION_DAYS.contains(&d) => Some(d),
            Some(d) => {
                let allowed: Vec<String> = RETENTION_DAYS.iter().map(i64::to_string).collect();
                self.error(
                    "cloudwatch",
                    "retention_days",
                    format!(
                        "{d} is not a retention CloudWatch accepts: {}",
                        allowed.join(", ")
                    ),
                );
                None
            }
        };
        let endpoint = self.str("cloudwatch", "endpoint");
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                self.error(
                    "cloudwatch",
                    "endpoint",
                    format!("{e:?} is not a URL such as \"http://127.0.0.1:5000\""),
                );
            }
        }
        let app_lines_as_json = match self.string_or("cloudwatch", "app_format", "line").as_str() {
            "line" => false,
            "json" => true,
            other => {
                self.error(
                    "cloudwatch",
                    "app_format",
                    format!("{other:?} is not one of line, json"),
                );
                false
            }
        };
        CloudwatchConfig {
            region: self.str("cloudwatch", "region"),
            endpoint,
            app_lines_as_json,
            log_group,
            access_stream: self.template("access_stream", "{task_id}/access"),
            app_stream: self.template("app_stream", "{task_id}/{container_name}"),
            stats_stream: self.template("stats_stream", "{task_id}/stats"),
            auto_create: self.bool_or("cloudwatch", "auto_create", true),
            retention_days,
            flush_interval: self.duration_or(
                "cloudwatch",
                "flush_interval",
                Duration::from_secs(1),
            ),
        }
    }

    fn envoy(&mut self) -> EnvoyConfig {
        let mut formats = Vec::new();
        for (i, source) in self.list("envoy", "formats").iter().enumerate() {
            match Format::compile(format!("format-{}", i + 1), source) {
                Ok(f) => formats.push(f),
                Err(e) => self.error(
                    "envoy",
                    "formats",
                    format!("format {}: {e}\n{}", i + 1, e.pointer(source)),
                ),
            }
        }
        let mut routes = RouteTable::new();
        for template in self.list("envoy", "routes") {
            if let Err(e) = routes.add_template(&template) {
                self.error("envoy", "routes", format!("{template:?}: {e}"));
            }
        }
        EnvoyConfig {
            containers: self.list("envoy", "containers"),
            formats,
            routes,
        }
    }

    fn redact(&mut self) -> RedactConfig {
        let mode = match self
            .string_or("redact", "mode", "redact")
            .parse::<QueryMode>()
        {
            Ok(m) => m,
            Err(message) => {
                self.error("redact", "mode", message);
                QueryMode::Redact
            }
        };
        let mut redactor = Redactor::new(mode);
        for key in self.list("redact", "allow") {
            redactor.allow(&key);
        }
        for pattern in self.list("redact", "patterns") {
            if let Err(e) = redactor.add_pattern(&pattern) {
                // The regex error quotes the pattern, which is configuration,
                // not a secret.
                self.error(
                    "redact",
                    "patterns",
                    format!("not a valid regular expression: {e}"),
                );
            }
        }
        RedactConfig { redactor }
    }
}

/// `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// `64MiB`, `512KiB`, `1GiB`, `1000000` (bytes); `MB` and `KB` are read as
/// the binary units too, as people usually mean them for memory.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "kb" | "k" => 1 << 10,
        "mib" | "mb" | "m" => 1 << 20,
        "gib" | "gb" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn errors(file: &str, env: &[(&str, &str)]) -> Vec<String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match load(Some(file), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn embedded_default() {
        let c = load(None, no_env).unwrap();
        assert_eq!(c.forward.listen, Some("127.0.0.1:24224".parse().unwrap()));
        assert_eq!(c.forward.unix_path, None);
        assert_eq!(c.forward.unix_mode, 0o600);
        assert_eq!(c.forward.max_connections, 1024);
        assert_eq!(c.output, OutputType::Stdout);
        assert_eq!(c.cloudwatch.log_group, "/ecs/{cluster}/{container_name}");
        assert_eq!(c.cloudwatch.access_stream, "{task_id}/access");
        assert!(c.cloudwatch.auto_create);
        assert_eq!(c.cloudwatch.flush_interval, Duration::from_secs(1));
        assert_eq!(c.redact.redactor.mode(), QueryMode::Redact);
        assert_eq!(c.memory_limit, 64 << 20);
        assert_eq!(c.shutdown_grace, Duration::from_secs(25));
        assert_eq!(c.shutdown_drain, Duration::from_secs(2));
        assert_eq!(c.spool, None);
        // Both listeners are loopback-only unless configured otherwise.
        assert_eq!(c.admin_listen, Some("127.0.0.1:2020".parse().unwrap()));
    }

    #[test]
    fn the_spool() {
        let c = load(None, |name| {
            (name == "SLUICE_SPOOL_DIR").then(|| "/var/spool/sluice".to_string())
        })
        .unwrap();
        assert_eq!(
            c.spool,
            Some(SpoolConfig {
                dir: "/var/spool/sluice".into(),
                max_size: 256 << 20,
                segment_size: 8 << 20,
                fsync: true,
            })
        );
        let file = r#"
            [spool]
            dir = "/s"
            max_size = "1GiB"
            segment_size = "16MiB"
            fsync = "off"
        "#;
        let c = load(Some(file), no_env).unwrap();
        assert_eq!(
            c.spool,
            Some(SpoolConfig {
                dir: "/s".into(),
                max_size: 1 << 30,
                segment_size: 16 << 20,
                fsync: false,
            })
        );
        assert_eq!(
            errors(
                "[spool]\ndir = \"/s\"\nmax_size = \"1MiB\"\nsegment_size = \"1KiB\"\nfsync = \"always\"",
                &[]
            ),
            [
                "spool.fsync: \"always\" is not \"batch\" (fsync before each ack) or \"off\"",
                "spool.segment_size: must be at least 64KiB",
            ]
        );
        assert_eq!(
            errors("[spool]\ndir = \"/s\"\nmax_size = \"8MiB\"", &[]),
            ["spool.max_size: must be at least twice spool.segment_size (8388608 bytes)"]
        );
    }

    #[test]
    fn a_full_file() {
        let file = r#"
            [forward]
            listen = "0.0.0.0:24224"
            unix_path = "/var/run/fluent.sock"
            unix_mode = 0o660
            shared_key = "k"
            max_connections = 64
            idle_timeout = "10m"
            [output]
            type = "file"
            [file]
            dir = "/tmp/sluice"
            [cloudwatch]
            region = "eu-west-1"
            retention_days = 30
            flush_interval = "500ms"
            [envoy]
            containers = ["envoy"]
            formats = ["%START_TIME% %RESPONSE_CODE%"]
            routes = ["/users/{id}"]
            [redact]
            mode = "drop"
            allow = ["page"]
            [limits]
            memory = "32MiB"
            [shutdown]
            drain = "3s"
            grace = "20s"
        "#;
        let c = load(Some(file), no_env).unwrap();
        assert_eq!(c.forward.unix_mode, 0o660);
        assert_eq!(c.forward.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.output, OutputType::File);
        assert_eq!(c.cloudwatch.retention_days, Some(30));
        assert_eq!(c.cloudwatch.flush_interval, Duration::from_millis(500));
        assert_eq!(c.envoy.containers, ["envoy"]);
        assert_eq!(c.envoy.formats.len(), 1);
        assert_eq!(c.redact.redactor.mode(), QueryMode::Drop);
        assert_eq!(c.memory_limit, 32 << 20);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = [
            ("SLUICE_FORWARD_LISTEN", "127.0.0.1:9999"),
            ("SLUICE_FORWARD_MAX_CONNECTIONS", "7"),
            ("SLUICE_OUTPUT_TYPE", "cloudwatch"),
            ("SLUICE_CLOUDWATCH_AUTO_CREATE", "false"),
            ("SLUICE_REDACT_ALLOW", "page, sort"),
            ("SLUICE_ENVOY_FORMATS", r#"["%A% %B%", "%C%,%D%"]"#),
        ];
        let c = load(Some("[forward]\nlisten = \"0.0.0.0:1\"\n"), |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(c.forward.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.forward.max_connections, 7);
        assert_eq!(c.output, OutputType::Cloudwatch);
        assert!(!c.cloudwatch.auto_create);
        assert_eq!(c.envoy.formats.len(), 2);
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let file = r#"
            [forward]
            lisen = "x"
            max_connections = "many"
            listen = "nowhere"
            [output]
            type = "kafka"
            [cloudwatch]
            retention_days = 2
            log_group = "/ecs/{service}"
            flush_interval = "soon"
            [envoy]
            formats = ["%BROKEN"]
            routes = ["users"]
            [redact]
            mode = "hide"
            patterns = ["("]
            [limits]
            memory = "lots"
            [metrics]
            x = 1
        "#;
        let got = errors(file, &[("SLUICE_FORWARD_MAX_CONNECTIONS", "-")]);
        let expected = [
            "forward.lisen: unknown key; [forward] takes listen, unix_path, unix_mode, shared_key, max_connections, idle_timeout",
            "forward.max_connections: expected an integer",
            "metrics: unknown section; the sections are forward, output, file, cloudwatch, envoy, redact, limits, shutdown, stats, admin, sampling, spool",
            "SLUICE_FORWARD_MAX_CONNECTIONS: expected an integer",
            "forward.listen: \"nowhere\" is not an address such as 127.0.0.1:24224 (\"\" for no TCP listener)",
            "output.type: \"kafka\" is not one of stdout, file, cloudwatch",
            "cloudwatch.log_group: \"/ecs/{service}\" uses {service}; templates take {container_name}, {task_id}, {cluster}, {tag}, {date}",
            "cloudwatch.retention_days: 2 is not a retention CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
            "cloudwatch.flush_interval: \"soon\" is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"",
            "envoy.formats: format 1: format string is invalid at column 8: expected '%' to close the operator\n%BROKEN\n       ^",
            "envoy.routes: \"users\": route template is invalid at column 1: a route template starts with '/'",
            "redact.mode: unknown redaction mode \"hide\": expected one of redact, drop, keep",
        ];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(
                got.get(i).map(String::as_str),
                Some(*want),
                "error {i}: {got:#?}"
            );
        }
        assert!(
            got[expected.len()].starts_with("redact.patterns: not a valid regular expression"),
            "{got:#?}"
        );
        assert_eq!(
            got[expected.len() + 1],
            "limits.memory: \"lots\" is not a size such as \"64MiB\""
        );
        assert_eq!(got.len(), expected.len() + 2, "{got:#?}");
    }

    #[test]
    fn drain_must_end_before_the_grace() {
        assert_eq!(
            errors("[shutdown]\ndrain = \"30s\"\ngrace = \"25s\"\n", &[]),
            ["shutdown.drain: 30s must be shorter than shutdown.grace (25s)"]
        );
    }

    #[test]
    fn not_toml() {
        assert_eq!(errors("[forward", &[]).len(), 1);
        assert!(errors("[forward", &[])[0].starts_with("file: not valid TOML"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("0"), None);
    }
}
