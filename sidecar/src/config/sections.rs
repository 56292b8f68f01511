//! Every configuration key, declared once: one struct per section, each
//! field a key with its type, each `Default` the key's default. The README's
//! table of keys describes these.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::types::{Bytes, CommaList, FileMode, Seconds};

/// `[forward]`: the Fluent Forward listeners.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardSection {
    /// A TCP address; `""` for none.
    pub listen: String,
    /// A unix socket path; `""` or absent for none.
    pub unix_path: Option<String>,
    pub unix_mode: FileMode,
    /// When set, TCP clients must pass the shared_key handshake.
    pub shared_key: Option<String>,
    pub max_connections: usize,
    pub idle_timeout: Seconds,
}

impl Default for ForwardSection {
    fn default() -> Self {
        ForwardSection {
            listen: "127.0.0.1:24224".into(),
            unix_path: None,
            unix_mode: FileMode(0o600),
            shared_key: None,
            max_connections: 1024,
            idle_timeout: Seconds(Duration::from_secs(3600)),
        }
    }
}

/// An enum read from one of its names; anything else is an error that
/// lists them.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    // Inside the visitor, so that the error is the key's.
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        match text {
                            $($text => Ok($name::$variant),)*
                            _ => Err(E::custom(format!(
                                "{text:?} is not one of {}",
                                [$($text),*].join(", ")
                            ))),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

named_enum! {
    /// `output.type`.
    OutputType {
        Stdout = "stdout",
        File = "file",
        Cloudwatch = "cloudwatch",
    }
}

/// `[output]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    #[serde(rename = "type")]
    pub kind: OutputType,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            kind: OutputType::Stdout,
        }
    }
}

/// `[file]`: the file output.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileSection {
    pub dir: Option<PathBuf>,
}

named_enum! {
    /// `cloudwatch.app_format`.
    AppFormat {
        /// The redacted line as it was.
        Line = "line",
        /// A JSON object with the event's metadata.
        Json = "json",
    }
}

/// `[cloudwatch]`: the CloudWatch Logs output.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CloudwatchSection {
    pub region: Option<String>,
    /// A URL such as `http://127.0.0.1:5000`.
    pub endpoint: Option<String>,
    pub log_group: String,
    pub access_stream: String,
    pub app_stream: String,
    pub stats_stream: String,
    pub auto_create: bool,
    pub retention_days: Option<i64>,
    pub flush_interval: Seconds,
    pub app_format: AppFormat,
    /// Metadata every event carries (file and CloudWatch outputs); by
    /// default none: the group and stream names say it.
    pub metadata: CommaList,
}

impl Default for CloudwatchSection {
    fn default() -> Self {
        CloudwatchSection {
            region: None,
            endpoint: None,
            log_group: "/ecs/{cluster}/{container_name}".into(),
            access_stream: "{task_id}/access".into(),
            app_stream: "{task_id}/{container_name}".into(),
            stats_stream: "{task_id}/stats".into(),
            auto_create: true,
            retention_days: None,
            flush_interval: Seconds(Duration::from_secs(1)),
            app_format: AppFormat::Line,
            metadata: CommaList::default(),
        }
    }
}

/// `[envoy]`: which lines are access records, and how to read them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EnvoySection {
    /// Task-definition container names whose lines may be access records.
    pub containers: CommaList,
    /// Envoy format strings (they contain commas: never split).
    pub formats: Vec<String>,
    pub routes: CommaList,
}

/// `[redact]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedactSection {
    /// `redact`, `drop` or `keep` (the parser's `QueryMode`).
    pub mode: String,
    pub allow: CommaList,
    /// Regular expressions (they contain commas: never split).
    pub patterns: Vec<String>,
}

impl Default for RedactSection {
    fn default() -> Self {
        RedactSection {
            mode: "redact".into(),
            allow: CommaList::default(),
            patterns: Vec::new(),
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Unset: 64 MiB, or less under a container memory limit
    /// (`crate::memory_limit`).
    pub memory: Option<Bytes>,
}

/// `[shutdown]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSection {
    pub drain: Seconds,
    pub grace: Seconds,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        ShutdownSection {
            drain: Seconds(Duration::from_secs(2)),
            grace: Seconds(Duration::from_secs(25)),
        }
    }
}

/// `[stats]`: per-route statistics.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StatsSection {
    pub enabled: bool,
    pub interval: Seconds,
    pub namespace: String,
    pub service: Option<String>,
    /// Sets, each a comma-separated list of dimensions (never split).
    pub dimensions: Vec<String>,
    pub metrics: CommaList,
    pub max_routes: usize,
    /// Whether EMF events carry the mergeable duration sketches.
    pub sketches: bool,
}

