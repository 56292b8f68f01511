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

pub use crate::event::LogEvent;
use crate::event::Message;

/// The largest request, in bytes, as CloudWatch counts them.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch adds to every message when it counts a request's size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The most events in one request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// The longest message: one event alone must fit in a request.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;
/// The most events a new batch makes room for before they arrive (64
/// bytes each): room not filled is memory the budget does not count.
const PENDING_ROOM_MAX: usize = 2048;
/// The widest span of timestamps in one request.
pub const MAX_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

impl LogEvent {
    /// The bytes this event adds to a request.
    pub fn cost(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }

    /// The memory this event holds while it waits: its escaped message
    /// and the event itself.
    pub fn held_bytes(&self) -> usize {
        self.message.escaped().len() + std::mem::size_of::<LogEvent>()
    }
}

/// Events for one request, in the order CloudWatch requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<LogEvent>,
}

impl Batch {
    /// The request size as CloudWatch counts it.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.events.iter().map(LogEvent::cost).sum()
    }
}

/// Collects one log stream's events into batches.
#[derive(Debug, Default)]
pub struct Batcher {
    pending: Vec<LogEvent>,
    /// How many events the last batch held (at most [`PENDING_ROOM_MAX`]):
    /// the next one starts with room for as many instead of growing and
    /// copying its vector ten times on the way.
    last_len: usize,
    bytes: usize,
    held: usize,
    oldest_ms: i64,
    newest_ms: i64,
}

impl Batcher {
    pub fn new() -> Batcher {
        Batcher::default()
    }

    /// Events waiting for the next batch.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes (as CloudWatch counts them) waiting for the next batch.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Memory the events waiting for the next batch hold.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Adds an event (split first if too long); returns the batches it
    /// closed, which are ready to send.
    pub fn push(&mut self, event: LogEvent) -> Vec<Batch> {
        let mut ready = Vec::new();
        if event.message.len() <= MAX_MESSAGE_BYTES {
            // The common case, without the vector of parts.
            self.push_part(event, &mut ready);
        } else {
            for part in split_oversized(event) {
                self.push_part(part, &mut ready);
            }
        }
        ready
    }

    /// Adds an event that fits a request alone.
    fn push_part(&mut self, part: LogEvent, ready: &mut Vec<Batch>) {
        let too_big = self.bytes + part.cost() > MAX_BATCH_BYTES;
        let too_many = self.pending.len() + 1 > MAX_BATCH_EVENTS;
        let too_wide = !self.pending.is_empty()
            && (part.timestamp_ms.max(self.newest_ms) - part.timestamp_ms.min(self.oldest_ms))
                > MAX_SPAN_MS;
        if too_big || too_many || too_wide {
            ready.extend(self.flush());
        }
        if self.pending.is_empty() {
            self.pending.reserve(self.last_len);
            self.oldest_ms = part.timestamp_ms;
            self.newest_ms = part.timestamp_ms;
        }
        self.oldest_ms = self.oldest_ms.min(part.timestamp_ms);
        self.newest_ms = self.newest_ms.max(part.timestamp_ms);
        self.bytes += part.cost();
        self.held += part.held_bytes();
        self.pending.push(part);
    }

    /// Closes the pending events into a batch (on the flush interval, at
    /// shutdown); `None` when nothing is pending.
    pub fn flush(&mut self) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        self.last_len = self.pending.len().min(PENDING_ROOM_MAX);
        let events = std::mem::take(&mut self.pending);
        self.bytes = 0;
        self.held = 0;
        Some(Batch {
            events: sorted_by_time(events),
        })
    }
}

/// `events` in timestamp order; events with the same timestamp keep their
/// arrival order. The order is found on (timestamp, index) pairs and the
/// events are moved once: sorting the events themselves moved each of
/// them (about 60 bytes) a dozen times in a batch of thousands.
fn sorted_by_time(events: Vec<LogEvent>) -> Vec<LogEvent> {
    if events.is_sorted_by_key(|e| e.timestamp_ms) {
        return events;
    }
    // The index breaks ties: an unstable sort of unique pairs is stable.
    let mut order: Vec<(i64, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.timestamp_ms, i))
        .collect();
    order.sort_unstable();
    let mut slots: Vec<Option<LogEvent>> = events.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|(_, i)| slots[i].take().expect("each index is in the order once"))
        .collect()
}

