//! The bytes of a spool segment, as pure functions.
//!
//! A segment is the header [`MAGIC`] and then records, each
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`.
//! A payload is one of:
//!
//! - `1 (u8), stream id (u32), emf (u8), group length (u16), group, stream
//!   length (u16), stream`: names a log stream for the events after it in
//!   this segment (so each event does not repeat its group and stream);
//! - `3 (u8), stream id (u32), timestamp ms (i64), text length (u32),
//!   message`: one log event as it goes into a PutLogEvents body, already
//!   rendered, redacted and escaped (see `event::Message`), with the length
//!   of its text;
//! - `2 (u8), stream id (u32), timestamp ms (i64), message`: one log event,
//!   its text unescaped. Only earlier versions wrote these; they are still
//!   read, so that an upgrade sends what the version before it spooled.
//!
//! Integers are little-endian. A reader stops at the first record that is
//! cut short or fails its checksum: that is where a crash or a power loss
//! tore the file, and everything before it is intact.
//!
//! Beside a segment, `<id>.done` lists events already delivered, so that a
//! restart does not send them again: records of `[count: u32 LE][CRC-32 of
//! the ordinals: u32 LE][count ordinals: u32 LE each]`, where an event's
//! ordinal is its place among the segment's events (from 0).

use std::collections::{HashMap, HashSet};

use crate::event::{EventRef, Message, StreamKey};

/// The first bytes of every segment: the format and its version.
pub const MAGIC: &[u8; 8] = b"SLUICE1\n";
/// Bytes before each payload: its length and checksum.
pub const RECORD_HEADER: usize = 8;
/// No payload is longer: an event is at most one CloudWatch event (1 MiB),
/// escaped (at most six bytes for one, `\u0001`), plus its header; a
/// longer length is damage, not data.
pub const MAX_PAYLOAD: usize = 7 << 20;

const KIND_STREAM: u8 = 1;
const KIND_TEXT_EVENT: u8 = 2;
const KIND_EVENT: u8 = 3;

