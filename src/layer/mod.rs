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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use arrayvec::ArrayVec;
use smallvec::SmallVec;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::config::ConfigError;
use crate::config::{HistogramInfo, Measure, SpanMetricsBuilder};
use crate::instruments::{Handle, Op, hash_labels};
use crate::labels::{LabelBuf, Lookup, Subject, conditions_hold, resolve, write_key};
use crate::plan::{Applied, CloseGroup, MAX_GROUP, Plans, SpanPlan};
use crate::ruleset::Ruleset;
use crate::ruleset::compile;
use crate::state::{Core, Extras, Outcome, SpanState, SpanStateMut, States};
use crate::values::{KeyBuf, Values};

mod ancestors;
mod events;
mod message;
mod recent;
mod record;
mod reload;

use ancestors::RegistryLookup;
use record::{gauge_for, record_numeric, record_rule, value_op};
#[cfg(feature = "prometheus")]
pub(crate) use reload::ExporterBuckets;
pub use reload::ReloadHandle;
use reload::Shared;

static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

/// A `tracing_subscriber::Layer` that derives metrics from spans; built by
/// [`SpanMetrics`](crate::SpanMetrics).
///
/// It is not a filter: it never disables spans or events for other layers. Put it under a
/// per-layer filter (`.with_filter(...)`) to restrict which spans it sees.
pub struct SpanMetricsLayer {
    id: u64,
    /// Whether this layer ever stored a state of the full grade: until it does, lookups look
    /// for the compact grade first, and after, for the full one (so spans of the full grade
    /// never pay for the compact one's lookup; see `crate::state`).
    full_states: AtomicBool,
    shared: Arc<Shared>,
    clock: quanta::Clock,
    /// How span contexts are read for exemplars.
    #[cfg(feature = "exemplars")]
    capture: crate::exemplars::Capture,
}

impl std::fmt::Debug for SpanMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetricsLayer")
            .field("id", &self.id)
            .field("config", &self.shared.current.load())
            .finish_non_exhaustive()
    }
}

impl SpanMetricsBuilder {
    /// Validates every rule and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the rule and the problem: an invalid metric or label name, a
    /// measure that does not fit the instrument, a family declared twice with different kinds,
    /// units, label keys or buckets, families whose exported names collide, bad bucket
    /// boundaries, an empty selector, a label value longer than the length bound, or a limit of
    /// zero.
    pub fn build(self) -> Result<SpanMetricsLayer, ConfigError> {
        let model = compile(&self, None)?;
        Ok(SpanMetricsLayer::new(model, self.clock.unwrap_or_default()))
    }
}

