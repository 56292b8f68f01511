//! End-to-end tests: they run the built `sluice` binary against real inputs
//! and peers. One test binary, one module per command or subsystem.

mod cloudwatch;
mod config;
mod cost;
mod durability;
mod firelens;
mod multiline;
mod parse;
mod proxy;
mod run;
mod security;
mod stats;
mod support;
