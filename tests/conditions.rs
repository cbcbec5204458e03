//! What each condition lets through, and how a span's outcome is decided: every condition
//! checked on both sides of its edges, with exact counts read back from a test recorder.

mod common;

use common::{Harness, labels};
use tracing::dispatcher;
use tracing::field::Empty;
use tracing_spanmetrics::{
    Condition, LABEL_OVERFLOW_METRIC, Label, Metric, OVERFLOW_METRIC, REJECTED_METRIC, SpanMetrics,
    Spans, TRUNCATED_METRIC,
};

/// The layer's health families: registered at 0 from the start.
const HEALTH: [&str; 4] = [
    OVERFLOW_METRIC,
    TRUNCATED_METRIC,
    REJECTED_METRIC,
    LABEL_OVERFLOW_METRIC,
];

/// `between` holds for numbers in `low..=high` (both bounds included), `not_between` for
/// numbers outside; a value that is not a number, or no value, passes neither.
#[test]
fn between_includes_both_bounds_and_not_between_is_its_numeric_complement() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("inside.total")
                    .spans(Spans::named("req"))
                    .label("code")
                    .when(Condition::field("code").between(200.0, 299.0)),
            )
            .metric(
                Metric::counter("outside.total")
                    .spans(Spans::named("req"))
                    .label("code")
                    .when(Condition::field("code").not_between(200.0, 299.0)),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for code in [199u64, 200, 250, 299, 300, 0] {
            drop(tracing::info_span!("req", code));
        }
        for code in [-250i64, -1] {
            drop(tracing::info_span!("req", code));
        }
        for code in [199.5f64, 200.0, 299.0, 299.5] {
            drop(tracing::info_span!("req", code));
        }
        // Text that reads as a number is one; other text is not.
        drop(tracing::info_span!("req", code = "250"));
        drop(tracing::info_span!("req", code = "404"));
        drop(tracing::info_span!("req", code = "abc"));
        // A boolean is 1 or 0.
        drop(tracing::info_span!("req", code = true));
        // Declared but never recorded: no value.
        drop(tracing::info_span!("req", code = Empty));
        // Recorded later.
        let s = tracing::info_span!("req", code = Empty);
        s.record("code", 201u64);
        drop(s);
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("inside.total"),
        vec![
            labels(&[("code", "200")]),
            labels(&[("code", "201")]),
            labels(&[("code", "250")]),
            labels(&[("code", "299")]),
        ]
    );
    // 200 and 299 as integers and as floats (`200` and `299` as text); 250 as an integer and
    // as text.
    assert_eq!(m.counter("inside.total", &[("code", "200")]), Some(2));
    assert_eq!(m.counter("inside.total", &[("code", "201")]), Some(1));
    assert_eq!(m.counter("inside.total", &[("code", "250")]), Some(2));
    assert_eq!(m.counter("inside.total", &[("code", "299")]), Some(2));
    assert_eq!(
        m.series("outside.total"),
        vec![
            labels(&[("code", "-1")]),
            labels(&[("code", "-250")]),
            labels(&[("code", "0")]),
            labels(&[("code", "199")]),
            labels(&[("code", "199.5")]),
            labels(&[("code", "299.5")]),
            labels(&[("code", "300")]),
            labels(&[("code", "404")]),
            labels(&[("code", "true")]),
        ]
    );
    for code in [
        "-1", "-250", "0", "199", "199.5", "299.5", "300", "404", "true",
    ] {
        assert_eq!(
            m.counter("outside.total", &[("code", code)]),
            Some(1),
            "{code}"
        );
    }
}

