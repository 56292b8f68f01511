//! The small types every part of the output shares, in a leaf module that
//! imports nothing of the crate: an event as PutLogEvents takes it, where
//! the spool holds it, the stream it goes to, and the process clock in ms.
//! Keeping them here keeps the modules that use them (batcher, spool,
//! shipper, metrics, admin) free of import circles.

/// A log group and stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub group: String,
    pub stream: String,
}

/// One log event as PutLogEvents takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub message: String,
    /// Where the spool holds this event, released once CloudWatch has it;
    /// `None` without a spool.
    pub spool: Option<SpoolMark>,
}

/// Where the spool holds an event: its segment, and its place among the
/// segment's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolMark {
    pub segment: u64,
    pub ordinal: u32,
}

/// Milliseconds since the Unix epoch, from the forward input's clock.
pub fn now_ms() -> u64 {
    u64::try_from(sluice_firelens::now_ns() / 1_000_000).unwrap_or(0)
}
