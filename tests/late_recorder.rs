//! The global recorder installed after the layer (the usual order in `main`): handles
//! registered on the no-op recorder before are replaced, not kept forever.

mod common;

use std::sync::Arc;

use common::TestRecorder;
use tracing_spanmetrics::{Metric, SpanMetrics, Spans};
use tracing_subscriber::prelude::*;

struct Shared(Arc<TestRecorder>);

impl metrics::Recorder for Shared {
    fn describe_counter(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.0.describe_counter(k, u, d)
    }
    fn describe_gauge(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.0.describe_gauge(k, u, d)
    }
    fn describe_histogram(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.0.describe_histogram(k, u, d)
    }
    fn register_counter(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0.register_counter(k, m)
    }
    fn register_gauge(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.0.register_gauge(k, m)
    }
    fn register_histogram(
        &self,
        k: &metrics::Key,
        m: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.0.register_histogram(k, m)
    }
}

#[test]
fn recorder_installed_after_the_layer() {
    let layer = SpanMetrics::builder()
        .metric(
            Metric::counter("late.total")
                .spans(Spans::named("s"))
                .describe("Late spans"),
        )
        .metric(Metric::gauge("late.open").spans(Spans::named("s")))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        // No recorder yet: recorded nowhere, and nothing breaks.
        drop(tracing::info_span!("s"));
        let open_before = tracing::info_span!("s");
        let recorder = Arc::new(TestRecorder::default());
        metrics::set_global_recorder(Shared(recorder.clone())).unwrap();
        drop(tracing::info_span!("s"));
        drop(tracing::info_span!("s"));
        let open_after = tracing::info_span!("s");
        let m = recorder.snapshot();
        assert_eq!(m.counter("late.total", &[]), Some(2));
        // The health counters, registered at zero on the no-op recorder when the layer was
        // built, exist on the new recorder since the family's first series there.
        assert_eq!(
            m.counter(
                tracing_spanmetrics::OVERFLOW_METRIC,
                &[("metric", "late_total")]
            ),
            Some(0)
        );
        assert_eq!(
            m.counter(tracing_spanmetrics::TRUNCATED_METRIC, &[]),
            Some(0)
        );
        assert_eq!(m.gauge("late.open", &[]), Some(1.0));
        assert_eq!(
            m.description("late.total").unwrap().1.as_deref(),
            Some("Late spans")
        );
        // The span opened before the install was counted on the no-op recorder: its close
        // decrements that one, never the new gauge.
        drop(open_before);
        drop(open_after);
        let m = recorder.snapshot();
        assert_eq!(m.counter("late.total", &[]), Some(4));
        assert_eq!(m.gauge("late.open", &[]), Some(0.0));
    });
}
