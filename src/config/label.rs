//! Labels (where a label's value comes from) and conditions (when a rule records).

use super::route::RouteMapping;

/// One label of a metric: its key, where its value comes from, a default and a mapping.
///
/// A field label looks for its field on the event (for event measures), then on the span, then
/// on the nearest ancestor that recorded it. A label with no value and no default is left off the
/// series (Prometheus treats a missing label and an empty one alike).
///
/// ```
/// use tracing_spanmetrics::{Label, Mapping};
///
/// let partition = Label::field("partition_id");
/// let deployment = Label::field("deployment.id").rename("deployment_id").default("unknown");
/// let class = Label::field("http.status").rename("status_class").map(Mapping::status_class());
/// let fixed = Label::fixed("service.name", "checkout");
/// let result = Label::outcome("result"); // success | error
/// # let _ = (partition, deployment, class, fixed, result);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub(crate) key: String,
    pub(crate) source: LabelSource,
    pub(crate) default: Option<String>,
    pub(crate) mapping: Option<Mapping>,
    pub(crate) inherit: bool,
    pub(crate) value_limit: Option<usize>,
}

/// Fields whose meaning tracing-opentelemetry defines, which the label sources and the outcome
/// read: plans capture them whenever a callsite has them.
pub(crate) const OTEL_NAME: &str = "otel.name";
pub(crate) const OTEL_KIND: &str = "otel.kind";
pub(crate) const OTEL_STATUS: &str = "otel.status_code";
pub(crate) const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// The `otel.kind` values tracing-opentelemetry reads (any case) and the span-kind label value
/// each gives; any other value, or none, gives `SPAN_KIND_INTERNAL`.
pub(crate) const SPAN_KINDS: [(&str, &str); 5] = [
    ("server", "SPAN_KIND_SERVER"),
    ("client", "SPAN_KIND_CLIENT"),
    ("producer", "SPAN_KIND_PRODUCER"),
    ("consumer", "SPAN_KIND_CONSUMER"),
    ("internal", "SPAN_KIND_INTERNAL"),
];

/// Every value a span-kind label takes.
pub(crate) const SPAN_KIND_VALUES: [&str; 5] = [
    SPAN_KINDS[0].1,
    SPAN_KINDS[1].1,
    SPAN_KINDS[2].1,
    SPAN_KINDS[3].1,
    SPAN_KINDS[4].1,
];

/// Where a label's value comes from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LabelSource {
    /// A field of the event, the span or an ancestor span.
    Field(String),
    /// A constant.
    Fixed(String),
    /// The span's name, or its `otel.name` field when recorded.
    SpanName,
    /// The OpenTelemetry span kind from the `otel.kind` field (`SPAN_KIND_SERVER`, …;
    /// `SPAN_KIND_INTERNAL` when absent).
    SpanKind,
    /// The span's outcome, decided as tracing-opentelemetry decides a span's status:
    /// `otel.status_code` (`OK` / `ERROR`) wins; otherwise the span failed if it recorded
    /// `otel.status_description`, or if an ERROR-level event or an event with an `error` field
    /// (as `#[instrument(err)]` emits) happened inside it (not inside a child).
    Outcome(OutcomeValues),
    /// The span's (or, for event measures, the event's) target.
    Target,
}

/// The three values an outcome label takes. An empty value leaves the label off the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeValues {
    /// Neither an error nor an explicit `otel.status_code = "OK"` was seen.
    pub unset: String,
    /// `otel.status_code = "OK"` was recorded.
    pub ok: String,
    /// The span failed.
    pub error: String,
}

impl OutcomeValues {
    /// `success` / `error`: unset and OK both read `success`.
    #[must_use]
    pub fn success_error() -> Self {
        OutcomeValues {
            unset: "success".into(),
            ok: "success".into(),
            error: "error".into(),
        }
    }

    /// The OpenTelemetry status codes: `STATUS_CODE_UNSET`, `STATUS_CODE_OK`,
    /// `STATUS_CODE_ERROR`.
    #[must_use]
    pub fn otel() -> Self {
        OutcomeValues {
            unset: "STATUS_CODE_UNSET".into(),
            ok: "STATUS_CODE_OK".into(),
            error: "STATUS_CODE_ERROR".into(),
        }
    }

    /// The values of the `otel.status_code` attribute of the OpenTelemetry semantic
    /// conventions: `OK`, `ERROR`, and no label while the status is unset.
    #[must_use]
    pub fn otel_semconv() -> Self {
        OutcomeValues {
            unset: String::new(),
            ok: "OK".into(),
            error: "ERROR".into(),
        }
    }
}

impl Label {
    fn with_source(key: impl Into<String>, source: LabelSource) -> Self {
        Label {
            key: key.into(),
            source,
            default: None,
            mapping: None,
            inherit: true,
            value_limit: None,
        }
    }

    /// A label from the field `field`; its key is the field's name unless changed with
    /// [`Label::key`].
    #[must_use]
    pub fn field(field: impl Into<String>) -> Self {
        let field = field.into();
        Label::with_source(field.clone(), LabelSource::Field(field))
    }

