//! Objectives declared beside the rules: each problem refused when the configuration is built,
//! with a message that says what was found and what is accepted, located by line and column
//! in a TOML file.

use tracing_spanmetrics::{
    ConfigErrorKind, Label, Metric, Objective, SpanMetrics, SpanMetricsBuilder, Spans,
};

fn rules() -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .spans(Spans::named("rpc"))
                .label("method")
                .label(Label::outcome("result")),
        )
        .metric(
            Metric::counter("rpc.calls")
                .spans(Spans::named("rpc"))
                .label("method"),
        )
        .metric(Metric::gauge("rpc.in_flight").spans(Spans::named("rpc")))
}

fn refused(o: Objective) -> String {
    let e = rules().objective(o).build().expect_err("refused");
    assert_eq!(e.kind(), ConfigErrorKind::Objective);
    assert_eq!(e.objective_index(), Some(0));
    e.to_string()
}

#[test]
fn valid_objectives_build() {
    let layer = rules()
        .objective(Objective::availability("a", "rpc.duration.seconds"))
        .objective(
            Objective::latency("l", "rpc.duration.seconds", 0.25)
                .target(0.99)
                .filter("method", "get")
                .group_by("method"),
        )
        .objective(Objective::availability("c", "rpc.calls").errors("method", ["bad"]))
        .build();
    assert!(layer.is_ok(), "{layer:?}");
}

#[test]
fn an_unknown_family_is_refused_with_the_nearest_name() {
    assert_eq!(
        refused(Objective::availability("a", "rpc.duration.second")),
        "objective #0 (`a`): no rule declares a family `rpc.duration.second`; did you mean \
         `rpc.duration.seconds`?"
    );
    assert_eq!(
        refused(Objective::availability("a", "rpc_calls_total")),
        "objective #0 (`a`): no rule declares a family `rpc_calls_total`; `rpc_calls_total` is \
         the exported name of `rpc.calls`: name the family as the rules declare it"
    );
}

#[test]
fn a_family_of_the_wrong_kind_is_refused() {
    assert_eq!(
        refused(Objective::latency("l", "rpc.calls", 0.25)),
        "objective #0 (`l`): a latency objective needs a histogram, but `rpc.calls` is a counter"
    );
    assert_eq!(
        refused(Objective::availability("a", "rpc.in_flight")),
        "objective #0 (`a`): an availability objective needs a counter or a histogram, but \
         `rpc.in_flight` is a gauge"
    );
}

#[test]
fn a_target_outside_zero_to_one_is_refused() {
    for target in [0.0, 1.0, 99.9, -0.5, f64::NAN] {
        assert_eq!(
            refused(Objective::availability("a", "rpc.duration.seconds").target(target)),
            format!(
                "objective #0 (`a`): the target {target} is outside (0, 1): write 99.9 % as 0.999"
            )
        );
    }
}

#[test]
fn a_label_the_family_lacks_is_refused() {
    let lacks = "`rpc.duration.seconds` has no label `peer` (its labels: [method, result])";
    assert_eq!(
        refused(Objective::availability("a", "rpc.duration.seconds").group_by("peer")),
        format!("objective #0 (`a`): {lacks}")
    );
    assert_eq!(
        refused(Objective::availability("a", "rpc.duration.seconds").filter("peer", "n1")),
        format!("objective #0 (`a`): {lacks}")
    );
}

#[test]
fn a_latency_threshold_must_be_a_bucket_bound() {
    assert_eq!(
        refused(Objective::latency("l", "rpc.duration.seconds", 0.3)),
        "objective #0 (`l`): the threshold 0.3 is not one of the bucket bounds of \
         `rpc.duration.seconds` ([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, \
         2.5, 5, 7.5, 10]); the share under it cannot be read from the buckets"
    );
}

#[test]
fn availability_needs_a_way_to_tell_errors() {
    assert_eq!(
        refused(Objective::availability("a", "rpc.calls")),
        "objective #0 (`a`): `rpc.calls` has no outcome label (source `outcome` or \
         `otel_status_code`) to tell errors by; add one, or say which label values are errors \
         with `errors`"
    );
}

#[test]
fn names_are_checked_and_distinct() {
    let e = rules()
        .objective(Objective::availability("a", "rpc.duration.seconds"))
        .objective(Objective::availability("a", "rpc.duration.seconds"))
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "objective #1 (`a`): the name is already taken by objective #0; objectives need \
         distinct names (they label the rules and alerts)"
    );
    assert_eq!(
        refused(Objective::availability("a b", "rpc.duration.seconds")),
        "objective #0 (`a b`): invalid objective name `a b`: ` ` is not allowed (use letters, \
         digits, `-`, `_` and `.`)"
    );
}

const RULES: &str = r#"[[metric]]
name = "rpc.duration.seconds"
kind = "histogram"
spans = "rpc"
labels = ["method", { key = "result", source = "outcome" }]
"#;

