//! Forward mode, `[tag, [entry, ...], option?]`, decoded entry by entry as
//! the frame's bytes arrive: one pass over them.
//!
//! The other modes are first walked to their end by a `msgpack::Skipper`
//! and then decoded, two passes. For a Forward frame, the largest (Fluent
//! Bit and fluent-logger send a thousand records in one), the walk was a
//! quarter of the decoding. Here each read decodes the entries it
//! completed; an entry cut short by the end of the read is rolled back and
//! decoded again once its bytes are in.
//!
//! A decoding error is believed only for an entry `msgpack::skip` finds
//! complete: a prefix of an entry can fail in ways the whole would not.
//! Such an entry is set aside, not fatal, until the option says whether
//! the frame holds logs (`fluent_signal`): other signals' entries need not
//! have a log entry's shape, and are skipped whatever they hold.

use std::sync::Arc;

use super::{entry_time, read_record, text, FrameError, Limits, Options};
use crate::fields::{RecordsBuilder, FIELD_BYTES};
use crate::msgpack::{self, Cursor, ReadError};

/// A Forward frame decoded as far as its bytes have arrived.
#[derive(Debug)]
pub(super) struct Streaming {
    tag: Arc<str>,
    /// 3 when the frame ends with an option, else 2.
    elements: usize,
    /// Where the next entry (or, once every entry is in, the option)
    /// starts, from the frame's first byte.
    pos: usize,
    /// Where the first entry starts: the entries decoded so far, from
    /// there to `pos`, estimate the room the rest of the text needs.
    first_entry: usize,
    /// Entries in the frame, and still to decode.
    entries: usize,
    /// Whether the frame's room was reserved from the last frame's
    /// ([`LastFrame::room`]), so that no estimate is needed.
    planned: bool,
    left: usize,
    times: Vec<i64>,
    records: RecordsBuilder,
    /// The first entry that could not be read as a log entry.
    not_a_log: Option<FrameError>,
}

/// How much the last Forward frame of a connection decoded to: the next
/// frame's room is reserved from it, before its bytes arrive.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LastFrame {
    entries: usize,
    text: usize,
    fields: usize,
}

impl LastFrame {
    /// The room (text bytes, fields) reserved for a frame of `entries`
    /// before its bytes arrive: the last frame's per entry, a sixteenth
    /// more (frames of one client differ a little, and running out near
    /// the end would copy the whole text); never more than twice what the
    /// last frame held, nor more than [`MOST_ROOM_BYTES`] each.
    fn room(&self, entries: usize) -> (usize, usize) {
        let scale = |total: usize, most: usize| {
            let per_entry = total.div_ceil(self.entries.max(1));
            let room = per_entry.saturating_mul(entries);
            room.saturating_add(room / 16)
                .min(total.saturating_mul(2))
                .min(most)
        };
        (
            scale(self.text, MOST_ROOM_BYTES),
            scale(self.fields, MOST_ROOM_BYTES / FIELD_BYTES),
        )
    }
}

/// The most text, and the most memory of fields, a frame is given before
/// its bytes arrive. The heap gauge counts the room and the budget pays
/// for it (`Session::undecoded`): a client that sent one huge entry and
/// then the head of a frame claiming thousands must not make a connection
/// hold tens of MiB it has not sent, while it waits for the heap to drain.
/// A Docker-shaped frame of a thousand records needs 450 KB; a larger
/// frame grows past the room as it arrives.
const MOST_ROOM_BYTES: usize = 2 << 20;

/// What the start of the buffered bytes is.
pub(super) enum Start {
    Forward(Streaming),
    /// Another mode (or not a frame at all): decoded the two-pass way.
    Other,
    /// Not enough bytes to tell; do not look again before `needed`.
    NeedBytes {
        needed: usize,
    },
}

