//! The CloudWatch Logs output. So far: the pure PutLogEvents batcher; the
//! client (aws-sdk-cloudwatchlogs), retries and stream management follow.

pub mod batch;
