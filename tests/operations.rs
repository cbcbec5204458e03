//! The generated Prometheus rules, checked by Prometheus's own `promtool`: `promtool check
//! rules` accepts them, and `promtool test rules` runs the unit tests of
//! `tests/promtool/burn_rates.test.yml` against them (generated here, at run time, from the
//! same code users call, so the two cannot drift). The unit tests feed synthetic series at
//! chosen error rates and prove that each burn-rate alert fires at its rate within its `for`
//! time, and stays silent below it.
//!
//! Needs Debian's `prometheus` package (it ships promtool); see `example_bin::skip_or_fail`.
//! The dashboard's JSON is checked against the fields of Grafana's dashboard model here too.

#[path = "common/example_bin.rs"]
mod example_bin;

use std::path::{Path, PathBuf};
use std::process::Command;

use example_bin::skip_or_fail;
use tracing_spanmetrics::operations::{DashboardOptions, Operations, RuleOptions};
use tracing_spanmetrics::{Label, Metric, Objective, SpanMetrics, Spans};

/// The configuration the unit tests are written for: a counter with an outcome label and a
/// histogram, one objective on each.
fn operations() -> Operations {
    let builder = SpanMetrics::builder()
        .metric(
            Metric::counter("calls")
                .spans(Spans::named("call"))
                .label(Label::outcome("result")),
        )
        .metric(Metric::histogram("latency").spans(Spans::named("call")))
        .objective(Objective::availability("calls-availability", "calls").target(0.999))
        .objective(Objective::latency("calls-latency", "latency", 0.25).target(0.99));
    Operations::new(&builder).expect("a valid configuration")
}

