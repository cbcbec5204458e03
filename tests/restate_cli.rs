//! The `restate` example as a command: `--once`, `--help`, a taken port, a bad flag, and a short
//! `--duration` run that serves `/metrics` and drains.
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use example_bin::{Killed, free_port, get, poll, restate_binary};
use tracing_spanmetrics::{OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC};

/// The exported names of the shipped configuration's families, read from the file itself: each
/// declared name already ends with its unit's suffix (`.seconds`, `.total`, …), so the exported
/// name is the declared one with `.` turned into `_` (asserted, so a name that would get a
/// suffix appended cannot slip through).
fn shipped_family_names() -> Vec<String> {
    let text = std::fs::read_to_string(SHIPPED).expect("the shipped configuration");
    let table: toml::Table = text.parse().expect("the shipped configuration is TOML");
    let mut names: Vec<String> = table["metric"]
        .as_array()
        .expect("[[metric]] tables")
        .iter()
        .map(|m| {
            let name = m["name"].as_str().expect("each metric has a name");
            let kind = m["kind"].as_str().expect("each metric has a kind");
            let suffixed = match kind {
                "counter" => name.ends_with(".total"),
                "histogram" => name.ends_with(".seconds") || name.ends_with(".bytes"),
                _ => true,
            };
            assert!(suffixed, "{name} ({kind}) would get a suffix appended");
            name.replace('.', "_")
        })
        .collect();
    // Two rules may feed one family (`restate.invoker.tasks.total` is declared twice).
    names.sort_unstable();
    names.dedup();
    names
}

/// The example's configuration exports 27 families, each described under the name the
/// shipped file declares; besides them the layer describes its health counters, registered at
/// 0: overflow for every family, truncated always, values rejected because two gauges measure
/// a field (`throttling_balance`, `concurrency_limit`); no label has a value limit, so no
/// label overflow.
fn assert_the_27_families_and_the_health_counters(text: &str) {
    let health = [OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC];
    let mut described: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    described.sort_unstable();
    let (seen, seed): (Vec<&str>, Vec<&str>) =
        described.into_iter().partition(|n| health.contains(n));
    let mut want = health.to_vec();
    want.sort_unstable();
    assert_eq!(seen, want, "the health counters:\n{text}");
    let declared = shipped_family_names();
    assert_eq!(
        declared.len(),
        27,
        "the shipped file declares the 27 seed families"
    );
    assert_eq!(seed, declared, "the families described:\n{text}");
}

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
    assert_the_27_families_and_the_health_counters(&text);
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

// ---- `--config` and `--otel` ----------------------------------------------------------------

/// The shipped configuration file.
const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/restate/spanmetrics.toml"
);

/// Writes `text` to a file of this test's own, under Cargo's temporary directory for tests.
fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("restate-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("a writable temporary directory");
    path
}