impl SpanMetricsLayer {
    pub(crate) fn new(
        #[cfg_attr(not(feature = "exemplars"), allow(unused_mut))] mut model: Ruleset,
        clock: quanta::Clock,
    ) -> Self {
        #[cfg(feature = "exemplars")]
        let exemplars = Arc::new(crate::exemplars::Store::default());
        #[cfg(feature = "exemplars")]
        for family in &mut model.families {
            if let Some(own) = &family.exemplars {
                family.exemplars = Some(exemplars.adopt(own));
            }
        }
        let admitted = model
            .families
            .iter()
            .map(|f| (f.exported.clone(), f.admitted()))
            .collect();
        let compiled = Plans::new(model);
        let shared = Shared {
            admitted: Mutex::new(admitted),
            exporter_buckets: Mutex::new(None),
            busy_possible: AtomicBool::new(compiled.model.any_busy),
            children_possible: AtomicBool::new(compiled.model.any_self_time),
            retired_milestones: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            current: ArcSwap::from_pointee(compiled),
            generation: AtomicU64::new(0),
            #[cfg(feature = "exemplars")]
            exemplars,
        };
        SpanMetricsLayer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            full_states: AtomicBool::new(false),
            shared: Arc::new(shared),
            #[cfg(feature = "exemplars")]
            capture: crate::exemplars::Capture::new(&clock),
            clock,
        }
    }

    /// Whether observations carry exemplars (the trace and span ids of sampled OpenTelemetry
    /// spans, or of [`with_exemplar_source`](Self::with_exemplar_source)). Defaults to `true`.
    /// See [`Exemplars`](crate::Exemplars).
    #[cfg(feature = "exemplars")]
    #[must_use]
    pub fn with_exemplars(mut self, capture: bool) -> Self {
        self.capture.enabled = capture;
        self
    }

    /// Takes the trace and span ids of each span's exemplars from `source`, your own trace
    /// context, instead of OpenTelemetry: no `opentelemetry` feature needed. With the
    /// `opentelemetry` feature too, `source` takes precedence: OpenTelemetry contexts are then
    /// not read at all. Defaults to none (with the `opentelemetry` feature: the spans'
    /// OpenTelemetry contexts).
    ///
    /// `source` is any `Fn(&tracing::span::Id, &tracing::Dispatch) -> Option<`[`TraceIds`]`>`
    /// (or an [`ExemplarSource`]). It is called once per span that a histogram or counter rule
    /// measures, at this layer's close of the span, without any of the span's extensions
    /// locked, with the dispatch this layer is part of: it may look the span up (say
    /// `dispatch.downcast_ref::<tracing_subscriber::Registry>()` and
    /// [`LookupSpan::span`]) and read what your layer stored in its extensions. The ids must
    /// still be there at this layer's close: extensions are, in any order of the layers (the
    /// registry drops them after every layer's `on_close`); ids your layer removes in its own
    /// `on_close` are there only when your layer is outside this one
    /// (`registry().with(metrics_layer).with(your_layer)`, whose `on_close` runs after this
    /// one's). `None`, or ids of which either is all zero, give no exemplar.
    ///
    /// [`TraceIds`]: crate::TraceIds
    /// [`ExemplarSource`]: crate::ExemplarSource
    /// [`LookupSpan::span`]: tracing_subscriber::registry::LookupSpan::span
    ///
    /// ```
    /// use tracing::span::{Attributes, Id};
    /// use tracing_spanmetrics::{Metric, SpanMetrics, Spans, TraceIds, exporter};
    /// use tracing_subscriber::layer::{Context, Layer};
    /// use tracing_subscriber::prelude::*;
    /// use tracing_subscriber::registry::{LookupSpan, Registry};
    ///
    /// /// Your own trace context: here, every span of one trace, numbered as tracing numbers it.
    /// struct MyContext;
    ///
    /// impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for MyContext {
    ///     fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
    ///         let ids = TraceIds { trace_id: [0xab; 16], span_id: id.into_u64().to_be_bytes() };
    ///         ctx.span(id).unwrap().extensions_mut().insert(ids);
    ///     }
    /// }
    ///
    /// let rules = SpanMetrics::builder()
    ///     .metric(Metric::counter("jobs").spans(Spans::named("job")).spans_closed());
    /// let (layer, exposition) = exporter::build_with_own_recorder(rules)?;
    /// let layer = layer.with_exemplar_source(|id: &Id, dispatch: &tracing::Dispatch| {
    ///     let registry = dispatch.downcast_ref::<Registry>()?;
    ///     registry.span(id)?.extensions().get::<TraceIds>().copied()
    /// });
    /// let subscriber = tracing_subscriber::registry().with(MyContext).with(layer);
    /// tracing::subscriber::with_default(subscriber, || tracing::info_span!("job").in_scope(|| {}));
    ///
    /// let text = exposition.render_openmetrics();
    /// assert!(text.contains(&format!("jobs_total 1 # {{trace_id=\"{}\"", "ab".repeat(16))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "exemplars")]
    #[must_use]
    pub fn with_exemplar_source(mut self, source: impl crate::ExemplarSource) -> Self {
        self.capture.set_source(Box::new(source));
        self
    }

    /// The exemplars the layer keeps (across reloads), to render with the exporter's text (see
    /// [`exporter::render_openmetrics`](crate::exporter::render_openmetrics)).
    #[cfg(feature = "exemplars")]
    pub fn exemplars(&self) -> crate::Exemplars {
        crate::Exemplars::new(self.shared.exemplars.clone())
    }

    /// Whether `dispatch` is the one this layer is part of. Answering "no" for its own would
    /// only cost the fallback (the dispatch remembered at registration, upgraded): speed, not
    /// results; answering "yes" for another is what
    /// `a_span_closed_under_another_default_dispatcher_keeps_its_exemplar` guards against.
    #[cfg(feature = "exemplars")]
    fn is_own(&self, dispatch: &tracing_core::Dispatch) -> bool {
        dispatch
            .downcast_ref::<SpanMetricsLayer>()
            .is_some_and(|l| std::ptr::eq(l, self))
    }

    /// Reads a span's OpenTelemetry context at its first enter, for the order where
    /// tracing-opentelemetry's close runs before this layer's (see `crate::exemplars`).
    #[cfg(feature = "opentelemetry")]
    fn capture_at_enter<S>(&self, span: &SpanRef<'_, S>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        let wanted = self.with_state(span, |st| {
            !st.exemplar.looked() && !st.plan.close_groups.is_empty()
        });
        if wanted != Some(true) {
            return;
        }
        let id = span.id();
        if let Some(found) = self.capture.read(&id, |d| self.is_own(d)) {
            self.with_state(span, |mut st| st.exemplar = found);
        }
    }

    /// Reads a span's ids at close: from the user's source, else from its OpenTelemetry
    /// context when tracing-opentelemetry still holds it (it is the outer layer), unless it was
    /// read at enter. Only spans with close-time rules are asked about.
    #[cfg(feature = "exemplars")]
    fn capture_at_close<S>(&self, span: &SpanRef<'_, S>) -> Option<crate::exemplars::SpanIds>
    where
        S: for<'a> LookupSpan<'a>,
    {
        if !self.capture.looking() {
            return None;
        }
        if self.capture.has_source() || !self.capture.only_at_close() {
            let ext = span.extensions();
            let st = self.state_of(&ext)?;
            if st.exemplar.looked() || st.plan.close_groups.is_empty() {
                return None;
            }
        }
        self.capture.read_at_close(&span.id(), |d| self.is_own(d))
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

    /// Whether lookups should look for the compact grade of state first. Only the order of
    /// the two lookups: a wrong answer costs a missed lookup, never a state (speed, not
    /// results).
    #[inline(always)]
    fn compact_first(&self) -> bool {
        !self.full_states.load(Ordering::Relaxed)
    }

    /// This layer's state of a span, of either grade, in its extensions.
    #[inline]
    fn state_of<'a>(
        &self,
        ext: &'a tracing_subscriber::registry::Extensions<'_>,
    ) -> Option<SpanState<'a>> {
        States::of_hinted(ext, self.id, self.compact_first())
    }

    /// Calls `f` with this layer's state of `span`, of either grade.
    fn with_state<S, R>(
        &self,
        span: &SpanRef<'_, S>,
        f: impl FnOnce(SpanStateMut<'_>) -> R,
    ) -> Option<R>
    where
        S: for<'a> LookupSpan<'a>,
    {
        States::with_mut(&mut span.extensions_mut(), self.id, self.compact_first(), f)
    }

    /// Calls `f` with the extras of this layer's state of `span`, if it is of the full grade
    /// (busy and children timing, milestones, held gauges: a compact state needs none).
    fn with_extras<S, R>(
        &self,
        span: &SpanRef<'_, S>,
        f: impl FnOnce(&Core, &mut Extras) -> R,
    ) -> Option<R>
    where
        S: for<'a> LookupSpan<'a>,
    {
        let mut ext = span.extensions_mut();
        let (core, extras) = States::extras_mut(&mut ext, self.id)?;
        Some(f(core, extras))
    }

    /// A span is entered, with busy time measured by some plan: its busy interval opens.
    /// Out of line, so that `on_enter` stays a single load for layers that time no busy span.
    #[inline(never)]
    fn busy_enter<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let now = self.clock.raw();
        self.with_extras(&span, |core, x| {
            if core.plan.needs_busy {
                x.busy.open(now)
            }
        });
    }

    /// A span is exited, with busy time measured by some plan: its busy interval closes.
    #[inline(never)]
    fn busy_exit<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let now = self.clock.raw();
        let Some(span) = ctx.span(id) else { return };
        self.with_extras(&span, |core, x| {
            if core.plan.needs_busy {
                x.busy.close(now, &self.clock)
            }
        });
    }

    /// Opening-time work for a new span's state (not yet stored, so no lock is held); returns
    /// the in-flight gauges it incremented, to be decremented at close.
    fn open<S>(
        &self,
        span: &SpanRef<'_, S>,
        state: &SpanState<'_>,
        ctx: &Context<'_, S>,
    ) -> SmallVec<[(usize, metrics::Gauge); 2]>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let plan = &state.core.plan;
        let mut held: SmallVec<[(usize, metrics::Gauge); 2]> = SmallVec::new();
        let model = &plan.model;
        let meta = span.metadata();
        let subject = Subject::span(meta, &state.values, Outcome::Unset);
        let chain = RegistryLookup {
            locals: [Some(&state.values), None],
            below: Some(span),
            held: Some(state),
            ctx,
            layer: self.id,
        };
        for applied in &plan.on_open {
            let rule = &model.rules[applied.rule];
            match rule.measure {
                Measure::SpansOpened => record_rule(
                    model,
                    rule,
                    Some(&applied.own_slots),
                    &subject,
                    &chain,
                    Op::Add(1),
                ),
                Measure::InFlight => {
                    if let Some(g) =
                        gauge_for(model, rule, Some(&applied.own_slots), &subject, &chain)
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
                if let Some(g) = gauge_for(model, rule, Some(&applied.own_slots), &subject, &chain)
                {
                    held.push((applied.rule, g));
                }
            }
        }
        for (applied, slot) in &plan.field_gauges {
            let value = state.values.get(*slot as usize);
            record_numeric(model, applied, value, &subject, &chain);
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
    /// In-flight gauges the span holds are decremented by the caller, after this.
    fn close<S>(&self, span: &SpanRef<'_, S>, state: &SpanState<'_>, now: u64, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        #[cfg(feature = "exemplars")]
        let exemplar = state
            .exemplar
            .ids()
            .map(|ids| (ids, self.capture.unix_nanos(&self.clock, now)));
        let plan = &state.core.plan;
        let model = &plan.model;
        let meta = span.metadata();
        let subject = Subject::span(meta, &state.values, state.outcome());
        let chain = RegistryLookup {
            locals: [Some(&state.values), None],
            below: Some(span),
            held: Some(state),
            ctx,
            layer: self.id,
        };
        let clock = &self.clock;
        let wall = clock.delta_as_nanos(state.start, now);
        let outcome = subject.outcome;
        for group in &plan.close_groups {
            let first = &plan.on_close[group.members[0]];
            let rule = &model.rules[first.rule];
            if !conditions_hold(rule, &subject, &chain) {
                continue;
            }
            let mut ops: ArrayVec<(usize, Op), MAX_GROUP> = ArrayVec::new();
            for &member in &group.members {
                let applied = &plan.on_close[member];
                let rule = &model.rules[applied.rule];
                // A duration, in the family's unit.
                let secs = |nanos: u64| Op::Observe(nanos as f64 * rule.per_nano);
                let op =
                    match &rule.measure {
                        Measure::WallTime => secs(wall),
                        // Plans that measure these keep the full grade, which has extras.
                        Measure::BusyTime => secs(busy_nanos(state.extras, now, clock)),
                        Measure::IdleTime => {
                            secs(wall.saturating_sub(busy_nanos(state.extras, now, clock)))
                        }
                        Measure::SelfTime => secs(wall.saturating_sub(
                            state.extras.map_or(0, |x| x.children.nanos(now, clock)),
                        )),
                        Measure::TimeToEvent(_) => {
                            let reached = plan
                                .milestones
                                .iter()
                                .position(|r| *r == applied.rule)
                                .and_then(|k| state.extras?.milestones.get(k).copied().flatten());
                            match reached {
                                Some(t) => secs(clock.delta_as_nanos(state.start, t)),
                                None => continue,
                            }
                        }
                        Measure::SpansClosed => Op::Add(1),
                        // The group's conditions hold (checked above).
                        Measure::SpanField(f) => {
                            match value_op(model, rule, state.values.by_name(f), || true) {
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
                        #[cfg(feature = "exemplars")]
                        if let Some((ids, at)) = exemplar {
                            for (series, (_, op)) in entry.exemplars.iter().zip(&ops) {
                                if let Some(series) = series {
                                    series.record(*op, ids, at);
                                }
                            }
                        }
                        entry.truncated
                    })
                });
                match hit {
                    Some(true) => model.health.truncated(recorder, 1),
                    Some(false) => {}
                    None => {
                        let key = Some((key, key_hash));
                        self.close_group_slow(
                            model,
                            group,
                            first,
                            &ops,
                            &subject,
                            &chain,
                            key,
                            #[cfg(feature = "exemplars")]
                            exemplar,
                        )
                    }
                }
                continue;
            }
            self.close_group_slow(
                model,
                group,
                first,
                &ops,
                &subject,
                &chain,
                None,
                #[cfg(feature = "exemplars")]
                exemplar,
            );
        }
    }

    /// A close group without a cache hit: resolves and hashes the labels of `first` (the
    /// group's first rule), records `ops` through the families and, given a cache key, caches
    /// the handles (unless one of them is an overflow series).
    #[allow(clippy::too_many_arguments)]
    fn close_group_slow(
        &self,
        model: &Ruleset,
        group: &CloseGroup,
        first: &Applied,
        ops: &[(usize, Op)],
        subject: &Subject<'_>,
        chain: &dyn Lookup,
        key: Option<(&[u8], u64)>,
        #[cfg(feature = "exemplars")] exemplar: Option<crate::exemplars::Stamped>,
    ) {
        let rule = &model.rules[first.rule];
        let mut buf = LabelBuf::new(model.settings.max_label_len);
        resolve(rule, Some(&first.own_slots), subject, chain, &mut buf);
        let truncated = buf.take_truncated();
        let recorder = &model.settings.recorder;
        if truncated {
            model.health.truncated(recorder, 1);
        }
        let values = buf.values();
        let hash = hash_labels(&values);
        recorder.with(|r, id| {
            let mut handles: SmallVec<[Handle; 2]> = SmallVec::new();
            #[cfg(feature = "exemplars")]
            let mut exemplars = SmallVec::new();
            let mut cacheable = key.is_some();
            for &(family, op) in ops {
                let family = &model.families[family];
                #[cfg_attr(not(feature = "exemplars"), allow(unused_variables))]
                let overflow = family.with_handle_on(r, id, &values, hash, |h, overflow| {
                    h.apply(op);
                    if overflow {
                        cacheable = false;
                    } else if cacheable {
                        handles.push(h.clone());
                    }
                    overflow
                });
                // An overflow series carries no exemplar (its labels are not the span's).
                #[cfg(feature = "exemplars")]
                if !overflow && self.capture.enabled && (cacheable || exemplar.is_some()) {
                    let series = family
                        .exemplars
                        .as_ref()
                        .and_then(|f| f.series(&values, hash));
                    if let (Some((ids, at)), Some(series)) = (exemplar, &series) {
                        series.record(op, ids, at);
                    }
                    exemplars.push(series);
                }
            }
            if let (true, Some((key, key_hash))) = (cacheable, key) {
                group.cache.insert(
                    id,
                    key,
                    key_hash,
                    handles,
                    truncated,
                    #[cfg(feature = "exemplars")]
                    exemplars,
                );
            }
        });
    }

    /// Reacts to newly recorded fields: gated in-flight gauges and field gauges.
    fn apply_recorded<S>(
        &self,
        span: &SpanRef<'_, S>,
        plan: &SpanPlan,
        own: &Values<'_>,
        outcome: Outcome,
        seen: u64,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let model = &plan.model;
        let meta = span.metadata();
        let subject = Subject::span(meta, own, outcome);
        let chain = RegistryLookup {
            locals: [Some(own), None],
            below: Some(span),
            held: None,
            ctx,
            layer: self.id,
        };
        for (applied, slot) in &plan.field_gauges {
            if seen & (1 << slot) != 0 {
                record_numeric(model, applied, own.get(*slot as usize), &subject, &chain);
            }
        }
        for (applied, slot) in &plan.gated {
            if seen & (1 << slot) == 0 {
                continue;
            }
            let rule = &model.rules[applied.rule];
            let already = self
                .with_state(span, |st| st.as_ref().holds(applied.rule))
                .unwrap_or(true);
            if already {
                continue;
            }
            let Some(g) = gauge_for(model, rule, Some(&applied.own_slots), &subject, &chain) else {
                continue;
            };
            // Plans with gated gauges keep the full grade, which holds them.
            let took = self
                .with_extras(span, |_, x| {
                    if x.held.iter().any(|(r, _)| *r == applied.rule) {
                        false
                    } else {
                        x.held.push((applied.rule, g.clone()));
                        true
                    }
                })
                .unwrap_or(false);
            if took {
                g.increment(1.0);
            }
        }
    }
}

