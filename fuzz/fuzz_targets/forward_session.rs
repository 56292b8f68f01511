//! Any bytes as one connection's stream through a `Session` (the sans-I/O
//! state machine the server drives), fed in pieces whose sizes come from
//! the input, with or without a shared_key handshake, every batch's ack
//! given or withheld as the input says: decoding, gathering, acks and
//! timeouts must never panic, and what the session holds stays bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_firelens::{Handshake, Limits, Session, SessionConfig};

const MAX_FRAME: usize = 1 << 16;
const MAX_DECODED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let config = SessionConfig {
        limits: Limits {
            max_frame_bytes: MAX_FRAME,
            max_decompressed_bytes: 1 << 18,
            max_decoded_bytes: MAX_DECODED,
        },
        gather_events: 8,
        ..SessionConfig::default()
    };
    let handshake = (flags & 1 == 1).then(|| Handshake::new("key", "host", [7; 16]));
    let mut session = Session::new(config, handshake);
    let step = usize::from(flags >> 1).max(1);
    let start = Instant::now();
    let mut held = Vec::new();
    for (n, piece) in stream.chunks(step).enumerate() {
        let now = start + Duration::from_millis(n as u64);
        session.feed(piece, now);
        let decoded = session.decode(1_700_000_000_000_000_000);
        while let Some(batch) = session.poll_batch() {
            // The pipeline takes every other batch at once, the rest later.
            if let Some(token) = batch.ack {
                if n % 2 == 0 {
                    session.accepted(token);
                } else {
                    held.push(token);
                }
            }
        }
        let _ = session.take_transmit();
        // What the session holds undecoded: at most a frame's bytes and
        // the piece read, and what a frame may decode to with the room
        // made for it before its bytes arrive (2 MiB of text and of fields).
        assert!(session.undecoded() <= MAX_FRAME + piece.len() + MAX_DECODED + (4 << 20));
        if decoded.is_err() {
            break;
        }
        session.waiting_for_bytes(now);
        let _ = session.read_after();
        let _ = session.poll_timeout();
    }
    for token in held {
        session.accepted(token);
    }
    let _ = session.take_transmit();
    session.finish();
    let _ = session.is_done();
    let _ = session.handle_timeout(start + Duration::from_secs(7200));
});
