//! Captured field values: what a span or an event said, kept without heap allocation.
//!
//! A plan tells which of a callsite's fields matter (by field index); only those are captured.
//! Numbers and bools are kept as they are; text (`&str`, `Display`, `Debug`, errors) is written
//! into an inline arena through a writer that stops at the label-value bound, so a hostile
//! `Debug` implementation can neither make us allocate nor run long. Text longer than the bound
//! is cut on a character boundary and flagged as truncated.

use std::fmt::{self, Write as _};

use arrayvec::{ArrayString, ArrayVec};
use smallvec::SmallVec;
use tracing_core::field::{Field, FieldSet, Visit};

/// Inline capacity of the text arena. Three typical label values (a service name, a deployment
/// id, a status) fit; more text spills to the heap, bounded by slots × the value bound × 2.
const ARENA_INLINE: usize = 160;
/// The largest cache key; a span whose key is longer skips the cache.
const KEY_INLINE: usize = 192;
/// Inline number of captured fields.
const SLOTS_INLINE: usize = 6;
/// The compact grade of span state (see `crate::state`): captured fields it has room for (a
/// plan that captures more gets the full grade) ...
pub(crate) const COMPACT_SLOTS: usize = 3;
/// ... and inline text (the service and deployment of the benchmarks' spans need 36 bytes).
/// More text spills to the heap as the full grade's does beyond `ARENA_INLINE`, and later spans
/// of the callsite get the full grade (see `SpanPlan::compact`).
pub(crate) const COMPACT_TEXT: usize = 48;

/// The indices of the bits set in `m`, lowest first: the fields of a bit set of field indices,
/// the texts of a bit set of message texts.
pub(crate) fn ones(mut m: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = m.trailing_zeros() as usize;
        m &= m.checked_sub(1)?;
        Some(i)
    })
}

/// One captured value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Raw {
    Unset,
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// Text at `start..start + len` in the arena; `cut`: the first bytes of a longer text.
    Str {
        start: u32,
        len: u32,
        cut: bool,
    },
}

/// A captured value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(&'a str),
    /// The first bytes of a longer text, cut to the label bound: a label shows them, but they
    /// equal no text and parse as no number.
    Cut(&'a str),
}

impl Value<'_> {
    /// The value as a number: numbers as they are, bools as 0/1, text if it parses.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Str(s) => s.trim().parse().ok(),
            // The first bytes of a number are not that number.
            Value::Cut(_) => None,
        }
    }

    /// Writes the value's text into `out`.
    pub(crate) fn write_to(&self, out: &mut Arena) -> (u32, u32) {
        match *self {
            Value::Str(s) | Value::Cut(s) => out.push_str(s),
            Value::U64(v) => out.push_u64(v),
            Value::I64(v) => out.push_i64(v),
            Value::F64(v) => out.push_fmt(format_args!("{}", Float(v))),
            Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        }
    }

    /// Compares the value's text with `text` without formatting into memory.
    pub(crate) fn text_eq(&self, text: &str) -> bool {
        match *self {
            Value::Str(s) => s == text,
            // Only the first bytes of the text are known: equal to nothing.
            Value::Cut(_) => false,
            Value::Bool(b) => text == if b { "true" } else { "false" },
            _ => {
                let mut cmp = TextCompare {
                    rest: text,
                    equal: true,
                };
                let _ = match *self {
                    Value::U64(v) => write!(cmp, "{v}"),
                    Value::I64(v) => write!(cmp, "{v}"),
                    Value::F64(v) => write!(cmp, "{}", Float(v)),
                    _ => Ok(()),
                };
                cmp.equal && cmp.rest.is_empty()
            }
        }
    }
}