fn promtool_or_skip() -> bool {
    if Command::new("promtool").arg("--version").output().is_err() {
        skip_or_fail("`promtool` is not installed");
        return false;
    }
    true
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spanmetrics-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_the_generated_rules() {
    if !promtool_or_skip() {
        return;
    }
    let dir = workdir("check-rules");
    let rules = operations().rules(&RuleOptions::default());
    std::fs::write(dir.join("rules.yml"), &rules).unwrap();
    let (ok, text) = promtool(&["check", "rules", "rules.yml"], &dir);
    assert!(ok, "promtool check rules failed:\n{text}\n{rules}");
    // 8 recorded ratios (5m 30m 1h 2h 6h 1d 3d and the 28-day window) and 4 alerts each.
    assert!(text.contains("SUCCESS: 24 rules found"), "{text}");
}

#[test]
fn burn_rate_alerts_fire_at_their_rate_within_their_for_and_stay_silent_below_it() {
    if !promtool_or_skip() {
        return;
    }
    let dir = workdir("test-rules");
    std::fs::write(
        dir.join("generated_rules.yml"),
        operations().rules(&RuleOptions::default()),
    )
    .unwrap();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promtool/burn_rates.test.yml");
    std::fs::copy(&tests, dir.join("burn_rates.test.yml")).unwrap();
    let (ok, text) = promtool(&["test", "rules", "burn_rates.test.yml"], &dir);
    assert!(ok, "promtool test rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The restate example's dashboard, generated from its built-in configuration.
fn restate_dashboard() -> serde_json::Value {
    let builder = SpanMetrics::builder()
        .toml(include_str!("../examples/restate/spanmetrics.toml"))
        .expect("the example's configuration");
    let ops = Operations::new(&builder).expect("valid");
    serde_json::from_str(&ops.dashboard(&DashboardOptions::default())).expect("JSON")
}

/// The fields Grafana's dashboard JSON model requires (grafana.com/docs, "JSON model"): a
/// dashboard's `title`, `uid`, `schemaVersion`, `version`, `time`, `templating.list`,
/// `annotations.list` and `panels`; a panel's `id`, `type`, `title` and `gridPos` on the
/// 24-column grid; a query panel's `datasource` and `targets` (each with `refId` and `expr`),
/// `fieldConfig` (`defaults`, `overrides`) and `options`; a row's `collapsed` and `panels`.
#[test]
fn the_dashboard_has_the_model_s_required_fields_and_one_row_per_family() {
    let d = restate_dashboard();
    assert_eq!(d["title"], "Span metrics");
    assert_eq!(d["uid"], "tracing-spanmetrics");
    assert!(d["uid"].as_str().unwrap().len() <= 40);
    assert!(d["schemaVersion"].is_u64() && d["version"].is_u64());
    assert_eq!(d["time"]["from"], "now-1h");
    assert_eq!(d["time"]["to"], "now");
    assert!(d["annotations"]["list"].is_array());
    let vars = d["templating"]["list"].as_array().unwrap();
    assert_eq!(vars[0]["name"], "datasource");
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    // Label keys two families or more share (outcome labels aside).
    assert_eq!(
        names,
        [
            "datasource",
            "partition_id",
            "service_name",
            "deployment_id",
            "invoker_id",
            "swimlane",
            "direction",
            "peer_name",
            "outcome"
        ]
    );
    for v in &vars[1..] {
        assert_eq!(v["type"], "query");
        assert_eq!(v["includeAll"], true);
        assert_eq!(v["allValue"], ".*");
        assert!(
            v["query"]["query"]
                .as_str()
                .unwrap()
                .starts_with("label_values(")
        );
    }

    let panels = d["panels"].as_array().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut boxes: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut rows = Vec::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("an id")),
            "duplicate id {}",
            p["id"]
        );
        let title = p["title"].as_str().expect("a title");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: {g}");
        for &(bx, by, bw, bh) in &boxes {
            let apart = x >= bx + bw || bx >= x + w || y >= by + bh || by >= y + h;
            assert!(apart, "{title} overlaps another panel");
        }
        boxes.push((x, y, w, h));
        match p["type"].as_str().unwrap() {
            "row" => {
                assert_eq!(p["collapsed"], false);
                assert_eq!(p["panels"], serde_json::json!([]));
                rows.push(title.to_owned());
            }
            "timeseries" => {
                assert_eq!(p["datasource"]["uid"], "${datasource}");
                assert!(p["fieldConfig"]["defaults"].is_object());
                assert!(p["fieldConfig"]["overrides"].is_array());
                assert!(p["options"].is_object());
                let targets = p["targets"].as_array().unwrap();
                assert!(!targets.is_empty(), "{title}");
                let refs: std::collections::HashSet<&str> = targets
                    .iter()
                    .map(|t| t["refId"].as_str().unwrap())
                    .collect();
                assert_eq!(refs.len(), targets.len(), "{title}: refIds are distinct");
                assert!(targets.iter().all(|t| t["expr"].is_string()));
            }
            other => panic!("unexpected panel type {other}"),
        }
    }
    // One row per family (27), then the layer's health.
    assert_eq!(rows.len(), 28);
    assert_eq!(rows[0], "restate_invoker_invocations_queued_total");
    assert_eq!(rows[27], "tracing-spanmetrics health");

    // What the rows hold, for a histogram with an outcome label and an objective, a time to a
    // milestone, an in-flight gauge, and the health row.
    let row_of = |row: &str| -> Vec<String> {
        let at = panels.iter().position(|p| p["title"] == row).unwrap();
        panels[at + 1..]
            .iter()
            .take_while(|p| p["type"] != "row")
            .map(|p| p["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        row_of("restate_network_rpc_duration_seconds"),
        [
            "Request rate",
            "Error ratio",
            "Duration p50 / p95 / p99",
            "Error budget remaining: rpc-availability",
            "Burn rate: rpc-availability"
        ]
    );
    assert_eq!(
        row_of("restate_invoker_http_request_duration_seconds"),
        [
            "Request rate",
            "Time to milestone p50 / p95 / p99",
            "Error budget remaining: invoker-ttfb",
            "Burn rate: invoker-ttfb"
        ]
    );
    assert_eq!(
        row_of("restate_network_pool_connections_active"),
        ["In flight"]
    );
    assert_eq!(
        row_of("tracing-spanmetrics health"),
        [
            "Observations folded into overflow series",
            "Label values truncated",
            "Values rejected"
        ]
    );
    let expr = |title: &str| -> Vec<String> {
        let p = panels.iter().find(|p| p["title"] == title).unwrap();
        p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        expr("Burn rate: invoker-ttfb"),
        [
            "spanmetrics_objective:error_ratio:rate1h{objective=\"invoker-ttfb\",service_name=~\"$service_name\"} / (1 - 0.99)",
            "spanmetrics_objective:error_ratio:rate5m{objective=\"invoker-ttfb\",service_name=~\"$service_name\"} / (1 - 0.99)"
        ]
    );
    assert_eq!(
        expr("Error budget remaining: rpc-availability"),
        [
            "1 - spanmetrics_objective:error_ratio:rate28d{objective=\"rpc-availability\"} / (1 - 0.95)"
        ]
    );
}

/// The `spanmetrics-ops` command prints what the library generates, and refuses a bad file in
/// one located line.
#[cfg(feature = "cli")]
#[test]
fn the_command_prints_the_rules_and_dashboard_of_a_file() {
    let bin = env!("CARGO_BIN_EXE_spanmetrics-ops");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/restate/spanmetrics.toml");
    let builder = SpanMetrics::builder().toml_file(&config).unwrap();
    let ops = Operations::new(&builder).unwrap();
    let run = |args: &[&str]| Command::new(bin).args(args).output().expect("it runs");
    let config = config.to_str().unwrap();

    let out = run(&["rules", config]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ops.rules(&RuleOptions::default())
    );
    let out = run(&["rules", config, "--interval", "10"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ops.rules(&RuleOptions::default().interval(std::time::Duration::from_secs(10)))
    );
    let out = run(&["dashboard", config, "--title", "restate"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ops.dashboard(&DashboardOptions::default().title("restate"))
    );

    let dir = workdir("ops-command");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[metric]]\nname = \"calls\"\nkind = \"counter\"\n\n[[objective]]\nname = \"a\"\n\
         family = \"calls\"\nkind = \"latency\"\nthreshold = 1\n",
    )
    .unwrap();
    let out = run(&["rules", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: {}:8:1: objective #0 (`a`): a latency objective needs a histogram, but \
             `calls` is a counter\n",
            bad.display()
        )
    );
    let out = run(&["alerts", config]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: unknown command `alerts`: expected `rules` or `dashboard` (try --help)\n"
    );
}

/// The recorded error ratios, exactly: a latency objective filtered and grouped, an
/// availability objective whose errors are several values of a field label.
#[test]
fn recorded_ratios_read_the_exported_series_with_filter_grouping_and_errors() {
    let builder = SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.latency")
                .spans(Spans::named("rpc"))
                .label("peer.name")
                .label("method"),
        )
        .metric(
            Metric::counter("tasks.total")
                .spans(Spans::named("task"))
                .label("status"),
        )
        .objective(
            Objective::latency("lat", "rpc.latency", 1.0)
                .target(0.99)
                .filter("method", "get")
                .group_by("peer.name"),
        )
        .objective(
            Objective::availability("tasks", "tasks.total")
                .errors("status", ["failed", "timed.out"]),
        );
    let rules = Operations::new(&builder)
        .unwrap()
        .rules(&RuleOptions::default());
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    // 8 recorded ratios and 4 alerts per objective, in declaration order.
    assert_eq!(exprs.len(), 24);
    assert_eq!(
        exprs[0],
        r#""1 - sum by (peer_name) (rate(rpc_latency_seconds_bucket{method=\"get\",le=~\"1|1\\\\.0\"}[5m])) / sum by (peer_name) (rate(rpc_latency_seconds_count{method=\"get\"}[5m]))""#
    );
    assert_eq!(
        exprs[12],
        r#""(sum(rate(tasks_total{status=~\"failed|timed\\\\.out\"}[5m])) or 0 * sum(rate(tasks_total[5m]))) / sum(rate(tasks_total[5m]))""#
    );
    assert_eq!(
        exprs[8],
        r#""spanmetrics_objective:error_ratio:rate1h{objective=\"lat\"} > (14.4 * (1 - 0.99))\nand\nspanmetrics_objective:error_ratio:rate5m{objective=\"lat\"} > (14.4 * (1 - 0.99))""#
    );
    assert!(rules.contains("record: \"spanmetrics_objective:error_ratio:rate28d\""));
    if promtool_or_skip() {
        let dir = workdir("grouped-rules");
        std::fs::write(dir.join("rules.yml"), &rules).unwrap();
        let (ok, text) = promtool(&["check", "rules", "rules.yml"], &dir);
        assert!(ok && text.contains("SUCCESS: 24 rules found"), "{text}");
    }
}
