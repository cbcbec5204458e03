//! The core layer: every declarable measure, label source, outcome and condition, with exact
//! values read back from a debugging recorder and durations from a mock clock.

mod common;

use common::{Harness, labels};
use tracing::field::Empty;
use tracing::{Level, dispatcher};
use tracing_spanmetrics::{
    Condition, EventMatch, Label, Mapping, Metric, SpanMetrics, Spans, Unit,
};

/// Seconds exactly as the layer computes them from nanoseconds.
fn secs(ms: u64) -> f64 {
    (ms * 1_000_000) as f64 * 1e-9
}

#[test]
fn wall_time_with_own_fields_of_every_type() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::histogram("op.duration.seconds")
                .spans(Spans::named("op"))
                .labels(["n", "s", "b", "f", "d", "dbg"]),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let span = tracing::info_span!(
            "op",
            n = 7u64,
            s = "svc",
            b = true,
            f = 1.5f64,
            d = %"disp",
            dbg = ?Some(3)
        );
        h.advance_ms(25);
        drop(span);
    });
    let m = h.snapshot();
    assert_eq!(
        m.histogram(
            "op.duration.seconds",
            &[
                ("n", "7"),
                ("s", "svc"),
                ("b", "true"),
                ("f", "1.5"),
                ("d", "disp"),
                ("dbg", "Some(3)")
            ]
        ),
        Some(vec![secs(25)])
    );
}

/// Float labels read as the shortest text that parses back to the same float, whatever their
/// magnitude: never a long expansion cut at the label bound into another number. Own and
/// inherited values read alike, and conditions compare the same text.
#[test]
fn float_labels_read_as_their_shortest_round_trip_text() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("f.total")
                    .spans(Spans::named("f"))
                    .labels(["x", "up"]),
            )
            .metric(
                Metric::counter("huge.total")
                    .spans(Spans::named("f"))
                    .when(Condition::field("x").one_of(["1e300", "+Inf"])),
            ),
    );
    let d = h.dispatch();
    let values: [(f64, &str); 9] = [
        (1e300, "1e300"),
        (-1e-300, "-1e-300"),
        (f64::MAX, "1.7976931348623157e308"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.5e-7, "1.5e-7"),
        (3.0, "3"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ];
    dispatcher::with_default(&d, || {
        let parent = tracing::info_span!("p", up = 2.5e-10);
        let _p = parent.enter();
        for (x, _) in values {
            drop(tracing::info_span!("f", x));
        }
    });
    let m = h.snapshot();
    for (_, text) in values {
        assert_eq!(
            m.counter("f.total", &[("x", text), ("up", "2.5e-10")]),
            Some(1),
            "{text}"
        );
    }
    assert_eq!(m.series("f.total").len(), values.len());
    assert_eq!(m.counter("huge.total", &[]), Some(2));
    // Nothing truncated: the counter exists from the start, at 0.
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(0)
    );
}

#[test]
fn labels_renamed_defaulted_mapped_fixed_and_recorded_later() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("calls.total")
                .spans(Spans::named("call"))
                .label(
                    Label::field("http.status")
                        .rename("class")
                        .map(Mapping::status_class()),
                )
                .label(Label::field("deployment_id").default("unknown"))
                .label(Label::fixed("proto", "http"))
                .label(Label::field("never_there")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let a = tracing::info_span!("call", http.status = Empty, deployment_id = Empty);
        a.record("http.status", 503);
        a.record("deployment_id", "dp_1");
        drop(a);
        let b = tracing::info_span!("call", http.status = 200, deployment_id = Empty);
        drop(b);
        let c = tracing::info_span!("call", http.status = 204, deployment_id = Empty);
        drop(c);
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("calls.total"),
        vec![
            labels(&[
                ("class", "2xx"),
                ("deployment_id", "unknown"),
                ("proto", "http")
            ]),
            labels(&[
                ("class", "5xx"),
                ("deployment_id", "dp_1"),
                ("proto", "http")
            ]),
        ]
    );
    assert_eq!(
        m.counter(
            "calls.total",
            &[
                ("class", "2xx"),
                ("deployment_id", "unknown"),
                ("proto", "http")
            ]
        ),
        Some(2)
    );
    assert_eq!(
        m.counter(
            "calls.total",
            &[
                ("class", "5xx"),
                ("deployment_id", "dp_1"),
                ("proto", "http")
            ]
        ),
        Some(1)
    );
}

#[test]
fn labels_inherited_from_the_nearest_ancestor_that_recorded_them() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("inner.total")
                    .spans(Spans::named("inner"))
                    .labels(["partition", "service"]),
            )
            .metric(
                Metric::counter("inner_own.total")
                    .spans(Spans::named("inner"))
                    .label(Label::field("partition").own_only().default("none")),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let root = tracing::info_span!("root", partition = 1u64, service = "a");
        let _r = root.enter();
        // `mid` declares `service` but records it only after `inner` has started.
        let mid = tracing::info_span!("mid", service = Empty, partition = Empty);
        let _m = mid.enter();
        let inner = tracing::info_span!("inner");
        mid.record("service", "b");
        drop(inner);
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter("inner.total", &[("partition", "1"), ("service", "b")]),
        Some(1)
    );
    assert_eq!(
        m.counter("inner_own.total", &[("partition", "none")]),
        Some(1)
    );
}

