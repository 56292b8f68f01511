//! The memory budget (`limits.memory`): what events on their way through
//! Sluice may hold, counted in 1 KiB units of a semaphore. A connection
//! reserves a frame's size before it queues the frame; the share moves with
//! the events (to the CloudWatch batchers, the multiline joiner) and goes
//! back when they are done. When the budget is spent, connections wait and
//! stop reading, so TCP pushes back on the clients.
//!
//! Reservations are estimates; what bounds memory is the heap gauge. With
//! one (the sidecar passes the bytes its allocator counts), a connection
//! also waits before each read while the process's live heap bytes are at
//! its share of the budget, whatever holds them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A delivery reserves its (estimated) size before it is queued and gives it
/// back when it is dropped; when the budget is spent, connections wait, stop
/// reading, and TCP pushes back on the clients.
#[derive(Debug)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: usize,
    /// Live heap bytes of the process, when the allocator counts them.
    heap_gauge: Option<fn() -> usize>,
    /// What the heap held when the process was ready to take input: the
    /// budget bounds what it holds beyond that.
    heap_baseline: AtomicU64,
    /// A connection found the heap full since the output last looked.
    heap_waited: AtomicBool,
}

impl MemoryBudget {
    /// Reservations are counted in KiB.
    pub(crate) const UNIT: usize = 1024;

    pub fn new(bytes: u64) -> MemoryBudget {
        let total_units = usize::try_from(bytes / Self::UNIT as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            units: Arc::new(Semaphore::new(total_units)),
            total_units,
            heap_gauge: None,
            heap_baseline: AtomicU64::new(0),
            heap_waited: AtomicBool::new(false),
        }
    }

    /// Bounds the process's live heap bytes, as `gauge` reports them, by
    /// the budget: see [`MemoryBudget::heap_is_full`].
    pub fn with_heap_gauge(mut self, gauge: fn() -> usize) -> MemoryBudget {
        self.heap_gauge = Some(gauge);
        self
    }

    /// Notes what the heap holds now as what the process needs to run (its
    /// clients, tables, buffers): call it once set up, before input.
    pub fn mark_heap_baseline(&self) {
        if let Some(live) = self.heap_bytes() {
            self.heap_baseline.store(live, Ordering::Relaxed);
        }
    }

    /// Live heap bytes, when a gauge was given.
    pub fn heap_bytes(&self) -> Option<u64> {
        self.heap_gauge.map(|gauge| gauge() as u64)
    }

    /// Whether the heap holds its share of the budget
    /// ([`HEAP_SHARE_EIGHTHS`]): connections must not read more until some
    /// is freed. Always false without a gauge.
    pub fn heap_is_full(&self) -> bool {
        let share = (self.total() / 8 * HEAP_SHARE_EIGHTHS).max(HEAP_SHARE_FLOOR);
        self.heap_bytes().is_some_and(|live| {
            live.saturating_sub(self.heap_baseline.load(Ordering::Relaxed)) >= share
        })
    }

    /// A connection waits for heap room: what the output holds back (a
    /// batch waiting for its flush interval) should go now.
    pub fn note_heap_wait(&self) {
        self.heap_waited.store(true, Ordering::Relaxed);
    }

    /// Whether a connection waited for heap room since the last call.
    pub fn take_heap_wait(&self) -> bool {
        self.heap_waited.swap(false, Ordering::Relaxed)
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        ((self.total_units - self.units.available_permits()) * Self::UNIT) as u64
    }

    /// Bytes in all.
    pub fn total(&self) -> u64 {
        (self.total_units * Self::UNIT) as u64
    }

    /// Waits until `bytes` (at most the whole budget) can be reserved.
    pub async fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = self.units_for(bytes);
        let permit = self.units.clone().acquire_many_owned(units).await.ok()?;
        Some(Reservation { permit })
    }

    /// Reserves `bytes` (at most the whole budget) if they are free now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = self.units_for(bytes);
        let permit = self.units.clone().try_acquire_many_owned(units).ok()?;
        Some(Reservation { permit })
    }

    /// Reservations are whole units; a reservation of nothing holds none.
    fn units_for(&self, bytes: usize) -> u32 {
        let units = bytes.div_ceil(Self::UNIT).min(self.total_units);
        u32::try_from(units).unwrap_or(u32::MAX)
    }
}

