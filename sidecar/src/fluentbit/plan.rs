//! What a Fluent Bit configuration asks of Sluice: its inputs, filters and
//! outputs, checked the way Fluent Bit checks them, with every problem found
//! at once. Outputs Sluice cannot serve are refused by name and `Match`,
//! so that logs never go silently nowhere; options that do not apply to
//! Sluice are accepted and noted with the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use sluice_firelens::ForwardUser;

use super::aws_filter::AwsFilter;
use super::classic::{Section, SectionKind};
use super::lua_filter::LuaFilter;
use super::modify::Modify;
use super::multiline_parsers::MultilineParsers;
use super::nest::Nest;
use super::parsers::{self, Parser, Parsers};
use super::rewrite_tag::RewriteTag;
use super::stdout_output::StdoutOutput;
use super::storage::{self, Storage};
use super::stream_task::StreamTask;
use super::template::{output_uuid, Template};
use super::throttle::Throttle;
use crate::config::layer::{fluent_bool, read_section, Origin, RawSection, RawValue};
use crate::config::{retention_message, ConfigError, RETENTION_DAYS};
use crate::dummy_input::DummyInput;
use crate::exec_input::ExecInput;
use crate::multiline::StateRules;
use crate::tail_input::TailInput;

/// A Fluent Bit configuration, as Sluice serves it.
#[derive(Debug)]
pub struct DropIn {
    /// The file it came from.
    pub path: PathBuf,
    /// `[INPUT] forward` listeners.
    pub forward: Vec<ForwardInput>,
    /// A `shared_key` on a TCP forward input (`""` with `Empty_Shared_Key`).
    pub shared_key: Option<String>,
    /// `security.users`: the names and passwords TCP clients must give.
    pub forward_users: Vec<ForwardUser>,
    /// `Self_Hostname`: the forward inputs' name in the handshake.
    pub self_hostname: Option<String>,
    /// `unix_perm`: the unix forward socket's file mode.
    pub unix_perm: Option<u32>,
    /// `[INPUT] tcp` listeners: accepted and discarded (the FireLens health
    /// check).
    pub health_checks: Vec<SocketAddr>,
    /// `[INPUT] tcp` listeners whose records an output takes (AWS's EMF
    /// over TCP): served as Fluent Bit's in_tcp serves them.
    pub tcp_inputs: Vec<TcpInput>,
    /// `[INPUT] tail`: files on a shared volume.
    pub tail_inputs: Vec<TailInput>,
    /// `[INPUT] exec`: commands run every interval.
    pub exec_inputs: Vec<ExecInput>,
    /// `[INPUT] dummy`: records made every interval.
    pub dummy_inputs: Vec<DummyInput>,
    /// Each input Sluice serves, under the name Fluent Bit gives it
    /// (`forward.0`, `tcp.2`, or its `Alias`), for its plugin metrics.
    pub input_names: Vec<(String, InputKind)>,
    pub filters: Vec<Filter>,
    pub outputs: Vec<Output>,
    /// Where every CloudWatch output sends.
    pub connection: Option<Connection>,
    /// The stack-trace rules `[FILTER] multiline` asks for (`java`,
    /// `python`, `go`), each with where: Sluice's own joiner must have them
    /// ([`check_multiline`]).
    pub multiline_rules: Vec<(String, String)>,
    /// The `[MULTILINE_PARSER]`s `[FILTER] multiline` names, each with the
    /// filter that named it first: Sluice's joiner runs them.
    pub multiline_parsers: Vec<(String, Arc<StateRules>)>,
    /// `[SERVICE] HTTP_Server On`: where Fluent Bit would serve HTTP
    /// (`HTTP_Listen`, `HTTP_Port`), and so the admin endpoint's address.
    pub http_server: Option<SocketAddr>,
    /// `[STREAM_TASK]`s: copies of records with new tags.
    pub stream_tasks: Vec<StreamTask>,
    /// `[SERVICE] Log_Level`: the level of Sluice's own logs, unless
    /// `FLB_LOG_LEVEL` sets it.
    pub log_level: Option<tracing::level_filters::LevelFilter>,
    /// `[SERVICE] Grace`: the shutdown grace, in place of `shutdown.grace`.
    pub grace: Option<std::time::Duration>,
    /// `[SERVICE] Flush`: how long a batch waits, in place of
    /// `cloudwatch.flush_interval`.
    pub flush: Option<std::time::Duration>,
    /// Filesystem buffering an input asks for: the spool's
    /// directory and size, in place of `[spool]`'s.
    pub storage: Option<Storage>,
    /// What was accepted but does not apply, each with its reason.
    pub notes: Vec<String>,
}

/// The tag of the tcp input the ECS agent generates for the FireLens
/// health check.
const HEALTH_CHECK_TAG: &str = "firelens-healthcheck";

