//! The `Layer`: wires tracing's hooks to plans, span state, labels and instruments.
//!
//! Each hook does as little as it can: find the callsite's plan (in a per-thread list of recent
//! plans, checked against the configuration's generation; on a miss, a map lookup on a
//! snapshot), touch the span's own state under the span's own lock, and record on cached
//! handles. Spans and events reference their plan through a holder of their thread's own, so
//! the only memory that threads share and write on the hot path is the instruments' own.
//!
//! The recorder is called under a span's lock only while that span is being created or closed,
//! when no callback can reach it; so a recorder, or a field's `Debug`, that itself emits
//! tracing events cannot deadlock the layer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::LocalKey;

use arc_swap::ArcSwap;
use arrayvec::ArrayVec;
use smallvec::SmallVec;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::builder::SpanMetricsBuilder;
use crate::config::Buckets;
use crate::config::{Measure, MetricKind};
use crate::error::ConfigError;
use crate::instruments::{Admitted, Family, Handle, Op, RecorderRef, hash_labels};
use crate::labels::{Facts, LabelBuf, Lookup, conditions_hold, resolve, write_key};
use crate::plan::{
    Applied, CloseGroup, Compiled, EventPlan, Local, MAX_GROUP, Model, Rule, SpanPlan,
};
use crate::state::{Outcome, SpanState, States, inherited};
use crate::values::{FieldValues, KeyBuf, Value};

static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

/// How many span plans each thread keeps at hand (direct-mapped by callsite address; the
/// lookup takes the top 4 bits of a hash, so this is 16).
const PLAN_WAYS: usize = 16;

/// A plan a thread used recently: for which layer, configuration generation and callsite
/// (`None`: a span callsite that needs no state, or an event callsite with nothing to do).
struct RecentPlan<P> {
    layer: u64,
    generation: u64,
    site: usize,
    plan: Option<Weak<P>>,
}

type Recent<P> = std::cell::RefCell<[Option<RecentPlan<P>>; PLAN_WAYS]>;

thread_local! {
    static RECENT_PLANS: Recent<Local<SpanPlan>> = const { std::cell::RefCell::new([const { None }; PLAN_WAYS]) };
    static RECENT_EVENTS: Recent<Local<EventPlan>> = const { std::cell::RefCell::new([const { None }; PLAN_WAYS]) };
}

/// A callsite as a thread remembers it for one layer and configuration generation.
struct RecentKey {
    layer: u64,
    generation: u64,
    site: usize,
    way: usize,
}

impl RecentKey {
    /// `None`: not remembered (or its plan is gone); `Some(None)`: remembered as having no
    /// plan worth keeping; `Some(Some(plan))`.
    fn recall<P>(&self, recent: &'static LocalKey<Recent<P>>) -> Option<Option<Arc<P>>> {
        recent
            .try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let e = recent[self.way].as_ref()?;
                if e.layer != self.layer || e.generation != self.generation || e.site != self.site {
                    return None;
                }
                match &e.plan {
                    None => Some(None),
                    Some(plan) => plan.upgrade().map(Some),
                }
            })
            .ok()
            .flatten()
    }

    /// Remembers `plan` (weakly), or that there is none worth keeping.
    fn remember<P>(&self, recent: &'static LocalKey<Recent<P>>, plan: Option<&Arc<P>>) {
        // During thread teardown, or re-entered from a plan's compilation: nothing to keep.
        let _ = recent.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                recent[self.way] = Some(RecentPlan {
                    layer: self.layer,
                    generation: self.generation,
                    site: self.site,
                    plan: plan.map(Arc::downgrade),
                });
            }
        });
    }
}

