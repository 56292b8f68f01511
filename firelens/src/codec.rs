//! The Fluent Forward protocol v1 decoder: bytes in, events out, no sockets.
//!
//! Spec: <https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1>
//! (facts in shared/specs.md §5, §8). A frame is a msgpack array whose second
//! element decides the mode: a time (Message), an array of entries (Forward),
//! or a str/bin of concatenated entries (PackedForward, compressed with gzip or
//! zstd when the option `compressed` says so).

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use serde_json::{Number, Value as Json};

use crate::fields::{Record, RecordsBuilder};
use crate::msgpack::{self, Cursor, ReadError, Value};

mod streaming;

/// Bounds on what one connection may make the decoder hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame on the wire.
    pub max_frame_bytes: usize,
    /// Largest decompressed payload of one CompressedPackedForward frame.
    pub max_decompressed_bytes: usize,
    /// The most memory one frame's events may take as they are decoded
    /// (their text, fields, times and events): a frame that would take
    /// more is refused. A few bytes on the wire can claim far more: a map
    /// header a million fields, an entry of three bytes an event of 80.
    /// The server lowers it to its memory budget.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_decoded_bytes: 64 << 20,
        }
    }
}

/// One log event as the forward client sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Shared by the events of a frame (one allocation per frame).
    pub tag: Arc<str>,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub record: Record,
}

/// What one frame carried.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// Events, and the chunk id to acknowledge once they are accepted.
    Events {
        events: Vec<Event>,
        chunk: Option<String>,
        /// Entries skipped because `fluent_signal` was not 0 (logs).
        skipped_non_logs: usize,
    },
    /// A msgpack `nil` keep-alive.
    Heartbeat,
}

/// Why a connection's byte stream cannot be decoded; the connection should
/// be closed, since the stream has lost its frame boundaries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("decompressed payload larger than {max} bytes")]
    DecompressedTooLarge { max: usize },
    #[error("frame takes more than {max} bytes of memory to decode (limits.memory)")]
    DecodedTooLarge { max: usize },
    #[error("invalid msgpack: {0}")]
    Msgpack(ReadError),
    #[error("not a forward frame: {0}")]
    Shape(&'static str),
    #[error("cannot decompress {format} payload: {reason}")]
    Decompress {
        format: &'static str,
        reason: String,
    },
}

impl FrameError {
    /// A short stable name, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "frame_too_large",
            FrameError::DecompressedTooLarge { .. } => "decompressed_too_large",
            FrameError::DecodedTooLarge { .. } => "decoded_too_large",
            FrameError::Msgpack(_) => "invalid_msgpack",
            FrameError::Shape(_) => "bad_frame_shape",
            FrameError::Decompress { .. } => "bad_compression",
        }
    }
}

/// Buffers one connection's bytes and splits them into frames.
#[derive(Debug, Default)]
pub struct ForwardCodec {
    limits: Limits,
    /// `buf[start..end]` is read and not decoded yet; `buf[end..]` is room
    /// for the next read (zeroed once, when the buffer grew).
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by earlier frames.
    start: usize,
    end: usize,
    /// Do not try to read a frame again before `buf` holds this many bytes
    /// (from `start`): the last attempt needed at least that much.
    retry_at: usize,
    /// How far the frame at `start` was checked (offsets from `start`).
    skipper: msgpack::Skipper,
    /// The tag of the last frame: a client sends one tag (Docker: one frame
    /// per line), so its frames' events share one copy of it.
    last_tag: Option<Arc<str>>,
    /// The Forward-mode frame at `start`, decoded as far as it arrived
    /// (then `skipper` is idle).
    streaming: Option<streaming::Streaming>,
    /// What the last Forward frame decoded to, for the next one's room.
    last_frame: streaming::LastFrame,
}

/// Room in a connection's buffer worth giving back while it waits.
const SHED_AT_LEAST: usize = 16 << 10;

