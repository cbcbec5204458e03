//! Test helpers: a layer wired to a debugging recorder, and exact lookups in its snapshot.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tracing_spanmetrics::{SpanMetricsBuilder, SpanMetricsLayer};

/// A recorder whose reads do not reset anything (unlike `DebuggingRecorder`'s snapshots).
pub struct TestRecorder {
    registry: Registry<Key, AtomicStorage>,
    descriptions: Mutex<HashMap<String, (Option<Unit>, String)>>,
}

impl Default for TestRecorder {
    fn default() -> Self {
        TestRecorder {
            registry: Registry::atomic(),
            descriptions: Mutex::new(HashMap::new()),
        }
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, d: SharedString) {
        self.describe(key, unit, d)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, d: SharedString) {
        self.describe(key, unit, d)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, d: SharedString) {
        self.describe(key, unit, d)
    }
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

impl TestRecorder {
    fn describe(&self, key: KeyName, unit: Option<Unit>, d: SharedString) {
        self.descriptions
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), (unit, d.to_string()));
    }

    /// Every gauge series with its current value (cheaper than a snapshot while threads run).
    pub fn gauges(&self) -> Vec<(Key, f64)> {
        self.registry
            .get_gauge_handles()
            .into_iter()
            .map(|(k, g)| (k, f64::from_bits(g.load(Ordering::SeqCst))))
            .collect()
    }

    /// Every series with its current value.
    pub fn snapshot(&self) -> Metrics {
        let mut out = Vec::new();
        for (k, c) in self.registry.get_counter_handles() {
            out.push((k, Value::Counter(c.load(Ordering::SeqCst))));
        }
        for (k, g) in self.registry.get_gauge_handles() {
            out.push((k, Value::Gauge(f64::from_bits(g.load(Ordering::SeqCst)))));
        }
        for (k, h) in self.registry.get_histogram_handles() {
            out.push((k, Value::Histogram(h.data())));
        }
        Metrics {
            series: out,
            descriptions: self.descriptions.lock().unwrap().clone(),
        }
    }
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

/// A built layer with its recorder's snapshotter and (optionally) a mock clock.
pub struct Harness {
    pub layer: Option<SpanMetricsLayer>,
    pub recorder: Arc<TestRecorder>,
    pub mock: Arc<quanta::Mock>,
}

impl Harness {
    /// Builds `builder` against a fresh debugging recorder and a mock clock.
    pub fn new(builder: SpanMetricsBuilder) -> Harness {
        let recorder = Arc::new(TestRecorder::default());
        let (clock, mock) = quanta::Clock::mock();
        let layer = builder
            .with_recorder(recorder.clone())
            .with_clock(clock)
            .build()
            .expect("valid configuration");
        Harness {
            layer: Some(layer),
            recorder,
            mock,
        }
    }

    pub fn take_layer(&mut self) -> SpanMetricsLayer {
        self.layer.take().expect("layer already taken")
    }

    /// A dispatch with the registry and the layer.
    pub fn dispatch(&mut self) -> tracing::Dispatch {
        use tracing_subscriber::prelude::*;
        tracing::Dispatch::new(tracing_subscriber::registry().with(self.take_layer()))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.mock.increment(std::time::Duration::from_millis(ms));
    }

    pub fn snapshot(&self) -> Metrics {
        self.recorder.snapshot()
    }
}

/// A snapshot with exact lookups: a series matches only if its label set is exactly the one
/// given (order does not matter).
pub struct Metrics {
    pub series: Vec<(Key, Value)>,
    pub descriptions: HashMap<String, (Option<Unit>, String)>,
}

fn same_labels(key: &Key, labels: &[(&str, &str)]) -> bool {
    let mut have: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    have.sort();
    want.sort();
    have == want
}

/// Whether `registered` (the name the layer registered, its exported name) is the family the
/// rules declared as `declared`, of kind `k` (0 counter, 1 gauge, 2 histogram; `None`: any):
/// dots become `_`, a unit suffix may follow, counters end with `_total` (the naming rule).
pub fn is_family(registered: &str, declared: &str, k: Option<u8>) -> bool {
    if registered == declared {
        return true;
    }
    let dotless = declared.replace('.', "_");
    [0u8, 1, 2]
        .into_iter()
        .filter(|&kk| k.is_none_or(|k| k == kk))
        .any(|kk| {
            let base = if kk == 0 {
                dotless
                    .strip_suffix("_total")
                    .unwrap_or(&dotless)
                    .to_owned()
            } else {
                dotless.clone()
            };
            ["", "_seconds", "_milliseconds", "_bytes"]
                .into_iter()
                .any(|unit| {
                    let mut name = if base.ends_with(unit) {
                        base.clone()
                    } else {
                        format!("{base}{unit}")
                    };
                    if kk == 0 {
                        name.push_str("_total");
                    }
                    name == registered
                })
        })
}

fn kind(v: &Value) -> u8 {
    match v {
        Value::Counter(_) => 0,
        Value::Gauge(_) => 1,
        Value::Histogram(_) => 2,
    }
}

impl Metrics {
    fn find(&self, k: u8, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        let mut found = self.series.iter().filter(|(key, v)| {
            kind(v) == k && is_family(key.name(), name, Some(k)) && same_labels(key, labels)
        });
        let first = found.next();
        assert!(found.next().is_none(), "duplicate series {name} {labels:?}");
        first.map(|(_, v)| v)
    }

    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.find(0, name, labels)? {
            Value::Counter(v) => Some(*v),
            _ => unreachable!(),
        }
    }

    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(1, name, labels)? {
            Value::Gauge(v) => Some(*v),
            _ => unreachable!(),
        }
    }

    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        match self.find(2, name, labels)? {
            Value::Histogram(v) => Some(v.clone()),
            _ => unreachable!(),
        }
    }

    /// Every label set of `name`, each sorted, the list sorted.
    pub fn series(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let mut out: Vec<Vec<(String, String)>> = self
            .series
            .iter()
            .filter(|(k, _)| is_family(k.name(), name, None))
            .map(|(k, _)| {
                let mut l: Vec<(String, String)> = k
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                l.sort();
                l
            })
            .collect();
        out.sort();
        out
    }

    /// The unit and description registered for `name`.
    pub fn description(&self, name: &str) -> Option<(Option<Unit>, Option<String>)> {
        self.descriptions
            .iter()
            .find(|(registered, _)| is_family(registered, name, None))
            .map(|(_, (u, d))| (*u, Some(d.clone())))
    }
}
/// Label pairs from `[("k", "v")]` as owned, sorted: for comparing with [`Metrics::series`].
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    l
}
