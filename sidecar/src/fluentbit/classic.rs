//! Fluent Bit's classic configuration format, read as Fluent Bit reads it
//! (`src/config_format/flb_cf_fluentbit.c`; facts in shared/firelens.md §2):
//!
//! - `[SECTION]` at column 0, matched case-insensitively;
//! - `key value` lines under it, indented consistently: the first indented
//!   line fixes the indentation, later ones repeat it exactly; the key ends at
//!   the first space, both sides trimmed; keys may repeat (`Record`, `Regex`);
//! - empty lines, and `#` comments at column 0 or right after the indent;
//! - `@INCLUDE path` (a glob when it has `*`; a relative path is taken from
//!   the including file's directory, else the working directory; a file is
//!   included once), `@SET KEY=VALUE`;
//! - `${VAR}` in values: a `@SET` variable, else the environment, else empty
//!   (ECS passes secret log options as `${NAME_i}` variables).
//!
//! No I/O but reading the files; the environment is passed in.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A section's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Service,
    Parser,
    MultilineParser,
    StreamProcessor,
    /// `[STREAM_TASK]`, of a `[SERVICE] Streams_File`.
    StreamTask,
    Plugins,
    UpstreamServers,
    Custom,
    Input,
    Filter,
    Output,
}

impl SectionKind {
    fn parse(name: &str) -> Option<SectionKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "service" => SectionKind::Service,
            "parser" => SectionKind::Parser,
            "multiline_parser" => SectionKind::MultilineParser,
            "stream_processor" => SectionKind::StreamProcessor,
            "stream_task" => SectionKind::StreamTask,
            "plugins" => SectionKind::Plugins,
            "upstream_servers" | "upstream" | "node" => SectionKind::UpstreamServers,
            "custom" | "customs" => SectionKind::Custom,
            "input" | "inputs" => SectionKind::Input,
            "filter" | "filters" => SectionKind::Filter,
            "output" | "outputs" => SectionKind::Output,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Service => "SERVICE",
            SectionKind::Parser => "PARSER",
            SectionKind::MultilineParser => "MULTILINE_PARSER",
            SectionKind::StreamProcessor => "STREAM_PROCESSOR",
            SectionKind::StreamTask => "STREAM_TASK",
            SectionKind::Plugins => "PLUGINS",
            SectionKind::UpstreamServers => "UPSTREAM",
            SectionKind::Custom => "CUSTOM",
            SectionKind::Input => "INPUT",
            SectionKind::Filter => "FILTER",
            SectionKind::Output => "OUTPUT",
        }
    }
}

/// One section with its keys, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// Where it starts, for messages: `file:line`.
    pub at: String,
    /// Keys as written, values with `${VAR}` expanded.
    pub entries: Vec<(String, String)>,
}

