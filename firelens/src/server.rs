//! The tokio shell around [`ForwardCodec`]: TCP and unix-socket listeners,
//! one task per connection. The only file of this crate that knows tokio.
//!
//! A connection reads bytes, decodes frames, and hands each frame's events to
//! the pipeline through a bounded channel. When the channel is full the
//! connection waits, so it stops reading and TCP pushes back on the client:
//! nothing is dropped and nothing is buffered without bound. A frame that
//! asked for an ack (`chunk`) is acked only after the pipeline called
//! [`Delivery::accept`].

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

use crate::codec::{Event, ForwardCodec, Frame, FrameError, Limits};

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// TCP address, `None` for no TCP listener.
    pub tcp: Option<SocketAddr>,
    /// Unix socket path and file mode, `None` for no unix listener.
    pub unix: Option<(PathBuf, u32)>,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    pub limits: Limits,
}

/// The events of one frame, on their way to the pipeline.
#[derive(Debug)]
pub struct Delivery {
    pub events: Vec<Event>,
    /// Resolved by [`Delivery::accept`]; dropping the delivery without
    /// accepting it means the chunk is never acked, so the client resends.
    accepted: Option<oneshot::Sender<()>>,
}

impl Delivery {
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
        });
        let tcp = self.tcp.map(|listener| {
            let (shared, permits, shutdown) = (shared.clone(), permits.clone(), shutdown.clone());
            tokio::spawn(async move {
                accept_loop(shutdown, permits, shared, || async {
                    listener.accept().await.map(|(s, _)| s)
                })
                .await
            })
        });
        let unix = self.unix.map(|listener| {
            let (shared, permits, shutdown) = (shared.clone(), permits.clone(), shutdown.clone());
            tokio::spawn(async move {
                accept_loop(shutdown, permits, shared, || async {
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
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// What every connection task needs.
struct Shared {
    pipeline: mpsc::Sender<Delivery>,
    counters: Arc<Counters>,
    limits: Limits,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

async fn accept_loop<S, F, Fut>(
    mut shutdown: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
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
                    serve_connection(stream, &shared).await;
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

fn now_ns() -> i64 {
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
    Io(io::Error),
    Frame(FrameError),
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, shared: &Shared) {
    let closed = connection_loop(&mut stream, shared).await;
    let counters = &shared.counters;
    match closed {
        Closed::Eof | Closed::Shutdown | Closed::PipelineGone => {}
        Closed::Idle => {
            counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::info!("closing an idle forward connection");
        }
        Closed::Io(e) => tracing::info!(error = %e, "forward connection failed"),
        Closed::Frame(e) => {
            counters.frame_error(e.kind());
            tracing::warn!(error = %e, kind = e.kind(), "closing a forward connection that sent a bad frame");
        }
    }
    let _ = stream.shutdown().await;
}

async fn connection_loop<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &Shared,
) -> Closed {
    let mut codec = ForwardCodec::new(shared.limits);
    let mut buf = vec![0u8; 64 << 10];
    let mut shutdown = shared.shutdown.clone();
    loop {
        loop {
            let frame = match codec.next_frame(now_ns()) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Closed::Frame(e),
            };
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
            let (accepted_tx, accepted_rx) = oneshot::channel();
            if !events.is_empty() {
                let delivery = Delivery {
                    events,
                    accepted: Some(accepted_tx),
                };
                // Waits while the pipeline is full: back-pressure.
                if shared.pipeline.send(delivery).await.is_err() {
                    return Closed::PipelineGone;
                }
                if chunk.is_some() && accepted_rx.await.is_err() {
                    // Dropped unaccepted (shutting down): no ack, the client resends.
                    return Closed::PipelineGone;
                }
            }
            if let Some(chunk) = chunk {
                if let Err(e) = stream.write_all(&ack_frame(&chunk)).await {
                    return Closed::Io(e);
                }
                counters.acks.fetch_add(1, Ordering::Relaxed);
            }
        }
        if *shutdown.borrow() {
            return Closed::Shutdown;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(shared.idle_timeout, stream.read(&mut buf)) => r,
            _ = shutdown.changed() => return Closed::Shutdown,
        };
        match read {
            Err(_) => return Closed::Idle,
            Ok(Err(e)) => return Closed::Io(e),
            Ok(Ok(0)) => return Closed::Eof,
            Ok(Ok(n)) => codec.feed(&buf[..n]),
        }
    }
}

/// `{"ack": chunk}` in msgpack.
fn ack_frame(chunk: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 10);
    out.extend_from_slice(&[0x81, 0xa3, b'a', b'c', b'k']);
    let len = chunk.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(chunk.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack;

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
