//! Instruments and emission: metric families, their label-set caches and the recorder.
//!
//! Each family keeps a map from label values to a registered `metrics` handle. The map is an
//! immutable snapshot behind an [`ArcSwap`](arc_swap::ArcSwap): the hot path loads it (no lock, no shared write),
//! hashes the label values it resolved on the stack and records on the handle it finds. Only a
//! new label set takes the family's writer lock, registers a handle (allocating its `Key`) and
//! publishes a copy of the map with it. Once a family holds its cardinality limit of label sets,
//! new ones are folded into a single overflow series labelled `otel_metric_overflow="true"`
//! (as the OpenTelemetry metrics SDK does) and counted in `spanmetrics_overflow_observations_total`.
//! The admitted label sets outlive a reload: see [`SeriesTable`].
//!
//! Handles are bound to the recorder that was current when they were registered. The snapshot
//! remembers which one that was; when the current recorder changes (the usual case: the
//! exporter is installed after the subscriber, so early spans met the no-op recorder) the
//! snapshot is dropped and handles are registered again on the new recorder.
//!
//! In front of the families, each span callsite keeps a [`GroupCache`] per group of rules that
//! share labels: from the raw bytes the labels are made of (see [`crate::labels::write_key`]) to
//! the group's handles, so a span whose label set was seen before records without resolving its
//! labels at all.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use hashbrown::HashTable;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Level, Recorder, SharedString};
use smallvec::SmallVec;

use crate::config::{Buckets, DeclaredFamily, MetricKind, Unit};
use crate::config::{LABEL_OVERFLOW_METRIC, LABEL_OVERFLOW_VALUE};
use crate::config::{OVERFLOW_LABEL, OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC};

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("tracing_spanmetrics", Level::INFO, Some(module_path!()));

/// Where handles are registered.
#[derive(Clone, Default)]
pub(crate) enum RecorderRef {
    /// The `metrics` facade's current recorder (local, global or no-op).
    #[default]
    Global,
    /// A recorder handed to the builder.
    Explicit(Arc<dyn Recorder + Send + Sync>),
}

impl std::fmt::Debug for RecorderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecorderRef::Global => f.write_str("Global"),
            RecorderRef::Explicit(_) => f.write_str("Explicit(..)"),
        }
    }
}

