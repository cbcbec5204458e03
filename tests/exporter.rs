//! Through the real Prometheus exporter: the names dashboards query, buckets instead of
//! summaries, help text, and an exporter set up from the rules before the layer is built.

use std::sync::Arc;

use tracing_spanmetrics::{Metric, SpanMetrics, Spans, exporter};
use tracing_subscriber::prelude::*;

fn render(builder: tracing_spanmetrics::SpanMetricsBuilder, work: impl FnOnce()) -> String {
    let recorder = exporter::prometheus_builder(&builder)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let layer = builder.with_recorder(Arc::new(recorder)).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), work);
    handle.run_upkeep();
    handle.render()
}

#[test]
fn red_mode_has_the_spanmetrics_connector_prometheus_names() {
    let text = render(SpanMetrics::red("shop"), || {
        drop(tracing::info_span!("checkout", otel.kind = "server"));
    });
    let labels = r#"service_name="shop",span_name="checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET""#;
    assert!(
        text.contains(&format!("traces_span_metrics_calls_total{{{labels}}} 1\n")),
        "{text}"
    );
    assert!(text.contains("# TYPE traces_span_metrics_duration_seconds histogram\n"));
    assert!(text.contains(&format!(
        "traces_span_metrics_duration_seconds_bucket{{{labels},le=\"0.0001\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "traces_span_metrics_duration_seconds_count{{{labels}}} 1\n"
    )));
    assert!(text.contains("# HELP traces_span_metrics_calls_total "));
}

#[test]
fn every_histogram_has_buckets_even_one_added_later() {
    let rules = SpanMetrics::builder().metric(
        Metric::histogram("op.duration.seconds")
            .describe("Ops")
            .spans(Spans::named("op"))
            .buckets(tracing_spanmetrics::Buckets::explicit([0.5, 1.0])),
    );
    let recorder = exporter::prometheus_builder(&rules)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let recorder = Arc::new(recorder);
    let layer = rules.with_recorder(recorder.clone()).build().unwrap();
    let reload = layer.reload_handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        drop(tracing::info_span!("op"));
        // A histogram the exporter was not told about: the default buckets, not a summary.
        reload
            .reload(
                SpanMetrics::builder()
                    .metric(Metric::histogram("late.duration.seconds").spans(Spans::named("op")))
                    .with_recorder(recorder.clone()),
            )
            .unwrap();
        drop(tracing::info_span!("op"));
    });
    handle.run_upkeep();
    let text = handle.render();
    assert!(
        text.contains("op_duration_seconds_bucket{le=\"0.5\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("op_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert!(text.contains("late_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert!(!text.contains("summary"));
    assert!(!text.contains("quantile"));
}
