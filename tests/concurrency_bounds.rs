//! Concurrency at the boundaries: threads crossing a family's cardinality limit at the same
//! instant (a label set is checked against a snapshot first, then again under the family's
//! lock), many threads registering new label sets at once, and in-flight gauges held on the
//! overflow series. Counts are exact: exactly `limit` label sets are admitted, every
//! observation of an admitted set lands on its series, the overflow series takes exactly what
//! the limit refused and `spanmetrics_overflow_observations_total` counts exactly that.
//!
//! The ignored tests at the end show where the code and its documentation disagree.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Harness, TestRecorder};
use tracing::field::Empty;
use tracing_spanmetrics::{
    Condition, EventMatch, Label, Metric, OVERFLOW_LABEL, OVERFLOW_METRIC, SpanMetrics, Spans,
};

const THREADS: usize = 4;

/// Runs `work(thread)` on `THREADS` threads released at the same instant (they spin at the
/// start line rather than sleep at a barrier, so they start within a few hundred
/// nanoseconds), each with `dispatch` as its default.
fn at_once(dispatch: &tracing::Dispatch, work: impl Fn(usize) + Sync) {
    let ready = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (ready, work) = (&ready, &work);
            s.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    ready.fetch_add(1, Ordering::SeqCst);
                    while ready.load(Ordering::SeqCst) < THREADS {
                        std::hint::spin_loop();
                    }
                    work(t)
                })
            });
        }
    });
}

/// The series of counter family `name`: label value of `key` (or the overflow series, as
/// `None`) → count.
fn counters(recorder: &TestRecorder, name: &str, key: &str) -> BTreeMap<Option<String>, u64> {
    let m = recorder.snapshot();
    m.series
        .iter()
        .filter(|(k, _)| k.name() == name)
        .map(|(k, v)| {
            let label = |l: &str| {
                k.labels()
                    .find(|x| x.key() == l)
                    .map(|x| x.value().to_owned())
            };
            let value = match v {
                common::Value::Counter(n) => *n,
                other => panic!("{name} is a counter, found {other:?}"),
            };
            match label(OVERFLOW_LABEL) {
                Some(_) => (None, value),
                None => (Some(label(key).expect("the label")), value),
            }
        })
        .collect()
}

fn folded(recorder: &TestRecorder, family: &str) -> Option<u64> {
    recorder
        .snapshot()
        .counter(OVERFLOW_METRIC, &[("metric", family)])
}

#[test]
fn threads_crossing_the_limit_at_once_admit_exactly_the_limit() {
    const LIMIT: usize = 16;
    const SETS: u64 = 12;
    const REPEATS: u64 = 5;
    for _ in 0..100 {
        let mut h = Harness::new(
            SpanMetrics::builder()
                .metric(
                    Metric::counter("hits")
                        .spans(Spans::named("req"))
                        .label("user")
                        .cardinality_limit(LIMIT),
                )
                .metric(
                    // The same labels: resolved once per span for both (one close group).
                    Metric::histogram("took")
                        .spans(Spans::named("req"))
                        .label("user")
                        .cardinality_limit(LIMIT),
                ),
        );
        let d = h.dispatch();
        // Thread t offers users 8t..8t+12: each overlaps its neighbours' by four.
        let users = |t: usize| (8 * t as u64)..(8 * t as u64 + SETS);
        at_once(&d, |t| {
            for _ in 0..REPEATS {
                for u in users(t) {
                    drop(tracing::info_span!("req", user = u));
                }
            }
        });
        let mut offered: BTreeMap<String, u64> = BTreeMap::new();
        for t in 0..THREADS {
            for u in users(t) {
                *offered.entry(u.to_string()).or_default() += REPEATS;
            }
        }
        let total: u64 = offered.values().sum();
        let hits = counters(&h.recorder, "hits_total", "user");
        let admitted: Vec<_> = hits.iter().filter(|(k, _)| k.is_some()).collect();
        assert_eq!(admitted.len(), LIMIT, "{hits:?}");
        // Every observation of an admitted set is on its series, none in the overflow.
        for (user, n) in &admitted {
            assert_eq!(**n, offered[user.as_deref().unwrap()], "user {user:?}");
        }
        let kept: u64 = admitted.iter().map(|(_, n)| **n).sum();
        assert_eq!(hits.get(&None).copied(), Some(total - kept));
        assert_eq!(folded(&h.recorder, "hits_total"), Some(total - kept));
        // The histogram, its own family, admitted its own 16 and folded the rest.
        let m = h.recorder.snapshot();
        let took = m.series("took");
        assert_eq!(took.len(), LIMIT + 1);
        let overflow = m
            .histogram("took", &[(OVERFLOW_LABEL, "true")])
            .map_or(0, |v| v.len() as u64);
        assert_eq!(folded(&h.recorder, "took_seconds"), Some(overflow));
        let observed: u64 = took
            .iter()
            .map(|labels| {
                let l: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                m.histogram("took", &l).unwrap().len() as u64
            })
            .sum();
        assert_eq!(observed, total);
    }
}