impl RecorderRef {
    /// Whether both name the same recorder.
    pub(crate) fn same_as(&self, other: &RecorderRef) -> bool {
        match (self, other) {
            (RecorderRef::Global, RecorderRef::Global) => true,
            (RecorderRef::Explicit(a), RecorderRef::Explicit(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&dyn Recorder, usize) -> T) -> T {
        match self {
            RecorderRef::Global => metrics::with_recorder(|r| f(r, identity(r))),
            RecorderRef::Explicit(r) => f(r.as_ref(), identity(r.as_ref())),
        }
    }
}

/// A recorder's identity: the address of the object behind it.
fn identity(r: &dyn Recorder) -> usize {
    (r as *const dyn Recorder).cast::<()>() as usize
}

/// A registered handle of any kind.
#[derive(Clone)]
pub(crate) enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Handle {
    fn register(kind: MetricKind, r: &dyn Recorder, key: &Key) -> Handle {
        match kind {
            MetricKind::Counter => Handle::Counter(r.register_counter(key, &METADATA)),
            MetricKind::Gauge => Handle::Gauge(r.register_gauge(key, &METADATA)),
            MetricKind::Histogram => Handle::Histogram(r.register_histogram(key, &METADATA)),
        }
    }

    /// Applies `op`. Validation ties measures to kinds; a mismatch records nothing rather than
    /// panicking in production.
    #[inline]
    pub(crate) fn apply(&self, op: Op) {
        match (self, op) {
            (Handle::Counter(c), Op::Add(n)) => c.increment(n),
            (Handle::Gauge(g), Op::Set(v)) => g.set(v),
            (Handle::Histogram(h), Op::Observe(v)) => h.record(v),
            _ => debug_assert!(false, "op {op:?} does not fit handle"),
        }
    }

    /// The gauge, for in-flight accounting (the family's kind guarantees it).
    pub(crate) fn gauge(&self) -> Option<&Gauge> {
        match self {
            Handle::Gauge(g) => Some(g),
            _ => None,
        }
    }
}

/// What to do with a value on a family's series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Counter += n.
    Add(u64),
    /// Gauge = v.
    Set(f64),
    /// Histogram observes v.
    Observe(f64),
}

/// One series: its owned label values (`None`: the label is left off), handle and hash.
#[derive(Clone)]
struct Series {
    values: Arc<[Option<Box<str>>]>,
    handle: Handle,
    hash: u64,
}

impl Series {
    fn is(&self, values: &[Option<&str>]) -> bool {
        self.values.len() == values.len()
            && self
                .values
                .iter()
                .zip(values)
                .all(|(a, b)| a.as_deref() == *b)
    }
}

/// The hash of a label-value list, the same for every family: a rule group hashes its
/// resolved labels once and looks them up in each of its families.
///
/// Only a speed matter: every lookup compares the label values of the entries the hash finds
/// (`Series::is`), so a hash that collided always (mutants that return a constant) would find
/// the same series, by a longer scan. The tests pin results; `benches/` measures the speed.
pub(crate) fn hash_labels(values: &[Option<&str>]) -> u64 {
    static SEED: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    let mut h = SEED.get_or_init(Default::default).build_hasher();
    for v in values {
        match v {
            None => h.write_u8(0),
            Some(s) => {
                h.write_u8(1);
                s.hash(&mut h);
            }
        }
    }
    h.finish()
}

/// One immutable generation of a family's series.
struct Snapshot {
    recorder: usize,
    series: HashTable<Series>,
    overflow: Option<(Handle, Counter)>,
    /// The labels with a value limit that took all the values they may: a new value of one of
    /// them becomes the overflow marker without taking any lock.
    full: SmallVec<[FullLabel; 2]>,
}

/// A label that took its limit of distinct values: those values, and the counter of
/// observations whose value was replaced.
#[derive(Clone)]
struct FullLabel {
    /// The label's position among the family's keys.
    index: usize,
    values: Arc<hashbrown::HashSet<Box<str>>>,
    replaced: Counter,
}

/// Label values with some replaced by the overflow marker, and which of the snapshot's full
/// labels were replaced.
type Capped<'v> = (SmallVec<[Option<&'v str>; 8]>, SmallVec<[usize; 2]>);

impl Snapshot {
    /// `values` with each full label's new value replaced by the overflow marker, and the
    /// labels replaced; `None` if no value is replaced.
    fn capped<'v>(&self, values: &[Option<&'v str>]) -> Option<Capped<'v>> {
        let mut capped: Option<SmallVec<[Option<&'v str>; 8]>> = None;
        let mut replaced: SmallVec<[usize; 2]> = SmallVec::new();
        for (k, full) in self.full.iter().enumerate() {
            let Some(Some(v)) = values.get(full.index) else {
                continue;
            };
            if full.values.contains(*v) {
                continue;
            }
            capped.get_or_insert_with(|| values.iter().copied().collect())[full.index] =
                Some(LABEL_OVERFLOW_VALUE);
            replaced.push(k);
        }
        capped.map(|c| (c, replaced))
    }
}

/// The label sets a family admitted, per exported family, for the life of the process.
///
/// A reload builds new families, but the exporter keeps every series the old ones registered;
/// so a family's admitted label sets outlive its configuration. A reload that keeps a family's
/// kind and label keys hands the new family the same table (see [`Family::continue_from`]);
/// one that changes them starts a new table that shares the old one's [`Admissions`], so that
/// both together (old spans still record into the old table) stay within the limit.
pub(crate) struct SeriesTable {
    snapshot: ArcSwapOption<Snapshot>,
    writer: Mutex<()>,
    admissions: Arc<Mutex<Admissions>>,
}

/// How many label sets the tables of one exported family admitted on a recorder, and the
/// values each of its limited labels took (by label key).
#[derive(Default)]
struct Admissions {
    /// The recorder's identity.
    recorder: usize,
    count: usize,
    values: hashbrown::HashMap<SharedString, hashbrown::HashSet<Box<str>>>,
}

