//! The server's ack contract against a real TCP socket: a chunk is acked only
//! after the pipeline accepted its delivery, and never when the delivery was
//! dropped unaccepted (the client then resends).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::{msgpack, Counters, Limits, MemoryBudget, Server, ServerConfig};
use tokio::sync::{mpsc, watch};

/// A heap gauge a test sets: the static `$value` and the `fn` `$gauge`
/// that reads it (a budget's gauge is a plain `fn() -> usize`, so each test
/// that sets one needs a static of its own).
macro_rules! fake_heap {
    ($value:ident, $gauge:ident) => {
        static $value: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

        fn $gauge() -> usize {
            $value.load(std::sync::atomic::Ordering::Relaxed)
        }
    };
}

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

/// The next delivery, failing the test instead of hanging after 10 s.
fn next(
    runtime: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<sluice_firelens::Delivery>,
) -> sluice_firelens::Delivery {
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
        .expect("a delivery within 10 s")
        .expect("the server is running")
}

/// Waits until `done` holds, failing the test with `what` after 10 s.
fn wait_until(done: impl Fn() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A server on a free port with a pipeline channel of `queue` deliveries.
fn start(
    runtime: &tokio::runtime::Runtime,
    queue: usize,
    budget: Arc<MemoryBudget>,
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<sluice_firelens::Delivery>,
    watch::Sender<bool>,
) {
    start_counted(runtime, queue, budget, Arc::new(Counters::default()))
}

/// [`start`], with the server's counters given.
fn start_counted(
    runtime: &tokio::runtime::Runtime,
    queue: usize,
    budget: Arc<MemoryBudget>,
    counters: Arc<Counters>,
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<sluice_firelens::Delivery>,
    watch::Sender<bool>,
) {
    start_idle_after(runtime, queue, budget, counters, Duration::from_secs(30))
}

/// [`start_counted`], with the idle timeout given.
fn start_idle_after(
    runtime: &tokio::runtime::Runtime,
    queue: usize,
    budget: Arc<MemoryBudget>,
    counters: Arc<Counters>,
    idle_timeout: Duration,
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<sluice_firelens::Delivery>,
    watch::Sender<bool>,
) {
    let config = ServerConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        unix: None,
        max_connections: 4,
        idle_timeout,
        limits: Limits::default(),
        shared_key: None,
        users: Vec::new(),
        self_hostname: "test".into(),
        budget,
    };
    let server = runtime.block_on(Server::bind(config, counters)).unwrap();
    let addr = server.tcp_addr().unwrap();
    let (tx, rx) = mpsc::channel(queue);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    runtime.spawn(server.run(tx, shutdown_rx));
    (addr, rx, shutdown_tx)
}

#[test]
fn a_spent_memory_budget_holds_back_the_next_frame() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One KiB: a single small event fills it.
    let budget = Arc::new(MemoryBudget::new(1024));
    let (addr, mut rx, _shutdown) = start(&runtime, 16, budget.clone());
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&frame("a")).unwrap();
    let first = next(&runtime, &mut rx);
    assert_eq!(budget.in_use(), 1024);
    client.write_all(&frame("b")).unwrap();
    // The queue has room, but the budget has not: nothing more comes.
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err());
    // Accepting (or dropping) the first gives its share back.
    first.accept();
    let second = next(&runtime, &mut rx);
    assert_eq!(second.events[0].record.get_str("log"), Some("x"));
    second.accept();
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn ack_waits_for_accept_and_never_follows_a_drop() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, mut rx, _shutdown) = start(&runtime, 1, Arc::new(MemoryBudget::new(64 << 20)));

    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&frame("first")).unwrap();
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    // Not accepted yet: no ack may arrive.
    assert_eq!(read_reply(&mut client, Duration::from_millis(300)), None);
    delivery.accept();
    assert_eq!(
        read_reply(&mut client, Duration::from_secs(10)).as_deref(),
        Some("first")
    );

    // A delivery dropped without accept is never acked: the server closes
    // the connection instead (the client resends), and nothing came before.
    client.write_all(&frame("second")).unwrap();
    let delivery = next(&runtime, &mut rx);
    drop(delivery);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
}

// What the heap gauge of the next test reports.
fake_heap!(HEAP, heap);

