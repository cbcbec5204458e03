//! What to measure: the declarative model of metric rules.
//!
//! Every metric the layer produces is described by one [`Metric`] rule: its instrument kind and
//! name, which spans (and events) feed it, what is measured, which labels it carries and under
//! which conditions it records. Rules are plain values: build them in code with the methods
//! here, and hand them to [`SpanMetrics::builder`](crate::SpanMetrics::builder), which validates
//! them all at once and compiles them into per-callsite plans.
//!
//! ```
//! use tracing_spanmetrics::{Condition, Label, Mapping, Metric, Spans};
//!
//! let duration = Metric::histogram("http.client.duration.seconds")
//!     .describe("Round trip of an outgoing HTTP request")
//!     .spans(Spans::named("http_request").target("my_service"))
//!     .wall_time()
//!     .label("method")
//!     .label(Label::field("status").rename("status_class").map(Mapping::status_class()))
//!     .label(Label::outcome("result"));
//!
//! let failures = Metric::counter("http.client.failures.total")
//!     .describe("Responses that were not 2xx")
//!     .spans(Spans::named("http_request"))
//!     .spans_closed()
//!     .label("status")
//!     .when(Condition::field("status").not_between(200.0, 299.0));
//! # let _ = (duration, failures);
//! ```

mod builder;
mod error;
pub mod file;
mod label;
mod naming;
pub mod objective;
mod red;
mod route;
mod select;
mod validate;

pub use builder::{
    DEFAULT_CARDINALITY_LIMIT, DEFAULT_MAX_LABEL_LEN, HistogramInfo, MAX_LABELS, RED_CALLS,
    RED_DURATION, RED_DURATION_SECONDS, RED_EVENTS, SpanMetrics, SpanMetricsBuilder,
};
pub use error::{ConfigError, ConfigErrorKind};
pub(crate) use naming::{HEALTH_METRICS, claimed_names, exported_label_key, exported_name};
pub use naming::{
    LABEL_OVERFLOW_METRIC, LABEL_OVERFLOW_VALUE, OVERFLOW_LABEL, OVERFLOW_METRIC, REJECTED_METRIC,
    TRUNCATED_METRIC,
};
pub use objective::{Objective, ObjectiveKind};
pub use red::{RED_NAMESPACE, Red, StatusCodeLabel};
pub use route::{ROUTE_ID, RouteMapping};
pub(crate) use validate::{DeclaredFamily, RuleKey, check_buckets, validate};

pub use label::{Condition, FieldCondition, Label, LabelSource, Mapping, OutcomeValues};
pub(crate) use label::{
    FieldTest, OTEL_KIND, OTEL_NAME, OTEL_STATUS, OTEL_STATUS_DESCRIPTION, SPAN_KINDS,
};
pub use select::{EventMatch, Spans};

/// The instrument a metric family is recorded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonically increasing count (`metrics::Counter`).
    Counter,
    /// A value that goes up and down (`metrics::Gauge`).
    Gauge,
    /// A distribution of observations (`metrics::Histogram`), exported with buckets.
    Histogram,
}

impl MetricKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// The unit of a metric family, registered with its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// Seconds: the default unit of every duration the layer measures.
    Seconds,
    /// Milliseconds (the OpenTelemetry Collector spanmetrics connector's default duration
    /// unit): a duration measure of a family in milliseconds is recorded in thousandths of a
    /// second; a field's value is recorded as it is.
    Milliseconds,
    /// A plain count.
    Count,
    /// Bytes.
    Bytes,
}

impl Unit {
    pub(crate) fn to_metrics(self) -> metrics::Unit {
        match self {
            Unit::Seconds => metrics::Unit::Seconds,
            Unit::Milliseconds => metrics::Unit::Milliseconds,
            Unit::Count => metrics::Unit::Count,
            Unit::Bytes => metrics::Unit::Bytes,
        }
    }

