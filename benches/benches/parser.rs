//! Parser throughput: the default format, Service Connect JSON and a 70/30
//! access/app mix, each beside a Fluent Bit-style regex baseline.
//!
//! Run: cargo bench -p sluice-benches --bench parser

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use regex::Regex;
use sluice_benches::{
    envoy_default_line, mixed_lines, service_connect_json_line, Rng, FLUENT_BIT_STYLE_ENVOY_REGEX,
};
use sluice_parser::{Classified, Classifier, QueryMode, Redactor, RouteTable};

const LINES: usize = 10_000;

fn bytes(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

/// Classifies every line as the sidecar does, into a value it holds;
/// returns how many were access records so the work cannot be optimised
/// away.
fn classify_all(classifier: &Classifier, lines: &[String]) -> usize {
    let mut classified = Classified::App("");
    let mut access = 0;
    for line in lines {
        classifier.classify_into(black_box(line), &mut classified);
        access += usize::from(matches!(classified, Classified::Access(_)));
    }
    access
}

/// The baseline: one capture regex per line, every group read.
fn regex_all(re: &Regex, lines: &[String]) -> usize {
    let mut fields = 0;
    for line in lines {
        if let Some(caps) = re.captures(black_box(line)) {
            fields += caps.iter().flatten().count();
        }
    }
    fields
}

fn run_group(c: &mut Criterion, name: &str, lines: &[String], baseline: bool) {
    let classifier = Classifier::new();
    let re = Regex::new(FLUENT_BIT_STYLE_ENVOY_REGEX).unwrap();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes(lines)));
    group.bench_function("sluice", |b| b.iter(|| classify_all(&classifier, lines)));
    if baseline {
        group.bench_function("regex", |b| b.iter(|| regex_all(&re, lines)));
    }
    group.finish();
}

fn parser(c: &mut Criterion) {
    let mut rng = Rng::new(7);
    let default: Vec<String> = (0..LINES).map(|_| envoy_default_line(&mut rng)).collect();
    let json: Vec<String> = (0..LINES)
        .map(|_| service_connect_json_line(&mut rng))
        .collect();
    let mixed = mixed_lines(LINES, 70, 11);

    run_group(c, "envoy_default", &default, true);
    run_group(c, "service_connect_json", &json, false);
    run_group(c, "mixed_70_30", &mixed, true);

    // What the sidecar does per line beyond classification.
    let classifier = Classifier::new();
    let redactor = Redactor::new(QueryMode::Redact);
    let routes = RouteTable::new();
    let mut group = c.benchmark_group("envoy_default_full");
    group.throughput(Throughput::Bytes(bytes(&default)));
    group.bench_function("classify_redact_route_json", |b| {
        let mut out = String::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for line in &default {
                if let Classified::Access(mut r) = classifier.classify(line) {
                    redactor.redact_record(&mut r);
                    out.push_str(&routes.route_key(&r));
                    r.write_json_members(&mut out);
                }
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