/// A range whose bounds are equal holds for that one number; negative ranges work alike.
#[test]
fn between_a_single_point_and_a_negative_range() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("point.total")
                    .spans(Spans::named("v"))
                    .when(Condition::field("x").between(7.0, 7.0)),
            )
            .metric(
                Metric::counter("negative.total")
                    .spans(Spans::named("v"))
                    .when(Condition::field("x").between(-10.0, -5.0)),
            )
            .metric(
                Metric::counter("not_negative.total")
                    .spans(Spans::named("v"))
                    .when(Condition::field("x").not_between(-10.0, -5.0)),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for x in [-11i64, -10, -7, -5, -4, 6, 7, 8] {
            drop(tracing::info_span!("v", x));
        }
    });
    let m = h.snapshot();
    assert_eq!(m.counter("point.total", &[]), Some(1));
    assert_eq!(m.counter("negative.total", &[]), Some(3));
    assert_eq!(m.counter("not_negative.total", &[]), Some(5));
}

/// `one_of` holds when the field's text is exactly one of the values (numbers compare by their
/// text); `not_one_of` when the field has a value and it is none of them. No value passes
/// neither.
#[test]
fn one_of_and_not_one_of_split_recorded_values_and_skip_missing_ones() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("listed.total")
                    .spans(Spans::named("job"))
                    .label("state")
                    .when(Condition::field("state").one_of(["failed", "aborted", "3"])),
            )
            .metric(
                Metric::counter("unlisted.total")
                    .spans(Spans::named("job"))
                    .label("state")
                    .when(Condition::field("state").not_one_of(["failed", "aborted", "3"])),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for state in ["failed", "aborted", "failed", "ok", "Failed", "failed ", ""] {
            drop(tracing::info_span!("job", state));
        }
        drop(tracing::info_span!("job", state = 3u64));
        drop(tracing::info_span!("job", state = 4u64));
        drop(tracing::info_span!("job", state = 3.5f64));
        drop(tracing::info_span!("job", state = Empty));
        let s = tracing::info_span!("job", state = Empty);
        s.record("state", "aborted");
        drop(s);
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("listed.total"),
        vec![
            labels(&[("state", "3")]),
            labels(&[("state", "aborted")]),
            labels(&[("state", "failed")]),
        ]
    );
    assert_eq!(m.counter("listed.total", &[("state", "failed")]), Some(2));
    assert_eq!(m.counter("listed.total", &[("state", "aborted")]), Some(2));
    assert_eq!(m.counter("listed.total", &[("state", "3")]), Some(1));
    assert_eq!(
        m.series("unlisted.total"),
        vec![
            labels(&[("state", "")]),
            labels(&[("state", "3.5")]),
            labels(&[("state", "4")]),
            labels(&[("state", "Failed")]),
            labels(&[("state", "failed ")]),
            labels(&[("state", "ok")]),
        ]
    );
    for state in ["", "3.5", "4", "Failed", "failed ", "ok"] {
        assert_eq!(
            m.counter("unlisted.total", &[("state", state)]),
            Some(1),
            "{state:?}"
        );
    }
}

/// `recorded` and `missing` are opposites: a field declared `Empty` and never recorded is
/// missing, one recorded later is not. A condition reads the field where a label would: the
/// span's own value, else the nearest ancestor's.
#[test]
fn recorded_and_missing_are_opposites_and_read_ancestors() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("pinned.total")
                    .spans(Spans::named("call"))
                    .when(Condition::recorded("tenant")),
            )
            .metric(
                Metric::counter("unpinned.total")
                    .spans(Spans::named("call"))
                    .when(Condition::field("tenant").missing()),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        // Own value: 2 recorded (one at creation, one later), 1 missing.
        drop(tracing::info_span!("call", tenant = "a"));
        let s = tracing::info_span!("call", tenant = Empty);
        s.record("tenant", "b");
        drop(s);
        drop(tracing::info_span!("call", tenant = Empty));
        // Not declared at all: missing.
        drop(tracing::info_span!("call"));
        // Inherited: 2 recorded, under a parent that has it.
        let parent = tracing::info_span!("batch", tenant = "p");
        parent.in_scope(|| {
            drop(tracing::info_span!("call"));
            drop(tracing::info_span!("call", tenant = Empty));
        });
        // A parent that never recorded it: missing.
        let bare = tracing::info_span!("batch", tenant = Empty);
        bare.in_scope(|| drop(tracing::info_span!("call")));
    });
    let m = h.snapshot();
    assert_eq!(m.counter("pinned.total", &[]), Some(4));
    assert_eq!(m.counter("unpinned.total", &[]), Some(3));
}