impl Admissions {
    /// Forgets everything admitted on another recorder: a new recorder starts from none.
    fn on(&mut self, id: usize) -> &mut Self {
        if self.recorder != id {
            *self = Admissions {
                recorder: id,
                ..Admissions::default()
            };
        }
        self
    }

    /// Admits one more label set on recorder `id` if fewer than `limit` were.
    fn admit(&mut self, id: usize, limit: usize) -> bool {
        let this = self.on(id);
        let room = this.count < limit;
        this.count += usize::from(room);
        room
    }
}

impl SeriesTable {
    fn new(admissions: Arc<Mutex<Admissions>>) -> Self {
        SeriesTable {
            snapshot: ArcSwapOption::empty(),
            writer: Mutex::new(()),
            admissions,
        }
    }
}

/// The label sets a family admitted, with what decides whether a later family may share them.
pub(crate) struct Admitted {
    kind: MetricKind,
    label_keys: Vec<SharedString>,
    label_limits: Vec<Option<usize>>,
    table: Arc<SeriesTable>,
}

/// A metric family: name, kind, unit, description, label keys and its series.
pub(crate) struct Family {
    /// The name the rules declare.
    pub(crate) name: String,
    /// The name it is registered and exported under (see `crate::config::naming`).
    pub(crate) exported: String,
    pub(crate) kind: MetricKind,
    pub(crate) unit: Unit,
    pub(crate) description: Option<String>,
    pub(crate) label_keys: Vec<SharedString>,
    /// The value limit of each label, in `label_keys` order.
    pub(crate) label_limits: Vec<Option<usize>>,
    pub(crate) buckets: Option<Buckets>,
    pub(crate) limit: usize,
    /// Whether its values can be refused (see [`Refusal`]).
    numeric: bool,
    /// The identity of the recorder its health counters were last registered on (0: none).
    health_on: AtomicUsize,
    series: Arc<SeriesTable>,
    /// The exemplars of its series (histograms and counters only).
    #[cfg(feature = "exemplars")]
    pub(crate) exemplars: Option<Arc<crate::exemplars::FamilyExemplars>>,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Family {
    /// The family a validated configuration declares, with no series yet.
    pub(crate) fn new(declared: DeclaredFamily) -> Self {
        #[cfg(feature = "exemplars")]
        let exemplars = crate::exemplars::FamilyExemplars::new(
            &declared.exported,
            declared.kind,
            declared.label_keys.clone(),
            declared.buckets.as_ref(),
            declared.limit,
        );
        Family {
            #[cfg(feature = "exemplars")]
            exemplars,
            name: declared.name,
            exported: declared.exported,
            kind: declared.kind,
            unit: declared.unit,
            description: declared.description,
            label_keys: declared
                .label_keys
                .into_iter()
                .map(SharedString::from)
                .collect(),
            label_limits: declared.label_limits,
            buckets: declared.buckets,
            limit: declared.limit,
            numeric: declared.numeric,
            health_on: AtomicUsize::new(0),
            series: Arc::new(SeriesTable::new(Arc::default())),
        }
    }

    /// What the family admitted so far, for the family of the same exported name in a
    /// configuration that replaces this one.
    pub(crate) fn admitted(&self) -> Admitted {
        Admitted {
            kind: self.kind,
            label_keys: self.label_keys.clone(),
            label_limits: self.label_limits.clone(),
            table: self.series.clone(),
        }
    }

    /// Takes over the label sets an earlier family of the same exported name admitted: its
    /// very table when kind, label keys and label value limits are unchanged, else a new table
    /// that shares its admissions (the limits bound both together). Called before the family records anything, and only for a family of the same
    /// recorder.
    pub(crate) fn continue_from(&mut self, earlier: &Admitted) {
        debug_assert!(
            self.series.snapshot.load().is_none(),
            "a family continued after it recorded: this is a bug"
        );
        self.series = if earlier.kind == self.kind
            && earlier.label_keys == self.label_keys
            && earlier.label_limits == self.label_limits
        {
            earlier.table.clone()
        } else {
            Arc::new(SeriesTable::new(earlier.table.admissions.clone()))
        };
    }

    /// Applies `op` to the series for `values` (one entry per label key, in order), whose
    /// [`hash_labels`] is `hash`.
    pub(crate) fn apply(&self, recorder: &RecorderRef, values: &[Option<&str>], hash: u64, op: Op) {
        self.with_handle(recorder, values, hash, |handle| handle.apply(op))
    }

    /// A clone of the handle for `values` (to hold an in-flight gauge until the span closes).
    pub(crate) fn handle(
        &self,
        recorder: &RecorderRef,
        values: &[Option<&str>],
        hash: u64,
    ) -> Handle {
        self.with_handle(recorder, values, hash, Handle::clone)
    }

    /// Runs `f` on the handle for `values`: cached, newly registered, or the overflow series.
    /// The cached case takes no lock and clones nothing.
    fn with_handle<R>(
        &self,
        recorder: &RecorderRef,
        values: &[Option<&str>],
        hash: u64,
        f: impl FnOnce(&Handle) -> R,
    ) -> R {
        recorder.with(|r, id| self.with_handle_on(r, id, values, hash, |h, _| f(h)))
    }

    /// As [`Family::with_handle`], on a recorder already looked up (`id` its identity); `f`
    /// also learns whether the handle is the overflow series (which must not be cached: each
    /// observation folded into it is counted).
    pub(crate) fn with_handle_on<R>(
        &self,
        r: &dyn Recorder,
        id: usize,
        values: &[Option<&str>],
        hash: u64,
        f: impl FnOnce(&Handle, bool) -> R,
    ) -> R {
        if let Some(snap) = self.series.snapshot.load().as_ref() {
            if snap.recorder == id {
                if let Some(s) = snap.series.find(hash, |s| s.is(values)) {
                    return f(&s.handle, false);
                }
                // A full label's value set never grows on one recorder: a value not in it is
                // replaced, and the series of the values so capped may exist.
                let capped = if snap.full.is_empty() {
                    None
                } else {
                    snap.capped(values)
                };
                if let Some((capped, replaced)) = &capped {
                    if let Some(s) = snap.series.find(hash_labels(capped), |s| s.is(capped)) {
                        for &k in replaced {
                            snap.full[k].replaced.increment(1);
                        }
                        // Not cacheable: each use of a replaced value is counted.
                        return f(&s.handle, true);
                    }
                }
                // An overflow series exists only once admission was refused, and admissions
                // never shrink on one recorder: the family is full.
                if let Some((h, folded)) = &snap.overflow {
                    for &k in capped.iter().flat_map(|(_, replaced)| replaced) {
                        snap.full[k].replaced.increment(1);
                    }
                    folded.increment(1);
                    return f(h, true);
                }
            }
        }
        let (handle, overflow) = self.slow_path(r, id, values, hash);
        f(&handle, overflow)
    }

    #[cold]
    fn slow_path(
        &self,
        r: &dyn Recorder,
        id: usize,
        values: &[Option<&str>],
        hash: u64,
    ) -> (Handle, bool) {
        // A poisoned lock only means another thread panicked while holding it (inside a
        // recorder); the data it guards is the snapshot, which is always consistent.
        let table = &*self.series;
        let _w = table.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = table.snapshot.load_full();
        let fresh = current.as_ref().is_none_or(|s| s.recorder != id);
        if fresh {
            self.describe(r);
            self.register_health(r, id);
        }
        let mut next = match current {
            Some(s) if !fresh => Snapshot {
                recorder: id,
                series: s.series.clone(),
                overflow: s.overflow.clone(),
                full: s.full.clone(),
            },
            _ => Snapshot {
                recorder: id,
                series: HashTable::new(),
                overflow: None,
                full: SmallVec::new(),
            },
        };
        if let Some(s) = next.series.find(hash, |s| s.is(values)) {
            return (s.handle.clone(), false);
        }
        let mut admissions = table.admissions.lock().unwrap_or_else(|e| e.into_inner());
        let admissions = admissions.on(id);
        // Limited labels: a value already taken stays; a new one is taken while there is room
        // (once the label set is admitted), else replaced by the marker.
        let mut capped: SmallVec<[Option<&str>; 8]> = values.iter().copied().collect();
        let mut taken: SmallVec<[usize; 2]> = SmallVec::new();
        let mut replaced: SmallVec<[usize; 2]> = SmallVec::new();
        let mut published = false;
        for (i, limit) in self.label_limits.iter().enumerate() {
            let (Some(limit), Some(Some(v))) = (limit, values.get(i)) else {
                continue;
            };
            let set = admissions
                .values
                .entry(self.label_keys[i].clone())
                .or_default();
            if set.contains(*v) {
                continue;
            }
            if set.len() < *limit {
                taken.push(i);
                continue;
            }
            capped[i] = Some(LABEL_OVERFLOW_VALUE);
            replaced.push(i);
            // Full: publish its values so that later new values are replaced without a lock.
            // (A publication lost here would only send later values through this slow path,
            // which publishes again: speed, not results.)
            published |= self.publish_full(r, &mut next, i, set);
        }
        let capped_hash = if replaced.is_empty() {
            hash
        } else {
            hash_labels(&capped)
        };
        let count_replaced = |next: &Snapshot| {
            for i in &replaced {
                if let Some(full) = next.full.iter().find(|f| f.index == *i) {
                    full.replaced.increment(1);
                }
            }
        };
        // The new values of labels with room are taken once their label set has a series.
        let take = |admissions: &mut Admissions, next: &mut Snapshot| {
            for &i in &taken {
                let set = admissions
                    .values
                    .entry(self.label_keys[i].clone())
                    .or_default();
                if let Some(v) = values[i] {
                    set.insert(Box::from(v));
                }
                if self.label_limits[i].is_some_and(|limit| set.len() >= limit) {
                    self.publish_full(r, next, i, set);
                }
            }
        };
        if !replaced.is_empty() {
            if let Some(s) = next.series.find(capped_hash, |s| s.is(&capped)) {
                let handle = s.handle.clone();
                take(admissions, &mut next);
                count_replaced(&next);
                table.snapshot.store(Some(Arc::new(next)));
                return (handle, true);
            }
        }
        if admissions.admit(id, self.limit) {
            take(admissions, &mut next);
            let labels: Vec<metrics::Label> = self
                .label_keys
                .iter()
                .zip(&capped)
                .filter_map(|(k, v)| v.map(|v| metrics::Label::new(k.clone(), v.to_owned())))
                .collect();
            let handle = Handle::register(
                self.kind,
                r,
                &Key::from_parts(self.exported.clone(), labels),
            );
            let series = Series {
                values: capped.iter().map(|v| v.map(Box::from)).collect(),
                handle: handle.clone(),
                hash: capped_hash,
            };
            next.series.insert_unique(capped_hash, series, |s| s.hash);
            count_replaced(&next);
            table.snapshot.store(Some(Arc::new(next)));
            return (handle, !replaced.is_empty());
        }
        let (handle, folded) = match &next.overflow {
            Some(o) => o.clone(),
            None => {
                let key = Key::from_parts(
                    self.exported.clone(),
                    vec![metrics::Label::new(OVERFLOW_LABEL, "true")],
                );
                let o = (
                    Handle::register(self.kind, r, &key),
                    register_health_counter(r, OVERFLOW_METRIC, &[("metric", &self.exported)]),
                );
                next.overflow = Some(o.clone());
                published = true;
                o
            }
        };
        count_replaced(&next);
        if published {
            table.snapshot.store(Some(Arc::new(next)));
        }
        folded.increment(1);
        (handle, true)
    }

    /// Publishes label `index`'s full value set in `next` (with its counter), unless it is
    /// already there; whether it was not.
    fn publish_full(
        &self,
        r: &dyn Recorder,
        next: &mut Snapshot,
        index: usize,
        values: &hashbrown::HashSet<Box<str>>,
    ) -> bool {
        if next.full.iter().any(|f| f.index == index) {
            return false;
        }
        let key: &str = &self.label_keys[index];
        next.full.push(FullLabel {
            index,
            values: Arc::new(values.clone()),
            replaced: register_health_counter(
                r,
                LABEL_OVERFLOW_METRIC,
                &[("metric", &self.exported), ("label", key)],
            ),
        });
        true
    }

    /// Registers, at zero, every health counter this family can move: its overflow count, the
    /// replaced values of each label with a value limit, its refused values (if a rule measures
    /// a numeric field) and the truncated values. They exist from the first scrape, so an alert
    /// or a panel over them reads 0, not "no data". Registering is idempotent: a counter
    /// already counting keeps its value.
    /// Nothing is registered again on the recorder `id` they were last registered on.
    #[cold]
    pub(crate) fn register_health(&self, r: &dyn Recorder, id: usize) {
        // Relaxed: this only spares repeated registrations, which are harmless (idempotent);
        // nothing else is published through it.
        if self.health_on.swap(id, Ordering::Relaxed) == id {
            return;
        }
        register_health_counter(r, OVERFLOW_METRIC, &[("metric", &self.exported)]).increment(0);
        for (key, limit) in self.label_keys.iter().zip(&self.label_limits) {
            if limit.is_some() {
                register_health_counter(
                    r,
                    LABEL_OVERFLOW_METRIC,
                    &[("metric", &self.exported), ("label", key)],
                )
                .increment(0);
            }
        }
        if self.numeric {
            for refusal in Refusal::ALL {
                if refusal.possible_for(self.kind) {
                    register_health_counter(
                        r,
                        REJECTED_METRIC,
                        &[("metric", &self.exported), ("reason", refusal.reason())],
                    )
                    .increment(0);
                }
            }
        }
        register_health_counter(r, TRUNCATED_METRIC, &[]).increment(0);
    }

    fn describe(&self, r: &dyn Recorder) {
        let Some(text) = &self.description else {
            return;
        };
        let name = KeyName::from(self.exported.clone());
        let unit = Some(self.unit.to_metrics());
        let text = SharedString::from(text.clone());
        match self.kind {
            MetricKind::Counter => r.describe_counter(name, unit, text),
            MetricKind::Gauge => r.describe_gauge(name, unit, text),
            MetricKind::Histogram => r.describe_histogram(name, unit, text),
        }
    }
}

fn register_health_counter(
    r: &dyn Recorder,
    name: &'static str,
    labels: &[(&str, &str)],
) -> Counter {
    let (unit, text) = match name {
        OVERFLOW_METRIC => (
            metrics::Unit::Count,
            "Observations folded into a metric's overflow series because its cardinality limit was reached",
        ),
        TRUNCATED_METRIC => (
            metrics::Unit::Count,
            "Label values cut to the configured length bound",
        ),
        LABEL_OVERFLOW_METRIC => (
            metrics::Unit::Count,
            "Observations whose label value was replaced because the label reached its limit of distinct values",
        ),
        _ => (
            metrics::Unit::Count,
            "Values that could not be recorded (not a number, not finite, or negative for a counter)",
        ),
    };
    r.describe_counter(
        KeyName::from_const_str(name),
        Some(unit),
        SharedString::from(text),
    );
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new((*k).to_owned(), (*v).to_owned()))
        .collect();
    r.register_counter(&Key::from_parts(name, labels), &METADATA)
}

