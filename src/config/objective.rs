//! Service-level objectives, declared beside the rules: what share of a span family's calls
//! must succeed (availability) or finish under a threshold (latency), over a window.
//!
//! An objective names a family the rules declare and is checked when the configuration is
//! built: the family must exist and be of a kind the objective can read, the target must lie
//! strictly between 0 and 1, every label it filters or groups by must be one of the family's,
//! and a latency threshold must be one of the family's bucket bounds (a share under any other
//! value cannot be read from the buckets). [`crate::operations`] turns objectives into
//! Prometheus recording rules, burn-rate alerts and dashboard panels.
//!
//! ```
//! use tracing_spanmetrics::{Label, Metric, Objective, SpanMetrics, Spans};
//!
//! let builder = SpanMetrics::builder()
//!     .metric(
//!         Metric::histogram("rpc.duration.seconds")
//!             .spans(Spans::named("rpc"))
//!             .label("method")
//!             .label(Label::outcome("result")),
//!     )
//!     .objective(Objective::availability("rpc-availability", "rpc.duration.seconds").target(0.999))
//!     .objective(
//!         Objective::latency("rpc-latency", "rpc.duration.seconds", 0.25)
//!             .target(0.99)
//!             .group_by("method"),
//!     );
//! let layer = builder.build()?;
//! # let _ = layer;
//! # Ok::<(), tracing_spanmetrics::ConfigError>(())
//! ```

use std::fmt;
use std::time::Duration;

use super::{DeclaredFamily, LabelSource, Metric, MetricKind};
use crate::config::ConfigError;
use crate::config::naming::exported_label_key;

/// The default objective window: 28 days.
pub const DEFAULT_OBJECTIVE_WINDOW: Duration = Duration::from_secs(28 * 24 * 3600);
/// The default objective target: 99.9 %.
pub const DEFAULT_OBJECTIVE_TARGET: f64 = 0.999;

/// What an objective measures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ObjectiveKind {
    /// The share of calls that are not errors: a counter's increments, or a histogram's
    /// observations (its `_count`).
    Availability,
    /// The share of a histogram's observations at or under `threshold` (one of its bucket
    /// bounds, in the family's unit).
    Latency {
        /// The bucket bound calls must finish under.
        threshold: f64,
    },
}

/// A service-level objective on one span family: see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub(crate) name: String,
    pub(crate) family: String,
    pub(crate) kind: ObjectiveKind,
    pub(crate) target: f64,
    pub(crate) window: Duration,
    pub(crate) filter: Vec<(String, String)>,
    pub(crate) group_by: Vec<String>,
    pub(crate) errors: Option<(String, Vec<String>)>,
    pub(crate) description: Option<String>,
}

impl Objective {
    fn new(name: impl Into<String>, family: impl Into<String>, kind: ObjectiveKind) -> Self {
        Objective {
            name: name.into(),
            family: family.into(),
            kind,
            target: DEFAULT_OBJECTIVE_TARGET,
            window: DEFAULT_OBJECTIVE_WINDOW,
            filter: Vec::new(),
            group_by: Vec::new(),
            errors: None,
            description: None,
        }
    }

    /// An availability objective named `name` on the family declared as `family` (a counter,
    /// or a histogram whose `_count` is read): the share of its calls that are not errors.
    /// Errors are the family's outcome label at its error value (a label with source
    /// `outcome` or `otel_status_code`), unless [`errors`](Objective::errors) says otherwise.
    #[must_use]
    pub fn availability(name: impl Into<String>, family: impl Into<String>) -> Self {
        Objective::new(name, family, ObjectiveKind::Availability)
    }

    /// A latency objective named `name` on the histogram family declared as `family`: the
    /// share of its observations at or under `threshold`, which must be one of its bucket
    /// bounds.
    #[must_use]
    pub fn latency(name: impl Into<String>, family: impl Into<String>, threshold: f64) -> Self {
        Objective::new(name, family, ObjectiveKind::Latency { threshold })
    }

    /// The share that must be good, strictly between 0 and 1 (`0.999` for 99.9 %).
    ///
    /// Defaults to [`DEFAULT_OBJECTIVE_TARGET`] (0.999).
    #[must_use]
    pub fn target(mut self, target: f64) -> Self {
        self.target = target;
        self
    }

