//! Every misconfiguration fails at build time with a message naming the rule and the problem.

use tracing_spanmetrics::{
    Buckets, Condition, EventMatch, Label, Mapping, Metric, SpanMetrics, SpanMetricsBuilder, Spans,
    Unit,
};

fn error_of(builder: SpanMetricsBuilder) -> String {
    builder.build().expect_err("must be refused").to_string()
}

fn one(metric: Metric) -> String {
    error_of(SpanMetrics::builder().metric(metric))
}

#[test]
fn invalid_metric_names() {
    assert_eq!(
        one(Metric::counter("")),
        "rule #0 (``): the metric name is empty"
    );
    assert_eq!(
        one(Metric::counter("9lives")),
        "rule #0 (`9lives`): invalid metric name `9lives`: it must start with a letter, `_` or `:`"
    );
    assert_eq!(
        one(Metric::counter("http requests")),
        "rule #0 (`http requests`): invalid metric name `http requests`: ` ` is not allowed (use letters, digits, `_`, `:` and `.`)"
    );
    assert_eq!(
        one(Metric::counter("a..b")),
        "rule #0 (`a..b`): invalid metric name `a..b`: empty dot-separated segment"
    );
}

#[test]
fn invalid_label_keys() {
    assert_eq!(
        one(Metric::counter("c").label(Label::field("x").rename("bad-key"))),
        "rule #0 (`c`): invalid label key `bad-key`: `-` is not allowed (use letters, digits, `_` and `.`)"
    );
    assert_eq!(
        one(Metric::counter("c").label("__name")),
        "rule #0 (`c`): invalid label key `__name`: keys starting with `__` are reserved by Prometheus"
    );
    assert_eq!(
        one(Metric::histogram("h").label("le")),
        "rule #0 (`h`): label key `le` is reserved for histogram buckets and quantiles"
    );
    assert_eq!(
        one(Metric::counter("c").label("otel_metric_overflow")),
        "rule #0 (`c`): label key `otel_metric_overflow` is reserved for the overflow series"
    );
    assert_eq!(
        one(Metric::counter("c").label("a.b").label("a_b")),
        "rule #0 (`c`): label key `a_b` appears twice (after `.` becomes `_` in Prometheus)"
    );
    assert_eq!(
        one(Metric::counter("c").labels((0..33).map(|i| format!("l{i}")))),
        "rule #0 (`c`): 33 labels; at most 32 are allowed"
    );
}

#[test]
fn measures_that_do_not_fit_the_instrument() {
    assert_eq!(
        one(Metric::counter("c").wall_time()),
        "rule #0 (`c`): a counter cannot record `wall_time` (durations need a histogram, span and event counts a counter, in-flight spans a gauge)"
    );
    assert_eq!(
        one(Metric::histogram("h").in_flight()),
        "rule #0 (`h`): a histogram cannot record `in_flight` (durations need a histogram, span and event counts a counter, in-flight spans a gauge)"
    );
    assert_eq!(
        one(Metric::histogram("h").wall_time().unit(Unit::Bytes)),
        "rule #0 (`h`): a duration cannot be in `bytes`; the unit must be `seconds` or \
         `milliseconds`"
    );
}

