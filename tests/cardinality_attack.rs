//! A million distinct label values into one label: the series stay at the limit plus one
//! overflow series, every observation is counted exactly once, and memory stops growing.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use common::TestRecorder;
use tracing_spanmetrics::{Metric, OVERFLOW_METRIC, SpanMetrics, Spans};
use tracing_subscriber::prelude::*;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The byte count is process-wide: the tests here run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const LIMIT: usize = 2000;
const VALUES: u64 = 1_000_000;
/// What the layer and the recorder may hold for 2,000 one-label series, their overflow series
/// and everything else, once the attack is under way (measured: 0.7 MiB).
const BOUND: isize = 2 << 20;

#[test]
fn a_million_distinct_values_into_one_label() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let recorder = Arc::new(TestRecorder::default());
    let before = LIVE.load(Ordering::Relaxed);
    let layer = SpanMetrics::builder()
        .metric(
            Metric::counter("attack.total")
                .spans(Spans::named("req"))
                .label("user"),
        )
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut at_10k = 0;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..VALUES {
            drop(tracing::info_span!("req", user = i));
            if i == 10_000 {
                at_10k = LIVE.load(Ordering::Relaxed);
            }
        }
    });
    let after = LIVE.load(Ordering::Relaxed);
    let m = recorder.snapshot();
    let series = m.series("attack.total");
    assert_eq!(series.len(), LIMIT + 1);
    let admitted: u64 = (0..LIMIT as u64)
        .map(|i| {
            m.counter("attack.total", &[("user", &i.to_string())])
                .unwrap()
        })
        .sum();
    assert_eq!(admitted, LIMIT as u64);
    let folded = VALUES - LIMIT as u64;
    assert_eq!(
        m.counter("attack.total", &[("otel_metric_overflow", "true")]),
        Some(folded)
    );
    assert_eq!(
        m.counter(OVERFLOW_METRIC, &[("metric", "attack_total")]),
        Some(folded)
    );
    // No growth after the limit was reached, and a bounded total.
    let growth = after - at_10k;
    assert!(growth < 64 << 10, "grew by {growth} bytes after the limit");
    let held = after - before;
    assert!(held < BOUND, "holds {held} bytes");
    println!("held {held} bytes; growth after 10k values {growth} bytes");
    drop(dispatch);
}

#[test]
fn a_million_distinct_span_names_under_red() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let recorder = Arc::new(TestRecorder::default());
    let layer = SpanMetrics::red("svc")
        .cardinality_limit(100)
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..VALUES {
            drop(tracing::info_span!("op", otel.name = i));
        }
    });
    let m = recorder.snapshot();
    assert_eq!(m.series("traces.span.metrics.calls").len(), 101);
    assert_eq!(m.series("traces.span.metrics.duration").len(), 101);
    assert_eq!(
        m.counter(
            "traces.span.metrics.calls",
            &[("otel_metric_overflow", "true")]
        ),
        Some(VALUES - 100)
    );
    let in_histogram: usize = m
        .series
        .iter()
        .filter(|(k, _)| k.name() == "traces_span_metrics_duration_milliseconds")
        .map(|(_, v)| match v {
            common::Value::Histogram(h) => h.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(in_histogram as u64, VALUES);
}
