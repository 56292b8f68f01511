//! Envoy format strings (`%OP%`, `%OP(arg)%`, `%OP(arg):N%`, `%REQ(A?B)%`,
//! `%%`, literal text) compiled once into a [`Format`] that parses lines.
//!
//! Grammar (envoyproxy/envoy `source/common/formatter/substitution_formatter.cc`):
//! a command is `%` NAME [`(` arg `)`] [`:` digits] `%` with NAME in
//! `[A-Z0-9_]+`; anything else between commands is literal text.

use memchr::memmem;
use nom::bytes::complete::{take_till, take_till1, take_while1};
use nom::character::complete::digit1;
use nom::IResult;

use crate::error::{Error, ErrorKind};
use crate::field::Field;
use crate::record::{AccessRecord, Role};
use crate::text;
use crate::time::TimeFormat;

/// Envoy's default access-log format.
pub const ENVOY_DEFAULT: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#;

/// Envoy's default format with `%RESPONSE_CODE_DETAILS%` after the flags, a
/// common customisation (Envoy's own examples use it).
pub const ENVOY_DETAILS: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#;

/// ECS Service Connect TEXT, HTTP: Envoy's default without `%RESPONSE_FLAGS%`.
pub const SERVICE_CONNECT_HTTP: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#;

/// ECS Service Connect TEXT, HTTP2: the HTTP format with the stream id appended.
pub const SERVICE_CONNECT_HTTP2: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" "%STREAM_ID%""#;

/// ECS Service Connect TEXT, gRPC: the HTTP2 format with the gRPC status after
/// the response code.
pub const SERVICE_CONNECT_GRPC: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %GRPC_STATUS()% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" "%STREAM_ID%""#;

/// ECS Service Connect TEXT, TCP.
pub const SERVICE_CONNECT_TCP: &str = "[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_PORT% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %CONNECTION_TERMINATION_DETAILS% %CONNECTION_ID%";

/// The built-in text formats by name, most common first: the order in which
/// a line is tried against them with the strict (first-occurrence) matcher.
pub const BUILTIN_TEXT_FORMATS: [(&str, &str); 6] = [
    ("envoy", ENVOY_DEFAULT),
    ("sc-http", SERVICE_CONNECT_HTTP),
    ("envoy-details", ENVOY_DETAILS),
    ("sc-http2", SERVICE_CONNECT_HTTP2),
    ("sc-grpc", SERVICE_CONNECT_GRPC),
    ("sc-tcp", SERVICE_CONNECT_TCP),
];

/// The order of the lenient (backtracking) pass, for lines no format matches
/// strictly: formats with more trailing fields first, so that a line of a
/// longer format is not taken by a shorter one whose free-text user agent
/// swallowed the extra `" "`.
pub(crate) const LENIENT_ORDER: [&str; 6] = [
    "sc-grpc",
    "sc-http2",
    "envoy-details",
    "envoy",
    "sc-http",
    "sc-tcp",
];

/// The most operators one format may hold: far above any real access-log
/// format, low enough that matching stays cheap and shallow.
const MAX_OPERATORS: usize = 256;

/// A compiled Envoy text format: parses lines written with that format.
#[derive(Clone, Debug)]
pub struct Format {
    name: String,
    source: String,
    pub(crate) segments: Vec<Segment>,
    strict: text::StrictPlan,
}

#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Literal(Literal),
    Op(Op),
}

#[derive(Clone, Debug)]
pub(crate) struct Literal {
    pub(crate) text: String,
    /// Boxed: a finder is a few hundred bytes, and segments are walked often.
    pub(crate) finder: Box<memmem::Finder<'static>>,
}

/// One operator of a format: where its value goes and what it may look like.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) target: Target,
    pub(crate) shape: Shape,
    /// `%START_TIME(fmt)%`: how to read the time; `None` is ISO 8601.
    pub(crate) time: Option<TimeFormat>,
}

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Field(Field),
    Extra { name: String, role: Role },
}

