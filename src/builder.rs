//! The builder: collects rules and settings, validates them all, and builds the layer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use metrics::Recorder;

use crate::config::{
    Buckets, Condition, FieldTest, Label, LabelSource, Measure, Metric, MetricKind, Spans, Unit,
};
use crate::error::ConfigError;
use crate::instruments::{Family, HEALTH_METRICS, OVERFLOW_LABEL, RecorderRef};
use crate::layer::{HistogramInfo, SpanMetricsLayer};
use crate::naming::{claimed_names, exported_name};
use crate::plan::{Model, Rule, Settings};

/// The default most distinct label sets per metric family (as the OpenTelemetry Collector's
/// spanmetrics connector and the OpenTelemetry metrics SDK).
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;
/// The default bound on a label value's length, in bytes.
pub const DEFAULT_MAX_LABEL_LEN: usize = 128;
/// The most labels one metric may carry.
pub const MAX_LABELS: usize = 32;

/// Entry points: [`SpanMetrics::builder`] for your own rules, [`SpanMetrics::red`] for the
/// zero-configuration RED metrics.
///
/// ```
/// use tracing_spanmetrics::{Label, Metric, SpanMetrics, Spans};
/// use tracing_subscriber::prelude::*;
///
/// let layer = SpanMetrics::builder()
///     .metric(
///         Metric::histogram("rpc.duration.seconds")
///             .describe("Duration of outgoing RPCs")
///             .spans(Spans::named("rpc"))
///             .label("method")
///             .label(Label::outcome("result")),
///     )
///     .build()
///     .expect("a valid configuration");
///
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("rpc", method = "get").entered();
/// });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SpanMetrics;

impl SpanMetrics {
    /// A builder with no rules yet.
    #[must_use]
    pub fn builder() -> SpanMetricsBuilder {
        SpanMetricsBuilder::default()
    }

    /// The RED metrics of the OpenTelemetry Collector's spanmetrics connector for every span:
    /// see [`SpanMetricsBuilder::red`].
    ///
    /// ```
    /// let layer = tracing_spanmetrics::SpanMetrics::red("checkout").build().unwrap();
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn red(service_name: impl Into<String>) -> SpanMetricsBuilder {
        SpanMetricsBuilder::default().red(service_name, Spans::all())
    }
}

/// Collects rules and settings; [`build`](SpanMetricsBuilder::build) validates them.
#[derive(Debug, Clone)]
pub struct SpanMetricsBuilder {
    rules: Vec<Metric>,
    cardinality_limit: usize,
    max_label_len: usize,
    /// `None`: the facade's current recorder for a new layer, the running one on a reload.
    recorder: Option<RecorderRef>,
    clock: Option<quanta::Clock>,
}

impl Default for SpanMetricsBuilder {
    fn default() -> Self {
        SpanMetricsBuilder {
            rules: Vec::new(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            max_label_len: DEFAULT_MAX_LABEL_LEN,
            recorder: None,
            clock: None,
        }
    }
}

/// The RED calls counter, as the OpenTelemetry Collector's spanmetrics connector exports it
/// (its `traces.span.metrics.calls`), whatever the exporter's naming settings.
pub const RED_CALLS: &str = "traces_span_metrics_calls_total";
/// The RED duration histogram, in seconds, as the OpenTelemetry Collector's spanmetrics
/// connector exports it (its `traces.span.metrics.duration`; Prometheus shows
/// `traces_span_metrics_duration_seconds_bucket`, `_sum` and `_count`).
pub const RED_DURATION: &str = "traces_span_metrics_duration_seconds";

impl SpanMetricsBuilder {
    /// Adds a rule.
    #[must_use]
    pub fn metric(mut self, metric: Metric) -> Self {
        self.rules.push(metric);
        self
    }

    /// Adds several rules.
    #[must_use]
    pub fn metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.rules.extend(metrics);
        self
    }