/// `[INPUT] tcp` as `plugins/in_tcp` reads it.
#[derive(Clone, Debug)]
pub struct TcpInput {
    pub addr: SocketAddr,
    pub tag: String,
    pub format: TcpFormat,
    /// `Source_Address_Key`: the key that gets the client's address.
    pub source_address_key: Option<String>,
    /// `Parser` (with `Format none`): what it reads of a piece is the
    /// record, and a piece it does not read is `{"log": piece}`.
    pub parser: Option<Arc<Parser>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpFormat {
    /// JSON objects, one after another: each is a record.
    Json,
    /// Text cut at `separator`: each piece is `{"log": piece}`.
    None { separator: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardInput {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for ForwardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardInput::Unix(path) => write!(f, "unix_path {}", path.display()),
            ForwardInput::Tcp(addr) => write!(f, "on {addr}"),
        }
    }
}

/// Which tags a filter or output takes: `Match` (`*` wildcards, case
/// sensitive) or `Match_Regex`, which wins when both are given.
#[derive(Clone, Debug)]
pub enum TagMatch {
    Glob(String),
    Regex(Regex),
}

impl TagMatch {
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagMatch::Glob(pattern) => glob_matches(pattern.as_bytes(), tag.as_bytes()),
            TagMatch::Regex(re) => re.is_match(tag),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TagMatch::Glob(p) => format!("Match {p}"),
            TagMatch::Regex(r) => format!("Match_Regex {}", r.as_str()),
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[derive(Debug)]
pub struct Filter {
    /// The name Fluent Bit gives the instance (`grep.1`, or its `Alias`),
    /// for its plugin metrics.
    pub name: String,
    pub matcher: TagMatch,
    pub action: FilterAction,
}

#[derive(Debug)]
pub enum FilterAction {
    Grep(Grep),
    RecordModifier(RecordModifier),
    Parser(ParserFilter),
    Modify(Modify),
    RewriteTag(RewriteTag),
    Nest(Nest),
    Aws(AwsFilter),
    Lua(LuaFilter),
    Throttle(Throttle),
}

/// `[FILTER] parser`: the string value of `Key_Name` parsed by the first
/// of its `Parser`s that reads it. The parsed object becomes the record,
/// with the record's other keys after it when `Reserve_Data` (they win over
/// parsed keys of the same name, which Fluent Bit sends both of), and the
/// key itself when `Preserve_Key`.
#[derive(Debug)]
pub struct ParserFilter {
    pub key_name: String,
    pub parsers: Vec<Arc<Parser>>,
    pub reserve_data: bool,
    pub preserve_key: bool,
}

/// `[FILTER] grep`: `Regex KEY REGEX` keeps records whose KEY matches,
/// `Exclude KEY REGEX` drops those that match.
#[derive(Debug)]
pub struct Grep {
    pub rules: Vec<GrepRule>,
    /// `Logical_Op`: `legacy` (the first rule that decides, in the order
    /// written: a Regex, or an Exclude that matches), `and`, `or`.
    pub op: LogicalOp,
}

#[derive(Debug)]
pub struct GrepRule {
    pub exclude: bool,
    /// The key as written (`log`, `$kubernetes['labels']['app']`).
    pub key: String,
    /// Its record-accessor path.
    pub path: Vec<String>,
    /// The pattern as written.
    pub pattern: String,
    pub regex: Regex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicalOp {
    Legacy,
    And,
    Or,
}

/// `[FILTER] record_modifier`.
#[derive(Debug, Default)]
pub struct RecordModifier {
    /// Shared by the records they are added to.
    pub records: Vec<(Arc<str>, Arc<str>)>,
    pub remove_keys: Vec<String>,
    pub allowlist_keys: Vec<String>,
    /// `Uuid_key`: a new random (v4) UUID under this key in every record.
    pub uuid_key: Option<String>,
}

#[derive(Debug)]
pub struct Output {
    pub matcher: TagMatch,
    pub plugin: String,
    /// The name Fluent Bit gives the instance (`cloudwatch_logs.1`: outputs
    /// are numbered all together), or its `Alias`.
    pub name: String,
    pub kind: OutputKind,
}

/// Which of the plan's inputs an `[INPUT]` section is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// The forward listener on TCP, or on the unix socket (a second
    /// section naming the same listener shares it).
    ForwardTcp,
    ForwardUnix,
    /// A tcp input or health check, by its address.
    Tcp(SocketAddr),
    /// The `n`th of `tail_inputs`, `exec_inputs` or `dummy_inputs`.
    Tail(usize),
    Exec(usize),
    Dummy(usize),
}

#[derive(Debug)]
pub enum OutputKind {
    /// `null`: discarded.
    Null,
    /// `stdout`: written to Sluice's standard output.
    Stdout(StdoutOutput),
    CloudWatch(Box<CloudWatchOutput>),
}

/// A `cloudwatch_logs` or `cloudwatch` output.
#[derive(Debug)]
pub struct CloudWatchOutput {
    pub group: NameRule,
    pub stream: NameRule,
    /// Send only this key's value instead of the record as JSON.
    pub log_key: Option<String>,
    pub create_group: bool,
    pub create_stream: bool,
    pub retention_days: Option<i32>,
    /// `log_group_class INFREQUENT_ACCESS`: groups it creates are of that
    /// class.
    pub infrequent_access: bool,
    /// `new_log_group_tags`: the tags of groups it creates.
    pub new_group_tags: Option<Arc<[(String, String)]>>,
    /// The Go plugin replaces characters CloudWatch does not allow with
    /// `.`; Sluice's own rule (for `cloudwatch_logs`) uses `_`.
    pub go_names: bool,
}

/// A name: a template, and what to use when it cannot be filled.
#[derive(Clone, Debug)]
pub struct NameRule {
    pub template: Option<Template>,
    pub fallback: Fallback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    Name(String),
    /// `log_stream_prefix`: the prefix and the tag.
    PrefixAndTag(String),
}

impl NameRule {
    pub fn describe(&self) -> String {
        let fallback = match &self.fallback {
            Fallback::Name(n) => n.clone(),
            Fallback::PrefixAndTag(p) => format!("{p}<tag>"),
        };
        match &self.template {
            Some(t) => format!("{} (else {fallback})", t.source),
            None => fallback,
        }
    }
}

/// Region, endpoint and role, shared by every CloudWatch output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub region: String,
    /// A URL; Fluent Bit's host-only form becomes `https://host`.
    pub endpoint: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub sts_endpoint: Option<String>,
}

/// The options of both CloudWatch plugins (keys lower-cased, as Fluent Bit
/// loads them), typed by the same layer as Sluice's own configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CloudWatchOptions {
    region: Option<String>,
    log_group_name: Option<String>,
    log_stream_name: Option<String>,
    log_stream_prefix: Option<String>,
    log_group_template: Option<String>,
    log_stream_template: Option<String>,
    default_log_group_name: Option<String>,
    default_log_stream_name: Option<String>,
    log_key: Option<String>,
    log_format: Option<String>,
    auto_create_group: Option<bool>,
    log_group_class: Option<String>,
    new_log_group_tags: Option<String>,
    auto_create_stream: Option<bool>,
    log_retention_days: Option<i64>,
    endpoint: Option<String>,
    port: Option<u16>,
    sts_endpoint: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

/// Options accepted on any output and not applied, with the reason.
const NOT_APPLIED: &[(&str, &str)] = &[
    ("workers", "Sluice sends with its own fixed concurrency"),
    (
        "retry_limit",
        "Sluice retries without a limit: an accepted event is never given up",
    ),
    (
        "auto_retry_requests",
        "Sluice retries every failed request with backoff",
    ),
    (
        "metric_namespace",
        "Sluice writes its own statistics as EMF; this output's metrics options do not apply",
    ),
    (
        "metric_dimensions",
        "Sluice writes its own statistics as EMF; this output's metrics options do not apply",
    ),
    (
        "extra_user_agent",
        "Sluice's requests carry the SDK's user agent",
    ),
    ("add_entity", "entities are not sent"),
    (
        "profile",
        "credentials come from the SDK's default chain (the task role on ECS)",
    ),
    (
        "credentials_endpoint",
        "credentials come from the SDK's default chain (the task role on ECS)",
    ),
    ("log_level", "Sluice's own log level is not set per output"),
    ("tls", "Sluice always uses TLS for https endpoints"),
    ("tls.verify", "Sluice always verifies certificates"),
    (
        "tls.",
        "Sluice's TLS settings come from the platform (its CA bundle, SSL_CERT_FILE)",
    ),
    (
        "net.",
        "Sluice's connections to CloudWatch are managed by the AWS SDK",
    ),
];

/// Outputs of other plugins: refused (their logs would go nowhere).
fn refused_output(plugin: &str, matcher: &TagMatch) -> String {
    format!(
        "[OUTPUT] {plugin} ({}) cannot be served by Sluice, which sends to CloudWatch Logs only (cloudwatch_logs, cloudwatch) or discards (null); its logs would go nowhere",
        matcher.describe()
    )
}

/// Builds the plan; every problem at once.
pub fn plan(path: &Path, sections: &[Section]) -> Result<DropIn, Vec<ConfigError>> {
    let mut errors = Vec::new();
    // Where a lua filter's relative script is looked for.
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut plan = DropIn {
        path: path.to_path_buf(),
        forward: Vec::new(),
        shared_key: None,
        forward_users: Vec::new(),
        self_hostname: None,
        unix_perm: None,
        health_checks: Vec::new(),
        tcp_inputs: Vec::new(),
        tail_inputs: Vec::new(),
        exec_inputs: Vec::new(),
        dummy_inputs: Vec::new(),
        input_names: Vec::new(),
        filters: Vec::new(),
        outputs: Vec::new(),
        connection: None,
        multiline_rules: Vec::new(),
        multiline_parsers: Vec::new(),
        http_server: None,
        stream_tasks: Vec::new(),
        log_level: None,
        grace: None,
        flush: None,
        storage: None,
        notes: Vec::new(),
    };
    let mut connections: Vec<(String, Connection)> = Vec::new();
    // Parsers are global in Fluent Bit, wherever their sections are.
    let parsers = parsers::parsers(sections.iter().filter(|s| s.kind == SectionKind::Parser));
    let multiline_parsers = MultilineParsers::read(
        sections
            .iter()
            .filter(|s| s.kind == SectionKind::MultilineParser),
    )
    .unwrap_or_else(|mut e| {
        errors.append(&mut e);
        MultilineParsers::default()
    });
    // Fluent Bit numbers its inputs in order, all plugins together
    // (`forward.0`, `forward.1`, `tcp.2`): an input's default tag. Filters
    // and outputs are numbered the same way, each kind on its own.
    let (mut inputs, mut filters, mut outputs) = (0, 0, 0);
    for section in sections {
        let error = |message: String| ConfigError {
            key: section.at.clone(),
            message,
        };
        match section.kind {
            SectionKind::Input => {
                input(section, inputs, &parsers, &mut plan, &mut errors);
                inputs += 1;
            }
            SectionKind::Filter if section.plugin() == "multiline" => {
                multiline_filter(section, &multiline_parsers, &mut plan, &mut errors);
                filters += 1;
            }
            SectionKind::Filter => {
                match filter(section, &parsers, dir, &mut plan.notes) {
                    Ok(mut f) => {
                        f.name = instance_name(section, filters);
                        plan.filters.push(f);
                    }
                    Err(mut e) => errors.append(&mut e),
                }
                filters += 1;
            }
            SectionKind::Output => {
                match output(section, &mut plan.notes) {
                    Ok((mut o, connection)) => {
                        if let Some(c) = connection {
                            connections.push((section.at.clone(), c));
                        }
                        o.name = instance_name(section, outputs);
                        plan.outputs.push(o);
                    }
                    Err(mut e) => errors.append(&mut e),
                }
                outputs += 1;
            }
            SectionKind::Service => service(section, &mut plan, &mut errors),
            SectionKind::Parser => {
                let name = section.get("name").unwrap_or("");
                if !parser_used(sections, name) {
                    plan.notes.push(format!(
                        "{}: [PARSER] {name} is not used: no parser filter or input here names it",
                        section.at
                    ));
                }
            }
            // Read above, and used where a multiline filter names them.
            SectionKind::MultilineParser => {}
            SectionKind::StreamTask => match StreamTask::from_section(section) {
                Ok(task) => plan.stream_tasks.push(task),
                Err(message) => errors.push(error(message)),
            },
            other => errors.push(error(format!(
                "[{}] sections are not supported by Sluice",
                other.name()
            ))),
        }
    }
    // The FireLens health check's tcp input (the agent tags it
    // `firelens-healthcheck`), or one whose records only `null` takes (or
    // none), is accepted and discarded, its connection closed after a line
    // so that every netcat exits, even when a user's `Match *` output
    // would take its records. Any other is served.
    let inputs = std::mem::take(&mut plan.tcp_inputs);
    for input in inputs {
        let served = input.tag != HEALTH_CHECK_TAG
            && plan
                .outputs
                .iter()
                .any(|o| o.matcher.matches(&input.tag) && !matches!(o.kind, OutputKind::Null));
        if served {
            plan.tcp_inputs.push(input);
        } else {
            plan.health_checks.push(input.addr);
        }
    }
    for (name, at) in multiline_parsers.names() {
        if !plan.multiline_parsers.iter().any(|(_, p)| p.name() == name) {
            plan.notes.push(format!(
                "{at}: [MULTILINE_PARSER] {name} is not used: no multiline filter here names it"
            ));
        }
    }
    if let Some(((first_at, first), rest)) = connections.split_first() {
        for (at, c) in rest {
            if c != first {
                errors.push(ConfigError {
                    key: at.clone(),
                    message: format!(
                        "this output's region, endpoint or role differs from the one at {first_at}; Sluice sends every output through one CloudWatch client"
                    ),
                });
            }
        }
        plan.connection = Some(first.clone());
    }
    match storage::plan(sections, &mut plan.notes) {
        Ok(storage) => plan.storage = storage,
        Err(mut e) => errors.append(&mut e),
    }
    if plan.forward.is_empty() {
        errors.push(ConfigError {
            key: path.display().to_string(),
            message: "no [INPUT] forward: Sluice would receive nothing".into(),
        });
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

/// `[SERVICE]`: its HTTP server becomes the admin endpoint's address
/// (health checks written for Fluent Bit ask it for `/api/v1/health`),
/// `Log_Level` the level of Sluice's own logs; `Parsers_File` is read by
/// `super::load`; the rest is noted.
fn service(section: &Section, plan: &mut DropIn, errors: &mut Vec<ConfigError>) {
    let http_server = match section.get("http_server") {
        None => false,
        Some(value) => match fluent_bool(value) {
            Some(on) => on,
            None => {
                errors.push(ConfigError {
                    key: section.at.clone(),
                    message: format!("[SERVICE] HTTP_Server {value:?} is not On or Off"),
                });
                return;
            }
        },
    };
    if http_server {
        // Fluent Bit's defaults (`src/flb_config.c`).
        match listen_address(
            section,
            ["HTTP_Listen", "HTTP_Port"],
            ("0.0.0.0", "2020"),
            "[SERVICE] ",
        ) {
            Ok(addr) => plan.http_server = Some(addr),
            Err(e) => errors.push(e),
        }
    }
    if let Some(value) = section.get("log_level") {
        match super::log_level(value) {
            Ok(level) => plan.log_level = Some(level),
            Err(e) => errors.push(ConfigError {
                key: section.at.clone(),
                message: format!("[SERVICE] Log_Level {e}"),
            }),
        }
    }
    let mut duration = |key: &str, read: fn(&str) -> Result<std::time::Duration, String>| {
        let value = section.get(key)?;
        read(value)
            .map_err(|message| {
                errors.push(ConfigError {
                    key: section.at.clone(),
                    message,
                })
            })
            .ok()
    };
    // A later [SERVICE] that sets the key wins; one that does not keeps it.
    plan.flush = duration("flush", flush).or(plan.flush);
    plan.grace = duration("grace", grace).or(plan.grace);
    for (key, _) in &section.entries {
        let key_lower = key.to_ascii_lowercase();
        let note = match key_lower.as_str() {
            "parsers_file" | "streams_file" | "http_server" | "log_level" | "grace" | "flush" => {
                continue
            }
            k if storage::reads(SectionKind::Service, "", k) => continue,
            "http_listen" | "http_port" if http_server => continue,
            "http_listen" | "http_port" => "HTTP_Server is off",
            "health_check" | "hc_errors_count" | "hc_retry_failure_count" | "hc_period" => {
                "/api/v1/health answers from Sluice's own view of its outputs (ok, or 500 when one is stuck)"
            }
            _ => "Sluice's settings come from its own configuration (limits.memory, the spool, batching)",
        };
        plan.notes.push(format!(
            "{}: [SERVICE] {key} does not apply: {note}",
            section.at
        ));
    }
}

/// `new_log_group_tags` as the Go plugin's `tagKeysToMap` reads it:
/// `key=value` pairs split on `,`, spaces trimmed, an empty value allowed,
/// an empty key skipped, the last of a key winning; none at all is `None`.
fn group_tags(text: &str) -> Option<Arc<[(String, String)]>> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for pair in text.trim().split(',') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            continue;
        }
        tags.retain(|(k, _)| k != key);
        tags.push((key.to_string(), value.to_string()));
    }
    (!tags.is_empty()).then(|| tags.into())
}