/// What an operator's value may look like. Shapes are what lets a format tell
/// an access line from other text, and what resolves the ambiguity of
/// unescaped header values (a `"` inside a user agent, envoyproxy/envoy#4191):
/// only free-text fields may contain the quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// ASCII digits, or `-`.
    Number,
    /// Response flags: `-`, or letters and `_` joined by `,` (`UF,URX`).
    Flags,
    /// No whitespace and no `"`: methods, paths, hosts, ids.
    Token,
    /// A token that is always present: `-` is not accepted.
    Id,
    /// Anything but `"` (X-Forwarded-For: `a, b`).
    NoQuote,
    /// Any text: user agents and other header values.
    Free,
    /// A `%START_TIME%` value (ISO 8601, no spaces); read by [`Op::time`].
    Time,
    /// A `%START_TIME(fmt)%` value: anything but `"`, since a format may
    /// print spaces (`%Y-%m-%d %H:%M:%S`, `%e`); read by [`Op::time`].
    FormattedTime,
}

impl Shape {
    /// Whether no value of this shape can hold a space, `"` or tab (the
    /// line's stops, see [`crate::stops`]).
    pub(crate) fn holds_no_stops(self) -> bool {
        !matches!(self, Shape::NoQuote | Shape::Free | Shape::FormattedTime)
    }
}

impl Format {
    /// Compiles an Envoy format string. A trailing newline (real or the two
    /// characters `\n`, as typed in a shell) is not part of the format.
    pub fn compile(name: impl Into<String>, source: &str) -> Result<Format, Error> {
        let trimmed = strip_format_newline(source);
        let segments = compile_segments(trimmed)?;
        let strict = text::StrictPlan::new(&segments);
        Ok(Format {
            name: name.into(),
            source: trimmed.to_string(),
            segments,
            strict,
        })
    }

    /// A built-in text format by name (see [`BUILTIN_TEXT_FORMATS`]).
    pub fn builtin(name: &str) -> Option<Format> {
        let (name, source) = BUILTIN_TEXT_FORMATS.iter().find(|(n, _)| *n == name)?;
        // Built-in sources are constants covered by tests; they compile.
        Format::compile(*name, source).ok()
    }

    /// The name the format was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format string, without its trailing newline.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses one line (without its line ending) written in this format.
    pub fn parse<'a>(&'a self, line: &'a str) -> Option<AccessRecord<'a>> {
        let mut record = AccessRecord::default();
        if self.parse_strict_into(line, &mut record) {
            return Some(record);
        }
        self.parse_lenient(line)
    }

    /// Parses with every operator ending at the first occurrence of the
    /// literal after it (the fast path), into an empty `record`. On `false`
    /// the record must be cleared before reuse.
    pub(crate) fn parse_strict_into<'a>(
        &'a self,
        line: &'a str,
        record: &mut AccessRecord<'a>,
    ) -> bool {
        text::parse_strict_into(&self.strict, line, record)
    }

    /// Parses allowing free-text values to contain the literal after them.
    pub(crate) fn parse_lenient<'a>(&'a self, line: &'a str) -> Option<AccessRecord<'a>> {
        text::parse_lenient(self, line)
    }

    /// The first literal text of the format, if it starts with one: lets the
    /// classifier skip formats cheaply.
    pub(crate) fn leading_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(l)) => Some(&l.text),
            _ => None,
        }
    }
}

fn strip_format_newline(source: &str) -> &str {
    let s = source.strip_suffix('\n').unwrap_or(source);
    let s = s.strip_suffix('\r').unwrap_or(s);
    s.strip_suffix("\\n").unwrap_or(s)
}

