//! The TOML front end: a configuration file read into the same [`Metric`] rules the builder
//! takes, validated by the same code, with errors located by line and column.
//!
//! ```toml
//! [settings]
//! cardinality_limit = 2000        # default label sets per family
//! max_label_len = 128             # bytes
//! duration_buckets = "otel_durations"
//!
//! [red]                           # the zero-configuration RED metrics
//! service_name = "checkout"
//! spans = { target = "checkout" } # optional
//!
//! [[metric]]
//! name = "rpc.duration.seconds"
//! kind = "histogram"
//! description = "One RPC, from call to reply"
//! spans = { name = "rpc", target = "my_app::net", level = "info" }
//! measure = "wall_time"
//! labels = [
//!   "swimlane",                                         # a field of the span or an ancestor
//!   { field = "deployment.id", key = "deployment_id", default = "unknown" },
//!   { field = "status", key = "status_class", map = "status_class" },
//!   { key = "result", source = "outcome" },             # success | error
//!   { key = "proto", fixed = "http" },
//! ]
//! when = [{ field = "status", not_between = [200, 299] }]
//! buckets = "otel_durations"      # or [0.1, 0.5, 1], or { exponential = { start = 0.001, factor = 2, count = 16 } }
//! ```
//!
//! Measures: `"wall_time"`, `"busy_time"`, `"idle_time"`, `"self_time"`, `"spans_opened"`,
//! `"spans_closed"`, `"in_flight"`, or a table: `{ time_to = <event> }`,
//! `{ in_flight_after = "field" }`, `{ events = <event> }`, `{ span_field = "field" }`,
//! `{ event_field = "field", events = <event> }`, where an event selector is
//! `{ name = "..", target = "..", level = "warn", fields = [".."], message = ".." }`.
//! Conditions: `"error"`, `"not_error"`, or `{ field = "f", <test> }` with one of
//! `recorded = true`, `missing = true`, `one_of = [..]`, `not_one_of = [..]`,
//! `between = [lo, hi]`, `not_between = [lo, hi]`.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use tracing_subscriber::filter::LevelFilter;

