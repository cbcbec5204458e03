//! The builder: collects rules and settings. [`SpanMetricsBuilder::build`] validates them
//! and builds the layer (see `crate::layer`); a TOML file is read into the same builder
//! (`super::file`).

use std::collections::HashSet;
use std::sync::Arc;

use metrics::Recorder;

use super::red::{Red, RedProblem};
use super::{Buckets, Metric, MetricKind, Spans};
use crate::config::exported_name;

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

    /// The RED metrics of the OpenTelemetry Collector's spanmetrics connector for every span,
    /// with the connector's defaults: see [`SpanMetricsBuilder::red`].
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
#[derive(Clone)]
pub struct SpanMetricsBuilder {
    pub(crate) rules: Vec<Metric>,
    pub(crate) cardinality_limit: usize,
    pub(crate) max_label_len: usize,
    pub(crate) label_value_limit: Option<usize>,
    /// `None`: the facade's current recorder for a new layer, the running one on a reload.
    pub(crate) recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    pub(crate) clock: Option<quanta::Clock>,
    /// Service-level objectives on the families (see `super::objective`).
    pub(crate) objectives: Vec<super::Objective>,
    /// The first problem with RED options that no rule can show, reported by `build`.
    pub(crate) red_problem: Option<RedProblem>,
}

impl std::fmt::Debug for SpanMetricsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetricsBuilder")
            .field("rules", &self.rules)
            .field("cardinality_limit", &self.cardinality_limit)
            .field("max_label_len", &self.max_label_len)
            .field("label_value_limit", &self.label_value_limit)
            .field("recorder", &self.recorder.as_ref().map(|_| ".."))
            .field("clock", &self.clock.as_ref().map(|_| ".."))
            .field("objectives", &self.objectives)
            .field("red_problem", &self.red_problem)
            .finish()
    }
}

/// What the exporter needs to know about a histogram family.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramInfo {
    /// The family's name, as the rules declare it.
    pub name: String,
    /// The name it is registered with the `metrics` facade and exported under (dots become
    /// `_`, the unit suffix is appended: see the crate's "Exported names"). Exporter settings
    /// match this name.
    pub exported_name: String,
    /// Its bucket boundaries.
    pub buckets: Vec<f64>,
}

impl Default for SpanMetricsBuilder {
    fn default() -> Self {
        SpanMetricsBuilder {
            rules: Vec::new(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            max_label_len: DEFAULT_MAX_LABEL_LEN,
            label_value_limit: None,
            recorder: None,
            clock: None,
            objectives: Vec::new(),
            red_problem: None,
        }
    }
}

/// The RED calls counter, as the OpenTelemetry Collector's spanmetrics connector exports it
/// (its `traces.span.metrics.calls`), whatever the exporter's naming settings.
pub const RED_CALLS: &str = "traces_span_metrics_calls_total";
/// The RED duration histogram in its default unit, milliseconds, as the OpenTelemetry
/// Collector's spanmetrics connector exports it by default (its `traces.span.metrics.duration`;
/// Prometheus shows `traces_span_metrics_duration_milliseconds_bucket`, `_sum` and `_count`).
pub const RED_DURATION: &str = "traces_span_metrics_duration_milliseconds";
/// The RED duration histogram in seconds ([`Red::unit`] set to [`Unit::Seconds`](crate::Unit)),
/// as the connector exports it with `histogram.unit: s`.
pub const RED_DURATION_SECONDS: &str = "traces_span_metrics_duration_seconds";
/// The RED events counter ([`Red::events`]), as the connector exports it (its
/// `traces.span.metrics.events`).
pub const RED_EVENTS: &str = "traces_span_metrics_events_total";

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
    /// the selected spans, with the connector's defaults: a calls counter [`RED_CALLS`] and a
    /// duration histogram [`RED_DURATION`] in milliseconds (buckets
    /// [`Buckets::red_milliseconds`]: 0.1 ms to 15 s), labelled `service.name`, `span.name`
    /// (honouring `otel.name`), `span.kind` (from `otel.kind`, `SPAN_KIND_INTERNAL` by default)
    /// and `status.code` (`STATUS_CODE_UNSET`, `STATUS_CODE_OK` from `otel.status_code`,
    /// `STATUS_CODE_ERROR` from it or from an error event). Shorthand for
    /// [`red_with`](SpanMetricsBuilder::red_with)`(Red::new(service_name).spans(spans))`.
    #[must_use]
    pub fn red(self, service_name: impl Into<String>, spans: Spans) -> Self {
        self.red_with(Red::new(service_name).spans(spans))
    }

    /// Adds the RED metrics of the OpenTelemetry Collector's spanmetrics connector with the
    /// connector's options (see [`Red`]). Options that are wrong on their own (a blank
    /// namespace, an excluded dimension that is not a default one) are reported by
    /// [`build`](SpanMetricsBuilder::build), like every problem of the rules they add.
    #[must_use]
    pub fn red_with(mut self, red: Red) -> Self {
        match red.check() {
            Ok(()) => self.metrics(red.rules()),
            Err(problem) => {
                self.red_problem.get_or_insert(problem);
                self
            }
        }
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

    /// The most distinct values each label takes in its family, for labels that set no
    /// [limit of their own](crate::Label::value_limit): per-label overflow, beside the
    /// family's limit on label sets. Must be at least 1.
    ///
    /// Defaults to none: labels take any number of values (the family's
    /// [`cardinality_limit`](SpanMetricsBuilder::cardinality_limit) still bounds its series).
    #[must_use]
    pub fn label_value_limit(mut self, limit: usize) -> Self {
        self.label_value_limit = Some(limit);
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
        self.recorder = Some(recorder);
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

    /// Declares a service-level objective on a family of the rules (see
    /// [`Objective`](super::Objective)); [`build`](SpanMetricsBuilder::build) checks it against
    /// the family. [`crate::operations`] generates its recording rules, alerts and dashboard
    /// panels.
    ///
    /// Defaults to no objectives.
    #[must_use]
    pub fn objective(mut self, objective: super::Objective) -> Self {
        self.objectives.push(objective);
        self
    }

    /// The objectives declared so far.
    pub fn objectives(&self) -> &[super::Objective] {
        &self.objectives
    }

    /// Whether this builder sets a clock of its own.
    pub(crate) fn sets_clock(&self) -> bool {
        self.clock.is_some()
    }
}