/// A lookup that starts below a span keeping no state of the layer walks past it to a stateful
/// ancestor that already knows where the field is (learnt by an earlier sibling's lookup), and
/// follows that link: to the ancestor with the value, or to no ancestor at all.
#[test]
fn an_inherited_label_follows_a_link_an_earlier_lookup_learnt() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("work.total")
                .spans(Spans::named("work"))
                .label(Label::field("tenant").default("none")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for tenant in [Some("a"), None] {
            let top = tenant.map(|t| tracing::info_span!("work", tenant = t));
            let _top = top.as_ref().map(|s| s.enter());
            let upper = tracing::info_span!("work");
            let _upper = upper.enter();
            let lower = tracing::info_span!("work");
            let _lower = lower.enter();
            // The first child walks up past `lower` and `upper`, and links both.
            drop(tracing::info_span!("work"));
            // No rule selects `plain`: it keeps no state, so the next child's lookup walks
            // past it to `lower`, whose link it follows.
            let plain = tracing::info_span!("plain");
            let _plain = plain.enter();
            drop(tracing::info_span!("work"));
        }
    });
    let m = h.snapshot();
    // With the value: `top`, `upper`, `lower` and both children.
    assert_eq!(m.counter("work.total", &[("tenant", "a")]), Some(5));
    // Without: `upper`, `lower` and both children.
    assert_eq!(m.counter("work.total", &[("tenant", "none")]), Some(4));
    assert_eq!(m.series("work.total").len(), 2);
}

/// An ancestor that declares a field but has not recorded it passes lookups on to its own
/// ancestors, also after a walk found two fields at different depths above it and remembered
/// where each was (the links written must not mark that ancestor as having no ancestor with
/// the field).
#[test]
fn an_unrecorded_ancestor_passes_lookups_on_after_links_are_written() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("work.total")
                .spans(Spans::named("work"))
                .label(Label::field("tenant").default("none"))
                .label(Label::field("region").default("none")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let top = tracing::info_span!("work", tenant = "a", region = "r");
        let _top = top.enter();
        let unrecorded = tracing::info_span!("work", tenant = Empty);
        let _unrecorded = unrecorded.enter();
        let plain = tracing::info_span!("work");
        let _plain = plain.enter();
        // Walks past `plain` and `unrecorded` (`tenant` declared, no value) to `top`.
        drop(tracing::info_span!("work"));
        // Follows `plain`'s links: `unrecorded` again, then on to `top`.
        drop(tracing::info_span!("work"));
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter("work.total", &[("tenant", "a"), ("region", "r")]),
        Some(5)
    );
    assert_eq!(m.series("work.total").len(), 1);
}

/// An event selector's message text, when the message is also a label: the message is then
/// captured (not only compared as it is handed over), and compared from the capture.
#[test]
fn events_selected_by_a_message_that_is_also_a_label() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("retries")
                    .events(EventMatch::message("retrying"))
                    .label(Label::field("message")),
            )
            .metric(
                Metric::counter("events.by_message")
                    .events(EventMatch::named("*"))
                    .label(Label::field("message")),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        tracing::warn!("retrying");
        tracing::warn!("retrying");
        tracing::warn!("giving up");
    });
    let m = h.snapshot();
    assert_eq!(m.counter("retries", &[("message", "retrying")]), Some(2));
    assert_eq!(m.series("retries").len(), 1);
    assert_eq!(
        m.counter("events.by_message", &[("message", "giving up")]),
        Some(1)
    );
}

/// More rules than one close group holds (16) with the same labels on one callsite: the plan
/// splits them into groups, and every rule records.
#[test]
fn seventeen_rules_with_the_same_labels_all_record() {
    let mut builder = SpanMetrics::builder();
    for i in 0..17 {
        builder = builder.metric(
            Metric::counter(format!("op.calls.{i}"))
                .spans(Spans::named("op"))
                .label("peer"),
        );
    }
    let mut h = Harness::new(builder);
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for _ in 0..3 {
            drop(tracing::info_span!("op", peer = "a"));
        }
    });
    let m = h.snapshot();
    for i in 0..17 {
        assert_eq!(
            m.counter(&format!("op.calls.{i}"), &[("peer", "a")]),
            Some(3),
            "rule {i}"
        );
    }
}

#[test]
fn busy_idle_and_wall_time_with_nested_enters() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("t.wall")
                    .spans(Spans::named("t"))
                    .wall_time(),
            )
            .metric(
                Metric::histogram("t.busy")
                    .spans(Spans::named("t"))
                    .busy_time(),
            )
            .metric(
                Metric::histogram("t.idle")
                    .spans(Spans::named("t"))
                    .idle_time(),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let span = tracing::info_span!("t");
        h.advance_ms(5); // idle
        {
            let _a = span.enter();
            h.advance_ms(10);
            {
                let _b = span.enter(); // nested re-entry: counted once
                h.advance_ms(3);
            }
            h.advance_ms(2);
        }
        h.advance_ms(100); // idle
        {
            let _a = span.enter();
            h.advance_ms(1);
        }
        drop(span);
    });
    let m = h.snapshot();
    assert_eq!(m.histogram("t.wall", &[]), Some(vec![secs(121)]));
    assert_eq!(m.histogram("t.busy", &[]), Some(vec![secs(16)]));
    assert_eq!(m.histogram("t.idle", &[]), Some(vec![secs(105)]));
}

