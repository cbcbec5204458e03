//! Test helpers: capture the metrics a layer records and read them back by name and labels.
//!
//! *Available with the crate feature `testing` (off by default).*
//!
//! A [`MetricsCapture`] owns a recorder over `metrics_util`'s atomic registry. Pass its
//! [`recorder`](MetricsCapture::recorder) to
//! [`SpanMetricsBuilder::with_recorder`](crate::SpanMetricsBuilder::with_recorder), run the code
//! under test, then take a [`MetricsSnapshot`] and look series up by family name and exact label
//! set. No Prometheus text to parse, no global recorder to install.
//!
//! ```
//! use quanta::Clock;
//! use std::time::Duration;
//! use tracing_spanmetrics::testing::MetricsCapture;
//! use tracing_spanmetrics::{Metric, SpanMetrics, Spans};
//! use tracing_subscriber::prelude::*;
//!
//! let capture = MetricsCapture::new();
//! let (clock, time) = Clock::mock();
//! let layer = SpanMetrics::builder()
//!     .metric(
//!         Metric::histogram("rpc.duration.seconds")
//!             .spans(Spans::named("rpc"))
//!             .label("method"),
//!     )
//!     .metric(Metric::counter("rpc.calls.total").spans(Spans::named("rpc")).label("method"))
//!     .metric(Metric::gauge("rpc.in_flight").spans(Spans::named("rpc")))
//!     .with_recorder(capture.recorder())
//!     .with_clock(clock)
//!     .build()?;
//!
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let span = tracing::info_span!("rpc", method = "get");
//!     assert_eq!(capture.snapshot().gauge("rpc.in_flight", &[]), Some(1.0));
//!     time.increment(Duration::from_millis(250));
//!     drop(span);
//!     drop(tracing::info_span!("rpc", method = "put")); // opened and closed at once
//! });
//!
//! let snapshot = capture.snapshot();
//! assert_eq!(snapshot.histogram("rpc.duration.seconds", &[("method", "get")]), Some(vec![0.25]));
//! assert_eq!(snapshot.counter("rpc.calls.total", &[("method", "get")]), Some(1));
//! assert_eq!(snapshot.counter("rpc.calls.total", &[("method", "put")]), Some(1));
//! assert_eq!(snapshot.counter("rpc.calls.total", &[("method", "delete")]), None);
//! assert_eq!(snapshot.gauge("rpc.in_flight", &[]), Some(0.0));
//! let get = vec![("method".to_string(), "get".to_string())];
//! let put = vec![("method".to_string(), "put".to_string())];
//! assert_eq!(snapshot.series("rpc.calls.total"), [get, put]);
//! # Ok::<(), tracing_spanmetrics::ConfigError>(())
//! ```
//!
//! ## Decisions
//! - **Cumulative snapshots.** A capture keeps every series in atomic storage
//!   (`metrics_util`'s registry) that reading never resets, so every [`MetricsSnapshot`] holds
//!   the totals since the capture was created: counters count everything, gauges hold their
//!   current value, histograms hold every observation. Two snapshots in a row agree. (A
//!   `DebuggingRecorder`'s snapshotter drains what it reads, which loses increments that race
//!   a snapshot.)
//! - **Series are matched by their exact, full label set**, in any order: `&[]` matches only
//!   the series without labels, and a series with one more label than asked for does not
//!   match.
//! - **Names**: a lookup takes the name a rule declares or the exported one. It matches, in
//!   this order of preference, a family registered under exactly that name; under that name
//!   with every `.` replaced by `_`; or under the exported name a family declared with that
//!   name gets (the crate's naming rule: `rpc.calls` finds the counter `rpc_calls_total`,
//!   `rpc.latency` the duration histogram `rpc_latency_seconds`).
//! - **Histogram observations** come back sorted ascending: the recorder does not keep the
//!   order they were recorded in.
//! - A series the layer registered but never moved reads as zero (`Some(0)`), not `None`.
//! - While spans are recorded on other threads, a snapshot is not an atomic cut across series:
//!   each value is read once, and nothing is lost or reset by reading. Snapshot when quiescent
//!   to assert exact values.
//! - Each capture has its own recorder: captures never see each other's metrics, and nothing is
//!   installed globally.

#![cfg(feature = "testing")]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit as MetricsUnit,
};
use metrics_util::registry::{AtomicStorage, Registry};

use crate::config::exported_name;
use crate::{MetricKind, Unit};

