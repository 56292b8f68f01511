//! Per-route request statistics: every access record (before sampling) is
//! counted per interval, aligned to the wall clock, and each interval
//! becomes one Embedded Metric Format event per route in the stats stream.
//! Totals since start feed /metrics: the closed intervals merged, plus the
//! open one (each record is counted once, into its interval).
//!
//! Cost control: CloudWatch bills each metric name with each distinct set of
//! dimension values. Only the names in `stats.metrics` are metrics (by
//! default 3 per route); every other figure is a plain field of the same
//! EMF event, queryable in Logs Insights for free. At most
//! `stats.max_routes` routes per interval; the rest fold into `other`, and
//! services first seen past that limit into service `other`.

pub mod emf;
pub mod sampling;
pub mod sketch;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::HashMap;

use sluice_parser::{AccessRecord, Field};

use crate::event::StreamKey;
use sketch::Sketch;

/// The route requests beyond the cardinality guard are counted under.
pub const OTHER_ROUTE: &str = "other";

/// The service of requests whose own service is new past the guard.
pub const OTHER_SERVICE: &str = "other";

/// What statistics need from one access record. Its text borrows from the
/// record and the event: the statistics read it only while the event is
/// written, so nothing is copied (three allocations per access record).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFacts<'a> {
    pub route: String,
    pub authority: Option<Cow<'a, str>>,
    pub container: Option<Cow<'a, str>>,
    /// `None` or 0: no response was sent.
    pub status: Option<u64>,
    /// Envoy's response flags; `None` for `-`.
    pub flags: Option<Cow<'a, str>>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: Option<u64>,
    pub upstream_ms: Option<u64>,
    /// The request id: sampling decides on its hash. Hashed only when
    /// sampling is on (a byte-at-a-time hash of every access record's id
    /// was 1.8 % of a burst's CPU, for nothing by default).
    pub request_id: Option<Cow<'a, str>>,
}

impl<'a> RequestFacts<'a> {
    pub fn from_record(
        record: &'a AccessRecord<'_>,
        route: String,
        container: Option<&'a str>,
    ) -> Self {
        let text = |f: Field| {
            record
                .str(f)
                .filter(|s| !s.is_empty() && *s != "-")
                .map(Cow::Borrowed)
        };
        RequestFacts {
            route,
            authority: text(Field::Authority),
            container: container.map(Cow::Borrowed),
            status: record.uint(Field::ResponseCode),
            flags: text(Field::ResponseFlags),
            bytes_received: record.uint(Field::BytesReceived).unwrap_or(0),
            bytes_sent: record.uint(Field::BytesSent).unwrap_or(0),
            duration_ms: record.uint(Field::Duration),
            upstream_ms: record.uint(Field::UpstreamServiceTime),
            request_id: text(Field::RequestId),
        }
    }

    /// The facts with their text copied, to keep beyond the event.
    pub fn into_owned(self) -> RequestFacts<'static> {
        let owned = |text: Option<Cow<'_, str>>| text.map(|t| Cow::Owned(t.into_owned()));
        RequestFacts {
            authority: owned(self.authority),
            container: owned(self.container),
            flags: owned(self.flags),
            request_id: owned(self.request_id),
            route: self.route,
            status: self.status,
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            duration_ms: self.duration_ms,
            upstream_ms: self.upstream_ms,
        }
    }

    /// 5xx, no response, or any response flag: what sampling always keeps.
    pub fn is_error(&self) -> bool {
        self.status.is_none_or(|s| s == 0 || s >= 500) || self.flags.is_some()
    }
}

/// Status classes, in the order of [`RouteStats::status`].
pub const STATUS_CLASSES: [&str; 6] = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: Option<u64>) -> usize {
    match status {
        Some(s @ 100..=599) => (s / 100) as usize,
        _ => 0,
    }
}

/// One route's figures over one interval (or since start, for /metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteStats {
    pub requests: u64,
    pub status: [u64; 6],
    pub flags: BTreeMap<String, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Sketch,
    pub upstream: Sketch,
    /// Requests counted here because their own route was over the guard.
    pub folded: u64,
}

impl RouteStats {
    pub fn add(&mut self, facts: &RequestFacts) {
        self.requests += 1;
        self.status[status_class(facts.status)] += 1;
        if let Some(flags) = &facts.flags {
            for flag in flags.split(',') {
                if let Some(n) = self.flags.get_mut(flag) {
                    *n += 1;
                } else {
                    self.flags.insert(flag.to_string(), 1);
                }
            }
        }
        self.bytes_received += facts.bytes_received;
        self.bytes_sent += facts.bytes_sent;
        if let Some(d) = facts.duration_ms {
            self.duration.add(d);
        }
        if let Some(u) = facts.upstream_ms {
            self.upstream.add(u);
        }
    }

