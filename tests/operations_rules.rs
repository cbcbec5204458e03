//! The generated Prometheus rules, checked by Prometheus's own `promtool`: `promtool check
//! rules` accepts them, and `promtool test rules` runs the unit tests of
//! `tests/promtool/burn_rates.test.yml` against them (generated here, at run time, from the
//! same code users call, so the two cannot drift). The unit tests feed synthetic series at
//! chosen error rates and prove that each burn-rate alert fires at its rate within its `for`
//! time, and stays silent below it.
//!
//! Needs Debian's `prometheus` package (it ships promtool); see `example_bin::skip_or_fail`.

#[path = "common/example_bin.rs"]
mod example_bin;

use std::path::{Path, PathBuf};
use std::process::Command;

use example_bin::skip_or_fail;
use tracing_spanmetrics::operations::{Operations, RuleOptions};
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

#[test]
#[ignore = "prints the rules the unit tests are written against"]
fn print_rules() {
    print!("{}", operations().rules(&RuleOptions::default()));
}