    /// A constant label.
    #[must_use]
    pub fn fixed(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::Fixed(value.into()))
    }

    /// The span's name (its `otel.name` field when recorded).
    #[must_use]
    pub fn span_name(key: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::SpanName)
    }

    /// The OpenTelemetry span kind from `otel.kind`.
    #[must_use]
    pub fn span_kind(key: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::SpanKind)
    }

    /// The span's outcome as `success` / `error`; see [`LabelSource::Outcome`].
    #[must_use]
    pub fn outcome(key: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::Outcome(OutcomeValues::success_error()))
    }

    /// The span's outcome as OpenTelemetry status codes.
    #[must_use]
    pub fn otel_status_code(key: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::Outcome(OutcomeValues::otel()))
    }

    /// The span's outcome with your own three values.
    #[must_use]
    pub fn outcome_with(key: impl Into<String>, values: OutcomeValues) -> Self {
        Label::with_source(key, LabelSource::Outcome(values))
    }

    /// The target (module path) of the span or event.
    #[must_use]
    pub fn target(key: impl Into<String>) -> Self {
        Label::with_source(key, LabelSource::Target)
    }

    /// Renames the label: the key it carries on the metric.
    ///
    /// Defaults to the field's name for [`Label::field`], and to the key given to the other
    /// constructors.
    #[must_use]
    pub fn rename(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The value used when no value is found.
    ///
    /// Defaults to none: without a value the label is left off the series.
    #[must_use]
    pub fn default(mut self, value: impl Into<String>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Maps the value before it becomes a label (and before cardinality is counted).
    ///
    /// Defaults to none: the value as captured.
    #[must_use]
    pub fn map(mut self, mapping: Mapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Looks only at the span itself (and the event), never at ancestors.
    ///
    /// Defaults to off: a field missing on the span is looked up on its nearest ancestor.
    #[must_use]
    pub fn own_only(mut self) -> Self {
        self.inherit = false;
        self
    }

    /// The most distinct values this label takes in its family (after mapping); once it has
    /// taken them, a new value becomes [`LABEL_OVERFLOW_VALUE`](crate::LABEL_OVERFLOW_VALUE)
    /// while the other labels keep theirs (as Grafana Tempo's per-label limiter does), and each
    /// such observation is counted in
    /// [`LABEL_OVERFLOW_METRIC`](crate::LABEL_OVERFLOW_METRIC)`{metric, label}`. The values
    /// a label took are kept across reloads, like the family's label sets. This comes before
    /// the family's own [cardinality limit](crate::Metric::cardinality_limit) on label sets.
    /// Must be at least 1.
    ///
    /// Defaults to the builder's
    /// [`label_value_limit`](crate::SpanMetricsBuilder::label_value_limit) (none unless set).
    #[must_use]
    pub fn value_limit(mut self, limit: usize) -> Self {
        self.value_limit = Some(limit);
        self
    }

    /// The label's key: the name it carries on the metric.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn field_name(&self) -> Option<&str> {
        match &self.source {
            LabelSource::Field(f) => Some(f),
            _ => None,
        }
    }
}

impl From<&str> for Label {
    fn from(field: &str) -> Self {
        Label::field(field)
    }
}

impl From<String> for Label {
    fn from(field: String) -> Self {
        Label::field(field)
    }
}

/// A mapping of a label's raw value to the value the metric carries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Mapping {
    /// An HTTP status code to its class: `1xx` … `5xx`; anything else reads `other`.
    StatusClass,
    /// A lookup table; values not in it pass through unchanged, or become `otherwise` if set.
    Table {
        /// Raw value → label value.
        entries: Vec<(String, String)>,
        /// The value for anything not in the table (`None`: keep the raw value).
        otherwise: Option<String>,
    },
    /// A raw request path to its route: identifier segments become `{id}`, the query is
    /// dropped (see [`RouteMapping`]).
    Route(RouteMapping),
}

impl Mapping {
    /// See [`Mapping::StatusClass`].
    #[must_use]
    pub fn status_class() -> Self {
        Mapping::StatusClass
    }

    /// A raw request path (`/users/42/orders/7?x=1`) to a route (`/users/{id}/orders/{id}`),
    /// for spans that carry no route template: numeric, UUID and long hexadecimal segments
    /// become `{id}`; add patterns of your own with [`Mapping::segment`]. See
    /// [`RouteMapping`].
    ///
    /// ```
    /// use tracing_spanmetrics::{Label, Mapping};
    ///
    /// let route = Label::field("http.target")
    ///     .rename("http.route")
    ///     .map(Mapping::route().segment("[a-z]{2}-[A-Z]{2}", "{locale}"));
    /// # let _ = route;
    /// ```
    #[must_use]
    pub fn route() -> Self {
        Mapping::Route(RouteMapping::new())
    }

    /// For a route mapping: a segment that the regular expression `pattern` (the `regex`
    /// crate's syntax) matches as a whole becomes `replacement`. Patterns are tried in the
    /// order given, before the built-in ones. A pattern that does not compile is reported when
    /// the layer is built. Other mappings are returned unchanged.
    #[must_use]
    pub fn segment(self, pattern: impl Into<String>, replacement: impl Into<String>) -> Self {
        match self {
            Mapping::Route(r) => Mapping::Route(r.with_segment(pattern.into(), replacement.into())),
            other => other,
        }
    }