/// Captures every metric recorded through its [`recorder`](MetricsCapture::recorder) and takes
/// cumulative [`MetricsSnapshot`]s of them.
///
/// *Available with the crate feature `testing`.* See the [module docs](self) for the semantics.
///
/// ```
/// use tracing_spanmetrics::testing::MetricsCapture;
/// use tracing_spanmetrics::{Metric, SpanMetrics, Spans};
/// use tracing_subscriber::prelude::*;
///
/// let capture = MetricsCapture::new();
/// let layer = SpanMetrics::builder()
///     .metric(
///         Metric::histogram("rpc.duration.seconds")
///             .spans(Spans::named("rpc"))
///             .label("method"),
///     )
///     .with_recorder(capture.recorder())
///     .build()?;
///
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     for _ in 0..3 {
///         let _span = tracing::info_span!("rpc", method = "get").entered();
///     }
///     let _span = tracing::info_span!("rpc", method = "put").entered();
/// });
///
/// let snapshot = capture.snapshot();
/// assert_eq!(snapshot.histogram_count("rpc.duration.seconds", &[("method", "get")]), Some(3));
/// assert_eq!(snapshot.histogram_count("rpc.duration.seconds", &[("method", "put")]), Some(1));
/// assert_eq!(snapshot.histogram_count("rpc.duration.seconds", &[]), None);
/// # Ok::<(), tracing_spanmetrics::ConfigError>(())
/// ```
pub struct MetricsCapture {
    recorder: Arc<CaptureRecorder>,
}

/// The recorder of a [`MetricsCapture`]: atomic storage per series that reading never resets,
/// so a snapshot taken while other threads record loses nothing.
struct CaptureRecorder {
    registry: Registry<Key, AtomicStorage>,
}

impl Recorder for CaptureRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<MetricsUnit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<MetricsUnit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<MetricsUnit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

impl MetricsCapture {
    /// A capture with nothing recorded yet.
    #[must_use]
    pub fn new() -> Self {
        MetricsCapture {
            recorder: Arc::new(CaptureRecorder {
                registry: Registry::atomic(),
            }),
        }
    }

    /// The recorder to hand to
    /// [`SpanMetricsBuilder::with_recorder`](crate::SpanMetricsBuilder::with_recorder) (or to
    /// `metrics::with_local_recorder`). Every call returns the same recorder.
    #[must_use]
    pub fn recorder(&self) -> Arc<dyn Recorder + Send + Sync> {
        self.recorder.clone()
    }

    /// Every series recorded so far, with its total since the capture was created. Reading
    /// resets nothing.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let registry = &self.recorder.registry;
        let counters = registry
            .get_counter_handles()
            .into_iter()
            .map(|(k, c)| (k, Value::Counter(c.load(Ordering::Acquire))));
        let gauges = registry
            .get_gauge_handles()
            .into_iter()
            .map(|(k, g)| (k, Value::Gauge(f64::from_bits(g.load(Ordering::Acquire)))));
        let histograms = registry.get_histogram_handles().into_iter().map(|(k, h)| {
            let mut values = h.data();
            values.sort_by(f64::total_cmp);
            (k, Value::Histogram(values))
        });
        let mut series: Vec<Series> = counters
            .chain(gauges)
            .chain(histograms)
            .map(|(key, value)| {
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                Series {
                    name: key.name().to_owned(),
                    labels,
                    value,
                }
            })
            .collect();
        series.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        MetricsSnapshot { series }
    }
}

impl Default for MetricsCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MetricsCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCapture").finish_non_exhaustive()
    }
}

/// The metrics a [`MetricsCapture`] had recorded when the snapshot was taken: totals since the
/// capture was created.
///
/// *Available with the crate feature `testing`.* Lookups take a family name (see the
/// [module docs](self) for how names match) and the series' full label set, in any order.
/// The `Debug` output lists every series, e.g. `rpc_calls_total{method="get"}: Counter(1)`.
#[derive(Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Sorted by name, then labels.
    series: Vec<Series>,
}

#[derive(Clone, PartialEq)]
struct Series {
    name: String,
    /// Sorted by key, then value.
    labels: Vec<(String, String)>,
    value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    /// Sorted ascending.
    Histogram(Vec<f64>),
}

impl Value {
    fn kind(&self) -> MetricKind {
        match self {
            Value::Counter(_) => MetricKind::Counter,
            Value::Gauge(_) => MetricKind::Gauge,
            Value::Histogram(_) => MetricKind::Histogram,
        }
    }
}

/// How `registered` (a series of `kind`) answers a lookup for `asked`: `Some(0)` for the same
/// name, `Some(1)` for `asked` with every `.` replaced by `_` (the Prometheus form of a facade
/// name), `Some(2)` for the name a family declared as `asked` is exported under (with a unit
/// suffix or `_total` added: `rpc.calls` finds `rpc_calls_total`), `None` otherwise. Lower is
/// better.
fn name_match(registered: &str, kind: MetricKind, asked: &str) -> Option<u8> {
    if registered == asked {
        Some(0)
    } else if registered.len() == asked.len()
        && registered
            .bytes()
            .zip(asked.bytes())
            .all(|(r, a)| r == if a == b'.' { b'_' } else { a })
    {
        Some(1)
    } else if [Unit::Count, Unit::Seconds, Unit::Milliseconds, Unit::Bytes]
        .into_iter()
        .any(|unit| exported_name(asked, kind, unit) == registered)
    {
        Some(2)
    } else {
        None
    }
}

/// Whether `have` (sorted) is exactly the label set `want`, in any order.
fn same_labels(have: &[(String, String)], want: &[(&str, &str)]) -> bool {
    if have.len() != want.len() {
        return false;
    }
    let mut want = want.to_vec();
    want.sort_unstable();
    have.iter()
        .zip(&want)
        .all(|((hk, hv), (wk, wv))| hk == wk && hv == wv)
}

