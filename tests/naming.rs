//! Exported names: one name per family whatever the description and the exporter's naming
//! settings, and families that would collide once exported refused at build time.

#[cfg(feature = "prometheus")]
use std::sync::Arc;

#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::PrometheusBuilder;
#[cfg(feature = "prometheus")]
use tracing_spanmetrics::exporter;
use tracing_spanmetrics::{
    Label, Metric, OVERFLOW_METRIC, SpanMetrics, SpanMetricsBuilder, Spans, Unit,
};
#[cfg(feature = "prometheus")]
use tracing_subscriber::prelude::*;

/// The rules of the naming test, with or without help text.
fn rules(described: bool) -> SpanMetricsBuilder {
    let describe = |m: Metric, text: &str| if described { m.describe(text) } else { m };
    SpanMetrics::builder()
        .metric(describe(
            Metric::histogram("rpc.latency").spans(Spans::named("rpc")),
            "RPC latency",
        ))
        .metric(describe(
            Metric::histogram("payload")
                .unit(Unit::Bytes)
                .spans(Spans::named("rpc"))
                .span_field("size"),
            "Payload size",
        ))
        .metric(describe(
            Metric::counter("rpc.calls").spans(Spans::named("rpc")),
            "RPCs",
        ))
        .metric(describe(
            Metric::gauge("rpc.in_flight")
                .spans(Spans::named("rpc"))
                .in_flight(),
            "RPCs in flight",
        ))
}

