//! Live reload: swaps under load lose and double nothing; open spans keep their configuration.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Harness, TestRecorder};
use tracing::dispatcher;
use tracing::field::Empty;
use tracing_spanmetrics::{EventMatch, Label, Metric, SpanMetrics, SpanMetricsBuilder, Spans};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

fn config(tag: &str, recorder: &Arc<TestRecorder>) -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::counter("work.total")
                .spans(Spans::named("work"))
                .label(Label::fixed("cfg", tag)),
        )
        .metric(
            Metric::gauge("work.open")
                .spans(Spans::named("work"))
                .label(Label::fixed("cfg", tag)),
        )
        .with_recorder(recorder.clone())
}

#[test]
fn swaps_while_two_threads_record_keep_exact_totals() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = config("a", &recorder).build().unwrap();
    let handle = layer.reload_handle();
    // Under a per-layer filter, where `tracing_subscriber::reload` would panic.
    let layer = layer.with_filter(filter_fn(|m| m.name() != "ignored"));
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (d, stop, done) = (dispatch.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                dispatcher::with_default(&d, || {
                    // Keep one span open across swaps, closed every 7 iterations.
                    let mut held = Some(tracing::info_span!("work"));
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        drop(tracing::info_span!("work"));
                        n += 1;
                        if n % 7 == 0 {
                            drop(held.take());
                            n += 1;
                            held = Some(tracing::info_span!("work"));
                        }
                    }
                    drop(held);
                    n += 1;
                    done.fetch_add(n, Ordering::Relaxed);
                })
            })
        })
        .collect();
    for i in 0..200 {
        let tag = if i % 2 == 0 { "b" } else { "a" };
        handle.reload(config(tag, &recorder)).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let m = recorder.snapshot();
    let a = m.counter("work.total", &[("cfg", "a")]).unwrap_or(0);
    let b = m.counter("work.total", &[("cfg", "b")]).unwrap_or(0);
    let total = done.load(Ordering::Relaxed);
    assert!(total > 1000, "the workers ran ({total} spans)");
    assert!(
        a > 0 && b > 0,
        "both configurations recorded (a={a}, b={b})"
    );
    assert_eq!(a + b, total);
    // Every span decremented the gauge of the configuration it opened under.
    assert_eq!(m.gauge("work.open", &[("cfg", "a")]), Some(0.0));
    assert_eq!(m.gauge("work.open", &[("cfg", "b")]), Some(0.0));
}

#[test]
fn open_spans_finish_under_the_configuration_they_started_with() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::histogram("http.ttfb.seconds")
                .spans(Spans::named("http"))
                .time_to(EventMatch::message("headers"))
                .label(Label::fixed("cfg", "old")),
        ),
    );
    let handle = h.layer.as_ref().unwrap().reload_handle();
    let recorder = h.recorder.clone();
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let old = tracing::info_span!("http", deployment_id = Empty);
        handle
            .reload(
                SpanMetrics::builder()
                    .metric(
                        Metric::histogram("http.ttfb.seconds")
                            .spans(Spans::named("http"))
                            .time_to(EventMatch::message("headers"))
                            .label(Label::fixed("cfg", "new")),
                    )
                    .with_recorder(recorder.clone()),
            )
            .unwrap();
        let new = tracing::info_span!("http");
        h.advance_ms(3);
        old.in_scope(|| tracing::info!("headers"));
        new.in_scope(|| tracing::info!("headers"));
        drop((old, new));
        // A refused configuration leaves the running one in place.
        let err = handle
            .reload(SpanMetrics::builder().metric(Metric::counter("bad name")))
            .unwrap_err();
        assert_eq!(err.rule_index(), Some(0));
        assert_eq!(handle.metric_names(), vec!["http.ttfb.seconds".to_owned()]);
    });
    let m = h.snapshot();
    let want = Some(vec![3_000_000f64 * 1e-9]);
    assert_eq!(m.histogram("http.ttfb.seconds", &[("cfg", "old")]), want);
    assert_eq!(m.histogram("http.ttfb.seconds", &[("cfg", "new")]), want);
}

