//! What the per-route statistics cost per access record, next to what
//! rendering the record costs: rendering alone, rendering with the facts
//! the statistics need, and counting the facts (the interval's table and
//! the since-start totals for /metrics, as the output stage does).
//!
//! Run: cargo bench -p sluice-benches --bench stats

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::render::LineRenderer;
use sluice::stats::{Aggregator, RequestFacts, StatsConfig};
use sluice::streams::StreamKey;
use sluice_benches::mixed_lines;
use sluice_parser::{Classifier, QueryMode, Redactor};

const LINES: usize = 10_000;

fn renderer(collect_facts: bool) -> LineRenderer {
    LineRenderer {
        classifier: Classifier::new(),
        redactor: Redactor::new(QueryMode::Redact),
        routes: sluice_parser::RouteTable::new(),
        access_containers: Vec::new(),
        app_lines_as_json: false,
        collect_facts,
        metadata: sluice::render::Metadata::All,
    }
}

fn stats(c: &mut Criterion) {
    // Envoy default-format access lines only.
    let lines = mixed_lines(LINES, 100, 11);
    let mut group = c.benchmark_group("stats_per_access_record");
    group.throughput(Throughput::Elements(LINES as u64));
    for (name, collect_facts) in [("render", false), ("render_with_facts", true)] {
        let renderer = renderer(collect_facts);
        let mut out = String::with_capacity(1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                for line in &lines {
                    out.clear();
                    black_box(renderer.render_event(line, None, &mut out));
                }
            })
        });
    }
    let renderer = renderer(true);
    let mut out = String::new();
    let facts: Vec<RequestFacts> = lines
        .iter()
        .filter_map(|line| {
            out.clear();
            renderer.render_event(line, None, &mut out).facts
        })
        .collect();
    assert_eq!(facts.len(), LINES);
    let key = StreamKey::new("/ecs/prod/envoy".into(), "0123abcd/stats".into());
    group.bench_function("count_facts", |b| {
        // Each record is counted once, into the open interval that the
        // /metrics totals include.
        let mut aggregator = Aggregator::new(StatsConfig::default(), 0, Default::default());
        b.iter(|| {
            for f in &facts {
                black_box(aggregator.record(&key, f));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, stats);
criterion_main!(benches);
