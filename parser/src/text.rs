//! Matching one line against a compiled text [`Format`].
//!
//! Envoy does not escape header values, so a line can be ambiguous: a user
//! agent may contain `" "`. Matching therefore has two modes:
//!
//! - [`parse_strict`], the fast path: one left-to-right pass in which every
//!   operator ends at the first occurrence of the literal after it. Almost
//!   every real line matches its format this way, and no line matches two
//!   built-in formats this way (their field counts differ).
//! - [`parse_lenient`], the fallback: an operator may end at a later
//!   occurrence when the rest of the line fails otherwise (backtracking).
//!   [`Shape`]s prune it: a token can never contain a space or a quote, so
//!   only free-text fields ever grow past one. A step budget bounds the work
//!   on hostile lines.

use std::borrow::Cow;

use crate::format::{Format, Op, Segment, Shape, Target};
use crate::record::{AccessRecord, Value};
use crate::stops::{is_stop, Stops, STOP_BYTES};
use crate::time::parse_iso8601;

/// Values tried per line and format before the line is declared not to be of
/// the format. A well-formed line needs one try per operator.
const STEP_BUDGET: u32 = 512;

/// Longest digit string read as a number: u64::MAX has 20 digits (larger
/// 20-digit values fail `parse`).
const MAX_DIGITS: usize = 20;

/// The strict matcher's program, compiled once per format: the leading
/// literal, then one step per operator that also consumes the literal after
/// it, so matching a line is one pass with no per-segment dispatch.
#[derive(Clone, Debug)]
pub(crate) struct StrictPlan {
    prefix: Box<[u8]>,
    steps: Vec<StrictStep>,
}

#[derive(Clone, Debug)]
struct StrictStep {
    op: Op,
    end: StepEnd,
}

/// What ends an operator's value in the strict matcher.
#[derive(Clone, Debug)]
enum StepEnd {
    /// The end of the line.
    Line,
    /// This literal, which starts with a stop byte (space, `"`, tab) that
    /// the value cannot hold: the value ends at the next stop. A number or
    /// flags value may then hold bytes its shape forbids (`12a`), which
    /// [`accept_checked`] rejects.
    Stop { text: Box<[u8]> },
    /// This literal. `at_extent`: it starts with a byte the value cannot hold
    /// (a space after a token), so the value ends exactly where the shape
    /// stops and no search is needed.
    Literal { text: Box<[u8]>, at_extent: bool },
    /// Another operator follows directly: the shape decides alone.
    Operator,
}

impl StrictPlan {
    pub(crate) fn new(segments: &[Segment]) -> StrictPlan {
        let mut prefix: Box<[u8]> = Box::new([]);
        let mut steps = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Literal(lit) if i == 0 => prefix = lit.text.as_bytes().into(),
                Segment::Literal(_) => {}
                Segment::Op(op) => {
                    let end = match segments.get(i + 1) {
                        None => StepEnd::Line,
                        Some(Segment::Op(_)) => StepEnd::Operator,
                        Some(Segment::Literal(lit)) => {
                            let text: Box<[u8]> = lit.text.as_bytes().into();
                            let first = text.first().copied();
                            if first.is_some_and(is_stop) && op.shape.holds_no_stops() {
                                StepEnd::Stop { text }
                            } else {
                                let at_extent = first.is_some_and(|b| forbids(op.shape, b));
                                StepEnd::Literal { text, at_extent }
                            }
                        }
                    };
                    steps.push(StrictStep {
                        op: op.clone(),
                        end,
                    });
                }
            }
        }
        StrictPlan { prefix, steps }
    }
}

/// The fast path: every operator ends at the first occurrence of the literal
/// that follows it. Fills `record` (which must be empty) in place, so a
/// parsed line is built once and never copied; on `false` the record may
/// hold some values and must be cleared before reuse.
pub(crate) fn parse_strict_into<'a>(
    plan: &'a StrictPlan,
    line: &'a str,
    record: &mut AccessRecord<'a>,
) -> bool {
    parse_strict_steps(plan, line, record).is_some()
}