/// Looks at a frame's head: its array header, the tag, and the entries'
/// array header when the second element is one.
pub(super) fn start(
    frame: &[u8],
    limits: &Limits,
    last_tag: &mut Option<Arc<str>>,
    last_frame: &LastFrame,
) -> Result<Start, FrameError> {
    let mut c = Cursor::new(frame);
    match forward_head(&mut c) {
        Ok(Some(Head {
            elements,
            tag,
            entries,
        })) => {
            let tag = match last_tag {
                Some(last) if last.as_bytes() == tag => last.clone(),
                _ => last_tag.insert(Arc::<str>::from(text(tag))).clone(),
            };
            if !super::fits_entries(entries, limits) {
                return Err(super::decoded_too_large(limits));
            }
            let pos = c.pos();
            let (text, fields) = last_frame.room(entries);
            // `array_len` found a byte buffered for each entry: the
            // times are bounded by the bytes read, the text's and fields'
            // room by what the last frame held (`LastFrame::room`).
            Ok(Start::Forward(Streaming {
                tag,
                elements,
                pos,
                first_entry: pos,
                entries,
                planned: text > 0,
                left: entries,
                times: Vec::with_capacity(entries),
                records: RecordsBuilder::with_room(text, fields),
                not_a_log: None,
            }))
        }
        Ok(None) => Ok(Start::Other),
        Err(ReadError::Incomplete { needed }) => {
            need(needed, frame.len(), limits).map(|needed| Start::NeedBytes { needed })
        }
        // The two-pass decoding finds the same fault and says where.
        Err(ReadError::Invalid { .. }) => Ok(Start::Other),
    }
}

/// A Forward frame's head, up to its first entry.
struct Head<'a> {
    /// 2, or 3 with the option.
    elements: usize,
    tag: &'a [u8],
    entries: usize,
}

/// A Forward frame's head; `None` for another mode (a time second:
/// Message; a str or bin: PackedForward) or what is not a frame. The bytes
/// ending before that is known is `Incomplete`.
fn forward_head<'a>(c: &mut Cursor<'a>) -> Result<Option<Head<'a>>, ReadError> {
    let next = |c: &Cursor<'_>| {
        c.peek().ok_or(ReadError::Incomplete {
            needed: c.pos() + 1,
        })
    };
    let Some(elements @ (2 | 3)) = c.array_len()? else {
        return Ok(None);
    };
    next(c)?;
    let Some(tag) = c.bytes()? else {
        return Ok(None);
    };
    if !matches!(next(c)?, 0x90..=0x9f | 0xdc | 0xdd) {
        return Ok(None);
    }
    let entries = c.array_len()?.unwrap_or(0);
    Ok(Some(Head {
        elements,
        tag,
        entries,
    }))
}

/// A frame done, its length in bytes, and what it decoded to.
pub(super) struct Done {
    pub(super) frame: super::Frame,
    pub(super) len: usize,
    pub(super) shape: LastFrame,
}

impl Streaming {
    /// The memory the frame's entries decoded so far hold, with the room
    /// reserved for the rest.
    pub(super) fn held_bytes(&self) -> usize {
        self.records.held_bytes() + self.times.capacity() * std::mem::size_of::<i64>()
    }

    /// Decodes the entries `frame` (the bytes buffered from the frame's
    /// start) completes, then the option. `Ok(Err(needed))`: the frame
    /// goes on past these bytes; do not call again before `needed` are
    /// buffered.
    pub(super) fn resume(
        &mut self,
        frame: &[u8],
        now_ns: i64,
        limits: &Limits,
    ) -> Result<Result<Done, usize>, FrameError> {
        self.make_room(frame.len());
        while self.left > 0 {
            if self.left + 1 == self.entries {
                // One entry in: now the rest can be estimated.
                self.make_room(frame.len());
            }
            let mark = self.records.mark();
            let mut entry = Cursor::new(&frame[self.pos..]);
            let read = entry_time(&mut entry, now_ns)
                .and_then(|time| read_record(&mut entry, &mut self.records, limits).map(|()| time));
            match read {
                Ok(Ok(time)) => {
                    self.times.push(time);
                    self.pos += entry.pos();
                }
                // Too much memory: the frame is refused at once, however
                // much of it is still to come.
                Err(e @ FrameError::DecodedTooLarge { .. }) => return Err(e),
                // A time that is not one is an error only in a log frame,
                // and its record is not kept.
                Ok(Err(e)) | Err(e) => {
                    self.records.rollback(mark);
                    match buffered_len(frame, self.pos, limits)? {
                        Ok(len) => {
                            self.not_a_log.get_or_insert(e);
                            self.pos += len;
                        }
                        Err(needed) => return Ok(Err(needed)),
                    }
                }
            }
            self.left -= 1;
            within_frame_limit(self.pos, limits)?;
        }
        let (len, options) = if self.elements == 3 {
            let len = match buffered_len(frame, self.pos, limits)? {
                Ok(len) => len,
                Err(needed) => return Ok(Err(needed)),
            };
            let value = Cursor::new(&frame[self.pos..])
                .value()
                .map_err(FrameError::Msgpack)?;
            (self.pos + len, Options::read(Some(&value))?)
        } else {
            (self.pos, Options::default())
        };
        within_frame_limit(len, limits)?;
        let (text, fields) = self.records.size();
        let shape = LastFrame {
            entries: self.times.len(),
            text,
            fields,
        };
        let records = std::mem::replace(&mut self.records, RecordsBuilder::with_capacity(0));
        let frame = if options.fluent_signal != 0 {
            super::Frame::Events {
                events: Vec::new(),
                chunk: options.chunk,
                skipped_non_logs: self.entries,
            }
        } else if let Some(e) = self.not_a_log.take() {
            return Err(e);
        } else {
            super::Frame::Events {
                events: super::events(&self.tag, std::mem::take(&mut self.times), records),
                chunk: options.chunk,
                skipped_non_logs: 0,
            }
        };
        Ok(Ok(Done { frame, len, shape }))
    }

