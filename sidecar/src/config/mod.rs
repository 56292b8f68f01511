//! Configuration: a TOML file (or nothing: the embedded default), every key
//! overridable by an environment variable `SLUICE_<SECTION>_<KEY>`.
//!
//! Three steps, so that every mistake is found at once:
//! 1. the sources are merged per section ([`layer`]): the file's typed
//!    values, then the environment's text;
//! 2. each section is deserialized into its struct ([`sections`]), where
//!    each key is declared once with its type and default; a value of the
//!    wrong type is an error naming its key (or variable), never a default;
//! 3. the sections are validated into [`Config`]: ranges, addresses,
//!    templates, compiled formats and patterns.

pub mod layer;
pub mod sections;
pub mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_parser::{Format, QueryMode, Redactor, RouteTable};

use crate::spool::{SpoolConfig, SpoolLimits};
use crate::stats::sampling::SamplingConfig;
use crate::stats::{emf, StatsConfig};
use layer::{Origin, RawSection, RawValue};
pub use sections::{AppFormat, CloudwatchSection, OutputType, Sections, FIRELENS_CONFIG};

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
    /// `section.key`, an environment variable, `section` for a whole
    /// section, or `file`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The validated configuration `sluice run` uses.
#[derive(Debug)]
pub struct Config {
    pub forward: ForwardConfig,
    pub output: OutputType,
    pub file_dir: Option<PathBuf>,
    /// The CloudWatch output's settings, validated.
    pub cloudwatch: CloudwatchSection,
    pub envoy: EnvoyConfig,
    pub redact: RedactConfig,
    /// `limits.memory`: the memory budget, when configured; otherwise
    /// `memory_limit::budget` picks one from the container's limit.
    pub memory_limit: Option<u64>,
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
    /// `[spool]`'s sizes and fsync, also when `spool.dir` is not set: a
    /// FireLens configuration's `storage.path` takes them.
    pub spool_limits: SpoolLimits,
    /// The Fluent Bit configuration to read when it exists; `None` with
    /// `firelens.config = ""`.
    pub firelens_config: Option<PathBuf>,
    /// `None` with `multiline.enabled = false`.
    pub multiline: Option<MultilineConfig>,
}

/// `[multiline]`, validated.
#[derive(Clone, Debug)]
pub struct MultilineConfig {
    pub rules: crate::multiline::Rules,
    pub wait: Duration,
    pub max_bytes: usize,
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

/// The settings as given: the file's sections merged with the environment,
/// not yet typed. The Fluent Bit reader adds to it too.
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    sections: BTreeMap<String, RawSection>,
    errors: Vec<ConfigError>,
}

impl RawConfig {
    /// The TOML text's sections; a syntax error or a section that is not a
    /// known table is an error.
    pub fn from_toml(text: &str) -> RawConfig {
        let mut raw = RawConfig::default();
        let table = match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                raw.errors.push(ConfigError {
                    key: "file".into(),
                    message: format!("not valid TOML: {}", e.message().trim()),
                });
                return raw;
            }
        };
        for (section, value) in table {
            if sections::keys_of(&section).is_none() {
                raw.errors.push(ConfigError {
                    key: section.clone(),
                    message: format!(
                        "unknown section; the sections are {}",
                        sections::SECTION_NAMES.join(", ")
                    ),
                });
                continue;
            }
            let toml::Value::Table(keys) = value else {
                raw.errors.push(ConfigError {
                    key: section.clone(),
                    message: format!("expected a [{section}] table"),
                });
                continue;
            };
            for (key, value) in keys {
                raw.set(&section, &key, RawValue::Toml(value), Origin::File);
            }
        }
        raw
    }

    /// `SLUICE_<SECTION>_<KEY>` variables override the file. Variables
    /// whose section is not one of Sluice's are not configuration (the
    /// tests' `SLUICE_TEST_PYTHON`, say) and are left alone; an unknown key
    /// in a known section is an error naming the variable.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with("SLUICE_"))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let rest = &name["SLUICE_".len()..];
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            let section = section.to_ascii_lowercase();
            if sections::keys_of(&section).is_none() {
                continue;
            }
            let key = key.to_ascii_lowercase();
            self.set(&section, &key, RawValue::Text(value), Origin::Env(name));
        }
    }

    /// Sets one key (a later call wins).
    pub fn set(&mut self, section: &str, key: &str, value: RawValue, origin: Origin) {
        self.sections
            .entry(section.to_string())
            .or_default()
            .set(key, value, origin);
    }

    /// Whether a source gave `section.key`.
    pub fn has(&self, section: &str, key: &str) -> bool {
        self.sections.get(section).is_some_and(|s| s.contains(key))
    }

    /// Types every section, then validates: every error at once.
    pub fn load(self) -> Result<Config, Vec<ConfigError>> {
        let (sections, mut errors) = self.read();
        let config = validate(sections, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Types every section; the errors so far (unknown keys, wrong types).
    pub fn read(mut self) -> (Sections, Vec<ConfigError>) {
        let mut errors = std::mem::take(&mut self.errors);
        let sections = Sections::read(&mut self.sections, &mut errors);
        (sections, errors)
    }
}

/// The process's environment, as text: `std::env::vars` would panic on a
/// variable that is not UTF-8 (any container's, not only Sluice's); such a
/// name or value is read with U+FFFD in place of what does not decode, so
/// a `SLUICE_*` one fails as a wrong value naming its key.
pub fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    })
}

