//! FireLens drop-in mode: the Fluent Bit configuration ECS generates for the
//! log router (`/fluent-bit/etc/fluent-bit.conf`), read and served as
//! Fluent Bit would serve it.
//!
//! - [`classic`] reads the file format (sections, includes, variables);
//! - [`plan`] turns the sections into inputs, filters and outputs, refusing
//!   what Sluice cannot serve;
//! - [`parsers`] holds the parsers a `parser` filter may name,
//!   [`multiline_parsers`] those a `multiline` filter may name, and
//!   [`modify`] the `modify` filter; [`onig`] reads their regular
//!   expressions as Fluent Bit means them;
//! - [`rewrite_tag`] and [`nest`] are those filters;
//! - [`route`] applies the plan to each record;
//! - [`template`] fills Fluent Bit's group and stream name templates.

pub mod aws_filter;
pub mod classic;
pub mod decode;
pub mod init;
pub mod local_time;
pub mod lua_filter;
pub mod metrics_v2;
pub mod modify;
pub mod multiline_parsers;
pub mod nest;
pub mod onig;
pub mod parsers;
pub mod plan;
pub mod plugin_metrics;
pub mod rewrite_tag;
pub mod route;
pub mod stdout_output;
pub mod storage;
pub mod stream_task;
pub mod template;
pub mod throttle;
pub mod time_zone;

use std::fmt::Write;
use std::path::Path;

use crate::config::ConfigError;
pub use plan::DropIn;

/// Reads and plans `path`, with the files aws-for-fluent-bit's init image
/// would add (`init`, from [`init::init_files`]). `env` gives `${VAR}`s
/// that `@SET` did not.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    init: &[init::InitFile],
) -> Result<DropIn, Vec<ConfigError>> {
    let read_file = |file: &Path| {
        classic::read(file, env).map_err(|e| {
            vec![ConfigError {
                key: e.at,
                message: e.message,
            }]
        })
    };
    let mut read = read_file(path)?;
    // The init image's files: a parsers file's parsers join (`-R`), any
    // other file is included after the generated one (`@INCLUDE`).
    let mut init_parsers = Vec::new();
    for file in init {
        let mut added = read_file(file.path())?;
        match file {
            init::InitFile::Config(_) => read.sections.append(&mut added.sections),
            init::InitFile::Parsers(_) => init_parsers.append(&mut added.sections),
        }
        read.unset_variables.append(&mut added.unset_variables);
    }
    // `[SERVICE] Parsers_File`: its [PARSER] and [MULTILINE_PARSER]
    // sections join the file's.
    let mut notes = Vec::new();
    for (at, file, full) in service_files(path, &read.sections, "parsers_file") {
        if !full.exists() {
            notes.push(format!(
                "{at}: [SERVICE] Parsers_File {file} does not exist here; the parsers Sluice has built in (those of Fluent Bit's parsers.conf but its Kubernetes and kernel ones) and the file's own [PARSER] and [MULTILINE_PARSER] sections are used"
            ));
            continue;
        }
        let parsers = read_file(&full)?;
        read.sections
            .extend(parsers.sections.into_iter().filter(is_parser));
    }
    read.sections
        .extend(init_parsers.into_iter().filter(is_parser));
    // `[SERVICE] Streams_File`: its [STREAM_TASK]s, read as Fluent Bit
    // reads that file, relative to the configuration's directory.
    for (at, file, full) in service_files(path, &read.sections, "streams_file") {
        let tasks = read_file(&full).map_err(|mut errors| {
            for e in &mut errors {
                e.message = format!("[SERVICE] Streams_File {file} (at {at}): {}", e.message);
            }
            errors
        })?;
        read.sections.extend(
            tasks
                .sections
                .into_iter()
                .filter(|s| s.kind == classic::SectionKind::StreamTask),
        );
    }
    let mut plan = plan::plan(path, &read.sections)?;
    plan.notes.append(&mut notes);
    for name in read.unset_variables {
        plan.notes.push(format!(
            "${{{name}}} is used but not set; it reads as \"\", as in Fluent Bit"
        ));
    }
    Ok(plan)
}

/// A section a parsers file contributes (`[PARSER]`, `[MULTILINE_PARSER]`).
/// The files the `[SERVICE]` sections name by `key`: where each is named,
/// the name, and its path from the configuration's directory.
fn service_files(
    path: &Path,
    sections: &[classic::Section],
    key: &str,
) -> Vec<(String, String, std::path::PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new(""));
    sections
        .iter()
        .filter(|s| s.kind == classic::SectionKind::Service)
        .flat_map(|s| {
            s.all(key)
                .map(|f| (s.at.clone(), f.to_string(), dir.join(f)))
        })
        .collect()
}