/// Runs the example with `--config path --once`: it must exit 2 with exactly `expected`, one
/// line, on stderr and nothing on stdout.
fn assert_config_error(path: &std::path::Path, expected: &str) {
    let out = Command::new(restate_binary())
        .arg("--config")
        .arg(path)
        .arg("--once")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err, format!("{expected}\n"));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn help_lists_config_and_otel() {
    let out = Command::new(restate_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--config PATH", "--otel"] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

#[test]
fn a_valid_copy_of_the_config_file_gives_the_27_families() {
    let copy = config_file("copy", &std::fs::read_to_string(SHIPPED).unwrap());
    let out = Command::new(restate_binary())
        .arg("--config")
        .arg(&copy)
        .arg("--once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_the_27_families_and_the_health_counters(&text);
    assert!(text.contains("restate_network_rpc_duration_seconds_bucket{"));
}

#[test]
fn a_different_config_file_changes_the_families() {
    let one = config_file(
        "one",
        r#"
[[metric]]
name = "rpc.calls.total"
kind = "counter"
spans = "rpc"
labels = ["swimlane", { key = "result", source = "outcome" }]
"#,
    );
    let out = Command::new(restate_binary())
        .arg("--config")
        .arg(&one)
        .arg("--once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\nrpc_calls_total{swimlane=\"GENERAL\""),
        "{text}"
    );
    assert!(!text.contains("restate_"), "{text}");
}

#[test]
fn bad_buckets_are_one_line_with_file_line_and_column() {
    let path = config_file(
        "buckets",
        r#"# a comment line
[[metric]]
name = "rpc.duration.seconds"
kind = "histogram"
spans = "rpc"
buckets = [1, 1]
"#,
    );
    // The problem is located at the offending key.
    assert_config_error(
        &path,
        &format!(
            "error: {}:6:1: rule #0 (`rpc.duration.seconds`): bucket boundaries must be \
             strictly increasing, but 1 is followed by 1",
            path.display()
        ),
    );
}

#[test]
fn bad_buckets_in_a_copy_of_the_shipped_file_name_the_rule() {
    let shipped = std::fs::read_to_string(SHIPPED).unwrap();
    let anchor = "name = \"restate.network.rpc.duration.seconds\"\n";
    let at = shipped.find(anchor).expect("the rpc rule");
    // The line of the rule's `[[metric]]` header, just above its name; the inserted `buckets`
    // line, where the error points, comes right after the name.
    let header_line = shipped[..at].lines().count();
    assert_eq!(shipped.lines().nth(header_line - 1), Some("[[metric]]"));
    let buckets_line = header_line + 2;
    let broken = shipped.replacen(anchor, &format!("{anchor}buckets = [1, 1]\n"), 1);
    let path = config_file("shipped-buckets", &broken);
    assert_config_error(
        &path,
        &format!(
            "error: {}:{buckets_line}:1: rule #18 (`restate.network.rpc.duration.seconds`): \
             bucket boundaries must be strictly increasing, but 1 is followed by 1",
            path.display()
        ),
    );
}

#[test]
fn a_toml_syntax_error_is_one_line_with_file_line_and_column() {
    let path = config_file(
        "syntax",
        "[[metric]]\nname = \"rpc.duration.seconds\"\nkind = \"histogram\"\nlabels = [\"swimlane\"\n",
    );
    assert_config_error(
        &path,
        &format!(
            "error: {}:4:21: unclosed array, expected `]`",
            path.display()
        ),
    );
}

#[test]
fn a_missing_config_file_is_one_line() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-spanmetrics.toml");
    let out = Command::new(restate_binary())
        .arg("--config")
        .arg(&path)
        .arg("--once")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot read {}", path.display())),
        "{err}"
    );
}

/// The `count` samples of a histogram family, summed, for the series whose labels contain
/// `with` (all series when empty).
fn count_of(exposition: &str, family: &str, with: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{family}_count{{")) && l.contains(with))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn once_with_otel_prints_span_lines_on_stderr_and_the_exposition_on_stdout() {
    let out = Command::new(restate_binary())
        .args(["--once", "--otel"])
        .output()
        .expect("the example runs");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8(out.stdout).unwrap();
    // Stdout is the exposition alone: the same 27 families.
    assert_the_27_families_and_the_health_counters(&text);
    // Samples are the families' and the health counters' (named exactly, then labels or value).
    let health_sample = |l: &str| {
        [OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC]
            .iter()
            .any(|n| {
                l.strip_prefix(n)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
    };
    assert!(
        text.lines().all(|l| l.starts_with('#')
            || l.starts_with("restate_")
            || health_sample(l)
            || l.is_empty()),
        "{text}"
    );
    // Stderr: one line per finished span, for the same spans.
    let rpc: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("otel span rpc "))
        .collect();
    assert!(!rpc.is_empty(), "no rpc span lines:\n{err}");
    for l in &rpc {
        assert!(
            l.contains(" kind=internal ") && l.contains(" status=") && l.ends_with("ms"),
            "{l}"
        );
    }
    // Both sides saw the same RPCs, and agree on which failed.
    let family = "restate_network_rpc_duration_seconds";
    assert_eq!(rpc.len() as u64, count_of(&text, family, ""));
    assert_eq!(
        rpc.iter().filter(|l| l.contains(" status=error")).count() as u64,
        count_of(&text, family, "result=\"error\"")
    );
    for span in ["invocation_task", "connection", "discovery"] {
        assert!(
            err.contains(&format!("otel span {span} ")),
            "no {span} span lines:\n{err}"
        );
    }
}
