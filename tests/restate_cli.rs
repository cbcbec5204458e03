//! The `restate` example as a command: `--once`, `--help`, a taken port, a bad flag, and a short
//! `--duration` run that serves `/metrics` and drains.

#[path = "common/example_bin.rs"]
mod example_bin;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use example_bin::{Killed, free_port, get, poll, restate_binary};

#[test]
fn once_prints_the_whole_exposition_and_exits_zero() {
    let start = Instant::now();
    let out = Command::new(restate_binary())
        .arg("--once")
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("# HELP ")).count(),
        27
    );
    assert!(text.contains("restate_network_rpc_duration_seconds_bucket{"));
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn help_lists_the_flags() {
    let out = Command::new(restate_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--listen", "--duration", "--once", "--help"] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

#[test]
fn a_taken_port_is_a_one_line_error_not_a_panic() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(restate_binary())
        .args(["--listen", &addr.to_string(), "--duration", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line, got: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(&addr.to_string()),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn a_bad_flag_is_an_error() {
    let out = Command::new(restate_binary())
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn duration_run_serves_metrics_prints_a_summary_and_drains() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(restate_binary())
        .args(["--listen", &addr.to_string(), "--duration", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child, "restate example");
    let scraped = poll(Duration::from_secs(20), Duration::from_millis(200), || {
        get(addr, "/metrics")
            .ok()
            .filter(|(s, body)| *s == 200 && body.contains("restate_invoker_tasks_total"))
    });
    assert!(scraped.is_some(), "no metrics on {addr}");
    let status = poll(Duration::from_secs(40), Duration::from_millis(200), || {
        child.0.try_wait().ok().flatten()
    })
    .expect("the example stops after --duration and drains");
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("invocations/s"), "a live summary line:\n{out}");
    // After draining, nothing is active, pooled or pending.
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.contains("active   0") && last.contains("pooled  0"),
        "{out}"
    );
}