/// `source` is the format without its trailing newline: a prefix of what the
/// user wrote, so columns counted in it are the user's columns.
fn compile_segments(source: &str) -> Result<Vec<Segment>, Error> {
    // `rest` is always a suffix of `source`.
    let column = |rest: &str| source[..source.len() - rest.len()].chars().count() + 1;
    let fail = |rest: &str, kind| Error {
        what: "format string",
        column: column(rest),
        kind,
    };
    let mut segments: Vec<Segment> = Vec::new();
    let mut literal = String::new();
    let mut used_names: Vec<String> = Vec::new();
    let mut used_fields: Vec<Field> = Vec::new();
    let mut operators = 0;
    let mut rest = source;
    while !rest.is_empty() {
        if let Ok((after, text)) = literal_text(rest) {
            literal.push_str(text);
            rest = after;
            continue;
        }
        // `rest` starts with '%'.
        if let Some(after) = rest.strip_prefix("%%") {
            literal.push('%');
            rest = after;
            continue;
        }
        let cmd = command(rest).map_err(|(at, kind)| fail(at, kind))?;
        operators += 1;
        if operators > MAX_OPERATORS {
            return Err(fail(rest, ErrorKind::TooManyOperators(MAX_OPERATORS)));
        }
        let op =
            operator(&cmd, &mut used_fields, &mut used_names).map_err(|kind| fail(rest, kind))?;
        if !literal.is_empty() {
            segments.push(literal_segment(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Op(op));
        rest = cmd.rest;
    }
    if !literal.is_empty() {
        segments.push(literal_segment(literal));
    }
    if operators == 0 {
        return Err(fail(source, ErrorKind::NoOperators));
    }
    Ok(segments)
}

fn literal_segment(text: String) -> Segment {
    let finder = Box::new(memmem::Finder::new(text.as_bytes()).into_owned());
    Segment::Literal(Literal { text, finder })
}

fn literal_text(i: &str) -> IResult<&str, &str> {
    take_till1(|c| c == '%')(i)
}

/// A parsed `%NAME(arg):N%` command.
struct Command<'s> {
    name: &'s str,
    arg: Option<&'s str>,
    rest: &'s str,
}

/// Reads one command starting at `%`; on failure says where and why.
fn command(input: &str) -> Result<Command<'_>, (&str, ErrorKind)> {
    let after_percent = &input[1..];
    let (i, name) = operator_name(after_percent)
        .map_err(|_| (after_percent, ErrorKind::ExpectedOperatorName))?;
    let (i, arg) = match i.strip_prefix('(') {
        Some(inside) => {
            let (after, arg) = take_till::<_, _, nom::error::Error<&str>>(|c| c == ')')(inside)
                .map_err(|_| (i, ErrorKind::UnclosedArgument))?;
            let after = after
                .strip_prefix(')')
                .ok_or((i, ErrorKind::UnclosedArgument))?;
            (after, Some(arg))
        }
        None => (i, None),
    };
    let i = match i.strip_prefix(':') {
        // The truncation length only shortens what Envoy printed; the
        // parser reads whatever is there.
        Some(len) => {
            digit1::<_, nom::error::Error<&str>>(len)
                .map_err(|_| (len, ErrorKind::ExpectedTruncationLength))?
                .0
        }
        None => i,
    };
    let rest = i
        .strip_prefix('%')
        .ok_or((i, ErrorKind::ExpectedClosingPercent))?;
    Ok(Command { name, arg, rest })
}

fn operator_name(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')(i)
}

