//! The shipper against an in-memory CloudWatch that keeps the service's
//! rules (groups and streams must exist, a request's events are checked
//! as PutLogEvents checks them, throttling when told to), on tokio's paused
//! clock: retries wait their backoff in virtual time, and no test sleeps.

use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;

use super::*;
use crate::event::{LogEvent, Message};

/// CloudWatch Logs in memory. Every call takes 5 ms of virtual time, so
/// that batches in flight together really overlap.
#[derive(Clone, Default)]
struct MemoryLogs {
    state: Arc<StdMutex<State>>,
}

#[derive(Default)]
struct State {
    /// Groups and their retention.
    groups: BTreeMap<String, Option<i32>>,
    streams: BTreeMap<StreamKey, Vec<(i64, String)>>,
    /// PutLogEvents calls still to answer with ThrottlingException.
    throttle: usize,
    /// Every call, in order: `put g/s n`, `create_group g`, ...
    calls: Vec<String>,
}

const CALL_TIME: Duration = Duration::from_millis(5);

impl MemoryLogs {
    fn with_stream(key: &StreamKey) -> MemoryLogs {
        let logs = MemoryLogs::default();
        logs.create(key);
        logs
    }

    /// What an operator (or another task) does outside Sluice.
    fn create(&self, key: &StreamKey) {
        let mut state = self.state.lock().unwrap();
        state.groups.entry(key.group().to_string()).or_insert(None);
        state.streams.entry(key.clone()).or_default();
    }

    fn throttle(&self, calls: usize) {
        self.state.lock().unwrap().throttle = calls;
    }

    fn stored(&self, key: &StreamKey) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let events = state.streams.get(key).cloned().unwrap_or_default();
        events.into_iter().map(|(_, message)| message).collect()
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
}

impl LogsApi for MemoryLogs {
    async fn put_log_events(
        &self,
        key: &StreamKey,
        batch: &Batch,
        _emf: bool,
    ) -> Result<Rejected, CallError> {
        tokio::time::sleep(CALL_TIME).await;
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        state.calls.push(format!(
            "put {}/{} {}",
            key.group(),
            key.stream(),
            batch.len()
        ));
        if state.throttle > 0 {
            state.throttle -= 1;
            return Err(CallError::Transient(
                "ThrottlingException: Rate exceeded".into(),
            ));
        }
        if !state.groups.contains_key(key.group()) {
            return Err(CallError::NotFound);
        }
        let Some(stream) = state.streams.get_mut(key) else {
            return Err(CallError::NotFound);
        };
        // The service's checks of a request (the API reference): messages
        // of at least one byte, in time order, within 24 hours.
        let stamps: Vec<i64> = batch.iter().map(|e| e.timestamp_ms).collect();
        let ordered = stamps.is_sorted();
        let span = stamps.last().unwrap_or(&0) - stamps.first().unwrap_or(&0);
        if batch.iter().any(|e| e.message.is_empty()) {
            return Err(CallError::Invalid(
                "1 validation error detected: Value '' at 'logEvents.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
            ));
        }
        if !ordered || span > 24 * 3_600_000 {
            return Err(CallError::Invalid(
                "Log events in a single PutLogEvents request must be in chronological order and within 24 hours".into(),
            ));
        }
        stream.extend(batch.iter().map(|e| (e.timestamp_ms, e.message.text())));
        Ok(Rejected::default())
    }

    async fn create_log_group(&self, group: &str, policy: &GroupPolicy) -> Result<bool, CallError> {
        tokio::time::sleep(CALL_TIME).await;
        let mut state = self.state.lock().unwrap();
        state.calls.push(if policy.infrequent_access {
            format!("create_group {group} (infrequent access)")
        } else {
            format!("create_group {group}")
        });
        if state.groups.contains_key(group) {
            return Ok(false);
        }
        state.groups.insert(group.to_string(), None);
        Ok(true)
    }

    async fn create_log_stream(&self, key: &StreamKey) -> Result<bool, CallError> {
        tokio::time::sleep(CALL_TIME).await;
        let mut state = self.state.lock().unwrap();
        state
            .calls
            .push(format!("create_stream {}/{}", key.group(), key.stream()));
        if !state.groups.contains_key(key.group()) {
            return Err(CallError::NotFound);
        }
        if state.streams.contains_key(key) {
            return Ok(false);
        }
        state.streams.insert(key.clone(), Vec::new());
        Ok(true)
    }

    async fn put_retention_policy(&self, group: &str, days: i32) -> Result<(), CallError> {
        tokio::time::sleep(CALL_TIME).await;
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("retention {group} {days}"));
        match state.groups.get_mut(group) {
            Some(retention) => {
                *retention = Some(days);
                Ok(())
            }
            None => Err(CallError::NotFound),
        }
    }
}

fn key() -> StreamKey {
    StreamKey::new("/ecs/orders".into(), "envoy/access".into())
}

fn events(messages: &[&str]) -> Vec<LogEvent> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| LogEvent {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            message: Message::new(m),
            spool: None,
        })
        .collect()
}

/// Runs a shipper over `batches` (all for `key()`) until every one is done.
async fn ship(
    logs: &MemoryLogs,
    policy: GroupPolicy,
    batches: Vec<Vec<LogEvent>>,
) -> Arc<ShipCounters> {
    let counters = Arc::new(ShipCounters::default());
    let shipper = Arc::new(Shipper::new(
        logs.clone(),
        Arc::new(GroupPolicies::new(policy)),
        counters.clone(),
        None,
    ));
    let (tx, rx) = mpsc::unbounded_channel();
    for events in batches {
        counters.outstanding.fetch_add(1, Ordering::Relaxed);
        let out = Outbound {
            key: key(),
            batch: Batch::of(&events),
            reservation: None,
            emf: false,
        };
        assert!(tx.send(out).is_ok());
    }
    drop(tx);
    shipper.run(rx).await;
    counters
}

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

