//! Per-span state: timers, captured fields, outcome, milestones and held gauges.
//!
//! A span that any rule cares about gets one `SpanState`, stored in the span's extensions (the
//! one allocation per span that tracing-subscriber's extensions force). Everything inside is
//! inline: captured text lives in a small arena, milestones and held gauges in small vectors.

use std::sync::Arc;

use metrics::Gauge;
use smallvec::SmallVec;

use crate::plan::{Local, OTEL_STATUS, OTEL_STATUS_DESCRIPTION, SpanPlan};
use crate::values::{FieldValues, Value};

/// The extension the layer stores: the states of every `SpanMetricsLayer` in the subscriber,
/// keyed by layer id, so two layers never trip over each other. The usual single layer's state
/// is inline, so a new span's state is written once, straight into the extension's box.
pub(crate) struct States {
    id: u64,
    first: SpanState,
    more: Vec<(u64, SpanState)>,
}

impl States {
    /// The states of a new span that only `layer` keeps state for.
    #[inline(always)]
    pub(crate) fn new(layer: u64, plan: Arc<Local<SpanPlan>>, start: u64) -> Self {
        States {
            id: layer,
            first: SpanState::new(plan, start),
            more: Vec::new(),
        }
    }

    /// Adds the state of another layer.
    pub(crate) fn push(&mut self, layer: u64, state: SpanState) {
        self.more.push((layer, state));
    }

    pub(crate) fn get(&self, layer: u64) -> Option<&SpanState> {
        if self.id == layer {
            return Some(&self.first);
        }
        self.more
            .iter()
            .find(|(id, _)| *id == layer)
            .map(|(_, s)| s)
    }

    pub(crate) fn get_mut(&mut self, layer: u64) -> Option<&mut SpanState> {
        if self.id == layer {
            return Some(&mut self.first);
        }
        self.more
            .iter_mut()
            .find(|(id, _)| *id == layer)
            .map(|(_, s)| s)
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
    pub(crate) fn of(values: Option<&FieldValues>, errored: bool) -> Outcome {
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

/// What the layer remembers about one open span.
pub(crate) struct SpanState {
    pub(crate) plan: Arc<Local<SpanPlan>>,
    pub(crate) values: FieldValues,
    pub(crate) start: u64,
    pub(crate) busy: Overlap,
    pub(crate) children: Overlap,
    pub(crate) errored: bool,
    /// When each of the plan's milestones was first reached.
    pub(crate) milestones: SmallVec<[Option<u64>; 2]>,
    /// In-flight gauges incremented for this span, by rule: decremented at close.
    pub(crate) held: SmallVec<[(usize, Gauge); 2]>,
}

impl SpanState {
    // Always inlined: built straight into the caller's `States`, not on the stack and copied.
    #[inline(always)]
    pub(crate) fn new(plan: Arc<Local<SpanPlan>>, start: u64) -> Self {
        let milestones = SmallVec::from_elem(None, plan.milestones.len());
        SpanState {
            values: plan.values(),
            plan,
            start,
            busy: Overlap::default(),
            children: Overlap::default(),
            errored: false,
            milestones,
            held: SmallVec::new(),
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
        Outcome::of(Some(&self.values), self.errored)
    }

    pub(crate) fn holds(&self, rule: usize) -> bool {
        self.held.iter().any(|(r, _)| *r == rule)
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
}
