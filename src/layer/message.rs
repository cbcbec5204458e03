//! An event's `message`, compared with the texts that rules ask for while tracing hands it over,
//! without capturing it.
//!
//! What matches is exactly what matched when the message was captured like any other field and
//! compared afterwards: text (`&str`, `Debug`, `Display` of errors, 128-bit integers beyond 64
//! bits) as it would have been captured, cut at the label-value bound (a cut text equals
//! nothing, and counts as a truncation); numbers and bools as their text, never cut.

use std::fmt::{self, Write as _};

use tracing_core::field::{Field, Visit};

use crate::values::{SlotVisitor, Value};

/// Which of `texts` the message equals (a bit set by position; at most 64 texts), and whether
/// its text was longer than the bound.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Heard {
    pub(super) texts: u64,
    pub(super) cut: bool,
}

/// Compares formatted text with every candidate at once, as it is written, with the bound of
/// captured text: `room` bytes (`usize::MAX` for none).
struct Compare<'a> {
    texts: &'a [Box<str>],
    room: usize,
    /// Bytes written so far.
    at: usize,
    /// The candidates still equal to what was written so far.
    alive: u64,
    cut: bool,
}

impl<'a> Compare<'a> {
    #[inline]
    fn new(texts: &'a [Box<str>], bound: usize) -> Self {
        debug_assert!(
            texts.len() <= 64,
            "more than 64 message texts: this is a bug"
        );
        Compare {
            texts,
            room: if bound == 0 { usize::MAX } else { bound },
            at: 0,
            alive: u64::MAX.checked_shr(64 - texts.len() as u32).unwrap_or(0),
            cut: false,
        }
    }

    fn heard(self) -> Heard {
        if self.cut {
            return Heard {
                texts: 0,
                cut: true,
            };
        }
        let mut texts = 0;
        if let [only] = self.texts {
            texts = u64::from(self.alive != 0 && only.len() == self.at);
        } else {
            for (i, t) in self.texts.iter().enumerate() {
                if self.alive & (1 << i) != 0 && t.len() == self.at {
                    texts |= 1 << i;
                }
            }
        }
        Heard { texts, cut: false }
    }
}

impl fmt::Write for Compare<'_> {
    // As the capturing writer: past the bound, the text is cut and the formatter stopped.
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len();
        if n > self.room {
            self.room = 0;
            self.cut = true;
            self.alive = 0;
            return Err(fmt::Error);
        }
        self.room -= n;
        let end = self.at + n;
        if self.alive != 0 {
            if let [only] = self.texts {
                // The usual case: one text asked for.
                if only.as_bytes().get(self.at..end) != Some(s.as_bytes()) {
                    self.alive = 0;
                }
            } else {
                let mut alive = self.alive;
                while alive != 0 {
                    let i = alive.trailing_zeros() as usize;
                    alive &= alive - 1;
                    if self.texts[i].as_bytes().get(self.at..end) != Some(s.as_bytes()) {
                        self.alive &= !(1 << i);
                    }
                }
            }
        }
        self.at = end;
        Ok(())
    }
}

/// Visits an event's fields: the `message` (field `message`, by index) is compared with
/// `texts`; every other field goes to `slots`, which captures the fields the plan wants.
pub(super) struct MessageVisitor<'a, 'b> {
    pub(super) slots: Option<&'a mut SlotVisitor<'b>>,
    pub(super) message: usize,
    pub(super) texts: &'a [Box<str>],
    pub(super) bound: usize,
    pub(super) heard: Heard,
}

impl MessageVisitor<'_, '_> {
    #[inline]
    fn is_message(&self, field: &Field) -> bool {
        field.index() == self.message
    }

    /// A number or bool: equal to the texts it reads as.
    fn value(&mut self, v: Value<'_>) {
        let mut texts = 0;
        for (i, t) in self.texts.iter().enumerate() {
            if v.text_eq(t) {
                texts |= 1 << i;
            }
        }
        self.heard = Heard { texts, cut: false };
    }

    fn text(&mut self, args: fmt::Arguments<'_>) {
        let mut cmp = Compare::new(self.texts, self.bound);
        let _ = fmt::write(&mut cmp, args);
        self.heard = cmp.heard();
    }
}

impl Visit for MessageVisitor<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.is_message(field) {
            self.value(Value::F64(value));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_f64(field, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.is_message(field) {
            self.value(Value::I64(value));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_i64(field, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.is_message(field) {
            self.value(Value::U64(value));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_u64(field, value);
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.is_message(field) {
            match i64::try_from(value) {
                Ok(v) => self.value(Value::I64(v)),
                Err(_) => self.text(format_args!("{value}")),
            };
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_i128(field, value);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.is_message(field) {
            match u64::try_from(value) {
                Ok(v) => self.value(Value::U64(v)),
                Err(_) => self.text(format_args!("{value}")),
            };
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_u128(field, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.is_message(field) {
            self.value(Value::Bool(value));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_bool(field, value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.is_message(field) {
            let mut cmp = Compare::new(self.texts, self.bound);
            let _ = cmp.write_str(value);
            self.heard = cmp.heard();
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_str(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.is_message(field) {
            self.text(format_args!("{value}"));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_error(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.is_message(field) {
            self.text(format_args!("{value:?}"));
        } else if let Some(s) = self.slots.as_deref_mut() {
            s.record_debug(field, value);
        }
    }
}
