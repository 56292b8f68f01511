//! Any bytes as a forward connection's stream, fed in pieces whose sizes come
//! from the input too: decoding must never panic, and must end in frames,
//! "need more bytes" or an error; then the same bytes as a handshake PING.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_firelens::{ForwardCodec, Handshake, Limits, PartialAssembler};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_frame_bytes: 1 << 16,
        max_decompressed_bytes: 1 << 18,
        max_decoded_bytes: 1 << 20,
    };
    let mut codec = ForwardCodec::new(limits);
    let mut partials = PartialAssembler::new(1 << 10, 10);
    let mut joined = Vec::new();
    let step = usize::from(split).max(1);
    'feed: for piece in stream.chunks(step) {
        codec.feed(piece);
        loop {
            match codec.next_frame(1) {
                Ok(Some(sluice_firelens::Frame::Events { events, .. })) => {
                    for e in events {
                        partials.push(e, 2, &mut joined);
                        joined.clear();
                    }
                }
                Ok(Some(sluice_firelens::Frame::Heartbeat)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = partials.flush();
    let hs = Handshake::new("key", "host", [0; 16]);
    let mut codec = ForwardCodec::new(limits);
    codec.feed(stream);
    let _ = codec.next_value(|v| hs.answer(v));
});