use super::{
    Buckets, Condition, EventMatch, Label, Mapping, Measure, Metric, MetricKind, OutcomeValues,
    Spans, Unit,
};
use crate::builder::{Problem, SpanMetricsBuilder};
use crate::error::ConfigError;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    settings: Settings,
    red: Option<Red>,
    #[serde(default)]
    metric: Vec<toml::Spanned<MetricRepr>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    cardinality_limit: Option<usize>,
    max_label_len: Option<usize>,
    duration_buckets: Option<BucketsRepr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Red {
    service_name: String,
    spans: Option<SpansRepr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricRepr {
    name: String,
    kind: KindRepr,
    description: Option<String>,
    unit: Option<UnitRepr>,
    spans: Option<SpansRepr>,
    measure: Option<MeasureRepr>,
    #[serde(default)]
    labels: Vec<LabelRepr>,
    #[serde(default)]
    when: Vec<ConditionRepr>,
    buckets: Option<BucketsRepr>,
    cardinality_limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindRepr {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UnitRepr {
    Seconds,
    Count,
    Bytes,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SpansRepr {
    Name(String),
    Table(SpansTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpansTable {
    name: Option<OneOrMany>,
    target: Option<String>,
    level: Option<LevelRepr>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LevelRepr {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LevelRepr> for LevelFilter {
    fn from(l: LevelRepr) -> Self {
        match l {
            LevelRepr::Error => LevelFilter::ERROR,
            LevelRepr::Warn => LevelFilter::WARN,
            LevelRepr::Info => LevelFilter::INFO,
            LevelRepr::Debug => LevelFilter::DEBUG,
            LevelRepr::Trace => LevelFilter::TRACE,
        }
    }
}

impl From<SpansRepr> for Spans {
    fn from(s: SpansRepr) -> Self {
        match s {
            SpansRepr::Name(n) => Spans::named(n),
            SpansRepr::Table(t) => Spans {
                names: t.name.map(OneOrMany::into_vec).unwrap_or_default(),
                target: t.target,
                level: t.level.map(Into::into),
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRepr {
    name: Option<String>,
    target: Option<String>,
    level: Option<LevelRepr>,
    field: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    message: Option<String>,
}

impl From<EventRepr> for EventMatch {
    fn from(e: EventRepr) -> Self {
        EventMatch {
            name: e.name,
            target: e.target,
            level: e.level.map(Into::into),
            fields: e.field.into_iter().chain(e.fields).collect(),
            message: e.message,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MeasureRepr {
    Simple(SimpleMeasure),
    Table(Box<MeasureTable>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SimpleMeasure {
    WallTime,
    BusyTime,
    IdleTime,
    SelfTime,
    SpansOpened,
    SpansClosed,
    InFlight,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureTable {
    time_to: Option<EventRepr>,
    in_flight_after: Option<String>,
    events: Option<EventRepr>,
    span_field: Option<String>,
    event_field: Option<String>,
}

impl MeasureRepr {
    fn into_measure(self) -> Result<Measure, String> {
        let t = match self {
            MeasureRepr::Simple(s) => {
                return Ok(match s {
                    SimpleMeasure::WallTime => Measure::WallTime,
                    SimpleMeasure::BusyTime => Measure::BusyTime,
                    SimpleMeasure::IdleTime => Measure::IdleTime,
                    SimpleMeasure::SelfTime => Measure::SelfTime,
                    SimpleMeasure::SpansOpened => Measure::SpansOpened,
                    SimpleMeasure::SpansClosed => Measure::SpansClosed,
                    SimpleMeasure::InFlight => Measure::InFlight,
                });
            }
            MeasureRepr::Table(t) => *t,
        };
        match t {
            MeasureTable {
                time_to: Some(e),
                in_flight_after: None,
                events: None,
                span_field: None,
                event_field: None,
            } => Ok(Measure::TimeToEvent(e.into())),
            MeasureTable {
                time_to: None,
                in_flight_after: Some(f),
                events: None,
                span_field: None,
                event_field: None,
            } => Ok(Measure::InFlightAfter(f)),
            MeasureTable {
                time_to: None,
                in_flight_after: None,
                events: Some(e),
                span_field: None,
                event_field: None,
            } => Ok(Measure::Events(e.into())),
            MeasureTable {
                time_to: None,
                in_flight_after: None,
                events: None,
                span_field: Some(f),
                event_field: None,
            } => Ok(Measure::SpanField(f)),
            MeasureTable {
                time_to: None,
                in_flight_after: None,
                events,
                span_field: None,
                event_field: Some(f),
            } => Ok(Measure::EventField(
                events.map(Into::into).unwrap_or_default(),
                f,
            )),
            _ => Err(
                "a measure table takes exactly one of `time_to`, `in_flight_after`, \
                      `events`, `span_field`, `event_field` (with `events` beside `event_field`)"
                    .into(),
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LabelRepr {
    Field(String),
    Table(Box<LabelTable>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelTable {
    key: Option<String>,
    field: Option<String>,
    fixed: Option<String>,
    source: Option<SourceRepr>,
    outcome: Option<OutcomeRepr>,
    default: Option<String>,
    map: Option<MappingRepr>,
    #[serde(default)]
    own_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SourceRepr {
    SpanName,
    SpanKind,
    Target,
    Outcome,
    OtelStatusCode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeRepr {
    unset: String,
    ok: String,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MappingRepr {
    Named(NamedMapping),
    Table {
        table: toml::Table,
        otherwise: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NamedMapping {
    StatusClass,
}

fn text_of(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        // Dates, arrays and tables never equal a field's text; keep them visibly odd.
        other => format!("{other:?}"),
    }
}

impl LabelRepr {
    fn into_label(self) -> Result<Label, String> {
        let t = match self {
            LabelRepr::Field(f) => return Ok(Label::field(f)),
            LabelRepr::Table(t) => *t,
        };
        let sources = [
            t.field.is_some(),
            t.fixed.is_some(),
            t.source.is_some(),
            t.outcome.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "label `{}`: give exactly one of `field`, `fixed`, `source`, `outcome`",
                t.key.as_deref().or(t.field.as_deref()).unwrap_or("?")
            ));
        }
        let key = || {
            t.key
                .clone()
                .ok_or_else(|| "a label without `field` needs a `key`".to_string())
        };
        let mut label = if let Some(f) = t.field.clone() {
            let l = Label::field(f);
            match t.key.clone() {
                Some(k) => l.key(k),
                None => l,
            }
        } else if let Some(v) = t.fixed.clone() {
            Label::fixed(key()?, v)
        } else if let Some(o) = t.outcome {
            Label::outcome_with(
                key()?,
                OutcomeValues {
                    unset: o.unset,
                    ok: o.ok,
                    error: o.error,
                },
            )
        } else {
            match t.source {
                Some(SourceRepr::SpanName) => Label::span_name(key()?),
                Some(SourceRepr::SpanKind) => Label::span_kind(key()?),
                Some(SourceRepr::Target) => Label::target(key()?),
                Some(SourceRepr::Outcome) => Label::outcome(key()?),
                Some(SourceRepr::OtelStatusCode) => Label::otel_status_code(key()?),
                None => unreachable!("one source is set"),
            }
        };
        if let Some(d) = t.default {
            label = label.default(d);
        }
        if let Some(m) = t.map {
            label = label.map(match m {
                MappingRepr::Named(NamedMapping::StatusClass) => Mapping::StatusClass,
                MappingRepr::Table { table, otherwise } => Mapping::Table {
                    entries: table.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
                    otherwise,
                },
            });
        }
        if t.own_only {
            label = label.own_only();
        }
        Ok(label)
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ConditionRepr {
    Outcome(OutcomeCondition),
    Field(FieldConditionRepr),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeCondition {
    Error,
    NotError,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldConditionRepr {
    field: String,
    recorded: Option<bool>,
    missing: Option<bool>,
    one_of: Option<Vec<toml::Value>>,
    not_one_of: Option<Vec<toml::Value>>,
    between: Option<(f64, f64)>,
    not_between: Option<(f64, f64)>,
}

impl ConditionRepr {
    fn into_condition(self) -> Result<Condition, String> {
        let c = match self {
            ConditionRepr::Outcome(OutcomeCondition::Error) => return Ok(Condition::Error),
            ConditionRepr::Outcome(OutcomeCondition::NotError) => return Ok(Condition::NotError),
            ConditionRepr::Field(c) => c,
        };
        let fc = Condition::field(c.field.clone());
        let texts = |v: Vec<toml::Value>| v.iter().map(text_of).collect::<Vec<_>>();
        let mut tests: Vec<Condition> = Vec::new();
        match c.recorded {
            Some(true) => tests.push(fc.clone().recorded()),
            Some(false) => tests.push(fc.clone().missing()),
            None => {}
        }
        match c.missing {
            Some(true) => tests.push(fc.clone().missing()),
            Some(false) => tests.push(fc.clone().recorded()),
            None => {}
        }
        if let Some(v) = c.one_of {
            tests.push(fc.clone().one_of(texts(v)));
        }
        if let Some(v) = c.not_one_of {
            tests.push(fc.clone().not_one_of(texts(v)));
        }
        if let Some((lo, hi)) = c.between {
            tests.push(fc.clone().between(lo, hi));
        }
        if let Some((lo, hi)) = c.not_between {
            tests.push(fc.not_between(lo, hi));
        }
        match tests.len() {
            1 => Ok(tests.remove(0)),
            n => Err(format!(
                "condition on `{}` needs exactly one test (`recorded`, `missing`, `one_of`, \
                 `not_one_of`, `between`, `not_between`), found {n}",
                c.field
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum BucketsRepr {
    Preset(Preset),
    List(Vec<f64>),
    Table(BucketsTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Preset {
    OtelDurations,
    ExponentialSeconds,
    ExponentialBytes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketsTable {
    exponential: Option<Exponential>,
    linear: Option<Linear>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exponential {
    start: f64,
    factor: f64,
    count: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Linear {
    start: f64,
    width: f64,
    count: usize,
}

impl BucketsRepr {
    fn into_buckets(self) -> Result<Buckets, String> {
        Ok(match self {
            BucketsRepr::Preset(Preset::OtelDurations) => Buckets::otel_durations(),
            BucketsRepr::Preset(Preset::ExponentialSeconds) => Buckets::exponential_seconds(),
            BucketsRepr::Preset(Preset::ExponentialBytes) => Buckets::exponential_bytes(),
            BucketsRepr::List(v) => Buckets::explicit(v),
            BucketsRepr::Table(BucketsTable {
                exponential: Some(e),
                linear: None,
            }) => {
                if e.count == 0 || e.start <= 0.0 || e.factor <= 1.0 {
                    return Err("exponential buckets need start > 0, factor > 1, count > 0".into());
                }
                Buckets::exponential(e.start, e.factor, e.count)
            }
            BucketsRepr::Table(BucketsTable {
                exponential: None,
                linear: Some(l),
            }) => Buckets::linear(l.start, l.width, l.count),
            BucketsRepr::Table(_) => {
                return Err("a buckets table takes exactly one of `exponential`, `linear`".into());
            }
        })
    }
}

impl MetricRepr {
    fn into_metric(self, duration_buckets: Option<&Buckets>) -> Result<Metric, Problem> {
        let mut m = match self.kind {
            KindRepr::Counter => Metric::counter(self.name),
            KindRepr::Gauge => Metric::gauge(self.name),
            KindRepr::Histogram => Metric::histogram(self.name),
        };
        if let Some(d) = self.description {
            m = m.describe(d);
        }
        if let Some(u) = self.unit {
            m = m.unit(match u {
                UnitRepr::Seconds => Unit::Seconds,
                UnitRepr::Count => Unit::Count,
                UnitRepr::Bytes => Unit::Bytes,
            });
        }
        if let Some(s) = self.spans {
            m = m.spans(s.into());
        }
        if let Some(measure) = self.measure {
            m = m.measure(measure.into_measure().map_err(|p| ("measure", p))?);
        }
        for l in self.labels {
            m = m.label(l.into_label().map_err(|p| ("labels", p))?);
        }
        for c in self.when {
            m = m.when(c.into_condition().map_err(|p| ("when", p))?);
        }
        match self.buckets {
            Some(b) => m = m.buckets(b.into_buckets().map_err(|p| ("buckets", p))?),
            None => {
                if let (Some(b), MetricKind::Histogram) = (duration_buckets, m.kind) {
                    if m.effective_measure().is_duration() {
                        m = m.buckets(b.clone());
                    }
                }
            }
        }
        if let Some(l) = self.cardinality_limit {
            m = m.cardinality_limit(l);
        }
        Ok(m)
    }
}

/// Where `key = …` starts among the lines of the `[[metric]]` table whose header starts at
/// `span.start` (up to the next table header).
fn key_in(text: &str, span: &Range<usize>, key: &str) -> Option<usize> {
    let body = text.get(span.start..)?;
    let mut offset = span.start;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn located(text: &str, span: Option<Range<usize>>, mut e: ConfigError) -> ConfigError {
    if let Some(span) = span {
        let (line, column) = line_col(text, span.start);
        e.line = u32::try_from(line).ok();
        e.column = u32::try_from(column).ok();
    }
    e
}

impl SpanMetricsBuilder {
    /// Reads rules and settings from a TOML document (see [`crate::config::file`]) and
    /// validates them as [`build`](SpanMetricsBuilder::build) would. Rules already added to
    /// this builder stay; the file's come after them.
    ///
    /// ```
    /// let layer = tracing_spanmetrics::SpanMetrics::builder()
    ///     .toml(r#"
    ///         [[metric]]
    ///         name = "rpc.duration.seconds"
    ///         kind = "histogram"
    ///         spans = "rpc"
    ///         labels = ["method"]
    ///     "#)?
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tracing_spanmetrics::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] with the line and column: TOML syntax, an unknown key, a value of the
    /// wrong type, or anything the builder rejects (with the builder's message).
    pub fn toml(self, text: &str) -> Result<SpanMetricsBuilder, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            located(
                text,
                e.span(),
                ConfigError::global(e.message().trim().to_owned()),
            )
        })?;
        let mut builder = self;
        if let Some(l) = file.settings.cardinality_limit {
            builder = builder.cardinality_limit(l);
        }
        if let Some(l) = file.settings.max_label_len {
            builder = builder.max_label_len(l);
        }
        let duration_buckets = file
            .settings
            .duration_buckets
            .map(BucketsRepr::into_buckets)
            .transpose()
            .map_err(|p| {
                located(
                    text,
                    Some(0..0),
                    ConfigError::global(format!("settings: {p}")),
                )
            })?;
        if let Some(red) = file.red {
            builder = builder.red(
                red.service_name,
                red.spans.map(Into::into).unwrap_or_default(),
            );
        }
        let first_file_rule = builder.rules().len();
        let mut spans = Vec::with_capacity(file.metric.len());
        for (i, spanned) in file.metric.into_iter().enumerate() {
            let span = spanned.span();
            let repr = spanned.into_inner();
            let name = repr.name.clone();
            let metric = repr
                .into_metric(duration_buckets.as_ref())
                .map_err(|(key, p)| {
                    let at = key_in(text, &span, key).unwrap_or(span.start);
                    located(
                        text,
                        Some(at..at),
                        ConfigError::rule(first_file_rule + i, &name, p),
                    )
                })?;
            spans.push(span);
            builder = builder.metric(metric);
        }
        // The builder's own validation, located at the offending `[[metric]]`.
        if let Err(e) = builder.compile(None) {
            let span = e
                .rule
                .and_then(|r| r.checked_sub(first_file_rule))
                .and_then(|i| spans.get(i).cloned())
                .map(|span| {
                    let at = e
                        .key
                        .and_then(|k| key_in(text, &span, k))
                        .unwrap_or(span.start);
                    at..at
                });
            return Err(located(text, span, e));
        }
        Ok(builder)
    }

    /// Reads a TOML configuration file; see [`SpanMetricsBuilder::toml`].
    ///
    /// # Errors
    /// The file cannot be read, or [`SpanMetricsBuilder::toml`]'s errors, prefixed by the path.
    pub fn toml_file(self, path: impl AsRef<Path>) -> Result<SpanMetricsBuilder, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::global(format!("cannot read {}: {e}", path.display())))?;
        self.toml(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn lines_and_columns_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }
}
