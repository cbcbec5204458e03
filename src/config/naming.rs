//! Exported names: the one name Prometheus shows for a family, whatever the exporter's settings.
//!
//! # The naming rule
//! A family's exported name depends on its declared name, its kind and its unit, and on nothing
//! else (not on its description, not on the exporter's naming settings):
//! 1. every `.` becomes `_`;
//! 2. unless the unit is a plain count, `_<unit>` is appended (`_seconds`, `_milliseconds`,
//!    `_bytes`) where the name does not already end with it; a counter's `_total` stays last
//!    (`bytes.sent.total` in bytes → `bytes_sent_bytes_total`, `busy.seconds.total` in seconds
//!    → `busy_seconds_total`);
//! 3. a counter ends with `_total`, appended where missing.
//!
//! The layer registers every family with the `metrics` facade under that name, so a plain
//! `PrometheusBuilder::new()` shows it as is, and `with_recommended_naming(true)` finds both
//! suffixes already there and adds nothing.
//!
//! # Claimed names
//! Besides its exported name, a family occupies the sample names Prometheus derives from it:
//! a histogram's `_bucket`, `_sum` and `_count` (and OpenMetrics' `_created`), a counter's name
//! without `_total` (its OpenMetrics family name) and `_created`. Two families whose claimed
//! names meet would be one family, or a broken exposition, once scraped; the builder refuses
//! them.

use crate::config::{MetricKind, Unit};

/// The label key of the overflow series.
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";
/// Counter of observations folded into an overflow series, labelled `metric` (the family's
/// exported name). Registered under this, its exported name.
pub const OVERFLOW_METRIC: &str = "spanmetrics_overflow_observations_total";
/// Counter of label values cut to the configured length bound.
pub const TRUNCATED_METRIC: &str = "spanmetrics_label_values_truncated_total";
/// Counter of values that could not be recorded (not a number, not finite, negative for a
/// counter), labelled `metric` (the family's exported name) and `reason`.
pub const REJECTED_METRIC: &str = "spanmetrics_values_rejected_total";
/// The value a label with a [value limit](crate::Label::value_limit) takes once it has taken
/// its limit of distinct values (the marker Grafana Tempo's per-label limiter writes).
pub const LABEL_OVERFLOW_VALUE: &str = "__cardinality_overflow__";
/// Counter of observations whose label value was replaced by [`LABEL_OVERFLOW_VALUE`],
/// labelled `metric` (the family's exported name) and `label` (the label's key).
pub const LABEL_OVERFLOW_METRIC: &str = "spanmetrics_label_overflow_observations_total";
/// The layer's own health counters: no family may be exported under their names.
pub(crate) const HEALTH_METRICS: [&str; 4] = [
    OVERFLOW_METRIC,
    TRUNCATED_METRIC,
    REJECTED_METRIC,
    LABEL_OVERFLOW_METRIC,
];

/// The name Prometheus shows for a family declared as `declared` (see the module docs).
pub(crate) fn exported_name(declared: &str, kind: MetricKind, unit: Unit) -> String {
    let mut name = declared.replace('.', "_");
    let counter = kind == MetricKind::Counter;
    if counter && name.ends_with("_total") {
        name.truncate(name.len() - "_total".len());
    }
    if let Some(unit) = unit_suffix(unit) {
        if !name.ends_with(unit) {
            name.push_str(unit);
        }
    }
    if counter {
        name.push_str("_total");
    }
    name
}

/// The label key Prometheus shows for a declared key: every `.` becomes `_` (as the exporter
/// sanitises it).
pub(crate) fn exported_label_key(declared: &str) -> String {
    declared.replace('.', "_")
}

/// The suffix a unit adds to a name, if any.
fn unit_suffix(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Count => None,
        Unit::Seconds => Some("_seconds"),
        Unit::Milliseconds => Some("_milliseconds"),
        Unit::Bytes => Some("_bytes"),
    }
}

/// Every sample or family name a family with exported name `exported` occupies in a Prometheus
/// or OpenMetrics exposition.
pub(crate) fn claimed_names(exported: &str, kind: MetricKind) -> Vec<String> {
    match kind {
        MetricKind::Gauge => vec![exported.to_owned()],
        MetricKind::Counter => {
            let family = exported.strip_suffix("_total").unwrap_or(exported);
            vec![
                exported.to_owned(),
                family.to_owned(),
                format!("{family}_created"),
            ]
        }
        MetricKind::Histogram => ["", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .map(|suffix| format!("{exported}{suffix}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricKind::*;

    #[test]
    fn the_exported_name_follows_name_kind_and_unit_only() {
        let cases = [
            (
                "rpc.latency",
                Histogram,
                Unit::Seconds,
                "rpc_latency_seconds",
            ),
            (
                "rpc.duration.seconds",
                Histogram,
                Unit::Seconds,
                "rpc_duration_seconds",
            ),
            ("payload", Histogram, Unit::Bytes, "payload_bytes"),
            ("calls", Counter, Unit::Count, "calls_total"),
            ("calls.total", Counter, Unit::Count, "calls_total"),
            (
                "bytes.sent.total",
                Counter,
                Unit::Bytes,
                "bytes_sent_bytes_total",
            ),
            (
                "busy.seconds.total",
                Counter,
                Unit::Seconds,
                "busy_seconds_total",
            ),
            ("busy", Counter, Unit::Seconds, "busy_seconds_total"),
            (
                "traces.span.metrics.duration",
                Histogram,
                Unit::Milliseconds,
                "traces_span_metrics_duration_milliseconds",
            ),
            ("queue.total", Gauge, Unit::Count, "queue_total"),
            ("queue.total", Gauge, Unit::Bytes, "queue_total_bytes"),
            ("in_flight", Gauge, Unit::Count, "in_flight"),
        ];
        for (declared, kind, unit, want) in cases {
            assert_eq!(exported_name(declared, kind, unit), want, "{declared}");
            // Idempotent: an exported name declared again exports unchanged.
            assert_eq!(exported_name(want, kind, unit), want, "{want} again");
        }
    }

    #[test]
    fn families_claim_their_derived_sample_names() {
        assert_eq!(
            claimed_names("lat_seconds", Histogram),
            [
                "lat_seconds",
                "lat_seconds_bucket",
                "lat_seconds_sum",
                "lat_seconds_count",
                "lat_seconds_created"
            ]
        );
        assert_eq!(
            claimed_names("foo_total", Counter),
            ["foo_total", "foo", "foo_created"]
        );
        assert_eq!(claimed_names("foo", Gauge), ["foo"]);
    }
}
