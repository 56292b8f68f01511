//! Writing JSON text by hand: the sidecar writes one object per event on the
//! hot path, where building a `serde_json::Value` first would cost an
//! allocation per field.
//!
//! Renderers write through [`JsonOut`], so that the same code produces a
//! JSON line (into a `String`) or the same text already escaped as the
//! contents of a JSON string ([`Escaped`]), which is how a PutLogEvents
//! body carries a message: the sidecar then copies each message into the
//! request instead of escaping it a second time.

use crate::Field;

/// Where rendered JSON text goes.
pub trait JsonOut {
    /// Appends text as it is meant to read: JSON punctuation, a member
    /// name written out, a number, or a line written as is.
    fn text(&mut self, s: &str);
    /// Appends one character of such text.
    fn char(&mut self, c: char);
    /// Appends `s` as a JSON string literal (quoted and escaped).
    fn string(&mut self, s: &str);

    /// Appends `"name":`, for a member name made of ASCII letters, digits
    /// and `_` only (nothing to escape, checked in debug builds): the names
    /// of the fields a record always has, written once per member.
    fn member_name(&mut self, name: &str);

    /// Appends `"name":` for a record's dedicated field.
    fn field_member(&mut self, field: Field) {
        self.member_name(field.name());
    }

    /// Appends JSON text rendered earlier: `plain` as a `String` holds
    /// it, `escaped` as [`escape`] makes it. A renderer that keeps what it
    /// wrote for the next record writes it again without escaping it again.
    fn rendered(&mut self, plain: &str, escaped: &str) {
        debug_assert_eq!(escape(plain), escaped);
        self.text(plain);
    }

    /// Appends an unsigned integer as a JSON number.
    fn uint(&mut self, n: u64) {
        self.text(itoa::Buffer::new().format(n));
    }

    /// Appends a signed integer as a JSON number.
    fn int(&mut self, n: i64) {
        if n < 0 {
            self.char('-');
        }
        self.uint(n.unsigned_abs());
    }
}

/// Plain JSON text.
impl JsonOut for String {
    #[inline]
    fn text(&mut self, s: &str) {
        self.push_str(s);
    }

    #[inline]
    fn char(&mut self, c: char) {
        self.push(c);
    }

    fn string(&mut self, s: &str) {
        write_str(self, s);
    }

    fn member_name(&mut self, name: &str) {
        debug_assert!(is_plain_name(name), "{name:?}");
        self.reserve(name.len() + 3);
        self.push('"');
        self.push_str(name);
        self.push_str("\":");
    }

    #[inline]
    fn field_member(&mut self, field: Field) {
        self.push_str(field.json_member());
    }
}

/// ASCII letters, digits and `_`: a member name [`JsonOut::member_name`]
/// may write without escaping it.
fn is_plain_name(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// JSON text escaped as the contents of a JSON string (without its
/// quotes), counting the length of the text itself: what CloudWatch counts
/// of a message is its UTF-8 bytes, not the escaped form.
pub struct Escaped<'a> {
    out: &'a mut String,
    len: usize,
}

impl<'a> Escaped<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Escaped<'a> {
        Escaped { out, len: 0 }
    }

    /// UTF-8 bytes of the text written so far, before escaping.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl JsonOut for Escaped<'_> {
    #[inline]
    fn text(&mut self, s: &str) {
        self.len += s.len();
        write_str_contents(self.out, s);
    }

    /// Renderers write punctuation (`,`, `:`, `{`) a char at a time: those
    /// go straight in.
    #[inline]
    fn char(&mut self, c: char) {
        if c.is_ascii() && c >= ' ' && c != '"' && c != '\\' {
            self.len += 1;
            self.out.push(c);
            return;
        }
        let mut buf = [0; 4];
        self.text(c.encode_utf8(&mut buf));
    }

    /// Digits need no escape.
    fn uint(&mut self, n: u64) {
        let mut buffer = itoa::Buffer::new();
        let digits = buffer.format(n);
        self.len += digits.len();
        self.out.push_str(digits);
    }

    fn string(&mut self, s: &str) {
        if plain_prefix_len(s.as_bytes()) == s.len() {
            // Nothing to escape in the literal, so nothing but its quotes
            // to escape again: the common case, one copy.
            self.len += s.len() + 2;
            self.out.reserve(s.len() + 4);
            self.out.push_str("\\\"");
            self.out.push_str(s);
            self.out.push_str("\\\"");
        } else {
            let mut literal = String::with_capacity(s.len() + 8);
            write_str(&mut literal, s);
            self.text(&literal);
        }
    }

    fn rendered(&mut self, plain: &str, escaped: &str) {
        debug_assert_eq!(escape(plain), escaped);
        self.len += plain.len();
        self.out.push_str(escaped);
    }

    fn member_name(&mut self, name: &str) {
        debug_assert!(is_plain_name(name), "{name:?}");
        self.len += name.len() + 3;
        self.out.reserve(name.len() + 6);
        self.out.push_str("\\\"");
        self.out.push_str(name);
        self.out.push_str("\\\":");
    }

    #[inline]
    fn field_member(&mut self, field: Field) {
        let member = field.json_member();
        self.len += member.len();
        self.out.push_str(field.escaped_json_member());
    }
}

