//! A `[PARSER]`'s `Decode_Field` and `Decode_Field_As` rules, run on what
//! the parser read as `flb_parser_decoder_do` (`src/flb_parser_decoder.c`,
//! v5.1.1) runs them, and Fluent Bit's three unescapers
//! (`src/flb_unescape.c`), which logfmt values use too.
//!
//! A rule is `DECODER FIELD [ACTION]`. The rules of one field run in the
//! order written, on a string value of that key:
//! - `Decode_Field_As` replaces the value with what the decoder gives (a
//!   decoded JSON object as an object), and later rules read that;
//! - `Decode_Field` keeps the value and adds the keys of the JSON object
//!   the decoder gives to the record (a string it gives adds nothing, as
//!   Fluent Bit logs "string type is not allowed").
//!
//! Only `json` can fail: a value that is not one JSON object. On failure
//! `try_next` and `do_next` go on to the next rule, no action stops; on
//! success only `do_next` goes on.

use serde_json::{Map, Value as Json};

/// The decoding rules of one parser, by field.
#[derive(Debug, Default)]
pub struct Decoders {
    fields: Vec<FieldRules>,
}

#[derive(Debug)]
struct FieldRules {
    key: String,
    rules: Vec<Rule>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rule {
    /// `Decode_Field` (adds keys), else `Decode_Field_As`.
    adds_keys: bool,
    decoder: Decoder,
    action: Action,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Decoder {
    Json,
    Escaped,
    EscapedUtf8,
    MysqlQuoted,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    Stop,
    TryNext,
    DoNext,
}

impl Decoders {
    /// Reads one rule, the value of a `Decode_Field` (`adds_keys`) or a
    /// `Decode_Field_As`. Unlike Fluent Bit, an action that is neither
    /// `try_next` nor `do_next` is an error, not a silent stop.
    pub fn add(&mut self, adds_keys: bool, value: &str) -> Result<(), String> {
        let words: Vec<&str> = value.split_whitespace().collect();
        let (decoder, key, action) = match words[..] {
            [decoder, key] => (decoder, key, None),
            [decoder, key, action] => (decoder, key, Some(action)),
            _ => return Err(format!("{value:?} is not DECODER FIELD [ACTION]")),
        };
        let decoder = match decoder.to_ascii_lowercase().as_str() {
            "json" => Decoder::Json,
            "escaped" => Decoder::Escaped,
            "escaped_utf8" => Decoder::EscapedUtf8,
            "mysql_quoted" => Decoder::MysqlQuoted,
            _ => {
                return Err(format!(
                    "{value:?}: the decoder {decoder:?} is not json, escaped, escaped_utf8 or mysql_quoted"
                ))
            }
        };
        let action = match action.map(str::to_ascii_lowercase).as_deref() {
            None => Action::Stop,
            Some("try_next") => Action::TryNext,
            Some("do_next") => Action::DoNext,
            Some(_) => {
                return Err(format!(
                    "{value:?}: the action {:?} is not try_next or do_next",
                    action.unwrap_or_default()
                ))
            }
        };
        let rule = Rule {
            adds_keys,
            decoder,
            action,
        };
        match self.fields.iter_mut().find(|f| f.key == key) {
            Some(field) => field.rules.push(rule),
            None => self.fields.push(FieldRules {
                key: key.to_string(),
                rules: vec![rule],
            }),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Runs the rules on `fields`. Added keys replace keys of the same
    /// name (Fluent Bit appends them, and a JSON reader takes the last).
    pub fn apply(&self, fields: &mut Map<String, Json>) {
        if self.fields.is_empty() {
            return;
        }
        let mut added = Vec::new();
        for (key, value) in fields.iter_mut() {
            let Json::String(text) = value else { continue };
            let Some(field) = self.fields.iter().find(|f| f.key == *key) else {
                continue;
            };
            let (replaced, adds) = field.run(text);
            if let Some(replaced) = replaced {
                *value = replaced;
            }
            if let Some(Json::Object(adds)) = adds {
                added.extend(adds);
            }
        }
        fields.extend(added);
    }
}

impl FieldRules {
    /// The value's replacement (`Decode_Field_As`) and what the last
    /// successful `Decode_Field` gave, as `flb_parser_decoder_do` finds
    /// them.
    fn run(&self, text: &str) -> (Option<Json>, Option<Json>) {
        let mut data = text.to_string();
        let (mut replaced, mut adds): (Option<Json>, Option<Json>) = (None, None);
        for rule in &self.rules {
            if rule.adds_keys && rule.action == Action::DoNext && adds.is_some() {
                continue;
            }
            // Nothing decodes a value already decoded into an object.
            if replaced.as_ref().is_some_and(|r| !r.is_string()) {
                continue;
            }
            let Some(out) = rule.decoder.decode(&data) else {
                if rule.action == Action::Stop {
                    break;
                }
                continue;
            };
            if rule.adds_keys {
                adds = Some(out);
            } else {
                if let Json::String(text) = &out {
                    data.clone_from(text);
                }
                replaced = Some(out);
            }
            if rule.action != Action::DoNext {
                break;
            }
        }
        (replaced, adds)
    }
}

impl Decoder {
    fn decode(self, text: &str) -> Option<Json> {
        match self {
            Decoder::Json => decode_json(text),
            Decoder::Escaped => Some(Json::String(unescape(text))),
            Decoder::EscapedUtf8 => Some(Json::String(unescape_utf8(text))),
            Decoder::MysqlQuoted => Some(Json::String(mysql_unquote(text))),
        }
    }
}

/// `decode_json`: after leading spaces, one JSON object.
fn decode_json(text: &str) -> Option<Json> {
    let text = text.trim_start_matches(' ');
    if !text.starts_with('{') {
        return None;
    }
    one_json_object(text).map(Json::Object)
}

/// What Fluent Bit's JSON reader (`flb_pack_json_recs`) takes for one
/// object: a JSON object, then nothing but whitespace, or text that is not
/// JSON (ignored). A second JSON value makes two records, which the
/// parsers refuse.
///
/// A `\uD800`-`\uDFFF` escape that is not half of a surrogate pair (which
/// JavaScript's `JSON.stringify` writes for a broken string) is U+FFFD, as
/// Fluent Bit v5.1.1 reads it; serde_json refuses the text, which is then
/// read again with those escapes replaced.
///
/// The integer `-0` is 0 ([`integer_minus_zero_as_zero`]).
pub fn one_json_object(text: &str) -> Option<Map<String, Json>> {
    let read = |text: &str| {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<Json>();
        let Some(Ok(Json::Object(fields))) = values.next() else {
            return None;
        };
        match values.next() {
            Some(Ok(_)) => None,
            None | Some(Err(_)) => Some(fields),
        }
    };
    let read = |text: &str| read(text).or_else(|| read(&lone_surrogates_replaced(text)?));
    let fields = read(text)?;
    Some(integer_minus_zero_as_zero(fields, text, read))
}

/// `fields`, read from `text` by `read`, with each integer `-0` the integer
/// 0, as Fluent Bit's JSON readers give it; serde_json gives the float
/// -0.0. Only a record that holds a negative zero is read again.
pub fn integer_minus_zero_as_zero(
    fields: Map<String, Json>,
    text: &str,
    read: impl Fn(&str) -> Option<Map<String, Json>>,
) -> Map<String, Json> {
    if !fields.values().any(holds_negative_zero) {
        return fields;
    }
    read(&integer_negative_zeros_written_zero(text)).unwrap_or(fields)
}

/// Whether a value is, or holds, the float -0.0.
fn holds_negative_zero(value: &Json) -> bool {
    match value {
        Json::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()),
        Json::Array(items) => items.iter().any(holds_negative_zero),
        Json::Object(fields) => fields.values().any(holds_negative_zero),
        _ => false,
    }
}

/// `text` with every number `-0` that has no fraction or exponent (outside
/// strings) written `0`.
fn integer_negative_zeros_written_zero(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at, mut in_string) = (0, 0, false);
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if in_string => at += 1,
            b'"' => in_string = !in_string,
            b'-' if !in_string
                && bytes.get(at + 1) == Some(&b'0')
                && !bytes
                    .get(at + 2)
                    .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E')) =>
            {
                out.push_str(&text[copied..at]);
                copied = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// `text` with every escaped surrogate that has no partner written
/// `\uFFFD`; `None` when it has none.
pub fn lone_surrogates_replaced(text: &str) -> Option<String> {
    // The value of a `\uXXXX` escape starting at `at`, if it is one.
    let escape_at = |at: usize| -> Option<u16> {
        let hex = text.get(at..at + 6)?.strip_prefix("\\u")?;
        u16::from_str_radix(hex, 16).ok()
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut copied, mut at, mut replaced) = (0, 0, false);
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        let Some(unit) = escape_at(at) else {
            // Another escape (`\\`, `\"`, ...): both characters.
            at += 2;
            continue;
        };
        let pair = (0xD800..0xDC00).contains(&unit)
            && escape_at(at + 6).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if pair {
            at += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            out.push_str(&text[copied..at]);
            out.push_str("\\uFFFD");
            at += 6;
            copied = at;
            replaced = true;
        } else {
            at += 6;
        }
    }
    replaced.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// `flb_unescape_string` (the `escaped` decoder): `\n`, `\a`, `\b`, `\t`,
/// `\v`, `\f`, `\r` and `\\`; before any other character the backslash is
/// dropped. A backslash that ends the text gives a NUL, as Fluent Bit
/// reads the string's terminator there.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut rest = chars.clone();
        match rest.next() {
            None => out.push('\0'),
            Some(next) => {
                if let Some(plain) = simple_escape(next) {
                    out.push(plain);
                    chars = rest;
                }
            }
        }
    }
    out
}

/// The one-letter escapes both unescapers read.
fn simple_escape(c: char) -> Option<char> {
    Some(match c {
        'n' => '\n',
        'a' => '\u{7}',
        'b' => '\u{8}',
        't' => '\t',
        'v' => '\u{b}',
        'f' => '\u{c}',
        'r' => '\r',
        '\\' => '\\',
        _ => return None,
    })
}

/// `flb_unescape_string_utf8` (the `escaped_utf8` decoder, and logfmt's
/// quoted values): the one-letter escapes, up to three octal digits,
/// `\x` with up to two hex digits, `\u` with four (a surrogate pair
/// joined, a lone or broken one U+FFFD, and, as in Fluent Bit, `\u`
/// before no hex digit a NUL), `\U` with up to eight; before any other
/// character the backslash is dropped, and one that ends the text stays.
/// The text ends at a NUL. A code Unicode has no character for is
/// U+FFFD (Fluent Bit writes bytes that are not UTF-8).
pub fn unescape_utf8(text: &str) -> String {
    let text = text.split('\0').next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(slash) = rest.find('\\') {
        out.push_str(&rest[..slash]);
        let escape = &rest[slash + 1..];
        let Some(first) = escape.chars().next() else {
            out.push('\\');
            return out;
        };
        let (code, used) = match first {
            '"' | '\'' | '/' => (first as u32, 1),
            _ if simple_escape(first).is_some() => (simple_escape(first).map_or(0, u32::from), 1),
            '0'..='7' => {
                let digits = leading(escape, 3, |b| matches!(b, b'0'..=b'7'));
                (
                    u32::from_str_radix(&escape[..digits], 8).unwrap_or(0),
                    digits,
                )
            }
            'x' | 'U' => {
                let most = if first == 'x' { 2 } else { 8 };
                let digits = leading(&escape[1..], most, |b| b.is_ascii_hexdigit());
                match digits {
                    0 => (first as u32, 1),
                    _ => (hex(&escape[1..=digits]), 1 + digits),
                }
            }
            'u' => utf16_escape(escape),
            // Any other character (the backslash dropped), whole.
            other => (other as u32, other.len_utf8()),
        };
        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
        rest = &escape[used..];
    }
    out.push_str(rest);
    out
}

/// `\uHHHH` (and a low half after a high one), from the `u`: the code and
/// the bytes used.
fn utf16_escape(escape: &str) -> (u32, usize) {
    const BROKEN: u32 = char::REPLACEMENT_CHARACTER as u32;
    let digits = leading(&escape[1..], 4, |b| b.is_ascii_hexdigit());
    let used = 1 + digits;
    if digits != 4 {
        // Fluent Bit reads no digits at all as 0.
        return (if digits == 0 { 0 } else { BROKEN }, used);
    }
    let high = hex(&escape[1..used]);
    if (0xDC00..=0xDFFF).contains(&high) {
        return (BROKEN, used);
    }
    if !(0xD800..=0xDBFF).contains(&high) {
        return (high, used);
    }
    let after = &escape[used..];
    if !(after.len() > 2 && after.starts_with("\\u")) {
        return (BROKEN, used);
    }
    let low_digits = leading(&after[2..], 4, |b| b.is_ascii_hexdigit());
    let used = used + 2 + low_digits;
    let low = hex(&after[2..2 + low_digits]);
    if low_digits != 4 || !(0xDC00..=0xDFFF).contains(&low) {
        return (BROKEN, used);
    }
    (0x10000 + (((high - 0xD800) << 10) | (low - 0xDC00)), used)
}

/// How many of the first `most` bytes of `text` are `digit`s, in a row.
fn leading(text: &str, most: usize, digit: impl Fn(u8) -> bool) -> usize {
    text.bytes().take(most).take_while(|&b| digit(b)).count()
}

fn hex(digits: &str) -> u32 {
    u32::from_str_radix(digits, 16).unwrap_or(0)
}

/// `decode_mysql_quoted`: a value in single or double quotes loses them,
/// and `\n`, `\r`, `\t`, `\\`, `\'`, `\"`, `\0` (NUL) and `\Z` (0x1A) in
/// it are unescaped; any other escape stays as written. Anything else is
/// left as it is.
pub fn mysql_unquote(text: &str) -> String {
    let quoted = text.len() >= 2
        && [b'\'', b'"']
            .iter()
            .any(|&q| text.as_bytes()[0] == q && text.as_bytes()[text.len() - 1] == q);
    if !quoted {
        return text.to_string();
    }
    let inner = &text[1..text.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('Z') => out.push('\u{1a}'),
            Some(c @ ('\\' | '\'' | '"')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Lone surrogate escapes are U+FFFD, as Fluent Bit v5.1.1's JSON
    /// parser gives `{"bad":"\ud800"}`; pairs, and escaped backslashes
    /// before a `u`, stay as they are.
    #[test]
    fn lone_surrogates_read_as_the_replacement_character() {
        let read = |text: &str| one_json_object(text).map(Json::Object);
        assert_eq!(
            read(r#"{"bad":"\ud800"}"#),
            Some(json!({"bad": "\u{fffd}"}))
        );
        assert_eq!(
            read(r#"{"a":"x\udc00y\uD83D","b":"\ud83d\ude00"}"#),
            Some(json!({"a": "x\u{fffd}y\u{fffd}", "b": "😀"}))
        );
        assert_eq!(read(r#"{"a":"\\ud800"}"#), Some(json!({"a": "\\ud800"})));
        assert_eq!(lone_surrogates_replaced(r#"{"a":"\ud83d\ude00 é"}"#), None);
        assert_eq!(read(r#"{"a":"\ud800"#), None);
    }

    /// Fluent Bit v5.1.1's json parser gave, for the first line,
    /// `{"a":0,"b":-0.0,"c":[0,1],"d":"-0","e":{"f":0},"g":-0.0}`
    /// (`scripts/same_as_fluent_bit.py`).
    #[test]
    fn the_integer_minus_zero_is_zero() {
        let read = |text: &str| one_json_object(text).map(Json::Object);
        let negative_zero = Json::from(-0.0);
        assert_eq!(
            read(r#"{"a":-0,"b":-0.0,"c":[-0,1],"d":"-0","e":{"f":-0},"g":-0e0}"#),
            Some(
                json!({"a": 0, "b": negative_zero, "c": [0, 1], "d": "-0", "e": {"f": 0}, "g": negative_zero})
            )
        );
        assert_eq!(
            read(r#"{"a":-0,"s":"\ud800"}"#),
            Some(json!({"a": 0, "s": "\u{fffd}"}))
        );
        let read_b = read(r#"{"b":-0.0,"s":"\"-0"}"#).unwrap();
        assert!(read_b["b"].as_f64().unwrap().is_sign_negative());
        assert_eq!(read_b["s"], json!("\"-0"));
        assert_eq!(
            integer_negative_zeros_written_zero(r#"{"s":"a\" -0","n":-0,"m":-0.5,"k":-01}"#),
            r#"{"s":"a\" -0","n":0,"m":-0.5,"k":-01}"#
        );
    }

    fn decoders(rules: &[(bool, &str)]) -> Decoders {
        let mut d = Decoders::default();
        for (adds_keys, rule) in rules {
            d.add(*adds_keys, rule).unwrap();
        }
        d
    }

    fn applied(d: &Decoders, record: Json) -> Json {
        let Json::Object(mut fields) = record else {
            panic!("not an object")
        };
        d.apply(&mut fields);
        Json::Object(fields)
    }

    #[test]
    fn decode_field_as_json_replaces_the_value() {
        let d = decoders(&[(false, "json log")]);
        assert_eq!(
            applied(
                &d,
                json!({"log": " {\"a\":1,\"b\":\"x\"}\n", "stream": "stdout"})
            ),
            json!({"log": {"a": 1, "b": "x"}, "stream": "stdout"})
        );
        // Not one object: the value stays.
        for text in [
            "[1,2]",
            "{\"a\":1} {\"b\":2}",
            "{\"a\":1} 5",
            "plain",
            "{\"a\":",
            "\t{\"a\":1}",
        ] {
            assert_eq!(
                applied(&d, json!({ "log": text })),
                json!({ "log": text }),
                "{text}"
            );
        }
        // Text that is not JSON after the object is ignored.
        for text in ["{\"a\":1} x", "{\"a\":1}\n{"] {
            assert_eq!(
                applied(&d, json!({ "log": text })),
                json!({"log": {"a": 1}}),
                "{text}"
            );
        }
        // A value that is not a string is not decoded.
        assert_eq!(applied(&d, json!({"log": 5})), json!({"log": 5}));
    }

    #[test]
    fn decode_field_json_adds_the_keys() {
        let d = decoders(&[(true, "json log")]);
        assert_eq!(
            applied(
                &d,
                json!({"log": "{\"level\":\"info\",\"stream\":\"x\"}", "stream": "stdout"})
            ),
            json!({"log": "{\"level\":\"info\",\"stream\":\"x\"}", "level": "info", "stream": "x"})
        );
        // A string decoder adds nothing.
        let d = decoders(&[(true, "escaped log")]);
        assert_eq!(
            applied(&d, json!({"log": "a\\tb"})),
            json!({"log": "a\\tb"})
        );
    }

    #[test]
    fn actions_chain_the_rules_of_a_field() {
        // The docker parser's commented rules: unescape, then read JSON.
        let d = decoders(&[(false, "escaped_utf8 log do_next"), (false, "json log")]);
        assert_eq!(
            applied(&d, json!({"log": "{\\\"a\\\":\\u00e9}"})),
            json!({"log": "{\"a\":é}"})
        );
        assert_eq!(
            applied(&d, json!({"log": "{\\\"a\\\":\\\"\\u00e9\\\"}"})),
            json!({"log": {"a": "é"}})
        );
        // Without an action a failed json stops; try_next goes on.
        let stop = decoders(&[(false, "json log"), (false, "escaped log")]);
        assert_eq!(
            applied(&stop, json!({"log": "a\\tb"})),
            json!({"log": "a\\tb"})
        );
        let next = decoders(&[(false, "json log try_next"), (false, "escaped log")]);
        assert_eq!(
            applied(&next, json!({"log": "a\\tb"})),
            json!({"log": "a\tb"})
        );
        // Success without do_next stops.
        let first = decoders(&[(false, "escaped log"), (false, "mysql_quoted log")]);
        assert_eq!(
            applied(&first, json!({"log": "'a'"})),
            json!({"log": "'a'"})
        );
        // An object is not decoded again.
        let twice = decoders(&[(false, "json log do_next"), (false, "escaped log")]);
        assert_eq!(
            applied(&twice, json!({"log": "{\"a\":\"\\\\t\"}"})),
            json!({"log": {"a": "\\t"}})
        );
        // Both kinds on one field: the value replaced, and keys added from
        // the replaced text.
        let both = decoders(&[(false, "escaped_utf8 log do_next"), (true, "json log")]);
        assert_eq!(
            applied(&both, json!({"log": "{\\\"k\\\":1}"})),
            json!({"log": "{\"k\":1}", "k": 1})
        );
    }

    #[test]
    fn rules_are_checked_when_read() {
        let mut d = Decoders::default();
        assert_eq!(
            d.add(false, "json"),
            Err("\"json\" is not DECODER FIELD [ACTION]".into())
        );
        assert_eq!(
            d.add(false, "yaml log"),
            Err("\"yaml log\": the decoder \"yaml\" is not json, escaped, escaped_utf8 or mysql_quoted".into())
        );
        assert_eq!(
            d.add(true, "json log do_nxt"),
            Err("\"json log do_nxt\": the action \"do_nxt\" is not try_next or do_next".into())
        );
        assert!(d.is_empty());
        d.add(true, "JSON log Try_Next").unwrap();
        assert!(!d.is_empty());
    }

    #[test]
    fn escaped_as_fluent_bit_unescapes() {
        assert_eq!(unescape(r#"a\nb\tc\\d\"e\q"#), "a\nb\tc\\d\"eq");
        assert_eq!(unescape(r"\a\b\v\f\r"), "\u{7}\u{8}\u{b}\u{c}\r");
        assert_eq!(unescape(r"\u00e9 é"), "u00e9 é");
        assert_eq!(unescape("end\\"), "end\0");
    }

    #[test]
    fn escaped_utf8_as_fluent_bit_unescapes() {
        let cases = [
            (
                r#"\"q\" \' \/ \\ \n\b\t\f\r"#,
                "\"q\" ' / \\ \n\u{8}\t\u{c}\r",
            ),
            (r"\a\v", "\u{7}\u{b}"),
            (r"\101\0x\1019", "A\0xA9"),
            (r"\xe9\x41\xg", "éAxg"),
            (r"\u00e9\u20AC", "é€"),
            (r"\ud83d\ude00!", "😀!"),
            (
                r"\ude00 \ud83d \ud83d\u0041 \u12",
                "\u{fffd} \u{fffd} \u{fffd} \u{fffd}",
            ),
            (r"\uzz", "\0zz"),
            (r"\U0001F600\U110000\U", "😀\u{fffd}U"),
            (r"\q\é", "qé"),
            ("trailing\\", "trailing\\"),
            ("stops\0here", "stops"),
        ];
        for (text, want) in cases {
            assert_eq!(unescape_utf8(text), want, "{text}");
        }
    }

    #[test]
    fn mysql_quoted_as_fluent_bit_unquotes() {
        let cases = [
            (r"'it\'s\n\Z\0'", "it's\n\u{1a}\0"),
            (r#""say \"hi\" \q""#, "say \"hi\" \\q"),
            (r"'end\'", "end\\"),
            ("'x\\", "'x\\"),
            ("unquoted 'x'", "unquoted 'x'"),
            ("'", "'"),
            ("", ""),
            ("''", ""),
        ];
        for (text, want) in cases {
            assert_eq!(mysql_unquote(text), want, "{text}");
        }
    }
    /// Each value, then what Fluent Bit v5.1.1 gave for it with the
    /// `escaped`, `escaped_utf8` and `mysql_quoted` decoders (a regex
    /// parser's `Decode_Field_As` on a `tail` input's lines, written by its
    /// `stdout` output as JSON lines).
    #[test]
    fn the_decoders_give_what_fluent_bit_gave() {
        let recorded = [
            (
                "\\\"q\\\" \\' \\/ \\\\ \\n\\b\\t\\f\\r",
                "\"q\" ' / \\ \n\u{8}\t\u{c}\r",
                "\"q\" ' / \\ \n\u{8}\t\u{c}\r",
                "\\\"q\\\" \\' \\/ \\\\ \\n\\b\\t\\f\\r",
            ),
            ("\\a\\v", "\u{7}\u{b}", "\u{7}\u{b}", "\\a\\v"),
            (
                "\\101\\0x\\1019",
                "1010x1019",
                "A\u{0}xA9",
                "\\101\\0x\\1019",
            ),
            ("\\xe9\\x41\\xg", "xe9x41xg", "éAxg", "\\xe9\\x41\\xg"),
            ("\\u00e9\\u20AC", "u00e9u20AC", "é€", "\\u00e9\\u20AC"),
            ("\\ud83d\\ude00!", "ud83dude00!", "😀!", "\\ud83d\\ude00!"),
            (
                "\\ude00 \\ud83d \\ud83d\\u0041 \\u12",
                "ude00 ud83d ud83du0041 u12",
                "� � � �",
                "\\ude00 \\ud83d \\ud83d\\u0041 \\u12",
            ),
            ("\\uzz", "uzz", "\u{0}zz", "\\uzz"),
            ("\\U0001F600\\U", "U0001F600U", "😀U", "\\U0001F600\\U"),
            ("\\q\\é", "qé", "qé", "\\q\\é"),
            ("trailing\\", "trailing\u{0}", "trailing\\", "trailing\\"),
            (
                "a\\nb\\tc\\\\d\\\"e\\q",
                "a\nb\tc\\d\"eq",
                "a\nb\tc\\d\"eq",
                "a\\nb\\tc\\\\d\\\"e\\q",
            ),
            (
                "'it\\'s\\n\\Z\\0'",
                "'it's\nZ0'",
                "'it's\nZ\u{0}'",
                "it's\n\u{1a}\u{0}",
            ),
            (
                "\"say \\\"hi\\\" \\q\"",
                "\"say \"hi\" q\"",
                "\"say \"hi\" q\"",
                "say \"hi\" \\q",
            ),
            ("'end\\'", "'end'", "'end'", "end\\"),
            ("'x\\", "'x\u{0}", "'x\\", "'x\\"),
            ("'", "'", "'", "'"),
            ("''", "''", "''", ""),
            ("\\u00e9x", "u00e9x", "éx", "\\u00e9x"),
        ];
        for (text, escaped, escaped_utf8, mysql_quoted) in recorded {
            assert_eq!(unescape(text), escaped, "escaped {text}");
            assert_eq!(unescape_utf8(text), escaped_utf8, "escaped_utf8 {text}");
            assert_eq!(mysql_unquote(text), mysql_quoted, "mysql_quoted {text}");
        }
    }

    proptest::proptest! {
        /// Any value, hostile escapes, NULs and unfinished sequences
        /// included, decodes or not, never a panic; without a backslash or
        /// a NUL, the unescapers give the text back.
        #[test]
        fn any_value_decodes_or_stays(text in "[ a-z\\\\\"'/nxuU0-9a-f{}\\[\\]:,é\u{1F600}\u{0}]{0,40}") {
            let _ = mysql_unquote(&text);
            let escaped = unescape(&text);
            let utf8 = unescape_utf8(&text);
            if !text.contains('\\') && !text.contains('\0') {
                proptest::prop_assert_eq!(&escaped, &text);
                proptest::prop_assert_eq!(&utf8, &text);
            }
            let d = decoders(&[(false, "escaped_utf8 log do_next"), (true, "json log try_next"), (false, "json log")]);
            let mut fields = serde_json::Map::new();
            fields.insert("log".into(), Json::String(text.clone()));
            d.apply(&mut fields);
        }
    }
}
