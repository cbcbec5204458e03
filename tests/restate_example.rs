//! The flagship example's standard scenario, with exact expectations: every one of the 27
//! families present with exactly its label keys, counts per status, outcome and reason, gauges
//! back to zero once drained, histogram counts equal to the numbers of operations. Then the
//! Prometheus exposition of the same scenario goes through `promtool check metrics`.
#![cfg(feature = "prometheus")]

mod common;
#[path = "common/example_bin.rs"]
mod example_bin;

#[path = "../examples/restate/exposition.rs"]
mod exposition;
#[path = "../examples/restate/sim/mod.rs"]
mod sim;
#[path = "../examples/restate/spanmetrics.rs"]
mod spanmetrics;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{Metrics, TestRecorder};
use tracing_spanmetrics::{
    OVERFLOW_METRIC, REJECTED_METRIC, SpanMetricsBuilder, SpanMetricsLayer, TRUNCATED_METRIC,
    exporter,
};
use tracing_subscriber::prelude::*;

/// Each family of `seed-metrics.toml`: name, required label keys, optional label keys.
const FAMILIES: [(&str, &[&str], &[&str]); 27] = [
    (
        "restate.invoker.invocations.queued.total",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.queue.duration.seconds",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.throttling.balance",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.concurrency_limit",
        &["invoker_id", "partition_id"],
        &[],
    ),
    (
        "restate.invoker.concurrency.slots.acquired.total",
        &["invoker_id", "partition_id"],
        &[],
    ),
    (
        "restate.invoker.concurrency.slots.released.total",
        &["invoker_id", "partition_id"],
        &[],
    ),
    (
        "restate.invoker.tasks.total",
        &["status", "partition_id", "service_name"],
        &["transient"],
    ),
    (
        "restate.invoker.task.duration.seconds",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.state.truncations.total",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.invocations.active",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.http.request.duration.seconds",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.http.roundtrip.duration.seconds",
        &["partition_id", "service_name", "deployment_id"],
        &[],
    ),
    (
        "restate.invoker.http.responses.total",
        &[
            "partition_id",
            "service_name",
            "deployment_id",
            "status_code",
        ],
        &[],
    ),
    (
        "restate.network.pool.connections.active",
        &["swimlane"],
        &[],
    ),
    ("restate.network.connection.pending", &["swimlane"], &[]),
    (
        "restate.network.connection.acquisition.duration.seconds",
        &["swimlane", "cache", "result"],
        &[],
    ),
    (
        "restate.network.connection.handshake.duration.seconds",
        &["swimlane", "result"],
        &[],
    ),
    (
        "restate.network.rpc.duration.seconds",
        &["swimlane", "result"],
        &[],
    ),
    (
        "restate.network.connection.opened.total",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.network.connection_created.total",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.network.connection.closed.total",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.network.connection_dropped.total",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.network.connection.duration.seconds",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.network.permit_acquisition.duration.seconds",
        &["direction", "swimlane", "peer_name"],
        &[],
    ),
    (
        "restate.deployment.discovery.attempts.total",
        &["outcome"],
        &[],
    ),
    (
        "restate.deployment.discovery.duration.seconds",
        &["outcome"],
        &[],
    ),
    (
        "restate.deployment.discovery.retries.total",
        &["reason"],
        &[],
    ),
];

fn builder() -> SpanMetricsBuilder {
    spanmetrics::builder(None).expect("the built-in spanmetrics.toml")
}

/// Runs the standard scenario on a multi-threaded runtime whose every thread dispatches to
/// `layer` (a thread-local default: tests in this binary stay independent).
fn run_standard(layer: SpanMetricsLayer) -> sim::Report {
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let d = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&d)))
        .build()
        .expect("a runtime");
    let report = tracing::dispatcher::with_default(&dispatch, || {
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                sim::standard(&sim::Timings::fast()),
            )
            .await
            .expect("the standard scenario ends within 30 s")
            .expect("loopback sockets")
        })
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    report
}

fn standard_metrics() -> (sim::Report, Metrics) {
    let recorder = Arc::new(TestRecorder::default());
    let layer = builder()
        .with_recorder(recorder.clone())
        .build()
        .expect("a valid configuration");
    let report = run_standard(layer);
    (report, recorder.snapshot())
}

fn l<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pairs.to_vec()
}

fn inv<'a>(p: &'a str, svc: &'a str, dp: &'a str) -> Vec<(&'a str, &'a str)> {
    l(&[
        ("partition_id", p),
        ("service_name", svc),
        ("deployment_id", dp),
    ])
}