/// The same callsite, on the same thread, before and after swaps (each thread keeps the plans
/// of the callsites it used last: a swap must retire them).
#[test]
fn the_same_callsite_follows_every_swap() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = config("a", &recorder).build().unwrap();
    let handle = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        let work = || tracing::info_span!("work");
        // A span of each configuration stays open across the next swap, so the replaced
        // plan is still alive when the callsite is used again.
        let mut open = None;
        for tag in ["a", "b", "a", "c"] {
            handle.reload(config(tag, &recorder)).unwrap();
            for _ in 0..3 {
                drop(work());
            }
            open = Some(work());
        }
        drop(open);
    });
    let m = recorder.snapshot();
    assert_eq!(m.counter("work.total", &[("cfg", "a")]), Some(8));
    assert_eq!(m.counter("work.total", &[("cfg", "b")]), Some(4));
    assert_eq!(m.counter("work.total", &[("cfg", "c")]), Some(4));
}

/// An event callsite that has nothing to do under one configuration (and is remembered as such
/// by the thread) counts again as soon as a configuration that wants it is swapped in.
#[test]
fn an_event_callsite_without_work_follows_every_swap() {
    let recorder = Arc::new(TestRecorder::default());
    let with_logs = |tag: &str| {
        config(tag, &recorder).metric(
            Metric::counter("logs.total")
                .events(EventMatch::any())
                .label(Label::fixed("cfg", tag)),
        )
    };
    let layer = config("none", &recorder).build().unwrap();
    let handle = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        let log = || tracing::info!("something happened");
        for round in 0..2 {
            handle.reload(config("none", &recorder)).unwrap();
            for _ in 0..3 {
                log();
            }
            handle.reload(with_logs("a")).unwrap();
            for _ in 0..(2 + round) {
                log();
            }
        }
    });
    let m = recorder.snapshot();
    assert_eq!(m.counter("logs.total", &[("cfg", "a")]), Some(5));
    assert_eq!(m.series("logs.total").len(), 1);
}

fn counter_of(limit: usize) -> SpanMetricsBuilder {
    SpanMetrics::builder().metric(
        Metric::counter("jobs.total")
            .spans(Spans::named("job"))
            .label("id")
            .cardinality_limit(limit),
    )
}

/// Runs `program` under a layer counting `jobs.total` (at most `limit` label sets) on a first
/// recorder; `program` is handed a function that reloads the same rules onto a second one.
/// Returns the first recorder and the second.
fn with_a_move_to_another_recorder(
    limit: usize,
    program: impl FnOnce(&dyn Fn()),
) -> (Arc<TestRecorder>, Arc<TestRecorder>) {
    let (first, second) = (
        Arc::new(TestRecorder::default()),
        Arc::new(TestRecorder::default()),
    );
    let layer = counter_of(limit)
        .with_recorder(first.clone())
        .build()
        .unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let move_to_second = || {
        reload
            .reload(counter_of(limit).with_recorder(second.clone()))
            .unwrap()
    };
    dispatcher::with_default(&dispatch, || program(&move_to_second));
    (first, second)
}

#[test]
fn a_reload_without_a_recorder_keeps_the_layers_own() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = counter_of(100)
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        drop(tracing::info_span!("job", id = 1));
        // The README's pattern: a builder that names no recorder.
        reload.reload(counter_of(100)).unwrap();
        drop(tracing::info_span!("job", id = 1));
        drop(tracing::info_span!("job", id = 2));
    });
    let m = recorder.snapshot();
    assert_eq!(m.counter("jobs.total", &[("id", "1")]), Some(2));
    assert_eq!(m.counter("jobs.total", &[("id", "2")]), Some(1));
}

#[test]
fn a_reload_that_names_a_recorder_moves_to_it() {
    let (first, second) = with_a_move_to_another_recorder(100, |move_to_second| {
        drop(tracing::info_span!("job", id = 1));
        move_to_second();
        drop(tracing::info_span!("job", id = 1));
    });
    assert_eq!(
        first.snapshot().counter("jobs.total", &[("id", "1")]),
        Some(1)
    );
    assert_eq!(
        second.snapshot().counter("jobs.total", &[("id", "1")]),
        Some(1)
    );
}

