//! Delivers closed batches: PutLogEvents with retries, log group and stream
//! creation, and isolation of events CloudWatch refuses.
//!
//! Rules, from the issue and the API reference:
//! - ResourceNotFound: create the group (with its retention) and the stream
//!   when `auto_create` allows, then send again; otherwise wait and retry.
//! - Throttling, 5xx, timeouts, connection errors: the same batch again,
//!   after an exponential backoff with full jitter, capped at
//!   [`MAX_BACKOFF`], for as long as it takes.
//! - InvalidParameterException: split the batch in halves until the events
//!   CloudWatch refuses stand alone; report and count those, deliver the rest.
//! - `rejectedLogEventsInfo`: counted per reason, logged once per interval.
//! - A batch CloudWatch accepted is never sent again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::Reservation;
use tokio::sync::{mpsc, Mutex, Notify, Semaphore};
use tokio::task::JoinSet;

use super::api::{CallError, LogsApi, Rejected};
use super::batch::Batch;
use super::client::CloudWatchClient;
use crate::event::StreamKey;
use crate::fluentbit::plugin_metrics::{OutputCounts, PluginMetrics};
use crate::spool::{self, SpoolShared};

/// Requests in flight at once, over all streams. PutLogEvents has no
/// per-stream limit any more; this bounds what one sidecar asks of the
/// account's quota.
pub const MAX_IN_FLIGHT: usize = 8;
/// The first retry waits up to this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often refused events and repeated failures are logged.
const REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// A closed batch on its way out, with the memory it holds.
pub struct Outbound {
    pub key: StreamKey,
    pub batch: Batch,
    pub reservation: Option<Reservation>,
    /// EMF events: sent with `x-amzn-logs-format: json/emf`.
    pub emf: bool,
}

/// What the CloudWatch output has done, for logs and /metrics.
#[derive(Debug, Default)]
pub struct ShipCounters {
    /// Batches handed to the shipper and not finished yet.
    pub outstanding: AtomicU64,
    /// Events in batches handed to the shipper (parts of split events count
    /// one each).
    pub events_queued: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub events_delivered: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub rejected_too_new: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_expired: AtomicU64,
    /// Events refused alone with InvalidParameterException.
    pub rejected_invalid: AtomicU64,
    pub groups_created: AtomicU64,
    pub streams_created: AtomicU64,
    /// Empty messages, which PutLogEvents refuses: counted, not sent.
    pub empty_skipped: AtomicU64,
    /// Bytes buffered past the memory budget, when waiting could not free
    /// any (see CloudWatchSink::reserve).
    pub overdraft_bytes: AtomicU64,
    /// Unix ms of the last accepted PutLogEvents (or of the start).
    pub last_success_ms: AtomicU64,
    /// Woken whenever a batch finishes (its memory is free again).
    pub finished: Notify,
    /// A FireLens configuration's outputs' counters, by log stream.
    pub plugin_metrics: std::sync::OnceLock<Arc<PluginMetrics>>,
}

