//! The Prometheus rule file: recorded error ratios and the SRE workbook's multi-window,
//! multi-burn-rate alerts, one group per objective.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::objective::{CheckedObjective, ObjectiveKind};

use super::promql::{budget, error_ratio, number, record_name, recorded_ratio};
use super::{BURN_RATE_ALERT, Operations, duration};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// One of the four alerts of the SRE workbook's multi-window, multi-burn-rate scheme: it
/// fires when the error ratio over both its long and its short window exceeds its burn rate
/// times the error budget (`1 - target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BurnRateAlert {
    /// Page: 1 h and 5 min at 14.4 (2 % of a 30-day budget in an hour).
    PageFast,
    /// Page: 6 h and 30 min at 6 (5 % of a 30-day budget in six hours).
    PageSlow,
    /// Ticket: 1 day and 2 h at 3 (10 % of a 30-day budget in a day).
    TicketFast,
    /// Ticket: 3 days and 6 h at 1 (10 % of a 30-day budget in three days).
    TicketSlow,
}

impl BurnRateAlert {
    /// All four, fastest first.
    pub const ALL: [BurnRateAlert; 4] = [
        BurnRateAlert::PageFast,
        BurnRateAlert::PageSlow,
        BurnRateAlert::TicketFast,
        BurnRateAlert::TicketSlow,
    ];

    /// The long window.
    #[must_use]
    pub fn long_window(self) -> Duration {
        match self {
            BurnRateAlert::PageFast => HOUR,
            BurnRateAlert::PageSlow => 6 * HOUR,
            BurnRateAlert::TicketFast => DAY,
            BurnRateAlert::TicketSlow => 3 * DAY,
        }
    }

    /// The short window, a twelfth of the long one.
    #[must_use]
    pub fn short_window(self) -> Duration {
        match self {
            BurnRateAlert::PageFast => 5 * MINUTE,
            BurnRateAlert::PageSlow => 30 * MINUTE,
            BurnRateAlert::TicketFast => 2 * HOUR,
            BurnRateAlert::TicketSlow => 6 * HOUR,
        }
    }

    /// How many times faster than the budget allows errors must come.
    #[must_use]
    pub fn burn_rate(self) -> f64 {
        match self {
            BurnRateAlert::PageFast => 14.4,
            BurnRateAlert::PageSlow => 6.0,
            BurnRateAlert::TicketFast => 3.0,
            BurnRateAlert::TicketSlow => 1.0,
        }
    }

    /// `page` or `ticket`: the alert's `severity` label.
    #[must_use]
    pub fn severity(self) -> &'static str {
        match self {
            BurnRateAlert::PageFast | BurnRateAlert::PageSlow => "page",
            BurnRateAlert::TicketFast | BurnRateAlert::TicketSlow => "ticket",
        }
    }

    /// How long the condition must hold before the alert fires, by default: 2 min, 15 min,
    /// 1 h and 3 h.
    #[must_use]
    pub fn default_for(self) -> Duration {
        match self {
            BurnRateAlert::PageFast => 2 * MINUTE,
            BurnRateAlert::PageSlow => 15 * MINUTE,
            BurnRateAlert::TicketFast => HOUR,
            BurnRateAlert::TicketSlow => 3 * HOUR,
        }
    }

    fn index(self) -> usize {
        match self {
            BurnRateAlert::PageFast => 0,
            BurnRateAlert::PageSlow => 1,
            BurnRateAlert::TicketFast => 2,
            BurnRateAlert::TicketSlow => 3,
        }
    }
}

/// How the rule file is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOptions {
    interval: Option<Duration>,
    for_durations: [Duration; 4],
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            interval: None,
            for_durations: BurnRateAlert::ALL.map(BurnRateAlert::default_for),
        }
    }
}

