//! The server's ack contract against a real TCP socket: a chunk is acked only
//! after the pipeline accepted its delivery, and never when the delivery was
//! dropped unaccepted (the client then resends).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::{msgpack, Counters, Limits, Server, ServerConfig};
use tokio::sync::{mpsc, watch};

/// `["t", 1700000000, {"log": "x"}, {"chunk": CHUNK}]`.
fn frame(chunk: &str) -> Vec<u8> {
    let mut f = vec![0x94, 0xa1, b't', 0xce];
    f.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    f.extend_from_slice(&[0x81, 0xa3, b'l', b'o', b'g', 0xa1, b'x']);
    f.extend_from_slice(&[
        0x81,
        0xa5,
        b'c',
        b'h',
        b'u',
        b'n',
        b'k',
        0xa0 | chunk.len() as u8,
    ]);
    f.extend_from_slice(chunk.as_bytes());
    f
}

/// Reads one msgpack value with a deadline; `None` if nothing came.
fn read_reply(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).ok()?;
    let (value, _) = msgpack::read(&buf[..n]).ok()?;
    value
        .get("ack")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[test]
fn ack_waits_for_accept_and_never_follows_a_drop() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = ServerConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        unix: None,
        max_connections: 4,
        idle_timeout: Duration::from_secs(30),
        limits: Limits::default(),
        shared_key: None,
        self_hostname: "test".into(),
    };
    let server = runtime
        .block_on(Server::bind(config, Arc::new(Counters::default())))
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    runtime.spawn(server.run(tx, shutdown_rx));

    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&frame("first")).unwrap();
    let delivery = runtime.block_on(rx.recv()).unwrap();
    assert_eq!(delivery.events[0].record["log"], "x");
    // Not accepted yet: no ack may arrive.
    assert_eq!(read_reply(&mut client, Duration::from_millis(300)), None);
    delivery.accept();
    assert_eq!(
        read_reply(&mut client, Duration::from_secs(10)).as_deref(),
        Some("first")
    );

    // A delivery dropped without accept is never acked.
    client.write_all(&frame("second")).unwrap();
    let delivery = runtime.block_on(rx.recv()).unwrap();
    drop(delivery);
    assert_eq!(read_reply(&mut client, Duration::from_millis(300)), None);
}