    /// The window the target holds over, a whole number of minutes.
    ///
    /// Defaults to [`DEFAULT_OBJECTIVE_WINDOW`] (28 days).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Counts only the family's series whose label `key` (as the rules declare it) is `value`
    /// (repeatable; all must hold).
    ///
    /// Defaults to every series of the family.
    #[must_use]
    pub fn filter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter.push((key.into(), value.into()));
        self
    }

    /// Keeps the objective apart per value of the family's label `key` (as the rules declare
    /// it; repeatable): one error ratio, one set of alerts per group.
    ///
    /// Defaults to one objective over all series.
    #[must_use]
    pub fn group_by(mut self, key: impl Into<String>) -> Self {
        self.group_by.push(key.into());
        self
    }

    /// For an availability objective: errors are the series whose label `key` is one of
    /// `values`.
    ///
    /// Defaults to the family's outcome label at its error value.
    #[must_use]
    pub fn errors<V: Into<String>>(
        mut self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.errors = Some((key.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// What the objective promises, in words (shown in alerts and on the dashboard).
    ///
    /// Defaults to none.
    #[must_use]
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The objective's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The family it is about, as the rules declare it.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// What it measures.
    pub fn kind(&self) -> &ObjectiveKind {
        &self.kind
    }
}

/// The key of an `[[objective]]` table a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectiveKey {
    Name,
    Family,
    Kind,
    Target,
    Window,
    Threshold,
    Filter,
    GroupBy,
    Errors,
}

impl ObjectiveKey {
    /// The key in an `[[objective]]` table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ObjectiveKey::Name => "name",
            ObjectiveKey::Family => "family",
            ObjectiveKey::Kind => "kind",
            ObjectiveKey::Target => "target",
            ObjectiveKey::Window => "window",
            ObjectiveKey::Threshold => "threshold",
            ObjectiveKey::Filter => "filter",
            ObjectiveKey::GroupBy => "group_by",
            ObjectiveKey::Errors => "errors",
        }
    }
}

/// Where an objective's error series are: label (exported key) and its error values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorMatch {
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

/// An objective once checked against the declared families: everything generation needs.
#[derive(Debug, Clone)]
pub(crate) struct CheckedObjective {
    pub(crate) objective: Objective,
    /// Index into the declared families.
    pub(crate) family: usize,
    /// Exported label keys.
    pub(crate) filter: Vec<(String, String)>,
    pub(crate) group_by: Vec<String>,
    /// For availability objectives.
    pub(crate) errors: Option<ErrorMatch>,
}

/// The error matcher the family's own outcome label gives: the first label whose source is an
/// outcome (`outcome` or `otel_status_code`), at its error value.
pub(crate) fn outcome_errors(
    rules: &[Metric],
    family_of: &[usize],
    f: usize,
) -> Option<ErrorMatch> {
    rules
        .iter()
        .zip(family_of)
        .filter(|(_, of)| **of == f)
        .flat_map(|(m, _)| &m.labels)
        .find_map(|l| match &l.source {
            LabelSource::Outcome(v) => Some((l.key.clone(), v.error.clone())),
            _ => None,
        })
        .map(|(key, value)| ErrorMatch {
            key: exported_label_key(&key),
            values: vec![value],
        })
}

/// A problem with objective `index`.
struct Refusal {
    key: ObjectiveKey,
    text: String,
}

fn at(key: ObjectiveKey) -> impl Fn(String) -> Refusal {
    move |text| Refusal { key, text }
}

/// Checks every objective against the declared families.
///
/// # Errors
/// The first problem, naming the objective (by position and name) and the key it is about.
pub(crate) fn check_objectives(
    objectives: &[Objective],
    families: &[DeclaredFamily],
    rules: &[Metric],
    family_of: &[usize],
) -> Result<Vec<CheckedObjective>, ConfigError> {
    let mut checked: Vec<CheckedObjective> = Vec::with_capacity(objectives.len());
    for (i, o) in objectives.iter().enumerate() {
        let refuse =
            |r: Refusal| ConfigError::objective(i, &o.name, r.text).at_objective_key(r.key);
        if let Some(earlier) = checked.iter().position(|c| c.objective.name == o.name) {
            return Err(refuse(at(ObjectiveKey::Name)(format!(
                "the name is already taken by objective #{earlier}; objectives need distinct \
                 names (they label the rules and alerts)"
            ))));
        }
        checked.push(check_one(o, families, rules, family_of).map_err(refuse)?);
    }
    Ok(checked)
}

