//! The memory budget (`limits.memory`): what events on their way through
//! Sluice may hold, counted in 1 KiB units of a semaphore. A connection
//! reserves a frame's size before it queues the frame; the share moves with
//! the events (to the CloudWatch batchers, the multiline joiner) and goes
//! back when they are done. When the budget is spent, connections wait and
//! stop reading, so TCP pushes back on the clients.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A delivery reserves its (estimated) size before it is queued and gives it
/// back when it is dropped; when the budget is spent, connections wait, stop
/// reading, and TCP pushes back on the clients.
#[derive(Debug)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: usize,
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
        }
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

    /// Takes over `other`'s share. Both must come from the same budget.
    pub fn merge(&mut self, other: Reservation) {
        self.permit.merge(other.permit);
    }
}