/// The way of a callsite address for a layer: Fibonacci hashing, whose top 4 bits pick one of
/// 16. The layer takes part, so two layers in one subscriber do not evict each other's plans
/// of the same callsite.
fn way_of(site: usize, layer: u64) -> usize {
    ((site as u64 ^ layer.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize
}

/// The largest increment a counter takes from a field: 2^53.
const MAX_COUNTER_STEP: f64 = 9_007_199_254_740_992.0;

/// A `tracing_subscriber::Layer` that derives metrics from spans; built by
/// [`SpanMetrics`](crate::SpanMetrics).
///
/// It is not a filter: it never disables spans or events for other layers. Put it under a
/// per-layer filter (`.with_filter(...)`) to restrict which spans it sees.
pub struct SpanMetricsLayer {
    id: u64,
    shared: Arc<Shared>,
    clock: quanta::Clock,
}

/// What the layer and its reload handles share.
struct Shared {
    current: ArcSwap<Compiled>,
    /// Bumped after every install; thread-local plan shortcuts of older generations are stale.
    generation: AtomicU64,
    /// Whether any configuration ever measured busy/idle time (enters and exits matter).
    busy_possible: AtomicBool,
    /// Whether any configuration ever measured self time (children report to parents).
    children_possible: AtomicBool,
    /// Whether a replaced configuration with milestones may still have open spans, which then
    /// need every event (see `reach_milestones`).
    retired_milestones: AtomicBool,
    /// Those configurations' models, held weakly: open spans keep them alive through their
    /// plans. Also serialises installs.
    retired: Mutex<Vec<Weak<Model>>>,
    /// What every family ever configured admitted, by exported name: a reload's families
    /// continue from it, so the cardinality limit holds for the life of the process.
    admitted: Mutex<HashMap<String, Admitted>>,
    /// The buckets the running exporter fixed for each histogram when it was built, when the
    /// crate's exporter helpers set it up: a reload must not declare others.
    exporter_buckets: Mutex<Option<ExporterBuckets>>,
}

/// The buckets an exporter fixed when it was built: per exported histogram name, and the
/// fallback it uses for any other histogram.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExporterBuckets {
    pub(crate) per_family: HashMap<String, Vec<f64>>,
    pub(crate) fallback: Option<Vec<f64>>,
}

impl ExporterBuckets {
    /// Refuses a histogram whose declared buckets the exporter would not render.
    fn check(&self, family: &Family) -> Result<(), ConfigError> {
        let Some(declared) = family.buckets.as_ref().map(Buckets::bounds) else {
            return Ok(());
        };
        let rendered = self
            .per_family
            .get(&family.exported)
            .or(self.fallback.as_ref());
        match rendered {
            Some(r) if r.as_slice() == declared => Ok(()),
            _ => Err(ConfigError::family(
                &family.name,
                format!(
                    "this reload declares buckets {declared:?} for the histogram (exported as \
                     `{}`), but the running exporter renders it with {}: \
                     metrics-exporter-prometheus fixes each histogram's buckets when it is \
                     built; declare those buckets, or restart with the new configuration",
                    family.exported,
                    rendered.map_or("no buckets (as a summary)".to_owned(), |r| format!("{r:?}"))
                ),
            )),
        }
    }
}

impl Shared {
    /// Hands `model`'s families what the families of the same exported names admitted before
    /// (on the same recorder), and remembers what they admit from now on.
    fn continue_families(&self, model: &mut Model, running: &RecorderRef) {
        let same_recorder = model.settings.recorder.same_as(running);
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if !same_recorder {
            admitted.clear();
        }
        for family in &mut model.families {
            if let Some(earlier) = admitted.get(&family.exported) {
                family.continue_from(earlier);
            }
            admitted.insert(family.exported.clone(), family.admitted());
        }
    }

    fn install(&self, compiled: Compiled) {
        let m = &compiled.model;
        if m.any_busy {
            self.busy_possible.store(true, Ordering::Relaxed);
        }
        if m.any_self_time {
            self.children_possible.store(true, Ordering::Relaxed);
        }
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if old
            .model
            .rules
            .iter()
            .any(|r| matches!(r.measure, Measure::TimeToEvent(_)))
        {
            retired.push(Arc::downgrade(&old.model));
            // Set before the swap, so no event after it misses an old span's milestone.
            self.retired_milestones.store(true, Ordering::Relaxed);
        }
        self.current.store(Arc::new(compiled));
        // After the store: whoever sees the new generation loads the new configuration.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether events must still look for milestones of replaced configurations; clears the
    /// flag once the last span of every such configuration has closed.
    fn retired_milestones(&self) -> bool {
        if !self.retired_milestones.load(Ordering::Relaxed) {
            return false;
        }
        // Only while the flag is set, and never waiting: another thread prunes otherwise.
        if let Ok(mut retired) = self.retired.try_lock() {
            retired.retain(|m| m.strong_count() > 0);
            if retired.is_empty() {
                self.retired_milestones.store(false, Ordering::Relaxed);
                return false;
            }
        }
        true
    }
}

/// Swaps the configuration of a [`SpanMetricsLayer`] at run time; get one with
/// [`SpanMetricsLayer::reload_handle`].
///
/// Spans opened before a swap finish under the configuration they started with, spans opened
/// after it use the new one; events count under the configuration current when they happen.
/// Nothing is counted twice or lost at the switch. Unlike `tracing_subscriber::reload`, this
/// works under per-layer filters, and no hook waits for a lock because of it (while a replaced
/// configuration that measures milestones still has open spans, events try a lock to prune it
/// and move on if it is taken).
///
/// ```
/// use tracing_spanmetrics::{Metric, SpanMetrics};
///
/// let layer = SpanMetrics::red("svc").build()?;
/// let handle = layer.reload_handle();
/// // Later, e.g. on SIGHUP:
/// handle.reload(SpanMetrics::builder().metric(Metric::counter("calls.total")))?;
/// # Ok::<(), tracing_spanmetrics::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ReloadHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle").finish_non_exhaustive()
    }
}

impl ReloadHandle {
    /// Validates `builder` and, if it is valid, makes it the layer's configuration.
    ///
    /// The layer keeps its recorder unless `builder` names one
    /// ([`with_recorder`](SpanMetricsBuilder::with_recorder)), and always keeps its clock. Each
    /// family keeps the label sets it admitted before (by exported name), so its cardinality
    /// limit bounds the series the exporter holds across any number of reloads.
    ///
    /// # Errors
    /// The builder's [`ConfigError`]; a builder that sets a clock (spans open across the swap
    /// would measure their start and end on two clocks); a histogram whose buckets differ from
    /// the ones the running exporter fixed, when the exporter was set up by this crate's
    /// helpers (`exporter::install`, `exporter::PrometheusRecorder`). The running
    /// configuration is then left unchanged.
    pub fn reload(&self, builder: SpanMetricsBuilder) -> Result<(), ConfigError> {
        if builder.sets_clock() {
            return Err(ConfigError::global(
                "a reload cannot change the layer's clock: spans open across the swap would \
                 measure their start and end on two clocks; leave `with_clock` out of the \
                 reloaded builder",
            ));
        }
        let running = self.shared.current.load_full();
        let running = &running.model.settings.recorder;
        let mut model = builder.compile(Some(running))?;
        let fixed = self
            .shared
            .exporter_buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(fixed) = fixed.as_ref() {
            for family in &model.families {
                fixed.check(family)?;
            }
        }
        drop(fixed);
        self.shared.continue_families(&mut model, running);
        self.shared.install(Compiled::new(model));
        Ok(())
    }

    /// See [`SpanMetricsLayer::unseen_fields`] (the layer itself is usually moved into the
    /// subscriber; this handle stays with the application).
    pub fn unseen_fields(&self) -> Vec<(String, String)> {
        self.shared.current.load().unseen_fields()
    }

    /// The names of every metric family the current configuration records.
    pub fn metric_names(&self) -> Vec<String> {
        let c = self.shared.current.load();
        c.model.families.iter().map(|f| f.name.clone()).collect()
    }
}

