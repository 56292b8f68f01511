//! `[FILTER] modify`, as `plugins/filter_modify/modify.c` applies it: when
//! every `Condition` holds, each rule in the order written. A record here
//! has one value per key, so the rules' cases for repeated keys do not
//! arise.
//!
//! Options are split as Fluent Bit splits them: on spaces, a `"…"` part
//! taken whole (`Set message "two words"`).

use regex::Regex;
use serde_json::Value as Json;
use sluice_firelens::{FieldValue, Record};

/// The filter: its conditions (all must hold) and rules, in order.
#[derive(Debug, Default)]
pub struct Modify {
    pub conditions: Vec<Condition>,
    pub rules: Vec<Rule>,
}

#[derive(Debug)]
pub enum Rule {
    /// `Set KEY VALUE`: the key set, whatever it held.
    Set(String, String),
    /// `Add KEY VALUE`: the key set when the record lacks it.
    Add(String, String),
    Remove(String),
    /// `Remove_wildcard PREFIX`: every key that starts with it.
    RemoveWildcard(String),
    RemoveRegex(Regex),
    /// `Rename KEY NEW`: only when the record lacks NEW.
    Rename(String, String),
    /// `Hard_rename KEY NEW`: NEW replaced.
    HardRename(String, String),
    /// `Copy KEY NEW`: only when the record lacks NEW.
    Copy(String, String),
    /// `Hard_copy KEY NEW`: NEW replaced.
    HardCopy(String, String),
}

#[derive(Debug)]
pub enum Condition {
    KeyExists(String),
    KeyDoesNotExist(String),
    AKeyMatches(Regex),
    NoKeyMatches(Regex),
    /// The key holds this string.
    KeyValueEquals(String, String),
    /// The key exists and does not hold this string.
    KeyValueDoesNotEqual(String, String),
    /// The key holds a string the regex matches.
    KeyValueMatches(String, Regex),
    /// The key exists and holds no string the regex matches.
    KeyValueDoesNotMatch(String, Regex),
    /// Every key the first regex matches holds a string the second matches
    /// (and there is at least one such key).
    MatchingKeysHaveMatchingValues(Regex, Regex),
    MatchingKeysDoNotHaveMatchingValues(Regex, Regex),
}

impl Modify {
    /// Reads one option of the section; `Ok(false)` when `key` is not one
    /// of modify's.
    pub fn option(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let lower = key.to_ascii_lowercase();
        if lower == "condition" {
            self.conditions.push(condition(value)?);
            return Ok(true);
        }
        let parts = split_quoted(value)?;
        let one = || match parts.as_slice() {
            [k] => Ok(k.clone()),
            _ => Err(format!("{key} takes one KEY, got {value:?}")),
        };
        let two = || match parts.as_slice() {
            [k, v] => Ok((k.clone(), v.clone())),
            _ => Err(format!("{key} takes KEY VALUE, got {value:?}")),
        };
        let rule = match lower.as_str() {
            "set" => two().map(|(k, v)| Rule::Set(k, v))?,
            "add" | "add_if_not_present" => two().map(|(k, v)| Rule::Add(k, v))?,
            "remove" => Rule::Remove(one()?),
            "remove_wildcard" => Rule::RemoveWildcard(one()?),
            "remove_regex" => Rule::RemoveRegex(regex(key, &one()?)?),
            "rename" => two().map(|(k, v)| Rule::Rename(k, v))?,
            "hard_rename" => two().map(|(k, v)| Rule::HardRename(k, v))?,
            "copy" => two().map(|(k, v)| Rule::Copy(k, v))?,
            "hard_copy" => two().map(|(k, v)| Rule::HardCopy(k, v))?,
            _ => return Ok(false),
        };
        self.rules.push(rule);
        Ok(true)
    }

    /// Applies the rules to `record` when every condition holds.
    pub fn apply(&self, record: &mut Record) {
        if !self.conditions.iter().all(|c| c.holds(record)) {
            return;
        }
        for rule in &self.rules {
            apply(rule, record);
        }
    }
}

