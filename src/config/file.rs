//! The TOML front end: a configuration file read into the same [`Metric`] rules the builder
//! takes, validated by the same code, with errors located by line and column.
//!
//! ```toml
//! [settings]
//! cardinality_limit = 2000        # default label sets per family
//! max_label_len = 128             # bytes
//! duration_buckets = "otel_durations"
//! label_value_limit = 500         # optional: distinct values per label per family
//!
//! [red]                           # the spanmetrics connector's RED metrics
//! service_name = "checkout"
//! spans = { target = "checkout" } # optional; the rest are the connector's keys, all optional
//! namespace = "traces.span.metrics"
//! histogram = { unit = "ms", dimensions = ["http.status_code"], explicit = { buckets = [2, 4, 6, 8, 10, 50, 100] } }
//! dimensions = [{ name = "http.method", default = "GET" }, { name = "http.target", map = "route" }]
//! exclude_dimensions = ["span.kind"]
//! calls_dimensions = ["peer.service"]
//! events = { enabled = true, dimensions = ["exception.type"] }
//! status_code_label = "status.code"  # or "otel.status_code"
//! aggregation_cardinality_limit = 2000
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
//!   { field = "path", key = "route", map = "route", value_limit = 100 },  # or map = { route = [{ pattern = "v[0-9]+", replace = "{version}" }] }
//! ]
//! when = [{ field = "status", not_between = [200, 299] }]
//! buckets = "otel_durations"      # or [0.1, 0.5, 1], or { exponential = { start = 0.001, factor = 2, count = 16 } }
//!
//! [[objective]]                   # see `crate::config::objective`
//! name = "rpc-latency"
//! family = "rpc.duration.seconds"
//! kind = "latency"                # or "availability" (errors from the outcome label)
//! threshold = 0.25                # latency only: one of the family's bucket bounds
//! target = 0.99                   # in (0, 1)
//! window = "28d"                  # ms, s, m, h, d, w
//! filter = { swimlane = "general" }
//! group_by = ["swimlane"]
//! # errors = { label = "status", values = ["failed"] }   # availability without an outcome label
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
//!
//! Connector keys of `[red]` that have no meaning in-process (`metrics_flush_interval`,
//! `metrics_expiration`, `aggregation_temporality`, the resource caches, …) are refused with the
//! reason.
//!
//! Every error names its line and column and says what was found and what is accepted: an
//! unknown key or word also suggests the nearest accepted one (``unknown measure `wall_tim`:
//! expected one of `wall_time`, …; did you mean `wall_time`?``). A problem inside a
//! `[[metric]]` names the rule, and the builder's own verdict on a rule (or on a setting) points
//! at the key it is about.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};
use tracing_subscriber::filter::LevelFilter;

use super::{
    Buckets, Condition, EventMatch, FieldCondition, Label, Mapping, Measure, Metric, MetricKind,
    Objective, OutcomeValues, Red, Spans, StatusCodeLabel, Unit,
};
use super::{RuleKey, SpanMetricsBuilder, check_buckets, validate};
use crate::config::ConfigError;

// The vocabulary: the words and keys the file accepts.

/// The words a value may be, and what each one means.
struct Words<T: 'static> {
    /// What the value is, for messages: ``unknown {what} `…` ``.
    what: &'static str,
    words: &'static [(&'static str, T)],
}

const KINDS: Words<MetricKind> = Words {
    what: "kind",
    words: &[
        ("counter", MetricKind::Counter),
        ("gauge", MetricKind::Gauge),
        ("histogram", MetricKind::Histogram),
    ],
};

const UNITS: Words<Unit> = Words {
    what: "unit",
    words: &[
        ("seconds", Unit::Seconds),
        ("milliseconds", Unit::Milliseconds),
        ("count", Unit::Count),
        ("bytes", Unit::Bytes),
    ],
};

const LEVELS: Words<LevelFilter> = Words {
    what: "level",
    words: &[
        ("error", LevelFilter::ERROR),
        ("warn", LevelFilter::WARN),
        ("info", LevelFilter::INFO),
        ("debug", LevelFilter::DEBUG),
        ("trace", LevelFilter::TRACE),
    ],
};

const MEASURES: Words<Measure> = Words {
    what: "measure",
    words: &[
        ("wall_time", Measure::WallTime),
        ("busy_time", Measure::BusyTime),
        ("idle_time", Measure::IdleTime),
        ("self_time", Measure::SelfTime),
        ("spans_opened", Measure::SpansOpened),
        ("spans_closed", Measure::SpansClosed),
        ("in_flight", Measure::InFlight),
    ],
};

const SOURCES: Words<fn(String) -> Label> = Words {
    what: "label source",
    words: &[
        ("span_name", Label::span_name),
        ("span_kind", Label::span_kind),
        ("target", Label::target),
        ("outcome", Label::outcome),
        ("otel_status_code", Label::otel_status_code),
    ],
};

const MAPPINGS: Words<fn() -> Mapping> = Words {
    what: "mapping",
    words: &[
        ("status_class", Mapping::status_class),
        ("route", Mapping::route),
    ],
};

const CONDITIONS: Words<Condition> = Words {
    what: "condition",
    words: &[
        ("error", Condition::Error),
        ("not_error", Condition::NotError),
    ],
};

const PRESETS: Words<fn() -> Buckets> = Words {
    what: "bucket preset",
    words: &[
        ("otel_durations", Buckets::otel_durations),
        ("exponential_seconds", Buckets::exponential_seconds),
        ("exponential_bytes", Buckets::exponential_bytes),
    ],
};

const FILE_KEYS: &[&str] = &["settings", "red", "metric", "objective"];
const SETTINGS_KEYS: &[&str] = &[
    "cardinality_limit",
    "max_label_len",
    "duration_buckets",
    "label_value_limit",
];
const RED_KEYS: &[&str] = &[
    "service_name",
    "spans",
    "namespace",
    "histogram",
    "dimensions",
    "exclude_dimensions",
    "calls_dimensions",
    "events",
    "status_code_label",
    "aggregation_cardinality_limit",
];
const RED_HISTOGRAM_KEYS: &[&str] = &["unit", "explicit", "dimensions", "disable"];
const RED_EXPLICIT_KEYS: &[&str] = &["buckets"];
const RED_EVENTS_KEYS: &[&str] = &["enabled", "dimensions"];
const DIMENSION_KEYS: &[&str] = &["name", "default", "map", "own_only", "value_limit"];