/// `[SERVICE] Flush`: seconds (a fraction allowed) a batch waits at most.
fn flush(value: &str) -> Result<std::time::Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => {
            Ok(std::time::Duration::from_secs_f64(seconds))
        }
        _ => Err(format!(
            "[SERVICE] Flush {value:?} is not a number of seconds above 0 (at most 3600)"
        )),
    }
}

/// `[SERVICE] Grace`: whole seconds Fluent Bit gives what is pending at
/// shutdown. `-1` waits until everything is sent, which ECS's stopTimeout
/// (at most 120 s) ends first: a day stands for it. `0` checks once, a
/// second after the signal, as Fluent Bit's engine does.
fn grace(value: &str) -> Result<std::time::Duration, String> {
    match value.trim().parse::<i64>() {
        Ok(-1) => Ok(std::time::Duration::from_secs(86_400)),
        Ok(0) => Ok(std::time::Duration::from_secs(1)),
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n.unsigned_abs())),
        _ => Err(format!(
            "[SERVICE] Grace {value:?} is not a number of seconds (or -1, until everything is sent)"
        )),
    }
}

/// The address a section's `listen_key` and `port_key` give, each
/// defaulting to `defaults`; `what` begins an error.
fn listen_address(
    section: &Section,
    [listen_key, port_key]: [&str; 2],
    (default_listen, default_port): (&str, &str),
    what: &str,
) -> Result<SocketAddr, ConfigError> {
    let error = |message: String| ConfigError {
        key: section.at.clone(),
        message: format!("{what}{message}"),
    };
    let host = section.get(listen_key).unwrap_or(default_listen);
    let port = section.get(port_key).unwrap_or(default_port);
    let port: u16 = port
        .parse()
        .map_err(|_| error(format!("{port_key} {port:?} is not a port")))?;
    let ip: std::net::IpAddr = if host == "localhost" {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse()
            .map_err(|_| error(format!("{listen_key} {host:?} is not an IP address")))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// The name Fluent Bit gives a plugin instance, the `index`th of its
/// kind (inputs, filters and outputs are each numbered all together):
/// `<plugin>.<index>`, or its `Alias`.
fn instance_name(section: &Section, index: usize) -> String {
    section
        .get("alias")
        .map_or_else(|| format!("{}.{index}", section.plugin()), str::to_string)
}

/// An `[INPUT]`, the `index`th of the file's inputs.
fn input(
    section: &Section,
    index: usize,
    parsers: &Parsers,
    plan: &mut DropIn,
    errors: &mut Vec<ConfigError>,
) {
    let error = |message: String| ConfigError {
        key: section.at.clone(),
        message,
    };
    let plugin = section.plugin();
    let address = |default_listen: &str, default_port: &str| {
        let what = format!("[INPUT] {plugin}: ");
        listen_address(
            section,
            ["Listen", "Port"],
            (default_listen, default_port),
            &what,
        )
    };
    match plugin.as_str() {
        "forward" => {
            let input = match section.get("unix_path") {
                Some(path) => Some(ForwardInput::Unix(PathBuf::from(path))),
                None => match address("0.0.0.0", "24224") {
                    Ok(a) => Some(ForwardInput::Tcp(a)),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            };
            // Sluice serves one TCP and one unix forward input (what the
            // agent generates); another's clients would find no listener.
            if let Some(input) = input {
                let unix = matches!(input, ForwardInput::Unix(_));
                match plan.forward.iter().find(|f| matches!(f, ForwardInput::Unix(_)) == unix) {
                    // AWS's way to set the generated input's options: the
                    // same socket again (Fluent Bit's later input takes the
                    // socket file over; v5 shares a TCP port).
                    Some(served) if *served == input => plan.notes.push(format!(
                        "{}: [INPUT] forward {input} is an earlier input's listener too: Sluice serves it once, with both inputs' options",
                        section.at
                    )),
                    Some(served) => errors.push(error(format!(
                        "[INPUT] forward {input}: Sluice serves one TCP and one unix forward input, and {served} is this configuration's; its clients would find no listener"
                    ))),
                    None => plan.forward.push(input),
                }
                let kind = if unix { InputKind::ForwardUnix } else { InputKind::ForwardTcp };
                plan.input_names.push((instance_name(section, index), kind));
            }
            forward_security(section, plan, errors);
            // Fluent Bit would give every record of this input another tag,
            // and the outputs would route them otherwise.
            for key in ["tag", "tag_prefix"] {
                if let Some(value) = section.get(key) {
                    errors.push(error(format!(
                        "[INPUT] forward {key} {value}: Sluice keeps each record's own tag, so the outputs would take other records than in Fluent Bit"
                    )));
                }
            }
            for (key, _) in &section.entries {
                let k = key.to_ascii_lowercase();
                if !matches!(k.as_str(), "name" | "alias" | "unix_path" | "listen" | "port" | "shared_key" | "tag" | "tag_prefix" | "empty_shared_key" | "security.users" | "self_hostname" | "unix_perm")
                    && !storage::reads(SectionKind::Input, "forward", &k)
                {
                    plan.notes.push(format!(
                        "{}: [INPUT] forward {key} does not apply: Sluice bounds what it holds with limits.memory, and takes frames of any mode up to 16 MiB",
                        section.at
                    ));
                }
            }
        }
        // Fluent Bit's in_tcp listens on 5170 unless told; its tag is its
        // instance's name (`tcp.2` as the third input) unless set. Whether
        // it is the health check is decided once the outputs are known.
        "tcp" => match (address("0.0.0.0", "5170"), tcp_format(section)) {
            (Ok(addr), Ok(mut format)) => {
                let parser = section.get("parser").and_then(|name| {
                    parsers::named(parsers, "[INPUT] tcp", name)
                        .map_err(|why| errors.push(error(why)))
                        .ok()
                });
                if parser.is_some() && format == TcpFormat::Json {
                    // in_tcp's tcp_config.c switches, with a warning.
                    plan.notes.push(format!(
                        "{}: [INPUT] tcp Parser reads lines: the input reads Format none, as Fluent Bit switches it",
                        section.at
                    ));
                    let separator = tcp_separator(section).unwrap_or_else(|e| {
                        errors.push(e);
                        String::new()
                    });
                    format = TcpFormat::None { separator };
                }
                let tag = section
                    .get("tag")
                    .map_or_else(|| format!("tcp.{index}"), str::to_string);
                for (key, _) in &section.entries {
                    let k = key.to_ascii_lowercase();
                    if !matches!(
                        k.as_str(),
                        "name" | "listen" | "port" | "tag" | "format" | "separator" | "source_address_key" | "parser" | "alias"
                    ) && !storage::reads(SectionKind::Input, "tcp", &k)
                    {
                        plan.notes.push(format!(
                            "{}: [INPUT] tcp {key} does not apply: Sluice bounds what it holds with limits.memory, and takes pieces up to 256 KiB",
                            section.at
                        ));
                    }
                }
                plan.input_names
                    .push((instance_name(section, index), InputKind::Tcp(addr)));
                plan.tcp_inputs.push(TcpInput {
                    addr,
                    tag,
                    format,
                    source_address_key: section.get("source_address_key").map(str::to_string),
                    parser,
                });
            }
            (Err(e), _) | (_, Err(e)) => errors.push(e),
        },
        "tail" => {
            match TailInput::from_section(section, index, parsers, &mut plan.notes) {
                Ok(tail) => {
                    let kind = InputKind::Tail(plan.tail_inputs.len());
                    plan.input_names.push((instance_name(section, index), kind));
                    plan.tail_inputs.push(tail)
                }
                Err(message) => errors.push(error(message)),
            }
        }
        "exec" => match ExecInput::from_section(section, index, parsers, &mut plan.notes) {
            Ok(exec) => {
                let kind = InputKind::Exec(plan.exec_inputs.len());
                plan.input_names.push((instance_name(section, index), kind));
                plan.exec_inputs.push(exec)
            }
            Err(message) => errors.push(error(message)),
        },
        "dummy" => match DummyInput::from_section(section, index, &mut plan.notes) {
            Ok(dummy) => {
                let kind = InputKind::Dummy(plan.dummy_inputs.len());
                plan.input_names.push((instance_name(section, index), kind));
                plan.dummy_inputs.push(dummy)
            }
            Err(message) => errors.push(error(message)),
        },
        other => errors.push(error(format!(
            "[INPUT] {other} cannot be served by Sluice, which takes Fluent Forward (forward), tcp, tail, exec and dummy"
        ))),
    }
}

/// A forward input's handshake and socket options, as in_forward reads
/// them: `Shared_Key`; `Empty_Shared_Key On` makes the shared key `""`; each
/// `security.users NAME PASSWORD` is a user TCP clients may log in as, which
/// needs a shared key; `Self_Hostname` is the name the server gives;
/// `unix_perm` the socket's mode (octal). Values are secrets: no message
/// shows them.
fn forward_security(section: &Section, plan: &mut DropIn, errors: &mut Vec<ConfigError>) {
    let mut error = |message: String| {
        errors.push(ConfigError {
            key: section.at.clone(),
            message,
        })
    };
    let mut keyed = false;
    if let Some(key) = section.get("shared_key") {
        plan.shared_key = Some(key.to_string());
        keyed = true;
    }
    if let Some(value) = section.get("empty_shared_key") {
        match fluent_bool(value) {
            Some(true) => {
                plan.shared_key = Some(String::new());
                keyed = true;
            }
            Some(false) => {}
            None => error(format!(
                "[INPUT] forward Empty_Shared_Key {value:?} is not On or Off"
            )),
        }
    }
    let mut users = Vec::new();
    for (key, value) in &section.entries {
        if !key.eq_ignore_ascii_case("security.users") {
            continue;
        }
        match value.trim().split_once(' ') {
            Some((name, password)) if !password.is_empty() => users.push(ForwardUser {
                name: name.to_string(),
                password: password.to_string(),
            }),
            _ => error(
                "[INPUT] forward security.users needs a name and a password, separated by a space"
                    .into(),
            ),
        }
    }
    if !users.is_empty() && !keyed {
        // fw.c refuses to start so.
        error("[INPUT] forward security.users needs a Shared_Key or Empty_Shared_Key On, as in Fluent Bit".into());
    }
    plan.forward_users.extend(users);
    if let Some(name) = section.get("self_hostname") {
        plan.self_hostname = Some(name.to_string());
    }
    if let Some(value) = section.get("unix_perm") {
        match u32::from_str_radix(value.trim(), 8) {
            Ok(mode) => plan.unix_perm = Some(mode & 0o7777),
            Err(_) => error(format!(
                "[INPUT] forward unix_perm {value:?} is not an octal file mode such as 0660"
            )),
        }
    }
}

/// `Format` (`json`, the default, or `none`) and `Separator` (`\n`, the
/// default; `\n`, `\r` and `\t` read as those characters) of a tcp input.
fn tcp_format(section: &Section) -> Result<TcpFormat, ConfigError> {
    let error = |message: String| ConfigError {
        key: section.at.clone(),
        message,
    };
    match section
        .get("format")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("json") => Ok(TcpFormat::Json),
        Some("none") => Ok(TcpFormat::None {
            separator: tcp_separator(section)?,
        }),
        Some(other) => Err(error(format!(
            "[INPUT] tcp Format {other:?} is not json or none"
        ))),
    }
}

/// A tcp input's `Separator` (`\n`, the default; `\n`, `\r` and `\t` read
/// as those characters).
fn tcp_separator(section: &Section) -> Result<String, ConfigError> {
    let separator = section
        .get("separator")
        .unwrap_or("\\n")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\t", "\t");
    if separator.is_empty() {
        return Err(ConfigError {
            key: section.at.clone(),
            message: "[INPUT] tcp Separator is empty".into(),
        });
    }
    Ok(separator)
}

/// `[FILTER] multiline`, as AWS's FireLens examples use it: Docker's
/// partial messages (`mode partial_message`), which Sluice always joins,
/// stack traces by Fluent Bit's built-in `java`, `python` and `go`
/// parsers, which Sluice's own joiner (`[multiline]`) has, or by a
/// `[MULTILINE_PARSER]` of type regex, which the joiner runs. It does not
/// change records in the router: the output stage's joiner does the work,
/// for every container's application lines.
fn multiline_filter(
    section: &Section,
    defined: &MultilineParsers,
    plan: &mut DropIn,
    errors: &mut Vec<ConfigError>,
) {
    let at = &section.at;
    let mut error = |message: String| {
        errors.push(ConfigError {
            key: at.clone(),
            message: format!("[FILTER] multiline {message}"),
        })
    };
    let mut partial = false;
    for (key, value) in &section.entries {
        match key.to_ascii_lowercase().as_str() {
            "multiline.key_content" if value != "log" => error(format!(
                "multiline.key_content {value}: Sluice joins the lines of `log`"
            )),
            "mode" => match value.to_ascii_lowercase().as_str() {
                "partial_message" => partial = true,
                "parser" => {}
                other => error(format!(
                    "mode {other}: Sluice joins partial messages (partial_message) and stack traces (parser)"
                )),
            },
            "multiline.parser" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match name {
                        "java" | "python" | "go" => plan
                            .multiline_rules
                            .push((at.clone(), name.to_string())),
                        // Sluice always joins Docker's partial messages.
                        "docker" => partial = true,
                        "cri" => plan.notes.push(format!(
                            "{at}: [FILTER] multiline multiline.parser cri does not apply: records from Docker's fluentd driver are not CRI lines"
                        )),
                        other => match defined.get(other) {
                            Some(Ok(rules)) => {
                                if !plan.multiline_parsers.iter().any(|(_, p)| p.name() == other) {
                                    plan.multiline_parsers.push((at.clone(), rules));
                                }
                            }
                            Some(Err(why)) => error(format!(
                                "multiline.parser {other}: the [MULTILINE_PARSER] of that name cannot be served: {why}"
                            )),
                            None => error(format!(
                                "multiline.parser {other}: Sluice joins stack traces of java, python and go (and node) with its own [multiline] rules, ruby as Fluent Bit's parser does, Docker's partial messages, and [MULTILINE_PARSER]s of type regex; no [MULTILINE_PARSER] here is named {other}"
                            )),
                        },
                    }
                }
            }
            "multiline.key_content" | "name" | "match" | "match_regex" | "alias" => {}
            "buffer" | "flush_ms" | "emitter_name" | "emitter_storage.type"
            | "emitter_mem_buf_limit" | "multiline.key_pattern" | "multiline.key_group" => {
                plan.notes.push(format!(
                    "{at}: [FILTER] multiline {key} does not apply: Sluice's joiner waits multiline.wait and holds at most multiline.max_size"
                ))
            }
            _ => error(format!(
                "has no option {key}; it takes multiline.key_content, multiline.parser, mode"
            )),
        }
    }
    if partial {
        plan.notes.push(format!(
            "{at}: [FILTER] multiline partial messages: Sluice always joins Docker's partial messages, before any filter"
        ));
    }
}

