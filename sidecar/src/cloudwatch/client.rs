//! The calls Sluice makes to CloudWatch Logs, through aws-sdk-cloudwatchlogs,
//! with every failure sorted into what the shipper does about it.
//!
//! The SDK's own retries are off: the shipper retries without a bound on the
//! count (a batch that was accepted from a client is never given up on), and
//! counts every retry.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_types::body::SdkBody;
use sluice_parser::json_out::{self, JsonOut};

use super::api::{CallError, LogsApi, Rejected};
use super::batch::Batch;
use super::ship::GroupPolicy;
use crate::event::StreamKey;

/// A connection that cannot be made in this long counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one call; a 1 MiB request takes well under this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

impl Rejected {
    /// Reads `rejectedLogEventsInfo` for a request of `len` events. Too-new
    /// events run from `tooNewLogEventStartIndex` to the end; too-old and
    /// expired ones from the start to their end index (exclusive, as the API
    /// reference says). An expired event is also too old: it counts once,
    /// as expired.
    pub fn from_info(len: usize, info: Option<&RejectedLogEventsInfo>) -> Rejected {
        let Some(info) = info else {
            return Rejected::default();
        };
        let index = |i: Option<i32>| i.map(|i| usize::try_from(i).unwrap_or(0).min(len));
        let expired = index(info.expired_log_event_end_index()).unwrap_or(0);
        let old_end = index(info.too_old_log_event_end_index()).unwrap_or(0);
        let too_new = index(info.too_new_log_event_start_index()).map_or(0, |start| len - start);
        let too_old = old_end.saturating_sub(expired);
        // The prefix and the suffix can not overlap in a sorted request; if
        // they ever did, never count more events than were sent.
        let too_new = too_new.min(len - expired - too_old);
        Rejected {
            too_new,
            too_old,
            expired,
        }
    }

    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.too_new + self.too_old + self.expired
    }
}

/// Where to find CloudWatch Logs.
pub struct ClientSettings {
    /// `None`: the SDK's region chain (AWS_REGION, the profile, IMDS),
    /// then `task_region`.
    pub region: Option<String>,
    /// The region of the task's ARN (task metadata): on ECS agents older
    /// than 2026-04, and wherever a task definition sets no AWS_REGION,
    /// the only place the region is given.
    pub task_region: Option<String>,
    /// A local API (moto, a proxy) instead of the regional endpoint.
    pub endpoint: Option<String>,
    /// A role to assume on top of the default credentials (a FireLens
    /// output's `role_arn`).
    pub assume_role: Option<AssumeRole>,
}

/// `role_arn`, `external_id` and `sts_endpoint` of a FireLens output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    /// An STS endpoint URL instead of the region's.
    pub sts_endpoint: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CloudWatchClient {
    client: Client,
}

impl CloudWatchClient {
    /// Resolves region and credentials the SDK's default way: on ECS the
    /// task role through the container credentials endpoint, else the
    /// environment or a profile. Fails when no region can be found.
    pub async fn new(settings: &ClientSettings) -> Result<CloudWatchClient, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        match (&settings.region, &settings.task_region) {
            (Some(region), _) => loader = loader.region(Region::new(region.clone())),
            (None, Some(task)) => {
                loader = loader.region(
                    RegionProviderChain::default_provider().or_else(Region::new(task.clone())),
                )
            }
            (None, None) => {}
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(
                "no AWS region: set cloudwatch.region (SLUICE_CLOUDWATCH_REGION) or AWS_REGION (on ECS, the task metadata's task ARN gives it)"
                    .to_string(),
            );
        }
        // The endpoint is CloudWatch Logs' alone: STS keeps its own.
        let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint.clone());
        }
        if let Some(role) = &settings.assume_role {
            // The role's credentials come from STS with the default chain's
            // credentials (the task role on ECS), refreshed before expiry.
            let mut sts = sdk.to_builder();
            if let Some(endpoint) = &role.sts_endpoint {
                sts = sts.endpoint_url(endpoint.clone());
            }
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.role_arn.clone())
                .session_name("sluice")
                .configure(&sts.build());
            if let Some(id) = &role.external_id {
                provider = provider.external_id(id.clone());
            }
            config = config.credentials_provider(provider.build().await);
        }
        Ok(CloudWatchClient {
            client: Client::from_conf(config.build()),
        })
    }
}

