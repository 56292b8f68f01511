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
    /// 1 (the image's HEALTHCHECK, which needs no shell).
    Healthcheck(HealthcheckArgs),
    /// Read log lines on stdin and write one JSON object per line on stdout:
    /// {"kind":"access",...fields,"route":"..."} or {"kind":"app","log":"..."}.
    Parse(ParseArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file; without it the embedded default is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// When started as root: run as this user (and group, else the
    /// user's number) once its listeners are bound. ECS gives the
    /// FireLens socket directory to the router's `user` only when the task
    /// definition names one, so the image starts as root to create
    /// /var/run/fluent.sock and passes --user 65532:65532. Ignored when
    /// not started as root.
    #[arg(long, value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<RunAs>,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// TOML configuration file; without it the embedded default is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A numeric user and group to run as (`--user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// `UID` or `UID:GID`, both numbers: the image has no user database to
/// look names up in.
fn parse_user(text: &str) -> Result<RunAs, String> {
    let number = |part: &str| {
        part.parse::<u32>()
            .map_err(|_| format!("expected UID or UID:GID as numbers, got {text:?}"))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok(RunAs {
            uid: number(uid)?,
            gid: number(gid)?,
        }),
        None => {
            let uid = number(text)?;
            Ok(RunAs { uid, gid: uid })
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_a_number_with_an_optional_group() {
        assert_eq!(
            parse_user("65532:65532"),
            Ok(RunAs {
                uid: 65532,
                gid: 65532
            })
        );
        assert_eq!(
            parse_user("1000"),
            Ok(RunAs {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(parse_user("1000:0"), Ok(RunAs { uid: 1000, gid: 0 }));
        for bad in ["nonroot", "1000:", ":1000", "-1", "1000:staff", ""] {
            assert_eq!(
                parse_user(bad),
                Err(format!("expected UID or UID:GID as numbers, got {bad:?}")),
            );
        }
    }
}
