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
//!
//! With a spool, each event is appended to it before it is buffered, and a
//! delivery is committed to disk before it is accepted; see spool/mod.rs.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_firelens::{MemoryBudget, Reservation};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::batch::for_each_part;
use super::pending::{Closed, PendingStreams};
use super::ship::{Outbound, ShipCounters, MAX_IN_FLIGHT};
use crate::event::{EventRef, LogEvent, StreamKey};
use crate::spool::{AppendError, Spool, SpoolMark};

/// Batches the shipper may hold (queued or in flight) before batches that
/// are due but not full wait for room, growing meanwhile: four times what
/// it sends at once, so that its slots stay busy while the output stage
/// is busy elsewhere, while a slow CloudWatch gets fewer, fuller requests
/// rather than a queue of small ones.
const SHIPPER_ROOM: u64 = 4 * MAX_IN_FLIGHT as u64;
/// How long to wait on the budget before looking again whether anything
/// can still free it.
const BUDGET_RECHECK: Duration = Duration::from_millis(100);
/// How long to wait for room in the spool before trying again.
const SPOOL_RECHECK: Duration = Duration::from_millis(200);
/// How often a spool that stays full or unwritable is logged again.
const SPOOL_REPORT: Duration = Duration::from_secs(30);

/// The driver of [`PendingStreams`]: the memory budget, the spool, and
/// the channel to the shipper.
pub struct CloudWatchSink {
    streams: PendingStreams<Reservation>,
    budget: Arc<MemoryBudget>,
    /// The share of the delivery being written.
    delivery_share: Option<Reservation>,
    outbound: mpsc::UnboundedSender<Outbound>,
    counters: Arc<ShipCounters>,
    runtime: Handle,
    spool: Option<Spool>,
    /// Since when the spool has refused appends or commits, and when that
    /// was last logged.
    spool_stalled: Option<(Instant, Instant)>,
    /// When the current delivery (or tick) began: the time a stream's
    /// oldest pending event counts from, read once per delivery rather
    /// than per event. Earlier than the event by at most one delivery's
    /// work, so a batch may go out that much sooner, never later.
    clock: Instant,
}

impl CloudWatchSink {
    pub fn new(
        budget: Arc<MemoryBudget>,
        flush_interval: Duration,
        outbound: mpsc::UnboundedSender<Outbound>,
        counters: Arc<ShipCounters>,
        runtime: Handle,
        spool: Option<Spool>,
    ) -> CloudWatchSink {
        CloudWatchSink {
            streams: PendingStreams::new(flush_interval),
            budget,
            delivery_share: None,
            outbound,
            counters,
            runtime,
            spool,
            spool_stalled: None,
            clock: Instant::now(),
        }
    }

    /// Sends what an earlier run left in the spool, before anything new.
    pub fn replay(&mut self) {
        while let Some((segment, events)) = self.spool.as_mut().and_then(Spool::replay_next) {
            for e in events {
                let event = LogEvent {
                    timestamp_ms: e.timestamp_ms,
                    message: e.message,
                    spool: Some(SpoolMark {
                        segment,
                        ordinal: e.ordinal,
                    }),
                };
                self.buffer(&e.key, event.view(), e.emf);
            }
        }
    }

    /// The budget share of the delivery whose events come next.
    pub fn begin_delivery(&mut self, share: Option<Reservation>) {
        self.delivery_share = share;
        self.clock = Instant::now();
    }

    /// Writes the delivery's events to the spool (when there is one:
    /// waiting as long as that takes), fsynced when a client waits for an
    /// ack (`acked`), and gives back what its events did not need of its
    /// budget share. The delivery may be accepted after.
    pub fn end_delivery(&mut self, acked: bool) {
        self.commit_spool(acked);
        self.delivery_share = None;
    }

    /// Buffers one event for `key`'s stream; sends the batches it closes.
    pub fn write(&mut self, key: &StreamKey, event: EventRef<'_>) {
        self.write_to(key, event, false);
    }

    /// [`CloudWatchSink::write`] for a stream of EMF events, sent with
    /// `x-amzn-logs-format: json/emf`.
    pub fn write_emf(&mut self, key: &StreamKey, event: EventRef<'_>) {
        self.write_to(key, event, true);
    }