impl LogsApi for CloudWatchClient {
    /// One PutLogEvents call. `events` must already keep every API rule
    /// (the batcher sees to it). `emf`: the events are Embedded Metric
    /// Format, and the request says so (`x-amzn-logs-format: json/emf`; the
    /// current specification no longer requires it, older readers do).
    async fn put_log_events(
        &self,
        key: &StreamKey,
        batch: &Batch,
        emf: bool,
    ) -> Result<Rejected, CallError> {
        // The SDK would copy every message into an `InputLogEvent` and
        // escape it byte by byte; the body is written here instead, in one
        // pass, and put in place of the SDK's (an empty event list) before
        // the request is signed, on every attempt.
        let body = bytes::Bytes::from(put_log_events_body(key, batch));
        let out = self
            .client
            .put_log_events()
            .log_group_name(key.group())
            .log_stream_name(key.stream())
            .set_log_events(Some(Vec::new()))
            .customize()
            .mutate_request(move |request| {
                request
                    .headers_mut()
                    .insert("content-length", body.len().to_string());
                *request.body_mut() = SdkBody::from(body.clone());
                if emf {
                    request
                        .headers_mut()
                        .insert("x-amzn-logs-format", "json/emf");
                }
            })
            .send()
            .await;
        match out {
            Ok(out) => Ok(Rejected::from_info(
                batch.len(),
                out.rejected_log_events_info(),
            )),
            // Never returned any more; if it were, the events are in.
            Err(e) if code(&e) == Some("DataAlreadyAcceptedException") => Ok(Rejected::default()),
            Err(e) => Err(classify(&e)),
        }
    }

    /// Creates a log group; `Ok(false)` when it already existed.
    async fn create_log_group(&self, group: &str, policy: &GroupPolicy) -> Result<bool, CallError> {
        let out = self
            .client
            .create_log_group()
            .log_group_name(group)
            .set_log_group_class(
                policy
                    .infrequent_access
                    .then_some(aws_sdk_cloudwatchlogs::types::LogGroupClass::InfrequentAccess),
            )
            .set_tags(
                policy
                    .tags
                    .as_ref()
                    .map(|tags| tags.iter().cloned().collect()),
            )
            .send()
            .await;
        created(out)
    }

    /// Creates a log stream; `Ok(false)` when it already existed.
    async fn create_log_stream(&self, key: &StreamKey) -> Result<bool, CallError> {
        let out = self
            .client
            .create_log_stream()
            .log_group_name(key.group())
            .log_stream_name(key.stream())
            .send()
            .await;
        created(out)
    }

    async fn put_retention_policy(&self, group: &str, days: i32) -> Result<(), CallError> {
        self.client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(days)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

/// The JSON body of a PutLogEvents call, as the service's JSON 1.1 protocol
/// takes it (the same members the SDK's serializer writes).
fn put_log_events_body(key: &StreamKey, batch: &Batch) -> String {
    let mut body = String::with_capacity(body_capacity(key, batch));
    body.push_str("{\"logGroupName\":");
    json_out::write_str(&mut body, key.group());
    body.push_str(",\"logStreamName\":");
    json_out::write_str(&mut body, key.stream());
    body.push_str(",\"logEvents\":[");
    for (i, event) in batch.iter().enumerate() {
        if let Some(ahead) = batch.get(i + PREFETCH_AHEAD) {
            prefetch(ahead.message.escaped().as_bytes());
        }
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"timestamp\":");
        body.int(event.timestamp_ms);
        // Escaped when it was rendered: a copy, not a second escape.
        body.push_str(",\"message\":\"");
        body.push_str(event.message.escaped());
        body.push_str("\"}");
    }
    body.push_str("]}");
    body
}

/// How many events ahead of the one being copied `put_log_events_body`
/// asks the CPU to load.
///
/// A batch's messages are copied in timestamp order, which is not the
/// order they were written to its pages (access records are stamped with
/// their request's start): each copy began with a cache miss the hardware
/// prefetcher could not foresee, on memory the output thread wrote up to a
/// megabyte earlier on another core. Loading a few events ahead made
/// bursts about 3 % cheaper in CPU (BENCHMARKS.md, fifteenth part).
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring `bytes` (their first 2 KiB) into its caches.
#[cfg(target_arch = "x86_64")]
fn prefetch(bytes: &[u8]) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for line in bytes.chunks(64).take(32) {
        // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_: &[u8]) {}

/// An upper bound of `put_log_events_body`'s length, so that the body is
/// allocated once: growing it would copy up to a megabyte per request.
fn body_capacity(key: &StreamKey, batch: &Batch) -> usize {
    // Per event: the members around the message, and a timestamp of at
    // most 20 characters (an i64).
    const PER_EVENT: usize = r#"{"timestamp":,"message":""},"#.len() + 20;
    const AROUND: usize = r#"{"logGroupName":"","logStreamName":"","logEvents":[]}"#.len();
    // A name escapes to at most 6 bytes per byte (`\u001f`).
    let names = 6 * (key.group().len() + key.stream().len());
    let messages: usize = batch.iter().map(|e| e.message.escaped().len()).sum();
    AROUND + names + messages + PER_EVENT * batch.len()
}

fn created<
    T,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    out: Result<T, SdkError<E, R>>,
) -> Result<bool, CallError> {
    match out {
        Ok(_) => Ok(true),
        Err(e) if code(&e) == Some("ResourceAlreadyExistsException") => Ok(false),
        Err(e) => Err(classify(&e)),
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// Sorts an SDK error: service errors by their code, everything else (no
/// connection, timeouts, unreadable responses, credentials not loaded yet)
/// is transient.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    e: &SdkError<E, R>,
) -> CallError {
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let message = err.message().unwrap_or_default().to_string();
            match err.code() {
                Some("ResourceNotFoundException") => CallError::NotFound,
                Some("InvalidParameterException") => CallError::Invalid(message),
                Some(code) => CallError::Transient(format!("{code}: {message}")),
                None => CallError::Transient(format!("service error: {message}")),
            }
        }
        SdkError::TimeoutError(_) => CallError::Transient("timed out".to_string()),
        SdkError::DispatchFailure(f) => CallError::Transient(if f.is_io() {
            "connection failed".to_string()
        } else if f.is_timeout() {
            "connection timed out".to_string()
        } else {
            format!("request not sent: {}", source_chain(e))
        }),
        SdkError::ResponseError(_) => {
            CallError::Transient(format!("unreadable response: {}", source_chain(e)))
        }
        other => CallError::Transient(source_chain(other)),
    }
}

