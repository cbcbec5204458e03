//! Events: counters and fields of events inside selected spans, and milestones (the first
//! matching event inside a span, for time-to-event histograms).

use std::sync::Arc;

use smallvec::SmallVec;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::SpanMetricsLayer;
use super::ancestors::RegistryLookup;
use super::message::{Heard, MessageVisitor};
use super::record::{record_numeric, record_rule};
use crate::config::Measure;
use crate::instruments::Op;
use crate::labels::Subject;
use crate::plan::{Applied, EventPlan, SpanPlan, ThreadPlan};
use crate::ruleset::{Rule, Ruleset};
use crate::state::{Outcome, States};
use crate::values::{FieldValues, Value};

impl SpanMetricsLayer {
    /// Marks the milestones this event reaches on its span and the span's ancestors.
    ///
    /// Spans opened under a configuration that has since been replaced keep their own rules:
    /// their milestones are matched against the event here, rule by rule (a slower path that
    /// only runs while a replaced configuration with milestones may have open spans).
    pub(super) fn reach_milestones<S>(
        &self,
        model: &Arc<Ruleset>,
        reached: &[usize],
        meta: &'static Metadata<'static>,
        event: &Event<'_>,
        span: Option<&SpanRef<'_, S>>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = span else { return };
        let now = self.clock.raw();
        // The message, for rules of replaced configurations, captured before any lock is taken.
        let mut message: Option<FieldValues> = None;
        // The event's span (already looked up), then its ancestors.
        if let Some(retired) = self.mark_milestones(span, model, reached, now) {
            self.mark_retired(span, &retired, meta, event, now, &mut message);
        }
        let mut up = span.parent();
        while let Some(s) = up {
            if let Some(retired) = self.mark_milestones(&s, model, reached, now) {
                self.mark_retired(&s, &retired, meta, event, now, &mut message);
            }
            up = s.parent();
        }
    }