impl Section {
    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key` (case-insensitive), in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The plugin (`Name`), lowercased.
    pub fn plugin(&self) -> String {
        self.get("name").unwrap_or("").to_ascii_lowercase()
    }
}

/// A file that cannot be read as Fluent Bit would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicError {
    /// `file:line`, or the file.
    pub at: String,
    pub message: String,
}

impl fmt::Display for ClassicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// What reading gave: the sections, and variables that were not set.
#[derive(Debug, Default)]
pub struct Classic {
    pub sections: Vec<Section>,
    /// `${VAR}`s that neither `@SET` nor the environment had (read as "").
    pub unset_variables: Vec<String>,
}

/// Reads `path` and everything it includes.
pub fn read(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Classic, ClassicError> {
    let mut reader = Reader {
        env,
        set: HashMap::new(),
        included: Vec::new(),
        out: Classic::default(),
        current: None,
    };
    reader.file(path, 0)?;
    reader.close_section();
    Ok(reader.out)
}

/// Nested `@INCLUDE`s deeper than this are refused (a cycle is caught as a
/// file included twice; this bounds the rest).
const MAX_INCLUDE_DEPTH: usize = 16;

struct Reader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    /// `@SET` variables.
    set: HashMap<String, String>,
    /// Canonical paths already read.
    included: Vec<PathBuf>,
    out: Classic,
    /// The open section and its indentation, once known.
    current: Option<(Section, Option<String>)>,
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, depth: usize) -> Result<(), ClassicError> {
        let shown = path.display().to_string();
        let error = |message: String| ClassicError {
            at: shown.clone(),
            message,
        };
        if depth > MAX_INCLUDE_DEPTH {
            return Err(error("@INCLUDE nested too deep".into()));
        }
        let canonical = path
            .canonicalize()
            .map_err(|e| error(format!("cannot read: {e}")))?;
        if self.included.contains(&canonical) {
            return Err(error("file already included".into()));
        }
        self.included.push(canonical.clone());
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let dir = canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for (n, raw) in text.split('\n').enumerate() {
            let at = format!("{shown}:{}", n + 1);
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            self.line(line, &at, &dir, depth)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str, at: &str, dir: &Path, depth: usize) -> Result<(), ClassicError> {
        let error = |message: &str| ClassicError {
            at: at.to_string(),
            message: message.to_string(),
        };
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(());
        }
        // `get`, not indexing: byte 9 may fall inside a character.
        if let Some(path) = line
            .get(..9)
            .filter(|p| p.eq_ignore_ascii_case("@INCLUDE "))
            .and_then(|_| line.get(9..))
        {
            self.close_section();
            return self.include(path.trim(), at, dir, depth);
        }
        if let Some(command) = line.strip_prefix('@') {
            let Some(assignment) = command
                .get(..4)
                .filter(|c| c.eq_ignore_ascii_case("SET "))
                .map(|_| &command[4..])
            else {
                return Err(error("unknown command: only @INCLUDE and @SET exist"));
            };
            let Some((key, value)) = assignment.split_once('=') else {
                return Err(error("@SET needs KEY=VALUE"));
            };
            self.set
                .insert(key.trim().to_string(), value.trim().to_string());
            return Ok(());
        }
        if let Some(header) = line.strip_prefix('[') {
            self.close_section();
            let Some((name, _)) = header.split_once(']') else {
                return Err(error("a section header needs its ']'"));
            };
            let Some(kind) = SectionKind::parse(name.trim()) else {
                return Err(error(&format!("unknown section [{name}]")));
            };
            self.current = Some((
                Section {
                    kind,
                    at: at.to_string(),
                    entries: Vec::new(),
                },
                None,
            ));
            return Ok(());
        }
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent_len == 0 {
            return Err(error("a key outside a section, or a section without '['"));
        }
        let Some((section, indent)) = &mut self.current else {
            return Err(error("a key outside a section"));
        };
        let (this_indent, content) = line.split_at(indent_len);
        match indent {
            None => *indent = Some(this_indent.to_string()),
            Some(first) if first == this_indent => {}
            Some(first)
                if this_indent.len() == first.len() * 2
                    && this_indent.starts_with(first.as_str()) => {}
            Some(first) => {
                let message = if this_indent.contains('\t') != first.contains('\t') {
                    "inconsistent use of tab and space"
                } else if this_indent.len() < first.len() {
                    "indentation level is too low"
                } else {
                    "extra indentation level found"
                };
                return Err(error(message));
            }
        }
        if content.starts_with('#') {
            return Ok(());
        }
        let Some((key, value)) = content.split_once(' ') else {
            return Err(error(&format!(
                "undefined value for key {:?}",
                content.trim()
            )));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(error(&format!("key {:?} has an empty value", key.trim())));
        }
        let value = expand(value, &self.set, self.env, &mut self.out.unset_variables);
        section.entries.push((key.trim().to_string(), value));
        Ok(())
    }

    fn include(
        &mut self,
        pattern: &str,
        at: &str,
        dir: &Path,
        depth: usize,
    ) -> Result<(), ClassicError> {
        let error = |message: String| ClassicError {
            at: at.to_string(),
            message,
        };
        let candidates: Vec<PathBuf> = if Path::new(pattern).is_absolute() {
            vec![PathBuf::from(pattern)]
        } else {
            vec![dir.join(pattern), PathBuf::from(pattern)]
        };
        if pattern.contains('*') {
            for candidate in &candidates {
                let text = candidate.to_string_lossy();
                let paths: Vec<PathBuf> = glob::glob(&text)
                    .map_err(|e| error(format!("@INCLUDE {pattern}: {e}")))?
                    .filter_map(Result::ok)
                    .collect();
                if !paths.is_empty() {
                    for path in paths {
                        self.file(&path, depth + 1)?;
                    }
                    return Ok(());
                }
            }
            // A glob that matches nothing includes nothing, as glob(3) does.
            return Ok(());
        }
        match candidates.iter().find(|p| p.exists()) {
            Some(path) => self.file(&path.clone(), depth + 1),
            None => Err(error(format!("@INCLUDE {pattern}: no such file"))),
        }
    }

    fn close_section(&mut self) {
        if let Some((section, _)) = self.current.take() {
            self.out.sections.push(section);
        }
    }
}

/// `${VAR}` from `set`, else `env`, else "" (noted in `unset`).
fn expand(
    value: &str,
    set: &HashMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find("${") {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 2..open + close];
        match set.get(name).cloned().or_else(|| env(name)) {
            Some(v) => out.push_str(&v),
            None => {
                if !unset.iter().any(|u| u == name) {
                    unset.push(name.to_string());
                }
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A plugin's On/Off option; `Err` names the plugin, the option and the
/// value (`[INPUT] exec Oneshot "x" is not On or Off`).
pub fn on_off(plugin: &str, key: &str, value: &str) -> Result<bool, String> {
    crate::config::layer::fluent_bool(value)
        .ok_or_else(|| format!("{plugin} {key} {value:?} is not On or Off"))
}

/// A plugin's whole-number option, as [`on_off`] names a wrong one.
pub fn whole_number(plugin: &str, key: &str, value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{plugin} {key} {value:?} is not a whole number"))
}

/// A value split as `flb_slist_split_tokens` splits it (a multiline
/// parser's `rule`, a rewrite_tag `Rule`): space-separated tokens; a token that starts with `"` runs to the next
/// `"` not after a `\`, and `\"` in it is `"` (nothing else is unescaped:
/// a regex's `\s` stays). After `max` tokens the rest is one more.
pub fn split_tokens(value: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value.trim_start_matches(' ');
    while !rest.is_empty() {
        if out.len() == max {
            out.push(rest.to_string());
            break;
        }
        let (token, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let bytes = quoted.as_bytes();
                let end = (0..bytes.len())
                    .find(|&i| bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\'));
                match end {
                    Some(end) => (quoted[..end].replace("\\\"", "\""), &quoted[end + 1..]),
                    // No closing quote: the rest, as written.
                    None => (quoted.to_string(), ""),
                }
            }
            None => {
                let end = rest.find(' ').unwrap_or(rest.len());
                (rest[..end].to_string(), &rest[end..])
            }
        };
        out.push(token);
        rest = after.trim_start_matches(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_as_fluent_bit_splits_them() {
        assert_eq!(
            split_tokens(
                r#"  "start_state"   "/(Dec \d+ \d+\:\d+\:\d+)(.*)/"  "cont""#,
                3
            ),
            ["start_state", r"/(Dec \d+ \d+\:\d+\:\d+)(.*)/", "cont"]
        );
        assert_eq!(
            split_tokens(r#"cont /^\s+at.*/ cont"#, 3),
            ["cont", r"/^\s+at.*/", "cont"]
        );
        assert_eq!(
            split_tokens(r#""a" "say \"hi\"" "b""#, 3),
            ["a", r#"say "hi""#, "b"]
        );
        assert_eq!(
            split_tokens(r#""a" "x y" "b" "end" more"#, 3),
            ["a", "x y", "b", r#""end" more"#]
        );
        assert_eq!(split_tokens(r#""a" "open"#, 3), ["a", "open"]);
    }

    /// A directory of the test's own, removed when dropped.
    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("sluice-classic-")
            .tempdir()
            .unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn entries(s: &Section) -> Vec<(&str, &str)> {
        s.entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The agent's unit-test output (shared/firelens.md §1.6), verbatim.
    const GENERATED: &str = "\n[INPUT]\n    Name forward\n    Mem_Buf_Limit 50MB\n    unix_path /var/run/fluent.sock\n\n[INPUT]\n    Name forward\n    Listen 0.0.0.0\n    Port 24224\n\n[INPUT]\n    Name tcp\n    Tag firelens-healthcheck\n    Listen 127.0.0.1\n    Port 8877\n\n[FILTER]\n    Name   grep\n    Match container-firelens*\n    Regex  log *failure*\n\n[FILTER]\n    Name   grep\n    Match container-firelens*\n    Exclude log *success*\n\n[FILTER]\n    Name record_modifier\n    Match *\n    Record ec2_instance_id i-123456789a\n    Record ecs_cluster mycluster\n    Record ecs_task_arn arn:aws:ecs:us-east-2:01234567891011:task/mycluster/3de392df-6bfa-470b-97ed-aa6f482cd7a\n    Record ecs_task_definition taskdefinition:1\n\n[OUTPUT]\n    Name null\n    Match firelens-healthcheck\n\n[OUTPUT]\n    Name kinesis_firehose\n    Match container-firelens*\n    deliver_stream_name my-stream\n    region us-west-2\n";

    #[test]
    fn the_agents_generated_file() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("fluent-bit.conf");
        std::fs::write(&path, GENERATED).unwrap();
        let c = read(&path, &no_env).unwrap();
        let kinds: Vec<&str> = c.sections.iter().map(|s| s.kind.name()).collect();
        assert_eq!(
            kinds,
            ["INPUT", "INPUT", "INPUT", "FILTER", "FILTER", "FILTER", "OUTPUT", "OUTPUT"]
        );
        assert_eq!(
            entries(&c.sections[0]),
            [
                ("Name", "forward"),
                ("Mem_Buf_Limit", "50MB"),
                ("unix_path", "/var/run/fluent.sock")
            ]
        );
        assert_eq!(
            entries(&c.sections[3]),
            [
                ("Name", "grep"),
                ("Match", "container-firelens*"),
                ("Regex", "log *failure*")
            ]
        );
        let records: Vec<&str> = c.sections[5].all("record").collect();
        assert_eq!(records.len(), 4);
        assert_eq!(records[1], "ecs_cluster mycluster");
        assert_eq!(c.sections[7].plugin(), "kinesis_firehose");
        assert_eq!(c.sections[7].get("REGION"), Some("us-west-2"));
        assert_eq!(c.sections[0].at, format!("{}:2", path.display()));
    }

    #[test]
    fn includes_sets_variables_and_comments() {
        let tmp = dir();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("main.conf"),
            "@SET group=/ecs/app\n# a comment\n[SERVICE]\n\tFlush 1\n\t# an indented comment\n@INCLUDE conf.d/*.conf\n[OUTPUT]\n\tName cloudwatch_logs\n\tlog_group_name ${group}\r\n\tlog_stream_prefix ${PREFIX}-\n\tlog_key ${MISSING}x\n",
        )
        .unwrap();
        std::fs::write(
            d.join("conf.d/a.conf"),
            "[FILTER]\n  Name grep\n  Match *\n  Exclude log ^DEBUG\n",
        )
        .unwrap();
        let env = |name: &str| (name == "PREFIX").then(|| "from-env".to_string());
        let c = read(&d.join("main.conf"), &env).unwrap();
        assert_eq!(c.sections.len(), 3);
        assert_eq!(c.sections[0].kind, SectionKind::Service);
        assert_eq!(c.sections[1].get("exclude"), Some("log ^DEBUG"));
        assert_eq!(
            entries(&c.sections[2]),
            [
                ("Name", "cloudwatch_logs"),
                ("log_group_name", "/ecs/app"),
                ("log_stream_prefix", "from-env-"),
                ("log_key", "x"),
            ]
        );
        assert_eq!(c.unset_variables, ["MISSING"]);
    }

    proptest::proptest! {
        /// Any text, hostile or not: an error or sections, never a panic.
        #[test]
        fn any_text_reads_without_panicking(text in "(\\PC|[\\[\\]@ \t#$\\{\\}\\n])*") {
            let tmp = dir();
        let d = tmp.path();
            let path = d.join("any.conf");
            std::fs::write(&path, &text).unwrap();
            let _ = read(&path, &|_| Some("x".to_string()));
        }
    }

    #[test]
    fn multibyte_text_where_a_command_would_be() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("utf8.conf");
        std::fs::write(&path, "ééééé\n@INCLUDEé\n").unwrap();
        let e = read(&path, &no_env).unwrap_err();
        assert_eq!(
            e.message,
            "a key outside a section, or a section without '['"
        );
    }

    #[test]
    fn errors_say_where() {
        let tmp = dir();
        let d = tmp.path();
        let cases = [
            (
                "[INPUT]\n    Name forward\n  Port 1\n",
                "3: indentation level is too low",
            ),
            (
                "[INPUT]\n    Name forward\n\tPort 1\n",
                "3: inconsistent use of tab and space",
            ),
            (
                "[INPUT]\n    Name forward\n      Port 1\n",
                "3: extra indentation level found",
            ),
            ("[INPUT]\n    Name\n", "2: undefined value for key \"Name\""),
            ("[OUTPUTS\n", "1: a section header needs its ']'"),
            ("[KAFKA]\n", "1: unknown section [KAFKA]"),
            (
                "Name forward\n",
                "1: a key outside a section, or a section without '['",
            ),
            (
                "@INCLUDE nowhere.conf\n",
                "1: @INCLUDE nowhere.conf: no such file",
            ),
            (
                "@UNSET x\n",
                "1: unknown command: only @INCLUDE and @SET exist",
            ),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let path = d.join(format!("{i}.conf"));
            std::fs::write(&path, text).unwrap();
            let e = read(&path, &no_env).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{}:{want}", path.display()),
                "{text}"
            );
        }
        let path = d.join("self.conf");
        std::fs::write(&path, "@INCLUDE self.conf\n").unwrap();
        let e = read(&path, &no_env).unwrap_err();
        assert_eq!(e.message, "file already included");
    }
}
