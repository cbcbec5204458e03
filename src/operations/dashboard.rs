//! The Grafana dashboard: one row per span family (rate, error ratio, quantiles, in-flight
//! gauges, time to milestones, the family's objectives), then the layer's health counters.

use serde_json::{Value, json};

use crate::config::objective::CheckedObjective;
use crate::config::{MetricKind, OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC, Unit};

use super::promql::{Matcher, budget, recorded_ratio, selector, sum_by};
use super::{BurnRateAlert, Family, Operations, Role};

/// How the dashboard is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardOptions {
    title: String,
    uid: String,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            title: "Span metrics".into(),
            uid: "tracing-spanmetrics".into(),
        }
    }
}

impl DashboardOptions {
    /// The dashboard's title.
    ///
    /// Defaults to `Span metrics`.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The dashboard's uid: Grafana replaces a dashboard of the same uid on import.
    ///
    /// Defaults to `tracing-spanmetrics`.
    #[must_use]
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = uid.into();
        self
    }
}

/// The rate window of every panel: Grafana's `$__rate_interval`.
const RATE: &str = "$__rate_interval";
const WIDTH: u64 = 8;
const HEIGHT: u64 = 8;

/// The data source every panel and variable reads: the dashboard's `datasource` variable.
fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// A query of a panel.
struct Target {
    expr: String,
    legend: String,
}

/// Lays panels out: rows across the whole width, panels three to a line.
struct Layout {
    panels: Vec<Value>,
    next_id: u64,
    x: u64,
    y: u64,
}