fn apply(rule: &Rule, record: &mut Record) {
    let copy = |record: &mut Record, from: &str, to: &str, replace: bool, remove: bool| {
        let Some(value) = record.get(from).map(FieldValue::to_json) else {
            return;
        };
        if !replace && record.contains_key(to) {
            return;
        }
        if remove {
            record.remove(from);
        }
        record.insert_json(to, value);
    };
    match rule {
        Rule::Set(key, value) => record.insert(key, value.as_str()),
        Rule::Add(key, value) => {
            if !record.contains_key(key) {
                record.insert(key, value.as_str());
            }
        }
        Rule::Remove(key) => {
            record.remove(key);
        }
        Rule::RemoveWildcard(prefix) => record.retain(|k| !k.starts_with(prefix.as_str())),
        Rule::RemoveRegex(re) => record.retain(|k| !re.is_match(k)),
        Rule::Rename(from, to) => copy(record, from, to, false, true),
        Rule::HardRename(from, to) => copy(record, from, to, true, true),
        Rule::Copy(from, to) => copy(record, from, to, false, false),
        Rule::HardCopy(from, to) => copy(record, from, to, true, false),
    }
}

impl Condition {
    fn holds(&self, record: &Record) -> bool {
        let string = |key: &str| record.get_str(key);
        let matches = |key: &str, re: &Regex| record.get(key).is_some_and(|v| value_matches(v, re));
        let a_key_matches = |re: &Regex| record.iter().any(|(k, _)| re.is_match(k));
        match self {
            Condition::KeyExists(key) => record.contains_key(key),
            Condition::KeyDoesNotExist(key) => !record.contains_key(key),
            Condition::AKeyMatches(re) => a_key_matches(re),
            Condition::NoKeyMatches(re) => !a_key_matches(re),
            Condition::KeyValueEquals(key, value) => string(key) == Some(value.as_str()),
            Condition::KeyValueDoesNotEqual(key, value) => {
                record.contains_key(key) && string(key) != Some(value.as_str())
            }
            Condition::KeyValueMatches(key, re) => matches(key, re),
            Condition::KeyValueDoesNotMatch(key, re) => {
                record.contains_key(key) && !matches(key, re)
            }
            Condition::MatchingKeysHaveMatchingValues(keys, values) => {
                matching_values(record, keys, values)
            }
            Condition::MatchingKeysDoNotHaveMatchingValues(keys, values) => {
                !matching_values(record, keys, values)
            }
        }
    }
}

/// Fluent Bit's `MATCHING_KEYS_HAVE_MATCHING_VALUES`: every key that
/// `keys` matches holds a value that `values` matches (so a record with no
/// such key has them, as modify.c finds).
fn matching_values(record: &Record, keys: &Regex, values: &Regex) -> bool {
    record
        .iter()
        .all(|(key, value)| !keys.is_match(key) || value_matches(value, values))
}

