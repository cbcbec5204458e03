//! Labels: resolving a rule's label values and checking its conditions.
//!
//! Values are resolved into a stack buffer (no heap for usual sizes) in the order a user expects:
//! the event's fields (for event measures), the span's own fields, then the nearest ancestor that
//! recorded the field, then the label's default. Mappings apply before the value is hashed, so
//! they reduce cardinality rather than hide it. The resolved values then select a series in the
//! family's cardinality-bounded cache (see [`crate::instruments`]).

use smallvec::SmallVec;

use crate::config::{Condition, LabelSource};
use crate::plan::{OTEL_KIND, OTEL_NAME, Rule};
use crate::state::Outcome;
use crate::values::{Arena, FieldValues, Value};

/// Finds a field's value beyond the span's own captured fields.
pub(crate) trait Lookup {
    /// Calls `f` with the value of `field` from the first place that has it: the local values
    /// (event, span), then, if `inherit`, the ancestors. Returns whether it was found.
    fn field(&self, field: &str, inherit: bool, f: &mut dyn FnMut(Value<'_>)) -> bool;
}

/// What a rule knows about the span it is resolved for.
pub(crate) struct Facts<'a> {
    /// The span's (or, for an event rule without a span, the event's) name and target.
    pub(crate) name: &'static str,
    pub(crate) target: &'static str,
    /// The span's own captured values (for `otel.*` fields and fast own-field access).
    pub(crate) own: Option<&'a FieldValues>,
    pub(crate) outcome: Outcome,
}

/// Resolved label values: text in an arena, one optional range per label key.
pub(crate) struct LabelBuf {
    arena: Arena,
    ranges: SmallVec<[Option<(u32, u32)>; 8]>,
}

impl LabelBuf {
    pub(crate) fn new(bound: usize) -> Self {
        LabelBuf {
            arena: Arena::with_bound(bound),
            ranges: SmallVec::new(),
        }
    }

    pub(crate) fn values(&self) -> SmallVec<[Option<&str>; 8]> {
        self.ranges
            .iter()
            .map(|r| r.map(|(s, l)| self.arena.get(s, l)))
            .collect()
    }

    /// Whether a value was cut to the bound while resolving.
    pub(crate) fn take_truncated(&mut self) -> bool {
        self.arena.take_truncated()
    }
}

fn span_kind(raw: Option<Value<'_>>) -> &'static str {
    match raw {
        Some(Value::Str(s)) => {
            const KINDS: [(&str, &str); 5] = [
                ("server", "SPAN_KIND_SERVER"),
                ("client", "SPAN_KIND_CLIENT"),
                ("producer", "SPAN_KIND_PRODUCER"),
                ("consumer", "SPAN_KIND_CONSUMER"),
                ("internal", "SPAN_KIND_INTERNAL"),
            ];
            KINDS
                .iter()
                .find(|(k, _)| s.eq_ignore_ascii_case(k))
                .map_or("SPAN_KIND_INTERNAL", |(_, v)| *v)
        }
        _ => "SPAN_KIND_INTERNAL",
    }
}

/// Resolves `rule`'s labels into `buf` (cleared first). `own_slots` gives, per label, the slot of
/// its field among `facts.own`, when the plan knows it.
pub(crate) fn resolve(
    rule: &Rule,
    own_slots: Option<&[Option<u8>]>,
    facts: &Facts<'_>,
    lookup: &dyn Lookup,
    buf: &mut LabelBuf,
) {
    buf.arena.clear();
    buf.ranges.clear();
    for (i, label) in rule.labels.iter().enumerate() {
        let arena = &mut buf.arena;
        let mut range = match &label.source {
            LabelSource::Fixed(v) => Some(arena.push_str(v)),
            LabelSource::Target => Some(arena.push_str(facts.target)),
            LabelSource::SpanName => Some(match facts.own.and_then(|o| o.by_name(OTEL_NAME)) {
                Some(v) => v.write_to(arena),
                None => arena.push_str(facts.name),
            }),
            LabelSource::SpanKind => {
                Some(arena.push_str(span_kind(facts.own.and_then(|o| o.by_name(OTEL_KIND)))))
            }
            LabelSource::Outcome(values) => Some(arena.push_str(match facts.outcome {
                Outcome::Unset => &values.unset,
                Outcome::Ok => &values.ok,
                Outcome::Error => &values.error,
            })),
            LabelSource::Field(name) => {
                let own = own_slots
                    .and_then(|s| s.get(i).copied().flatten())
                    .and_then(|slot| facts.own?.get(slot as usize));
                match own {
                    Some(v) => Some(v.write_to(arena)),
                    None => {
                        let mut found = None;
                        lookup.field(name, label.inherit, &mut |v| {
                            found = Some(v.write_to(arena))
                        });
                        found
                    }
                }
            }
        };
        if let (Some((s, l)), Some(mapping)) = (range, &label.mapping) {
            if let Some(mapped) = mapping.apply(buf.arena.get(s, l)) {
                range = Some(buf.arena.push_str(mapped));
            }
        }
        if range.is_none() {
            range = label.default.as_deref().map(|d| buf.arena.push_str(d));
        }
        buf.ranges.push(range);
    }
}

/// Whether every condition of `rule` holds.
pub(crate) fn conditions_hold(rule: &Rule, facts: &Facts<'_>, lookup: &dyn Lookup) -> bool {
    rule.conditions.iter().all(|c| match c {
        Condition::Error => facts.outcome == Outcome::Error,
        Condition::NotError => facts.outcome != Outcome::Error,
        Condition::Field(fc) => {
            use crate::config::FieldTest;
            let mut verdict = None;
            let found = lookup.field(&fc.field, true, &mut |v| {
                verdict = Some(match &fc.test {
                    FieldTest::Recorded => true,
                    FieldTest::Missing => false,
                    FieldTest::OneOf(set) => set.iter().any(|s| v.text_eq(s)),
                    FieldTest::NotOneOf(set) => !set.iter().any(|s| v.text_eq(s)),
                    FieldTest::Between(lo, hi) => v.as_f64().is_some_and(|x| *lo <= x && x <= *hi),
                    FieldTest::NotBetween(lo, hi) => {
                        v.as_f64().is_some_and(|x| !(*lo <= x && x <= *hi))
                    }
                })
            });
            match verdict {
                Some(v) => v,
                None => !found && fc.test == FieldTest::Missing,
            }
        }
    })
}
