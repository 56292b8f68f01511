//! Property: events encoded in any forward mode, split into any pieces, decode
//! back to exactly the same events, in order, with the right acks.

use std::io::Write;

use proptest::prelude::*;
use serde_json::{Map, Value as Json};
use sluice_firelens::{ForwardCodec, Frame, Limits};

fn str_(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn time(out: &mut Vec<u8>, ns: i64, event_time: bool) {
    let secs = (ns / 1_000_000_000) as u32;
    if event_time {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&((ns % 1_000_000_000) as u32).to_be_bytes());
    } else {
        out.push(0xce);
        out.extend_from_slice(&secs.to_be_bytes());
    }
}

fn record(out: &mut Vec<u8>, fields: &[(String, String)]) {
    out.push(0xdf);
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    for (k, v) in fields {
        str_(out, k);
        str_(out, v);
    }
}

fn option(out: &mut Vec<u8>, chunk: &str, compressed: bool) {
    out.push(0x80 | if compressed { 2 } else { 1 });
    str_(out, "chunk");
    str_(out, chunk);
    if compressed {
        str_(out, "compressed");
        str_(out, "gzip");
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Message,
    Forward,
    ForwardV2,
    Packed,
    PackedGzip,
}

#[derive(Clone, Debug)]
struct Event {
    ns: i64,
    fields: Vec<(String, String)>,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let field = ("[a-z_]{1,12}", "\\PC{0,40}");
    let event = (
        0i64..4_000_000_000,
        0i64..1_000_000_000,
        prop::collection::vec(field, 1..6),
    )
        .prop_map(|(secs, nanos, fields)| {
            // Keys are unique within a record.
            let mut seen = std::collections::HashSet::new();
            let fields = fields
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect();
            Event {
                ns: secs * 1_000_000_000 + nanos,
                fields,
            }
        });
    prop::collection::vec(event, 1..20)
}

/// One frame carrying `events` in `mode`, asking for an ack of `chunk`.
fn encode(events: &[Event], mode: Mode, event_time: bool, chunk: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match mode {
        Mode::Message => {
            for (i, e) in events.iter().enumerate() {
                out.push(0x94);
                str_(&mut out, "tag");
                time(&mut out, e.ns, event_time);
                record(&mut out, &e.fields);
                option(&mut out, &format!("{chunk}-{i}"), false);
            }
        }
        Mode::Forward | Mode::ForwardV2 => {
            out.push(0x93);
            str_(&mut out, "tag");
            out.push(0xdd);
            out.extend_from_slice(&(events.len() as u32).to_be_bytes());
            for e in events {
                out.push(0x92);
                if matches!(mode, Mode::ForwardV2) {
                    out.push(0x92);
                    time(&mut out, e.ns, event_time);
                    out.push(0x80);
                } else {
                    time(&mut out, e.ns, event_time);
                }
                record(&mut out, &e.fields);
            }
            option(&mut out, chunk, false);
        }
        Mode::Packed | Mode::PackedGzip => {
            let mut entries = Vec::new();
            for e in events {
                entries.push(0x92);
                time(&mut entries, e.ns, event_time);
                record(&mut entries, &e.fields);
            }
            let gzip = matches!(mode, Mode::PackedGzip);
            if gzip {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&entries).unwrap();
                entries = gz.finish().unwrap();
            }
            out.push(0x93);
            str_(&mut out, "tag");
            out.push(0xc6);
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            out.extend_from_slice(&entries);
            option(&mut out, chunk, gzip);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises the count for a longer local run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_mode_any_split_decodes_to_the_same_events(
        events in events(),
        mode in prop_oneof![Just(Mode::Message), Just(Mode::Forward), Just(Mode::ForwardV2), Just(Mode::Packed), Just(Mode::PackedGzip)],
        event_time in any::<bool>(),
        piece in 1usize..300,
    ) {
        // Twice: a connection's second Forward frame is given room from
        // its first.
        let bytes = encode(&events, mode, event_time, "c").repeat(2);
        let mut codec = ForwardCodec::new(Limits::default());
        let mut decoded = Vec::new();
        let mut chunks = Vec::new();
        for part in bytes.chunks(piece) {
            codec.feed(part);
            while let Some(frame) = codec.next_frame(0).unwrap() {
                if let Frame::Events { events, chunk, .. } = frame {
                    decoded.extend(events);
                    chunks.extend(chunk);
                }
            }
        }
        prop_assert_eq!(codec.buffered(), 0);
        prop_assert_eq!(decoded.len(), 2 * events.len());
        for (got, want) in decoded.iter().zip(events.iter().chain(&events)) {
            let want_ns = if event_time { want.ns } else { want.ns / 1_000_000_000 * 1_000_000_000 };
            // Integer time 0 means "now" (0 here), so it reads back the same.
            prop_assert_eq!(got.time_ns, want_ns);
            prop_assert_eq!(&*got.tag, "tag");
            let want_record: Map<String, Json> = want.fields.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect();
            prop_assert_eq!(&got.record.to_json(), &want_record);
        }
        let want_chunks: Vec<String> = match mode {
            Mode::Message => (0..events.len()).map(|i| format!("c-{i}")).collect(),
            _ => vec!["c".to_string()],
        };
        let want_chunks = [want_chunks.clone(), want_chunks].concat();
        prop_assert_eq!(chunks, want_chunks);
    }
}