#[test]
fn a_full_heap_stops_reading_until_memory_is_freed() {
    use std::sync::atomic::Ordering;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let budget = Arc::new(MemoryBudget::new(64 << 20).with_heap_gauge(heap));
    let counters = Arc::new(Counters::default());
    let (addr, mut rx, _shutdown) = start_counted(&runtime, 16, budget.clone(), counters.clone());
    // The heap holds the budget's share, and events on their way out hold
    // some of it (shipping them frees it): a new connection waits for room
    // before its first read, and says so in its counter.
    let on_their_way = budget.try_reserve(8 << 20).unwrap();
    HEAP.store(64 << 20, Ordering::Relaxed);
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&frame("held")).unwrap();
    wait_until(
        || counters.buffer_waits.load(Ordering::Relaxed) > 0,
        || "no wait for heap room".into(),
    );
    assert_eq!(counters.frames.load(Ordering::Relaxed), 0);
    // Memory is freed: the frame is read, delivered and acked.
    drop(on_their_way);
    HEAP.store(0, Ordering::Relaxed);
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    delivery.accept();
    assert_eq!(
        read_reply(&mut client, Duration::from_secs(10)).as_deref(),
        Some("held")
    );
    assert_eq!(counters.buffer_waits.load(Ordering::Relaxed), 1);
}

// What the heap gauge of the next test reports.
fake_heap!(IDLE_HEAP, idle_heap);

#[test]
fn a_wait_for_heap_room_does_not_count_against_the_client() {
    use std::sync::atomic::Ordering;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let budget = Arc::new(MemoryBudget::new(64 << 20).with_heap_gauge(idle_heap));
    let counters = Arc::new(Counters::default());
    let idle = Duration::from_millis(500);
    let (addr, mut rx, _shutdown) =
        start_idle_after(&runtime, 16, budget.clone(), counters.clone(), idle);
    let on_their_way = budget.try_reserve(8 << 20).unwrap();
    IDLE_HEAP.store(64 << 20, Ordering::Relaxed);
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&frame("patient")).unwrap();
    // Waiting for room four idle timeouts long: the client sent its frame
    // and is not idle.
    std::thread::sleep(4 * idle);
    drop(on_their_way);
    IDLE_HEAP.store(0, Ordering::Relaxed);
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    delivery.accept();
    assert_eq!(
        read_reply(&mut client, Duration::from_secs(10)).as_deref(),
        Some("patient")
    );
    assert_eq!(counters.idle_timeouts.load(Ordering::Relaxed), 0);
}

/// `["t", 1700000000, {"log": "y" x len}]`, the log as a str32.
fn big_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x93, 0xa1, b't', 0xce];
    f.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    f.extend_from_slice(&[0x81, 0xa3, b'l', b'o', b'g', 0xdb]);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend(std::iter::repeat_n(b'y', len));
    f
}

#[test]
fn the_start_of_a_frame_is_paid_for_from_the_budget() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let budget = Arc::new(MemoryBudget::new(1 << 20));
    let (addr, mut rx, _shutdown) = start(&runtime, 16, budget.clone());
    let big = big_frame(700 << 10);
    let (head, tail) = big.split_at(600 << 10);
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(head).unwrap();
    // Read but not decodable yet: its bytes hold the budget.
    wait_until(
        || budget.in_use() >= 600 << 10,
        || budget.in_use().to_string(),
    );
    assert!(budget.in_use() <= 601 << 10, "{}", budget.in_use());
    // Another client is not held up by it.
    let mut quick = TcpStream::connect(addr).unwrap();
    quick.write_all(&frame("q")).unwrap();
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    delivery.accept();
    assert_eq!(
        read_reply(&mut quick, Duration::from_secs(10)).as_deref(),
        Some("q")
    );
    // The rest of the frame: its undecoded share becomes the event's.
    slow.write_all(tail).unwrap();
    let delivery = next(&runtime, &mut rx);
    assert_eq!(
        delivery.events[0].record.get_str("log").map(str::len),
        Some(700 << 10)
    );
    assert!(budget.in_use() >= 700 << 10);
    delivery.accept();
    assert_eq!(budget.in_use(), 0);
}

// What the heap gauge of the next test reports.
fake_heap!(GATED_HEAP, gated_heap);