/// A float as label text: the shortest text that reads back as the same `f64` (Rust's
/// shortest round-trip digits), so at most 24 bytes and never cut by the label bound.
///
/// - `1e-4 <= |v| < 1e16`, and zero: plain decimal, integral values without a fraction:
///   `0.1`, `12.5`, `3`, `200` (so a float status code still maps as `200` does), `-0`;
/// - otherwise scientific notation: `1e300`, `-1e-300`, `1.5e-7`, `1.7976931348623157e308`;
/// - not a number and the infinities as Prometheus writes them: `NaN`, `+Inf`, `-Inf`.
///
/// Conditions compare a float field's text as labels show it.
pub(crate) struct Float(pub(crate) f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if v == 0.0 || (1e-4..1e16).contains(&v.abs()) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

struct TextCompare<'a> {
    rest: &'a str,
    equal: bool,
}

impl fmt::Write for TextCompare<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.rest.strip_prefix(s) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => {
                self.equal = false;
                Err(fmt::Error)
            }
        }
    }
}

/// Text kept inline up to `N` bytes, then on the heap.
#[derive(Debug, Clone)]
enum Text<const N: usize> {
    Inline(ArrayString<N>),
    Heap(String),
}

impl<const N: usize> Text<N> {
    #[inline]
    fn as_str(&self) -> &str {
        match self {
            Text::Inline(a) => a.as_str(),
            Text::Heap(h) => h.as_str(),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.as_str().len()
    }

    #[inline]
    fn push_str(&mut self, s: &str) {
        match self {
            Text::Inline(a) => {
                if a.try_push_str(s).is_err() {
                    let mut h = String::with_capacity((a.len() + s.len()).max(2 * N));
                    h.push_str(a);
                    h.push_str(s);
                    *self = Text::Heap(h);
                }
            }
            Text::Heap(h) => h.push_str(s),
        }
    }

    fn clear(&mut self) {
        match self {
            Text::Inline(a) => a.clear(),
            Text::Heap(h) => h.clear(),
        }
    }
}

/// Text for captured values, inline up to `N` bytes. Values are appended and read back by
/// range; the arena only ever holds whole UTF-8 text, so reads need no validation.
#[derive(Debug, Clone)]
pub(crate) struct Arena<const N: usize = ARENA_INLINE> {
    text: Text<N>,
    /// Values written from now on are cut at this many bytes (0 = no bound). A `u32` (text is
    /// addressed by `u32` ranges anyway) keeps the compact state within its size.
    bound: u32,
    /// Set when a write was cut.
    truncated: bool,
    /// Whether the last write was cut.
    last_cut: bool,
}

impl<const N: usize> Arena<N> {
    pub(crate) fn with_bound(bound: usize) -> Self {
        Arena {
            text: Text::Inline(ArrayString::new()),
            bound: u32::try_from(bound).unwrap_or(u32::MAX),
            truncated: false,
            last_cut: false,
        }
    }

    pub(crate) fn get(&self, start: u32, len: u32) -> &str {
        let (start, len) = (start as usize, len as usize);
        // Ranges are only ever made by this arena, on character boundaries.
        self.text
            .as_str()
            .get(start..start + len)
            .unwrap_or_default()
    }

    fn room(&self) -> usize {
        if self.bound == 0 {
            usize::MAX
        } else {
            self.bound as usize
        }
    }

    /// Appends `s`, cut to the bound on a character boundary.
    pub(crate) fn push_str(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        let room = self.room();
        self.last_cut = s.len() > room;
        let kept = if !self.last_cut {
            s
        } else {
            self.truncated = true;
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        };
        self.text.push_str(kept);
        (start as u32, kept.len() as u32)
    }

    /// Appends formatted text, stopping the formatter as soon as the bound is reached (so a
    /// hostile `Debug` neither allocates without bound nor runs long).
    pub(crate) fn push_fmt(&mut self, args: fmt::Arguments<'_>) -> (u32, u32) {
        if let Some(s) = args.as_str() {
            return self.push_str(s);
        }
        let start = self.text.len();
        let room = self.room();
        let mut w = BoundedWriter {
            out: &mut self.text,
            room,
            cut: false,
        };
        let _ = w.write_fmt(args);
        self.last_cut = w.cut;
        if w.cut {
            self.truncated = true;
        }
        (start as u32, (self.text.len() - start) as u32)
    }

