//! Classifies a corpus in a loop, for profilers (perf, callgrind).
//! Run: cargo run --release -p sluice-benches --example profile_parser -- [default|json|mixed|app] [rounds]

use std::hint::black_box;

use sluice_benches::{envoy_default_line, mixed_lines, service_connect_json_line, Rng};
use sluice_parser::{Classified, Classifier};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "default".into());
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(100);
    let mut rng = Rng::new(7);
    let lines: Vec<String> = match kind.as_str() {
        "json" => (0..10_000)
            .map(|_| service_connect_json_line(&mut rng))
            .collect(),
        "mixed" => mixed_lines(10_000, 70, 11),
        "app" => mixed_lines(10_000, 0, 11),
        _ => (0..10_000).map(|_| envoy_default_line(&mut rng)).collect(),
    };
    let classifier = Classifier::new();
    let start = std::time::Instant::now();
    let mut access = 0;
    // As the sidecar classifies: into a value it holds.
    let mut classified = Classified::App("");
    for _ in 0..rounds {
        for line in &lines {
            classifier.classify_into(black_box(line), &mut classified);
            access += usize::from(matches!(classified, Classified::Access(_)));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum::<usize>() * rounds;
    println!(
        "{kind}: {access} access of {} lines, {:.1} MB/s, {:.0} ns/line",
        lines.len() * rounds,
        bytes as f64 / secs / 1e6,
        secs * 1e9 / (lines.len() * rounds) as f64
    );
}
