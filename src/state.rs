//! Per-span state: timers, captured fields, outcome, milestones, held gauges and links to
//! ancestors.
//!
//! A span that any rule cares about gets one state per layer, stored in the span's extensions
//! (the one allocation per span that tracing-subscriber's extensions force). Everything inside
//! is inline: captured text lives in a small arena, milestones and held gauges in small
//! vectors, links in a small array.
//!
//! ## Two grades, chosen by the plan
//! The box is the state's size whatever the span uses, so a span's plan (compiled once per
//! callsite, see `SpanPlan::compact`) picks one of two extension types:
//! - [`Compact`] (168 bytes on 64-bit targets, 192 with the `exemplars` feature): for plans with
//!   no milestones, no busy or children timing (busy, idle or self time), no in-flight gauge
//!   (held from open or gated on a field), at most `COMPACT_SLOTS` (3) captured fields, in a
//!   configuration that inherits at most `COMPACT_LINKS` (3) fields. It keeps the plan, start,
//!   error flag, captured values (3 slots, `COMPACT_TEXT` (48) bytes of text inline) and the
//!   links. Durations, counters and histograms of fields with up to three field labels (the
//!   benchmarks' `layer/rule`) get it.
//! - [`States`] (544 bytes, 568 with `exemplars`), the full grade: everything else, with six
//!   value slots, 160 bytes of text, four links, milestones, held gauges and busy and children
//!   timing inline (more spill to the heap); and the states of further layers of this crate in
//!   the same subscriber.
//!
//! Text beyond the compact room spills to the heap, as text beyond the full grade's does; the
//! callsite's later spans then get the full grade, so such a callsite pays one spill, not one
//! per span. A second layer of this crate on a span that already has a compact state stores its
//! own in a [`States`] (two extensions, as two layers' states made before). A third one goes
//! into that [`States`]' vector of further layers: three layers of this crate on one span then
//! cost three allocations (the compact box, the full box, the vector), one more than when the
//! first state is a full one. Nobody is expected to stack three; it is stated, not optimised.
//!
//! Code that reads a state sees one view of either grade, [`SpanState`] (and [`SpanStateMut`]
//! to change it): the parts both grades keep ([`Core`]), the captured values, and the
//! [`Extras`] of the full grade when there are any. Registry extensions are keyed by type, so a
//! lookup tries one type and then the other: the compact one first, except where only the full
//! one can matter (timing, milestones, held gauges: [`States::extras_mut`]) and right after the
//! state was stored (its grade is known).
//!
//! ## Inherited fields
//! A label that inherits reads the nearest ancestor that has recorded its field. Walking every
//! ancestor for it costs the depth of the tree at every span, so the depth squared over a deep
//! tree. Instead, [`inherited`] follows links: a field can only be recorded on a span whose
//! callsite declares it (tracing drops undeclared fields), and which spans capture which fields
//! is fixed when they are created, so the nearest ancestor that *captures* a field never
//! changes. Each span's [`Links`] remember it per field the configuration inherits, found on
//! first use by walking up to the first ancestor that captures the field or already knows its
//! own link, and written on every span that walk passed; values are then read at the link
//! (still the nearest ancestor that *recorded* the field: `Span::record` on an ancestor is seen
//! by a child that looks later).
//!
//! A span's first lookup visits its first ancestor, as a plain walk would, and usually finds
//! every field there: a link to a span's first ancestor is never written (finding it again
//! costs the one visit that following it would), so the usual child of a span with the fields
//! writes no link at all.
//!
//! Bounds, in ancestor visits (each an extensions lock), for a tree of n spans:
//! - links: a span's link for a field is written once, by the first lookup that needs it (the
//!   span's own, or a descendant's walking past it). A walk stops at the first ancestor with
//!   this layer's state that captures the field or already knows its link, then links the
//!   stateful spans it passed: each of those is passed once per field, so O(n) per field in
//!   all (plus, per lookup, at most one visit made twice: see `first_ancestor`). The spans in between that keep no state of this layer (no rule selects them, no field
//!   is read from them) keep no links either: links there would cost each of them an
//!   allocation. So each walk also crosses, twice, the run of such spans above each stateful
//!   span it starts from or passes: O(n) in all, unless many stateful spans hang at different
//!   depths below one long run of stateless spans (then up to that run's length per stateful
//!   span). Spans that a per-layer filter hides from the layer are skipped the same way (by
//!   tracing-subscriber, one registry lookup each), and so are spans of a replaced
//!   configuration that did not inherit the field (they have no link for it);
//! - a lookup: one visit per ancestor that captures the field and has not recorded it, up to
//!   the first one that has. Usually that is the first, so a lookup is O(1) once links are
//!   known. The one case where a lookup still visits many ancestors: every level of a deep tree
//!   declares the field and none records it (`field = Empty`, never set): O(depth) per lookup,
//!   O(n × depth) in all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use metrics::Gauge;
use smallvec::SmallVec;
use tracing_core::Subscriber;
use tracing_core::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{Extensions, ExtensionsMut, LookupSpan, SpanRef};

use crate::config::{OTEL_STATUS, OTEL_STATUS_DESCRIPTION};
use crate::plan::{COMPACT_LINKS, SpanPlan, ThreadPlan};
#[cfg(test)]
use crate::values::COMPACT_TEXT;
use crate::values::{CompactValues, FieldValues, Value, Values, ones};

/// Inline number of links (fields the configuration inherits). A configuration that inherits
/// more fields costs each span with state one more allocation (as more than `SLOTS_INLINE`
/// captured fields do).
const LINKS_INLINE: usize = 4;

/// The full grade's extension: the states of every `SpanMetricsLayer` in the subscriber that
/// keeps a full state for the span (and of a layer whose compact state could not be stored
/// because another layer's already was), keyed by layer id, so two layers never trip over each
/// other. The usual single layer's state is inline, so a new span's state is written once,
/// straight into the extension's box.
pub(crate) struct States {
    id: u64,
    first: Full,
    more: Vec<(u64, Full)>,
}

