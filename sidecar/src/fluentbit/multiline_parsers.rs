//! `[MULTILINE_PARSER]` sections, read as Fluent Bit reads them
//! (`flb_parser_load_multiline_parser_definitions` and
//! `multiline_load_regex_rules` in `src/flb_parser.c`, v5.1.1).
//!
//! Fluent Bit checks every definition at start, used or not: a missing
//! `name` or `type`, an unknown type, or rules that do not link stop it,
//! and stop Sluice. A `[FILTER] multiline` may then name a parser, which
//! Sluice's joiner runs ([`StateRules`]): `type regex` with its rules, or
//! `type endswith` / `equal` with `match_string` and `negate`. One that
//! pre-parses its lines (`parser`) or reads other keys (`key_pattern`,
//! `key_group`, `key_content`) is refused when a filter names it. Fluent
//! Bit's built-in `ruby` parser, of type regex, can be named too, with its
//! rules; a definition of that name replaces it.

use std::sync::Arc;

use super::classic::{split_tokens, Section};
use super::onig;
use crate::config::layer::fluent_bool;
use crate::config::ConfigError;
use crate::multiline::state_rules::{RuleSpec, StateRules, Terminator};

/// `flush_timeout` when it is not given, or not above 0
/// (`FLB_ML_FLUSH_TIMEOUT`).
const DEFAULT_FLUSH_TIMEOUT_MS: i64 = 4000;

/// One definition.
#[derive(Debug)]
struct Defined {
    name: String,
    at: String,
    /// The rules, or why a filter cannot use this parser.
    usable: Result<Arc<StateRules>, String>,
}

/// Every `[MULTILINE_PARSER]` of a configuration.
#[derive(Debug, Default)]
pub struct MultilineParsers {
    defined: Vec<Defined>,
}

impl MultilineParsers {
    /// Reads the sections; every malformed one is an error.
    pub fn read<'a>(
        sections: impl Iterator<Item = &'a Section>,
    ) -> Result<MultilineParsers, Vec<ConfigError>> {
        let mut parsers = MultilineParsers::default();
        let mut errors = Vec::new();
        for section in sections {
            match define(section) {
                Ok(defined) => parsers.defined.push(defined),
                Err(message) => errors.push(ConfigError {
                    key: section.at.clone(),
                    message: format!("[MULTILINE_PARSER] {message}"),
                }),
            }
        }
        if errors.is_empty() {
            Ok(parsers)
        } else {
            Err(errors)
        }
    }

    /// The parser named `name`, the last defined with that name, else a
    /// built-in one: `None` when there is none, `Err` when a filter cannot
    /// use it.
    pub fn get(&self, name: &str) -> Option<Result<Arc<StateRules>, String>> {
        self.defined
            .iter()
            .rev()
            .find(|d| d.name == name)
            .map(|d| d.usable.clone())
            .or_else(|| built_in(name).map(Ok))
    }

    /// Each definition's name and where it is.
    pub fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.defined
            .iter()
            .map(|d| (d.name.as_str(), d.at.as_str()))
    }
}

/// Fluent Bit's built-in parsers of type regex that Sluice's own
/// `[multiline]` rules do not cover: `ruby`
/// (`src/multiline/flb_ml_parser_ruby.c`), its rules and wait as written
/// there.
fn built_in(name: &str) -> Option<Arc<StateRules>> {
    if name != "ruby" {
        return None;
    }
    let specs = [
        (
            "start_state, ruby_start_exception",
            r"/^.+:\d+:in\s+.*/",
            "ruby_after_exception",
        ),
        (
            "ruby_after_exception, ruby",
            r"/^\s+from\s+.*:\d+:in\s+.*/",
            "ruby",
        ),
    ]
    .iter()
    .map(|(from, pattern, to)| {
        rule(&format!("\"{from}\" \"{pattern}\" \"{to}\"")).expect("a built-in rule reads")
    })
    .collect();
    let rules = StateRules::new(name, specs, DEFAULT_FLUSH_TIMEOUT_MS * 1_000_000)
        .expect("the built-in rules link");
    Some(Arc::new(rules))
}

