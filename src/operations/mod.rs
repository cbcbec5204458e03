//! From rules to operations: Prometheus recording rules, multi-window multi-burn-rate alerts and
//! a Grafana dashboard, generated from the same configuration the layer is built from.
//!
//! Every name in the generated PromQL is the exported name the layer registers (see the crate's
//! "Exported names"), derived by the same code, so the rules and panels follow the
//! configuration as it changes.
//!
//! ```
//! use tracing_spanmetrics::operations::{DashboardOptions, Operations, RuleOptions};
//! use tracing_spanmetrics::{Label, Metric, Objective, SpanMetrics, Spans};
//!
//! let builder = SpanMetrics::builder()
//!     .metric(
//!         Metric::histogram("rpc.duration.seconds")
//!             .spans(Spans::named("rpc"))
//!             .label(Label::outcome("result")),
//!     )
//!     .objective(Objective::availability("rpc-availability", "rpc.duration.seconds"));
//! let ops = Operations::new(&builder)?;
//! let rules: String = ops.rules(&RuleOptions::default()); // a Prometheus rule file (YAML)
//! let dashboard: String = ops.dashboard(&DashboardOptions::default()); // Grafana JSON
//! assert!(rules.contains("spanmetrics_objective:error_ratio:rate5m"));
//! assert!(dashboard.contains("rpc_duration_seconds_bucket"));
//! # Ok::<(), tracing_spanmetrics::ConfigError>(())
//! ```
//!
//! The alerts follow the scheme of Google's SRE workbook ("Alerting on SLOs", multiwindow,
//! multi-burn-rate alerts): [`BurnRateAlert`] lists the four.

mod dashboard;
mod promql;
mod rules;

use std::time::Duration;

pub use dashboard::DashboardOptions;
pub use rules::{BurnRateAlert, RuleOptions};

use crate::config::objective::{CheckedObjective, ErrorMatch, check_objectives, outcome_errors};
use crate::config::{
    ConfigError, Measure, MetricKind, SpanMetricsBuilder, Unit, exported_label_key, validate,
};

/// The name of the recorded error ratio over `window` (`5m`, `1h`, …) of every objective,
/// told apart by its `objective` label.
pub const ERROR_RATIO_RECORD: &str = "spanmetrics_objective:error_ratio";
/// The name of the burn-rate alerts (told apart by `objective`, `severity` and the windows).
pub const BURN_RATE_ALERT: &str = "ErrorBudgetBurn";

/// What a family's values mean, for picking its panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A count of calls (a counter).
    Calls,
    /// Call durations (a histogram of wall, busy, idle or self time).
    Durations,
    /// Time to a milestone event (time to first byte).
    Milestone,
    /// Spans in flight (a gauge).
    InFlight,
    /// Any other value.
    Other,
}

/// A declared family, as generation sees it.
#[derive(Debug, Clone)]
struct Family {
    declared: String,
    exported: String,
    kind: MetricKind,
    unit: Unit,
    description: Option<String>,
    /// Exported label keys.
    labels: Vec<String>,
    role: Role,
    /// The family's outcome label at its error value, if it has one.
    errors: Option<ErrorMatch>,
}

impl Family {
    /// The series that counts calls: a counter itself, a histogram's `_count`.
    fn calls_series(&self) -> Option<String> {
        match self.kind {
            MetricKind::Counter => Some(self.exported.clone()),
            MetricKind::Histogram => Some(format!("{}_count", self.exported)),
            MetricKind::Gauge => None,
        }
    }
}

/// A configuration's families and objectives, validated: generates the rules and the
/// dashboard.
#[derive(Debug, Clone)]
pub struct Operations {
    families: Vec<Family>,
    objectives: Vec<CheckedObjective>,
}

impl Operations {
    /// Validates `builder`'s rules and objectives as
    /// [`build`](SpanMetricsBuilder::build) would.
    ///
    /// # Errors
    /// The first problem with a rule, a setting or an objective.
    pub fn new(builder: &SpanMetricsBuilder) -> Result<Self, ConfigError> {
        let validated = validate(builder)?;
        let objectives = check_objectives(
            &builder.objectives,
            &validated.families,
            &builder.rules,
            &validated.family_of,
        )?;
        let families = validated
            .families
            .iter()
            .enumerate()
            .map(|(f, d)| Family {
                declared: d.name.clone(),
                exported: d.exported.clone(),
                kind: d.kind,
                unit: d.unit,
                description: d.description.clone(),
                labels: d.label_keys.iter().map(|k| exported_label_key(k)).collect(),
                role: match (d.kind, builder.rules[d.first_rule].effective_measure()) {
                    (MetricKind::Counter, _) => Role::Calls,
                    (_, Measure::TimeToEvent(_)) => Role::Milestone,
                    (_, Measure::InFlight | Measure::InFlightAfter(_)) => Role::InFlight,
                    (MetricKind::Histogram, m) if m.is_duration() => Role::Durations,
                    _ => Role::Other,
                },
                errors: outcome_errors(&builder.rules, &validated.family_of, f),
            })
            .collect();
        Ok(Operations {
            families,
            objectives,
        })
    }

    /// The Prometheus rule file (YAML): every objective's recorded error ratios and its four
    /// burn-rate alerts. Load it with `rule_files:` in `prometheus.yml`.
    #[must_use]
    pub fn rules(&self, options: &RuleOptions) -> String {
        rules::render(self, options)
    }

    /// The Grafana dashboard (JSON): one row per family, the objectives' budgets and burn
    /// rates beside their families, and the layer's health counters. Its budget and burn-rate
    /// panels read the recorded ratios of [`rules`](Operations::rules).
    #[must_use]
    pub fn dashboard(&self, options: &DashboardOptions) -> String {
        dashboard::render(self, options)
    }

    /// The names of the objectives, in declaration order.
    pub fn objective_names(&self) -> impl Iterator<Item = &str> {
        self.objectives.iter().map(|o| o.objective.name())
    }
}

/// `d` as Prometheus writes durations.
fn duration(d: Duration) -> String {
    crate::config::objective::prometheus_duration(d)
}
