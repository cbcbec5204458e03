//! Arbitrary sequences of span operations and field values driving the layer: no panic, and
//! after everything is closed every in-flight gauge reads zero and every close was counted.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tracing::field::Empty;
use tracing::{Level, Span};
use tracing_spanmetrics::{Condition, EventMatch, Label, Mapping, Metric, SpanMetrics};
use tracing_subscriber::prelude::*;

struct Rec(Registry<Key, AtomicStorage>);

/// Histograms that only count: metrics-util's `AtomicBucket` does not free its blocks when
/// dropped, which LeakSanitizer would report for every recorder this target builds.
struct CountingHistogram(std::sync::atomic::AtomicU64);

impl metrics::HistogramFn for CountingHistogram {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, k: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(k, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, k: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(k, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(CountingHistogram(
            std::sync::atomic::AtomicU64::new(0),
        )))
    }
}

/// Reads bytes as small numbers and strings.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn text(&mut self) -> String {
        let n = self.byte().unwrap_or(0) as usize;
        let n = n.min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

fn record(span: &Span, field: &str, kind: u8, input: &mut Input<'_>) {
    let b = input.byte().unwrap_or(0);
    match kind % 7 {
        0 => span.record(field, b as u64 * 1_000_003),
        1 => span.record(field, -(b as i64) << 40),
        2 => span.record(
            field,
            f64::from_bits((b as u64) << 56 | 0x7ff0_0000_0000_0001 * (b & 1) as u64),
        ),
        3 => span.record(field, b & 1 == 1),
        4 => span.record(field, input.text().as_str()),
        5 => span.record(field, tracing::field::debug(input.text())),
        _ => span.record(field, u128::MAX - b as u128),
    };
}

fuzz_target!(|data: &[u8]| {
    let recorder = Arc::new(Rec(Registry::atomic()));
    let layer = SpanMetrics::builder()
        .max_label_len(16)
        .cardinality_limit(8)
        .metric(
            Metric::counter("calls")
                .label(Label::span_name("name"))
                .label(
                    Label::field("k")
                        .default("none")
                        .map(Mapping::status_class()),
                )
                .label(Label::field("s"))
                .label(Label::outcome("result")),
        )
        .metric(Metric::histogram("wall").label("s"))
        .metric(Metric::histogram("busy").busy_time())
        .metric(Metric::histogram("self").self_time())
        .metric(Metric::gauge("open").label("s"))
        .metric(Metric::gauge("pinned").in_flight_after("p").label("p"))
        .metric(Metric::gauge("level").span_field("k"))
        .metric(Metric::histogram("kv").span_field("k"))
        .metric(
            Metric::counter("ksum")
                .span_field("k")
                .when(Condition::field("k").between(0.0, 1e6)),
        )
        .metric(
            Metric::counter("ticks")
                .events(EventMatch::message("tick"))
                .label("s"),
        )
        .metric(Metric::histogram("tick_n").event_field(EventMatch::message("tick"), "n"))
        .metric(Metric::histogram("to_tick").time_to(EventMatch::message("tick")))
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut input = Input(data);
    let mut spans: Vec<Span> = Vec::new();
    let mut guards = Vec::new();
    let mut created = 0u64;
    tracing::dispatcher::with_default(&dispatch, || {
        while let Some(op) = input.byte() {
            let pick =
                |spans: &Vec<Span>, b: u8| (!spans.is_empty()).then(|| b as usize % spans.len());
            match op % 8 {
                0 if spans.len() < 64 => {
                    let s = tracing::info_span!(
                        "s",
                        k = Empty,
                        s = Empty,
                        p = Empty,
                        otel.status_code = Empty
                    );
                    created += 1;
                    spans.push(s);
                }
                1 => {
                    let (which, field, kind) = (
                        input.byte().unwrap_or(0),
                        input.byte().unwrap_or(0),
                        input.byte().unwrap_or(0),
                    );
                    if let Some(i) = pick(&spans, which) {
                        let f = ["k", "s", "p", "otel.status_code"][field as usize % 4];
                        record(&spans[i], f, kind, &mut input);
                    }
                }
                2 => {
                    if let Some(i) = pick(&spans, input.byte().unwrap_or(0)) {
                        if guards.len() < 32 {
                            guards.push(spans[i].clone().entered());
                        }
                    }
                }
                3 => drop(guards.pop()),
                4 => {
                    let n = input.byte().unwrap_or(0);
                    let text = input.text();
                    tracing::event!(Level::INFO, n = n as f64 - 100.0, s = text.as_str(), "tick");
                }
                5 => tracing::error!("failure"),
                6 => {
                    if let Some(i) = pick(&spans, input.byte().unwrap_or(0)) {
                        let s = spans.swap_remove(i);
                        if input.byte().unwrap_or(0) & 1 == 1 {
                            let d = dispatch.clone();
                            std::thread::spawn(move || {
                                tracing::dispatcher::with_default(&d, || drop(s))
                            })
                            .join()
                            .unwrap();
                        } else {
                            drop(s);
                        }
                    }
                }
                _ => {
                    let s = tracing::info_span!("child", s = input.text().as_str());
                    created += 1;
                    s.in_scope(|| tracing::warn!(error = "x", "retry"));
                }
            }
        }
        guards.clear();
        spans.clear();
    });
    // Families are registered under their exported names: the in-flight gauges count, so keep
    // their declared names; the counter `calls` is `calls_total`.
    let gauges = recorder.0.get_gauge_handles();
    let mut open_series = 0;
    for (key, g) in gauges {
        if key.name() == "open" || key.name() == "pinned" {
            open_series += usize::from(key.name() == "open");
            let v = f64::from_bits(g.load(std::sync::atomic::Ordering::SeqCst));
            assert_eq!(v, 0.0, "{key} left at {v}");
        }
    }
    // Every span opens `open`: a name that found nothing would check nothing.
    assert!(created == 0 || open_series > 0, "no `open` series");
    let closed: u64 = recorder
        .0
        .get_counter_handles()
        .into_iter()
        .filter(|(k, _)| k.name() == "calls_total")
        .map(|(_, c)| c.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    assert_eq!(closed, created);
});
