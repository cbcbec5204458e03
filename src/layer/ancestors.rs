//! Field lookup for rules: the event's and the span's own values first, then the span's
//! ancestors in the registry, through the links each span keeps (see [`crate::state`]).

use tracing_core::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::labels::Lookup;
use crate::state::{SpanState, inherited};
use crate::values::{Value, Values};

/// Field lookup through local values (event, span) and then the ancestors of `below` (looked
/// up only when a value is not found locally), following links (see [`crate::state`]).
pub(super) struct RegistryLookup<'a, 'b, S: for<'l> LookupSpan<'l>> {
    pub(super) locals: [Option<&'a Values<'a>>; 2],
    pub(super) below: Option<&'a SpanRef<'b, S>>,
    /// `below`'s state, when the caller holds its lock.
    pub(super) held: Option<&'a SpanState<'a>>,
    pub(super) ctx: &'a Context<'a, S>,
    pub(super) layer: u64,
}

impl<S> Lookup for RegistryLookup<'_, '_, S>
where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    fn ancestors(&self, names: &[&str], f: &mut dyn FnMut(usize, Value<'_>)) {
        if let (Some(below), false) = (self.below, names.is_empty()) {
            inherited(self.ctx, self.layer, below, self.held, names, f);
        }
    }

    fn field(&self, name: &str, inherit: bool, f: &mut dyn FnMut(Value<'_>)) -> bool {
        for local in self.locals.iter().flatten() {
            if let Some(v) = local.by_name(name) {
                f(v);
                return true;
            }
        }
        if !inherit {
            return false;
        }
        let mut found = false;
        self.ancestors(&[name], &mut |_, v| {
            found = true;
            f(v)
        });
        found
    }
}
