//! RED mode: the metrics of the OpenTelemetry Collector's spanmetrics connector, with the
//! connector's options. [`Red`] only assembles ordinary [`Metric`] rules; the builder validates
//! them like any other.

use super::label::OutcomeValues;
use super::{Buckets, EventMatch, Label, Metric, Spans, Unit};

/// The connector's default namespace: every RED family's name starts with it.
pub const RED_NAMESPACE: &str = "traces.span.metrics";

/// Which label carries a span's status in RED mode.
///
/// The connector writes `status.code` (`STATUS_CODE_UNSET`, `STATUS_CODE_OK`,
/// `STATUS_CODE_ERROR`) unless its feature gate `spanmetrics.statusCodeConvention.useOtelPrefix`
/// is on; then it writes `otel.status_code` (`OK`, `ERROR`, and no label for an unset status),
/// as the OpenTelemetry semantic conventions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatusCodeLabel {
    /// `status.code` = `STATUS_CODE_UNSET` | `STATUS_CODE_OK` | `STATUS_CODE_ERROR`.
    #[default]
    StatusCode,
    /// `otel.status_code` = `OK` | `ERROR`, left off while the status is unset.
    OtelStatusCode,
}

impl StatusCodeLabel {
    /// The label's key.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            StatusCodeLabel::StatusCode => "status.code",
            StatusCodeLabel::OtelStatusCode => "otel.status_code",
        }
    }

    fn label(self) -> Label {
        match self {
            StatusCodeLabel::StatusCode => Label::otel_status_code(self.key()),
            StatusCodeLabel::OtelStatusCode => {
                Label::outcome_with(self.key(), OutcomeValues::otel_semconv())
            }
        }
    }
}

/// The RED metrics of the OpenTelemetry Collector's spanmetrics connector, with the
/// connector's options, for [`SpanMetricsBuilder::red_with`](crate::SpanMetricsBuilder::red_with).
///
/// Each option is named after the connector's configuration key (in brackets). The families,
/// with the default namespace:
/// - `traces.span.metrics.calls` (exported `traces_span_metrics_calls_total`): spans ended;
/// - `traces.span.metrics.duration` (exported `traces_span_metrics_duration_milliseconds`,
///   or `…_seconds`): span durations;
/// - `traces.span.metrics.events` (exported `traces_span_metrics_events_total`), once
///   enabled: events inside the spans, one count per event.
///
/// Every family is labelled by the default dimensions `service.name`, `span.name` (honouring
/// `otel.name`), `span.kind` (from `otel.kind`) and `status.code` (or `otel.status_code`),
/// less the excluded ones, then by the extra dimensions.
///
/// ```
/// use tracing_spanmetrics::{Label, Red, SpanMetrics, StatusCodeLabel, Unit};
///
/// let layer = SpanMetrics::builder()
///     .red_with(
///         Red::new("checkout")
///             .unit(Unit::Seconds)
///             .dimension(Label::field("http.method").default("GET"))
///             .exclude_dimension("span.kind")
///             .calls_dimension("http.status_code")
///             .events(["exception.type"])
///             .status_code(StatusCodeLabel::OtelStatusCode),
///     )
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), tracing_spanmetrics::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Red {
    pub(crate) service_name: String,
    pub(crate) spans: Spans,
    pub(crate) namespace: String,
    pub(crate) unit: Unit,
    pub(crate) buckets: Option<Buckets>,
    pub(crate) histogram: bool,
    pub(crate) dimensions: Vec<Label>,
    pub(crate) exclude: Vec<String>,
    pub(crate) calls_dimensions: Vec<Label>,
    pub(crate) histogram_dimensions: Vec<Label>,
    pub(crate) events: Option<Vec<Label>>,
    pub(crate) status_code: StatusCodeLabel,
    pub(crate) cardinality_limit: Option<usize>,
}