#[test]
fn busy_time_counts_concurrent_enters_from_two_threads_once() {
    use std::sync::{Arc, Barrier};
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::histogram("t.busy")
                .spans(Spans::named("t"))
                .busy_time(),
        ),
    );
    let d = h.dispatch();
    let span = dispatcher::with_default(&d, || tracing::info_span!("t"));
    let mock = h.mock.clone();
    let step = Arc::new(Barrier::new(2));
    // A enters at 0, B at 10, A exits at 20, B exits at 30: busy = 30 ms, not 40.
    let (s2, st2, m2) = (span.clone(), step.clone(), mock.clone());
    let b = std::thread::spawn(move || {
        st2.wait(); // A entered
        let g = s2.enter();
        m2.increment(std::time::Duration::from_millis(10));
        st2.wait(); // B entered
        st2.wait(); // A exited
        m2.increment(std::time::Duration::from_millis(10));
        drop(g);
    });
    {
        let g = span.enter();
        mock.increment(std::time::Duration::from_millis(10));
        step.wait();
        step.wait();
        drop(g);
        step.wait();
    }
    b.join().unwrap();
    drop(span);
    assert_eq!(h.snapshot().histogram("t.busy", &[]), Some(vec![secs(30)]));
}

#[test]
fn busy_and_idle_across_await_points() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tracing::Instrument;

    struct TwoPolls<'a>(&'a Harness, u8);
    impl Future for TwoPolls<'_> {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.1 += 1;
            self.0.advance_ms(if self.1 == 1 { 4 } else { 6 });
            if self.1 == 1 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }

    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("task.busy")
                    .spans(Spans::named("task"))
                    .busy_time(),
            )
            .metric(
                Metric::histogram("task.idle")
                    .spans(Spans::named("task"))
                    .idle_time(),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let mut fut = Box::pin(TwoPolls(&h, 0).instrument(tracing::info_span!("task")));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        h.advance_ms(50); // waiting at the await point
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        drop(fut);
    });
    let m = h.snapshot();
    assert_eq!(m.histogram("task.busy", &[]), Some(vec![secs(10)]));
    assert_eq!(m.histogram("task.idle", &[]), Some(vec![secs(50)]));
}

#[test]
fn self_time_excludes_time_covered_by_children() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::histogram("p.self")
                .spans(Spans::named("p"))
                .self_time(),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let p = tracing::info_span!("p");
        h.advance_ms(2);
        // Two overlapping children: 10..30 and 20..40 cover 20 ms... measured from p's start:
        let c1 = tracing::info_span!(parent: &p, "c");
        h.advance_ms(10);
        let c2 = tracing::info_span!(parent: &p, "c");
        h.advance_ms(10);
        drop(c1);
        h.advance_ms(10);
        drop(c2);
        h.advance_ms(3);
        drop(p);
    });
    // wall = 35, children cover 30 (2..32): self = 5.
    assert_eq!(h.snapshot().histogram("p.self", &[]), Some(vec![secs(5)]));
}

#[test]
fn time_to_first_matching_event_recorded_only_when_reached() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("http.ttfb.seconds")
                    .spans(Spans::named("http"))
                    .time_to(EventMatch::message("headers received"))
                    .label("path"),
            )
            .metric(
                Metric::histogram("http.first_status.seconds")
                    .spans(Spans::named("http"))
                    .time_to(EventMatch::with_field("status"))
                    .label("path"),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let s = tracing::info_span!("http", path = "/a");
        let g = s.enter();
        h.advance_ms(7);
        tracing::info!("other message");
        h.advance_ms(3);
        // Inside a child span: still a milestone of the enclosing `http` span.
        tracing::info_span!("read").in_scope(|| tracing::info!(status = 200, "headers received"));
        h.advance_ms(20);
        tracing::info!(status = 200, "headers received"); // second one: ignored
        drop(g);
        drop(s);
        // No milestone: nothing recorded.
        let s = tracing::info_span!("http", path = "/b");
        h.advance_ms(5);
        drop(s);
    });
    let m = h.snapshot();
    assert_eq!(
        m.histogram("http.ttfb.seconds", &[("path", "/a")]),
        Some(vec![secs(10)])
    );
    assert_eq!(
        m.histogram("http.first_status.seconds", &[("path", "/a")]),
        Some(vec![secs(10)])
    );
    assert_eq!(m.histogram("http.ttfb.seconds", &[("path", "/b")]), None);
}

