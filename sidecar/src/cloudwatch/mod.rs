//! The CloudWatch Logs output: the output stage renders events into one
//! batcher per log stream ([`sink`]); closed batches go to the shipper
//! ([`ship`]), which sends them with aws-sdk-cloudwatchlogs ([`client`]),
//! retrying until CloudWatch has them.

pub mod api;
pub mod batch;
pub mod client;
pub mod pending;
pub mod ship;
pub mod sink;
