//! `[FILTER] rewrite_tag`, as `plugins/filter_rewrite_tag/rewrite_tag.c`
//! (v5.1.1) applies it.
//!
//! Each `Rule $KEY REGEX NEW_TAG KEEP` is tried in order; the first whose
//! regex matches the key's string value sends a copy of the record, with
//! the new tag, through the filters again (Fluent Bit's emitter input),
//! and the original goes on only when KEEP is true. The new tag is a
//! record-accessor template: `$TAG`, `$TAG[n]`, `$key`, `$key['sub']`, and
//! the match's captures `$0` to `$9`; what is missing is left out.

use regex::Regex;
use sluice_firelens::Record;

use super::classic::{split_tokens, Section};
use super::onig;
use super::template::{key_path, string_at, Template, TemplateInput};
use crate::config::layer::fluent_bool;

#[derive(Debug)]
pub struct RewriteTag {
    pub rules: Vec<Rule>,
    /// `Emitter_Name`: the name of the input Fluent Bit sends the copies
    /// through, under which its plugin metrics count them.
    pub emitter_name: Option<String>,
}

#[derive(Debug)]
pub struct Rule {
    /// The key, then subkeys (`$kubernetes['labels']['app']`).
    pub key: Vec<String>,
    pub regex: Regex,
    pub tag: Template,
    /// Whether the record goes on with its own tag too.
    pub keep: bool,
}

/// What a matching rule does to a record.
#[derive(Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub tag: String,
    pub keep: bool,
}

impl RewriteTag {
    /// The filter's options; every problem at once. `notes` takes the
    /// options that do not apply.
    pub fn from_section(
        section: &Section,
        notes: &mut Vec<String>,
    ) -> Result<RewriteTag, Vec<String>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut emitter_name = None;
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "rule" => match rule(value) {
                    Ok(r) => rules.push(r),
                    Err(e) => errors.push(format!("[FILTER] rewrite_tag Rule {value}: {e}")),
                },
                "emitter_name" => emitter_name = Some(value.clone()),
                "emitter_storage.type" | "emitter_mem_buf_limit" => {
                    notes.push(format!(
                        "{}: [FILTER] rewrite_tag {key} does not apply: Sluice passes a rewritten record straight on, bounded by limits.memory",
                        section.at
                    ))
                }
                "name" | "match" | "match_regex" | "alias" => {}
                _ => errors.push(format!(
                    "[FILTER] rewrite_tag has no option {key}; it takes Rule, Emitter_Name, Emitter_Storage.type, Emitter_Mem_Buf_Limit"
                )),
            }
        }
        if rules.is_empty() && errors.is_empty() {
            notes.push(format!(
                "{}: [FILTER] rewrite_tag has no Rule: it changes nothing",
                section.at
            ));
        }
        if errors.is_empty() {
            Ok(RewriteTag {
                rules,
                emitter_name,
            })
        } else {
            Err(errors)
        }
    }

    /// The first rule that matches `record`, with the new tag filled.
    pub fn apply(&self, tag: &str, record: &Record) -> Option<Rewrite> {
        self.rules.iter().find_map(|rule| {
            let value = string_at(record, &rule.key)?;
            let captures = rule.regex.captures(value)?;
            let input = TemplateInput {
                tag,
                record,
                task_id: None,
                cluster: None,
                task_arn: None,
                captures: Some(&captures),
            };
            Some(Rewrite {
                tag: rule.tag.fill_lenient(&input),
                keep: rule.keep,
            })
        })
    }
}

fn rule(value: &str) -> Result<Rule, String> {
    let tokens = split_tokens(value, 4);
    let [key, pattern, tag, keep, ..] = tokens.as_slice() else {
        return Err("needs four parts: $KEY REGEX NEW_TAG KEEP".into());
    };
    let key = key_path(key)?;
    let regex = onig::regex(pattern)
        .map_err(|e| format!("{pattern:?} is not a regular expression Sluice can use: {e}"))?;
    let tag = Template::record_accessor(tag)?;
    let keep = fluent_bool(keep).ok_or_else(|| format!("KEEP {keep:?} is not true or false"))?;
    Ok(Rule {
        key,
        regex,
        tag,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    fn filter(rules: &[&str]) -> Result<RewriteTag, Vec<String>> {
        let section = Section {
            kind: SectionKind::Filter,
            at: "f.conf:1".into(),
            entries: [
                ("Name", "rewrite_tag"),
                ("Match", "*"),
                ("Emitter_Name", "re"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(rules.iter().map(|r| ("Rule".to_string(), r.to_string())))
            .collect(),
        };
        let mut notes = Vec::new();
        let filter = RewriteTag::from_section(&section, &mut notes)?;
        // Emitter_Name names the copies' input in the plugin metrics.
        assert_eq!(notes, Vec::<String>::new());
        assert_eq!(filter.emitter_name.as_deref(), Some("re"));
        Ok(filter)
    }

    use crate::fluentbit::tests::record;

    #[test]
    fn the_first_matching_rule_names_the_new_tag() {
        let f = filter(&[
            r"$log ^(ERROR|FATAL)\b errors.$1.$TAG[0] false",
            r#"$kubernetes['labels']['app'] "^(web|api)$" app.$1.$level true"#,
        ])
        .unwrap();
        let rewrite = |tag: &str, json: &str| f.apply(tag, &record(json));
        assert_eq!(
            rewrite("app-firelens-1", r#"{"log":"ERROR disk full"}"#),
            Some(Rewrite {
                tag: "errors.ERROR.app-firelens-1".into(),
                keep: false
            })
        );
        assert_eq!(
            rewrite(
                "t",
                r#"{"log":"ok","level":"info","kubernetes":{"labels":{"app":"web"}}}"#
            ),
            Some(Rewrite {
                tag: "app.web.info".into(),
                keep: true
            })
        );
        // A missing key, or a value that is not a string: no rule matches.
        assert_eq!(rewrite("t", r#"{"msg":"ERROR x"}"#), None);
        assert_eq!(rewrite("t", r#"{"log":{"ERROR":1}}"#), None);
        assert_eq!(rewrite("t", r#"{"log":"INFO x"}"#), None);
    }

    #[test]
    fn malformed_rules_are_refused() {
        let errors = filter(&[
            "$log ^x",
            "$log (?<=a)b t false",
            "$log ^x t maybe",
            "$ ^x t true",
            "$a['b' ^x t true",
        ])
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "[FILTER] rewrite_tag Rule $log ^x: needs four parts: $KEY REGEX NEW_TAG KEEP",
                "[FILTER] rewrite_tag Rule $log (?<=a)b t false: \"(?<=a)b\" is not a regular expression Sluice can use: regex parse error:\n    (?<=a)b\n    ^^^^\nerror: look-around, including look-ahead and look-behind, is not supported",
                "[FILTER] rewrite_tag Rule $log ^x t maybe: KEEP \"maybe\" is not true or false",
                "[FILTER] rewrite_tag Rule $ ^x t true: \"$\" names no key",
                "[FILTER] rewrite_tag Rule $a['b' ^x t true: \"$a['b'\": a '[' without ']' in \"['b'\"",
            ]
        );
    }
}