impl std::fmt::Debug for SpanMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetricsLayer")
            .field("id", &self.id)
            .field("config", &self.shared.current.load())
            .finish_non_exhaustive()
    }
}

/// What the exporter needs to know about a histogram family.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramInfo {
    /// The family's name, as the rules declare it.
    pub name: String,
    /// The name it is registered with the `metrics` facade and exported under (dots become
    /// `_`, the unit suffix is appended: see [`SpanMetricsBuilder`]'s naming rule). Exporter
    /// settings match this name.
    pub exported_name: String,
    /// Its bucket boundaries.
    pub buckets: Vec<f64>,
}

impl SpanMetricsLayer {
    pub(crate) fn new(model: Model, clock: quanta::Clock) -> Self {
        let admitted = model
            .families
            .iter()
            .map(|f| (f.exported.clone(), f.admitted()))
            .collect();
        let compiled = Compiled::new(model);
        let shared = Shared {
            admitted: Mutex::new(admitted),
            exporter_buckets: Mutex::new(None),
            busy_possible: AtomicBool::new(compiled.model.any_busy),
            children_possible: AtomicBool::new(compiled.model.any_self_time),
            retired_milestones: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            current: ArcSwap::from_pointee(compiled),
            generation: AtomicU64::new(0),
        };
        SpanMetricsLayer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            shared: Arc::new(shared),
            clock,
        }
    }

    /// Tells the layer which buckets the exporter it records into fixed: reloads that declare
    /// other buckets are then refused.
    #[cfg(feature = "prometheus")]
    pub(crate) fn exporter_fixed(&self, buckets: ExporterBuckets) {
        *self
            .shared
            .exporter_buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(buckets);
    }

    /// A handle that swaps this layer's configuration at run time.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            shared: self.shared.clone(),
        }
    }

    /// Every histogram family with its buckets, for configuring an exporter.
    pub fn histograms(&self) -> Vec<HistogramInfo> {
        let c = self.shared.current.load();
        c.model
            .families
            .iter()
            .filter_map(|f| {
                Some(HistogramInfo {
                    name: f.name.clone(),
                    exported_name: f.exported.clone(),
                    buckets: f.buckets.as_ref()?.bounds().to_vec(),
                })
            })
            .collect()
    }

    /// Fields the rules read (labels, conditions, measured fields) that no span or event
    /// callsite met so far declares, as `(metric, field)` pairs: a typo, or a late field not
    /// declared as `tracing::field::Empty` (tracing drops undeclared fields). Callsites are met
    /// as code runs, so call it after the application has warmed up, and log what it finds.
    ///
    /// ```
    /// use tracing_spanmetrics::{Metric, SpanMetrics, Spans};
    /// use tracing_subscriber::prelude::*;
    ///
    /// let layer = SpanMetrics::builder()
    ///     .metric(Metric::counter("calls").spans(Spans::named("rpc")).label("methd"))
    ///     .build()?;
    /// let check = layer.reload_handle();
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     drop(tracing::info_span!("rpc", method = "get"));
    /// });
    /// assert_eq!(check.unseen_fields(), vec![("calls".to_owned(), "methd".to_owned())]);
    /// # Ok::<(), tracing_spanmetrics::ConfigError>(())
    /// ```
    pub fn unseen_fields(&self) -> Vec<(String, String)> {
        self.shared.current.load().unseen_fields()
    }

    /// The names of every metric family the layer records.
    pub fn metric_names(&self) -> Vec<String> {
        let c = self.shared.current.load();
        c.model.families.iter().map(|f| f.name.clone()).collect()
    }

    /// Where a thread remembers the plans of `meta`'s callsite for this layer and the current
    /// configuration generation.
    fn recent_key(&self, meta: &'static Metadata<'static>) -> RecentKey {
        let site = std::ptr::from_ref(meta) as usize;
        RecentKey {
            layer: self.id,
            generation: self.shared.generation.load(Ordering::Acquire),
            site,
            way: way_of(site, self.id),
        }
    }

    /// The plan of a span callsite for the current configuration, as this thread holds it.
    /// Each thread keeps a few recent plans (held weakly, so they never outlive their
    /// configuration) and checks them against the configuration's generation: the common case
    /// reads no shared state but one counter, and takes the reference that the span's state
    /// keeps on this thread's own holder of the plan, so it writes nothing other threads use.
    fn span_plan(&self, meta: &'static Metadata<'static>) -> Option<Arc<Local<SpanPlan>>> {
        let key = self.recent_key(meta);
        if let Some(plan) = key.recall(&RECENT_PLANS) {
            return plan;
        }
        let plan = self.shared.current.load().span_plan(meta);
        key.remember(&RECENT_PLANS, plan.as_ref());
        plan
    }

    /// The plan of an event callsite, if events of it have work to do (with `always`, also
    /// if they have none: replaced configurations' milestones may still need them). Each
    /// thread remembers recent callsites as for spans; a callsite without work is remembered
    /// as such, so the events of the application's other logs cost one thread-local lookup.
    fn event_plan(
        &self,
        meta: &'static Metadata<'static>,
        always: bool,
    ) -> Option<Arc<Local<EventPlan>>> {
        let key = self.recent_key(meta);
        match key.recall(&RECENT_EVENTS) {
            Some(None) if !always => return None,
            Some(Some(plan)) => return Some(plan),
            _ => {}
        }
        let plan = self.shared.current.load().event_plan(meta, always);
        let relevant = plan.as_ref().filter(|p| p.is_relevant());
        key.remember(&RECENT_EVENTS, relevant);
        plan
    }

    fn bound(model: &Model) -> usize {
        model.settings.max_label_len
    }

    /// Checks `rule`'s conditions and resolves its labels.
    fn labels_for<'a>(
        &self,
        model: &Model,
        rule: &'a Rule,
        own_slots: Option<&[Option<u8>]>,
        facts: &Facts<'a>,
        lookup: &dyn Lookup,
    ) -> Option<LabelBuf<'a>> {
        if !conditions_hold(rule, facts, lookup) {
            return None;
        }
        let mut buf = LabelBuf::new(Self::bound(model));
        resolve(rule, own_slots, facts, lookup, &mut buf);
        if buf.take_truncated() {
            model.health.truncated(&model.settings.recorder, 1);
        }
        Some(buf)
    }

    /// Applies one rule: checks conditions, resolves labels, records `op`.
    fn record_rule(
        &self,
        model: &Model,
        rule: &Rule,
        own_slots: Option<&[Option<u8>]>,
        facts: &Facts<'_>,
        lookup: &dyn Lookup,
        op: Op,
    ) {
        if let Some(buf) = self.labels_for(model, rule, own_slots, facts, lookup) {
            let values = buf.values();
            model
                .family(rule)
                .apply(&model.settings.recorder, &values, hash_labels(&values), op);
        }
    }

    /// Resolves a gauge handle for `rule`, or `None` if a condition fails.
    fn gauge_for(
        &self,
        model: &Model,
        rule: &Rule,
        own_slots: Option<&[Option<u8>]>,
        facts: &Facts<'_>,
        lookup: &dyn Lookup,
    ) -> Option<metrics::Gauge> {
        let buf = self.labels_for(model, rule, own_slots, facts, lookup)?;
        let values = buf.values();
        let handle =
            model
                .family(rule)
                .handle(&model.settings.recorder, &values, hash_labels(&values));
        handle.gauge().cloned()
    }

    /// The op for a numeric value on a family of `kind`, or the reason it cannot be recorded.
    fn numeric_op(kind: MetricKind, value: Option<Value<'_>>) -> Result<Op, &'static str> {
        let v = value.ok_or("missing")?.as_f64().ok_or("not_a_number")?;
        if v.is_nan() {
            return Err("not_a_number");
        }
        Ok(match kind {
            // A gauge may read ±Inf, e.g. an unlimited limit (metrics-exporter-prometheus
            // writes `inf`, which Prometheus parses).
            MetricKind::Gauge => Op::Set(v),
            _ if v.is_infinite() => return Err("not_finite"),
            MetricKind::Histogram => Op::Observe(v),
            MetricKind::Counter if v < 0.0 => return Err("negative"),
            // Past 2^53 an f64 no longer holds every integer, and a few such increments
            // would wrap the recorder's u64: an absurd increment is refused, not wrapped.
            MetricKind::Counter if v > MAX_COUNTER_STEP => return Err("too_large"),
            MetricKind::Counter => Op::Add(v as u64),
        })
    }

    /// The op for a numeric field value, or `None`: a missing value records nothing, a refused
    /// one is counted in the health metric when `applies()` (the rule's conditions hold).
    fn value_op(
        model: &Model,
        rule: &Rule,
        value: Option<Value<'_>>,
        applies: impl FnOnce() -> bool,
    ) -> Option<Op> {
        let family = model.family(rule);
        match Self::numeric_op(family.kind, value) {
            Ok(op) => Some(op),
            Err("missing") => None,
            Err(reason) => {
                if applies() {
                    let rec = &model.settings.recorder;
                    model.health.rejected(rec, &family.exported, reason);
                }
                None
            }
        }
    }

    fn record_numeric(
        &self,
        model: &Model,
        applied: &Applied,
        value: Option<Value<'_>>,
        facts: &Facts<'_>,
        lookup: &dyn Lookup,
    ) {
        let rule = &model.rules[applied.rule];
        if let Some(op) =
            Self::value_op(model, rule, value, || conditions_hold(rule, facts, lookup))
        {
            self.record_rule(model, rule, Some(&applied.own_slots), facts, lookup, op);
        }
    }

    fn with_state<S, R>(
        &self,
        span: &SpanRef<'_, S>,
        f: impl FnOnce(&mut SpanState) -> R,
    ) -> Option<R>
    where
        S: for<'a> LookupSpan<'a>,
    {
        let mut ext = span.extensions_mut();
        ext.get_mut::<States>()?.get_mut(self.id).map(f)
    }

    /// Opening-time work for a new span's state (not yet stored, so no lock is held); returns
    /// the in-flight gauges it incremented, to be decremented at close.
    fn open<S>(
        &self,
        span: &SpanRef<'_, S>,
        state: &SpanState,
        ctx: &Context<'_, S>,
    ) -> SmallVec<[(usize, metrics::Gauge); 2]>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let plan = &state.plan;
        let mut held: SmallVec<[(usize, metrics::Gauge); 2]> = SmallVec::new();
        let model = &plan.model;
        let meta = span.metadata();
        let facts = Facts {
            name: meta.name(),
            target: meta.target(),
            own: Some(&state.values),
            outcome: Outcome::Unset,
        };
        let chain = Chain {
            locals: [Some(&state.values), None],
            below: Some(span),
            held: Some(state),
            ctx,
            layer: self.id,
        };
        for applied in &plan.on_open {
            let rule = &model.rules[applied.rule];
            match rule.measure {
                Measure::SpansOpened => self.record_rule(
                    model,
                    rule,
                    Some(&applied.own_slots),
                    &facts,
                    &chain,
                    Op::Add(1),
                ),
                Measure::InFlight => {
                    if let Some(g) =
                        self.gauge_for(model, rule, Some(&applied.own_slots), &facts, &chain)
                    {
                        held.push((applied.rule, g));
                    }
                }
                _ => {}
            }
        }
        for (applied, slot) in &plan.gated {
            if state.values.is_set(*slot as usize) {
                let rule = &model.rules[applied.rule];
                if let Some(g) =
                    self.gauge_for(model, rule, Some(&applied.own_slots), &facts, &chain)
                {
                    held.push((applied.rule, g));
                }
            }
        }
        for (applied, slot) in &plan.field_gauges {
            let value = state.values.get(*slot as usize);
            self.record_numeric(model, applied, value, &facts, &chain);
        }
        for (_, g) in &held {
            g.increment(1.0);
        }
        held
    }

    /// Close-time work, on the span's state (its lock held: no callback can reach a closing
    /// span, which is neither entered nor anyone's parent any more).
    ///
    /// Rules that share labels and conditions (say a duration histogram and a calls counter)
    /// form a group: their labels are resolved and hashed once.
    fn close<S>(&self, span: &SpanRef<'_, S>, state: &mut SpanState, now: u64, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let plan = &state.plan;
        let model = &plan.model;
        let meta = span.metadata();
        let facts = Facts {
            name: meta.name(),
            target: meta.target(),
            own: Some(&state.values),
            outcome: state.outcome(),
        };
        let chain = Chain {
            locals: [Some(&state.values), None],
            below: Some(span),
            held: Some(state),
            ctx,
            layer: self.id,
        };
        let clock = &self.clock;
        let wall = clock.delta_as_nanos(state.start, now);
        let secs = |nanos: u64| Op::Observe(nanos as f64 * 1e-9);
        let outcome = facts.outcome;
        for group in &plan.close_groups {
            let first = &plan.on_close[group.members[0]];
            let rule = &model.rules[first.rule];
            if !conditions_hold(rule, &facts, &chain) {
                continue;
            }
            let mut ops: ArrayVec<(usize, Op), MAX_GROUP> = ArrayVec::new();
            for &member in &group.members {
                let applied = &plan.on_close[member];
                let rule = &model.rules[applied.rule];
                let op = match &rule.measure {
                    Measure::WallTime => secs(wall),
                    Measure::BusyTime => secs(state.busy.nanos(now, clock)),
                    Measure::IdleTime => secs(wall.saturating_sub(state.busy.nanos(now, clock))),
                    Measure::SelfTime => {
                        secs(wall.saturating_sub(state.children.nanos(now, clock)))
                    }
                    Measure::TimeToEvent(_) => {
                        let reached = plan
                            .milestones
                            .iter()
                            .position(|r| *r == applied.rule)
                            .and_then(|k| state.milestones.get(k).copied().flatten());
                        match reached {
                            Some(t) => secs(clock.delta_as_nanos(state.start, t)),
                            None => continue,
                        }
                    }
                    Measure::SpansClosed => Op::Add(1),
                    // The group's conditions hold (checked above).
                    Measure::SpanField(f) => {
                        match Self::value_op(model, rule, state.values.by_name(f), || true) {
                            Some(op) => op,
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                // A group has at most `MAX_GROUP` members (the plan splits larger ones).
                let pushed = ops.try_push((rule.family, op));
                debug_assert!(pushed.is_ok(), "a close group exceeds MAX_GROUP");
            }
            if ops.is_empty() {
                continue;
            }
            // The cache holds one handle per rule of the group: only a span for which every
            // rule records may use it.
            let mut key = KeyBuf::new();
            let keyed = ops.len() == group.members.len()
                && group.key.as_ref().is_some_and(|spec| {
                    write_key(rule, spec, &state.values, outcome, &chain, &mut key)
                });
            let key = key.as_bytes();
            let key_hash = if keyed { group.cache.hash(key) } else { 0 };
            let recorder = &model.settings.recorder;
            if keyed {
                let hit = recorder.with(|_, id| {
                    group.cache.with(id, key, key_hash, |entry| {
                        for (handle, (_, op)) in entry.handles.iter().zip(&ops) {
                            handle.apply(*op);
                        }
                        entry.truncated
                    })
                });
                match hit {
                    Some(true) => model.health.truncated(recorder, 1),
                    Some(false) => {}
                    None => {
                        let key = Some((key, key_hash));
                        self.close_group_slow(model, group, first, &ops, &facts, &chain, key)
                    }
                }
                continue;
            }
            self.close_group_slow(model, group, first, &ops, &facts, &chain, None);
        }
        if !state.held.is_empty() {
            for (_, gauge) in std::mem::take(&mut state.held) {
                gauge.decrement(1.0);
            }
        }
    }

    /// A close group without a cache hit: resolves and hashes the labels of `first` (the
    /// group's first rule), records `ops` through the families and, given a cache key, caches
    /// the handles (unless one of them is an overflow series).
    #[allow(clippy::too_many_arguments)]
    fn close_group_slow(
        &self,
        model: &Model,
        group: &CloseGroup,
        first: &Applied,
        ops: &[(usize, Op)],
        facts: &Facts<'_>,
        chain: &dyn Lookup,
        key: Option<(&[u8], u64)>,
    ) {
        let rule = &model.rules[first.rule];
        let mut buf = LabelBuf::new(Self::bound(model));
        resolve(rule, Some(&first.own_slots), facts, chain, &mut buf);
        let truncated = buf.take_truncated();
        let recorder = &model.settings.recorder;
        if truncated {
            model.health.truncated(recorder, 1);
        }
        let values = buf.values();
        let hash = hash_labels(&values);
        recorder.with(|r, id| {
            let mut handles: SmallVec<[Handle; 2]> = SmallVec::new();
            let mut cacheable = key.is_some();
            for &(family, op) in ops {
                model.families[family].with_handle_on(r, id, &values, hash, |h, overflow| {
                    h.apply(op);
                    if overflow {
                        cacheable = false;
                    } else if cacheable {
                        handles.push(h.clone());
                    }
                });
            }
            if let (true, Some((key, key_hash))) = (cacheable, key) {
                group.cache.insert(id, key, key_hash, handles, truncated);
            }
        });
    }

    /// Reacts to newly recorded fields: gated in-flight gauges and field gauges.
    fn react<S>(
        &self,
        span: &SpanRef<'_, S>,
        plan: &SpanPlan,
        own: &FieldValues,
        outcome: Outcome,
        seen: u64,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let model = &plan.model;
        let meta = span.metadata();
        let facts = Facts {
            name: meta.name(),
            target: meta.target(),
            own: Some(own),
            outcome,
        };
        let chain = Chain {
            locals: [Some(own), None],
            below: Some(span),
            held: None,
            ctx,
            layer: self.id,
        };
        for (applied, slot) in &plan.field_gauges {
            if seen & (1 << slot) != 0 {
                self.record_numeric(model, applied, own.get(*slot as usize), &facts, &chain);
            }
        }
        for (applied, slot) in &plan.gated {
            if seen & (1 << slot) == 0 {
                continue;
            }
            let rule = &model.rules[applied.rule];
            let already = self
                .with_state(span, |st| st.holds(applied.rule))
                .unwrap_or(true);
            if already {
                continue;
            }
            let Some(g) = self.gauge_for(model, rule, Some(&applied.own_slots), &facts, &chain)
            else {
                continue;
            };
            let took = self
                .with_state(span, |st| {
                    if st.holds(applied.rule) {
                        false
                    } else {
                        st.held.push((applied.rule, g.clone()));
                        true
                    }
                })
                .unwrap_or(false);
            if took {
                g.increment(1.0);
            }
        }
    }

    /// Marks the milestones this event reaches on its span and the span's ancestors.
    ///
    /// Spans opened under a configuration that has since been replaced keep their own rules:
    /// their milestones are matched against the event here, rule by rule (a slower path that
    /// only runs while a replaced configuration with milestones may have open spans).
    fn reach_milestones<S>(
        &self,
        model: &Arc<Model>,
        plan: &EventPlan,
        meta: &'static Metadata<'static>,
        values: &FieldValues,
        event: &Event<'_>,
        span: Option<&SpanRef<'_, S>>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let now = self.clock.raw();
        let text = plan.message(values);
        let mut reached: SmallVec<[usize; 4]> = SmallVec::new();
        for &r in &plan.milestones {
            if text_matches(&model.rules[r], text) {
                reached.push(r);
            }
        }
        // The message, for rules of replaced configurations, captured before any lock is taken.
        let mut message: Option<FieldValues> = None;
        for s in span.into_iter().flat_map(|s| s.scope()) {
            // Spans of the current configuration: one lock, milestones marked under it.
            let retired = {
                let mut ext = s.extensions_mut();
                let Some(st) = ext.get_mut::<States>().and_then(|x| x.get_mut(self.id)) else {
                    continue;
                };
                if st.plan.milestones.is_empty() {
                    continue;
                }
                if Arc::ptr_eq(&st.plan.model, model) {
                    if !reached.is_empty() {
                        let plan = &*st.plan;
                        for (k, at) in st.milestones.iter_mut().enumerate() {
                            if at.is_none()
                                && plan.milestones.get(k).is_some_and(|r| reached.contains(r))
                            {
                                *at = Some(now);
                            }
                        }
                    }
                    continue;
                }
                st.plan.clone()
            };
            let old = &retired;
            {
                let index = meta
                    .fields()
                    .field("message")
                    .and_then(|f| 1u64.checked_shl(f.index() as u32));
                if let (None, Some(index)) = (&message, index) {
                    let slots: SmallVec<[Option<u8>; 8]> = meta
                        .fields()
                        .iter()
                        .map(|f| (f.name() == "message").then_some(0))
                        .collect();
                    let mut m = FieldValues::new(meta.fields(), index, Self::bound(&old.model));
                    event.record(&mut m.recorder(&slots));
                    message = Some(m);
                }
            }
            // A span of a replaced configuration: its own rules decide.
            self.with_state(&s, |st| {
                for k in 0..st.plan.milestones.len() {
                    let r = st.plan.milestones[k];
                    if st.milestones[k].is_some() {
                        continue;
                    }
                    let rule = &st.plan.model.rules[r];
                    let hit = rule.event_match().is_some_and(|m| m.matches_callsite(meta))
                        && message.as_ref().map_or(
                            rule.event_match().is_some_and(|m| m.message.is_none()),
                            |m| message_matches(rule, m),
                        );
                    if hit {
                        st.milestones[k] = Some(now);
                    }
                }
            });
        }
    }

    fn on_event_planned<S>(
        &self,
        model: &Arc<Model>,
        plan: &EventPlan,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        retired_milestones: bool,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.event_span(event);
        if plan.is_error {
            if let Some(s) = &span {
                self.with_state(s, |st| st.errored = true);
            }
        }
        if plan.rules.is_empty() && plan.milestones.is_empty() && !retired_milestones {
            return;
        }
        let mut values = plan.values(Self::bound(model));
        event.record(&mut values.recorder(&plan.slot_for));
        if values.take_truncated() {
            model.health.truncated(&model.settings.recorder, 1);
        }
        let meta = event.metadata();
        if !plan.milestones.is_empty() || retired_milestones {
            self.reach_milestones(model, plan, meta, &values, event, span.as_ref());
        }
        for &r in &plan.rules {
            let rule = &model.rules[r];
            if !text_matches(rule, plan.message(&values)) {
                continue;
            }
            // The anchor: the nearest span the rule selects (any span, without a selector).
            let anchor = match &rule.spans {
                None => span.as_ref().and_then(|s| ctx.span(&s.id())),
                Some(_) => span.iter().flat_map(|s| s.scope()).find(|s| {
                    let ext = s.extensions();
                    ext.get::<States>()
                        .and_then(|x| x.get(self.id))
                        .is_some_and(|st| {
                            Arc::ptr_eq(&st.plan.model, model) && st.plan.anchors.contains(&r)
                        })
                }),
            };
            if rule.spans.is_some() && anchor.is_none() {
                continue;
            }
            let (anchor_values, errored) = anchor
                .as_ref()
                .and_then(|a| {
                    let ext = a.extensions();
                    let st = ext.get::<States>()?.get(self.id)?;
                    Some((Some(st.values.clone()), st.errored))
                })
                .unwrap_or((None, false));
            let anchor_meta = anchor.as_ref().map(|a| a.metadata());
            let facts = Facts {
                name: anchor_meta.map_or(meta.name(), |m| m.name()),
                target: meta.target(),
                own: anchor_values.as_ref(),
                outcome: Outcome::of(anchor_values.as_ref(), errored),
            };
            let chain = Chain {
                locals: [Some(&values), anchor_values.as_ref()],
                below: anchor.as_ref(),
                held: None,
                ctx,
                layer: self.id,
            };
            let applied = Applied {
                rule: r,
                own_slots: SmallVec::new(),
            };
            match &rule.measure {
                Measure::Events(_) => {
                    self.record_rule(model, rule, None, &facts, &chain, Op::Add(1))
                }
                Measure::EventField(_, f) => {
                    let value = values.by_name(f);
                    self.record_numeric(model, &applied, value, &facts, &chain)
                }
                _ => {}
            }
        }
    }
}

/// Whether the event's captured `message` is the one `rule`'s event selector asks for (if any).
fn message_matches(rule: &Rule, values: &FieldValues) -> bool {
    text_matches(rule, values.by_name("message"))
}

/// As [`message_matches`], given the event's message.
fn text_matches(rule: &Rule, message: Option<Value<'_>>) -> bool {
    rule.event_match()
        .and_then(|m| m.message.as_deref())
        .is_none_or(|text| message.is_some_and(|v| v.text_eq(text)))
}

/// Field lookup through local values (event, span) and then the ancestors of `below` (looked
/// up only when a value is not found locally), following links (see [`crate::state`]).
struct Chain<'a, 'b, S: for<'l> LookupSpan<'l>> {
    locals: [Option<&'a FieldValues>; 2],
    below: Option<&'a SpanRef<'b, S>>,
    /// `below`'s state, when the caller holds its lock.
    held: Option<&'a SpanState>,
    ctx: &'a Context<'a, S>,
    layer: u64,
}

impl<S> Lookup for Chain<'_, '_, S>
where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    fn ancestors(&self, names: &[&str], f: &mut dyn FnMut(usize, Value<'_>)) {
        if let (Some(below), false) = (self.below, names.is_empty()) {
            inherited(self.ctx, self.layer, below, self.held, names, f);
        }
    }

    fn field(&self, name: &str, inherit: bool, f: &mut dyn FnMut(Value<'_>)) -> bool {
        for local in self.locals.iter().flatten() {
            if let Some(v) = local.by_name(name) {
                f(v);
                return true;
            }
        }
        if !inherit {
            return false;
        }
        let mut found = false;
        self.ancestors(&[name], &mut |_, v| {
            found = true;
            f(v)
        });
        found
    }
}

impl<S> Layer<S> for SpanMetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.shared.current.load().prepare(meta);
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let now = self.clock.raw();
        if self.shared.children_possible.load(Ordering::Relaxed) {
            if let Some(parent) = span.parent() {
                self.with_state(&parent, |st| {
                    if st.plan.needs_children {
                        st.children.open(now)
                    }
                });
            }
        }
        let Some(plan) = self.span_plan(attrs.metadata()) else {
            return;
        };
        // The state is built in place, under the new span's lock: no callback can reach a span
        // that is still being created (its id is not out yet), and the ancestors that the
        // opening rules may read are locked after it, in the same child-to-ancestor order as
        // everywhere else.
        let mut ext = span.extensions_mut();
        match ext.get_mut::<States>() {
            Some(states) => states.push(self.id, SpanState::new(plan, now)),
            None => ext.insert(States::new(self.id, plan, now)),
        }
        let Some(state) = ext.get_mut::<States>().and_then(|s| s.get_mut(self.id)) else {
            return;
        };
        let plan = &*state.plan;
        // A callsite with no field any rule reads (RED mode without `otel.*` fields, say) is
        // not visited at all.
        if !plan.slot_names.is_empty() {
            attrs.record(&mut state.values.recorder(&plan.slot_for));
            if state.values.take_truncated() {
                let model = &plan.model;
                model.health.truncated(&model.settings.recorder, 1);
            }
        }
        if plan.opens() {
            state.held = self.open(&span, state, &ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(plan) = span
            .extensions()
            .get::<States>()
            .and_then(|s| s.get(self.id))
            .map(|st| st.plan.clone())
        else {
            return;
        };
        if plan.slot_names.is_empty() {
            return;
        }
        // Visit outside the span's lock: a field's `Debug` may itself log, and that event must
        // not find this span locked by us.
        let mut fresh = plan.values();
        let mut rec = fresh.recorder(&plan.slot_for);
        values.record(&mut rec);
        let seen = rec.seen;
        if seen == 0 {
            return;
        }
        if fresh.take_truncated() {
            plan.model
                .health
                .truncated(&plan.model.settings.recorder, 1);
        }
        let react = self
            .with_state(&span, |st| {
                st.values.merge(&fresh, seen);
                st.values.take_truncated();
                (seen & plan.reactive != 0).then(|| (st.values.clone(), st.outcome()))
            })
            .flatten();
        if let Some((own, outcome)) = react {
            self.react(&span, &plan, &own, outcome, seen, &ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.shared.busy_possible.load(Ordering::Relaxed) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let now = self.clock.raw();
        self.with_state(&span, |st| {
            if st.plan.needs_busy {
                st.busy.open(now)
            }
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.shared.busy_possible.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.raw();
        let Some(span) = ctx.span(id) else { return };
        self.with_state(&span, |st| {
            if st.plan.needs_busy {
                st.busy.close(now, &self.clock)
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let retired_milestones = self.shared.retired_milestones();
        if let Some(plan) = self.event_plan(event.metadata(), retired_milestones) {
            self.on_event_planned(&plan.model, &plan, event, &ctx, retired_milestones);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let now = self.clock.raw();
        let Some(span) = ctx.span(&id) else { return };
        if self.shared.children_possible.load(Ordering::Relaxed) {
            if let Some(parent) = span.parent() {
                self.with_state(&parent, |st| {
                    if st.plan.needs_children {
                        st.children.close(now, &self.clock)
                    }
                });
            }
        }
        // The state stays where it is; the registry drops it with the span's extensions.
        self.with_state(&span, |st| self.close(&span, st, now, &ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EventMatch, Metric};
    use tracing_subscriber::prelude::*;

    fn with_milestone() -> SpanMetricsBuilder {
        crate::SpanMetrics::builder()
            .metric(Metric::histogram("ttfb").time_to(EventMatch::message("first byte")))
    }

    #[test]
    fn the_retired_milestone_path_ends_with_the_last_old_span() {
        let layer = with_milestone().build().unwrap();
        let shared = layer.shared.clone();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!shared.retired_milestones());
            let old = tracing::info_span!("request");
            reload.reload(crate::SpanMetrics::builder()).unwrap();
            // The old configuration had a milestone and a span of it is open.
            assert!(shared.retired_milestones());
            let new = tracing::info_span!("request");
            assert!(shared.retired_milestones());
            drop(old);
            assert!(!shared.retired_milestones());
            drop(new);
            // Replacing a configuration without milestones never turns the path on.
            reload.reload(with_milestone()).unwrap();
            assert!(!shared.retired_milestones());
        });
    }

    #[test]
    fn replaced_configurations_die_with_their_last_span_whatever_the_threads() {
        let layer = with_milestone().build().unwrap();
        let shared = layer.shared.clone();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    tracing::dispatcher::with_default(&dispatch, || {
                        while !stop.load(Ordering::Relaxed) {
                            let _span = tracing::info_span!("request").entered();
                            tracing::info!("first byte");
                        }
                    })
                });
            }
            for _ in 0..50 {
                reload.reload(with_milestone()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
        });
        // Every replaced configuration had a milestone; with every span closed, none of them
        // may still be alive (through a thread's plan holder or otherwise).
        assert!(!shared.retired_milestones());
        assert!(shared.retired.lock().unwrap().is_empty());
    }

    /// The holder of the plan that a span's state keeps.
    fn holder(dispatch: &tracing::Dispatch, span: &tracing::Span) -> Arc<Local<SpanPlan>> {
        type Sub =
            tracing_subscriber::layer::Layered<SpanMetricsLayer, tracing_subscriber::Registry>;
        let sub = dispatch
            .downcast_ref::<Sub>()
            .expect("the test's subscriber");
        let data = sub.span_data(&span.id().expect("an enabled span")).unwrap();
        let ext = tracing_subscriber::registry::SpanData::extensions(&data);
        let states = ext.get::<States>().expect("the layer's state");
        states
            .get(sub.downcast_ref::<SpanMetricsLayer>().unwrap().id)
            .unwrap()
            .plan
            .clone()
    }

    #[test]
    fn threads_hold_only_the_plans_they_use() {
        let layer = crate::SpanMetrics::builder()
            .metric(Metric::counter("calls").spans(crate::Spans::named("rpc")))
            .metric(
                Metric::counter("hits")
                    .events(EventMatch::with_field("hit"))
                    .spans(crate::Spans::named("rpc")),
            )
            .build()
            .unwrap();
        let shared = layer.shared.clone();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let work = || {
            tracing::dispatcher::with_default(&dispatch, || {
                for _ in 0..3 {
                    tracing::info_span!("other").in_scope(|| tracing::info!("unrelated"));
                    tracing::info_span!("rpc").in_scope(|| tracing::info!(hit = true));
                }
            })
        };
        work();
        // The `rpc` span and the `hit` event, once each: not the span and event no rule uses.
        assert_eq!(shared.current.load().holders(), 2);
        std::thread::scope(|s| s.spawn(work).join().unwrap());
        assert_eq!(shared.current.load().holders(), 4);
    }

    #[test]
    fn spans_count_their_plan_on_their_own_threads_holder() {
        let layer = crate::SpanMetrics::builder()
            .metric(Metric::counter("calls"))
            .build()
            .unwrap();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let open = || tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("rpc"));
        // The holder stays with the configuration: a thread's next span finds the same one,
        // even with no span open in between.
        let first = Arc::downgrade(&holder(&dispatch, &open()));
        let (a, b) = (open(), open());
        let c = std::thread::scope(|s| s.spawn(open).join().unwrap());
        let (ha, hb, hc) = (
            holder(&dispatch, &a),
            holder(&dispatch, &b),
            holder(&dispatch, &c),
        );
        assert!(Arc::ptr_eq(&first.upgrade().unwrap(), &ha));
        // One holder per thread, all of one plan.
        assert!(Arc::ptr_eq(&ha, &hb));
        assert!(!Arc::ptr_eq(&ha, &hc));
        assert!(std::ptr::eq::<SpanPlan>(&**ha, &**hc));
        // Two threads' holders never share a cache line (nor the adjacent one).
        assert_eq!(std::mem::align_of::<Local<SpanPlan>>(), 128);
        // A holder outlives its configuration only through open spans: once replaced, the
        // holder goes with the last span that holds it.
        let (weak_a, weak_c) = (Arc::downgrade(&ha), Arc::downgrade(&hc));
        drop((ha, hb, hc));
        reload.reload(crate::SpanMetrics::builder()).unwrap();
        drop((a, b));
        assert!(weak_a.upgrade().is_none());
        assert!(weak_c.upgrade().is_some());
        drop(c);
        assert!(weak_c.upgrade().is_none());
    }
}