    /// Adds the RED metrics that the OpenTelemetry Collector's spanmetrics connector derives, for
    /// the selected spans: a calls counter [`RED_CALLS`] and a duration histogram
    /// [`RED_DURATION`] in seconds (buckets [`Buckets::red_seconds`]: 100 µs to 15 s), labelled
    /// `service.name`, `span.name` (honouring `otel.name`), `span.kind` (from `otel.kind`,
    /// `SPAN_KIND_INTERNAL` by default) and `status.code` (`STATUS_CODE_UNSET`,
    /// `STATUS_CODE_OK` from `otel.status_code`, `STATUS_CODE_ERROR` from it or from an error
    /// event).
    #[must_use]
    pub fn red(self, service_name: impl Into<String>, spans: Spans) -> Self {
        let service = service_name.into();
        let labels = || {
            [
                Label::fixed("service.name", service.clone()),
                Label::span_name("span.name"),
                Label::span_kind("span.kind"),
                Label::otel_status_code("status.code"),
            ]
        };
        self.metric(
            Metric::counter(RED_CALLS)
                .describe("Spans ended, by name, kind and status (spanmetrics connector calls)")
                .spans(spans.clone())
                .spans_closed()
                .labels(labels()),
        )
        .metric(
            Metric::histogram(RED_DURATION)
                .describe(
                    "Span durations, by name, kind and status (spanmetrics connector duration)",
                )
                .unit(Unit::Seconds)
                .spans(spans)
                .wall_time()
                .labels(labels())
                .buckets(Buckets::red_seconds()),
        )
    }

    /// The most distinct label sets per family, for families that set no limit of their own
    /// ([`Metric::cardinality_limit`]); further label sets go to the overflow series. Must be at
    /// least 1.
    ///
    /// Defaults to [`DEFAULT_CARDINALITY_LIMIT`] (2000).
    #[must_use]
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Label values longer than `bytes` are cut on a character boundary (and counted in
    /// [`TRUNCATED_METRIC`](crate::TRUNCATED_METRIC)). Must be at least 8.
    ///
    /// Defaults to [`DEFAULT_MAX_LABEL_LEN`] (128 bytes).
    #[must_use]
    pub fn max_label_len(mut self, bytes: usize) -> Self {
        self.max_label_len = bytes;
        self
    }

    /// Registers metrics on `recorder` instead of the `metrics` facade's current recorder.
    /// Useful in tests (a `metrics_util::debugging::DebuggingRecorder` sees every thread) and
    /// to keep span metrics apart from the application's own.
    ///
    /// Defaults to the `metrics` facade's current recorder, looked up when a series is first
    /// recorded (so an exporter installed after the layer is built still gets every series). On
    /// a [reload](crate::ReloadHandle::reload), defaults to the running layer's recorder.
    #[must_use]
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        self.recorder = Some(RecorderRef::Explicit(recorder));
        self
    }

    /// The clock durations are measured with. The default, `quanta::Clock::new()`, reads the
    /// CPU's time-stamp counter where it is invariant (a few ns, against ~25 ns for
    /// `Instant::now()` here) and falls back to the monotonic OS clock elsewhere. Tests pass
    /// `quanta::Clock::mock()` to make durations exact.
    ///
    /// Defaults to `quanta::Clock::new()`. A reload cannot change it.
    #[must_use]
    pub fn with_clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The rules added so far.
    pub fn rules(&self) -> &[Metric] {
        &self.rules
    }

    /// Every histogram family the rules declare, with its buckets (the first declaration of a
    /// name wins; [`build`](SpanMetricsBuilder::build) checks that the others agree). Lets an
    /// exporter be configured before the layer is built, e.g. to hand its recorder to
    /// [`with_recorder`](SpanMetricsBuilder::with_recorder).
    pub fn histograms(&self) -> Vec<HistogramInfo> {
        let mut seen: HashSet<&str> = HashSet::new();
        self.rules
            .iter()
            .filter(|m| m.kind == MetricKind::Histogram && seen.insert(&m.name))
            .map(|m| {
                let unit = m.effective_unit();
                let buckets = m
                    .buckets
                    .clone()
                    .unwrap_or_else(|| Buckets::default_for(unit));
                HistogramInfo {
                    name: m.name.clone(),
                    exported_name: exported_name(&m.name, m.kind, unit),
                    buckets: buckets.bounds().to_vec(),
                }
            })
            .collect()
    }