/// Escapes `text` as the contents of a JSON string.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    write_str_contents(&mut out, text);
    out
}

/// Appends `s` as a JSON string literal (with quotes), escaping `"`, `\` and
/// control characters. Everything else, including non-ASCII, is copied as is.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    write_str_contents(out, s);
    out.push('"');
}

/// [`write_str`] without the quotes.
///
/// Runs of bytes that need no escape are found eight at a time and copied
/// whole: most text is such runs.
pub fn write_str_contents(out: &mut String, s: &str) {
    out.reserve(s.len());
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    loop {
        i += plain_prefix_len(&bytes[i..]);
        let Some(&b) = bytes.get(i) else { break };
        // The short escapes are pushed a char at a time (inlined), not as
        // strings: JSON text escaped again has a quote every few bytes.
        let escaped = match b {
            b'"' | b'\\' => b,
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => 0,
        };
        // Escaped bytes are ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if escaped == 0 {
            out.push_str("u00");
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        } else {
            out.push(char::from(escaped));
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
}

/// How many bytes at the start of `bytes` need no escape: sixteen at a
/// time (SSE2), the last sixteen overlapping the ones before; a text
/// shorter than that a word at a time ([`plain_prefix_len_by_words`]).
/// Every string of every event goes through here (an access line's eight
/// or so values): in the side by side's burst, this file's code took 541
/// instructions per event with the SSE2 scan against 639 with the word
/// scan alone (`benches/callgrind_burst.py`).
#[cfg(target_arch = "x86_64")]
fn plain_prefix_len(bytes: &[u8]) -> usize {
    if bytes.len() < 16 {
        return plain_prefix_len_by_words(bytes);
    }
    // SAFETY: SSE2 is part of the x86_64 baseline: every CPU this code
    // runs on has it, so no runtime check is needed.
    unsafe { sse2::plain_prefix_len(bytes) }
}

#[cfg(not(target_arch = "x86_64"))]
fn plain_prefix_len(bytes: &[u8]) -> usize {
    plain_prefix_len_by_words(bytes)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    use crate::sse2::load16;

    /// [`super::plain_prefix_len`] of 16 bytes or more.
    #[target_feature(enable = "sse2")]
    pub(super) fn plain_prefix_len(bytes: &[u8]) -> usize {
        let len = bytes.len();
        let mut i = 0;
        while i + 16 <= len {
            let flags = escapes16(&bytes[i..i + 16]);
            if flags != 0 {
                return i + flags.trailing_zeros() as usize;
            }
            i += 16;
        }
        if i < len {
            // The last 16 bytes, without the lanes before `i` (plain, as
            // the loop found): no copy and no read past the text.
            let last = len - 16;
            let flags = escapes16(&bytes[last..]) >> (i - last);
            if flags != 0 {
                return i + flags.trailing_zeros() as usize;
            }
        }
        len
    }

    /// Bit `k` set when `bytes[k]` (of 16) is `"`, `\` or below 0x20.
    #[target_feature(enable = "sse2")]
    fn escapes16(bytes: &[u8]) -> u32 {
        let v = load16(bytes);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned: `min(b, 0x1f) == b` exactly when b <= 0x1f.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        // Only the low 16 bits can be set, one per byte.
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// [`plain_prefix_len`] eight bytes at a time, the last eight overlapping
/// the ones before, so that no byte is read alone unless the text is
/// shorter than a word.
fn plain_prefix_len_by_words(bytes: &[u8]) -> usize {
    let len = bytes.len();
    if len < 8 {
        return bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(len);
    }
    let flags_at = |i: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        escape_mask(u64::from_le_bytes(word))
    };
    let mut i = 0;
    while i + 8 <= len {
        let mask = flags_at(i);
        if mask != 0 {
            // The lowest flagged byte is exact (see `escape_mask`).
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < len {
        // The bytes before `i` are plain, so the lowest flag of the last
        // word, if any, is at or after `i`.
        let last = len - 8;
        let mask = flags_at(last);
        if mask != 0 {
            return last + (mask.trailing_zeros() / 8) as usize;
        }
    }
    len
}

/// The bytes of `word` (little-endian) that are `"`, `\` or below 0x20: a
/// byte's high bit is set when it needs an escape. Above the first such
/// byte a borrow can flag others falsely, so only the lowest set bit is
/// exact; zero means none needs one.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte is zero in `x` exactly when its high bit ends up set here
    // (for bytes below 0x80; the `!x` term rules out the others).
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0xf)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn every_byte_escapes_at_every_offset_of_a_word() {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', 'é', ' ', '~', '\u{7f}',
        ];
        // Every length up to three SSE2 blocks, so that the special byte
        // is also in the overlapping last word or block, and in texts
        // shorter than a word or a block.
        for c in specials {
            for len in 1..50 {
                for at in 0..len {
                    let text: String = (0..len).map(|i| if i == at { c } else { 'a' }).collect();
                    let mut out = String::new();
                    write_str(&mut out, &text);
                    assert_eq!(out, serde_json::to_string(&text).unwrap(), "{c:?} at {at}");
                }
            }
        }
    }

    /// Both scans say the same of every text the exhaustive tests write
    /// (on x86_64, `plain_prefix_len` is the SSE2 scan from 16 bytes on).
    #[test]
    fn the_sse2_and_word_scans_agree() {
        let specials = [
            b'"', b'\\', b'\n', 0, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff, b'a',
        ];
        for len in 0..50 {
            for at in 0..=len {
                for &c in &specials {
                    let mut text = vec![b'a'; len];
                    if at < len {
                        text[at] = c;
                    }
                    assert_eq!(
                        plain_prefix_len(&text),
                        plain_prefix_len_by_words(&text),
                        "{text:?}"
                    );
                }
            }
        }
    }

    /// Two bytes in one word: a borrow from the first may flag bytes
    /// above it, and the second must still be found.
    #[test]
    fn every_pair_of_bytes_escapes_within_a_word() {
        let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'é', '\u{7f}', 'a'];
        for first in specials {
            for second in specials {
                for at in 0..9 {
                    for gap in 1..4 {
                        let text: String = (0..16)
                            .map(|i| match i {
                                i if i == at => first,
                                i if i == at + gap => second,
                                _ => 'b',
                            })
                            .collect();
                        let mut out = String::new();
                        write_str(&mut out, &text);
                        assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
                    }
                }
            }
        }
    }

    /// Writes the same members to plain JSON and to `Escaped`.
    fn both_ways(write: impl Fn(&mut dyn FnMut(&str, &str, i64))) -> (String, String, usize) {
        let mut plain = String::new();
        let mut escaped = String::new();
        let mut e = Escaped::new(&mut escaped);
        plain.char('{');
        e.char('{');
        write(&mut |key, value, n| {
            for out in [&mut plain as &mut dyn JsonOut, &mut e as &mut dyn JsonOut] {
                out.string(key);
                out.char(':');
                out.string(value);
                out.char(',');
                out.member_name("n_2");
                out.int(n);
                out.char(',');
            }
        });
        plain.text("\"end\":true}");
        e.text("\"end\":true}");
        let len = e.len();
        (plain, escaped, len)
    }

    #[test]
    fn numbers_both_ways() {
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (-1, "-1"),
            (1_712_345_678_901, "1712345678901"),
            (i64::MIN, "-9223372036854775808"),
            (i64::MAX, "9223372036854775807"),
        ] {
            let mut plain = String::new();
            plain.int(n);
            let mut escaped = String::new();
            let mut e = Escaped::new(&mut escaped);
            e.int(n);
            assert_eq!((plain.as_str(), e.len()), (want, want.len()));
            assert_eq!(escaped, want);
        }
        for n in [0, 7, 200, u64::MAX] {
            let mut out = String::new();
            out.uint(n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn escaped_text_is_the_plain_text_as_a_json_string() {
        let values = [
            "",
            "plain",
            "a\"quote",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{0}\u{1f}\u{7f}",
            "é and 日本",
            "\\\"",
            "{\"nested\":\"json\"}",
        ];
        let (plain, escaped, len) = both_ways(|member| {
            for (i, v) in values.iter().enumerate() {
                member(&format!("key{i}\""), v, -(i as i64) * 1000);
            }
        });
        let back: String = serde_json::from_str(&format!("\"{escaped}\"")).unwrap();
        assert_eq!(back, plain);
        assert_eq!(len, plain.len());
        assert_eq!(escaped, escape(&plain));
        serde_json::from_str::<serde_json::Value>(&plain).unwrap();
    }

    #[test]
    fn an_escaped_plain_string_is_one_copy_between_escaped_quotes() {
        let mut out = String::from("x");
        let mut e = Escaped::new(&mut out);
        e.string("GET /api");
        e.char('"');
        e.char('\u{1}');
        e.char('é');
        assert_eq!(e.len(), 10 + 1 + 1 + 2);
        assert_eq!(out, r#"x\"GET /api\"\"\u0001é"#);
    }
}
