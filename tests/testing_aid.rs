//! `tracing_spanmetrics::testing`: exact values read back through the capture, label-set
//! matching, name matching, cumulative snapshots and isolation between captures.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::time::Duration;

use quanta::{Clock, Mock};
use tracing::field::Empty;
use tracing::{Dispatch, dispatcher};
use tracing_spanmetrics::testing::MetricsCapture;
use tracing_spanmetrics::{
    Metric, MetricKind, OVERFLOW_METRIC, SpanMetrics, SpanMetricsBuilder, Spans, TRUNCATED_METRIC,
};
use tracing_subscriber::prelude::*;

/// The rules every test uses: `rpc` spans labelled by `method`.
fn rpc_rules() -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .spans(Spans::named("rpc"))
                .label("method"),
        )
        .metric(
            Metric::counter("rpc.calls.total")
                .spans(Spans::named("rpc"))
                .label("method"),
        )
        .metric(Metric::gauge("rpc.in_flight").spans(Spans::named("rpc")))
}

/// A dispatch recording into `capture`, with a mock clock.
fn dispatch(capture: &MetricsCapture, rules: SpanMetricsBuilder) -> (Dispatch, Arc<Mock>) {
    let (clock, mock) = Clock::mock();
    let layer = rules
        .with_recorder(capture.recorder())
        .with_clock(clock)
        .build()
        .expect("valid rules");
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        mock,
    )
}