fn toml_error(objective: &str) -> String {
    SpanMetrics::builder()
        .toml(&format!("{RULES}\n{objective}"))
        .expect_err("refused")
        .to_string()
}

#[test]
fn the_file_form_reads_every_key() {
    let builder = SpanMetrics::builder()
        .toml(&format!(
            "{RULES}\n[[objective]]\nname = \"l\"\nfamily = \"rpc.duration.seconds\"\n\
             kind = \"latency\"\nthreshold = 0.25\ntarget = 0.99\nwindow = \"30d\"\n\
             filter = {{ method = \"get\" }}\ngroup_by = [\"method\"]\n\
             description = \"fast gets\"\n\n[[objective]]\nname = \"a\"\n\
             family = \"rpc.duration.seconds\"\nkind = \"availability\"\n\
             errors = {{ label = \"method\", values = [\"bad\", \"worse\"] }}\n"
        ))
        .expect("valid");
    let expected = [
        Objective::latency("l", "rpc.duration.seconds", 0.25)
            .target(0.99)
            .window(std::time::Duration::from_secs(30 * 86_400))
            .filter("method", "get")
            .group_by("method")
            .describe("fast gets"),
        Objective::availability("a", "rpc.duration.seconds").errors("method", ["bad", "worse"]),
    ];
    assert_eq!(builder.objectives(), expected);
}

#[test]
fn file_errors_name_line_and_column() {
    // The builder's verdict, at the key it is about (line 6 is `[[objective]]`).
    assert_eq!(
        toml_error(
            "[[objective]]\nname = \"l\"\nfamily = \"rpc.duration.seconds\"\nkind = \"latency\"\n\
             threshold = 0.3\n"
        ),
        "line 11, column 1: objective #0 (`l`): the threshold 0.3 is not one of the bucket \
         bounds of `rpc.duration.seconds` ([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, \
         0.75, 1, 2.5, 5, 7.5, 10]); the share under it cannot be read from the buckets"
    );
    assert_eq!(
        toml_error(
            "[[objective]]\nname = \"a\"\nfamily = \"rpc.duration.seconds\"\n\
             kind = \"availability\"\ntarget = 1.5\n"
        ),
        "line 11, column 1: objective #0 (`a`): the target 1.5 is outside (0, 1): write 99.9 % \
         as 0.999"
    );
    assert_eq!(
        toml_error(
            "[[objective]]\nname = \"a\"\nfamily = \"rpc.duration\"\nkind = \"availability\"\n"
        ),
        "line 9, column 1: objective #0 (`a`): no rule declares a family `rpc.duration`"
    );
    // The reader's own, with the nearest accepted word.
    assert_eq!(
        toml_error(
            "[[objective]]\nname = \"l\"\nfamily = \"rpc.duration.seconds\"\nkind = \"latncy\"\n"
        ),
        "line 10, column 8: objective #0 (`l`): unknown objective kind `latncy`: expected one of \
         `availability`, `latency`; did you mean `latency`?"
    );
    assert_eq!(
        toml_error("[[objective]]\nname = \"a\"\nfamly = \"x\"\n"),
        "line 9, column 1: objective #0 (`a`): unknown key `famly` in an objective: expected one \
         of `name`, `family`, `kind`, `threshold`, `target`, `window`, `filter`, `group_by`, \
         `errors`, `description`; did you mean `family`?"
    );
    assert_eq!(
        toml_error(
            "[[objective]]\nname = \"a\"\nfamily = \"rpc.duration.seconds\"\n\
             kind = \"availability\"\nwindow = \"4 weeks\"\n"
        ),
        "line 11, column 10: objective #0 (`a`): unknown duration unit ` weeks` in `4 weeks`: \
         expected one of `ms`, `s`, `m`, `h`, `d`, `w`"
    );
}

#[test]
fn error_values_belong_to_availability_and_are_not_empty() {
    assert_eq!(
        refused(Objective::availability("a", "rpc.calls").errors("method", Vec::<String>::new())),
        "objective #0 (`a`): no error value given: list the values of the label that mean an \
         error"
    );
    assert_eq!(
        refused(Objective::latency("l", "rpc.duration.seconds", 0.25).errors("result", ["error"])),
        "objective #0 (`l`): a latency objective counts slow calls; `errors` applies to \
         availability objectives only"
    );
    assert_eq!(
        refused(Objective::availability("a", "rpc.calls").errors("status", ["bad"])),
        "objective #0 (`a`): `rpc.calls` has no label `status` (its labels: [method])"
    );
    assert_eq!(
        refused(
            Objective::availability("a", "rpc.duration.seconds")
                .window(std::time::Duration::from_secs(90))
        ),
        "objective #0 (`a`): the window 90s is not a whole, positive number of minutes"
    );
}