#[test]
fn one_family_declared_twice_differently() {
    let b = SpanMetrics::builder()
        .metric(Metric::counter("x").label("a"))
        .metric(Metric::gauge("x").label("a"));
    assert_eq!(
        error_of(b),
        "rule #1 (`x`): declared as a gauge here but as a counter by an earlier rule"
    );
    let b = SpanMetrics::builder()
        .metric(Metric::counter("x").label("a"))
        .metric(Metric::counter("x").label("b"));
    assert_eq!(
        error_of(b),
        "rule #1 (`x`): label keys [b] differ from [a] declared by an earlier rule of the same metric (a rule may leave a label without value, but must declare it)"
    );
    let b = SpanMetrics::builder()
        .metric(Metric::histogram("x").span_field("n").unit(Unit::Bytes))
        .metric(Metric::histogram("x").span_field("n").unit(Unit::Count));
    assert_eq!(
        error_of(b),
        "rule #1 (`x`): unit `count` differs from `bytes` declared by an earlier rule"
    );
    let b = SpanMetrics::builder()
        .metric(Metric::histogram("x"))
        .metric(Metric::histogram("x").buckets(Buckets::explicit([1.0])));
    assert_eq!(
        error_of(b),
        "rule #1 (`x`): bucket boundaries differ from an earlier rule of the same metric"
    );
    let b = SpanMetrics::builder()
        .metric(Metric::counter("x").describe("one"))
        .metric(Metric::counter("x").describe("two"));
    assert_eq!(
        error_of(b),
        "rule #1 (`x`): description differs from an earlier rule of the same metric"
    );
    // Label order does not matter; the same keys are one family.
    SpanMetrics::builder()
        .metric(Metric::counter("x").labels(["a", "b"]))
        .metric(Metric::counter("x").labels(["b", "a"]).spans_opened())
        .build()
        .unwrap();
}

#[test]
fn bad_buckets() {
    assert_eq!(
        one(Metric::histogram("h").buckets(Buckets::explicit([0.1, 0.1]))),
        "rule #0 (`h`): bucket boundaries must be strictly increasing, but 0.1 is followed by 0.1"
    );
    assert_eq!(
        one(Metric::histogram("h").buckets(Buckets::explicit([1.0, 0.5]))),
        "rule #0 (`h`): bucket boundaries must be strictly increasing, but 1 is followed by 0.5"
    );
    assert_eq!(
        one(Metric::histogram("h").buckets(Buckets::explicit([]))),
        "rule #0 (`h`): bucket boundaries are empty"
    );
    assert_eq!(
        one(Metric::histogram("h").buckets(Buckets::explicit([f64::NAN]))),
        "rule #0 (`h`): bucket boundary NaN is not finite"
    );
    assert_eq!(
        one(Metric::counter("c").buckets(Buckets::otel_durations())),
        "rule #0 (`c`): a counter has no buckets"
    );
    assert_eq!(
        one(Metric::histogram("h").buckets(Buckets::exponential(1.0, 1.0, 3))),
        "rule #0 (`h`): bucket boundaries must be strictly increasing, but 1 is followed by 1"
    );
}

#[test]
fn empty_selectors_fields_and_values() {
    assert_eq!(
        one(Metric::counter("c").spans(Spans::named(""))),
        "rule #0 (`c`): a span name pattern is empty (it would select no span)"
    );
    assert_eq!(
        one(Metric::counter("c").spans(Spans::all().target(""))),
        "rule #0 (`c`): the span target is empty; leave it out to select every target"
    );
    assert_eq!(
        one(Metric::gauge("g").in_flight_after("")),
        "rule #0 (`g`): the in-flight gate names an empty field"
    );
    assert_eq!(
        one(Metric::counter("c").events(EventMatch::named(""))),
        "rule #0 (`c`): the event name pattern is empty"
    );
    assert_eq!(
        one(Metric::counter("c").label(Label::field(""))),
        "rule #0 (`c`): a label key is empty"
    );
    assert_eq!(
        one(Metric::counter("c").label(Label::fixed("k", "x".repeat(200)))),
        "rule #0 (`c`): label `k`: value of 200 bytes exceeds the 128-byte bound"
    );
    assert_eq!(
        one(Metric::counter("c")
            .label(Label::field("k").map(Mapping::table([("a", "b".repeat(129))])))),
        format!(
            "rule #0 (`c`): label `k`: mapped value `{}` exceeds the 128-byte bound",
            "b".repeat(129)
        )
    );
    assert_eq!(
        one(Metric::counter("c").when(Condition::field("s").between(5.0, 1.0))),
        "rule #0 (`c`): condition on `s`: the range 5..=1 is empty"
    );
    assert_eq!(
        one(Metric::counter("c").cardinality_limit(0)),
        "rule #0 (`c`): the cardinality limit must be at least 1"
    );
}