    /// A lookup table; unknown values pass through.
    #[must_use]
    pub fn table<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Mapping::Table {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            otherwise: None,
        }
    }

    /// For a table: the value of anything not in it (bounds the label's cardinality).
    #[must_use]
    pub fn otherwise(self, value: impl Into<String>) -> Self {
        match self {
            Mapping::Table { entries, .. } => Mapping::Table {
                entries,
                otherwise: Some(value.into()),
            },
            other => other,
        }
    }

    /// Applies a mapping whose values it holds to `raw`: `None` keeps `raw` unchanged. A route
    /// mapping writes new text instead: see [`RouteMapping`].
    pub(crate) fn apply(&self, raw: &str) -> Option<&str> {
        match self {
            Mapping::Route(_) => None,
            Mapping::StatusClass => Some(match raw.as_bytes() {
                [c @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => {
                    ["1xx", "2xx", "3xx", "4xx", "5xx"][(c - b'1') as usize]
                }
                _ => "other",
            }),
            Mapping::Table { entries, otherwise } => entries
                .iter()
                .find(|(k, _)| k == raw)
                .map(|(_, v)| v.as_str())
                .or(otherwise.as_deref()),
        }
    }
}

/// When a rule records. Field conditions look the field up like a label does (event, span,
/// ancestors).
///
/// ```
/// use tracing_spanmetrics::Condition;
///
/// let pinned = Condition::recorded("deployment_id");
/// let not_2xx = Condition::field("status_code").not_between(200.0, 299.0);
/// let failed = Condition::field("status").one_of(["failed"]);
/// let errored = Condition::error();
/// # let _ = (pinned, not_2xx, failed, errored);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// A condition on a field's value.
    Field(FieldCondition),
    /// The span's outcome is an error.
    Error,
    /// The span's outcome is not an error.
    NotError,
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCondition {
    pub(crate) field: String,
    pub(crate) test: FieldTest,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldTest {
    Recorded,
    Missing,
    OneOf(Vec<String>),
    NotOneOf(Vec<String>),
    Between(f64, f64),
    NotBetween(f64, f64),
}

impl Condition {
    /// The field has a value.
    #[must_use]
    pub fn recorded(field: impl Into<String>) -> Self {
        Condition::field(field).recorded()
    }

    /// A condition on `field`: finish it with one of [`FieldCondition`]'s methods.
    #[must_use]
    pub fn field(field: impl Into<String>) -> FieldCondition {
        FieldCondition {
            field: field.into(),
            test: FieldTest::Recorded,
        }
    }

    /// The outcome is an error.
    #[must_use]
    pub fn error() -> Self {
        Condition::Error
    }

    /// The outcome is not an error.
    #[must_use]
    pub fn not_error() -> Self {
        Condition::NotError
    }
}

impl FieldCondition {
    fn with(mut self, test: FieldTest) -> Condition {
        self.test = test;
        Condition::Field(self)
    }

    /// The field has a value.
    #[must_use]
    pub fn recorded(self) -> Condition {
        self.with(FieldTest::Recorded)
    }

    /// The field has no value.
    #[must_use]
    pub fn missing(self) -> Condition {
        self.with(FieldTest::Missing)
    }

    /// The field's text is one of `values`.
    #[must_use]
    pub fn one_of<S: Into<String>>(self, values: impl IntoIterator<Item = S>) -> Condition {
        self.with(FieldTest::OneOf(
            values.into_iter().map(Into::into).collect(),
        ))
    }

    /// The field has a value and its text is none of `values`.
    #[must_use]
    pub fn not_one_of<S: Into<String>>(self, values: impl IntoIterator<Item = S>) -> Condition {
        self.with(FieldTest::NotOneOf(
            values.into_iter().map(Into::into).collect(),
        ))
    }

    /// The field is a number in `low..=high`.
    #[must_use]
    pub fn between(self, low: f64, high: f64) -> Condition {
        self.with(FieldTest::Between(low, high))
    }

    /// The field is a number outside `low..=high`.
    #[must_use]
    pub fn not_between(self, low: f64, high: f64) -> Condition {
        self.with(FieldTest::NotBetween(low, high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_class_maps_three_digit_codes() {
        let m = Mapping::status_class();
        assert_eq!(m.apply("200"), Some("2xx"));
        assert_eq!(m.apply("503"), Some("5xx"));
        assert_eq!(m.apply("101"), Some("1xx"));
        assert_eq!(m.apply("600"), Some("other"));
        assert_eq!(m.apply("20"), Some("other"));
        assert_eq!(m.apply("abc"), Some("other"));
    }

    #[test]
    fn tables_pass_through_or_fold() {
        let m = Mapping::table([("a", "x")]);
        assert_eq!(m.apply("a"), Some("x"));
        assert_eq!(m.apply("b"), None);
        let m = m.otherwise("other");
        assert_eq!(m.apply("b"), Some("other"));
    }
}
