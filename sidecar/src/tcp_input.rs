//! Fluent Bit's `[INPUT] tcp` (`plugins/in_tcp`) in FireLens drop-in mode,
//! for the inputs whose records an output takes (AWS's EMF-over-TCP
//! example); the FireLens health check's tcp input is `run.rs`'s.
//!
//! - `Format json`: JSON values one after another (whitespace between
//!   them or not). An object is a record, and an array the record
//!   `{"msg": array}`, as in_tcp makes them; any other value is skipped.
//!   A line that is JSON but for invalid UTF-8 (replaced) or an escaped
//!   surrogate without its pair (`\uFFFD`, as Fluent Bit reads it) is
//!   read so; other text that is not JSON is skipped to the next newline.
//!   What is skipped is logged once per read.
//! - `Format none`: the text cut at `Separator`; each non-empty piece is
//!   `{"log": piece}`, invalid UTF-8 replaced, or with a `Parser` what the
//!   parser reads of it (and its time), as in_tcp reads it.
//!
//! Records take the input's tag and the time they were read, as in Fluent
//! Bit, and go to the pipeline as deliveries without acks, each holding its
//! share of the memory budget: a full budget stops the reading, not the
//! process. A piece longer than [`MAX_PIECE`] is cut there, never dropped.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_firelens::{Event, Record};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use tokio::task::JoinHandle;

use crate::fluentbit::decode::{integer_minus_zero_as_zero, lone_surrogates_replaced};
use crate::fluentbit::parsers::Parser;
use crate::fluentbit::plan::{TcpFormat, TcpInput};
use crate::input_links::InputLinks;

/// The longest piece or JSON value kept whole (Fluent Bit's in_tcp keeps
/// 32 KiB by default, `Buffer_Size`). With [`MAX_CONNECTIONS`], what the
/// connections hold before their records are in the pipeline, outside the
/// memory budget, stays under 5 MiB.
pub const MAX_PIECE: usize = 256 << 10;

/// At most this many connections per input at once.
const MAX_CONNECTIONS: usize = 16;

/// What one read takes.
const READ_SIZE: usize = 16 << 10;

/// Binds the input's address (before Sluice gives up root).
pub async fn bind(input: &TcpInput) -> std::io::Result<TcpListener> {
    TcpListener::bind(input.addr).await
}

/// Serves `listener` until `shutdown`; the handle ends once every
/// connection has handed over what it read.
pub fn spawn(listener: TcpListener, input: TcpInput, mut links: InputLinks) -> JoinHandle<()> {
    let input = Arc::new(input);
    tokio::spawn(async move {
        let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = open.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = links.shutdown.changed() => break,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = links.shutdown.changed() => break,
            };
            let Ok((socket, peer)) = accepted else {
                continue;
            };
            let (input, links) = (input.clone(), links.clone());
            connections.spawn(async move {
                connection(socket, peer, &input, links).await;
                drop(permit);
            });
        }
        while connections.join_next().await.is_some() {}
    })
}

async fn connection(
    mut socket: TcpStream,
    peer: std::net::SocketAddr,
    input: &TcpInput,
    mut links: InputLinks,
) {
    let tag: Arc<str> = Arc::from(input.tag.as_str());
    let source = input
        .source_address_key
        .as_ref()
        .map(|key| (key.clone(), format!("tcp://{peer}")));
    let mut reader = Reader::new(input.format.clone());
    let mut chunk = vec![0u8; READ_SIZE];
    loop {
        let read = tokio::select! {
            read = socket.read(&mut chunk) => read,
            _ = links.shutdown.changed() => Ok(0),
        };
        // A read error ends the connection as its end does.
        let n: usize = read.unwrap_or_default();
        let records = if n == 0 {
            reader.finish()
        } else {
            reader.push(&chunk[..n])
        };
        if reader.take_skipped() {
            tracing::warn!(input = %input.addr, "[INPUT] tcp: a value that is neither a JSON object nor an array was skipped (Format json)");
        }
        links.count(records.len(), n);
        if !records.is_empty() {
            let now_ns = sluice_firelens::now_ns();
            let events: Vec<Event> = records
                .into_iter()
                .map(|record| {
                    let (mut record, time_ns) = parsed(input.parser.as_deref(), record, now_ns);
                    if let Some((key, value)) = &source {
                        record.insert(key, value.as_str());
                    }
                    Event {
                        tag: tag.clone(),
                        time_ns,
                        record,
                    }
                })
                .collect();
            // A full budget waits here: the client's writes wait with it.
            if !links.deliver(events).await {
                return;
            }
        }
        if n == 0 {
            return;
        }
    }
}

