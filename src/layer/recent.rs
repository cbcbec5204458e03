//! Recent plans: each thread keeps the plans of the callsites it met last, per layer and
//! configuration generation, so that creating a span or emitting an event finds its plan
//! without loading the configuration.
//!
//! The cache is direct-mapped by callsite address and holds plans weakly, so it never keeps a
//! replaced configuration alive; a reload bumps the generation, which makes every entry stale.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::LocalKey;

use tracing_core::Metadata;

use super::SpanMetricsLayer;
use crate::plan::{EventPlan, SpanPlan, ThreadPlan};

/// How many span plans each thread keeps at hand (direct-mapped by callsite address; the
/// lookup takes the top 4 bits of a hash, so this is 16).
const PLAN_WAYS: usize = 16;

/// A plan a thread used recently: for which layer, configuration generation and callsite
/// (`None`: a span callsite that needs no state, or an event callsite with nothing to do).
struct RecentPlan<P> {
    layer: u64,
    generation: u64,
    site: usize,
    plan: Option<Weak<P>>,
}

type Recent<P> = std::cell::RefCell<[Option<RecentPlan<P>>; PLAN_WAYS]>;

thread_local! {
    static RECENT_PLANS: Recent<ThreadPlan<SpanPlan>> = const { std::cell::RefCell::new([const { None }; PLAN_WAYS]) };
    static RECENT_EVENTS: Recent<ThreadPlan<EventPlan>> = const { std::cell::RefCell::new([const { None }; PLAN_WAYS]) };
}

/// A callsite as a thread remembers it for one layer and configuration generation.
struct RecentKey {
    layer: u64,
    generation: u64,
    site: usize,
    way: usize,
}

impl RecentKey {
    /// `None`: not remembered (or its plan is gone); `Some(None)`: remembered as having no
    /// plan worth keeping; `Some(Some(plan))`.
    fn recall<P>(&self, recent: &'static LocalKey<Recent<P>>) -> Option<Option<Arc<P>>> {
        recent
            .try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let e = recent[self.way].as_ref()?;
                if e.layer != self.layer || e.generation != self.generation || e.site != self.site {
                    return None;
                }
                match &e.plan {
                    None => Some(None),
                    Some(plan) => plan.upgrade().map(Some),
                }
            })
            .ok()
            .flatten()
    }

    /// Remembers `plan` (weakly), or that there is none worth keeping.
    fn remember<P>(&self, recent: &'static LocalKey<Recent<P>>, plan: Option<&Arc<P>>) {
        // During thread teardown, or re-entered from a plan's compilation: nothing to keep.
        let _ = recent.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                recent[self.way] = Some(RecentPlan {
                    layer: self.layer,
                    generation: self.generation,
                    site: self.site,
                    plan: plan.map(Arc::downgrade),
                });
            }
        });
    }
}