#[test]
fn counters_from_opens_closes_and_events() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("job.opened")
                    .spans(Spans::named("job"))
                    .spans_opened()
                    .label("kind"),
            )
            .metric(
                Metric::counter("job.closed")
                    .spans(Spans::named("job"))
                    .label("kind"),
            )
            .metric(
                Metric::counter("job.retries")
                    .spans(Spans::named("job"))
                    .events(EventMatch::message("retrying"))
                    .labels(["kind", "reason"]),
            )
            .metric(
                Metric::counter("retries.anywhere")
                    .events(EventMatch::message("retrying"))
                    .label(Label::field("reason")),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let open = tracing::info_span!("job", kind = "a");
        for kind in ["a", "b", "b"] {
            let s = tracing::info_span!("job", kind);
            s.in_scope(|| {
                tracing::warn!(reason = "timeout", "retrying");
                tracing::warn!(reason = "rate_limited", "retrying");
                tracing::warn!(reason = "timeout", "retrying");
            });
        }
        tracing::warn!(reason = "timeout", "retrying"); // outside any job
        assert_eq!(open.metadata().unwrap().name(), "job");
        std::mem::forget(open); // never closed: counted as opened only
    });
    let m = h.snapshot();
    assert_eq!(m.counter("job.opened", &[("kind", "a")]), Some(2));
    assert_eq!(m.counter("job.opened", &[("kind", "b")]), Some(2));
    assert_eq!(m.counter("job.closed", &[("kind", "a")]), Some(1));
    assert_eq!(m.counter("job.closed", &[("kind", "b")]), Some(2));
    assert_eq!(
        m.counter("job.retries", &[("kind", "b"), ("reason", "timeout")]),
        Some(4)
    );
    assert_eq!(
        m.counter("job.retries", &[("kind", "b"), ("reason", "rate_limited")]),
        Some(2)
    );
    assert_eq!(
        m.counter("job.retries", &[("kind", "a"), ("reason", "timeout")]),
        Some(2)
    );
    assert_eq!(
        m.counter("retries.anywhere", &[("reason", "timeout")]),
        Some(7)
    );
    assert_eq!(
        m.counter("retries.anywhere", &[("reason", "rate_limited")]),
        Some(3)
    );
}

#[test]
fn in_flight_gauges_follow_open_spans_and_never_go_negative() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::gauge("conn.open")
                    .spans(Spans::named("conn"))
                    .in_flight()
                    .label("lane"),
            )
            .metric(
                Metric::gauge("inv.active")
                    .spans(Spans::named("inv"))
                    .in_flight_after("deployment_id")
                    .label("deployment_id"),
            ),
    );
    let d = h.dispatch();
    let m = dispatcher::with_default(&d, || {
        let a = tracing::info_span!("conn", lane = "GENERAL");
        let b = tracing::info_span!("conn", lane = "GENERAL");
        let c = tracing::info_span!("conn", lane = "GOSSIP");
        let i1 = tracing::info_span!("inv", deployment_id = Empty);
        let i2 = tracing::info_span!("inv", deployment_id = Empty);
        i1.record("deployment_id", "dp_1");
        i1.record("deployment_id", "dp_1"); // recorded twice: counted once
        let m = h.snapshot();
        assert_eq!(m.gauge("conn.open", &[("lane", "GENERAL")]), Some(2.0));
        assert_eq!(m.gauge("conn.open", &[("lane", "GOSSIP")]), Some(1.0));
        assert_eq!(
            m.gauge("inv.active", &[("deployment_id", "dp_1")]),
            Some(1.0)
        );
        drop((a, b, c, i1));
        drop(i2); // never pinned: never counted, so never decremented
        h.snapshot()
    });
    assert_eq!(m.gauge("conn.open", &[("lane", "GENERAL")]), Some(0.0));
    assert_eq!(m.gauge("conn.open", &[("lane", "GOSSIP")]), Some(0.0));
    assert_eq!(
        m.gauge("inv.active", &[("deployment_id", "dp_1")]),
        Some(0.0)
    );
    assert_eq!(m.series("inv.active").len(), 1);
}

#[test]
fn gauges_and_histograms_from_numeric_fields() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::gauge("bucket.balance")
                    .spans(Spans::named("take"))
                    .span_field("balance"),
            )
            .metric(
                Metric::histogram("resp.bytes")
                    .unit(Unit::Bytes)
                    .spans(Spans::named("resp"))
                    .span_field("bytes"),
            )
            .metric(
                Metric::histogram("chunk.bytes")
                    .unit(Unit::Bytes)
                    .event_field(EventMatch::message("chunk"), "len"),
            )
            .metric(
                Metric::counter("bytes.sent.total")
                    .unit(Unit::Bytes)
                    .event_field(EventMatch::message("chunk"), "len"),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let t = tracing::info_span!("take", balance = -3i64);
        assert_eq!(h.snapshot().gauge("bucket.balance", &[]), Some(-3.0));
        t.record("balance", 12.5);
        assert_eq!(h.snapshot().gauge("bucket.balance", &[]), Some(12.5));
        let r = tracing::info_span!("resp", bytes = Empty);
        r.record("bytes", 100u64);
        r.record("bytes", 1500u64); // the final value is observed once, at close
        drop(r);
        drop(tracing::info_span!("resp", bytes = Empty)); // never recorded: nothing
        tracing::info!(len = 10u64, "chunk");
        tracing::info!(len = 20u64, "chunk");
        tracing::info!(len = -5i64, "chunk"); // negative: observed, but not added to a counter
    });
    let m = h.snapshot();
    assert_eq!(m.histogram("resp.bytes", &[]), Some(vec![1500.0]));
    assert_eq!(
        m.histogram("chunk.bytes", &[]),
        Some(vec![10.0, 20.0, -5.0])
    );
    assert_eq!(m.counter("bytes.sent.total", &[]), Some(30));
    assert_eq!(
        m.counter(
            tracing_spanmetrics::REJECTED_METRIC,
            &[("metric", "bytes_sent_bytes_total"), ("reason", "negative")]
        ),
        Some(1)
    );
}

