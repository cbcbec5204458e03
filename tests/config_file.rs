//! The TOML front end: the same rules as the builder, the same validation, located errors.

mod common;

use common::Harness;
use tracing::dispatcher;
use tracing::field::Empty;
use tracing_spanmetrics::{
    Buckets, Condition, EventMatch, Label, Mapping, Metric, OutcomeValues, SpanMetrics, Spans, Unit,
};
use tracing_subscriber::filter::LevelFilter;

const FULL: &str = r#"
[settings]
cardinality_limit = 50
max_label_len = 64

[red]
service_name = "shop"
spans = { target = "shop" }

[[metric]]
name = "rpc.duration.seconds"
kind = "histogram"
description = "One RPC"
spans = { name = ["rpc", "call_*"], target = "shop::net", level = "info" }
measure = "wall_time"
labels = [
  "swimlane",
  { field = "deployment.id", key = "deployment_id", default = "unknown" },
  { field = "status", key = "class", map = "status_class" },
  { key = "result", source = "outcome" },
  { key = "proto", fixed = "http" },
  { field = "kind", map = { table = { a = "alpha", "1" = "one" }, otherwise = "other" }, own_only = true },
  { key = "st", outcome = { unset = "u", ok = "o", error = "e" } },
]
when = [{ field = "status", not_between = [200, 299] }, "error", { field = "s", one_of = ["x", 3] }]
buckets = [0.1, 0.5, 1.0]
cardinality_limit = 10

[[metric]]
name = "ttfb.seconds"
kind = "histogram"
spans = "http"
measure = { time_to = { message = "headers", fields = ["status"], level = "debug" } }
buckets = { exponential = { start = 0.001, factor = 2, count = 4 } }

[[metric]]
name = "active"
kind = "gauge"
spans = "inv"
measure = { in_flight_after = "deployment_id" }
labels = [{ key = "span", source = "span_name" }, { key = "k", source = "span_kind" }, { key = "t", source = "target" }, { key = "s", source = "otel_status_code" }]

[[metric]]
name = "retries.total"
kind = "counter"
measure = { events = { name = "retry*", target = "shop", field = "reason" } }
labels = ["reason"]
when = [{ field = "reason", recorded = true }, "not_error"]

[[metric]]
name = "chunk.bytes"
kind = "histogram"
unit = "bytes"
measure = { event_field = "len", events = { message = "chunk" } }
buckets = "exponential_bytes"

[[metric]]
name = "balance"
kind = "gauge"
measure = { span_field = "balance" }
when = [{ field = "balance", missing = false }]
"#;

#[test]
fn the_file_and_the_builder_are_one_model() {
    let from_file = SpanMetrics::builder().toml(FULL).unwrap();
    let by_hand = SpanMetrics::builder()
        .cardinality_limit(50)
        .max_label_len(64)
        .red("shop", Spans::all().target("shop"))
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .describe("One RPC")
                .spans(
                    Spans::named("rpc")
                        .or_named("call_*")
                        .target("shop::net")
                        .level(LevelFilter::INFO),
                )
                .wall_time()
                .label("swimlane")
                .label(
                    Label::field("deployment.id")
                        .key("deployment_id")
                        .default("unknown"),
                )
                .label(
                    Label::field("status")
                        .key("class")
                        .map(Mapping::status_class()),
                )
                .label(Label::outcome("result"))
                .label(Label::fixed("proto", "http"))
                .label(
                    Label::field("kind")
                        .map(Mapping::table([("1", "one"), ("a", "alpha")]).otherwise("other"))
                        .own_only(),
                )
                .label(Label::outcome_with(
                    "st",
                    OutcomeValues {
                        unset: "u".into(),
                        ok: "o".into(),
                        error: "e".into(),
                    },
                ))
                .when(Condition::field("status").not_between(200.0, 299.0))
                .when(Condition::error())
                .when(Condition::field("s").one_of(["x", "3"]))
                .buckets(Buckets::explicit([0.1, 0.5, 1.0]))
                .cardinality_limit(10),
        )
        .metric(
            Metric::histogram("ttfb.seconds")
                .spans(Spans::named("http"))
                .time_to(
                    EventMatch::message("headers")
                        .and_field("status")
                        .level(LevelFilter::DEBUG),
                )
                .buckets(Buckets::exponential(0.001, 2.0, 4)),
        )
        .metric(
            Metric::gauge("active")
                .spans(Spans::named("inv"))
                .in_flight_after("deployment_id")
                .label(Label::span_name("span"))
                .label(Label::span_kind("k"))
                .label(Label::target("t"))
                .label(Label::otel_status_code("s")),
        )
        .metric(
            Metric::counter("retries.total")
                .events(
                    EventMatch::named("retry*")
                        .target("shop")
                        .and_field("reason"),
                )
                .label("reason")
                .when(Condition::recorded("reason"))
                .when(Condition::not_error()),
        )
        .metric(
            Metric::histogram("chunk.bytes")
                .unit(Unit::Bytes)
                .event_field(EventMatch::message("chunk"), "len")
                .buckets(Buckets::exponential_bytes()),
        )
        .metric(
            Metric::gauge("balance")
                .span_field("balance")
                .when(Condition::recorded("balance")),
        );
    assert_eq!(from_file.rules(), by_hand.rules());
    from_file.build().unwrap();
}