    /// Validates every rule and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the rule and the problem: an invalid metric or label name, a
    /// measure that does not fit the instrument, a family declared twice with different kinds,
    /// units, label keys or buckets, bad bucket boundaries, an empty selector, a label value
    /// longer than the length bound, or a limit of zero.
    pub fn build(self) -> Result<SpanMetricsLayer, ConfigError> {
        let model = self.compile(None)?;
        let clock = self.clock.unwrap_or_default();
        Ok(SpanMetricsLayer::new(model, clock))
    }

    /// Validates every rule into a model. `running` is the recorder of the layer being reloaded,
    /// kept unless this builder names one.
    pub(crate) fn compile(&self, running: Option<&RecorderRef>) -> Result<Model, ConfigError> {
        if self.cardinality_limit == 0 {
            return Err(ConfigError::global(
                "the cardinality limit must be at least 1",
            ));
        }
        if self.max_label_len < 8 {
            return Err(ConfigError::global(
                "the label length bound must be at least 8 bytes",
            ));
        }
        let mut families: Vec<Family> = Vec::new();
        // Declared name → (family, the first rule that declared it).
        let mut by_name: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, m) in self.rules.iter().enumerate() {
            let err = |(key, p): Problem| {
                let mut e = ConfigError::rule(i, &m.name, p);
                e.key = Some(key);
                e
            };
            validate_metric(m, self.max_label_len).map_err(err)?;
            let measure = m.effective_measure();
            let unit = m.effective_unit();
            let limit = m.cardinality_limit.unwrap_or(self.cardinality_limit);
            let keys: Vec<String> = m.labels.iter().map(|l| l.key.clone()).collect();
            let buckets = (m.kind == MetricKind::Histogram).then(|| {
                m.buckets
                    .clone()
                    .unwrap_or_else(|| Buckets::default_for(unit))
            });
            let family = match by_name.get(m.name.as_str()) {
                None => {
                    families.push(Family::new(
                        m.name.clone(),
                        exported_name(&m.name, m.kind, unit),
                        m.kind,
                        unit,
                        m.description.clone(),
                        keys,
                        buckets,
                        limit,
                    ));
                    by_name.insert(&m.name, (families.len() - 1, i));
                    families.len() - 1
                }
                Some(&(fi, _)) => {
                    let f = &mut families[fi];
                    check_same_family(f, m, unit, &keys, &buckets, limit).map_err(err)?;
                    if f.description.is_none() {
                        f.description = m.description.clone();
                    }
                    fi
                }
            };
            // Labels follow the family's key order, so every rule of a family hashes alike.
            let order: Vec<String> = families[family]
                .label_keys
                .iter()
                .map(|k| k.to_string())
                .collect();
            let mut labels = m.labels.clone();
            labels.sort_by_key(|l| order.iter().position(|k| *k == l.key));
            rules.push(Rule {
                family,
                spans: m.spans.clone(),
                measure,
                labels,
                conditions: m.conditions.clone(),
            });
        }
        let first_rules: Vec<usize> = {
            let mut first = vec![0; families.len()];
            for &(fi, rule) in by_name.values() {
                first[fi] = rule;
            }
            first
        };
        check_exported_names(&families, &first_rules)?;
        let recorder = match (&self.recorder, running) {
            (Some(own), _) => own.clone(),
            (None, Some(running)) => running.clone(),
            (None, None) => RecorderRef::Global,
        };
        Ok(Model::new(
            rules,
            families,
            Settings {
                max_label_len: self.max_label_len,
                recorder,
            },
        ))
    }

    /// Whether this builder sets a clock of its own.
    pub(crate) fn sets_clock(&self) -> bool {
        self.clock.is_some()
    }
}

