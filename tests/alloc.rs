//! Heap allocations per span, counted exactly by a counting global allocator.
//!
//! One span as an instrumented RPC makes it: created with three fields and a field declared
//! `Empty`, entered, the field recorded, an event emitted inside it, exited, closed. After a
//! warm-up (callsites registered, plans compiled, label sets registered, the registry's slab
//! pages allocated), the layer may allocate nothing beyond the one allocation tracing-subscriber
//! forces for any layer that keeps per-span data in the span's extensions (`Extensions::insert`
//! boxes the value). The baseline is `Registry` + a layer that stores one small extension per
//! span: the difference must be zero.
//!
//! Only allocations made by this test's thread are counted (other test binaries' threads do not
//! exist here; the single `#[test]` keeps the libtest harness from running anything beside it).
//! The recorder is a minimal one whose handles are atomics, so recording itself never allocates
//! (the Prometheus exporter's histogram storage allocates a block every few samples: that is the
//! exporter's cost, not the layer's).

#[path = "common/heap.rs"]
mod heap;

use heap::count;
use heap::{AtomicRecorder, Counting};
use std::sync::Arc;

use tracing::field::Empty;
use tracing::{Dispatch, dispatcher};
use tracing_spanmetrics::{EventMatch, Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// The workload.

const SERVICES: [&str; 4] = ["greeter", "checkout", "inventory", "payments"];
const DEPLOYMENTS: [&str; 3] = ["dp_11pXug0RJWeVbsfimjmgh3gG", "dp_12VZ8Rt6qr", "dp_13iq"];

/// One RPC span: fields, enter, record, event, exit, close.
fn rpc(i: u64) {
    let span = tracing::info_span!(
        "rpc",
        partition = i % 16,
        service = SERVICES[(i % 4) as usize],
        deployment = DEPLOYMENTS[(i % 3) as usize],
        status = Empty,
    );
    let guard = span.enter();
    span.record("status", 200u64 + (i % 2) * 300);
    tracing::info!("first byte");
    drop(guard);
    drop(span);
}

/// The baseline's layer: one extension per span, as any layer with per-span data has.
struct OneExtension;

struct Marker(#[allow(dead_code)] u64);

impl<S> tracing_subscriber::Layer<S> for OneExtension
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Marker(id.into_u64()));
        }
    }
}

fn labels() -> [Label; 4] {
    [
        Label::field("partition"),
        Label::field("service"),
        Label::field("deployment"),
        Label::field("status").default("none"),
    ]
}

const WARM: u64 = 3_000;
const MEASURED: u64 = 1_000;

fn measure(dispatch: &Dispatch) -> (u64, u64) {
    dispatcher::with_default(dispatch, || {
        for i in 0..WARM {
            rpc(i);
        }
        count(|| {
            for i in WARM..WARM + MEASURED {
                rpc(i);
            }
        })
    })
}

/// The rules measured: two histograms and two counters on `rpc` spans.
fn rules(recorder: Arc<AtomicRecorder>) -> tracing_spanmetrics::SpanMetricsLayer {
    SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .spans(Spans::named("rpc"))
                .wall_time()
                .labels(labels()),
        )
        .metric(
            Metric::counter("rpc.calls")
                .spans(Spans::named("rpc"))
                .spans_closed()
                .labels(labels()),
        )
        .metric(
            Metric::histogram("rpc.first_byte.seconds")
                .spans(Spans::named("rpc"))
                .time_to(EventMatch::message("first byte"))
                .labels(["partition", "service", "deployment"]),
        )
        .metric(
            Metric::counter("rpc.events")
                .spans(Spans::named("rpc"))
                .events(EventMatch::message("first byte"))
                .labels(["service"]),
        )
        .with_recorder(recorder)
        .build()
        .expect("valid rules")
}