/// Cuts a stream into records.
struct Reader {
    format: TcpFormat,
    buffer: Vec<u8>,
    /// Whether something was skipped since the last look.
    skipped: bool,
}

impl Reader {
    fn new(format: TcpFormat) -> Reader {
        Reader {
            format,
            buffer: Vec::new(),
            skipped: false,
        }
    }

    fn take_skipped(&mut self) -> bool {
        std::mem::take(&mut self.skipped)
    }

    /// The records `bytes` completes.
    fn push(&mut self, bytes: &[u8]) -> Vec<Record> {
        self.buffer.extend_from_slice(bytes);
        self.records(false)
    }

    /// The connection ended: what is left, as far as it reads.
    fn finish(&mut self) -> Vec<Record> {
        self.records(true)
    }

    fn records(&mut self, at_end: bool) -> Vec<Record> {
        match &self.format {
            TcpFormat::None { separator } => pieces(&mut self.buffer, separator.as_bytes(), at_end),
            TcpFormat::Json => self.objects(at_end),
        }
    }

    fn objects(&mut self, at_end: bool) -> Vec<Record> {
        let mut records = Vec::new();
        let mut start = 0;
        loop {
            let rest = &self.buffer[start..];
            let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Json>();
            match values.next() {
                None => {
                    start = self.buffer.len();
                    break;
                }
                Some(Ok(value)) => {
                    let text = &rest[..values.byte_offset()];
                    start += values.byte_offset();
                    let text = std::str::from_utf8(text).unwrap_or_default();
                    match record_of(value, text) {
                        Some(record) => records.push(record),
                        None => self.skipped = true,
                    }
                }
                Some(Err(e)) if e.is_eof() && !at_end && rest.len() < MAX_PIECE => break,
                Some(Err(_)) => {
                    // The rest of the line (or all of it, at the end).
                    let line = match rest.iter().position(|&b| b == b'\n') {
                        Some(nl) => &rest[..nl + 1],
                        None if at_end || rest.len() >= MAX_PIECE => rest,
                        None => break,
                    };
                    start += line.len();
                    let (found, skipped) = repaired_records(line);
                    records.extend(found);
                    self.skipped |= skipped;
                }
            }
        }
        self.buffer.drain(..start);
        records
    }
}

/// A `Format none` piece's record `{"log": piece}` as the input's `Parser`
/// reads it (its time, else the time it was read, `now_ns`); a piece the
/// parser does not read stays as it is, as in_tcp keeps it.
fn parsed(parser: Option<&Parser>, record: Record, now_ns: i64) -> (Record, i64) {
    let Some(parser) = parser else {
        return (record, now_ns);
    };
    let read = record
        .get_str("log")
        .and_then(|piece| parser.parse(piece, now_ns.div_euclid(1_000_000)));
    match read {
        Some(read) => {
            let time_ns = read.time_ns().unwrap_or(now_ns);
            (Record::from(read.fields), time_ns)
        }
        None => (record, now_ns),
    }
}

/// The record a JSON value read from `text` is, as in_tcp's `process_pack`
/// makes it: an object, or an array as `{"msg": array}` (with each integer
/// `-0` the integer 0, as Fluent Bit reads it); `None` for any other value.
fn record_of(value: Json, text: &str) -> Option<Record> {
    let reread = |text: &str| serde_json::from_str(text).ok();
    let map = match value {
        Json::Object(map) => integer_minus_zero_as_zero(map, text, reread),
        Json::Array(items) => {
            let map = Map::from_iter([("msg".to_string(), Json::Array(items))]);
            integer_minus_zero_as_zero(map, &format!("{{\"msg\":{text}}}"), reread)
        }
        _ => return None,
    };
    Some(Record::from(map))
}

