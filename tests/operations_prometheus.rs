//! The generated operations against a real Prometheus: it loads the restate example's rules
//! (printed by `--print-rules`) while it scrapes the example running with `--error-burst`;
//! within the time bound `/api/v1/alerts` shows the `rpc-availability` objective's fast page
//! alert firing and no other alert firing, and every panel of the example's dashboard
//! (`--print-dashboard`), its variables filled in, is answered with a non-empty result.
//!
//! Needs Debian's `prometheus` package; see `example_bin::skip_or_fail`.
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use example_bin::{
    Killed, encode, free_port, get, poll, restate_binary, skip_or_fail, start_prometheus_with_rules,
};
use serde_json::Value;

/// The example's output for `args`.
fn print(args: &[&str]) -> String {
    let out = Command::new(restate_binary())
        .args(args)
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn api(prometheus: SocketAddr, path: &str) -> Option<Value> {
    let (status, body) = get(prometheus, path).ok()?;
    let json: Value = serde_json::from_str(&body).ok()?;
    (status == 200 && json["status"] == "success").then_some(json)
}

/// The alerts Prometheus holds, as (state, labels).
fn alerts(prometheus: SocketAddr) -> Option<Vec<(String, Value)>> {
    let json = api(prometheus, "/api/v1/alerts")?;
    Some(
        json["data"]["alerts"]
            .as_array()?
            .iter()
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect(),
    )
}

/// Every query of the dashboard, with its variables filled in: `$__rate_interval` as `1m`,
/// every label variable as `.*` (Grafana's "All").
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let vars: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            for v in &vars {
                expr = expr.replace(&format!("${v}"), ".*");
            }
            assert!(!expr.contains('$'), "a variable left in {expr}");
            out.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

#[test]
fn the_burst_fires_its_objectives_fast_page_alert_only_and_every_panel_answers() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("the `prometheus` server is not installed");
        return;
    }
    let start = Instant::now();
    let dir = std::env::temp_dir().join(format!("spanmetrics-operations-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The rules, as the example prints them: the fast page alert fires at once (`for` 0 s),
    // groups are evaluated every second; the other alerts keep the workbook's `for`.
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, print(&["--print-rules", "--fast-page", "0"])).unwrap();
    let dashboard: Value =
        serde_json::from_str(&print(&["--print-dashboard"])).expect("the dashboard is JSON");

    // Every RPC fails from 2 s into the run on.
    let example: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _example = Killed(
        Command::new(restate_binary())
            .args(["--listen", &example.to_string(), "--duration", "300"])
            .args(["--error-burst", "2,600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts"),
        "restate example",
    );
    let up = poll(Duration::from_secs(30), Duration::from_millis(200), || {
        get(example, "/metrics").ok().filter(|(s, _)| *s == 200)
    });
    assert!(
        up.is_some(),
        "the example did not serve /metrics on {example}"
    );
    let (prometheus, _prometheus) =
        start_prometheus_with_rules(&dir, "restate", example, Some(&rules));

    // The fast page alert of `rpc-availability` fires (every RPC fails: a burn rate of 1/0.05
    // = 20 > 14.4 once the burst outweighs the time before it).
    let fired = poll(Duration::from_secs(90), Duration::from_secs(1), || {
        let all = alerts(prometheus)?;
        all.iter()
            .any(|(state, l)| {
                state == "firing"
                    && l["objective"] == "rpc-availability"
                    && l["long_window"] == "1h"
            })
            .then_some(all)
    });
    let all = fired.unwrap_or_else(|| {
        panic!(
            "no firing fast page alert within 90 s: {:?}\nprometheus log:\n{}",
            alerts(prometheus),
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        )
    });
    let firing: Vec<&Value> = all
        .iter()
        .filter(|(state, _)| state == "firing")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(firing.len(), 1, "only the fast page alert fires: {all:?}");
    let l = firing[0];
    assert_eq!(l["alertname"], "ErrorBudgetBurn");
    assert_eq!(l["severity"], "page");
    assert_eq!(l["family"], "restate_network_rpc_duration_seconds");
    assert_eq!(l["short_window"], "5m");
    // The other objectives are not burning at all.
    let others: Vec<&(String, Value)> = all
        .iter()
        .filter(|(_, l)| l["objective"] != "rpc-availability")
        .collect();
    assert!(others.is_empty(), "alerts of other objectives: {others:?}");
    let fired_after = start.elapsed();

    // Every panel answers, once every family has been recorded.
    let queries = panel_queries(&dashboard);
    assert!(queries.len() > 60, "{} queries", queries.len());
    let mut empty: Vec<(String, String)> = Vec::new();
    let answered = poll(Duration::from_secs(60), Duration::from_secs(2), || {
        empty = queries
            .iter()
            .filter(|(_, q)| {
                let path = format!("/api/v1/query?query={}", encode(q));
                api(prometheus, &path)
                    .is_none_or(|j| j["data"]["result"].as_array().is_none_or(|r| r.is_empty()))
            })
            .cloned()
            .collect();
        empty.is_empty().then_some(())
    });
    assert!(answered.is_some(), "panels without data: {empty:#?}");
    eprintln!(
        "fast page alert fired after {:.1} s; {} panel queries answered after {:.1} s",
        fired_after.as_secs_f64(),
        queries.len(),
        start.elapsed().as_secs_f64()
    );
}

/// `--print-rules` and `--print-dashboard` print what the library generates from the example's
/// built-in configuration; `--fast-page` changes only the fast page alert's `for` and the
/// evaluation interval; a malformed `--error-burst` is a usage error.
#[test]
fn the_example_prints_the_operations_of_its_configuration() {
    use tracing_spanmetrics::SpanMetrics;
    use tracing_spanmetrics::operations::{
        BurnRateAlert, DashboardOptions, Operations, RuleOptions,
    };
    let builder = SpanMetrics::builder()
        .toml(include_str!("../examples/restate/spanmetrics.toml"))
        .unwrap();
    let ops = Operations::new(&builder).unwrap();
    assert_eq!(
        ops.objective_names().collect::<Vec<_>>(),
        ["rpc-availability", "invoker-ttfb"]
    );
    assert_eq!(
        print(&["--print-rules"]),
        ops.rules(&RuleOptions::default())
    );
    assert_eq!(
        print(&["--print-rules", "--fast-page", "0"]),
        ops.rules(
            &RuleOptions::default()
                .interval(Duration::from_secs(1))
                .alert_for(BurnRateAlert::PageFast, Duration::ZERO)
        )
    );
    assert_eq!(
        print(&["--print-dashboard"]),
        ops.dashboard(&DashboardOptions::default().title("restate"))
    );
    let out = Command::new(restate_binary())
        .args(["--error-burst", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --error-burst: `5` is not START,LENGTH in seconds (like 10,30)\n"
    );
}