    /// Room in the text for the entries still to come, when the frame
    /// was not given its room at the start (a connection's first Forward
    /// frame): estimated from the wire bytes of the entries decoded (an
    /// entry's text is shorter than its bytes) and bounded by what is
    /// buffered: the text is not copied as it grows, and the bytes after
    /// this frame (a read holds many small frames) are not taken for its.
    /// A frame that outgrows its planned room grows as a vector does.
    fn make_room(&mut self, buffered: usize) {
        if self.planned {
            return;
        }
        let done = self.entries - self.left;
        if done == 0 {
            return;
        }
        let per_entry = (self.pos - self.first_entry) / done;
        let rest = per_entry.saturating_mul(self.left);
        self.records
            .reserve_text(rest.min(buffered.saturating_sub(self.pos)));
    }
}

/// The length of the value at `at` when all of it is buffered, else
/// (`Err`) the bytes to wait for, from the frame's start.
fn buffered_len(
    frame: &[u8],
    at: usize,
    limits: &Limits,
) -> Result<Result<usize, usize>, FrameError> {
    match msgpack::skip(&frame[at..]) {
        Ok(len) => Ok(Ok(len)),
        Err(ReadError::Incomplete { needed }) => need(at + needed, frame.len(), limits).map(Err),
        Err(invalid) => Err(FrameError::Msgpack(invalid)),
    }
}

/// More bytes are needed: `needed` from the frame's start, `buffered`
/// there now. What to wait for, or an error for a frame that cannot fit
/// the limit.
fn need(needed: usize, buffered: usize, limits: &Limits) -> Result<usize, FrameError> {
    within_frame_limit(needed.max(buffered), limits)?;
    Ok(needed.max(buffered + 1))
}

/// `TooLarge` when a frame of `bytes` (so far) is over the limit.
fn within_frame_limit(bytes: usize, limits: &Limits) -> Result<(), FrameError> {
    if bytes > limits.max_frame_bytes {
        return Err(FrameError::TooLarge {
            max: limits.max_frame_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LastFrame, MOST_ROOM_BYTES};

    #[test]
    fn a_frame_gets_the_room_its_predecessor_used_per_entry() {
        let last = LastFrame {
            entries: 1000,
            text: 400_000,
            fields: 4000,
        };
        // 400 bytes and 4 fields an entry, and a sixteenth more.
        assert_eq!(last.room(1000), (425_000, 4250));
        assert_eq!(last.room(10), (4250, 42));
        // Never more than twice what the last frame held.
        assert_eq!(last.room(3000), (800_000, 8000));
        // Nothing to go by on a connection's first frame.
        assert_eq!(LastFrame::default().room(1000), (0, 0));
        // One huge entry, then a frame claiming a thousand: at most 2 MiB
        // before its bytes arrive.
        let huge = LastFrame {
            entries: 1,
            text: 15 << 20,
            fields: 1,
        };
        assert_eq!(MOST_ROOM_BYTES, 2 << 20);
        assert_eq!(huge.room(1000), (2 << 20, 2));
    }
}