/// The `# TYPE` lines of one span's metrics, rendered by `exporter` set up with the rules'
/// buckets.
#[cfg(feature = "prometheus")]
fn type_lines(described: bool, exporter: PrometheusBuilder) -> Vec<String> {
    let rules = rules(described);
    let recorder = exporter::add_buckets(exporter, &rules)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let layer = rules.with_recorder(Arc::new(recorder)).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        drop(tracing::info_span!("rpc", size = 10));
    });
    let mut lines: Vec<String> = handle
        .render()
        .lines()
        .filter(|l| l.starts_with("# TYPE"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
#[cfg(feature = "prometheus")]
fn exported_names_depend_on_name_kind_and_unit_only() {
    // The four families, then the layer's health counters, registered at 0 when the layer is
    // built: overflow for every family, values rejected because `payload` measures the `size`
    // field, truncated always; no label has a value limit, so no label overflow.
    use tracing_spanmetrics::{REJECTED_METRIC, TRUNCATED_METRIC};
    let health = |name: &str| format!("# TYPE {name} counter");
    let want = [
        "# TYPE payload_bytes histogram".to_owned(),
        "# TYPE rpc_calls_total counter".to_owned(),
        "# TYPE rpc_in_flight gauge".to_owned(),
        "# TYPE rpc_latency_seconds histogram".to_owned(),
        health(TRUNCATED_METRIC),
        health(OVERFLOW_METRIC),
        health(REJECTED_METRIC),
    ];
    type Setup = fn() -> PrometheusBuilder;
    let exporters: [(&str, Setup); 3] = [
        ("the crate's helper", || {
            exporter::prometheus_builder(&SpanMetrics::builder()).unwrap()
        }),
        ("a plain PrometheusBuilder", PrometheusBuilder::new),
        ("recommended naming", || {
            PrometheusBuilder::new().with_recommended_naming(true)
        }),
    ];
    for (what, exporter) in exporters {
        for described in [false, true] {
            assert_eq!(
                type_lines(described, exporter()),
                want,
                "{what}, described: {described}"
            );
        }
    }
}

#[test]
fn the_builder_tells_the_exported_name_of_each_histogram() {
    let names: Vec<(String, String)> = rules(false)
        .histograms()
        .into_iter()
        .map(|h| (h.name, h.exported_name))
        .collect();
    assert_eq!(
        names,
        [
            ("rpc.latency".to_owned(), "rpc_latency_seconds".to_owned()),
            ("payload".to_owned(), "payload_bytes".to_owned()),
        ]
    );
}

fn refused(builder: SpanMetricsBuilder) -> String {
    builder.build().expect_err("must be refused").to_string()
}

#[test]
fn a_counter_and_a_gauge_that_export_alike_are_refused() {
    let spans = || Spans::named("s");
    assert_eq!(
        refused(
            SpanMetrics::builder()
                .metric(Metric::counter("foo").spans(spans()))
                .metric(Metric::gauge("foo_total").spans(spans()).in_flight())
        ),
        "rule #1 (`foo_total`): exported as `foo_total`, whose sample `foo_total` collides with \
         the counter of rule #0 (`foo`, exported as `foo_total`); rename one of them"
    );
}

#[test]
fn a_gauge_named_like_a_histograms_samples_is_refused() {
    assert_eq!(
        refused(
            SpanMetrics::builder()
                .metric(
                    Metric::histogram("lat")
                        .describe("Latency")
                        .spans(Spans::named("s"))
                )
                .metric(
                    Metric::gauge("lat_seconds_count")
                        .spans(Spans::named("s"))
                        .in_flight()
                )
        ),
        "rule #1 (`lat_seconds_count`): exported as `lat_seconds_count`, whose sample \
         `lat_seconds_count` collides with the histogram of rule #0 (`lat`, exported as \
         `lat_seconds`); rename one of them"
    );
}

#[test]
fn two_declared_names_of_one_exported_name_are_refused() {
    assert_eq!(
        refused(
            SpanMetrics::builder()
                .metric(
                    Metric::counter("x.calls")
                        .spans(Spans::named("s"))
                        .label("a")
                )
                .metric(
                    Metric::counter("x_calls")
                        .spans(Spans::named("s"))
                        .label("b")
                )
        ),
        "rule #1 (`x_calls`): exported as `x_calls_total`, the same name as rule #0 \
         (`x.calls`) once `.` becomes `_` and unit and `_total` suffixes are added; give the two \
         families distinct names"
    );
}

#[test]
fn the_health_counters_names_are_reserved() {
    assert_eq!(
        refused(
            SpanMetrics::builder()
                .metric(Metric::counter("spanmetrics.overflow.observations").spans(Spans::all()))
        ),
        format!(
            "rule #0 (`spanmetrics.overflow.observations`): exported as `{OVERFLOW_METRIC}`, \
             which collides with `{OVERFLOW_METRIC}`, the layer's own health counter; choose \
             another name"
        )
    );
    // Its OpenMetrics family name too.
    assert_eq!(
        refused(
            SpanMetrics::builder().metric(
                Metric::gauge("spanmetrics_overflow_observations")
                    .spans(Spans::all())
                    .in_flight()
            )
        ),
        format!(
            "rule #0 (`spanmetrics_overflow_observations`): exported as \
             `spanmetrics_overflow_observations`, which collides with `{OVERFLOW_METRIC}`, the \
             layer's own health counter; choose another name"
        )
    );
}

#[test]
fn families_of_distinct_exported_names_are_accepted() {
    // A counter `foo` (foo_total) and a histogram `foo` in bytes would collide by declared name
    // only, which is refused as a family declared twice; distinct exported names are fine.
    SpanMetrics::builder()
        .metric(Metric::counter("requests").spans(Spans::named("s")))
        .metric(
            Metric::gauge("requests.open")
                .spans(Spans::named("s"))
                .in_flight(),
        )
        .metric(Metric::histogram("requests.duration").spans(Spans::named("s")))
        .build()
        .expect("distinct exported names");
}

#[test]
fn a_blank_red_service_name_is_refused() {
    for name in ["", "  "] {
        assert_eq!(
            refused(SpanMetrics::red(name)),
            format!(
                "rule #0 (`traces.span.metrics.calls`): label `service.name`: the fixed \
                 value {name:?} is blank; Prometheus treats an empty label value as no label at \
                 all, so give it a non-blank value"
            )
        );
    }
    assert_eq!(
        refused(
            SpanMetrics::builder().metric(
                Metric::counter("c")
                    .spans(Spans::all())
                    .label(Label::fixed("env", ""))
            )
        ),
        "rule #0 (`c`): label `env`: the fixed value \"\" is blank; Prometheus treats an empty \
         label value as no label at all, so give it a non-blank value"
    );
}

#[test]
fn a_blank_red_service_name_in_toml_is_refused() {
    let err = SpanMetrics::builder()
        .toml("[red]\nservice_name = \"\"\n")
        .expect_err("must be refused")
        .to_string();
    assert_eq!(
        err,
        "line 2, column 1: rule #0 (`traces.span.metrics.calls`): label `service.name`: \
         the fixed value \"\" is blank; Prometheus treats an empty label value as no label at \
         all, so give it a non-blank value"
    );
}
