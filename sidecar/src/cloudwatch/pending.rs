//! The events waiting in every log stream, as a pure core: no I/O, no
//! tokio, the clock passed in. A stream's events close into a batch when
//! the next one would break a PutLogEvents rule ([`Batcher`]), or when its
//! oldest event has waited the flush interval and the driver has room for
//! another batch.
//!
//! Each stream also holds a share `S` of the memory budget for its pending
//! bytes (a `Reservation` in Sluice, anything in the tests); a closed batch
//! takes its stream's share with it, so the memory is given back when the
//! batch is delivered. The driver (`sink.rs`) decides how much share a
//! stream needs and where it comes from.

use std::time::{Duration, Instant};

use foldhash::HashMap;

use super::batch::{Batch, Batcher};
use crate::event::{EventRef, StreamKey};

/// One stream's batch, ready to send.
#[derive(Debug)]
pub struct Closed<S> {
    pub key: StreamKey,
    pub batch: Batch,
    /// The stream's share when the batch closed (`None` for a second batch
    /// closed by the same event: the first took it).
    pub share: Option<S>,
    /// A stream of Embedded Metric Format events.
    pub emf: bool,
}

/// What adding an event did to its stream.
#[derive(Debug)]
pub struct Pushed<S> {
    /// Batches the event closed, oldest first.
    pub closed: Vec<Closed<S>>,
    /// Memory the events now pending in the stream hold
    /// ([`Batcher::held_bytes`]).
    pub pending_bytes: usize,
    /// The share the stream still held; give it back with
    /// [`PendingStreams::hold`] once it covers `pending_bytes`.
    pub share: Option<S>,
}

#[derive(Debug)]
struct Stream<S> {
    batcher: Batcher,
    emf: bool,
    share: Option<S>,
    /// When the oldest pending event arrived.
    since: Instant,
}

#[derive(Debug)]
pub struct PendingStreams<S> {
    streams: HashMap<StreamKey, Stream<S>>,
    flush_interval: Duration,
}

impl<S> PendingStreams<S> {
    pub fn new(flush_interval: Duration) -> PendingStreams<S> {
        PendingStreams {
            streams: HashMap::default(),
            flush_interval,
        }
    }

    /// Adds an event that arrived at `now` to `key`'s stream.
    pub fn push(
        &mut self,
        key: &StreamKey,
        event: EventRef<'_>,
        emf: bool,
        now: Instant,
    ) -> Pushed<S> {
        // A known stream: one lookup, no copy of the key.
        if let Some(stream) = self.streams.get_mut(key) {
            return push_into(stream, key, event, now);
        }
        let stream = Stream {
            batcher: Batcher::new(),
            emf,
            share: None,
            since: now,
        };
        let stream = self.streams.entry(key.clone()).or_insert(stream);
        push_into(stream, key, event, now)
    }

    /// Gives `key`'s stream its share back. When nothing is pending any
    /// more (everything was closed meanwhile) the share is dropped here,
    /// which gives it back to the budget.
    pub fn hold(&mut self, key: &StreamKey, share: Option<S>) {
        if let Some(stream) = self.streams.get_mut(key) {
            if !stream.batcher.is_empty() {
                stream.share = share;
            }
        }
    }

    /// Closes the streams whose oldest event has waited the flush interval
    /// by `now`, oldest first, at most `room` of them (what the shipper
    /// has room for); forgets streams with nothing pending. A due
    /// stream left open keeps growing until there is room: when CloudWatch
    /// is slow, fewer and fuller requests carry the same events.
    pub fn due(&mut self, now: Instant, room: usize) -> Vec<Closed<S>> {
        let interval = self.flush_interval;
        self.close_oldest(room, |since| now.duration_since(since) >= interval)
    }

    /// Closes the `room` streams whose oldest events have waited longest,
    /// due or not (to free the budget or the spool).
    pub fn close_waiting(&mut self, room: usize) -> Vec<Closed<S>> {
        self.close_oldest(room, |_| true)
    }