/// Decides where an operator's value goes and what it may look like.
fn operator(
    cmd: &Command<'_>,
    used_fields: &mut Vec<Field>,
    used_names: &mut Vec<String>,
) -> Result<Op, ErrorKind> {
    let arg = cmd.arg.filter(|a| !a.is_empty());
    let (target, shape, time) = match cmd.name {
        "REQ" | "RESP" | "TRAILER" => {
            let arg = arg.ok_or_else(|| ErrorKind::MissingHeaderName(cmd.name.to_string()))?;
            let mut headers = arg.split('?');
            let main = headers.next().unwrap_or_default().to_ascii_lowercase();
            let alt = headers.next().map(str::to_ascii_lowercase);
            if headers.next().is_some() {
                return Err(ErrorKind::TooManyAlternatives);
            }
            header_operator(cmd.name, &main, alt.as_deref())
        }
        "START_TIME" | "START_TIME_LOCAL" => {
            let time = arg.map(TimeFormat::compile);
            let shape = if time.is_some() {
                Shape::FormattedTime
            } else {
                Shape::Time
            };
            (Target::Field(Field::StartTime), shape, time)
        }
        "PATH" | "REQ_WITHOUT_QUERY" => (Target::Field(Field::Path), Shape::Token, None),
        "PROTOCOL" => (Target::Field(Field::Protocol), Shape::Token, None),
        "RESPONSE_CODE" => (Target::Field(Field::ResponseCode), Shape::Number, None),
        "RESPONSE_FLAGS" => (Target::Field(Field::ResponseFlags), Shape::Flags, None),
        "RESPONSE_CODE_DETAILS" => {
            let shape = if arg == Some("ALLOW_WHITESPACES") {
                Shape::Free
            } else {
                Shape::Token
            };
            (Target::Field(Field::ResponseCodeDetails), shape, None)
        }
        "BYTES_RECEIVED" => (Target::Field(Field::BytesReceived), Shape::Number, None),
        "BYTES_SENT" => (Target::Field(Field::BytesSent), Shape::Number, None),
        "DURATION" => (Target::Field(Field::Duration), Shape::Number, None),
        "UPSTREAM_HOST" => (Target::Field(Field::UpstreamHost), Shape::Token, None),
        "GRPC_STATUS" | "GRPC_STATUS_NUMBER" => {
            (Target::Field(Field::GrpcStatus), Shape::Token, None)
        }
        // Every Envoy stream has an id, so `-` cannot be one: this keeps the
        // longer Service Connect formats from taking a default-format line
        // whose user agent holds quotes.
        "STREAM_ID" => (Target::Field(Field::StreamId), Shape::Id, None),
        "DOWNSTREAM_REMOTE_ADDRESS" => (
            Target::Field(Field::DownstreamRemoteAddress),
            Shape::Token,
            None,
        ),
        "DOWNSTREAM_REMOTE_PORT" => (
            Target::Field(Field::DownstreamRemotePort),
            Shape::Number,
            None,
        ),
        "CONNECTION_TERMINATION_DETAILS" => (
            Target::Field(Field::ConnectionTerminationDetails),
            Shape::Free,
            None,
        ),
        // A number on the wire, but kept as text: it is an identifier.
        "CONNECTION_ID" => (Target::Field(Field::ConnectionId), Shape::Number, None),
        "QUERY_PARAM" => {
            let key = arg.unwrap_or_default();
            let name = extra_name(cmd.name, arg);
            let role = Role::QueryParam(key.to_ascii_lowercase());
            (Target::Extra { name, role }, Shape::Free, None)
        }
        other => {
            let name = extra_name(other, arg);
            (
                Target::Extra {
                    name,
                    role: Role::Plain,
                },
                extra_shape(other),
                None,
            )
        }
    };
    let target = dedupe(target, used_fields, used_names);
    Ok(Op {
        target,
        shape,
        time,
    })
}

/// REQ/RESP/TRAILER: the headers with dedicated fields, else an extra field
/// named `req_<header>` (`resp_`, `trailer_`).
fn header_operator(
    op: &str,
    header: &str,
    alt: Option<&str>,
) -> (Target, Shape, Option<TimeFormat>) {
    let field = match (op, header, alt) {
        ("REQ", ":method", _) => Some((Field::Method, Shape::Token)),
        ("REQ", ":path" | "x-envoy-original-path", _) => Some((Field::Path, Shape::Token)),
        ("REQ", "x-forwarded-for", _) => Some((Field::ForwardedFor, Shape::NoQuote)),
        ("REQ", "user-agent", _) => Some((Field::UserAgent, Shape::Free)),
        ("REQ", "x-request-id", _) => Some((Field::RequestId, Shape::Token)),
        ("REQ", ":authority" | "host", _) => Some((Field::Authority, Shape::Token)),
        ("RESP", "x-envoy-upstream-service-time", _) => {
            Some((Field::UpstreamServiceTime, Shape::Number))
        }
        _ => None,
    };
    if let Some((field, shape)) = field {
        return (Target::Field(field), shape, None);
    }
    let role = if URL_HEADERS.contains(&header) || alt.is_some_and(|a| URL_HEADERS.contains(&a)) {
        Role::Url
    } else {
        Role::Plain
    };
    let name = extra_name(op, Some(header));
    (Target::Extra { name, role }, Shape::Free, None)
}

