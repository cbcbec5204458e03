//! Criterion groups over the workload of `common`: `span` (one thread, every variant) and
//! `span_2threads` (two threads at once, the core variants; time per iteration is the wall time
//! for one span on each thread).
//!
//! `cargo bench --bench spans -- --warm-up-time 1 --measurement-time 3`
//!
//! The VM this was written on drifts by up to ±35% over tens of seconds, so ratios between
//! groups run back to back move with it: `benches/roundrobin.rs` measures the same variants
//! interleaved and is the source of the numbers in BENCHMARKS.md.

mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn spans(c: &mut Criterion) {
    let suite = common::suite();
    let mut group = c.benchmark_group("span");
    group.throughput(Throughput::Elements(1));
    for v in &suite.variants {
        let mut offset = 0usize;
        group.bench_function(v.name, |b| {
            b.iter_custom(|iters| {
                let took = v.run(iters, offset);
                offset = offset.wrapping_add(iters as usize);
                // Outside the timed region: the exporter keeps every sample until upkeep.
                suite.drain();
                took
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("span_2threads");
    group.throughput(Throughput::Elements(2));
    for v in suite.variants.iter().filter(|v| v.threaded) {
        group.bench_function(v.name, |b| {
            b.iter_custom(|iters| {
                let took = v.run_threads(2, iters, false);
                suite.drain();
                took
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = spans
}
criterion_main!(benches);