/// The way of a callsite address for a layer: Fibonacci hashing, whose top 4 bits pick one of
/// 16. The layer takes part, so two layers in one subscriber do not evict each other's plans
/// of the same callsite.
fn way_of(site: usize, layer: u64) -> usize {
    ((site as u64 ^ layer.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize
}

impl SpanMetricsLayer {
    /// Where a thread remembers the plans of `meta`'s callsite for this layer and the current
    /// configuration generation.
    fn recent_key(&self, meta: &'static Metadata<'static>) -> RecentKey {
        let site = std::ptr::from_ref(meta) as usize;
        RecentKey {
            layer: self.id,
            generation: self.shared.generation.load(Ordering::Acquire),
            site,
            way: way_of(site, self.id),
        }
    }

    /// The plan of a span callsite for the current configuration, as this thread holds it.
    /// Each thread keeps a few recent plans (held weakly, so they never outlive their
    /// configuration) and checks them against the configuration's generation: the common case
    /// reads no shared state but one counter, and takes the reference that the span's state
    /// keeps on this thread's own holder of the plan, so it writes nothing other threads use.
    pub(super) fn span_plan(
        &self,
        meta: &'static Metadata<'static>,
    ) -> Option<Arc<ThreadPlan<SpanPlan>>> {
        let key = self.recent_key(meta);
        if let Some(plan) = key.recall(&RECENT_PLANS) {
            return plan;
        }
        let plan = self.shared.current.load().span_plan(meta);
        key.remember(&RECENT_PLANS, plan.as_ref());
        plan
    }

    /// The plan of an event callsite, if events of it have work to do (with `always`, also
    /// if they have none: replaced configurations' milestones may still need them). Each
    /// thread remembers recent callsites as for spans; a callsite without work is remembered
    /// as such, so the events of the application's other logs cost one thread-local lookup.
    pub(super) fn event_plan(
        &self,
        meta: &'static Metadata<'static>,
        always: bool,
    ) -> Option<Arc<ThreadPlan<EventPlan>>> {
        let key = self.recent_key(meta);
        match key.recall(&RECENT_EVENTS) {
            Some(None) if !always => return None,
            Some(Some(plan)) => return Some(plan),
            _ => {}
        }
        let plan = self.shared.current.load().event_plan(meta, always);
        let relevant = plan.as_ref().filter(|p| p.is_relevant());
        key.remember(&RECENT_EVENTS, relevant);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EventMatch, Metric};
    use crate::state::States;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::registry::LookupSpan;

    /// The holder of the plan that a span's state keeps.
    fn holder(dispatch: &tracing::Dispatch, span: &tracing::Span) -> Arc<ThreadPlan<SpanPlan>> {
        type Sub =
            tracing_subscriber::layer::Layered<SpanMetricsLayer, tracing_subscriber::Registry>;
        let sub = dispatch
            .downcast_ref::<Sub>()
            .expect("the test's subscriber");
        let data = sub.span_data(&span.id().expect("an enabled span")).unwrap();
        let ext = tracing_subscriber::registry::SpanData::extensions(&data);
        let layer = sub.downcast_ref::<SpanMetricsLayer>().unwrap().id;
        States::of(&ext, layer)
            .expect("the layer's state")
            .plan
            .clone()
    }

    #[test]
    fn threads_hold_only_the_plans_they_use() {
        let layer = crate::SpanMetrics::builder()
            .metric(Metric::counter("calls").spans(crate::Spans::named("rpc")))
            .metric(
                Metric::counter("hits")
                    .events(EventMatch::with_field("hit"))
                    .spans(crate::Spans::named("rpc")),
            )
            .build()
            .unwrap();
        let shared = layer.shared.clone();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let work = || {
            tracing::dispatcher::with_default(&dispatch, || {
                for _ in 0..3 {
                    tracing::info_span!("other").in_scope(|| tracing::info!("unrelated"));
                    tracing::info_span!("rpc").in_scope(|| tracing::info!(hit = true));
                }
            })
        };
        work();
        // The `rpc` span and the `hit` event, once each: not the span and event no rule uses.
        assert_eq!(shared.current.load().holders(), 2);
        std::thread::scope(|s| s.spawn(work).join().unwrap());
        assert_eq!(shared.current.load().holders(), 4);
    }

    #[test]
    fn spans_count_their_plan_on_their_own_threads_holder() {
        let layer = crate::SpanMetrics::builder()
            .metric(Metric::counter("calls"))
            .build()
            .unwrap();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let open = || tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("rpc"));
        // The holder stays with the configuration: a thread's next span finds the same one,
        // even with no span open in between.
        let first = Arc::downgrade(&holder(&dispatch, &open()));
        let (a, b) = (open(), open());
        let c = std::thread::scope(|s| s.spawn(open).join().unwrap());
        let (ha, hb, hc) = (
            holder(&dispatch, &a),
            holder(&dispatch, &b),
            holder(&dispatch, &c),
        );
        assert!(Arc::ptr_eq(&first.upgrade().unwrap(), &ha));
        // One holder per thread, all of one plan.
        assert!(Arc::ptr_eq(&ha, &hb));
        assert!(!Arc::ptr_eq(&ha, &hc));
        assert!(std::ptr::eq::<SpanPlan>(&**ha, &**hc));
        // Two threads' holders never share a cache line (nor the adjacent one).
        assert_eq!(std::mem::align_of::<ThreadPlan<SpanPlan>>(), 128);
        // A holder outlives its configuration only through open spans: once replaced, the
        // holder goes with the last span that holds it.
        let (weak_a, weak_c) = (Arc::downgrade(&ha), Arc::downgrade(&hc));
        drop((ha, hb, hc));
        reload.reload(crate::SpanMetrics::builder()).unwrap();
        drop((a, b));
        assert!(weak_a.upgrade().is_none());
        assert!(weak_c.upgrade().is_some());
        drop(c);
        assert!(weak_c.upgrade().is_none());
    }
}
