//! What each input beside the forward server (a FireLens configuration's
//! tcp, tail, exec and dummy inputs) is started with, and how it hands its
//! records to the pipeline: deliveries holding their share of the memory
//! budget, so that a full budget stops the reading, not the process.

use std::sync::Arc;

use sluice_firelens::{Delivery, Event, MemoryBudget};
use tokio::sync::{mpsc, oneshot, watch};

use crate::fluentbit::plugin_metrics::InputCounts;

/// An input's links to the rest of Sluice.
#[derive(Clone)]
pub struct InputLinks {
    /// Where its records go.
    pub pipeline: mpsc::Sender<Delivery>,
    pub budget: Arc<MemoryBudget>,
    /// Changes when Sluice stops.
    pub shutdown: watch::Receiver<bool>,
    /// Its plugin metrics, when they are served.
    pub counts: Option<Arc<InputCounts>>,
}

impl InputLinks {
    /// Counts `records` made of `bytes` read, for plugin metrics.
    pub fn count(&self, records: usize, bytes: usize) {
        if let Some(counts) = &self.counts {
            counts.add(records, bytes);
        }
    }

    /// Sends `events` as one delivery without an ack, once the budget has
    /// room for their share; `false` once the pipeline is closed.
    pub async fn deliver(&self, events: Vec<Event>) -> bool {
        let reserved = self.budget.reserve(estimated_bytes(&events)).await;
        let delivery = Delivery::without_ack(events, reserved);
        self.pipeline.send(delivery).await.is_ok()
    }

    /// [`InputLinks::deliver`] for an input that waits to know its events
    /// were accepted: the receiver resolves then. `None` once the pipeline
    /// is closed.
    pub async fn deliver_with_ack(&self, events: Vec<Event>) -> Option<oneshot::Receiver<()>> {
        let reserved = self.budget.reserve(estimated_bytes(&events)).await;
        let (delivery, accepted) = Delivery::with_ack(events, reserved);
        self.pipeline.send(delivery).await.ok().map(|_| accepted)
    }
}

/// The share of the memory budget `events` hold while in the pipeline.
fn estimated_bytes(events: &[Event]) -> usize {
    events.iter().map(|e| e.record.estimated_bytes() + 64).sum()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Links for an input under test: a pipeline of `capacity` deliveries,
    /// a 1 MiB budget and `counts`; with the pipeline's end and the stop
    /// signal (dropping it stops the input too).
    pub fn links(
        capacity: usize,
        counts: Option<Arc<InputCounts>>,
    ) -> (InputLinks, mpsc::Receiver<Delivery>, watch::Sender<bool>) {
        let (pipeline, received) = mpsc::channel(capacity);
        let (stop, shutdown) = watch::channel(false);
        let links = InputLinks {
            pipeline,
            budget: Arc::new(MemoryBudget::new(1 << 20)),
            shutdown,
            counts,
        };
        (links, received, stop)
    }
}
