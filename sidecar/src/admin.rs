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
//! - `GET /api/v1/health` and `GET /api/v1/uptime`: Fluent Bit's answers,
//!   for the container health checks AWS documents for aws-for-fluent-bit
//!   (`curl -f http://127.0.0.1:2020/api/v1/health || exit 1`): `ok` with
//!   200 or `error` with 500, as `/healthz` decides; the uptime as
//!   `{"uptime_sec":N,"uptime_hr":"..."}`.
//! - `GET /api/v1/metrics` and `GET /api/v1/metrics/prometheus`, with a
//!   FireLens configuration: its inputs' and outputs' counters as Fluent
//!   Bit serves them (`fluentbit/plugin_metrics.rs`); and `GET
//!   /api/v2/metrics` and `GET /api/v2/metrics/prometheus`, the same
//!   counters and the process's in Fluent Bit's v2 families
//!   (`fluentbit/metrics_v2.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::event::now_ms;
use crate::fluentbit::metrics_v2;
use crate::fluentbit::plugin_metrics::PluginMetrics;
use crate::log_counts::LOG_COUNTS;
use crate::metrics::{self, Sources};

/// How long without progress counts as wedged.
pub const STALL: Duration = Duration::from_secs(120);

pub struct Admin {
    pub sources: Sources,
    /// Whether the forward listeners are up (false once shutting down).
    pub listening: watch::Receiver<bool>,
    /// When Sluice started, for `/api/v1/uptime`.
    pub started: Instant,
    /// A FireLens configuration's plugin instances' counters, for
    /// `/api/v1/metrics` and `/api/v2/metrics`, each also `/prometheus`.
    pub plugin_metrics: Option<Arc<PluginMetrics>>,
    /// The host's name, for `/api/v2/metrics`' `hostname` labels.
    pub hostname: String,
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
            "/api/v1/health" => match self.unhealthy(now_ms()) {
                None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
                Some(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "error\n".into(),
                ),
            },
            "/api/v1/uptime" => reply(
                StatusCode::OK,
                "application/json",
                uptime_json(self.started.elapsed().as_secs()),
            ),
            "/api/v1/metrics" if self.plugin_metrics.is_some() => reply(
                StatusCode::OK,
                "application/json",
                self.plugin_metrics.as_ref().map(|m| m.json()).unwrap_or_default(),
            ),
            "/api/v1/metrics/prometheus" if self.plugin_metrics.is_some() => {
                let now = now_ms();
                let uptime_s = self.started.elapsed().as_secs();
                let started_s = (now / 1000).saturating_sub(uptime_s);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.plugin_metrics
                        .as_ref()
                        .map(|m| m.prometheus(now, started_s, uptime_s))
                        .unwrap_or_default(),
                )
            }
            "/api/v2/metrics" if self.plugin_metrics.is_some() => {
                reply(StatusCode::OK, "text/plain", self.metrics_v2(false))
            }
            "/api/v2/metrics/prometheus" if self.plugin_metrics.is_some() => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics_v2(true),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "/healthz, /metrics, /api/v1/health or /api/v1/uptime (and, with a FireLens configuration, /api/v1/metrics[/prometheus] and /api/v2/metrics[/prometheus])\n".into(),
            ),
        }
    }

    /// `/api/v2/metrics`, or with `prometheus` its Prometheus text; empty
    /// without a FireLens configuration.
    fn metrics_v2(&self, prometheus: bool) -> String {
        let Some(plugins) = self.plugin_metrics.as_deref() else {
            return String::new();
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let uptime_s = self.started.elapsed().as_secs();
        let process = metrics_v2::Process {
            hostname: &self.hostname,
            started_unix_s: now.as_secs().saturating_sub(uptime_s),
            uptime_s,
            logs: LOG_COUNTS.get(),
        };
        if prometheus {
            metrics_v2::prometheus(plugins, &process)
        } else {
            metrics_v2::text(plugins, &process, now.as_nanos())
        }
    }
}