/// The compact grade's extension: one layer's state of a span whose plan needs no more (see the
/// module docs).
pub(crate) struct Compact {
    id: u64,
    core: Core,
    values: CompactValues,
    /// The nearest ancestor that captures each field the configuration inherits (at most
    /// `COMPACT_LINKS` of them).
    links: [AtomicU64; COMPACT_LINKS],
}

impl States {
    /// The states of a new span that only `layer` keeps state for.
    #[inline(always)]
    fn new(layer: u64, plan: Arc<ThreadPlan<SpanPlan>>, start: u64) -> Self {
        States {
            id: layer,
            first: Full::new(plan, start),
            more: Vec::new(),
        }
    }

    /// Stores `layer`'s state of a new span in its extensions: of the compact grade when the
    /// plan allows it and no other layer's compact state is there, else of the full grade.
    /// Returns whether it is of the compact grade.
    #[inline(always)]
    pub(crate) fn insert(
        ext: &mut ExtensionsMut<'_>,
        layer: u64,
        plan: Arc<ThreadPlan<SpanPlan>>,
        start: u64,
    ) -> bool {
        if plan.compact() && ext.get_mut::<Compact>().is_none() {
            ext.insert(Compact {
                id: layer,
                values: CompactValues::new(
                    plan.slot_names.len(),
                    plan.model.settings.max_label_len,
                ),
                core: Core::new(plan, start),
                links: [const { AtomicU64::new(UNKNOWN) }; COMPACT_LINKS],
            });
            return true;
        }
        match ext.get_mut::<States>() {
            Some(states) => states.more.push((layer, Full::new(plan, start))),
            None => ext.insert(States::new(layer, plan, start)),
        }
        false
    }

    /// `layer`'s state in a span's extensions, if it keeps one there: the compact grade is
    /// looked for first.
    #[inline]
    pub(crate) fn of<'a>(ext: &'a Extensions<'_>, layer: u64) -> Option<SpanState<'a>> {
        Self::of_hinted(ext, layer, true)
    }

    /// As [`of`](Self::of), the compact grade looked for first if `compact_first`, else the
    /// full one (a hint of which is likelier: either way both are looked for).
    #[inline]
    pub(crate) fn of_hinted<'a>(
        ext: &'a Extensions<'_>,
        layer: u64,
        compact_first: bool,
    ) -> Option<SpanState<'a>> {
        if compact_first {
            if let Some(c) = ext.get::<Compact>().filter(|c| c.id == layer) {
                return Some(c.view());
            }
            return Some(ext.get::<States>()?.get(layer)?.view());
        }
        if let Some(full) = ext.get::<States>().and_then(|s| s.get(layer)) {
            return Some(full.view());
        }
        Some(ext.get::<Compact>().filter(|c| c.id == layer)?.view())
    }

    /// Calls `f` with `layer`'s state in a span's extensions, if it keeps one there; the
    /// compact grade is looked for first if `compact_first`. (`f` is called in one place, so
    /// that it is inlined into the hook that calls this.)
    #[inline(always)]
    pub(crate) fn with_mut<R>(
        ext: &mut ExtensionsMut<'_>,
        layer: u64,
        compact_first: bool,
        f: impl FnOnce(SpanStateMut<'_>) -> R,
    ) -> Option<R> {
        let state = if compact_first {
            match ext.get_mut::<Compact>() {
                Some(c) if c.id == layer => c.view_mut(),
                _ => ext.get_mut::<States>()?.get_mut(layer)?.view_mut(),
            }
        } else {
            match ext.get_mut::<States>().and_then(|s| s.get_mut(layer)) {
                Some(full) => full.view_mut(),
                None => ext
                    .get_mut::<Compact>()
                    .filter(|c| c.id == layer)?
                    .view_mut(),
            }
        };
        Some(f(state))
    }

    /// `layer`'s full state's extras in a span's extensions, if it keeps a full state there
    /// (a compact state has none).
    #[inline]
    pub(crate) fn extras_mut<'a>(
        ext: &'a mut ExtensionsMut<'_>,
        layer: u64,
    ) -> Option<(&'a Core, &'a mut Extras)> {
        let full = ext.get_mut::<States>()?.get_mut(layer)?;
        Some((&full.core, &mut full.extras))
    }

    fn get(&self, layer: u64) -> Option<&Full> {
        if self.id == layer {
            return Some(&self.first);
        }
        self.more
            .iter()
            .find(|(id, _)| *id == layer)
            .map(|(_, s)| s)
    }

    fn get_mut(&mut self, layer: u64) -> Option<&mut Full> {
        if self.id == layer {
            return Some(&mut self.first);
        }
        self.more
            .iter_mut()
            .find(|(id, _)| *id == layer)
            .map(|(_, s)| s)
    }
}

impl Compact {
    #[inline]
    fn view(&self) -> SpanState<'_> {
        SpanState {
            values: self
                .values
                .view(self.core.plan.fields, self.core.plan.slot_fields),
            core: &self.core,
            extras: None,
            compact_links: &self.links,
            full_values: None,
        }
    }

    #[inline]
    fn view_mut(&mut self) -> SpanStateMut<'_> {
        SpanStateMut {
            core: &mut self.core,
            values: ValuesMut::Compact(&mut self.values),
            extras: None,
            compact_links: &self.links,
        }
    }
}

/// Time during which a count of overlapping things (active enters, open children) is above
/// zero: the clock runs from the 0 → 1 transition to the 1 → 0 transition.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Overlap {
    open: u32,
    since: u64,
    total: u64,
}

impl Overlap {
    pub(crate) fn open(&mut self, now: u64) {
        if self.open == 0 {
            self.since = now;
        }
        self.open = self.open.saturating_add(1);
    }