/// Connections stop reading while the live heap holds 5/8 of the budget.
/// The rest is for what the heap does not count (the allocator's free and
/// not yet purged pages, code, stacks: about 14 MiB at start) and for the
/// work on what was read already (rendering, batches, request bodies), so
/// that RSS stays within the budget and 16 MiB (BENCHMARKS.md, "Memory").
const HEAP_SHARE_EIGHTHS: u64 = 5;

/// The heap's share is never less than this: a gauge that counts in steps
/// (the sidecar's is exact to 64 KiB per thread) must not keep a tiny budget
/// shut when nothing is held.
const HEAP_SHARE_FLOOR: u64 = 2 << 20;

/// A share of a [`MemoryBudget`], given back when dropped. Shares move with
/// the data they pay for: from a delivery to the batches its events join.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    /// Bytes held (a multiple of the budget's 1 KiB unit).
    pub fn bytes(&self) -> usize {
        self.permit.num_permits() * MemoryBudget::UNIT
    }

    /// Moves up to `bytes` (rounded up to whole units) out into a new
    /// reservation; `None` when this one holds less than that.
    pub fn split(&mut self, bytes: usize) -> Option<Reservation> {
        let units = bytes.div_ceil(MemoryBudget::UNIT);
        self.permit
            .split(units)
            .map(|permit| Reservation { permit })
    }

    /// Gives back the whole units beyond `bytes`: what is kept still
    /// covers `bytes`, and a share that covers them is not given back and
    /// taken again.
    pub fn shrink_to(&mut self, bytes: usize) {
        let spare = self.bytes().saturating_sub(bytes) / MemoryBudget::UNIT;
        if spare > 0 {
            drop(self.permit.split(spare));
        }
    }

    /// Takes over `other`'s share. Both must come from the same budget.
    pub fn merge(&mut self, other: Reservation) {
        self.permit.merge(other.permit);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    static GAUGE: AtomicUsize = AtomicUsize::new(0);

    fn gauge() -> usize {
        GAUGE.load(Ordering::Relaxed)
    }

    #[test]
    fn a_share_shrinks_to_whole_units_that_still_cover_its_bytes() {
        let budget = MemoryBudget::new(64 << 10);
        let mut share = budget.try_reserve(10 << 10).unwrap();
        share.shrink_to(3_000);
        assert_eq!(share.bytes(), 3 << 10);
        assert_eq!(budget.in_use(), 3 << 10);
        share.shrink_to(3 << 10);
        assert_eq!(share.bytes(), 3 << 10);
        share.shrink_to(5 << 10);
        assert_eq!(share.bytes(), 3 << 10);
        share.shrink_to(0);
        assert_eq!(share.bytes(), 0);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_heap_is_full_at_five_eighths_of_the_budget_beyond_the_baseline() {
        let budget = MemoryBudget::new(64 << 20).with_heap_gauge(gauge);
        GAUGE.store(3 << 20, Ordering::Relaxed);
        budget.mark_heap_baseline();
        GAUGE.store((3 << 20) + (40 << 20) - 1, Ordering::Relaxed);
        assert!(!budget.heap_is_full());
        GAUGE.store((3 << 20) + (40 << 20), Ordering::Relaxed);
        assert!(budget.heap_is_full());
        // Below the baseline (freed what start-up held) is not an error.
        GAUGE.store(1 << 20, Ordering::Relaxed);
        assert!(!budget.heap_is_full());
        // A tiny budget still lets 2 MiB through: the gauge counts in steps.
        let tiny = MemoryBudget::new(64 << 10).with_heap_gauge(gauge);
        GAUGE.store((2 << 20) - 1, Ordering::Relaxed);
        assert!(!tiny.heap_is_full());
        GAUGE.store(2 << 20, Ordering::Relaxed);
        assert!(tiny.heap_is_full());
        // Without a gauge the heap never stops a connection.
        assert!(!MemoryBudget::new(64 << 10).heap_is_full());
    }
}
