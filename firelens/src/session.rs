//! One forward connection's protocol state, sans-I/O: bytes and the time in,
//! batches of events, bytes to send and deadlines out. The tokio driver
//! (`server.rs`) owns the socket, the pipeline and the memory budget; this
//! owns everything else a connection decides:
//!
//! - the `shared_key` handshake (HELO first, then the PING's answer);
//! - frames, and which events travel together: events of frames that ask
//!   for no ack are gathered into one batch, a frame that asks for an ack
//!   is a batch of its own with an [`AckToken`];
//! - acks: `{"ack": chunk}` goes out once its batch is accepted, in the
//!   order the frames came, whatever order acceptances arrive in;
//! - time: how long a quiet client is given (less in the middle of a
//!   frame), and how long a client that trickles frames without acks is
//!   left to gather more before the next read ([`Session::read_after`]);
//! - the bytes read and not decoded yet ([`Session::undecoded`]), which the
//!   driver pays for from the memory budget.
//!
//! Nothing here reads a clock: every method that needs the time takes it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{Event, ForwardCodec, Frame, FrameError, Limits};
use crate::handshake::{Handshake, Refusal};
use crate::msgpack;

/// A connection's settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub limits: Limits,
    /// A client quiet between frames for this long is closed.
    pub idle_timeout: Duration,
    /// A client stalled in the middle of a frame gets at most this long.
    pub mid_frame_timeout: Duration,
    /// How long a trickling client's frames are left to gather before the
    /// next read.
    pub linger: Duration,
    /// A read shorter than this says the client trickles.
    pub small_read: usize,
    /// The most events gathered into one batch.
    pub gather_events: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(3600),
            mid_frame_timeout: Duration::from_secs(60),
            // Measured at 1,000 one-record frames a second (BENCHMARKS.md,
            // issue 14 fifth part): 1.8 % of a core at 50 ms, 1.2 % at
            // 250 ms, 1.0 % at 500 ms; each gathering run starts cold, so
            // fewer, larger ones cost less per record. 250 ms is a quarter
            // of the default CloudWatch flush interval, and only frames that
            // ask for no ack wait (in the kernel's socket buffer).
            linger: Duration::from_millis(250),
            small_read: 16 << 10,
            gather_events: 1024,
        }
    }
}

/// Names one batch whose acceptance the client waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AckToken(u64);

/// Events that travel to the pipeline together.
#[derive(Debug, PartialEq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// `Some` when the client waits for an ack of these events: pass it to
    /// [`Session::accepted`] once the pipeline took them.
    pub ack: Option<AckToken>,
}

/// Why a session ends.
#[derive(Debug, PartialEq)]
pub enum SessionError {
    /// The byte stream cannot be decoded (and has lost its boundaries).
    Frame(FrameError),
    /// The handshake failed; the PONG saying why is still to be sent.
    Refused(Refusal),
    /// Quiet for longer than the idle timeout (or the mid-frame timeout).
    Idle,
}

/// Where the handshake stands.
#[derive(Debug)]
enum Greeting {
    /// Waiting for the client's PING.
    AwaitingPing(Handshake),
    Done,
}

/// The most events a gathered batch makes room for before its first frame
/// is decoded (64 bytes each): room not filled is memory the budget does not
/// count.
const GATHER_ROOM_MAX: usize = 256;

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    codec: ForwardCodec,
    greeting: Greeting,
    /// Bytes for the client: HELO, PONG, acks.
    transmit: Vec<u8>,
    /// Events of frames without acks, not yet handed out.
    gathered: Vec<Event>,
    /// How many events the last gathered batch held (at most
    /// [`GATHER_ROOM_MAX`]): the next one starts with room for as many,
    /// so that a read of a few hundred one-record frames (as Docker sends
    /// them) does not grow and copy its vector eight times.
    gathered_last: usize,
    /// Batches ready for the pipeline, in order.
    ready: VecDeque<Batch>,
    next_token: u64,
    /// Acks owed, in the order of their frames: the chunk, and whether its
    /// batch was accepted.
    owed: VecDeque<(AckToken, String, bool)>,
    /// Since when the driver has been waiting for bytes.
    waiting_since: Option<Instant>,
    /// The last read was small and its frames asked for no ack.
    trickling: bool,
    last_read_at: Option<Instant>,
    /// The client closed its side: nothing more will be fed.
    finished: bool,
    counts: FrameCounts,
}