    pub(crate) fn push_u64(&mut self, v: u64) -> (u32, u32) {
        self.push_str(itoa::Buffer::new().format(v))
    }

    pub(crate) fn push_i64(&mut self, v: i64) -> (u32, u32) {
        self.push_str(itoa::Buffer::new().format(v))
    }

    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the text is still inline (then at most `N` bytes).
    #[inline(always)]
    fn is_inline(&self) -> bool {
        matches!(self.text, Text::Inline(_))
    }

    pub(crate) fn clear(&mut self) {
        self.text.clear();
    }

    /// Whether a write was cut since the last call; resets the flag.
    pub(crate) fn take_truncated(&mut self) -> bool {
        std::mem::take(&mut self.truncated)
    }
}

/// Writes at most `room` bytes, only whole characters, then refuses (which stops the
/// formatting machinery early).
struct BoundedWriter<'a, const N: usize> {
    out: &'a mut Text<N>,
    room: usize,
    cut: bool,
}

impl<const N: usize> fmt::Write for BoundedWriter<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room {
            self.out.push_str(s);
            self.room -= s.len();
            return Ok(());
        }
        let mut end = self.room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.out.push_str(&s[..end]);
        self.room = 0;
        self.cut = true;
        Err(fmt::Error)
    }
}

/// A cache key on the stack (written by `labels::write_key`); its bytes are not zeroed first.
pub(crate) struct KeyBuf {
    bytes: ArrayVec<u8, KEY_INLINE>,
}

impl KeyBuf {
    #[inline]
    pub(crate) fn new() -> Self {
        KeyBuf {
            bytes: ArrayVec::new(),
        }
    }

    /// Appends `b`; `false` (and nothing appended) if it does not fit.
    #[inline]
    fn put(&mut self, b: &[u8]) -> bool {
        self.bytes.try_extend_from_slice(b).is_ok()
    }

    #[inline]
    pub(crate) fn put_byte(&mut self, b: u8) -> bool {
        self.bytes.try_push(b).is_ok()
    }

    /// Appends a value: a tag for its type, then its bits (text: its length, then its bytes).
    #[inline]
    pub(crate) fn put_value(&mut self, v: Value<'_>) -> bool {
        match v {
            Value::U64(v) => self.put_word(1, v),
            Value::I64(v) => self.put_word(2, v as u64),
            Value::F64(v) => self.put_word(3, v.to_bits()),
            Value::Bool(b) => self.put(&[4 + u8::from(b)]),
            Value::Str(s) => self.put_word(6, s.len() as u64) && self.put(s.as_bytes()),
            Value::Cut(s) => self.put_word(7, s.len() as u64) && self.put(s.as_bytes()),
        }
    }

    #[inline]
    fn put_word(&mut self, tag: u8, word: u64) -> bool {
        let mut b = [0u8; 9];
        b[0] = tag;
        b[1..].copy_from_slice(&word.to_le_bytes());
        self.put(&b)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Captured values, read: by slot, or by name through the callsite's (static) field set. A view
/// of a [`FieldValues`] or of a [`Captured`] (whose names are its plan's), cheap to copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    fields: &'static FieldSet,
    /// The captured field indices, a bit set: slots follow field order.
    slot_fields: u64,
    raws: &'a [Raw],
    text: &'a str,
}

impl<'a> Values<'a> {
    pub(crate) fn slot_of(&self, name: &str) -> Option<usize> {
        let index = self.fields.field(name)?.index();
        let bit = 1u64.checked_shl(index as u32)?;
        (self.slot_fields & bit != 0).then(|| (self.slot_fields & (bit - 1)).count_ones() as usize)
    }