#[test]
fn many_threads_registering_new_label_sets_at_once() {
    const PER_THREAD: u64 = 400;
    const COMMON: u64 = 200;
    // Exactly the number of distinct label sets: a set admitted twice would push one out.
    const LIMIT: usize = (COMMON + THREADS as u64 * PER_THREAD) as usize;
    for _ in 0..10 {
        let mut h = Harness::new(
            SpanMetrics::builder().metric(
                Metric::counter("reg")
                    .spans(Spans::named("req"))
                    .label("user")
                    .cardinality_limit(LIMIT),
            ),
        );
        let d = h.dispatch();
        // Each thread: the common users (all threads racing to register each of them), then
        // users of its own.
        at_once(&d, |t| {
            for u in 0..COMMON {
                drop(tracing::info_span!("req", user = u));
            }
            for u in 0..PER_THREAD {
                drop(tracing::info_span!(
                    "req",
                    user = 1_000 * (t as u64 + 1) + u
                ));
            }
        });
        let reg = counters(&h.recorder, "reg_total", "user");
        assert_eq!(reg.len(), LIMIT);
        assert!(!reg.contains_key(&None), "no overflow below the limit");
        // Nothing folded: the family's overflow counter exists from the start, at 0.
        assert_eq!(folded(&h.recorder, "reg_total"), Some(0));
        for u in 0..COMMON {
            assert_eq!(reg[&Some(u.to_string())], THREADS as u64, "user {u}");
        }
        for t in 0..THREADS as u64 {
            for u in 0..PER_THREAD {
                assert_eq!(reg[&Some((1_000 * (t + 1) + u).to_string())], 1);
            }
        }
    }
}

#[test]
fn the_same_new_label_set_from_every_thread_at_once_is_one_series() {
    for round in 0..500u64 {
        let mut h = Harness::new(
            SpanMetrics::builder().metric(
                Metric::counter("same")
                    .spans(Spans::named("req"))
                    .label("user")
                    .cardinality_limit(1),
            ),
        );
        let d = h.dispatch();
        at_once(&d, |_| drop(tracing::info_span!("req", user = round)));
        let same = counters(&h.recorder, "same_total", "user");
        assert_eq!(
            same,
            BTreeMap::from([(Some(round.to_string()), THREADS as u64)])
        );
        // Nothing folded: the family's overflow counter exists from the start, at 0.
        assert_eq!(folded(&h.recorder, "same_total"), Some(0));
    }
}

#[test]
fn in_flight_gauges_crossing_the_limit_at_once_never_go_negative() {
    const LIMIT: usize = 3;
    const SPANS: u64 = 40;
    for _ in 0..20 {
        let mut h = Harness::new(
            SpanMetrics::builder().metric(
                Metric::gauge("busy")
                    .spans(Spans::named("job"))
                    .in_flight()
                    .label("queue")
                    .cardinality_limit(LIMIT),
            ),
        );
        let d = h.dispatch();
        let recorder = h.recorder.clone();
        let done = AtomicBool::new(false);
        let max_open = (THREADS as u64 * SPANS) as f64;
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    let gauges = recorder.gauges();
                    let sum: f64 = gauges.iter().map(|(_, v)| v).sum();
                    for (k, v) in &gauges {
                        assert!(*v >= 0.0 && v.fract() == 0.0, "{k} read {v}");
                    }
                    assert!(sum <= max_open, "{sum} spans in flight, at most {max_open}");
                    std::thread::yield_now();
                }
            });
            at_once(&d, |t| {
                // Every thread holds spans of six queues open, then closes them in another
                // order.
                let mut open: Vec<tracing::Span> = (0..SPANS)
                    .map(|i| tracing::info_span!("job", queue = (i + t as u64) % 6))
                    .collect();
                open.reverse();
                open.truncate(open.len() / 2);
                drop(open);
                let _more: Vec<tracing::Span> = (0..SPANS / 2)
                    .map(|i| tracing::info_span!("job", queue = i % 6))
                    .collect();
            });
            done.store(true, Ordering::SeqCst);
        });
        let m = h.recorder.snapshot();
        let series = m.series("busy");
        assert_eq!(series.len(), LIMIT + 1, "{series:?}");
        for labels in &series {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(m.gauge("busy", &l), Some(0.0), "{labels:?}");
        }
        // Each span counted in the overflow series was folded once, when it opened: three of
        // the six queues were refused, half of every thread's spans are in them.
        let spans = THREADS as u64 * (SPANS + SPANS / 2);
        let folded = folded(&h.recorder, "busy").unwrap();
        assert!(folded > 0 && folded < spans, "{folded} of {spans}");
    }
}

// ---------------------------------------------------------------------------------------------
// Where the code and the documentation disagree.