/// Reads the configuration: `file` is the TOML text (`None`: the embedded
/// default), `env` the process's environment variables.
pub fn load(
    file: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Vec<ConfigError>> {
    let mut raw = file.map(RawConfig::from_toml).unwrap_or_default();
    raw.apply_env(env);
    raw.load()
}

/// Collects errors for one section's checks.
struct Check<'a> {
    section: &'static str,
    errors: &'a mut Vec<ConfigError>,
}

impl Check<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: format!("{}.{key}", self.section),
            message: message.into(),
        });
    }
}

fn check<'a>(section: &'static str, errors: &'a mut Vec<ConfigError>) -> Check<'a> {
    Check { section, errors }
}

/// The second stage: values that have the right type but may still be out
/// of range or inconsistent.
fn validate(s: Sections, errors: &mut Vec<ConfigError>) -> Config {
    let drain = s.shutdown.drain.0;
    let grace = s.shutdown.grace.0;
    if drain >= grace {
        check("shutdown", errors).error(
            "drain",
            format!("{drain:?} must be shorter than shutdown.grace ({grace:?})"),
        );
    }
    if s.output.kind == OutputType::File && s.file.dir.is_none() {
        check("file", errors).error("dir", "output.type = \"file\" needs a directory");
    }
    let firelens_config = Some(s.firelens.config.clone())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    Config {
        forward: forward(&s.forward, errors),
        output: s.output.kind,
        file_dir: s.file.dir.clone(),
        cloudwatch: cloudwatch(s.cloudwatch, errors),
        envoy: envoy(&s.envoy, errors),
        redact: redact(&s.redact, errors),
        memory_limit: s.limits.memory.map(|b| b.0),
        shutdown_drain: drain,
        shutdown_grace: grace,
        stats: stats(&s.stats, errors),
        admin_listen: listen_address(&mut check("admin", errors), &s.admin.listen, "none"),
        sampling: sampling(&s.sampling, errors),
        spool: spool(&s.spool, errors),
        spool_limits: SpoolLimits {
            max_size: s.spool.max_size.0,
            segment_size: s.spool.segment_size.0,
            fsync: s.spool.fsync == sections::FsyncMode::Batch,
        },
        firelens_config,
        multiline: multiline(&s.multiline, errors),
    }
}

/// `section.listen`: a socket address, or `""` for `none_means`.
fn listen_address(check: &mut Check<'_>, text: &str, none_means: &str) -> Option<SocketAddr> {
    if text.is_empty() {
        return None;
    }
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            let example = match check.section {
                "admin" => "127.0.0.1:2020",
                _ => "127.0.0.1:24224",
            };
            check.error(
                "listen",
                format!("{text:?} is not an address such as {example} (\"\" for {none_means})"),
            );
            None
        }
    }
}

