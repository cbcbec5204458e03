//! The `basic` example (the README's first snippet) with `--once`: it exits zero and prints the
//! exposition of its three spans under the exported names.
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::process::Command;

#[test]
fn once_prints_the_readme_metrics_and_exits_zero() {
    // A free port rather than 9000: other tests and programs on this machine may hold it.
    let addr = format!("127.0.0.1:{}", example_bin::free_port());
    let out = Command::new(example_bin::example_binary("basic"))
        .args(["--once", &addr])
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "# TYPE rpc_responses_total counter",
        "rpc_responses_total{status=\"503\"} 1",
        "# TYPE rpc_in_flight gauge",
        "rpc_in_flight{swimlane=\"GENERAL\"} 0",
        "# HELP rpc_duration_seconds One RPC, from call to reply",
        "# TYPE rpc_duration_seconds histogram",
        "rpc_duration_seconds_bucket{swimlane=\"GENERAL\",result=\"success\",le=\"+Inf\"} 3",
        "rpc_duration_seconds_count{swimlane=\"GENERAL\",result=\"success\"} 3",
    ] {
        assert!(lines.contains(&want), "no line {want:?} in:\n{text}");
    }
    // Only the 503 is counted: 200 and 204 are 2xx.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("rpc_responses_total{"))
            .count(),
        1,
        "{text}"
    );
}