    /// Closes one; an unmatched close (an exit without an enter) is ignored.
    pub(crate) fn close(&mut self, now: u64, clock: &quanta::Clock) {
        if self.open == 0 {
            return;
        }
        self.open -= 1;
        if self.open == 0 {
            self.total = self
                .total
                .saturating_add(clock.delta_as_nanos(self.since, now));
        }
    }

    /// Nanoseconds covered so far, including a still-open stretch.
    pub(crate) fn nanos(&self, now: u64, clock: &quanta::Clock) -> u64 {
        if self.open > 0 {
            self.total
                .saturating_add(clock.delta_as_nanos(self.since, now))
        } else {
            self.total
        }
    }
}

/// How a span ended, as OpenTelemetry sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Unset,
    Ok,
    Error,
}

impl Outcome {
    /// As tracing-opentelemetry decides a span's status: `otel.status_code` wins when it says
    /// OK or ERROR; otherwise a recorded `otel.status_description` or an error event (ERROR
    /// level, or an `error` field as `#[instrument(err)]` emits) means an error.
    pub(crate) fn of(values: Option<Values<'_>>, errored: bool) -> Outcome {
        let explicit = values
            .and_then(|v| v.by_name(OTEL_STATUS))
            .and_then(|v| match v {
                Value::Str(s) if s.eq_ignore_ascii_case("error") => Some(Outcome::Error),
                Value::Str(s) if s.eq_ignore_ascii_case("ok") => Some(Outcome::Ok),
                _ => None,
            });
        let described = values.is_some_and(|v| v.by_name(OTEL_STATUS_DESCRIPTION).is_some());
        explicit.unwrap_or(if errored || described {
            Outcome::Error
        } else {
            Outcome::Unset
        })
    }
}

/// What both grades remember about one open span (for one layer).
pub(crate) struct Core {
    pub(crate) plan: Arc<ThreadPlan<SpanPlan>>,
    pub(crate) start: u64,
    pub(crate) errored: bool,
    /// The span's OpenTelemetry ids, once read (see `crate::exemplars`).
    #[cfg(feature = "exemplars")]
    pub(crate) exemplar: crate::exemplars::SpanIds,
}

impl Core {
    // Always inlined: built straight into the caller's extension, not on the stack and copied.
    #[inline(always)]
    fn new(plan: Arc<ThreadPlan<SpanPlan>>, start: u64) -> Self {
        Core {
            plan,
            start,
            errored: false,
            #[cfg(feature = "exemplars")]
            exemplar: Default::default(),
        }
    }
}

/// What only the full grade remembers: busy and children timing, milestones, held gauges and
/// links to ancestors.
pub(crate) struct Extras {
    pub(crate) busy: Overlap,
    pub(crate) children: Overlap,
    /// When each of the plan's milestones was first reached.
    pub(crate) milestones: SmallVec<[Option<u64>; 2]>,
    /// In-flight gauges incremented for this span, by rule: decremented at close.
    pub(crate) held: SmallVec<[(usize, Gauge); 2]>,
    /// The nearest ancestor that captures each field the configuration inherits.
    links: Links,
}

/// One layer's full state of a span.
pub(crate) struct Full {
    core: Core,
    values: FieldValues,
    extras: Extras,
}

impl Full {
    // Always inlined: built straight into the caller's `States`, not on the stack and copied.
    #[inline(always)]
    fn new(plan: Arc<ThreadPlan<SpanPlan>>, start: u64) -> Self {
        let milestones = SmallVec::from_elem(None, plan.milestones.len());
        let links = Links::new(plan.model.inherited.len());
        Full {
            values: plan.values(),
            extras: Extras {
                busy: Overlap::default(),
                children: Overlap::default(),
                milestones,
                held: SmallVec::new(),
                links,
            },
            core: Core::new(plan, start),
        }
    }

    #[inline]
    fn view(&self) -> SpanState<'_> {
        SpanState {
            core: &self.core,
            values: self.values.view(),
            extras: Some(&self.extras),
            compact_links: &[],
            full_values: Some(&self.values),
        }
    }

    #[inline]
    fn view_mut(&mut self) -> SpanStateMut<'_> {
        SpanStateMut {
            core: &mut self.core,
            values: ValuesMut::Full(&mut self.values),
            extras: Some(&mut self.extras),
            compact_links: &[],
        }
    }
}

/// One layer's state of a span, read, whatever its grade: what both grades keep, the captured
/// values, and the extras of the full grade.
#[derive(Clone, Copy)]
pub(crate) struct SpanState<'a> {
    pub(crate) core: &'a Core,
    pub(crate) values: Values<'a>,
    pub(crate) extras: Option<&'a Extras>,
    /// A compact state's links (the full grade's are in its extras).
    compact_links: &'a [AtomicU64],
    /// The full grade's values, copied by a clone.
    full_values: Option<&'a FieldValues>,
}

impl std::ops::Deref for SpanState<'_> {
    type Target = Core;

    #[inline]
    fn deref(&self) -> &Core {
        self.core
    }
}

/// One layer's state of a span, to change, whatever its grade.
pub(crate) struct SpanStateMut<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) values: ValuesMut<'a>,
    pub(crate) extras: Option<&'a mut Extras>,
    /// A compact state's links (the full grade's are in its extras).
    compact_links: &'a [AtomicU64],
}

/// The captured values of a span's state, to change.
pub(crate) enum ValuesMut<'a> {
    Compact(&'a mut CompactValues),
    Full(&'a mut FieldValues),
}

impl std::ops::Deref for SpanStateMut<'_> {
    type Target = Core;

    #[inline]
    fn deref(&self) -> &Core {
        self.core
    }
}

impl std::ops::DerefMut for SpanStateMut<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Core {
        self.core
    }
}