#[test]
fn a_reload_cannot_change_the_clock() {
    let layer = counter_of(10).build().unwrap();
    let err = layer
        .reload_handle()
        .reload(counter_of(10).with_clock(quanta::Clock::new()))
        .expect_err("must be refused");
    assert_eq!(
        err.to_string(),
        "a reload cannot change the layer's clock: spans open across the swap would measure \
         their start and end on two clocks; leave `with_clock` out of the reloaded builder"
    );
}

#[test]
fn the_cardinality_limit_holds_across_reloads_of_the_same_rules() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = counter_of(10)
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        for round in 0..6 {
            if round > 0 {
                reload.reload(counter_of(10)).unwrap();
            }
            for i in 0..10 {
                drop(tracing::info_span!("job", id = round * 10 + i));
            }
        }
    });
    let m = recorder.snapshot();
    // 10 label sets and the overflow series: not 60.
    assert_eq!(m.series("jobs.total").len(), 11);
    assert_eq!(
        m.counter("jobs.total", &[("otel_metric_overflow", "true")]),
        Some(50)
    );
    assert_eq!(
        m.counter(
            tracing_spanmetrics::OVERFLOW_METRIC,
            &[("metric", "jobs_total")]
        ),
        Some(50)
    );
    // Label sets admitted before a reload keep their series after it.
    for i in 0..10 {
        assert_eq!(
            m.counter("jobs.total", &[("id", &i.to_string())]),
            Some(1),
            "id {i}"
        );
    }
}

#[test]
fn the_cardinality_limit_holds_when_a_reload_changes_the_label_keys() {
    let recorder = Arc::new(TestRecorder::default());
    let by = |key: &str| {
        SpanMetrics::builder().metric(
            Metric::counter("jobs.total")
                .spans(Spans::named("job"))
                .label(key)
                .cardinality_limit(10),
        )
    };
    let layer = by("id").with_recorder(recorder.clone()).build().unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        for i in 0..6 {
            drop(tracing::info_span!("job", id = i, kind = i));
        }
        reload.reload(by("kind")).unwrap();
        for i in 0..6 {
            drop(tracing::info_span!("job", id = i, kind = i));
        }
    });
    let m = recorder.snapshot();
    // 6 series by `id`, then 4 by `kind` before the limit of 10, then the overflow series.
    assert_eq!(m.series("jobs.total").len(), 11);
    assert_eq!(
        m.counter("jobs.total", &[("otel_metric_overflow", "true")]),
        Some(2)
    );
    assert_eq!(m.counter("jobs.total", &[("kind", "3")]), Some(1));
    assert_eq!(m.counter("jobs.total", &[("kind", "4")]), None);
}

/// The admissions a family has counted belong to the recorder they were made on: a reload that
/// moves to another recorder starts that recorder's count afresh (its series are new there),
/// while the first recorder's count is not carried over to it.
#[test]
fn a_reload_that_moves_to_another_recorder_counts_admissions_afresh() {
    let (first, second) = with_a_move_to_another_recorder(2, |move_to_second| {
        for id in 1..=3 {
            drop(tracing::info_span!("job", id));
        }
        move_to_second();
        for id in 3..=5 {
            drop(tracing::info_span!("job", id));
        }
    });
    let overflow = [("otel_metric_overflow", "true")];
    let (a, b) = (first.snapshot(), second.snapshot());
    assert_eq!(a.counter("jobs.total", &[("id", "1")]), Some(1));
    assert_eq!(a.counter("jobs.total", &[("id", "2")]), Some(1));
    assert_eq!(a.counter("jobs.total", &overflow), Some(1));
    assert_eq!(a.series("jobs.total").len(), 3);
    assert_eq!(b.counter("jobs.total", &[("id", "3")]), Some(1));
    assert_eq!(b.counter("jobs.total", &[("id", "4")]), Some(1));
    assert_eq!(b.counter("jobs.total", &overflow), Some(1));
    assert_eq!(b.series("jobs.total").len(), 3);
}

