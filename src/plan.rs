//! Plans: the rules compiled once per callsite.
//!
//! A validated configuration becomes a [`Ruleset`] (its rules and metric families). For each span
//! or event callsite the layer meets, the model is compiled into a plan: which rules apply, which
//! of the callsite's fields are worth capturing (field index → slot), and what happens on which
//! hook. The per-span work is then a few table lookups, with no string comparison against rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hashbrown::HashMap;
use smallvec::SmallVec;
use thread_local::ThreadLocal;
use tracing_core::field::FieldSet;
use tracing_core::{Level, Metadata, callsite::Identifier};

use crate::config::{
    LabelSource, Measure, MetricKind, OTEL_KIND, OTEL_NAME, OTEL_STATUS, OTEL_STATUS_DESCRIPTION,
};
use crate::instruments::GroupCache;
use crate::ruleset::{Rule, Ruleset};
use crate::values::{COMPACT_SLOTS, FieldValues};

/// The most rules in one close group (a larger set of rules sharing labels makes several).
pub(crate) const MAX_GROUP: usize = 16;
/// Links to ancestors that a span of the compact grade of state keeps (see `crate::state`): a
/// configuration that inherits more fields gives its spans the full grade.
pub(crate) const COMPACT_LINKS: usize = 3;
/// Fields are captured only below this index (slots and captured field indices are tracked in
/// 64-bit sets), so a plan captures at most this many fields per callsite.
pub(crate) const MAX_SLOTS: usize = 64;

/// A rule as applied at one span callsite: the slot of each label's field on this callsite.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) rule: usize,
    pub(crate) own_slots: SmallVec<[Option<u8>; 8]>,
}

/// What a close group's cache key is made of: for each label that is not constant on the
/// callsite, where its value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyPart {
    /// The value in this slot. When it is unset and `inherit` names a label (by index) that
    /// inherits, the value is the one that label finds in the ancestors.
    Slot { slot: u8, inherit: Option<u8> },
    /// A field this callsite does not declare: the value the label (by index) finds in the
    /// ancestors.
    Inherited { label: u8 },
    /// The span's outcome.
    Outcome,
}

/// Rules applied at close that share labels and conditions.
#[derive(Debug)]
pub(crate) struct CloseGroup {
    /// Indices into `on_close`.
    pub(crate) members: SmallVec<[usize; 4]>,
    /// How to key the group's cache (`None` for a rule with more labels than a key can name).
    pub(crate) key: Option<SmallVec<[KeyPart; 8]>>,
    /// Handles by key, for spans whose every rule of the group records.
    pub(crate) cache: GroupCache,
}