    #[inline]
    pub(crate) fn get(&self, slot: usize) -> Option<Value<'a>> {
        Some(match *self.raws.get(slot)? {
            Raw::Unset => return None,
            Raw::U64(v) => Value::U64(v),
            Raw::I64(v) => Value::I64(v),
            Raw::F64(v) => Value::F64(v),
            Raw::Bool(v) => Value::Bool(v),
            Raw::Str {
                start,
                len,
                cut: false,
            } => Value::Str(text_at(self.text, start, len)),
            Raw::Str { start, len, .. } => Value::Cut(text_at(self.text, start, len)),
        })
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<Value<'a>> {
        self.get(self.slot_of(name)?)
    }

    pub(crate) fn is_set(&self, slot: usize) -> bool {
        !matches!(self.raws.get(slot), None | Some(Raw::Unset))
    }
}

/// The text at `start..start + len` of an arena's text.
#[inline]
fn text_at(text: &str, start: u32, len: u32) -> &str {
    let (start, len) = (start as usize, len as usize);
    // Ranges are only ever made by the arena, on character boundaries.
    text.get(start..start + len).unwrap_or_default()
}

/// Where captured values keep their raw values, one per slot.
pub(crate) trait RawSlots {
    /// `n` unset slots.
    fn unset(n: usize) -> Self;
    fn slots(&self) -> &[Raw];
    fn slots_mut(&mut self) -> &mut [Raw];
    /// Whether the slots went to the heap.
    fn spilled(&self) -> bool;
}

/// Slots inline up to `SLOTS_INLINE`, then on the heap.
type FullSlots = SmallVec<[Raw; SLOTS_INLINE]>;

impl RawSlots for FullSlots {
    #[inline]
    fn unset(n: usize) -> Self {
        SmallVec::from_elem(Raw::Unset, n)
    }

    #[inline]
    fn slots(&self) -> &[Raw] {
        self
    }

    #[inline]
    fn slots_mut(&mut self) -> &mut [Raw] {
        self
    }

    #[inline]
    fn spilled(&self) -> bool {
        SmallVec::spilled(self)
    }
}

/// A fixed number of slots, for plans that capture at most that many fields: the ones beyond
/// stay unset, so they read as slots that do not exist (no value, nothing to merge).
impl<const S: usize> RawSlots for [Raw; S] {
    #[inline]
    fn unset(n: usize) -> Self {
        debug_assert!(n <= S, "{n} slots in a fixed room of {S}: this is a bug");
        [Raw::Unset; S]
    }

    #[inline]
    fn slots(&self) -> &[Raw] {
        self
    }

    #[inline]
    fn slots_mut(&mut self) -> &mut [Raw] {
        self
    }

    #[inline]
    fn spilled(&self) -> bool {
        false
    }
}

/// The captured values of one span or event, by slot, without their names: raw values in `R`,
/// text inline up to `N` bytes, more on the heap.
#[derive(Debug, Clone)]
pub(crate) struct Captured<R, const N: usize> {
    raws: R,
    arena: Arena<N>,
}

/// The values of a span of the compact grade (see `crate::state`).
pub(crate) type CompactValues = Captured<[Raw; COMPACT_SLOTS], COMPACT_TEXT>;

impl<R: RawSlots, const N: usize> Captured<R, N> {
    /// `slots` empty slots, with text cut at `bound` bytes.
    #[inline]
    pub(crate) fn new(slots: usize, bound: usize) -> Self {
        Captured {
            raws: R::unset(slots),
            arena: Arena::with_bound(bound),
        }
    }