    /// Closes up to `room` streams whose oldest event's arrival is
    /// `eligible`, oldest first; forgets streams with nothing pending.
    fn close_oldest(&mut self, room: usize, eligible: impl Fn(Instant) -> bool) -> Vec<Closed<S>> {
        let mut waiting: Vec<(Instant, &StreamKey)> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.batcher.is_empty() && eligible(s.since))
            .map(|(key, s)| (s.since, key))
            .collect();
        waiting.sort_unstable_by_key(|&(since, _)| since);
        waiting.truncate(room);
        let keys: Vec<StreamKey> = waiting.into_iter().map(|(_, key)| key.clone()).collect();
        let closed = keys
            .iter()
            .filter_map(|key| close(key, self.streams.get_mut(key)?))
            .collect();
        self.streams.retain(|_, s| !s.batcher.is_empty());
        closed
    }

    /// Whether any stream has events pending.
    pub fn has_pending(&self) -> bool {
        self.streams.values().any(|s| !s.batcher.is_empty())
    }

    /// Closes every stream (to free the budget or the spool, at shutdown).
    pub fn close_all(&mut self) -> Vec<Closed<S>> {
        let closed = self
            .streams
            .iter_mut()
            .filter_map(|(key, stream)| close(key, stream))
            .collect();
        self.streams.clear();
        closed
    }
}

/// Adds `event` to `key`'s stream: the batches it closed, and what the
/// stream then holds.
fn push_into<S>(
    stream: &mut Stream<S>,
    key: &StreamKey,
    event: EventRef<'_>,
    now: Instant,
) -> Pushed<S> {
    if stream.batcher.is_empty() {
        stream.since = now;
    }
    let mut share = stream.share.take();
    let closed = stream
        .batcher
        .push(event)
        .into_iter()
        .map(|batch| Closed {
            key: key.clone(),
            batch,
            share: share.take(),
            emf: stream.emf,
        })
        .collect();
    Pushed {
        closed,
        pending_bytes: stream.batcher.held_bytes(),
        share,
    }
}

