//! `[FILTER] nest`, as `plugins/filter_nest/nest.c` (v5.1.1) applies it.
//!
//! - `Operation nest`: the top-level keys a `Wildcard` matches (`name`, or
//!   a prefix `name*`) move into a map under `Nest_under`;
//! - `Operation lift`: the map under `Nested_under` is taken apart, its
//!   keys put at the top level (a value that is not a map stays);
//! - `Add_prefix` or `Remove_prefix` renames the keys moved.
//!
//! A record with nothing to move is left as it is. A key moved to the top
//! level, or the nested map, wins over a key of the same name already
//! there, where Fluent Bit would send both.

use serde_json::{Map, Value as Json};
use sluice_firelens::Record;

use super::classic::Section;

#[derive(Debug)]
pub struct Nest {
    operation: Operation,
    prefix: Prefix,
}

#[derive(Debug)]
enum Operation {
    Nest {
        wildcards: Vec<Wildcard>,
        under: String,
    },
    Lift {
        under: String,
    },
}

/// `Wildcard name` (the key) or `Wildcard name*` (a prefix).
#[derive(Debug)]
struct Wildcard {
    text: String,
    prefix: bool,
}

impl Wildcard {
    fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(&self.text)
        } else {
            key == self.text
        }
    }
}

#[derive(Debug)]
enum Prefix {
    None,
    Add(String),
    Remove(String),
}

impl Prefix {
    fn rename(&self, key: &str) -> String {
        match self {
            Prefix::None => key.to_string(),
            Prefix::Add(p) => format!("{p}{key}"),
            Prefix::Remove(p) => key.strip_prefix(p.as_str()).unwrap_or(key).to_string(),
        }
    }
}

