//! The tokio shell around [`ForwardCodec`]: TCP and unix-socket listeners,
//! one task per connection. The only file of this crate that knows tokio.
//!
//! A connection reads bytes, decodes frames, and hands each frame's events to
//! the pipeline through a bounded channel. When the channel is full the
//! connection waits, so it stops reading and TCP pushes back on the client:
//! nothing is dropped and nothing is buffered without bound. A frame that
//! asked for an ack (`chunk`) is acked only after the pipeline called
//! [`Delivery::accept`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use std::io::Read;

use crate::budget::{MemoryBudget, Reservation};
use crate::codec::{Event, ForwardCodec, Frame, FrameError, Limits};
use crate::handshake::{Handshake, Refusal};
use crate::msgpack;

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// TCP address, `None` for no TCP listener.
    pub tcp: Option<SocketAddr>,
    /// Unix socket path and file mode, `None` for no unix listener.
    pub unix: Option<(PathBuf, u32)>,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that sends nothing between frames for this long is
    /// closed. Keep it long: a quiet container is normal, and a client that
    /// writes into a connection the server closed can lose that write.
    pub idle_timeout: Duration,
    pub limits: Limits,
    /// When set, TCP clients must pass the `shared_key` handshake. The unix
    /// socket never asks: Docker's fluentd driver cannot answer, and the
    /// socket's file mode is its access control.
    pub shared_key: Option<String>,
    /// The name this server gives in the handshake.
    pub self_hostname: String,
    /// What decoded events may hold in memory until the pipeline is done
    /// with them, shared with the rest of the process.
    pub budget: Arc<MemoryBudget>,
}

/// One budget for the bytes of events on their way through the pipeline.
/// What an event costs in memory, roughly: its strings and a fixed overhead
/// per field for the map.
fn estimated_bytes(events: &[Event]) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len() + 24,
            serde_json::Value::Array(a) => a.iter().map(value).sum::<usize>() + 24,
            serde_json::Value::Object(m) => {
                m.iter()
                    .map(|(k, v)| k.len() + 48 + value(v))
                    .sum::<usize>()
                    + 24
            }
            _ => 16,
        }
    }
    events
        .iter()
        .map(|e| {
            e.tag.len()
                + 64
                + e.record
                    .iter()
                    .map(|(k, v)| k.len() + 48 + value(v))
                    .sum::<usize>()
        })
        .sum()
}

/// The events of one frame, on their way to the pipeline.
#[derive(Debug)]
pub struct Delivery {
    pub events: Vec<Event>,
    /// Resolved by [`Delivery::accept`]; dropping the delivery without
    /// accepting it means the chunk is never acked, so the client resends.
    accepted: Option<oneshot::Sender<()>>,
    /// The share of the memory budget these events hold until dropped.
    reserved: Option<Reservation>,
    /// The client asked for an ack (the frame had a `chunk` option).
    ack_wanted: bool,
}

impl Delivery {
    /// The delivery's share of the memory budget, for the stage that keeps
    /// its events after accepting it (the CloudWatch batchers).
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.reserved.take()
    }

    /// Whether the client waits for an ack of these events: a stage that
    /// makes them durable (the spool's fsync) must do so before accepting.
    pub fn wants_ack(&self) -> bool {
        self.ack_wanted
    }

    /// The pipeline has taken responsibility for every event: ack the chunk.
    pub fn accept(mut self) {
        if let Some(tx) = self.accepted.take() {
            let _ = tx.send(());
        }
    }
}

/// Counters the admin endpoint and logs report.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub frames: AtomicU64,
    pub events: AtomicU64,
    pub acks: AtomicU64,
    pub skipped_non_logs: AtomicU64,
    pub idle_timeouts: AtomicU64,
    /// TCP clients refused by the shared_key handshake.
    pub handshake_refusals: AtomicU64,
    /// Times a connection waited for the memory budget to hold the part of
    /// a frame it had read, before reading more.
    pub buffer_waits: AtomicU64,
    /// Connections closed because that wait passed the mid-frame timeout
    /// while partial frames held half the budget.
    pub buffer_timeouts: AtomicU64,
    /// Frames rejected, by [`FrameError::kind`].
    pub frame_errors: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Counters {
    fn frame_error(&self, kind: &'static str) {
        if let Ok(mut map) = self.frame_errors.lock() {
            *map.entry(kind).or_default() += 1;
        }
    }
}