/// Connector keys that have no counterpart in-process, and why.
const RED_NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "metrics_flush_interval",
        "the layer records each span as it ends and the exporter serves the current values on \
         every scrape, so there is nothing to flush",
    ),
    (
        "metrics_expiration",
        "series are kept for the life of the process (bounded by the cardinality limit); \
         Prometheus marks a series stale once a scrape no longer shows it",
    ),
    (
        "aggregation_temporality",
        "Prometheus scrapes cumulative values; there is no delta temporality",
    ),
    (
        "dimensions_cache_size",
        "label sets are bounded by `aggregation_cardinality_limit` (and `[settings] \
         cardinality_limit`), which the connector's cache size approximates",
    ),
    (
        "resource_metrics_cache_size",
        "one process is one resource: there is no resource cache",
    ),
    (
        "resource_metrics_key_attributes",
        "one process is one resource: give resource attributes as `dimensions` with defaults",
    ),
    (
        "add_resource_attributes",
        "one process is one resource: give resource attributes as `dimensions` with defaults",
    ),
    (
        "include_instrumentation_scope",
        "spans carry a target, not an instrumentation scope: add a label with \
         `source = \"target\"` in a `[[metric]]` of your own",
    ),
    (
        "exemplars",
        "exemplars are configured with the exporter, not in `[red]`",
    ),
];

const RED_UNITS: Words<Unit> = Words {
    what: "duration unit",
    words: &[("ms", Unit::Milliseconds), ("s", Unit::Seconds)],
};

const STATUS_CODE_LABELS: Words<StatusCodeLabel> = Words {
    what: "status code label",
    words: &[
        ("status.code", StatusCodeLabel::StatusCode),
        ("otel.status_code", StatusCodeLabel::OtelStatusCode),
    ],
};
const METRIC_KEYS: &[&str] = &[
    "name",
    "kind",
    "description",
    "unit",
    "spans",
    "measure",
    "labels",
    "when",
    "buckets",
    "cardinality_limit",
];
const SPANS_KEYS: &[&str] = &["name", "target", "level"];
const EVENT_KEYS: &[&str] = &["name", "target", "level", "field", "fields", "message"];
const MEASURE_KEYS: &[&str] = &[
    "time_to",
    "in_flight_after",
    "events",
    "span_field",
    "event_field",
];
const LABEL_KEYS: &[&str] = &[
    "key",
    "field",
    "fixed",
    "source",
    "outcome",
    "default",
    "map",
    "own_only",
    "value_limit",
];
const OUTCOME_KEYS: &[&str] = &["unset", "ok", "error"];
const MAP_KEYS: &[&str] = &["table", "otherwise", "route"];
const ROUTE_PATTERN_KEYS: &[&str] = &["pattern", "replace"];
const CONDITION_KEYS: &[&str] = &[
    "field",
    "recorded",
    "missing",
    "one_of",
    "not_one_of",
    "between",
    "not_between",
];
const BUCKETS_KEYS: &[&str] = &["exponential", "linear"];
const EXPONENTIAL_KEYS: &[&str] = &["start", "factor", "count"];
const LINEAR_KEYS: &[&str] = &["start", "width", "count"];

// Saying what is accepted.

/// `` `a`, `b`, `c` ``.
fn quoted(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    quoted.join(", ")
}

/// What is accepted instead of `found`, and the nearest accepted word if a typo could explain
/// the difference.
pub(crate) fn accepted(found: &str, words: &[&str]) -> String {
    if let [only] = words {
        return format!("expected `{only}`");
    }
    let mut text = format!("expected one of {}", quoted(words));
    if let Some(near) = nearest(found, words) {
        text.push_str(&format!("; did you mean `{near}`?"));
    }
    text
}

/// The word of `words` nearest to `found`, ignoring case: one at most one edit (an insertion, a
/// deletion, a substitution or a swap of neighbours) per three characters away, or else the
/// only one that `found` (three characters or more) abbreviates.
fn nearest<'w>(found: &str, words: &[&'w str]) -> Option<&'w str> {
    let found = found.to_lowercase();
    let limit = (found.chars().count() / 3).max(1);
    let closest = words
        .iter()
        .map(|w| (strsim::osa_distance(&found, w), *w))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, w)| w);
    let mut completions = words
        .iter()
        .filter(|w| found.chars().count() >= 3 && w.starts_with(&found));
    let completion = match (completions.next(), completions.next()) {
        (Some(only), None) => Some(*only),
        _ => None,
    };
    closest.or(completion)
}

// Reading values.

/// A value of the file, with where it is written.
type Node<'i> = Spanned<DeValue<'i>>;

/// A problem with the file, and where it is once known.
struct Fail {
    at: Option<Range<usize>>,
    problem: String,
}

/// What reading part of the file gives.
type Read<T> = Result<T, Fail>;

impl Fail {
    /// A problem with `node` itself.
    fn at(node: &Node<'_>, problem: String) -> Self {
        Fail {
            at: Some(node.span()),
            problem,
        }
    }

    /// `node` is not what was `expected`.
    fn expected(node: &Node<'_>, expected: &str) -> Self {
        let found = type_name(node.get_ref());
        Fail::at(node, format!("expected {expected}, found {found}"))
    }

    /// Locates the problem at `span` unless it already is.
    fn or_at(mut self, span: Range<usize>) -> Self {
        self.at.get_or_insert(span);
        self
    }
}

/// A problem with a whole value (two measures in one table, say): it is located at the key
/// that holds the value.
impl From<String> for Fail {
    fn from(problem: String) -> Self {
        Fail { at: None, problem }
    }
}

/// The type of a value, with its article.
fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<T: Clone> Words<T> {
    fn names(&self) -> Vec<&'static str> {
        self.words.iter().map(|(word, _)| *word).collect()
    }

    /// What the word `node` holds means.
    fn read(&self, node: &Node<'_>) -> Read<T> {
        let what = self.what;
        let Some(word) = node.get_ref().as_str() else {
            let expected = format!("a {what} (one of {})", quoted(&self.names()));
            return Err(Fail::expected(node, &expected));
        };
        match self.words.iter().find(|(w, _)| *w == word) {
            Some((_, meaning)) => Ok(meaning.clone()),
            None => {
                let accepted = accepted(word, &self.names());
                Err(Fail::at(
                    node,
                    format!("unknown {what} `{word}`: {accepted}"),
                ))
            }
        }
    }
}

