//! Labels: resolving a rule's label values and checking its conditions.
//!
//! Values are resolved into a stack buffer (no heap for usual sizes) in the order a user expects:
//! the event's fields (for event measures), the span's own fields, then the nearest ancestor that
//! recorded the field, then the label's default. Mappings apply before the value is hashed, so
//! they reduce cardinality rather than hide it. The resolved values then select a series in the
//! family's cardinality-bounded cache (see [`crate::instruments`]).
//!
//! Before resolving, a span's labels are summed up as a cache key ([`write_key`]): the raw
//! captured values they read, the values inherited from ancestors and the outcome. Everything
//! else a label can read is constant for the callsite, so equal keys mean equal label values.

use smallvec::SmallVec;
use tracing_core::Metadata;

use arrayvec::ArrayString;

use crate::config::{
    Condition, LabelSource, Mapping, OTEL_KIND, OTEL_NAME, RouteMapping, SPAN_KINDS,
};
use crate::plan::KeyPart;
use crate::ruleset::Rule;
use crate::state::Outcome;
use crate::values::{Arena, KeyBuf, Value, Values};

/// Finds a field's value beyond the span's own captured fields.
pub(crate) trait Lookup {
    /// Calls `f` with the value of `field` from the first place that has it: the local values
    /// (event, span), then, if `inherit`, the ancestors. Returns whether it was found.
    fn field(&self, field: &str, inherit: bool, f: &mut dyn FnMut(Value<'_>)) -> bool;

    /// Calls `f(i, value)` for each of `names` (at most 64) that an ancestor has recorded, with
    /// the value of the nearest such ancestor (names whose nearest ancestors are the same span
    /// read it once).
    fn ancestors(&self, names: &[&str], f: &mut dyn FnMut(usize, Value<'_>));
}

/// What a rule knows about the span it is resolved for.
pub(crate) struct Subject<'a> {
    /// The span's (or, for an event rule without a span, the event's) name and target.
    pub(crate) name: &'static str,
    pub(crate) target: &'static str,
    /// The span's own captured values (for `otel.*` fields and fast own-field access).
    pub(crate) own: Option<&'a Values<'a>>,
    pub(crate) outcome: Outcome,
}

impl<'a> Subject<'a> {
    /// A span as its rules see it: its callsite's name and target, its captured values and its
    /// outcome.
    pub(crate) fn span(meta: &Metadata<'static>, own: &'a Values<'a>, outcome: Outcome) -> Self {
        Subject {
            name: meta.name(),
            target: meta.target(),
            own: Some(own),
            outcome,
        }
    }
}

/// Where one resolved label value lives.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// No value: the label is left off.
    Missing,
    /// Text that outlives the resolution: the span's own captured text, the configuration's
    /// constants, the span's static name.
    Borrowed(&'a str),
    /// Text written into the buffer's scratch arena (numbers, values copied from ancestors).
    Scratch(u32, u32),
}

/// Resolved label values, one per label key. Text is borrowed where it can be and copied only
/// where it must be (from ancestors, whose locks are released, or formatted numbers).
pub(crate) struct LabelBuf<'a> {
    scratch: Arena,
    parts: SmallVec<[Part<'a>; 8]>,
    bound: usize,
    truncated: bool,
}

impl<'a> LabelBuf<'a> {
    pub(crate) fn new(bound: usize) -> Self {
        LabelBuf {
            scratch: Arena::with_bound(bound),
            parts: SmallVec::new(),
            bound,
            truncated: false,
        }
    }

    pub(crate) fn values(&self) -> SmallVec<[Option<&str>; 8]> {
        self.parts.iter().map(|p| self.text(*p)).collect()
    }

    /// Whether a value was cut to the bound while resolving.
    pub(crate) fn take_truncated(&mut self) -> bool {
        self.scratch.take_truncated() | std::mem::take(&mut self.truncated)
    }

    /// Borrows `s`, cut to the bound on a character boundary.
    fn borrow(&mut self, s: &'a str) -> Part<'a> {
        if s.len() <= self.bound {
            return Part::Borrowed(s);
        }
        self.truncated = true;
        let mut end = self.bound;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Part::Borrowed(&s[..end])
    }

    /// A captured value: text borrowed, anything else formatted into scratch.
    fn value(&mut self, v: Value<'a>) -> Part<'a> {
        match v {
            Value::Str(s) => self.borrow(s),
            other => {
                let (start, len) = other.write_to(&mut self.scratch);
                Part::Scratch(start, len)
            }
        }
    }

    /// `p` through a route mapping: unchanged (and not copied) unless it changes; else the
    /// route written into scratch, cut to the bound.
    fn route(&mut self, p: Part<'a>, route: &RouteMapping) -> Part<'a> {
        match p {
            Part::Missing => p,
            Part::Borrowed(raw) if !route.changes(raw) => p,
            Part::Borrowed(raw) => {
                let (start, len) = self
                    .scratch
                    .push_fmt(format_args!("{}", route.normalised(raw)));
                Part::Scratch(start, len)
            }
            Part::Scratch(start, len) => {
                let raw = self.scratch.get(start, len);
                if !route.changes(raw) {
                    return p;
                }
                // The raw text is in the arena being written: copy it out first (on the stack
                // while it fits, which the label bound usually ensures).
                let mut inline = ArrayString::<256>::new();
                let copy: std::borrow::Cow<'_, str> = match inline.try_push_str(raw) {
                    Ok(()) => std::borrow::Cow::Borrowed(inline.as_str()),
                    Err(_) => std::borrow::Cow::Owned(raw.to_owned()),
                };
                let (start, len) = self
                    .scratch
                    .push_fmt(format_args!("{}", route.normalised(&copy)));
                Part::Scratch(start, len)
            }
        }
    }

    fn text(&self, p: Part<'a>) -> Option<&str> {
        match p {
            Part::Missing => None,
            Part::Borrowed(s) => Some(s),
            Part::Scratch(start, len) => Some(self.scratch.get(start, len)),
        }
    }
}

fn span_kind(raw: Option<Value<'_>>) -> &'static str {
    match raw {
        Some(Value::Str(s)) => SPAN_KINDS
            .iter()
            .find(|(k, _)| s.eq_ignore_ascii_case(k))
            .map_or("SPAN_KIND_INTERNAL", |(_, v)| *v),
        _ => "SPAN_KIND_INTERNAL",
    }
}

/// Resolves `rule`'s labels into `buf` (cleared first). `own_slots` gives, per label, the slot of
/// its field among `subject.own`, when the plan knows it.
pub(crate) fn resolve<'a>(
    rule: &'a Rule,
    own_slots: Option<&[Option<u8>]>,
    subject: &Subject<'a>,
    lookup: &dyn Lookup,
    buf: &mut LabelBuf<'a>,
) {
    buf.scratch.clear();
    buf.parts.clear();
    for (i, label) in rule.labels.iter().enumerate() {
        let mut part = match &label.source {
            LabelSource::Fixed(v) => Part::Borrowed(v),
            LabelSource::Target => buf.borrow(subject.target),
            LabelSource::SpanName => match subject.own.and_then(|o| o.by_name(OTEL_NAME)) {
                Some(v) => buf.value(v),
                None => buf.borrow(subject.name),
            },
            LabelSource::SpanKind => {
                Part::Borrowed(span_kind(subject.own.and_then(|o| o.by_name(OTEL_KIND))))
            }
            LabelSource::Outcome(values) => match match subject.outcome {
                Outcome::Unset => &values.unset,
                Outcome::Ok => &values.ok,
                Outcome::Error => &values.error,
            } {
                // An empty outcome value leaves the label off.
                v if v.is_empty() => Part::Missing,
                v => Part::Borrowed(v),
            },
            LabelSource::Field(name) => {
                let own = own_slots
                    .and_then(|s| s.get(i).copied().flatten())
                    .and_then(|slot| subject.own?.get(slot as usize));
                match own {
                    Some(v) => buf.value(v),
                    None => {
                        // Ancestors' text is copied: their locks are released after the lookup.
                        let scratch = &mut buf.scratch;
                        let mut found = Part::Missing;
                        lookup.field(name, label.inherit, &mut |v| {
                            let (start, len) = v.write_to(scratch);
                            found = Part::Scratch(start, len);
                        });
                        found
                    }
                }
            }
        };
        match &label.mapping {
            Some(Mapping::Route(route)) => part = buf.route(part, route),
            Some(mapping) => {
                if let Some(mapped) = buf.text(part).and_then(|raw| mapping.apply(raw)) {
                    part = Part::Borrowed(mapped);
                }
            }
            None => {}
        }
        if let (Part::Missing, Some(d)) = (part, &label.default) {
            part = Part::Borrowed(d);
        }
        buf.parts.push(part);
    }
}

/// Writes the cache key of `rule`'s labels (see [`KeyPart`]) for a span with captured values
/// `own` and `outcome`, looking inherited values up through `lookup`. Equal keys mean equal
/// label values, as [`resolve`] would make them. `false` when the key does not fit `out`.
///
/// The key is only a shortcut past [`resolve`]: a caller that gets `false` resolves the labels
/// in full, with the same result. Mutants that make this function give up more often (return
/// `false`, or stop early) therefore change speed, never the metrics; the tests pin results,
/// and `benches/roundrobin.rs` measures the speed.
pub(crate) fn write_key(
    rule: &Rule,
    parts: &[KeyPart],
    own: &Values<'_>,
    outcome: Outcome,
    lookup: &dyn Lookup,
    out: &mut KeyBuf,
) -> bool {
    // Labels to look up in the ancestors: (part index, field name). They are looked up together
    // after the rest of the key, each found value written as [0xFE, part index, value].
    let mut wanted: SmallVec<[(u8, &str); 4]> = SmallVec::new();
    let mut want = |part: usize, label: u8| {
        let name = rule.labels.get(label as usize).and_then(|l| l.field_name());
        match (u8::try_from(part), name) {
            (Ok(part), Some(name)) => {
                wanted.push((part, name));
                true
            }
            _ => false,
        }
    };
    for (i, part) in parts.iter().enumerate() {
        let fits = match *part {
            KeyPart::Outcome => out.put_byte(outcome as u8),
            KeyPart::Slot { slot, inherit } => match (own.get(slot as usize), inherit) {
                (Some(v), _) => out.put_value(v),
                (None, Some(label)) => want(i, label) && out.put_byte(0),
                (None, None) => out.put_byte(0),
            },
            KeyPart::Inherited { label } => want(i, label),
        };
        if !fits {
            return false;
        }
    }
    if wanted.is_empty() {
        return true;
    }
    let names: SmallVec<[&str; 4]> = wanted.iter().map(|(_, n)| *n).collect();
    let mut fits = true;
    lookup.ancestors(&names, &mut |k, v| {
        fits = fits && out.put_byte(0xFE) && out.put_byte(wanted[k].0) && out.put_value(v);
    });
    fits
}

/// Whether every condition of `rule` holds.
#[inline]
pub(crate) fn conditions_hold(rule: &Rule, subject: &Subject<'_>, lookup: &dyn Lookup) -> bool {
    rule.conditions.is_empty() || all_conditions_hold(rule, subject, lookup)
}

fn all_conditions_hold(rule: &Rule, subject: &Subject<'_>, lookup: &dyn Lookup) -> bool {
    rule.conditions.iter().all(|c| match c {
        Condition::Error => subject.outcome == Outcome::Error,
        Condition::NotError => subject.outcome != Outcome::Error,
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
                    // NaN is no number: inside no range, and outside none either.
                    FieldTest::NotBetween(lo, hi) => v
                        .as_f64()
                        .is_some_and(|x| !(x.is_nan() || (*lo <= x && x <= *hi))),
                })
            });
            match verdict {
                Some(v) => v,
                None => !found && fc.test == FieldTest::Missing,
            }
        }
    })
}