/// The records of a line serde_json did not read, when what stopped it is
/// invalid UTF-8 (read replaced) or escaped surrogates without their
/// pairs (read as `\uFFFD`, as Fluent Bit reads them), and whether
/// something was skipped: a value that is no record, or the rest of the
/// line from where it is still not JSON.
fn repaired_records(line: &[u8]) -> (Vec<Record>, bool) {
    let text = String::from_utf8_lossy(line);
    let text = lone_surrogates_replaced(&text).map_or(text, Cow::Owned);
    let (mut records, mut skipped) = (Vec::new(), false);
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Json>();
    let mut at = 0;
    while let Some(value) = values.next() {
        let Ok(value) = value else {
            skipped = true;
            break;
        };
        let end = values.byte_offset();
        match record_of(value, &text[at..end]) {
            Some(record) => records.push(record),
            None => skipped = true,
        }
        at = end;
    }
    (records, skipped)
}

/// The pieces of `buffer` that end at `separator` (empty ones skipped),
/// and the rest when the stream ended or it is over [`MAX_PIECE`]; what
/// was cut is drained.
fn pieces(buffer: &mut Vec<u8>, separator: &[u8], at_end: bool) -> Vec<Record> {
    let mut records = Vec::new();
    let mut start = 0;
    let piece = |bytes: &[u8]| {
        let mut record = Record::default();
        record.insert("log", String::from_utf8_lossy(bytes).as_ref());
        record
    };
    while let Some(at) = find(&buffer[start..], separator) {
        let bytes = &buffer[start..start + at];
        if !bytes.is_empty() {
            records.push(piece(bytes));
        }
        start += at + separator.len();
    }
    let rest = &buffer[start..];
    if !rest.is_empty() && (at_end || rest.len() >= MAX_PIECE) {
        // A character the last read split waits for the rest of it.
        let end = if at_end {
            rest.len()
        } else {
            crate::utf8::cut_at(rest, rest.len())
        };
        records.push(piece(&rest[..end]));
        start += end;
    }
    buffer.drain(..start);
    records
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return memchr::memchr(needle[0], haystack);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| Json::Object(r.to_json()).to_string())
            .collect()
    }

    #[test]
    fn none_cuts_at_the_separator_across_reads() {
        let mut r = Reader::new(TcpFormat::None {
            separator: "\n".into(),
        });
        assert_eq!(
            logs(&r.push(b"{\"_aws\":1}\n\npart")),
            [r#"{"log":"{\"_aws\":1}"}"#]
        );
        assert_eq!(logs(&r.push(b"ial\r\nnext")), [r#"{"log":"partial\r"}"#]);
        assert_eq!(logs(&r.finish()), [r#"{"log":"next"}"#]);
        assert!(r.finish().is_empty());
        let mut r = Reader::new(TcpFormat::None {
            separator: "||".into(),
        });
        assert_eq!(logs(&r.push(b"a||b|")), [r#"{"log":"a"}"#]);
        assert_eq!(
            logs(&r.push(b"|\xffc||")),
            [r#"{"log":"b"}"#, "{\"log\":\"\u{fffd}c\"}"]
        );
    }

    #[test]
    fn a_piece_past_the_limit_is_cut_not_dropped() {
        let mut r = Reader::new(TcpFormat::None {
            separator: "\n".into(),
        });
        let long = vec![b'x'; MAX_PIECE + 10];
        let records = r.push(&long);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].get_str("log").map(str::len),
            Some(MAX_PIECE + 10)
        );
        // A character the read split waits for its last byte: both pieces
        // keep it whole.
        let mut long = vec![b'x'; MAX_PIECE - 1];
        long.extend_from_slice(&"é".as_bytes()[..1]);
        let records = r.push(&long);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].get_str("log"),
            Some("x".repeat(MAX_PIECE - 1).as_str())
        );
        assert_eq!(logs(&r.push(&"é".as_bytes()[1..])), Vec::<String>::new());
        assert_eq!(logs(&r.push(b"!\n")), ["{\"log\":\"é!\"}"]);
    }

    #[test]
    fn json_objects_one_after_another() {
        let mut r = Reader::new(TcpFormat::Json);
        assert_eq!(logs(&r.push(br#"{"a":1}{"b":"#)), [r#"{"a":1}"#]);
        assert_eq!(
            logs(&r.push(b"[2]} \n {\"c\":3}\n")),
            [r#"{"b":[2]}"#, r#"{"c":3}"#]
        );
        assert!(!r.take_skipped());
        // An array is `{"msg": array}`; text that is not JSON is skipped
        // to the next newline, the rest kept.
        assert_eq!(
            logs(&r.push(b"[1,2] nonsense here\n{\"d\":4}")),
            [r#"{"msg":[1,2]}"#, r#"{"d":4}"#]
        );
        assert!(r.take_skipped());
        // A value that is neither: skipped.
        assert_eq!(logs(&r.push(b" \"text\" 5 {\"f\":6}")), [r#"{"f":6}"#]);
        assert!(r.take_skipped());
        assert_eq!(logs(&r.push(b"{\"e\":")), Vec::<String>::new());
        assert!(r.finish().is_empty());
        assert!(r.take_skipped());
    }

    /// A line that is JSON but for invalid UTF-8 is read with it replaced
    /// (Fluent Bit v5.1.1 drops the bytes: `{"e":"ok  bytes","k":1}`), and
    /// an escaped surrogate without its pair is U+FFFD, as v5.1.1 reads
    /// it; the values before and after on the line are kept.
    #[test]
    fn a_line_with_bad_text_in_its_strings_is_read_repaired() {
        let mut r = Reader::new(TcpFormat::Json);
        assert_eq!(
            logs(&r.push(b"{\"s\":\"\\ud800 lone\"}\n{\"a\":1} {\"e\":\"ok \xff\xfe bytes\",\"k\":1} [-0]\n{\"z\":1}\n")),
            [
                "{\"s\":\"\u{fffd} lone\"}",
                r#"{"a":1}"#,
                "{\"e\":\"ok \u{fffd}\u{fffd} bytes\",\"k\":1}",
                r#"{"msg":[0]}"#,
                r#"{"z":1}"#,
            ]
        );
        assert!(!r.take_skipped());
        // Still not JSON once repaired: the line is skipped from there.
        assert_eq!(logs(&r.push(b"{\"e\":\xff\n{\"y\":2}\n")), [r#"{"y":2}"#]);
        assert!(r.take_skipped());
        assert_eq!(
            logs(&r.push(b"{\"e\":\"\xff\"} garbage\n")),
            ["{\"e\":\"\u{fffd}\"}"]
        );
        assert!(r.take_skipped());
    }

    /// With a Parser, what it reads of a piece is the record, with its
    /// time; a piece it does not read stays `{"log": piece}`.
    #[test]
    fn a_parser_reads_the_pieces() {
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let json = parsers["json"].as_ref().unwrap();
        let mut r = Reader::new(TcpFormat::None {
            separator: "\n".into(),
        });
        let now_ns = 1_700_000_000_000_000_000;
        let read: Vec<(String, i64)> = r
            .push(b"{\"a\":1,\"time\":\"10/Oct/2000:13:55:36 -0700\"}\nplain\n")
            .into_iter()
            .map(|record| {
                let (record, time_ns) = parsed(Some(json), record, now_ns);
                (logs(&[record]).remove(0), time_ns)
            })
            .collect();
        assert_eq!(
            read,
            [
                (r#"{"a":1}"#.to_string(), 971_211_336_000_000_000),
                (r#"{"log":"plain"}"#.to_string(), now_ns),
            ]
        );
    }

    /// Fluent Bit v5.1.1's tcp input wrote `{"a":0,"b":[0],"c":-0.0}` for
    /// the first object.
    #[test]
    fn the_integer_minus_zero_is_zero() {
        let mut r = Reader::new(TcpFormat::Json);
        assert_eq!(
            logs(&r.push(b"{\"a\":-0,\"b\":[-0],\"c\":-0.0}\n {\"d\":\"-0\"}")),
            [r#"{"a":0,"b":[0],"c":-0.0}"#, r#"{"d":"-0"}"#]
        );
    }
}