/// Errors for a `[FILTER] multiline` rule that Sluice's joiner does not
/// have: `multiline` is Sluice's `[multiline]` (`None` when disabled).
pub fn check_multiline(
    plan: &DropIn,
    multiline: Option<&crate::config::MultilineConfig>,
) -> Vec<ConfigError> {
    let has = |rule: &str| {
        multiline.is_some_and(|m| match rule {
            "java" => m.rules.java,
            "python" => m.rules.python,
            _ => m.rules.go,
        })
    };
    let mut errors: Vec<ConfigError> = plan
        .multiline_rules
        .iter()
        .filter(|(_, rule)| !has(rule))
        .map(|(at, rule)| ConfigError {
            key: at.clone(),
            message: format!(
                "[FILTER] multiline multiline.parser {rule}: Sluice's multiline joiner does not join {rule} traces here (multiline.enabled is false or multiline.rules leaves {rule} out)"
            ),
        })
        .collect();
    if multiline.is_none() {
        errors.extend(plan.multiline_parsers.iter().map(|(at, rules)| ConfigError {
            key: at.clone(),
            message: format!(
                "[FILTER] multiline multiline.parser {}: Sluice's multiline joiner, which runs it, is off (multiline.enabled is false)",
                rules.name()
            ),
        }));
    }
    errors
}

