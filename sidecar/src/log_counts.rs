//! Sluice's own log events, counted by level as they are written: what
//! Fluent Bit serves as `fluentbit_logger_logs_total{message_type}` on
//! `/api/v2/metrics`, so that an alert on a drop-in's error count works.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Fluent Bit's message types, in the order it lists them.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Events written, by level, in [`LEVELS`]' order.
#[derive(Debug, Default)]
pub struct LogCounts([AtomicU64; 5]);

/// The process's counts: the ones `sluice run`'s logging adds to.
pub static LOG_COUNTS: LogCounts = LogCounts::new();

impl LogCounts {
    pub const fn new() -> LogCounts {
        LogCounts([const { AtomicU64::new(0) }; 5])
    }

    pub fn get(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }

    fn count(&self, level: Level) {
        let index = match level {
            Level::ERROR => 0,
            Level::WARN => 1,
            Level::INFO => 2,
            Level::DEBUG => 3,
            Level::TRACE => 4,
        };
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts every event that the level filter before it lets through.
pub struct CountingLayer(pub &'static LogCounts);

impl<S: Subscriber> Layer<S> for CountingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        self.0.count(*event.metadata().level());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Events below the level are not written, so not counted.
    #[test]
    fn counts_each_written_event_by_its_level() {
        static COUNTS: LogCounts = LogCounts::new();
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::DEBUG)
            .with(CountingLayer(&COUNTS));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("e");
            tracing::warn!("w1");
            tracing::warn!("w2");
            tracing::info!(key = 1, "i");
            tracing::debug!("d");
            tracing::trace!("not written");
        });
        assert_eq!(COUNTS.get(), [1, 2, 1, 1, 0]);
    }
}