    /// What one nanosecond is in this unit, for durations (1 for units that are not time).
    pub(crate) fn per_nanosecond(self) -> f64 {
        match self {
            Unit::Seconds => 1e-9,
            Unit::Milliseconds => 1e-6,
            _ => 1.0,
        }
    }

    /// Whether this is a unit of time.
    pub(crate) fn is_time(self) -> bool {
        matches!(self, Unit::Seconds | Unit::Milliseconds)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "milliseconds",
            Unit::Count => "count",
            Unit::Bytes => "bytes",
        }
    }
}

/// What a rule measures.
///
/// Durations are in seconds and recorded into histograms when the span closes. Span counters and
/// in-flight gauges follow span lifetimes; event measures follow events inside selected spans.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Measure {
    /// Span created → span closed.
    WallTime,
    /// Time the span was entered, counting overlapping enters (from several threads or nested
    /// re-entry) once: the clock runs while at least one enter is active.
    BusyTime,
    /// Wall time minus busy time.
    IdleTime,
    /// Wall time minus the time covered by at least one open child span.
    SelfTime,
    /// Span created → first event inside it (or inside a descendant) matching the event
    /// selector; recorded at close, and only if such an event happened.
    TimeToEvent(EventMatch),
    /// Counts spans when they are created (labels are resolved at creation).
    SpansOpened,
    /// Counts spans when they close (the calls of a RED metric).
    SpansClosed,
    /// Spans currently open: +1 when a span opens, −1 when it closes, always on the same series.
    InFlight,
    /// Like [`Measure::InFlight`], but +1 only once the named field has been recorded on the
    /// span, with the labels known at that moment; −1 at close if and only if it was counted.
    InFlightAfter(String),
    /// Counts events matching the selector inside selected spans (or anywhere, without a span
    /// selector).
    Events(EventMatch),
    /// A numeric field of the span: a histogram observes its final value at close; a gauge is
    /// set each time the field gets a value; a counter is increased by it at close.
    ///
    /// Numbers, bools (0/1) and text that parses as a number are accepted. NaN is never
    /// recorded; ±Inf only by gauges; a histogram takes every finite value, negative ones
    /// included; a counter takes non-negative values up to 2^53, rounded down (a larger
    /// increment would only wrap the recorder's counter). Refused values are counted in
    /// `spanmetrics_values_rejected_total{metric, reason}` (`reason`: `not_a_number`,
    /// `not_finite`, `negative`, `too_large`).
    SpanField(String),
    /// A numeric field of events matching the selector: observed, set or added per event.
    EventField(EventMatch, String),
}

impl Measure {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Measure::WallTime => "wall_time",
            Measure::BusyTime => "busy_time",
            Measure::IdleTime => "idle_time",
            Measure::SelfTime => "self_time",
            Measure::TimeToEvent(_) => "time_to_event",
            Measure::SpansOpened => "spans_opened",
            Measure::SpansClosed => "spans_closed",
            Measure::InFlight => "in_flight",
            Measure::InFlightAfter(_) => "in_flight_after",
            Measure::Events(_) => "events",
            Measure::SpanField(_) => "span_field",
            Measure::EventField(..) => "event_field",
        }
    }

    /// Whether this measure is a duration (in seconds unless its family is in milliseconds).
    pub(crate) fn is_duration(&self) -> bool {
        matches!(
            self,
            Measure::WallTime
                | Measure::BusyTime
                | Measure::IdleTime
                | Measure::SelfTime
                | Measure::TimeToEvent(_)
        )
    }

    /// Which instrument kinds may carry this measure.
    pub(crate) fn allows(&self, kind: MetricKind) -> bool {
        use MetricKind::*;
        match self {
            m if m.is_duration() => kind == Histogram,
            Measure::SpansOpened | Measure::SpansClosed | Measure::Events(_) => kind == Counter,
            Measure::InFlight | Measure::InFlightAfter(_) => kind == Gauge,
            _ => true,
        }
    }
}

/// The most bucket boundaries a histogram may have.
///
/// Every [`Buckets`] constructor accepts a request for more, and
/// [`build`](crate::SpanMetricsBuilder::build) then refuses it (nothing is truncated silently);
/// no boundary is computed or kept for such a request.
pub const MAX_BUCKETS: usize = 1024;