fn is_parser(section: &classic::Section) -> bool {
    matches!(
        section.kind,
        classic::SectionKind::Parser | classic::SectionKind::MultilineParser
    )
}

/// What `${VAR}` reads when `@SET` did not set it: the environment, else
/// the variables aws-for-fluent-bit's init image exports from the task
/// metadata (`${ECS_TASK_ID}`, `${ECS_CLUSTER}`, `${AWS_REGION}`, ...; see
/// [`crate::ecs::TaskMetadata::init_variables`]), so that configurations written for
/// the init image read the same here; and `${HOSTNAME}`, which a shell
/// sets without exporting it, is the host's name, as `flb_env_create`
/// gives it.
pub fn variables(task: Option<&crate::ecs::TaskMetadata>) -> impl Fn(&str) -> Option<String> {
    let from_task = task.map(|t| t.init_variables()).unwrap_or_default();
    move |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| {
                from_task
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.clone())
            })
            .or_else(|| (name == "HOSTNAME").then(crate::ecs::host_name).flatten())
    }
}

/// [`load`] as `run` and `check-config` load the configuration: `${VAR}`s
/// from the environment and the task metadata ([`variables`]), the init
/// image's files from the environment ([`init::init_files`]); then the
/// plan checked against Sluice's own `[multiline]` (`None` when disabled):
/// what a multiline filter asks of its joiner.
pub fn load_with(
    path: &Path,
    task: Option<&crate::ecs::TaskMetadata>,
    multiline: Option<&crate::config::MultilineConfig>,
) -> Result<DropIn, Vec<ConfigError>> {
    let init = init::init_files(crate::config::environment(), task.and_then(|t| t.region()))?;
    let plan = load(path, &variables(task), &init)?;
    let errors = plan::check_multiline(&plan, multiline);
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

/// The routes a plan derived, for `sluice check-config`: per output, its
/// `Match`, plugin, group and stream (templates shown as templates); then
/// inputs, filters, and what does not apply.
pub fn describe(plan: &DropIn) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "FireLens drop-in: {}", plan.path.display());
    for input in &plan.forward {
        let _ = match input {
            plan::ForwardInput::Unix(p) => writeln!(out, "  input forward unix {}", p.display()),
            plan::ForwardInput::Tcp(a) => writeln!(out, "  input forward tcp {a}"),
        };
    }
    for input in &plan.tcp_inputs {
        let format = match &input.format {
            plan::TcpFormat::Json => "json".to_string(),
            plan::TcpFormat::None { separator } => format!(
                "none, Separator {separator:?}{}",
                input
                    .parser
                    .as_ref()
                    .map_or(String::new(), |p| format!(", Parser {}", p.name))
            ),
        };
        let _ = writeln!(
            out,
            "  input tcp {} (Tag {}, Format {format})",
            input.addr, input.tag
        );
    }
    if let Some(a) = plan.http_server {
        let _ = writeln!(
            out,
            "  admin endpoint {a} ([SERVICE] HTTP_Server: /api/v1/health, /api/v1/uptime, /api/v1/metrics[/prometheus], /api/v2/metrics[/prometheus], /healthz, /metrics)"
        );
    }
    if let Some(flush) = plan.flush {
        let _ = writeln!(
            out,
            "  batches wait at most {} ms ([SERVICE] Flush)",
            flush.as_millis()
        );
    }
    if let Some(grace) = plan.grace {
        let _ = writeln!(
            out,
            "  shutdown grace {} s ([SERVICE] Grace)",
            grace.as_secs()
        );
    }
    if let Some(storage) = &plan.storage {
        let _ = writeln!(
            out,
            "  spool {} (storage.type filesystem; {}{})",
            storage.path.display(),
            storage
                .total_limit
                .map_or("spool.max_size".to_string(), |b| format!(
                    "at most {b} bytes"
                )),
            if storage.sync_full {
                ", fsync before every ack"
            } else {
                ""
            }
        );
    }
    for input in &plan.tail_inputs {
        let _ = writeln!(out, "  input tail {}", input.describe());
    }
    for input in &plan.dummy_inputs {
        let _ = writeln!(
            out,
            "  input dummy (Tag {}, {} record(s) x {} every {:?}{})",
            input.tag,
            input.records.len(),
            input.copies,
            input.interval,
            input
                .samples
                .map_or(String::new(), |n| format!(", {n} time(s)")),
        );
    }
    for input in &plan.exec_inputs {
        let _ = writeln!(
            out,
            "  input exec {:?} (Tag {}, {}{})",
            input.command,
            input.tag,
            if input.oneshot {
                "once".to_string()
            } else {
                format!("every {:?}", input.interval)
            },
            input
                .parser
                .as_ref()
                .map_or(String::new(), |p| format!(", Parser {}", p.name)),
        );
    }
    for a in &plan.health_checks {
        let _ = writeln!(
            out,
            "  input tcp {a} (health check: accepted and discarded)"
        );
    }
    for f in &plan.filters {
        let what = match &f.action {
            plan::FilterAction::Grep(g) => {
                let rules: Vec<String> = g
                    .rules
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {}",
                            if r.exclude { "Exclude" } else { "Regex" },
                            r.key,
                            r.pattern
                        )
                    })
                    .collect();
                format!("grep {}", rules.join("; "))
            }
            plan::FilterAction::Parser(p) => {
                let names: Vec<&str> = p.parsers.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "parser Key_Name {}, Parser {}{}{}",
                    p.key_name,
                    names.join(", "),
                    if p.reserve_data { ", Reserve_Data" } else { "" },
                    if p.preserve_key { ", Preserve_Key" } else { "" },
                )
            }
            plan::FilterAction::Modify(m) => format!(
                "modify: {} condition(s), {} rule(s)",
                m.conditions.len(),
                m.rules.len()
            ),
            plan::FilterAction::Nest(n) => n.describe(),
            plan::FilterAction::RewriteTag(r) => {
                let rules: Vec<String> = r
                    .rules
                    .iter()
                    .map(|rule| {
                        format!(
                            "${} {} -> {}{}",
                            rule.key.join("."),
                            rule.regex.as_str(),
                            rule.tag.source,
                            if rule.keep { " (and keep)" } else { "" }
                        )
                    })
                    .collect();
                format!("rewrite_tag {}", rules.join("; "))
            }
            plan::FilterAction::Lua(l) => format!("lua: call {}", l.call),
            plan::FilterAction::Throttle(t) => format!(
                "throttle: at most {} records an interval on average over {} intervals of {} s",
                t.rate,
                t.window,
                t.interval.as_secs()
            ),
            plan::FilterAction::Aws(a) => {
                let keys: Vec<&str> = a.fields.iter().map(|f| f.key()).collect();
                format!(
                    "aws: adds {} from the instance metadata (asked again every {} s while missing)",
                    keys.join(", "),
                    a.retry_interval.as_secs()
                )
            }
            plan::FilterAction::RecordModifier(m) => {
                let mut parts: Vec<String> = m
                    .records
                    .iter()
                    .map(|(k, v)| format!("Record {k} {v}"))
                    .collect();
                parts.extend(m.remove_keys.iter().map(|k| format!("Remove_key {k}")));
                parts.extend(
                    m.allowlist_keys
                        .iter()
                        .map(|k| format!("Allowlist_key {k}")),
                );
                parts.extend(m.uuid_key.iter().map(|k| format!("Uuid_key {k}")));
                format!("record_modifier {}", parts.join("; "))
            }
        };
        let _ = writeln!(out, "  filter {}: {what}", f.matcher.describe());
    }
    for task in &plan.stream_tasks {
        let keys = task.keys.as_ref().map_or("*".to_string(), |keys| {
            keys.iter()
                .map(|(key, alias)| {
                    if key == alias {
                        key.clone()
                    } else {
                        format!("{key} AS {alias}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        let _ = writeln!(
            out,
            "  stream task {}: copies {} of the records of {}{} as tag {}",
            task.name,
            keys,
            task.from.describe(),
            if task.condition.is_some() {
                " that its WHERE selects"
            } else {
                ""
            },
            task.tag
        );
    }
    for (at, rule) in &plan.multiline_rules {
        let _ = writeln!(
            out,
            "  multiline {rule} ({at}): joined by Sluice's [multiline] joiner, in every container's application lines"
        );
    }
    for (at, rules) in &plan.multiline_parsers {
        let _ = writeln!(
            out,
            "  multiline {} ({at}): [MULTILINE_PARSER] {}, flush_timeout {} ms, run by Sluice's [multiline] joiner, in every container's application lines",
            rules.name(),
            rules.describe(),
            rules.wait_ns() / 1_000_000
        );
    }
    if let Some(c) = &plan.connection {
        let _ = writeln!(
            out,
            "  cloudwatch: region {}, endpoint {}{}",
            c.region,
            c.endpoint.as_deref().unwrap_or("the region's"),
            c.role_arn
                .as_deref()
                .map(|r| format!(", role {r}"))
                .unwrap_or_default()
        );
    }
    for o in &plan.outputs {
        let _ = match &o.kind {
            plan::OutputKind::Null => {
                writeln!(out, "  route {} -> null (discarded)", o.matcher.describe())
            }
            plan::OutputKind::Stdout(s) => writeln!(
                out,
                "  route {} -> stdout ({:?}, redacted)",
                o.matcher.describe(),
                s.format
            ),
            plan::OutputKind::CloudWatch(cw) => writeln!(
                out,
                "  route {} -> {}: group {}, stream {}{}{}{}",
                o.matcher.describe(),
                o.plugin,
                cw.group.describe(),
                cw.stream.describe(),
                cw.log_key
                    .as_deref()
                    .map(|k| format!(", log_key {k}"))
                    .unwrap_or_default(),
                if cw.create_group {
                    ", auto_create_group"
                } else {
                    ""
                },
                cw.retention_days
                    .map(|d| format!(", retention {d} days"))
                    .unwrap_or_default(),
            ),
        };
    }
    let _ = writeln!(
        out,
        "  statistics: stream sluice-stats/<task id> in each access record's log group"
    );
    for note in &plan.notes {
        let _ = writeln!(out, "  ignored: {note}");
    }
    out
}

/// A Fluent Bit log level (`FLB_LOG_LEVEL`, which AWS documents for
/// FireLens routers, or `[SERVICE] Log_Level`) as the level of Sluice's
/// own logs.
pub fn log_level(value: &str) -> Result<tracing::level_filters::LevelFilter, String> {
    use tracing::level_filters::LevelFilter;
    match value.trim().to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::OFF),
        "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(format!(
            "{value:?} is not a log level: off, error, warn, info, debug or trace"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use sluice_firelens::Record;

    /// A section as the configuration would give it: `head` (its `Name`
    /// and `Match`), then `entries`, at `at` (for the plugins' tests).
    pub(crate) fn section(
        kind: super::classic::SectionKind,
        at: &str,
        head: &[(&str, &str)],
        entries: &[(&str, &str)],
    ) -> super::classic::Section {
        super::classic::Section {
            kind,
            at: at.into(),
            entries: head
                .iter()
                .chain(entries)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The plan of a configuration's text, read from a file of its own
    /// (removed after), as `sluice run` reads one.
    pub(crate) fn plan_of(text: &str) -> Result<plan::DropIn, Vec<crate::config::ConfigError>> {
        let file = tempfile::Builder::new()
            .prefix("sluice-plan-")
            .suffix(".conf")
            .tempfile()
            .unwrap();
        std::fs::write(file.path(), text).unwrap();
        let sections = classic::read(file.path(), &|_| None).unwrap().sections;
        plan::plan(file.path(), &sections)
    }

    /// A record from a JSON object's text (for the filters' tests).
    pub(crate) fn record(json: &str) -> Record {
        serde_json::from_str::<serde_json::Map<_, _>>(json)
            .unwrap()
            .into()
    }

    use super::*;

    /// `${HOSTNAME}` is the host's name when the environment lacks it, as
    /// a shell leaves it unexported and Fluent Bit fills it in.
    #[test]
    fn hostname_is_the_host_s_name() {
        let expected = std::env::var("HOSTNAME").unwrap_or_else(|_| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
                .to_string()
        });
        assert_eq!(variables(None)("HOSTNAME"), Some(expected));
        assert_eq!(variables(None)("SLUICE_NO_SUCH_VARIABLE"), None);
    }

    #[test]
    fn parsers_files_add_parsers() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-parsers-file-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("extra-parsers.conf"),
            "[PARSER]\n    Name mine\n    Format json\n    Time_Key ts\n    Time_Format %s\n[MULTILINE_PARSER]\n    name traces\n    type regex\n    rule \"start_state\" \"/^Dec /\" \"cont\"\n    rule \"cont\" \"/^\\s+at/\" \"cont\"\n",
        )
        .unwrap();
        let conf = dir.join("fluent-bit.conf");
        std::fs::write(
            &conf,
            "[SERVICE]\n    Parsers_File extra-parsers.conf\n    Parsers_File /no/such/parsers.conf\n    Flush 1\n[INPUT]\n    Name forward\n    unix_path /s\n[FILTER]\n    Name parser\n    Match app-*\n    Key_Name log\n    Parser mine\n    Parser json\n    Preserve_Key On\n[FILTER]\n    Name multiline\n    Match *\n    multiline.parser traces\n",
        )
        .unwrap();
        let plan = load(&conf, &|_| None, &[]).unwrap();
        let described = describe(&plan);
        let conf_at = conf.display().to_string();
        assert_eq!(
            described,
            format!(
                "FireLens drop-in: {conf_at}
  input forward unix /s
  batches wait at most 1000 ms ([SERVICE] Flush)
  filter Match app-*: parser Key_Name log, Parser mine, json, Preserve_Key
  multiline traces ({conf_at}:15): [MULTILINE_PARSER] of 2 rule(s), flush_timeout 4000 ms, run by Sluice's [multiline] joiner, in every container's application lines
  statistics: stream sluice-stats/<task id> in each access record's log group
  ignored: {conf_at}:1: [SERVICE] Parsers_File /no/such/parsers.conf does not exist here; the parsers Sluice has built in (those of Fluent Bit's parsers.conf but its Kubernetes and kernel ones) and the file's own [PARSER] and [MULTILINE_PARSER] sections are used
"
            )
        );
    }

    /// Every file the image ships under /fluent-bit/configs, included as
    /// ECS includes a `config-file-value`, is served.
    #[test]
    fn the_images_fluent_bit_configs_are_served() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/fluent-bit/configs");
        let tmp = tempfile::Builder::new()
            .prefix("sluice-image-configs-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let mut names = Vec::new();
        // What the image's /fluent-bit/configs holds, here, and what a
        // task definition gives plugin-metrics-to-cloudwatch.conf.
        let in_image = "/fluent-bit/configs/";
        let here = format!("{}/", configs.display());
        let env = |name: &str| match name {
            "FLUENT_BIT_METRICS_LOG_GROUP" => Some("fluent-bit-metrics".to_string()),
            "FLUENT_BIT_METRICS_LOG_REGION" => Some("us-east-1".to_string()),
            "HOSTNAME" => Some("ip-10-0-0-7".to_string()),
            _ => None,
        };
        for entry in std::fs::read_dir(&configs).unwrap() {
            let original = entry.unwrap().path();
            let name = original.file_name().unwrap().to_string_lossy().into_owned();
            let file = dir.join(&name);
            let text = std::fs::read_to_string(&original).unwrap();
            std::fs::write(&file, text.replace(in_image, &here)).unwrap();
            let conf = dir.join(format!("{name}.generated"));
            std::fs::write(
                &conf,
                format!(
                    "[INPUT]\n    Name forward\n    unix_path /s\n\n@INCLUDE {}\n",
                    file.display()
                ),
            )
            .unwrap();
            let plan = load(&conf, &env, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let filters: Vec<String> = describe(&plan)
                .lines()
                .filter(|l| l.starts_with("  filter "))
                .map(str::to_string)
                .collect();
            let parse_json = "  filter Match *: parser Key_Name log, Parser json, Reserve_Data";
            let plugin_metrics = [
                "  filter Match fb_metrics: grep Exclude exec HELP",
                "  filter Match fb_metrics: grep Exclude exec TYPE",
                "  filter Match fb_metrics: parser Key_Name exec, Parser fluentbit_prom_metrics_to_json, Reserve_Data",
                "  filter Match *: record_modifier Record hostname ip-10-0-0-7",
            ];
            let expected: &[&str] = if name.contains("json") {
                &[parse_json]
            } else if name == "plugin-metrics-to-cloudwatch.conf" {
                &plugin_metrics
            } else {
                &[]
            };
            assert_eq!(filters, expected, "{name}");
            names.push(name);
        }
        names.sort();
        assert_eq!(
            names,
            [
                "minimize-log-loss.conf",
                "multiline-parse-json.conf",
                "output-metrics-healthcheck.conf",
                "parse-json.conf",
                "parse-multiline-json.conf",
                "plugin-metrics-parser.conf",
                "plugin-metrics-to-cloudwatch.conf"
            ]
        );
    }
}