/// `error` holds when the span's outcome is an error, `not_error` otherwise (unset or OK):
/// each span is counted by exactly one of them.
#[test]
fn error_and_not_error_split_spans_by_outcome() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("failed.total")
                    .spans(Spans::named("op"))
                    .label("case")
                    .when(Condition::error()),
            )
            .metric(
                Metric::counter("fine.total")
                    .spans(Spans::named("op"))
                    .label("case")
                    .when(Condition::not_error()),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        drop(tracing::info_span!("op", case = "plain"));
        tracing::info_span!("op", case = "error_event").in_scope(|| tracing::error!("bad"));
        tracing::info_span!("op", case = "error_field")
            .in_scope(|| tracing::warn!(error = "transient", "retry"));
        tracing::info_span!("op", case = "info_event").in_scope(|| tracing::info!("fine"));
        tracing::info_span!("op", case = "ok_wins", otel.status_code = "OK")
            .in_scope(|| tracing::error!("bad"));
        drop(tracing::info_span!(
            "op",
            case = "explicit_error",
            otel.status_code = "ERROR"
        ));
        drop(tracing::info_span!(
            "op",
            case = "described",
            otel.status_description = "broken pipe"
        ));
        tracing::info_span!("op", case = "child_failed")
            .in_scope(|| tracing::info_span!("child").in_scope(|| tracing::error!("bad")));
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("failed.total"),
        vec![
            labels(&[("case", "described")]),
            labels(&[("case", "error_event")]),
            labels(&[("case", "error_field")]),
            labels(&[("case", "explicit_error")]),
        ]
    );
    assert_eq!(
        m.series("fine.total"),
        vec![
            labels(&[("case", "child_failed")]),
            labels(&[("case", "info_event")]),
            labels(&[("case", "ok_wins")]),
            labels(&[("case", "plain")]),
        ]
    );
    // Every series counted one span, but the layer's health counters, which exist from the
    // start and count nothing here.
    for (key, value) in &m.series {
        let want = if HEALTH.contains(&key.name()) { 0 } else { 1 };
        assert_eq!(*value, common::Value::Counter(want), "{key:?}");
    }
}

