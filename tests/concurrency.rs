//! Threads, filters and composition: exact counts whatever the thread a span closes on.

mod common;

use std::sync::Arc;

use common::{Harness, TestRecorder};
use tracing::dispatcher;
use tracing_spanmetrics::{Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

#[test]
fn n_threads_times_m_spans_record_exactly_n_times_m() {
    const THREADS: u64 = 4;
    const SPANS: u64 = 2_500;
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::counter("w.total")
                    .spans(Spans::named("w"))
                    .label("t"),
            )
            .metric(Metric::histogram("w.seconds").spans(Spans::named("w")))
            .metric(Metric::gauge("w.open").spans(Spans::named("w")).in_flight()),
    );
    let d = h.dispatch();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                dispatcher::with_default(&d, || {
                    for _ in 0..SPANS {
                        let s = tracing::info_span!("w", t = t % 2);
                        let _g = s.enter();
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = h.snapshot();
    assert_eq!(m.counter("w.total", &[("t", "0")]), Some(2 * SPANS));
    assert_eq!(m.counter("w.total", &[("t", "1")]), Some(2 * SPANS));
    assert_eq!(
        m.histogram("w.seconds", &[]).map(|v| v.len() as u64),
        Some(THREADS * SPANS)
    );
    assert_eq!(m.gauge("w.open", &[]), Some(0.0));
}

#[test]
fn spans_closed_on_another_thread_than_they_were_created_on() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("moved.seconds")
                    .spans(Spans::named("moved"))
                    .label("k"),
            )
            .metric(
                Metric::histogram("moved.busy")
                    .spans(Spans::named("moved"))
                    .busy_time(),
            )
            .metric(Metric::gauge("moved.open").spans(Spans::named("moved"))),
    );
    let d = h.dispatch();
    let spans: Vec<tracing::Span> = dispatcher::with_default(&d, || {
        (0..100)
            .map(|i| tracing::info_span!("moved", k = i % 2))
            .collect()
    });
    assert_eq!(h.snapshot().gauge("moved.open", &[]), Some(100.0));
    h.advance_ms(8);
    std::thread::spawn(move || drop(spans)).join().unwrap();
    let m = h.snapshot();
    let want = (8_000_000u64) as f64 * 1e-9;
    assert_eq!(
        m.histogram("moved.seconds", &[("k", "0")]),
        Some(vec![want; 50])
    );
    assert_eq!(
        m.histogram("moved.seconds", &[("k", "1")]),
        Some(vec![want; 50])
    );
    // Never entered: no busy time at all.
    assert_eq!(m.histogram("moved.busy", &[]), Some(vec![0.0; 100]));
    assert_eq!(m.gauge("moved.open", &[]), Some(0.0));
}

#[test]
fn parents_hidden_by_a_per_layer_filter_are_skipped_when_inheriting() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(
            Metric::counter("leaf.total")
                .spans(Spans::named("leaf"))
                .label("tenant")
                .label(Label::span_name("name")),
        ),
    );
    let layer = h
        .take_layer()
        .with_filter(filter_fn(|m| m.name() != "hidden"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root", tenant = "acme");
        let _r = root.enter();
        // Would shadow `tenant`, but the layer never sees it.
        let hidden = tracing::info_span!("hidden", tenant = "shadow");
        let _h = hidden.enter();
        drop(tracing::info_span!("leaf"));
        drop(tracing::info_span!("hidden")); // filtered: not counted even if it matched
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter("leaf.total", &[("tenant", "acme"), ("name", "leaf")]),
        Some(1)
    );
    assert_eq!(m.series("leaf.total").len(), 1);
}

#[test]
fn the_layer_under_a_level_filter_beside_a_fmt_layer() {
    let mut h = Harness::new(
        SpanMetrics::builder().metric(Metric::counter("any.total").label(Label::span_name("n"))),
    );
    let layer = h
        .take_layer()
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(subscriber, || {
        drop(tracing::info_span!("a"));
        drop(tracing::debug_span!("b"));
        drop(tracing::warn_span!("c"));
    });
    let m = h.snapshot();
    assert_eq!(m.counter("any.total", &[("n", "a")]), Some(1));
    assert_eq!(m.counter("any.total", &[("n", "c")]), Some(1));
    assert_eq!(m.counter("any.total", &[("n", "b")]), None);
}

