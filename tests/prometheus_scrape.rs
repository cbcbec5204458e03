//! A real Prometheus server scrapes the running `restate` example on loopback; its HTTP API then
//! answers a counter's `rate(...)` and a duration's `histogram_quantile(0.99, ...)` with numbers.
//!
//! Needs Debian's `prometheus` package (`.ci/run` installs it). Without it the test fails under
//! CI (`CI=true`) and prints a loud SKIPPED line elsewhere (see `example_bin::skip_or_fail`).
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use example_bin::{
    Killed, free_port, get, poll, query, restate_binary, skip_or_fail, start_prometheus,
};

#[test]
fn prometheus_scrapes_the_example_and_answers_rate_and_quantile() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("the `prometheus` server is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("spanmetrics-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // The example, serving on a free loopback port (bounded: it stops by itself after 5 min).
    let example: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _example = Killed(
        Command::new(restate_binary())
            .args(["--listen", &example.to_string(), "--duration", "300"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts"),
        "restate example",
    );
    let up = poll(Duration::from_secs(30), Duration::from_millis(200), || {
        get(example, "/metrics").ok().filter(|(s, _)| *s == 200)
    });
    assert!(
        up.is_some(),
        "the example did not serve /metrics on {example} within 30 s"
    );

    // Prometheus, scraping it every second.
    let (prometheus, _prometheus) = start_prometheus(&dir, "restate", example);

    let rate = "sum(rate(restate_invoker_tasks_total{status=\"started\"}[15s]))";
    let p99 = "histogram_quantile(0.99, sum by (le) (rate(restate_network_rpc_duration_seconds_bucket[15s])))";
    let ttfb = "histogram_quantile(0.99, sum by (le) (rate(restate_invoker_http_request_duration_seconds_bucket[15s])))";
    let answers = poll(Duration::from_secs(90), Duration::from_secs(1), || {
        let up = query(prometheus, "up{job=\"restate\"}")?;
        if up != [1.0] {
            return None;
        }
        let r = query(prometheus, rate)?;
        let q = query(prometheus, p99)?;
        let t = query(prometheus, ttfb)?;
        match (&r[..], &q[..], &t[..]) {
            (&[r], &[q], &[t])
                if r > 0.0 && q.is_finite() && q > 0.0 && t.is_finite() && t > 0.0 =>
            {
                Some((r, q, t))
            }
            _ => None,
        }
    });
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let Some((r, q, t)) = answers else {
        panic!("Prometheus did not answer numbers within 90 s; its log:\n{log}");
    };
    eprintln!("Prometheus: {rate} = {r:.2}/s");
    eprintln!("Prometheus: {p99} = {:.1} ms", q * 1e3);
    eprintln!("Prometheus: {ttfb} = {:.1} ms", t * 1e3);
    // Plausible values: tasks start at tens per second; durations are below ten seconds.
    assert!(r > 1.0, "task start rate {r}");
    assert!(q < 10.0 && t < 10.0, "p99 rpc {q} s, p99 ttfb {t} s");
}