#[test]
fn a_file_configured_layer_records() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .toml(
                r#"
                [settings]
                duration_buckets = "exponential_seconds"

                [[metric]]
                name = "inv.active"
                kind = "gauge"
                spans = "inv"
                measure = { in_flight_after = "deployment_id" }
                labels = ["deployment_id"]

                [[metric]]
                name = "inv.duration.seconds"
                kind = "histogram"
                spans = "inv"
                labels = [{ field = "deployment_id", default = "unknown" }]
                "#,
            )
            .unwrap(),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        let s = tracing::info_span!("inv", deployment_id = Empty);
        s.record("deployment_id", "dp_1");
        assert_eq!(
            h.snapshot()
                .gauge("inv.active", &[("deployment_id", "dp_1")]),
            Some(1.0)
        );
        h.advance_ms(4);
        drop(s);
    });
    let m = h.snapshot();
    assert_eq!(
        m.gauge("inv.active", &[("deployment_id", "dp_1")]),
        Some(0.0)
    );
    assert_eq!(
        m.histogram("inv.duration.seconds", &[("deployment_id", "dp_1")]),
        Some(vec![4_000_000f64 * 1e-9])
    );
}

fn file_error(text: &str) -> String {
    SpanMetrics::builder().toml(text).unwrap_err().to_string()
}

#[test]
fn errors_name_line_column_and_problem() {
    // TOML syntax.
    assert_eq!(
        file_error("[[metric]]\nname = \"x\"\nkind = \n"),
        "line 3, column 8: string values must be quoted, expected literal string"
    );
    // An unknown key (a typo) is refused, not ignored.
    let e = file_error("[[metric]]\nname = \"x\"\nkind = \"counter\"\nlabes = [\"a\"]\n");
    assert!(
        e.starts_with("line 4, column 1: unknown field `labes`"),
        "{e}"
    );
    // A value of the wrong kind.
    let e = file_error("[[metric]]\nname = \"x\"\nkind = \"timer\"\n");
    assert!(
        e.starts_with("line 3, column 8: unknown variant `timer`"),
        "{e}"
    );
    // What the builder rejects, with the builder's message, located at the offending key.
    let e = file_error(
        "[[metric]]\nname = \"ok\"\nkind = \"counter\"\n\n[[metric]]\nname = \"h\"\nkind = \"histogram\"\nbuckets = [1, 1]\n",
    );
    assert_eq!(
        e,
        "line 8, column 1: rule #1 (`h`): bucket boundaries must be strictly increasing, but 1 is followed by 1"
    );
    let builder_msg = SpanMetrics::builder()
        .metric(Metric::histogram("h").buckets(Buckets::explicit([1.0, 1.0])))
        .build()
        .unwrap_err()
        .problem;
    assert!(e.ends_with(&builder_msg));
    // Conflicting definitions across rules.
    let e = file_error(
        "[[metric]]\nname = \"x\"\nkind = \"counter\"\n[[metric]]\nname = \"x\"\nkind = \"gauge\"\n",
    );
    assert_eq!(
        e,
        "line 6, column 1: rule #1 (`x`): declared as a gauge here but as a counter by an earlier rule"
    );
    // A measure table with two measures.
    let e = file_error(
        "[[metric]]\nname = \"x\"\nkind = \"counter\"\nmeasure = { span_field = \"a\", in_flight_after = \"b\" }\n",
    );
    assert!(
        e.starts_with("line 4, column 1: rule #0 (`x`): a measure table takes exactly one of"),
        "{e}"
    );
    // A label with two sources.
    let e = file_error(
        "[[metric]]\nname = \"x\"\nkind = \"counter\"\nlabels = [{ field = \"a\", fixed = \"b\" }]\n",
    );
    assert_eq!(
        e,
        "line 4, column 1: rule #0 (`x`): label `a`: give exactly one of `field`, `fixed`, `source`, `outcome`"
    );
}

#[test]
fn files_are_read_from_disk_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("spanmetrics-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[metric]]\nname = \"a.total\"\nkind = \"counter\"\n",
    )
    .unwrap();
    let b = SpanMetrics::builder().toml_file(&good).unwrap();
    assert_eq!(b.rules().len(), 1);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[metric]]\nname = \"a b\"\nkind = \"counter\"\n").unwrap();
    let e = SpanMetrics::builder()
        .toml_file(&bad)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:2:1: rule #0 (`a b`): invalid metric name `a b`: ` ` is not allowed (use letters, digits, `_`, `:` and `.`)",
            bad.display()
        )
    );
    let missing = dir.join("missing.toml");
    let e = SpanMetrics::builder()
        .toml_file(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("cannot read {}", missing.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