/// Headers whose values are URLs, so their query strings get redacted.
const URL_HEADERS: [&str; 9] = [
    ":path",
    "x-envoy-original-path",
    "referer",
    "referrer",
    "location",
    "content-location",
    "x-original-url",
    "x-original-uri",
    "x-forwarded-uri",
];

/// The shape of an operator without a dedicated field, from its name.
fn extra_shape(name: &str) -> Shape {
    const NUMBER_SUFFIXES: [&str; 7] = [
        "_DURATION",
        "_BYTES",
        "_RECEIVED",
        "_SENT",
        "_PORT",
        "_COUNT",
        "_NUMBER",
    ];
    const TOKEN_SUFFIXES: [&str; 5] = [
        "_ADDRESS",
        "_ADDRESS_WITHOUT_PORT",
        "_HOST",
        "_CLUSTER",
        "_ID",
    ];
    if NUMBER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        Shape::Number
    } else if TOKEN_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        Shape::Token
    } else {
        Shape::Free
    }
}

/// `UPSTREAM_CLUSTER` -> `upstream_cluster`; `REQ(X-B3-TraceId)` ->
/// `req_x_b3_traceid`.
fn extra_name(op: &str, arg: Option<&str>) -> String {
    let mut name = snake_case(op);
    if let Some(arg) = arg.map(snake_case).filter(|a| !a.is_empty()) {
        name.push('_');
        name.push_str(&arg);
    }
    name
}

fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A field used twice in one format keeps its first value under its own name;
/// later ones become extras `<name>_2`, `<name>_3`, ...
fn dedupe(target: Target, used_fields: &mut Vec<Field>, used_names: &mut Vec<String>) -> Target {
    let (base, role) = match target {
        Target::Field(f) if !used_fields.contains(&f) => {
            used_fields.push(f);
            return Target::Field(f);
        }
        Target::Field(f) => (f.name().to_string(), Role::Plain),
        Target::Extra { name, role } => (name, role),
    };
    let taken = |candidate: &str| {
        used_names.iter().any(|u| u == candidate)
            || used_fields.iter().any(|f| f.name() == candidate)
    };
    let mut name = base.clone();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}_{n}");
    }
    used_names.push(name.clone());
    Target::Extra { name, role }
}

