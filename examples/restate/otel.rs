//! `--otel`: the same spans, also exported as OpenTelemetry traces through
//! `tracing-opentelemetry`, side by side with the span-metrics layer in one registry.
//!
//! The exporter is deliberately tiny: one line per finished span on stderr, so that stdout keeps
//! carrying only the exposition (`--once`) or the live summary. A real service would plug an
//! OTLP exporter in the same place. Built with the crate's `opentelemetry` feature, the
//! histograms and counters served on `/metrics` carry exemplars with these spans' trace ids,
//! as OpenMetrics to a scraper that asks for it (Prometheus does).

use std::io::Write;

use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};

/// Prints `otel span NAME trace_id=ID kind=KIND status=STATUS duration=MS ms` per finished span
/// to stderr (the trace ids are the ones the metrics' exemplars link to).
#[derive(Debug, Default)]
pub struct StderrSpans;

fn kind(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// One line per span: the status description (an error's message) with line breaks flattened.
pub fn line(span: &SpanData) -> String {
    let status = match &span.status {
        Status::Unset => "unset".to_owned(),
        Status::Ok => "ok".to_owned(),
        Status::Error { description } if description.is_empty() => "error".to_owned(),
        Status::Error { description } => {
            format!("error ({})", description.replace(['\n', '\r'], " "))
        }
    };
    let ms = span
        .end_time
        .duration_since(span.start_time)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
    format!(
        "otel span {} trace_id={} kind={} status={status} duration={ms:.3}ms",
        span.name,
        span.span_context.trace_id(),
        kind(&span.span_kind)
    )
}

impl SpanExporter for StderrSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut err = std::io::stderr().lock();
        for span in &batch {
            // A closed stderr must not take the example down: the metrics are what matters.
            let _ = writeln!(err, "{}", line(span));
        }
        Ok(())
    }
}

/// A tracer provider exporting through [`StderrSpans`] as each span ends, and its tracer.
pub fn tracer() -> (SdkTracerProvider, SdkTracer) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(StderrSpans)
        .build();
    let tracer = provider.tracer("restate-example");
    (provider, tracer)
}