fn conn<'a>(dir: &'a str, lane: &'a str, peer: &'a str) -> Vec<(&'a str, &'a str)> {
    l(&[("direction", dir), ("swimlane", lane), ("peer_name", peer)])
}

/// Asserts the complete set of series of a counter family and their values.
fn counters(m: &Metrics, name: &str, expected: &[(Vec<(&str, &str)>, u64)]) {
    assert_eq!(
        m.series(name).len(),
        expected.len(),
        "{name}: series {:?}",
        m.series(name)
    );
    for (labels, value) in expected {
        assert_eq!(m.counter(name, labels), Some(*value), "{name} {labels:?}");
    }
}

/// Asserts the complete set of series of a histogram family and their observation counts.
fn histogram_counts(m: &Metrics, name: &str, expected: &[(Vec<(&str, &str)>, usize)]) {
    assert_eq!(
        m.series(name).len(),
        expected.len(),
        "{name}: series {:?}",
        m.series(name)
    );
    for (labels, count) in expected {
        let values = m
            .histogram(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing"));
        assert_eq!(values.len(), *count, "{name} {labels:?}");
        assert!(
            values
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0 && *v < 30.0),
            "{name} {labels:?}: durations in seconds, got {values:?}"
        );
    }
}

/// Asserts every series of a gauge family is back to 0, and which series exist.
fn drained(m: &Metrics, name: &str, expected: &[Vec<(&str, &str)>]) {
    assert_eq!(
        m.series(name).len(),
        expected.len(),
        "{name}: series {:?}",
        m.series(name)
    );
    for labels in expected {
        assert_eq!(m.gauge(name, labels), Some(0.0), "{name} {labels:?}");
    }
}