/// Histogram bucket boundaries (upper bounds, strictly increasing), at most [`MAX_BUCKETS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    bounds: Vec<f64>,
    excess: Option<Excess>,
}

/// A request for more than [`MAX_BUCKETS`] boundaries: how many, when that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Excess {
    /// This many boundaries were asked for.
    Count(usize),
    /// An iterator yielded more than [`MAX_BUCKETS`] and did not tell how many more.
    Unknown,
}

impl Buckets {
    /// Boundaries within the bound.
    fn kept(bounds: Vec<f64>) -> Self {
        Buckets {
            bounds,
            excess: None,
        }
    }

    /// A request over the bound: no boundary is kept, and the build refuses it.
    fn refused(excess: Excess) -> Self {
        Buckets {
            bounds: Vec::new(),
            excess: Some(excess),
        }
    }

    /// The OpenTelemetry semantic conventions' advised boundaries for HTTP and RPC durations,
    /// in seconds: `0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10`.
    #[must_use]
    pub fn otel_durations() -> Self {
        Buckets::kept(vec![
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        ])
    }

    /// The default buckets of RED mode, in seconds: the OpenTelemetry Collector spanmetrics
    /// connector's default boundaries (2 ms to 15 s), below which four more resolve in-process
    /// spans that take well under a millisecond: `0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004,
    /// 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1.4, 2, 5, 10, 15`. Every boundary of
    /// the connector is among them, so a dashboard's `le` selectors written for it still match.
    #[must_use]
    pub fn red_seconds() -> Self {
        Buckets::kept(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4,
            0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
        ])
    }

    /// [`Buckets::red_seconds`] in milliseconds, the buckets of RED mode in its default unit:
    /// `0.1, 0.25, 0.5, 1, 2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000,
    /// 10000, 15000`: every boundary of the OpenTelemetry Collector spanmetrics connector's
    /// default (`2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000,
    /// 15000`) and four below it.
    #[must_use]
    pub fn red_milliseconds() -> Self {
        Buckets::kept(vec![
            0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0,
            1000.0, 1400.0, 2000.0, 5000.0, 10000.0, 15000.0,
        ])
    }

    /// `count` boundaries starting at `start`, each `factor` times the previous one.
    ///
    /// Invalid arguments (a non-positive start, a factor not above 1, no buckets, more than
    /// [`MAX_BUCKETS`]) are reported when the layer is built.
    #[must_use]
    pub fn exponential(start: f64, factor: f64, count: usize) -> Self {
        if count > MAX_BUCKETS {
            return Buckets::refused(Excess::Count(count));
        }
        Buckets::kept(
            std::iter::successors(Some(start), |b| Some(b * factor))
                .take(count)
                .collect(),
        )
    }

    /// Powers of two from 1 ms to about 65 s (17 boundaries): for durations of unknown scale.
    #[must_use]
    pub fn exponential_seconds() -> Self {
        Buckets::exponential(0.001, 2.0, 17)
    }

    /// Powers of four from 64 bytes to 1 GiB (13 boundaries): for sizes.
    #[must_use]
    pub fn exponential_bytes() -> Self {
        Buckets::exponential(64.0, 4.0, 13)
    }

    /// `count` boundaries `start, start + width, …`.
    ///
    /// Invalid arguments (no buckets, a width that does not make them increase, more than
    /// [`MAX_BUCKETS`]) are reported when the layer is built.
    #[must_use]
    pub fn linear(start: f64, width: f64, count: usize) -> Self {
        if count > MAX_BUCKETS {
            return Buckets::refused(Excess::Count(count));
        }
        Buckets::kept((0..count).map(|i| start + width * i as f64).collect())
    }

    /// Explicit boundaries; they must be finite and strictly increasing, and at most
    /// [`MAX_BUCKETS`] (more are reported when the layer is built).
    ///
    /// At most `MAX_BUCKETS + 1` values are drawn from `bounds`: an iterator longer than that
    /// is not drained, and only its [`size_hint`](Iterator::size_hint), when exact, tells how
    /// many were asked for.
    #[must_use]
    pub fn explicit(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut bounds = bounds.into_iter();
        let kept: Vec<f64> = bounds.by_ref().take(MAX_BUCKETS).collect();
        if bounds.next().is_none() {
            return Buckets::kept(kept);
        }
        Buckets::refused(match bounds.size_hint() {
            (low, Some(high)) if low == high => {
                Excess::Count((MAX_BUCKETS + 1).saturating_add(low))
            }
            _ => Excess::Unknown,
        })
    }

    /// The boundaries; none for a request over [`MAX_BUCKETS`], which the build refuses.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// How far a request went over [`MAX_BUCKETS`], if it did.
    pub(crate) fn excess(&self) -> Option<Excess> {
        self.excess
    }

    /// The default for a histogram of `unit`: [`Buckets::otel_durations`] for seconds (and the
    /// same boundaries in milliseconds), powers of two from 1 to 2^30 otherwise.
    pub(crate) fn default_for(unit: Unit) -> Self {
        match unit {
            Unit::Seconds => Buckets::otel_durations(),
            Unit::Milliseconds => Buckets::kept(
                Buckets::otel_durations()
                    .bounds
                    .iter()
                    .map(|b| (b * 1000.0_f64).round())
                    .collect(),
            ),
            _ => Buckets::exponential(1.0, 2.0, 31),
        }
    }
}