fn condition(value: &str) -> Result<Condition, String> {
    let parts = split_quoted(value)?;
    let (kind, args) = parts
        .split_first()
        .ok_or_else(|| "Condition needs a condition and its arguments".to_string())?;
    let key = |name: &str| -> Result<String, String> {
        if name.starts_with('$') || name.contains('[') {
            return Err(format!(
                "Condition {kind} {name}: Sluice reads top-level keys by name, not record accessors"
            ));
        }
        Ok(name.to_string())
    };
    let re = |pattern: &str| regex(&format!("Condition {kind}"), pattern);
    let c = match (kind.to_ascii_lowercase().as_str(), args) {
        ("key_exists", [k]) => Condition::KeyExists(key(k)?),
        ("key_does_not_exist", [k]) => Condition::KeyDoesNotExist(key(k)?),
        ("a_key_matches", [r]) => Condition::AKeyMatches(re(r)?),
        ("no_key_matches", [r]) => Condition::NoKeyMatches(re(r)?),
        ("key_value_equals", [k, v]) => Condition::KeyValueEquals(key(k)?, v.clone()),
        ("key_value_does_not_equal", [k, v]) => {
            Condition::KeyValueDoesNotEqual(key(k)?, v.clone())
        }
        ("key_value_matches", [k, r]) => Condition::KeyValueMatches(key(k)?, re(r)?),
        ("key_value_does_not_match", [k, r]) => Condition::KeyValueDoesNotMatch(key(k)?, re(r)?),
        ("matching_keys_have_matching_values", [a, b]) => {
            Condition::MatchingKeysHaveMatchingValues(re(a)?, re(b)?)
        }
        ("matching_keys_do_not_have_matching_values", [a, b]) => {
            Condition::MatchingKeysDoNotHaveMatchingValues(re(a)?, re(b)?)
        }
        _ => {
            return Err(format!(
                "Condition {value:?} is not one Fluent Bit's modify takes (Key_exists KEY, Key_does_not_exist KEY, A_key_matches REGEX, No_key_matches REGEX, Key_value_equals KEY VALUE, Key_value_does_not_equal KEY VALUE, Key_value_matches KEY REGEX, Key_value_does_not_match KEY REGEX, Matching_keys_have_matching_values REGEX REGEX, Matching_keys_do_not_have_matching_values REGEX REGEX)"
            ))
        }
    };
    Ok(c)
}

/// Whether `re` matches a value, as modify.c's
/// `helper_msgpack_object_matches_regex` matches one: a string, or a
/// boolean as `true` or `false`; no other value matches.
fn value_matches(value: FieldValue<'_>, re: &Regex) -> bool {
    match value {
        FieldValue::Str(s) => re.is_match(s),
        FieldValue::Json(Json::Bool(b)) => re.is_match(if *b { "true" } else { "false" }),
        FieldValue::Json(_) => false,
    }
}

fn regex(what: &str, pattern: &str) -> Result<Regex, String> {
    super::onig::regex(pattern)
        .map_err(|e| format!("{what}: {pattern:?} is not a regular expression Sluice can use: {e}"))
}

