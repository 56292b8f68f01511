//! Route keys for per-route statistics: `METHOD /normalised/path`, with a
//! bounded number of distinct values.

use crate::error::{Error, ErrorKind};
use crate::field::Field;
use crate::record::{AccessRecord, Protocol};

/// The placeholder that replaces id-like path segments.
pub const ID_PLACEHOLDER: &str = "{id}";

/// Segments longer than this are data, not names, whatever they hold.
const LONG_SEGMENT: usize = 64;

/// User route templates (`/users/{id}/orders`, `/static/{*}`), tried in order
/// before the automatic normalisation.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    templates: Vec<Template>,
}

#[derive(Clone, Debug)]
struct Template {
    source: String,
    segments: Vec<TemplateSegment>,
}

#[derive(Clone, Debug, PartialEq)]
enum TemplateSegment {
    Literal(String),
    /// `{name}`: any one segment.
    Any,
    /// `{*}` or `{*name}` as the last segment: the rest of the path.
    Rest,
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds a template such as `/users/{id}/orders`. `{name}` matches one
    /// segment; a final `{*}` (or `{*name}`) matches the rest of the path.
    pub fn add_template(&mut self, template: &str) -> Result<(), Error> {
        let fail = |column, kind| Error {
            what: "route template",
            column,
            kind,
        };
        let Some(body) = template.strip_prefix('/') else {
            return Err(fail(1, ErrorKind::TemplateNotAbsolute));
        };
        let mut segments = Vec::new();
        let mut column = 2;
        let count = body.split('/').count();
        for (i, seg) in body.split('/').enumerate() {
            let parsed = if let Some(inner) = seg.strip_prefix('{') {
                let name = inner
                    .strip_suffix('}')
                    .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                    .ok_or(fail(column, ErrorKind::BadPlaceholder))?;
                if name.starts_with('*') && i + 1 == count {
                    TemplateSegment::Rest
                } else if name.starts_with('*') {
                    return Err(fail(column, ErrorKind::BadPlaceholder));
                } else {
                    TemplateSegment::Any
                }
            } else if seg.contains(['{', '}']) {
                return Err(fail(column, ErrorKind::BadPlaceholder));
            } else {
                TemplateSegment::Literal(seg.to_string())
            };
            segments.push(parsed);
            column += seg.chars().count() + 1;
        }
        self.templates.push(Template {
            source: template.to_string(),
            segments,
        });
        Ok(())
    }

    /// The route key of a record: `TCP` for TCP connections, otherwise the
    /// method, a space, and the first matching template or the normalised path.
    pub fn route_key(&self, record: &AccessRecord<'_>) -> String {
        if record.protocol() == Protocol::Tcp {
            return "TCP".to_string();
        }
        let method = record.str(Field::Method).unwrap_or("-");
        let mut key = String::with_capacity(method.len() + 32);
        key.push_str(method);
        key.push(' ');
        match record.str(Field::Path) {
            Some(path) => self.push_route(&mut key, path),
            None => key.push('-'),
        }
        key
    }

    /// Appends the route of `path` (query removed, template or normalised).
    fn push_route(&self, out: &mut String, path: &str) {
        let path = strip_query(strip_origin(path));
        if let Some(t) = self.templates.iter().find(|t| t.matches(path)) {
            out.push_str(&t.source);
            return;
        }
        normalise_path(out, path);
    }
}