#[test]
fn one_span_allocates_nothing_beyond_the_forced_extension() {
    let recorder = Arc::new(AtomicRecorder::default());
    let layer = rules(recorder.clone());

    let baseline = measure(&Dispatch::new(Registry::default().with(OneExtension)));
    let with_layer = measure(&Dispatch::new(Registry::default().with(layer)));

    // The layer did its work on every span.
    let spans = WARM + MEASURED;
    assert_eq!(recorder.total("rpc_calls_total"), spans);
    assert_eq!(recorder.total("rpc_duration_seconds"), spans);
    assert_eq!(recorder.total("rpc_first_byte_seconds"), spans);
    assert_eq!(recorder.total("rpc_events_total"), spans);

    eprintln!(
        "per span: baseline {} allocations ({} bytes), layer {} allocations ({} bytes)",
        baseline.0 as f64 / MEASURED as f64,
        baseline.1 as f64 / MEASURED as f64,
        with_layer.0 as f64 / MEASURED as f64,
        with_layer.1 as f64 / MEASURED as f64,
    );
    assert_eq!(
        baseline.0, MEASURED,
        "the baseline should allocate exactly once per span (the extension box)"
    );
    assert_eq!(
        with_layer.0, baseline.0,
        "allocations over {MEASURED} spans: layer {} vs baseline {}",
        with_layer.0, baseline.0
    );

    // With exemplars from a source of the user's (`with_exemplar_source`) reading the ids its
    // own layer stored in each span's extensions, in both orders: exactly the allocations of
    // the same stack without a source (the user's extension and the layer's, per span).
    #[cfg(feature = "exemplars")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tracing_spanmetrics::TraceIds;
        use tracing_subscriber::registry::LookupSpan as _;
        let calls = Arc::new(AtomicU64::new(0));
        let with_source = |recorder| {
            let calls = calls.clone();
            rules(recorder).with_exemplar_source(
                move |id: &tracing::span::Id, dispatch: &Dispatch| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    let registry = dispatch.downcast_ref::<Registry>()?;
                    let span = registry.span(id)?;
                    let marker = span.extensions().get::<Marker>()?.0;
                    Some(TraceIds {
                        trace_id: u128::from(marker).to_be_bytes(),
                        span_id: marker.to_be_bytes(),
                    })
                },
            )
        };
        let without = measure(&Dispatch::new(
            Registry::default()
                .with(OneExtension)
                .with(rules(Arc::new(AtomicRecorder::default()))),
        ));
        let recorder = Arc::new(AtomicRecorder::default());
        let inside = measure(&Dispatch::new(
            Registry::default()
                .with(OneExtension)
                .with(with_source(recorder.clone())),
        ));
        let outside = measure(&Dispatch::new(
            Registry::default()
                .with(with_source(recorder.clone()))
                .with(OneExtension),
        ));
        assert_eq!(recorder.total("rpc_calls_total"), 2 * spans);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2 * spans,
            "asked once per span"
        );
        eprintln!(
            "with an exemplar source, per span: without {} allocations, user layer inside {}, outside {}",
            without.0 as f64 / MEASURED as f64,
            inside.0 as f64 / MEASURED as f64,
            outside.0 as f64 / MEASURED as f64,
        );
        assert_eq!(without.0, 2 * MEASURED);
        assert_eq!(
            (inside.0, outside.0),
            (without.0, without.0),
            "allocations over {MEASURED} spans with an exemplar source"
        );
    }

    // Beside tracing-opentelemetry (sampled spans, exemplars captured and kept), in both orders:
    // still nothing beyond the baseline's (which has the OpenTelemetry layer too).
    #[cfg(feature = "opentelemetry")]
    {
        use opentelemetry::trace::TracerProvider as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(otel::Discard)
            .build();
        let otel = || tracing_opentelemetry::layer().with_tracer(provider.tracer("alloc"));
        let recorder = Arc::new(AtomicRecorder::default());
        let baseline = measure(&Dispatch::new(
            Registry::default().with(otel()).with(OneExtension),
        ));
        let inside = measure(&Dispatch::new(
            Registry::default()
                .with(otel())
                .with(rules(recorder.clone())),
        ));
        let outside = measure(&Dispatch::new(
            Registry::default()
                .with(rules(recorder.clone()))
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("alloc"))),
        ));
        assert_eq!(recorder.total("rpc_calls_total"), 2 * spans);
        eprintln!(
            "with OpenTelemetry, per span: baseline {} allocations, layer inside {}, outside {}",
            baseline.0 as f64 / MEASURED as f64,
            inside.0 as f64 / MEASURED as f64,
            outside.0 as f64 / MEASURED as f64,
        );
        assert_eq!(
            (inside.0, outside.0),
            (baseline.0, baseline.0),
            "allocations over {MEASURED} spans beside tracing-opentelemetry"
        );
    }
}

/// A span processor that drops every span (the exporter's own cost is not the layer's).
#[cfg(feature = "opentelemetry")]
mod otel {
    #[derive(Debug)]
    pub struct Discard;

    impl opentelemetry_sdk::trace::SpanProcessor for Discard {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
        fn on_end(&self, _: opentelemetry_sdk::trace::SpanData) {}
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(
            &self,
            _: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }
}
