//! Query-string redaction and user patterns: what must never leave the process.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::field::Field;
use crate::record::{AccessRecord, Role, Value};

/// What replaces a redacted value.
pub const REDACTED: &str = "REDACTED";

/// What to do with URL query strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryMode {
    /// Keep every key, replace every value with `REDACTED` unless its key is
    /// on the allow-list.
    #[default]
    Redact,
    /// Remove the query string (and fragment) entirely.
    Drop,
    /// Leave query strings as they are.
    Keep,
}

impl QueryMode {
    pub const NAMES: [&'static str; 3] = ["redact", "drop", "keep"];
}

impl FromStr for QueryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redact" => Ok(QueryMode::Redact),
            "drop" => Ok(QueryMode::Drop),
            "keep" => Ok(QueryMode::Keep),
            other => Err(format!(
                "unknown redaction mode {other:?}: expected one of redact, drop, keep"
            )),
        }
    }
}

impl fmt::Display for QueryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryMode::Redact => "redact",
            QueryMode::Drop => "drop",
            QueryMode::Keep => "keep",
        })
    }
}

/// Redacts query strings of URLs and user-configured patterns.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    mode: QueryMode,
    /// Lower-case, percent-decoded query keys whose values are kept.
    allow: Vec<String>,
    patterns: Vec<Regex>,
}

impl Redactor {
    pub fn new(mode: QueryMode) -> Redactor {
        Redactor {
            mode,
            ..Redactor::default()
        }
    }

    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// Keeps the values of query parameter `key` (matched case-insensitively
    /// after percent-decoding).
    pub fn allow(&mut self, key: &str) {
        self.allow.push(percent_decode(key).to_lowercase());
    }

    /// Redacts every match of `pattern` in every text value and application
    /// line. If the pattern has a group named `secret`, only that group is
    /// replaced (`token=(?P<secret>\w+)` keeps `token=`).
    pub fn add_pattern(&mut self, pattern: &str) -> Result<(), regex::Error> {
        self.patterns.push(Regex::new(pattern)?);
        Ok(())
    }

    fn is_allowed(&self, raw_key: &str) -> bool {
        !self.allow.is_empty() && {
            let key = percent_decode(raw_key).to_lowercase();
            self.allow.contains(&key)
        }
    }

