//! The session without sockets or a clock: bytes and instants in, batches,
//! acks and deadlines out.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};

use super::*;

/// msgpack `str`.
fn str(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_str(&mut out, s.as_bytes());
    out
}

/// `["t", 1700000000, {"log": LOG}]`, with `{"chunk": CHUNK}` when given.
fn message(log: &str, chunk: Option<&str>) -> Vec<u8> {
    let mut f = vec![if chunk.is_some() { 0x94 } else { 0x93 }];
    f.extend(str("t"));
    f.push(0xce);
    f.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    f.push(0x81);
    f.extend(str("log"));
    f.extend(str(log));
    if let Some(chunk) = chunk {
        f.push(0x81);
        f.extend(str("chunk"));
        f.extend(str(chunk));
    }
    f
}

/// `["t", [], {"chunk": CHUNK}]`: a Forward frame of no entries.
fn empty_forward(chunk: &str) -> Vec<u8> {
    let mut f = vec![0x93];
    f.extend(str("t"));
    f.push(0x90);
    f.push(0x81);
    f.extend(str("chunk"));
    f.extend(str(chunk));
    f
}

fn logs(batch: &Batch) -> Vec<&str> {
    batch
        .events
        .iter()
        .map(|e| e.record.get_str("log").unwrap())
        .collect()
}

/// The acks in `bytes`, in order.
fn acks(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (value, len) = msgpack::read(rest).unwrap();
        out.push(value.get("ack").unwrap().as_str().unwrap().to_string());
        rest = &rest[len..];
    }
    out
}

fn session() -> Session {
    Session::new(SessionConfig::default(), None)
}

#[test]
fn frames_without_acks_travel_together_and_an_ack_frame_alone() {
    let now = Instant::now();
    let mut s = session();
    let mut bytes = message("a", None);
    bytes.extend(message("b", None));
    bytes.extend(message("c", Some("k1")));
    bytes.extend(message("d", None));
    s.feed(&bytes, now);
    s.decode(0).unwrap();
    let first = s.poll_batch().unwrap();
    assert_eq!((logs(&first), first.ack), (vec!["a", "b"], None));
    let second = s.poll_batch().unwrap();
    assert_eq!(logs(&second), vec!["c"]);
    assert!(second.ack.is_some());
    let third = s.poll_batch().unwrap();
    assert_eq!((logs(&third), third.ack), (vec!["d"], None));
    assert_eq!(s.poll_batch(), None);
    assert_eq!(
        s.take_counts(),
        FrameCounts {
            frames: 4,
            events: 4,
            skipped_non_logs: 0,
            acks: 0,
            bytes: bytes.len() as u64,
        }
    );
    assert_eq!(s.take_counts(), FrameCounts::default());
}

#[test]
fn gathering_stops_at_the_configured_count() {
    let mut s = Session::new(
        SessionConfig {
            gather_events: 2,
            ..SessionConfig::default()
        },
        None,
    );
    let bytes: Vec<u8> = ["a", "b", "c"]
        .iter()
        .flat_map(|l| message(l, None))
        .collect();
    s.feed(&bytes, Instant::now());
    s.decode(0).unwrap();
    assert_eq!(logs(&s.poll_batch().unwrap()), vec!["a", "b"]);
    assert_eq!(logs(&s.poll_batch().unwrap()), vec!["c"]);
    assert_eq!(s.poll_batch(), None);
}

#[test]
fn acks_go_out_in_frame_order_whatever_order_batches_are_accepted_in() {
    let mut s = session();
    let bytes: Vec<u8> = ["k1", "k2", "k3"]
        .iter()
        .flat_map(|k| message("x", Some(k)))
        .collect();
    s.feed(&bytes, Instant::now());
    s.decode(0).unwrap();
    let tokens: Vec<AckToken> = std::iter::from_fn(|| s.poll_batch())
        .map(|b| b.ack.unwrap())
        .collect();
    assert_eq!(s.acks_owed(), 3);
    s.accepted(tokens[1]);
    assert_eq!(s.take_transmit(), None);
    s.accepted(tokens[0]);
    assert_eq!(acks(&s.take_transmit().unwrap()), vec!["k1", "k2"]);
    s.accepted(tokens[2]);
    assert_eq!(acks(&s.take_transmit().unwrap()), vec!["k3"]);
    assert_eq!(s.acks_owed(), 0);
}

#[test]
fn a_chunk_of_no_events_is_acked_right_after_the_frames_before_it() {
    let mut s = session();
    let mut bytes = message("a", Some("k1"));
    bytes.extend(empty_forward("k2"));
    s.feed(&bytes, Instant::now());
    s.decode(0).unwrap();
    let batch = s.poll_batch().unwrap();
    assert_eq!(s.poll_batch(), None);
    assert_eq!(s.take_transmit(), None);
    s.accepted(batch.ack.unwrap());
    assert_eq!(acks(&s.take_transmit().unwrap()), vec!["k1", "k2"]);
}

#[test]
fn a_frame_split_anywhere_decodes_once_complete() {
    let bytes = message("split", Some("k"));
    for cut in 1..bytes.len() {
        let mut s = session();
        s.feed(&bytes[..cut], Instant::now());
        s.decode(0).unwrap();
        assert_eq!(s.poll_batch(), None);
        assert_eq!(s.undecoded(), cut);
        s.feed(&bytes[cut..], Instant::now());
        s.decode(0).unwrap();
        assert_eq!(logs(&s.poll_batch().unwrap()), vec!["split"]);
        assert_eq!(s.undecoded(), 0);
    }
}

