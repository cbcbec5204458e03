//! Through the real Prometheus exporter: the names dashboards query, buckets instead of
//! summaries, help text, and an exporter set up from the rules before the layer is built.
#![cfg(feature = "prometheus")]

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
    // Milliseconds, the connector's default unit (and what Jaeger's Monitor tab expects).
    assert!(text.contains("# TYPE traces_span_metrics_duration_milliseconds histogram\n"));
    assert!(text.contains(&format!(
        "traces_span_metrics_duration_milliseconds_bucket{{{labels},le=\"15000\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "traces_span_metrics_duration_milliseconds_count{{{labels}}} 1\n"
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

/// The layer and exposition of `build_with_own_recorder`, one span of `op` recorded.
fn own_recorder_with(
    rules: tracing_spanmetrics::SpanMetricsBuilder,
) -> (
    tracing_spanmetrics::ReloadHandle,
    tracing::Dispatch,
    exporter::Exposition,
) {
    let (layer, exposition) = exporter::build_with_own_recorder(rules).unwrap();
    let reload = layer.reload_handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    (reload, dispatch, exposition)
}

fn op_rules() -> tracing_spanmetrics::SpanMetricsBuilder {
    SpanMetrics::builder().metric(
        Metric::histogram("op.duration.seconds")
            .spans(Spans::named("op"))
            .buckets(tracing_spanmetrics::Buckets::explicit([0.5, 1.0])),
    )
}

#[test]
fn an_own_recorder_in_one_call_keeps_counting_across_reloads() {
    let (reload, dispatch, exposition) = own_recorder_with(op_rules());
    tracing::dispatcher::with_default(&dispatch, || {
        drop(tracing::info_span!("op"));
        // The README's pattern: the reloaded builder names no recorder.
        reload.reload(op_rules()).unwrap();
        drop(tracing::info_span!("op"));
    });
    let text = exposition.render();
    assert!(
        text.contains("op_duration_seconds_bucket{le=\"0.5\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("op_duration_seconds_count 2\n"), "{text}");
}

#[test]
fn a_reload_that_declares_buckets_the_exporter_lacks_is_refused() {
    let (reload, _dispatch, _exposition) = own_recorder_with(op_rules());
    let err = reload
        .reload(
            op_rules().metric(
                Metric::histogram("late.duration.seconds")
                    .spans(Spans::named("op"))
                    .buckets(tracing_spanmetrics::Buckets::explicit([0.25, 4.0])),
            ),
        )
        .expect_err("must be refused");
    assert_eq!(
        err.to_string(),
        "metric `late.duration.seconds`: this reload declares buckets [0.25, 4.0] for the \
         histogram (exported as `late_duration_seconds`), but the running exporter renders it \
         with [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]: \
         metrics-exporter-prometheus fixes each histogram's buckets when it is built; declare \
         those buckets, or restart with the new configuration"
    );
    // Changing the buckets of a histogram the exporter knows is refused too.
    let err = reload
        .reload(
            SpanMetrics::builder().metric(
                Metric::histogram("op.duration.seconds")
                    .spans(Spans::named("op"))
                    .buckets(tracing_spanmetrics::Buckets::explicit([2.0])),
            ),
        )
        .expect_err("must be refused");
    assert!(
        err.to_string().contains("renders it with [0.5, 1.0]"),
        "{err}"
    );
    // A histogram added with the buckets the exporter falls back to is accepted, and rendered
    // with them.
    reload
        .reload(
            op_rules().metric(Metric::histogram("late.duration.seconds").spans(Spans::named("op"))),
        )
        .unwrap();
}

#[test]
fn the_upkeep_thread_ends_with_the_last_exposition() {
    fn upkeep_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("spanmetrics-upk"))
            })
            .count()
    }
    /// Polls until `done` holds, for at most 5 s (threads name themselves once started).
    fn eventually(done: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        done()
    }
    let (_reload, _dispatch, exposition) = own_recorder_with(op_rules());
    let clone = exposition.clone();
    assert!(eventually(|| upkeep_threads() >= 1));
    drop(exposition);
    assert!(upkeep_threads() >= 1, "a clone still holds the upkeep");
    drop(clone);
    // Other tests of this binary may run their own meanwhile; all of them end.
    assert!(eventually(|| upkeep_threads() == 0));
}

#[test]
fn red_buckets_resolve_sub_millisecond_spans_and_keep_the_connectors_bounds() {
    let (clock, mock) = quanta::Clock::mock();
    let text = render(SpanMetrics::red("shop").with_clock(clock), || {
        let span = tracing::info_span!("parse");
        mock.increment(std::time::Duration::from_micros(300));
        drop(span);
    });
    let bucket = |le: &str| {
        let prefix = format!(
            "traces_span_metrics_duration_milliseconds_bucket{{service_name=\"shop\",span_name=\"parse\",span_kind=\"SPAN_KIND_INTERNAL\",status_code=\"STATUS_CODE_UNSET\",le=\"{le}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no bucket le={le} in {text}"))
            .to_owned()
    };
    // 300 µs = 0.3 ms: above 0.25 ms, within 0.5 ms.
    assert_eq!(bucket("0.25"), "0");
    assert_eq!(bucket("0.5"), "1");
    // Every bound of the Collector connector's default (2 ms to 15 s) is there.
    for le in [
        "2", "4", "6", "8", "10", "50", "100", "200", "400", "800", "1000", "1400", "2000", "5000",
        "10000", "15000",
    ] {
        assert_eq!(bucket(le), "1", "le={le}");
    }
}

/// The layer's health counters exist at zero before any span, so an alert or a panel over them
/// reads 0 rather than "no data": the overflow count of every family, the replaced values of
/// each label with a value limit, the refused values of a family that measures a numeric field
/// (for the reasons its kind can refuse) and the truncated values. Nothing else is rendered.
#[test]
fn the_health_counters_are_rendered_at_zero_before_any_span() {
    let rules = SpanMetrics::builder()
        .metric(
            Metric::counter("bytes.total")
                .spans(Spans::named("io"))
                .span_field("bytes")
                .label(tracing_spanmetrics::Label::field("peer").value_limit(4)),
        )
        .metric(
            Metric::gauge("queue.depth")
                .spans(Spans::named("io"))
                .span_field("depth"),
        )
        .metric(Metric::histogram("io.duration.seconds").spans(Spans::named("io")));
    let (_layer, exposition) = exporter::build_with_own_recorder(rules).unwrap();
    let mut samples: Vec<&str> = Vec::new();
    let text = exposition.render();
    samples.extend(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty()),
    );
    samples.sort_unstable();
    assert_eq!(
        samples,
        [
            "spanmetrics_label_overflow_observations_total{metric=\"bytes_total\",label=\"peer\"} 0",
            "spanmetrics_label_values_truncated_total 0",
            "spanmetrics_overflow_observations_total{metric=\"bytes_total\"} 0",
            "spanmetrics_overflow_observations_total{metric=\"io_duration_seconds\"} 0",
            "spanmetrics_overflow_observations_total{metric=\"queue_depth\"} 0",
            "spanmetrics_values_rejected_total{metric=\"bytes_total\",reason=\"negative\"} 0",
            "spanmetrics_values_rejected_total{metric=\"bytes_total\",reason=\"not_a_number\"} 0",
            "spanmetrics_values_rejected_total{metric=\"bytes_total\",reason=\"not_finite\"} 0",
            "spanmetrics_values_rejected_total{metric=\"bytes_total\",reason=\"too_large\"} 0",
            "spanmetrics_values_rejected_total{metric=\"queue_depth\",reason=\"not_a_number\"} 0",
        ],
        "{text}"
    );
}