/// The key spec of a group whose first rule is `rule`, applied with `own_slots` on a callsite
/// capturing `names`. Mirrors what [`crate::labels::resolve`] reads for each label source.
fn key_spec(
    rule: &Rule,
    own_slots: &[Option<u8>],
    names: &[&'static str],
) -> Option<SmallVec<[KeyPart; 8]>> {
    let mut parts = SmallVec::new();
    for (i, label) in rule.labels.iter().enumerate() {
        let index = u8::try_from(i).ok()?;
        let part = match &label.source {
            LabelSource::Fixed(_) | LabelSource::Target => None,
            LabelSource::SpanName => slot_of(names, OTEL_NAME).map(|slot| KeyPart::Slot {
                slot,
                inherit: None,
            }),
            LabelSource::SpanKind => slot_of(names, OTEL_KIND).map(|slot| KeyPart::Slot {
                slot,
                inherit: None,
            }),
            LabelSource::Outcome(_) => Some(KeyPart::Outcome),
            LabelSource::Field(_) => {
                let inherit = label.inherit.then_some(index);
                match own_slots.get(i).copied().flatten() {
                    Some(slot) => Some(KeyPart::Slot { slot, inherit }),
                    None if label.inherit => Some(KeyPart::Inherited { label: index }),
                    // Never declared here, never inherited: always missing. (Looking it up
                    // in the ancestors anyway would only split the shortcut's keys by values
                    // the label never reads: speed, not results.)
                    None => None,
                }
            }
        };
        parts.extend(part);
    }
    Some(parts)
}

/// What to do for spans of one callsite.
#[derive(Debug)]
pub(crate) struct SpanPlan {
    pub(crate) model: Arc<Ruleset>,
    /// Field index → slot.
    pub(crate) slot_for: Vec<Option<u8>>,
    /// Slot → field name.
    pub(crate) slot_names: Vec<&'static str>,
    /// The captured field indices (a bit set), and the callsite's fields (where captured
    /// values find their names).
    pub(crate) slot_fields: u64,
    pub(crate) fields: &'static FieldSet,
    /// Counters of opened spans, in-flight gauges and span-field gauges: at creation.
    pub(crate) on_open: Vec<Applied>,
    /// Durations, closed counters and span-field histograms and counters: at close.
    pub(crate) on_close: Vec<Applied>,
    /// `on_close` rules grouped by the same labels and conditions (resolved once per group).
    pub(crate) close_groups: Vec<CloseGroup>,
    /// In-flight gauges that start counting when a field is recorded: (rule, gating slot).
    pub(crate) gated: Vec<(Applied, u8)>,
    /// Gauges set from a span field: (rule, slot), applied at creation and on every record.
    pub(crate) field_gauges: Vec<(Applied, u8)>,
    /// Slots whose recording triggers `gated` or `field_gauges`.
    pub(crate) reactive: u64,
    /// Milestone rules, by position in the span state's milestone array.
    pub(crate) milestones: Vec<usize>,
    /// Event rules whose span selector picks this callsite as anchor.
    pub(crate) anchors: Vec<usize>,
    pub(crate) needs_busy: bool,
    pub(crate) needs_children: bool,
    /// Whether the callsite declares `otel.status_code` or `otel.status_description`.
    pub(crate) has_status_fields: bool,
    /// Whether spans of this callsite keep state at all.
    pub(crate) needs_state: bool,
    /// Whether spans of this callsite get the compact grade of state (see `crate::state`): set
    /// when the plan needs nothing beyond it, cleared for good once a span's values spilled
    /// out of its inline room.
    compact: AtomicBool,
}

/// What to do for events of one callsite.
#[derive(Debug)]
pub(crate) struct EventPlan {
    pub(crate) model: Arc<Ruleset>,
    pub(crate) slot_for: Vec<Option<u8>>,
    pub(crate) slot_names: Vec<&'static str>,
    pub(crate) slot_fields: u64,
    pub(crate) fields: &'static FieldSet,
    /// The slot of the `message` field, if captured (only when a rule reads the message as a
    /// value, or it cannot be compared as it is handed over: see `message_field`).
    pub(crate) message_slot: Option<u8>,
    /// The index of the `message` field, when it is compared with `message_texts` as tracing
    /// hands it over instead of being captured.
    pub(crate) message_field: Option<usize>,
    /// The distinct texts that the event and milestone rules ask the message to equal.
    pub(crate) message_texts: Vec<Box<str>>,
    /// The event marks its span as failed (ERROR level, or an `error` field).
    pub(crate) is_error: bool,
    /// Event rules whose static criteria match, each with the position of its message text
    /// in `message_texts` (if it asks for one).
    pub(crate) rules: Vec<(usize, Option<usize>)>,
    /// Milestone rules whose static criteria match, with their message text as for `rules`.
    pub(crate) milestones: Vec<(usize, Option<usize>)>,
}

impl SpanPlan {
    /// Whether a new span of this callsite gets the compact grade of state.
    #[inline(always)]
    pub(crate) fn compact(&self) -> bool {
        self.compact.load(Ordering::Relaxed)
    }

    /// A span of the compact grade spilled its values to the heap: later spans of this
    /// callsite get the full grade, whose inline room is larger (so a callsite whose values do
    /// not fit the compact room costs one spill, not one per span).
    #[cold]
    pub(crate) fn compact_spilled(&self) {
        self.compact.store(false, Ordering::Relaxed);
    }

    /// Whether spans of this callsite have work to do at creation. Only a speed matter:
    /// opening a span with nothing to do does nothing.
    pub(crate) fn opens(&self) -> bool {
        !(self.on_open.is_empty() && self.gated.is_empty() && self.field_gauges.is_empty())
    }

    /// Empty captured values for a span of this callsite.
    #[inline]
    pub(crate) fn values(&self) -> FieldValues {
        FieldValues::new(
            self.fields,
            self.slot_fields,
            self.model.settings.max_label_len,
        )
    }
}

impl EventPlan {
    /// The event's captured `message`, if it was captured and recorded.
    #[inline]
    pub(crate) fn message<'a>(&self, values: &'a FieldValues) -> Option<crate::values::Value<'a>> {
        values.get(self.message_slot? as usize)
    }

    /// Whether an event's message says the text at position `text` of `message_texts` (`None`:
    /// no text asked for). `heard`: the texts the message equals, when it is compared as handed
    /// over (`message_field`); otherwise it is read from the captured `values`.
    #[inline(always)]
    pub(crate) fn says(
        &self,
        text: Option<usize>,
        values: Option<&FieldValues>,
        heard: u64,
    ) -> bool {
        let Some(t) = text else { return true };
        if self.message_field.is_some() {
            return heard >> t & 1 != 0;
        }
        values
            .and_then(|v| self.message(v))
            .is_some_and(|m| m.text_eq(&self.message_texts[t]))
    }

    /// Empty captured values for an event of this callsite.
    pub(crate) fn values(&self, bound: usize) -> FieldValues {
        FieldValues::new(self.fields, self.slot_fields, bound)
    }

    pub(crate) fn is_relevant(&self) -> bool {
        self.is_error || !self.rules.is_empty() || !self.milestones.is_empty()
    }
}