impl SpanStateMut<'_> {
    /// The state, read.
    #[inline]
    pub(crate) fn as_ref(&self) -> SpanState<'_> {
        let (values, full_values) = match &self.values {
            ValuesMut::Compact(c) => (
                c.view(self.core.plan.fields, self.core.plan.slot_fields),
                None,
            ),
            ValuesMut::Full(f) => (f.view(), Some(&**f)),
        };
        SpanState {
            core: self.core,
            values,
            extras: self.extras.as_deref(),
            compact_links: self.compact_links,
            full_values,
        }
    }

    /// Copies the slots in the bit set `seen` from `from` (values of the same plan), dropping
    /// the truncation flag (`from` reported it).
    #[inline]
    pub(crate) fn merge(&mut self, from: &FieldValues, seen: u64) {
        self.values.merge(&self.core.plan, from, seen);
    }
}

impl ValuesMut<'_> {
    /// Records the attributes of a new span of `plan` that the plan captures; returns whether
    /// a value was cut to the bound.
    #[inline]
    pub(crate) fn record(&mut self, plan: &SpanPlan, attrs: &Attributes<'_>) -> bool {
        match self {
            ValuesMut::Compact(c) => {
                attrs.record(&mut c.recorder(&plan.slot_for));
                if c.spilled() {
                    plan.compact_spilled();
                }
                c.take_truncated()
            }
            ValuesMut::Full(f) => {
                attrs.record(&mut f.recorder(&plan.slot_for));
                f.take_truncated()
            }
        }
    }

    /// As [`SpanStateMut::merge`].
    #[inline]
    fn merge(&mut self, plan: &SpanPlan, from: &FieldValues, seen: u64) {
        match self {
            ValuesMut::Compact(c) => {
                c.merge(from.captured(), seen);
                c.take_truncated();
                if c.spilled() {
                    plan.compact_spilled();
                }
            }
            ValuesMut::Full(f) => {
                f.merge(from, seen);
                f.take_truncated();
            }
        }
    }
}

impl<'a> SpanState<'a> {
    /// A copy of the captured values, to read once the span's lock is released.
    pub(crate) fn values_owned(&self) -> FieldValues {
        match self.full_values {
            Some(f) => f.clone(),
            None => FieldValues::copy_of(self.values, self.plan.model.settings.max_label_len),
        }
    }

    pub(crate) fn outcome(&self) -> Outcome {
        if !self.plan.has_status_fields {
            return if self.errored {
                Outcome::Error
            } else {
                Outcome::Unset
            };
        }
        Outcome::of(Some(self.values), self.errored)
    }

    pub(crate) fn holds(&self, rule: usize) -> bool {
        self.extras
            .is_some_and(|x| x.held.iter().any(|(r, _)| *r == rule))
    }

    /// The link slot of `name`, if the span's configuration inherits it.
    #[inline]
    fn link_slot(&self, name: &str) -> Option<&'a AtomicU64> {
        let i = self.plan.model.inherited.iter().position(|n| n == name)?;
        self.links().get(i)
    }

    /// The span's links: a full state's, in its extras, or a compact state's.
    #[inline]
    fn links(&self) -> LinkSlots<'a> {
        match self.extras {
            Some(x) => x.links.slots(),
            None => LinkSlots {
                first: self.compact_links,
                more: &[],
            },
        }
    }

    /// Whether any link is known.
    #[inline]
    fn any_link_known(&self) -> bool {
        self.links().any_known()
    }

    /// What the span (whose id is `own`) knows of the nearest proper ancestor that captures
    /// `name`: `None` if it does not know yet, `Some(None)` if no ancestor does.
    #[inline]
    fn link(&self, own: &Id, name: &str) -> Option<Option<Id>> {
        match self.link_slot(name)?.load(Ordering::Relaxed) {
            UNKNOWN => None,
            id if id == own.into_u64() => Some(None),
            id => Some(Some(Id::from_u64(id))),
        }
    }

    /// Remembers the nearest proper ancestor that captures `name` (`0`: none). Links are subject
    /// about the tree, fixed once the span exists: racing writers write the same value.
    #[inline]
    fn set_link(&self, own: &Id, name: &str, to: u64) {
        if let Some(slot) = self.link_slot(name) {
            let to = if to == 0 { own.into_u64() } else { to };
            slot.store(to, Ordering::Relaxed);
        }
    }

    /// The next step of a lookup of `name` that reached this span without finding a value.
    fn step_on(&self, own: &Id, name: &str) -> Step {
        match self.link(own, name) {
            None => Step::Above(own.into_u64()),
            Some(None) => Step::Done,
            Some(Some(to)) => Step::At(to.into_u64()),
        }
    }
}

/// A link not found yet. A span's ids are non-zero, and a link to no ancestor is stored as the
/// span's own id (a span is never its own ancestor, and any id may be a subscriber's).
const UNKNOWN: u64 = 0;

/// Per field name the span's configuration inherits (`Ruleset::inherited`, by position), the id
/// of the nearest proper ancestor (as this layer sees the tree: spans a per-layer filter hides
/// are not its ancestors) whose state captures the field. Found on first use (see
/// [`inherited`]); atomics, so lookups holding only a shared lock on the span can write them.
struct Links {
    first: [AtomicU64; LINKS_INLINE],
    /// Beyond the first `LINKS_INLINE` (only when the configuration inherits more fields).
    more: Option<Box<[AtomicU64]>>,
}

impl Links {
    #[inline(always)]
    fn new(fields: usize) -> Self {
        Links {
            first: [const { AtomicU64::new(UNKNOWN) }; LINKS_INLINE],
            more: (fields > LINKS_INLINE).then(|| {
                (LINKS_INLINE..fields)
                    .map(|_| AtomicU64::new(UNKNOWN))
                    .collect()
            }),
        }
    }

    #[inline]
    fn slots(&self) -> LinkSlots<'_> {
        LinkSlots {
            first: &self.first,
            more: self.more.as_deref().unwrap_or_default(),
        }
    }
}

/// A span's links, read (and written: they are atomics): the inline ones, then the ones beyond.
#[derive(Clone, Copy)]
struct LinkSlots<'a> {
    first: &'a [AtomicU64],
    more: &'a [AtomicU64],
}