impl Default for StatsSection {
    fn default() -> Self {
        StatsSection {
            enabled: true,
            interval: Seconds(Duration::from_secs(60)),
            namespace: "Sluice".into(),
            service: None,
            dimensions: vec!["service,route".into(), "service".into()],
            metrics: CommaList(
                ["requests", "status_5xx", "duration_p99"]
                    .map(str::to_string)
                    .to_vec(),
            ),
            max_routes: 200,
            sketches: false,
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// An address; `""` for none.
    pub listen: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:2020".into(),
        }
    }
}

/// `[sampling]`: absent keys keep every access record.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingSection {
    pub rate: Option<f64>,
    pub slow: Option<Seconds>,
}

named_enum! {
    /// `spool.fsync`.
    FsyncMode {
        /// fsync before each ack.
        Batch = "batch",
        /// Leave writing back to the kernel.
        Off = "off",
    }
}

/// `[spool]`: the write-ahead journal of the CloudWatch output.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSection {
    /// Absent or `""`: no spool.
    pub dir: Option<String>,
    pub max_size: Bytes,
    pub segment_size: Bytes,
    pub fsync: FsyncMode,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            dir: None,
            max_size: Bytes(256 << 20),
            segment_size: Bytes(8 << 20),
            fsync: FsyncMode::Batch,
        }
    }
}

/// `[firelens]`: the Fluent Bit configuration ECS generates.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FirelensSection {
    /// The generated file; read when it exists. `""`: never.
    pub config: String,
}

/// Where the ECS agent mounts the config it generates for the router.
pub const FIRELENS_CONFIG: &str = "/fluent-bit/etc/fluent-bit.conf";

impl Default for FirelensSection {
    fn default() -> Self {
        FirelensSection {
            config: FIRELENS_CONFIG.into(),
        }
    }
}

/// `[multiline]`: stack traces joined into one event.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MultilineSection {
    pub enabled: bool,
    /// Built-in rule sets in use: java, python, node, go.
    pub rules: CommaList,
    /// A trace whose next line does not come is written after this.
    pub wait: Seconds,
    /// A trace is written when it reaches this size; the rest starts a new
    /// event.
    pub max_size: Bytes,
    /// Regular expressions of lines that start a trace of another format
    /// (they may contain commas: never split).
    pub start: Vec<String>,
    /// Regular expressions of lines that continue it.
    pub continuation: Vec<String>,
}

impl Default for MultilineSection {
    fn default() -> Self {
        MultilineSection {
            enabled: true,
            rules: CommaList(crate::multiline::BUILT_IN.map(str::to_string).to_vec()),
            wait: Seconds(Duration::from_secs(1)),
            max_size: Bytes(2 << 20),
            start: Vec::new(),
            continuation: Vec::new(),
        }
    }
}

/// Declares the sections once: the struct of all of them, their names, and
/// the reader that fills each from its raw keys.
macro_rules! sections {
    ($($name:ident: $ty:ty,)*) => {
        /// Every section as read (before validation).
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Sections {
            $(pub $name: $ty,)*
        }

        /// The section names, in the order the README lists them.
        pub const SECTION_NAMES: &[&str] = &[$(stringify!($name)),*];

        /// The keys `section` takes.
        pub fn keys_of(section: &str) -> Option<&'static [&'static str]> {
            match section {
                $(stringify!($name) => Some(super::layer::fields_of::<$ty>()),)*
                _ => None,
            }
        }

        impl Sections {
            /// Reads each section out of `raw`, pushing every error.
            pub fn read(
                raw: &mut std::collections::BTreeMap<String, super::layer::RawSection>,
                errors: &mut Vec<super::ConfigError>,
            ) -> Sections {
                Sections {
                    $($name: super::layer::read_section(
                        stringify!($name),
                        raw.remove(stringify!($name)).unwrap_or_default(),
                        errors,
                    ),)*
                }
            }
        }
    };
}

sections! {
    forward: ForwardSection,
    output: OutputSection,
    file: FileSection,
    cloudwatch: CloudwatchSection,
    envoy: EnvoySection,
    redact: RedactSection,
    limits: LimitsSection,
    shutdown: ShutdownSection,
    stats: StatsSection,
    admin: AdminSection,
    sampling: SamplingSection,
    spool: SpoolSection,
    firelens: FirelensSection,
    multiline: MultilineSection,
}