impl ShipCounters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Events refused so far: too new, too old, expired, invalid.
    pub fn rejected(&self) -> [u64; 4] {
        [
            &self.rejected_too_new,
            &self.rejected_too_old,
            &self.rejected_expired,
            &self.rejected_invalid,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// What the shipper may create for a log group, and the retention, class
/// and tags of a group it creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    pub create_group: bool,
    pub create_stream: bool,
    pub retention_days: Option<i32>,
    /// A group it creates is of the Infrequent Access class (a FireLens
    /// output's `log_group_class INFREQUENT_ACCESS`).
    pub infrequent_access: bool,
    /// Tags of a group it creates (a FireLens output's
    /// `new_log_group_tags`), shared by the outputs' policies.
    pub tags: Option<Arc<[(String, String)]>>,
}

/// The policy of each log group: one for all (`[cloudwatch]`), or per group
/// as FireLens outputs name them (each output has its own).
pub struct GroupPolicies {
    default: GroupPolicy,
    by_group: std::sync::Mutex<HashMap<String, GroupPolicy>>,
}

impl GroupPolicies {
    pub fn new(default: GroupPolicy) -> GroupPolicies {
        GroupPolicies {
            default,
            by_group: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn set(&self, group: &str, policy: GroupPolicy) {
        if let Ok(mut map) = self.by_group.lock() {
            map.insert(group.to_string(), policy);
        }
    }

    pub fn get(&self, group: &str) -> GroupPolicy {
        self.by_group
            .lock()
            .ok()
            .and_then(|m| m.get(group).cloned())
            .unwrap_or_else(|| self.default.clone())
    }
}

/// Sends batches through `C`: the SDK client, or in the unit tests an
/// in-memory CloudWatch.
pub struct Shipper<C = CloudWatchClient> {
    client: C,
    policies: Arc<GroupPolicies>,
    in_flight: Semaphore,
    counters: Arc<ShipCounters>,
    /// How many times each stream was created. Batches in flight at once
    /// for a new stream all find it missing; the first creates it, the
    /// others see the count moved and just send again.
    creations: Mutex<HashMap<StreamKey, u64>>,
    /// Told when CloudWatch has a batch's events, so that their segments
    /// can go.
    spool: Option<Arc<SpoolShared>>,
}

impl<C: LogsApi> Shipper<C> {
    pub fn new(
        client: C,
        policies: Arc<GroupPolicies>,
        counters: Arc<ShipCounters>,
        spool: Option<Arc<SpoolShared>>,
    ) -> Shipper<C> {
        Shipper {
            client,
            policies,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            counters,
            creations: Mutex::new(HashMap::new()),
            spool,
        }
    }

    /// Delivers every batch that arrives until the sending side is gone
    /// and all of them are done.
    pub async fn run(self: Arc<Self>, mut batches: mpsc::UnboundedReceiver<Outbound>) {
        let mut tasks = JoinSet::new();
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        report.tick().await;
        let mut reported = self.counters.rejected();
        loop {
            tokio::select! {
                next = batches.recv() => match next {
                    Some(out) => {
                        tasks.spawn(self.clone().deliver(out));
                    }
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = report.tick() => reported = self.report_rejected(reported),
            }
        }
        while tasks.join_next().await.is_some() {}
        self.report_rejected(reported);
    }

    /// Logs the events refused since the last report, one line for all.
    fn report_rejected(&self, before: [u64; 4]) -> [u64; 4] {
        let now = self.counters.rejected();
        if now != before {
            tracing::warn!(
                too_new = now[0] - before[0],
                too_old = now[1] - before[1],
                expired = now[2] - before[2],
                invalid = now[3] - before[3],
                "CloudWatch refused events (too new: more than 2 h ahead; too old: more than 14 days or older than the retention; invalid: refused alone with InvalidParameterException)"
            );
        }
        now
    }

    async fn deliver(self: Arc<Self>, out: Outbound) {
        let Outbound {
            key,
            batch,
            reservation,
            emf,
        } = out;
        if let Ok(_slot) = self.in_flight.acquire().await {
            let spooled = spool::marks_by_segment(batch.iter().filter_map(|e| e.spool));
            // Halves of a batch CloudWatch found invalid wait here, the
            // earlier half on top: events still go out oldest first.
            let mut parts = vec![batch];
            while let Some(part) = parts.pop() {
                if let Some([first, second]) = self.deliver_part(&key, part, emf).await {
                    parts.push(second);
                    parts.push(first);
                }
            }
            // Every event is delivered or refused for good. (A batch cut
            // short by the process stopping never gets here: its segments
            // stay, and are sent again by the next run.)
            if let Some(spool) = &self.spool {
                spool.release(&spooled);
            }
        }
        drop(reservation);
        self.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.counters.finished.notify_waiters();
    }

    /// Sends `batch` until CloudWatch takes it. Returns the two halves
    /// when CloudWatch calls the request invalid and it holds more than one
    /// event.
    async fn deliver_part(&self, key: &StreamKey, batch: Batch, emf: bool) -> Option<[Batch; 2]> {
        let mut attempt = 0u32;
        let mut created = false;
        loop {
            let seen = self.creations(key).await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let output = self
                .counters
                .plugin_metrics
                .get()
                .and_then(|m| m.stream_output(key));
            let failure = match self.client.put_log_events(key, &batch, emf).await {
                Ok(rejected) => {
                    self.count_delivered(&batch, rejected, output);
                    self.counters
                        .last_success_ms
                        .store(crate::event::now_ms(), Ordering::Relaxed);
                    return None;
                }
                Err(CallError::Invalid(message)) if batch.len() > 1 => {
                    tracing::debug!(group = %key.group(), stream = %key.stream(), events = batch.len(), reason = %message, "invalid request: splitting it to find the refused events");
                    return Some(batch.split_in_half());
                }
                Err(CallError::Invalid(message)) => {
                    // The event's text stays out of the log: only its size
                    // and time say which one it was.
                    if let Some(event) = batch.get(0) {
                        tracing::error!(group = %key.group(), stream = %key.stream(), timestamp_ms = event.timestamp_ms, bytes = event.message.len(), reason = %message, "CloudWatch refused an event");
                    }
                    ShipCounters::add(&self.counters.rejected_invalid, batch.len());
                    if let Some(o) = output {
                        OutputCounts::add(&o.errors, 1);
                        OutputCounts::add(&o.dropped_records, batch.len());
                    }
                    return None;
                }
                Err(CallError::NotFound)
                    if !created && {
                        let p = self.policies.get(key.group());
                        p.create_group || p.create_stream
                    } =>
                {
                    created = true;
                    let mut creations = self.creations.lock().await;
                    let count = creations.entry(key.clone()).or_default();
                    if *count != seen {
                        // Created by another batch meanwhile.
                        continue;
                    }
                    match self.create(key).await {
                        Ok(()) => {
                            *count += 1;
                            // Straight back to sending.
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(CallError::NotFound) => {
                    let p = self.policies.get(key.group());
                    if p.create_group {
                        "the log group or stream is still missing after creating it".to_string()
                    } else if p.create_stream {
                        "the log group does not exist, and creating it is off (cloudwatch.auto_create, or auto_create_group of a FireLens output)".to_string()
                    } else {
                        "the log group or stream does not exist, and creating them is off (cloudwatch.auto_create, or auto_create_stream of a FireLens output)"
                            .to_string()
                    }
                }
                Err(CallError::Transient(reason)) => reason,
            };
            attempt += 1;
            // A group deleted while running is created again next time.
            created = false;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = output {
                OutputCounts::add(&o.retries, 1);
                OutputCounts::add(&o.retried_records, batch.len());
            }
            let wait = backoff(attempt);
            // The 1st, 2nd, 4th, 8th, ... retry of a batch.
            if attempt.is_power_of_two() {
                tracing::warn!(group = %key.group(), stream = %key.stream(), attempt, retry_in_ms = wait.as_millis() as u64, reason = %failure, "PutLogEvents failed; retrying");
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn creations(&self, key: &StreamKey) -> u64 {
        self.creations.lock().await.get(key).copied().unwrap_or(0)
    }

    fn count_delivered(&self, batch: &Batch, rejected: Rejected, output: Option<&OutputCounts>) {
        let c = &self.counters;
        // Refused events are a prefix (too old, expired) and a suffix (too
        // new) of the sorted request; the bytes counted are the rest's.
        let refused_before = rejected.too_old + rejected.expired;
        let kept = batch.len() - refused_before - rejected.too_new;
        let bytes = batch
            .iter()
            .skip(refused_before)
            .take(kept)
            .map(|e| e.message.len())
            .sum();
        ShipCounters::add(&c.events_delivered, kept);
        ShipCounters::add(&c.bytes_delivered, bytes);
        if let Some(o) = output {
            OutputCounts::add(&o.proc_records, kept);
            OutputCounts::add(&o.proc_bytes, bytes);
            OutputCounts::add(&o.dropped_records, batch.len() - kept);
        }
        ShipCounters::add(&c.rejected_too_new, rejected.too_new);
        ShipCounters::add(&c.rejected_too_old, rejected.too_old);
        ShipCounters::add(&c.rejected_expired, rejected.expired);
    }

    /// Creates the group (setting its retention when this call created it)
    /// and the stream. What already exists is fine.
    async fn create(&self, key: &StreamKey) -> Result<(), String> {
        let policy = self.policies.get(key.group());
        let new_group = policy.create_group
            && self
                .client
                .create_log_group(key.group(), &policy)
                .await
                .map_err(|e| format!("creating the log group: {e:?}"))?;
        if new_group {
            ShipCounters::add(&self.counters.groups_created, 1);
            tracing::info!(group = %key.group(), "created log group");
            if let Some(days) = policy.retention_days {
                self.client
                    .put_retention_policy(key.group(), days)
                    .await
                    .map_err(|e| format!("setting the retention: {e:?}"))?;
            }
        }
        if !policy.create_stream {
            return Ok(());
        }
        if self
            .client
            .create_log_stream(key)
            .await
            .map_err(|e| format!("creating the log stream: {e:?}"))?
        {
            ShipCounters::add(&self.counters.streams_created, 1);
            tracing::info!(group = %key.group(), stream = %key.stream(), "created log stream");
        }
        Ok(())
    }
}

/// The wait before retry number `attempt` (from 1): a random time up to
/// FIRST_BACKOFF x 2^(attempt-1), never more than MAX_BACKOFF ("full
/// jitter", so that many sidecars throttled at once do not retry in step).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF);
    let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    // Never zero: a tight loop helps nobody.
    ceiling.mul_f64(fraction).max(Duration::from_millis(10))
}

/// A random number from the standard library's per-process random hash
/// keys; enough for jitter, no dependency for it.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests;