impl Layout {
    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.y += HEIGHT;
            self.x = 0;
        }
        let id = self.id();
        self.panels.push(json!({
            "id": id,
            "type": "row",
            "title": title,
            "collapsed": false,
            "panels": [],
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": self.y },
        }));
        self.y += 1;
    }

    fn panel(&mut self, title: &str, description: &str, unit: &str, targets: Vec<Target>) {
        let id = self.id();
        let targets: Vec<Value> = targets
            .into_iter()
            .zip('A'..)
            .map(|(t, ref_id)| {
                json!({
                    "refId": ref_id.to_string(),
                    "datasource": datasource(),
                    "expr": t.expr,
                    "legendFormat": t.legend,
                })
            })
            .collect();
        self.panels.push(json!({
            "id": id,
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": datasource(),
            "gridPos": { "h": HEIGHT, "w": WIDTH, "x": self.x, "y": self.y },
            "targets": targets,
            "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
            "options": {
                "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                "tooltip": { "mode": "multi", "sort": "none" },
            },
        }));
        self.x += WIDTH;
        if self.x >= 24 {
            self.x = 0;
            self.y += HEIGHT;
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The label keys the dashboard offers as variables: those two families or more share (the
/// dimensions that cut across the rows), outcome labels aside (the error panels read them).
fn variables(ops: &Operations) -> Vec<(String, &Family)> {
    let mut keys: Vec<(String, &Family)> = Vec::new();
    for f in &ops.families {
        for key in &f.labels {
            let outcome = ops
                .families
                .iter()
                .any(|g| g.errors.as_ref().is_some_and(|e| &e.key == key));
            let shared = ops
                .families
                .iter()
                .filter(|g| g.labels.contains(key))
                .count()
                >= 2;
            if shared && !outcome && !keys.iter().any(|(k, _)| k == key) {
                keys.push((key.clone(), f));
            }
        }
    }
    keys
}

/// The variable matchers of a series carrying `labels`.
fn var_matchers(labels: &[String], vars: &[(String, &Family)]) -> Vec<Matcher> {
    labels
        .iter()
        .filter(|k| vars.iter().any(|(v, _)| v == *k))
        .map(|k| Matcher::Re(k.clone(), format!("${k}")))
        .collect()
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "s",
        Unit::Bytes => "bytes",
        _ => "short",
    }
}

pub(super) fn render(ops: &Operations, options: &DashboardOptions) -> String {
    let vars = variables(ops);
    let mut layout = Layout {
        panels: Vec::new(),
        next_id: 0,
        x: 0,
        y: 0,
    };
    for (i, f) in ops.families.iter().enumerate() {
        family_row(&mut layout, ops, i, f, &vars);
    }
    health_row(&mut layout);

    let mut templating = vec![json!({
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "current": {},
        "options": [],
    })];
    for (key, f) in &vars {
        let series = f.calls_series().unwrap_or_else(|| f.exported.clone());
        let query = format!("label_values({series}, {key})");
        templating.push(json!({
            "name": key,
            "label": key,
            "type": "query",
            "datasource": datasource(),
            "query": { "query": query, "refId": format!("variable-{key}") },
            "definition": query,
            "includeAll": true,
            "allValue": ".*",
            "multi": true,
            "current": { "selected": true, "text": ["All"], "value": ["$__all"] },
            "options": [],
            "refresh": 2,
            "sort": 1,
            "hide": 0,
        }));
    }
    let dashboard = json!({
        "title": options.title,
        "uid": options.uid,
        "description": "Generated by tracing-spanmetrics from its configuration: one row per span family",
        "tags": ["tracing-spanmetrics"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-1h", "to": "now" },
        "annotations": { "list": [] },
        "templating": { "list": templating },
        "panels": layout.panels,
    });
    let mut text = serde_json::to_string_pretty(&dashboard).expect("JSON values serialise");
    text.push('\n');
    text
}

fn family_row(
    layout: &mut Layout,
    ops: &Operations,
    index: usize,
    f: &Family,
    vars: &[(String, &Family)],
) {
    layout.row(&f.exported);
    let about = f
        .description
        .clone()
        .unwrap_or_else(|| format!("`{}`", f.declared));
    let m = var_matchers(&f.labels, vars);
    if let Some(calls) = f.calls_series() {
        let all = sum_by(&[], &format!("rate({}[{RATE}])", selector(&calls, &m)));
        // A histogram counts calls; a counter may count spans or events.
        let (title, unit) = match f.kind {
            MetricKind::Histogram => ("Request rate", "reqps"),
            _ => ("Rate", "ops"),
        };
        layout.panel(
            title,
            &about,
            unit,
            vec![Target {
                expr: all.clone(),
                legend: "calls/s".into(),
            }],
        );
        if let Some(errors) = &f.errors {
            let mut bad_m = m.clone();
            bad_m.push(Matcher::one_of(&errors.key, &errors.values));
            let bad = sum_by(&[], &format!("rate({}[{RATE}])", selector(&calls, &bad_m)));
            layout.panel(
                "Error ratio",
                &format!("{about}: share of calls whose `{}` says error", errors.key),
                "percentunit",
                vec![Target {
                    expr: format!("({bad} or 0 * {all}) / {all}"),
                    legend: "errors".into(),
                }],
            );
        }
    }
    if f.kind == MetricKind::Histogram {
        let title = match f.role {
            Role::Milestone => "Time to milestone p50 / p95 / p99",
            Role::Durations => "Duration p50 / p95 / p99",
            _ => "p50 / p95 / p99",
        };
        let buckets = selector(&format!("{}_bucket", f.exported), &m);
        let targets = [0.5_f64, 0.95, 0.99]
            .iter()
            .map(|q| Target {
                expr: format!(
                    "histogram_quantile({q}, {})",
                    sum_by(&["le".into()], &format!("rate({buckets}[{RATE}])"))
                ),
                legend: format!("p{}", (q * 100.0).round()),
            })
            .collect();
        layout.panel(title, &about, unit_name(f.unit), targets);
    }
    if f.kind == MetricKind::Gauge {
        let title = if f.role == Role::InFlight {
            "In flight"
        } else {
            "Value"
        };
        layout.panel(
            title,
            &about,
            unit_name(f.unit),
            vec![Target {
                expr: sum_by(&[], &selector(&f.exported, &m)),
                legend: f.exported.clone(),
            }],
        );
    }
    for o in ops.objectives.iter().filter(|o| o.family == index) {
        objective_panels(layout, o, f, vars);
    }
}

fn objective_panels(
    layout: &mut Layout,
    o: &CheckedObjective,
    f: &Family,
    vars: &[(String, &Family)],
) {
    let name = o.objective.name();
    let legend = if o.group_by.is_empty() {
        name.to_owned()
    } else {
        let parts: Vec<String> = o.group_by.iter().map(|k| format!("{{{{{k}}}}}")).collect();
        parts.join(" ")
    };
    let grouped = var_matchers(&o.group_by, vars);
    let recorded = |w| recorded_ratio(o, w, &grouped);
    let window = o.objective.window;
    layout.panel(
        &format!("Error budget remaining: {name}"),
        &format!(
            "Share of the error budget of objective {name} ({} of `{}`, target {}) left over \
             its {} window; below 0 once spent",
            o.objective.kind(),
            f.declared,
            o.objective.target,
            super::duration(window)
        ),
        "percentunit",
        vec![Target {
            expr: format!("1 - {} / {}", recorded(window), budget(o)),
            legend: legend.clone(),
        }],
    );
    let fast = BurnRateAlert::PageFast;
    layout.panel(
        &format!("Burn rate: {name}"),
        &format!(
            "How many times faster than its budget allows objective {name} spends it; the page \
             alert fires above {} over both windows",
            fast.burn_rate()
        ),
        "short",
        [fast.long_window(), fast.short_window()]
            .into_iter()
            .map(|w| Target {
                expr: format!("{} / {}", recorded(w), budget(o)),
                legend: format!("{legend} {}", super::duration(w)),
            })
            .collect(),
    );
}

fn health_row(layout: &mut Layout) {
    layout.row("tracing-spanmetrics health");
    let panels = [
        (
            "Observations folded into overflow series",
            OVERFLOW_METRIC,
            "metric",
        ),
        ("Label values truncated", TRUNCATED_METRIC, ""),
        ("Values rejected", REJECTED_METRIC, "metric, reason"),
    ];
    for (title, metric, by) in panels {
        let expr = if by.is_empty() {
            format!("sum({metric}) or vector(0)")
        } else {
            format!("sum by ({by}) ({metric}) or vector(0)")
        };
        layout.panel(
            title,
            &format!("`{metric}`: the layer's own health counter (0 until the first occurrence)"),
            "short",
            vec![Target {
                expr,
                legend: if by.is_empty() {
                    "total".into()
                } else {
                    by.split(", ")
                        .map(|k| format!("{{{{{k}}}}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            }],
        );
    }
}