    /// Redacts the query string (and fragment) of a URL or request target.
    pub fn redact_url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        // memchr itself: `str::find(char)` wraps it in a searcher that
        // cost more than the search, for every access record's path.
        let Some(q) = memchr::memchr(b'?', url.as_bytes()) else {
            return Cow::Borrowed(url);
        };
        match self.mode {
            QueryMode::Keep => Cow::Borrowed(url),
            QueryMode::Drop => Cow::Borrowed(&url[..q]),
            QueryMode::Redact => {
                let mut out = String::with_capacity(url.len() + 16);
                out.push_str(&url[..=q]);
                let query = &url[q + 1..];
                match memchr::memchr(b'#', query.as_bytes()) {
                    Some(hash) => {
                        self.push_redacted_query(&mut out, &query[..hash]);
                        out.push('#');
                        self.push_redacted_query(&mut out, &query[hash + 1..]);
                    }
                    None => self.push_redacted_query(&mut out, query),
                }
                if out == url {
                    Cow::Borrowed(url)
                } else {
                    Cow::Owned(out)
                }
            }
        }
    }

    /// `a=1&b=2` -> `a=REDACTED&b=REDACTED`, keeping allowed keys, bare keys
    /// and empty values as they are.
    fn push_redacted_query(&self, out: &mut String, query: &str) {
        // Split at the ASCII `&` and `=` by byte (char boundaries, so the
        // slices are `str`s), without `str::split`'s searcher per call.
        let mut rest = query;
        loop {
            let end = memchr::memchr(b'&', rest.as_bytes()).unwrap_or(rest.len());
            let param = &rest[..end];
            match memchr::memchr(b'=', param.as_bytes()) {
                Some(eq) if eq + 1 < param.len() && !self.is_allowed(&param[..eq]) => {
                    out.push_str(&param[..=eq]);
                    out.push_str(REDACTED);
                }
                _ => out.push_str(param),
            }
            if end == rest.len() {
                return;
            }
            out.push('&');
            rest = &rest[end + 1..];
        }
    }

    /// Redacts free text (an application line): the query strings of URLs
    /// inside it, then the user patterns.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let text = self.redact_embedded_queries(text);
        match text {
            Cow::Borrowed(t) => self.apply_patterns(t),
            Cow::Owned(t) => Cow::Owned(self.apply_patterns(&t).into_owned()),
        }
    }

    /// Finds `?key=value...` attached to a word (a URL or path) and redacts it.
    fn redact_embedded_queries<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.mode == QueryMode::Keep {
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        for q in memchr::memchr_iter(b'?', bytes) {
            if q < copied || q == 0 || ends_query(bytes[q - 1]) {
                continue;
            }
            let end = bytes[q + 1..]
                .iter()
                .position(|&b| ends_query(b))
                .map_or(bytes.len(), |n| q + 1 + n);
            let query = &text[q + 1..end];
            if !looks_like_query(query) {
                continue;
            }
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            out.push_str(&text[copied..q]);
            if self.mode == QueryMode::Redact {
                out.push('?');
                self.push_redacted_query(out, query);
            }
            copied = end;
        }
        match out {
            Some(mut out) => {
                out.push_str(&text[copied..]);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(text),
        }
    }

    fn apply_patterns<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for pattern in &self.patterns {
            if let Cow::Owned(replaced) = replace_pattern(pattern, &text) {
                text = Cow::Owned(replaced);
            }
        }
        text
    }

    /// Redacts every field of an access record that may carry a secret.
    /// Returns how many values changed.
    pub fn redact_record(&self, record: &mut AccessRecord<'_>) -> usize {
        let mut changed = 0;
        if let Some(Value::Str(path)) = record.known_mut(Field::Path) {
            changed += replace_cow(path, |p| self.redact_url(p));
        }
        let mode = self.mode;
        record
            .extras_mut()
            .retain_mut(|extra| match (&extra.role, &mut extra.value) {
                (Role::Url, Value::Str(url)) => {
                    changed += replace_cow(url, |u| self.redact_url(u));
                    true
                }
                (Role::Url, Value::Raw(raw)) => {
                    changed += replace_cow(raw, |r| self.redact_embedded_queries(r));
                    true
                }
                (Role::QueryParam(key), value) => match mode {
                    QueryMode::Keep => true,
                    QueryMode::Drop => {
                        changed += 1;
                        false
                    }
                    QueryMode::Redact if self.is_allowed(key) => true,
                    QueryMode::Redact => {
                        *value = Value::Str(Cow::Borrowed(REDACTED));
                        changed += 1;
                        true
                    }
                },
                _ => true,
            });
        if !self.patterns.is_empty() {
            for field in Field::ALL {
                if let Some(Value::Str(s) | Value::Raw(s)) = record.known_mut(field) {
                    changed += replace_cow(s, |t| self.apply_patterns(t));
                }
            }
            for extra in record.extras_mut() {
                if let Value::Str(s) | Value::Raw(s) = &mut extra.value {
                    changed += replace_cow(s, |t| self.apply_patterns(t));
                }
            }
        }
        changed
    }
}

/// Replaces `value` with `f(value)` when that changed it; returns 1 if so.
fn replace_cow<'a>(value: &mut Cow<'a, str>, f: impl Fn(&str) -> Cow<'_, str>) -> usize {
    let replaced = match f(value) {
        Cow::Borrowed(b) if b.len() == value.len() => return 0,
        other => other.into_owned(),
    };
    *value = Cow::Owned(replaced);
    1
}

fn replace_pattern<'a>(pattern: &Regex, text: &'a str) -> Cow<'a, str> {
    let secret_group = pattern.capture_names().any(|n| n == Some("secret"));
    if !secret_group {
        return pattern.replace_all(text, REDACTED);
    }
    pattern.replace_all(text, |caps: &regex::Captures<'_>| {
        let (Some(whole), Some(secret)) = (caps.get(0), caps.name("secret")) else {
            return caps
                .get(0)
                .map_or(String::new(), |m| m.as_str().to_string());
        };
        let mut out = String::with_capacity(whole.len());
        out.push_str(&text[whole.start()..secret.start()]);
        out.push_str(REDACTED);
        out.push_str(&text[secret.end()..whole.end()]);
        out
    })
}

/// Bytes that end a URL embedded in free text.
fn ends_query(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\' | b')' | b']' | b'}'
        )
}

/// `key=value` pairs joined by `&`, the first with a plausible key.
fn looks_like_query(query: &str) -> bool {
    let first = query.split('&').next().unwrap_or_default();
    match first.split_once('=') {
        Some((key, _)) => {
            !key.is_empty()
                && key.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'-' | b'.' | b'%' | b'[' | b']' | b'+')
                })
        }
        None => false,
    }
}

