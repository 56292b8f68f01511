//! The sidecar's modules, as a library so that the fuzz targets and
//! benches can reach them (the configuration loader, the statistics); the
//! `sluice` binary (main.rs) is the only user that matters.

pub mod admin;
pub mod cli;
pub mod cloudwatch;
pub mod config;
pub mod dummy_input;
pub mod ecs;
pub mod event;
pub mod exec_input;
pub mod fluentbit;
pub mod heap;
pub mod input_links;
pub mod log_counts;
pub mod memory_limit;
pub mod metrics;
pub mod multiline;
pub mod output;
pub mod parse_cmd;
pub mod privileges;
pub mod render;
pub mod run;
pub mod spool;
pub mod stage;
pub mod startup_pages;
pub mod stats;
pub mod streams;
pub mod tail_input;
pub mod tcp_input;
pub mod utf8;