fn rpc(method: &str) {
    let _span = tracing::info_span!("rpc", method).entered();
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn counters_are_exact_and_snapshots_cumulative() {
    let capture = MetricsCapture::new();
    let (d, _) = dispatch(&capture, rpc_rules());
    dispatcher::with_default(&d, || {
        for _ in 0..3 {
            rpc("get");
        }
        rpc("put");
    });
    let first = capture.snapshot();
    assert_eq!(
        first.counter("rpc.calls.total", &[("method", "get")]),
        Some(3)
    );
    assert_eq!(
        first.counter("rpc.calls.total", &[("method", "put")]),
        Some(1)
    );
    // A snapshot consumes nothing: the next one, with nothing recorded between, is the same.
    assert_eq!(capture.snapshot(), first);

    dispatcher::with_default(&d, || {
        rpc("get");
        rpc("get");
    });
    let second = capture.snapshot();
    assert_eq!(
        second.counter("rpc.calls.total", &[("method", "get")]),
        Some(5)
    );
    assert_eq!(
        second.counter("rpc.calls.total", &[("method", "put")]),
        Some(1)
    );
    // The earlier snapshot is a value: it did not move.
    assert_eq!(
        first.counter("rpc.calls.total", &[("method", "get")]),
        Some(3)
    );
}

#[test]
fn gauges_hold_their_current_value_across_snapshots() {
    let capture = MetricsCapture::new();
    let rules = rpc_rules().metric(
        Metric::gauge("queue.depth")
            .spans(Spans::named("queue"))
            .span_field("depth"),
    );
    let (d, _) = dispatch(&capture, rules);
    dispatcher::with_default(&d, || {
        let a = tracing::info_span!("rpc", method = "get");
        let b = tracing::info_span!("rpc", method = "put");
        assert_eq!(capture.snapshot().gauge("rpc.in_flight", &[]), Some(2.0));
        drop(a);
        // Had the snapshot reset the gauge, these decrements would take it below zero.
        assert_eq!(capture.snapshot().gauge("rpc.in_flight", &[]), Some(1.0));
        drop(b);

        let q = tracing::info_span!("queue", depth = Empty);
        q.record("depth", 7);
        assert_eq!(capture.snapshot().gauge("queue.depth", &[]), Some(7.0));
        q.record("depth", 3);
        assert_eq!(capture.snapshot().gauge("queue.depth", &[]), Some(3.0));
    });
    let snapshot = capture.snapshot();
    assert_eq!(snapshot.gauge("rpc.in_flight", &[]), Some(0.0));
    assert_eq!(snapshot.gauge("queue.depth", &[]), Some(3.0));
}

#[test]
fn histograms_keep_every_observation() {
    let capture = MetricsCapture::new();
    let (d, mock) = dispatch(&capture, rpc_rules());
    let timed = |ms: u64| {
        let span = tracing::info_span!("rpc", method = "get");
        mock.increment(Duration::from_millis(ms));
        drop(span);
    };
    dispatcher::with_default(&d, || {
        timed(500);
        timed(250);
    });
    let get = [("method", "get")];
    let first = capture.snapshot();
    assert_eq!(first.histogram_count("rpc.duration.seconds", &get), Some(2));
    assert_eq!(
        first.histogram("rpc.duration.seconds", &get),
        Some(vec![0.25, 0.5])
    );
    assert_eq!(
        first.histogram_sum("rpc.duration.seconds", &get),
        Some(0.75)
    );

    dispatcher::with_default(&d, || timed(1000));
    let second = capture.snapshot();
    assert_eq!(
        second.histogram_count("rpc.duration.seconds", &get),
        Some(3)
    );
    assert_eq!(
        second.histogram("rpc.duration.seconds", &get),
        Some(vec![0.25, 0.5, 1.0])
    );
}

#[test]
fn series_match_their_exact_full_label_set_in_any_order() {
    let capture = MetricsCapture::new();
    let rules = SpanMetrics::builder().metric(
        Metric::counter("rpc.calls.total")
            .spans(Spans::named("rpc"))
            .labels(["method", "status"]),
    );
    let (d, _) = dispatch(&capture, rules);
    dispatcher::with_default(&d, || {
        let _span = tracing::info_span!("rpc", method = "get", status = 200).entered();
    });
    let s = capture.snapshot();
    let name = "rpc.calls.total";
    assert_eq!(
        s.counter(name, &[("method", "get"), ("status", "200")]),
        Some(1)
    );
    assert_eq!(
        s.counter(name, &[("status", "200"), ("method", "get")]),
        Some(1)
    );
    // The series carries a label more than asked for: no match.
    assert_eq!(s.counter(name, &[("method", "get")]), None);
    assert_eq!(s.counter(name, &[]), None);
    // A label more than the series has, or another value: no match.
    let extra = [("method", "get"), ("status", "200"), ("zone", "a")];
    assert_eq!(s.counter(name, &extra), None);
    assert_eq!(
        s.counter(name, &[("method", "get"), ("status", "500")]),
        None
    );
    assert_eq!(s.counter(name, &[("method", "get"), ("code", "200")]), None);
}

#[test]
fn missing_series_read_as_none() {
    let capture = MetricsCapture::new();
    assert!(capture.snapshot().is_empty());
    let (d, _) = dispatch(&capture, rpc_rules());
    dispatcher::with_default(&d, || rpc("get"));
    let s = capture.snapshot();
    assert!(!s.is_empty());
    assert_eq!(s.counter("rpc.calls.total", &[("method", "put")]), None);
    // A family declared `rpc.calls` would be exported as `rpc_calls_total`: that is found.
    assert_eq!(s.counter("rpc.calls", &[("method", "get")]), Some(1));
    assert_eq!(s.counter("rpc.call", &[("method", "get")]), None);
    assert_eq!(s.counter("no.such.metric", &[]), None);
    // The family exists, but as another kind.
    assert_eq!(s.gauge("rpc.calls.total", &[("method", "get")]), None);
    assert_eq!(s.histogram("rpc.calls.total", &[("method", "get")]), None);
    assert_eq!(
        s.counter("rpc.duration.seconds", &[("method", "get")]),
        None
    );
    assert_eq!(
        s.histogram_count("rpc.duration.seconds", &[("method", "put")]),
        None
    );
    assert_eq!(s.histogram_sum("rpc.duration.seconds", &[]), None);
    assert!(s.series("no.such.metric").is_empty());
}

#[test]
fn families_and_series_list_what_was_recorded() {
    let capture = MetricsCapture::new();
    let (d, _) = dispatch(&capture, rpc_rules());
    dispatcher::with_default(&d, || {
        rpc("put");
        rpc("get");
        rpc("put");
    });
    let s = capture.snapshot();
    assert_eq!(
        s.families(),
        [
            ("rpc_calls_total", MetricKind::Counter),
            ("rpc_duration_seconds", MetricKind::Histogram),
            ("rpc_in_flight", MetricKind::Gauge),
            // The layer's health counters, registered at 0 when it is built: truncated always,
            // overflow for every family; no numeric field, no label with a value limit.
            (TRUNCATED_METRIC, MetricKind::Counter),
            (OVERFLOW_METRIC, MetricKind::Counter),
        ]
    );
    assert_eq!(
        s.series(OVERFLOW_METRIC),
        [
            owned(&[("metric", "rpc_calls_total")]),
            owned(&[("metric", "rpc_duration_seconds")]),
            owned(&[("metric", "rpc_in_flight")]),
        ]
    );
    assert_eq!(
        s.series("rpc.calls.total"),
        [owned(&[("method", "get")]), owned(&[("method", "put")])]
    );
    assert_eq!(s.series("rpc.in_flight"), [owned(&[])]);
    // The Debug output names every series.
    let debug = format!("{s:?}");
    assert!(
        debug.contains(r#"rpc_calls_total{method="put"}: Counter(2)"#),
        "{debug}"
    );
}

#[test]
fn names_match_as_registered_or_with_dots_as_underscores() {
    let capture = MetricsCapture::new();
    metrics::with_local_recorder(&*capture.recorder(), || {
        // As a layer that registers Prometheus names would.
        metrics::counter!("rpc_calls_total", "method" => "get").increment(4);
        metrics::histogram!("rpc_duration_seconds").record(0.5);
        // Both spellings registered: the exact name wins.
        metrics::gauge!("rpc.in_flight").set(1.0);
        metrics::gauge!("rpc_in_flight").set(2.0);
    });
    let s = capture.snapshot();
    assert_eq!(s.counter("rpc.calls.total", &[("method", "get")]), Some(4));
    assert_eq!(s.counter("rpc_calls_total", &[("method", "get")]), Some(4));
    assert_eq!(s.histogram("rpc.duration.seconds", &[]), Some(vec![0.5]));
    assert_eq!(s.series("rpc.calls.total"), [owned(&[("method", "get")])]);
    assert_eq!(s.gauge("rpc.in_flight", &[]), Some(1.0));
    assert_eq!(s.gauge("rpc_in_flight", &[]), Some(2.0));
    assert_eq!(s.series("rpc.in_flight"), [owned(&[])]);
    // Underscores are not read as dots, and other characters are not rewritten.
    metrics::with_local_recorder(&*capture.recorder(), || {
        metrics::counter!("jobs.done").increment(1);
    });
    let s = capture.snapshot();
    assert_eq!(s.counter("jobs_done", &[]), None);
    assert_eq!(s.counter("jobs-done", &[]), None);
    assert_eq!(s.counter("jobs.done", &[]), Some(1));
}

#[test]
fn captures_are_isolated_from_each_other() {
    let a = MetricsCapture::new();
    let b = MetricsCapture::new();
    let (da, _) = dispatch(&a, rpc_rules());
    let (db, _) = dispatch(&b, rpc_rules());
    dispatcher::with_default(&da, || {
        rpc("get");
        rpc("get");
    });
    // `b` holds only the health counters its layer registered at 0 when built, nothing of `a`.
    let untouched = b.snapshot();
    assert_eq!(
        untouched.families(),
        [
            (TRUNCATED_METRIC, MetricKind::Counter),
            (OVERFLOW_METRIC, MetricKind::Counter),
        ]
    );
    assert_eq!(untouched.counter(TRUNCATED_METRIC, &[]), Some(0));
    assert!(untouched.series("rpc.calls.total").is_empty());
    dispatcher::with_default(&db, || rpc("get"));
    assert_eq!(
        a.snapshot()
            .counter("rpc.calls.total", &[("method", "get")]),
        Some(2)
    );
    assert_eq!(
        b.snapshot()
            .counter("rpc.calls.total", &[("method", "get")]),
        Some(1)
    );
    // Snapshotting one capture leaves the other's values alone.
    let _ = a.snapshot();
    assert_eq!(
        b.snapshot()
            .counter("rpc.calls.total", &[("method", "get")]),
        Some(1)
    );
}

#[test]
fn snapshots_during_concurrent_recording_lose_nothing() {
    const THREADS: usize = 2;
    const SPANS: usize = 5_000;
    let capture = MetricsCapture::new();
    let (d, _) = dispatch(&capture, rpc_rules());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let d = d.clone();
                scope.spawn(move || {
                    dispatcher::with_default(&d, || {
                        for _ in 0..SPANS {
                            rpc("get");
                        }
                    });
                })
            })
            .collect();
        let mut snapshots = 0;
        while !workers.iter().all(|w| w.is_finished()) || snapshots < 10 {
            let _ = capture.snapshot();
            snapshots += 1;
        }
    });
    let s = capture.snapshot();
    let total = THREADS * SPANS;
    let get = [("method", "get")];
    assert_eq!(s.counter("rpc.calls.total", &get), Some(total as u64));
    assert_eq!(s.histogram_count("rpc.duration.seconds", &get), Some(total));
    assert_eq!(s.gauge("rpc.in_flight", &[]), Some(0.0));
}