/// Whether a parser filter among `sections` names parser `name`, or an
/// input does (`Parser` of the tail, tcp and exec inputs; the tail
/// input's `Parser_Firstline` and `Parser_N`).
fn parser_used(sections: &[Section], name: &str) -> bool {
    let names = |s: &Section| {
        s.entries.iter().any(|(key, value)| {
            let key = key.to_ascii_lowercase();
            (key == "parser" || key.starts_with("parser_")) && value.trim() == name
        })
    };
    sections.iter().any(|s| match s.kind {
        SectionKind::Filter => s.plugin() == "parser" && s.all("parser").any(|p| p == name),
        SectionKind::Input => names(s),
        _ => false,
    })
}

fn tag_match(section: &Section, what: &str) -> Result<TagMatch, String> {
    if let Some(re) = section.get("match_regex") {
        return super::onig::regex(re)
            .map(TagMatch::Regex)
            .map_err(|e| format!("[{what}] Match_Regex is not a valid regular expression: {e}"));
    }
    Ok(TagMatch::Glob(
        section.get("match").unwrap_or("").to_string(),
    ))
}

/// A filter's action, or, when its section has errors (each reported;
/// the plan is then refused), a placeholder that does nothing.
fn or_reported<E: Into<Messages>>(
    built: Result<FilterAction, E>,
    report: &mut impl FnMut(String),
) -> FilterAction {
    built.unwrap_or_else(|e| {
        e.into().0.into_iter().for_each(report);
        FilterAction::RecordModifier(RecordModifier::default())
    })
}