    /// Adds every figure of `other` (the same route over another interval).
    pub fn merge(&mut self, other: &RouteStats) {
        self.requests += other.requests;
        for (mine, theirs) in self.status.iter_mut().zip(other.status) {
            *mine += theirs;
        }
        for (flag, n) in &other.flags {
            *self.flags.entry(flag.clone()).or_default() += n;
        }
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        self.duration.merge(&other.duration);
        self.upstream.merge(&other.upstream);
        self.folded += other.folded;
    }
}

/// Service and route: one row of statistics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub service: String,
    pub route: String,
}

/// Routes with their figures, at most `max_routes` of them plus `other`
/// per service. Keyed by service, then route, so that counting a request of
/// a known route looks up by `&str` and allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    services: HashMap<String, HashMap<String, RouteStats>>,
    /// Routes other than `other`, over all services: what the guard limits.
    named: usize,
    /// Requests folded into `other` because of the guard.
    pub folded_requests: u64,
}

impl RouteTable {
    /// Counts one request. Returns whether it was folded into `other`.
    pub fn add(&mut self, service: &str, facts: &RequestFacts, max_routes: usize) -> bool {
        // A known route: two lookups, nothing copied.
        if let Some(stats) = self
            .services
            .get_mut(service)
            .and_then(|routes| routes.get_mut(facts.route.as_str()))
        {
            stats.add(facts);
            return false;
        }
        let admitted = self.admitted_service(service, max_routes);
        let may_name = admitted == service && self.named < max_routes;
        if !self.services.contains_key(admitted) {
            self.services
                .insert(admitted.to_string(), HashMap::default());
        }
        let Some(routes) = self.services.get_mut(admitted) else {
            return false;
        };
        // A route really named "other" shares the fold's row.
        if facts.route == OTHER_ROUTE && admitted == service {
            routes
                .entry(OTHER_ROUTE.to_string())
                .or_default()
                .add(facts);
            return false;
        }
        if may_name {
            self.named += 1;
            routes.entry(facts.route.clone()).or_default().add(facts);
            return false;
        }
        let other = routes.entry(OTHER_ROUTE.to_string()).or_default();
        other.add(facts);
        other.folded += 1;
        self.folded_requests += 1;
        true
    }

    /// `service` if it has a row or may get one, else [`OTHER_SERVICE`].
    /// The service is the request's authority by default, which a client
    /// chooses: a new service gets rows only while the guard has room, so
    /// that every service's `other` row is bounded too (at most
    /// `max_routes` services, plus `other`).
    fn admitted_service<'s>(&self, service: &'s str, max_routes: usize) -> &'s str {
        let room = self.named < max_routes && self.services.len() < max_routes;
        if room || self.services.contains_key(service) {
            service
        } else {
            OTHER_SERVICE
        }
    }

    /// Adds `other`'s rows, under the same guard as [`RouteTable::add`]:
    /// a route new here past `max_routes` joins `other`. Rows are taken in
    /// order, so that which routes the guard lets in does not depend on a
    /// hash map's order.
    pub fn merge(&mut self, other: &RouteTable, max_routes: usize) {
        for (key, stats) in other.sorted() {
            self.merge_row(&key.service, &key.route, stats, max_routes);
        }
    }

    fn merge_row(&mut self, service: &str, route: &str, stats: &RouteStats, max_routes: usize) {
        if route == OTHER_ROUTE {
            self.folded_requests += stats.folded;
        }
        let admitted = self.admitted_service(service, max_routes);
        let own = admitted == service;
        let routes = self.services.entry(admitted.to_string()).or_default();
        if own {
            if let Some(mine) = routes.get_mut(route) {
                mine.merge(stats);
                return;
            }
            if route == OTHER_ROUTE || self.named < max_routes {
                if route != OTHER_ROUTE {
                    self.named += 1;
                }
                routes.insert(route.to_string(), stats.clone());
                return;
            }
        }
        // Folded here, though not in its interval: all its requests count
        // as folded.
        let other = routes.entry(OTHER_ROUTE.to_string()).or_default();
        other.merge(stats);
        let newly_folded = stats.requests.saturating_sub(stats.folded);
        other.folded += newly_folded;
        self.folded_requests += newly_folded;
    }

    /// One route's figures.
    #[cfg(test)]
    pub fn get(&self, service: &str, route: &str) -> Option<&RouteStats> {
        self.services.get(service)?.get(route)
    }

    /// Routes held, `other` included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.services.values().map(HashMap::len).sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route with its figures, sorted by service and route.
    pub fn sorted(&self) -> Vec<(RouteKey, &RouteStats)> {
        let mut rows: Vec<(RouteKey, &RouteStats)> = self
            .services
            .iter()
            .flat_map(|(service, routes)| {
                routes.iter().map(move |(route, stats)| {
                    let key = RouteKey {
                        service: service.clone(),
                        route: route.clone(),
                    };
                    (key, stats)
                })
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

/// The `[stats]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsConfig {
    pub interval_ms: i64,
    pub namespace: String,
    /// The service dimension's value for every record; `None`: the
    /// record's authority, else its container's name.
    pub service: Option<String>,
    pub dimensions: Vec<Vec<String>>,
    pub metrics: Vec<String>,
    pub max_routes: usize,
    /// Whether events carry the mergeable duration sketches.
    pub sketches: bool,
}

impl Default for StatsConfig {
    fn default() -> StatsConfig {
        StatsConfig {
            interval_ms: 60_000,
            namespace: "Sluice".to_string(),
            service: None,
            dimensions: vec![
                vec!["service".to_string(), "route".to_string()],
                vec!["service".to_string()],
            ],
            metrics: ["requests", "status_5xx", "duration_p99"]
                .map(str::to_string)
                .to_vec(),
            max_routes: 200,
            sketches: false,
        }
    }
}

/// `stats.service`, else the record's authority, else its container.
fn service_of<'a>(config: &'a StatsConfig, facts: &'a RequestFacts<'_>) -> &'a str {
    config
        .service
        .as_deref()
        .or(facts.authority.as_deref())
        .or(facts.container.as_deref())
        .unwrap_or("unknown")
}

