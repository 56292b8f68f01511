//! Envoy access-log parsing for Sluice: tells Envoy access records from every
//! other log line, reads them into a normalised [`AccessRecord`], redacts URL
//! query strings, and computes bounded-cardinality route keys.
//!
//! The crate is pure: no I/O, no clock, no threads. Records borrow from the
//! line they were parsed from and allocate only where unescaping or redaction
//! changes the text.
//!
//! - [`Classifier`] decides per line: Envoy's default format, ECS Service
//!   Connect TEXT (HTTP, HTTP2, gRPC, TCP) and JSON, Envoy `json_format`
//!   lines, and any user [`Format`] compiled from an Envoy format string.
//! - [`Redactor`] removes query values ([`QueryMode`]) and user patterns.
//! - [`RouteTable`] turns a record into `METHOD /users/{id}` keys.
//!
//! ```
//! use sluice_parser::{Classified, Classifier, Field, QueryMode, Redactor, RouteTable};
//!
//! let classifier = Classifier::new();
//! let line = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations/42?token=s3cret HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
//! let Classified::Access(mut record) = classifier.classify(line) else { panic!() };
//! assert_eq!(record.uint(Field::ResponseCode), Some(204));
//! assert_eq!(record.start_time_ms(), Some(1460751420310));
//!
//! Redactor::new(QueryMode::Redact).redact_record(&mut record);
//! assert_eq!(record.str(Field::Path), Some("/api/v1/locations/42?token=REDACTED"));
//! assert_eq!(RouteTable::new().route_key(&record), "POST /api/v1/locations/{id}");
//!
//! assert!(matches!(classifier.classify("Starting server on :8080"), Classified::App(_)));
//! ```

pub use crate::classify::{decode_line, trim_line_ending, Classified, Classifier};
pub use crate::error::{Error, ErrorKind};
pub use crate::field::Field;
pub use crate::format::{
    Format, BUILTIN_TEXT_FORMATS, ENVOY_DEFAULT, ENVOY_DETAILS, SERVICE_CONNECT_GRPC,
    SERVICE_CONNECT_HTTP, SERVICE_CONNECT_HTTP2, SERVICE_CONNECT_TCP,
};
pub use crate::record::{AccessRecord, Extra, Protocol, Role, Value};
pub use crate::redact::{QueryMode, Redactor, REDACTED};
pub use crate::route::{normalise_path, RouteTable, ID_PLACEHOLDER};
pub use crate::time::{utc_date, StrpTime, TimeRead};

mod classify;
mod error;
mod field;
mod format;
mod json;
pub mod json_out;
mod record;
mod redact;
mod route;
#[cfg(target_arch = "x86_64")]
mod sse2;
mod stops;
mod text;
mod time;
