//! The flagship example with `--otel`, scraped by a real Prometheus with exemplar storage on
//! loopback (OpenMetrics negotiated): the exemplars Prometheus stores for the time-to-first-byte
//! and RPC duration histograms link to traces the example exported (it prints each finished
//! span's trace id on stderr), `up` is 1, and Prometheus stores the series a classic-format
//! scrape shows.

#[path = "common/example_bin.rs"]
mod example_bin;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_bin::{
    Killed, encode, free_port, get, poll, query, restate_binary, skip_or_fail,
    start_prometheus_with,
};

/// Samples per metric name in a classic exposition.
fn per_name(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = l.split(['{', ' ']).next().unwrap().to_owned();
        *out.entry(name).or_default() += 1;
    }
    out
}

#[test]
fn prometheus_stores_exemplars_linking_to_the_example_traces() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("prometheus is not installed");
        return;
    }
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = Command::new(restate_binary())
        .args([
            "--otel",
            "--listen",
            &listen.to_string(),
            "--duration",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let stderr = child.stderr.take().unwrap();
    let _example = Killed(child, "restate");
    // Every trace id the example exported, from its stderr.
    let exported: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    std::thread::spawn({
        let exported = exported.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(id) = line
                    .strip_prefix("otel span ")
                    .and_then(|l| l.split(" trace_id=").nth(1))
                    .and_then(|l| l.split(' ').next())
                {
                    exported.lock().unwrap().insert(id.to_owned());
                }
            }
        }
    });
    let ready = poll(Duration::from_secs(60), Duration::from_millis(200), || {
        get(listen, "/metrics").ok().filter(|(s, _)| *s == 200)
    });
    assert!(ready.is_some(), "the example never served /metrics");

    let dir = std::env::temp_dir().join(format!(
        "spanmetrics-exemplars-example-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (prom, _prometheus) = start_prometheus_with(
        &dir,
        "restate",
        listen,
        None,
        &["--enable-feature=exemplar-storage"],
    );
    let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let up = poll(Duration::from_secs(30), Duration::from_millis(250), || {
        query(prom, "up{job=\"restate\"}").filter(|v| v == &[1.0])
    });
    assert_eq!(up, Some(vec![1.0]), "{}", log());

    // The series: what a classic scrape shows before, and after, Prometheus's own scrape.
    let (_, before) = get(listen, "/metrics").unwrap();
    assert!(
        !before.contains("# EOF"),
        "a plain GET is answered in the classic format"
    );
    let before = per_name(&before);
    std::thread::sleep(Duration::from_secs(3));
    let stored: BTreeMap<String, usize> = before
        .keys()
        .map(|name| {
            let n = query(prom, &format!("count({name}{{job=\"restate\"}})"))
                .and_then(|v| v.first().copied())
                .unwrap_or(0.0);
            (name.clone(), n as usize)
        })
        .collect();
    let (_, after) = get(listen, "/metrics").unwrap();
    let after = per_name(&after);
    for (name, n) in &before {
        let stored = stored[name];
        assert!(
            *n <= stored && stored <= after[name],
            "{name}: {n} series in a classic scrape before, {stored} stored, {} after",
            after[name]
        );
    }
    let total = query(prom, "count({job=\"restate\"})").unwrap()[0] as usize;
    // Prometheus's own five series per target (up, scrape_duration_seconds, …).
    assert!(
        total - 5 <= after.values().sum::<usize>(),
        "{total} stored series"
    );

    for family in [
        "restate_invoker_http_request_duration_seconds_bucket",
        "restate_network_rpc_duration_seconds_bucket",
        "restate_invoker_tasks_total",
    ] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            encode(family),
            now - 600,
            now + 600
        );
        let body = poll(Duration::from_secs(20), Duration::from_millis(500), || {
            let (status, body) = get(prom, &path).ok()?;
            (status == 200 && body.contains("\"trace_id\"")).then_some(body)
        })
        .unwrap_or_else(|| panic!("no exemplars for {family}:\n{}", log()));
        let found: BTreeSet<String> = body
            .split("\"trace_id\":\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect();
        // A trace's spans are printed as they end: wait for the lines to be read.
        let linked = poll(Duration::from_secs(10), Duration::from_millis(200), || {
            found.is_subset(&exported.lock().unwrap()).then_some(())
        });
        assert!(
            !found.is_empty() && linked.is_some(),
            "{family}: exemplar trace ids not among the {} exported: {:?}",
            exported.lock().unwrap().len(),
            found
                .difference(&exported.lock().unwrap())
                .collect::<Vec<_>>()
        );
    }
}