/// Refuses families that Prometheus would see as one, or whose samples would collide: the same
/// exported name from two declared names, one family's name among another's derived sample
/// names, or a name the layer's own health counters use. `first_rules[f]` is the first rule
/// that declared family `f`, named in the error.
fn check_exported_names(families: &[Family], first_rules: &[usize]) -> Result<(), ConfigError> {
    // Claimed name → the family that claimed it first, in rule order.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<usize> = (0..families.len()).collect();
    order.sort_by_key(|&f| first_rules[f]);
    for f in order {
        let family = &families[f];
        let refuse = |problem: String| {
            let mut e = ConfigError::rule(first_rules[f], &family.name, problem);
            e.key = Some("name");
            e
        };
        if let Some(health) = HEALTH_METRICS.iter().find(|h| {
            claimed_names(h, MetricKind::Counter)
                .iter()
                .any(|c| claimed_names(&family.exported, family.kind).contains(c))
        }) {
            return Err(refuse(format!(
                "exported as `{}`, which collides with `{health}`, the layer's own health \
                 counter; choose another name",
                family.exported
            )));
        }
        for name in claimed_names(&family.exported, family.kind) {
            if let Some(&other) = claimed.get(&name) {
                let o = &families[other];
                let problem = if o.exported == family.exported && o.kind == family.kind {
                    format!(
                        "exported as `{}`, the same name as rule #{} (`{}`) once `.` becomes \
                         `_` and unit and `_total` suffixes are added; give the two families \
                         distinct names",
                        family.exported, first_rules[other], o.name
                    )
                } else {
                    format!(
                        "exported as `{}`, whose sample `{name}` collides with the {} of rule \
                         #{} (`{}`, exported as `{}`); rename one of them",
                        family.exported,
                        o.kind.as_str(),
                        first_rules[other],
                        o.name,
                        o.exported
                    )
                };
                return Err(refuse(problem));
            }
        }
        for name in claimed_names(&family.exported, family.kind) {
            claimed.insert(name, f);
        }
    }
    Ok(())
}

fn check_same_family(
    f: &Family,
    m: &Metric,
    unit: Unit,
    keys: &[String],
    buckets: &Option<Buckets>,
    limit: usize,
) -> Result<(), Problem> {
    if f.kind != m.kind {
        return Err(at("kind")(format!(
            "declared as a {} here but as a {} by an earlier rule",
            m.kind.as_str(),
            f.kind.as_str()
        )));
    }
    if f.unit != unit {
        return Err(at("unit")(format!(
            "unit `{}` differs from `{}` declared by an earlier rule",
            unit.as_str(),
            f.unit.as_str()
        )));
    }
    let mut a: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut b: Vec<&str> = f.label_keys.iter().map(|k| k.as_ref()).collect();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        return Err(at("labels")(format!(
            "label keys [{}] differ from [{}] declared by an earlier rule of the same metric \
             (a rule may leave a label without value, but must declare it)",
            a.join(", "),
            b.join(", ")
        )));
    }
    if m.buckets.is_some() && *buckets != f.buckets {
        return Err(at("buckets")(
            "bucket boundaries differ from an earlier rule of the same metric".into(),
        ));
    }
    if m.cardinality_limit.is_some() && limit != f.limit {
        return Err(at("cardinality_limit")(
            "cardinality limit differs from an earlier rule of the same metric".into(),
        ));
    }
    match (&f.description, &m.description) {
        (Some(a), Some(b)) if a != b => Err(at("description")(
            "description differs from an earlier rule of the same metric".into(),
        )),
        _ => Ok(()),
    }
}

/// Prometheus metric names (dots allowed: the exporter turns them into underscores).
fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the metric name is empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_' || c == ':') => {
            return Err(format!(
                "invalid metric name `{name}`: it must start with a letter, `_` or `:`"
            ));
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))) {
        return Err(format!(
            "invalid metric name `{name}`: `{}` is not allowed (use letters, digits, `_`, `:` and `.`)",
            c.escape_default()
        ));
    }
    if name.contains("..") || name.ends_with('.') {
        return Err(format!(
            "invalid metric name `{name}`: empty dot-separated segment"
        ));
    }
    Ok(())
}

