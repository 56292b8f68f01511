//! The small layer between the sources of settings and the typed sections.
//!
//! A section's keys come from the TOML file (typed values) and from text
//! (a `SLUICE_<SECTION>_<KEY>` variable, or an option of a Fluent Bit
//! section). They are merged first, later sources winning, then deserialized
//! into the section's struct. Text is read as the field's type asks: an
//! integer field parses it, a string field takes it as it is, so the secret
//! `123456` from the environment is a string while `123456` in the file is
//! an integer, and an error.
//!
//! Serde stops at the first error; to report every one, a failing key is
//! noted (by the value deserializer, which sees every error its value
//! causes), removed, and the section read again.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use serde::de::value::{SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::ConfigError;

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file: errors name `section.key`.
    File,
    /// An environment variable: errors name it.
    Env(String),
    /// Anything else that gives text, named as the caller wants (a Fluent
    /// Bit section and option, for one).
    Named(String),
}

/// One value as its source gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawValue {
    Toml(toml::Value),
    Text(String),
}

/// The keys of one section, in the order they were given.
#[derive(Clone, Debug, Default)]
pub struct RawSection {
    entries: Vec<(String, RawValue, Origin)>,
}

impl RawSection {
    /// Sets `key`, replacing what an earlier source gave.
    pub fn set(&mut self, key: &str, value: RawValue, origin: Origin) {
        self.entries.retain(|(k, _, _)| k != key);
        self.entries.push((key.to_string(), value, origin));
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.entries.iter().map(|(k, _, o)| (k.as_str(), o))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k == key)
    }

    fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _, _)| k != key);
    }

    fn origin(&self, key: &str) -> Option<&Origin> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, o)| o)
    }
}

/// How an error names the key it is about.
pub fn key_name(section: &str, key: &str, origin: &Origin) -> String {
    match origin {
        Origin::File => format!("{section}.{key}"),
        Origin::Env(var) | Origin::Named(var) => var.clone(),
    }
}

/// The keys a section type takes (its serde field names).
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldsProbe(&mut fields));
    fields
}

/// Deserializes `section` into `T`, with every error pushed to `errors`:
/// unknown keys (with the keys `T` takes) and values `T` cannot take. The
/// keys in error are left out, so the result holds only what was readable;
/// callers must not use it when `errors` grew.
pub fn read_section<T: DeserializeOwned + Default>(
    name: &str,
    mut section: RawSection,
    errors: &mut Vec<ConfigError>,
) -> T {
    let known = fields_of::<T>();
    let unknown: Vec<(String, Origin)> = section
        .keys()
        .filter(|(k, _)| !known.contains(k))
        .map(|(k, o)| (k.to_string(), o.clone()))
        .collect();
    for (key, origin) in unknown {
        errors.push(ConfigError {
            key: key_name(name, &key, &origin),
            message: format!("unknown key; [{name}] takes {}", known.join(", ")),
        });
        section.remove(&key);
    }
    // Each pass removes one failing key, so this ends.
    for _ in 0..=section.entries.len() {
        let failed = Rc::new(RefCell::new(None));
        let entries = section.entries.iter().map(|(k, v, _)| {
            (
                k.clone(),
                ValueDe {
                    key: k.clone(),
                    value: v.clone(),
                    failed: failed.clone(),
                },
            )
        });
        let map = de::value::MapDeserializer::<_, Error>::new(entries);
        match T::deserialize(map) {
            Ok(value) => return value,
            Err(e) => {
                let key = failed.borrow_mut().take();
                match key {
                    Some(key) => {
                        let origin = section.origin(&key).cloned().unwrap_or(Origin::File);
                        errors.push(ConfigError {
                            key: key_name(name, &key, &origin),
                            message: e.0,
                        });
                        section.remove(&key);
                    }
                    None => {
                        errors.push(ConfigError {
                            key: name.to_string(),
                            message: e.0,
                        });
                        return T::default();
                    }
                }
            }
        }
    }
    T::default()
}