/// What the frames decoded since the last [`Session::take_counts`] held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    pub frames: u64,
    pub events: u64,
    /// Entries skipped because `fluent_signal` said they are not logs.
    pub skipped_non_logs: u64,
    /// Acks put out to transmit.
    pub acks: u64,
    /// Bytes read from the client.
    pub bytes: u64,
}

/// What a frame's decode left for the session to do.
enum Decoded {
    NeedBytes,
    Progress,
}

impl Session {
    /// A new connection. With a handshake, its HELO is the first thing to
    /// transmit.
    pub fn new(config: SessionConfig, handshake: Option<Handshake>) -> Session {
        let mut transmit = Vec::new();
        let greeting = match handshake {
            Some(hs) => {
                transmit.extend_from_slice(&hs.helo());
                Greeting::AwaitingPing(hs)
            }
            None => Greeting::Done,
        };
        Session {
            codec: ForwardCodec::new(config.limits),
            config,
            greeting,
            transmit,
            gathered: Vec::new(),
            gathered_last: 0,
            ready: VecDeque::new(),
            next_token: 0,
            owed: VecDeque::new(),
            waiting_since: None,
            trickling: false,
            last_read_at: None,
            finished: false,
            counts: FrameCounts::default(),
        }
    }

    /// The counts since the last call, for the server's counters.
    pub fn take_counts(&mut self) -> FrameCounts {
        std::mem::take(&mut self.counts)
    }