    /// Marks the milestones in `reached` on `span`, if it was planned under `model` (one lock);
    /// returns the plan of a span opened under a replaced configuration with milestones.
    #[inline]
    fn mark_milestones<S>(
        &self,
        span: &SpanRef<'_, S>,
        model: &Arc<Ruleset>,
        reached: &[usize],
        now: u64,
    ) -> Option<Arc<ThreadPlan<SpanPlan>>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Plans with milestones keep the full grade of state.
        let mut ext = span.extensions_mut();
        let (core, extras) = States::extras_mut(&mut ext, self.id)?;
        if core.plan.milestones.is_empty() {
            return None;
        }
        if !Arc::ptr_eq(&core.plan.model, model) {
            return Some(core.plan.clone());
        }
        if !reached.is_empty() {
            let plan = &*core.plan;
            for (k, at) in extras.milestones.iter_mut().enumerate() {
                if at.is_none() && plan.milestones.get(k).is_some_and(|r| reached.contains(r)) {
                    *at = Some(now);
                }
            }
        }
        None
    }

    /// A span of a replaced configuration (`old`, its plan): its own rules decide. `message`:
    /// the event's message, captured on first use.
    #[cold]
    fn mark_retired<S>(
        &self,
        span: &SpanRef<'_, S>,
        old: &SpanPlan,
        meta: &'static Metadata<'static>,
        event: &Event<'_>,
        now: u64,
        message: &mut Option<FieldValues>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let index = meta
            .fields()
            .field("message")
            .and_then(|f| 1u64.checked_shl(f.index() as u32));
        if let (None, Some(index)) = (&*message, index) {
            let slots: SmallVec<[Option<u8>; 8]> = meta
                .fields()
                .iter()
                .map(|f| (f.name() == "message").then_some(0))
                .collect();
            let mut m = FieldValues::new(meta.fields(), index, old.model.settings.max_label_len);
            event.record(&mut m.recorder(&slots));
            *message = Some(m);
        }
        self.with_extras(span, |core, extras| {
            for k in 0..core.plan.milestones.len() {
                let r = core.plan.milestones[k];
                if extras.milestones[k].is_some() {
                    continue;
                }
                let rule = &core.plan.model.rules[r];
                let hit = rule.event_match().is_some_and(|m| m.matches_callsite(meta))
                    && message.as_ref().map_or(
                        rule.event_match().is_some_and(|m| m.message.is_none()),
                        |m| message_matches(rule, m),
                    );
                if hit {
                    extras.milestones[k] = Some(now);
                }
            }
        });
    }

    pub(super) fn on_event_planned<S>(
        &self,
        model: &Arc<Ruleset>,
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
                self.with_state(s, |mut st| st.errored = true);
            }
        }
        if plan.rules.is_empty() && plan.milestones.is_empty() && !retired_milestones {
            return;
        }
        // The fields the plan captures (none: nothing to capture into), and the message
        // compared with the texts the rules ask for as it is handed over.
        let bound = model.settings.max_label_len;
        let mut values = (plan.slot_fields != 0).then(|| plan.values(bound));
        let mut heard = Heard::default();
        match plan.message_field {
            Some(message) => {
                let mut slots = values.as_mut().map(|v| v.recorder(&plan.slot_for));
                let mut visitor = MessageVisitor {
                    slots: slots.as_mut(),
                    message,
                    texts: &plan.message_texts,
                    bound,
                    heard,
                };
                event.record(&mut visitor);
                heard = visitor.heard;
            }
            None => {
                if let Some(v) = values.as_mut() {
                    event.record(&mut v.recorder(&plan.slot_for));
                }
            }
        }
        if values.as_mut().is_some_and(|v| v.take_truncated()) | heard.cut {
            model.health.truncated(&model.settings.recorder, 1);
        }
        let values = values.as_ref();
        let values_view = values.map(FieldValues::view);
        let meta = event.metadata();
        if !plan.milestones.is_empty() || retired_milestones {
            // The milestones of this configuration that the event reaches.
            let mut reached: SmallVec<[usize; 4]> = SmallVec::new();
            for &(r, text) in &plan.milestones {
                if plan.says(text, values, heard.texts) {
                    reached.push(r);
                }
            }
            self.reach_milestones(model, &reached, meta, event, span.as_ref());
        }
        for &(r, text) in &plan.rules {
            let rule = &model.rules[r];
            if !plan.says(text, values, heard.texts) {
                continue;
            }
            // The anchor: the nearest span the rule selects (any span, without a selector). A
            // span planned under this configuration knows whether it is one; a span opened
            // before a reload (planned under another, or not at all) is asked by its metadata,
            // so that its events still count under the rules current when they happen.
            let anchor = match &rule.spans {
                None => span.as_ref().and_then(|s| ctx.span(&s.id())),
                Some(_) => span.iter().flat_map(|s| s.scope()).find(|s| {
                    let ext = s.extensions();
                    match self.state_of(&ext) {
                        Some(st) if Arc::ptr_eq(&st.plan.model, model) => {
                            st.plan.anchors.contains(&r)
                        }
                        _ => rule.selects(s.metadata()),
                    }
                }),
            };
            if rule.spans.is_some() && anchor.is_none() {
                continue;
            }
            let (anchor_values, errored) = anchor
                .as_ref()
                .and_then(|a| {
                    let ext = a.extensions();
                    let st = self.state_of(&ext)?;
                    Some((Some(st.values_owned()), st.errored))
                })
                .unwrap_or((None, false));
            let anchor_meta = anchor.as_ref().map(|a| a.metadata());
            let anchor_view = anchor_values.as_ref().map(FieldValues::view);
            let subject = Subject {
                name: anchor_meta.map_or(meta.name(), |m| m.name()),
                target: meta.target(),
                own: anchor_view.as_ref(),
                outcome: Outcome::of(anchor_view, errored),
            };
            let chain = RegistryLookup {
                locals: [values_view.as_ref(), anchor_view.as_ref()],
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
                Measure::Events(_) => record_rule(model, rule, None, &subject, &chain, Op::Add(1)),
                Measure::EventField(_, f) => {
                    let value = values.and_then(|v| v.by_name(f));
                    record_numeric(model, &applied, value, &subject, &chain)
                }
                _ => {}
            }
        }
    }
}

/// Whether the event's captured `message` is the one `rule`'s event selector asks for (if any).
pub(super) fn message_matches(rule: &Rule, values: &FieldValues) -> bool {
    text_matches(rule, values.by_name("message"))
}

/// As [`message_matches`], given the event's message.
pub(super) fn text_matches(rule: &Rule, message: Option<Value<'_>>) -> bool {
    rule.event_match()
        .and_then(|m| m.message.as_deref())
        .is_none_or(|text| message.is_some_and(|v| v.text_eq(text)))
}
