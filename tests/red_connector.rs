//! RED mode with the OpenTelemetry Collector spanmetrics connector's options: the names it
//! exports under every exporter set-up, the dimensions each option adds or removes, the events
//! counter, the status label conventions, the namespace, and the same options from TOML.

mod common;
#[cfg(feature = "prometheus")]
#[path = "common/example_bin.rs"]
mod example_bin;

use common::Harness;
use tracing::field::Empty;
use tracing_spanmetrics::{
    Buckets, Label, Mapping, RED_NAMESPACE, Red, SpanMetrics, Spans, StatusCodeLabel, Unit,
};

#[cfg(feature = "prometheus")]
mod exported {
    use std::sync::Arc;

    use metrics_exporter_prometheus::PrometheusBuilder;
    use tracing_spanmetrics::{
        OVERFLOW_METRIC, Red, SpanMetrics, TRUNCATED_METRIC, Unit, exporter,
    };
    use tracing_subscriber::prelude::*;

    /// The exposition of one span with one event, under `red`, rendered by `exporter` with the
    /// layer's buckets added.
    fn render(red: Red, exporter: PrometheusBuilder) -> String {
        let rules = SpanMetrics::builder().red_with(red);
        let recorder = exporter::add_buckets(exporter, &rules)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let layer = rules.with_recorder(Arc::new(recorder)).build().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("checkout", otel.kind = "server");
            span.in_scope(|| tracing::info!(exception.type = "io", "retry"));
        });
        handle.run_upkeep();
        handle.render()
    }

    /// `promtool check metrics` on `text`: its report (empty when clean), or `None` without
    /// promtool.
    fn promtool_check(text: &str) -> Option<String> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(report.trim().to_owned())
    }

    #[test]
    fn promtool_accepts_every_option_and_names_the_millisecond_unit_only() {
        use tracing_spanmetrics::{Label, Mapping, StatusCodeLabel};
        let red = |unit| {
            Red::new("shop")
                .unit(unit)
                .dimension(
                    Label::field("http.target")
                        .map(Mapping::route())
                        .value_limit(1),
                )
                .events(["exception.type"])
                .status_code(StatusCodeLabel::OtelStatusCode)
        };
        let render = |unit| {
            let rules = SpanMetrics::builder().red_with(red(unit));
            let recorder = exporter::prometheus_builder(&rules)
                .unwrap()
                .build_recorder();
            let handle = recorder.handle();
            let layer = rules.with_recorder(Arc::new(recorder)).build().unwrap();
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                for path in ["/users/1?x=\"q\"", "/cart/2", "/users/3"] {
                    let span = tracing::info_span!("GET", http.target = path);
                    span.in_scope(|| tracing::error!(exception.type = "io", "failed"));
                }
            });
            handle.run_upkeep();
            handle.render()
        };
        let seconds = render(Unit::Seconds);
        // The second route went past the limit of one value.
        assert!(
            seconds.contains(
                "traces_span_metrics_calls_total{service_name=\"shop\",span_name=\"GET\",span_kind=\"SPAN_KIND_INTERNAL\",otel_status_code=\"ERROR\",http_target=\"__cardinality_overflow__\"} 1\n"
            ),
            "{seconds}"
        );
        assert!(
            seconds.contains(
                "spanmetrics_label_overflow_observations_total{metric=\"traces_span_metrics_calls_total\",label=\"http.target\"} 1\n"
            ),
            "{seconds}"
        );
        match promtool_check(&seconds) {
            Some(report) => assert_eq!(report, "", "promtool on {seconds}"),
            None => crate::example_bin::skip_or_fail("promtool is not installed"),
        }
        // The connector's default name is not in Prometheus' base unit: promtool says so, and
        // says nothing else.
        let millis = render(Unit::Milliseconds);
        if let Some(report) = promtool_check(&millis) {
            assert_eq!(
                report,
                "traces_span_metrics_duration_milliseconds use base unit \"seconds\" instead of \
                 \"milliseconds\""
            );
        }
    }

    fn type_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn the_connectors_names_come_out_under_every_exporter_set_up() {
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
        for (what, setup) in exporters {
            for (unit, duration) in [
                (
                    Unit::Milliseconds,
                    "traces_span_metrics_duration_milliseconds",
                ),
                (Unit::Seconds, "traces_span_metrics_duration_seconds"),
            ] {
                let red = Red::new("shop").unit(unit).events(["exception.type"]);
                let text = render(red, setup());
                let want = [
                    "# TYPE traces_span_metrics_calls_total counter".to_owned(),
                    format!("# TYPE {duration} histogram"),
                    "# TYPE traces_span_metrics_events_total counter".to_owned(),
                    // The layer's health counters, registered at 0 when it is built: overflow
                    // for every family, truncated always; no numeric field, no label with a
                    // value limit.
                    format!("# TYPE {OVERFLOW_METRIC} counter"),
                    format!("# TYPE {TRUNCATED_METRIC} counter"),
                ];
                let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
                want.sort_unstable();
                assert_eq!(type_lines(&text), want, "{what}, {unit:?}");
                let labels = r#"service_name="shop",span_name="checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET""#;
                assert!(
                    text.contains(&format!("{duration}_count{{{labels}}} 1\n")),
                    "{what}: {text}"
                );
                // The connector's largest default bound, in the unit's terms.
                let top = if unit == Unit::Seconds { "15" } else { "15000" };
                assert!(
                    text.contains(&format!("{duration}_bucket{{{labels},le=\"{top}\"}} 1\n")),
                    "{what}: {text}"
                );
                assert!(
                    text.contains(&format!(
                        "traces_span_metrics_events_total{{{labels},exception_type=\"io\"}} 1\n"
                    )),
                    "{what}: {text}"
                );
            }
        }
    }
}