impl<'a> LinkSlots<'a> {
    #[inline]
    fn get(&self, i: usize) -> Option<&'a AtomicU64> {
        match self.first.get(i) {
            Some(link) => Some(link),
            None => self.more.get(i - self.first.len()),
        }
    }

    /// Whether any link is known (without comparing field names).
    #[inline]
    fn any_known(&self) -> bool {
        let known = |l: &AtomicU64| l.load(Ordering::Relaxed) != UNKNOWN;
        self.first.iter().any(known) || self.more.iter().any(known)
    }
}

/// Where the lookup of one field stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Found, or no ancestor has it.
    Done,
    /// Next: the value at this span (an ancestor that captures the field).
    At(u64),
    /// Next: the nearest proper ancestor of this span that captures the field.
    Above(u64),
}

/// Counts ancestor visits (extensions locked) by lookups on this thread, for the tests that
/// check how the work grows with depth.
#[cfg(test)]
pub(crate) mod visits {
    use std::cell::Cell;

    thread_local! {
        static VISITS: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count() {
        VISITS.with(|v| v.set(v.get() + 1));
    }

    /// Visits so far on this thread.
    pub(crate) fn so_far() -> u64 {
        VISITS.with(Cell::get)
    }
}

#[inline(always)]
fn visit() {
    #[cfg(test)]
    visits::count();
}

/// Calls `f(i, value)` for each of `names` (at most 64) that an ancestor of `below` has
/// recorded, with the value of the nearest such ancestor, following links (see the module
/// docs). Ancestors are those `ctx`'s layer sees, with state of `layer`. `held`: `below`'s
/// state when the caller holds its lock (then `below` is not locked here); otherwise it is
/// read from `below`'s extensions. Locks are taken from a span towards its ancestors only.
pub(crate) fn inherited<S>(
    ctx: &Context<'_, S>,
    layer: u64,
    below: &SpanRef<'_, S>,
    held: Option<&SpanState<'_>>,
    names: &[&str],
    f: &mut dyn FnMut(usize, Value<'_>),
) where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    let names = &names[..names.len().min(64)];
    let below_id = below.id();
    let mut steps: ArrayVec<Step, 64> = ArrayVec::new();
    let known = {
        let ext;
        let st = match held {
            Some(st) => Some(*st),
            None => {
                visit();
                ext = below.extensions();
                States::of(&ext, layer)
            }
        };
        match st.filter(|st| st.any_link_known()) {
            Some(st) => {
                steps.extend(names.iter().map(|name| st.step_on(&below_id, name)));
                true
            }
            None => false,
        }
    };
    if !known {
        first_ancestor(layer, below, held, names, &mut steps, f);
    }
    loop {
        // Walks first (one for every field that searches above the same span), then values at
        // links (one visit for every field linked to the same span).
        let next = steps
            .iter()
            .find(|s| matches!(s, Step::Above(_)))
            .or_else(|| steps.iter().find(|s| matches!(s, Step::At(_))))
            .copied();
        match next {
            None | Some(Step::Done) => return,
            Some(Step::Above(from)) if from == below_id.into_u64() => {
                walk(layer, below, held, names, &mut steps, f)
            }
            Some(Step::Above(from)) => match ctx.span(&Id::from_u64(from)) {
                Some(span) => walk(layer, &span, None, names, &mut steps, f),
                None => finish(&mut steps, Step::Above(from)),
            },
            Some(Step::At(at)) => {
                let Some(span) = ctx.span(&Id::from_u64(at)) else {
                    finish(&mut steps, Step::At(at));
                    continue;
                };
                visit();
                let ext = span.extensions();
                let Some(st) = States::of(&ext, layer) else {
                    finish(&mut steps, Step::At(at));
                    continue;
                };
                let id = span.id();
                for (i, step) in steps.iter_mut().enumerate() {
                    if *step == Step::At(at) {
                        *step = match st.values.by_name(names[i]) {
                            Some(v) => {
                                f(i, v);
                                Step::Done
                            }
                            None => st.step_on(&id, names[i]),
                        };
                    }
                }
            }
        }
    }
}

/// The first steps of the lookups from a span that knows no link yet (as at its first
/// lookup): a visit to its first ancestor, which usually has every field, as a plain walk
/// would make it. Fields it captures are read there (their link is that ancestor: not written,
/// as following it would cost this same visit); for the others, its own links say where to go
/// on, and are written on `below`. Fields it cannot tell about (it has no link for them yet, or
/// no state of this layer) are left to a walk from `below`.
fn first_ancestor<S>(
    layer: u64,
    below: &SpanRef<'_, S>,
    held: Option<&SpanState<'_>>,
    names: &[&str],
    steps: &mut ArrayVec<Step, 64>,
    f: &mut dyn FnMut(usize, Value<'_>),
) where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    let Some(a) = below.parent() else {
        return;
    };
    visit();
    let below_raw = below.id().into_u64();
    // Links learnt for `below`: written once `a`'s lock is released (a span is never locked
    // while one of its ancestors is).
    let mut learnt: ArrayVec<(usize, u64), 64> = ArrayVec::new();
    {
        let ext = a.extensions();
        let Some(st) = States::of(&ext, layer) else {
            steps.extend(names.iter().map(|_| Step::Above(below_raw)));
            return;
        };
        let id = a.id();
        for (i, name) in names.iter().enumerate() {
            steps.push(match st.values.slot_of(name) {
                Some(slot) => match st.values.get(slot) {
                    Some(v) => {
                        f(i, v);
                        Step::Done
                    }
                    None => st.step_on(&id, name),
                },
                None => match st.link(&id, name) {
                    Some(to) => {
                        let to = to.map_or(0, |t| t.into_u64());
                        learnt.push((i, to));
                        if to == 0 { Step::Done } else { Step::At(to) }
                    }
                    // Not known yet: walked for from `below`, so that `below` and the spans
                    // passed get the link (this visit is then made again).
                    None => Step::Above(below_raw),
                },
            });
        }
    }
    if learnt.is_empty() {
        return;
    }
    let links = learnt.iter().map(|&(i, to)| (names[i], to));
    write_links(below, held, layer, links);
}

/// Writes `links` (field name, the id it links to) on `span`'s state: on `held` when the
/// caller holds it, else under the span's own lock.
fn write_links<'n, S>(
    span: &SpanRef<'_, S>,
    held: Option<&SpanState<'_>>,
    layer: u64,
    links: impl Iterator<Item = (&'n str, u64)>,
) where
    S: for<'l> LookupSpan<'l>,
{
    let ext;
    let st = match held {
        Some(st) => Some(*st),
        None => {
            visit();
            ext = span.extensions();
            States::of(&ext, layer)
        }
    };
    if let Some(st) = st {
        let id = span.id();
        for (name, to) in links {
            st.set_link(&id, name, to);
        }
    }
}

/// Ends every lookup at `step` (a span that is gone: cannot happen while `below` is open, as
/// spans keep their ancestors open).
///
/// Defensive only: no test reaches it, because no sequence of tracing calls can (a link points
/// at an ancestor that captures the field, so it has this layer's state, and an open span's
/// ancestors stay open). Its mutants therefore survive; without it a lookup at a vanished link
/// would loop instead of giving up.
#[cold]
fn finish(steps: &mut [Step], step: Step) {
    for s in steps.iter_mut().filter(|s| **s == step) {
        *s = Step::Done;
    }
}

/// Walks up from `from` for every field whose lookup searches above it, to the first ancestor
/// that captures the field (reading its value there) or knows its own link; then writes the
/// links found on `from` and on every stateful span passed. A link to `from`'s first ancestor
/// is not written on `from`: following it would cost what walking there again costs (one
/// visit), and the usual child of a span that has the fields then writes no link at all.
fn walk<S>(
    layer: u64,
    from: &SpanRef<'_, S>,
    held: Option<&SpanState<'_>>,
    names: &[&str],
    steps: &mut ArrayVec<Step, 64>,
    f: &mut dyn FnMut(usize, Value<'_>),
) where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    let from_id = from.id();
    let from_raw = from_id.into_u64();
    let mut pending = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Step::Above(id) if *id == from_raw))
        .fold(0u64, |m, (i, _)| m | 1 << i);
    // Links to write: (field, link (0: none), how many stateful spans were passed before it).
    let mut links: ArrayVec<(usize, u64, u32), 64> = ArrayVec::new();
    let mut passed = 0u32;
    let mut first = true;
    // Each parent is looked up only when the walk goes on to it.
    let mut next = from.parent();
    while pending != 0 {
        let Some(a) = next.take() else { break };
        visit();
        if let Some(st) = States::of(&a.extensions(), layer) {
            let id = a.id();
            for i in ones(pending) {
                let name = names[i];
                let to = if let Some(slot) = st.values.slot_of(name) {
                    steps[i] = match st.values.get(slot) {
                        Some(v) => {
                            f(i, v);
                            Step::Done
                        }
                        None => st.step_on(&id, name),
                    };
                    id.into_u64()
                } else if let Some(to) = st.link(&id, name) {
                    let to = to.map_or(0, |t| t.into_u64());
                    steps[i] = if to == 0 { Step::Done } else { Step::At(to) };
                    to
                } else {
                    continue;
                };
                pending &= !(1 << i);
                // A link to the first ancestor is not worth writing (see above). Which links are
                // written changes how many visits later lookups make, never what they find.
                if !(first && to == id.into_u64()) {
                    links.push((i, to, passed));
                }
            }
            passed += 1;
        }
        first = false;
        if pending != 0 {
            next = a.parent();
        }
    }
    for i in ones(pending) {
        steps[i] = Step::Done;
        links.push((i, 0, passed));
    }
    if links.is_empty() {
        return;
    }
    write_links(
        from,
        held,
        layer,
        links.iter().map(|&(i, to, _)| (names[i], to)),
    );
    let furthest = links.iter().map(|l| l.2).max().unwrap_or(0);
    let mut k = 0;
    let mut next = if furthest > 0 { from.parent() } else { None };
    while k < furthest {
        let Some(a) = next.take() else { break };
        visit();
        if let Some(st) = States::of(&a.extensions(), layer) {
            let id = a.id();
            for &(i, to, after) in &links {
                if after > k {
                    st.set_link(&id, names[i], to);
                }
            }
            k += 1;
        }
        next = a.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn overlapping_opens_count_once() {
        let (clock, mock) = quanta::Clock::mock();
        let mut o = Overlap::default();
        o.open(clock.raw()); // t=0, thread A enters
        mock.increment(Duration::from_nanos(10));
        o.open(clock.raw()); // t=10, thread B enters
        mock.increment(Duration::from_nanos(10));
        o.close(clock.raw(), &clock); // t=20, A exits
        mock.increment(Duration::from_nanos(10));
        o.close(clock.raw(), &clock); // t=30, B exits
        mock.increment(Duration::from_nanos(100));
        o.close(clock.raw(), &clock); // unmatched exit: ignored
        assert_eq!(o.nanos(clock.raw(), &clock), 30);
        o.open(clock.raw()); // t=130
        mock.increment(Duration::from_nanos(5));
        assert_eq!(o.nanos(clock.raw(), &clock), 35);
    }

    use crate::config::{EventMatch, Label, Metric, Spans};
    use tracing::{Dispatch, dispatcher};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::registry::{LookupSpan, SpanData};

    type Sub =
        tracing_subscriber::layer::Layered<crate::SpanMetricsLayer, tracing_subscriber::Registry>;

    /// Opens spans with `open` (each from one callsite, so one plan) under a layer with `rules`
    /// and calls `check` with each span's extensions while it is open.
    fn with_spans(
        rules: Vec<Metric>,
        spans: usize,
        open: impl Fn() -> tracing::Span,
        check: impl Fn(usize, &Extensions<'_>),
    ) {
        let mut builder = crate::SpanMetrics::builder();
        for rule in rules {
            builder = builder.metric(rule);
        }
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(builder.build().unwrap()));
        let sub = dispatch
            .downcast_ref::<Sub>()
            .expect("the test's subscriber");
        dispatcher::with_default(&dispatch, || {
            for i in 0..spans {
                let span = open();
                let data = sub.span_data(&span.id().expect("an enabled span")).unwrap();
                check(i, &data.extensions());
            }
        });
    }

    /// The grade of state a span gets under `rules`: `"compact"` or `"full"`.
    fn grade(rules: Vec<Metric>, open: impl Fn() -> tracing::Span) -> &'static str {
        let found = std::cell::Cell::new("none");
        with_spans(rules, 1, open, |_, ext| {
            found.set(match (ext.get::<Compact>(), ext.get::<States>()) {
                (Some(_), None) => "compact",
                (None, Some(_)) => "full",
                _ => "neither or both",
            });
        });
        found.get()
    }

    fn rpc_span() -> tracing::Span {
        tracing::info_span!("rpc", a = "x", b = 2, c = true, d = tracing::field::Empty)
    }

    fn rpc(rule: Metric) -> Metric {
        rule.spans(Spans::named("rpc"))
    }

    #[test]
    fn plans_get_the_compact_grade_only_when_it_holds_all_they_need() {
        let labels = || ["a", "b", "c"];
        let compact = [
            rpc(Metric::histogram("wall").wall_time().labels(labels())),
            rpc(Metric::counter("calls").spans_closed().labels(labels())),
            rpc(Metric::counter("opened").spans_opened().labels(labels())),
            rpc(Metric::histogram("field")
                .span_field("b")
                .labels(["a", "c"])),
        ];
        for rule in compact {
            assert_eq!(grade(vec![rule.clone()], rpc_span), "compact", "{rule:?}");
        }
        let full = [
            rpc(Metric::histogram("busy").busy_time()),
            rpc(Metric::histogram("idle").idle_time()),
            rpc(Metric::histogram("self").self_time()),
            rpc(Metric::histogram("first").time_to(EventMatch::message("first byte"))),
            rpc(Metric::gauge("open").in_flight()),
            rpc(Metric::gauge("after").in_flight_after("d")),
            // Four captured fields.
            rpc(Metric::counter("four")
                .spans_closed()
                .labels(["a", "b", "c", "d"])),
            // Four inherited fields (none of them captured here).
            rpc(Metric::counter("inherits")
                .spans_closed()
                .labels(["e", "f", "g", "h"])),
        ];
        for rule in full {
            assert_eq!(grade(vec![rule.clone()], rpc_span), "full", "{rule:?}");
        }
        // Four labels of which one does not inherit: three links, three captured fields.
        let three = rpc(Metric::counter("calls").spans_closed().labels(labels()))
            .label(Label::field("e").own_only());
        assert_eq!(grade(vec![three], rpc_span), "compact");
    }

    #[test]
    fn text_beyond_the_compact_room_spills_once_then_the_callsite_gets_the_full_grade() {
        let long = "x".repeat(COMPACT_TEXT + 1);
        let rule = rpc(Metric::counter("calls").spans_closed().labels(["a"]));
        let grades = std::cell::RefCell::new(Vec::new());
        with_spans(
            vec![rule],
            3,
            || tracing::info_span!("rpc", a = long.as_str()),
            |_, ext| {
                let (grade, value) = match (ext.get::<Compact>(), ext.get::<States>()) {
                    (Some(c), None) => (
                        "compact",
                        c.view().values.by_name("a").map(|v| format!("{v:?}")),
                    ),
                    (None, Some(s)) => (
                        "full",
                        s.first.view().values.by_name("a").map(|v| format!("{v:?}")),
                    ),
                    _ => ("neither or both", None),
                };
                grades.borrow_mut().push((grade, value));
            },
        );
        // The first span's text spilled (and reads back whole); the callsite's later spans get
        // the full grade, whose inline room holds it.
        let whole = Some(format!("{:?}", Value::Str(&long)));
        assert_eq!(
            grades.into_inner(),
            vec![
                ("compact", whole.clone()),
                ("full", whole.clone()),
                ("full", whole)
            ]
        );
    }

    /// The README states these sizes: the extension box every span with state allocates holds
    /// exactly one `Compact` or one `States` (on 64-bit targets), so a span costs this much
    /// beside the registry's own extension map.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_compact_state_is_168_bytes_and_a_full_one_544() {
        // With the `exemplars` feature: the span's trace and span ids (24 bytes).
        let exemplar = if cfg!(feature = "exemplars") { 24 } else { 0 };
        assert_eq!(std::mem::size_of::<Compact>(), 168 + exemplar);
        assert_eq!(std::mem::size_of::<States>(), 544 + exemplar);
    }
}