/// `otel.status_code` decides the outcome only when it says OK or ERROR (in any case); any
/// other value (`unset`, garbage, a number) is as if it were not there: the span failed if it
/// had an error event or recorded `otel.status_description`, and is unset otherwise.
#[test]
fn otel_status_code_wins_only_when_it_says_ok_or_error() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("op.calls")
                .spans(Spans::named("op"))
                .label("case")
                .label(Label::otel_status_code("status")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        // No error seen.
        for (case, code) in [
            ("ok", "ok"),
            ("OK", "OK"),
            ("Ok", "Ok"),
            ("error", "error"),
            ("ERROR", "ERROR"),
            ("eRRoR", "eRRoR"),
            ("unset", "unset"),
            ("UNSET", "UNSET"),
            ("garbage", "garbage"),
            ("okay", "okay"),
            ("ok_space", "ok "),
            ("empty", ""),
        ] {
            drop(tracing::info_span!("op", case, otel.status_code = code));
        }
        drop(tracing::info_span!(
            "op",
            case = "number",
            otel.status_code = 1u64
        ));
        drop(tracing::info_span!(
            "op",
            case = "never",
            otel.status_code = Empty
        ));
        // An error event inside.
        for (case, code) in [
            ("ok+event", "ok"),
            ("error+event", "error"),
            ("unset+event", "unset"),
            ("garbage+event", "garbage"),
        ] {
            tracing::info_span!("op", case, otel.status_code = code)
                .in_scope(|| tracing::error!("bad"));
        }
        // A status description recorded.
        for (case, code) in [
            ("ok+described", "Ok"),
            ("unset+described", "unset"),
            ("garbage+described", "garbage"),
        ] {
            drop(tracing::info_span!(
                "op",
                case,
                otel.status_code = code,
                otel.status_description = "why"
            ));
        }
        // Recorded later, after the error event.
        let s = tracing::info_span!("op", case = "late_ok", otel.status_code = Empty);
        s.in_scope(|| tracing::error!("bad"));
        s.record("otel.status_code", "ok");
        drop(s);
        let s = tracing::info_span!("op", case = "late_unset", otel.status_code = "OK");
        s.record("otel.status_code", "unset");
        drop(s);
    });
    let m = h.snapshot();
    let expected = [
        ("ok", "OK"),
        ("OK", "OK"),
        ("Ok", "OK"),
        ("error", "ERROR"),
        ("ERROR", "ERROR"),
        ("eRRoR", "ERROR"),
        ("unset", "UNSET"),
        ("UNSET", "UNSET"),
        ("garbage", "UNSET"),
        ("okay", "UNSET"),
        ("ok_space", "UNSET"),
        ("empty", "UNSET"),
        ("number", "UNSET"),
        ("never", "UNSET"),
        ("ok+event", "OK"),
        ("error+event", "ERROR"),
        ("unset+event", "ERROR"),
        ("garbage+event", "ERROR"),
        ("ok+described", "OK"),
        ("unset+described", "ERROR"),
        ("garbage+described", "ERROR"),
        ("late_ok", "OK"),
        ("late_unset", "UNSET"),
    ];
    let mut want: Vec<_> = expected
        .iter()
        .map(|(case, status)| {
            let status = format!("STATUS_CODE_{status}");
            labels(&[("case", case), ("status", &status)])
        })
        .collect();
    want.sort();
    assert_eq!(m.series("op.calls"), want);
    // Every series counted one span, but the layer's health counters, which exist from the
    // start and count nothing here.
    for (key, value) in &m.series {
        let want = if HEALTH.contains(&key.name()) { 0 } else { 1 };
        assert_eq!(*value, common::Value::Counter(want), "{key:?}");
    }
}

/// The outcome that labels see is the one conditions see, with an unrecognised
/// `otel.status_code` and an error event together.
#[test]
fn conditions_on_the_outcome_ignore_an_unrecognised_status_code() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("failed.total")
                    .spans(Spans::named("op"))
                    .when(Condition::error()),
            )
            .metric(
                Metric::counter("fine.total")
                    .spans(Spans::named("op"))
                    .when(Condition::not_error()),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        // Failed: 2.
        tracing::info_span!("op", otel.status_code = "unset").in_scope(|| tracing::error!("x"));
        tracing::info_span!("op", otel.status_code = "nope").in_scope(|| tracing::error!("x"));
        // Not failed: 3.
        drop(tracing::info_span!("op", otel.status_code = "unset"));
        drop(tracing::info_span!("op", otel.status_code = "nope"));
        tracing::info_span!("op", otel.status_code = "OK").in_scope(|| tracing::error!("x"));
    });
    let m = h.snapshot();
    assert_eq!(m.counter("failed.total", &[]), Some(2));
    assert_eq!(m.counter("fine.total", &[]), Some(3));
}

/// A field condition reads the nearest ancestor that recorded the field, as an inheriting
/// label does, through a chain deeper than one level, and also when no label of the rule reads
/// that field (the rule's only ancestor lookups are its condition's).
#[test]
fn a_field_condition_reads_an_ancestor_several_levels_up() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("leaf.total")
                .spans(Spans::named("leaf"))
                .when(Condition::field("tenant").one_of(["acme"])),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for tenant in ["acme", "other"] {
            let root = tracing::info_span!("root", tenant);
            let _root = root.enter();
            let mid = tracing::info_span!("mid");
            let _mid = mid.enter();
            let low = tracing::info_span!("low");
            let _low = low.enter();
            drop(tracing::info_span!("leaf"));
            drop(tracing::info_span!("leaf"));
        }
    });
    let m = h.snapshot();
    assert_eq!(m.counter("leaf.total", &[]), Some(2));
}
