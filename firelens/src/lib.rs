//! The Fluent Forward protocol for Sluice, as FireLens and Docker's fluentd
//! log driver speak it, sans-I/O: a decoder ([`ForwardCodec`]) that turns a
//! connection's bytes into [`Event`]s, and a [`Session`] that owns one
//! connection's protocol (the handshake, which events travel together, acks
//! in order, timeouts with the time passed in). With the `tokio` feature (on
//! by default), a [`Server`] drives sessions over TCP and unix-socket
//! listeners.
//!
//! ```
//! use sluice_firelens::{ForwardCodec, Frame, Limits};
//!
//! // ["app-firelens-1", 1700000000, {"log": "hello"}] in msgpack.
//! let frame = b"\x93\xaeapp-firelens-1\xce\x65\x53\xf1\x00\x81\xa3log\xa5hello";
//! let mut codec = ForwardCodec::new(Limits::default());
//! codec.feed(frame);
//! let Some(Frame::Events { events, .. }) = codec.next_frame(0).unwrap() else { panic!() };
//! assert_eq!(&*events[0].tag, "app-firelens-1");
//! assert_eq!(events[0].time_ns, 1_700_000_000_000_000_000);
//! assert_eq!(events[0].record.get_str("log"), Some("hello"));
//! ```

#[cfg(feature = "tokio")]
pub use crate::budget::{MemoryBudget, Reservation};
pub use crate::codec::{Event, ForwardCodec, Frame, FrameError, Limits};
pub use crate::fields::{FieldValue, Record};
pub use crate::handshake::{ForwardUser, Handshake, Refusal};
pub use crate::record::PartialAssembler;
#[cfg(feature = "tokio")]
pub use crate::server::{Counters, Delivery, Server, ServerConfig, TransportCounts};
pub use crate::session::{AckToken, Batch, FrameCounts, Session, SessionConfig, SessionError};

#[cfg(feature = "tokio")]
mod budget;
mod codec;
mod fields;
mod handshake;
pub mod msgpack;
mod record;
#[cfg(feature = "tokio")]
mod server;
mod session;

/// The wall clock as Unix nanoseconds: what the codec, the session and the
/// partial assembler take as `now`, and the one clock the sidecar reads.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