fn parse_strict_steps<'a>(
    plan: &'a StrictPlan,
    line: &'a str,
    record: &mut AccessRecord<'a>,
) -> Option<()> {
    let bytes = line.as_bytes();
    if !starts_with(bytes, &plan.prefix) {
        return None;
    }
    let mut stops = Stops::new(bytes);
    let mut pos = plan.prefix.len();
    for step in &plan.steps {
        let op = &step.op;
        let rest = &bytes[pos..];
        let (len, skip) = match &step.end {
            StepEnd::Stop { text } => {
                let end = stops.next(pos) - pos;
                if !starts_with(&rest[end..], text) {
                    return None;
                }
                (end, text.len())
            }
            StepEnd::Line => {
                if extent_at(op.shape, &mut stops, bytes, pos) != rest.len() {
                    return None;
                }
                (rest.len(), 0)
            }
            StepEnd::Literal {
                text,
                at_extent: true,
            } => {
                let end = extent_at(op.shape, &mut stops, bytes, pos);
                if !starts_with(&rest[end..], text) {
                    return None;
                }
                (end, text.len())
            }
            StepEnd::Literal {
                text,
                at_extent: false,
            } => {
                let end = extent_at(op.shape, &mut stops, bytes, pos);
                (first_literal(rest, end, text)?, text.len())
            }
            // Where free text ends before another operator is a guess;
            // leave it to the lenient matcher.
            StepEnd::Operator if !op.shape.holds_no_stops() => return None,
            StepEnd::Operator => (extent_at(op.shape, &mut stops, bytes, pos), 0),
        };
        let value = line.get(pos..pos + len)?;
        let parsed = accept_checked(op, value)?;
        assign(record, op, value, parsed);
        pos += len + skip;
    }
    (pos == bytes.len()).then_some(())
}

/// [`extent`] of `line[pos..]`, from the line's stops where the shape's
/// forbidden bytes are exactly the stops.
#[inline(always)]
fn extent_at(shape: Shape, stops: &mut Stops, line: &[u8], pos: usize) -> usize {
    match shape {
        Shape::Token | Shape::Id | Shape::Time => stops.next(pos) - pos,
        _ => extent(shape, &line[pos..]),
    }
}

/// Length of the value before the first occurrence of `lit` in `rest`
/// that starts within the value's extent `end`, if any.
#[inline]
fn first_literal(rest: &[u8], end: usize, lit: &[u8]) -> Option<usize> {
    let first = *lit.first()?;
    let window = &rest[..(end + lit.len()).min(rest.len())];
    let mut from = 0;
    while let Some(at) = find_any(&window[from..], [first; 3]) {
        if starts_with(&window[from + at..], lit) {
            return Some(from + at);
        }
        from += at + 1;
    }
    None
}

/// `hay.starts_with(lit)` without a call to `memcmp`: literals are short.
#[inline]
fn starts_with(hay: &[u8], lit: &[u8]) -> bool {
    hay.len() >= lit.len() && hay.iter().zip(lit).all(|(a, b)| a == b)
}

/// Whether a value of this shape can never contain byte `b`.
#[inline]
fn forbids(shape: Shape, b: u8) -> bool {
    match shape {
        Shape::Number => !b.is_ascii_digit() && b != b'-',
        Shape::Flags => !(b.is_ascii_alphabetic() || b == b'_' || b == b',' || b == b'-'),
        Shape::Token | Shape::Id | Shape::Time => is_stop(b),
        Shape::NoQuote | Shape::FormattedTime => b == b'"',
        Shape::Free => false,
    }
}

/// Bytes from the start of `rest` before the first byte the shape forbids.
#[inline(always)]
fn extent(shape: Shape, rest: &[u8]) -> usize {
    let len = rest.len();
    match shape {
        Shape::Token | Shape::Id | Shape::Time => find_any(rest, STOP_BYTES).unwrap_or(len),
        Shape::NoQuote | Shape::FormattedTime => find_any(rest, [b'"'; 3]).unwrap_or(len),
        Shape::Free => len,
        Shape::Number | Shape::Flags => rest.iter().position(|&b| forbids(shape, b)).unwrap_or(len),
    }
}