/// Fluent Bit's `/api/v1/uptime` body (`src/http_server/api/v1/uptime.c`,
/// which writes a plural only above 1).
fn uptime_json(secs: u64) -> String {
    let unit = |n: u64, name: &str| format!("{n} {name}{}", if n > 1 { "s" } else { "" });
    let (days, hours) = (secs / 86_400, secs % 86_400 / 3600);
    let (minutes, seconds) = (secs % 3600 / 60, secs % 60);
    let hr = format!(
        "Sluice has been running: {}, {}, {} and {}",
        unit(days, "day"),
        unit(hours, "hour"),
        unit(minutes, "minute"),
        unit(seconds, "second")
    );
    serde_json::json!({"uptime_sec": secs, "uptime_hr": hr}).to_string()
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `stop`'s sender is dropped.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut stop: watch::Receiver<()>) {
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
            _ = stop.changed() => return,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    use sluice_firelens::{Counters, MemoryBudget};

    use super::*;
    use crate::cloudwatch::ship::ShipCounters;
    use crate::metrics::PipelineCounters;
    use crate::stats::RouteTotals;

    fn admin(listening: bool, queued: u64) -> (Admin, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(listening);
        let sources = Sources {
            input: Arc::new(Counters::default()),
            budget: Arc::new(MemoryBudget::new(1 << 20)),
            pipeline: Arc::new(PipelineCounters::default()),
            ship: Some(Arc::new(ShipCounters::default())),
            spool: None,
            routes: Arc::new(Mutex::new(RouteTotals::default())),
            queue_depth: Box::new(move || queued),
        };
        (
            Admin {
                sources,
                listening: rx,
                started: Instant::now(),
                plugin_metrics: None,
                hostname: "h".into(),
            },
            tx,
        )
    }

    #[test]
    fn healthy_until_stopping_or_wedged() {
        let now = 1_000_000_000;
        let (a, _tx) = admin(true, 0);
        let store = |c: &AtomicU64, v: u64| c.store(v, Ordering::Relaxed);
        store(&a.sources.pipeline.last_progress_ms, now - 500);
        assert_eq!(a.unhealthy(now), None);

        let (a, _tx) = admin(false, 0);
        assert_eq!(
            a.unhealthy(now).as_deref(),
            Some("the forward inputs are not listening")
        );

        // Frames waiting and no pass for longer than STALL.
        let (a, _tx) = admin(true, 5);
        store(&a.sources.pipeline.last_progress_ms, now - 121_000);
        assert_eq!(
            a.unhealthy(now).as_deref(),
            Some("the output stage has 5 frames queued and made no pass for 121 s")
        );
        // No frames waiting: an idle pipeline is not wedged.
        let (a, _tx) = admin(true, 0);
        store(&a.sources.pipeline.last_progress_ms, now - 121_000);
        assert_eq!(a.unhealthy(now), None);

        // CloudWatch batches waiting, nothing accepted for longer than STALL.
        let (a, _tx) = admin(true, 0);
        let ship = a.sources.ship.as_ref().unwrap();
        store(&ship.outstanding, 3);
        store(&ship.last_success_ms, now - 200_000);
        assert_eq!(
            a.unhealthy(now).as_deref(),
            Some("3 CloudWatch batches are waiting and no PutLogEvents has succeeded for 200 s")
        );
        store(&ship.last_success_ms, now - 1_000);
        assert_eq!(a.unhealthy(now), None);
    }

    #[test]
    fn fluent_bits_uptime_body() {
        assert_eq!(
            uptime_json(5),
            r#"{"uptime_hr":"Sluice has been running: 0 day, 0 hour, 0 minute and 5 seconds","uptime_sec":5}"#
        );
        assert_eq!(
            uptime_json(2 * 86_400 + 3600 + 61),
            r#"{"uptime_hr":"Sluice has been running: 2 days, 1 hour, 1 minute and 1 second","uptime_sec":176461}"#
        );
    }
}