/// At most one log line per kind of problem per interval, with the count of
/// the ones left out: a hostile or broken client must not flood the logs.
#[derive(Debug, Default)]
struct LogLimiter {
    last: std::sync::Mutex<std::collections::HashMap<&'static str, (std::time::Instant, u64)>>,
}

impl LogLimiter {
    const INTERVAL: Duration = Duration::from_secs(10);

    /// `Some(n)` when a line may be written now (`n` were suppressed since
    /// the last one), `None` when this one is suppressed.
    fn admit(&self, kind: &'static str) -> Option<u64> {
        let mut last = self.last.lock().ok()?;
        let now = std::time::Instant::now();
        match last.get_mut(kind) {
            Some((at, suppressed)) if now.duration_since(*at) < Self::INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// Bound listeners, ready to serve.
pub struct Server {
    tcp: Option<TcpListener>,
    unix: Option<UnixListener>,
    config: ServerConfig,
    counters: Arc<Counters>,
}

impl Server {
    /// Binds every configured listener, so that start-up fails loudly on a
    /// taken port or a bad socket path.
    pub async fn bind(config: ServerConfig, counters: Arc<Counters>) -> io::Result<Server> {
        let tcp = match config.tcp {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let unix = match &config.unix {
            Some((path, mode)) => Some(bind_unix(path, *mode)?),
            None => None,
        };
        Ok(Server {
            tcp,
            unix,
            config,
            counters,
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` turns true, then stops accepting; open
    /// connections finish the frame they are on and close.
    pub async fn run(self, pipeline: mpsc::Sender<Delivery>, shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let shared = Arc::new(Shared {
            pipeline,
            counters: self.counters.clone(),
            limits: self.config.limits,
            idle_timeout: self.config.idle_timeout,
            shutdown: shutdown.clone(),
            shared_key: self.config.shared_key.clone(),
            self_hostname: self.config.self_hostname.clone(),
            logs: LogLimiter::default(),
            budget: self.config.budget.clone(),
            undecoded_bytes: AtomicU64::new(0),
        });
        let tcp = self.tcp.map(|listener| {
            let (shared, permits, shutdown) = (shared.clone(), permits.clone(), shutdown.clone());
            tokio::spawn(async move {
                accept_loop(shutdown, permits, shared, true, || async {
                    listener.accept().await.map(|(s, _)| s)
                })
                .await
            })
        });
        let unix = self.unix.map(|listener| {
            let (shared, permits, shutdown) = (shared.clone(), permits.clone(), shutdown.clone());
            tokio::spawn(async move {
                accept_loop(shutdown, permits, shared, false, || async {
                    listener.accept().await.map(|(s, _)| s)
                })
                .await
            })
        });
        for task in [tcp, unix].into_iter().flatten() {
            let _ = task.await;
        }
        if let Some((path, _)) = &self.config.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A unix socket at `path` with file mode `mode`. A stale socket left by a
/// previous run is replaced; any other file there is an error.
fn bind_unix(path: &PathBuf, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    // Bound under a temporary name, given its mode, then renamed into
    // place: the socket is never reachable at `path` with the wider mode
    // the umask would give it.
    let mut staging = path.clone().into_os_string();
    staging.push(format!(".{}.tmp", std::process::id()));
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// What every connection task needs.
struct Shared {
    pipeline: mpsc::Sender<Delivery>,
    /// Budget held by every connection's undecoded bytes together.
    undecoded_bytes: AtomicU64,
    counters: Arc<Counters>,
    limits: Limits,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    shared_key: Option<String>,
    self_hostname: String,
    logs: LogLimiter,
    budget: Arc<MemoryBudget>,
}

async fn accept_loop<S, F, Fut>(
    mut shutdown: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    tcp: bool,
    accept: F,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<S>>,
{
    let mut backoff = Duration::from_millis(10);
    loop {
        // At the connection limit, wait for a slot before accepting more.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let stream = tokio::select! {
            s = accept() => s,
            _ = shutdown.changed() => return,
        };
        match stream {
            Ok(stream) => {
                backoff = Duration::from_millis(10);
                let shared = shared.clone();
                shared
                    .counters
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    shared
                        .counters
                        .connections_open
                        .fetch_add(1, Ordering::Relaxed);
                    serve_connection(stream, &shared, tcp).await;
                    shared
                        .counters
                        .connections_open
                        .fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep going.
                tracing::warn!(error = %e, "accepting a forward connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The wall clock as Unix nanoseconds: what the codec and the partial
/// assembler take as `now`, and the one clock the sidecar reads.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Why a connection ended, for the log line.
enum Closed {
    Eof,
    Idle,
    Shutdown,
    PipelineGone,
    /// A partial frame waited too long for the memory budget.
    Starved,
    Io(io::Error),
    Frame(FrameError),
    Refused(Refusal),
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shared: &Shared,
    tcp: bool,
) {
    let mut codec = ForwardCodec::new(shared.limits);
    let mut closed = None;
    if let (true, Some(key)) = (tcp, &shared.shared_key) {
        closed = handshake(&mut stream, &mut codec, shared, key).await.err();
    }
    let closed = match closed {
        Some(c) => c,
        None => connection_loop(&mut stream, codec, shared).await,
    };
    let counters = &shared.counters;
    let logs = &shared.logs;
    match closed {
        Closed::Eof | Closed::Shutdown | Closed::PipelineGone => {}
        Closed::Starved => {
            counters.buffer_timeouts.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = logs.admit("starved") {
                tracing::warn!(
                    suppressed,
                    "closing a forward connection: the frame it was sending waited too long for memory (limits.memory)"
                );
            }
        }
        Closed::Idle => {
            counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = logs.admit("idle") {
                tracing::info!(suppressed, "closing an idle forward connection");
            }
        }
        Closed::Io(e) => {
            if let Some(suppressed) = logs.admit("io") {
                tracing::info!(error = %e, suppressed, "forward connection failed");
            }
        }
        Closed::Frame(e) => {
            counters.frame_error(e.kind());
            if let Some(suppressed) = logs.admit(e.kind()) {
                tracing::warn!(
                    error = %e,
                    kind = e.kind(),
                    suppressed,
                    "closing a forward connection that sent a bad frame"
                );
            }
        }
        Closed::Refused(refusal) => {
            counters.handshake_refusals.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = logs.admit("handshake") {
                tracing::warn!(
                    reason = refusal.reason(),
                    suppressed,
                    "refused a forward client: handshake failed"
                );
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// The longest a connection may stall in the middle of a frame.
const MID_FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads more bytes into the codec: how many, or why the connection ends.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    codec: &mut ForwardCodec,
    buf: &mut [u8],
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<usize, Closed> {
    if *shutdown.borrow() {
        return Err(Closed::Shutdown);
    }
    // A client that stops in the middle of a frame (slow or stuck) gets far
    // less patience than one that is quiet between frames.
    let timeout = if codec.buffered() > 0 {
        shared.idle_timeout.min(MID_FRAME_TIMEOUT)
    } else {
        shared.idle_timeout
    };
    let read = tokio::select! {
        r = tokio::time::timeout(timeout, stream.read(buf)) => r,
        _ = shutdown.changed() => return Err(Closed::Shutdown),
    };
    match read {
        Err(_) => Err(Closed::Idle),
        Ok(Err(e)) => Err(Closed::Io(e)),
        Ok(Ok(0)) => Err(Closed::Eof),
        Ok(Ok(n)) => {
            codec.feed(&buf[..n]);
            Ok(n)
        }
    }
}

/// HELO, wait for the PING, answer PONG; `Err` when the client fails.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &mut ForwardCodec,
    shared: &Shared,
    key: &str,
) -> Result<(), Closed> {
    let hs = Handshake::new(
        key,
        &shared.self_hostname,
        fresh_nonce().map_err(Closed::Io)?,
    );
    stream.write_all(&hs.helo()).await.map_err(Closed::Io)?;
    let mut buf = vec![0u8; 4096];
    let mut shutdown = shared.shutdown.clone();
    loop {
        match codec.next_value(|ping| hs.answer(ping)) {
            Err(e) => return Err(Closed::Frame(e)),
            Ok(Some((pong, verdict))) => {
                stream.write_all(&pong).await.map_err(Closed::Io)?;
                return verdict.map_err(Closed::Refused);
            }
            Ok(None) => {
                read_more(stream, codec, &mut buf, shared, &mut shutdown).await?;
            }
        }
    }
}

/// 16 random bytes from the kernel for a handshake nonce.
fn fresh_nonce() -> io::Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}

async fn connection_loop<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut codec: ForwardCodec,
    shared: &Shared,
) -> Closed {
    let mut buf = vec![0u8; 64 << 10];
    let mut shutdown = shared.shutdown.clone();
    let mut pending = PendingAcks::new();
    let mut read_was_small = false;
    // The budget share paying for the bytes read but not decoded yet (the
    // start of a frame): one client's big frames count against
    // limits.memory like decoded events do, so many of them cannot take
    // more than the budget.
    let mut undecoded = Undecoded {
        share: None,
        total: &shared.undecoded_bytes,
    };
    loop {
        // Events of frames that ask for no ack, gathered into one delivery
        // per read: one queue operation and one wakeup of the output serve
        // them all (Docker sends one frame per line).
        let mut gathered: Vec<Event> = Vec::new();
        let mut wants_ack = false;
        loop {
            let frame = match codec.next_frame(now_ns()) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Closed::Frame(e),
            };
            undecoded.shrink_to(codec.buffered());
            let Frame::Events {
                events,
                chunk,
                skipped_non_logs,
            } = frame
            else {
                continue; // heartbeat
            };
            let counters = &shared.counters;
            counters.frames.fetch_add(1, Ordering::Relaxed);
            counters
                .events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            counters
                .skipped_non_logs
                .fetch_add(skipped_non_logs as u64, Ordering::Relaxed);
            let Some(chunk) = chunk else {
                if !gathered.is_empty() && gathered.len() + events.len() > GATHER_EVENTS {
                    let full = std::mem::take(&mut gathered);
                    if let Err(closed) = deliver(full, false, shared, &mut shutdown).await {
                        return closed;
                    }
                }
                if gathered.is_empty() {
                    gathered = events;
                } else {
                    gathered.extend(events);
                }
                continue;
            };
            wants_ack = true;
            // The frames before it go first: deliveries are accepted in
            // the order they are sent.
            let before = std::mem::take(&mut gathered);
            if let Err(closed) = deliver(before, false, shared, &mut shutdown).await {
                return closed;
            }
            match deliver(events, true, shared, &mut shutdown).await {
                // Acked once accepted, in order, while the connection goes
                // on reading: a client may send its next frames meanwhile
                // (the output may hold a frame's last lines while a stack
                // trace is open, until the next frame continues it).
                Ok(accepted) => pending.push_back((chunk, accepted)),
                Err(closed) => return closed,
            }
        }
        if let Err(closed) = deliver(gathered, false, shared, &mut shutdown).await {
            return closed;
        }
        if let Err(closed) = write_accepted_acks(stream, &mut pending, &shared.counters).await {
            return closed;
        }
        undecoded.shrink_to(codec.buffered());
        if let Err(closed) = undecoded
            .pay_for(codec.buffered(), shared, &mut shutdown)
            .await
        {
            return closed;
        }
        // A client that trickles frames without asking for acks (Docker's
        // driver: one frame per line) is read again only after a short
        // wait, so that one read, one delivery and one wakeup of the
        // output serve all it sent meanwhile. Not when it waits for an
        // ack, nor while it sends faster than one small read at a time.
        let linger = !wants_ack && pending.is_empty() && read_was_small;
        loop {
            let next_ack = async {
                match pending.front_mut() {
                    Some((_, accepted)) => accepted.await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                accepted = next_ack => {
                    let Some((chunk, _)) = pending.pop_front() else { continue };
                    if !accepted {
                        // Dropped unaccepted (shutting down): no ack, the
                        // client resends.
                        return Closed::PipelineGone;
                    }
                    if let Err(closed) = write_ack(stream, &chunk, &shared.counters).await {
                        return closed;
                    }
                }
                read = async {
                    heap_room(shared, codec.buffered() > 0, &mut shutdown).await?;
                    if linger {
                        tokio::time::sleep(LINGER).await;
                    }
                    read_more(stream, &mut codec, &mut buf, shared, &mut shutdown).await
                } => match read {
                    Ok(n) => {
                        read_was_small = n < SMALL_READ;
                        break;
                    }
                    Err(Closed::Io(e)) => return Closed::Io(e),
                    Err(closed) => {
                        // The client is done (or Sluice stops): the acks it
                        // waits for still go out, as their frames are
                        // accepted.
                        if let Err(io) = drain_acks(stream, &mut pending, &shared.counters).await {
                            return io;
                        }
                        return closed;
                    }
                },
            }
        }
    }
}

/// Events of frames without acks gathered into one delivery, at most.
const GATHER_EVENTS: usize = 1024;

/// A read shorter than this says the client trickles (see `linger`).
const SMALL_READ: usize = 16 << 10;

/// How long a trickling client's bytes are left to gather in the socket
/// before the next read: a delay no log reader notices (batches are sent
/// every few seconds), and 50 wakeups a second at most instead of one per
/// line.
const LINGER: Duration = Duration::from_millis(20);

/// Sends `events` into the pipeline (none: nothing is sent), after their
/// share of the memory budget; both wait while full: back-pressure. The
/// receiver resolves when the pipeline accepted them.
async fn deliver(
    events: Vec<Event>,
    ack_wanted: bool,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<oneshot::Receiver<()>, Closed> {
    let (accepted_tx, accepted_rx) = oneshot::channel();
    if events.is_empty() {
        // Nothing to accept: acked as soon as the frames before it.
        let _ = accepted_tx.send(());
        return Ok(accepted_rx);
    }
    let reserved = tokio::select! {
        r = shared.budget.reserve(estimated_bytes(&events)) => r,
        _ = shutdown.changed() => return Err(Closed::Shutdown),
    };
    let delivery = Delivery {
        events,
        accepted: Some(accepted_tx),
        reserved,
        ack_wanted,
    };
    if shared.pipeline.send(delivery).await.is_err() {
        return Err(Closed::PipelineGone);
    }
    Ok(accepted_rx)
}

/// Acks still owed on a connection: chunk ids, each with the signal that
/// its delivery was accepted.
type PendingAcks = VecDeque<(String, oneshot::Receiver<()>)>;

/// Writes, in order, the acks whose deliveries are accepted already.
async fn write_accepted_acks<S: AsyncWrite + Unpin>(
    stream: &mut S,
    pending: &mut PendingAcks,
    counters: &Counters,
) -> Result<(), Closed> {
    while let Some((_, accepted)) = pending.front_mut() {
        match accepted.try_recv() {
            Ok(()) => {}
            Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
            Err(oneshot::error::TryRecvError::Closed) => return Err(Closed::PipelineGone),
        }
        let Some((chunk, _)) = pending.pop_front() else {
            return Ok(());
        };
        write_ack(stream, &chunk, counters).await?;
    }
    Ok(())
}

/// Waits for every owed ack, in order, and writes it; stops at the first
/// delivery dropped unaccepted.
async fn drain_acks<S: AsyncWrite + Unpin>(
    stream: &mut S,
    pending: &mut PendingAcks,
    counters: &Counters,
) -> Result<(), Closed> {
    while let Some((chunk, accepted)) = pending.pop_front() {
        if accepted.await.is_err() {
            return Ok(());
        }
        write_ack(stream, &chunk, counters).await?;
    }
    Ok(())
}

/// Writes `{"ack": chunk}` and counts it.
async fn write_ack<S: AsyncWrite + Unpin>(
    stream: &mut S,
    chunk: &str,
    counters: &Counters,
) -> Result<(), Closed> {
    stream
        .write_all(&ack_frame(chunk))
        .await
        .map_err(Closed::Io)?;
    counters.acks.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A connection's budget share for the bytes it has read and not decoded
/// yet, counted in the total of all connections.
struct Undecoded<'a> {
    share: Option<Reservation>,
    total: &'a AtomicU64,
}

impl Undecoded<'_> {
    fn held(&self) -> usize {
        self.share.as_ref().map_or(0, Reservation::bytes)
    }

    /// Gives back what the share holds beyond `bytes`.
    fn shrink_to(&mut self, bytes: usize) {
        let before = self.held();
        if bytes == 0 {
            self.share = None;
        } else if let Some(held) = &mut self.share {
            if held.bytes() >= bytes + MemoryBudget::UNIT {
                drop(held.split(held.bytes() - bytes));
            }
        }
        self.total
            .fetch_sub((before - self.held()) as u64, Ordering::Relaxed);
    }

    /// Grows the share to cover `bytes`; until the budget has room this
    /// connection is not read. When the budget is held by decoded events
    /// (the output is behind, CloudWatch is slow or down) it waits as long
    /// as that takes. When partial frames themselves hold most of it, none
    /// of them may ever complete: after the mid-frame timeout the
    /// connection is closed (its client resends the unacked frame).
    async fn pay_for(
        &mut self,
        bytes: usize,
        shared: &Shared,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Closed> {
        let held = self.held();
        if bytes <= held {
            return Ok(());
        }
        let more = match shared.budget.try_reserve(bytes - held) {
            Some(r) => r,
            None => {
                shared.counters.buffer_waits.fetch_add(1, Ordering::Relaxed);
                let patience = shared.idle_timeout.min(MID_FRAME_TIMEOUT);
                let since = tokio::time::Instant::now();
                // One wait, kept across the checks: its place in the queue.
                let reserve = shared.budget.reserve(bytes - held);
                tokio::pin!(reserve);
                loop {
                    tokio::select! {
                        r = &mut reserve => match r {
                            Some(r) => break r,
                            None => return Err(Closed::PipelineGone),
                        },
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            let hogged = partial_frames_hog_the_budget(
                                self.total.load(Ordering::Relaxed),
                                shared.budget.total(),
                            );
                            if hogged && since.elapsed() >= patience {
                                return Err(Closed::Starved);
                            }
                        }
                        _ = shutdown.changed() => return Err(Closed::Shutdown),
                    }
                }
            }
        };
        self.total.fetch_add(more.bytes() as u64, Ordering::Relaxed);
        match &mut self.share {
            Some(held) => held.merge(more),
            None => self.share = Some(more),
        }
        Ok(())
    }
}

impl Drop for Undecoded<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held() as u64, Ordering::Relaxed);
    }
}

/// Waits while the process's heap holds the memory budget (see
/// [`MemoryBudget::heap_is_full`]): what was read is worked off and shipped
/// meanwhile, and TCP pushes back on the client. As with the budget's
/// shares, a connection in the middle of a frame gives up after the
/// mid-frame timeout only when partial frames hold half the budget.
async fn heap_room(
    shared: &Shared,
    mid_frame: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Closed> {
    if !shared.budget.heap_is_full() {
        return Ok(());
    }
    shared.counters.buffer_waits.fetch_add(1, Ordering::Relaxed);
    let patience = shared.idle_timeout.min(MID_FRAME_TIMEOUT);
    let since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEAP_RECHECK) => {}
            _ = shutdown.changed() => return Err(Closed::Shutdown),
        }
        if !shared.budget.heap_is_full() {
            return Ok(());
        }
        let hogged = partial_frames_hog_the_budget(
            shared.undecoded_bytes.load(Ordering::Relaxed),
            shared.budget.total(),
        );
        if mid_frame && hogged && since.elapsed() >= patience {
            return Err(Closed::Starved);
        }
    }
}

/// How often a connection waiting for heap room looks again: the heap has
/// no wake-up of its own, and waits are rare (bursts) and short.
const HEAP_RECHECK: Duration = Duration::from_millis(5);

/// Whether the connections' undecoded bytes hold so much of the budget
/// (half or more) that waiting for the output to free some may never be
/// enough.
fn partial_frames_hog_the_budget(undecoded: u64, budget: u64) -> bool {
    undecoded.saturating_mul(2) >= budget
}

/// `{"ack": chunk}` in msgpack.
fn ack_frame(chunk: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 10);
    out.push(0x81);
    msgpack::write_str(&mut out, b"ack");
    msgpack::write_str(&mut out, chunk.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack;

    #[test]
    fn log_limiter_admits_one_line_per_kind_per_interval() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.admit("a"), Some(0));
        assert_eq!(limiter.admit("a"), None);
        assert_eq!(limiter.admit("a"), None);
        assert_eq!(limiter.admit("b"), Some(0));
        if let Ok(mut last) = limiter.last.lock() {
            let earlier = std::time::Instant::now()
                .checked_sub(LogLimiter::INTERVAL)
                .expect("the clock is past one interval");
            last.entry("a").and_modify(|e| e.0 = earlier);
        }
        assert_eq!(limiter.admit("a"), Some(2));
    }

    #[test]
    fn only_partial_frames_holding_half_the_budget_can_starve() {
        assert!(!partial_frames_hog_the_budget(0, 64 << 20));
        assert!(!partial_frames_hog_the_budget((32 << 20) - 1, 64 << 20));
        assert!(partial_frames_hog_the_budget(32 << 20, 64 << 20));
        assert!(partial_frames_hog_the_budget(u64::MAX, 64 << 20));
    }

    #[test]
    fn ack_frames_decode_as_maps() {
        for len in [0, 31, 32, 255, 256, 70_000] {
            let chunk = "c".repeat(len);
            let frame = ack_frame(&chunk);
            let (value, n) = msgpack::read(&frame).unwrap();
            assert_eq!(n, frame.len());
            assert_eq!(
                value.get("ack").and_then(|v| v.as_str()),
                Some(chunk.as_str())
            );
        }
    }
}