impl Template {
    fn matches(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut parts = body.split('/');
        for seg in &self.segments {
            match seg {
                // The rest must hold at least one segment.
                TemplateSegment::Rest => return parts.next().is_some_and(|p| !p.is_empty()),
                TemplateSegment::Any => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                TemplateSegment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// `http://host:80/a?b` -> `/a?b`: absolute-form request targets.
fn strip_origin(path: &str) -> &str {
    // Nearly every path starts with `/`: no search for a scheme then.
    if path.starts_with('/') {
        return path;
    }
    match memchr::memmem::find(path.as_bytes(), b"://") {
        Some(scheme_end) => {
            let after = &path[scheme_end + 3..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        None => path,
    }
}

fn strip_query(path: &str) -> &str {
    let end = memchr::memchr2(b'?', b'#', path.as_bytes()).unwrap_or(path.len());
    &path[..end]
}

/// Appends `path` with id-like segments replaced by `{id}` and without a
/// trailing slash (except for `/` itself).
pub fn normalise_path(out: &mut String, path: &str) {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    // Segments are short: a plain byte loop finds each `/` sooner than
    // `str::split`'s searcher does.
    let bytes = trimmed.as_bytes();
    let mut start = 0;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |i| start + i);
        // `/` is ASCII, so both ends are char boundaries.
        let seg = &trimmed[start..end];
        if is_id_segment(seg) {
            out.push_str(ID_PLACEHOLDER);
        } else {
            out.push_str(seg);
        }
        if end == bytes.len() {
            return;
        }
        out.push('/');
        start = end + 1;
    }
}

/// Numbers, UUIDs, long hex strings, base64-like tokens and anything very long.
fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let b = seg.as_bytes();
    if b.len() > LONG_SEGMENT {
        return true;
    }
    // One pass over the segment (this runs for every segment of every
    // access record's path): which kinds of characters it holds.
    let (mut digits, mut hex_letters, mut other_letters, mut others) = (0, 0, 0, 0);
    for &c in b {
        match c {
            b'0'..=b'9' => digits += 1,
            b'a'..=b'f' | b'A'..=b'F' => hex_letters += 1,
            b'g'..=b'z' | b'G'..=b'Z' => other_letters += 1,
            b'-' | b'_' | b'+' | b'=' => {}
            _ => others += 1,
        }
    }
    if digits == b.len() || is_uuid(b) {
        return true;
    }
    if digits > 0 && digits + hex_letters == b.len() && b.len() >= 16 {
        return true;
    }
    // base64 / base64url ids (`dGhpcyBpcyBhbiBpZA`, `eyJhbGciOi...`): long,
    // only base64 characters, mixing digits and letters.
    let letters = hex_letters + other_letters;
    others == 0 && b.len() >= 20 && digits > 0 && letters > 0
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use proptest::prelude::*;

    /// The rules of `is_id_segment` written one check at a time.
    fn is_id_segment_reference(seg: &str) -> bool {
        let b = seg.as_bytes();
        if b.is_empty() {
            return false;
        }
        if b.len() > LONG_SEGMENT || b.iter().all(u8::is_ascii_digit) || is_uuid(b) {
            return true;
        }
        let has_digit = b.iter().any(u8::is_ascii_digit);
        if b.iter().all(u8::is_ascii_hexdigit) && has_digit && b.len() >= 16 {
            return true;
        }
        let base64 = b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'='));
        base64 && b.len() >= 20 && has_digit && b.iter().any(u8::is_ascii_alphabetic)
    }

    /// `normalise_path` written with `str::split`.
    fn normalise_path_reference(path: &str) -> String {
        let trimmed = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let segments: Vec<&str> = trimmed
            .split('/')
            .map(|seg| {
                if is_id_segment(seg) {
                    ID_PLACEHOLDER
                } else {
                    seg
                }
            })
            .collect();
        segments.join("/")
    }

    proptest! {
        #[test]
        fn paths_normalise_segment_by_segment(path in "[/a-c0-9é]{0,24}") {
            let mut out = String::new();
            normalise_path(&mut out, &path);
            prop_assert_eq!(out, normalise_path_reference(&path), "{:?}", path);
        }

        #[test]
        fn id_segments_follow_the_rules(
            seg in "[0-9a-hA-Hxz_+=.%~-]{0,40}|[0-9a-fA-F]{12,20}|[0-9A-Za-z_-]{16,24}|[0-9a-f-]{36}|[0-9]{1,8}"
        ) {
            prop_assert_eq!(is_id_segment(&seg), is_id_segment_reference(&seg), "{:?}", seg);
        }
    }

    fn record(method: Option<&'static str>, path: Option<&'static str>) -> AccessRecord<'static> {
        let mut r = AccessRecord::default();
        r.set(Field::Method, method.map(|m| Value::Str(m.into())));
        r.set(Field::Path, path.map(|p| Value::Str(p.into())));
        r
    }

    #[test]
    fn normalised_paths() {
        let table = RouteTable::new();
        let cases = [
            ("/", "GET /"),
            ("/users/42/orders?x=1", "GET /users/{id}/orders"),
            ("/users/42/", "GET /users/{id}"),
            ("/o/4c2b1f0e-7b4e-4d8e-9d3c-1b2a3c4d5e6f", "GET /o/{id}"),
            (
                "/commits/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
                "GET /commits/{id}",
            ),
            ("/t/eyJhbGciOiJIUzI1NiJ9x", "GET /t/{id}"),
            (
                "/api/v2/getUserByIdentifier",
                "GET /api/v2/getUserByIdentifier",
            ),
            ("/files/deadbeef", "GET /files/deadbeef"),
            ("http://example.com:80/a/7?q", "GET /a/{id}"),
            ("/a#frag", "GET /a"),
        ];
        for (path, expected) in cases {
            assert_eq!(
                table.route_key(&record(Some("GET"), Some(path))),
                expected,
                "{path}"
            );
        }
        let long = format!("/blob/{}", "a".repeat(65));
        assert_eq!(
            table.route_key(&record(Some("PUT"), Some(Box::leak(long.into_boxed_str())))),
            "PUT /blob/{id}"
        );
        assert_eq!(table.route_key(&record(None, None)), "- -");
        let mut tcp = AccessRecord::default();
        tcp.set(Field::ConnectionId, Some(Value::Str("1".into())));
        assert_eq!(table.route_key(&tcp), "TCP");
    }

    #[test]
    fn templates_first_match_wins() {
        let mut table = RouteTable::new();
        table.add_template("/users/{id}/orders").unwrap();
        table.add_template("/users/{name}").unwrap();
        table.add_template("/static/{*rest}").unwrap();
        let cases = [
            ("/users/alice/orders?page=2", "GET /users/{id}/orders"),
            ("/users/alice", "GET /users/{name}"),
            ("/users/alice/", "GET /users/{name}"),
            ("/users/alice/cart", "GET /users/alice/cart"),
            ("/static/css/site.css", "GET /static/{*rest}"),
            ("/static", "GET /static"),
        ];
        for (path, expected) in cases {
            assert_eq!(
                table.route_key(&record(Some("GET"), Some(path))),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn bad_templates_point_at_the_column() {
        let mut table = RouteTable::new();
        let err = |t: &str, table: &mut RouteTable| {
            let e = table.add_template(t).unwrap_err();
            (e.column, e.kind)
        };
        assert_eq!(
            err("users", &mut table),
            (1, ErrorKind::TemplateNotAbsolute)
        );
        assert_eq!(
            err("/users/{id", &mut table),
            (8, ErrorKind::BadPlaceholder)
        );
        assert_eq!(err("/a/{}", &mut table), (4, ErrorKind::BadPlaceholder));
        assert_eq!(err("/a/{*r}/b", &mut table), (4, ErrorKind::BadPlaceholder));
        assert_eq!(err("/a/x{id}", &mut table), (4, ErrorKind::BadPlaceholder));
    }
}