    /// The values, named by the fields of `fields` whose indices are in the bit set
    /// `slot_fields` (those they were made for).
    #[inline]
    pub(crate) fn view(&self, fields: &'static FieldSet, slot_fields: u64) -> Values<'_> {
        Values {
            fields,
            slot_fields,
            raws: self.raws.slots(),
            text: self.arena.text.as_str(),
        }
    }

    /// Whether anything went to the heap (more values or text than the inline room).
    #[inline]
    pub(crate) fn spilled(&self) -> bool {
        self.raws.spilled() || !self.arena.is_inline()
    }

    pub(crate) fn take_truncated(&mut self) -> bool {
        self.arena.take_truncated()
    }

    fn set(&mut self, slot: usize, raw: Raw) {
        if let Some(r) = self.raws.slots_mut().get_mut(slot) {
            *r = raw;
        }
    }

    fn set_str(&mut self, slot: usize, text: &str) {
        self.make_room();
        let (start, len) = self.arena.push_str(text);
        let cut = self.arena.last_cut;
        self.set(slot, Raw::Str { start, len, cut });
    }

    /// Re-recording a text field appends; compact first when the dead text would let the
    /// arena grow past twice what live values can need.
    #[inline(always)]
    fn make_room(&mut self) {
        // Inline text (the usual case) is never more than `N` bytes: nothing to do.
        if self.arena.is_inline() {
            return;
        }
        self.make_room_spilled();
    }

    #[cold]
    fn make_room_spilled(&mut self) {
        // At least twice `N`.
        let limit = self.raws.slots().len().max(1) * (self.arena.bound as usize).max(N) * 2;
        if self.arena.len() > limit {
            self.compact();
        }
    }

    fn set_text(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        self.make_room();
        let (start, len) = self.arena.push_fmt(args);
        let cut = self.arena.last_cut;
        self.set(slot, Raw::Str { start, len, cut });
    }

    fn compact(&mut self) {
        let bound = self.arena.bound as usize;
        let old = std::mem::replace(&mut self.arena, Arena::with_bound(bound));
        self.arena.truncated = old.truncated;
        for raw in self.raws.slots_mut().iter_mut() {
            if let Raw::Str { start, len, cut } = *raw {
                let (s, l) = self.arena.push_str(old.get(start, len));
                *raw = Raw::Str {
                    start: s,
                    len: l,
                    cut,
                };
            }
        }
    }

    /// Copies the slots in the bit set `seen` from `from` (which has the same slot names).
    pub(crate) fn merge<R2: RawSlots, const N2: usize>(
        &mut self,
        from: &Captured<R2, N2>,
        seen: u64,
    ) {
        if from.arena.truncated {
            self.arena.truncated = true;
        }
        for slot in 0..self.raws.slots().len().min(64) {
            if seen & (1 << slot) == 0 {
                continue;
            }
            match from.raws.slots().get(slot).copied() {
                Some(Raw::Str { start, len, cut }) => {
                    self.set_str(slot, from.arena.get(start, len));
                    if let Some(Raw::Str { cut: c, .. }) = self.raws.slots_mut().get_mut(slot) {
                        *c |= cut;
                    }
                }
                Some(raw) => self.set(slot, raw),
                None => {}
            }
        }
    }

    /// A visitor that records into slots chosen by `slot_for(field index)`.
    pub(crate) fn recorder<'a>(&'a mut self, slot_for: &'a [Option<u8>]) -> SlotVisitor<'a, R, N> {
        SlotVisitor {
            values: self,
            slot_for,
            seen: 0,
        }
    }
}

/// The captured values of one span or event, by slot; a slot's name is that of its field in the
/// callsite's (static) field set.
#[derive(Debug, Clone)]
pub(crate) struct FieldValues {
    fields: &'static FieldSet,
    /// The captured field indices, a bit set: slots follow field order.
    slot_fields: u64,
    captured: Captured<FullSlots, ARENA_INLINE>,
}

impl FieldValues {
    /// Empty slots for the fields of `fields` whose indices are in the bit set `slot_fields`,
    /// with text cut at `bound` bytes.
    #[inline]
    pub(crate) fn new(fields: &'static FieldSet, slot_fields: u64, bound: usize) -> Self {
        FieldValues {
            fields,
            slot_fields,
            captured: Captured::new(slot_fields.count_ones() as usize, bound),
        }
    }