fn check_one(
    o: &Objective,
    families: &[DeclaredFamily],
    rules: &[Metric],
    family_of: &[usize],
) -> Result<CheckedObjective, Refusal> {
    check_name(&o.name).map_err(at(ObjectiveKey::Name))?;
    let Some(f) = families.iter().position(|f| f.name == o.family) else {
        let by_export = families.iter().find(|f| f.exported == o.family);
        let hint = match by_export {
            Some(f) => format!(
                "; `{}` is the exported name of `{}`: name the family as the rules declare it",
                o.family, f.name
            ),
            None => match nearest_family(&o.family, families) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            },
        };
        return Err(at(ObjectiveKey::Family)(format!(
            "no rule declares a family `{}`{hint}",
            o.family
        )));
    };
    let family = &families[f];
    match (&o.kind, family.kind) {
        (ObjectiveKind::Availability, MetricKind::Counter | MetricKind::Histogram) => {}
        (ObjectiveKind::Latency { .. }, MetricKind::Histogram) => {}
        (kind, found) => {
            let (what, needs) = match kind {
                ObjectiveKind::Availability => ("an availability", "a counter or a histogram"),
                ObjectiveKind::Latency { .. } => ("a latency", "a histogram"),
            };
            return Err(at(ObjectiveKey::Kind)(format!(
                "{what} objective needs {needs}, but `{}` is a {}",
                family.name,
                found.as_str()
            )));
        }
    }
    if !(o.target > 0.0 && o.target < 1.0) {
        return Err(at(ObjectiveKey::Target)(format!(
            "the target {} is outside (0, 1): write 99.9 % as 0.999",
            o.target
        )));
    }
    let secs = o.window.as_secs();
    if secs < 60 || secs % 60 != 0 || o.window.subsec_nanos() != 0 {
        return Err(at(ObjectiveKey::Window)(format!(
            "the window {:?} is not a whole, positive number of minutes",
            o.window
        )));
    }
    if let ObjectiveKind::Latency { threshold } = o.kind {
        let bounds = family
            .buckets
            .as_ref()
            .map(|b| b.bounds())
            .unwrap_or_default();
        if !bounds.contains(&threshold) {
            let listed: Vec<String> = bounds.iter().map(|b| b.to_string()).collect();
            return Err(at(ObjectiveKey::Threshold)(format!(
                "the threshold {threshold} is not one of the bucket bounds of `{}` ([{}]); the \
                 share under it cannot be read from the buckets",
                family.name,
                listed.join(", ")
            )));
        }
    }
    let has = |key: &str| family.label_keys.iter().any(|k| k == key);
    let lacks = |key: &str, what: ObjectiveKey| {
        at(what)(format!(
            "`{}` has no label `{key}` (its labels: [{}])",
            family.name,
            family.label_keys.join(", ")
        ))
    };
    if let Some((key, _)) = o.filter.iter().find(|(k, _)| !has(k)) {
        return Err(lacks(key, ObjectiveKey::Filter));
    }
    if let Some(key) = o.group_by.iter().find(|k| !has(k)) {
        return Err(lacks(key, ObjectiveKey::GroupBy));
    }
    let errors = match (&o.kind, &o.errors) {
        (ObjectiveKind::Latency { .. }, Some(_)) => {
            return Err(at(ObjectiveKey::Errors)(
                "a latency objective counts slow calls; `errors` applies to availability \
                 objectives only"
                    .into(),
            ));
        }
        (ObjectiveKind::Latency { .. }, None) => None,
        (ObjectiveKind::Availability, Some((key, values))) => {
            if !has(key) {
                return Err(lacks(key, ObjectiveKey::Errors));
            }
            if values.is_empty() {
                return Err(at(ObjectiveKey::Errors)(
                    "no error value given: list the values of the label that mean an error".into(),
                ));
            }
            Some(ErrorMatch {
                key: exported_label_key(key),
                values: values.clone(),
            })
        }
        (ObjectiveKind::Availability, None) => {
            Some(outcome_errors(rules, family_of, f).ok_or_else(|| {
                at(ObjectiveKey::Errors)(format!(
                    "`{}` has no outcome label (source `outcome` or `otel_status_code`) to tell \
                 errors by; add one, or say which label values are errors with `errors`",
                    family.name
                ))
            })?)
        }
    };
    Ok(CheckedObjective {
        objective: o.clone(),
        family: f,
        filter: o
            .filter
            .iter()
            .map(|(k, v)| (exported_label_key(k), v.clone()))
            .collect(),
        group_by: o.group_by.iter().map(|k| exported_label_key(k)).collect(),
        errors,
    })
}

/// Objective names label rules and alerts: letters, digits, `-`, `_` and `.`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the objective's name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "invalid objective name `{name}`: `{}` is not allowed (use letters, digits, `-`, `_` \
             and `.`)",
            c.escape_default()
        ));
    }
    Ok(())
}

/// The declared family nearest to `name`, when a typo could explain the difference.
fn nearest_family<'f>(name: &str, families: &'f [DeclaredFamily]) -> Option<&'f str> {
    let limit = (name.chars().count() / 5).max(1);
    families
        .iter()
        .map(|f| (strsim::osa_distance(name, &f.name), f.name.as_str()))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A duration as Prometheus writes it, in its largest whole unit (`28d`, `6h`, `90m`, `15s`).
pub(crate) fn prometheus_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Reads a Prometheus-style duration: a whole number and one of `ms`, `s`, `m`, `h`, `d`, `w`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a whole number and a unit, like `28d` or `6h`")
    })?;
    let size = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}`: expected one of `ms`, `s`, `m`, `h`, `d`, `w`"
            ));
        }
    };
    Ok(Duration::from_millis(n.saturating_mul(size)))
}

impl fmt::Display for ObjectiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectiveKind::Availability => f.write_str("availability"),
            ObjectiveKind::Latency { threshold } => write!(f, "latency under {threshold}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_as_prometheus_does() {
        assert_eq!(parse_duration("28d"), Ok(Duration::from_secs(28 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("d").unwrap_err().contains("not a duration"));
        assert!(
            parse_duration("3y")
                .unwrap_err()
                .contains("unknown duration unit `y`")
        );
        assert_eq!(prometheus_duration(Duration::from_secs(28 * 86_400)), "28d");
        assert_eq!(prometheus_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(prometheus_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(prometheus_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1500ms");
    }
}