impl ForwardCodec {
    /// Limits above 256 MiB are lowered to it: a record's text is indexed
    /// with `u32`, and a frame's text can be several times its bytes
    /// (U+FFFD for an invalid byte, `{"data":"ff","ext":1}` for a 3-byte
    /// ext key: at most 8 times).
    pub fn new(limits: Limits) -> ForwardCodec {
        const MOST: usize = (u32::MAX / 16) as usize;
        ForwardCodec {
            limits: Limits {
                max_frame_bytes: limits.max_frame_bytes.min(MOST),
                max_decompressed_bytes: limits.max_decompressed_bytes.min(MOST),
                max_decoded_bytes: limits.max_decoded_bytes,
            },
            ..ForwardCodec::default()
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.room(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// Room for at least `wanted` more bytes at the end of the buffer, to
    /// read the connection into in place: bytes are not copied on their
    /// way in. [`ForwardCodec::filled`] then says how many were read.
    pub fn room(&mut self, wanted: usize) -> &mut [u8] {
        if self.buf.len() - self.end < wanted {
            self.make_room(wanted);
        }
        &mut self.buf[self.end..]
    }

    /// The first `n` bytes of the last [`ForwardCodec::room`] were read.
    pub fn filled(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.end, "filled past the room");
        self.end += n;
    }

    fn make_room(&mut self, wanted: usize) {
        // Decoded frames are dropped from the front first: the bytes moved
        // are only the start of a frame not complete yet.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let len = self.end + wanted;
        if self.buf.len() < len {
            // The capacity grows by doubling (a big frame is not copied
            // once per read); only what is used is zeroed, and so touched.
            self.buf.reserve(len - self.buf.len());
            self.buf.resize(len, 0);
        }
    }

    /// Gives back the buffer's room beyond the bytes not decoded yet, when
    /// that room is most of it: a connection waiting for its client then
    /// holds the start of a frame at most, not a read's room (a thousand
    /// idle connections would otherwise hold 64 MiB). The bytes kept are
    /// copied only when that frees more than they take.
    pub fn shed_spare_room(&mut self) {
        let pending = self.end - self.start;
        let spare = self.buf.capacity() - pending;
        if spare < SHED_AT_LEAST || spare < pending {
            return;
        }
        self.buf = self.buf[self.start..self.end].to_vec();
        self.start = 0;
        self.end = pending;
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The memory a Forward frame decoded as it arrives holds before it is
    /// complete: its entries so far, and the room reserved for the rest.
    pub fn partial_frame_bytes(&self) -> usize {
        self.streaming
            .as_ref()
            .map_or(0, streaming::Streaming::held_bytes)
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    /// `now_ns` stands in for events whose time is nil or 0, as fluentd does.
    pub fn next_frame(&mut self, now_ns: i64) -> Result<Option<Frame>, FrameError> {
        let pending = &self.buf[self.start..self.end];
        if pending.is_empty() || pending.len() < self.retry_at {
            return Ok(None);
        }
        if self.streaming.is_none() && !self.skipper.in_progress() {
            match streaming::start(pending, &self.limits, &mut self.last_tag, &self.last_frame)? {
                streaming::Start::Forward(frame) => self.streaming = Some(frame),
                streaming::Start::Other => {}
                streaming::Start::NeedBytes { needed } => {
                    self.retry_at = needed;
                    return Ok(None);
                }
            }
        }
        if let Some(frame) = &mut self.streaming {
            return match frame.resume(pending, now_ns, &self.limits) {
                Ok(Ok(done)) => {
                    self.streaming = None;
                    self.last_frame = done.shape;
                    self.start += done.len;
                    self.retry_at = 0;
                    Ok(Some(done.frame))
                }
                Ok(Err(needed)) => {
                    self.retry_at = needed;
                    Ok(None)
                }
                Err(e) => {
                    self.streaming = None;
                    Err(e)
                }
            };
        }
        let limits = self.limits;
        let mut last_tag = self.last_tag.take();
        let frame = self.next_with(|frame, elements| {
            decode_frame(frame, elements, now_ns, &limits, &mut last_tag)
        });
        self.last_tag = last_tag;
        frame
    }

    /// The next complete msgpack value, whatever it is (the handshake's PING),
    /// given to `read`; `Ok(None)` when more bytes are needed.
    pub fn next_value<T>(
        &mut self,
        read: impl FnOnce(&Value<'_>) -> T,
    ) -> Result<Option<T>, FrameError> {
        self.next_with(|bytes, _| {
            let (value, _) = msgpack::read(bytes).map_err(FrameError::Msgpack)?;
            Ok(read(&value))
        })
    }

    /// Finds where the next value ends (checking it all, building nothing)
    /// and gives its bytes to `decode`, with where its first elements start.
    fn next_with<T>(
        &mut self,
        decode: impl FnOnce(&[u8], &[usize]) -> Result<T, FrameError>,
    ) -> Result<Option<T>, FrameError> {
        let pending = &self.buf[self.start..self.end];
        if pending.is_empty() || pending.len() < self.retry_at {
            return Ok(None);
        }
        match self.skipper.resume(pending) {
            Ok(len) => {
                let mut elements = [0; 4];
                let first = self.skipper.first_children();
                elements[..first.len()].copy_from_slice(first);
                let elements = &elements[..first.len()];
                self.skipper.reset();
                if len > self.limits.max_frame_bytes {
                    return Err(FrameError::TooLarge {
                        max: self.limits.max_frame_bytes,
                    });
                }
                let decoded = decode(&pending[..len], elements);
                self.start += len;
                self.retry_at = 0;
                decoded.map(Some)
            }
            Err(ReadError::Incomplete { needed }) => {
                if needed > self.limits.max_frame_bytes
                    || pending.len() > self.limits.max_frame_bytes
                {
                    return Err(FrameError::TooLarge {
                        max: self.limits.max_frame_bytes,
                    });
                }
                self.retry_at = needed.max(pending.len() + 1);
                Ok(None)
            }
            Err(e) => Err(FrameError::Msgpack(e)),
        }
    }
}

/// Decodes one frame from its bytes, which a `msgpack::Skipper` checked
/// (`elements`: where the frame's first elements start): the entries are
/// read straight into events, with no msgpack tree per record. `last_tag`
/// is the tag of the frame before, reused when this one has the same.
fn decode_frame(
    frame: &[u8],
    elements: &[usize],
    now_ns: i64,
    limits: &Limits,
    last_tag: &mut Option<Arc<str>>,
) -> Result<Frame, FrameError> {
    let mut c = Cursor::new(frame);
    if c.peek() == Some(0xc0) {
        return Ok(Frame::Heartbeat);
    }
    let len = c
        .array_len()
        .map_err(FrameError::Msgpack)?
        .ok_or(FrameError::Shape("a frame is an array"))?;
    let tag = match c.bytes().map_err(FrameError::Msgpack)? {
        Some(bytes) if len > 0 => match last_tag {
            Some(last) if last.as_bytes() == bytes => last.clone(),
            _ => last_tag.insert(Arc::<str>::from(text(bytes))).clone(),
        },
        _ => return Err(FrameError::Shape("the first element (tag) is a string")),
    };
    if len < 2 {
        return Err(FrameError::Shape("a frame has at least two elements"));
    }
    // Message mode has the record third and the option fourth; the others
    // have the option third. The option is read first (straight from where
    // the check saw it start, not by stepping over the entries): it says
    // whether the entries are logs and how they are compressed.
    let message = c.peek().is_some_and(is_time_marker);
    if message && len < 3 {
        return Err(FrameError::Shape("a message has a record"));
    }
    let option_index = if message { 3 } else { 2 };
    let option = match elements.get(option_index) {
        Some(&at) if len > option_index => Some(
            Cursor::new(&frame[at..])
                .value()
                .map_err(FrameError::Msgpack)?,
        ),
        _ => None,
    };
    let options = Options::read(option.as_ref())?;
    // Forward mode: the entries' count (checked against the frame's bytes).
    let entries = if message {
        None
    } else {
        c.array_len().map_err(FrameError::Msgpack)?
    };
    if entries.is_some_and(|n| !fits_entries(n, limits)) {
        return Err(decoded_too_large(limits));
    }
    let mut times = Vec::with_capacity(entries.unwrap_or(1));
    // Sized once the mode says how much text there can be.
    let mut records: RecordsBuilder;
    let mut skipped_non_logs = 0;
    // `time` is checked only for log entries: other signals are skipped
    // whatever their time says.
    let mut push = |records: &mut RecordsBuilder,
                    time: Result<i64, FrameError>,
                    record: &mut Cursor<'_>|
     -> Result<(), FrameError> {
        if options.fluent_signal != 0 {
            skipped_non_logs += 1;
            return Ok(());
        }
        times.push(time?);
        read_record(record, records, limits)
    };
    if message {
        records = RecordsBuilder::with_capacity(frame.len());
        let time = read_time(&mut c, now_ns);
        push(&mut records, time, &mut c)?;
    } else if let Some(count) = entries {
        records = RecordsBuilder::with_capacity(frame.len());
        // `skip` checked the whole frame: each entry is read in place, and
        // `read_record` leaves the cursor at the next one.
        for _ in 0..count {
            let time = entry_time(&mut c, now_ns)?;
            push(&mut records, time, &mut c)?;
        }
    } else if let Some(payload) = c.bytes().map_err(FrameError::Msgpack)? {
        let payload = decompress(payload, options.compressed, limits)?;
        records = RecordsBuilder::with_capacity(payload.len());
        let mut rest: &[u8] = &payload;
        while !rest.is_empty() {
            let len = msgpack::skip(rest).map_err(|e| match e {
                ReadError::Incomplete { .. } => FrameError::Shape("a packed entry is cut short"),
                other => FrameError::Msgpack(other),
            })?;
            let mut entry = Cursor::new(&rest[..len]);
            let time = entry_time(&mut entry, now_ns)?;
            push(&mut records, time, &mut entry)?;
            rest = &rest[len..];
        }
    } else {
        return Err(FrameError::Shape(
            "the second element is a time, an array or a packed string",
        ));
    }
    Ok(Frame::Events {
        events: events(&tag, times, records),
        chunk: options.chunk,
        skipped_non_logs,
    })
}

/// A frame's events: each time with its record, all with the frame's tag.
fn events(tag: &Arc<str>, times: Vec<i64>, records: RecordsBuilder) -> Vec<Event> {
    times
        .into_iter()
        .zip(records.finish())
        .map(|(time_ns, record)| Event {
            tag: tag.clone(),
            time_ns,
            record,
        })
        .collect()
}

/// The forward options this decoder acts on; unknown keys are ignored.
#[derive(Debug, Default)]
struct Options {
    chunk: Option<String>,
    compressed: Compression,
    fluent_signal: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Options {
    fn read(option: Option<&Value<'_>>) -> Result<Options, FrameError> {
        let mut options = Options::default();
        let entries = match option {
            None | Some(Value::Nil) => return Ok(options),
            Some(Value::Map(entries)) => entries,
            Some(_) => return Err(FrameError::Shape("the option is a map")),
        };
        for (key, value) in entries {
            match key.as_bytes() {
                Some(b"chunk") => {
                    options.chunk = value.as_bytes().map(|b| text(b).into_owned());
                }
                Some(b"compressed") => {
                    options.compressed = match value.as_bytes() {
                        Some(b"gzip") => Compression::Gzip,
                        Some(b"zstd") => Compression::Zstd,
                        Some(b"text") | None => Compression::None,
                        Some(_) => {
                            return Err(FrameError::Shape("compressed is gzip, zstd or text"))
                        }
                    };
                }
                Some(b"fluent_signal") => {
                    if let Value::Int(n) = value {
                        options.fluent_signal = *n;
                    }
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// Whether a msgpack marker starts a time: an integer, a float, an ext
/// (EventTime) or nil.
fn is_time_marker(marker: u8) -> bool {
    matches!(
        marker,
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc7..=0xc9 | 0xca..=0xd3 | 0xd4..=0xd8
    )
}

/// Reads the head of an entry, `[time, record]` or the newer
/// `[[time, metadata], record]`: returns the time (whose own error counts
/// only for a log entry) and leaves the cursor at the record.
fn entry_time(entry: &mut Cursor<'_>, now_ns: i64) -> Result<Result<i64, FrameError>, FrameError> {
    let shape = FrameError::Shape("an entry is [time, record]");
    match entry.array_len().map_err(FrameError::Msgpack)? {
        Some(2) => {}
        _ => return Err(shape),
    }
    match entry.array_len().map_err(FrameError::Msgpack)? {
        None => Ok(read_time(entry, now_ns)),
        Some(0) => Err(FrameError::Shape("an entry header is [time, metadata]")),
        Some(n) => {
            let time = read_time(entry, now_ns);
            for _ in 1..n {
                entry.skip().map_err(FrameError::Msgpack)?;
            }
            Ok(time)
        }
    }
}

/// An entry's time in ns ([`time_ns`]), read in place when it is an
/// EventTime (as Docker and Fluent Bit send): no msgpack value built and
/// dropped per event.
fn read_time(c: &mut Cursor<'_>, now_ns: i64) -> Result<i64, FrameError> {
    match c.event_time() {
        Some((secs, nanos)) => Ok(event_time_ns(secs, nanos)),
        None => time_ns(&c.value().map_err(FrameError::Msgpack)?, now_ns),
    }
}

fn event_time_ns(secs: u32, nanos: u32) -> i64 {
    i64::from(secs) * 1_000_000_000 + i64::from(nanos)
}

/// Integer seconds, EventTime (ext 0: u32 seconds, u32 nanoseconds, big
/// endian), or float seconds; nil or 0 mean "now".
fn time_ns(time: &Value<'_>, now_ns: i64) -> Result<i64, FrameError> {
    const NS: i64 = 1_000_000_000;
    let ns = match time {
        Value::Nil | Value::Int(0) => now_ns,
        Value::Int(secs) => secs.saturating_mul(NS),
        Value::UInt(_) => return Err(FrameError::Shape("time out of range")),
        Value::Float(secs) if secs.is_finite() => (secs * 1e9) as i64,
        Value::Ext(0, bytes) if bytes.len() == 8 => {
            let secs = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let nanos = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            event_time_ns(secs, nanos)
        }
        _ => {
            return Err(FrameError::Shape(
                "time is an integer, an EventTime or a float",
            ))
        }
    };
    Ok(ns)
}

/// Memory an entry takes besides its record's text and fields: its time,
/// and its event once the frame is done.
const ENTRY_BYTES: usize = std::mem::size_of::<i64>() + std::mem::size_of::<Event>();

/// About what one part of a value that is not a string takes decoded: its
/// `msgpack::Value` while it is converted, its `serde_json::Value`, and a
/// map entry's key and place in the map.
const TREE_NODE_BYTES: usize =
    2 * std::mem::size_of::<Value>() + std::mem::size_of::<Json>() + std::mem::size_of::<String>();

/// Whether `entries` events fit the frame's memory before anything else.
fn fits_entries(entries: usize, limits: &Limits) -> bool {
    entries.saturating_mul(ENTRY_BYTES) <= limits.max_decoded_bytes
}

fn decoded_too_large(limits: &Limits) -> FrameError {
    FrameError::DecodedTooLarge {
        max: limits.max_decoded_bytes,
    }
}

/// Reads the record at the cursor into `records`: str and bin values
/// (nearly all of a log record) straight from their bytes into the frame's
/// shared text, anything else through a msgpack value. Refused when the
/// frame's events would then hold more than the limit: checked before room
/// is made for the map's fields (its header may claim millions in a few
/// bytes), before a value that is not a string is built, and once the
/// record is in.
fn read_record(
    record: &mut Cursor<'_>,
    records: &mut RecordsBuilder,
    limits: &Limits,
) -> Result<(), FrameError> {
    let count = record
        .map_len()
        .map_err(FrameError::Msgpack)?
        .ok_or(FrameError::Shape("a record is a map"))?;
    if held(records.held_bytes_with(count), records) + ENTRY_BYTES > limits.max_decoded_bytes {
        return Err(decoded_too_large(limits));
    }
    // Bounded by the bytes buffered, which hold this many pairs.
    records.start_record(count);
    for _ in 0..count {
        let key = match record.bytes().map_err(FrameError::Msgpack)? {
            Some(bytes) => Cow::Borrowed(bytes),
            None => Cow::Owned(key_string(&tree(record, records, limits)?.0)?.into_bytes()),
        };
        match record.bytes().map_err(FrameError::Msgpack)? {
            Some(bytes) => records.push_str(&key, bytes),
            None => {
                let (value, bytes) = tree(record, records, limits)?;
                records.push_json(&key, to_json(&value)?, bytes);
            }
        }
    }
    if held(records.held_bytes(), records) > limits.max_decoded_bytes {
        return Err(decoded_too_large(limits));
    }
    Ok(())
}

/// What `records` hold with `bytes` more: theirs, and each entry's event.
fn held(bytes: usize, records: &RecordsBuilder) -> usize {
    bytes.saturating_add(records.records().saturating_mul(ENTRY_BYTES))
}

/// The next value, which is not a string: a value built as a tree takes
/// memory in proportion to its parts (a million nils in a megabyte), so
/// it is sized, and refused past the limit, before it is built. Returns
/// it with its size.
fn tree<'a>(
    record: &mut Cursor<'a>,
    records: &RecordsBuilder,
    limits: &Limits,
) -> Result<(Value<'a>, usize), FrameError> {
    let bytes = record
        .items()
        .map_err(FrameError::Msgpack)?
        .saturating_mul(TREE_NODE_BYTES);
    if held(records.held_bytes().saturating_add(bytes), records) > limits.max_decoded_bytes {
        return Err(decoded_too_large(limits));
    }
    let value = record.value().map_err(FrameError::Msgpack)?;
    Ok((value, bytes))
}

/// The most bytes a map key that is not a string may take as JSON text.
/// Such a key becomes its JSON text, and a map key inside it is escaped
/// again there: without a bound, a 288-byte frame of maps keyed by maps,
/// 32 deep, doubled its key's text at each level (2 GiB in 6 s).
const MAX_KEY_TEXT: usize = 1024;

/// A map key as a record's key: a string as it is, anything else as its
/// JSON text, of at most [`MAX_KEY_TEXT`] bytes.
fn key_string(key: &Value<'_>) -> Result<String, FrameError> {
    match key.as_bytes() {
        Some(b) => Ok(text(b).into_owned()),
        None => {
            let json = to_json(key)?.to_string();
            if json.len() > MAX_KEY_TEXT {
                return Err(FrameError::Shape(
                    "a map key that is not a string is longer than 1 KiB as JSON",
                ));
            }
            Ok(json)
        }
    }
}

/// Bytes as text: validated in one pass (fast for the ASCII logs usually
/// are), with U+FFFD for invalid sequences only when there are some.
/// Borrowed when valid, so that the caller makes the one copy it keeps.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A msgpack value as JSON: strings and binaries as (lossy UTF-8) strings,
/// ext values as `{"ext": type, "data": "<hex>"}`.
fn to_json(value: &Value<'_>) -> Result<Json, FrameError> {
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => Json::Number((*n).into()),
        Value::UInt(n) => Json::Number((*n).into()),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(b) | Value::Bin(b) => Json::String(text(b).into_owned()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((key_string(k)?, to_json(v)?)))
                .collect::<Result<_, FrameError>>()?,
        ),
        Value::Ext(ty, data) => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "ext": ty, "data": hex })
        }
    })
}

/// Decompresses a CompressedPackedForward payload, refusing to produce more
/// than the limit (a gzip bomb stops there, not in the allocator).
fn decompress<'p>(
    payload: &'p [u8],
    compression: Compression,
    limits: &Limits,
) -> Result<std::borrow::Cow<'p, [u8]>, FrameError> {
    let max = limits.max_decompressed_bytes;
    let (format, reader): (&'static str, Box<dyn Read + 'p>) = match compression {
        Compression::None => return Ok(std::borrow::Cow::Borrowed(payload)),
        // Fluentd accepts several gzip members back to back.
        Compression::Gzip => ("gzip", Box::new(flate2::read::MultiGzDecoder::new(payload))),
        Compression::Zstd => (
            "zstd",
            Box::new(
                zstd::stream::read::Decoder::with_buffer(payload).map_err(|e| {
                    FrameError::Decompress {
                        format: "zstd",
                        reason: e.to_string(),
                    }
                })?,
            ),
        ),
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| FrameError::Decompress {
            format,
            reason: e.to_string(),
        })?;
    if out.len() > max {
        return Err(FrameError::DecompressedTooLarge { max });
    }
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    /// A minimal msgpack writer for building frames by hand.
    mod mp {
        pub fn str(s: &str) -> Vec<u8> {
            let mut out = if s.len() < 32 {
                vec![0xa0 | s.len() as u8]
            } else {
                let mut v = vec![0xda];
                v.extend_from_slice(&(s.len() as u16).to_be_bytes());
                v
            };
            out.extend_from_slice(s.as_bytes());
            out
        }
        pub fn bin(b: &[u8]) -> Vec<u8> {
            let mut out = vec![0xc6];
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
            out
        }
        pub fn int(n: u32) -> Vec<u8> {
            let mut out = vec![0xce];
            out.extend_from_slice(&n.to_be_bytes());
            out
        }
        pub fn event_time(secs: u32, nanos: u32) -> Vec<u8> {
            let mut out = vec![0xd7, 0x00];
            out.extend_from_slice(&secs.to_be_bytes());
            out.extend_from_slice(&nanos.to_be_bytes());
            out
        }
        pub fn arr(items: &[Vec<u8>]) -> Vec<u8> {
            let mut out = vec![0xdc];
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for i in items {
                out.extend_from_slice(i);
            }
            out
        }
        /// Always a map32 header, as Fluent Bit writes option maps.
        pub fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
            let mut out = vec![0xdf];
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (k, v) in entries {
                out.extend_from_slice(&str(k));
                out.extend_from_slice(v);
            }
            out
        }
    }

    fn record(log: &str) -> Vec<u8> {
        mp::map(&[("log", mp::str(log)), ("source", mp::str("stdout"))])
    }

    fn decode_all(bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        decode_in_pieces(bytes, bytes.len().max(1), Limits::default())
    }

    fn events(frame: &Result<Frame, FrameError>) -> Vec<(String, i64, Json)> {
        match frame {
            Ok(Frame::Events { events, .. }) => events
                .iter()
                .map(|e| {
                    (
                        e.tag.to_string(),
                        e.time_ns,
                        Json::Object(e.record.to_json()),
                    )
                })
                .collect(),
            other => panic!("not events: {other:?}"),
        }
    }

    fn chunk(frame: &Result<Frame, FrameError>) -> Option<String> {
        match frame {
            Ok(Frame::Events { chunk, .. }) => chunk.clone(),
            other => panic!("not events: {other:?}"),
        }
    }

    const T: u32 = 1_700_000_000;

    #[test]
    fn message_mode_with_integer_and_event_time() {
        let frames = decode_all(
            &[
                mp::arr(&[mp::str("app"), mp::int(T), record("a")]),
                mp::arr(&[
                    mp::str("app"),
                    mp::event_time(T, 5),
                    record("b"),
                    mp::map(&[("chunk", mp::str("c1"))]),
                ]),
            ]
            .concat(),
        );
        assert_eq!(frames.len(), 2);
        assert_eq!(
            events(&frames[0]),
            [(
                "app".into(),
                i64::from(T) * 1_000_000_000,
                json!({"log": "a", "source": "stdout"})
            )]
        );
        assert_eq!(chunk(&frames[0]), None);
        assert_eq!(events(&frames[1])[0].1, i64::from(T) * 1_000_000_000 + 5);
        assert_eq!(chunk(&frames[1]).as_deref(), Some("c1"));
    }

    #[test]
    fn forward_mode_with_both_entry_shapes() {
        let entries = mp::arr(&[
            mp::arr(&[mp::event_time(T, 1), record("a")]),
            mp::arr(&[mp::arr(&[mp::event_time(T, 2), mp::map(&[])]), record("b")]),
            mp::arr(&[mp::int(T), record("c")]),
        ]);
        let frame = mp::arr(&[
            mp::str("tag"),
            entries,
            mp::map(&[("size", mp::int(3)), ("chunk", mp::str("x"))]),
        ]);
        let frames = decode_all(&frame);
        let got: Vec<String> = events(&frames[0])
            .iter()
            .map(|e| e.2["log"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(events(&frames[0])[1].1, i64::from(T) * 1_000_000_000 + 2);
        assert_eq!(chunk(&frames[0]).as_deref(), Some("x"));
    }

    fn packed(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| mp::arr(&[mp::event_time(T, i as u32), record(&format!("line {i}"))]))
            .collect()
    }

    #[test]
    fn packed_forward_as_str_and_bin() {
        let payload = packed(3);
        for body in [mp::bin(&payload), {
            let mut s = vec![0xdb];
            s.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            s.extend_from_slice(&payload);
            s
        }] {
            let frames = decode_all(&mp::arr(&[mp::str("t"), body]));
            assert_eq!(events(&frames[0]).len(), 3);
            assert_eq!(events(&frames[0])[2].2["log"], "line 2");
        }
    }

    #[test]
    fn compressed_packed_forward_gzip_and_zstd() {
        let payload = packed(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&payload).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::stream::encode_all(&payload[..], 3).unwrap();
        for (name, body) in [("gzip", gz), ("zstd", zs)] {
            let frame = mp::arr(&[
                mp::str("t"),
                mp::bin(&body),
                mp::map(&[("compressed", mp::str(name))]),
            ]);
            let frames = decode_all(&frame);
            assert_eq!(events(&frames[0]).len(), 100, "{name}");
        }
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 8 << 20]).unwrap();
        let body = gz.finish().unwrap();
        let frame = mp::arr(&[
            mp::str("t"),
            mp::bin(&body),
            mp::map(&[("compressed", mp::str("gzip"))]),
        ]);
        let mut codec = ForwardCodec::new(Limits {
            max_frame_bytes: 16 << 20,
            max_decompressed_bytes: 1 << 20,
            ..Limits::default()
        });
        codec.feed(&frame);
        assert_eq!(
            codec.next_frame(0),
            Err(FrameError::DecompressedTooLarge { max: 1 << 20 })
        );
    }