    /// A copy of `values` (named as they are), with text cut at `bound` bytes.
    pub(crate) fn copy_of(values: Values<'_>, bound: usize) -> Self {
        let mut arena = Arena::with_bound(0);
        // Whole text, so the ranges stay valid; only ever text already within the bound.
        arena.text.push_str(values.text);
        arena.bound = u32::try_from(bound).unwrap_or(u32::MAX);
        FieldValues {
            fields: values.fields,
            slot_fields: values.slot_fields,
            captured: Captured {
                raws: SmallVec::from_slice(values.raws),
                arena,
            },
        }
    }

    #[inline]
    pub(crate) fn view(&self) -> Values<'_> {
        self.captured.view(self.fields, self.slot_fields)
    }

    #[inline]
    pub(crate) fn get(&self, slot: usize) -> Option<Value<'_>> {
        self.view().get(slot)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<Value<'_>> {
        self.view().by_name(name)
    }

    pub(crate) fn take_truncated(&mut self) -> bool {
        self.captured.take_truncated()
    }

    /// The values without their names.
    pub(crate) fn captured(&self) -> &Captured<FullSlots, ARENA_INLINE> {
        &self.captured
    }

    /// Copies the slots in the bit set `seen` from `from` (which has the same slot names).
    pub(crate) fn merge(&mut self, from: &FieldValues, seen: u64) {
        self.captured.merge(&from.captured, seen);
    }

    /// A visitor that records into slots chosen by `slot_for(field index)`.
    pub(crate) fn recorder<'a>(&'a mut self, slot_for: &'a [Option<u8>]) -> SlotVisitor<'a> {
        self.captured.recorder(slot_for)
    }
}

/// Visits fields and stores the ones a plan wants. `seen` is a bit set of the slots written
/// during this visit (slot < 64).
pub(crate) struct SlotVisitor<'a, R = FullSlots, const N: usize = ARENA_INLINE> {
    values: &'a mut Captured<R, N>,
    slot_for: &'a [Option<u8>],
    pub(crate) seen: u64,
}

impl<R: RawSlots, const N: usize> SlotVisitor<'_, R, N> {
    #[inline]
    fn slot(&mut self, field: &Field) -> Option<usize> {
        let slot = (*self.slot_for.get(field.index())?)? as usize;
        self.seen |= 1u64 << (slot & 63);
        Some(slot)
    }
}