/// An error with its causes, for a log line.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;

    fn info(new: Option<i32>, old: Option<i32>, expired: Option<i32>) -> RejectedLogEventsInfo {
        RejectedLogEventsInfo::builder()
            .set_too_new_log_event_start_index(new)
            .set_too_old_log_event_end_index(old)
            .set_expired_log_event_end_index(expired)
            .build()
    }

    #[test]
    fn the_body_is_what_the_sdk_would_send() {
        let key = StreamKey::new("/ecs/orders".into(), "envoy/\"x\"".into());
        let event = |timestamp_ms, message: &str| LogEvent {
            timestamp_ms,
            message: message.into(),
            spool: None,
        };
        let body = put_log_events_body(
            &key,
            &Batch::of(&[
                event(1700000000123, "{\"a\":\"b\\n\"}"),
                event(-1, "é\u{1}"),
            ]),
        );
        assert_eq!(
            body,
            r#"{"logGroupName":"/ecs/orders","logStreamName":"envoy/\"x\"","logEvents":[{"timestamp":1700000000123,"message":"{\"a\":\"b\\n\"}"},{"timestamp":-1,"message":"é\u0001"}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["logEvents"][0]["message"], "{\"a\":\"b\\n\"}");
        assert_eq!(
            put_log_events_body(&key, &Batch::of(&[])),
            r#"{"logGroupName":"/ecs/orders","logStreamName":"envoy/\"x\"","logEvents":[]}"#
        );
    }

    #[test]
    fn the_body_fits_its_first_allocation() {
        // The widest case per byte: names of control characters, the
        // longest timestamps, messages that are all escapes.
        let key = StreamKey::new("\u{1}".repeat(3), "\u{1f}".repeat(5));
        let events: Vec<LogEvent> = (0..1000)
            .map(|i| LogEvent {
                timestamp_ms: if i % 2 == 0 { i64::MIN } else { i64::MAX },
                message: "\"\n\u{2}".into(),
                spool: None,
            })
            .collect();
        for n in [0, 1, 2, 1000] {
            let batch = Batch::of(&events[..n]);
            let body = put_log_events_body(&key, &batch);
            assert!(
                body.len() <= body_capacity(&key, &batch),
                "{n} events: {} bytes",
                body.len()
            );
        }
        // Exact for one event: 20-character timestamp, 6-byte escapes.
        let one = Batch::of(&events[..1]);
        assert_eq!(
            put_log_events_body(&key, &one).len() + 1,
            body_capacity(&key, &one)
        );
    }

    #[test]
    fn rejected_counts_by_reason() {
        assert_eq!(Rejected::from_info(10, None), Rejected::default());
        let r = Rejected::from_info(10, Some(&info(Some(7), Some(3), None)));
        assert_eq!(
            r,
            Rejected {
                too_new: 3,
                too_old: 3,
                expired: 0
            }
        );
        // Expired events are the oldest; the too-old range includes them.
        let r = Rejected::from_info(10, Some(&info(None, Some(4), Some(2))));
        assert_eq!(
            r,
            Rejected {
                too_new: 0,
                too_old: 2,
                expired: 2
            }
        );
        // Out-of-range indexes never count more events than were sent.
        let r = Rejected::from_info(5, Some(&info(Some(-1), Some(99), None)));
        assert_eq!(r.total(), 5);
    }
}