/// Position of the first of three bytes, eight bytes at a time. Values are
/// short (a method, a host, a UUID), where `memchr`'s SIMD set-up costs more
/// than it saves.
#[inline]
fn find_any(hay: &[u8], needles: [u8; 3]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Nonzero exactly where a byte of `w` is zero, except that a flag may
    // also appear above a true zero; the lowest flag, which is all
    // `trailing_zeros` reads, is always a true zero.
    let zero_bytes = |w: u64| w.wrapping_sub(LO) & !w & HI;
    let [a, b, c] = needles.map(|n| u64::from(n) * LO);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let found = zero_bytes(w ^ a) | zero_bytes(w ^ b) | zero_bytes(w ^ c);
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|x| needles.contains(x))
        .map(|i| offset + i)
}

/// The fallback for ambiguous lines: backtracks over later occurrences of
/// each literal within a step budget.
pub(crate) fn parse_lenient<'a>(format: &'a Format, line: &'a str) -> Option<AccessRecord<'a>> {
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
        let line: &'a str = self.line;
        let rest = &line[pos..];
        let extent = lenient_extent(op.shape, rest);
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
                // what their shape allows; text that may hold spaces
                // tries every split.
                if !op.shape.holds_no_stops() {
                    // `rest` borrows the line, not `self`, so this can
                    // iterate lazily: the budget, not the line length,
                    // bounds the work.
                    let ends = rest[..extent]
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain(std::iter::once(extent));
                    for end in ends {
                        if self.budget == 0 {
                            return false;
                        }
                        if self.try_value(index, op, pos, pos + end) {
                            return true;
                        }
                    }
                    false
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
        assign(&mut self.record, op, value, parsed);
        true
    }
}

/// Stores an accepted value in the record.
#[inline(always)]
fn assign<'a>(record: &mut AccessRecord<'a>, op: &'a Op, value: &'a str, parsed: Parsed) {
    let value = match parsed {
        Parsed::Absent => return,
        Parsed::Number(n) => match &op.target {
            // Numbers stay text where the field is an identifier.
            Target::Field(f) if !f.is_numeric() => Value::Str(Cow::Borrowed(value)),
            _ => Value::UInt(n),
        },
        Parsed::Time(ms) => {
            if matches!(op.target, Target::Field(crate::Field::StartTime)) {
                record.set_start_time_ms(ms);
            }
            Value::Str(Cow::Borrowed(value))
        }
        Parsed::Text => Value::Str(Cow::Borrowed(value)),
    };
    match &op.target {
        Target::Field(f) => record.set(*f, Some(value)),
        Target::Extra { name, role } => {
            record.push_extra(Cow::Borrowed(name.as_str()), value, role.clone())
        }
    }
}

/// Bytes the lenient matcher lets a value span: like [`extent`], but `-`
/// alone is a whole number (`-` is how Envoy prints a missing one).
fn lenient_extent(shape: Shape, rest: &str) -> usize {
    let bytes = rest.as_bytes();
    if shape == Shape::Number && bytes.first() == Some(&b'-') {
        return 1;
    }
    extent(shape, bytes)
}

/// Whether `value` fits the operator, and what it reads as.
fn accept(op: &Op, value: &str) -> Option<Parsed> {
    if value.bytes().any(|b| forbids(op.shape, b)) {
        return None;
    }
    accept_checked(op, value)
}