/// A table of the file, whose keys are all among those it accepts.
struct Table<'a, 'i> {
    /// What the table is, for messages: "a label", "`[settings]`".
    what: &'static str,
    entries: &'a DeTable<'i>,
    span: Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// `entries`, written at `span`, as a table of `what` that accepts `keys`.
    fn new(
        what: &'static str,
        entries: &'a DeTable<'i>,
        span: Range<usize>,
        keys: &[&str],
    ) -> Read<Self> {
        let unknown = entries
            .keys()
            .filter(|k| !keys.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        if let Some(key) = unknown {
            let found = key.get_ref();
            return Err(Fail {
                at: Some(key.span()),
                problem: format!("unknown key `{found}` in {what}: {}", accepted(found, keys)),
            });
        }
        Ok(Table {
            what,
            entries,
            span,
        })
    }

    /// `node` as a table of `what` that accepts `keys`.
    fn open(node: &'a Node<'i>, what: &'static str, keys: &[&str]) -> Read<Self> {
        match node.get_ref() {
            DeValue::Table(entries) => Table::new(what, entries, node.span(), keys),
            _ => Err(Fail::expected(node, &format!("{what} (a table)"))),
        }
    }

    /// The value of `key` as `read` reads it, if the table has the key; a problem `read` does
    /// not locate is located at the key.
    fn get<T>(&self, key: &str, read: impl FnOnce(&'a Node<'i>) -> Read<T>) -> Read<Option<T>> {
        match find(self.entries, key) {
            Some((k, value)) => read(value).map(Some).map_err(|f| f.or_at(k.span())),
            None => Ok(None),
        }
    }

    /// Like [`Table::get`], for a key the table must have.
    fn need<T>(&self, key: &str, read: impl FnOnce(&'a Node<'i>) -> Read<T>) -> Read<T> {
        self.get(key, read)?.ok_or_else(|| Fail {
            at: Some(self.span.clone()),
            problem: format!("missing key `{key}` in {}", self.what),
        })
    }

    /// The value of `key`, unread.
    fn node(&self, key: &str) -> Option<&'a Node<'i>> {
        find(self.entries, key).map(|(_, value)| value)
    }
}

/// A key, with where it is written, and its value.
type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Node<'i>);

/// The entry of `key` in `entries`.
fn find<'a, 'i>(entries: &'a DeTable<'i>, key: &str) -> Option<Entry<'a, 'i>> {
    entries.iter().find(|(k, _)| k.get_ref() == key)
}

/// The entry of `key` in `node`, if `node` is a table that has it.
fn entry<'a, 'i>(node: &'a Node<'i>, key: &str) -> Option<Entry<'a, 'i>> {
    match node.get_ref() {
        DeValue::Table(entries) => find(entries, key),
        _ => None,
    }
}

fn string(node: &Node<'_>) -> Read<String> {
    match node.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        _ => Err(Fail::expected(node, "a string")),
    }
}

fn boolean(node: &Node<'_>) -> Read<bool> {
    match node.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        _ => Err(Fail::expected(node, "a boolean")),
    }
}

fn integer(node: &Node<'_>) -> Read<i64> {
    let DeValue::Integer(i) = node.get_ref() else {
        return Err(Fail::expected(node, "an integer"));
    };
    i64::from_str_radix(i.as_str(), i.radix())
        .map_err(|_| Fail::at(node, format!("integer `{i}` is out of range")))
}

/// A count or a size.
fn unsigned(node: &Node<'_>) -> Read<usize> {
    const EXPECTED: &str = "a non-negative integer";
    if !matches!(node.get_ref(), DeValue::Integer(_)) {
        return Err(Fail::expected(node, EXPECTED));
    }
    let n = integer(node)?;
    usize::try_from(n).map_err(|_| Fail::at(node, format!("expected {EXPECTED}, found `{n}`")))
}

/// An integer or a float.
fn number(node: &Node<'_>) -> Read<f64> {
    match node.get_ref() {
        DeValue::Integer(_) => integer(node).map(|i| i as f64),
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            // `inf` is written as such; a finite number too large to hold is not.
            Ok(x) if !x.is_infinite() || f.as_str().contains("inf") => Ok(x),
            _ => Err(Fail::at(node, format!("float `{f}` is out of range"))),
        },
        _ => Err(Fail::expected(node, "a number")),
    }
}

/// A value a field's text is compared with: a string, a number or a boolean, as text.
fn text(node: &Node<'_>) -> Read<String> {
    match node.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(_) => integer(node).map(|i| i.to_string()),
        DeValue::Float(_) => number(node).map(|x| x.to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        _ => Err(Fail::expected(node, "a string, a number or a boolean")),
    }
}

/// An array, each item read by `read`.
fn list<'a, 'i, T>(node: &'a Node<'i>, read: impl Fn(&'a Node<'i>) -> Read<T>) -> Read<Vec<T>> {
    match node.get_ref() {
        DeValue::Array(items) => items.iter().map(read).collect(),
        _ => Err(Fail::expected(node, "an array")),
    }
}

/// `[low, high]`.
fn range(node: &Node<'_>) -> Read<(f64, f64)> {
    const EXPECTED: &str = "a range `[low, high]`";
    match node.get_ref() {
        DeValue::Array(bounds) if bounds.len() == 2 => {
            Ok((number(&bounds[0])?, number(&bounds[1])?))
        }
        DeValue::Array(bounds) => {
            let n = bounds.len();
            let s = if n == 1 { "" } else { "s" };
            Err(Fail::at(
                node,
                format!("expected {EXPECTED}, found an array of {n} element{s}"),
            ))
        }
        _ => Err(Fail::expected(node, EXPECTED)),
    }
}