/// The slots of the fields `wanted` among `meta`'s: field index → slot, slot → name, and the
/// set of captured field indices (slots follow field order, so a field's slot is the number of
/// captured fields before it).
type Slots = (Vec<Option<u8>>, Vec<&'static str>, u64);

fn slots_for(meta: &'static Metadata<'static>, wanted: impl Fn(&str) -> bool) -> Slots {
    let mut slot_for = Vec::with_capacity(meta.fields().len());
    let mut names = Vec::new();
    let mut indices = 0u64;
    for field in meta.fields().iter() {
        let name = field.name();
        // Tracing's macros declare at most 32 fields; a hand-made field set may have more.
        if field.index() < MAX_SLOTS && wanted(name) {
            slot_for.push(Some(names.len() as u8));
            names.push(name);
            indices |= 1 << field.index();
        } else {
            slot_for.push(None);
        }
    }
    (slot_for, names, indices)
}

fn apply(model: &Ruleset, rule: usize, names: &[&'static str]) -> Applied {
    let own_slots = model.rules[rule]
        .labels
        .iter()
        .map(|l| {
            l.field_name()
                .and_then(|f| names.iter().position(|n| *n == f))
                .map(|p| p as u8)
        })
        .collect();
    Applied { rule, own_slots }
}

fn slot_of(names: &[&'static str], field: &str) -> Option<u8> {
    names.iter().position(|n| *n == field).map(|p| p as u8)
}

impl SpanPlan {
    pub(crate) fn compile(model: &Arc<Ruleset>, meta: &'static Metadata<'static>) -> SpanPlan {
        let (slot_for, slot_names, slot_fields) = slots_for(meta, |name| {
            matches!(
                name,
                OTEL_NAME | OTEL_KIND | OTEL_STATUS | OTEL_STATUS_DESCRIPTION
            ) || model.span_fields.contains(name)
        });
        let mut plan = SpanPlan {
            model: model.clone(),
            slot_for,
            slot_fields,
            fields: meta.fields(),
            on_open: Vec::new(),
            on_close: Vec::new(),
            close_groups: Vec::new(),
            gated: Vec::new(),
            field_gauges: Vec::new(),
            reactive: 0,
            milestones: Vec::new(),
            anchors: Vec::new(),
            needs_busy: false,
            needs_children: false,
            has_status_fields: false,
            needs_state: false,
            compact: AtomicBool::new(false),
            slot_names,
        };
        for (i, rule) in model.rules.iter().enumerate() {
            if !rule.selects(meta) {
                continue;
            }
            let applied = apply(model, i, &plan.slot_names);
            let kind = model.families[rule.family].kind;
            match &rule.measure {
                Measure::SpansOpened | Measure::InFlight => plan.on_open.push(applied),
                Measure::InFlightAfter(f) => {
                    // A field this callsite does not declare can never be recorded on it
                    // (tracing drops undeclared fields), so the rule cannot fire here.
                    if let Some(slot) = slot_of(&plan.slot_names, f) {
                        plan.reactive |= 1 << slot;
                        plan.gated.push((applied, slot));
                    }
                }
                Measure::SpanField(f) if kind == MetricKind::Gauge => {
                    if let Some(slot) = slot_of(&plan.slot_names, f) {
                        plan.reactive |= 1 << slot;
                        plan.field_gauges.push((applied, slot));
                    }
                }
                Measure::Events(_) | Measure::EventField(..) => plan.anchors.push(i),
                Measure::TimeToEvent(_) => {
                    plan.milestones.push(i);
                    plan.on_close.push(applied);
                }
                Measure::BusyTime | Measure::IdleTime => {
                    plan.needs_busy = true;
                    plan.on_close.push(applied);
                }
                Measure::SelfTime => {
                    plan.needs_children = true;
                    plan.on_close.push(applied);
                }
                _ => plan.on_close.push(applied),
            }
        }
        plan.has_status_fields = plan
            .slot_names
            .iter()
            .any(|n| matches!(*n, OTEL_STATUS | OTEL_STATUS_DESCRIPTION));
        for (i, applied) in plan.on_close.iter().enumerate() {
            let rule = &model.rules[applied.rule];
            let same = |g: &SmallVec<[usize; 4]>| {
                let other = &model.rules[plan.on_close[g[0]].rule];
                other.labels == rule.labels && other.conditions == rule.conditions
            };
            // Grouping is a speed matter (each member records as it would alone) up to
            // `MAX_GROUP`, which bounds the ops recorded together at close: a group is never
            // larger (`seventeen_rules_with_the_same_labels_all_record`).
            let open_group = |g: &&mut CloseGroup| g.members.len() < MAX_GROUP && same(&g.members);
            match plan.close_groups.iter_mut().find(open_group) {
                Some(g) => g.members.push(i),
                None => plan.close_groups.push(CloseGroup {
                    members: smallvec::smallvec![i],
                    key: key_spec(rule, &applied.own_slots, &plan.slot_names),
                    cache: GroupCache::new(0),
                }),
            }
        }
        for g in &mut plan.close_groups {
            let cap = g.members.iter().map(|&m| {
                let rule = &model.rules[plan.on_close[m].rule];
                model.families[rule.family].limit
            });
            g.cache = GroupCache::new(cap.min().unwrap_or(0));
        }
        // Gated and field gauges read a captured field, so `slot_names` covers them. An anchor
        // only saves its events a check of the span's metadata (the answer is the same).
        debug_assert!(
            plan.gated.is_empty() && plan.field_gauges.is_empty() || !plan.slot_names.is_empty(),
            "gauges that read a field in a plan that captures none: this is a bug"
        );
        plan.needs_state = !plan.slot_names.is_empty()
            || !plan.on_open.is_empty()
            || !plan.on_close.is_empty()
            || !plan.anchors.is_empty();
        // No milestones, busy or children timing, held gauges or links to ancestors, and few
        // enough captured fields for the compact values.
        let holds_gauges = !plan.gated.is_empty()
            || plan
                .on_open
                .iter()
                .any(|a| model.rules[a.rule].measure == Measure::InFlight);
        plan.compact = AtomicBool::new(
            plan.milestones.is_empty()
                && !plan.needs_busy
                && !plan.needs_children
                && !holds_gauges
                && model.inherited.len() <= COMPACT_LINKS
                && plan.slot_names.len() <= COMPACT_SLOTS,
        );
        plan
    }
}

impl EventPlan {
    pub(crate) fn compile(model: &Arc<Ruleset>, meta: &'static Metadata<'static>) -> EventPlan {
        let is_error = *meta.level() == Level::ERROR || meta.fields().field("error").is_some();
        let mut rules = Vec::new();
        let mut milestones = Vec::new();
        let mut wanted: Vec<&str> = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        for (i, rule) in model.rules.iter().enumerate() {
            let Some(m) = rule.event_match() else {
                continue;
            };
            if !m.matches_callsite(meta) {
                continue;
            }
            let text = m
                .message
                .as_deref()
                .map(|t| match texts.iter().position(|x| *x == t) {
                    Some(p) => p,
                    None => {
                        texts.push(t);
                        texts.len() - 1
                    }
                });
            if let Measure::TimeToEvent(_) = rule.measure {
                milestones.push((i, text));
            } else {
                rules.push((i, text));
                wanted.extend(rule.fields());
            }
        }
        // The message is compared as it is handed over, unless a rule reads it as a value,
        // there are more texts than a 64-bit set holds, or it lies beyond the fields that are
        // ever captured (then it never matched, and still does not).
        let message_field = meta
            .fields()
            .field("message")
            .map(|f| f.index())
            .filter(|&i| {
                !texts.is_empty()
                    && texts.len() <= 64
                    && i < MAX_SLOTS
                    && !wanted.contains(&"message")
            });
        if message_field.is_none() && !texts.is_empty() {
            wanted.push("message");
        }
        let (slot_for, slot_names, slot_fields) = slots_for(meta, |name| wanted.contains(&name));
        EventPlan {
            message_slot: slot_of(&slot_names, "message"),
            message_field,
            message_texts: texts.into_iter().map(Box::from).collect(),
            model: model.clone(),
            slot_for,
            slot_names,
            slot_fields,
            fields: meta.fields(),
            is_error,
            rules,
            milestones,
        }
    }
}

/// A model with its plan caches: one generation of the configuration.
pub(crate) struct Plans {
    pub(crate) model: Arc<Ruleset>,
    spans: ArcSwap<HashMap<Identifier, Arc<SharedPlan<SpanPlan>>>>,
    events: ArcSwap<HashMap<Identifier, Arc<SharedPlan<EventPlan>>>>,
    writer: Mutex<()>,
}

/// A plan as one thread holds it.
///
/// Spans keep their plan alive until they close, and events hold theirs while they are
/// handled. Were that a reference to the plan itself, every span on every thread would write
/// the plan's one reference count twice: a cache line all threads fight over. Instead each
/// thread gets its own holder of the plan, and spans and events count their references on it.
/// Holders are aligned to 128 bytes (two cache lines, as adjacent-line prefetchers fetch
/// them), so two threads' counts never share a line however the allocator places them.
#[repr(align(128))]
pub(crate) struct ThreadPlan<P>(Arc<P>);

impl<P> std::ops::Deref for ThreadPlan<P> {
    type Target = P;

    #[inline]
    fn deref(&self) -> &P {
        &self.0
    }
}

/// A compiled plan and its per-thread holders, which live as long as the configuration (they
/// are dropped with it; open spans keep theirs, and so the plan, until they close).
struct SharedPlan<P: Send + Sync> {
    plan: Arc<P>,
    locals: ThreadLocal<Arc<ThreadPlan<P>>>,
}

impl<P: Send + Sync> SharedPlan<P> {
    fn new(plan: P) -> Self {
        SharedPlan {
            plan: Arc::new(plan),
            locals: ThreadLocal::new(),
        }
    }

    /// The calling thread's holder (made on the thread's first use).
    fn local(&self) -> Arc<ThreadPlan<P>> {
        self.locals
            .get_or(|| Arc::new(ThreadPlan(self.plan.clone())))
            .clone()
    }
}

impl Plans {
    pub(crate) fn new(model: Ruleset) -> Self {
        Plans {
            model: Arc::new(model),
            spans: ArcSwap::from_pointee(HashMap::new()),
            events: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    /// Compiles the plan of a callsite now (so its first span or event does not pay for it).
    /// Only a speed matter: a plan not prepared is compiled on first use.
    pub(crate) fn prepare(&self, meta: &'static Metadata<'static>) {
        if meta.is_span() {
            self.planned_span(meta);
        } else {
            self.planned_event(meta);
        }
    }

    /// The plan for a span callsite (compiled on first use), as the calling thread holds it;
    /// `None` if spans of it need no state (no rule applies). Threads only get holders of the
    /// plans they use.
    pub(crate) fn span_plan(
        &self,
        meta: &'static Metadata<'static>,
    ) -> Option<Arc<ThreadPlan<SpanPlan>>> {
        let planned = self.planned_span(meta);
        planned.plan.needs_state.then(|| planned.local())
    }

    /// The plan for an event callsite (compiled on first use), as the calling thread holds it;
    /// `None` if events of it have no work to do, unless `always`.
    pub(crate) fn event_plan(
        &self,
        meta: &'static Metadata<'static>,
        always: bool,
    ) -> Option<Arc<ThreadPlan<EventPlan>>> {
        let planned = self.planned_event(meta);
        (always || planned.plan.is_relevant()).then(|| planned.local())
    }

    /// How many per-thread holders of plans exist.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        fn count<P: Send + Sync>(map: &ArcSwap<HashMap<Identifier, Arc<SharedPlan<P>>>>) -> usize {
            map.load().values().map(|p| p.locals.iter().count()).sum()
        }
        count(&self.spans) + count(&self.events)
    }

    fn planned_span(&self, meta: &'static Metadata<'static>) -> Arc<SharedPlan<SpanPlan>> {
        self.planned(&self.spans, meta, SpanPlan::compile)
    }

    fn planned_event(&self, meta: &'static Metadata<'static>) -> Arc<SharedPlan<EventPlan>> {
        self.planned(&self.events, meta, EventPlan::compile)
    }

    /// The plan of `meta` in `map`, compiled on first use.
    fn planned<P: Send + Sync>(
        &self,
        map: &ArcSwap<HashMap<Identifier, Arc<SharedPlan<P>>>>,
        meta: &'static Metadata<'static>,
        compile: fn(&Arc<Ruleset>, &'static Metadata<'static>) -> P,
    ) -> Arc<SharedPlan<P>> {
        let id = meta.callsite();
        if let Some(p) = map.load().get(&id) {
            return p.clone();
        }
        self.insert(map, id, || compile(&self.model, meta))
    }

    /// Publishes a plan; callsites are few and registered once, so copying the map is cheap.
    #[cold]
    fn insert<P: Send + Sync>(
        &self,
        map: &ArcSwap<HashMap<Identifier, Arc<SharedPlan<P>>>>,
        id: Identifier,
        compile: impl FnOnce() -> P,
    ) -> Arc<SharedPlan<P>> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = map.load_full();
        if let Some(p) = current.get(&id) {
            return p.clone();
        }
        let plan = Arc::new(SharedPlan::new(compile()));
        let mut next = (*current).clone();
        next.insert(id, plan.clone());
        map.store(Arc::new(next));
        plan
    }
}

impl Plans {
    /// Fields that rules read (labels, conditions, measured fields) but that no span or event
    /// callsite met so far declares, as `(metric, field)`.
    pub(crate) fn unseen_fields(&self) -> Vec<(String, String)> {
        let spans = self.spans.load();
        let events = self.events.load();
        let declared = |field: &str| {
            spans.values().any(|p| p.plan.slot_names.contains(&field))
                || events.values().any(|p| p.plan.slot_names.contains(&field))
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for rule in &self.model.rules {
            let metric = &self.model.family(rule).name;
            for field in rule.fields() {
                let entry = (metric.clone(), field.to_owned());
                if !declared(field) && !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EventMatch, Metric};

    /// An event callsite with fields `message` and `status`.
    fn event_site() -> &'static Metadata<'static> {
        crate::values::test_callsite!(EVENT, ["message", "status"])
    }

    fn model(builder: &crate::SpanMetricsBuilder) -> Arc<Ruleset> {
        Arc::new(crate::ruleset::compile(builder, None).unwrap())
    }

    fn plan(builder: crate::SpanMetricsBuilder) -> EventPlan {
        EventPlan::compile(&model(&builder), event_site())
    }

    #[test]
    fn a_message_only_compared_is_not_captured() {
        let p = plan(
            crate::SpanMetrics::builder()
                .metric(Metric::histogram("ttfb").time_to(EventMatch::message("a")))
                .metric(Metric::counter("bs").events(EventMatch::message("b")))
                .metric(Metric::counter("as").events(EventMatch::message("a")))
                .metric(Metric::counter("all").events(EventMatch::any())),
        );
        assert_eq!(p.message_field, Some(0));
        assert_eq!(p.message_texts, vec![Box::from("a"), Box::from("b")]);
        assert_eq!((p.slot_fields, p.message_slot), (0, None));
        assert_eq!(p.milestones, vec![(0, Some(0))]);
        assert_eq!(p.rules, vec![(1, Some(1)), (2, Some(0)), (3, None)]);
        assert!(p.says(Some(1), None, 0b10));
        assert!(!p.says(Some(0), None, 0b10));
        assert!(p.says(None, None, 0));
    }

    /// A hand-made callsite may declare more fields than a plan captures (64, a bit set):
    /// those beyond are never captured (a label from one reads as missing, a message there is
    /// never compared), and the others still are.
    #[test]
    fn fields_beyond_the_64th_are_never_captured() {
        let span = crate::values::test_callsite!(
            SPAN,
            [
                "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12",
                "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24",
                "f25", "f26", "f27", "f28", "f29", "f30", "f31", "f32", "f33", "f34", "f35", "f36",
                "f37", "f38", "f39", "f40", "f41", "f42", "f43", "f44", "f45", "f46", "f47", "f48",
                "f49", "f50", "f51", "f52", "f53", "f54", "f55", "f56", "f57", "f58", "f59", "f60",
                "f61", "f62", "f63", "f64"
            ]
        );
        let builder = crate::SpanMetrics::builder()
            .metric(Metric::counter("c").labels(["f63", "f64"]))
            .metric(Metric::counter("e").events(EventMatch::message("hello")));
        let model = model(&builder);
        let p = SpanPlan::compile(&model, span);
        assert_eq!(p.slot_names, vec!["f63"]);
        assert_eq!(p.slot_fields, 1 << 63);
        let event = crate::values::test_callsite!(
            EVENT,
            [
                "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12",
                "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22", "f23", "f24",
                "f25", "f26", "f27", "f28", "f29", "f30", "f31", "f32", "f33", "f34", "f35", "f36",
                "f37", "f38", "f39", "f40", "f41", "f42", "f43", "f44", "f45", "f46", "f47", "f48",
                "f49", "f50", "f51", "f52", "f53", "f54", "f55", "f56", "f57", "f58", "f59", "f60",
                "f61", "f62", "f63", "message"
            ]
        );
        let p = EventPlan::compile(&model, event);
        assert_eq!(p.message_field, None);
        assert_eq!((p.slot_fields, p.message_slot), (0, None));
    }

    /// More message texts than a 64-bit set holds: the message is captured, and compared from
    /// the capture.
    #[test]
    fn more_than_64_message_texts_are_compared_from_the_capture() {
        let mut builder = crate::SpanMetrics::builder();
        for i in 0..65 {
            builder = builder.metric(
                Metric::counter(format!("m{i}")).events(EventMatch::message(format!("text {i}"))),
            );
        }
        let p = plan(builder);
        assert_eq!(p.message_field, None);
        assert_eq!(p.message_texts.len(), 65);
        assert_eq!((p.slot_fields, p.message_slot), (0b01, Some(0)));
    }

    #[test]
    fn a_message_read_as_a_value_is_captured_and_compared_from_there() {
        let p = plan(
            crate::SpanMetrics::builder()
                .metric(Metric::histogram("ttfb").time_to(EventMatch::message("a")))
                .metric(
                    Metric::counter("by_message")
                        .events(EventMatch::any())
                        .label("message"),
                ),
        );
        assert_eq!(p.message_field, None);
        assert_eq!((p.slot_fields, p.message_slot), (0b01, Some(0)));
        assert_eq!(p.milestones, vec![(0, Some(0))]);
        // Without the message field among the captured values: no match.
        assert!(!p.says(Some(0), None, u64::MAX));
    }
}
