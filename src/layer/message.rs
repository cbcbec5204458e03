//! An event's `message`, compared with the texts that rules ask for while tracing hands it over,
//! without capturing it.
//!
//! What matches is exactly what matched when the message was captured like any other field and
//! compared afterwards: text (`&str`, `Debug`, `Display` of errors, 128-bit integers beyond 64
//! bits) as it would have been captured, cut at the label-value bound (a cut text equals
//! nothing, and counts as a truncation); numbers and bools as their text, never cut.

use std::fmt::{self, Write as _};

use tracing_core::field::{Field, Visit};

use crate::values::{SlotVisitor, Value, ones};

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
                for i in ones(self.alive) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::FieldValues;
    use tracing_core::field::FieldSet;

    /// The field set of a static callsite with fields `message` and `other`.
    fn fields() -> &'static FieldSet {
        crate::values::test_callsite!(EVENT, ["message", "other"]).fields()
    }

    /// A message value, as tracing hands one to a visitor.
    #[derive(Clone, Copy, Debug)]
    enum Said {
        Str(&'static str),
        Debug(&'static str),
        Error(&'static str),
        U64(u64),
        I64(i64),
        F64(f64),
        Bool(bool),
        I128(i128),
        U128(u128),
    }

    #[derive(Debug)]
    struct Failure(&'static str);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // In pieces, as formatting usually writes.
            for piece in self.0.split_inclusive(' ') {
                f.write_str(piece)?;
            }
            Ok(())
        }
    }

    impl std::error::Error for Failure {}

    fn say(v: &mut dyn Visit, field: &Field, said: Said) {
        match said {
            Said::Str(s) => v.record_str(field, s),
            Said::Debug(s) => v.record_debug(field, &format_args!("{s}")),
            Said::Error(s) => v.record_error(field, &Failure(s)),
            Said::U64(n) => v.record_u64(field, n),
            Said::I64(n) => v.record_i64(field, n),
            Said::F64(n) => v.record_f64(field, n),
            Said::Bool(b) => v.record_bool(field, b),
            Said::I128(n) => v.record_i128(field, n),
            Said::U128(n) => v.record_u128(field, n),
        }
    }

    /// What capturing the message and comparing it afterwards finds (the way every field is
    /// captured): the texts it equals, and whether it was cut.
    fn captured(said: Said, texts: &[Box<str>], bound: usize) -> Heard {
        let fields = fields();
        let mut values = FieldValues::new(fields, 0b01, bound);
        let slot_for = [Some(0), None];
        say(
            &mut values.recorder(&slot_for),
            &fields.field("message").unwrap(),
            said,
        );
        let mut heard = Heard {
            texts: 0,
            cut: values.take_truncated(),
        };
        for (i, t) in texts.iter().enumerate() {
            if values.get(0).is_some_and(|m| m.text_eq(t)) {
                heard.texts |= 1 << i;
            }
        }
        heard
    }

    fn compared(said: Said, texts: &[Box<str>], bound: usize) -> Heard {
        let fields = fields();
        let mut values = FieldValues::new(fields, 0b10, bound);
        let slot_for = [None, Some(0)];
        let heard = {
            let mut slots = values.recorder(&slot_for);
            let mut visitor = MessageVisitor {
                slots: Some(&mut slots),
                message: 0,
                texts,
                bound,
                heard: Heard::default(),
            };
            say(&mut visitor, &fields.field("message").unwrap(), said);
            // Other fields still reach the captured values.
            visitor.record_str(&fields.field("other").unwrap(), "k");
            visitor.heard
        };
        assert_eq!(values.by_name("other"), Some(Value::Str("k")));
        heard
    }

    #[test]
    fn comparing_as_handed_over_finds_what_capturing_found() {
        let said = [
            Said::Str("first byte"),
            Said::Str("first"),
            Said::Str("first byte and more"),
            Said::Str(""),
            Said::Str("héllo wörld"),
            Said::Debug("first byte"),
            Said::Debug("first byte and more"),
            Said::Debug("héllo"),
            Said::Error("first byte"),
            Said::Error("first byte and more text"),
            Said::U64(503),
            Said::U64(12_345_678_901),
            Said::I64(-1),
            Said::F64(0.5),
            Said::F64(1e300),
            Said::Bool(true),
            Said::I128(-503),
            Said::I128(i128::MIN),
            Said::U128(503),
            Said::U128(u128::MAX),
        ];
        let texts: Vec<Vec<Box<str>>> = [
            &["first byte"][..],
            &["first"],
            &["first byte", "first", "first byte and more", "503", ""],
            &["héllo", "héllo wörld", "h"],
            &["-1", "0.5", "1e300", "true", "12345678901"],
            &["-170141183460469231731687303715884105728"],
            &["340282366920938463463374607431768211455", "-503"],
            &[],
        ]
        .iter()
        .map(|ts| ts.iter().map(|t| Box::from(*t)).collect())
        .collect();
        let mut checked = 0;
        for bound in [0, 1, 2, 5, 10, 11, 19, 64] {
            for ts in &texts {
                for s in said {
                    assert_eq!(
                        compared(s, ts, bound),
                        captured(s, ts, bound),
                        "{s:?} against {ts:?}, bound {bound}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 8 * 8 * 20);
        // Some cases do match, some are cut: the comparison is not vacuous.
        let one: Vec<Box<str>> = vec!["first byte".into()];
        let first_byte = Heard {
            texts: 1,
            cut: false,
        };
        assert_eq!(compared(Said::Debug("first byte"), &one, 64), first_byte);
        assert_eq!(compared(Said::Error("first byte"), &one, 10), first_byte);
        assert_eq!(
            compared(Said::Debug("first byte"), &one, 9),
            Heard {
                texts: 0,
                cut: true
            }
        );
        assert_eq!(compared(Said::U64(503), &["503".into()], 1).texts, 1);
    }
}