/// The one value given, if exactly one is.
fn exactly_one<T>(given: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    let mut given = given.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

// Reading the parts of a rule.

/// `"name"` or `{ name = …, target = …, level = … }`.
fn spans(node: &Node<'_>) -> Read<Spans> {
    match node.get_ref() {
        DeValue::String(name) => Ok(Spans::named(name.to_string())),
        DeValue::Table(_) => {
            let t = Table::open(node, "a span selector", SPANS_KEYS)?;
            Ok(Spans {
                names: t.get("name", names)?.unwrap_or_default(),
                target: t.get("target", string)?,
                level: t.get("level", |n| LEVELS.read(n))?,
            })
        }
        _ => Err(Fail::expected(
            node,
            "a span selector (a span name or a table)",
        )),
    }
}

/// `"pattern"` or `["pattern", …]`.
fn names(node: &Node<'_>) -> Read<Vec<String>> {
    match node.get_ref() {
        DeValue::String(name) => Ok(vec![name.to_string()]),
        DeValue::Array(_) => list(node, string),
        _ => Err(Fail::expected(node, "a name or an array of names")),
    }
}

/// `{ name = …, target = …, level = …, field = …, fields = […], message = … }`.
fn event(node: &Node<'_>) -> Read<EventMatch> {
    let t = Table::open(node, "an event selector", EVENT_KEYS)?;
    let field = t.get("field", string)?;
    let fields = t.get("fields", |n| list(n, string))?.unwrap_or_default();
    Ok(EventMatch {
        name: t.get("name", string)?,
        target: t.get("target", string)?,
        level: t.get("level", |n| LEVELS.read(n))?,
        fields: field.into_iter().chain(fields).collect(),
        message: t.get("message", string)?,
    })
}

/// A word (`"wall_time"`) or a table (`{ span_field = "…" }`).
fn measure(node: &Node<'_>) -> Read<Measure> {
    match node.get_ref() {
        DeValue::String(_) => MEASURES.read(node),
        DeValue::Table(_) => measure_table(&Table::open(node, "a measure table", MEASURE_KEYS)?),
        _ => Err(Fail::expected(
            node,
            "a measure (a word such as `wall_time`, or a table)",
        )),
    }
}

/// Exactly one of `time_to`, `in_flight_after`, `events`, `span_field`, `event_field` (with
/// `events` beside `event_field`).
fn measure_table(t: &Table<'_, '_>) -> Read<Measure> {
    let events = t.get("events", event)?;
    let of_events = match t.get("event_field", string)? {
        Some(field) => Some(Measure::EventField(events.unwrap_or_default(), field)),
        None => events.map(Measure::Events),
    };
    let given = [
        t.get("time_to", event)?.map(Measure::TimeToEvent),
        t.get("in_flight_after", string)?
            .map(Measure::InFlightAfter),
        t.get("span_field", string)?.map(Measure::SpanField),
        of_events,
    ];
    exactly_one(given).ok_or_else(|| {
        "a measure table takes exactly one of `time_to`, `in_flight_after`, `events`, \
         `span_field`, `event_field` (with `events` beside `event_field`)"
            .to_owned()
            .into()
    })
}

/// A field's name (`"status"`) or a table.
fn label(node: &Node<'_>) -> Read<Label> {
    match node.get_ref() {
        DeValue::String(field) => Ok(Label::field(field.to_string())),
        DeValue::Table(_) => label_table(&Table::open(node, "a label", LABEL_KEYS)?),
        _ => Err(Fail::expected(node, "a label (a field name or a table)")),
    }
}

/// `{ key = …, <source>, default = …, map = …, own_only = … }`.
fn label_table(t: &Table<'_, '_>) -> Read<Label> {
    label_options(t, label_source(t)?)
}

/// `label` with the options `t` gives: `default`, `map`, `own_only`.
fn label_options(t: &Table<'_, '_>, mut label: Label) -> Read<Label> {
    if let Some(value) = t.get("default", string)? {
        label = label.default(value);
    }
    if let Some(mapping) = t.get("map", mapping)? {
        label = label.map(mapping);
    }
    if t.get("own_only", boolean)? == Some(true) {
        label = label.own_only();
    }
    if let Some(limit) = t.get("value_limit", unsigned)? {
        label = label.value_limit(limit);
    }
    Ok(label)
}

/// Where a label's value comes from.
enum LabelFrom {
    Field(String),
    Fixed(String),
    Source(fn(String) -> Label),
    Outcome(OutcomeValues),
}

/// The label of `key` with exactly one of `field`, `fixed`, `source`, `outcome`.
fn label_source(t: &Table<'_, '_>) -> Read<Label> {
    let key = t.get("key", string)?;
    let field = t.get("field", string)?;
    let name = key.clone().or_else(|| field.clone());
    let given = [
        field.map(LabelFrom::Field),
        t.get("fixed", string)?.map(LabelFrom::Fixed),
        t.get("source", |n| SOURCES.read(n))?.map(LabelFrom::Source),
        t.get("outcome", outcome_values)?.map(LabelFrom::Outcome),
    ];
    let Some(from) = exactly_one(given) else {
        let name = name.as_deref().unwrap_or("?");
        return Err(format!(
            "label `{name}`: give exactly one of `field`, `fixed`, `source`, `outcome`"
        )
        .into());
    };
    Ok(match (from, key) {
        (LabelFrom::Field(field), None) => Label::field(field),
        (LabelFrom::Field(field), Some(key)) => Label::field(field).rename(key),
        (_, None) => return Err("a label without `field` needs a `key`".to_owned().into()),
        (LabelFrom::Fixed(value), Some(key)) => Label::fixed(key, value),
        (LabelFrom::Source(source), Some(key)) => source(key),
        (LabelFrom::Outcome(values), Some(key)) => Label::outcome_with(key, values),
    })
}

/// `{ unset = …, ok = …, error = … }`.
fn outcome_values(node: &Node<'_>) -> Read<OutcomeValues> {
    let t = Table::open(node, "a label's `outcome`", OUTCOME_KEYS)?;
    Ok(OutcomeValues {
        unset: t.need("unset", string)?,
        ok: t.need("ok", string)?,
        error: t.need("error", string)?,
    })
}

/// `"status_class"`, `"route"`, `{ table = { raw = "mapped", … }, otherwise = … }` or
/// `{ route = [{ pattern = "…", replace = "…" }, …] }`.
fn mapping(node: &Node<'_>) -> Read<Mapping> {
    match node.get_ref() {
        DeValue::String(_) => MAPPINGS.read(node).map(|named| named()),
        DeValue::Table(_) => {
            let t = Table::open(node, "a label's `map`", MAP_KEYS)?;
            if let Some(route) = t.get("route", |n| list(n, route_pattern))? {
                if t.node("table").is_some() || t.node("otherwise").is_some() {
                    return Err("a `map` takes either `route` or `table` (with `otherwise`)"
                        .to_owned()
                        .into());
                }
                return Ok(route
                    .into_iter()
                    .fold(Mapping::route(), |m, (p, r)| m.segment(p, r)));
            }
            Ok(Mapping::Table {
                entries: t.need("table", mapping_entries)?,
                otherwise: t.get("otherwise", string)?,
            })
        }
        _ => Err(Fail::expected(
            node,
            "a mapping (`status_class`, `route` or a table)",
        )),
    }
}

/// `{ pattern = "regex", replace = "{name}" }`; `replace` defaults to `{id}`.
fn route_pattern(node: &Node<'_>) -> Read<(String, String)> {
    let t = Table::open(node, "a route pattern", ROUTE_PATTERN_KEYS)?;
    let pattern = t.need("pattern", string)?;
    let replace = t.get("replace", string)?;
    Ok((
        pattern,
        replace.unwrap_or_else(|| crate::config::ROUTE_ID.to_owned()),
    ))
}

/// `{ raw = "mapped", … }`: each text of the field and the value it becomes.
fn mapping_entries(node: &Node<'_>) -> Read<Vec<(String, String)>> {
    let DeValue::Table(entries) = node.get_ref() else {
        return Err(Fail::expected(node, "a table of values"));
    };
    entries
        .iter()
        .map(|(raw, mapped)| Ok((raw.get_ref().to_string(), text(mapped)?)))
        .collect()
}

/// `"error"`, `"not_error"` or `{ field = …, <test> }`.
fn condition(node: &Node<'_>) -> Read<Condition> {
    match node.get_ref() {
        DeValue::String(_) => CONDITIONS.read(node),
        DeValue::Table(_) => field_condition(&Table::open(node, "a condition", CONDITION_KEYS)?),
        _ => Err(Fail::expected(
            node,
            "a condition (`error`, `not_error` or a table)",
        )),
    }
}

/// `{ field = …, <test> }` with exactly one test.
fn field_condition(t: &Table<'_, '_>) -> Read<Condition> {
    let field = t.need("field", string)?;
    let mut tests = field_tests(t, Condition::field(field.clone()))?;
    match tests.len() {
        1 => Ok(tests.remove(0)),
        n => Err(format!(
            "condition on `{field}` needs exactly one test (`recorded`, `missing`, `one_of`, \
             `not_one_of`, `between`, `not_between`), found {n}"
        )
        .into()),
    }
}

/// The tests of a condition on a field: `recorded`, `missing`, `one_of`, `not_one_of`,
/// `between`, `not_between`.
fn field_tests(t: &Table<'_, '_>, on: FieldCondition) -> Read<Vec<Condition>> {
    let present = |recorded: bool| {
        if recorded {
            on.clone().recorded()
        } else {
            on.clone().missing()
        }
    };
    let texts = |node: &Node<'_>| list(node, text);
    let tests = [
        t.get("recorded", boolean)?.map(present),
        t.get("missing", boolean)?.map(|missing| present(!missing)),
        t.get("one_of", texts)?.map(|v| on.clone().one_of(v)),
        t.get("not_one_of", texts)?
            .map(|v| on.clone().not_one_of(v)),
        t.get("between", range)?
            .map(|(lo, hi)| on.clone().between(lo, hi)),
        t.get("not_between", range)?
            .map(|(lo, hi)| on.clone().not_between(lo, hi)),
    ];
    Ok(tests.into_iter().flatten().collect())
}

/// A preset (`"otel_durations"`), a list of boundaries or a table.
fn buckets(node: &Node<'_>) -> Read<Buckets> {
    match node.get_ref() {
        DeValue::String(_) => PRESETS.read(node).map(|preset| preset()),
        DeValue::Array(_) => list(node, number).map(Buckets::explicit),
        DeValue::Table(_) => {
            let t = Table::open(node, "a buckets table", BUCKETS_KEYS)?;
            let given = [t.get("exponential", exponential)?, t.get("linear", linear)?];
            exactly_one(given).ok_or_else(|| {
                "a buckets table takes exactly one of `exponential`, `linear`"
                    .to_owned()
                    .into()
            })
        }
        _ => Err(Fail::expected(
            node,
            "buckets (a preset such as `otel_durations`, a list of numbers or a table)",
        )),
    }
}

/// `{ start = …, factor = …, count = … }`.
fn exponential(node: &Node<'_>) -> Read<Buckets> {
    let t = Table::open(node, "`exponential` buckets", EXPONENTIAL_KEYS)?;
    let start = t.need("start", number)?;
    let factor = t.need("factor", number)?;
    let count = t.need("count", unsigned)?;
    if count == 0 || start <= 0.0 || factor <= 1.0 {
        return Err("exponential buckets need start > 0, factor > 1, count > 0"
            .to_owned()
            .into());
    }
    Ok(Buckets::exponential(start, factor, count))
}

/// `{ start = …, width = …, count = … }`.
fn linear(node: &Node<'_>) -> Read<Buckets> {
    let t = Table::open(node, "`linear` buckets", LINEAR_KEYS)?;
    let start = t.need("start", number)?;
    let width = t.need("width", number)?;
    Ok(Buckets::linear(start, width, t.need("count", unsigned)?))
}

/// One `[[metric]]`. A histogram of durations without buckets takes `duration_buckets`.
fn metric(node: &Node<'_>, duration_buckets: Option<&Buckets>) -> Read<Metric> {
    let t = Table::open(node, "`[[metric]]`", METRIC_KEYS)?;
    let name = t.need("name", string)?;
    let mut m = Metric::new(t.need("kind", |n| KINDS.read(n))?, name);
    m.description = t.get("description", string)?;
    m.unit = t.get("unit", |n| UNITS.read(n))?;
    m.spans = t.get("spans", spans)?;
    m.measure = t.get("measure", measure)?;
    m.labels = t.get("labels", |n| list(n, label))?.unwrap_or_default();
    m.conditions = t.get("when", |n| list(n, condition))?.unwrap_or_default();
    m.buckets = t.get("buckets", buckets)?;
    m.cardinality_limit = t.get("cardinality_limit", unsigned)?;
    let durations = m.kind == MetricKind::Histogram && m.effective_measure().is_duration();
    if m.buckets.is_none() && durations {
        m.buckets = duration_buckets.cloned();
    }
    Ok(m)
}

/// The `[[metric]]` tables.
fn metric_tables<'a, 'i>(node: &'a Node<'i>) -> Read<&'a [Node<'i>]> {
    match node.get_ref() {
        DeValue::Array(tables) => Ok(tables),
        _ => Err(Fail::expected(node, "`[[metric]]` tables")),
    }
}

