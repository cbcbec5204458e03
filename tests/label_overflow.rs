//! Per-label overflow: once a label took its limit of distinct values in a family, a new value
//! becomes `__cardinality_overflow__` while the other labels keep theirs, and every such
//! observation is counted in `spanmetrics_label_overflow_observations_total{metric, label}`.
//! Counts are exact, also when threads cross a label's limit at once and across reloads.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Harness, TestRecorder};
use tracing::dispatcher;
use tracing_spanmetrics::{
    LABEL_OVERFLOW_METRIC, LABEL_OVERFLOW_VALUE, Label, Metric, SpanMetrics, SpanMetricsBuilder,
    Spans,
};
use tracing_subscriber::prelude::*;

const MARK: &str = LABEL_OVERFLOW_VALUE;

fn requests(user_limit: usize) -> SpanMetricsBuilder {
    SpanMetrics::builder().metric(
        Metric::counter("requests")
            .spans(Spans::named("request"))
            .label(Label::field("user").value_limit(user_limit))
            .label("method"),
    )
}

fn replaced(m: &common::Metrics, label: &str) -> Option<u64> {
    m.counter(
        LABEL_OVERFLOW_METRIC,
        &[("metric", "requests_total"), ("label", label)],
    )
}

#[test]
fn only_the_offending_labels_value_is_replaced() {
    let mut h = Harness::new(requests(3));
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for method in ["GET", "POST"] {
            for u in 0..10 {
                drop(tracing::info_span!("request", user = u, method));
            }
        }
        // A value taken before the limit keeps its series after it.
        drop(tracing::info_span!("request", user = 1, method = "PUT"));
        // A missing value is no value: never replaced.
        drop(tracing::info_span!("request", method = "GET"));
    });
    let m = h.snapshot();
    for u in ["0", "1", "2"] {
        for method in ["GET", "POST"] {
            assert_eq!(
                m.counter("requests", &[("user", u), ("method", method)]),
                Some(1),
                "{u} {method}"
            );
        }
    }
    assert_eq!(
        m.counter("requests", &[("user", "1"), ("method", "PUT")]),
        Some(1)
    );
    // The seven users past the limit, once per method: the method is kept.
    assert_eq!(
        m.counter("requests", &[("user", MARK), ("method", "GET")]),
        Some(7)
    );
    assert_eq!(
        m.counter("requests", &[("user", MARK), ("method", "POST")]),
        Some(7)
    );
    assert_eq!(m.counter("requests", &[("method", "GET")]), Some(1));
    assert_eq!(m.series("requests").len(), 10);
    assert_eq!(replaced(&m, "user"), Some(14));
    // The label without a limit never overflowed: no counter for it.
    assert_eq!(replaced(&m, "method"), None);
    // No label set was refused as a whole: the family's counter exists from the start, at 0.
    assert_eq!(
        m.counter(
            tracing_spanmetrics::OVERFLOW_METRIC,
            &[("metric", "requests_total")]
        ),
        Some(0)
    );
}

#[test]
fn each_label_has_its_own_limit_and_the_builders_applies_to_the_others() {
    let mut h = Harness::new(
        SpanMetrics::builder().label_value_limit(2).metric(
            Metric::counter("requests")
                .spans(Spans::named("request"))
                .label(Label::field("user").value_limit(4))
                .label("method"),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for u in 0..6 {
            let method = ["GET", "POST", "PUT"][u % 3];
            drop(tracing::info_span!("request", user = u, method));
        }
    });
    let m = h.snapshot();
    let count =
        |user: &str, method: &str| m.counter("requests", &[("user", user), ("method", method)]);
    assert_eq!(count("0", "GET"), Some(1));
    assert_eq!(count("1", "POST"), Some(1));
    assert_eq!(count("2", MARK), Some(1));
    assert_eq!(count("3", "GET"), Some(1));
    assert_eq!(count(MARK, "POST"), Some(1));
    assert_eq!(count(MARK, MARK), Some(1));
    assert_eq!(m.series("requests").len(), 6);
    assert_eq!(replaced(&m, "user"), Some(2));
    assert_eq!(replaced(&m, "method"), Some(2));
}