    #[test]
    fn non_log_signals_are_skipped_and_counted() {
        let frame = mp::arr(&[
            mp::str("metrics"),
            mp::arr(&[mp::arr(&[mp::int(T), record("m")])]),
            mp::map(&[("fluent_signal", vec![0x01])]),
        ]);
        match &decode_all(&frame)[0] {
            Ok(Frame::Events {
                events,
                skipped_non_logs,
                ..
            }) => {
                assert!(events.is_empty());
                assert_eq!(*skipped_non_logs, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_keep_non_string_values_and_replace_invalid_utf8() {
        let entry = |record: Vec<u8>| mp::arr(&[mp::int(T), record]);
        let frames = decode_all(&mp::arr(&[
            mp::str("app"),
            mp::arr(&[
                entry(mp::map(&[
                    ("log", mp::bin(b"caf\xc3\xa9 \xff")),
                    ("n", mp::int(7)),
                    ("log", mp::str("last wins")),
                ])),
                entry(mp::map(&[("log", mp::bin(b"ok")), ("nested", record("x"))])),
            ]),
        ]));
        let got: Vec<Json> = events(&frames[0]).into_iter().map(|e| e.2).collect();
        assert_eq!(
            got,
            [
                json!({"log": "last wins", "n": 7}),
                json!({"log": "ok", "nested": {"log": "x", "source": "stdout"}}),
            ]
        );
        let frames = decode_all(&mp::arr(&[
            mp::str("app"),
            mp::int(T),
            mp::map(&[
                ("log", mp::bin(b"caf\xc3\xa9 \xff")),
                ("source", mp::str("stdout")),
            ]),
        ]));
        assert_eq!(
            events(&frames[0])[0].2,
            json!({"log": "café \u{fffd}", "source": "stdout"})
        );
    }

    #[test]
    fn byte_at_a_time_and_heartbeats() {
        let bytes = [
            vec![0xc0],
            mp::arr(&[mp::str("t"), mp::int(T), record("x")]),
            vec![0xc0],
        ]
        .concat();
        let mut codec = ForwardCodec::new(Limits::default());
        let mut frames = Vec::new();
        for b in &bytes {
            codec.feed(std::slice::from_ref(b));
            while let Some(f) = codec.next_frame(0).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Heartbeat);
        assert_eq!(frames[2], Frame::Heartbeat);
        assert_eq!(codec.buffered(), 0);
    }

    /// A Forward frame that stops arriving holds the room planned from the
    /// frame before it, and says so: the driver pays the budget for it.
    #[test]
    fn a_forward_frame_cut_short_holds_the_room_its_predecessor_planned() {
        let entries: Vec<Vec<u8>> = (0..100)
            .map(|_| mp::arr(&[mp::int(T), record(&"x".repeat(100))]))
            .collect();
        let frame = mp::arr(&[mp::str("t"), mp::arr(&entries)]);
        let mut codec = ForwardCodec::new(Limits::default());
        codec.feed(&frame);
        assert_eq!(events(&codec.next_frame(0).map(Option::unwrap)).len(), 100);
        assert_eq!(codec.partial_frame_bytes(), 0);

        let half = frame.len() / 2;
        codec.feed(&frame[..half]);
        assert_eq!(codec.next_frame(0).unwrap(), None);
        // Each record: "log" and 100 bytes, "source" and "stdout": 115
        // bytes of text and 2 fields, for 100 entries, and a sixteenth
        // more. Besides, 100 times and the starts of the 49 records in
        // (a vector grown to 64).
        let text = 11_500 + 11_500 / 16;
        let fields = 200 + 200 / 16;
        assert_eq!(
            codec.partial_frame_bytes(),
            text + fields * crate::fields::FIELD_BYTES + 64 * 4 + 100 * 8
        );
        codec.feed(&frame[half..]);
        assert_eq!(events(&codec.next_frame(0).map(Option::unwrap)).len(), 100);
        assert_eq!(codec.partial_frame_bytes(), 0);
        assert_eq!(codec.buffered(), 0);
    }

    #[test]
    fn reads_in_place_keep_every_byte_and_reuse_the_buffer() {
        // 200 frames of growing size, read through `room` in 1,000-byte
        // reads: frames split across reads, and the start of each moved
        // to the front when the room runs out.
        let frames: Vec<Vec<u8>> = (0..200)
            .map(|i| mp::arr(&[mp::str("t"), mp::int(T), record(&"x".repeat(i * 7))]))
            .collect();
        let bytes = frames.concat();
        let mut codec = ForwardCodec::new(Limits::default());
        let mut logs = Vec::new();
        let mut largest = 0;
        for chunk in bytes.chunks(1000) {
            let room = codec.room(4096);
            assert!(room.len() >= 4096);
            room[..chunk.len()].copy_from_slice(chunk);
            codec.filled(chunk.len());
            largest = largest.max(codec.buf.len());
            while let Some(frame) = codec.next_frame(0).unwrap() {
                logs.push(events(&Ok(frame))[0].2["log"].as_str().unwrap().len());
            }
        }
        assert_eq!(logs, (0..200).map(|i| i * 7).collect::<Vec<_>>());
        assert_eq!(codec.buffered(), 0);
        // The buffer is not grown past a frame and a read's room: the
        // largest frame is under 1,500 bytes.
        assert!(largest <= 1500 + 4096, "{largest}");
    }

    #[test]
    fn a_waiting_connection_keeps_only_its_undecoded_bytes() {
        let frame = mp::arr(&[mp::str("t"), mp::int(T), record("x")]);
        let mut codec = ForwardCodec::new(Limits::default());
        codec.room(64 << 10);
        codec.feed(&frame);
        assert!(codec.next_frame(0).unwrap().is_some());
        codec.shed_spare_room();
        assert_eq!(codec.buf.capacity(), 0);
        // Half a frame is kept, and decodes once the rest arrives.
        let (head, tail) = frame.split_at(frame.len() / 2);
        codec.room(64 << 10);
        codec.feed(head);
        assert!(codec.next_frame(0).unwrap().is_none());
        codec.shed_spare_room();
        assert_eq!(codec.buf.capacity(), head.len());
        assert_eq!(codec.buffered(), head.len());
        codec.feed(tail);
        let events = events(&Ok(codec.next_frame(0).unwrap().unwrap()));
        assert_eq!(events[0].2["log"], "x");
        // Little room to give back: nothing is copied.
        codec.room(100);
        codec.feed(head);
        let capacity = codec.buf.capacity();
        codec.shed_spare_room();
        assert_eq!(codec.buf.capacity(), capacity);
    }

    #[test]
    #[should_panic(expected = "filled past the room")]
    fn filling_past_the_room_is_a_bug() {
        let mut codec = ForwardCodec::new(Limits::default());
        let room = codec.room(10).len();
        codec.filled(room + 1);
    }

    #[test]
    fn nil_time_means_now() {
        let frames = decode_all(&mp::arr(&[mp::str("t"), vec![0xc0], record("x")]));
        assert_eq!(events(&frames[0])[0].1, 42);
    }

    #[test]
    fn bad_frames_are_errors_with_kinds() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0xc1], "invalid_msgpack"),
            (mp::str("not an array"), "bad_frame_shape"),
            (
                mp::arr(&[mp::int(1), mp::int(T), record("x")]),
                "bad_frame_shape",
            ),
            (
                mp::arr(&[mp::str("t"), mp::int(T), mp::str("not a map")]),
                "bad_frame_shape",
            ),
            (
                mp::arr(&[mp::str("t"), mp::bin(&[0x92, 0x01])]),
                "bad_frame_shape",
            ),
            (
                mp::arr(&[
                    mp::str("t"),
                    mp::bin(b"junk"),
                    mp::map(&[("compressed", mp::str("gzip"))]),
                ]),
                "bad_compression",
            ),
        ];
        for (bytes, kind) in cases {
            match decode_all(&bytes).pop() {
                Some(Err(e)) => assert_eq!(e.kind(), kind, "{e}"),
                other => panic!("{bytes:x?}: {other:?}"),
            }
        }
        let mut codec = ForwardCodec::new(Limits {
            max_frame_bytes: 64,
            max_decompressed_bytes: 64,
            ..Limits::default()
        });
        codec.feed(&mp::arr(&[
            mp::str("t"),
            mp::int(T),
            record(&"x".repeat(100)),
        ]));
        assert_eq!(codec.next_frame(0), Err(FrameError::TooLarge { max: 64 }));
        // A declared size past the limit fails before the bytes arrive.
        let mut codec = ForwardCodec::new(Limits {
            max_frame_bytes: 1024,
            max_decompressed_bytes: 64,
            ..Limits::default()
        });
        codec.feed(&[0x92, 0xa1, b't', 0xc6, 0, 1, 0, 0]);
        assert_eq!(codec.next_frame(0), Err(FrameError::TooLarge { max: 1024 }));
    }

