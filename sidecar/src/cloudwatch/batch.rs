//! PutLogEvents batching as pure functions: a batch built here never breaks
//! an API rule (shared/specs.md §3, the PutLogEvents API reference):
//!
//! - at most 1,048,576 bytes, counted as each message's UTF-8 bytes + 26;
//! - at most 10,000 events;
//! - events in ascending timestamp order;
//! - at most 24 hours between the first and the last event;
//! - each event at most 1 MiB: longer messages are split into parts that
//!   say so (`[sluice part 2/3] ...`), never dropped. Parts share the
//!   event's timestamp and may travel in separate requests, which can be
//!   stored in either order: the marker says where each belongs.
//!
//! A batch keeps its events' escaped messages back to back in pages of
//! text, and per event a slot saying where its message is: adding an
//! event is one copy into the current page, with no allocation of its own
//! (nor a free, later, on the shipper's thread).

use std::sync::Arc;

pub use crate::event::LogEvent;
use crate::event::{EventRef, Message, MessageRef, SpoolMark};

/// The largest request, in bytes, as CloudWatch counts them.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch adds to every message when it counts a request's size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The most events in one request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// The longest message: one event alone must fit in a request.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;
/// The most events a new batch makes room for before they arrive: room
/// not filled is memory the budget does not count.
const PENDING_ROOM_MAX: usize = 2048;
/// The widest span of timestamps in one request.
pub const MAX_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// The first page of a batch's text. Each next page is twice the last, up
/// to [`MAX_PAGE_BYTES`]: a quiet stream holds little, a busy one
/// allocates rarely, and no page is copied to grow.
pub const FIRST_PAGE_BYTES: usize = 4096;
const MAX_PAGE_BYTES: usize = 64 * 1024;
/// The memory a pending event holds besides its text.
pub const EVENT_SLOT_BYTES: usize = std::mem::size_of::<Slot>();

impl EventRef<'_> {
    /// The bytes this event adds to a request.
    pub fn cost(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// Where one event of a batch is. Positions fit in `u32`: a page is at
/// most one escaped message long (6 bytes per byte of at most
/// [`MAX_MESSAGE_BYTES`]) or [`MAX_PAGE_BYTES`].
#[derive(Clone, Copy, Debug)]
struct Slot {
    timestamp_ms: i64,
    page: u32,
    start: u32,
    escaped_len: u32,
    len: u32,
    spool: Option<SpoolMark>,
}

/// Escaped messages back to back, in pages that are never reallocated.
#[derive(Debug, Default)]
struct Pages {
    pages: Vec<String>,
    /// The bytes the pages were allocated with, summed as pages are added:
    /// the budget asks for it at every event ([`Batcher::held_bytes`]).
    held: usize,
}

impl Pages {
    /// Copies `escaped` in; returns its page and where it starts there.
    fn push(&mut self, escaped: &str) -> (u32, u32) {
        let fits = self
            .pages
            .last()
            .is_some_and(|p| p.capacity() - p.len() >= escaped.len());
        if !fits {
            let size = self
                .pages
                .last()
                .map_or(FIRST_PAGE_BYTES, |p| (2 * p.capacity()).min(MAX_PAGE_BYTES))
                .max(escaped.len());
            let page = String::with_capacity(size);
            self.held += page.capacity();
            self.pages.push(page);
        }
        let index = self.pages.len() - 1;
        let page = &mut self.pages[index];
        let start = page.len();
        page.push_str(escaped);
        (index as u32, start as u32)
    }
}

/// The event `slot` says where to find in `pages`.
fn event_at<'t>(pages: &'t [String], slot: &Slot) -> EventRef<'t> {
    let start = slot.start as usize;
    let escaped = &pages[slot.page as usize][start..start + slot.escaped_len as usize];
    EventRef {
        timestamp_ms: slot.timestamp_ms,
        message: MessageRef::from_escaped(escaped, slot.len as usize),
        spool: slot.spool,
    }
}