#[test]
fn bad_bytes_end_the_session_and_the_frames_before_them_still_go_out() {
    let mut s = session();
    let mut bytes = message("good", None);
    bytes.extend([0x92, 0xc1, 0x00]);
    s.feed(&bytes, Instant::now());
    assert!(matches!(s.decode(0), Err(SessionError::Frame(_))));
    assert_eq!(logs(&s.poll_batch().unwrap()), vec!["good"]);
    assert_eq!(s.poll_batch(), None);
}

#[test]
fn a_quiet_client_times_out_and_one_stalled_mid_frame_sooner() {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(300),
        mid_frame_timeout: Duration::from_secs(60),
        ..SessionConfig::default()
    };
    let t0 = Instant::now();
    let mut s = Session::new(config, None);
    // No deadline until the driver waits for bytes: a wait for memory does
    // not count against the client.
    assert_eq!(s.poll_timeout(), None);
    s.waiting_for_bytes(t0);
    // Waiting again later keeps the first instant.
    s.waiting_for_bytes(t0 + Duration::from_secs(10));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    assert_eq!(s.handle_timeout(t0 + Duration::from_secs(299)), Ok(()));
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(300)),
        Err(SessionError::Idle)
    );

    let frame = message("x", None);
    s.feed(&frame[..3], t0 + Duration::from_secs(1));
    s.decode(0).unwrap();
    assert_eq!(s.poll_timeout(), None);
    let t1 = t0 + Duration::from_secs(2);
    s.waiting_for_bytes(t1);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    assert_eq!(
        s.handle_timeout(t1 + Duration::from_secs(60)),
        Err(SessionError::Idle)
    );
}

#[test]
fn a_trickling_client_without_acks_is_read_again_after_the_linger() {
    let t0 = Instant::now();
    let mut s = session();
    assert_eq!(s.read_after(), None);
    s.feed(&message("a", None), t0);
    s.decode(0).unwrap();
    assert_eq!(s.read_after(), Some(t0 + Duration::from_millis(250)));
    // A full read: the client is sending fast, read on.
    let big: Vec<u8> = (0..2000).flat_map(|_| message("line", None)).collect();
    assert!(big.len() >= SessionConfig::default().small_read);
    s.feed(&big, t0);
    s.decode(0).unwrap();
    assert_eq!(s.read_after(), None);
    // A client that waits for an ack is never kept waiting.
    s.feed(&message("b", Some("k")), t0);
    s.decode(0).unwrap();
    assert_eq!(s.read_after(), None);
}

#[test]
fn the_handshake_comes_first_and_frames_follow_a_right_ping() {
    let nonce = [7u8; 16];
    let hs = Handshake::new("secret", "sluice", nonce);
    let mut s = Session::new(SessionConfig::default(), Some(hs.clone()));
    assert_eq!(s.take_transmit(), Some(hs.helo()));
    let mut bytes = ping("client", "salt", "secret", &nonce);
    bytes.extend(message("after", Some("k")));
    s.feed(&bytes, Instant::now());
    s.decode(0).unwrap();
    let pong = s.take_transmit().unwrap();
    let (value, _) = msgpack::read(&pong).unwrap();
    let msgpack::Value::Array(items) = value else {
        panic!("a PONG is an array")
    };
    assert_eq!(items[0].as_str(), Some("PONG"));
    assert_eq!(items[1], msgpack::Value::Bool(true));
    assert_eq!(logs(&s.poll_batch().unwrap()), vec!["after"]);
}

#[test]
fn a_wrong_key_is_refused_with_a_pong_saying_why() {
    let nonce = [7u8; 16];
    let mut s = Session::new(
        SessionConfig::default(),
        Some(Handshake::new("secret", "sluice", nonce)),
    );
    s.take_transmit();
    let mut bytes = ping("client", "salt", "wrong", &nonce);
    bytes.extend(message("never", None));
    s.feed(&bytes, Instant::now());
    assert_eq!(
        s.decode(0),
        Err(SessionError::Refused(Refusal::SharedKeyMismatch))
    );
    let pong = s.take_transmit().unwrap();
    let (value, _) = msgpack::read(&pong).unwrap();
    let msgpack::Value::Array(items) = value else {
        panic!("a PONG is an array")
    };
    assert_eq!(items[1], msgpack::Value::Bool(false));
    assert_eq!(items[2].as_str(), Some("shared_key mismatch"));
    assert_eq!(s.poll_batch(), None);
}

#[test]
fn done_once_the_client_finished_and_every_ack_is_out() {
    let mut s = session();
    s.feed(&message("a", Some("k")), Instant::now());
    s.decode(0).unwrap();
    s.finish();
    let batch = s.poll_batch().unwrap();
    assert!(!s.is_done());
    s.accepted(batch.ack.unwrap());
    assert!(s.is_done());
    assert_eq!(acks(&s.take_transmit().unwrap()), vec!["k"]);
}

/// `["PING", hostname, salt, hex(sha512(salt + hostname + nonce + key)), "", ""]`.
fn ping(hostname: &str, salt: &str, key: &str, nonce: &[u8]) -> Vec<u8> {
    let mut digest = Sha512::new();
    digest.update(salt.as_bytes());
    digest.update(hostname.as_bytes());
    digest.update(nonce);
    digest.update(key.as_bytes());
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut out = vec![0x96];
    for part in ["PING", hostname, salt, &hex, "", ""] {
        out.extend(str(part));
    }
    out
}
