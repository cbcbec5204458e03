//! Hostile field values: the exposition stays valid, values are bounded, nothing panics; and
//! numeric fields that are NaN, infinite, negative or huge behave as documented.

mod common;
#[path = "common/example_bin.rs"]
mod example_bin;

#[cfg(feature = "prometheus")]
use std::sync::Arc;

use common::Harness;
use tracing::field::Empty;
use tracing_spanmetrics::{
    EventMatch, Metric, REJECTED_METRIC, SpanMetrics, SpanMetricsBuilder, Spans, TRUNCATED_METRIC,
    Unit,
};
#[cfg(feature = "prometheus")]
use tracing_subscriber::prelude::*;

fn hostile_values() -> Vec<String> {
    vec![
        r#"quo"te"#.into(),
        r"back\slash".into(),
        "new\nline".into(),
        "carriage\rreturn".into(),
        "brace}".into(),
        "eq=ual".into(),
        "nul\0byte".into(),
        "tab\tbed".into(),
        "\u{200F}rtl\u{202E}override".into(),
        "emoji 🦀🔥".into(),
        "nonchar\u{FFFE}\u{FFFF}".into(),
        "{a=\"b\"} 1\n# HELP x y".into(),
        "x".repeat(1 << 20),
        "é".repeat(1 << 19),
        String::new(),
    ]
}

fn builder() -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::counter("hostile.total")
                .describe("Spans with hostile labels \"quoted\" \\ and\nnewlines")
                .spans(Spans::named("h"))
                .label("v"),
        )
        .metric(
            Metric::histogram("hostile.duration.seconds")
                .describe("Durations with hostile labels")
                .spans(Spans::named("h"))
                .label("v"),
        )
}

/// Renders the hostile workload through the real Prometheus exporter.
#[cfg(feature = "prometheus")]
fn exposition() -> String {
    let recorder = tracing_spanmetrics::exporter::prometheus_builder(&builder())
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let layer = builder().with_recorder(Arc::new(recorder)).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for v in hostile_values() {
            drop(tracing::info_span!("h", v = v.as_str()));
            // Debug formatting of the same value (quotes and escapes added by `{:?}`).
            drop(tracing::info_span!("h", v = ?v));
            let s = tracing::info_span!("h", v = Empty);
            s.record("v", v.as_str());
        }
    });
    handle.run_upkeep();
    handle.render()
}

#[test]
#[cfg(feature = "prometheus")]
fn label_values_are_bounded_and_the_exposition_parses() {
    let text = exposition();
    let mut counted = 0u64;
    for line in text.lines().filter(|l| l.starts_with("hostile_total{")) {
        // Escaping may lengthen a value; the raw value is at most 128 bytes.
        let value = &line["hostile_total{v=\"".len()..line.rfind("\"}").unwrap()];
        assert!(value.len() <= 2 * 128, "{} bytes: {value}", value.len());
        assert!(!value.contains('\n'));
        counted += line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    }
    // Every span was counted on some rendered series: three spans per hostile value.
    assert_eq!(counted, 3 * hostile_values().len() as u64, "{text}");
    // Every sample line is `name{labels} value` with a parseable value.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad line: {line:?}"
        );
    }
    match promtool_check(&text) {
        Some(report) => assert_eq!(report, "", "promtool reported problems"),
        None => example_bin::skip_or_fail("promtool is not installed"),
    }
}

#[test]
fn counts_survive_truncation_exactly() {
    let mut h = Harness::new(builder());
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        for v in hostile_values() {
            drop(tracing::info_span!("h", v = v.as_str()));
        }
    });
    let m = h.snapshot();
    let total: u64 = m
        .series
        .iter()
        .filter(|(k, _)| k.name() == "hostile_total")
        .map(|(_, v)| match v {
            common::Value::Counter(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(total, hostile_values().len() as u64);
    // The two long values were cut: 128 ASCII bytes, and 64 two-byte characters.
    assert_eq!(
        m.counter("hostile.total", &[("v", &"x".repeat(128))]),
        Some(1)
    );
    assert_eq!(
        m.counter("hostile.total", &[("v", &"é".repeat(64))]),
        Some(1)
    );
    assert_eq!(m.counter(TRUNCATED_METRIC, &[]), Some(2));
    for (key, _) in &m.series {
        for l in key.labels() {
            assert!(l.value().len() <= 128);
        }
    }
}

#[test]
fn numeric_fields_that_are_nan_infinite_negative_or_huge() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("size.bytes")
                    .unit(Unit::Bytes)
                    .event_field(EventMatch::message("size"), "n"),
            )
            .metric(Metric::gauge("level").event_field(EventMatch::message("size"), "n"))
            .metric(Metric::counter("added.total").event_field(EventMatch::message("size"), "n")),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        tracing::info!(n = f64::NAN, "size");
        tracing::info!(n = f64::INFINITY, "size");
        tracing::info!(n = -3i64, "size");
        tracing::info!(n = u64::MAX, "size");
        tracing::info!(n = 1e300, "size");
        tracing::info!(n = u128::MAX, "size");
        tracing::info!(n = "12", "size");
        tracing::info!(n = "twelve", "size");
        tracing::info!(n = true, "size");
    });
    let m = h.snapshot();
    // Histograms take every finite number; NaN, ±Inf and text that is no number are refused.
    assert_eq!(
        m.histogram("size.bytes", &[]),
        Some(vec![
            -3.0,
            u64::MAX as f64,
            1e300,
            u128::MAX as f64,
            12.0,
            1.0
        ])
    );
    // A gauge also takes ±Inf; it reads the last value.
    assert_eq!(m.gauge("level", &[]), Some(1.0));
    // A counter takes non-negative numbers up to 2^53: "12" and `true`.
    assert_eq!(m.counter("added.total", &[]), Some(13));
    let rejected = |metric: &str, reason: &str| {
        m.counter(REJECTED_METRIC, &[("metric", metric), ("reason", reason)])
    };
    assert_eq!(rejected("size_bytes", "not_a_number"), Some(2));
    assert_eq!(rejected("size_bytes", "not_finite"), Some(1));
    assert_eq!(rejected("level", "not_a_number"), Some(2));
    assert_eq!(rejected("added_total", "not_a_number"), Some(2));
    assert_eq!(rejected("added_total", "not_finite"), Some(1));
    assert_eq!(rejected("added_total", "negative"), Some(1));
    assert_eq!(rejected("added_total", "too_large"), Some(3));
}