/// Appends one record holding `payload` (built by `fill`) to `out`.
fn record(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    fill(out);
    let payload = &out[start + RECORD_HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the record naming stream `id`. Names longer than CloudWatch
/// allows (512) never get here; longer than u16 would be cut.
pub fn write_stream(out: &mut Vec<u8>, id: u32, key: &StreamKey, emf: bool) {
    record(out, |p| {
        p.push(KIND_STREAM);
        p.extend_from_slice(&id.to_le_bytes());
        p.push(u8::from(emf));
        for name in [key.group(), key.stream()] {
            let bytes = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            p.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            p.extend_from_slice(bytes);
        }
    });
}

/// Appends the record of one event for stream `id`.
pub fn write_event(out: &mut Vec<u8>, id: u32, event: EventRef<'_>) {
    record(out, |p| {
        p.push(KIND_EVENT);
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&event.timestamp_ms.to_le_bytes());
        // Messages are at most 1 MiB (split before they are spooled).
        p.extend_from_slice(&(event.message.len() as u32).to_le_bytes());
        p.extend_from_slice(event.message.escaped().as_bytes());
    });
}

/// Appends one record of delivered ordinals to a `.done` file's bytes.
pub fn write_done(out: &mut Vec<u8>, ordinals: &[u32]) {
    let start = out.len();
    out.extend_from_slice(&(ordinals.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for o in ordinals {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The ordinals a `.done` file lists, up to its first damaged record (an
/// ordinal lost there is only sent twice).
pub fn decode_done(bytes: &[u8]) -> HashSet<u32> {
    let mut done = HashSet::new();
    let mut rest = bytes;
    while let Some((head, body)) = rest.split_first_chunk::<8>() {
        let count = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(list) = count.checked_mul(4).and_then(|n| body.get(..n)) else {
            break;
        };
        if crc32fast::hash(list) != crc {
            break;
        }
        done.extend(
            list.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        rest = &body[list.len()..];
    }
    done
}

/// An event read back from a segment.
#[derive(Debug, PartialEq, Eq)]
pub struct SpooledEvent {
    /// Its place among the segment's events, from 0.
    pub ordinal: u32,
    pub key: StreamKey,
    pub emf: bool,
    pub timestamp_ms: i64,
    pub message: Message,
}

/// What a segment holds, as far as it is intact.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub events: Vec<SpooledEvent>,
    /// Bytes from the start of the file that are intact: the header and
    /// every whole, checksummed record.
    pub intact: usize,
    /// Why reading stopped before the end; `None` when the file is whole.
    pub damage: Option<&'static str>,
}

/// Reads a segment's bytes. Never fails: damage ends the reading, and
/// `intact` says where to cut the file.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        decoded.damage = Some("the segment header is missing or not Sluice's");
        return decoded;
    }
    let mut streams: HashMap<u32, (StreamKey, bool)> = HashMap::new();
    let mut at = MAGIC.len();
    decoded.intact = at;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < RECORD_HEADER {
            decoded.damage = Some("a record header is cut short");
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_PAYLOAD {
            decoded.damage = Some("a record length is out of range");
            break;
        }
        let Some(payload) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            decoded.damage = Some("a record is cut short");
            break;
        };
        if crc32fast::hash(payload) != crc {
            decoded.damage = Some("a record fails its checksum");
            break;
        }
        if let Err(why) = read_payload(payload, &mut streams, &mut decoded.events) {
            decoded.damage = Some(why);
            break;
        }
        at += RECORD_HEADER + len;
        decoded.intact = at;
    }
    decoded
}

fn read_payload(
    payload: &[u8],
    streams: &mut HashMap<u32, (StreamKey, bool)>,
    events: &mut Vec<SpooledEvent>,
) -> Result<(), &'static str> {
    let mut r = Reader(payload);
    match r.u8()? {
        KIND_STREAM => {
            let id = r.u32()?;
            let emf = r.u8()? != 0;
            let group = r.name()?;
            let stream = r.name()?;
            streams.insert(id, (StreamKey::new(group, stream), emf));
            Ok(())
        }
        kind @ (KIND_EVENT | KIND_TEXT_EVENT) => {
            let id = r.u32()?;
            let timestamp_ms = r.i64()?;
            let text_len = match kind {
                KIND_EVENT => Some(r.u32()? as usize),
                _ => None,
            };
            let message =
                String::from_utf8(r.0.to_vec()).map_err(|_| "an event's message is not UTF-8")?;
            let message = match text_len {
                Some(len) => Message::from_escaped(message, len),
                None => Message::new(&message),
            };
            let (key, emf) = streams
                .get(&id)
                .cloned()
                .ok_or("an event names a stream not defined before it")?;
            events.push(SpooledEvent {
                ordinal: events.len() as u32,
                key,
                emf,
                timestamp_ms,
                message,
            });
            Ok(())
        }
        _ => Err("a record of an unknown kind"),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("a record is shorter than its fields")?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        self.take().map(u32::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        self.take().map(i64::from_le_bytes)
    }

    fn name(&mut self) -> Result<String, &'static str> {
        let len = u16::from_le_bytes(self.take()?) as usize;
        if self.0.len() < len {
            return Err("a name is longer than its record");
        }
        let (name, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(name.to_vec()).map_err(|_| "a stream name is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::LogEvent;

    fn key(group: &str, stream: &str) -> StreamKey {
        StreamKey::new(group.into(), stream.into())
    }

    fn event(ts: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: message.into(),
            spool: None,
        }
    }

    fn segment() -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        write_stream(&mut out, 0, &key("/ecs/app", "envoy"), false);
        write_event(&mut out, 0, event(1_700_000_000_123, "GET /a 200").view());
        write_stream(&mut out, 1, &key("/ecs/app", "stats"), true);
        write_event(&mut out, 1, event(-5, "{\"_aws\":{}}").view());
        write_event(&mut out, 0, event(7, "ünïcödé").view());
        out
    }

    #[test]
    fn round_trip() {
        let bytes = segment();
        let decoded = decode(&bytes);
        assert_eq!(decoded.damage, None);
        assert_eq!(decoded.intact, bytes.len());
        let got: Vec<(&str, bool, i64, &str, usize)> = decoded
            .events
            .iter()
            .map(|e| {
                (
                    e.key.stream(),
                    e.emf,
                    e.timestamp_ms,
                    e.message.view().escaped(),
                    e.message.view().len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("envoy", false, 1_700_000_000_123, "GET /a 200", 10),
                ("stats", true, -5, r#"{\"_aws\":{}}"#, 11),
                ("envoy", false, 7, "ünïcödé", 11),
            ]
        );
        assert!(decoded.events.iter().all(|e| e.key.group() == "/ecs/app"));
    }

    /// Segments an earlier version wrote hold their messages unescaped
    /// (kind 2); they are read as the same messages.
    #[test]
    fn reads_the_unescaped_events_of_earlier_versions() {
        let mut bytes = MAGIC.to_vec();
        write_stream(&mut bytes, 0, &key("/ecs/app", "envoy"), false);
        record(&mut bytes, |p| {
            p.push(KIND_TEXT_EVENT);
            p.extend_from_slice(&0u32.to_le_bytes());
            p.extend_from_slice(&42i64.to_le_bytes());
            p.extend_from_slice("{\"log\":\"a \\\"quote\\\"\"}".as_bytes());
        });
        write_event(
            &mut bytes,
            0,
            event(43, "{\"log\":\"a \\\"quote\\\"\"}").view(),
        );
        let decoded = decode(&bytes);
        assert_eq!(decoded.damage, None);
        let messages: Vec<&Message> = decoded.events.iter().map(|e| &e.message).collect();
        assert_eq!(messages[0], messages[1]);
        assert_eq!(
            messages[0].view().escaped(),
            r#"{\"log\":\"a \\\"quote\\\"\"}"#
        );
        assert_eq!(messages[0].view().len(), 21);
    }

    #[test]
    fn a_torn_tail_keeps_every_whole_record_before_it() {
        let bytes = segment();
        let whole = decode(&bytes);
        // Cut anywhere inside the last record: the first two events stay.
        let last_record = bytes.len() - (RECORD_HEADER + 1 + 4 + 8 + 4 + "ünïcödé".len());
        for cut in last_record..bytes.len() {
            let d = decode(&bytes[..cut]);
            assert_eq!(d.events.len(), 2, "cut at {cut}");
            assert_eq!(d.intact, last_record);
            assert_eq!(d.damage.is_some(), cut != last_record);
        }
        assert_eq!(whole.events.len(), 3);
    }

    #[test]
    fn a_flipped_bit_stops_the_reading_at_that_record() {
        let mut bytes = segment();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        let d = decode(&bytes);
        assert_eq!(d.damage, Some("a record fails its checksum"));
        assert_eq!(d.events.len(), 2);
    }

    #[test]
    fn not_a_segment() {
        let d = decode(b"hello, world");
        assert_eq!(d.intact, 0);
        assert!(d.events.is_empty());
        assert_eq!(
            d.damage,
            Some("the segment header is missing or not Sluice's")
        );
        assert_eq!(
            decode(MAGIC),
            Decoded {
                intact: MAGIC.len(),
                ..Decoded::default()
            }
        );
    }

    #[test]
    fn done_lists_round_trip_and_stop_at_damage() {
        let mut bytes = Vec::new();
        write_done(&mut bytes, &[0, 1, 2]);
        write_done(&mut bytes, &[]);
        write_done(&mut bytes, &[70_000]);
        let all: HashSet<u32> = [0, 1, 2, 70_000].into();
        assert_eq!(decode_done(&bytes), all);
        let whole = bytes.len();
        write_done(&mut bytes, &[9, 10]);
        // Torn anywhere in the last record: the others still count.
        for cut in whole..bytes.len() {
            assert_eq!(decode_done(&bytes[..cut]), all, "cut at {cut}");
        }
        bytes[whole + 9] ^= 1;
        assert_eq!(decode_done(&bytes), all);
    }

    proptest! {
        /// Any bytes after the header: no panic, and what is called intact
        /// decodes again to the same events without damage.
        #[test]
        fn any_bytes_decode_without_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = segment();
            bytes.extend_from_slice(&tail);
            let d = decode(&bytes);
            prop_assert!(d.events.len() >= 3);
            let again = decode(&bytes[..d.intact]);
            prop_assert_eq!(again.damage, None);
            prop_assert_eq!(again.events, d.events);
        }
    }
}