fn check_label_key(key: &str, kind: MetricKind) -> Result<(), String> {
    let mut chars = key.chars();
    match chars.next() {
        None => return Err("a label key is empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Err(format!(
                "invalid label key `{key}`: it must start with a letter or `_`"
            ));
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))) {
        return Err(format!(
            "invalid label key `{key}`: `{}` is not allowed (use letters, digits, `_` and `.`)",
            c.escape_default()
        ));
    }
    if key.starts_with("__") {
        return Err(format!(
            "invalid label key `{key}`: keys starting with `__` are reserved by Prometheus"
        ));
    }
    if key == OVERFLOW_LABEL {
        return Err(format!(
            "label key `{key}` is reserved for the overflow series"
        ));
    }
    if kind == MetricKind::Histogram && (key == "le" || key == "quantile") {
        return Err(format!(
            "label key `{key}` is reserved for histogram buckets and quantiles"
        ));
    }
    Ok(())
}

fn check_field_name(what: &str, field: &str) -> Result<(), String> {
    if field.trim().is_empty() {
        return Err(format!("{what} names an empty field"));
    }
    Ok(())
}

fn check_spans(spans: &Spans) -> Result<(), String> {
    if spans.names.iter().any(|n| n.is_empty()) {
        return Err("a span name pattern is empty (it would select no span)".into());
    }
    if spans.target.as_deref() == Some("") {
        return Err("the span target is empty; leave it out to select every target".into());
    }
    Ok(())
}

/// A problem with one rule, and the key of the rule it is about (for locating it in a file).
pub(crate) type Problem = (&'static str, String);

fn at(key: &'static str) -> impl Fn(String) -> Problem {
    move |text| (key, text)
}

fn validate_metric(m: &Metric, max_label_len: usize) -> Result<(), Problem> {
    check_metric_name(&m.name).map_err(at("name"))?;
    let measure = m.effective_measure();
    if !measure.allows(m.kind) {
        return Err(at(if m.measure.is_some() {
            "measure"
        } else {
            "kind"
        })(format!(
            "a {} cannot record `{}` (durations need a histogram, span and event counts a counter, \
             in-flight spans a gauge)",
            m.kind.as_str(),
            measure.name()
        )));
    }
    if measure.is_duration() && m.unit.is_some_and(|u| u != Unit::Seconds) {
        return Err(at("unit")(
            "durations are measured in seconds; the unit must be `seconds`".into(),
        ));
    }
    if let Some(spans) = &m.spans {
        check_spans(spans).map_err(at("spans"))?;
    }
    check_measure(&measure, max_label_len).map_err(at("measure"))?;
    check_labels(m, max_label_len).map_err(at("labels"))?;
    check_conditions(m).map_err(at("when"))?;
    if let Some(b) = &m.buckets {
        if m.kind != MetricKind::Histogram {
            return Err(at("buckets")(format!(
                "a {} has no buckets",
                m.kind.as_str()
            )));
        }
        check_buckets(b).map_err(at("buckets"))?;
    }
    if m.cardinality_limit == Some(0) {
        return Err(at("cardinality_limit")(
            "the cardinality limit must be at least 1".into(),
        ));
    }
    Ok(())
}

fn check_measure(measure: &Measure, max_label_len: usize) -> Result<(), String> {
    match measure {
        Measure::InFlightAfter(f) => check_field_name("the in-flight gate", f),
        Measure::SpanField(f) => check_field_name("the measured span field", f),
        Measure::EventField(e, f) => {
            check_field_name("the measured event field", f)?;
            check_event(e, max_label_len)
        }
        Measure::Events(e) | Measure::TimeToEvent(e) => check_event(e, max_label_len),
        _ => Ok(()),
    }
}

fn check_labels(m: &Metric, max_label_len: usize) -> Result<(), String> {
    if m.labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; at most {MAX_LABELS} are allowed",
            m.labels.len()
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for label in &m.labels {
        check_label_key(&label.key, m.kind)?;
        // Prometheus turns dots into underscores: `a.b` and `a_b` would be one label there.
        let exported = label.key.replace('.', "_");
        if seen.contains(&exported) {
            return Err(format!(
                "label key `{}` appears twice (after `.` becomes `_` in Prometheus)",
                label.key
            ));
        }
        seen.push(exported);
        if let LabelSource::Field(f) = &label.source {
            check_field_name(&format!("label `{}`", label.key), f)?;
        }
        let fixed = match &label.source {
            LabelSource::Fixed(v) => Some(v.as_str()),
            _ => None,
        };
        if fixed.is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "label `{}`: the fixed value {:?} is blank; Prometheus treats an empty label \
                 value as no label at all, so give it a non-blank value",
                label.key,
                fixed.unwrap_or_default()
            ));
        }
        for value in fixed.into_iter().chain(label.default.as_deref()) {
            if value.len() > max_label_len {
                return Err(format!(
                    "label `{}`: value of {} bytes exceeds the {max_label_len}-byte bound",
                    label.key,
                    value.len()
                ));
            }
        }
        if let Some(crate::config::Mapping::Table { entries, otherwise }) = &label.mapping {
            if let Some((_, v)) = entries.iter().find(|(_, v)| v.len() > max_label_len) {
                return Err(format!(
                    "label `{}`: mapped value `{v}` exceeds the {max_label_len}-byte bound",
                    label.key
                ));
            }
            if otherwise.as_ref().is_some_and(|o| o.len() > max_label_len) {
                return Err(format!(
                    "label `{}`: fallback value exceeds the {max_label_len}-byte bound",
                    label.key
                ));
            }
        }
    }
    Ok(())
}