fn define(section: &Section) -> Result<Defined, String> {
    let name = section.get("name").ok_or("has no name")?.to_string();
    let kind = section
        .get("type")
        .ok_or_else(|| format!("{name} has no type"))?
        .to_ascii_lowercase();
    if !matches!(kind.as_str(), "regex" | "endswith" | "equal" | "eq") {
        return Err(format!(
            "{name}: type {kind} is not a multiline parser type (regex, endswith, equal)"
        ));
    }
    let wait_ms = match section.get("flush_timeout") {
        None => DEFAULT_FLUSH_TIMEOUT_MS,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(ms) if ms > 0 => ms,
            Ok(_) => DEFAULT_FLUSH_TIMEOUT_MS,
            Err(_) => {
                return Err(format!(
                    "{name}: flush_timeout {text:?} is not a number of milliseconds"
                ))
            }
        },
    };
    let negate = match section.get("negate") {
        None => false,
        Some(v) => {
            fluent_bool(v).ok_or_else(|| format!("{name}: negate {v:?} is not true or false"))?
        }
    };
    // Rules are read, and must link, for a regex parser only (as in
    // Fluent Bit, which ignores `rule` keys of other types).
    let rules = if kind == "regex" {
        let specs = section
            .all("rule")
            .map(|value| rule(value).map_err(|e| format!("{name}: rule {value}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Some(
            StateRules::new(&name, specs, wait_ms.saturating_mul(1_000_000))
                .map_err(|e| format!("{name}: {e}"))?,
        )
    } else {
        None
    };
    let rules = match rules {
        Some(rules) => Ok(rules),
        // Fluent Bit would read past a missing string when a line came.
        None => match section.get("match_string") {
            None => Err(format!("type {kind} needs a match_string")),
            Some(text) => Ok(StateRules::terminated(
                &name,
                Terminator {
                    text: text.to_string(),
                    equal: kind != "endswith",
                    negate,
                },
                wait_ms.saturating_mul(1_000_000),
            )),
        },
    };
    let usable =
        rules.and_then(|rules| unsupported_key(section).map_or_else(|| Ok(Arc::new(rules)), Err));
    Ok(Defined {
        name,
        at: section.at.clone(),
        usable,
    })
}

/// A key that changes what the parser reads, which Sluice's joiner (the
/// text of `log`, as written) does not do.
fn unsupported_key(section: &Section) -> Option<String> {
    for (key, value) in &section.entries {
        match key.to_ascii_lowercase().as_str() {
            "parser" => {
                return Some(format!(
                    "parser {value}: Sluice joins the lines as they are, without parsing them first"
                ))
            }
            "key_pattern" | "key_group" => {
                return Some(format!("{key} {value}: Sluice matches and joins `log`"))
            }
            "key_content" if value != "log" => {
                return Some(format!(
                    "key_content {value}: Sluice joins the lines of `log`"
                ))
            }
            _ => {}
        }
    }
    None
}

/// `rule "from" "/regex/" "to"`: tokens split as `flb_slist_split_tokens`
/// splits them.
fn rule(value: &str) -> Result<RuleSpec, String> {
    let tokens = split_tokens(value, 3);
    let mut tokens = tokens.into_iter();
    let from = tokens.next().ok_or("needs a from-state")?;
    let pattern = tokens.next().ok_or("needs a regular expression")?;
    let to = tokens.next();
    let regex = onig::regex(&pattern)
        .map_err(|e| format!("{pattern:?} is not a regular expression Sluice can use: {e}"))?;
    Ok(RuleSpec {
        from: from
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        regex,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    fn section(entries: &[(&str, &str)]) -> Section {
        Section {
            kind: SectionKind::MultilineParser,
            at: "parsers.conf:1".into(),
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn read(sections: &[Section]) -> Result<MultilineParsers, Vec<String>> {
        MultilineParsers::read(sections.iter())
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn aws_s_example_reads_and_runs() {
        let parsers = read(&[section(&[
            ("name", "multiline-regex-test"),
            ("type", "regex"),
            ("flush_timeout", "1000"),
            (
                "rule",
                r#""start_state"   "/(Dec \d+ \d+\:\d+\:\d+)(.*)/"  "cont""#,
            ),
            (
                "rule",
                r#""cont"          "/^\s+at.*/"                     "cont""#,
            ),
        ])])
        .unwrap();
        let rules = parsers.get("multiline-regex-test").unwrap().unwrap();
        assert_eq!(rules.rule_count(), 2);
        assert_eq!(rules.wait_ns(), 1_000_000_000);
        assert_eq!(rules.start("Dec 14 06:41:08 Exception in thread"), Some(0));
        assert_eq!(rules.next(0, "    at com.myproject.Main"), Some(1));
        assert!(parsers.get("other").is_none());
        assert_eq!(
            parsers.names().collect::<Vec<_>>(),
            [("multiline-regex-test", "parsers.conf:1")]
        );
    }

    #[test]
    fn fluent_bit_s_ruby_parser_is_built_in() {
        let none = read(&[]).unwrap();
        let ruby = none.get("ruby").unwrap().unwrap();
        assert_eq!((ruby.name(), ruby.rule_count()), ("ruby", 2));
        assert_eq!(ruby.wait_ns(), 4_000_000_000);
        let trace = [
            "/app/models/order.rb:12:in `total': undefined method `+' for nil (NoMethodError)",
            "\tfrom /app/controllers/orders_controller.rb:8:in `show'",
            "\tfrom /usr/lib/ruby/3.2.0/benchmark.rb:311:in `realtime'",
        ];
        let start = ruby.start(trace[0]).unwrap();
        let first = ruby.next(start, trace[1]).unwrap();
        let second = ruby.next(first, trace[2]).unwrap();
        assert!(!ruby.ends(second));
        assert_eq!(ruby.next(second, "Started GET \"/orders/7\""), None);
        assert_eq!(ruby.start("Started GET \"/orders/7\""), None);
        // A definition of that name replaces it.
        let own = read(&[section(&[
            ("name", "ruby"),
            ("type", "regex"),
            ("rule", r#""start_state" "/^E, /""#),
        ])])
        .unwrap();
        assert_eq!(own.get("ruby").unwrap().unwrap().rule_count(), 1);
    }

    #[test]
    fn flush_timeout_defaults_as_fluent_bit_s() {
        let rule = ("rule", r#""start_state" "/^a/""#);
        for (timeout, ms) in [
            (None, 4000),
            (Some("0"), 4000),
            (Some("-5"), 4000),
            (Some("250"), 250),
        ] {
            let mut entries = vec![("name", "p"), ("type", "regex"), rule];
            entries.extend(timeout.map(|t| ("flush_timeout", t)));
            let rules = read(&[section(&entries)])
                .unwrap()
                .get("p")
                .unwrap()
                .unwrap();
            assert_eq!(rules.wait_ns(), ms * 1_000_000, "{timeout:?}");
        }
    }

    #[test]
    fn malformed_definitions_stop_the_start() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("type", "regex")], "has no name"),
            (&[("name", "p")], "p has no type"),
            (&[("name", "p"), ("type", "lines")], "p: type lines is not a multiline parser type (regex, endswith, equal)"),
            (&[("name", "p"), ("type", "regex"), ("flush_timeout", "1s")], "p: flush_timeout \"1s\" is not a number of milliseconds"),
            (&[("name", "p"), ("type", "regex"), ("rule", r#""start_state" "/(?<=a)b/" "x""#)], "p: rule \"start_state\" \"/(?<=a)b/\" \"x\": \"/(?<=a)b/\" is not a regular expression Sluice can use: regex parse error:\n    (?<=a)b\n    ^^^^\nerror: look-around, including look-ahead and look-behind, is not supported"),
            (&[("name", "p"), ("type", "regex"), ("rule", r#""start_state" "/a/" "cont""#)], "p: the rule from \"start_state\" goes to state \"cont\", which no rule leaves from"),
        ];
        for (entries, message) in cases {
            assert_eq!(
                read(&[section(entries)]).unwrap_err(),
                [format!("parsers.conf:1: [MULTILINE_PARSER] {message}")],
                "{entries:?}"
            );
        }
        // A regex parser with no rule: refused, as Fluent Bit refuses it.
        assert_eq!(
            read(&[section(&[("name", "p"), ("type", "regex")])]).unwrap_err(),
            ["parsers.conf:1: [MULTILINE_PARSER] p: has no rule"]
        );
    }

    #[test]
    fn endswith_and_equal_parsers_end_messages_with_their_string() {
        let parsers = read(&[
            section(&[
                ("name", "continued"),
                ("type", "endswith"),
                ("match_string", "\\"),
                ("negate", "true"),
                ("flush_timeout", "500"),
            ]),
            section(&[("name", "until"), ("type", "eq"), ("match_string", "END")]),
        ])
        .unwrap();
        let continued = parsers.get("continued").unwrap().unwrap();
        assert_eq!(continued.describe(), "of type endswith \"\\\\\", negated");
        assert_eq!(continued.wait_ns(), 500_000_000);
        assert_eq!(continued.separator(), "");
        // Lines ending with `\` go on; the first that does not ends it.
        assert_eq!(continued.start("a \\"), Some(0));
        assert_eq!(continued.next(0, "b"), Some(1));
        assert!(continued.ends(1));
        let until = parsers.get("until").unwrap().unwrap();
        assert_eq!(until.describe(), "of type equal \"END\"");
        assert_eq!(until.next(0, "END"), Some(1));
        assert_eq!(
            read(&[section(&[
                ("name", "p"),
                ("type", "endswith"),
                ("negate", "perhaps")
            ])])
            .unwrap_err(),
            ["parsers.conf:1: [MULTILINE_PARSER] p: negate \"perhaps\" is not true or false"]
        );
    }

    #[test]
    fn parsers_sluice_cannot_run_are_refused_when_named() {
        let parsers = read(&[
            section(&[("name", "ends"), ("type", "endswith")]),
            section(&[
                ("name", "pre"),
                ("type", "regex"),
                ("parser", "json"),
                ("rule", r#""start_state" "/a/""#),
            ]),
            section(&[
                ("name", "other"),
                ("type", "regex"),
                ("key_content", "message"),
                ("rule", r#""start_state" "/a/""#),
            ]),
        ])
        .unwrap();
        assert_eq!(
            parsers.get("ends").unwrap().unwrap_err(),
            "type endswith needs a match_string"
        );
        assert_eq!(
            parsers.get("pre").unwrap().unwrap_err(),
            "parser json: Sluice joins the lines as they are, without parsing them first"
        );
        assert_eq!(
            parsers.get("other").unwrap().unwrap_err(),
            "key_content message: Sluice joins the lines of `log`"
        );
    }
}
