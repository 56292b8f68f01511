//! The Fluent Forward protocol for Sluice, as FireLens and Docker's fluentd
//! log driver speak it: a sans-I/O decoder ([`ForwardCodec`]) that turns a
//! connection's bytes into [`Event`]s and tells when a chunk needs an ack,
//! and a tokio [`Server`] for TCP and unix-socket listeners around it.
//!
//! ```
//! use sluice_firelens::{ForwardCodec, Frame, Limits};
//!
//! // ["app-firelens-1", 1700000000, {"log": "hello"}] in msgpack.
//! let frame = b"\x93\xaeapp-firelens-1\xce\x65\x53\xf1\x00\x81\xa3log\xa5hello";
//! let mut codec = ForwardCodec::new(Limits::default());
//! codec.feed(frame);
//! let Some(Frame::Events { events, .. }) = codec.next_frame(0).unwrap() else { panic!() };
//! assert_eq!(events[0].tag, "app-firelens-1");
//! assert_eq!(events[0].time_ns, 1_700_000_000_000_000_000);
//! assert_eq!(events[0].record["log"], "hello");
//! ```

pub use crate::budget::{MemoryBudget, Reservation};
pub use crate::codec::{Event, ForwardCodec, Frame, FrameError, Limits};
pub use crate::handshake::{Handshake, Refusal};
pub use crate::record::PartialAssembler;
pub use crate::server::{now_ns, Counters, Delivery, Server, ServerConfig};

mod budget;
mod codec;
mod handshake;
pub mod msgpack;
mod record;
mod server;