fn check_conditions(m: &Metric) -> Result<(), String> {
    for c in &m.conditions {
        if let Condition::Field(fc) = c {
            check_field_name("a condition", &fc.field)?;
            if let FieldTest::Between(lo, hi) | FieldTest::NotBetween(lo, hi) = fc.test {
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(format!(
                        "condition on `{}`: the range {lo}..={hi} is empty",
                        fc.field
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_event(e: &crate::config::EventMatch, max_label_len: usize) -> Result<(), String> {
    if e.name.as_deref() == Some("") {
        return Err("the event name pattern is empty".into());
    }
    if let Some(f) = e.fields.iter().find(|f| f.trim().is_empty()) {
        return Err(format!(
            "the event selector requires an empty field name `{f}`"
        ));
    }
    if e.message.as_ref().is_some_and(|m| m.len() > max_label_len) {
        return Err(format!(
            "the event message to match is longer than the {max_label_len}-byte bound on captured text"
        ));
    }
    Ok(())
}

/// Bucket boundaries: at most [`MAX_BUCKETS`](crate::config::MAX_BUCKETS), finite and
/// strictly increasing.
pub(crate) fn check_buckets(b: &Buckets) -> Result<(), String> {
    use crate::config::{Excess, MAX_BUCKETS};
    let asked = match b.excess() {
        Some(Excess::Count(n)) => Some(n.to_string()),
        Some(Excess::Unknown) => Some(format!("more than {MAX_BUCKETS}")),
        None => None,
    };
    if let Some(asked) = asked {
        return Err(format!(
            "{asked} bucket boundaries were asked for; at most {MAX_BUCKETS} are accepted"
        ));
    }
    let bounds = b.bounds();
    if bounds.is_empty() {
        return Err("bucket boundaries are empty".into());
    }
    if let Some(x) = bounds.iter().find(|x| !x.is_finite()) {
        return Err(format!("bucket boundary {x} is not finite"));
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bucket boundaries must be strictly increasing, but {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(())
}