impl<S> Layer<S> for SpanMetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[cfg(feature = "exemplars")]
    fn on_register_dispatch(&self, dispatch: &tracing_core::Dispatch) {
        self.capture.register(dispatch);
    }

    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.shared.current.load().prepare(meta);
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let now = self.clock.raw();
        if self.shared.children_possible.load(Ordering::Relaxed) {
            if let Some(parent) = span.parent() {
                self.with_extras(&parent, |core, x| {
                    if core.plan.needs_children {
                        x.children.open(now)
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
        let compact = States::insert(&mut ext, self.id, plan, now);
        if !compact && self.compact_first() {
            self.full_states.store(true, Ordering::Relaxed);
        }
        States::with_mut(&mut ext, self.id, compact, |mut state| {
            let plan = &*state.core.plan;
            // A callsite with no field any rule reads (RED mode without `otel.*` fields, say)
            // is not visited at all.
            if !plan.slot_names.is_empty() && state.values.record(plan, attrs) {
                let model = &plan.model;
                model.health.truncated(&model.settings.recorder, 1);
            }
            if plan.opens() {
                let held = self.open(&span, &state.as_ref(), &ctx);
                match state.extras.as_mut() {
                    Some(x) => x.held = held,
                    None => debug_assert!(
                        held.is_empty(),
                        "a compact state for a plan that holds gauges: this is a bug"
                    ),
                }
            }
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(plan) = self.state_of(&span.extensions()).map(|st| st.plan.clone()) else {
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
        let apply_recorded = self
            .with_state(&span, |mut st| {
                st.merge(&fresh, seen);
                let st = st.as_ref();
                (seen & plan.reactive != 0).then(|| (st.values_owned(), st.outcome()))
            })
            .flatten();
        if let Some((own, outcome)) = apply_recorded {
            self.apply_recorded(&span, &plan, &own.view(), outcome, seen, &ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        #[cfg(feature = "opentelemetry")]
        if self.capture.at_enter() {
            if let Some(span) = ctx.span(id) {
                self.capture_at_enter(&span);
            }
        }
        // Most layers time no busy span: they pay this one load.
        if self.shared.busy_possible.load(Ordering::Relaxed) {
            self.busy_enter(id, &ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if self.shared.busy_possible.load(Ordering::Relaxed) {
            self.busy_exit(id, &ctx);
        }
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
                self.with_extras(&parent, |core, x| {
                    if core.plan.needs_children {
                        x.children.close(now, &self.clock)
                    }
                });
            }
        }
        // Read without holding the span's extensions (tracing-opentelemetry locks them).
        #[cfg(feature = "exemplars")]
        let found = self.capture_at_close(&span);
        // The state stays where it is; the registry drops it with the span's extensions.
        self.with_state(&span, |#[allow(unused_mut)] mut st| {
            #[cfg(feature = "exemplars")]
            if let Some(found) = found {
                st.exemplar = found;
            }
            self.close(&span, &st.as_ref(), now, &ctx);
            // After the span's rules recorded.
            if let Some(x) = st.extras.as_mut().filter(|x| !x.held.is_empty()) {
                for (_, gauge) in std::mem::take(&mut x.held) {
                    gauge.decrement(1.0);
                }
            }
        });
    }
}

/// Busy nanoseconds of a span's state (none for a compact state, whose plan measures no busy
/// time).
#[inline]
fn busy_nanos(extras: Option<&Extras>, now: u64, clock: &quanta::Clock) -> u64 {
    extras.map_or(0, |x| x.busy.nanos(now, clock))
}
