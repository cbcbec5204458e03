//! Reload: the layer's current configuration, swapped without a lock on any hook, and what
//! outlives a swap (the generation that retires per-thread plans, replaced configurations that
//! still have spans with milestones, the label sets every family admitted, the buckets the
//! exporter fixed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use crate::config::ConfigError;
use crate::config::SpanMetricsBuilder;
use crate::config::{Buckets, Measure};
use crate::instruments::{Admitted, Family, RecorderRef};
use crate::plan::Plans;
use crate::ruleset::Ruleset;
use crate::ruleset::compile;

/// What the layer and its reload handles share.
pub(super) struct Shared {
    pub(super) current: ArcSwap<Plans>,
    /// Bumped after every install; thread-local plan shortcuts of older generations are stale.
    pub(super) generation: AtomicU64,
    /// Whether any configuration ever measured busy/idle time (enters and exits matter).
    pub(super) busy_possible: AtomicBool,
    /// Whether any configuration ever measured self time (children report to parents).
    pub(super) children_possible: AtomicBool,
    /// Whether a replaced configuration with milestones may still have open spans, which then
    /// need every event (see `reach_milestones`).
    pub(super) retired_milestones: AtomicBool,
    /// Those configurations' models, held weakly: open spans keep them alive through their
    /// plans. Also serialises installs.
    pub(super) retired: Mutex<Vec<Weak<Ruleset>>>,
    /// What every family ever configured admitted, by exported name: a reload's families
    /// continue from it, so the cardinality limit holds for the life of the process.
    pub(super) admitted: Mutex<HashMap<String, Admitted>>,
    /// The buckets the running exporter fixed for each histogram when it was built, when the
    /// crate's exporter helpers set it up: a reload must not declare others.
    pub(super) exporter_buckets: Mutex<Option<ExporterBuckets>>,
    /// Every family's exemplars, by exported name, across reloads.
    #[cfg(feature = "exemplars")]
    pub(super) exemplars: Arc<crate::exemplars::Store>,
}

/// The buckets an exporter fixed when it was built: per exported histogram name, and the
/// fallback it uses for any other histogram.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExporterBuckets {
    pub(crate) per_family: HashMap<String, Vec<f64>>,
    pub(crate) fallback: Option<Vec<f64>>,
}

impl ExporterBuckets {
    /// Refuses a histogram whose declared buckets the exporter would not render.
    fn check(&self, family: &Family) -> Result<(), ConfigError> {
        let Some(declared) = family.buckets.as_ref().map(Buckets::bounds) else {
            return Ok(());
        };
        let rendered = self
            .per_family
            .get(&family.exported)
            .or(self.fallback.as_ref());
        match rendered {
            Some(r) if r.as_slice() == declared => Ok(()),
            _ => Err(ConfigError::reload(
                Some(&family.name),
                format!(
                    "this reload declares buckets {declared:?} for the histogram (exported as \
                     `{}`), but the running exporter renders it with {}: \
                     metrics-exporter-prometheus fixes each histogram's buckets when it is \
                     built; declare those buckets, or restart with the new configuration",
                    family.exported,
                    rendered.map_or("no buckets (as a summary)".to_owned(), |r| format!("{r:?}"))
                ),
            )),
        }
    }
}

impl Shared {
    /// Hands `model`'s families what the families of the same exported names admitted before
    /// (on the same recorder), and remembers what they admit from now on.
    pub(super) fn continue_families(&self, model: &mut Ruleset, running: &RecorderRef) {
        let same_recorder = model.settings.recorder.same_as(running);
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if !same_recorder {
            admitted.clear();
        }
        for family in &mut model.families {
            if let Some(earlier) = admitted.get(&family.exported) {
                family.continue_from(earlier);
            }
            admitted.insert(family.exported.clone(), family.admitted());
            #[cfg(feature = "exemplars")]
            if let Some(own) = &family.exemplars {
                family.exemplars = Some(self.exemplars.adopt(own));
            }
        }
    }

