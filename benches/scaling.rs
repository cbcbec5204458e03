//! How costs grow with the size of the input: building a configuration of N rules.
//!
//! `cargo bench --bench scaling` builds configurations of 10,000 to 40,000 rules (each a family
//! of its own, with a field of its own) and prints the time of each and its ratio to the
//! smallest; linear growth shows as ratios close to N / 10,000. Under `cargo test --benches` it
//! runs once on small sizes, as a smoke test.

use std::time::Instant;

use tracing_spanmetrics::{Metric, SpanMetrics, Spans};

/// The time to validate and build `n` rules, in seconds (the best of `rounds`).
fn build_seconds(n: usize, rounds: usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let rules: Vec<Metric> = (0..n)
                .map(|i| {
                    Metric::counter(format!("family{i}.calls"))
                        .spans(Spans::named(format!("span{i}")))
                        .label(format!("field{i}"))
                })
                .collect();
            let start = Instant::now();
            let layer = SpanMetrics::builder().metrics(rules).build();
            let took = start.elapsed().as_secs_f64();
            assert!(layer.is_ok(), "the generated rules are valid");
            took
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (sizes, rounds): (&[usize], usize) = if bench {
        (&[10_000, 20_000, 40_000], 5)
    } else {
        (&[100, 200], 1)
    };
    let base = build_seconds(sizes[0], rounds);
    println!("rules,seconds,ratio_to_{},linear_ratio", sizes[0]);
    for &n in sizes {
        let t = if n == sizes[0] {
            base
        } else {
            build_seconds(n, rounds)
        };
        println!(
            "{n},{t:.4},{:.2},{:.2}",
            t / base,
            n as f64 / sizes[0] as f64
        );
    }
}
