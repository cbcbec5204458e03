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
                        .rename("deployment_id")
                        .default("unknown"),
                )
                .label(
                    Label::field("status")
                        .rename("class")
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
    assert_eq!(
        file_error("[[metric]]\nname = \"x\"\nkind = \"counter\"\nlabes = [\"a\"]\n"),
        "line 4, column 1: rule #0 (`x`): unknown key `labes` in `[[metric]]`: expected one of \
         `name`, `kind`, `description`, `unit`, `spans`, `measure`, `labels`, `when`, `buckets`, \
         `cardinality_limit`; did you mean `labels`?"
    );
    // A word that is not one of those accepted.
    assert_eq!(
        file_error("[[metric]]\nname = \"x\"\nkind = \"timer\"\n"),
        "line 3, column 8: rule #0 (`x`): unknown kind `timer`: expected one of `counter`, \
         `gauge`, `histogram`"
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
        .unwrap_err();
    assert!(e.ends_with(builder_msg.problem()));
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

/// The error for a `[[metric]]` named `lat` (a histogram) whose fourth line is `line`.
fn rule_error(line: &str) -> String {
    file_error(&format!(
        "[[metric]]\nname = \"lat\"\nkind = \"histogram\"\n{line}\n"
    ))
}

#[test]
fn unknown_words_name_the_word_what_is_accepted_and_the_nearest() {
    assert_eq!(
        rule_error("measure = \"wall_tim\""),
        "line 4, column 11: rule #0 (`lat`): unknown measure `wall_tim`: expected one of \
         `wall_time`, `busy_time`, `idle_time`, `self_time`, `spans_opened`, `spans_closed`, \
         `in_flight`; did you mean `wall_time`?"
    );
    assert_eq!(
        file_error("[[metric]]\nname = \"lat\"\nkind = \"histgram\"\n"),
        "line 3, column 8: rule #0 (`lat`): unknown kind `histgram`: expected one of `counter`, \
         `gauge`, `histogram`; did you mean `histogram`?"
    );
    assert_eq!(
        rule_error("unit = \"byte\""),
        "line 4, column 8: rule #0 (`lat`): unknown unit `byte`: expected one of `seconds`, \
         `milliseconds`, `count`, `bytes`; did you mean `bytes`?"
    );
    assert_eq!(
        rule_error("buckets = \"otel_duration\""),
        "line 4, column 11: rule #0 (`lat`): unknown bucket preset `otel_duration`: expected one \
         of `otel_durations`, `exponential_seconds`, `exponential_bytes`; did you mean \
         `otel_durations`?"
    );
    // Nothing is near enough to suggest.
    assert_eq!(
        rule_error("spans = { name = \"rpc\", level = \"verbose\" }"),
        "line 4, column 33: rule #0 (`lat`): unknown level `verbose`: expected one of `error`, \
         `warn`, `info`, `debug`, `trace`"
    );
    assert_eq!(
        rule_error("measure = { time_to = { level = \"debg\" } }"),
        "line 4, column 33: rule #0 (`lat`): unknown level `debg`: expected one of `error`, \
         `warn`, `info`, `debug`, `trace`; did you mean `debug`?"
    );
    assert_eq!(
        rule_error("labels = [{ key = \"k\", source = \"span_nme\" }]"),
        "line 4, column 33: rule #0 (`lat`): unknown label source `span_nme`: expected one of \
         `span_name`, `span_kind`, `target`, `outcome`, `otel_status_code`; did you mean \
         `span_name`?"
    );
    assert_eq!(
        rule_error("labels = [{ field = \"status\", map = \"status_clas\" }]"),
        "line 4, column 37: rule #0 (`lat`): unknown mapping `status_clas`: expected one of \
         `status_class`, `route`; did you mean `status_class`?"
    );
    assert_eq!(
        rule_error("when = [\"eror\"]"),
        "line 4, column 9: rule #0 (`lat`): unknown condition `eror`: expected one of `error`, \
         `not_error`; did you mean `error`?"
    );
    // Case is not a typo worth hiding: the nearest word is found regardless.
    assert_eq!(
        rule_error("measure = \"Wall_Time\""),
        "line 4, column 11: rule #0 (`lat`): unknown measure `Wall_Time`: expected one of \
         `wall_time`, `busy_time`, `idle_time`, `self_time`, `spans_opened`, `spans_closed`, \
         `in_flight`; did you mean `wall_time`?"
    );
}

#[test]
fn unknown_keys_name_the_key_what_is_accepted_and_the_nearest() {
    assert_eq!(
        rule_error("measure = { span_feild = \"n\" }"),
        "line 4, column 13: rule #0 (`lat`): unknown key `span_feild` in a measure table: \
         expected one of `time_to`, `in_flight_after`, `events`, `span_field`, `event_field`; \
         did you mean `span_field`?"
    );
    assert_eq!(
        rule_error("measure = { events = { mesage = \"retry\" } }"),
        "line 4, column 24: rule #0 (`lat`): unknown key `mesage` in an event selector: \
         expected one of `name`, `target`, `level`, `field`, `fields`, `message`; did you mean \
         `message`?"
    );
    assert_eq!(
        rule_error("spans = { nmae = \"rpc\" }"),
        "line 4, column 11: rule #0 (`lat`): unknown key `nmae` in a span selector: expected \
         one of `name`, `target`, `level`; did you mean `name`?"
    );
    assert_eq!(
        rule_error("buckets = { exponentail = { start = 1, factor = 2, count = 3 } }"),
        "line 4, column 13: rule #0 (`lat`): unknown key `exponentail` in a buckets table: \
         expected one of `exponential`, `linear`; did you mean `exponential`?"
    );
    assert_eq!(
        rule_error("buckets = { linear = { start = 0, width = 1, cuont = 3 } }"),
        "line 4, column 46: rule #0 (`lat`): unknown key `cuont` in `linear` buckets: \
         expected one of `start`, `width`, `count`; did you mean `count`?"
    );
    assert_eq!(
        rule_error("labels = [{ feild = \"a\" }]"),
        "line 4, column 13: rule #0 (`lat`): unknown key `feild` in a label: expected one of \
         `key`, `field`, `fixed`, `source`, `outcome`, `default`, `map`, `own_only`, \
         `value_limit`; did you mean `field`?"
    );
    assert_eq!(
        rule_error(
            "labels = [{ key = \"k\", outcome = { unset = \"u\", ok = \"o\", err = \"e\" } }]"
        ),
        "line 4, column 59: rule #0 (`lat`): unknown key `err` in a label's `outcome`: \
         expected one of `unset`, `ok`, `error`; did you mean `error`?"
    );
    assert_eq!(
        rule_error("labels = [{ field = \"s\", map = { tabel = { a = \"b\" } } }]"),
        "line 4, column 34: rule #0 (`lat`): unknown key `tabel` in a label's `map`: expected \
         one of `table`, `otherwise`, `route`; did you mean `table`?"
    );
    assert_eq!(
        rule_error("when = [{ field = \"s\", one_off = [\"a\"] }]"),
        "line 4, column 24: rule #0 (`lat`): unknown key `one_off` in a condition: expected one \
         of `field`, `recorded`, `missing`, `one_of`, `not_one_of`, `between`, `not_between`; \
         did you mean `one_of`?"
    );
    assert_eq!(
        file_error("[setings]\ncardinality_limit = 5\n"),
        "line 1, column 2: unknown key `setings` in the file: expected one of `settings`, \
         `red`, `metric`, `objective`; did you mean `settings`?"
    );
    assert_eq!(
        file_error("[settings]\ncardinality_limt = 5\n"),
        "line 2, column 1: unknown key `cardinality_limt` in `[settings]`: expected one of \
         `cardinality_limit`, `max_label_len`, `duration_buckets`, `label_value_limit`; did you \
         mean \
         `cardinality_limit`?"
    );
    assert_eq!(
        file_error("[red]\nservice = \"shop\"\n"),
        "line 2, column 1: unknown key `service` in `[red]`: expected one of `service_name`, \
         `spans`, `namespace`, `histogram`, `dimensions`, `exclude_dimensions`, \
         `calls_dimensions`, `events`, `status_code_label`, `aggregation_cardinality_limit`; did \
         you mean `service_name`?"
    );
}

#[test]
fn values_of_the_wrong_type_or_missing_say_what_was_expected() {
    assert_eq!(
        rule_error("measure = 3"),
        "line 4, column 11: rule #0 (`lat`): expected a measure (a word such as `wall_time`, or \
         a table), found an integer"
    );
    assert_eq!(
        file_error("[[metric]]\nname = \"lat\"\nkind = 3\n"),
        "line 3, column 8: rule #0 (`lat`): expected a kind (one of `counter`, `gauge`, \
         `histogram`), found an integer"
    );
    assert_eq!(
        rule_error("buckets = true"),
        "line 4, column 11: rule #0 (`lat`): expected buckets (a preset such as \
         `otel_durations`, a list of numbers or a table), found a boolean"
    );
    assert_eq!(
        rule_error("buckets = [0.1, \"x\"]"),
        "line 4, column 17: rule #0 (`lat`): expected a number, found a string"
    );
    assert_eq!(
        rule_error("cardinality_limit = -1"),
        "line 4, column 21: rule #0 (`lat`): expected a non-negative integer, found `-1`"
    );
    assert_eq!(
        rule_error("labels = [1]"),
        "line 4, column 11: rule #0 (`lat`): expected a label (a field name or a table), found \
         an integer"
    );
    assert_eq!(
        rule_error("spans = [\"rpc\"]"),
        "line 4, column 9: rule #0 (`lat`): expected a span selector (a span name or a table), \
         found an array"
    );
    assert_eq!(
        rule_error("when = [{ field = \"s\", between = [1] }]"),
        "line 4, column 34: rule #0 (`lat`): expected a range `[low, high]`, found an array of 1 \
         element"
    );
    assert_eq!(
        rule_error("when = [{ field = \"s\", one_of = [[1]] }]"),
        "line 4, column 34: rule #0 (`lat`): expected a string, a number or a boolean, found an \
         array"
    );
    assert_eq!(
        rule_error("buckets = { linear = { start = 0, width = 1 } }"),
        "line 4, column 22: rule #0 (`lat`): missing key `count` in `linear` buckets"
    );
    assert_eq!(
        file_error("[[metric]]\nname = \"lat\"\n"),
        "line 1, column 1: rule #0 (`lat`): missing key `kind` in `[[metric]]`"
    );
    assert_eq!(
        file_error("[[metric]]\nkind = \"counter\"\n"),
        "line 1, column 1: missing key `name` in `[[metric]]`"
    );
    assert_eq!(
        file_error("[metric]\nname = \"lat\"\n"),
        "line 1, column 1: expected `[[metric]]` tables, found a table"
    );
}

#[test]
fn no_message_names_an_internal_type() {
    let lines = [
        "measure = \"x\"",
        "measure = { x = 1 }",
        "measure = 1",
        "buckets = \"x\"",
        "buckets = { x = 1 }",
        "buckets = { exponential = 1 }",
        "labels = [{ x = 1 }]",
        "labels = [{ key = \"k\", source = \"x\" }]",
        "labels = [{ field = \"f\", map = \"x\" }]",
        "labels = [{ field = \"f\", map = 1 }]",
        "when = [\"x\"]",
        "when = [{ x = 1 }]",
        "when = [1]",
        "spans = { level = \"x\" }",
        "spans = { x = 1 }",
        "spans = 1",
        "unit = \"x\"",
        "measure = { events = { x = 1 } }",
        "measure = { events = { level = \"x\" } }",
    ];
    for line in lines {
        let e = rule_error(line);
        for internal in ["Repr", "untagged", "variant", "enum "] {
            assert!(!e.contains(internal), "{line}: {e}");
        }
    }
}

#[test]
fn settings_and_red_errors_are_located_at_their_key() {
    assert_eq!(
        file_error("[settings]\ncardinality_limit = 0\n"),
        "line 2, column 1: [settings] cardinality_limit: the cardinality limit must be at least 1"
    );
    assert_eq!(
        file_error("[settings]\nmax_label_len = 2\n"),
        "line 2, column 1: [settings] max_label_len: the label length bound must be at least 8 \
         bytes"
    );
    // Reported at the setting, not at the `[[metric]]` that inherits it.
    assert_eq!(
        file_error(
            "[settings]\ncardinality_limit = 5\nduration_buckets = [1, 1]\n\n[[metric]]\nname = \"lat\"\nkind = \"histogram\"\n"
        ),
        "line 3, column 1: [settings] duration_buckets: bucket boundaries must be strictly \
         increasing, but 1 is followed by 1"
    );
    assert_eq!(
        file_error("[settings]\nduration_buckets = \"otel\"\n"),
        "line 2, column 20: unknown bucket preset `otel`: expected one of `otel_durations`, \
         `exponential_seconds`, `exponential_bytes`; did you mean `otel_durations`?"
    );
    assert_eq!(
        file_error(
            "[settings]\nduration_buckets = { exponential = { start = 0, factor = 2, count = 3 } }\n"
        ),
        "line 2, column 22: exponential buckets need start > 0, factor > 1, count > 0"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nspans = { target = \"\" }\n"),
        "line 3, column 1: rule #0 (`traces.span.metrics.calls`): the span target is empty; \
         leave it out to select every target"
    );
    assert_eq!(
        file_error(&format!("[red]\nservice_name = \"{}\"\n", "s".repeat(200))),
        "line 2, column 1: rule #0 (`traces.span.metrics.calls`): label `service.name`: value \
         of 200 bytes exceeds the 128-byte bound"
    );
    assert_eq!(
        file_error("[red]\nservice_name = \"shop\"\nspans = { level = \"verbose\" }\n"),
        "line 3, column 19: unknown level `verbose`: expected one of `error`, `warn`, `info`, \
         `debug`, `trace`"
    );
    assert_eq!(
        file_error("[red]\nspans = \"rpc\"\n"),
        "line 1, column 1: missing key `service_name` in `[red]`"
    );
    // A file names itself, like its other errors.
    let path =
        std::env::temp_dir().join(format!("spanmetrics-settings-{}.toml", std::process::id()));
    std::fs::write(&path, "[settings]\ncardinality_limit = 0\n").unwrap();
    let e = SpanMetrics::builder()
        .toml_file(&path)
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        e,
        format!(
            "{}:2:1: [settings] cardinality_limit: the cardinality limit must be at least 1",
            path.display()
        )
    );
}

#[test]
fn too_many_bucket_boundaries_in_a_file_are_refused() {
    assert_eq!(
        rule_error("buckets = { exponential = { start = 0.001, factor = 2, count = 100000 } }"),
        "line 4, column 1: rule #0 (`lat`): 100000 bucket boundaries were asked for; at most \
         1024 are accepted"
    );
    assert_eq!(
        rule_error("buckets = { linear = { start = 0, width = 1, count = 9223372036854775807 } }"),
        "line 4, column 1: rule #0 (`lat`): 9223372036854775807 bucket boundaries were asked \
         for; at most 1024 are accepted"
    );
    let list: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    assert_eq!(
        rule_error(&format!("buckets = [{}]", list.join(", "))),
        "line 4, column 1: rule #0 (`lat`): 2000 bucket boundaries were asked for; at most 1024 \
         are accepted"
    );
    assert_eq!(
        file_error(
            "[settings]\nduration_buckets = { linear = { start = 1, width = 1, count = 5000 } }\n\n[[metric]]\nname = \"lat\"\nkind = \"histogram\"\n"
        ),
        "line 2, column 1: [settings] duration_buckets: 5000 bucket boundaries were asked for; \
         at most 1024 are accepted"
    );
}
