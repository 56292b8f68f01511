//! JSON access lines: ECS Service Connect's JSON format (typed: numbers as
//! numbers or strings, `null` for unset) and Envoy `json_format` lines (every
//! value a string, `-` for unset).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use memchr::memmem;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::field::Field;
use crate::record::{AccessRecord, Role, Value};
use crate::time::parse_iso8601;

/// Parses a JSON object line as an access record, or returns `None` when it
/// is not one (not an object, or not shaped like an access log).
///
/// A JSON line is an access record when it has a `start_time` that reads as a
/// time and either HTTP fields (`response_code` with `method` or `path`) or
/// TCP fields (`downstream_remote_address` with a byte count). Numeric fields
/// must hold numbers (or numeric strings); otherwise the line is an
/// application's JSON log, not Envoy's.
pub(crate) fn parse_json_line(line: &str) -> Option<AccessRecord<'_>> {
    // Every access line has this key; most JSON application logs do not, and
    // a substring search is far cheaper than parsing them. The searcher is
    // built once, not for every line (its set-up showed in profiles).
    static START_TIME: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"start_time\""));
    START_TIME.find(line.as_bytes())?;
    let members = parse_members(line)?;
    let mut record = AccessRecord::default();
    for (key, raw) in members {
        let value = json_value(raw.get())?;
        match Field::from_json_key(&key) {
            Some(field) => {
                let value = match value {
                    None => None,
                    Some(v) if field.is_numeric() => Some(numeric(v)?),
                    Some(v) => Some(v),
                };
                record.set(field, value);
            }
            None => {
                if let Some(value) = value {
                    let role = json_key_role(&key);
                    record.push_extra(key, value, role);
                }
            }
        }
    }
    let start = record.str(Field::StartTime)?;
    let ms = parse_iso8601(start)?;
    record.set_start_time_ms(Some(ms));
    let has = |f| record.get(f).is_some();
    let http = has(Field::ResponseCode) && (has(Field::Method) || has(Field::Path));
    let tcp =
        has(Field::DownstreamRemoteAddress) && (has(Field::BytesReceived) || has(Field::BytesSent));
    (http || tcp).then_some(record)
}

/// The object's members in order, keys unescaped (borrowed when possible).
fn parse_members(line: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    let mut de = serde_json::Deserializer::from_str(line);
    let members = de.deserialize_map(MembersVisitor).ok()?;
    de.end().ok()?;
    Some(members)
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<BorrowedOrOwned<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key.0, value));
        }
        Ok(members)
    }
}

/// A JSON string borrowed from the input unless it had escapes.
struct BorrowedOrOwned<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for BorrowedOrOwned<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedOrOwned<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member's value: `None` when unset (`null`, `""`, `"-"`); `Some(None)`
/// never happens. The outer `Option` fails on invalid string escapes.
fn json_value(raw: &str) -> Option<Option<Value<'_>>> {
    match raw.as_bytes().first() {
        Some(b'"') => {
            let inner = &raw[1..raw.len() - 1];
            let text = if inner.contains('\\') {
                Cow::Owned(serde_json::from_str::<String>(raw).ok()?)
            } else {
                Cow::Borrowed(inner)
            };
            Some((!(text.is_empty() || text == "-")).then_some(Value::Str(text)))
        }
        Some(b'n') => Some(None),
        Some(b'0'..=b'9') => Some(Some(match raw.parse::<u64>() {
            Ok(n) => Value::UInt(n),
            Err(_) => Value::Raw(Cow::Borrowed(raw)),
        })),
        _ => Some(Some(Value::Raw(Cow::Borrowed(raw)))),
    }
}

/// A numeric field's value as a number: numbers stay, numeric strings are
/// read; anything else means the line is not an access record.
fn numeric(value: Value<'_>) -> Option<Value<'_>> {
    match value {
        Value::UInt(n) => Some(Value::UInt(n)),
        Value::Str(s) => s.parse::<u64>().ok().map(Value::UInt),
        // Fractions or negative numbers: still numbers, kept as written.
        Value::Raw(r) if r.parse::<f64>().is_ok() => Some(Value::Raw(r)),
        Value::Raw(_) => None,
    }
}

/// JSON keys that usually hold URLs, whose query strings get redacted.
fn json_key_role(key: &str) -> Role {
    let key = key.to_ascii_lowercase();
    let url_like = ["url", "uri", "referer", "referrer", "location", "path"]
        .iter()
        .any(|w| key.contains(w));
    if url_like {
        Role::Url
    } else {
        Role::Plain
    }
}