impl<R: RawSlots, const N: usize> Visit for SlotVisitor<'_, R, N> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if let Some(s) = self.slot(field) {
            self.values.set(s, Raw::F64(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(s) = self.slot(field) {
            self.values.set(s, Raw::I64(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(s) = self.slot(field) {
            self.values.set(s, Raw::U64(value));
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if let Some(s) = self.slot(field) {
            match i64::try_from(value) {
                Ok(v) => self.values.set(s, Raw::I64(v)),
                Err(_) => self.values.set_text(s, format_args!("{value}")),
            }
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if let Some(s) = self.slot(field) {
            match u64::try_from(value) {
                Ok(v) => self.values.set(s, Raw::U64(v)),
                Err(_) => self.values.set_text(s, format_args!("{value}")),
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(s) = self.slot(field) {
            self.values.set(s, Raw::Bool(value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(s) = self.slot(field) {
            self.values.set_str(s, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if let Some(s) = self.slot(field) {
            self.values.set_text(s, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(s) = self.slot(field) {
            self.values.set_text(s, format_args!("{value:?}"));
        }
    }
}

/// In unit tests: the metadata of a static callsite of `kind` (`SPAN` or `EVENT`) with the
/// given field names, for code that needs a `&'static FieldSet` without tracing's macros.
#[cfg(test)]
macro_rules! test_callsite {
    ($kind:ident, [$($name:literal),* $(,)?]) => {{
        use tracing_core::{Callsite, Interest, Metadata};
        struct Cs;
        static CS: Cs = Cs;
        static META: Metadata<'static> = tracing_core::metadata! {
            name: "test",
            target: module_path!(),
            level: tracing_core::Level::INFO,
            fields: &[$($name),*],
            callsite: &CS,
            kind: tracing_core::metadata::Kind::$kind,
        };
        impl Callsite for Cs {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                &META
            }
        }
        &META
    }};
}
#[cfg(test)]
pub(crate) use test_callsite;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        let mut a: Arena = Arena::with_bound(5);
        let (s, l) = a.push_str("héllo wörld");
        assert_eq!(a.get(s, l), "héll");
        assert!(a.take_truncated());
        let (s, l) = a.push_str("abc");
        assert_eq!(a.get(s, l), "abc");
        assert!(!a.take_truncated());
    }

    #[test]
    fn huge_debug_output_stops_early() {
        struct Endless;
        impl fmt::Debug for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for _ in 0..u32::MAX {
                    f.write_str("xxxxxxxx")?;
                }
                Ok(())
            }
        }
        let mut a: Arena = Arena::with_bound(16);
        let (s, l) = a.push_fmt(format_args!("{:?}", Endless));
        assert_eq!(a.get(s, l), "x".repeat(16));
    }

    /// The text a float label shows.
    fn float_text(v: f64) -> String {
        let mut a: Arena = Arena::with_bound(128);
        let (s, l) = Value::F64(v).write_to(&mut a);
        assert!(!a.take_truncated());
        let text = a.get(s, l).to_owned();
        // Conditions compare against the same text.
        assert!(Value::F64(v).text_eq(&text), "{text}");
        assert!(!Value::F64(v).text_eq(&format!("{text}0")));
        text
    }

    #[test]
    fn floats_read_as_their_shortest_round_trip_text() {
        let cases: [(f64, &str); 22] = [
            (1e300, "1e300"),
            (-1e-300, "-1e-300"),
            (f64::MAX, "1.7976931348623157e308"),
            (f64::MIN, "-1.7976931348623157e308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-7"),
            (12.5, "12.5"),
            (3.0, "3"),
            (200.0, "200"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1e-4, "0.0001"),
            (9.9e-5, "9.9e-5"),
            (9007199254740992.0, "9007199254740992"),
            (1e16, "1e16"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, text) in cases {
            assert_eq!(float_text(v), text);
            if v.is_finite() {
                assert_eq!(
                    text.parse::<f64>().unwrap().to_bits(),
                    v.to_bits(),
                    "{text}"
                );
            }
        }
        // Every finite float fits in 24 bytes.
        for v in [
            -1.2345678901234567e-300,
            -0.00012345678901234567,
            -1234567890123456.7,
        ] {
            assert!(float_text(v).len() <= 24, "{}", float_text(v));
        }
    }

    #[test]
    fn numbers_compare_as_text() {
        assert!(Value::U64(503).text_eq("503"));
        assert!(!Value::U64(503).text_eq("50"));
        assert!(!Value::U64(50).text_eq("503"));
        assert!(Value::I64(-1).text_eq("-1"));
        assert!(Value::Bool(true).text_eq("true"));
        assert_eq!(Value::Str(" 12 ").as_f64(), Some(12.0));
    }

    /// The field set of a static callsite with fields `a` and `b`.
    fn fields_a_b() -> &'static FieldSet {
        test_callsite!(SPAN, ["a", "b"]).fields()
    }

    #[test]
    fn rerecording_text_stays_bounded() {
        let mut v = FieldValues::new(fields_a_b(), 0b11, 8);
        v.captured.set_text(1, format_args!("keep"));
        for i in 0..10_000 {
            v.captured.set_text(0, format_args!("value{i}"));
        }
        assert!(v.captured.arena.len() <= 2 * 2 * ARENA_INLINE + 8);
        assert_eq!(v.by_name("b"), Some(Value::Str("keep")));
        assert_eq!(v.by_name("a"), Some(Value::Cut("value999")));
    }
}