#[test]
fn the_whole_series_limit_still_applies_after_the_label_limit() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("requests")
                .spans(Spans::named("request"))
                .label(Label::field("user").value_limit(2))
                .label("method")
                .cardinality_limit(3),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for (u, method) in [(0, "GET"), (1, "GET"), (2, "GET"), (0, "POST"), (3, "PUT")] {
            drop(tracing::info_span!("request", user = u, method));
        }
    });
    let m = h.snapshot();
    // (0,GET), (1,GET), (mark,GET) take the three label sets; (0,POST) and (mark,PUT) overflow.
    assert_eq!(
        m.counter("requests", &[("user", MARK), ("method", "GET")]),
        Some(1)
    );
    assert_eq!(
        m.counter("requests", &[("otel_metric_overflow", "true")]),
        Some(2)
    );
    assert_eq!(m.series("requests").len(), 4);
    // The value 3 was replaced on its way to the overflow series: counted too.
    assert_eq!(replaced(&m, "user"), Some(2));
}

const THREADS: usize = 8;
const PER_THREAD: u64 = 200;

#[test]
fn threads_crossing_a_labels_limit_at_once_keep_exact_counts() {
    for round in 0..20 {
        let limit = 3;
        let mut h = Harness::new(requests(limit));
        let d = h.dispatch();
        let ready = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (ready, d) = (&ready, &d);
                s.spawn(move || {
                    dispatcher::with_default(d, || {
                        ready.fetch_add(1, Ordering::SeqCst);
                        while ready.load(Ordering::SeqCst) < THREADS {
                            std::hint::spin_loop();
                        }
                        for _ in 0..PER_THREAD {
                            drop(tracing::info_span!("request", user = t, method = "GET"));
                        }
                    })
                });
            }
        });
        let m = h.snapshot();
        let mut by_user: BTreeMap<String, u64> = BTreeMap::new();
        for labels in m.series("requests") {
            let user = labels.iter().find(|(k, _)| k == "user").unwrap().1.clone();
            let n = m
                .counter("requests", &[("user", &user), ("method", "GET")])
                .unwrap();
            by_user.insert(user, n);
        }
        // Exactly `limit` users kept, each with every one of its spans; the rest replaced.
        let marked = by_user.remove(MARK).unwrap_or(0);
        assert_eq!(by_user.len(), limit, "round {round}: {by_user:?}");
        assert!(
            by_user.values().all(|&n| n == PER_THREAD),
            "round {round}: {by_user:?}"
        );
        let spans = THREADS as u64 * PER_THREAD;
        assert_eq!(marked, spans - limit as u64 * PER_THREAD, "round {round}");
        assert_eq!(replaced(&m, "user"), Some(marked), "round {round}");
    }
}

#[test]
fn the_values_a_label_took_hold_across_reloads() {
    let recorder = Arc::new(TestRecorder::default());
    let layer = requests(2).with_recorder(recorder.clone()).build().unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || {
        drop(tracing::info_span!("request", user = 0, method = "GET"));
        drop(tracing::info_span!("request", user = 1, method = "GET"));
        // The same rules again: the family keeps the values its label took.
        reload.reload(requests(2)).unwrap();
        drop(tracing::info_span!("request", user = 2, method = "GET"));
        drop(tracing::info_span!("request", user = 0, method = "POST"));
        // Changed label keys: a new table, the same values taken.
        reload
            .reload(
                SpanMetrics::builder().metric(
                    Metric::counter("requests")
                        .spans(Spans::named("request"))
                        .label(Label::field("user").value_limit(2))
                        .label("region"),
                ),
            )
            .unwrap();
        drop(tracing::info_span!("request", user = 3, region = "eu"));
        drop(tracing::info_span!("request", user = 1, region = "eu"));
    });
    let m = recorder.snapshot();
    assert_eq!(
        m.counter("requests", &[("user", MARK), ("method", "GET")]),
        Some(1)
    );
    assert_eq!(
        m.counter("requests", &[("user", "0"), ("method", "POST")]),
        Some(1)
    );
    assert_eq!(
        m.counter("requests", &[("user", MARK), ("region", "eu")]),
        Some(1)
    );
    assert_eq!(
        m.counter("requests", &[("user", "1"), ("region", "eu")]),
        Some(1)
    );
    assert_eq!(replaced(&m, "user"), Some(2));
}

fn refused(builder: SpanMetricsBuilder) -> String {
    builder.build().expect_err("must be refused").to_string()
}