/// Splits a message longer than [`MAX_MESSAGE_BYTES`] into parts marked
/// `[sluice part i/n] `, cut at character boundaries; others pass as they are.
pub fn split_oversized(event: LogEvent) -> Vec<LogEvent> {
    if event.message.len() <= MAX_MESSAGE_BYTES {
        return vec![event];
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
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| LogEvent {
            timestamp_ms: event.timestamp_ms,
            message: Message::new(&format!("[sluice part {}/{n}] {piece}", i + 1)),
            spool: event.spool,
        })
        .collect()
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
        assert!(!batch.events.is_empty());
        assert!(batch.events.len() <= MAX_BATCH_EVENTS);
        assert!(batch.bytes() <= MAX_BATCH_BYTES, "{} bytes", batch.bytes());
        assert!(batch
            .events
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        let span = batch.events.last().unwrap().timestamp_ms - batch.events[0].timestamp_ms;
        assert!(span <= MAX_SPAN_MS, "span {span}");
        assert!(batch
            .events
            .iter()
            .all(|e| e.message.len() <= MAX_MESSAGE_BYTES));
    }

    #[test]
    fn byte_limit_counts_the_overhead() {
        let mut b = Batcher::new();
        // 1,022 x (1,000 + 26) = 1,048,572 bytes fit; the 1,023rd closes a batch.
        let mut ready = Vec::new();
        for _ in 0..1023 {
            ready.extend(b.push(event(0, 1000)));
        }
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].events.len(), 1022);
        assert_eq!(ready[0].bytes(), 1_048_572);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn event_count_limit() {
        let mut b = Batcher::new();
        let ready: Vec<Batch> = (0..10_001).flat_map(|i| b.push(event(i, 1))).collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].events.len(), 10_000);
        assert_eq!(b.flush().unwrap().events.len(), 1);
        assert_eq!(b.flush(), None);
    }

    #[test]
    fn sorted_and_within_a_day() {
        let mut b = Batcher::new();
        let day = MAX_SPAN_MS;
        let mut ready = Vec::new();
        for ts in [5, 1, 3, day + 1, day + 2, 2] {
            ready.extend(b.push(event(ts, 1)));
        }
        ready.extend(b.flush());
        let stamps: Vec<Vec<i64>> = ready
            .iter()
            .map(|r| r.events.iter().map(|e| e.timestamp_ms).collect())
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
        let parts = split_oversized(big.clone());
        assert_eq!(parts.len(), 3);
        let texts: Vec<String> = parts.iter().map(|p| p.message.text()).collect();
        assert!(texts[0].starts_with("[sluice part 1/3] é"));
        assert!(texts[2].starts_with("[sluice part 3/3] é"));
        // Each part carries the event's place in the spool.
        assert!(parts.iter().all(|p| p.spool == big.spool));
        let joined: String = texts
            .iter()
            .map(|t| t.split_once("] ").unwrap().1)
            .collect();
        assert_eq!(joined, big.message.text());
        let mut b = Batcher::new();
        let mut ready: Vec<Batch> = b.push(big);
        ready.extend(b.flush());
        ready.iter().for_each(assert_valid);
        assert_eq!(ready.iter().map(|r| r.events.len()).sum::<usize>(), 3);
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
                ready.extend(b.push(event(ts, len)));
            }
            ready.extend(b.flush());
            for batch in &ready {
                assert_valid(batch);
            }
            let mut got: Vec<(i64, usize)> = ready
                .iter()
                .flat_map(|r| r.events.iter().map(|e| (e.timestamp_ms, e.message.len())))
                .collect();
            got.sort_unstable();
            sent.sort_unstable();
            prop_assert_eq!(got, sent);
        }

        /// The batch order is a stable sort by timestamp: ties (few
        /// timestamps, many events) keep their arrival order.
        #[test]
        fn events_sort_stably_by_time(stamps in prop::collection::vec(-3i64..3, 0..200)) {
            let events: Vec<LogEvent> = stamps
                .iter()
                .enumerate()
                .map(|(i, &ts)| LogEvent {
                    timestamp_ms: ts,
                    message: Message::new(&i.to_string()),
                    spool: None,
                })
                .collect();
            let mut expected = events.clone();
            expected.sort_by_key(|e| e.timestamp_ms);
            prop_assert_eq!(sorted_by_time(events), expected);
        }
    }
}