// Reading the file.

/// `[settings]`, each checked as the builder checks it.
#[derive(Default)]
struct Settings {
    cardinality_limit: Option<usize>,
    max_label_len: Option<usize>,
    duration_buckets: Option<Buckets>,
    label_value_limit: Option<usize>,
}

fn settings(node: &Node<'_>) -> Read<Settings> {
    let t = Table::open(node, "`[settings]`", SETTINGS_KEYS)?;
    let alone = |b: SpanMetricsBuilder| validate(&b).map(drop).map_err(|e| e.problem().to_owned());
    Ok(Settings {
        cardinality_limit: setting(&t, "cardinality_limit", unsigned, |&limit| {
            alone(SpanMetricsBuilder::default().cardinality_limit(limit))
        })?,
        max_label_len: setting(&t, "max_label_len", unsigned, |&bytes| {
            alone(SpanMetricsBuilder::default().max_label_len(bytes))
        })?,
        duration_buckets: setting(&t, "duration_buckets", buckets, check_buckets)?,
        label_value_limit: setting(&t, "label_value_limit", unsigned, |&limit| {
            alone(SpanMetricsBuilder::default().label_value_limit(limit))
        })?,
    })
}

/// The setting `key`, read by `read` and checked by `check`; a problem `check` finds names the
/// setting and is located at its key.
fn setting<'a, 'i, T>(
    t: &Table<'a, 'i>,
    key: &'static str,
    read: impl FnOnce(&'a Node<'i>) -> Read<T>,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Read<Option<T>> {
    t.get(key, |node| {
        let value = read(node)?;
        check(&value).map_err(|problem| format!("[settings] {key}: {problem}"))?;
        Ok(value)
    })
}

impl Settings {
    fn apply(&self, mut builder: SpanMetricsBuilder) -> SpanMetricsBuilder {
        if let Some(limit) = self.cardinality_limit {
            builder = builder.cardinality_limit(limit);
        }
        if let Some(bytes) = self.max_label_len {
            builder = builder.max_label_len(bytes);
        }
        if let Some(limit) = self.label_value_limit {
            builder = builder.label_value_limit(limit);
        }
        builder
    }
}

/// A connector dimension: a field's name or `{ name = …, default = …, map = …, own_only = … }`.
fn dimension(node: &Node<'_>) -> Read<Label> {
    match node.get_ref() {
        DeValue::String(field) => Ok(Label::field(field.to_string())),
        DeValue::Table(_) => {
            let t = Table::open(node, "a dimension", DIMENSION_KEYS)?;
            label_options(&t, Label::field(t.need("name", string)?))
        }
        _ => Err(Fail::expected(
            node,
            "a dimension (a field name or a table with `name`)",
        )),
    }
}

fn dimensions(node: &Node<'_>) -> Read<Vec<Label>> {
    list(node, dimension)
}

/// `[red]`: the connector's options (see [`Red`]), each checked where it is written. The
/// builder's verdict on the rules they make is located by [`Rules::site`].
fn red(node: &Node<'_>) -> Read<Red> {
    if let DeValue::Table(entries) = node.get_ref() {
        for (key, _) in entries.iter() {
            let name = key.get_ref().as_ref();
            if let Some((_, why)) = RED_NOT_APPLICABLE.iter().find(|(k, _)| *k == name) {
                return Err(Fail {
                    at: Some(key.span()),
                    problem: format!("`{name}` in `[red]` does not apply in-process: {why}"),
                });
            }
        }
    }
    let t = Table::open(node, "`[red]`", RED_KEYS)?;
    let mut red = Red::new(t.need("service_name", string)?);
    if let Some(spans) = t.get("spans", spans)? {
        red = red.spans(spans);
    }
    if let Some(namespace) = t.get("namespace", string)? {
        red = red.namespace(namespace);
    }
    if let Some(dims) = t.get("dimensions", dimensions)? {
        red.dimensions = dims;
    }
    if let Some(names) = t.get("exclude_dimensions", |n| list(n, string))? {
        red.exclude = names;
    }
    if let Some(dims) = t.get("calls_dimensions", dimensions)? {
        red.calls_dimensions = dims;
    }
    if let Some(label) = t.get("status_code_label", |n| STATUS_CODE_LABELS.read(n))? {
        red = red.status_code(label);
    }
    if let Some(limit) = t.get("aggregation_cardinality_limit", unsigned)? {
        red = red.cardinality_limit(limit);
    }
    t.get("histogram", |node| {
        if let Some((key, _)) = entry(node, "exponential") {
            return Err(Fail {
                at: Some(key.span()),
                problem: "`histogram.exponential` is not offered: metrics-exporter-prometheus \
                          renders classic buckets only; give `explicit = { buckets = [...] }`"
                    .to_owned(),
            });
        }
        let h = Table::open(node, "`[red] histogram`", RED_HISTOGRAM_KEYS)?;
        if let Some(unit) = h.get("unit", |n| RED_UNITS.read(n))? {
            red.unit = unit;
        }
        if let Some(dims) = h.get("dimensions", dimensions)? {
            red.histogram_dimensions = dims;
        }
        if let Some(disable) = h.get("disable", boolean)? {
            red.histogram = !disable;
        }
        h.get("explicit", |node| {
            let e = Table::open(node, "`[red] histogram.explicit`", RED_EXPLICIT_KEYS)?;
            let buckets = e.need("buckets", |n| list(n, number).map(Buckets::explicit))?;
            e.get("buckets", |_| check_buckets(&buckets).map_err(Fail::from))?;
            red.buckets = Some(buckets);
            Ok(())
        })?;
        Ok(())
    })?;
    t.get("events", |node| {
        let e = Table::open(node, "`[red] events`", RED_EVENTS_KEYS)?;
        let dims = e.get("dimensions", dimensions)?.unwrap_or_default();
        if e.get("enabled", boolean)? == Some(true) {
            red.events = Some(dims);
        } else if !dims.is_empty() {
            return Err(
                "`events.dimensions` is given but the events counter is not enabled; add \
                 `enabled = true`"
                    .to_owned()
                    .into(),
            );
        }
        Ok(())
    })?;
    if let Err((key, problem)) = red.check() {
        let at = find(t.entries, key).map_or(t.span.clone(), |(k, _)| k.span());
        return Err(Fail::from(problem).or_at(at));
    }
    Ok(red)
}

/// The key of `[red]` that brought the label a problem with its rules is about: the first of
/// `service_name`, `dimensions`, `calls_dimensions`, `histogram`, `events` whose labels, added
/// in that order, make the rules fail validation (a cold path: only once a problem was found).
fn red_labels_key(red: &Red, max_label_len: usize) -> &'static str {
    let base = Red {
        dimensions: Vec::new(),
        calls_dimensions: Vec::new(),
        histogram_dimensions: Vec::new(),
        events: None,
        ..red.clone()
    };
    let with_dimensions = Red {
        dimensions: red.dimensions.clone(),
        ..base.clone()
    };
    let steps: [(&'static str, Red); 5] = [
        ("service_name", base),
        ("dimensions", with_dimensions.clone()),
        (
            "calls_dimensions",
            Red {
                calls_dimensions: red.calls_dimensions.clone(),
                ..with_dimensions.clone()
            },
        ),
        (
            "histogram",
            Red {
                histogram_dimensions: red.histogram_dimensions.clone(),
                ..with_dimensions
            },
        ),
        ("events", red.clone()),
    ];
    for (key, probe) in steps {
        let probe = SpanMetricsBuilder::default()
            .max_label_len(max_label_len)
            .red_with(probe);
        if validate(&probe).is_err() {
            return key;
        }
    }
    "service_name"
}

/// Where the file's rules are written, to point the builder's verdict on one at its key.
struct Rules<'a, 'i> {
    /// The index of the first rule `[red]` adds, its table, its options and the label bound.
    red: Option<(usize, &'a Node<'i>, Red, usize)>,
    /// The index of the first `[[metric]]` rule, and their tables.
    first_metric: usize,
    metrics: &'a [Node<'i>],
}