/// `ReloadHandle`: "events count under the configuration current when they happen. Nothing is
/// counted twice or lost at the switch." An event inside a span opened before the reload is
/// counted by neither configuration when the event rule selects spans: the old rules no longer
/// see events, and the new ones only anchor at spans opened under them.
#[test]
fn events_in_a_span_opened_before_a_reload_still_count() {
    let rules = || {
        SpanMetrics::builder().metric(
            Metric::counter("ticks")
                .events(EventMatch::message("tick"))
                .spans(Spans::named("rpc")),
        )
    };
    let mut h = Harness::new(rules());
    let reload = h.layer.as_ref().unwrap().reload_handle();
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        let span = tracing::info_span!("rpc");
        let _g = span.enter();
        tracing::info!("tick");
        // The same rules again, as a SIGHUP with an unchanged file would.
        reload.reload(rules()).unwrap();
        tracing::info!("tick");
    });
    assert_eq!(h.snapshot().counter("ticks", &[]), Some(2));
}

/// README: "Each family keeps the label sets it admitted, so its cardinality limit bounds the
/// exporter's series across any number of reloads." When a reload changes a family's label
/// keys, the new family counts the label sets the old one had admitted at the reload; but
/// spans opened before the reload keep admitting into the old family afterwards.
#[test]
fn a_reload_that_changes_label_keys_keeps_the_family_within_its_limit() {
    let by = |key: &str| {
        SpanMetrics::builder().metric(
            Metric::counter("calls")
                .spans(Spans::named("rpc"))
                .label(key)
                .cardinality_limit(2),
        )
    };
    let mut h = Harness::new(by("a"));
    let reload = h.layer.as_ref().unwrap().reload_handle();
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        drop(tracing::info_span!("rpc", a = 1, b = Empty));
        let old = tracing::info_span!("rpc", a = 2, b = Empty);
        reload.reload(by("b")).unwrap();
        // One set admitted before the reload: the new family has room for one more.
        drop(tracing::info_span!("rpc", a = Empty, b = 1));
        drop(tracing::info_span!("rpc", a = Empty, b = 2));
        // The old span closes under the old family, which still has room for one.
        drop(old);
    });
    let series = h.snapshot().series("calls");
    let own: Vec<_> = series
        .iter()
        .filter(|l| !l.iter().any(|(k, _)| k == OVERFLOW_LABEL))
        .collect();
    assert!(
        own.len() <= 2,
        "{} label sets at a limit of 2: {own:?}",
        own.len()
    );
}

/// `FieldCondition::not_between`: "The field is a number outside `low..=high`." A NaN field
/// (recorded as `f64::NAN`, or text such as `NaN`) is not a number, yet it is counted as
/// outside every range.
#[test]
fn not_between_does_not_count_nan() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("not_2xx")
                .spans(Spans::named("rpc"))
                .when(Condition::field("status").not_between(200.0, 299.0)),
        ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        drop(tracing::info_span!("rpc", status = f64::NAN));
        drop(tracing::info_span!("rpc", status = "NaN"));
    });
    assert_eq!(h.snapshot().counter("not_2xx", &[]), None);
}

/// `EventMatch::message`: "Events whose message is exactly `text`." A message longer than the
/// label bound is cut before it is compared, so a selector equal to its first bytes matches it.
#[test]
fn a_long_message_does_not_match_its_prefix() {
    let mut h = Harness::new(
        SpanMetrics::builder().max_label_len(8).metric(
            Metric::counter("exact")
                .spans(Spans::named("rpc"))
                .events(EventMatch::message("response")),
        ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        let _s = tracing::info_span!("rpc").entered();
        tracing::info!("response headers");
    });
    assert_eq!(h.snapshot().counter("exact", &[]), None);
}

/// `SpanMetricsBuilder::max_label_len`: label values longer than the bound are cut; values the
/// layer writes itself (outcome and span-kind values, like fixed values and defaults) cannot
/// be, so a bound below them is refused when the layer is built.
#[test]
fn a_bound_below_the_layers_own_label_values_is_refused() {
    let refused = |label: Label| {
        SpanMetrics::builder()
            .max_label_len(8)
            .metric(
                Metric::counter("calls")
                    .spans(Spans::named("rpc"))
                    .label(label),
            )
            .build()
            .expect_err("must be refused")
            .to_string()
    };
    assert_eq!(
        refused(Label::otel_status_code("status")),
        "rule #0 (`calls`): label `status`: its value `STATUS_CODE_UNSET` (17 bytes) exceeds the \
         8-byte bound on label values; raise `max_label_len` to at least 17"
    );
    assert_eq!(
        refused(Label::span_kind("kind")),
        "rule #0 (`calls`): label `kind`: its value `SPAN_KIND_SERVER` (16 bytes) exceeds the \
         8-byte bound on label values; raise `max_label_len` to at least 18"
    );
    // Values that fit are accepted: `success` and `error` are at most 7 bytes.
    SpanMetrics::builder()
        .max_label_len(8)
        .metric(
            Metric::counter("calls")
                .spans(Spans::named("rpc"))
                .label(Label::outcome("result")),
        )
        .build()
        .expect("values within the bound");
}