#[test]
fn global_settings() {
    assert_eq!(
        error_of(SpanMetrics::builder().cardinality_limit(0)),
        "the cardinality limit must be at least 1"
    );
    assert_eq!(
        error_of(SpanMetrics::builder().max_label_len(2)),
        "the label length bound must be at least 8 bytes"
    );
}

#[test]
fn the_rule_index_points_at_the_culprit() {
    let e = SpanMetrics::builder()
        .metric(Metric::counter("ok"))
        .metric(Metric::counter("ok2"))
        .metric(Metric::counter("bad name"))
        .build()
        .unwrap_err();
    assert_eq!(e.rule_index(), Some(2));
    assert_eq!(e.metric(), Some("bad name"));
}

#[test]
fn fields_no_callsite_declares_are_listed() {
    use tracing_subscriber::prelude::*;
    let layer = SpanMetrics::builder()
        .metric(
            Metric::counter("calls")
                .spans(Spans::named("rpc"))
                .label("method")
                .label("stauts")
                .when(Condition::recorded("deployment_id")),
        )
        .metric(
            Metric::counter("retries")
                .events(EventMatch::message("retry"))
                .label("reason"),
        )
        .build()
        .unwrap();
    let handle = layer.reload_handle();
    let all = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        handle.unseen_fields(),
        all(&[
            ("calls", "method"),
            ("calls", "stauts"),
            ("calls", "deployment_id"),
            ("retries", "reason")
        ])
    );
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Declared (even if recorded later) counts as seen; the typo never will be.
        drop(tracing::info_span!(
            "rpc",
            method = "get",
            deployment_id = tracing::field::Empty
        ));
        tracing::info!(reason = "timeout", "retry");
    });
    assert_eq!(handle.unseen_fields(), all(&[("calls", "stauts")]));
}

#[test]
fn too_many_bucket_boundaries_are_refused_not_truncated() {
    use tracing_spanmetrics::config::MAX_BUCKETS;
    assert_eq!(MAX_BUCKETS, 1024);
    let asked = |buckets: Buckets| one(Metric::histogram("lat").buckets(buckets));
    assert_eq!(
        asked(Buckets::exponential(1.0, 1.0001, 100_000)),
        "rule #0 (`lat`): 100000 bucket boundaries were asked for; at most 1024 are accepted"
    );
    assert_eq!(
        asked(Buckets::linear(0.0, 1.0, 1025)),
        "rule #0 (`lat`): 1025 bucket boundaries were asked for; at most 1024 are accepted"
    );
    // Nothing is allocated for the request, however large.
    assert_eq!(
        asked(Buckets::exponential(1.0, 2.0, usize::MAX)),
        format!(
            "rule #0 (`lat`): {} bucket boundaries were asked for; at most 1024 are accepted",
            usize::MAX
        )
    );
    assert!(Buckets::linear(0.0, 1.0, usize::MAX).bounds().is_empty());
    assert_eq!(
        asked(Buckets::explicit((0..2000).map(f64::from))),
        "rule #0 (`lat`): 2000 bucket boundaries were asked for; at most 1024 are accepted"
    );
    // An iterator that does not tell its length is not drained to count it.
    assert_eq!(
        asked(Buckets::explicit((0..5000).map(f64::from).filter(|_| true))),
        "rule #0 (`lat`): more than 1024 bucket boundaries were asked for; at most 1024 are accepted"
    );
    // The bound itself is accepted, whole.
    let at_bound = Buckets::linear(1.0, 1.0, MAX_BUCKETS);
    assert_eq!(at_bound.bounds().len(), MAX_BUCKETS);
    assert_eq!(
        Buckets::explicit((1..=1024).map(f64::from)).bounds().len(),
        MAX_BUCKETS
    );
    SpanMetrics::builder()
        .metric(Metric::histogram("lat").buckets(at_bound))
        .build()
        .unwrap();
}