impl Rules<'_, '_> {
    /// Where the problem `e` is written: the key it is about, or else the rule's table.
    fn site(&self, e: &ConfigError) -> Option<Range<usize>> {
        let rule = e.rule_index()?;
        let (node, key) = match rule.checked_sub(self.first_metric) {
            Some(i) => (self.metrics.get(i)?, e.key().map(RuleKey::as_str)),
            None => {
                let (_, node, red, max_label_len) =
                    self.red.as_ref().filter(|(first, ..)| rule >= *first)?;
                let key = e.key().map(|k| match k {
                    RuleKey::Labels => red_labels_key(red, *max_label_len),
                    other => red_key(other),
                });
                (*node, key)
            }
        };
        let key = key.and_then(|k| entry(node, k));
        Some(key.map_or_else(|| node.span(), |(k, _)| k.span()))
    }
}

/// The key of `[red]` behind `key` of a rule it adds (labels: see [`red_labels_key`]).
fn red_key(key: RuleKey) -> &'static str {
    match key {
        RuleKey::Name => "namespace",
        RuleKey::Unit | RuleKey::Buckets => "histogram",
        RuleKey::CardinalityLimit => "aggregation_cardinality_limit",
        other => other.as_str(),
    }
}

/// Rule `index`, read from its `[[metric]]` table; its problems name it once its name is known.
fn read_metric(
    text: &str,
    index: usize,
    node: &Node<'_>,
    duration_buckets: Option<&Buckets>,
) -> Result<Metric, ConfigError> {
    metric(node, duration_buckets).map_err(|fail| {
        let name = entry(node, "name").and_then(|(_, name)| name.get_ref().as_str());
        let e = match name {
            Some(name) => ConfigError::rule(index, name, fail.problem),
            None => ConfigError::file(fail.problem),
        };
        located(text, Some(fail.at.unwrap_or_else(|| node.span())), e)
    })
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
        if let (Ok(line), Ok(column)) = (u32::try_from(line), u32::try_from(column)) {
            e = e.at_line(line, column);
        }
    }
    e
}

