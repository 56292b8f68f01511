//! The small types every part of the output shares, in a leaf module that
//! imports nothing of the crate: an event as PutLogEvents takes it, its
//! message, where the spool holds it, the stream it goes to, the process
//! clock in ms, and which key of a log record holds its line.
//! Keeping them here keeps the modules that use them (batcher, spool,
//! shipper, metrics, admin) free of import circles.

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use sluice_firelens::{FieldValue, Record};
use sluice_parser::json_out;

/// A record's line: its `log` (Docker, FireLens), else `message`
/// (fluent-logger and many libraries), without its line ending, with the
/// key it came from.
pub fn record_line(record: &Record) -> Option<(&'static str, &str)> {
    ["log", "message"]
        .into_iter()
        .find_map(|key| match record.get(key) {
            Some(FieldValue::Str(s)) => Some((key, sluice_parser::trim_line_ending(s))),
            _ => None,
        })
}

/// A log group and stream, hashed once when the key is made: the output
/// thread looks a key up in the pending batches and the statistics three
/// or four times per event, and hashing both names each time cost more
/// than the rest of those lookups. The names are shared: a copy of a key
/// (the pending batches keep one of the key the stream templates made) is
/// a reference count, and is equal to its original without comparing the
/// names byte by byte.
#[derive(Clone, Debug)]
pub struct StreamKey {
    names: Arc<Names>,
    hash: u64,
}

#[derive(Debug)]
struct Names {
    group: String,
    stream: String,
}

impl StreamKey {
    pub fn new(group: String, stream: String) -> StreamKey {
        // One seed for the process, so that equal keys hash alike;
        // random, so that names cannot be chosen to collide.
        static NAMES: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);
        let hash = NAMES.hash_one((&group, &stream));
        StreamKey {
            names: Arc::new(Names { group, stream }),
            hash,
        }
    }

    pub fn group(&self) -> &str {
        &self.names.group
    }

    pub fn stream(&self) -> &str {
        &self.names.stream
    }
}

impl PartialEq for StreamKey {
    fn eq(&self, other: &StreamKey) -> bool {
        // Different hashes are different names; equal ones are the same
        // names shared, or compared.
        self.hash == other.hash
            && (Arc::ptr_eq(&self.names, &other.names)
                || (self.group() == other.group() && self.stream() == other.stream()))
    }
}

impl Eq for StreamKey {}

impl Hash for StreamKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Ord for StreamKey {
    fn cmp(&self, other: &StreamKey) -> Ordering {
        (self.group(), self.stream()).cmp(&(other.group(), other.stream()))
    }
}

impl PartialOrd for StreamKey {
    fn partial_cmp(&self, other: &StreamKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One log event as PutLogEvents takes it, owning its message: what the
/// spool reads back, and the parts of a message too long for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub message: Message,
    /// Where the spool holds this event, released once CloudWatch has it;
    /// `None` without a spool.
    pub spool: Option<SpoolMark>,
}

impl LogEvent {
    pub fn view(&self) -> EventRef<'_> {
        EventRef {
            timestamp_ms: self.timestamp_ms,
            message: self.message.view(),
            spool: self.spool,
        }
    }
}

/// A log event borrowed from wherever its message is held: the output
/// stage's rendering, a batch's text, a spooled record. The sink, the
/// batcher and the spool take events in this form and copy the message
/// where they keep it; nothing allocates a message per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub message: MessageRef<'a>,
    /// Where the spool holds this event; `None` without a spool.
    pub spool: Option<SpoolMark>,
}

/// A message as a PutLogEvents body carries it: the contents of a JSON
/// string (escaped, without its quotes), and the length CloudWatch counts,
/// the UTF-8 bytes of the text itself.
///
/// The output stage renders an event straight into this form
/// (`json_out::Escaped`), the spool stores it, and the shipper copies it
/// into each request: a message is escaped once, not once more per body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    escaped: String,
    len: usize,
}

impl Message {
    /// `text`, escaped.
    pub fn new(text: &str) -> Message {
        Message {
            escaped: json_out::escape(text),
            len: text.len(),
        }
    }

    /// A message already escaped (read back from the spool, which stored
    /// both).
    pub fn from_escaped(escaped: String, len: usize) -> Message {
        Message { escaped, len }
    }

    /// The message borrowed, with its accessors (length, escaped form,
    /// text).
    pub fn view(&self) -> MessageRef<'_> {
        MessageRef {
            escaped: &self.escaped,
            len: self.len,
        }
    }
}

/// A [`Message`] borrowed: escaped contents and the length of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRef<'a> {
    escaped: &'a str,
    len: usize,
}

impl<'a> MessageRef<'a> {
    /// `escaped` as `json_out::Escaped` wrote it, which counted `len`.
    pub fn from_escaped(escaped: &'a str, len: usize) -> MessageRef<'a> {
        MessageRef { escaped, len }
    }

    /// UTF-8 bytes of the text: what CloudWatch's limits count.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The escaped form, as it goes between the quotes of a JSON string.
    pub fn escaped(&self) -> &'a str {
        self.escaped
    }

    /// The text itself, unescaped (for splitting an oversized message).
    pub fn text(&self) -> String {
        let mut literal = String::with_capacity(self.escaped.len() + 2);
        literal.push('"');
        literal.push_str(self.escaped);
        literal.push('"');
        // Every way into a message escapes valid text, so this parses.
        serde_json::from_str(&literal).unwrap_or_default()
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::new(text)
    }
}

/// Where the spool holds an event: its segment, and its place among the
/// segment's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolMark {
    pub segment: u64,
    pub ordinal: u32,
}

/// Milliseconds since the Unix epoch, from the forward input's clock.
pub fn now_ms() -> u64 {
    u64::try_from(sluice_firelens::now_ns() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn key(group: &str, stream: &str) -> StreamKey {
        StreamKey::new(group.into(), stream.into())
    }

    #[test]
    fn keys_are_equal_and_ordered_by_their_names() {
        assert_eq!(key("/ecs/a", "s"), key("/ecs/a", "s"));
        // The same bytes split differently are different streams.
        assert_ne!(key("/ecs/a", "bc"), key("/ecs/ab", "c"));
        assert_ne!(key("/ecs/a", "s"), key("/ecs/a", "t"));
        let mut keys = [key("b", "a"), key("a", "b"), key("a", "a")];
        keys.sort();
        let names: Vec<(&str, &str)> = keys.iter().map(|k| (k.group(), k.stream())).collect();
        assert_eq!(names, [("a", "a"), ("a", "b"), ("b", "a")]);
    }

    #[test]
    fn a_set_finds_a_key_made_again() {
        let set: HashSet<StreamKey> = [key("/ecs/a", "access"), key("/ecs/a", "app")].into();
        assert!(set.contains(&key("/ecs/a", "access")));
        assert!(set.contains(&key("/ecs/a", "app")));
        assert!(!set.contains(&key("/ecs/a", "stats")));
        assert!(!set.contains(&key("/ecs/b", "access")));
    }
}