#[test]
fn limits_are_validated() {
    assert_eq!(
        refused(requests(0)),
        "rule #0 (`requests`): label `user`: the value limit must be at least 1"
    );
    assert_eq!(
        refused(SpanMetrics::builder().label_value_limit(0)),
        "the label value limit must be at least 1"
    );
    assert_eq!(
        refused(requests(5).max_label_len(16)),
        "rule #0 (`requests`): label `user`: a value limit writes `__cardinality_overflow__` \
         (24 bytes), which exceeds the 16-byte bound on label values; raise `max_label_len` to \
         at least 24"
    );
    assert_eq!(
        refused(
            requests(5).metric(
                Metric::counter("requests")
                    .spans(Spans::named("other"))
                    .label("user")
                    .label("method")
            )
        ),
        "rule #1 (`requests`): label `user`: value limit none differs from 5 declared by an \
         earlier rule of the same metric"
    );
    let file_error = |text: &str| {
        SpanMetrics::builder()
            .toml(text)
            .expect_err("must be refused")
            .to_string()
    };
    assert_eq!(
        file_error(
            "[[metric]]\nname = \"r\"\nkind = \"counter\"\nlabels = [{ field = \"u\", value_limit = 0 }]\n"
        ),
        "line 4, column 1: rule #0 (`r`): label `u`: the value limit must be at least 1"
    );
    assert_eq!(
        file_error("[settings]\nlabel_value_limit = -1\n"),
        "line 2, column 21: expected a non-negative integer, found `-1`"
    );
    assert_eq!(
        file_error("[settings]\nlabel_value_limit = 0\n"),
        "line 2, column 1: [settings] label_value_limit: the label value limit must be at least 1"
    );
    // The same from the file as from the builder.
    let from_file = SpanMetrics::builder()
        .toml(
            "[settings]\nlabel_value_limit = 7\n[[metric]]\nname = \"requests\"\nkind = \
             \"counter\"\nspans = \"request\"\nlabels = [{ field = \"user\", value_limit = 3 }, \
             \"method\"]\n",
        )
        .unwrap();
    let from_code = requests(3).label_value_limit(7);
    assert_eq!(from_file.rules(), from_code.rules());
    assert_eq!(format!("{from_file:?}"), format!("{from_code:?}"));
}

/// A label's replaced values all share one series: the label set with the marker is admitted
/// once, so replacing values never fills the family's own limit.
#[test]
fn replaced_values_take_one_admission_of_the_familys_limit() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("requests")
                .spans(Spans::named("request"))
                .label(Label::field("user").value_limit(1))
                .cardinality_limit(3),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for u in 0..6 {
            drop(tracing::info_span!("request", user = u));
        }
    });
    let m = h.snapshot();
    assert_eq!(m.counter("requests", &[("user", "0")]), Some(1));
    assert_eq!(m.counter("requests", &[("user", MARK)]), Some(5));
    assert_eq!(replaced(&m, "user"), Some(5));
    // Two label sets of the limit of 3: nothing folded into the family's overflow series.
    assert_eq!(m.series("requests").len(), 2);
    assert_eq!(
        m.counter(
            tracing_spanmetrics::OVERFLOW_METRIC,
            &[("metric", "requests_total")]
        ),
        Some(0)
    );
}

/// Each health counter is described with what it counts.
#[test]
fn the_health_counters_are_described() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::histogram("requests.size")
                .spans(Spans::named("request"))
                .span_field("bytes")
                .label(Label::field("user").value_limit(1)),
        ),
    );
    let _ = h.dispatch();
    let m = h.snapshot();
    let described = |name: &str| m.description(name).and_then(|(_, text)| text);
    assert_eq!(
        described(tracing_spanmetrics::OVERFLOW_METRIC).as_deref(),
        Some(
            "Observations folded into a metric's overflow series because its cardinality \
             limit was reached"
        )
    );
    assert_eq!(
        described(tracing_spanmetrics::TRUNCATED_METRIC).as_deref(),
        Some("Label values cut to the configured length bound")
    );
    assert_eq!(
        described(LABEL_OVERFLOW_METRIC).as_deref(),
        Some(
            "Observations whose label value was replaced because the label reached its limit \
             of distinct values"
        )
    );
    assert_eq!(
        described(tracing_spanmetrics::REJECTED_METRIC).as_deref(),
        Some(
            "Values that could not be recorded (not a number, not finite, or negative for a \
             counter)"
        )
    );
}
