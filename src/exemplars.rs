//! Exemplars: the trace and span ids of spans, kept beside the series their spans recorded
//! into, for the OpenMetrics exposition (`crate::exporter`). The ids come from a user's
//! [`ExemplarSource`] (feature `exemplars`), asked at this layer's close of each span with
//! close-time rules, or else (feature `opentelemetry`) from sampled OpenTelemetry spans.
//!
//! ## What is captured from OpenTelemetry, and when
//! A span's OpenTelemetry context is read through `tracing_opentelemetry::get_otel_context`,
//! the supported way for another layer. Its trace id and sampling decision are final once
//! tracing-opentelemetry *starts* the OpenTelemetry span: on the first enter (its context
//! activation, on by default), on a `get_otel_context`, or at its own close. Until then
//! `OpenTelemetrySpanExt::set_parent` may still change the parent (a remote `traceparent`), so
//! the context is never read when a span is created. Where it is read depends on the order of
//! the two layers, because `Layered` closes the inner stack first and tracing-opentelemetry's
//! `on_close` drops its data:
//! - tracing-opentelemetry outside this layer (`registry().with(metrics).with(otel)`): this
//!   layer's `on_close` runs first, while the data is there; the context is read then, once per
//!   span. The layer learns this order from the first close that finds the data, and from then
//!   on reads nothing at enter.
//! - tracing-opentelemetry inside (`registry().with(otel).with(metrics)`): its data is gone by
//!   this layer's `on_close`, so the context is read at the span's first enter (after
//!   tracing-opentelemetry's own `on_enter` started it). A span that is never entered gets no
//!   exemplar in this order.
//!
//! A layer whose first 1,024 lookups all find no OpenTelemetry data (no tracing-opentelemetry
//! layer in the subscriber) stops looking, so that the feature costs such a subscriber nothing
//! after its first spans.
//!
//! Only a valid context whose `is_sampled()` flag is set gives ids: an exemplar must link to a
//! trace the backend has.
//!
//! ## What is kept
//! The latest exemplar per histogram bucket per series, and per counter series (as the
//! OpenTelemetry SDK's aligned-bucket reservoir and Prometheus client libraries keep them): a
//! scrape shows, for each bucket, the most recent sampled observation that landed in it. Each
//! series' slots (one per bucket and `+Inf`, or one for a counter) are allocated at its first
//! exemplar, so memory is bounded by the families' cardinality limits: at most
//! `limit × (buckets + 1) × 48` bytes per histogram family and `limit × 48` per counter family,
//! plus the series' label values. A slot is a sequence lock over atomics: writers that race on
//! one slot keep one of their exemplars whole (the loser's is dropped), readers never see a
//! torn one.

#[cfg(feature = "opentelemetry")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use hashbrown::HashTable;
use tracing_core::dispatcher::{self, Dispatch, WeakDispatch};
use tracing_core::span::Id;

use crate::config::{Buckets, MetricKind};
use crate::instruments::Op;

/// A trace id and a span id, as bytes.
pub(crate) type Ids = ([u8; 16], [u8; 8]);

/// A span's ids and the Unix time (ns) of its observations: what an exemplar is made of.
pub(crate) type Stamped = (Ids, u64);

/// The ids a span carries into its observations; all zero: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpanIds {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// Whether the span's OpenTelemetry context was read (ids or not): not read again.
    looked: bool,
}

impl SpanIds {
    /// A context that was read and gives no ids (none, unsampled or invalid).
    const NONE: SpanIds = SpanIds {
        trace_id: [0; 16],
        span_id: [0; 8],
        looked: true,
    };

    /// Whether the context was read already.
    #[inline]
    pub(crate) fn looked(&self) -> bool {
        self.looked
    }

    /// The ids, if the span is a sampled OpenTelemetry span with a valid context.
    #[inline]
    pub(crate) fn ids(&self) -> Option<Ids> {
        (self.trace_id != [0; 16] && self.span_id != [0; 8])
            .then_some((self.trace_id, self.span_id))
    }
}

/// A span's trace and span ids, as bytes, as an [`ExemplarSource`] gives them: the ids an
/// exemplar links the observations of the span to.
///
/// Ids of which either is all zero are refused (no exemplar), as an invalid OpenTelemetry
/// context is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The trace id (16 bytes; rendered as 32 lowercase hex digits).
    pub trace_id: [u8; 16],
    /// The span id (8 bytes; rendered as 16 lowercase hex digits).
    pub span_id: [u8; 8],
}