#[test]
fn two_layers_in_one_subscriber_keep_their_own_state() {
    let recorder = Arc::new(TestRecorder::default());
    let red = SpanMetrics::red("svc")
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let custom = SpanMetrics::builder()
        .metric(Metric::gauge("x.open").spans(Spans::named("x")).label("k"))
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(red).with(custom);
    tracing::subscriber::with_default(subscriber, || {
        let a = tracing::info_span!("x", k = "1");
        assert_eq!(
            recorder.snapshot().gauge("x.open", &[("k", "1")]),
            Some(1.0)
        );
        drop(a);
    });
    let m = recorder.snapshot();
    assert_eq!(m.gauge("x.open", &[("k", "1")]), Some(0.0));
    assert_eq!(
        m.counter(
            "traces.span.metrics.calls",
            &[
                ("service.name", "svc"),
                ("span.name", "x"),
                ("span.kind", "SPAN_KIND_INTERNAL"),
                ("status.code", "STATUS_CODE_UNSET"),
            ]
        ),
        Some(1)
    );
}

/// Three layers of this crate in one subscriber, each with its own rules and recorder: each
/// finds its own state on a span (the first layer's and the others'), for labels inherited
/// from an ancestor, fields recorded later, events anchored to a span and gauges gated on a
/// field.
#[test]
fn three_layers_in_one_subscriber_each_read_their_own_state() {
    let (clock, mock) = quanta::Clock::mock();
    let recorders: [Arc<TestRecorder>; 3] = Default::default();
    let layer = |i: usize, field: &str| {
        let (calls, hits, busy, took) = (
            format!("l{i}.calls"),
            format!("l{i}.hits"),
            format!("l{i}.busy"),
            format!("l{i}.took"),
        );
        SpanMetrics::builder()
            .metric(
                Metric::counter(calls)
                    .spans(Spans::named("op"))
                    .labels([field, "status"]),
            )
            .metric(
                Metric::counter(hits)
                    .events(tracing_spanmetrics::EventMatch::message("hit"))
                    .spans(Spans::named("op"))
                    .label(field),
            )
            .metric(
                Metric::gauge(busy)
                    .spans(Spans::named("op"))
                    .in_flight_after("status")
                    .label(field),
            )
            .metric(
                Metric::histogram(took)
                    .spans(Spans::named("op"))
                    .label(field)
                    .when(tracing_spanmetrics::Condition::recorded("status")),
            )
            .with_recorder(recorders[i].clone())
            .with_clock(clock.clone())
            .build()
            .unwrap()
    };
    let fields = ["tenant", "region", "user"];
    let subscriber = tracing_subscriber::registry()
        .with(layer(0, fields[0]))
        .with(layer(1, fields[1]))
        .with(layer(2, fields[2]));
    tracing::subscriber::with_default(subscriber, || {
        for (n, (tenant, region, user)) in [(2, ("t1", "r1", "u1")), (3, ("t2", "r2", "u2"))] {
            let req = tracing::info_span!("req", tenant, region, user);
            let _req = req.enter();
            for i in 0..n {
                let op = tracing::info_span!("op", status = tracing::field::Empty);
                op.in_scope(|| tracing::info!("hit"));
                op.record("status", 200 + i % 2);
                let values = [tenant, region, user];
                for (j, rec) in recorders.iter().enumerate() {
                    let busy = rec
                        .snapshot()
                        .gauge(&format!("l{j}.busy"), &[(fields[j], values[j])]);
                    assert_eq!(busy, Some(1.0), "layer {j}");
                }
                mock.increment(std::time::Duration::from_millis(10));
                drop(op);
            }
            // Never records its status: no gauge, no duration.
            drop(tracing::info_span!("op", status = tracing::field::Empty));
        }
    });
    for (i, (rec, field)) in recorders.iter().zip(fields).enumerate() {
        let m = rec.snapshot();
        let (a, b) = (["t1", "r1", "u1"][i], ["t2", "r2", "u2"][i]);
        let calls = format!("l{i}.calls");
        let mut want = vec![
            common::labels(&[(field, a)]),
            common::labels(&[(field, a), ("status", "200")]),
            common::labels(&[(field, a), ("status", "201")]),
            common::labels(&[(field, b)]),
            common::labels(&[(field, b), ("status", "200")]),
            common::labels(&[(field, b), ("status", "201")]),
        ];
        want.sort();
        assert_eq!(m.series(&calls), want, "layer {i}");
        assert_eq!(m.counter(&calls, &[(field, a), ("status", "200")]), Some(1));
        assert_eq!(m.counter(&calls, &[(field, a), ("status", "201")]), Some(1));
        assert_eq!(m.counter(&calls, &[(field, b), ("status", "200")]), Some(2));
        assert_eq!(m.counter(&calls, &[(field, b), ("status", "201")]), Some(1));
        assert_eq!(m.counter(&calls, &[(field, a)]), Some(1));
        assert_eq!(m.counter(&calls, &[(field, b)]), Some(1));
        let hits = format!("l{i}.hits");
        assert_eq!(m.counter(&hits, &[(field, a)]), Some(2), "layer {i}");
        assert_eq!(m.counter(&hits, &[(field, b)]), Some(3), "layer {i}");
        let busy = format!("l{i}.busy");
        assert_eq!(m.gauge(&busy, &[(field, a)]), Some(0.0));
        assert_eq!(m.gauge(&busy, &[(field, b)]), Some(0.0));
        let took = format!("l{i}.took");
        assert_eq!(m.histogram(&took, &[(field, a)]), Some(vec![0.01; 2]));
        assert_eq!(m.histogram(&took, &[(field, b)]), Some(vec![0.01; 3]));
        // Nothing from another layer's rules. Besides its own series (6 + 2 + 2 + 2), each
        // layer's recorder holds its health counters at 0: one overflow counter per family (4)
        // and the truncated counter (1); no label has a value limit, no family measures a
        // numeric field.
        assert_eq!(m.series.len(), 6 + 2 + 2 + 2 + 4 + 1, "layer {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tasks_polled_across_threads() {
    use tracing::Instrument;
    let recorder = Arc::new(TestRecorder::default());
    let layer = SpanMetrics::builder()
        .metric(Metric::counter("task.total").spans(Spans::named("task")))
        .metric(
            Metric::histogram("task.busy")
                .spans(Spans::named("task"))
                .busy_time(),
        )
        .metric(
            Metric::histogram("task.idle")
                .spans(Spans::named("task"))
                .idle_time(),
        )
        .metric(Metric::histogram("task.wall").spans(Spans::named("task")))
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let _g = dispatcher::set_default(&dispatch);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(
                async {
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                }
                .instrument(tracing::info_span!("task")),
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = recorder.snapshot();
    assert_eq!(m.counter("task.total", &[]), Some(200));
    let busy = m.histogram("task.busy", &[]).unwrap();
    let idle = m.histogram("task.idle", &[]).unwrap();
    let wall = m.histogram("task.wall", &[]).unwrap();
    assert_eq!((busy.len(), idle.len(), wall.len()), (200, 200, 200));
    // Real time: only signs are exact here; `overlapping_enters_on_two_threads_count_once`
    // checks the values with a mock clock.
    assert!(busy.iter().chain(&idle).all(|t| *t >= 0.0));
}

/// One span entered on two threads at once: busy time is the time at least one thread was
/// inside it (the union of the enters), not the sum of them; idle time is the rest.
#[test]
fn overlapping_enters_on_two_threads_count_once() {
    use std::sync::Barrier;
    let mut h = common::Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("job.busy")
                    .spans(Spans::named("job"))
                    .busy_time(),
            )
            .metric(
                Metric::histogram("job.idle")
                    .spans(Spans::named("job"))
                    .idle_time(),
            )
            .metric(Metric::histogram("job.wall").spans(Spans::named("job"))),
    );
    let dispatch = h.dispatch();
    let span = dispatcher::with_default(&dispatch, || tracing::info_span!("job"));
    // Phases, 10 ms of mock time apart: 0 A enters, 10 B enters, 20 A exits, 30 B exits,
    // 50 the span closes. Busy: 0..30; idle: 30..50.
    let step = Arc::new(Barrier::new(3));
    let thread = |enter_at: usize, exit_at: usize| {
        let (span, step, d) = (span.clone(), step.clone(), dispatch.clone());
        std::thread::spawn(move || {
            dispatcher::with_default(&d, || {
                let mut guard = None;
                for phase in 0..4 {
                    if phase == enter_at {
                        guard = Some(span.enter());
                    }
                    if phase == exit_at {
                        guard = None;
                    }
                    step.wait(); // this phase's enter or exit is done
                    step.wait(); // the clock has moved on
                }
                drop(guard);
            })
        })
    };
    let (a, b) = (thread(0, 2), thread(1, 3));
    for _ in 0..4 {
        step.wait();
        h.advance_ms(10);
        step.wait();
    }
    a.join().unwrap();
    b.join().unwrap();
    h.advance_ms(10);
    drop(span);
    let m = h.snapshot();
    // In whole nanoseconds: seconds as f64 carry rounding of the last bit.
    let nanos = |name: &str| {
        m.histogram(name, &[]).map(|v| {
            v.iter()
                .map(|s| (s * 1e9).round() as u64)
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(nanos("job.busy"), Some(vec![30_000_000]));
    assert_eq!(nanos("job.idle"), Some(vec![20_000_000]));
    assert_eq!(nanos("job.wall"), Some(vec![50_000_000]));
}

/// A recorder that counts registrations, in front of a [`TestRecorder`].
#[derive(Default)]
struct CountingRecorder {
    inner: TestRecorder,
    registrations: std::sync::atomic::AtomicUsize,
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_counter(k, u, d)
    }
    fn describe_gauge(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_gauge(k, u, d)
    }
    fn describe_histogram(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_histogram(k, u, d)
    }
    fn register_counter(&self, key: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Counter {
        self.registrations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.register_counter(key, m)
    }
    fn register_gauge(&self, key: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.registrations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.register_gauge(key, m)
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        m: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.registrations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.register_histogram(key, m)
    }
}

/// The README's claim: once a label set has been seen, recording it registers nothing (the
/// writer lock of a family is only taken to register), on any thread.
#[test]
fn label_sets_seen_before_register_nothing_on_any_thread() {
    use std::sync::atomic::Ordering::SeqCst;
    let recorder = Arc::new(CountingRecorder::default());
    let layer = SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .spans(Spans::named("rpc"))
                .label("peer"),
        )
        .metric(
            Metric::counter("rpc.calls")
                .spans(Spans::named("rpc"))
                .label("peer"),
        )
        .metric(
            Metric::gauge("rpc.open")
                .spans(Spans::named("rpc"))
                .in_flight()
                .label("peer"),
        )
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let run = |spans: usize| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let d = dispatch.clone();
                std::thread::spawn(move || {
                    dispatcher::with_default(&d, || {
                        for i in 0..spans {
                            drop(tracing::info_span!("rpc", peer = i % 3));
                        }
                    })
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    };
    // At build, each of the 3 families registers its health counters at 0: its
    // overflow counter and the (shared) truncated counter, so 3 × 2 = 6 registrations (no label
    // has a value limit, no family measures a numeric field).
    assert_eq!(recorder.registrations.load(SeqCst), 6);
    run(3);
    // Then 3 label sets × 3 families.
    assert_eq!(recorder.registrations.load(SeqCst), 6 + 9);
    run(10_000);
    assert_eq!(recorder.registrations.load(SeqCst), 6 + 9);
    let m = recorder.inner.snapshot();
    assert_eq!(
        m.counter("rpc.calls", &[("peer", "0")]),
        Some(2 * (1 + 3334))
    );
}