    /// A map key that is not a string becomes its JSON text. Maps keyed by
    /// maps around a key of quotes double that text at each level (each
    /// level escapes the one inside it; 28 levels would take gigabytes):
    /// such a key is refused once its text passes 1 KiB. Ten levels would
    /// make a key of about 20 KB.
    #[test]
    fn keys_that_are_not_strings_are_their_json_text_up_to_1_kib() {
        let message = |record: Vec<u8>| mp::arr(&[mp::str("t"), mp::int(T), record]);
        let mut keyed = vec![0x83, 0x01];
        keyed.extend(mp::str("one"));
        keyed.extend([0x92, 0x01, 0x02]);
        keyed.extend(mp::str("pair"));
        keyed.extend([0x81, 0xa1, b'k', 0xc0]);
        keyed.extend(mp::str("map"));
        let frames = decode_all(&message(keyed));
        assert_eq!(
            events(&frames[0])[0].2,
            serde_json::json!({"1": "one", "[1,2]": "pair", "{\"k\":null}": "map"})
        );
        let mut nested = mp::str(&"\"".repeat(20));
        for _ in 0..9 {
            let mut map = vec![0x81];
            map.extend(nested);
            map.push(0xc0);
            nested = map;
        }
        let mut record = vec![0x81];
        record.extend(nested);
        record.push(0xc0);
        match decode_all(&message(record)).pop() {
            Some(Err(e)) => assert_eq!(e.kind(), "bad_frame_shape", "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// A few bytes may claim far more memory than they take: a map header
    /// a hundred thousand fields, a Forward frame's entries of a few bytes
    /// an event each. A frame that would decode to more than
    /// `max_decoded_bytes` is refused before that memory is taken, in each
    /// mode, whole or arriving in pieces; under the limit the same shapes
    /// decode.
    #[test]
    fn frames_that_decode_to_more_than_the_memory_limit_are_refused() {
        let limits = Limits {
            max_decoded_bytes: 1 << 20,
            ..Limits::default()
        };
        let message = |pairs: u32| {
            let mut map = vec![0xdf];
            map.extend_from_slice(&pairs.to_be_bytes());
            for _ in 0..pairs {
                map.extend_from_slice(&[0xa0, 0xc0]);
            }
            mp::arr(&[mp::str("t"), mp::int(T), map])
        };
        // A record whose value is an array of `nils` nils: a byte each.
        let nils = |nils: usize| {
            let mut array = mp::arr(&vec![vec![0xc0]; nils]);
            array.insert(0, 0xa1);
            array.insert(1, b'a');
            let mut record = vec![0x81];
            record.extend(array);
            mp::arr(&[mp::str("t"), mp::int(T), record])
        };
        let entry = mp::arr(&[mp::int(T), mp::map(&[])]);
        let forward = |n: usize| mp::arr(&[mp::str("t"), mp::arr(&vec![entry.clone(); n])]);
        let packed = |n: usize| mp::arr(&[mp::str("t"), mp::bin(&entry.repeat(n))]);
        // 100,000 fields of 56 bytes; 20,000 nils built as trees; 20,000
        // entries of 88.
        let refused = [
            ("message", message(100_000)),
            ("nils", nils(20_000)),
            ("forward", forward(20_000)),
            ("packed", packed(20_000)),
        ];
        for (mode, frame) in refused {
            for piece in [frame.len(), 4096, 100] {
                assert_eq!(
                    decode_in_pieces(&frame, piece, limits),
                    [Err(FrameError::DecodedTooLarge { max: 1 << 20 })],
                    "{mode} in pieces of {piece}"
                );
            }
        }
        let decoded = [
            ("message", message(1_000), 1),
            ("nils", nils(1_000), 1),
            ("forward", forward(1_000), 1_000),
            ("packed", packed(1_000), 1_000),
        ];
        for (mode, frame, events) in decoded {
            let frames = decode_in_pieces(&frame, 100, limits);
            match frames.as_slice() {
                [Ok(Frame::Events { events: got, .. })] => assert_eq!(got.len(), events, "{mode}"),
                other => panic!("{mode}: {other:?}"),
            }
        }
    }

    /// `bytes` fed in pieces of `piece`, every frame or error taken after
    /// each piece.
    fn decode_in_pieces(
        bytes: &[u8],
        piece: usize,
        limits: Limits,
    ) -> Vec<Result<Frame, FrameError>> {
        let mut codec = ForwardCodec::new(limits);
        let mut frames = Vec::new();
        for part in bytes.chunks(piece) {
            codec.feed(part);
            loop {
                match codec.next_frame(42) {
                    Ok(Some(f)) => frames.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        frames.push(Err(e));
                        return frames;
                    }
                }
            }
        }
        frames
    }

    /// Forward frames are decoded entry by entry as their bytes arrive: an
    /// entry that is not a log entry fails a log frame once the whole entry
    /// is in, wherever the reads split it, and nothing before it is handed
    /// out as a frame.
    #[test]
    fn forward_entries_that_are_not_log_entries_fail_a_log_frame() {
        let good = mp::arr(&[mp::int(T), record("a")]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                mp::arr(&[mp::int(T), mp::str("not a map")]),
                "bad_frame_shape",
            ),
            (mp::arr(&[mp::int(T)]), "bad_frame_shape"),
            (mp::str("not an entry"), "bad_frame_shape"),
            (
                mp::arr(&[mp::str("not a time"), record("b")]),
                "bad_frame_shape",
            ),
            (
                mp::arr(&[mp::int(T), vec![0x81, 0xc1, 0x01]]),
                "invalid_msgpack",
            ),
        ];
        for (bad, kind) in cases {
            let frame = mp::arr(&[
                mp::str("t"),
                mp::arr(&[good.clone(), bad.clone(), good.clone()]),
            ]);
            for piece in [1, 3, 7, frame.len()] {
                let frames = decode_in_pieces(&frame, piece, Limits::default());
                match &frames[..] {
                    [Err(e)] => assert_eq!(e.kind(), kind, "{bad:x?} in pieces of {piece}: {e}"),
                    other => panic!("{bad:x?} in pieces of {piece}: {other:?}"),
                }
            }
        }
    }

    /// Entries of another signal (`fluent_signal` in the option, which
    /// comes after them) need no log entry's shape: they are skipped and
    /// counted, however the frame arrives.
    #[test]
    fn forward_entries_of_other_signals_are_skipped_whatever_their_shape() {
        let frame = mp::arr(&[
            mp::str("metrics"),
            mp::arr(&[
                mp::arr(&[mp::int(T), mp::str("a metric")]),
                mp::int(5),
                mp::arr(&[mp::int(T), record("m")]),
            ]),
            mp::map(&[("fluent_signal", vec![0x02]), ("chunk", mp::str("k"))]),
        ]);
        for piece in [1, 2, 5, frame.len()] {
            let frames = decode_in_pieces(&frame, piece, Limits::default());
            assert_eq!(
                frames,
                [Ok(Frame::Events {
                    events: Vec::new(),
                    chunk: Some("k".into()),
                    skipped_non_logs: 3,
                })],
                "pieces of {piece}"
            );
        }
    }

    /// A Forward frame past the limit fails as its bytes arrive, not once
    /// it is whole; so does an entry that declares more than the limit.
    #[test]
    fn forward_frames_past_the_limit_fail_as_they_arrive() {
        let limits = Limits {
            max_frame_bytes: 256,
            max_decompressed_bytes: 256,
            ..Limits::default()
        };
        let entries: Vec<Vec<u8>> = (0..20)
            .map(|_| mp::arr(&[mp::int(T), record("0123456789")]))
            .collect();
        let frame = mp::arr(&[mp::str("t"), mp::arr(&entries)]);
        assert!(frame.len() > 512);
        for piece in [1, 64, frame.len()] {
            let mut codec = ForwardCodec::new(limits);
            let mut fed = 0;
            let error = frame.chunks(piece).find_map(|part| {
                codec.feed(part);
                fed += part.len();
                codec.next_frame(0).err()
            });
            assert_eq!(
                error,
                Some(FrameError::TooLarge { max: 256 }),
                "pieces of {piece}"
            );
            assert!(
                fed <= 256 + 64 || piece == frame.len(),
                "read {fed} bytes in pieces of {piece}"
            );
        }
        // A str32 of 1 MiB declared in the first entry.
        let mut codec = ForwardCodec::new(limits);
        codec.feed(&[
            0x92, 0xa1, b't', 0x91, 0x92, 0x01, 0x81, 0xa3, b'l', b'o', b'g', 0xdb, 0, 0x10, 0, 0,
        ]);
        assert_eq!(codec.next_frame(0), Err(FrameError::TooLarge { max: 256 }));
    }
}