fn forward(f: &sections::ForwardSection, errors: &mut Vec<ConfigError>) -> ForwardConfig {
    let mut c = check("forward", errors);
    let listen = listen_address(&mut c, &f.listen, "no TCP listener");
    let unix_path = f
        .unix_path
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if f.max_connections == 0 {
        c.error("max_connections", "0 is not a positive number");
    }
    if f.listen.is_empty() && unix_path.is_none() {
        c.error(
            "listen",
            "no listener: set forward.listen or forward.unix_path",
        );
    }
    if f.shared_key.as_deref() == Some("") {
        c.error(
            "shared_key",
            "is empty; leave it out for no handshake, or give the key",
        );
    }
    ForwardConfig {
        listen,
        unix_path,
        unix_mode: f.unix_mode.0,
        shared_key: f.shared_key.clone().filter(|k| !k.is_empty()),
        max_connections: f.max_connections.max(1),
        idle_timeout: f.idle_timeout.0,
    }
}

/// Checks a `{placeholder}` template.
fn template(c: &mut Check<'_>, key: &str, template: &str) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            c.error(key, format!("{template:?} has a '{{' without '}}'"));
            break;
        };
        let name = &rest[open + 1..open + close];
        if !TEMPLATE_FIELDS.contains(&name) {
            c.error(
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
        c.error(key, "must not be empty");
    }
}

fn cloudwatch(cw: CloudwatchSection, errors: &mut Vec<ConfigError>) -> CloudwatchSection {
    let mut c = check("cloudwatch", errors);
    template(&mut c, "log_group", &cw.log_group);
    if cw.log_group.starts_with("aws/") {
        c.error("log_group", "log group names must not start with \"aws/\"");
    }
    template(&mut c, "access_stream", &cw.access_stream);
    template(&mut c, "app_stream", &cw.app_stream);
    template(&mut c, "stats_stream", &cw.stats_stream);
    if let Some(d) = cw.retention_days {
        if !RETENTION_DAYS.contains(&d) {
            c.error("retention_days", retention_message(d));
        }
    }
    if let Some(e) = &cw.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            c.error(
                "endpoint",
                format!("{e:?} is not a URL such as \"http://127.0.0.1:5000\""),
            );
        }
    }
    if cw.flush_interval.0.is_zero() {
        c.error("flush_interval", "must be longer than 0");
    }
    for field in &cw.metadata.0 {
        if !crate::render::METADATA_FIELDS.contains(&field.as_str()) {
            c.error(
                "metadata",
                format!(
                    "{field:?} is not a metadata field; they are {}",
                    crate::render::METADATA_FIELDS.join(", ")
                ),
            );
        }
    }
    cw
}

/// What is wrong with a retention of `days`.
pub fn retention_message(days: i64) -> String {
    let allowed: Vec<String> = RETENTION_DAYS.iter().map(i64::to_string).collect();
    format!(
        "{days} is not a retention CloudWatch accepts: {}",
        allowed.join(", ")
    )
}

fn envoy(e: &sections::EnvoySection, errors: &mut Vec<ConfigError>) -> EnvoyConfig {
    let mut c = check("envoy", errors);
    let mut formats = Vec::new();
    for (i, source) in e.formats.iter().enumerate() {
        match Format::compile(format!("format-{}", i + 1), source) {
            Ok(f) => formats.push(f),
            Err(err) => c.error(
                "formats",
                format!("format {}: {err}\n{}", i + 1, err.pointer(source)),
            ),
        }
    }
    let mut routes = RouteTable::new();
    for template in &e.routes.0 {
        if let Err(err) = routes.add_template(template) {
            c.error("routes", format!("{template:?}: {err}"));
        }
    }
    EnvoyConfig {
        containers: e.containers.0.clone(),
        formats,
        routes,
    }
}

fn redact(r: &sections::RedactSection, errors: &mut Vec<ConfigError>) -> RedactConfig {
    let mut c = check("redact", errors);
    let mode = r.mode.parse::<QueryMode>().unwrap_or_else(|message| {
        c.error("mode", message);
        QueryMode::Redact
    });
    let mut redactor = Redactor::new(mode);
    for key in &r.allow.0 {
        redactor.allow(key);
    }
    for pattern in &r.patterns {
        if let Err(e) = redactor.add_pattern(pattern) {
            // The regex error quotes the pattern, which is configuration,
            // not a secret.
            c.error("patterns", format!("not a valid regular expression: {e}"));
        }
    }
    RedactConfig { redactor }
}