    /// Bytes read from the client at `now`.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        self.codec.feed(bytes);
        self.note_read(bytes.len(), now);
    }

    /// Where the driver reads the client's next bytes: room for at least
    /// `wanted` bytes at the end of the session's own buffer, so that they
    /// are not copied on their way in. [`Session::received`] follows.
    pub fn input_room(&mut self, wanted: usize) -> &mut [u8] {
        self.codec.room(wanted)
    }

    /// Gives back the input buffer's room beyond the bytes not decoded
    /// yet: call it before waiting for the client (or for memory), so that
    /// a waiting connection holds no read's room.
    pub fn shed_spare_room(&mut self) {
        self.codec.shed_spare_room();
    }

    /// `n` bytes were read into [`Session::input_room`] at `now`.
    pub fn received(&mut self, n: usize, now: Instant) {
        self.codec.filled(n);
        self.note_read(n, now);
    }

    /// A read of `n` bytes at `now`, however they reached the codec.
    fn note_read(&mut self, n: usize, now: Instant) {
        self.counts.bytes += n as u64;
        self.waiting_since = None;
        self.last_read_at = Some(now);
        self.trickling = n < self.config.small_read;
    }

    /// The client closed its side of the connection.
    pub fn finish(&mut self) {
        self.finished = true;
        self.waiting_since = None;
    }

    /// Decodes what was fed, with `unix_ns` standing in for events whose
    /// time is nil or 0. Afterwards [`Session::poll_batch`] hands out the
    /// batches and [`Session::take_transmit`] the PONG. On an error, the frames before the bad one are still handed out.
    pub fn decode(&mut self, unix_ns: i64) -> Result<(), SessionError> {
        let decoded = loop {
            match self.decode_one(unix_ns) {
                Ok(Decoded::NeedBytes) => break Ok(()),
                Ok(Decoded::Progress) => {}
                Err(e) => break Err(e),
            }
        };
        // What this read gathered goes out now: the pipeline sees a
        // trickling client's lines once per read.
        self.flush_gathered();
        decoded
    }

    fn decode_one(&mut self, unix_ns: i64) -> Result<Decoded, SessionError> {
        if let Greeting::AwaitingPing(hs) = &self.greeting {
            let answer = self
                .codec
                .next_value(|ping| hs.answer(ping))
                .map_err(SessionError::Frame)?;
            let Some((pong, verdict)) = answer else {
                return Ok(Decoded::NeedBytes);
            };
            self.transmit.extend_from_slice(&pong);
            verdict.map_err(SessionError::Refused)?;
            self.greeting = Greeting::Done;
            return Ok(Decoded::Progress);
        }
        let frame = self
            .codec
            .next_frame(unix_ns)
            .map_err(SessionError::Frame)?;
        let Some(Frame::Events {
            events,
            chunk,
            skipped_non_logs,
        }) = frame
        else {
            return Ok(match frame {
                None => Decoded::NeedBytes,
                Some(_) => Decoded::Progress, // a heartbeat
            });
        };
        self.counts.frames += 1;
        self.counts.events += events.len() as u64;
        self.counts.skipped_non_logs += skipped_non_logs as u64;
        let Some(chunk) = chunk else {
            if events.is_empty() {
                // Nothing to hand out, and no room to make for it.
                return Ok(Decoded::Progress);
            }
            if self.gathered.len() + events.len() > self.config.gather_events {
                self.flush_gathered();
            }
            if self.gathered.is_empty() && events.len() >= self.gathered_last {
                self.gathered = events;
            } else {
                if self.gathered.is_empty() {
                    self.gathered.reserve(self.gathered_last);
                }
                self.gathered.extend(events);
            }
            return Ok(Decoded::Progress);
        };
        // The frames before it go first: batches are accepted in order.
        self.flush_gathered();
        self.trickling = false;
        let token = AckToken(self.next_token);
        self.next_token += 1;
        if events.is_empty() {
            // Nothing to accept: acked as soon as the frames before it.
            self.owed.push_back((token, chunk, true));
            self.write_owed_acks();
        } else {
            self.owed.push_back((token, chunk, false));
            self.ready.push_back(Batch {
                events,
                ack: Some(token),
            });
        }
        Ok(Decoded::Progress)
    }

    fn flush_gathered(&mut self) {
        if !self.gathered.is_empty() {
            self.gathered_last = self.gathered.len().min(GATHER_ROOM_MAX);
            let events = std::mem::take(&mut self.gathered);
            self.ready.push_back(Batch { events, ack: None });
        }
    }

    /// The next batch for the pipeline, in order.
    pub fn poll_batch(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }

    /// The pipeline accepted the batch of `token`: its ack (and any acks
    /// after it that were only waiting for it) can go out.
    pub fn accepted(&mut self, token: AckToken) {
        if let Some(owed) = self.owed.iter_mut().find(|(t, _, _)| *t == token) {
            owed.2 = true;
        }
        self.write_owed_acks();
    }

    /// Acks whose batches were accepted, up to the first one still waiting.
    fn write_owed_acks(&mut self) {
        while let Some((_, chunk, true)) = self.owed.front() {
            self.transmit.extend_from_slice(&ack_frame(chunk));
            self.owed.pop_front();
            self.counts.acks += 1;
        }
    }

    /// Bytes to send to the client now (HELO, PONG, acks), if any.
    pub fn take_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// Acks the client still waits for.
    pub fn acks_owed(&self) -> usize {
        self.owed.len()
    }

    /// What the frame not complete yet holds: its bytes fed, and for a
    /// Forward frame decoded as it arrives, its entries so far and the room
    /// reserved for the rest. The driver pays for it from the budget, so
    /// that a client whose frame stops arriving cannot hold more than the
    /// budget allows.
    pub fn undecoded(&self) -> usize {
        self.codec.buffered() + self.codec.partial_frame_bytes()
    }

    /// Whether the client is done and owes nothing and is owed nothing:
    /// the connection can close.
    pub fn is_done(&self) -> bool {
        self.finished && self.owed.is_empty() && self.ready.is_empty()
    }

    /// Not before this may the driver read again: a client that trickles
    /// frames without acks is left to gather more in the socket, so that
    /// one read serves them all. `None`: read now.
    pub fn read_after(&self) -> Option<Instant> {
        let lingering = self.trickling && self.owed.is_empty();
        match (lingering, self.last_read_at) {
            (true, Some(at)) => Some(at + self.config.linger),
            _ => None,
        }
    }

    /// The driver starts waiting for the client's bytes at `now` (after
    /// any memory wait, which does not count against the client).
    pub fn waiting_for_bytes(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// When the client will have been waited for too long, while the driver
    /// waits for its bytes: the idle timeout, or the mid-frame timeout
    /// when a frame is half read.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let since = self.waiting_since?;
        let patience = if self.codec.buffered() > 0 {
            self.config.idle_timeout.min(self.config.mid_frame_timeout)
        } else {
            self.config.idle_timeout
        };
        Some(since + patience)
    }

    /// The time is `now`: `Err(Idle)` once the deadline of
    /// [`Session::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => Err(SessionError::Idle),
            _ => Ok(()),
        }
    }
}

/// `{"ack": chunk}` in msgpack.
pub(crate) fn ack_frame(chunk: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 10);
    out.push(0x81);
    msgpack::write_str(&mut out, b"ack");
    msgpack::write_str(&mut out, chunk.as_bytes());
    out
}

#[cfg(test)]
mod tests;
