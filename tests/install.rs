//! `exporter::install_on_loopback`: the global recorder, with buckets, serving `/metrics` on
//! 127.0.0.1:9000 (a process of its own: the global recorder can be set once).
#![cfg(feature = "prometheus")]

use std::io::{Read, Write};

use tracing_spanmetrics::{Metric, SpanMetrics, Spans, exporter};
use tracing_subscriber::prelude::*;

fn get_metrics() -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect("127.0.0.1:9000")?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_on_loopback_with_buckets() {
    if std::net::TcpListener::bind("127.0.0.1:9000").is_err() {
        // Under CI the port must be free: a skip there would hide a broken install.
        assert!(
            !std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false")),
            "127.0.0.1:9000 is taken by another process; CI needs it free for this test"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: 127.0.0.1:9000 is taken by another process ***\n"
        );
        return;
    }
    let layer = SpanMetrics::builder()
        .metric(
            Metric::histogram("job.duration.seconds")
                .describe("Jobs")
                .spans(Spans::named("job")),
        )
        .build()
        .unwrap();
    exporter::install_on_loopback(&layer).unwrap();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    drop(tracing::info_span!("job"));
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(text) = tokio::task::spawn_blocking(get_metrics).await.unwrap() {
            if text.contains("job_duration_seconds_count") {
                body = text;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("# HELP job_duration_seconds Jobs\n"),
        "{body}"
    );
    assert!(
        body.contains("job_duration_seconds_bucket{le=\"0.005\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("job_duration_seconds_count 1\n"), "{body}");
}