impl Nest {
    /// The filter's options, checked as Fluent Bit checks them.
    pub fn from_section(section: &Section) -> Result<Nest, String> {
        let mut operation = None;
        let (mut wildcards, mut under) = (Vec::new(), None);
        let mut prefix = Prefix::None;
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                // Fluent Bit compares the first four characters.
                "operation" => {
                    operation = Some(match value.get(..4) {
                        Some("nest") => "nest",
                        Some("lift") => "lift",
                        _ => {
                            return Err(format!(
                                "[FILTER] nest Operation {value:?} is not nest or lift"
                            ))
                        }
                    })
                }
                "wildcard" => wildcards.push(match value.strip_suffix('*') {
                    Some(text) => Wildcard {
                        text: text.to_string(),
                        prefix: true,
                    },
                    None => Wildcard {
                        text: value.clone(),
                        prefix: false,
                    },
                }),
                "nest_under" | "nested_under" => under = Some(value.clone()),
                "add_prefix" | "prefix_with" | "remove_prefix" => {
                    if !matches!(prefix, Prefix::None) {
                        return Err("[FILTER] nest Add_prefix and Remove_prefix are exclusive".into());
                    }
                    prefix = if key.eq_ignore_ascii_case("remove_prefix") {
                        Prefix::Remove(value.clone())
                    } else {
                        Prefix::Add(value.clone())
                    };
                }
                "name" | "match" | "match_regex" | "alias" => {}
                _ => {
                    return Err(format!(
                        "[FILTER] nest has no option {key}; it takes Operation, Wildcard, Nest_under, Nested_under, Add_prefix, Remove_prefix"
                    ))
                }
            }
        }
        let operation = match operation {
            None => return Err("[FILTER] nest needs an Operation, nest or lift".into()),
            Some("nest") => {
                let under = under.ok_or("[FILTER] nest Operation nest needs Nest_under")?;
                if wildcards.is_empty() {
                    return Err("[FILTER] nest Operation nest needs a Wildcard".into());
                }
                Operation::Nest { wildcards, under }
            }
            Some(_) => Operation::Lift {
                under: under.ok_or("[FILTER] nest Operation lift needs Nested_under")?,
            },
        };
        Ok(Nest { operation, prefix })
    }

    /// For `check-config`.
    pub fn describe(&self) -> String {
        let prefix = match &self.prefix {
            Prefix::None => String::new(),
            Prefix::Add(p) => format!(", Add_prefix {p}"),
            Prefix::Remove(p) => format!(", Remove_prefix {p}"),
        };
        match &self.operation {
            Operation::Nest { wildcards, under } => {
                let w: Vec<String> = wildcards
                    .iter()
                    .map(|w| format!("{}{}", w.text, if w.prefix { "*" } else { "" }))
                    .collect();
                format!("nest: {} under {under}{prefix}", w.join(", "))
            }
            Operation::Lift { under } => format!("nest: lift {under}{prefix}"),
        }
    }

    pub fn apply(&self, record: &mut Record) {
        match &self.operation {
            Operation::Nest { wildcards, under } => {
                if !record
                    .iter()
                    .any(|(k, _)| wildcards.iter().any(|w| w.matches(k)))
                {
                    return;
                }
                let (mut top, mut nested) = (Map::new(), Map::new());
                for (key, value) in record.iter() {
                    if wildcards.iter().any(|w| w.matches(key)) {
                        nested.insert(self.prefix.rename(key), value.to_json());
                    } else {
                        top.insert(key.to_string(), value.to_json());
                    }
                }
                top.insert(under.clone(), Json::Object(nested));
                record.replace_with(Record::from(top));
            }
            Operation::Lift { under } => {
                let Some(Json::Object(inner)) = record.get(under).map(|v| v.to_json()) else {
                    return;
                };
                let mut top: Map<String, Json> = record
                    .iter()
                    .filter(|(k, _)| k != under)
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect();
                for (key, value) in inner {
                    top.insert(self.prefix.rename(&key), value);
                }
                record.replace_with(Record::from(top));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;
    use crate::fluentbit::tests::section;

    fn nest(options: &[(&str, &str)]) -> Result<Nest, String> {
        let head = [("Name", "nest"), ("Match", "*")];
        Nest::from_section(&section(SectionKind::Filter, "f.conf:1", &head, options))
    }

    fn applied(n: &Nest, json: &str) -> String {
        let mut record: Record = serde_json::from_str::<Map<String, Json>>(json)
            .unwrap()
            .into();
        n.apply(&mut record);
        Json::Object(record.to_json()).to_string()
    }

    #[test]
    fn nest_moves_matching_keys_under_one() {
        let n = nest(&[
            ("Operation", "nest"),
            ("Wildcard", "ecs_*"),
            ("Wildcard", "container_name"),
            ("Nest_under", "ecs"),
            ("Remove_prefix", "ecs_"),
        ])
        .unwrap();
        assert_eq!(
            applied(
                &n,
                r#"{"log":"x","ecs_cluster":"prod","ecs_task_arn":"arn","container_name":"/app","container_id":"c1"}"#
            ),
            r#"{"container_id":"c1","ecs":{"cluster":"prod","container_name":"/app","task_arn":"arn"},"log":"x"}"#
        );
        // Nothing matches: left as it is.
        assert_eq!(applied(&n, r#"{"log":"x"}"#), r#"{"log":"x"}"#);
        assert_eq!(
            n.describe(),
            "nest: ecs_*, container_name under ecs, Remove_prefix ecs_"
        );
    }

    #[test]
    fn lift_takes_a_map_apart() {
        let n = nest(&[
            ("Operation", "lift"),
            ("Nested_under", "req"),
            ("Add_prefix", "req_"),
        ])
        .unwrap();
        assert_eq!(
            applied(
                &n,
                r#"{"log":"x","req":{"path":"/a","tries":2,"h":{"a":1}}}"#
            ),
            r#"{"log":"x","req_h":{"a":1},"req_path":"/a","req_tries":2}"#
        );
        // Not a map, or missing: left as it is.
        assert_eq!(applied(&n, r#"{"req":"plain"}"#), r#"{"req":"plain"}"#);
        assert_eq!(applied(&n, r#"{"log":"x"}"#), r#"{"log":"x"}"#);
        let plain = nest(&[("Operation", "lift"), ("Nested_under", "req")]).unwrap();
        assert_eq!(applied(&plain, r#"{"a":1,"req":{"a":2}}"#), r#"{"a":2}"#);
    }

    #[test]
    fn options_are_checked_as_fluent_bit_checks_them() {
        let err = |options: &[(&str, &str)]| nest(options).unwrap_err();
        assert_eq!(err(&[]), "[FILTER] nest needs an Operation, nest or lift");
        assert_eq!(
            err(&[("Operation", "flatten")]),
            "[FILTER] nest Operation \"flatten\" is not nest or lift"
        );
        assert_eq!(
            err(&[("Operation", "nest"), ("Wildcard", "a")]),
            "[FILTER] nest Operation nest needs Nest_under"
        );
        assert_eq!(
            err(&[("Operation", "nest"), ("Nest_under", "a")]),
            "[FILTER] nest Operation nest needs a Wildcard"
        );
        assert_eq!(
            err(&[("Operation", "lift")]),
            "[FILTER] nest Operation lift needs Nested_under"
        );
        assert_eq!(
            err(&[
                ("Operation", "lift"),
                ("Nested_under", "a"),
                ("Add_prefix", "x"),
                ("Remove_prefix", "y")
            ]),
            "[FILTER] nest Add_prefix and Remove_prefix are exclusive"
        );
        assert_eq!(
            err(&[("Operation", "lift"), ("Nested_under", "a"), ("Flatten", "on")]),
            "[FILTER] nest has no option Flatten; it takes Operation, Wildcard, Nest_under, Nested_under, Add_prefix, Remove_prefix"
        );
        // "nesting" reads as nest, as in Fluent Bit.
        assert!(nest(&[
            ("Operation", "nesting"),
            ("Wildcard", "a"),
            ("Nest_under", "b")
        ])
        .is_ok());
    }
}
