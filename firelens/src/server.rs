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
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use std::io::Read;

use crate::budget::{MemoryBudget, Reservation};
use crate::codec::{Event, FrameError, Limits};
use crate::handshake::{ForwardUser, Handshake, Refusal};
use crate::now_ns;
use crate::session::{AckToken, FrameCounts, Session, SessionConfig, SessionError};

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
    /// With a `shared_key`, clients must also give one of these names and
    /// passwords (Fluent Bit's `security.users`).
    pub users: Vec<ForwardUser>,
    /// The name this server gives in the handshake.
    pub self_hostname: String,
    /// What decoded events may hold in memory until the pipeline is done
    /// with them, shared with the rest of the process.
    pub budget: Arc<MemoryBudget>,
}

/// One budget for the bytes of events on their way through the pipeline.
/// What an event costs in memory, roughly: its strings and a fixed overhead
/// per field.
fn estimated_bytes(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| e.tag.len() + 64 + e.record.estimated_bytes())
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
    /// Events from an input that takes no acks (Fluent Bit's tcp input),
    /// holding `reserved` of the memory budget until they are written.
    pub fn without_ack(events: Vec<Event>, reserved: Option<Reservation>) -> Delivery {
        Delivery {
            events,
            accepted: None,
            reserved,
            ack_wanted: false,
        }
    }

    /// Events from an input that waits to know they were accepted (the
    /// tail input with a `DB`, which saves a file's offset only then): the
    /// receiver resolves on [`Delivery::accept`], and errs if the delivery
    /// is dropped instead. As for a client's ack, a stage that makes events
    /// durable (the spool) does so before accepting them.
    pub fn with_ack(
        events: Vec<Event>,
        reserved: Option<Reservation>,
    ) -> (Delivery, oneshot::Receiver<()>) {
        let (accepted, receiver) = oneshot::channel();
        let delivery = Delivery {
            events,
            accepted: Some(accepted),
            reserved,
            ack_wanted: true,
        };
        (delivery, receiver)
    }

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
    /// Events and bytes read over TCP, and over the unix socket (a FireLens
    /// configuration's two forward inputs, counted apart as Fluent Bit
    /// counts its inputs).
    pub tcp: TransportCounts,
    pub unix: TransportCounts,
}

/// What one transport's clients sent.
#[derive(Debug, Default)]
pub struct TransportCounts {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counters {
    fn count(&self, counts: FrameCounts, tcp: bool) {
        let transport = if tcp { &self.tcp } else { &self.unix };
        transport.events.fetch_add(counts.events, Ordering::Relaxed);
        transport.bytes.fetch_add(counts.bytes, Ordering::Relaxed);
        self.frames.fetch_add(counts.frames, Ordering::Relaxed);
        self.events.fetch_add(counts.events, Ordering::Relaxed);
        self.skipped_non_logs
            .fetch_add(counts.skipped_non_logs, Ordering::Relaxed);
        self.acks.fetch_add(counts.acks, Ordering::Relaxed);
    }

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
            session: SessionConfig {
                // No frame may decode to more than the whole budget: it
                // could never be paid for.
                limits: Limits {
                    max_decoded_bytes: self
                        .config
                        .limits
                        .max_decoded_bytes
                        .min(self.config.budget.total() as usize),
                    ..self.config.limits
                },
                idle_timeout: self.config.idle_timeout,
                mid_frame_timeout: MID_FRAME_TIMEOUT,
                ..SessionConfig::default()
            },
            shutdown: shutdown.clone(),
            shared_key: self.config.shared_key.clone(),
            users: Arc::from(self.config.users.as_slice()),
            self_hostname: self.config.self_hostname.clone(),
            logs: LogLimiter::default(),
            budget: self.config.budget.clone(),
            undecoded_bytes: AtomicU64::new(0),
            memory_gate: Arc::new(Semaphore::new(1)),
            room_queue: Arc::new(Semaphore::new(1)),
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
    /// Every connection's protocol settings.
    session: SessionConfig,
    shutdown: watch::Receiver<bool>,
    shared_key: Option<String>,
    users: Arc<[ForwardUser]>,
    self_hostname: String,
    logs: LogLimiter,
    budget: Arc<MemoryBudget>,
    /// Where connections in the middle of a frame queue when they find
    /// the heap full, one permit (see [`frame_room`]).
    memory_gate: Arc<Semaphore>,
    /// Where connections between frames queue when they find the heap
    /// full, one permit: its holder alone looks for room, the others sleep.
    room_queue: Arc<Semaphore>,
}

/// A connection's byte stream. Readiness is awaited before a buffer is
/// given to a read, so that a connection waiting for its client holds no
/// read's room.
trait ClientStream: AsyncWrite + Unpin + Send + Sync {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ClientStream for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }
}