impl From<Option<TraceIds>> for SpanIds {
    fn from(ids: Option<TraceIds>) -> Self {
        match ids {
            Some(ids) => SpanIds {
                trace_id: ids.trace_id,
                span_id: ids.span_id,
                looked: true,
            },
            None => SpanIds::NONE,
        }
    }
}

/// Where a layer takes the trace and span ids of a span's exemplars from, instead of
/// OpenTelemetry: see
/// [`SpanMetricsLayer::with_exemplar_source`](crate::SpanMetricsLayer::with_exemplar_source).
///
/// Implemented by every `Fn(&tracing::span::Id, &tracing::Dispatch) -> Option<TraceIds>` that
/// is `Send + Sync + 'static`.
pub trait ExemplarSource: Send + Sync + 'static {
    /// The ids of span `id`, read through `dispatch` (the dispatch the layer is part of), or
    /// `None` for a span that has none (no exemplar).
    fn trace_ids(&self, id: &Id, dispatch: &Dispatch) -> Option<TraceIds>;
}

impl<F> ExemplarSource for F
where
    F: Fn(&Id, &Dispatch) -> Option<TraceIds> + Send + Sync + 'static,
{
    #[inline]
    fn trace_ids(&self, id: &Id, dispatch: &Dispatch) -> Option<TraceIds> {
        self(id, dispatch)
    }
}

/// Reads `id`'s OpenTelemetry context through `dispatch`: `None` when the dispatch holds no
/// data for it (no tracing-opentelemetry layer, the span filtered out of it, or its data
/// already dropped at close).
#[cfg(feature = "opentelemetry")]
fn read_context(id: &Id, dispatch: &Dispatch) -> Option<SpanIds> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span = cx.span();
    let sc = span.span_context();
    if !(sc.is_valid() && sc.is_sampled()) {
        return Some(SpanIds::NONE);
    }
    Some(SpanIds {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        looked: true,
    })
}

/// How a layer captures span contexts: its dispatch, its source of ids, and (OpenTelemetry)
/// what it learnt of the layer order.
pub(crate) struct Capture {
    /// Capture on or off (bench comparisons, users who want none).
    pub(crate) enabled: bool,
    /// The user's source of ids: asked at close, in place of OpenTelemetry.
    source: Option<Box<dyn ExemplarSource>>,
    dispatch: OnceLock<WeakDispatch>,
    /// Set once a close found tracing-opentelemetry's data still there (it is the outer
    /// layer): contexts are then read at close only.
    #[cfg(feature = "opentelemetry")]
    survives_close: AtomicBool,
    /// Set once any lookup found an OpenTelemetry context.
    #[cfg(feature = "opentelemetry")]
    found_any: AtomicBool,
    /// Lookups that found none while `found_any` is unset: past [`GIVE_UP`], the layer stops
    /// looking (no tracing-opentelemetry layer in the subscriber).
    #[cfg(feature = "opentelemetry")]
    misses: AtomicU64,
    /// Unix time (ns) and the layer clock's raw reading at the same moment.
    anchor: (u64, u64),
}

impl Capture {
    pub(crate) fn new(clock: &quanta::Clock) -> Self {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Capture {
            enabled: true,
            source: None,
            dispatch: OnceLock::new(),
            #[cfg(feature = "opentelemetry")]
            survives_close: AtomicBool::new(false),
            #[cfg(feature = "opentelemetry")]
            found_any: AtomicBool::new(false),
            #[cfg(feature = "opentelemetry")]
            misses: AtomicU64::new(0),
            anchor: (unix, clock.raw()),
        }
    }

    /// Takes ids from `source` (in place of OpenTelemetry).
    pub(crate) fn set_source(&mut self, source: Box<dyn ExemplarSource>) {
        self.source = Some(source);
    }

