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
                TemplateSegment::Rest => return true,
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
    match path.find("://") {
        Some(scheme_end) if !path.starts_with('/') => {
            let after = &path[scheme_end + 3..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        _ => path,
    }
}

fn strip_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// Appends `path` with id-like segments replaced by `{id}` and without a
/// trailing slash (except for `/` itself).
pub fn normalise_path(out: &mut String, path: &str) {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    for (i, seg) in trimmed.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id_segment(seg) {
            out.push_str(ID_PLACEHOLDER);
        } else {
            out.push_str(seg);
        }
    }
}

/// Numbers, UUIDs, long hex strings, base64-like tokens and anything very long.
fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let b = seg.as_bytes();
    if b.len() > LONG_SEGMENT || b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(b) {
        return true;
    }
    let hex = b.iter().all(u8::is_ascii_hexdigit);
    let has_digit = b.iter().any(u8::is_ascii_digit);
    if hex && has_digit && b.len() >= 16 {
        return true;
    }
    // base64 / base64url ids (`dGhpcyBpcyBhbiBpZA`, `eyJhbGciOi...`): long,
    // only base64 characters, mixing digits and letters.
    let base64 = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'='));
    let has_letter = b.iter().any(u8::is_ascii_alphabetic);
    base64 && b.len() >= 20 && has_digit && has_letter
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
