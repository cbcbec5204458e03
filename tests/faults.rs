//! Faults: recorders swapped under open spans, spans crossing dispatchers, re-entrant logging
//! from inside field formatting, and 16 threads hammering one series.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestRecorder;
use tracing::field::Empty;
use tracing_spanmetrics::{Label, Metric, SpanMetrics, SpanMetricsBuilder, Spans};
use tracing_subscriber::prelude::*;

#[test]
fn the_recorder_replaced_while_spans_are_open() {
    let layer = SpanMetrics::builder()
        .metric(Metric::counter("done.total").spans(Spans::named("s")))
        .metric(Metric::gauge("open").spans(Spans::named("s")))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let (first, second) = (TestRecorder::default(), TestRecorder::default());
    tracing::subscriber::with_default(subscriber, || {
        let span = metrics::with_local_recorder(&first, || tracing::info_span!("s"));
        assert_eq!(first.snapshot().gauge("open", &[]), Some(1.0));
        metrics::with_local_recorder(&second, || drop(span));
        // The gauge went down where it went up; the close was counted where it happened.
        assert_eq!(first.snapshot().gauge("open", &[]), Some(0.0));
        assert_eq!(first.snapshot().counter("done.total", &[]), None);
        assert_eq!(second.snapshot().counter("done.total", &[]), Some(1));
        assert_eq!(second.snapshot().gauge("open", &[]), None);
        // No recorder at all: nothing recorded, nothing broken.
        drop(tracing::info_span!("s"));
    });
}

/// Runs `on_first`, then `on_second`, under one layer built from `builder`, each with its own
/// recorder current in the `metrics` facade; returns both recorders.
fn on_two_recorders(
    builder: SpanMetricsBuilder,
    on_first: impl FnOnce(),
    on_second: impl FnOnce(),
) -> (TestRecorder, TestRecorder) {
    let subscriber = tracing_subscriber::registry().with(builder.build().unwrap());
    let (first, second) = (TestRecorder::default(), TestRecorder::default());
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&first, on_first);
        metrics::with_local_recorder(&second, on_second);
    });
    (first, second)
}

/// The cardinality limit counts per recorder: when the facade's recorder is replaced, the new
/// one admits label sets from none (it has none of the first one's series).
#[test]
fn each_recorder_the_facade_switches_to_counts_its_own_admissions() {
    let builder = SpanMetrics::builder().metric(
        Metric::counter("jobs.total")
            .spans(Spans::named("job"))
            .label("id")
            .cardinality_limit(2),
    );
    let jobs = |ids: std::ops::RangeInclusive<u64>| {
        for id in ids {
            drop(tracing::info_span!("job", id));
        }
    };
    let (first, second) = on_two_recorders(builder, || jobs(1..=3), || jobs(4..=6));
    let overflow = [("otel_metric_overflow", "true")];
    let (a, b) = (first.snapshot(), second.snapshot());
    assert_eq!(a.counter("jobs.total", &[("id", "1")]), Some(1));
    assert_eq!(a.counter("jobs.total", &[("id", "2")]), Some(1));
    assert_eq!(a.counter("jobs.total", &overflow), Some(1));
    assert_eq!(a.series("jobs.total").len(), 3);
    assert_eq!(b.counter("jobs.total", &[("id", "4")]), Some(1));
    assert_eq!(b.counter("jobs.total", &[("id", "5")]), Some(1));
    assert_eq!(b.counter("jobs.total", &overflow), Some(1));
    assert_eq!(b.series("jobs.total").len(), 3);
}

/// Truncated label values are counted on the recorder current when they are cut, also after
/// the facade's recorder was replaced.
#[test]
fn truncations_count_on_the_recorder_current_when_they_happen() {
    let builder = SpanMetrics::builder()
        .metric(
            Metric::counter("jobs.total")
                .spans(Spans::named("job"))
                .label("id"),
        )
        .max_label_len(8);
    let (first, second) = on_two_recorders(
        builder,
        || drop(tracing::info_span!("job", id = "abcdefgh-")),
        || {
            drop(tracing::info_span!("job", id = "ijklmnop-"));
            drop(tracing::info_span!("job", id = "qrstuvwx-"));
        },
    );
    let truncated = tracing_spanmetrics::TRUNCATED_METRIC;
    assert_eq!(first.snapshot().counter(truncated, &[]), Some(1));
    assert_eq!(second.snapshot().counter(truncated, &[]), Some(2));
    assert_eq!(
        second
            .snapshot()
            .counter("jobs.total", &[("id", "ijklmnop")]),
        Some(1)
    );
}