/// The layer's own health counters that are not per family.
#[derive(Default, Debug)]
pub(crate) struct Health {
    truncated: ArcSwapOption<(usize, Counter)>,
}

impl Health {
    pub(crate) fn truncated(&self, recorder: &RecorderRef, n: u64) {
        recorder.with(|r, id| {
            let cur = self.truncated.load();
            if let Some((rid, c)) = cur.as_deref() {
                if *rid == id {
                    c.increment(n);
                    return;
                }
            }
            let c = register_health_counter(r, TRUNCATED_METRIC, &[]);
            c.increment(n);
            self.truncated.store(Some(Arc::new((id, c))));
        })
    }

    /// A rejected value: rare by nature, registered on each call.
    pub(crate) fn rejected(&self, recorder: &RecorderRef, metric: &str, refusal: Refusal) {
        recorder.with(|r, _| {
            register_health_counter(
                r,
                REJECTED_METRIC,
                &[("metric", metric), ("reason", refusal.reason())],
            )
            .increment(1)
        })
    }
}

/// Why a numeric field value was not recorded: the `reason` label of
/// [`REJECTED_METRIC`](crate::REJECTED_METRIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a number (text that does not parse, a value of another type, or NaN).
    NotANumber,
    /// ±Inf, for a histogram or a counter.
    NotFinite,
    /// Below zero, for a counter.
    Negative,
    /// Above 2^53, for a counter.
    TooLarge,
}