const CREATE_ALL: GroupPolicy = GroupPolicy {
    create_group: true,
    create_stream: true,
    retention_days: Some(7),
    infrequent_access: false,
    tags: None,
};

#[tokio::test(start_paused = true)]
async fn a_throttled_batch_is_sent_again_after_its_backoff_until_taken() {
    let logs = MemoryLogs::with_stream(&key());
    logs.throttle(3);
    let start = tokio::time::Instant::now();
    let counters = ship(&logs, CREATE_ALL, vec![events(&["a", "b", "c"])]).await;
    assert_eq!(logs.stored(&key()), ["a", "b", "c"]);
    assert_eq!(logs.calls(), ["put /ecs/orders/envoy/access 3"; 4]);
    assert_eq!(count(&counters.requests), 4);
    assert_eq!(count(&counters.retries), 3);
    assert_eq!(count(&counters.events_delivered), 3);
    assert_eq!(count(&counters.bytes_delivered), 3);
    assert_eq!(count(&counters.outstanding), 0);
    // Four calls, and three waits of at least 10 ms and at most the
    // ceilings 100, 200 and 400 ms (virtual time).
    let waited = start.elapsed() - 4 * CALL_TIME;
    assert!(waited >= Duration::from_millis(30), "{waited:?}");
    assert!(waited <= Duration::from_millis(700), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_event_is_found_by_halving_and_the_others_go_in_order() {
    let logs = MemoryLogs::with_stream(&key());
    let batch = events(&["0", "1", "2", "3", "4", "", "6", "7"]);
    let counters = ship(&logs, CREATE_ALL, vec![batch]).await;
    assert_eq!(logs.stored(&key()), ["0", "1", "2", "3", "4", "6", "7"]);
    let puts: Vec<String> = logs.calls();
    // 8 refused; 0-3 in; 4-7 refused; 4-5 refused; 4 in; 5 refused
    // alone; 6-7 in.
    let sizes: Vec<&str> = puts.iter().map(|c| c.rsplit(' ').next().unwrap()).collect();
    assert_eq!(sizes, ["8", "4", "4", "2", "1", "1", "2"]);
    assert_eq!(count(&counters.rejected_invalid), 1);
    assert_eq!(count(&counters.events_delivered), 7);
    assert_eq!(count(&counters.retries), 0);
}

#[tokio::test(start_paused = true)]
async fn a_missing_stream_is_created_once_for_the_batches_in_flight_together() {
    let logs = MemoryLogs::default();
    let batches = vec![events(&["a"]), events(&["b"]), events(&["c"])];
    let counters = ship(&logs, CREATE_ALL, batches).await;
    let mut stored = logs.stored(&key());
    stored.sort();
    assert_eq!(stored, ["a", "b", "c"]);
    let creations: Vec<String> = logs
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("put "))
        .collect();
    assert_eq!(
        creations,
        [
            "create_group /ecs/orders",
            "retention /ecs/orders 7",
            "create_stream /ecs/orders/envoy/access"
        ]
    );
    assert_eq!(count(&counters.groups_created), 1);
    assert_eq!(count(&counters.streams_created), 1);
    assert_eq!(count(&counters.events_delivered), 3);
    // Each batch: refused once (missing), then taken.
    assert_eq!(count(&counters.requests), 6);
    assert_eq!(count(&counters.retries), 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_of_the_infrequent_access_class_is_created_so() {
    let logs = MemoryLogs::default();
    let policy = GroupPolicy {
        infrequent_access: true,
        ..CREATE_ALL
    };
    ship(&logs, policy, vec![events(&["a"])]).await;
    assert_eq!(logs.stored(&key()), ["a"]);
    assert!(logs
        .calls()
        .contains(&"create_group /ecs/orders (infrequent access)".to_string()));
}

#[tokio::test(start_paused = true)]
async fn without_auto_create_a_missing_stream_is_waited_for_not_created() {
    let logs = MemoryLogs::default();
    let operator = logs.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        operator.create(&key());
    });
    let counters = ship(&logs, GroupPolicy::default(), vec![events(&["a", "b"])]).await;
    assert_eq!(logs.stored(&key()), ["a", "b"]);
    assert!(logs.calls().iter().all(|c| c.starts_with("put ")));
    assert_eq!(count(&counters.groups_created), 0);
    // Backoff doubles from 100 ms to its 10 s cap: at least a few retries
    // in 30 s, and no more than one per 10 ms.
    let retries = count(&counters.retries);
    assert!((3..=3000).contains(&retries), "{retries}");
    assert_eq!(count(&counters.requests), retries + 1);
}

#[test]
fn backoff_grows_to_its_cap_with_jitter() {
    for attempt in 1..40 {
        let ceiling = (FIRST_BACKOFF * 2u32.pow(attempt.min(20) - 1)).min(MAX_BACKOFF);
        for _ in 0..20 {
            let wait = backoff(attempt);
            assert!(
                wait <= ceiling.max(Duration::from_millis(10)),
                "{attempt}: {wait:?}"
            );
            assert!(wait >= Duration::from_millis(10));
        }
    }
    // Jitter: 50 draws at the cap are not all the same.
    let draws: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(30)).collect();
    assert!(draws.len() > 1);
}