    /// Makes `compiled` the current configuration.
    ///
    /// Orderings: every flag below is stored before the configuration is (`ArcSwap::store`,
    /// at least release) and the generation bumped (release). A thread only uses the new
    /// configuration after loading it or seeing the new generation (both acquire), so it sees
    /// the flags set; a thread still on the old configuration needs none of them. The flags
    /// are therefore relaxed.
    pub(super) fn install(&self, compiled: Plans) {
        let m = &compiled.model;
        if m.any_busy {
            self.busy_possible.store(true, Ordering::Relaxed);
        }
        if m.any_self_time {
            self.children_possible.store(true, Ordering::Relaxed);
        }
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if old
            .model
            .rules
            .iter()
            .any(|r| matches!(r.measure, Measure::TimeToEvent(_)))
        {
            retired.push(Arc::downgrade(&old.model));
            // Set before the swap, so no event after it misses an old span's milestone.
            self.retired_milestones.store(true, Ordering::Relaxed);
        }
        self.current.store(Arc::new(compiled));
        // After the store: whoever sees the new generation loads the new configuration.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether events must still look for milestones of replaced configurations; clears the
    /// flag once the last span of every such configuration has closed.
    pub(super) fn retired_milestones(&self) -> bool {
        if !self.retired_milestones.load(Ordering::Relaxed) {
            return false;
        }
        // Only while the flag is set, and never waiting: another thread prunes otherwise.
        if let Ok(mut retired) = self.retired.try_lock() {
            retired.retain(|m| m.strong_count() > 0);
            if retired.is_empty() {
                // Relaxed: `install` sets the flag under the same lock, which orders the two.
                self.retired_milestones.store(false, Ordering::Relaxed);
                return false;
            }
        }
        true
    }
}

/// Swaps the configuration of a [`SpanMetricsLayer`](crate::SpanMetricsLayer) at run time; get one with
/// [`SpanMetricsLayer::reload_handle`](crate::SpanMetricsLayer::reload_handle).
///
/// Spans opened before a swap finish under the configuration they started with, spans opened
/// after it use the new one; events count under the configuration current when they happen.
/// Nothing is counted twice or lost at the switch. Unlike `tracing_subscriber::reload`, this
/// works under per-layer filters, and no hook waits for a lock because of it (while a replaced
/// configuration that measures milestones still has open spans, events try a lock to prune it
/// and move on if it is taken).
///
/// ```
/// use tracing_spanmetrics::{Metric, SpanMetrics};
///
/// let layer = SpanMetrics::red("svc").build()?;
/// let handle = layer.reload_handle();
/// // Later, e.g. on SIGHUP:
/// handle.reload(SpanMetrics::builder().metric(Metric::counter("calls.total")))?;
/// # Ok::<(), tracing_spanmetrics::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ReloadHandle {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle").finish_non_exhaustive()
    }
}

impl ReloadHandle {
    /// Validates `builder` and, if it is valid, makes it the layer's configuration.
    ///
    /// The layer keeps its recorder unless `builder` names one
    /// ([`with_recorder`](SpanMetricsBuilder::with_recorder)), and always keeps its clock. Each
    /// family keeps the label sets it admitted before (by exported name), so its cardinality
    /// limit bounds the series the exporter holds across any number of reloads.
    ///
    /// # Errors
    /// The builder's [`ConfigError`]; a builder that sets a clock (spans open across the swap
    /// would measure their start and end on two clocks); a histogram whose buckets differ from
    /// the ones the running exporter fixed, when the exporter was set up by this crate's
    /// helpers (`exporter::install`, `exporter::build_with_own_recorder`). The running
    /// configuration is then left unchanged.
    pub fn reload(&self, builder: SpanMetricsBuilder) -> Result<(), ConfigError> {
        if builder.sets_clock() {
            return Err(ConfigError::reload(
                None,
                "a reload cannot change the layer's clock: spans open across the swap would \
                 measure their start and end on two clocks; leave `with_clock` out of the \
                 reloaded builder",
            ));
        }
        let running = self.shared.current.load_full();
        let running = &running.model.settings.recorder;
        let mut model = compile(&builder, Some(running))?;
        let fixed = self
            .shared
            .exporter_buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(fixed) = fixed.as_ref() {
            for family in &model.families {
                fixed.check(family)?;
            }
        }
        drop(fixed);
        self.shared.continue_families(&mut model, running);
        self.shared.install(Plans::new(model));
        Ok(())
    }

    /// See [`SpanMetricsLayer::unseen_fields`](crate::SpanMetricsLayer::unseen_fields) (the layer itself is usually moved into the
    /// subscriber; this handle stays with the application).
    pub fn unseen_fields(&self) -> Vec<(String, String)> {
        self.shared.current.load().unseen_fields()
    }

    /// The names of every metric family the current configuration records.
    pub fn metric_names(&self) -> Vec<String> {
        let c = self.shared.current.load();
        c.model.families.iter().map(|f| f.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EventMatch, Metric};
    use tracing_subscriber::prelude::*;

    fn with_milestone() -> SpanMetricsBuilder {
        crate::SpanMetrics::builder()
            .metric(Metric::histogram("ttfb").time_to(EventMatch::message("first byte")))
    }

    #[test]
    fn the_retired_milestone_path_ends_with_the_last_old_span() {
        let layer = with_milestone().build().unwrap();
        let shared = layer.shared.clone();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!shared.retired_milestones());
            let old = tracing::info_span!("request");
            reload.reload(crate::SpanMetrics::builder()).unwrap();
            // The old configuration had a milestone and a span of it is open.
            assert!(shared.retired_milestones());
            let new = tracing::info_span!("request");
            assert!(shared.retired_milestones());
            drop(old);
            assert!(!shared.retired_milestones());
            drop(new);
            // Replacing a configuration without milestones never turns the path on.
            reload.reload(with_milestone()).unwrap();
            assert!(!shared.retired_milestones());
        });
    }

    #[test]
    fn replaced_configurations_die_with_their_last_span_whatever_the_threads() {
        let layer = with_milestone().build().unwrap();
        let shared = layer.shared.clone();
        let reload = layer.reload_handle();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    tracing::dispatcher::with_default(&dispatch, || {
                        while !stop.load(Ordering::Relaxed) {
                            let _span = tracing::info_span!("request").entered();
                            tracing::info!("first byte");
                        }
                    })
                });
            }
            for _ in 0..50 {
                reload.reload(with_milestone()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
        });
        // Every replaced configuration had a milestone; with every span closed, none of them
        // may still be alive (through a thread's plan holder or otherwise).
        assert!(!shared.retired_milestones());
        assert!(shared.retired.lock().unwrap().is_empty());
    }
}
