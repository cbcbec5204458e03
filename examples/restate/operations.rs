//! Operations for the example: `--print-rules` and `--print-dashboard` (its objectives as
//! Prometheus rules and a Grafana dashboard), and `--error-burst` (RPCs failing for a while, to
//! watch an objective's budget burn and its alert fire).

use std::time::Duration;

use tracing_spanmetrics::SpanMetricsBuilder;
use tracing_spanmetrics::operations::{BurnRateAlert, DashboardOptions, Operations, RuleOptions};

/// What `--print-rules` and `--print-dashboard` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Print {
    Rules,
    Dashboard,
}

/// The rule file or the dashboard of `builder`'s configuration. `fast_page` (seconds) replaces
/// the fast page alert's `for` and evaluates the groups every second (for tests and demos that
/// cannot wait minutes); the other alerts keep the workbook's.
pub fn render(
    builder: &SpanMetricsBuilder,
    what: Print,
    fast_page: Option<Duration>,
) -> Result<String, tracing_spanmetrics::ConfigError> {
    let ops = Operations::new(builder)?;
    Ok(match what {
        Print::Rules => {
            let mut options = RuleOptions::default();
            if let Some(hold) = fast_page {
                options = options
                    .interval(Duration::from_secs(1))
                    .alert_for(BurnRateAlert::PageFast, hold);
            }
            ops.rules(&options)
        }
        Print::Dashboard => ops.dashboard(&DashboardOptions::default().title("restate")),
    })
}

/// `--error-burst START,LENGTH`: seconds after the workload starts, and for how long.
pub fn parse_burst(v: &str) -> Result<(Duration, Duration), String> {
    let bad = || format!("--error-burst: `{v}` is not START,LENGTH in seconds (like 10,30)");
    let (start, length) = v.split_once(',').ok_or_else(bad)?;
    let secs = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(bad)
    };
    Ok((secs(start)?, secs(length)?))
}

/// Every RPC of the live workload fails from `start` for `length`.
pub fn schedule_burst(start: Duration, length: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(start).await;
        crate::sim::ERROR_BURST.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "error burst: every RPC fails for {} s",
            length.as_secs_f64()
        );
        tokio::time::sleep(length).await;
        crate::sim::ERROR_BURST.store(false, std::sync::atomic::Ordering::Relaxed);
        eprintln!("error burst over");
    });
}