fn close<S>(key: &StreamKey, stream: &mut Stream<S>) -> Option<Closed<S>> {
    let share = stream.share.take();
    stream.batcher.flush().map(|batch| Closed {
        key: key.clone(),
        batch,
        share,
        emf: stream.emf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudwatch::batch::{EVENT_SLOT_BYTES, FIRST_PAGE_BYTES, MAX_BATCH_EVENTS};
    use crate::event::MessageRef;

    const FLUSH: Duration = Duration::from_secs(5);

    fn key(stream: &str) -> StreamKey {
        StreamKey::new("g".into(), stream.into())
    }

    /// An event of `message`, which has nothing to escape.
    fn event(message: &str) -> EventRef<'_> {
        EventRef {
            timestamp_ms: 1_700_000_000_000,
            message: MessageRef::from_escaped(message, message.len()),
            spool: None,
        }
    }

    fn messages(closed: &Closed<&str>) -> Vec<String> {
        closed.batch.iter().map(|e| e.message.text()).collect()
    }

    /// What `n` short events hold: the first page of text, and where each
    /// one is.
    fn held(n: usize) -> usize {
        FIRST_PAGE_BYTES + n * EVENT_SLOT_BYTES
    }

    #[test]
    fn a_stream_closes_when_its_oldest_event_has_waited_the_interval() {
        let t0 = Instant::now();
        let mut streams = PendingStreams::new(FLUSH);
        let pushed = streams.push(&key("a"), event("first"), false, t0);
        assert!(pushed.closed.is_empty());
        assert_eq!(pushed.pending_bytes, held(1));
        streams.hold(&key("a"), Some("share of a"));
        // A later event does not restart the wait; the stream's share is
        // handed out and back.
        let pushed = streams.push(
            &key("a"),
            event("second"),
            false,
            t0 + Duration::from_secs(4),
        );
        assert_eq!(pushed.share, Some("share of a"));
        assert_eq!(pushed.pending_bytes, held(2));
        streams.hold(&key("a"), pushed.share);
        assert!(streams
            .due(t0 + Duration::from_millis(4999), usize::MAX)
            .is_empty());
        let closed = streams.due(t0 + FLUSH, usize::MAX);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key, key("a"));
        assert_eq!(messages(&closed[0]), ["first", "second"]);
        assert_eq!(closed[0].share, Some("share of a"));
        assert!(!closed[0].emf);
        // Nothing is left to close, and the stream is forgotten.
        assert!(streams.close_all().is_empty());
    }

    #[test]
    fn the_event_that_breaks_a_rule_closes_the_batch_with_the_share() {
        let t0 = Instant::now();
        let mut streams = PendingStreams::new(FLUSH);
        for i in 0..MAX_BATCH_EVENTS {
            let pushed = streams.push(&key("a"), event("x"), true, t0);
            assert!(pushed.closed.is_empty(), "{i}");
            streams.hold(&key("a"), Some("share"));
        }
        let pushed = streams.push(&key("a"), event("last"), true, t0);
        assert_eq!(pushed.closed.len(), 1);
        let closed = &pushed.closed[0];
        assert_eq!(closed.batch.len(), MAX_BATCH_EVENTS);
        assert_eq!(closed.share, Some("share"));
        assert!(closed.emf);
        // The new batch holds only the event that closed the old one, and
        // no share yet.
        assert_eq!(pushed.pending_bytes, held(1));
        assert_eq!(pushed.share, None);
    }

    #[test]
    fn a_share_given_back_to_an_empty_stream_is_dropped() {
        let t0 = Instant::now();
        let mut streams: PendingStreams<std::rc::Rc<()>> = PendingStreams::new(FLUSH);
        let share = std::rc::Rc::new(());
        streams.push(&key("a"), event("x"), false, t0);
        let closed = streams.close_all();
        assert_eq!(closed.len(), 1);
        streams.hold(&key("a"), Some(share.clone()));
        assert_eq!(std::rc::Rc::strong_count(&share), 1);
    }

    /// Streams `s0`, `s1`, ... with one event each, the first oldest, one
    /// second apart.
    fn waiting_streams(n: u64, t0: Instant) -> PendingStreams<&'static str> {
        let mut streams = PendingStreams::new(FLUSH);
        // Pushed newest first: the order they close in must come from
        // their times.
        for i in (0..n).rev() {
            let at = t0 + Duration::from_secs(i);
            streams.push(&key(&format!("s{i}")), event("x"), false, at);
        }
        streams
    }

    fn streams_of(closed: &[Closed<&str>]) -> Vec<String> {
        closed.iter().map(|c| c.key.stream().to_string()).collect()
    }

    #[test]
    fn due_streams_close_oldest_first_as_far_as_there_is_room() {
        let t0 = Instant::now();
        let mut streams = waiting_streams(5, t0);
        // Four are due at t0 + 8 s; the shipper has room for two.
        let now = t0 + Duration::from_secs(8);
        assert_eq!(streams_of(&streams.due(now, 2)), ["s0", "s1"]);
        // The others stay open and take further events into their batch.
        streams.push(&key("s2"), event("y"), false, now);
        let closed = streams.due(now, 10);
        assert_eq!(streams_of(&closed), ["s2", "s3"]);
        assert_eq!(messages(&closed[0]), ["x", "y"]);
        // No room: nothing closes, however long they waited.
        assert!(streams.due(now + FLUSH, 0).is_empty());
        assert_eq!(streams_of(&streams.due(now + FLUSH, 1)), ["s4"]);
        assert!(streams.close_all().is_empty());
    }

    #[test]
    fn waiting_streams_close_oldest_first_due_or_not() {
        let t0 = Instant::now();
        let mut streams = waiting_streams(3, t0);
        assert_eq!(streams_of(&streams.close_waiting(2)), ["s0", "s1"]);
        assert_eq!(streams_of(&streams.close_waiting(0)), Vec::<String>::new());
        assert_eq!(streams_of(&streams.close_waiting(5)), ["s2"]);
        assert!(streams.close_all().is_empty());
    }

    #[test]
    fn streams_close_apart() {
        let t0 = Instant::now();
        let mut streams = PendingStreams::new(FLUSH);
        streams.push(&key("a"), event("a1"), false, t0);
        streams.push(&key("b"), event("b1"), true, t0 + Duration::from_secs(3));
        streams.hold(&key("b"), Some("b"));
        let closed = streams.due(t0 + FLUSH, usize::MAX);
        assert_eq!(closed.len(), 1);
        assert_eq!(messages(&closed[0]), ["a1"]);
        let mut rest = streams.close_all();
        assert_eq!(rest.len(), 1);
        let b = rest.remove(0);
        assert_eq!((b.key.stream(), b.emf, b.share), ("b", true, Some("b")));
    }
}
