//! Matching one line against a compiled text [`Format`].
//!
//! Envoy does not escape header values, so a line can be ambiguous: a user
//! agent may contain `" "`. The matcher walks the format's segments left to
//! right; an operator followed by literal text takes the value up to the
//! first occurrence of that text that leaves a valid rest of the line, trying
//! later occurrences only when the rest fails. [`Shape`]s prune this: a token
//! can never contain a space or a quote, so only free-text fields ever grow
//! past one. A step budget bounds the work on hostile lines.

use std::borrow::Cow;

use crate::format::{Format, Op, Segment, Shape, Target};
use crate::record::{AccessRecord, Value};
use crate::time::parse_iso8601;

/// Values tried per line and format before the line is declared not to be of
/// the format. A well-formed line needs one try per operator.
const STEP_BUDGET: u32 = 512;

/// Longest digit string read as a number: u64::MAX has 20 digits (larger
/// 20-digit values fail `parse`).
const MAX_DIGITS: usize = 20;

pub(crate) fn parse_line<'a>(format: &'a Format, line: &'a str) -> Option<AccessRecord<'a>> {
    let mut m = Matcher {
        segments: &format.segments,
        line,
        budget: STEP_BUDGET,
        record: AccessRecord::default(),
    };
    if m.step(0, 0) {
        // Values were assigned while the successful path unwound, last first.
        m.record.extras_mut().reverse();
        Some(m.record)
    } else {
        None
    }
}

struct Matcher<'a> {
    segments: &'a [Segment],
    line: &'a str,
    budget: u32,
    record: AccessRecord<'a>,
}

/// A value accepted by its operator's shape, ready to store.
enum Parsed {
    Absent,
    Text,
    Number(u64),
    Time(Option<i64>),
}

impl<'a> Matcher<'a> {
    /// Whether the line from `pos` matches the segments from `index` on.
    fn step(&mut self, index: usize, pos: usize) -> bool {
        let segments = self.segments;
        let Some(segment) = segments.get(index) else {
            return pos == self.line.len();
        };
        match segment {
            Segment::Literal(lit) => {
                self.line[pos..].starts_with(lit.text.as_str())
                    && self.step(index + 1, pos + lit.text.len())
            }
            Segment::Op(op) => self.operator(index, op, pos),
        }
    }

    fn operator(&mut self, index: usize, op: &'a Op, pos: usize) -> bool {
        let rest = &self.line[pos..];
        let extent = max_extent(op.shape, rest);
        match self.segments.get(index + 1) {
            None => extent == rest.len() && self.try_value(index, op, pos, self.line.len()),
            Some(Segment::Literal(lit)) => {
                // The literal may start at the first byte the shape forbids
                // (a `"` closing a token), never later.
                let window = (extent + lit.text.len()).min(rest.len());
                let haystack = &rest.as_bytes()[..window];
                // Overlapping occurrences count: in `a" " "b"` the user agent
                // `a" ` ends at the second `" "`, which overlaps the first.
                let mut from = 0;
                while let Some(found) = lit.finder.find(&haystack[from..]) {
                    if self.budget == 0 {
                        return false;
                    }
                    let end = pos + from + found;
                    if self.try_value(index, op, pos, end) {
                        return true;
                    }
                    from += found + 1;
                }
                false
            }
            Some(Segment::Op(_)) => {
                // Two operators with nothing between: shaped values take
                // what their shape allows; free text tries every split.
                if matches!(op.shape, Shape::Free | Shape::NoQuote) {
                    let ends: Vec<usize> = rest[..extent]
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain(std::iter::once(extent))
                        .collect();
                    ends.into_iter()
                        .any(|end| self.budget > 0 && self.try_value(index, op, pos, pos + end))
                } else {
                    self.try_value(index, op, pos, pos + extent)
                }
            }
        }
    }

    /// Takes `line[start..end]` as the operator's value if its shape accepts
    /// it and the rest of the line matches the rest of the format.
    fn try_value(&mut self, index: usize, op: &'a Op, start: usize, end: usize) -> bool {
        self.budget = self.budget.saturating_sub(1);
        let value = &self.line[start..end];
        let Some(parsed) = accept(op, value) else {
            return false;
        };
        if !self.step(index + 1, end) {
            return false;
        }
        self.assign(op, value, parsed);
        true
    }

    fn assign(&mut self, op: &'a Op, value: &'a str, parsed: Parsed) {
        let value = match parsed {
            Parsed::Absent => return,
            Parsed::Number(n) => match &op.target {
                // Numbers stay text where the field is an identifier.
                Target::Field(f) if !f.is_numeric() => Value::Str(Cow::Borrowed(value)),
                _ => Value::UInt(n),
            },
            Parsed::Time(ms) => {
                if matches!(op.target, Target::Field(crate::Field::StartTime)) {
                    self.record.set_start_time_ms(ms);
                }
                Value::Str(Cow::Borrowed(value))
            }
            Parsed::Text => Value::Str(Cow::Borrowed(value)),
        };
        match &op.target {
            Target::Field(f) => *self.record.known_mut(*f) = Some(value),
            Target::Extra { name, role } => {
                self.record
                    .push_extra(Cow::Borrowed(name.as_str()), value, role.clone())
            }
        }
    }
}

/// Bytes from the start of `rest` that the shape could take before the first
/// byte it forbids.
fn max_extent(shape: Shape, rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let stop = |forbidden: fn(u8) -> bool| {
        bytes
            .iter()
            .position(|&b| forbidden(b))
            .unwrap_or(bytes.len())
    };
    match shape {
        Shape::Number => {
            if bytes.first() == Some(&b'-') {
                1
            } else {
                stop(|b| !b.is_ascii_digit())
            }
        }
        Shape::Flags => stop(|b| !(b.is_ascii_alphabetic() || b == b'_' || b == b',' || b == b'-')),
        Shape::Token | Shape::Id | Shape::Time => stop(|b| b == b'"' || b.is_ascii_whitespace()),
        Shape::NoQuote => stop(|b| b == b'"'),
        Shape::Free => bytes.len(),
    }
}

/// Whether `value` fits the operator, and what it reads as.
fn accept(op: &Op, value: &str) -> Option<Parsed> {
    if value == "-" {
        let may_be_absent = match op.shape {
            Shape::Id => false,
            Shape::Time => op.time.is_some(),
            _ => true,
        };
        return may_be_absent.then_some(Parsed::Absent);
    }
    match op.shape {
        Shape::Number => {
            if value.is_empty() {
                return Some(Parsed::Absent);
            }
            if value.len() > MAX_DIGITS || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            value.parse().ok().map(Parsed::Number)
        }
        Shape::Flags => {
            let valid = !value.is_empty()
                && value.split(',').all(|flag| {
                    !flag.is_empty() && flag.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
                });
            valid.then_some(Parsed::Text)
        }
        Shape::Token | Shape::Id => {
            if value.bytes().any(|b| b == b'"' || b.is_ascii_whitespace()) {
                None
            } else if value.is_empty() {
                (op.shape == Shape::Token).then_some(Parsed::Absent)
            } else {
                Some(Parsed::Text)
            }
        }
        Shape::NoQuote => {
            if value.contains('"') {
                None
            } else if value.is_empty() {
                Some(Parsed::Absent)
            } else {
                Some(Parsed::Text)
            }
        }
        Shape::Free => Some(if value.is_empty() {
            Parsed::Absent
        } else {
            Parsed::Text
        }),
        Shape::Time => match &op.time {
            Some(format) => format.read(value).map(Parsed::Time),
            None => parse_iso8601(value).map(|ms| Parsed::Time(Some(ms))),
        },
    }
}
