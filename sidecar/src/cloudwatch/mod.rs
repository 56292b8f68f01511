//! The CloudWatch Logs output: the output stage renders events into one
//! batcher per log stream ([`pending`], a pure core, driven by [`sink`]
//! with the memory budget and the spool); closed batches go to the shipper
//! ([`ship`]), which sends them through the [`api::LogsApi`] calls
//! (aws-sdk-cloudwatchlogs in [`client`]), retrying until CloudWatch has
//! them.

pub mod api;
pub mod batch;
pub mod client;
pub mod pending;
pub mod ship;
pub mod sink;
