//! Telling Envoy access records from every other line.

use std::borrow::Cow;

use crate::format::{Format, BUILTIN_TEXT_FORMATS, LENIENT_ORDER};
use crate::json::parse_json_line;
use crate::record::AccessRecord;

/// What one log line is.
// The record is large (its fields live inline so parsing allocates nothing);
// a `Classified` is moved once, from the classifier to its caller, so boxing
// would cost an allocation per line to save a memcpy.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Classified<'a> {
    /// An Envoy access-log record.
    Access(AccessRecord<'a>),
    /// Anything else: application output, Envoy's own logs, stack traces.
    App(&'a str),
}

/// Classifies lines against the built-in formats and any user formats.
///
/// User formats are tried first, in the order they were added; then the
/// built-in text formats (for lines starting with `[`) and the built-in JSON
/// detection (for lines starting with `{`).
#[derive(Clone, Debug)]
pub struct Classifier {
    user: Vec<Format>,
    /// Built-in text formats in strict-pass order.
    builtin: Vec<Format>,
    /// Indices into `builtin` in lenient-pass order.
    lenient_order: Vec<usize>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    /// A classifier with the built-in formats only.
    pub fn new() -> Classifier {
        let builtin: Vec<Format> = BUILTIN_TEXT_FORMATS
            .iter()
            .filter_map(|(name, _)| Format::builtin(name))
            .collect();
        let lenient_order = LENIENT_ORDER
            .iter()
            .filter_map(|name| builtin.iter().position(|f| f.name() == *name))
            .collect();
        Classifier {
            user: Vec::new(),
            builtin,
            lenient_order,
        }
    }

    /// Adds a format tried before the built-ins (and after earlier ones).
    pub fn add_format(&mut self, format: Format) {
        self.user.push(format);
    }

    /// Classifies one line. The line ending (`\n` or `\r\n`) is ignored.
    pub fn classify<'a>(&'a self, line: &'a str) -> Classified<'a> {
        let mut classified = Classified::App(line);
        self.classify_into(line, &mut classified);
        classified
    }

    /// [`Classifier::classify`] into a value the caller holds. An access
    /// record is large (744 bytes): filled where it is kept, it is not
    /// copied on the way there, as returning it by value copies it.
    pub fn classify_into<'a>(&'a self, line: &'a str, classified: &mut Classified<'a>) {
        let line = trim_line_ending(line);
        *classified = Classified::Access(AccessRecord::default());
        if let Classified::Access(record) = classified {
            if self.parse_access(line, record) {
                return;
            }
        }
        *classified = Classified::App(line);
    }

    /// Strict matching over every candidate format first, then lenient
    /// matching: a line that fits one format plainly is never taken by
    /// another format through backtracking.
    fn parse_access<'a>(&'a self, line: &'a str, record: &mut AccessRecord<'a>) -> bool {
        let Some(&first) = line.as_bytes().first() else {
            return false;
        };
        if first == b'{' {
            if let Some(parsed) = parse_json_line(line) {
                *record = parsed;
                return true;
            }
        }
        let user = || {
            self.user
                .iter()
                .filter(|f| f.leading_literal().is_none_or(|l| line.starts_with(l)))
        };
        let builtin: &[Format] = if may_be_builtin_text(line) {
            &self.builtin
        } else {
            &[]
        };
        for format in user().chain(builtin) {
            if format.parse_strict_into(line, record) {
                return true;
            }
            record.clear();
        }
        let lenient = user()
            .chain(
                self.lenient_order
                    .iter()
                    .map(|&i| &self.builtin[i])
                    .filter(|_| !builtin.is_empty()),
            )
            .find_map(|f| f.parse_lenient(line));
        match lenient {
            Some(parsed) => {
                *record = parsed;
                true
            }
            None => false,
        }
    }
}

/// Every built-in text format starts with `[%START_TIME%] `: one cheap check
/// of that shape (a digit, then no space before `] `) rules them all out for
/// most application lines, Envoy's own logs included
/// (`[2025-11-04 06:49:07.518][1][info]` has a space inside the brackets).
/// The formats themselves then validate the timestamp.
fn may_be_builtin_text(line: &str) -> bool {
    let bytes = line.as_bytes();
    if bytes.first() != Some(&b'[') || !bytes.get(1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    // Timestamps are short; do not scan a long line for the bracket.
    let head = &bytes[1..bytes.len().min(65)];
    match memchr::memchr2(b']', b' ', head) {
        Some(end) => head[end] == b']' && head.get(end + 1) == Some(&b' '),
        None => false,
    }
}

/// Removes one trailing `\n` or `\r\n`.
pub fn trim_line_ending(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// A line's bytes as text: borrowed when they are UTF-8, else with invalid
/// sequences replaced by U+FFFD (Envoy writes header bytes as it got them).
pub fn decode_line(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