/// Per-route figures shared between the output thread, which counts
/// every access record into the open interval, and /metrics, which reads
/// the totals since start.
#[derive(Debug, Default)]
pub struct RouteTotals {
    /// The open interval, per stats stream.
    open: HashMap<StreamKey, RouteTable>,
    /// Every closed interval, merged over all streams.
    closed: RouteTable,
    max_routes: usize,
}

impl RouteTotals {
    /// The totals since start: the closed intervals and the open one.
    pub fn since_start(&self) -> RouteTable {
        let mut totals = self.closed.clone();
        // In stream order, as intervals close (see `merge`).
        let mut open: Vec<(&StreamKey, &RouteTable)> = self.open.iter().collect();
        open.sort_by(|a, b| a.0.cmp(b.0));
        for (_, table) in open {
            totals.merge(table, self.max_routes);
        }
        totals
    }
}

/// Statistics of the current interval, per stats stream.
pub struct Aggregator {
    config: StatsConfig,
    interval_start_ms: i64,
    /// The open interval's tables, and the totals they close into.
    totals: Arc<Mutex<RouteTotals>>,
}

impl Aggregator {
    /// `totals` is what /metrics reads; the aggregator counts into it.
    pub fn new(config: StatsConfig, now_ms: i64, totals: Arc<Mutex<RouteTotals>>) -> Aggregator {
        let interval_start_ms = now_ms - now_ms.rem_euclid(config.interval_ms);
        if let Ok(mut t) = totals.lock() {
            t.max_routes = config.max_routes;
        }
        Aggregator {
            config,
            interval_start_ms,
            totals,
        }
    }

    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// The shared tables. A panic elsewhere while they were held leaves
    /// figures, not broken invariants: counting goes on.
    fn lock(&self) -> MutexGuard<'_, RouteTotals> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request for the stats stream `stream`; returns whether
    /// it was folded into `other`.
    pub fn record(&mut self, stream: &StreamKey, facts: &RequestFacts) -> bool {
        let service = service_of(&self.config, facts);
        let max_routes = self.config.max_routes;
        let mut totals = self.lock();
        // A known stream: one lookup, no copy.
        if let Some(table) = totals.open.get_mut(stream) {
            return table.add(service, facts, max_routes);
        }
        let mut table = RouteTable::default();
        let folded = table.add(service, facts, max_routes);
        totals.open.insert(stream.clone(), table);
        folded
    }

    pub fn interval_start_ms(&self) -> i64 {
        self.interval_start_ms
    }

    /// Whether the interval has ended by `now_ms`.
    pub fn due(&self, now_ms: i64) -> bool {
        now_ms >= self.interval_end_ms()
    }

    /// When the interval ends, in ms since the epoch.
    pub fn interval_end_ms(&self) -> i64 {
        self.interval_start_ms + self.config.interval_ms
    }