/// Events for one request, in the order CloudWatch requires: their
/// messages in the pages the batcher wrote them to, shared by the halves
/// of a batch split to find an event CloudWatch refuses.
#[derive(Clone, Debug)]
pub struct Batch {
    text: Arc<Vec<String>>,
    slots: Vec<Slot>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The events, in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        self.slots.iter().map(|slot| event_at(&self.text, slot))
    }

    pub fn get(&self, index: usize) -> Option<EventRef<'_>> {
        self.slots.get(index).map(|slot| event_at(&self.text, slot))
    }

    /// The earlier half and the later half.
    pub fn split_in_half(mut self) -> [Batch; 2] {
        let later = self.slots.split_off(self.slots.len() / 2);
        let text = self.text.clone();
        [self, Batch { text, slots: later }]
    }

    /// The request size as CloudWatch counts it.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.iter().map(|e| e.cost()).sum()
    }

    /// `events` as they are, in their order, whatever rule they break
    /// (for tests of what CloudWatch refuses).
    #[cfg(test)]
    pub fn of(events: &[LogEvent]) -> Batch {
        let mut text = Pages::default();
        let slots = events.iter().map(|e| slot(&mut text, e.view())).collect();
        Batch {
            text: Arc::new(text.pages),
            slots,
        }
    }
}

impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Batch {}

/// Copies `event`'s message into `text`: where it is.
fn slot(text: &mut Pages, event: EventRef<'_>) -> Slot {
    let escaped = event.message.escaped();
    let (page, start) = text.push(escaped);
    Slot {
        timestamp_ms: event.timestamp_ms,
        page,
        start,
        escaped_len: escaped.len() as u32,
        len: event.message.len() as u32,
        spool: event.spool,
    }
}

/// Collects one log stream's events into batches.
#[derive(Debug, Default)]
pub struct Batcher {
    text: Pages,
    slots: Vec<Slot>,
    /// How many events the last batch held (at most [`PENDING_ROOM_MAX`]):
    /// the next one starts with room for as many instead of growing and
    /// copying its vector ten times on the way.
    last_len: usize,
    bytes: usize,
    oldest_ms: i64,
    newest_ms: i64,
    /// No event came before one with a later timestamp: the batch needs
    /// no sorting.
    in_order: bool,
}