/// As `the_cardinality_limit_holds_across_reloads_of_the_same_rules`, on the `metrics`
/// facade's recorder (no `with_recorder`): the facade's recorder before and after a reload is
/// the same one, so the count goes on.
#[test]
fn the_cardinality_limit_holds_across_reloads_on_the_facade_recorder() {
    let recorder = TestRecorder::default();
    let layer = counter_of(3).build().unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    metrics::with_local_recorder(&recorder, || {
        dispatcher::with_default(&dispatch, || {
            for round in 0..3 {
                if round > 0 {
                    reload.reload(counter_of(3)).unwrap();
                }
                for i in 0..3 {
                    drop(tracing::info_span!("job", id = round * 3 + i));
                }
            }
        })
    });
    let m = recorder.snapshot();
    // 3 label sets and the overflow series: not 9.
    assert_eq!(m.series("jobs.total").len(), 4);
    assert_eq!(
        m.counter("jobs.total", &[("otel_metric_overflow", "true")]),
        Some(6)
    );
}

/// A span opened before a reload that moves to another recorder closes on the first recorder,
/// whose families keep their own count: the reload's families count on the new recorder
/// without resetting the first one's, so the span's label set overflows there as it would have
/// without the reload.
#[test]
fn a_span_open_across_a_move_to_another_recorder_counts_against_the_first() {
    let (first, second) = with_a_move_to_another_recorder(2, |move_to_second| {
        drop(tracing::info_span!("job", id = 1));
        drop(tracing::info_span!("job", id = 2));
        let open = tracing::info_span!("job", id = 3);
        move_to_second();
        drop(tracing::info_span!("job", id = 10));
        drop(tracing::info_span!("job", id = 11));
        drop(open);
    });
    let overflow = [("otel_metric_overflow", "true")];
    let (a, b) = (first.snapshot(), second.snapshot());
    assert_eq!(a.counter("jobs.total", &[("id", "3")]), None);
    assert_eq!(a.counter("jobs.total", &overflow), Some(1));
    assert_eq!(a.series("jobs.total").len(), 3);
    assert_eq!(b.counter("jobs.total", &[("id", "10")]), Some(1));
    assert_eq!(b.counter("jobs.total", &[("id", "11")]), Some(1));
    assert_eq!(b.series("jobs.total").len(), 2);
}

/// A layer's `Debug` output says where it records: the `metrics` facade's recorder, or one
/// handed to the builder (not printed: a recorder need not be `Debug`).
#[test]
fn a_layers_debug_output_says_where_it_records() {
    let facade = format!("{:?}", counter_of(2).build().unwrap());
    assert!(facade.contains("recorder: Global"), "{facade}");
    // And its families, by declared name and kind.
    assert!(
        facade.contains(r#"Family { name: "jobs.total", kind: Counter, .. }"#),
        "{facade}"
    );
    let own = counter_of(2)
        .with_recorder(Arc::new(TestRecorder::default()))
        .build()
        .unwrap();
    let own = format!("{own:?}");
    assert!(own.contains("recorder: Explicit(..)"), "{own}");
    assert!(!own.contains("recorder: Global"), "{own}");
}

/// The layer's own accessors describe the configuration it runs: its families, its histograms
/// with their buckets, and the fields no callsite met so far declares.
#[test]
fn the_layer_describes_the_configuration_it_runs() {
    let layer = SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.latency")
                .spans(Spans::named("rpc"))
                .buckets(tracing_spanmetrics::Buckets::explicit([0.1, 1.0]))
                .label("methd"),
        )
        .metric(Metric::counter("rpc.calls").spans(Spans::named("rpc")))
        .build()
        .unwrap();
    assert_eq!(layer.metric_names(), vec!["rpc.latency", "rpc.calls"]);
    assert_eq!(
        layer.histograms(),
        vec![tracing_spanmetrics::HistogramInfo {
            name: "rpc.latency".into(),
            exported_name: "rpc_latency_seconds".into(),
            buckets: vec![0.1, 1.0],
        }]
    );
    // No callsite met yet: every field read is unseen.
    assert_eq!(
        layer.unseen_fields(),
        vec![("rpc.latency".to_owned(), "methd".to_owned())]
    );
}