/// Splits on spaces; a part that starts with `"` runs to the next `"` not
/// escaped by `\`, and `\"` and `\\` inside it are the characters.
fn split_quoted(value: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = value.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut part = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => part.push(e),
                        Some(other) => {
                            part.push('\\');
                            part.push(other);
                        }
                        None => return Err(format!("{value:?} ends inside a quoted part")),
                    },
                    Some(other) => part.push(other),
                    None => return Err(format!("{value:?} ends inside a quoted part")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        parts.push(part);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fluentbit::tests::record;

    fn text(record: &Record) -> String {
        serde_json::Value::Object(record.to_json()).to_string()
    }

    fn modify(options: &[(&str, &str)]) -> Modify {
        let mut m = Modify::default();
        for (k, v) in options {
            assert!(m.option(k, v).unwrap(), "{k}");
        }
        m
    }

    #[test]
    fn rules_in_order() {
        let m = modify(&[
            ("Set", "service orders"),
            ("Add", "level info"),
            ("Add", "env prod"),
            ("Rename", "log message"),
            ("Rename", "source stream"),
            ("Hard_rename", "container_id id"),
            ("Copy", "service app"),
            ("Hard_copy", "service team"),
            ("Remove", "container_name"),
            ("Remove_wildcard", "ecs_"),
            ("Remove_regex", "^tmp[0-9]$"),
            ("Set", r#"note "two words \"quoted\"""#),
        ]);
        let mut r = record(
            r#"{"log":"x","source":"stdout","stream":"taken","container_id":"c1","id":"old","container_name":"/a","level":"warn","team":"t","ecs_cluster":"p","ecs_task_arn":"arn","tmp1":"1","tmp10":"10","n":{"deep":1}}"#,
        );
        m.apply(&mut r);
        assert_eq!(
            text(&r),
            r#"{"app":"orders","env":"prod","id":"c1","level":"warn","message":"x","n":{"deep":1},"note":"two words \"quoted\"","service":"orders","source":"stdout","stream":"taken","team":"orders","tmp10":"10"}"#
        );
        // Copying a value that is not a string keeps it.
        let m = modify(&[("Copy", "n m")]);
        let mut r = record(r#"{"n":{"deep":1}}"#);
        m.apply(&mut r);
        assert_eq!(text(&r), r#"{"m":{"deep":1},"n":{"deep":1}}"#);
    }

    #[test]
    fn conditions_must_all_hold() {
        let m = modify(&[
            ("Condition", "Key_value_equals level error"),
            ("Condition", "Key_exists log"),
            ("Condition", "No_key_matches ^debug"),
            ("Set", "alert true"),
        ]);
        let cases = [
            (r#"{"level":"error","log":"x"}"#, true),
            (r#"{"level":"error"}"#, false),
            (r#"{"level":"info","log":"x"}"#, false),
            (r#"{"level":"error","log":"x","debug_id":"1"}"#, false),
        ];
        for (json, set) in cases {
            let mut r = record(json);
            m.apply(&mut r);
            assert_eq!(r.get_str("alert") == Some("true"), set, "{json}");
        }
        let holds = |c: &str, json: &str| condition(c).unwrap().holds(&record(json));
        assert!(holds("Key_does_not_exist a", r#"{"b":"1"}"#));
        assert!(holds("A_key_matches ^b", r#"{"b":"1"}"#));
        assert!(holds("Key_value_does_not_equal b 2", r#"{"b":"1"}"#));
        assert!(!holds("Key_value_does_not_equal a 2", r#"{"b":"1"}"#));
        assert!(holds("Key_value_matches b ^[0-9]$", r#"{"b":"1"}"#));
        assert!(!holds("Key_value_matches b ^[0-9]$", r#"{"b":1}"#));
        assert!(holds("Key_value_does_not_match b ^x", r#"{"b":"1"}"#));
        assert!(!holds("Key_value_does_not_match a ^x", r#"{"b":"1"}"#));
        let both = "Matching_keys_have_matching_values ^ecs_ ^arn:";
        assert!(holds(both, r#"{"ecs_a":"arn:1","ecs_b":"arn:2","x":"y"}"#));
        assert!(!holds(both, r#"{"ecs_a":"arn:1","ecs_b":"no"}"#));
        // No matching key: every one of them (none) has a matching value.
        assert!(holds(both, r#"{"x":"arn:1"}"#));
        let neither = "Matching_keys_do_not_have_matching_values ^ecs_ ^arn:";
        assert!(holds(neither, r#"{"ecs_a":"no","ecs_b":"arn:2"}"#));
        assert!(!holds(neither, r#"{"x":"no"}"#));
        // A boolean matches as its text; a number does not.
        assert!(holds("Key_value_matches b ^true$", r#"{"b":true}"#));
        assert!(holds("Key_value_does_not_match b ^true$", r#"{"b":false}"#));
        assert!(holds("Key_value_does_not_match b ^1$", r#"{"b":1}"#));
        assert!(holds(
            "Matching_keys_have_matching_values ^b ^f",
            r#"{"b":false}"#
        ));
    }

    #[test]
    fn options_that_are_wrong() {
        let error = |k: &str, v: &str| Modify::default().option(k, v).unwrap_err();
        assert_eq!(
            error("Set", "only_key"),
            "Set takes KEY VALUE, got \"only_key\""
        );
        assert_eq!(error("Remove", "a b"), "Remove takes one KEY, got \"a b\"");
        assert_eq!(
            error("Set", "k \"open"),
            "\"k \\\"open\" ends inside a quoted part"
        );
        assert_eq!(
            error("Condition", "Key_exists $a['b']"),
            "Condition Key_exists $a['b']: Sluice reads top-level keys by name, not record accessors"
        );
        assert!(
            error("Condition", "Key_is_big a").starts_with("Condition \"Key_is_big a\" is not one")
        );
        assert!(error("Remove_regex", "(")
            .starts_with("Remove_regex: \"(\" is not a regular expression"));
        assert_eq!(Modify::default().option("Merge", "a b"), Ok(false));
    }
}