impl Batcher {
    pub fn new() -> Batcher {
        Batcher::default()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Request bytes pending, as CloudWatch counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory the pending events hold: the pages of their text as
    /// allocated, and where each event is.
    pub fn held_bytes(&self) -> usize {
        self.text.held + self.slots.len() * EVENT_SLOT_BYTES
    }

    /// Adds an event (split first if too long); returns the batches it
    /// closed, which are ready to send.
    pub fn push(&mut self, event: EventRef<'_>) -> Vec<Batch> {
        let mut ready = Vec::new();
        for_each_part(event, |part| self.push_part(part, &mut ready));
        ready
    }

    /// Adds an event that fits a request alone.
    fn push_part(&mut self, part: EventRef<'_>, ready: &mut Vec<Batch>) {
        let ts = part.timestamp_ms;
        let too_big = self.bytes + part.cost() > MAX_BATCH_BYTES;
        let too_many = self.slots.len() + 1 > MAX_BATCH_EVENTS;
        let too_wide = !self.slots.is_empty()
            && (ts.max(self.newest_ms) - ts.min(self.oldest_ms)) > MAX_SPAN_MS;
        if too_big || too_many || too_wide {
            ready.extend(self.flush());
        }
        if self.slots.is_empty() {
            self.slots.reserve(self.last_len);
            self.oldest_ms = ts;
            self.newest_ms = ts;
            self.in_order = true;
        }
        self.in_order &= ts >= self.newest_ms;
        self.oldest_ms = self.oldest_ms.min(ts);
        self.newest_ms = self.newest_ms.max(ts);
        self.bytes += part.cost();
        let slot = slot(&mut self.text, part);
        self.slots.push(slot);
    }

    /// Closes the pending events into a batch (on the flush interval, at
    /// shutdown); `None` when nothing is pending.
    pub fn flush(&mut self) -> Option<Batch> {
        if self.slots.is_empty() {
            return None;
        }
        self.last_len = self.slots.len().min(PENDING_ROOM_MAX);
        let mut slots = std::mem::take(&mut self.slots);
        if !self.in_order {
            slots = sorted_by_time(slots, self.oldest_ms);
        }
        let text = std::mem::take(&mut self.text);
        self.bytes = 0;
        Some(Batch {
            text: Arc::new(text.pages),
            slots,
        })
    }
}

/// The slots in ascending timestamp order, stably: events with the same
/// timestamp keep their order. `oldest_ms` is the earliest timestamp.
///
/// A batch spans at most [`MAX_SPAN_MS`] (under 2^27 ms) and holds at most
/// [`MAX_BATCH_EVENTS`] (under 2^14), so one `u64` holds a slot's time
/// since the oldest above its place: the keys are all different, an
/// unstable sort of them is a stable sort of the slots, and it compares and
/// moves integers instead of 40-byte slots. In a burst whose timestamps are
/// shuffled within each second, sorting with `sort_by_key` took about 260
/// instructions per event (callgrind).
fn sorted_by_time(slots: Vec<Slot>, oldest_ms: i64) -> Vec<Slot> {
    const PLACE_BITS: u32 = 32;
    let mut keys: Vec<u64> = slots
        .iter()
        .enumerate()
        .map(|(place, slot)| {
            let since_oldest = slot.timestamp_ms.abs_diff(oldest_ms);
            debug_assert!(since_oldest <= MAX_SPAN_MS as u64 && place < MAX_BATCH_EVENTS);
            since_oldest << PLACE_BITS | place as u64
        })
        .collect();
    keys.sort_unstable();
    keys.iter()
        .map(|key| slots[(key & u64::from(u32::MAX)) as usize])
        .collect()
}

/// Calls `f` with `event`, or with each of its parts when its message is
/// too long for one event ([`split_oversized`]).
pub fn for_each_part(event: EventRef<'_>, mut f: impl FnMut(EventRef<'_>)) {
    match split_oversized(event) {
        None => f(event),
        Some(parts) => parts.iter().for_each(|part| f(part.view())),
    }
}