#[test]
fn spans_crossing_dispatchers() {
    let rec_a = Arc::new(TestRecorder::default());
    let rec_b = Arc::new(TestRecorder::default());
    let layer = |r: &Arc<TestRecorder>| {
        SpanMetrics::builder()
            .metric(Metric::counter("calls").label(Label::span_name("name")))
            .metric(Metric::gauge("open").label(Label::span_name("name")))
            .with_recorder(r.clone())
            .build()
            .unwrap()
    };
    let a = tracing::Dispatch::new(tracing_subscriber::registry().with(layer(&rec_a)));
    let b = tracing::Dispatch::new(tracing_subscriber::registry().with(layer(&rec_b)));
    let (outer, inner, lone) = tracing::dispatcher::with_default(&a, || {
        let outer = tracing::info_span!("outer");
        let inner = tracing::info_span!(parent: &outer, "inner");
        (outer, inner, tracing::info_span!("lone"))
    });
    tracing::dispatcher::with_default(&b, || {
        // Entered, given events and closed while another subscriber is the default: each span
        // goes back to the subscriber that created it.
        inner.in_scope(|| tracing::info!("event in a's span, b's default"));
        let own = tracing::info_span!("own");
        drop(lone);
        drop(own);
        // (Closing `inner` here would make tracing-subscriber's Registry release its parent
        // through *b* and panic there: an upstream hazard, independent of this layer.)
    });
    tracing::dispatcher::with_default(&a, || drop(inner));
    drop(a);
    let ma = rec_a.snapshot();
    assert_eq!(ma.counter("calls", &[("name", "inner")]), Some(1));
    assert_eq!(ma.counter("calls", &[("name", "lone")]), Some(1));
    assert_eq!(ma.gauge("open", &[("name", "outer")]), Some(1.0));
    let mb = rec_b.snapshot();
    assert_eq!(mb.counter("calls", &[("name", "own")]), Some(1));
    assert_eq!(mb.series("calls").len(), 1);
    // The span outlives the dispatch it came from (the span keeps its subscriber alive).
    drop(outer);
    assert_eq!(
        rec_a.snapshot().counter("calls", &[("name", "outer")]),
        Some(1)
    );
    assert_eq!(
        rec_a.snapshot().gauge("open", &[("name", "outer")]),
        Some(0.0)
    );
}

/// Logs from inside its own formatting.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::error!("formatting a field");
        f.write_str("chatty")
    }
}

#[test]
fn a_field_that_logs_while_being_formatted_does_not_deadlock() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = SpanMetrics::builder()
        .metric(
            Metric::counter("calls")
                .spans(Spans::named("s"))
                .label("v")
                .label(Label::outcome("result")),
        )
        .metric(Metric::counter("errors.total").events(tracing_spanmetrics::EventMatch::any()))
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            // Register `Chatty`'s event callsite outside any callback first. Were its first
            // use inside the span's creation while this is the only live dispatcher,
            // tracing-core would ask the default dispatcher for its interest, get the no-op
            // one (tracing's re-entrancy guard) and disable the callsite for good, so the
            // result would depend on which other tests happen to run at the same time.
            let _ = format!("{Chatty:?}");
            let s = tracing::info_span!("s", v = ?Chatty);
            let _g = s.enter();
            s.record("v", tracing::field::debug(Chatty));
            tracing::info!(v = ?Chatty, "event with a chatty field");
            drop(_g);
            let t = tracing::info_span!("s", v = Empty);
            t.in_scope(|| t.record("v", tracing::field::debug(Chatty)));
        });
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the layer deadlocked on a re-entrant event");
    let m = recorder.snapshot();
    // Tracing itself drops events emitted inside a callback it dispatched through the default
    // subscriber (span creation); `Span::record` calls the span's subscriber directly, so the
    // events logged while formatting a recorded field do arrive, inside the entered span,
    // while the layer is in its `on_record`: both spans failed.
    assert_eq!(
        m.counter("calls", &[("v", "chatty"), ("result", "error")]),
        Some(2)
    );
    // 1 formatting event from the warm-up, 2 from `record`, 1 explicit event.
    assert_eq!(m.counter("errors.total", &[]), Some(4));
}

#[test]
fn sixteen_threads_hammer_one_series_for_ten_seconds() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = SpanMetrics::builder()
        .metric(
            Metric::counter("hammer.total")
                .spans(Spans::named("h"))
                .label("k"),
        )
        .metric(
            Metric::histogram("hammer.seconds")
                .spans(Spans::named("h"))
                .label("k"),
        )
        .metric(
            Metric::gauge("hammer.open")
                .spans(Spans::named("h"))
                .label("k"),
        )
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let total = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (d, total) = (dispatch.clone(), total.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..100 {
                            let s = tracing::info_span!("h", k = "same");
                            let _g = s.enter();
                        }
                        n += 100;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = recorder.snapshot();
    let total = total.load(Ordering::Relaxed);
    assert!(total > 16_000, "the threads ran ({total})");
    assert_eq!(m.counter("hammer.total", &[("k", "same")]), Some(total));
    assert_eq!(
        m.histogram("hammer.seconds", &[("k", "same")])
            .map(|v| v.len() as u64),
        Some(total)
    );
    assert_eq!(m.gauge("hammer.open", &[("k", "same")]), Some(0.0));
}