/// One metric rule: an instrument, the spans and events that feed it, what it measures, its
/// labels and its conditions.
///
/// Several rules may feed one metric family (the same name): they must then agree on kind, unit,
/// label keys and buckets; descriptions are taken from the first rule that has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub(crate) name: String,
    pub(crate) kind: MetricKind,
    pub(crate) unit: Option<Unit>,
    pub(crate) description: Option<String>,
    pub(crate) spans: Option<Spans>,
    pub(crate) measure: Option<Measure>,
    pub(crate) labels: Vec<Label>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) buckets: Option<Buckets>,
    pub(crate) cardinality_limit: Option<usize>,
}

impl Metric {
    fn new(kind: MetricKind, name: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            kind,
            unit: None,
            description: None,
            spans: None,
            measure: None,
            labels: Vec::new(),
            conditions: Vec::new(),
            buckets: None,
            cardinality_limit: None,
        }
    }

    /// A counter. Without another measure it counts closed spans.
    #[must_use]
    pub fn counter(name: impl Into<String>) -> Self {
        Self::new(MetricKind::Counter, name)
    }

    /// A gauge. Without another measure it counts open spans (in flight).
    #[must_use]
    pub fn gauge(name: impl Into<String>) -> Self {
        Self::new(MetricKind::Gauge, name)
    }

    /// A histogram. Without another measure it records the span's wall time in seconds.
    #[must_use]
    pub fn histogram(name: impl Into<String>) -> Self {
        Self::new(MetricKind::Histogram, name)
    }

    /// The metric family's name, as given to the `metrics` facade.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instrument kind.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// The help text registered for the family (`# HELP`). It never changes the exported name.
    ///
    /// Defaults to none (no `# HELP` line).
    #[must_use]
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The family's unit; it adds its suffix to the exported name (`_seconds`,
    /// `_milliseconds`, `_bytes`). A duration in [`Unit::Milliseconds`] is recorded in
    /// milliseconds.
    ///
    /// Defaults to [`Unit::Seconds`] for durations and [`Unit::Count`] for everything else.
    #[must_use]
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Which spans feed the rule.
    ///
    /// Defaults to every span (for event measures, events anywhere).
    #[must_use]
    pub fn spans(mut self, spans: Spans) -> Self {
        self.spans = Some(spans);
        self
    }

    /// What the rule measures.
    ///
    /// Defaults to [`Measure::WallTime`] for histograms, [`Measure::SpansClosed`] for counters
    /// and [`Measure::InFlight`] for gauges.
    #[must_use]
    pub fn measure(mut self, measure: Measure) -> Self {
        self.measure = Some(measure);
        self
    }

    /// Shorthand for [`Measure::WallTime`].
    #[must_use]
    pub fn wall_time(self) -> Self {
        self.measure(Measure::WallTime)
    }

    /// Shorthand for [`Measure::BusyTime`].
    #[must_use]
    pub fn busy_time(self) -> Self {
        self.measure(Measure::BusyTime)
    }

    /// Shorthand for [`Measure::IdleTime`].
    #[must_use]
    pub fn idle_time(self) -> Self {
        self.measure(Measure::IdleTime)
    }

    /// Shorthand for [`Measure::SelfTime`].
    #[must_use]
    pub fn self_time(self) -> Self {
        self.measure(Measure::SelfTime)
    }

    /// Shorthand for [`Measure::TimeToEvent`].
    #[must_use]
    pub fn time_to(self, milestone: EventMatch) -> Self {
        self.measure(Measure::TimeToEvent(milestone))
    }

    /// Shorthand for [`Measure::SpansOpened`].
    #[must_use]
    pub fn spans_opened(self) -> Self {
        self.measure(Measure::SpansOpened)
    }

    /// Shorthand for [`Measure::SpansClosed`].
    #[must_use]
    pub fn spans_closed(self) -> Self {
        self.measure(Measure::SpansClosed)
    }

    /// Shorthand for [`Measure::InFlight`].
    #[must_use]
    pub fn in_flight(self) -> Self {
        self.measure(Measure::InFlight)
    }

    /// Shorthand for [`Measure::InFlightAfter`].
    #[must_use]
    pub fn in_flight_after(self, field: impl Into<String>) -> Self {
        self.measure(Measure::InFlightAfter(field.into()))
    }

    /// Shorthand for [`Measure::Events`].
    #[must_use]
    pub fn events(self, events: EventMatch) -> Self {
        self.measure(Measure::Events(events))
    }

    /// Shorthand for [`Measure::SpanField`].
    #[must_use]
    pub fn span_field(self, field: impl Into<String>) -> Self {
        self.measure(Measure::SpanField(field.into()))
    }

    /// Shorthand for [`Measure::EventField`].
    #[must_use]
    pub fn event_field(self, events: EventMatch, field: impl Into<String>) -> Self {
        self.measure(Measure::EventField(events, field.into()))
    }

    /// Adds a label; a `&str` is shorthand for [`Label::field`].
    #[must_use]
    pub fn label(mut self, label: impl Into<Label>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Adds several labels.
    #[must_use]
    pub fn labels<L: Into<Label>>(mut self, labels: impl IntoIterator<Item = L>) -> Self {
        self.labels.extend(labels.into_iter().map(Into::into));
        self
    }

    /// Records only when the condition holds (all conditions must hold).
    #[must_use]
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Histogram bucket boundaries for this family.
    ///
    /// Defaults to [`Buckets::otel_durations`] for durations (or the file's
    /// `duration_buckets`) and powers of two from 1 to 2^30 for other units.
    #[must_use]
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// The most distinct label sets this family keeps; further ones go to its overflow series.
    ///
    /// Defaults to the builder's
    /// [`cardinality_limit`](crate::SpanMetricsBuilder::cardinality_limit).
    #[must_use]
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// The measure in effect: the one set, or the kind's default.
    pub(crate) fn effective_measure(&self) -> Measure {
        self.measure.clone().unwrap_or(match self.kind {
            MetricKind::Counter => Measure::SpansClosed,
            MetricKind::Gauge => Measure::InFlight,
            MetricKind::Histogram => Measure::WallTime,
        })
    }

    /// The unit in effect: the one set, or seconds for durations and a count otherwise.
    pub(crate) fn effective_unit(&self) -> Unit {
        self.unit
            .unwrap_or(if self.effective_measure().is_duration() {
                Unit::Seconds
            } else {
                Unit::Count
            })
    }
}