/// A problem with RED options: the connector key it is about, and what is wrong.
pub(crate) type RedProblem = (&'static str, String);

impl Red {
    /// RED metrics for every span of the service `service_name`, with the connector's defaults.
    #[must_use]
    pub fn new(service_name: impl Into<String>) -> Self {
        Red {
            service_name: service_name.into(),
            spans: Spans::all(),
            namespace: RED_NAMESPACE.to_owned(),
            unit: Unit::Milliseconds,
            buckets: None,
            histogram: true,
            dimensions: Vec::new(),
            exclude: Vec::new(),
            calls_dimensions: Vec::new(),
            histogram_dimensions: Vec::new(),
            events: None,
            status_code: StatusCodeLabel::StatusCode,
            cardinality_limit: None,
        }
    }

    /// Which spans are measured.
    ///
    /// Defaults to every span.
    #[must_use]
    pub fn spans(mut self, spans: Spans) -> Self {
        self.spans = spans;
        self
    }

    /// The prefix of every RED family's name (`namespace`): `{namespace}.calls`,
    /// `{namespace}.duration`, `{namespace}.events`. Must not be blank.
    ///
    /// Defaults to [`RED_NAMESPACE`] (`traces.span.metrics`).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The duration histogram's unit (`histogram.unit`: `ms` or `s`): [`Unit::Milliseconds`]
    /// (exported `…_duration_milliseconds`) or [`Unit::Seconds`] (`…_duration_seconds`).
    ///
    /// Defaults to [`Unit::Milliseconds`], as the connector (and Jaeger's Monitor tab).
    #[must_use]
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// The duration histogram's boundaries, in its unit (`histogram.explicit.buckets`).
    ///
    /// Defaults to [`Buckets::red_milliseconds`] (or [`Buckets::red_seconds`] in seconds):
    /// every boundary of the connector's default and four below it. Give the connector's own
    /// list (`2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000`)
    /// for exactly its buckets.
    #[must_use]
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Whether the duration histogram is recorded at all (`histogram.disable` is the
    /// opposite).
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn histogram(mut self, enabled: bool) -> Self {
        self.histogram = enabled;
        self
    }

    /// Adds a dimension to every RED family (`dimensions`); a `&str` is a span field of that
    /// name. A dimension that the span (or, for the events counter, the event) does not have
    /// takes its default, and is left off without one, as in the connector.
    ///
    /// Defaults to none beyond the default dimensions.
    #[must_use]
    pub fn dimension(mut self, dimension: impl Into<Label>) -> Self {
        self.dimensions.push(dimension.into());
        self
    }

    /// Removes a default dimension (`exclude_dimensions`): `service.name`, `span.name`,
    /// `span.kind` or the status label (`status.code`, or `otel.status_code`).
    ///
    /// Defaults to none.
    #[must_use]
    pub fn exclude_dimension(mut self, dimension: impl Into<String>) -> Self {
        self.exclude.push(dimension.into());
        self
    }

    /// Adds a dimension to the calls counter only (`calls_dimensions`).
    ///
    /// Defaults to none.
    #[must_use]
    pub fn calls_dimension(mut self, dimension: impl Into<Label>) -> Self {
        self.calls_dimensions.push(dimension.into());
        self
    }

    /// Adds a dimension to the duration histogram only (`histogram.dimensions`).
    ///
    /// Defaults to none.
    #[must_use]
    pub fn histogram_dimension(mut self, dimension: impl Into<Label>) -> Self {
        self.histogram_dimensions.push(dimension.into());
        self
    }

    /// Enables the events counter (`events.enabled`) with these extra dimensions
    /// (`events.dimensions`), read from the event's fields first, then the span's.
    ///
    /// Defaults to disabled.
    #[must_use]
    pub fn events<L: Into<Label>>(mut self, dimensions: impl IntoIterator<Item = L>) -> Self {
        self.events = Some(dimensions.into_iter().map(Into::into).collect());
        self
    }

    /// The status label's convention (the connector's feature gate
    /// `spanmetrics.statusCodeConvention.useOtelPrefix`).
    ///
    /// Defaults to [`StatusCodeLabel::StatusCode`].
    #[must_use]
    pub fn status_code(mut self, label: StatusCodeLabel) -> Self {
        self.status_code = label;
        self
    }

    /// The most label sets each RED family keeps (`aggregation_cardinality_limit`); further
    /// ones go to its overflow series.
    ///
    /// Defaults to the builder's [`cardinality_limit`](crate::SpanMetricsBuilder::cardinality_limit).
    #[must_use]
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// The default dimensions' keys, in order.
    pub(crate) fn default_keys(&self) -> [&'static str; 4] {
        [
            "service.name",
            "span.name",
            "span.kind",
            self.status_code.key(),
        ]
    }

    /// The problem with options that no rule can show (rules check everything else), with the
    /// connector key it is about.
    pub(crate) fn check(&self) -> Result<(), RedProblem> {
        if self.namespace.trim().is_empty() {
            return Err((
                "namespace",
                format!(
                    "the namespace {:?} is blank; every RED family's name starts with it \
                     (the connector's default is `{RED_NAMESPACE}`)",
                    self.namespace
                ),
            ));
        }
        if !self.unit.is_time() {
            return Err((
                "histogram",
                format!(
                    "the duration unit `{}` is not a unit of time; expected `ms` or `s`",
                    self.unit.as_str()
                ),
            ));
        }
        let defaults = self.default_keys();
        for (i, name) in self.exclude.iter().enumerate() {
            if !defaults.contains(&name.as_str()) {
                let near = crate::config::file::accepted(name, &defaults);
                return Err((
                    "exclude_dimensions",
                    format!("`{name}` is not a default dimension: {near}"),
                ));
            }
            if self.exclude[..i].contains(name) {
                return Err(("exclude_dimensions", format!("`{name}` is excluded twice")));
            }
        }
        Ok(())
    }

    /// The rules: the calls counter, the duration histogram (unless disabled) and the events
    /// counter (if enabled).
    pub(crate) fn rules(&self) -> Vec<Metric> {
        let service = self.service_name.clone();
        let defaults = [
            Label::fixed("service.name", service),
            Label::span_name("span.name"),
            Label::span_kind("span.kind"),
            self.status_code.label(),
        ];
        let common: Vec<Label> = defaults
            .into_iter()
            .filter(|l| !self.exclude.contains(&l.key))
            .chain(self.dimensions.iter().cloned())
            .collect();
        let with =
            |extra: &[Label]| -> Vec<Label> { common.iter().chain(extra).cloned().collect() };
        let limit = |m: Metric| match self.cardinality_limit {
            Some(limit) => m.cardinality_limit(limit),
            None => m,
        };
        let ns = &self.namespace;
        let mut rules = vec![limit(
            Metric::counter(format!("{ns}.calls"))
                .describe("Spans ended, by name, kind and status (spanmetrics connector calls)")
                .spans(self.spans.clone())
                .spans_closed()
                .labels(with(&self.calls_dimensions)),
        )];
        if self.histogram {
            let buckets = self.buckets.clone().unwrap_or_else(|| match self.unit {
                Unit::Seconds => Buckets::red_seconds(),
                _ => Buckets::red_milliseconds(),
            });
            rules.push(limit(
                Metric::histogram(format!("{ns}.duration"))
                    .describe(
                        "Span durations, by name, kind and status (spanmetrics connector duration)",
                    )
                    .unit(self.unit)
                    .spans(self.spans.clone())
                    .wall_time()
                    .labels(with(&self.histogram_dimensions))
                    .buckets(buckets),
            ));
        }
        if let Some(dimensions) = &self.events {
            rules.push(limit(
                Metric::counter(format!("{ns}.events"))
                    .describe("Events inside spans, by span and event dimensions (spanmetrics connector events)")
                    .spans(self.spans.clone())
                    .events(EventMatch::any())
                    .labels(with(dimensions)),
            ));
        }
        rules
    }
}