/// A problem outside the rules, located.
fn global_error(text: &str, fail: Fail) -> ConfigError {
    located(text, fail.at, ConfigError::file(fail.problem))
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
    /// A [`ConfigError`] with the line and column: TOML syntax, an unknown key or word (with
    /// the accepted ones and the nearest), a value of the wrong type, or anything the builder
    /// rejects (with the builder's message, at the key or setting it is about).
    pub fn toml(self, text: &str) -> Result<SpanMetricsBuilder, ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| {
            located(
                text,
                e.span(),
                ConfigError::file(e.message().trim().to_owned()),
            )
        })?;
        let global = |fail| global_error(text, fail);
        let file = Table::new("the file", doc.get_ref(), doc.span(), FILE_KEYS).map_err(global)?;
        let settings = file.get("settings", settings).map_err(global)?;
        let settings = settings.unwrap_or_default();
        let red = file.get("red", red).map_err(global)?;
        let metrics = file.get("metric", metric_tables).map_err(global)?;
        let metrics = metrics.unwrap_or_default();
        let objectives = file.get("objective", objective_tables).map_err(global)?;
        let objectives = objectives.unwrap_or_default();

        let mut builder = settings.apply(self);
        let first_red = builder.rules().len();
        if let Some(red) = &red {
            builder = builder.red_with(red.clone());
        }
        let first_metric = builder.rules().len();
        let duration_buckets = settings.duration_buckets.as_ref();
        for (i, node) in metrics.iter().enumerate() {
            builder = builder.metric(read_metric(text, first_metric + i, node, duration_buckets)?);
        }
        let first_objective = builder.objectives().len();
        for (i, node) in objectives.iter().enumerate() {
            builder = builder.objective(read_objective(text, first_objective + i, node)?);
        }
        // The builder's own validation, located at the offending key.
        if let Err(e) = validate(&builder) {
            if let Some(site) = objective_site(&e, first_objective, objectives) {
                return Err(located(text, Some(site), e));
            }
            let red_site = file.node("red").zip(red);
            let rules = Rules {
                red: red_site.map(|(node, red)| (first_red, node, red, builder.max_label_len)),
                first_metric,
                metrics,
            };
            let site = rules.site(&e);
            return Err(located(text, site, e));
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
            .map_err(|e| ConfigError::io(format!("cannot read {}: {e}", path.display()), e))?;
        self.toml(&text)
            .map_err(|e| e.in_file(path.display().to_string()))
    }
}