#[test]
fn the_defaults_are_the_connectors() {
    let rules = SpanMetrics::red("shop");
    let names: Vec<&str> = rules.rules().iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        ["traces.span.metrics.calls", "traces.span.metrics.duration"]
    );
    assert_eq!(RED_NAMESPACE, "traces.span.metrics");
    let histograms = rules.histograms();
    assert_eq!(
        histograms[0].exported_name,
        "traces_span_metrics_duration_milliseconds"
    );
    assert_eq!(
        histograms[0].buckets,
        [
            0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0,
            1000.0, 1400.0, 2000.0, 5000.0, 10000.0, 15000.0
        ]
    );
    assert_eq!(
        rules.rules(),
        SpanMetrics::builder().red_with(Red::new("shop")).rules()
    );
}

#[test]
fn dimensions_take_their_defaults_and_are_left_off_without_one() {
    let mut h = Harness::new(
        SpanMetrics::builder().red_with(
            Red::new("shop")
                .dimension(Label::field("http.method").default("GET"))
                .dimension("tenant")
                .exclude_dimension("span.kind")
                .calls_dimension("http.status_code")
                .histogram_dimension(Label::field("region").default("eu")),
        ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        let s = tracing::info_span!("a", tenant = "t1", http.status_code = 200);
        h.advance_ms(7);
        drop(s);
        let s = tracing::info_span!("b", http.method = "POST", region = "us");
        h.advance_ms(3);
        drop(s);
    });
    let m = h.snapshot();
    let base = |name| {
        vec![
            ("service.name", "shop"),
            ("span.name", name),
            ("status.code", "STATUS_CODE_UNSET"),
        ]
    };
    let with = |name, extra: &[(&'static str, &'static str)]| {
        let mut l = base(name);
        l.extend_from_slice(extra);
        l
    };
    let calls_a = with(
        "a",
        &[
            ("http.method", "GET"),
            ("tenant", "t1"),
            ("http.status_code", "200"),
        ],
    );
    let duration_a = with(
        "a",
        &[("http.method", "GET"), ("tenant", "t1"), ("region", "eu")],
    );
    let calls_b = with("b", &[("http.method", "POST")]);
    let duration_b = with("b", &[("http.method", "POST"), ("region", "us")]);
    assert_eq!(m.counter("traces.span.metrics.calls", &calls_a), Some(1));
    assert_eq!(m.counter("traces.span.metrics.calls", &calls_b), Some(1));
    assert_eq!(
        m.histogram("traces.span.metrics.duration", &duration_a),
        Some(vec![7.0])
    );
    assert_eq!(
        m.histogram("traces.span.metrics.duration", &duration_b),
        Some(vec![3.0])
    );
    assert_eq!(m.series("traces.span.metrics.calls").len(), 2);
    assert_eq!(m.series("traces.span.metrics.duration").len(), 2);
}

