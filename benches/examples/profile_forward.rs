//! Decodes Forward frames in a loop, for profilers.
//! Run: cargo run --release -p sluice-benches --example profile_forward -- [rounds] [message]
//! (`message`: Docker's one-record Message frames instead of Forward
//! frames of 1,000 entries.)
use sluice_benches::forward::fluent_bit_forward_frames;
use sluice_firelens::{ForwardCodec, Frame, Limits};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let bytes = fluent_bit_forward_frames(10, 1_000, 5);
    let docker = sluice_benches::forward::docker_message_frames(10_000, 3);
    println!(
        "forward: {} bytes an event; message mode: {} bytes a frame",
        bytes.len() / 10_000,
        docker.len() / 10_000
    );
    let message_mode = std::env::args().nth(2).as_deref() == Some("message");
    let bytes = if message_mode { docker } else { bytes };
    // One codec for every round, as one connection keeps one: a codec made
    // per round zeroed its 5 MB buffer each time (about 500 instructions
    // an event, none of them decoding).
    let mut codec = ForwardCodec::new(Limits::default());
    let start = std::time::Instant::now();
    let mut events = 0;
    for _ in 0..rounds {
        codec.feed(&bytes);
        while let Ok(Some(frame)) = codec.next_frame(0) {
            if let Frame::Events { events: e, .. } = frame {
                events += std::hint::black_box(e).len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{events} events, {:.0} events/s", events as f64 / secs);
}