#[test]
fn frames_begun_before_the_heap_filled_finish_one_at_a_time() {
    use std::sync::atomic::Ordering;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Partial frames holding a quarter of this budget open the gate.
    let budget = Arc::new(MemoryBudget::new(2 << 20).with_heap_gauge(gated_heap));
    let counters = Arc::new(Counters::default());
    let (addr, mut rx, _shutdown) = start_counted(&runtime, 16, budget.clone(), counters.clone());
    // Two clients each send most of a big frame; both are read.
    let frames = [big_frame(400 << 10), big_frame(300 << 10)];
    let mut clients: Vec<TcpStream> = frames
        .iter()
        .map(|f| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&f[..f.len() - 10]).unwrap();
            c
        })
        .collect();
    let read = (400 << 10) + (300 << 10);
    wait_until(|| budget.in_use() >= read, || budget.in_use().to_string());
    // Now their partial frames are what fills the heap: nothing shipped
    // would free it. Each frame still finishes, and is delivered.
    GATED_HEAP.store(64 << 20, Ordering::Relaxed);
    for (client, frame) in clients.iter_mut().zip(&frames) {
        client.write_all(&frame[frame.len() - 10..]).unwrap();
    }
    let mut logs: Vec<usize> = (0..2)
        .map(|_| {
            let delivery = next(&runtime, &mut rx);
            let len = delivery.events[0].record.get_str("log").map(str::len);
            delivery.accept();
            len.unwrap()
        })
        .collect();
    logs.sort_unstable();
    assert_eq!(logs, [300 << 10, 400 << 10]);
    // A connection counts its frames once it has handed them over.
    let frames_counted = |n: u64| {
        wait_until(
            || counters.frames.load(Ordering::Relaxed) == n,
            || counters.frames.load(Ordering::Relaxed).to_string(),
        )
    };
    frames_counted(2);
    let waits = counters.buffer_waits.load(Ordering::Relaxed);
    // While events on their way out hold the budget, a frame begun after
    // the heap filled waits for room.
    let on_their_way = budget.try_reserve(1 << 20).unwrap();
    clients[0].write_all(&frame("later")).unwrap();
    wait_until(
        || counters.buffer_waits.load(Ordering::Relaxed) > waits,
        || "no wait for heap room".into(),
    );
    assert_eq!(counters.frames.load(Ordering::Relaxed), 2);
    // Shipped, they free nothing of the heap: the heap is held by what
    // shipping does not free, and the frame is read past the line.
    drop(on_their_way);
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    delivery.accept();
    frames_counted(3);
}

#[test]
fn past_the_connection_limit_a_client_waits_for_a_free_slot() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, mut rx, _shutdown) = start(&runtime, 16, Arc::new(MemoryBudget::new(64 << 20)));
    // max_connections is 4: four clients that send nothing hold every slot.
    let mut holders: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // The kernel accepts a fifth connection, but Sluice does not serve it.
    let mut fifth = TcpStream::connect(addr).unwrap();
    fifth.write_all(&frame("five")).unwrap();
    assert_eq!(read_reply(&mut fifth, Duration::from_millis(500)), None);
    assert!(rx.try_recv().is_err());
    // One slot frees: the fifth is served.
    drop(holders.pop());
    let delivery = next(&runtime, &mut rx);
    delivery.accept();
    assert_eq!(
        read_reply(&mut fifth, Duration::from_secs(10)).as_deref(),
        Some("five")
    );
}

/// A frame whose events would take more memory than the whole budget is
/// refused, not waited on: its entries of five bytes each claim an event
/// of about 90, and 400,000 of them (2 MB on the wire) could never be paid
/// for from a 1 MiB budget. Before, the connection waited for budget that
/// only its own frame held, for ever, with the budget spent. It is closed
/// with the frame error counted, the budget is whole again, and the next
/// client is served.
#[test]
fn a_frame_that_could_never_fit_the_budget_is_refused_not_waited_on() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let budget = Arc::new(MemoryBudget::new(1 << 20));
    let counters = Arc::new(Counters::default());
    let (addr, mut rx, _shutdown) = start_counted(&runtime, 16, budget.clone(), counters.clone());
    let n: u32 = 400_000;
    let mut bomb = vec![0x92, 0xa1, b't', 0xdd];
    bomb.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        bomb.extend_from_slice(&[0x92, 0x01, 0x81, 0xa0, 0xc0]);
    }
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&bomb).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    match client.read(&mut buf) {
        // Closed (reset when its unread bytes were still queued).
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection is closed, not {other:?}"),
    }
    wait_until(
        || {
            let errors = counters.frame_errors.lock().unwrap();
            errors.get("decoded_too_large") == Some(&1)
        },
        || format!("{:?}", counters.frame_errors.lock().unwrap()),
    );
    assert_eq!(budget.in_use(), 0);
    let mut next_client = TcpStream::connect(addr).unwrap();
    next_client.write_all(&frame("n")).unwrap();
    let delivery = next(&runtime, &mut rx);
    assert_eq!(delivery.events[0].record.get_str("log"), Some("x"));
    delivery.accept();
    assert_eq!(
        read_reply(&mut next_client, Duration::from_secs(10)).as_deref(),
        Some("n")
    );
}