#[derive(Debug)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}
impl std::error::Error for Boom {}

#[tracing::instrument(err)]
fn may_fail(fail: bool) -> Result<(), Boom> {
    if fail { Err(Boom) } else { Ok(()) }
}

#[test]
fn outcome_from_instrument_err_error_events_and_otel_status_code() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("fn.calls")
                    .spans(Spans::named("may_fail"))
                    .label(Label::outcome("result")),
            )
            .metric(
                Metric::counter("op.calls")
                    .spans(Spans::named("op"))
                    .label(Label::otel_status_code("status")),
            )
            .metric(
                Metric::counter("op.failures")
                    .spans(Spans::named("op"))
                    .when(Condition::error()),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        may_fail(true).unwrap_err();
        may_fail(false).unwrap();
        may_fail(false).unwrap();
        // An ERROR event inside.
        tracing::info_span!("op", otel.status_code = Empty).in_scope(|| tracing::error!("bad"));
        // An explicit OK wins over a warning-level `error` field.
        let s = tracing::info_span!("op", otel.status_code = Empty);
        s.in_scope(|| tracing::warn!(error = "transient", "retry"));
        s.record("otel.status_code", "OK");
        drop(s);
        // An explicit ERROR with no event.
        drop(tracing::info_span!("op", otel.status_code = "ERROR"));
        // Nothing: unset. An ERROR event in a child does not fail the parent.
        let p = tracing::info_span!("op", otel.status_code = Empty);
        p.in_scope(|| tracing::info_span!("child").in_scope(|| tracing::error!("child failed")));
        drop(p);
    });
    let m = h.snapshot();
    assert_eq!(m.counter("fn.calls", &[("result", "error")]), Some(1));
    assert_eq!(m.counter("fn.calls", &[("result", "success")]), Some(2));
    assert_eq!(
        m.counter("op.calls", &[("status", "STATUS_CODE_ERROR")]),
        Some(2)
    );
    assert_eq!(
        m.counter("op.calls", &[("status", "STATUS_CODE_OK")]),
        Some(1)
    );
    assert_eq!(
        m.counter("op.calls", &[("status", "STATUS_CODE_UNSET")]),
        Some(1)
    );
    assert_eq!(m.counter("op.failures", &[]), Some(2));
}

#[test]
fn conditions_on_recorded_fields_and_values() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("responses.total")
                    .spans(Spans::named("req"))
                    .label("status_code")
                    .when(Condition::recorded("status_code"))
                    .when(Condition::field("status_code").not_between(200.0, 299.0)),
            )
            .metric(
                Metric::counter("failed.total")
                    .spans(Spans::named("req"))
                    .when(Condition::field("state").one_of(["failed", "aborted"])),
            )
            .metric(
                Metric::counter("unanswered.total")
                    .spans(Spans::named("req"))
                    .when(Condition::field("status_code").missing()),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for (code, state) in [
            (200, "ok"),
            (503, "failed"),
            (429, "aborted"),
            (204, "ok"),
            (503, "ok"),
        ] {
            let s = tracing::info_span!("req", status_code = Empty, state);
            s.record("status_code", code);
        }
        drop(tracing::info_span!(
            "req",
            status_code = Empty,
            state = "failed"
        ));
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("responses.total"),
        vec![
            labels(&[("status_code", "429")]),
            labels(&[("status_code", "503")])
        ]
    );
    assert_eq!(
        m.counter("responses.total", &[("status_code", "503")]),
        Some(2)
    );
    assert_eq!(
        m.counter("responses.total", &[("status_code", "429")]),
        Some(1)
    );
    assert_eq!(m.counter("failed.total", &[]), Some(3));
    assert_eq!(m.counter("unanswered.total", &[]), Some(1));
}

#[test]
fn spans_selected_by_glob_target_and_level() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("sel.total")
                .spans(
                    Spans::named("rpc_*")
                        .target("core")
                        .level(tracing_subscriber::filter::LevelFilter::INFO),
                )
                .label(Label::span_name("name")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        drop(tracing::info_span!(target: "core::net", "rpc_call"));
        drop(tracing::warn_span!(target: "core", "rpc_send"));
        drop(tracing::debug_span!(target: "core", "rpc_debug")); // too verbose
        drop(tracing::info_span!(target: "corelib", "rpc_call")); // other target
        drop(tracing::info_span!(target: "core", "call")); // other name
        drop(tracing::info_span!(target: "core", "rpc_x", otel.name = "GET /x")); // otel.name wins
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("sel.total"),
        vec![
            labels(&[("name", "GET /x")]),
            labels(&[("name", "rpc_call")]),
            labels(&[("name", "rpc_send")]),
        ]
    );
}