/// The error every value deserializer here gives: a message.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// One key's value; notes the key when deserializing it fails.
struct ValueDe {
    key: String,
    value: RawValue,
    failed: Rc<RefCell<Option<String>>>,
}

impl<'de> IntoDeserializer<'de, Error> for ValueDe {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Each `deserialize_*` method: the TOML value's own, or the text's.
macro_rules! dispatch {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self $(, $arg: $ty)*, visitor: V) -> Result<V::Value, Error> {
                let result = match self.value {
                    RawValue::Toml(v) => de::Deserializer::$method(v $(, $arg)*, visitor)
                        .map_err(|e| Error(toml_message(&e))),
                    RawValue::Text(t) => de::Deserializer::$method(TextDe(t) $(, $arg)*, visitor),
                };
                if result.is_err() {
                    *self.failed.borrow_mut() = Some(self.key);
                }
                result
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for ValueDe {
    type Error = Error;
    dispatch! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_f32(); deserialize_f64();
        deserialize_char(); deserialize_str(); deserialize_string(); deserialize_bytes();
        deserialize_byte_buf(); deserialize_option(); deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq(); deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }
}

/// toml's message without its trailing newline and without the "TOML
/// parse error" framing a value has no position for.
fn toml_message(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// The newtype name that asks text for a comma-separated list (see
/// [`super::types::CommaList`]).
pub const COMMA_LIST: &str = "CommaList";

/// Text read as the type asks.
pub struct TextDe(pub String);

impl TextDe {
    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        self.0
            .trim()
            .parse()
            .map_err(|_| Error(format!("expected {what}, got {:?}", self.0)))
    }

    /// A TOML array (`["a", "b"]`) or, when `split`, a comma-separated
    /// list; else the text is one item. Empty text is an empty list.
    fn list(&self, split: bool) -> Result<Vec<String>, Error> {
        let trimmed = self.0.trim();
        if trimmed.starts_with('[') {
            let table: toml::Table = format!("v = {trimmed}").parse().map_err(|_| {
                Error(format!(
                    "expected a TOML array of strings, got {:?}",
                    self.0
                ))
            })?;
            let items = table.get("v").and_then(toml::Value::as_array);
            return items
                .and_then(|items| {
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    Error(format!(
                        "expected a TOML array of strings, got {:?}",
                        self.0
                    ))
                });
        }
        if trimmed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(if split {
            trimmed
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            vec![self.0.clone()]
        })
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident: $ty:ty, $what:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.$visit(self.parse::<$ty>($what)?)
            }
        )*
    };
}

/// A boolean as text, Fluent Bit's forms too: `true`/`false`, `on`/`off`,
/// `yes`/`no`, `1`/`0`, in any case.
pub fn fluent_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

impl<'de> de::Deserializer<'de> for TextDe {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match fluent_bool(&self.0) {
            Some(b) => visitor.visit_bool(b),
            None => Err(Error(format!("expected true or false, got {:?}", self.0))),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8, "an integer";
        deserialize_i16 => visit_i16: i16, "an integer";
        deserialize_i32 => visit_i32: i32, "an integer";
        deserialize_i64 => visit_i64: i64, "an integer";
        deserialize_u8 => visit_u8: u8, "a non-negative integer";
        deserialize_u16 => visit_u16: u16, "a non-negative integer";
        deserialize_u32 => visit_u32: u32, "a non-negative integer";
        deserialize_u64 => visit_u64: u64, "a non-negative integer";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == COMMA_LIST {
            let items = self.list(true)?;
            return visitor.visit_newtype_struct(SeqDeserializer::new(items.into_iter()));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items = self.list(false)?;
        visitor.visit_seq(SeqDeserializer::new(items.into_iter()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text: StringDeserializer<Error> = self.0.trim().to_string().into_deserializer();
        visitor.visit_enum(text)
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct map
        struct identifier ignored_any
    }
}

/// Answers `deserialize_struct` by keeping the field names, then fails.
struct FieldsProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldsProbe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error("not a struct".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        *self.0 = fields;
        Err(Error("probed".into()))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