impl MetricsSnapshot {
    /// The series of `kind` named `name` with exactly `labels`, preferring an exact name.
    fn find(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        self.series
            .iter()
            .filter(|s| s.value.kind() == kind && same_labels(&s.labels, labels))
            .filter_map(|s| name_match(&s.name, kind, name).map(|rank| (rank, &s.value)))
            .min_by_key(|&(rank, _)| rank)
            .map(|(_, value)| value)
    }

    /// The counter `name` with exactly `labels`: its total, or `None` if no such series was
    /// registered.
    #[must_use]
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.find(MetricKind::Counter, name, labels)? {
            Value::Counter(n) => Some(*n),
            _ => None,
        }
    }

    /// The gauge `name` with exactly `labels`: its current value, or `None` if no such series
    /// was registered.
    #[must_use]
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(MetricKind::Gauge, name, labels)? {
            Value::Gauge(v) => Some(*v),
            _ => None,
        }
    }

    /// The histogram `name` with exactly `labels`: every value it observed, sorted ascending,
    /// or `None` if no such series was registered.
    #[must_use]
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        self.observations(name, labels).map(<[f64]>::to_vec)
    }

    /// How many values the histogram `name` with exactly `labels` observed, or `None` if no
    /// such series was registered.
    #[must_use]
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> Option<usize> {
        self.observations(name, labels).map(<[f64]>::len)
    }

    /// The sum of the values the histogram `name` with exactly `labels` observed, or `None` if
    /// no such series was registered.
    #[must_use]
    pub fn histogram_sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.observations(name, labels).map(|v| v.iter().sum())
    }

    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> Option<&[f64]> {
        match self.find(MetricKind::Histogram, name, labels)? {
            Value::Histogram(values) => Some(values),
            _ => None,
        }
    }

    /// The label sets of every series in the family `name` (of any kind), each sorted by key,
    /// in sorted order. Empty if there is no such family.
    #[must_use]
    pub fn series(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let best = self
            .series
            .iter()
            .filter_map(|s| name_match(&s.name, s.value.kind(), name))
            .min();
        self.series
            .iter()
            .filter(|s| best.is_some() && name_match(&s.name, s.value.kind(), name) == best)
            .map(|s| s.labels.clone())
            .collect()
    }

    /// Every family, as registered (name and kind), sorted by name.
    #[must_use]
    pub fn families(&self) -> Vec<(&str, MetricKind)> {
        let mut families: Vec<(&str, MetricKind)> = self
            .series
            .iter()
            .map(|s| (s.name.as_str(), s.value.kind()))
            .collect();
        families.sort_by_key(|&(name, kind)| (name, kind as u8));
        families.dedup();
        families
    }

    /// Whether nothing was registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

impl fmt::Debug for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(f, "{sep}{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        write!(f, ": {:?}", self.value)
    }
}

impl fmt::Debug for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.series).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_with_dots_as_underscores() {
        assert_eq!(
            name_match("rpc.calls.total", MetricKind::Counter, "rpc.calls.total"),
            Some(0)
        );
        assert_eq!(
            name_match("rpc_calls_total", MetricKind::Counter, "rpc.calls.total"),
            Some(1)
        );
        assert_eq!(
            name_match("rpc_calls_total", MetricKind::Counter, "rpc_calls_total"),
            Some(0)
        );
        // Only the asked name is rewritten, and only dots.
        assert_eq!(
            name_match("rpc.calls.total", MetricKind::Counter, "rpc_calls_total"),
            None
        );
        assert_eq!(
            name_match("rpc_calls.total", MetricKind::Counter, "rpc.calls.total"),
            None
        );
        assert_eq!(
            name_match("rpc_calls", MetricKind::Counter, "rpc.calls.total"),
            None
        );
        assert_eq!(
            name_match("rpc-calls", MetricKind::Counter, "rpc.calls"),
            None
        );
        // The declared name of a family finds its exported name, for its own kind only.
        assert_eq!(
            name_match("rpc_calls_total", MetricKind::Counter, "rpc.calls"),
            Some(2)
        );
        assert_eq!(
            name_match("rpc_calls_total", MetricKind::Gauge, "rpc.calls"),
            None
        );
        assert_eq!(
            name_match("rpc_latency_seconds", MetricKind::Histogram, "rpc.latency"),
            Some(2)
        );
        assert_eq!(
            name_match("payload_bytes", MetricKind::Histogram, "payload"),
            Some(2)
        );
    }

    #[test]
    fn families_are_listed_once_per_name_and_kind() {
        let capture = MetricsCapture::new();
        metrics::with_local_recorder(&*capture.recorder(), || {
            metrics::counter!("a", "k" => "1").increment(1);
            metrics::gauge!("a", "k" => "1").set(1.0);
            metrics::counter!("a", "k" => "2").increment(1);
            metrics::gauge!("b").set(1.0);
        });
        let snapshot = capture.snapshot();
        assert_eq!(
            snapshot.families(),
            [
                ("a", MetricKind::Counter),
                ("a", MetricKind::Gauge),
                ("b", MetricKind::Gauge)
            ]
        );
    }
}