/// `promtool check metrics` on `text`: its report (empty when clean), or `None` without promtool.
pub fn promtool_check(text: &str) -> Option<String> {
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
    Some(if out.status.success() {
        report.trim().to_owned()
    } else {
        format!("exit {}: {report}", out.status)
    })
}

/// Serves `text` as the exposition to any GET on a loopback port, until the test ends.
#[cfg(feature = "prometheus")]
fn serve(text: String) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(text.as_bytes());
        }
    });
    addr
}

#[test]
#[cfg(feature = "prometheus")]
fn a_real_prometheus_ingests_the_hostile_exposition() {
    use example_bin::{poll, query};
    use std::process::Command;
    use std::time::Duration;
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        example_bin::skip_or_fail("the `prometheus` server is not installed");
        return;
    }
    let text = exposition();
    let series = text
        .lines()
        .filter(|l| l.starts_with("hostile_total{"))
        .count();
    assert!(series > 10, "the workload made {series} series");
    let target = serve(text);
    let dir = std::env::temp_dir().join(format!("spanmetrics-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (prometheus, _prometheus) = example_bin::start_prometheus(&dir, "hostile", target);
    // Every series of the hostile family is ingested, and the scrape reported no error.
    let ingested = poll(Duration::from_secs(60), Duration::from_millis(500), || {
        let up = query(prometheus, "up{job=\"hostile\"}")?;
        let count = query(prometheus, "count(hostile_total)")?;
        (up == [1.0] && count == [series as f64]).then_some(count)
    });
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ingested.is_some(),
        "Prometheus did not ingest {series} series within 60 s; its log:\n{log}"
    );
}

/// The same refusals through `span_field`, as `Measure::SpanField` documents them: one span per
/// value, so each rule sees each value once at close (the gauge whenever it is recorded).
#[test]
fn numeric_span_fields_that_are_nan_infinite_negative_or_huge() {
    let mut h = Harness::new(
        SpanMetrics::builder()
            .metric(
                Metric::histogram("span.size.bytes")
                    .unit(Unit::Bytes)
                    .spans(Spans::named("s"))
                    .span_field("n"),
            )
            .metric(
                Metric::gauge("span.level")
                    .spans(Spans::named("s"))
                    .span_field("n"),
            )
            .metric(
                Metric::counter("span.added.total")
                    .spans(Spans::named("s"))
                    .span_field("n"),
            ),
    );
    let d = h.dispatch();
    tracing::dispatcher::with_default(&d, || {
        drop(tracing::info_span!("s", n = f64::NAN));
        drop(tracing::info_span!("s", n = f64::NEG_INFINITY));
        drop(tracing::info_span!("s", n = -3i64));
        drop(tracing::info_span!("s", n = u64::MAX));
        drop(tracing::info_span!("s", n = "12"));
        drop(tracing::info_span!("s", n = "twelve"));
        // Recorded later: the final value counts.
        let late = tracing::info_span!("s", n = Empty);
        late.record("n", 5u64);
        late.record("n", 7u64);
        drop(late);
    });
    let m = h.snapshot();
    // Histograms take every finite value, negative ones included.
    assert_eq!(
        m.histogram("span.size.bytes", &[]),
        Some(vec![-3.0, u64::MAX as f64, 12.0, 7.0])
    );
    // The gauge takes -Inf too and reads the last value set.
    assert_eq!(m.gauge("span.level", &[]), Some(7.0));
    // The counter: 12 + 7; -3 is negative, u64::MAX too large.
    assert_eq!(m.counter("span.added.total", &[]), Some(19));
    let rejected = |metric: &str, reason: &str| {
        m.counter(REJECTED_METRIC, &[("metric", metric), ("reason", reason)])
    };
    assert_eq!(rejected("span_size_bytes", "not_a_number"), Some(2));
    assert_eq!(rejected("span_size_bytes", "not_finite"), Some(1));
    assert_eq!(rejected("span_level", "not_a_number"), Some(2));
    assert_eq!(rejected("span_added_total", "not_a_number"), Some(2));
    assert_eq!(rejected("span_added_total", "not_finite"), Some(1));
    assert_eq!(rejected("span_added_total", "negative"), Some(1));
    assert_eq!(rejected("span_added_total", "too_large"), Some(1));
}
