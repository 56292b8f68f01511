//! Forward-protocol decode throughput: Message mode (one event per frame, as
//! Docker sends) and Forward frames of 1,000 Envoy lines (as Fluent Bit
//! sends), from bytes to events with JSON-compatible records.
//!
//! Run: cargo bench -p sluice-benches --bench forward

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_benches::forward::{docker_message_frames, fluent_bit_forward_frames};
use sluice_firelens::{ForwardCodec, Frame, Limits};

/// Decodes every frame in `bytes`; returns the number of events.
fn decode_all(bytes: &[u8]) -> usize {
    let mut codec = ForwardCodec::new(Limits::default());
    codec.feed(bytes);
    let mut events = 0;
    while let Ok(Some(frame)) = codec.next_frame(0) {
        if let Frame::Events { events: e, .. } = frame {
            events += black_box(e).len();
        }
    }
    events
}

fn forward(c: &mut Criterion) {
    let cases = [
        (
            "message_mode_10000_frames",
            docker_message_frames(10_000, 3),
            10_000u64,
        ),
        (
            "forward_mode_10_frames_of_1000",
            fluent_bit_forward_frames(10, 1_000, 5),
            10_000,
        ),
    ];
    for (name, bytes, events) in &cases {
        assert_eq!(decode_all(bytes) as u64, *events);
        let mut group = c.benchmark_group(format!("{name}_events"));
        group.throughput(Throughput::Elements(*events));
        group.bench_function("decode", |b| b.iter(|| decode_all(bytes)));
        group.finish();
        let mut group = c.benchmark_group(format!("{name}_bytes"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("decode", |b| b.iter(|| decode_all(bytes)));
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
