//! The admin HTTP endpoint (hyper, HTTP/1.1), on `admin.listen`
//! (127.0.0.1:2020 by default):
//!
//! - `GET /healthz`: 200 `ok` when the forward inputs are listening and the
//!   output is not wedged; otherwise 503 with the reason. Wedged means one
//!   of: the output stage has queued frames and has not made a pass for
//!   [`STALL`]; or CloudWatch batches are waiting and no PutLogEvents has
//!   succeeded for [`STALL`] (credentials revoked, endpoint unreachable,
//!   throttled throughout).
//! - `GET /metrics`: the Prometheus text exposition (metrics.rs).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, Sources};

/// How long without progress counts as wedged.
pub const STALL: Duration = Duration::from_secs(120);

pub struct Admin {
    pub sources: Sources,
    /// Whether the forward listeners are up (false once shutting down).
    pub listening: watch::Receiver<bool>,
}

impl Admin {
    /// `None` when healthy, else why not.
    fn unhealthy(&self, now_ms: u64) -> Option<String> {
        if !*self.listening.borrow() {
            return Some("the forward inputs are not listening".to_string());
        }
        let stall_ms = STALL.as_millis() as u64;
        let queued = (self.sources.queue_depth)();
        let last_pass = self
            .sources
            .pipeline
            .last_progress_ms
            .load(Ordering::Relaxed);
        if queued > 0 && now_ms.saturating_sub(last_pass) > stall_ms {
            return Some(format!(
                "the output stage has {queued} frames queued and made no pass for {} s",
                now_ms.saturating_sub(last_pass) / 1000
            ));
        }
        if let Some(ship) = &self.sources.ship {
            let waiting = ship.outstanding.load(Ordering::Relaxed);
            let last_ok = ship.last_success_ms.load(Ordering::Relaxed);
            if waiting > 0 && now_ms.saturating_sub(last_ok) > stall_ms {
                return Some(format!(
                    "{waiting} CloudWatch batches are waiting and no PutLogEvents has succeeded for {} s",
                    now_ms.saturating_sub(last_ok) / 1000
                ));
            }
        }
        None
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, content_type: &str, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        };
        if request.method() != hyper::Method::GET {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        match request.uri().path() {
            "/healthz" => match self.unhealthy(now_ms()) {
                None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
                Some(reason) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", reason + "\n"),
            },
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&self.sources),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "/healthz or /metrics\n".into(),
            ),
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = admin.respond(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await;
        });
    }
}