/// The parts of a message longer than [`MAX_MESSAGE_BYTES`], marked
/// `[sluice part i/n] ` and cut at character boundaries; `None` when the
/// message fits one event as it is (nearly always).
fn split_oversized(event: EventRef<'_>) -> Option<Vec<LogEvent>> {
    if event.message.len() <= MAX_MESSAGE_BYTES {
        return None;
    }
    // Room for the longest marker this message can need.
    const MARKER_ROOM: usize = "[sluice part 9999/9999] ".len();
    let room = MAX_MESSAGE_BYTES - MARKER_ROOM;
    let mut pieces = Vec::new();
    let text = event.message.text();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = room.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let n = pieces.len();
    let parts = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| LogEvent {
            timestamp_ms: event.timestamp_ms,
            message: Message::new(&format!("[sluice part {}/{n}] {piece}", i + 1)),
            spool: event.spool,
        })
        .collect();
    Some(parts)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::SpoolMark;

    fn event(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: Message::new(&"x".repeat(len)),
            spool: None,
        }
    }

    /// Every PutLogEvents rule, checked on one batch.
    fn assert_valid(batch: &Batch) {
        assert!(!batch.is_empty());
        assert!(batch.len() <= MAX_BATCH_EVENTS);
        assert!(batch.bytes() <= MAX_BATCH_BYTES, "{} bytes", batch.bytes());
        let stamps: Vec<i64> = batch.iter().map(|e| e.timestamp_ms).collect();
        assert!(stamps.is_sorted());
        let span = stamps.last().unwrap() - stamps[0];
        assert!(span <= MAX_SPAN_MS, "span {span}");
        assert!(batch.iter().all(|e| e.message.len() <= MAX_MESSAGE_BYTES));
    }

    #[test]
    fn byte_limit_counts_the_overhead() {
        let mut b = Batcher::new();
        // 1,022 x (1,000 + 26) = 1,048,572 bytes fit; the 1,023rd closes a batch.
        let mut ready = Vec::new();
        for _ in 0..1023 {
            ready.extend(b.push(event(0, 1000).view()));
        }
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].len(), 1022);
        assert_eq!(ready[0].bytes(), 1_048_572);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn event_count_limit() {
        let mut b = Batcher::new();
        let ready: Vec<Batch> = (0..10_001)
            .flat_map(|i| b.push(event(i, 1).view()))
            .collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].len(), 10_000);
        assert_eq!(b.flush().unwrap().len(), 1);
        assert_eq!(b.flush(), None);
    }

    #[test]
    fn sorted_and_within_a_day() {
        let mut b = Batcher::new();
        let day = MAX_SPAN_MS;
        let mut ready = Vec::new();
        for ts in [5, 1, 3, day + 1, day + 2, 2] {
            ready.extend(b.push(event(ts, 1).view()));
        }
        ready.extend(b.flush());
        let stamps: Vec<Vec<i64>> = ready
            .iter()
            .map(|r| r.iter().map(|e| e.timestamp_ms).collect())
            .collect();
        // day + 2 is more than a day after 1: a new batch starts there.
        assert_eq!(stamps, [vec![1, 3, 5, day + 1], vec![2, day + 2]]);
        ready.iter().for_each(assert_valid);
    }

    #[test]
    fn oversized_events_become_marked_parts() {
        let big = LogEvent {
            timestamp_ms: 7,
            // Twice the limit in bytes; with room for the markers, three parts.
            message: Message::new(&"é".repeat(MAX_MESSAGE_BYTES)),
            spool: Some(SpoolMark {
                segment: 4,
                ordinal: 9,
            }),
        };
        // A message of the limit exactly is one event as it is.
        let at_limit = event(7, MAX_MESSAGE_BYTES);
        assert_eq!(split_oversized(at_limit.view()), None);
        let over = event(7, MAX_MESSAGE_BYTES + 1);
        assert_eq!(split_oversized(over.view()).map(|p| p.len()), Some(2));
        let parts = split_oversized(big.view()).unwrap();
        assert_eq!(parts.len(), 3);
        let texts: Vec<String> = parts.iter().map(|p| p.message.view().text()).collect();
        assert!(texts[0].starts_with("[sluice part 1/3] é"));
        assert!(texts[2].starts_with("[sluice part 3/3] é"));
        // Each part carries the event's place in the spool.
        assert!(parts.iter().all(|p| p.spool == big.spool));
        let joined: String = texts
            .iter()
            .map(|t| t.split_once("] ").unwrap().1)
            .collect();
        assert_eq!(joined, big.message.view().text());
        let mut b = Batcher::new();
        let mut ready: Vec<Batch> = b.push(big.view());
        ready.extend(b.flush());
        ready.iter().for_each(assert_valid);
        assert_eq!(ready.iter().map(Batch::len).sum::<usize>(), 3);
    }

    #[test]
    fn messages_come_back_whole_across_pages() {
        // Escaped messages of many lengths fill pages of 4, 8, 16, 32 and
        // 64 KiB; one longer than a page gets a page of its own.
        let texts: Vec<String> = (0..300)
            .map(|i| format!("{i} \"quoted\" é\n{}", "x".repeat(i * 37 % 1500)))
            .chain(["y".repeat(100_000)])
            .chain((0..50).map(|i| format!("after {i}")))
            .collect();
        let events: Vec<LogEvent> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| LogEvent {
                timestamp_ms: i as i64,
                message: Message::new(t),
                spool: Some(SpoolMark {
                    segment: 1,
                    ordinal: i as u32,
                }),
            })
            .collect();
        let mut b = Batcher::new();
        for e in &events {
            assert!(b.push(e.view()).is_empty());
        }
        // What the pages were allocated with, and where each event is.
        let pages = b.text.pages.len();
        assert!(pages > 5, "{pages} pages");
        let capacities: usize = b.text.pages.iter().map(String::capacity).sum();
        assert_eq!(b.held_bytes(), capacities + events.len() * EVENT_SLOT_BYTES);
        let batch = b.flush().unwrap();
        let got: Vec<LogEvent> = batch
            .iter()
            .map(|e| LogEvent {
                timestamp_ms: e.timestamp_ms,
                message: Message::new(&e.message.text()),
                spool: e.spool,
            })
            .collect();
        assert_eq!(got, events);
        // The batcher starts again empty, holding nothing.
        assert_eq!((b.len(), b.bytes(), b.held_bytes()), (0, 0, 0));
    }

    #[test]
    fn halves_keep_their_events_and_share_the_text() {
        let events: Vec<LogEvent> = (0..5).map(|i| event(i, i as usize + 1)).collect();
        let batch = Batch::of(&events);
        let [first, second] = batch.split_in_half();
        assert_eq!(first, Batch::of(&events[..2]));
        assert_eq!(second, Batch::of(&events[2..]));
        assert!(Arc::ptr_eq(&first.text, &second.text));
        assert_eq!(second.get(0).unwrap().message.len(), 3);
        assert_eq!(second.get(3), None);
    }

    /// The packed sort keys at their limits: a full batch whose events
    /// span a whole day, newest first, with pairs of equal timestamps.
    #[test]
    fn a_full_day_wide_batch_in_reverse_sorts_stably() {
        let step = MAX_SPAN_MS / (MAX_BATCH_EVENTS as i64 / 2 - 1);
        let events: Vec<LogEvent> = (0..MAX_BATCH_EVENTS)
            .map(|i| LogEvent {
                timestamp_ms: -1_000 + MAX_SPAN_MS - (i as i64 / 2) * step,
                message: Message::new(&i.to_string()),
                spool: None,
            })
            .collect();
        let mut b = Batcher::new();
        for e in &events {
            assert!(b.push(e.view()).is_empty());
        }
        let batch = b.flush().unwrap();
        let got: Vec<(i64, String)> = batch
            .iter()
            .map(|e| (e.timestamp_ms, e.message.escaped().to_string()))
            .collect();
        assert_eq!(got[0], (-1_000 + MAX_SPAN_MS - 4_999 * step, "9998".into()));
        assert_eq!(got[1], (-1_000 + MAX_SPAN_MS - 4_999 * step, "9999".into()));
        assert_eq!(got[9_999], (-1_000 + MAX_SPAN_MS, "1".into()));
        let mut expected = events;
        expected.sort_by_key(|e| e.timestamp_ms);
        assert_eq!(batch, Batch::of(&expected));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any stream of events becomes valid batches holding exactly the
        /// same events.
        #[test]
        fn batches_are_valid_and_lose_nothing(
            events in prop::collection::vec((0i64..3 * MAX_SPAN_MS, 0usize..300_000), 1..60),
        ) {
            let mut b = Batcher::new();
            let mut ready = Vec::new();
            let mut sent: Vec<(i64, usize)> = Vec::new();
            for (ts, len) in events {
                sent.push((ts, len));
                ready.extend(b.push(event(ts, len).view()));
            }
            ready.extend(b.flush());
            for batch in &ready {
                assert_valid(batch);
            }
            let mut got: Vec<(i64, usize)> = ready
                .iter()
                .flat_map(|r| r.iter().map(|e| (e.timestamp_ms, e.message.len())))
                .collect();
            got.sort_unstable();
            sent.sort_unstable();
            prop_assert_eq!(got, sent);
        }

        /// The batch order is a stable sort by timestamp: ties (few
        /// timestamps, many events) keep their arrival order, and each
        /// event keeps its own message.
        #[test]
        fn events_sort_stably_by_time(stamps in prop::collection::vec(-3i64..3, 1..200)) {
            let events: Vec<LogEvent> = stamps
                .iter()
                .enumerate()
                .map(|(i, &ts)| LogEvent {
                    timestamp_ms: ts,
                    message: Message::new(&format!("{i} \"{ts}\"")),
                    spool: None,
                })
                .collect();
            let mut b = Batcher::new();
            for e in &events {
                prop_assert!(b.push(e.view()).is_empty());
            }
            let mut expected = events.clone();
            expected.sort_by_key(|e| e.timestamp_ms);
            prop_assert_eq!(b.flush(), Some(Batch::of(&expected)));
        }
    }
}