impl Refusal {
    pub(crate) const ALL: [Refusal; 4] = [
        Refusal::NotANumber,
        Refusal::NotFinite,
        Refusal::Negative,
        Refusal::TooLarge,
    ];

    /// The `reason` label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::NotANumber => "not_a_number",
            Refusal::NotFinite => "not_finite",
            Refusal::Negative => "negative",
            Refusal::TooLarge => "too_large",
        }
    }

    /// Whether a family of `kind` can refuse a value for this reason.
    pub(crate) fn possible_for(self, kind: MetricKind) -> bool {
        match self {
            Refusal::NotANumber => true,
            Refusal::NotFinite => kind != MetricKind::Gauge,
            Refusal::Negative | Refusal::TooLarge => kind == MetricKind::Counter,
        }
    }
}

/// The handles a group of rules resolved for one key.
pub(crate) struct GroupEntry {
    key: Box<[u8]>,
    hash: u64,
    /// One handle per rule of the group, in the group's order.
    pub(crate) handles: SmallVec<[Handle; 2]>,
    /// Whether resolving the labels cut a value (counted again on every use).
    pub(crate) truncated: bool,
    /// The exemplars of each handle's series, in the same order (`None`: a gauge).
    #[cfg(feature = "exemplars")]
    pub(crate) exemplars: SmallVec<[Option<Arc<crate::exemplars::SeriesExemplars>>; 2]>,
}