/// Percent-decodes (and turns `+` into a space, as form encoding does);
/// invalid escapes stay as written.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(mode: QueryMode, allow: &[&str]) -> Redactor {
        let mut r = Redactor::new(mode);
        for key in allow {
            r.allow(key);
        }
        r
    }

    #[test]
    fn urls_by_mode() {
        let cases = [
            (QueryMode::Redact, "/a", "/a"),
            (
                QueryMode::Redact,
                "/a?token=abc&page=2",
                "/a?token=REDACTED&page=REDACTED",
            ),
            (
                QueryMode::Redact,
                "/a?flag&empty=&x=1",
                "/a?flag&empty=&x=REDACTED",
            ),
            (
                QueryMode::Redact,
                "/a?x=1#access_token=t0k",
                "/a?x=REDACTED#access_token=REDACTED",
            ),
            (QueryMode::Redact, "/a?x=a=b", "/a?x=REDACTED"),
            (QueryMode::Drop, "/a?token=abc#f", "/a"),
            (QueryMode::Keep, "/a?token=abc", "/a?token=abc"),
        ];
        for (mode, url, expected) in cases {
            assert_eq!(
                redactor(mode, &[]).redact_url(url),
                expected,
                "{mode} {url}"
            );
        }
    }

    #[test]
    fn allow_list_matches_decoded_keys_case_insensitively() {
        let r = redactor(QueryMode::Redact, &["page", "Sort"]);
        assert_eq!(
            r.redact_url("/a?PAGE=2&%73ort=asc&p%61ge=3&token=x"),
            "/a?PAGE=2&%73ort=asc&p%61ge=3&token=REDACTED"
        );
        let r = redactor(QueryMode::Redact, &["%74oken"]);
        assert_eq!(r.redact_url("/a?token=x&TOKEN=y"), "/a?token=x&TOKEN=y");
    }

    #[test]
    fn free_text() {
        let r = redactor(QueryMode::Redact, &[]);
        let cases = [
            ("no urls here", "no urls here"),
            ("Is it ok?yes", "Is it ok?yes"),
            ("what? x=1", "what? x=1"),
            (
                "GET https://api.example.com/v1/pay?card=4111&cvv=123 failed",
                "GET https://api.example.com/v1/pay?card=REDACTED&cvv=REDACTED failed",
            ),
            (
                r#"{"url":"/cb?code=abc","n":1}"#,
                r#"{"url":"/cb?code=REDACTED","n":1}"#,
            ),
            ("':path', '/x?sig=s3cr3t'", "':path', '/x?sig=REDACTED'"),
        ];
        for (text, expected) in cases {
            assert_eq!(r.redact_text(text), expected, "{text}");
        }
        let r = redactor(QueryMode::Drop, &[]);
        assert_eq!(r.redact_text("see /a?k=v now"), "see /a now");
        let r = redactor(QueryMode::Keep, &[]);
        assert_eq!(r.redact_text("see /a?k=v now"), "see /a?k=v now");
    }

    #[test]
    fn patterns_with_and_without_secret_group() {
        let mut r = Redactor::new(QueryMode::Keep);
        r.add_pattern(r"Bearer (?P<secret>[A-Za-z0-9._-]+)")
            .unwrap();
        r.add_pattern(r"\b\d{16}\b").unwrap();
        assert_eq!(
            r.redact_text("auth=Bearer abc.def card 4111111111111111"),
            "auth=Bearer REDACTED card REDACTED"
        );
        assert!(r.add_pattern("(").is_err());
    }

    #[test]
    fn query_param_operator_values() {
        use crate::record::{AccessRecord, Role, Value};
        let mut record = AccessRecord::default();
        record.push_extra(
            "query_param_token".into(),
            Value::Str("abc".into()),
            Role::QueryParam("token".into()),
        );
        record.push_extra(
            "query_param_page".into(),
            Value::Str("2".into()),
            Role::QueryParam("page".into()),
        );
        let mut redact = record.clone();
        assert_eq!(
            redactor(QueryMode::Redact, &["page"]).redact_record(&mut redact),
            1
        );
        assert_eq!(
            redact.extra("query_param_token"),
            Some(&Value::Str(REDACTED.into()))
        );
        assert_eq!(
            redact.extra("query_param_page"),
            Some(&Value::Str("2".into()))
        );
        let mut drop = record.clone();
        assert_eq!(redactor(QueryMode::Drop, &[]).redact_record(&mut drop), 2);
        assert!(drop.extras().is_empty());
    }

    #[test]
    fn mode_names() {
        for name in QueryMode::NAMES {
            assert_eq!(name.parse::<QueryMode>().unwrap().to_string(), name);
        }
        assert!("hide".parse::<QueryMode>().is_err());
    }
}