impl RuleOptions {
    /// How often Prometheus evaluates the groups (their `interval`); zero leaves it to
    /// Prometheus.
    ///
    /// Defaults to none: Prometheus's global `evaluation_interval`.
    #[must_use]
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = Some(every);
        self
    }

    /// How long `alert`'s condition must hold before it fires (its `for`; zero: at once).
    ///
    /// Defaults to [`BurnRateAlert::default_for`].
    #[must_use]
    pub fn alert_for(mut self, alert: BurnRateAlert, hold: Duration) -> Self {
        self.for_durations[alert.index()] = hold;
        self
    }

    /// The `for` of `alert`.
    #[must_use]
    pub fn for_duration(&self, alert: BurnRateAlert) -> Duration {
        self.for_durations[alert.index()]
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is YAML's double-quoted style).
fn q(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The windows the alerts need, and the objective's own (for its remaining budget).
fn windows(o: &CheckedObjective) -> Vec<Duration> {
    let mut all: Vec<Duration> = BurnRateAlert::ALL
        .iter()
        .flat_map(|a| [a.short_window(), a.long_window()])
        .chain([o.objective.window])
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

pub(super) fn render(ops: &Operations, options: &RuleOptions) -> String {
    let mut out = String::from(
        "# Generated by tracing-spanmetrics from the objectives of its configuration: recorded\n\
         # error ratios and the SRE workbook's multi-window, multi-burn-rate alerts.\n\
         # Regenerate it when the configuration changes; do not edit.\n",
    );
    if ops.objectives.is_empty() {
        out.push_str("groups: []\n");
        return out;
    }
    out.push_str("groups:\n");
    for o in &ops.objectives {
        let f = &ops.families[o.family];
        let name = o.objective.name();
        let _ = writeln!(
            out,
            "  - name: {}",
            q(&format!("spanmetrics-objective-{name}"))
        );
        if let Some(every) = options.interval.filter(|d| !d.is_zero()) {
            let _ = writeln!(out, "    interval: {}", q(&duration(every)));
        }
        out.push_str("    rules:\n");
        let static_labels = |out: &mut String| {
            let _ = writeln!(out, "          objective: {}", q(name));
            let _ = writeln!(out, "          family: {}", q(&f.exported));
        };
        for w in windows(o) {
            let _ = writeln!(out, "      - record: {}", q(&record_name(w)));
            let _ = writeln!(out, "        expr: {}", q(&error_ratio(o, f, &duration(w))));
            out.push_str("        labels:\n");
            static_labels(&mut out);
        }
        let target = o.objective.target;
        let what = match o.objective.kind() {
            ObjectiveKind::Latency { threshold } => format!(
                "calls of `{}` under {}{}",
                f.declared,
                number(*threshold),
                unit_suffix(f.unit)
            ),
            _ => format!("calls of `{}` without error", f.declared),
        };
        for alert in BurnRateAlert::ALL {
            let threshold = format!("({} * {})", number(alert.burn_rate()), budget(o));
            let expr = format!(
                "{} > {threshold}\nand\n{} > {threshold}",
                recorded_ratio(o, alert.long_window(), &[]),
                recorded_ratio(o, alert.short_window(), &[]),
            );
            let (long, short) = (
                duration(alert.long_window()),
                duration(alert.short_window()),
            );
            let _ = writeln!(out, "      - alert: {}", q(BURN_RATE_ALERT));
            let _ = writeln!(out, "        expr: {}", q(&expr));
            let hold = options.for_duration(alert);
            if !hold.is_zero() {
                let _ = writeln!(out, "        for: {}", q(&duration(hold)));
            }
            out.push_str("        labels:\n");
            let _ = writeln!(out, "          severity: {}", q(alert.severity()));
            static_labels(&mut out);
            let _ = writeln!(out, "          long_window: {}", q(&long));
            let _ = writeln!(out, "          short_window: {}", q(&short));
            out.push_str("        annotations:\n");
            let summary = format!(
                "Objective {name} is spending its error budget {} times as fast as it allows, or faster",
                number(alert.burn_rate())
            );
            let mut description = format!(
                "{}% of {what} over {}: the error ratio over both {long} and {short} is above \
                 {} times the budget of {}.",
                tidy(target * 100.0),
                duration(o.objective.window),
                number(alert.burn_rate()),
                tidy(1.0 - target),
            );
            if let Some(text) = &o.objective.description {
                description = format!("{text}. {description}");
            }
            let _ = writeln!(out, "          summary: {}", q(&summary));
            let _ = writeln!(out, "          description: {}", q(&description));
        }
    }
    out
}

/// `x` without the float noise of arithmetic on decimals (`99.9`, not `99.89999999999999`).
fn tidy(x: f64) -> String {
    number((x * 1e12).round() / 1e12)
}

fn unit_suffix(unit: crate::config::Unit) -> &'static str {
    match unit {
        crate::config::Unit::Seconds => " s",
        crate::config::Unit::Bytes => " bytes",
        _ => "",
    }
}