#[test]
fn red_mode_matches_the_spanmetrics_connector() {
    let mut h = Harness::new(SpanMetrics::red("shop"));
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let s = tracing::info_span!("GET /cart", otel.kind = "server", otel.status_code = Empty);
        h.advance_ms(30);
        drop(s);
        let s = tracing::info_span!("db", otel.name = "SELECT cart", otel.kind = "client");
        s.in_scope(|| tracing::error!("connection reset"));
        h.advance_ms(12);
        drop(s);
    });
    let m = h.snapshot();
    let server = [
        ("service.name", "shop"),
        ("span.name", "GET /cart"),
        ("span.kind", "SPAN_KIND_SERVER"),
        ("status.code", "STATUS_CODE_UNSET"),
    ];
    let client = [
        ("service.name", "shop"),
        ("span.name", "SELECT cart"),
        ("span.kind", "SPAN_KIND_CLIENT"),
        ("status.code", "STATUS_CODE_ERROR"),
    ];
    assert_eq!(m.counter("traces.span.metrics.calls", &server), Some(1));
    assert_eq!(m.counter("traces.span.metrics.calls", &client), Some(1));
    // Milliseconds, the connector's default unit.
    assert_eq!(
        m.histogram("traces.span.metrics.duration", &server),
        Some(vec![30.0])
    );
    assert_eq!(
        m.histogram("traces.span.metrics.duration", &client),
        Some(vec![12.0])
    );
    assert_eq!(
        m.description("traces.span.metrics.duration").unwrap().0,
        Some(metrics::Unit::Milliseconds)
    );
}

#[test]
fn cardinality_is_bounded_by_an_overflow_series() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("c.total")
                .spans(Spans::named("s"))
                .label("id")
                .cardinality_limit(3),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for i in 0..10u64 {
            drop(tracing::info_span!("s", id = i % 5)); // 0..4 twice each
        }
    });
    let m = h.snapshot();
    assert_eq!(
        m.series("c.total"),
        vec![
            labels(&[("id", "0")]),
            labels(&[("id", "1")]),
            labels(&[("id", "2")]),
            labels(&[("otel_metric_overflow", "true")]),
        ]
    );
    for id in ["0", "1", "2"] {
        assert_eq!(m.counter("c.total", &[("id", id)]), Some(2));
    }
    // 3 and 4 twice each: nothing lost, nothing counted twice.
    assert_eq!(
        m.counter("c.total", &[("otel_metric_overflow", "true")]),
        Some(4)
    );
    assert_eq!(
        m.counter(
            tracing_spanmetrics::OVERFLOW_METRIC,
            &[("metric", "c_total")]
        ),
        Some(4)
    );
}

#[test]
fn long_values_are_truncated_on_a_character_boundary() {
    let mut h = Harness::new(
        SpanMetrics::builder().max_label_len(10).metric(
            Metric::counter("t.total")
                .spans(Spans::named("s"))
                .label("v"),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        drop(tracing::info_span!("s", v = "ééééééééé")); // 18 bytes
        drop(tracing::info_span!("s", v = "short"));
    });
    let m = h.snapshot();
    assert_eq!(m.counter("t.total", &[("v", "ééééé")]), Some(1));
    assert_eq!(m.counter("t.total", &[("v", "short")]), Some(1));
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(1)
    );
}

/// A borrowed value (the span's name, the target) cut inside a multi-byte character keeps only
/// the whole characters before the bound, however many bytes back that is.
#[test]
fn borrowed_values_are_cut_before_a_multi_byte_character_at_the_bound() {
    let mut h = Harness::new(
        SpanMetrics::builder().max_label_len(11).metric(
            Metric::counter("names.total")
                .spans(Spans::all())
                .label(Label::span_name("span"))
                .label(Label::target("target")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        // 12 bytes each: the bound (11) falls 1 byte into a 2-byte character, 2 bytes into a
        // 3-byte one and 3 bytes into a 4-byte one.
        drop(tracing::info_span!(target: "t", "éééééé"));
        drop(tracing::info_span!(target: "t", "€€€€"));
        drop(tracing::info_span!(target: "t", "🦀🦀🦀"));
        drop(tracing::info_span!(target: "t", "🦀🦀🦀"));
        // Exactly the bound: kept whole.
        drop(tracing::info_span!(target: "t", "éééééa"));
        drop(tracing::info_span!(target: "ŧŧŧŧŧŧ", "s"));
    });
    let m = h.snapshot();
    let t = [("target", "t")];
    assert_eq!(
        m.counter("names.total", &[("span", "ééééé"), t[0]]),
        Some(1)
    );
    assert_eq!(m.counter("names.total", &[("span", "€€€"), t[0]]), Some(1));
    assert_eq!(m.counter("names.total", &[("span", "🦀🦀"), t[0]]), Some(2));
    assert_eq!(
        m.counter("names.total", &[("span", "éééééa"), t[0]]),
        Some(1)
    );
    assert_eq!(
        m.counter("names.total", &[("span", "s"), ("target", "ŧŧŧŧŧ")]),
        Some(1)
    );
    assert_eq!(m.series("names.total").len(), 5);
    // One per label set cut: every span but the one whose name fits exactly.
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(5)
    );
}