/// How the work of inherited lookups grows with the depth of the tree, counted exactly in
/// ancestor visits (extensions locked by lookups): linearly, not with the depth squared.
#[cfg(test)]
mod scaling {
    use crate::config::{Metric, Spans};
    use tracing::{Dispatch, Span, dispatcher};
    use tracing_subscriber::prelude::*;

    use super::visits;

    /// What the spans of the chain are.
    #[derive(Clone, Copy)]
    enum Chain {
        /// Every span measured.
        Levels,
        /// Every other span has no field and no rule: no state of the layer.
        WithStateless,
    }

    /// Ancestor visits while a chain of `depth` spans opens under a root that records `tenant`
    /// and closes deepest first, with `rules` (on spans named `level`).
    fn visits(depth: usize, chain: Chain, rules: &[fn() -> Metric]) -> u64 {
        let mut builder = crate::SpanMetrics::builder();
        for rule in rules {
            builder = builder.metric(rule());
        }
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(builder.build().unwrap()));
        dispatcher::with_default(&dispatch, || {
            let root = tracing::info_span!("root", tenant = "acme");
            let before = visits::so_far();
            let mut spans: Vec<Span> = Vec::with_capacity(depth);
            for i in 0..depth {
                let parent = spans.last().unwrap_or(&root).clone();
                spans.push(match (chain, i % 2) {
                    (Chain::WithStateless, 1) => tracing::info_span!(parent: &parent, "plain"),
                    _ => tracing::info_span!(parent: &parent, "level"),
                });
            }
            while let Some(span) = spans.pop() {
                drop(span);
            }
            visits::so_far() - before
        })
    }

    /// Looked up at close, deepest first.
    fn at_close() -> Metric {
        Metric::counter("level.total")
            .spans(Spans::named("level"))
            .label("tenant")
    }

    /// Looked up at open, top down.
    fn at_open() -> Metric {
        Metric::gauge("level.open")
            .spans(Spans::named("level"))
            .in_flight()
            .label("tenant")
    }

    // In each case, a span's first lookup visits its first ancestor; when that ancestor cannot
    // tell (it has no link yet), a walk from the span visits it again. And the first span to
    // close also misses the label-set cache (every later one hits it): its labels are then
    // resolved, which reads the root once more through its link.

    #[test]
    fn lookups_at_close_visit_three_ancestors_per_level() {
        // The deepest span visits its parent (1), walks to the root (n visits) and links the
        // n - 1 levels it passed (n - 1 more); every other level then reads the root through its
        // link (n - 1).
        for n in [2_000, 4_000] {
            assert_eq!(
                visits(n, Chain::Levels, &[at_close]),
                1 + n as u64 + 2 * (n as u64 - 1) + 1
            );
        }
    }

    /// A field condition reads ancestors as an inheriting label does, through links: a deep
    /// chain costs a fixed number of visits per level.
    #[test]
    fn field_conditions_are_linked_like_labels() {
        fn when_tenant() -> Metric {
            Metric::counter("level.total")
                .spans(Spans::named("level"))
                .when(crate::Condition::field("tenant").one_of(["acme"]))
        }
        // As for a label at close, without the label-set cache's one extra read: the deepest
        // span visits its parent (1), walks to the root (n) and links the n - 1 levels it
        // passed (n - 1); every other level reads the root through its link (n - 1).
        for n in [2_000, 4_000] {
            assert_eq!(
                visits(n, Chain::Levels, &[when_tenant]),
                1 + n as u64 + 2 * (n as u64 - 1)
            );
        }
    }

    /// More inherited fields than links kept inline (`LINKS_INLINE`): the ones beyond are
    /// linked as well (every field is found at the root, and fields linked to the same span are
    /// read in one visit). A link beyond the inline ones that is lost or misplaced costs walks,
    /// not results, so only the count of visits can tell.
    #[test]
    fn fields_beyond_the_inline_links_are_linked_too() {
        const FIELDS: usize = super::LINKS_INLINE + 2;
        fn six_fields() -> Metric {
            let mut m = Metric::counter("wide.total").spans(Spans::named("level"));
            for name in ["f0", "f1", "f2", "f3", "f4", "f5"] {
                m = m.label(name);
            }
            m
        }
        let n = 200u64;
        // Visits while `n` levels open under the root (and a middle span with `f5` if
        // `middle`) and close deepest first.
        let counted = |n: u64, middle: bool| {
            let dispatch = Dispatch::new(
                tracing_subscriber::registry().with(
                    crate::SpanMetrics::builder()
                        .metric(six_fields())
                        .build()
                        .unwrap(),
                ),
            );
            dispatcher::with_default(&dispatch, || {
                let root = if middle {
                    tracing::info_span!("root", f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4)
                } else {
                    tracing::info_span!("root", f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5)
                };
                let top = if middle {
                    tracing::info_span!(parent: &root, "middle", f5 = 5)
                } else {
                    root.clone()
                };
                let before = visits::so_far();
                let mut spans: Vec<Span> = Vec::new();
                for _ in 0..n {
                    let parent = spans.last().unwrap_or(&top).clone();
                    spans.push(tracing::info_span!(parent: &parent, "level"));
                }
                while let Some(span) = spans.pop() {
                    drop(span);
                }
                visits::so_far() - before
            })
        };
        assert_eq!(FIELDS, 6);
        // What each further level costs (the constant part, first lookups and the first
        // close's resolution, cancels out): with every field at the root, as
        // `lookups_at_close_visit_three_ancestors_per_level` (its walk, the link written on
        // it, the read of the root through its link).
        assert_eq!(counted(2 * n, false) - counted(n, false), 3 * n);
        // With the last field on a span between the root and the levels, one more: each level
        // reads the root and the middle span through its links. A link read for the wrong
        // field sends that field to the wrong span, which costs a step more per level.
        assert_eq!(counted(2 * n, true) - counted(n, true), 4 * n);
    }

    #[test]
    fn lookups_at_open_visit_two_ancestors_per_level_and_one_more_at_close() {
        // At open, the first level finds the root as its parent (1 visit), so it keeps no link:
        // the second level visits it (1), walks past it to the root (2) and links it (1). Every
        // later level reads its parent's link (1) and then the root (1). At close, each level
        // reads the root (1 visit: the first level as its parent, the others through a link).
        for n in [2_000, 4_000] {
            assert_eq!(
                visits(n, Chain::Levels, &[at_open, at_close]),
                (1 + 4 + 2 * (n as u64 - 2)) + n as u64 + 1
            );
        }
    }

    #[test]
    fn stateless_spans_between_levels_cost_one_visit_each_per_walk() {
        // Levels at even positions (n / 2 of them), a stateless span below each. The deepest
        // level visits its parent (1, stateless), walks to the root (n - 1 visits: n - 2 spans
        // between and the root), and again up to the first level (n - 2) to link the levels it
        // passed; every other level then reads the root through its link (n / 2 - 1).
        for n in [2_000u64, 4_000] {
            assert_eq!(
                visits(n as usize, Chain::WithStateless, &[at_close]),
                1 + (n - 1) + (n - 2) + (n / 2 - 1) + 1
            );
        }
    }
}