struct GroupSnapshot {
    recorder: usize,
    entries: HashTable<Arc<GroupEntry>>,
}

/// A shortcut from a span's raw captured values to the handles of a group of rules that share
/// labels (a duration histogram and a calls counter, say), for one callsite.
///
/// The key is the raw bytes of what the labels are made from (the captured field values, the
/// outcome); everything else a label can read is constant for the callsite. A hit records
/// without resolving, hashing and looking up each label value in each family. Entries are only
/// made for label sets that have a series of their own (never for an overflow series, whose
/// every use is counted) and at most `cap` of them, so raw values that a mapping or the length
/// bound fold together cannot grow it past the families' own limit. Like a family's series,
/// entries belong to one recorder and are dropped when it changes.
pub(crate) struct GroupCache {
    /// Seeded per cache: keys are made of field values, which an attacker may choose.
    hasher: hashbrown::DefaultHashBuilder,
    snapshot: ArcSwapOption<GroupSnapshot>,
    writer: Mutex<()>,
    cap: usize,
}

impl std::fmt::Debug for GroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCache")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl GroupCache {
    pub(crate) fn new(cap: usize) -> Self {
        GroupCache {
            hasher: Default::default(),
            snapshot: ArcSwapOption::empty(),
            writer: Mutex::new(()),
            cap,
        }
    }

    /// The hash of `key` in this cache. Only a speed matter, as [`hash_labels`] is: a lookup
    /// compares the keys of the entries the hash finds.
    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Runs `f` on the entry for `key` made on recorder `id`, if there is one.
    #[inline]
    pub(crate) fn with<R>(
        &self,
        id: usize,
        key: &[u8],
        hash: u64,
        f: impl FnOnce(&GroupEntry) -> R,
    ) -> Option<R> {
        let snap = self.snapshot.load();
        let snap = snap.as_ref()?;
        if snap.recorder != id {
            return None;
        }
        snap.entries.find(hash, |e| *e.key == *key).map(|e| f(e))
    }

    /// Remembers `handles` for `key` on recorder `id`, unless the cache is full.
    #[cold]
    pub(crate) fn insert(
        &self,
        id: usize,
        key: &[u8],
        hash: u64,
        handles: SmallVec<[Handle; 2]>,
        truncated: bool,
        #[cfg(feature = "exemplars")] exemplars: SmallVec<
            [Option<Arc<crate::exemplars::SeriesExemplars>>; 2],
        >,
    ) {
        // A full cache stays full (until the recorder changes): once raw values beyond the cap
        // keep coming (a mapping or the length bound folding many into few label sets), they
        // must not all queue on the writer lock.
        if let Some(s) = self.snapshot.load().as_deref() {
            if s.recorder == id && s.entries.len() >= self.cap {
                return;
            }
        }
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot.load_full();
        let mut entries = match current.as_deref() {
            Some(s) if s.recorder == id => {
                if s.entries.len() >= self.cap || s.entries.find(hash, |e| *e.key == *key).is_some()
                {
                    return;
                }
                s.entries.clone()
            }
            _ => HashTable::new(),
        };
        if self.cap == 0 {
            return;
        }
        let entry = GroupEntry {
            key: key.into(),
            hash,
            handles,
            truncated,
            #[cfg(feature = "exemplars")]
            exemplars,
        };
        entries.insert_unique(hash, Arc::new(entry), |e| e.hash);
        self.snapshot.store(Some(Arc::new(GroupSnapshot {
            recorder: id,
            entries,
        })));
    }

    /// How many keys the cache holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.snapshot.load().as_ref().map_or(0, |s| s.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles() -> SmallVec<[Handle; 2]> {
        smallvec::smallvec![Handle::Counter(Counter::noop())]
    }

    /// Two threads that meet a full label at once: the second reaches the slow path without
    /// having seen, on its fast path, the series of replaced values the first registered. It
    /// finds that series there and takes it, with no second admission against the limit.
    #[test]
    fn a_slow_path_takes_the_replaced_values_series_another_thread_registered() {
        let family = Family::new(DeclaredFamily {
            name: "requests".into(),
            exported: "requests_total".into(),
            kind: MetricKind::Counter,
            unit: Unit::Count,
            description: None,
            label_keys: vec!["user".into()],
            label_limits: vec![Some(1)],
            buckets: None,
            limit: 3,
            first_rule: 0,
            numeric: false,
        });
        let r = metrics::NoopRecorder;
        let series = || {
            let snapshot = family.series.snapshot.load();
            snapshot.as_ref().map_or(0, |s| s.series.len())
        };
        let slow = |user: &str| {
            let values = [Some(user)];
            family.slow_path(&r, 1, &values, hash_labels(&values)).1
        };
        // `a` takes the label's one value; `b` is replaced: the marker's series is admitted.
        assert!(!slow("a"));
        assert!(slow("b"));
        assert_eq!(series(), 2);
        // `c` straight on the slow path, as a thread that raced `b` would be.
        assert!(slow("c"));
        assert_eq!(series(), 2);
        // The family's third admission is still free.
        let admitted = family.series.admissions.lock().unwrap().count;
        assert_eq!(admitted, 2);
    }

    #[test]
    fn a_group_cache_holds_at_most_its_cap_per_recorder() {
        let cache = GroupCache::new(2);
        assert_eq!(format!("{cache:?}"), "GroupCache { cap: 2, .. }");
        for key in [&b"a"[..], b"b", b"c", b"a"] {
            cache.insert(
                1,
                key,
                cache.hash(key),
                handles(),
                false,
                #[cfg(feature = "exemplars")]
                SmallVec::new(),
            );
        }
        assert_eq!(cache.len(), 2);
        let found = |id, key: &[u8]| cache.with(id, key, cache.hash(key), |e| e.truncated);
        assert_eq!((found(1, b"a"), found(1, b"b")), (Some(false), Some(false)));
        assert_eq!(found(1, b"c"), None);
        // Another recorder: the entries of the old one are dropped, not mixed in.
        assert_eq!(found(2, b"a"), None);
        cache.insert(
            2,
            b"c",
            cache.hash(b"c"),
            handles(),
            true,
            #[cfg(feature = "exemplars")]
            SmallVec::new(),
        );
        assert_eq!(cache.len(), 1);
        assert_eq!((found(2, b"c"), found(2, b"a")), (Some(true), None));
        // A key already there (two threads that missed it at once) is not added twice.
        let cache = GroupCache::new(4);
        for _ in 0..2 {
            cache.insert(
                2,
                b"d",
                cache.hash(b"d"),
                handles(),
                false,
                #[cfg(feature = "exemplars")]
                SmallVec::new(),
            );
        }
        assert_eq!(cache.len(), 1);
    }
}