impl ClientStream for UnixStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        UnixStream::readable(self)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::try_read(self, buf)
    }
}

async fn accept_loop<S, F, Fut>(
    mut shutdown: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    tcp: bool,
    accept: F,
) where
    S: ClientStream + 'static,
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

async fn serve_connection<S: ClientStream>(mut stream: S, shared: &Shared, tcp: bool) {
    let closed = match greeting(shared, tcp) {
        Ok(handshake) => {
            let session = Session::new(shared.session.clone(), handshake);
            drive(&mut stream, session, shared, tcp).await
        }
        Err(e) => Closed::Io(e),
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

/// The least room a read is given in the connection's buffer.
const READ_BYTES: usize = 64 << 10;

/// The longest a connection may stall in the middle of a frame.
const MID_FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// The handshake a TCP client must pass when a `shared_key` is set, with a
/// fresh nonce; the unix socket never asks.
fn greeting(shared: &Shared, tcp: bool) -> io::Result<Option<Handshake>> {
    match (tcp, &shared.shared_key) {
        (true, Some(key)) => {
            let handshake = Handshake::new(key, &shared.self_hostname, fresh_nonce()?);
            if shared.users.is_empty() {
                Ok(Some(handshake))
            } else {
                Ok(Some(
                    handshake.with_users(shared.users.clone(), fresh_nonce()?),
                ))
            }
        }
        _ => Ok(None),
    }
}

/// 16 random bytes from the kernel for a handshake nonce.
fn fresh_nonce() -> io::Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}

/// What a connection waits for next, besides acceptances and shutdown.
enum Wait {
    /// In the middle of a frame, the heap holds the memory budget: read
    /// nothing until it frees, or until this connection may finish its
    /// frame past the line (see [`frame_room`]).
    HeapRoom,
    /// A trickling client's frames gather in the socket until then.
    Linger(Instant),
    /// Bytes from the client, until the session's deadline.
    Bytes(Instant),
}

/// Runs one connection: the socket and the pipeline for `session`, which
/// decides everything else. Returns why the connection ended, once the
/// acks it still owed are out (or cannot be).
async fn drive<S: ClientStream>(
    stream: &mut S,
    mut session: Session,
    shared: &Shared,
    tcp: bool,
) -> Closed {
    let mut shutdown = shared.shutdown.clone();
    // The signals that batches the client waits for were accepted, in order.
    let mut acceptances: VecDeque<(AckToken, oneshot::Receiver<()>)> = VecDeque::new();
    // The budget share paying for the bytes read but not decoded yet (the
    // start of a frame): one client's big frames count against
    // limits.memory like decoded events do, so many of them cannot take
    // more than the budget.
    let mut undecoded = Undecoded {
        share: None,
        total: &shared.undecoded_bytes,
    };
    // Why reading stopped; the connection closes once no ack is owed.
    let mut ended: Option<Closed> = None;
    // Held from when this connection was let past a full heap until a
    // frame is done (see `frame_room`).
    let mut gate: Option<OwnedSemaphorePermit> = None;
    loop {
        let decoded = session.decode(now_ns());
        // A frame decoded gives back its undecoded share before its events
        // take theirs: a frame as big as half the budget must not need
        // twice its size.
        undecoded.shrink_to(session.undecoded());
        while let Some(batch) = session.poll_batch() {
            let wants_ack = batch.ack.is_some();
            match deliver(batch.events, wants_ack, shared, &mut shutdown).await {
                Ok(accepted) => {
                    if let Some(token) = batch.ack {
                        acceptances.push_back((token, accepted));
                    }
                }
                Err(closed) => return closed,
            }
        }
        while let Some((token, accepted)) = acceptances.front_mut() {
            match accepted.try_recv() {
                Ok(()) => session.accepted(*token),
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => return Closed::PipelineGone,
            }
            acceptances.pop_front();
        }
        if let Some(bytes) = session.take_transmit() {
            if let Err(e) = stream.write_all(&bytes).await {
                return Closed::Io(e);
            }
        }
        // Frames decoded and acks written in this turn.
        let counts = session.take_counts();
        if counts.frames > 0 {
            // The frame it was let past the line for is done: the next
            // connection in the queue may go.
            gate = None;
        }
        shared.counters.count(counts, tcp);
        match decoded {
            Ok(()) => {}
            Err(SessionError::Frame(e)) => return Closed::Frame(e),
            Err(SessionError::Refused(r)) => return Closed::Refused(r),
            Err(SessionError::Idle) => return Closed::Idle,
        }
        if let Some(closed) = ended.take() {
            // The client is done (or Sluice stops): the acks it waits for
            // still go out, as their batches are accepted.
            let Some((token, accepted)) = acceptances.pop_front() else {
                return closed;
            };
            if accepted.await.is_err() {
                // Dropped unaccepted (shutting down): no ack, the client
                // resends.
                return closed;
            }
            session.accepted(token);
            ended = Some(closed);
            continue;
        }
        let partial = session.undecoded();
        undecoded.shrink_to(partial);
        if let Err(closed) = undecoded.pay_for(partial, shared, &mut shutdown).await {
            return closed;
        }
        let now = Instant::now();
        let mid_frame = partial > 0;
        let wait = if mid_frame && gate.is_none() && shared.budget.heap_is_full() {
            Wait::HeapRoom
        } else if let Some(at) = session.read_after().filter(|at| *at > now) {
            Wait::Linger(at)
        } else {
            session.waiting_for_bytes(now);
            Wait::Bytes(
                session
                    .poll_timeout()
                    .unwrap_or(now + shared.session.idle_timeout),
            )
        };
        let next_acceptance = async {
            match acceptances.front_mut() {
                Some((token, accepted)) => accepted.await.ok().map(|()| *token),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = next_acceptance => match accepted {
                Some(token) => {
                    acceptances.pop_front();
                    session.accepted(token);
                }
                None => return Closed::PipelineGone,
            },
            _ = shutdown.changed() => ended = Some(Closed::Shutdown),
            outcome = async {
                match wait {
                    Wait::HeapRoom => {
                        session.shed_spare_room();
                        frame_room(shared).await
                    }
                    Wait::Linger(at) => {
                        session.shed_spare_room();
                        tokio::time::sleep_until(at.into()).await;
                        Ok(Outcome::NoRead)
                    }
                    Wait::Bytes(deadline) => {
                        let ready = bytes_ready(stream, &mut session);
                        match tokio::time::timeout_at(deadline.into(), ready).await {
                            // A wait for heap room after this does not
                            // count against the client.
                            Ok(Ok(())) => read_ready(stream, &mut session, shared, gate.is_some()).await,
                            Ok(Err(e)) => Err(Closed::Io(e)),
                            Err(_) => Ok(Outcome::NoRead),
                        }
                    }
                }
            } => match outcome {
                Ok(Outcome::Read(0)) => {
                    session.finish();
                    ended = Some(Closed::Eof);
                }
                Ok(Outcome::Read(n)) => session.received(n, Instant::now()),
                Ok(Outcome::Gate(permit)) => gate = Some(permit),
                Ok(Outcome::NoRead) => {
                    if let Err(SessionError::Idle) = session.handle_timeout(Instant::now()) {
                        ended = Some(Closed::Idle);
                    }
                }
                Err(Closed::Io(e)) => return Closed::Io(e),
                Err(closed) => ended = Some(closed),
            },
        }
        if *shutdown.borrow() && ended.is_none() {
            ended = Some(Closed::Shutdown);
        }
    }
}

/// Sends `events` into the pipeline after their share of the memory
/// budget; both wait while full: back-pressure. The receiver resolves when
/// the pipeline accepted them.
async fn deliver(
    events: Vec<Event>,
    ack_wanted: bool,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<oneshot::Receiver<()>, Closed> {
    let (accepted_tx, accepted_rx) = oneshot::channel();
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
        // What the budget could still give this connection: a wait for
        // more would never end (the wait takes what frees meanwhile, and
        // nothing else frees this connection's own share).
        let most = (shared.budget.total() as usize).saturating_sub(held);
        if most == 0 {
            return Err(Closed::Frame(FrameError::DecodedTooLarge {
                max: shared.budget.total() as usize,
            }));
        }
        let wanted = (bytes - held).min(most);
        let more = match shared.budget.try_reserve(wanted) {
            Some(r) => r,
            None => {
                shared.counters.buffer_waits.fetch_add(1, Ordering::Relaxed);
                let patience = shared.session.idle_timeout.min(MID_FRAME_TIMEOUT);
                let since = tokio::time::Instant::now();
                // One wait, kept across the checks: its place in the queue.
                let reserve = shared.budget.reserve(wanted);
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

/// What a connection's wait ended with.
enum Outcome {
    /// Bytes read into the session (0: the client closed its side).
    Read(usize),
    /// The memory gate, to read past a full heap until the frame this
    /// connection is in the middle of is done.
    Gate(OwnedSemaphorePermit),
    /// Nothing read: the deadline passed, or the heap filled.
    NoRead,
}

/// Waits until the client's bytes can be read. A connection the client
/// keeps waiting holds no read's room meanwhile.
async fn bytes_ready<S: ClientStream>(stream: &S, session: &mut Session) -> io::Result<()> {
    let mut ready = std::pin::pin!(stream.readable());
    let at_once = std::future::poll_fn(|cx| Poll::Ready(ready.as_mut().poll(cx))).await;
    match at_once {
        Poll::Ready(ready) => ready,
        Poll::Pending => {
            session.shed_spare_room();
            ready.await
        }
    }
}

/// Reads the client's bytes, which are ready, into the session; the
/// read's room is taken only now. Past a full heap (it may have filled
/// while this connection waited) a connection between frames reads only
/// after [`read_room`]; one in the middle of a frame goes to
/// [`frame_room`] instead, unless it holds the memory gate.
async fn read_ready<S: ClientStream>(
    stream: &S,
    session: &mut Session,
    shared: &Shared,
    holds_gate: bool,
) -> Result<Outcome, Closed> {
    let heap_full = !holds_gate && shared.budget.heap_is_full();
    if heap_full && session.undecoded() > 0 {
        return Ok(Outcome::NoRead);
    }
    // Kept through the read: the next in the queue looks for room after it.
    let _first_in_queue = if heap_full {
        session.shed_spare_room();
        Some(read_room(shared).await?)
    } else {
        None
    };
    match stream.try_read(session.input_room(READ_BYTES)) {
        Ok(n) => Ok(Outcome::Read(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Outcome::NoRead),
        Err(e) => Err(Closed::Io(e)),
    }
}

/// For a connection between frames with bytes to read, waits while the
/// process's heap holds the memory budget (see
/// [`MemoryBudget::heap_is_full`]): what was read is worked off and shipped
/// meanwhile, and TCP pushes back on the client. Such connections queue,
/// and only the first looks for room; it keeps its place (the permit
/// returned) through its read.
///
/// Waiting is right while what was read and not shipped yet holds the
/// budget: shipping frees it, or finishing frames does (see
/// [`frame_room`]). When the whole pipeline holds next to nothing, the
/// heap is held by what neither frees (the statistics of many containers,
/// say), and waiting could last for ever: the first in the queue reads on
/// past the line, as long as what was read since holds little.
async fn read_room(shared: &Shared) -> Result<OwnedSemaphorePermit, Closed> {
    let first = first_in_queue(shared, &shared.room_queue).await?;
    let total = shared.budget.total();
    while shared.budget.heap_is_full() && !is_little(shared.budget.in_use(), total) {
        tokio::time::sleep(HEAP_RECHECK).await;
    }
    Ok(first)
}

/// For a connection in the middle of a frame, waits as [`read_room`]
/// does, in a queue of its own (the memory gate), so that it never waits
/// behind connections that are not. When shipping frees little, frames
/// begun before the heap filled may be what fills it, each waiting for
/// the others to finish: the first in the queue then takes the gate along
/// and finishes its frame past the line, one connection at a time.
async fn frame_room(shared: &Shared) -> Result<Outcome, Closed> {
    let first = first_in_queue(shared, &shared.memory_gate).await?;
    loop {
        if !shared.budget.heap_is_full() {
            return Ok(Outcome::NoRead);
        }
        if shipping_frees_little(shared) {
            return Ok(Outcome::Gate(first));
        }
        tokio::time::sleep(HEAP_RECHECK).await;
    }
}

/// A connection waits for heap room: counted, and told to the output,
/// which then sends what it holds back. Returns once the connection is
/// first in `queue`, holding its one permit.
async fn first_in_queue(
    shared: &Shared,
    queue: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, Closed> {
    shared.counters.buffer_waits.fetch_add(1, Ordering::Relaxed);
    shared.budget.note_heap_wait();
    queue
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Closed::PipelineGone)
}

/// Whether what the pipeline holds beyond the connections' undecoded
/// bytes is little: shipping it cannot free the heap.
fn shipping_frees_little(shared: &Shared) -> bool {
    let undecoded = shared.undecoded_bytes.load(Ordering::Relaxed);
    let downstream = shared.budget.in_use().saturating_sub(undecoded);
    is_little(downstream, shared.budget.total())
}

/// Whether `bytes` reserved are under a sixteenth of a budget of `total`.
fn is_little(bytes: u64, total: u64) -> bool {
    bytes.saturating_mul(16) < total
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
    fn little_is_under_a_sixteenth_of_the_budget() {
        assert!(is_little(0, 64 << 20));
        assert!(is_little((4 << 20) - 1, 64 << 20));
        assert!(!is_little(4 << 20, 64 << 20));
        assert!(!is_little(u64::MAX, 64 << 20));
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
        use crate::session::ack_frame;
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