#[test]
fn standard_scenario_produces_all_27_families_with_exact_values() {
    let (report, m) = standard_metrics();

    // What the workload itself saw.
    use sim::invoker::Ended::*;
    let ended: Vec<(&str, sim::invoker::Ended)> = vec![
        ("c1", Completed),
        ("c2", Completed),
        ("c3", Aborted),
        ("g1", Completed),
        ("g2", Completed),
        ("g3", Suspended),
        ("g4", Failed),
        ("g5", Paused),
        ("g6", Completed),
        ("m1", Failed),
    ];
    let mut got: Vec<(&str, sim::invoker::Ended)> =
        report.ended.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    got.sort_by_key(|(k, _)| *k);
    assert_eq!(got, ended);
    assert_eq!((report.rpc_ok, report.rpc_err), (22, 6));

    // Every family, with exactly its label keys (optional keys only where seed allows), help
    // text and a unit.
    for (name, required, optional) in FAMILIES {
        let series = m.series(name);
        assert!(!series.is_empty(), "{name} has no series");
        for s in &series {
            let keys: BTreeSet<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
            let req: BTreeSet<&str> = required.iter().copied().collect();
            assert!(
                keys.is_superset(&req),
                "{name}: {s:?} lacks one of {required:?}"
            );
            let extra: Vec<&&str> = keys.difference(&req).collect();
            assert!(
                extra.iter().all(|k| optional.contains(k)),
                "{name}: unexpected label keys {extra:?}"
            );
        }
        let (unit, help) = m
            .description(name)
            .unwrap_or_else(|| panic!("{name} undescribed"));
        assert!(
            unit.is_some() && help.is_some_and(|h| !h.is_empty()),
            "{name}"
        );
    }
    let names: BTreeSet<&str> = m.series.iter().map(|(k, _)| k.name()).collect();
    // Besides them, the layer's health counters, registered at 0 when it is built: overflow
    // for every family, truncated always, values rejected because two gauges measure a field
    // (`throttling_balance`, `concurrency_limit`); no label has a value limit.
    let health = BTreeSet::from([OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC]);
    let seed: BTreeSet<&str> = names.difference(&health).copied().collect();
    assert_eq!(seed.len(), 27, "exactly the 27 families: {seed:?}");
    assert_eq!(
        names
            .intersection(&health)
            .copied()
            .collect::<BTreeSet<_>>(),
        health,
        "exactly the health families: {names:?}"
    );

    // ---- invoker ----
    let queued = [
        (inv("0", "Greeter", "unknown"), 3),
        (inv("0", "Cart", "unknown"), 2),
        (inv("1", "Greeter", "unknown"), 3),
        (inv("1", "Cart", "unknown"), 1),
        (inv("1", "Missing", "unknown"), 1),
    ];
    counters(&m, "restate.invoker.invocations.queued.total", &queued);
    let queued_counts: Vec<_> = queued
        .iter()
        .map(|(l, n)| (l.clone(), *n as usize))
        .collect();
    histogram_counts(&m, "restate.invoker.queue.duration.seconds", &queued_counts);
    for name in [
        "restate.invoker.concurrency.slots.acquired.total",
        "restate.invoker.concurrency.slots.released.total",
    ] {
        counters(
            &m,
            name,
            &[
                (l(&[("invoker_id", "inv-0"), ("partition_id", "0")]), 5),
                (l(&[("invoker_id", "inv-1"), ("partition_id", "1")]), 5),
            ],
        );
    }
    let limit = "restate.invoker.concurrency_limit";
    assert_eq!(
        m.gauge(limit, &[("invoker_id", "inv-0"), ("partition_id", "0")]),
        Some(2.0)
    );
    assert_eq!(
        m.gauge(limit, &[("invoker_id", "inv-1"), ("partition_id", "1")]),
        Some(f64::INFINITY)
    );
    let balance = "restate.invoker.throttling.balance";
    assert_eq!(m.series(balance).len(), 5);
    for (labels, _) in &queued {
        let b = m
            .gauge(balance, labels)
            .expect("a balance per queued series");
        assert!(b.is_finite() && b <= 3.0, "{labels:?}: {b}");
    }

    let task = |status: &'static str, p: &'static str, svc: &'static str| {
        l(&[
            ("status", status),
            ("partition_id", p),
            ("service_name", svc),
        ])
    };
    let failed = |p: &'static str, svc: &'static str, transient: &'static str| {
        l(&[
            ("status", "failed"),
            ("partition_id", p),
            ("service_name", svc),
            ("transient", transient),
        ])
    };
    counters(
        &m,
        "restate.invoker.tasks.total",
        &[
            (task("started", "0", "Greeter"), 5),
            (task("completed", "0", "Greeter"), 3),
            (failed("0", "Greeter", "true"), 2),
            (task("started", "0", "Cart"), 2),
            (task("completed", "0", "Cart"), 1),
            (failed("0", "Cart", "true"), 1),
            (task("started", "1", "Greeter"), 3),
            (task("suspended", "1", "Greeter"), 1),
            (failed("1", "Greeter", "true"), 1),
            (failed("1", "Greeter", "false"), 1),
            (task("started", "1", "Cart"), 3),
            (task("completed", "1", "Cart"), 1),
            (failed("1", "Cart", "true"), 2),
            (task("started", "1", "Missing"), 3),
            (failed("1", "Missing", "true"), 2),
            (failed("1", "Missing", "false"), 1),
        ],
    );
    histogram_counts(
        &m,
        "restate.invoker.task.duration.seconds",
        &[
            (inv("0", "Greeter", "dp_greeter"), 5),
            (inv("0", "Cart", "dp_cart"), 2),
            (inv("1", "Greeter", "dp_greeter"), 3),
            (inv("1", "Cart", "dp_cart"), 3),
            (inv("1", "Missing", "unknown"), 3),
        ],
    );
    counters(
        &m,
        "restate.invoker.state.truncations.total",
        &[(inv("0", "Cart", "dp_cart"), 1)],
    );
    // Abort (c3) and pause (g5) while a retry waits: still exactly back to zero.
    drained(
        &m,
        "restate.invoker.invocations.active",
        &[
            inv("0", "Greeter", "dp_greeter"),
            inv("0", "Cart", "dp_cart"),
            inv("1", "Greeter", "dp_greeter"),
            inv("1", "Cart", "dp_cart"),
        ],
    );
    // Time to first byte: every attempt that got headers (c3's refused request did not).
    histogram_counts(
        &m,
        "restate.invoker.http.request.duration.seconds",
        &[
            (inv("0", "Greeter", "dp_greeter"), 5),
            (inv("0", "Cart", "dp_cart"), 1),
            (inv("1", "Greeter", "dp_greeter"), 3),
            (inv("1", "Cart", "dp_cart"), 3),
        ],
    );
    histogram_counts(
        &m,
        "restate.invoker.http.roundtrip.duration.seconds",
        &[
            (inv("0", "Greeter", "dp_greeter"), 5),
            (inv("0", "Cart", "dp_cart"), 2),
            (inv("1", "Greeter", "dp_greeter"), 3),
            (inv("1", "Cart", "dp_cart"), 3),
        ],
    );
    let status = |p: &'static str, svc: &'static str, dp: &'static str, code: &'static str| {
        let mut v = inv(p, svc, dp);
        v.push(("status_code", code));
        v
    };
    counters(
        &m,
        "restate.invoker.http.responses.total",
        &[
            (status("0", "Greeter", "dp_greeter", "503"), 1),
            (status("1", "Greeter", "dp_greeter", "503"), 1),
            (status("1", "Cart", "dp_cart", "429"), 1),
            (status("1", "Cart", "dp_cart", "502"), 1),
        ],
    );

    // ---- connection pool ----
    let lanes = |names: &[&'static str]| -> Vec<Vec<(&'static str, &'static str)>> {
        names.iter().map(|n| l(&[("swimlane", n)])).collect()
    };
    let used = ["GENERAL", "GOSSIP", "BIFROST_DATA", "DATAFUSION"];
    drained(&m, "restate.network.pool.connections.active", &lanes(&used));
    drained(&m, "restate.network.connection.pending", &lanes(&used));
    let acq = |lane: &'static str, cache: &'static str, result: &'static str| {
        l(&[("swimlane", lane), ("cache", cache), ("result", result)])
    };
    // The unknown node N9 fails early: no acquisition is recorded for it.
    histogram_counts(
        &m,
        "restate.network.connection.acquisition.duration.seconds",
        &[
            (acq("GENERAL", "miss", "success"), 6),
            (acq("GENERAL", "hit", "success"), 9),
            (acq("BIFROST_DATA", "miss", "error"), 2),
            (acq("BIFROST_DATA", "miss", "success"), 1),
            (acq("GOSSIP", "miss", "error"), 1),
            (acq("DATAFUSION", "miss", "success"), 8),
        ],
    );
    let lr =
        |lane: &'static str, result: &'static str| l(&[("swimlane", lane), ("result", result)]);
    // Six concurrent callers shared one connect; the throttled retry made no handshake.
    histogram_counts(
        &m,
        "restate.network.connection.handshake.duration.seconds",
        &[
            (lr("GENERAL", "success"), 1),
            (lr("BIFROST_DATA", "error"), 1),
            (lr("BIFROST_DATA", "success"), 1),
            (lr("GOSSIP", "error"), 1),
            (lr("DATAFUSION", "success"), 1),
        ],
    );
    // Every failed RPC is an error: unknown node, rejected, throttled, refused, timeout, remote.
    histogram_counts(
        &m,
        "restate.network.rpc.duration.seconds",
        &[
            (lr("GENERAL", "success"), 13),
            (lr("GENERAL", "error"), 3),
            (lr("BIFROST_DATA", "success"), 1),
            (lr("BIFROST_DATA", "error"), 2),
            (lr("GOSSIP", "error"), 1),
            (lr("DATAFUSION", "success"), 8),
        ],
    );
    let connections = [
        conn("outgoing", "GENERAL", "N2:3"),
        conn("outgoing", "BIFROST_DATA", "N3:1"),
        conn("outgoing", "DATAFUSION", "N2:3"),
        conn("loopback", "GENERAL", "N1:1"),
        conn("incoming", "GOSSIP", "N2:3"),
        conn("incoming", "GENERAL", "N2:3"),
    ];
    let once: Vec<_> = connections.iter().map(|c| (c.clone(), 1u64)).collect();
    for name in [
        "restate.network.connection.opened.total",
        "restate.network.connection_created.total",
        "restate.network.connection.closed.total",
        "restate.network.connection_dropped.total",
    ] {
        counters(&m, name, &once);
    }
    let once_h: Vec<_> = connections.iter().map(|c| (c.clone(), 1usize)).collect();
    histogram_counts(&m, "restate.network.connection.duration.seconds", &once_h);
    histogram_counts(
        &m,
        "restate.network.permit_acquisition.duration.seconds",
        &[
            (conn("outgoing", "GENERAL", "N2:3"), 12),
            (conn("loopback", "GENERAL", "N1:1"), 3),
            (conn("outgoing", "BIFROST_DATA", "N3:1"), 1),
            (conn("outgoing", "DATAFUSION", "N2:3"), 8),
        ],
    );

    // ---- discovery ----
    let outcomes = [
        (l(&[("outcome", "success")]), 3),
        (l(&[("outcome", "permanent_failure")]), 1),
        (l(&[("outcome", "retryable_exhausted")]), 2),
    ];
    counters(&m, "restate.deployment.discovery.attempts.total", &outcomes);
    let outcome_counts: Vec<_> = outcomes
        .iter()
        .map(|(l, n)| (l.clone(), *n as usize))
        .collect();
    histogram_counts(
        &m,
        "restate.deployment.discovery.duration.seconds",
        &outcome_counts,
    );
    counters(
        &m,
        "restate.deployment.discovery.retries.total",
        &[
            (l(&[("reason", "server_error")]), 5),
            (l(&[("reason", "rate_limited")]), 1),
            (l(&[("reason", "body_error")]), 1),
            (l(&[("reason", "connection")]), 4),
        ],
    );
}

