//! Recording: conditions checked, labels resolved and a value applied to the series of one
//! rule. Shared by the span and event paths; nothing here depends on the layer's own state.

use crate::config::MetricKind;
use crate::instruments::{Op, Refusal, hash_labels};
use crate::labels::{LabelBuf, Lookup, Subject, conditions_hold, resolve};
use crate::plan::Applied;
use crate::ruleset::{Rule, Ruleset};
use crate::values::Value;

/// The largest increment a counter takes from a field: 2^53.
const MAX_COUNTER_STEP: f64 = 9_007_199_254_740_992.0;

/// Checks `rule`'s conditions and resolves its labels.
pub(super) fn labels_for<'a>(
    model: &Ruleset,
    rule: &'a Rule,
    own_slots: Option<&[Option<u8>]>,
    subject: &Subject<'a>,
    lookup: &dyn Lookup,
) -> Option<LabelBuf<'a>> {
    if !conditions_hold(rule, subject, lookup) {
        return None;
    }
    let mut buf = LabelBuf::new(model.settings.max_label_len);
    resolve(rule, own_slots, subject, lookup, &mut buf);
    if buf.take_truncated() {
        model.health.truncated(&model.settings.recorder, 1);
    }
    Some(buf)
}

/// Applies one rule: checks conditions, resolves labels, records `op`.
pub(super) fn record_rule(
    model: &Ruleset,
    rule: &Rule,
    own_slots: Option<&[Option<u8>]>,
    subject: &Subject<'_>,
    lookup: &dyn Lookup,
    op: Op,
) {
    if let Some(buf) = labels_for(model, rule, own_slots, subject, lookup) {
        let values = buf.values();
        model
            .family(rule)
            .apply(&model.settings.recorder, &values, hash_labels(&values), op);
    }
}

/// Resolves a gauge handle for `rule`, or `None` if a condition fails.
pub(super) fn gauge_for(
    model: &Ruleset,
    rule: &Rule,
    own_slots: Option<&[Option<u8>]>,
    subject: &Subject<'_>,
    lookup: &dyn Lookup,
) -> Option<metrics::Gauge> {
    let buf = labels_for(model, rule, own_slots, subject, lookup)?;
    let values = buf.values();
    let handle = model
        .family(rule)
        .handle(&model.settings.recorder, &values, hash_labels(&values));
    handle.gauge().cloned()
}

/// The op for a numeric value on a family of `kind`, or the reason it cannot be recorded.
pub(super) fn numeric_op(
    kind: MetricKind,
    value: Option<Value<'_>>,
) -> Result<Option<Op>, Refusal> {
    let Some(value) = value else {
        return Ok(None);
    };
    let v = value.as_f64().ok_or(Refusal::NotANumber)?;
    if v.is_nan() {
        return Err(Refusal::NotANumber);
    }
    Ok(Some(match kind {
        // A gauge may read ±Inf, e.g. an unlimited limit (metrics-exporter-prometheus
        // writes `inf`, which Prometheus parses).
        MetricKind::Gauge => Op::Set(v),
        _ if v.is_infinite() => return Err(Refusal::NotFinite),
        MetricKind::Histogram => Op::Observe(v),
        MetricKind::Counter if v < 0.0 => return Err(Refusal::Negative),
        // Past 2^53 an f64 no longer holds every integer, and a few such increments
        // would wrap the recorder's u64: an absurd increment is refused, not wrapped.
        MetricKind::Counter if v > MAX_COUNTER_STEP => return Err(Refusal::TooLarge),
        MetricKind::Counter => Op::Add(v as u64),
    }))
}

/// The op for a numeric field value, or `None`: a missing value records nothing, a refused
/// one is counted in the health metric when `applies()` (the rule's conditions hold).
pub(super) fn value_op(
    model: &Ruleset,
    rule: &Rule,
    value: Option<Value<'_>>,
    applies: impl FnOnce() -> bool,
) -> Option<Op> {
    let family = model.family(rule);
    match numeric_op(family.kind, value) {
        Ok(op) => op,
        Err(refusal) => {
            debug_assert!(
                refusal.possible_for(family.kind),
                "a {:?} refused a value as {refusal:?}, which its counter was not registered \
                 for at zero: this is a bug",
                family.kind
            );
            if applies() {
                let rec = &model.settings.recorder;
                model.health.rejected(rec, &family.exported, refusal);
            }
            None
        }
    }
}

pub(super) fn record_numeric(
    model: &Ruleset,
    applied: &Applied,
    value: Option<Value<'_>>,
    subject: &Subject<'_>,
    lookup: &dyn Lookup,
) {
    let rule = &model.rules[applied.rule];
    if let Some(op) = value_op(model, rule, value, || {
        conditions_hold(rule, subject, lookup)
    }) {
        record_rule(model, rule, Some(&applied.own_slots), subject, lookup, op);
    }
}