#[test]
fn the_events_counter_counts_each_event_once_with_its_dimensions() {
    let mut h = Harness::new(
        SpanMetrics::builder().red_with(
            Red::new("shop")
                .spans(Spans::named("handler").or_named("query"))
                .events([Label::field("exception.type").default("none")]),
        ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        let handler = tracing::info_span!("handler", otel.kind = "server");
        handler.in_scope(|| {
            tracing::info!("start");
            tracing::warn!(exception.type = "timeout", "retry");
            tracing::warn!(exception.type = "timeout", "retry");
            // Inside a child that RED does not cover: the nearest RED span is the handler.
            tracing::info_span!("helper").in_scope(|| tracing::info!("inner"));
            // Inside a child that RED covers: counted for the child only.
            tracing::info_span!("query", otel.kind = "client")
                .in_scope(|| tracing::info!(exception.type = "io", "failed"));
        });
        // Outside any span: no span, no count.
        tracing::info!("outside");
    });
    let m = h.snapshot();
    let handler = |exception| {
        [
            ("service.name", "shop"),
            ("span.name", "handler"),
            ("span.kind", "SPAN_KIND_SERVER"),
            ("status.code", "STATUS_CODE_UNSET"),
            ("exception.type", exception),
        ]
    };
    assert_eq!(
        m.counter("traces.span.metrics.events", &handler("none")),
        Some(2)
    );
    assert_eq!(
        m.counter("traces.span.metrics.events", &handler("timeout")),
        Some(2)
    );
    let query = [
        ("service.name", "shop"),
        ("span.name", "query"),
        ("span.kind", "SPAN_KIND_CLIENT"),
        ("status.code", "STATUS_CODE_UNSET"),
        ("exception.type", "io"),
    ];
    assert_eq!(m.counter("traces.span.metrics.events", &query), Some(1));
    assert_eq!(m.series("traces.span.metrics.events").len(), 3);
}

#[test]
fn the_otel_status_code_convention_writes_ok_error_and_nothing_when_unset() {
    let mut h = Harness::new(
        SpanMetrics::builder().red_with(
            Red::new("shop")
                .status_code(StatusCodeLabel::OtelStatusCode)
                .exclude_dimension("span.kind")
                .histogram(false),
        ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        drop(tracing::info_span!("unset"));
        let ok = tracing::info_span!("ok", otel.status_code = Empty);
        ok.record("otel.status_code", "OK");
        drop(ok);
        let failed = tracing::info_span!("failed");
        failed.in_scope(|| tracing::error!("boom"));
        drop(failed);
    });
    let m = h.snapshot();
    let calls = |name, status: Option<&'static str>| {
        let mut l = vec![("service.name", "shop"), ("span.name", name)];
        l.extend(status.map(|s| ("otel.status_code", s)));
        m.counter("traces.span.metrics.calls", &l)
    };
    assert_eq!(calls("unset", None), Some(1));
    assert_eq!(calls("ok", Some("OK")), Some(1));
    assert_eq!(calls("failed", Some("ERROR")), Some(1));
    // `histogram(false)`: no duration histogram.
    assert!(m.series("traces.span.metrics.duration").is_empty());
}

