//! Side by side with tracing-opentelemetry: one workload, both layers in one registry. The
//! finished OpenTelemetry spans per name, kind and status equal this crate's RED calls, and the
//! durations agree.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestRecorder;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::field::Empty;
use tracing_spanmetrics::{
    OVERFLOW_METRIC, RED_CALLS, RED_DURATION, SpanMetrics, TRUNCATED_METRIC,
};
use tracing_subscriber::prelude::*;

/// Keeps every finished span.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[derive(Debug)]
struct Failure;
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}
impl std::error::Error for Failure {}

#[tracing::instrument(err)]
fn handler(n: u64) -> Result<(), Failure> {
    std::thread::sleep(Duration::from_millis(1 + n % 3));
    if n % 4 == 0 { Err(Failure) } else { Ok(()) }
}

fn kind_name(k: &opentelemetry::trace::SpanKind) -> &'static str {
    use opentelemetry::trace::SpanKind::*;
    match k {
        Client => "SPAN_KIND_CLIENT",
        Server => "SPAN_KIND_SERVER",
        Producer => "SPAN_KIND_PRODUCER",
        Consumer => "SPAN_KIND_CONSUMER",
        Internal => "SPAN_KIND_INTERNAL",
    }
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Unset => "STATUS_CODE_UNSET",
        Status::Ok => "STATUS_CODE_OK",
        Status::Error { .. } => "STATUS_CODE_ERROR",
    }
}

#[test]
fn span_metrics_and_traces_agree() {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let tracer = provider.tracer("side-by-side");
    let recorder = Arc::new(TestRecorder::default());
    let red = SpanMetrics::red("svc")
        .with_recorder(recorder.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(red);

    tracing::subscriber::with_default(subscriber, || {
        for n in 0..12u64 {
            let server = tracing::info_span!(
                "request",
                otel.name = "GET /items",
                otel.kind = "server",
                otel.status_code = Empty
            );
            let _s = server.enter();
            let _ = handler(n);
            let client = tracing::info_span!("query", otel.kind = "client");
            client.in_scope(|| {
                std::thread::sleep(Duration::from_millis(2));
                if n % 3 == 0 {
                    tracing::error!("connection reset");
                }
            });
            if n % 2 == 0 {
                server.record("otel.status_code", "OK");
            }
        }
    });
    provider.force_flush().unwrap();

    // OpenTelemetry's view: finished spans per (name, kind, status), and their durations.
    let spans = collect.0.lock().unwrap().clone();
    let mut otel_calls: BTreeMap<(String, &str, &str), u64> = BTreeMap::new();
    let mut otel_durations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in &spans {
        *otel_calls
            .entry((
                s.name.to_string(),
                kind_name(&s.span_kind),
                status_name(&s.status),
            ))
            .or_default() += 1;
        let d = s
            .end_time
            .duration_since(s.start_time)
            .unwrap()
            .as_secs_f64();
        otel_durations
            .entry(s.name.to_string())
            .or_default()
            .push(d);
    }
    assert_eq!(spans.len(), 36);

    // This crate's view, from the same spans.
    let m = recorder.snapshot();
    let mut ours: BTreeMap<(String, &str, &str), u64> = BTreeMap::new();
    let mut our_durations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut health: Vec<(&str, Vec<String>, &common::Value)> = Vec::new();
    for (key, value) in &m.series {
        if [OVERFLOW_METRIC, TRUNCATED_METRIC].contains(&key.name()) {
            let labels = key.labels().map(|l| l.value().to_owned()).collect();
            health.push((key.name(), labels, value));
            continue;
        }
        let label = |k: &str| {
            key.labels()
                .find(|l| l.key() == k)
                .map(|l| l.value().to_owned())
                .unwrap()
        };
        let kind = match label("span.kind").as_str() {
            "SPAN_KIND_SERVER" => "SPAN_KIND_SERVER",
            "SPAN_KIND_CLIENT" => "SPAN_KIND_CLIENT",
            _ => "SPAN_KIND_INTERNAL",
        };
        let status = match label("status.code").as_str() {
            "STATUS_CODE_OK" => "STATUS_CODE_OK",
            "STATUS_CODE_ERROR" => "STATUS_CODE_ERROR",
            _ => "STATUS_CODE_UNSET",
        };
        match (key.name(), value) {
            (RED_CALLS, common::Value::Counter(n)) => {
                *ours.entry((label("span.name"), kind, status)).or_default() += n;
            }
            (RED_DURATION, common::Value::Histogram(v)) => {
                // RED records milliseconds, as the connector does by default.
                our_durations
                    .entry(label("span.name"))
                    .or_default()
                    .extend(v.iter().map(|ms| ms / 1000.0));
            }
            _ => {}
        }
    }
    assert_eq!(ours, otel_calls);
    // Besides RED's families, only the layer's health counters, registered at 0 when it was
    // built and still 0: overflow for each of RED's two families (calls, duration; events are
    // off), truncated always; no numeric field, no label with a value limit.
    health.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let zero = common::Value::Counter(0);
    assert_eq!(
        health,
        [
            (TRUNCATED_METRIC, vec![], &zero),
            (OVERFLOW_METRIC, vec![RED_CALLS.to_owned()], &zero),
            (OVERFLOW_METRIC, vec![RED_DURATION.to_owned()], &zero),
        ]
    );
    // The expected split, spelled out: 12 requests (6 OK, 6 unset), 12 handler calls (3 failed),
    // 12 queries (4 with an error event).
    assert_eq!(
        ours,
        BTreeMap::from([
            (
                (
                    "GET /items".to_owned(),
                    "SPAN_KIND_SERVER",
                    "STATUS_CODE_OK"
                ),
                6
            ),
            (
                (
                    "GET /items".to_owned(),
                    "SPAN_KIND_SERVER",
                    "STATUS_CODE_UNSET"
                ),
                6
            ),
            (
                (
                    "handler".to_owned(),
                    "SPAN_KIND_INTERNAL",
                    "STATUS_CODE_ERROR"
                ),
                3
            ),
            (
                (
                    "handler".to_owned(),
                    "SPAN_KIND_INTERNAL",
                    "STATUS_CODE_UNSET"
                ),
                9
            ),
            (
                ("query".to_owned(), "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR"),
                4
            ),
            (
                ("query".to_owned(), "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET"),
                8
            ),
        ])
    );
    // Durations: the two layers read their clocks a few microseconds apart, on the same hooks.
    assert_eq!(
        our_durations.keys().collect::<Vec<_>>(),
        otel_durations.keys().collect::<Vec<_>>()
    );
    for (name, mut a) in our_durations {
        let mut b = otel_durations.remove(&name).unwrap();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        assert_eq!(a.len(), b.len());
        let sum_a: f64 = a.iter().sum();
        let sum_b: f64 = b.iter().sum();
        // Per span within 1 ms, and in total within 0.5 ms per span.
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-3, "{name}: {x} vs {y}");
        }
        assert!(
            (sum_a - sum_b).abs() < 5e-4 * a.len() as f64,
            "{name}: {sum_a} vs {sum_b}"
        );
    }
}