    /// Ends the interval (also a partial one, at shutdown): its EMF events,
    /// one per stream and route, sorted; the next interval starts at the
    /// wall-clock boundary at or before `now_ms`.
    pub fn finish_interval(&mut self, now_ms: i64) -> Vec<(StreamKey, String)> {
        let start = self.interval_start_ms;
        let mut out = Vec::new();
        let streams: Vec<(StreamKey, RouteTable)> = {
            let mut totals = self.lock();
            let totals = &mut *totals;
            let mut streams: Vec<(StreamKey, RouteTable)> = totals.open.drain().collect();
            streams.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, table) in &streams {
                totals.closed.merge(table, self.config.max_routes);
            }
            streams
        };
        for (stream, table) in streams {
            for (key, stats) in table.sorted() {
                out.push((stream.clone(), emf::event(&self.config, start, &key, stats)));
            }
        }
        self.interval_start_ms = now_ms - now_ms.rem_euclid(self.config.interval_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn facts(route: &str, status: u64, duration: u64) -> RequestFacts<'static> {
        RequestFacts {
            route: route.to_string(),
            authority: Some("orders".into()),
            container: Some("envoy".into()),
            status: Some(status),
            flags: None,
            bytes_received: 10,
            bytes_sent: 100,
            duration_ms: Some(duration),
            upstream_ms: Some(duration / 2),
            request_id: None,
        }
    }

    /// The stats stream of task `task`.
    fn stream_of(task: &str) -> StreamKey {
        StreamKey::new("/ecs/prod/envoy".to_string(), format!("{task}/stats"))
    }

    #[test]
    fn counts_classes_flags_and_bytes_exactly() {
        let mut table = RouteTable::default();
        let mut f = facts("GET /a", 200, 5);
        table.add("orders", &f, 10);
        f.status = Some(503);
        f.flags = Some("UF,URX".into());
        table.add("orders", &f, 10);
        f.status = None;
        f.flags = Some("UF".into());
        table.add("orders", &f, 10);
        let stats = table.get("orders", "GET /a").unwrap();
        assert_eq!(stats.requests, 3);
        assert_eq!(stats.status, [1, 0, 1, 0, 0, 1]);
        assert_eq!(
            stats.flags,
            BTreeMap::from([("UF".to_string(), 2), ("URX".to_string(), 1)])
        );
        assert_eq!((stats.bytes_received, stats.bytes_sent), (30, 300));
    }

    #[test]
    fn the_guard_folds_routes_past_the_limit_into_other() {
        let mut table = RouteTable::default();
        for i in 0..10_000 {
            table.add("orders", &facts(&format!("GET /p{i}"), 200, 1), 200);
        }
        // Known routes keep counting after the guard is reached.
        table.add("orders", &facts("GET /p0", 200, 1), 200);
        assert_eq!(table.len(), 201);
        assert_eq!(table.folded_requests, 9_800);
        let other = table.get("orders", OTHER_ROUTE).unwrap();
        assert_eq!((other.requests, other.folded), (9_800, 9_800));
        let p0 = table.get("orders", "GET /p0").unwrap();
        assert_eq!(p0.requests, 2);
    }

    #[test]
    fn totals_since_start_are_the_closed_intervals_and_the_open_one() {
        let totals = Arc::new(Mutex::new(RouteTotals::default()));
        let mut agg = Aggregator::new(StatsConfig::default(), 0, totals.clone());
        agg.record(&stream_of("t"), &facts("GET /a", 200, 5));
        agg.record(&stream_of("u"), &facts("GET /a", 503, 40));
        let mut flagged = facts("GET /b", 0, 0);
        flagged.status = None;
        flagged.flags = Some("UF,URX".into());
        agg.record(&stream_of("t"), &flagged);
        assert_eq!(agg.finish_interval(60_000).len(), 3);
        // The next interval is open: counted in the totals, not yet closed.
        agg.record(&stream_of("t"), &facts("GET /a", 404, 7));
        agg.record(&stream_of("t"), &flagged);

        let since_start = totals.lock().unwrap().since_start();
        let a = since_start.get("orders", "GET /a").unwrap();
        assert_eq!(a.requests, 3);
        assert_eq!(a.status, [0, 0, 1, 0, 1, 1]);
        assert_eq!((a.bytes_received, a.bytes_sent), (30, 300));
        assert_eq!(
            (a.duration.count(), a.duration.sum(), a.duration.max()),
            (3, 52, 40)
        );
        assert_eq!((a.upstream.count(), a.upstream.sum()), (3, 2 + 20 + 3));
        let b = since_start.get("orders", "GET /b").unwrap();
        assert_eq!(b.requests, 2);
        assert_eq!(b.status, [2, 0, 0, 0, 0, 0]);
        assert_eq!(
            b.flags,
            BTreeMap::from([("UF".to_string(), 2), ("URX".to_string(), 2)])
        );
        assert_eq!(since_start.len(), 2);
    }