    /// Remembers the dispatch the layer is part of (the first one).
    pub(crate) fn register(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// Whether contexts must be read at first enter (tracing-opentelemetry may close first; a
    /// user's source is asked at close only).
    #[cfg(feature = "opentelemetry")]
    #[inline]
    pub(crate) fn at_enter(&self) -> bool {
        self.source.is_none() && self.looking() && !self.survives_close.load(Ordering::Relaxed)
    }

    /// Whether a user's source is set.
    #[inline]
    pub(crate) fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// Whether contexts are read at all: capture is on, and either a user's source is set or
    /// (OpenTelemetry) a lookup found one or fewer than [`GIVE_UP`] found none (a subscriber
    /// without tracing-opentelemetry then costs nothing after its first spans).
    #[inline]
    pub(crate) fn looking(&self) -> bool {
        if !self.enabled {
            return false;
        }
        if self.source.is_some() {
            return true;
        }
        #[cfg(feature = "opentelemetry")]
        {
            self.found_any.load(Ordering::Relaxed) || self.misses.load(Ordering::Relaxed) < GIVE_UP
        }
        #[cfg(not(feature = "opentelemetry"))]
        false
    }

    /// Counts one lookup's result towards [`GIVE_UP`].
    #[cfg(feature = "opentelemetry")]
    fn tally(&self, found: bool) {
        if found {
            if !self.found_any.load(Ordering::Relaxed) {
                self.found_any.store(true, Ordering::Relaxed);
            }
        } else if !self.found_any.load(Ordering::Relaxed) {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a close may skip checking for a context read at enter (nothing is read at
    /// enter: the OpenTelemetry layer is known to be outer, or a user's source is set).
    #[inline]
    pub(crate) fn only_at_close(&self) -> bool {
        #[cfg(feature = "opentelemetry")]
        {
            self.source.is_some() || self.survives_close.load(Ordering::Relaxed)
        }
        #[cfg(not(feature = "opentelemetry"))]
        true
    }

    /// Reads `id`'s ids at close: from the user's source when set, else from its
    /// OpenTelemetry context, a context found teaching the layer the order.
    pub(crate) fn read_at_close(
        &self,
        id: &Id,
        is_owner: impl Fn(&Dispatch) -> bool,
    ) -> Option<SpanIds> {
        if let Some(source) = &self.source {
            return self
                .with_dispatch(is_owner, |d| source.trace_ids(id, d))
                .map(SpanIds::from);
        }
        #[cfg(feature = "opentelemetry")]
        {
            let found = self.read(id, is_owner);
            if found.is_some() && !self.survives_close.load(Ordering::Relaxed) {
                self.survives_close.store(true, Ordering::Relaxed);
            }
            found
        }
        #[cfg(not(feature = "opentelemetry"))]
        None
    }

    /// Runs `f` on the layer's own dispatch: the current default when it is that dispatch (no
    /// reference count touched), else the one remembered; `None` when there is none.
    fn with_dispatch<T>(
        &self,
        is_owner: impl Fn(&Dispatch) -> bool,
        f: impl Fn(&Dispatch) -> T,
    ) -> Option<T> {
        dispatcher::get_default(|d| is_owner(d).then(|| f(d))).or_else(|| {
            let d = self.dispatch.get()?.upgrade()?;
            Some(f(&d))
        })
    }

    /// Reads `id`'s OpenTelemetry context through the layer's own dispatch.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn read(&self, id: &Id, is_owner: impl Fn(&Dispatch) -> bool) -> Option<SpanIds> {
        let found = self.with_dispatch(is_owner, |d| read_context(id, d))?;
        self.tally(found.is_some());
        found
    }

    /// Unix time in nanoseconds of the layer clock's raw reading `now`.
    #[inline]
    pub(crate) fn unix_nanos(&self, clock: &quanta::Clock, now: u64) -> u64 {
        self.anchor
            .0
            .saturating_add(clock.delta_as_nanos(self.anchor.1, now))
    }
}

/// Lookups without any OpenTelemetry context found after which a layer stops looking.
#[cfg(feature = "opentelemetry")]
const GIVE_UP: u64 = 1024;

/// One exemplar: ids, observed value, when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: f64,
    pub(crate) unix_nanos: u64,
}

/// One exemplar's place: a sequence lock over atomics (`version` odd while written; zero:
/// never written).
#[derive(Default)]
struct Slot {
    version: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    unix_nanos: AtomicU64,
}

impl Slot {
    /// Writes `e` unless another writer holds the slot (then its exemplar wins).
    #[inline]
    fn write(&self, e: &Exemplar) {
        let v = self.version.load(Ordering::Relaxed);
        if v & 1 == 1
            || self
                .version
                .compare_exchange(v, v + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        let (hi, lo) = e.trace_id.split_at(8);
        self.trace_hi.store(
            u64::from_be_bytes(hi.try_into().unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.trace_lo.store(
            u64::from_be_bytes(lo.try_into().unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.span
            .store(u64::from_be_bytes(e.span_id), Ordering::Relaxed);
        self.value.store(e.value.to_bits(), Ordering::Relaxed);
        self.unix_nanos.store(e.unix_nanos, Ordering::Relaxed);
        self.version.store(v + 2, Ordering::Release);
    }

    /// The exemplar, if one was written; retries while a writer is at work.
    fn read(&self) -> Option<Exemplar> {
        for _ in 0..64 {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 == 0 {
                return None;
            }
            if v1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let hi = self.trace_hi.load(Ordering::Relaxed);
            let lo = self.trace_lo.load(Ordering::Relaxed);
            let span = self.span.load(Ordering::Relaxed);
            let value = self.value.load(Ordering::Relaxed);
            let unix_nanos = self.unix_nanos.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v1 {
                let mut trace_id = [0; 16];
                trace_id[..8].copy_from_slice(&hi.to_be_bytes());
                trace_id[8..].copy_from_slice(&lo.to_be_bytes());
                return Some(Exemplar {
                    trace_id,
                    span_id: span.to_be_bytes(),
                    value: f64::from_bits(value),
                    unix_nanos,
                });
            }
        }
        None
    }
}

/// The exemplars of one series: its label values (to match the exposition's lines) and its
/// slots, allocated at its first exemplar.
pub(crate) struct SeriesExemplars {
    values: Box<[Option<Box<str>>]>,
    hash: u64,
    slots: OnceLock<Box<[Slot]>>,
    /// Bucket upper bounds (empty for a counter), shared with the family.
    bounds: Arc<[f64]>,
}

impl SeriesExemplars {
    /// Keeps `ids` as the latest exemplar of the bucket (or counter) `op` lands in.
    #[inline]
    pub(crate) fn record(&self, op: Op, ids: Ids, unix_nanos: u64) {
        let (index, value) = match op {
            Op::Observe(v) => (self.bounds.partition_point(|b| *b < v), v),
            Op::Add(n) => (0, n as f64),
            Op::Set(_) => return,
        };
        let slots = self
            .slots
            .get_or_init(|| (0..=self.bounds.len()).map(|_| Slot::default()).collect());
        if let Some(slot) = slots.get(index) {
            slot.write(&Exemplar {
                trace_id: ids.0,
                span_id: ids.1,
                value,
                unix_nanos,
            });
        }
    }

    /// The series' label values, one per label key (`None`: left off).
    pub(crate) fn values(&self) -> &[Option<Box<str>>] {
        &self.values
    }

    /// The exemplar of each bucket (`+Inf` last), or the counter's.
    pub(crate) fn exemplars(&self) -> Vec<Option<Exemplar>> {
        match self.slots.get() {
            Some(slots) => slots.iter().map(Slot::read).collect(),
            None => Vec::new(),
        }
    }
}

/// The exemplars of one metric family: its series' slots by label values, at most `limit`.
pub(crate) struct FamilyExemplars {
    pub(crate) exported: String,
    pub(crate) kind: MetricKind,
    pub(crate) label_keys: Vec<String>,
    pub(crate) bounds: Arc<[f64]>,
    limit: usize,
    series: RwLock<HashTable<Arc<SeriesExemplars>>>,
}

impl FamilyExemplars {
    /// For a histogram or counter family (a gauge carries none).
    pub(crate) fn new(
        exported: &str,
        kind: MetricKind,
        label_keys: Vec<String>,
        buckets: Option<&Buckets>,
        limit: usize,
    ) -> Option<Arc<Self>> {
        let bounds: Arc<[f64]> = match kind {
            MetricKind::Gauge => return None,
            MetricKind::Counter => Arc::from(Vec::new()),
            MetricKind::Histogram => Arc::from(
                buckets
                    .map(|b| b.bounds().to_vec())
                    .unwrap_or_else(|| Buckets::otel_durations().bounds().to_vec()),
            ),
        };
        Some(Arc::new(FamilyExemplars {
            exported: exported.to_owned(),
            kind,
            label_keys,
            bounds,
            limit,
            series: RwLock::new(HashTable::new()),
        }))
    }

    fn same_shape(&self, other: &FamilyExemplars) -> bool {
        self.exported == other.exported
            && self.kind == other.kind
            && self.label_keys == other.label_keys
            && *self.bounds == *other.bounds
    }

    /// The exemplars of the series with label `values` (their `hash_labels` is `hash`), made
    /// on first use; `None` once the family holds `limit` series.
    #[cold]
    pub(crate) fn series(
        &self,
        values: &[Option<&str>],
        hash: u64,
    ) -> Option<Arc<SeriesExemplars>> {
        let is = |s: &Arc<SeriesExemplars>| {
            s.values.len() == values.len()
                && s.values.iter().zip(values).all(|(a, b)| a.as_deref() == *b)
        };
        if let Some(found) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .find(hash, is)
        {
            return Some(found.clone());
        }
        let mut table = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = table.find(hash, is) {
            return Some(found.clone());
        }
        if table.len() >= self.limit {
            return None;
        }
        let series = Arc::new(SeriesExemplars {
            values: values.iter().map(|v| v.map(Box::from)).collect(),
            hash,
            slots: OnceLock::new(),
            bounds: self.bounds.clone(),
        });
        table.insert_unique(hash, series.clone(), |s| s.hash);
        Some(series)
    }

    /// Every series that holds at least one exemplar.
    pub(crate) fn snapshot(&self) -> Vec<Arc<SeriesExemplars>> {
        self.series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.slots.get().is_some())
            .cloned()
            .collect()
    }
}

/// Every family's exemplars a layer keeps, by exported name, across reloads: a reload that
/// keeps a family's kind, label keys and buckets keeps its exemplars.
#[derive(Default)]
pub(crate) struct Store {
    families: Mutex<Vec<Arc<FamilyExemplars>>>,
}

impl Store {
    /// The exemplars `family` records into: the stored family's of the same name and shape,
    /// else `family` itself (which replaces a stored one of the same name).
    pub(crate) fn adopt(&self, family: &Arc<FamilyExemplars>) -> Arc<FamilyExemplars> {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        match families.iter_mut().find(|f| f.exported == family.exported) {
            Some(stored) if stored.same_shape(family) => stored.clone(),
            Some(stored) => {
                *stored = family.clone();
                family.clone()
            }
            None => {
                families.push(family.clone());
                family.clone()
            }
        }
    }

    /// The families, in the order they were first declared.
    pub(crate) fn families(&self) -> Vec<Arc<FamilyExemplars>> {
        self.families
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The exemplars a [`SpanMetricsLayer`](crate::SpanMetricsLayer) keeps (the latest per
/// histogram bucket per series, and per counter series), from
/// [`SpanMetricsLayer::exemplars`](crate::SpanMetricsLayer::exemplars): hand it to
/// [`exporter::render_openmetrics`](crate::exporter::render_openmetrics) with the exporter's
/// handle to serve OpenMetrics with exemplars from your own HTTP server. Cheap to clone.
#[derive(Clone)]
pub struct Exemplars {
    store: Arc<Store>,
}

impl std::fmt::Debug for Exemplars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exemplars").finish_non_exhaustive()
    }
}

impl Exemplars {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Exemplars { store }
    }

    /// Every family's exemplars.
    pub(crate) fn families(&self) -> Vec<Arc<FamilyExemplars>> {
        self.store.families()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_bucket_prometheus_counts_it_in() {
        let family = FamilyExemplars::new(
            "d",
            MetricKind::Histogram,
            vec!["k".into()],
            Some(&Buckets::explicit([0.1, 1.0])),
            2,
        )
        .unwrap();
        let s = family.series(&[Some("a")], 7).unwrap();
        // `le` is inclusive: 0.1 is in the first bucket, 0.5 in the second, 2 in `+Inf`.
        s.record(Op::Observe(0.1), ([1; 16], [1; 8]), 10);
        s.record(Op::Observe(2.0), ([3; 16], [3; 8]), 30);
        let ex = s.exemplars();
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].map(|e| (e.trace_id, e.value)), Some(([1; 16], 0.1)));
        assert_eq!(ex[1], None);
        assert_eq!(ex[2].map(|e| (e.span_id, e.unix_nanos)), Some(([3; 8], 30)));
        // The latest wins.
        s.record(Op::Observe(0.05), ([4; 16], [4; 8]), 40);
        assert_eq!(s.exemplars()[0].map(|e| e.trace_id), Some([4; 16]));
        // Bounded by the limit: a third series is refused, known ones are found again.
        assert!(family.series(&[Some("b")], 8).is_some());
        assert!(family.series(&[Some("c")], 9).is_none());
        assert!(Arc::ptr_eq(&family.series(&[Some("a")], 7).unwrap(), &s));
    }
}