/// A filter section's errors: the one message most plugins' readers
/// return, or several.
struct Messages(Vec<String>);

impl From<String> for Messages {
    fn from(message: String) -> Messages {
        Messages(vec![message])
    }
}

impl From<Vec<String>> for Messages {
    fn from(messages: Vec<String>) -> Messages {
        Messages(messages)
    }
}

fn filter(
    section: &Section,
    parsers: &Parsers,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Filter, Vec<ConfigError>> {
    let plugin = section.plugin();
    let mut errors = Vec::new();
    let mut error = |message: String| {
        errors.push(ConfigError {
            key: section.at.clone(),
            message,
        })
    };
    let matcher = match tag_match(section, &format!("FILTER {plugin}")) {
        Ok(m) => m,
        Err(e) => {
            error(e);
            TagMatch::Glob(String::new())
        }
    };
    let action = match plugin.as_str() {
        "grep" => {
            let mut rules = Vec::new();
            let mut op = LogicalOp::Legacy;
            for (key, value) in &section.entries {
                let k = key.to_ascii_lowercase();
                let exclude = match k.as_str() {
                    "regex" => false,
                    "exclude" => true,
                    "logical_op" => {
                        op = match value.to_ascii_lowercase().as_str() {
                            "legacy" => LogicalOp::Legacy,
                            "and" => LogicalOp::And,
                            "or" => LogicalOp::Or,
                            other => {
                                error(format!("[FILTER] grep Logical_Op {other:?} is not one of legacy, and, or"));
                                LogicalOp::Legacy
                            }
                        };
                        continue;
                    }
                    "name" | "match" | "match_regex" | "alias" => continue,
                    _ => {
                        error(format!("[FILTER] grep has no option {key}; it takes Regex, Exclude, Logical_Op"));
                        continue;
                    }
                };
                let Some((field, pattern)) = value.split_once(' ') else {
                    error(format!(
                        "[FILTER] grep {key} needs KEY REGEX, got {value:?}"
                    ));
                    continue;
                };
                let path = match super::template::key_path(field) {
                    Ok(path) => path,
                    Err(e) => {
                        error(format!("[FILTER] grep {key}: {e}"));
                        continue;
                    }
                };
                let field = field.trim_start_matches('$').to_string();
                match super::onig::regex(pattern.trim()) {
                    Ok(regex) => rules.push(GrepRule {
                        exclude,
                        key: field,
                        path,
                        pattern: pattern.trim().to_string(),
                        regex,
                    }),
                    Err(e) => error(format!(
                        "[FILTER] grep {key} {field}: {:?} is not a regular expression Sluice can use: {e}",
                        pattern.trim()
                    )),
                }
            }
            // grep.c's set_rules: with `and` or `or`, the rules are all of
            // one kind, or the filter (and Fluent Bit) does not start.
            let kinds = (
                rules.iter().any(|r| !r.exclude),
                rules.iter().any(|r| r.exclude),
            );
            if op != LogicalOp::Legacy && kinds == (true, true) {
                error(format!(
                    "[FILTER] grep Logical_Op {}: Regex and Exclude rules cannot be combined with it, as Fluent Bit refuses them (\"Both 'regex' and 'exclude' are set\")",
                    section.get("logical_op").unwrap_or_default()
                ));
            }
            FilterAction::Grep(Grep { rules, op })
        }
        "record_modifier" => {
            let mut m = RecordModifier::default();
            for (key, value) in &section.entries {
                match key.to_ascii_lowercase().as_str() {
                    // `FLB_CONFIG_MAP_SLIST_2`: tokens as `flb_slist_split_tokens`
                    // splits them (a value with spaces in double quotes).
                    // Anything but two is what Fluent Bit logs as invalid
                    // and starts without: noted, and left out, as there.
                    // The note names the key, not the value, which may
                    // come from a secret's `${VAR}`.
                    "record" => match super::classic::split_tokens(value, 2).as_slice() {
                        [k, v] => m.records.push((k.as_str().into(), v.as_str().into())),
                        tokens => notes.push(format!(
                            "{}: [FILTER] record_modifier Record {} is left out, as Fluent Bit leaves it out (\"invalid record parameters, expects 'KEY VALUE'\"): {}",
                            section.at,
                            tokens.first().map_or("(empty)", String::as_str),
                            if tokens.len() < 2 { "it has no value" } else { "a value with spaces goes in double quotes" }
                        )),
                    },
                    "remove_key" => m.remove_keys.push(value.clone()),
                    "allowlist_key" | "whitelist_key" => m.allowlist_keys.push(value.clone()),
                    "uuid_key" => m.uuid_key = Some(value.clone()),
                    "name" | "match" | "match_regex" | "alias" => {}
                    _ => error(format!(
                        "[FILTER] record_modifier has no option {key}; it takes Record, Remove_key, Allowlist_key, Uuid_key"
                    )),
                }
            }
            FilterAction::RecordModifier(m)
        }
        "parser" => {
            let mut key_name = None;
            let mut named = Vec::new();
            let (mut reserve_data, mut preserve_key) = (false, false);
            for (key, value) in &section.entries {
                let mut flag = |into: &mut bool| match fluent_bool(value) {
                    Some(b) => *into = b,
                    None => error(format!("[FILTER] parser {key} {value:?} is not On or Off")),
                };
                match key.to_ascii_lowercase().as_str() {
                    "key_name" => key_name = Some(value.as_str()),
                    "parser" => named.push(value.as_str()),
                    "reserve_data" => flag(&mut reserve_data),
                    "preserve_key" => flag(&mut preserve_key),
                    "unescape_key" => notes.push(format!(
                        "{}: [FILTER] parser Unescape_Key does not apply: it is deprecated in Fluent Bit and does nothing",
                        section.at
                    )),
                    "name" | "match" | "match_regex" | "alias" => {}
                    _ => error(format!(
                        "[FILTER] parser has no option {key}; it takes Key_Name, Parser, Reserve_Data, Preserve_Key"
                    )),
                }
            }
            let key_name = match key_name.map(|k| k.strip_prefix('$').unwrap_or(k)) {
                None => {
                    error("[FILTER] parser needs Key_Name".into());
                    String::new()
                }
                Some(k) if k.contains(['[', ']']) => {
                    error(format!(
                        "[FILTER] parser Key_Name {k:?}: Sluice parses a top-level key, not a nested one"
                    ));
                    String::new()
                }
                Some(k) => k.to_string(),
            };
            if named.is_empty() {
                error("[FILTER] parser needs a Parser".into());
            }
            let mut chosen = Vec::new();
            let mut missing = Vec::new();
            for name in named {
                match parsers.get(name) {
                    Some(Ok(parser)) => {
                        notes.extend(parser.notes.iter().map(|n| format!("{}: {n}", section.at)));
                        chosen.push(parser.clone())
                    }
                    Some(Err(why)) => error(format!("[FILTER] parser Parser {name}: {why}")),
                    None if super::parsers::NOT_BUILT_IN.contains(&name) => missing.push(format!(
                        "[FILTER] parser Parser {name}: Fluent Bit's parsers.conf defines it for Kubernetes or kernel logs, and Sluice does not build it in; a [PARSER] section of that name defines it"
                    )),
                    None => {
                        let built_in = super::parsers::BUILT_IN;
                        let (last, rest) = built_in.split_last().expect("parsers are built in");
                        missing.push(format!(
                            "[FILTER] parser Parser {name}: no such parser (Sluice knows the parsers of Fluent Bit's parsers.conf: {} and {last}; and the json, regex, logfmt and ltsv parsers of [PARSER] sections and Parsers_File)",
                            rest.join(", ")
                        ))
                    }
                }
            }
            // Fluent Bit logs a parser it does not find and runs the
            // filter with the others; with none found it does not start.
            for why in missing {
                if chosen.is_empty() {
                    error(why);
                } else {
                    notes.push(format!(
                        "{}: {why}: the filter runs with its other parsers, as Fluent Bit runs it",
                        section.at
                    ));
                }
            }
            FilterAction::Parser(ParserFilter {
                key_name,
                parsers: chosen,
                reserve_data,
                preserve_key,
            })
        }
        "modify" => {
            let mut m = Modify::default();
            for (key, value) in &section.entries {
                match key.to_ascii_lowercase().as_str() {
                    "name" | "match" | "match_regex" | "alias" => {}
                    "move_to_start" | "move_to_end" => notes.push(format!(
                        "{}: [FILTER] modify {key} does not apply: Sluice writes a record's keys in their sorted order",
                        section.at
                    )),
                    _ => match m.option(key, value) {
                        Ok(true) => {}
                        Ok(false) => error(format!(
                            "[FILTER] modify has no option {key}; it takes Set, Add, Remove, Remove_wildcard, Remove_regex, Rename, Hard_rename, Copy, Hard_copy, Condition"
                        )),
                        Err(e) => error(format!("[FILTER] modify {e}")),
                    },
                }
            }
            FilterAction::Modify(m)
        }
        "lua" => or_reported(
            LuaFilter::from_section(section, dir).map(FilterAction::Lua),
            &mut error,
        ),
        "aws" => or_reported(
            AwsFilter::from_section(section, notes).map(FilterAction::Aws),
            &mut error,
        ),
        "throttle" => or_reported(
            Throttle::from_section(section, notes).map(FilterAction::Throttle),
            &mut error,
        ),
        "nest" => or_reported(
            Nest::from_section(section).map(FilterAction::Nest),
            &mut error,
        ),
        "rewrite_tag" => or_reported(
            RewriteTag::from_section(section, notes).map(FilterAction::RewriteTag),
            &mut error,
        ),
        other => {
            error(format!(
                "[FILTER] {other} ({}) is not supported by Sluice (grep, record_modifier, parser, modify, nest, rewrite_tag, aws, lua, throttle and multiline are); without it records would be changed differently than you expect",
                matcher.describe()
            ));
            FilterAction::RecordModifier(RecordModifier::default())
        }
    };
    if errors.is_empty() {
        Ok(Filter {
            name: String::new(),
            matcher,
            action,
        })
    } else {
        Err(errors)
    }
}

fn output(
    section: &Section,
    notes: &mut Vec<String>,
) -> Result<(Output, Option<Connection>), Vec<ConfigError>> {
    let plugin = section.plugin();
    let at = &section.at;
    let matcher = tag_match(section, &format!("OUTPUT {plugin}")).map_err(|e| {
        vec![ConfigError {
            key: at.clone(),
            message: e,
        }]
    })?;
    let single = |message: String| {
        vec![ConfigError {
            key: at.clone(),
            message,
        }]
    };
    let go = match plugin.as_str() {
        "null" => {
            return Ok((
                Output {
                    matcher,
                    plugin,
                    name: String::new(),
                    kind: OutputKind::Null,
                },
                None,
            ))
        }
        "stdout" => {
            let stdout = StdoutOutput::from_section(section).map_err(single)?;
            return Ok((
                Output {
                    matcher,
                    plugin,
                    name: String::new(),
                    kind: OutputKind::Stdout(stdout),
                },
                None,
            ));
        }
        "cloudwatch_logs" => false,
        "cloudwatch" => true,
        "" => return Err(single("[OUTPUT] without a Name".into())),
        other => return Err(single(refused_output(other, &matcher))),
    };
    // The options, typed by the configuration's layer: text read as each
    // option's type asks, unknown options refused.
    let mut raw = RawSection::default();
    let name = format!("OUTPUT {plugin}");
    for (key, value) in &section.entries {
        let k = key.to_ascii_lowercase();
        // `alias` names the output's plugin metrics (`instance_name`).
        if matches!(k.as_str(), "name" | "match" | "match_regex" | "alias")
            || storage::reads(SectionKind::Output, &plugin, &k)
        {
            continue;
        }
        // `net.*` and `tls.*` are families: their first member's reason.
        let family = if k.starts_with("net.") {
            "net."
        } else if k.starts_with("tls.") {
            "tls."
        } else {
            k.as_str()
        };
        if let Some((_, reason)) = NOT_APPLIED.iter().find(|(n, _)| *n == family || *n == k) {
            notes.push(format!(
                "{at}: [OUTPUT] {plugin} {key} does not apply: {reason}"
            ));
            continue;
        }
        raw.set(
            &k,
            RawValue::Text(value.clone()),
            Origin::Named(format!("{at}: [OUTPUT] {plugin} {key}")),
        );
    }
    let mut errors = Vec::new();
    let o: CloudWatchOptions = read_section(&name, raw, &mut errors);
    let mut error = |message: &str| {
        errors.push(ConfigError {
            key: at.clone(),
            message: format!("[OUTPUT] {plugin}: {message}"),
        })
    };
    let Some(region) = o.region.clone() else {
        error("'region' is a required field");
        return Err(errors);
    };
    let Some(group_name) = o.log_group_name.clone() else {
        error("'log_group_name' is a required field");
        return Err(errors);
    };
    let stream_fallback = match (&o.log_stream_name, &o.log_stream_prefix) {
        (Some(name), None) => Fallback::Name(name.clone()),
        (None, Some(prefix)) => Fallback::PrefixAndTag(prefix.clone()),
        (Some(_), Some(_)) => {
            error("give either log_stream_name or log_stream_prefix, not both");
            return Err(errors);
        }
        (None, None) => {
            error("log_stream_name or log_stream_prefix is required");
            return Err(errors);
        }
    };
    // One for the output's group and stream alike, as the Go plugin.
    let uuid = output_uuid();
    let parse = |source: &str| {
        if go {
            Template::go(source, &uuid)
        } else {
            Template::record_accessor(source)
        }
    };
    let (group, stream) = if go {
        // The names themselves are templates; when one cannot be filled,
        // the plugin's default names.
        let group = match parse(&group_name) {
            Ok(t) if t.is_static() => NameRule {
                template: None,
                fallback: Fallback::Name(group_name.clone()),
            },
            Ok(t) => NameRule {
                template: Some(t),
                fallback: Fallback::Name(
                    o.default_log_group_name
                        .clone()
                        .unwrap_or_else(|| "fluentbit-default".into()),
                ),
            },
            Err(e) => {
                error(&e);
                return Err(errors);
            }
        };
        let stream = match stream_fallback {
            Fallback::Name(name) => match parse(&name) {
                Ok(t) if t.is_static() => NameRule {
                    template: None,
                    fallback: Fallback::Name(name),
                },
                Ok(t) => NameRule {
                    template: Some(t),
                    fallback: Fallback::Name(
                        o.default_log_stream_name
                            .clone()
                            .unwrap_or_else(|| "/fluentbit-default".into()),
                    ),
                },
                Err(e) => {
                    error(&e);
                    return Err(errors);
                }
            },
            prefix => NameRule {
                template: None,
                fallback: prefix,
            },
        };
        (group, stream)
    } else {
        let template = |key: &Option<String>| -> Result<Option<Template>, String> {
            key.as_deref().map(parse).transpose()
        };
        match (
            template(&o.log_group_template),
            template(&o.log_stream_template),
        ) {
            (Ok(g), Ok(s)) => (
                NameRule {
                    template: g,
                    fallback: Fallback::Name(group_name.clone()),
                },
                NameRule {
                    template: s,
                    fallback: stream_fallback,
                },
            ),
            (Err(e), _) | (_, Err(e)) => {
                error(&e);
                return Err(errors);
            }
        }
    };
    let retention_days = match o.log_retention_days {
        None | Some(0) => None,
        Some(d) if RETENTION_DAYS.contains(&d) => i32::try_from(d).ok(),
        Some(d) => {
            error(&format!("log_retention_days {}", retention_message(d)));
            None
        }
    };
    if let Some(format) = &o.log_format {
        if !matches!(format.as_str(), "json" | "json/emf") {
            error(&format!("log_format {format:?} is not json or json/emf"));
        }
    }
    let endpoint = o.endpoint.as_ref().map(|e| {
        let url = if e.contains("://") {
            e.clone()
        } else {
            format!("https://{e}")
        };
        match o.port {
            Some(port)
                if !url
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .contains(':') =>
            {
                format!("{url}:{port}")
            }
            _ => url,
        }
    });
    if o.external_id.is_some() && o.role_arn.is_none() {
        error("external_id needs role_arn");
    }
    // Read as `validate_log_group_class` reads it: by prefix.
    let infrequent_access = match o.log_group_class.as_deref().map(str::trim) {
        None | Some("") => false,
        Some(c) if c.starts_with("STANDARD") => false,
        Some(c) if c.starts_with("INFREQUENT_ACCESS") => {
            notes.push(format!(
                "{at}: [OUTPUT] {plugin} log_group_class INFREQUENT_ACCESS applies to the groups Sluice creates; CloudWatch extracts no metrics from Embedded Metric Format in such a group, so Sluice's per-route statistics written to it stay log events"
            ));
            true
        }
        Some(c) => {
            error(&format!(
                "log_group_class {c:?} is not STANDARD or INFREQUENT_ACCESS"
            ));
            false
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let connection = Connection {
        region,
        endpoint,
        role_arn: o.role_arn.clone(),
        external_id: o.external_id.clone(),
        sts_endpoint: o.sts_endpoint.clone().map(|e| {
            if e.contains("://") {
                e
            } else {
                format!("https://{e}")
            }
        }),
    };
    let output = CloudWatchOutput {
        group,
        stream,
        log_key: o.log_key.clone(),
        create_group: o.auto_create_group.unwrap_or(false),
        // cloudwatch_logs always creates streams; the Go plugin by default.
        create_stream: !go || o.auto_create_stream.unwrap_or(true),
        retention_days,
        infrequent_access,
        new_group_tags: o.new_log_group_tags.as_deref().and_then(group_tags),
        go_names: go,
    };
    Ok((
        Output {
            matcher,
            plugin,
            name: String::new(),
            kind: OutputKind::CloudWatch(Box::new(output)),
        },
        Some(connection),
    ))
}

#[cfg(test)]
mod tests;