/// [`accept`] for a value that holds no byte its shape forbids, except
/// that a number or flags value may hold any byte but a stop: those are
/// checked here in full.
#[inline(always)]
fn accept_checked(op: &Op, value: &str) -> Option<Parsed> {
    // `value == "-"` would call memcmp; this runs for every operator.
    if value.as_bytes() == [b'-'] {
        let may_be_absent = match op.shape {
            Shape::Id => false,
            Shape::Time | Shape::FormattedTime => op.time.is_some(),
            _ => true,
        };
        return may_be_absent.then_some(Parsed::Absent);
    }
    match op.shape {
        Shape::Number => {
            if value.is_empty() {
                return Some(Parsed::Absent);
            }
            if value.len() > MAX_DIGITS {
                return None;
            }
            parse_digits(value.as_bytes()).map(Parsed::Number)
        }
        Shape::Flags => {
            let valid = !value.is_empty()
                && value.split(',').all(|flag| {
                    !flag.is_empty() && flag.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
                });
            valid.then_some(Parsed::Text)
        }
        Shape::Token | Shape::Id if value.is_empty() => {
            (op.shape == Shape::Token).then_some(Parsed::Absent)
        }
        Shape::Token | Shape::Id => Some(Parsed::Text),
        Shape::NoQuote if value.is_empty() => Some(Parsed::Absent),
        Shape::NoQuote => Some(Parsed::Text),
        Shape::Free => Some(if value.is_empty() {
            Parsed::Absent
        } else {
            Parsed::Text
        }),
        Shape::Time | Shape::FormattedTime => match &op.time {
            Some(format) => format.read(value).map(Parsed::Time),
            None => parse_iso8601(value).map(|ms| Parsed::Time(Some(ms))),
        },
    }
}

/// ASCII digits as a number; `None` for any other byte or on overflow.
#[inline]
fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::find_any;
    use crate::{AccessRecord, Field, Format};

    fn strict<'a>(format: &'a Format, line: &'a str) -> Option<AccessRecord<'a>> {
        let mut record = AccessRecord::default();
        format
            .parse_strict_into(line, &mut record)
            .then_some(record)
    }

    /// Numbers and flags end at the next stop in the strict matcher, so a
    /// byte their shape forbids is caught by reading the value, not by
    /// where it ends: the outcome must be the lenient matcher's.
    #[test]
    fn numbers_and_flags_ended_by_a_stop_hold_only_their_shape() {
        let format = Format::compile(
            "t",
            r#"%RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%ms "%REQ(:PATH)%""#,
        )
        .unwrap();
        let good = r#"200 UF,URX 12ms "/a""#;
        let record = strict(&format, good).expect("strict");
        assert_eq!(record.uint(Field::ResponseCode), Some(200));
        assert_eq!(record.str(Field::ResponseFlags), Some("UF,URX"));
        assert_eq!(record.uint(Field::Duration), Some(12));
        assert_eq!(record, format.parse_lenient(good).unwrap());
        for bad in [
            r#"2x0 UF 12ms "/a""#,
            r#"-200 UF 12ms "/a""#,
            r#"200 U/F 12ms "/a""#,
            r#"200 UF- 12ms "/a""#,
            r#"200 UF 1-2ms "/a""#,
            r#"200 UF 12xms "/a""#,
        ] {
            assert_eq!(strict(&format, bad), None, "{bad}");
            assert_eq!(format.parse_lenient(bad), None, "{bad}");
        }
        let absent = r#"- - -ms "/a""#;
        let record = strict(&format, absent).expect("strict");
        assert_eq!(record.uint(Field::ResponseCode), None);
        assert_eq!(record.str(Field::Path), Some("/a"));
        assert_eq!(record, format.parse_lenient(absent).unwrap());
    }

    #[test]
    fn find_any_matches_a_naive_search() {
        let hay = b"GET /a/b?c=d HTTP/1.1\" \"x\ty  zzzzzzzzzzzzzzzzzzzz\"";
        for start in 0..hay.len() {
            for needles in [[b' ', b'"', b'\t'], [b'"'; 3], [b'z'; 3], [b'#'; 3]] {
                let h = &hay[start..];
                let naive = h.iter().position(|x| needles.contains(x));
                assert_eq!(find_any(h, needles), naive, "{start} {needles:?}");
            }
        }
        // Bytes at or above 0x80 and zero bytes must not look like matches.
        let hay = [0xa0, 0xa2, 0x80, 0x81, 0xff, 0, 0x21, 0x23, 0x22, 1];
        assert_eq!(find_any(&hay, [b'"'; 3]), Some(8));
    }
}