/// A label set with values cut in two places (a borrowed span name, a number formatted into
/// scratch) is one truncated label set, counted once, as is a set cut in either place alone.
#[test]
fn a_label_set_cut_in_two_places_counts_once() {
    let mut h = Harness::new(
        SpanMetrics::builder().max_label_len(8).metric(
            Metric::counter("cut.total")
                .spans(Spans::all())
                .label(Label::span_name("span"))
                .label("n"),
        ),
    );
    let d = h.dispatch();
    let big = u64::MAX; // 20 digits
    dispatcher::with_default(&d, || {
        for _ in 0..3 {
            // The name and the number: 1 each.
            drop(tracing::info_span!("a_long_name", n = big));
        }
        for _ in 0..2 {
            // The name only: 1 each.
            drop(tracing::info_span!("a_long_name", n = 7u64));
        }
        // The number only: 1.
        drop(tracing::info_span!("short", n = big));
        // Nothing: 0.
        drop(tracing::info_span!("short", n = 7u64));
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter("cut.total", &[("span", "a_long_n"), ("n", "18446744")]),
        Some(3)
    );
    assert_eq!(
        m.counter("cut.total", &[("span", "a_long_n"), ("n", "7")]),
        Some(2)
    );
    assert_eq!(
        m.counter("cut.total", &[("span", "short"), ("n", "18446744")]),
        Some(1)
    );
    assert_eq!(
        m.counter("cut.total", &[("span", "short"), ("n", "7")]),
        Some(1)
    );
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(6)
    );
}

#[test]
fn descriptions_and_units_are_registered() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("d.seconds")
                    .describe("How long")
                    .spans(Spans::named("s")),
            )
            .metric(
                Metric::counter("d.total")
                    .describe("How many")
                    .spans(Spans::named("s")),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || drop(tracing::info_span!("s")));
    let m = h.snapshot();
    assert_eq!(
        m.description("d.seconds"),
        Some((Some(metrics::Unit::Seconds), Some("How long".into())))
    );
    assert_eq!(
        m.description("d.total"),
        Some((Some(metrics::Unit::Count), Some("How many".into())))
    );
}

#[test]
fn one_family_fed_by_several_rules() {
    // tasks.total{status=started} on open, {status=<field>} on close, `transient` only when set.
    let task = || Spans::named("task");
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("tasks.total")
                    .spans(task())
                    .spans_opened()
                    .label(Label::fixed("status", "started"))
                    .label("transient"),
            )
            .metric(
                Metric::counter("tasks.total")
                    .spans(task())
                    .label("transient")
                    .label(Label::field("status"))
                    .when(Condition::recorded("status")),
            ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for (status, transient) in [
            ("completed", None),
            ("failed", Some(true)),
            ("failed", Some(false)),
        ] {
            let s = tracing::info_span!("task", status = Empty, transient = Empty);
            s.record("status", status);
            if let Some(t) = transient {
                s.record("transient", t);
            }
        }
    });
    let m = h.snapshot();
    assert_eq!(m.counter("tasks.total", &[("status", "started")]), Some(3));
    assert_eq!(
        m.counter("tasks.total", &[("status", "completed")]),
        Some(1)
    );
    assert_eq!(
        m.counter(
            "tasks.total",
            &[("status", "failed"), ("transient", "true")]
        ),
        Some(1)
    );
    assert_eq!(
        m.counter(
            "tasks.total",
            &[("status", "failed"), ("transient", "false")]
        ),
        Some(1)
    );
}

#[test]
fn events_at_a_level_and_target() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("warnings.total").events(
                EventMatch::any()
                    .target("app")
                    .level(tracing_subscriber::filter::LevelFilter::WARN),
            ),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        tracing::warn!(target: "app::db", "slow");
        tracing::error!(target: "app", "down");
        tracing::info!(target: "app", "fine");
        tracing::event!(target: "other", Level::ERROR, "elsewhere");
    });
    assert_eq!(h.snapshot().counter("warnings.total", &[]), Some(2));
}

#[test]
fn a_status_description_means_an_error_unless_the_code_says_ok() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("calls")
                .spans(Spans::named("op"))
                .label(Label::outcome("result")),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        drop(tracing::info_span!(
            "op",
            otel.status_description = "quota exceeded"
        ));
        drop(tracing::info_span!(
            "op",
            otel.status_code = "OK",
            otel.status_description = "ignored"
        ));
        drop(tracing::info_span!("op", otel.status_description = Empty));
    });
    let m = h.snapshot();
    assert_eq!(m.counter("calls", &[("result", "error")]), Some(1));
    assert_eq!(m.counter("calls", &[("result", "success")]), Some(2));
}

