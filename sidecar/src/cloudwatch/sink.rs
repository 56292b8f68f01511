//! The output stage's side of the CloudWatch output: one batcher per log
//! stream, flushed when full or when its oldest event has waited the flush
//! interval, and the memory budget for everything buffered.
//!
//! Memory: a delivery arrives holding a share of the budget for its decoded
//! events. As its events are rendered into the batchers, each stream takes
//! what its pending bytes need, first from that share, then from the
//! budget; the rest of the share is given back when the delivery is
//! accepted (and acked). A batch carries its stream's share to the shipper
//! and gives it back once CloudWatch has it. When the budget is spent the
//! output stage waits, the pipeline fills, and the listeners stop reading.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_firelens::{MemoryBudget, Reservation};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::batch::{Batch, Batcher, LogEvent};
use super::ship::{Outbound, ShipCounters};
use crate::streams::StreamKey;

/// How long to wait on the budget before looking again whether anything
/// can still free it.
const BUDGET_RECHECK: Duration = Duration::from_millis(100);

struct PendingStream {
    batcher: Batcher,
    /// A stream of EMF events (the statistics).
    emf: bool,
    /// The budget share for the batcher's pending bytes.
    reserved: Option<Reservation>,
    /// When the oldest pending event arrived.
    since: Instant,
}

pub struct CloudWatchSink {
    streams: HashMap<StreamKey, PendingStream>,
    budget: Arc<MemoryBudget>,
    /// The share of the delivery being written.
    delivery_share: Option<Reservation>,
    flush_interval: Duration,
    outbound: mpsc::UnboundedSender<Outbound>,
    counters: Arc<ShipCounters>,
    runtime: Handle,
}

impl CloudWatchSink {
    pub fn new(
        budget: Arc<MemoryBudget>,
        flush_interval: Duration,
        outbound: mpsc::UnboundedSender<Outbound>,
        counters: Arc<ShipCounters>,
        runtime: Handle,
    ) -> CloudWatchSink {
        CloudWatchSink {
            streams: HashMap::new(),
            budget,
            delivery_share: None,
            flush_interval,
            outbound,
            counters,
            runtime,
        }
    }

    /// The budget share of the delivery whose events come next.
    pub fn begin_delivery(&mut self, share: Option<Reservation>) {
        self.delivery_share = share;
    }

    /// Gives back what the delivery's events did not need.
    pub fn end_delivery(&mut self) {
        self.delivery_share = None;
    }

    /// Buffers one event for `key`'s stream; sends the batches it closes.
    pub fn write(&mut self, key: StreamKey, event: LogEvent) {
        self.write_to(key, event, false);
    }

    /// [`CloudWatchSink::write`] for a stream of EMF events, sent with
    /// `x-amzn-logs-format: json/emf`.
    pub fn write_emf(&mut self, key: StreamKey, event: LogEvent) {
        self.write_to(key, event, true);
    }

    fn write_to(&mut self, key: StreamKey, event: LogEvent, emf: bool) {
        if event.message.is_empty() {
            self.counters.empty_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Instant::now();
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| PendingStream {
                batcher: Batcher::new(),
                emf,
                reserved: None,
                since: now,
            });
        if stream.batcher.len() == 0 {
            stream.since = now;
        }
        let closed = stream.batcher.push(event);
        let mut share = stream.reserved.take();
        for batch in closed {
            // A closed batch takes the stream's whole share; what is still
            // pending reserves again below.
            self.send(key.clone(), batch, share.take(), emf);
        }
        let pending = stream_bytes(&self.streams, &key);
        let held = share.as_ref().map_or(0, Reservation::bytes);
        if pending > held {
            let more = self.reserve(pending - held);
            share = merge(share, more);
        }
        // Waiting on the budget may have sent this stream's pending events
        // (flush_all); then nothing pending needs the share, and it goes
        // back to the budget here.
        if let Some(stream) = self.streams.get_mut(&key) {
            if stream.batcher.len() > 0 {
                stream.reserved = share;
            }
        }
    }

    /// Sends every batch whose oldest event has waited the flush interval;
    /// forgets streams with nothing pending.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.batcher.len() > 0 && now.duration_since(s.since) >= self.flush_interval
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.flush_stream(&key);
        }
        // A stream with nothing pending holds no share worth keeping.
        self.streams.retain(|_, s| s.batcher.len() > 0);
    }

    /// Sends everything pending (shutdown, or to free the budget).
    pub fn flush_all(&mut self) {
        let keys: Vec<StreamKey> = self.streams.keys().cloned().collect();
        for key in keys {
            self.flush_stream(&key);
        }
    }

    fn flush_stream(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let share = stream.reserved.take();
        let emf = stream.emf;
        if let Some(batch) = stream.batcher.flush() {
            self.send(key.clone(), batch, share, emf);
        }
    }

    fn send(&mut self, key: StreamKey, batch: Batch, reservation: Option<Reservation>, emf: bool) {
        self.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        self.counters
            .events_queued
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        let out = Outbound {
            key,
            batch,
            reservation,
            emf,
        };
        if self.outbound.send(out).is_err() {
            // The shipper only stops after this sink is gone.
            self.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("the CloudWatch shipper stopped early; a batch was not sent");
        }
    }

    /// `bytes` of the budget: from the delivery's share, else free budget,
    /// else wait for batches in flight to finish. Waits in the output
    /// stage, so the pipeline fills and the inputs stop reading.
    fn reserve(&mut self, bytes: usize) -> Option<Reservation> {
        let mut from_share = None;
        let mut bytes = bytes;
        if let Some(share) = self.delivery_share.as_mut() {
            if let Some(part) = share.split(bytes) {
                return Some(part);
            }
            // Not enough left: take all of it and find the rest.
            bytes -= share.bytes();
            from_share = self.delivery_share.take();
        }
        merge(from_share, self.reserve_from_budget(bytes))
    }

    fn reserve_from_budget(&mut self, bytes: usize) -> Option<Reservation> {
        if let Some(r) = self.budget.try_reserve(bytes) {
            return Some(r);
        }
        // Pending batches hold budget too: send them, so it comes back.
        self.flush_all();
        loop {
            if let Some(r) = self.budget.try_reserve(bytes) {
                return Some(r);
            }
            if self.counters.outstanding.load(Ordering::Relaxed) == 0 {
                // Nothing in flight will free any: the budget is held by
                // deliveries queued behind this one. Go over rather than
                // wait forever; the overshoot is one event's size.
                self.counters
                    .overdraft_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                return None;
            }
            let budget = self.budget.clone();
            let counters = self.counters.clone();
            let got = self.runtime.block_on(async move {
                tokio::select! {
                    r = budget.reserve(bytes) => r,
                    _ = counters.finished.notified() => None,
                    _ = tokio::time::sleep(BUDGET_RECHECK) => None,
                }
            });
            if got.is_some() {
                return got;
            }
        }
    }
}

fn stream_bytes(streams: &HashMap<StreamKey, PendingStream>, key: &StreamKey) -> usize {
    streams.get(key).map_or(0, |s| s.batcher.bytes())
}

fn merge(a: Option<Reservation>, b: Option<Reservation>) -> Option<Reservation> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.merge(b);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}