/// The families and label keys match `seed-metrics.toml` itself, where the shared folder is
/// beside the repository (it is on developers' machines and in CI).
#[test]
fn families_match_the_seed_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed-metrics.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "NOTE: {} not found; checked against the built-in table only",
            path.display()
        );
        return;
    };
    let mut seed: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let value = |l: &str| l.split_once('=').map(|(_, v)| v.trim().to_owned());
        if line.starts_with("name") {
            seed.push((
                value(line).unwrap().trim_matches('"').to_owned(),
                Vec::new(),
            ));
        } else if line.starts_with("labels") {
            let v = value(line).unwrap();
            seed.last_mut().unwrap().1 = v
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
    }
    let ours: Vec<(String, Vec<String>)> = FAMILIES
        .iter()
        .map(|(n, r, _)| (n.to_string(), r.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(seed, ours);
    // And the layer declares exactly these families.
    let layer = builder().build().expect("a valid configuration");
    let mut declared = layer.metric_names();
    declared.sort();
    let mut expected: Vec<String> = FAMILIES.iter().map(|(n, _, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(declared, expected);
}

/// The standard scenario's Prometheus exposition, rendered by the exporter the example uses.
fn standard_exposition() -> String {
    let b = builder();
    let probe = b.clone().build().expect("a valid configuration");
    let recorder = exporter::prometheus_builder(&probe)
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    let layer = b
        .with_recorder(Arc::new(recorder))
        .build()
        .expect("a valid configuration");
    run_standard(layer);
    handle.render()
}

#[test]
fn exposition_has_histograms_in_seconds_help_and_passes_promtool() {
    let text = standard_exposition();
    let samples = exposition::parse(&text);
    // 27 families, each with help text, and the layer's three health counters (overflow,
    // truncated, and values rejected for the two gauges measuring a field), registered at 0
    // and described; histograms as histograms (never summaries).
    let health = [OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC];
    let helped: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        helped.iter().filter(|n| !health.contains(*n)).count(),
        27,
        "{text}"
    );
    assert_eq!(
        helped.iter().filter(|n| health.contains(*n)).count(),
        3,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("# HELP ")).count(),
        30,
        "one help line per family: {text}"
    );
    assert!(
        !text.contains(" summary\n"),
        "a histogram was rendered as a summary"
    );
    let histograms = text
        .lines()
        .filter(|l| l.starts_with("# TYPE ") && l.ends_with(" histogram"))
        .count();
    assert_eq!(histograms, 10);
    // Second-based buckets: the OpenTelemetry boundaries, 5 ms to 10 s.
    let rpc = exposition::buckets(&samples, "restate_network_rpc_duration_seconds");
    let bounds: Vec<f64> = rpc.iter().map(|(le, _)| *le).collect();
    assert_eq!(bounds.first(), Some(&0.005));
    assert!(bounds.contains(&10.0) && bounds.last() == Some(&f64::INFINITY));
    assert_eq!(rpc.last().map(|(_, c)| *c), Some(28.0));
    // Counters end in `_total`, exactly once.
    for l in text
        .lines()
        .filter(|l| l.starts_with("# TYPE ") && l.ends_with(" counter"))
    {
        let name = l.split(' ').nth(2).unwrap();
        assert!(
            name.ends_with("_total") && !name.ends_with("_total_total"),
            "{name}"
        );
    }

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && report.trim().is_empty(),
                "promtool check metrics reported problems:\n{report}"
            );
            eprintln!(
                "promtool check metrics: no problem in {} lines",
                text.lines().count()
            );
        }
        Err(e) => example_bin::skip_or_fail(&format!("promtool cannot be run ({e})")),
    }
}