/// Raw values too long together for the shortcut's key (192 bytes) take the full resolution
/// every time: spans whose values differ only past that length still count apart, and the
/// truncation counter stays at zero (nothing was cut).
#[test]
fn values_too_long_for_the_shortcut_key_still_count_apart() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("long.total")
                .spans(Spans::named("long"))
                .labels(["p", "q"]),
        ),
    );
    let d = h.dispatch();
    let p = "p".repeat(128);
    let (q1, q2) = (
        format!("{}1", "q".repeat(59)),
        format!("{}2", "q".repeat(59)),
    );
    dispatcher::with_default(&d, || {
        for q in [&q1, &q1, &q2, &q1, &q2] {
            drop(tracing::info_span!("long", p = p.as_str(), q = q.as_str()));
        }
    });
    let m = h.snapshot();
    assert_eq!(m.counter("long.total", &[("p", &p), ("q", &q1)]), Some(3));
    assert_eq!(m.counter("long.total", &[("p", &p), ("q", &q2)]), Some(2));
    assert_eq!(m.series("long.total").len(), 2);
    // Nothing truncated: the counter exists from the start, at 0.
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(0)
    );
}

/// Spans of one callsite reach their series through a shortcut keyed by the raw values their
/// labels are made from. Whatever takes that shortcut must count exactly what the full label
/// resolution counts: a value cut on every span, raw values a mapping folds together beyond
/// the shortcut's size, labels that fall back to an ancestor when the span's own field is
/// empty, the outcome, and rules of a group that do not all record.
#[test]
fn the_raw_value_shortcut_counts_what_full_resolution_counts() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .max_label_len(8)
            .metric(
                Metric::counter("named.total")
                    .spans(Spans::named("a_long_span_name"))
                    .label(Label::span_name("span")),
            )
            .metric(
                Metric::counter("classes.total")
                    .spans(Spans::named("http"))
                    .label(Label::field("status").map(Mapping::status_class()))
                    .cardinality_limit(2),
            )
            .metric(
                Metric::counter("calls.total")
                    .spans(Spans::named("call"))
                    .labels(["svc"])
                    .label(Label::outcome("outcome")),
            )
            .metric(
                Metric::histogram("call.ttfb.seconds")
                    .spans(Spans::named("call"))
                    .labels(["svc"])
                    .label(Label::outcome("outcome"))
                    .time_to(EventMatch::message("byte")),
            ),
    );
    let d = h.dispatch();
    // One callsite for every `call` span (the shortcut is per callsite); `None` records
    // nothing, so `svc` is then inherited.
    let call = |svc: Option<&'static str>| tracing::info_span!("call", svc = svc);
    dispatcher::with_default(&d, || {
        for _ in 0..3 {
            drop(tracing::info_span!("a_long_span_name"));
        }
        // 40 raw values, 2 classes: more raw values than the shortcut may hold (2).
        for status in 200u64..220 {
            drop(tracing::info_span!("http", status));
        }
        for status in 500u64..520 {
            drop(tracing::info_span!("http", status));
        }
        let parent = tracing::info_span!("parent", svc = "up");
        parent.in_scope(|| {
            for i in 0..6 {
                let call = call((i % 2 == 1).then_some("own"));
                call.in_scope(|| {
                    if i < 2 {
                        tracing::info!("byte");
                    }
                    if i >= 4 {
                        tracing::error!("failed");
                    }
                });
            }
        });
        // Another parent: the same raw values of `call` itself, another inherited label.
        let other = tracing::info_span!("parent", svc = "down");
        other.in_scope(|| {
            for _ in 0..2 {
                // Every rule of the group records (the milestone is reached): the shortcut.
                call(None).in_scope(|| tracing::info!("byte"));
            }
        });
    });
    let m = h.snapshot();
    assert_eq!(m.counter("named.total", &[("span", "a_long_s")]), Some(3));
    assert_eq!(
        m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
        Some(3)
    );
    assert_eq!(m.counter("classes.total", &[("status", "2xx")]), Some(20));
    assert_eq!(m.counter("classes.total", &[("status", "5xx")]), Some(20));
    assert_eq!(m.series("classes.total").len(), 2);
    // i = 0, 2, 4 inherit `svc` from the parent; i = 4 and 5 failed.
    assert_eq!(
        m.counter("calls.total", &[("svc", "up"), ("outcome", "success")]),
        Some(2)
    );
    assert_eq!(
        m.counter("calls.total", &[("svc", "own"), ("outcome", "success")]),
        Some(2)
    );
    assert_eq!(
        m.counter("calls.total", &[("svc", "up"), ("outcome", "error")]),
        Some(1)
    );
    assert_eq!(
        m.counter("calls.total", &[("svc", "own"), ("outcome", "error")]),
        Some(1)
    );
    assert_eq!(
        m.counter("calls.total", &[("svc", "down"), ("outcome", "success")]),
        Some(2)
    );
    assert_eq!(m.series("calls.total").len(), 5);
    // Only i = 0 and 1 and the two under `other` reached the milestone.
    let ttfb = |svc| {
        m.histogram("call.ttfb.seconds", &[("svc", svc), ("outcome", "success")])
            .map(|v| v.len())
    };
    assert_eq!(
        (ttfb("up"), ttfb("own"), ttfb("down")),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(m.series("call.ttfb.seconds").len(), 3);
}