    #[test]
    fn merged_totals_fold_routes_past_the_guard() {
        let mut interval = RouteTable::default();
        for route in ["GET /a", "GET /b", "GET /c"] {
            interval.add("orders", &facts(route, 200, 1), 10);
        }
        interval.add("orders", &facts("GET /c", 200, 1), 10);
        let mut totals = RouteTable::default();
        totals.merge(&interval, 2);
        // The guard of the totals: "GET /c" (2 requests) is past it.
        assert_eq!(totals.len(), 3);
        assert_eq!(totals.get("orders", "GET /a").unwrap().requests, 1);
        assert!(totals.get("orders", "GET /c").is_none());
        let other = totals.get("orders", OTHER_ROUTE).unwrap();
        assert_eq!((other.requests, other.folded), (2, 2));
        assert_eq!(totals.folded_requests, 2);
        // An interval's own fold is not counted twice.
        let mut folded = RouteTable::default();
        folded.add("orders", &facts("GET /a", 200, 1), 1);
        folded.add("orders", &facts("GET /x", 200, 1), 1);
        totals.merge(&folded, 2);
        assert_eq!(totals.get("orders", "GET /a").unwrap().requests, 2);
        let other = totals.get("orders", OTHER_ROUTE).unwrap();
        assert_eq!((other.requests, other.folded), (3, 3));
        assert_eq!(totals.folded_requests, 3);
    }

    /// The default service is the request's authority, which any client
    /// sets: a flood of new ones must not grow a row (a billed metric)
    /// each.
    #[test]
    fn services_new_past_the_guard_share_one_other_row() {
        let mut table = RouteTable::default();
        table.add("orders", &facts("GET /a", 200, 1), 2);
        table.add("orders", &facts("GET /b", 200, 1), 2);
        for i in 0..1_000 {
            let folded = table.add(&format!("host-{i}"), &facts("GET /a", 200, 1), 2);
            assert!(folded);
        }
        // A known service keeps its own fold.
        assert!(table.add("orders", &facts("GET /c", 503, 1), 2));
        assert_eq!(table.len(), 4);
        let shared = table.get(OTHER_SERVICE, OTHER_ROUTE).unwrap();
        assert_eq!((shared.requests, shared.folded), (1_000, 1_000));
        let own = table.get("orders", OTHER_ROUTE).unwrap();
        assert_eq!((own.requests, own.status[5]), (1, 1));
        assert_eq!(table.folded_requests, 1_001);

        // Services, not only routes, are limited: each new service's first
        // route may be "other" itself, which the route guard does not count.
        let mut table = RouteTable::default();
        for i in 0..1_000 {
            table.add(&format!("host-{i}"), &facts(OTHER_ROUTE, 200, 1), 3);
        }
        assert_eq!(table.len(), 4);
        let shared = table.get(OTHER_SERVICE, OTHER_ROUTE).unwrap();
        assert_eq!((shared.requests, shared.folded), (997, 997));
    }

    #[test]
    fn merged_totals_fold_services_past_the_guard() {
        let mut totals = RouteTable::default();
        for i in 0..50 {
            let mut interval = RouteTable::default();
            interval.add(&format!("host-{i}"), &facts("GET /a", 200, 1), 200);
            interval.add(&format!("host-{i}"), &facts("GET /a", 200, 1), 200);
            totals.merge(&interval, 2);
        }
        assert_eq!(totals.len(), 3);
        assert_eq!(totals.get("host-1", "GET /a").unwrap().requests, 2);
        let shared = totals.get(OTHER_SERVICE, OTHER_ROUTE).unwrap();
        assert_eq!((shared.requests, shared.folded), (96, 96));
        assert_eq!(totals.folded_requests, 96);
    }

    #[test]
    fn intervals_align_to_the_wall_clock() {
        let config = StatsConfig::default();
        let mut agg = Aggregator::new(config, 120_500, Arc::default());
        agg.record(&stream_of("t"), &facts("GET /a", 200, 5));
        assert!(!agg.due(179_999));
        assert!(agg.due(180_000));
        let events = agg.finish_interval(180_200);
        assert_eq!(events.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&events[0].1).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 120_000);
        assert!(agg.finish_interval(240_000).is_empty());
    }
}
