//! The CloudWatch Logs calls the shipper makes, as a small trait: the SDK
//! client ([`super::client`]) in Sluice, and in the shipper's unit tests an
//! in-memory CloudWatch that keeps the service's rules, so that retries,
//! bisection and creating a stream once run on tokio's paused clock.

use std::future::Future;

use super::batch::Batch;
use super::ship::GroupPolicy;
use crate::event::StreamKey;

/// What the shipper needs of CloudWatch Logs.
pub trait LogsApi: Send + Sync + 'static {
    /// One PutLogEvents call. `batch` already keeps every API rule (the
    /// batcher sees to it). `emf`: the events are Embedded Metric Format.
    fn put_log_events(
        &self,
        key: &StreamKey,
        batch: &Batch,
        emf: bool,
    ) -> impl Future<Output = Result<Rejected, CallError>> + Send;

    /// Creates a log group, of the class and with the tags `policy` gives;
    /// `Ok(false)` when it already existed.
    fn create_log_group(
        &self,
        group: &str,
        policy: &GroupPolicy,
    ) -> impl Future<Output = Result<bool, CallError>> + Send;

    /// Creates a log stream; `Ok(false)` when it already existed.
    fn create_log_stream(
        &self,
        key: &StreamKey,
    ) -> impl Future<Output = Result<bool, CallError>> + Send;

    fn put_retention_policy(
        &self,
        group: &str,
        days: i32,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// What went wrong with a call, as far as the shipper cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The log group or stream does not exist.
    NotFound,
    /// The request itself is wrong (InvalidParameterException): sending it
    /// again will not help.
    Invalid(String),
    /// Throttling, 5xx, timeouts, connection errors, credentials not yet
    /// available, anything unknown: worth trying again later.
    Transient(String),
}

/// How many events of an accepted request CloudWatch set aside, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub too_new: usize,
    pub too_old: usize,
    pub expired: usize,
}