#[cfg(test)]
impl Op {
    pub(crate) fn name(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match &self.target {
            Target::Field(f) => Cow::Borrowed(f.name()),
            Target::Extra { name, .. } => Cow::Borrowed(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &Format) -> Vec<String> {
        f.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Op(op) => Some(op.name().into_owned()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    #[test]
    fn builtins_compile() {
        for (name, source) in BUILTIN_TEXT_FORMATS {
            let f = Format::compile(name, source).unwrap();
            assert_eq!(f.source(), source);
        }
        let f = Format::builtin("sc-grpc").unwrap();
        assert_eq!(
            names(&f),
            [
                "start_time",
                "method",
                "path",
                "protocol",
                "response_code",
                "grpc_status",
                "bytes_received",
                "bytes_sent",
                "duration",
                "upstream_service_time",
                "forwarded_for",
                "user_agent",
                "request_id",
                "authority",
                "upstream_host",
                "stream_id"
            ]
        );
    }

    #[test]
    fn extra_operators_are_snake_case() {
        let f = Format::compile(
            "t",
            "%UPSTREAM_CLUSTER% %REQ(X-B3-TraceId)% %RESP(Content-Type):10% %ROUTE_NAME% %REQUEST_DURATION% %QUERY_PARAM(page)%\n",
        )
        .unwrap();
        assert_eq!(
            names(&f),
            [
                "upstream_cluster",
                "req_x_b3_traceid",
                "resp_content_type",
                "route_name",
                "request_duration",
                "query_param_page"
            ]
        );
    }

    /// A `%START_TIME(fmt)%` may print spaces, as Envoy's own example
    /// `%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%` does; such a line is an
    /// access record with its time read.
    #[test]
    fn formatted_start_times_may_hold_spaces() {
        let cases = [
            (
                "[%START_TIME(%Y-%m-%d %H:%M:%S)%] %RESPONSE_CODE% %REQ(:METHOD)%",
                "[2024-01-02 03:04:05] 200 GET",
                "2024-01-02 03:04:05",
                Some(1704164645000),
            ),
            (
                "%START_TIME(%Y-%m-%d %H:%M:%S)% %RESPONSE_CODE% %REQ(:METHOD)%",
                "2024-01-02 03:04:05 200 GET",
                "2024-01-02 03:04:05",
                Some(1704164645000),
            ),
            (
                "%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)% %RESPONSE_CODE% %REQ(:METHOD)%",
                "2018/04/03T23:06:09+0000 1522796769 200 GET",
                "2018/04/03T23:06:09+0000 1522796769",
                // `%s` after a zone: the reader takes the zoned time.
                Some(1522796769000),
            ),
        ];
        for (source, line, time, ms) in cases {
            let f = Format::compile("t", source).unwrap();
            let r = f.parse(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(r.str(Field::StartTime), Some(time), "{line}");
            assert_eq!(r.start_time_ms(), ms, "{line}");
            assert_eq!(r.uint(Field::ResponseCode), Some(200), "{line}");
            assert_eq!(r.str(Field::Method), Some("GET"), "{line}");
        }
        // ISO 8601 START_TIME is still a token.
        let f = Format::compile("t", "%START_TIME% %RESPONSE_CODE%").unwrap();
        assert!(f.parse("2018-04-03T23:06:09.123Z 200").is_some());
        assert!(f.parse("2018-04-03 23:06:09.123Z 200").is_none());
    }

    #[test]
    fn repeated_fields_get_numbered_names() {
        let f = Format::compile(
            "t",
            "%START_TIME% %START_TIME(%s)% %ROUTE_NAME% %ROUTE_NAME%",
        )
        .unwrap();
        assert_eq!(
            names(&f),
            ["start_time", "start_time_2", "route_name", "route_name_2"]
        );
    }

    #[test]
    fn percent_escape_and_newlines() {
        let f = Format::compile("t", "100%% %DURATION%\\n").unwrap();
        assert_eq!(f.source(), "100%% %DURATION%");
        match &f.segments[0] {
            Segment::Literal(l) => assert_eq!(l.text, "100% "),
            Segment::Op(_) => panic!("expected a literal"),
        }
    }

    fn error(source: &str) -> (usize, ErrorKind) {
        let e = Format::compile("t", source).unwrap_err();
        (e.column, e.kind)
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(
            error("[%START_TIME] x"),
            (13, ErrorKind::ExpectedClosingPercent)
        );
        assert_eq!(
            error("ab %start_time%"),
            (5, ErrorKind::ExpectedOperatorName)
        );
        assert_eq!(error("%REQ(USER-AGENT %"), (5, ErrorKind::UnclosedArgument));
        assert_eq!(
            error("%REQ(A):x%"),
            (9, ErrorKind::ExpectedTruncationLength)
        );
        assert_eq!(
            error("é %REQ%"),
            (3, ErrorKind::MissingHeaderName("REQ".into()))
        );
        assert_eq!(error("%REQ(A?B?C)%"), (1, ErrorKind::TooManyAlternatives));
        assert_eq!(error("plain text"), (1, ErrorKind::NoOperators));
        assert_eq!(error("50%"), (4, ErrorKind::ExpectedOperatorName));
        // Found by fuzzing: an error near the end of a format whose trailing
        // `\n` was stripped, after a multi-byte character.
        assert_eq!(error("é%\\n"), (3, ErrorKind::ExpectedOperatorName));
        assert_eq!(error("é %REQ(\n"), (7, ErrorKind::UnclosedArgument));
        let e = Format::compile("t", "ab %x%").unwrap_err();
        assert_eq!(e.to_string(), "format string is invalid at column 5: expected an operator name (A-Z, 0-9, _) or '%' after '%'");
        assert_eq!(e.pointer("ab %x%"), "ab %x%\n    ^");
    }
}