// Objectives: `[[objective]]` tables (see `super::objective`).

const OBJECTIVE_KEYS: &[&str] = &[
    "name",
    "family",
    "kind",
    "threshold",
    "target",
    "window",
    "filter",
    "group_by",
    "errors",
    "description",
];
const ERRORS_KEYS: &[&str] = &["label", "values"];

/// What an objective measures, before its threshold is read.
#[derive(Clone, Copy)]
enum ObjectiveWord {
    Availability,
    Latency,
}

const OBJECTIVE_KINDS: Words<ObjectiveWord> = Words {
    what: "objective kind",
    words: &[
        ("availability", ObjectiveWord::Availability),
        ("latency", ObjectiveWord::Latency),
    ],
};

fn objective_tables<'a, 'i>(node: &'a Node<'i>) -> Read<&'a [Node<'i>]> {
    match node.get_ref() {
        DeValue::Array(tables) => Ok(tables),
        _ => Err(Fail::expected(node, "`[[objective]]` tables")),
    }
}

fn objective(node: &Node<'_>) -> Read<Objective> {
    let t = Table::open(node, "an objective", OBJECTIVE_KEYS)?;
    let name = t.need("name", string)?;
    let family = t.need("family", string)?;
    let kind = t.need("kind", |n| OBJECTIVE_KINDS.read(n))?;
    let threshold = t.get("threshold", number)?;
    let mut o = match (kind, threshold) {
        (ObjectiveWord::Availability, None) => Objective::availability(name, family),
        (ObjectiveWord::Latency, Some(threshold)) => Objective::latency(name, family, threshold),
        (ObjectiveWord::Availability, Some(_)) => {
            let (key, _) = find(t.entries, "threshold").expect("read above");
            return Err(Fail {
                at: Some(key.span()),
                problem: "an availability objective has no `threshold` (a latency one does)".into(),
            });
        }
        (ObjectiveWord::Latency, None) => {
            return Err(Fail {
                at: Some(t.span.clone()),
                problem: "missing key `threshold` in a latency objective (one of the \
                          family's bucket bounds)"
                    .into(),
            });
        }
    };
    if let Some(target) = t.get("target", number)? {
        o = o.target(target);
    }
    if let Some(window) = t.get("window", |n| {
        let text = string(n)?;
        super::objective::parse_duration(&text).map_err(|p| Fail::at(n, p))
    })? {
        o = o.window(window);
    }
    if let Some(filter) = t.get("filter", |n| match n.get_ref() {
        DeValue::Table(entries) => entries
            .iter()
            .map(|(k, v)| Ok((k.get_ref().to_string(), text(v)?)))
            .collect::<Read<Vec<_>>>(),
        _ => Err(Fail::expected(n, "a table of label values")),
    })? {
        for (k, v) in filter {
            o = o.filter(k, v);
        }
    }
    for key in t.get("group_by", |n| list(n, string))?.unwrap_or_default() {
        o = o.group_by(key);
    }
    if let Some((label, values)) = t.get("errors", |n| {
        let e = Table::open(n, "`errors`", ERRORS_KEYS)?;
        Ok((
            e.need("label", string)?,
            e.need("values", |v| list(v, text))?,
        ))
    })? {
        o = o.errors(label, values);
    }
    if let Some(text) = t.get("description", string)? {
        o = o.describe(text);
    }
    Ok(o)
}

/// Objective `index`, read from its `[[objective]]` table.
fn read_objective(text: &str, index: usize, node: &Node<'_>) -> Result<Objective, ConfigError> {
    objective(node).map_err(|fail| {
        let name = entry(node, "name").and_then(|(_, name)| name.get_ref().as_str());
        let e = match name {
            Some(name) => ConfigError::objective(index, name, fail.problem),
            None => ConfigError::file(fail.problem),
        };
        located(text, Some(fail.at.unwrap_or_else(|| node.span())), e)
    })
}

/// Where the builder's verdict `e` on an objective of the file is written: the key it is
/// about, or else the objective's table.
fn objective_site(e: &ConfigError, first: usize, tables: &[Node<'_>]) -> Option<Range<usize>> {
    let (index, key) = e.objective_site()?;
    let node = tables.get(index.checked_sub(first)?)?;
    let key = key.and_then(|k| entry(node, k.as_str()));
    Some(key.map_or_else(|| node.span(), |(k, _)| k.span()))
}

#[cfg(test)]
mod tests {
    use super::{line_col, nearest};

    #[test]
    fn lines_and_columns_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }

    #[test]
    fn the_nearest_word_is_a_typo_away() {
        let words = ["wall_time", "busy_time", "in_flight"];
        assert_eq!(nearest("wall_tim", &words), Some("wall_time"));
        assert_eq!(nearest("wlal_time", &words), Some("wall_time"));
        assert_eq!(nearest("BUSY_TIME", &words), Some("busy_time"));
        assert_eq!(nearest("in_fl", &words), Some("in_flight"));
        assert_eq!(nearest("in_flight_after", &words), None);
        assert_eq!(nearest("x", &words), None);
        // An abbreviation of several words names none of them.
        assert_eq!(nearest("span", &["span_name", "span_kind"]), None);
    }
}
