//! The command line: `sluice run` and `sluice parse`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sluice_parser::QueryMode;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Log sidecar for Envoy on Amazon ECS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar (Fluent Forward in, CloudWatch Logs or stdout out).
    Run(RunArgs),
    /// Check a configuration file (with SLUICE_* overrides) and explain every
    /// error; or a Fluent Bit configuration (FireLens), printing the routes it
    /// derives.
    CheckConfig(CheckConfigArgs),
    /// Exit 0 if the configured forward listener accepts a connection, else
    /// 1 (for a container HEALTHCHECK; the image has no shell).
    Healthcheck(RunArgs),
    /// Read log lines on stdin and write one JSON object per line on stdout:
    /// {"kind":"access",...fields,"route":"..."} or {"kind":"app","log":"..."}.
    Parse(ParseArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file; without it the embedded default is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Sluice's TOML configuration, or a Fluent Bit configuration such as
    /// the one ECS generates for FireLens.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// A built-in format name (envoy, envoy-details, sc-http, sc-http2,
    /// sc-grpc, sc-tcp) to try first, or an Envoy format string such as
    /// '[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%'. Repeatable; built-in
    /// formats still apply to lines the given ones do not match.
    #[arg(long = "format", value_name = "NAME|FORMAT-STRING")]
    pub formats: Vec<String>,

    /// What to do with URL query strings.
    #[arg(long, value_name = "redact|drop|keep", default_value = "redact")]
    pub redact: QueryMode,

    /// A query parameter whose value is kept by `--redact redact`. Repeatable.
    #[arg(long = "allow", value_name = "KEY")]
    pub allow: Vec<String>,

    /// A regular expression whose matches are redacted in every value and
    /// application line; a group named `secret` limits it to that group.
    /// Repeatable.
    #[arg(long = "redact-pattern", value_name = "REGEX")]
    pub patterns: Vec<String>,

    /// A route template such as '/users/{id}/orders' for route keys.
    /// Repeatable; the first match wins.
    #[arg(long = "route", value_name = "TEMPLATE")]
    pub routes: Vec<String>,
}