fn stats(s: &sections::StatsSection, errors: &mut Vec<ConfigError>) -> Option<StatsConfig> {
    let mut c = check("stats", errors);
    if s.interval.0 < Duration::from_secs(1) {
        c.error("interval", "must be at least 1s");
    }
    let dimensions: Vec<Vec<String>> = s
        .dimensions
        .iter()
        .map(|set| {
            set.split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect()
        })
        .collect();
    for set in &dimensions {
        if let Some(bad) = set.iter().find(|d| !emf::DIMENSIONS.contains(&d.as_str())) {
            c.error(
                "dimensions",
                format!(
                    "{bad:?} is not a dimension; sets are comma-separated lists of service, route"
                ),
            );
        }
    }
    if dimensions.is_empty() {
        c.error("dimensions", "needs at least one dimension set");
    }
    for name in &s.metrics.0 {
        if !emf::FIGURES.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = emf::FIGURES.iter().map(|(n, _)| *n).collect();
            c.error(
                "metrics",
                format!("{name:?} is not a figure; they are {}", known.join(", ")),
            );
        }
    }
    if !(1..=100_000).contains(&s.max_routes) {
        c.error(
            "max_routes",
            format!("{} is not from 1 to 100000", s.max_routes),
        );
    }
    if s.namespace.is_empty() {
        c.error("namespace", "must not be empty");
    }
    let config = StatsConfig {
        interval_ms: i64::try_from(s.interval.0.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000),
        namespace: s.namespace.clone(),
        service: s.service.clone().filter(|s| !s.is_empty()),
        dimensions,
        metrics: s.metrics.0.clone(),
        max_routes: s.max_routes,
        sketches: s.sketches,
    };
    s.enabled.then_some(config)
}

fn sampling(
    s: &sections::SamplingSection,
    errors: &mut Vec<ConfigError>,
) -> Option<SamplingConfig> {
    if let Some(rate) = s.rate {
        if !(0.0..=1.0).contains(&rate) {
            check("sampling", errors).error("rate", format!("{rate} is not a number from 0 to 1"));
        }
    }
    if s.rate.is_none() && s.slow.is_none() {
        return None;
    }
    Some(SamplingConfig {
        rate: s.rate.unwrap_or(1.0),
        slow_ms: s
            .slow
            .map(|d| u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)),
    })
}

fn spool(s: &sections::SpoolSection, errors: &mut Vec<ConfigError>) -> Option<SpoolConfig> {
    let mut c = check("spool", errors);
    let (max_size, segment_size) = (s.max_size.0, s.segment_size.0);
    if segment_size < 64 << 10 {
        c.error("segment_size", "must be at least 64KiB");
    }
    if max_size < 2 * segment_size {
        c.error(
            "max_size",
            format!("must be at least twice spool.segment_size ({segment_size} bytes)"),
        );
    }
    let dir = s.dir.as_ref().filter(|d| !d.is_empty())?;
    Some(SpoolConfig {
        dir: PathBuf::from(dir),
        max_size,
        segment_size,
        fsync: s.fsync == sections::FsyncMode::Batch,
    })
}

fn multiline(
    m: &sections::MultilineSection,
    errors: &mut Vec<ConfigError>,
) -> Option<MultilineConfig> {
    let mut c = check("multiline", errors);
    for name in &m.rules.0 {
        if !crate::multiline::BUILT_IN.contains(&name.as_str()) {
            c.error(
                "rules",
                format!(
                    "{name:?} is not a built-in rule set; they are {}",
                    crate::multiline::BUILT_IN.join(", ")
                ),
            );
        }
    }
    let mut set = |key: &str, patterns: &[String]| -> Option<regex::RegexSet> {
        if patterns.is_empty() {
            return None;
        }
        match regex::RegexSet::new(patterns) {
            Ok(s) => Some(s),
            Err(e) => {
                c.error(key, format!("not a valid regular expression: {e}"));
                None
            }
        }
    };
    let user_start = set("start", &m.start);
    let user_continuation = set("continuation", &m.continuation);
    if user_start.is_some() != user_continuation.is_some() {
        c.error(
            "start",
            "multiline.start and multiline.continuation go together: give both or neither",
        );
    }
    if m.wait.0.is_zero() {
        c.error("wait", "must be longer than 0");
    }
    let mut rules = crate::multiline::Rules::built_in(&m.rules.0);
    rules.user_start = user_start;
    rules.user_continuation = user_continuation;
    m.enabled.then(|| MultilineConfig {
        rules,
        wait: m.wait.0,
        max_bytes: usize::try_from(m.max_size.0).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests;