#[test]
fn the_namespace_prefixes_every_family() {
    let rules = SpanMetrics::builder().red_with(Red::new("shop").namespace("spans").events(["x"]));
    let names: Vec<&str> = rules.rules().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["spans.calls", "spans.duration", "spans.events"]);
    assert_eq!(
        rules.histograms()[0].exported_name,
        "spans_duration_milliseconds"
    );
    let mut h = Harness::new(rules);
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || drop(tracing::info_span!("a")));
    let labels = [
        ("service.name", "shop"),
        ("span.name", "a"),
        ("span.kind", "SPAN_KIND_INTERNAL"),
        ("status.code", "STATUS_CODE_UNSET"),
    ];
    assert_eq!(h.snapshot().counter("spans_calls_total", &labels), Some(1));
}

fn refused(red: Red) -> String {
    SpanMetrics::builder()
        .red_with(red)
        .build()
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn bad_options_are_refused_with_what_is_accepted() {
    assert_eq!(
        refused(Red::new("shop").namespace(" ")),
        "RED `namespace`: the namespace \" \" is blank; every RED family's name starts with it \
         (the connector's default is `traces.span.metrics`)"
    );
    assert_eq!(
        refused(Red::new("shop").exclude_dimension("span.knd")),
        "RED `exclude_dimensions`: `span.knd` is not a default dimension: expected one of \
         `service.name`, `span.name`, `span.kind`, `status.code`; did you mean `span.kind`?"
    );
    assert_eq!(
        refused(
            Red::new("shop")
                .status_code(StatusCodeLabel::OtelStatusCode)
                .exclude_dimension("status.code")
        ),
        "RED `exclude_dimensions`: `status.code` is not a default dimension: expected one of \
         `service.name`, `span.name`, `span.kind`, `otel.status_code`"
    );
    assert_eq!(
        refused(Red::new("shop").unit(Unit::Bytes)),
        "RED `histogram`: the duration unit `bytes` is not a unit of time; expected `ms` or `s`"
    );
    assert_eq!(
        refused(Red::new("shop").dimension("span.name")),
        "rule #0 (`traces.span.metrics.calls`): label key `span.name` appears twice (after `.` \
         becomes `_` in Prometheus)"
    );
    assert_eq!(
        refused(Red::new("shop").namespace("1x")),
        "rule #0 (`1x.calls`): invalid metric name `1x.calls`: it must start with a letter, `_` \
         or `:`"
    );
}

/// Every option of `[red]`, and the builder calls that say the same.
const FULL: &str = r#"
[red]
service_name = "shop"
spans = { target = "shop" }
namespace = "spans"
dimensions = [{ name = "http.method", default = "GET" }, { name = "http.target", map = "route" }]
exclude_dimensions = ["span.kind"]
calls_dimensions = ["peer.service"]
histogram = { unit = "s", dimensions = [{ name = "region", default = "eu" }], explicit = { buckets = [0.002, 0.1, 1] } }
events = { enabled = true, dimensions = ["exception.type"] }
status_code_label = "otel.status_code"
aggregation_cardinality_limit = 50
"#;

#[test]
fn every_connector_option_reads_from_toml_as_from_the_builder() {
    let from_file = SpanMetrics::builder().toml(FULL).unwrap();
    let from_code = SpanMetrics::builder().red_with(
        Red::new("shop")
            .spans(Spans::all().target("shop"))
            .namespace("spans")
            .dimension(Label::field("http.method").default("GET"))
            .dimension(Label::field("http.target").map(Mapping::route()))
            .exclude_dimension("span.kind")
            .calls_dimension("peer.service")
            .unit(Unit::Seconds)
            .histogram_dimension(Label::field("region").default("eu"))
            .buckets(Buckets::explicit([0.002, 0.1, 1.0]))
            .events(["exception.type"])
            .status_code(StatusCodeLabel::OtelStatusCode)
            .cardinality_limit(50),
    );
    assert_eq!(from_file.rules(), from_code.rules());
    assert_eq!(from_file.rules().len(), 3);
    let disabled = SpanMetrics::builder()
        .toml("[red]\nservice_name = \"shop\"\nhistogram = { disable = true }\n")
        .unwrap();
    assert_eq!(
        disabled.rules(),
        SpanMetrics::builder()
            .red_with(Red::new("shop").histogram(false))
            .rules()
    );
}

fn file_error(text: &str) -> String {
    SpanMetrics::builder()
        .toml(text)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn toml_red_errors_say_where_and_what() {
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\ndimension = [\"a\"]\n"),
        "line 3, column 1: unknown key `dimension` in `[red]`: expected one of `service_name`, \
         `spans`, `namespace`, `histogram`, `dimensions`, `exclude_dimensions`, \
         `calls_dimensions`, `events`, `status_code_label`, `aggregation_cardinality_limit`; did \
         you mean `dimensions`?"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nmetrics_flush_interval = \"15s\"\n"),
        "line 3, column 1: `metrics_flush_interval` in `[red]` does not apply in-process: the \
         layer records each span as it ends and the exporter serves the current values on every \
         scrape, so there is nothing to flush"
    );
    assert_eq!(
        file_error(
            "[red]\nservice_name = \"shop\"\nhistogram = { exponential = { max_size = 160 } }\n"
        ),
        "line 3, column 15: `histogram.exponential` is not offered: metrics-exporter-prometheus \
         renders classic buckets only; give `explicit = { buckets = [...] }`"
    );
    assert_eq!(
        file_error(
            "[red]\nservice_name = \"shop\"\nhistogram = { explicit = { buckets = [2, 1] } }\n"
        ),
        "line 3, column 28: bucket boundaries must be strictly increasing, but 2 is followed by 1"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nhistogram = { unit = \"sec\" }\n"),
        "line 3, column 22: unknown duration unit `sec`: expected one of `ms`, `s`"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nexclude_dimensions = [\"span.knd\"]\n"),
        "line 3, column 1: `span.knd` is not a default dimension: expected one of \
         `service.name`, `span.name`, `span.kind`, `status.code`; did you mean `span.kind`?"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nnamespace = \"\"\n"),
        "line 3, column 1: the namespace \"\" is blank; every RED family's name starts with it \
         (the connector's default is `traces.span.metrics`)"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nevents = { dimensions = [\"x\"] }\n"),
        "line 3, column 1: `events.dimensions` is given but the events counter is not enabled; \
         add `enabled = true`"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\ndimensions = [{ nam = \"x\" }]\n"),
        "line 3, column 17: unknown key `nam` in a dimension: expected one of `name`, \
         `default`, `map`, `own_only`, `value_limit`; did you mean `name`?"
    );
    // A dimension that repeats a default one: located at the key that brought it.
    assert_eq!(
        file_error(
            "[red]\nservice_name = \"shop\"\ncalls_dimensions = [\"x\"]\ndimensions = [\"span.name\"]\n"
        ),
        "line 4, column 1: rule #0 (`traces.span.metrics.calls`): label key `span.name` appears \
         twice (after `.` becomes `_` in Prometheus)"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\ncalls_dimensions = [\"service.name\"]\n"),
        "line 3, column 1: rule #0 (`traces.span.metrics.calls`): label key `service.name` \
         appears twice (after `.` becomes `_` in Prometheus)"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"\"\ndimensions = [\"x\"]\n"),
        "line 2, column 1: rule #0 (`traces.span.metrics.calls`): label `service.name`: the \
         fixed value \"\" is blank; Prometheus treats an empty label value as no label at all, \
         so give it a non-blank value"
    );
}
