//! Telling Envoy access records from every other line.

use std::borrow::Cow;

use crate::format::{Format, BUILTIN_TEXT_FORMATS};
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
    builtin: Vec<Format>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    /// A classifier with the built-in formats only.
    pub fn new() -> Classifier {
        let builtin = BUILTIN_TEXT_FORMATS
            .iter()
            .filter_map(|(name, _)| Format::builtin(name))
            .collect();
        Classifier {
            user: Vec::new(),
            builtin,
        }
    }

    /// Adds a format tried before the built-ins (and after earlier ones).
    pub fn add_format(&mut self, format: Format) {
        self.user.push(format);
    }

    /// Classifies one line. The line ending (`\n` or `\r\n`) is ignored.
    pub fn classify<'a>(&'a self, line: &'a str) -> Classified<'a> {
        let line = trim_line_ending(line);
        match self.parse_access(line) {
            Some(record) => Classified::Access(record),
            None => Classified::App(line),
        }
    }

    fn parse_access<'a>(&'a self, line: &'a str) -> Option<AccessRecord<'a>> {
        let first = line.as_bytes().first()?;
        for format in &self.user {
            let possible = format.leading_literal().is_none_or(|l| line.starts_with(l));
            if possible {
                if let Some(record) = format.parse(line) {
                    return Some(record);
                }
            }
        }
        match first {
            b'[' => self.builtin.iter().find_map(|f| f.parse(line)),
            b'{' => parse_json_line(line),
            _ => None,
        }
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