    fn write_to(&mut self, key: &StreamKey, event: EventRef<'_>, emf: bool) {
        if event.message.is_empty() {
            self.counters.empty_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.spool.is_none() {
            self.buffer(key, event, emf);
            return;
        }
        // Split here rather than in the batcher, so that a spool record is
        // exactly one event of a batch.
        for_each_part(event, |part| self.spool_and_buffer(key, part, emf));
    }

    fn spool_and_buffer(&mut self, key: &StreamKey, mut event: EventRef<'_>, emf: bool) {
        event.spool = self.spool_append(key, emf, event);
        self.buffer(key, event, emf);
    }

    /// Appends to the spool, waiting while it is full or unwritable.
    fn spool_append(
        &mut self,
        key: &StreamKey,
        emf: bool,
        event: EventRef<'_>,
    ) -> Option<SpoolMark> {
        loop {
            match self.spool.as_mut()?.append(key, emf, event) {
                Ok(mark) => {
                    self.spool_recovered();
                    return Some(mark);
                }
                Err(AppendError::Full) => self.wait_for_spool(None),
                Err(AppendError::Io(e)) => self.wait_for_spool(Some(e)),
            }
        }
    }

    /// Commits what was appended (fsynced with `sync`), waiting while the
    /// disk refuses it.
    fn commit_spool(&mut self, sync: bool) {
        while let Some(spool) = self.spool.as_mut() {
            match spool.commit(sync) {
                Ok(()) => {
                    self.spool_recovered();
                    return;
                }
                Err(e) => self.wait_for_spool(Some(e)),
            }
        }
    }

    /// The spool is full (`error` is `None`) or a write failed: send the
    /// pending batches the shipper has room for, since delivered segments
    /// are what frees room, and wait a little. Meanwhile nothing is acked
    /// and the inputs back up.
    fn wait_for_spool(&mut self, error: Option<io::Error>) {
        let Some(shared) = self.spool.as_ref().map(Spool::shared) else {
            return;
        };
        shared.counters.full_waits.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let log = match self.spool_stalled {
            None => true,
            Some((_, logged)) => now.duration_since(logged) >= SPOOL_REPORT,
        };
        if log {
            let since = self.spool_stalled.map_or(now, |(since, _)| since);
            self.spool_stalled = Some((since, now));
            let waited_s = now.duration_since(since).as_secs();
            match &error {
                Some(e) => tracing::error!(error = %e, waited_s, "cannot write to the spool; holding acks until it can (deliveries free segments)"),
                None => tracing::warn!(waited_s, "the spool is full (spool.max_size); holding acks until deliveries free segments"),
            }
        }
        self.send_waiting();
        self.runtime.block_on(async {
            tokio::select! {
                _ = shared.freed.notified() => {}
                _ = tokio::time::sleep(SPOOL_RECHECK) => {}
            }
        });
    }

    fn spool_recovered(&mut self) {
        if let Some((since, _)) = self.spool_stalled.take() {
            tracing::info!(
                waited_ms = since.elapsed().as_millis() as u64,
                "the spool takes events again"
            );
        }
    }

    /// Buffers one event (with its spool segment) in its stream's batcher.
    fn buffer(&mut self, key: &StreamKey, event: EventRef<'_>, emf: bool) {
        let pushed = self.streams.push(key, event, emf, self.clock);
        let mut share = pushed.share;
        for closed in pushed.closed {
            self.send(closed);
        }
        let held = share.as_ref().map_or(0, Reservation::bytes);
        if pushed.pending_bytes > held {
            let more = self.reserve(pushed.pending_bytes - held);
            share = merge(share, more);
        }
        // Waiting on the budget may have sent this stream's pending events
        // (send_waiting); then the share goes back to the budget.
        self.streams.hold(key, share);
    }

    /// Sends the batches whose oldest event has waited the flush interval,
    /// or any batch when a connection waited for heap room, as far as the
    /// shipper has room (oldest first); forgets streams with nothing
    /// pending. Commits and fsyncs the spool (statistics are written
    /// between deliveries, and writes made without an fsync get one within
    /// a tick).
    pub fn tick(&mut self, now: Instant) {
        self.clock = now;
        self.commit_spool(true);
        self.send_due(now);
    }

    /// Whether a tick has nothing to do: no event waits in a batcher and
    /// the spool owes no commit.
    pub fn is_settled(&self) -> bool {
        !self.streams.has_pending() && self.spool.as_ref().is_none_or(Spool::is_settled)
    }

    /// [`CloudWatchSink::tick`]'s sending, alone: also called when the
    /// shipper finished a batch while due ones waited for its room.
    pub fn send_due(&mut self, now: Instant) {
        let closed = if self.budget.take_heap_wait() {
            // Inputs wait for heap room, and batches not yet due hold
            // some: with many streams (a thousand containers), waiting for
            // their interval would hold the inputs back that long.
            self.streams.close_waiting(self.shipper_room())
        } else {
            self.streams.due(now, self.shipper_room())
        };
        for closed in closed {
            self.send(closed);
        }
    }

    /// While batches wait for the shipper's room: what it signals when a
    /// batch is done, so that the output stage sends the next at once
    /// rather than at its next tick (with a thousand streams and a fast
    /// CloudWatch, the room would otherwise sit empty most of a tick).
    pub fn room_signal(&self) -> Option<Arc<ShipCounters>> {
        (self.shipper_room() == 0 && self.streams.has_pending()).then(|| self.counters.clone())
    }

    /// How many more batches the shipper may hold ([`SHIPPER_ROOM`]).
    fn shipper_room(&self) -> usize {
        let outstanding = self.counters.outstanding.load(Ordering::Relaxed);
        SHIPPER_ROOM.saturating_sub(outstanding) as usize
    }

    /// Sends the batches that have waited longest, as far as the shipper
    /// has room: what frees the budget or the spool once delivered.
    fn send_waiting(&mut self) {
        for closed in self.streams.close_waiting(self.shipper_room()) {
            self.send(closed);
        }
    }

    /// At shutdown: sends everything pending and seals the spool's open
    /// segment, so that it goes once its events are delivered.
    pub fn finish(&mut self) {
        self.flush_all();
        while let Some(spool) = self.spool.as_mut() {
            match spool.seal_current() {
                Ok(()) => return,
                Err(e) => self.wait_for_spool(Some(e)),
            }
        }
    }

    /// Sends everything pending (to free the budget or the spool).
    pub fn flush_all(&mut self) {
        for closed in self.streams.close_all() {
            self.send(closed);
        }
    }

    fn send(&mut self, closed: Closed<Reservation>) {
        self.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        self.counters
            .events_queued
            .fetch_add(closed.batch.len() as u64, Ordering::Relaxed);
        let out = Outbound {
            key: closed.key,
            batch: closed.batch,
            reservation: closed.share,
            emf: closed.emf,
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
        loop {
            // Pending batches hold budget too: send them, so it comes back.
            self.send_waiting();
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

fn merge(a: Option<Reservation>, b: Option<Reservation>) -> Option<Reservation> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.merge(b);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}
