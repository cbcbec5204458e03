//! Exemplars from a user's own trace context, without OpenTelemetry: a layer of the user's
//! stores each span's ids in its extensions (from its `trace` and `span` fields), and the
//! source given to `SpanMetricsLayer::with_exemplar_source` reads them back through the
//! dispatch, in either order of the two layers. Exact ids per bucket and per counter series;
//! none for all-zero ids; the source asked once per measured span only.

#[path = "common/openmetrics.rs"]
mod openmetrics;

use openmetrics::{Served, served};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber};
use tracing_spanmetrics::{
    Buckets, Metric, SpanMetrics, SpanMetricsBuilder, SpanMetricsLayer, Spans, TraceIds, exporter,
};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::{LookupSpan, Registry};

/// The user's own trace context: a span's `trace` and `span` fields become its ids, kept in its
/// extensions.
struct OwnContext;

#[derive(Default)]
struct Fields {
    trace: u64,
    span: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "trace" => self.trace = value,
            "span" => self.span = value,
            _ => {}
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value as u64);
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for OwnContext {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let ids = TraceIds {
            trace_id: u128::from(fields.trace).to_be_bytes(),
            span_id: fields.span.to_be_bytes(),
        };
        ctx.span(id).unwrap().extensions_mut().insert(ids);
    }
}

/// Reads the ids `OwnContext` stored, through the registry under the dispatch; counts calls.
fn source(calls: Arc<AtomicUsize>) -> impl Fn(&Id, &Dispatch) -> Option<TraceIds> + Send + Sync {
    move |id, dispatch| {
        calls.fetch_add(1, Ordering::Relaxed);
        let registry = dispatch.downcast_ref::<Registry>()?;
        registry.span(id)?.extensions().get::<TraceIds>().copied()
    }
}

fn rules() -> SpanMetricsBuilder {
    SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .spans(Spans::named("rpc"))
                .buckets(Buckets::explicit([0.01, 0.1, 1.0]))
                .label("method"),
        )
        .metric(
            Metric::counter("rpc.calls")
                .spans(Spans::named("rpc"))
                .spans_closed()
                .label("method"),
        )
}

#[derive(Debug, Clone, Copy)]
enum Order {
    /// `registry().with(own).with(metrics)`.
    OwnInside,
    /// `registry().with(metrics).with(own)`.
    OwnOutside,
}

const ORDERS: [Order; 2] = [Order::OwnInside, Order::OwnOutside];

/// Durations by `n % 4`: one per bucket of `rules()`, `+Inf` last.
const MILLIS: [u64; 4] = [5, 50, 500, 5_000];
const LES: [&str; 4] = ["0.01", "0.1", "1", "+Inf"];

/// Runs `work` under both layers; the OpenMetrics text and the source's calls.
fn run(
    order: Order,
    configure: impl FnOnce(SpanMetricsLayer, Arc<AtomicUsize>) -> SpanMetricsLayer,
    work: impl FnOnce(&quanta::Mock),
) -> (String, usize) {
    let (clock, mock) = quanta::Clock::mock();
    let (layer, exposition) = exporter::build_with_own_recorder(rules().with_clock(clock)).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = configure(layer, calls.clone());
    let dispatch = match order {
        Order::OwnInside => {
            Dispatch::new(tracing_subscriber::registry().with(OwnContext).with(layer))
        }
        Order::OwnOutside => {
            Dispatch::new(tracing_subscriber::registry().with(layer).with(OwnContext))
        }
    };
    tracing::dispatcher::with_default(&dispatch, || work(&mock));
    (
        exposition.render_openmetrics(),
        calls.load(Ordering::Relaxed),
    )
}

fn with_source(layer: SpanMetricsLayer, calls: Arc<AtomicUsize>) -> SpanMetricsLayer {
    layer.with_exemplar_source(source(calls))
}

/// `count` spans named `rpc`, method `a` (even `n`) or `b`, trace `1000 + n / 4`, span `n + 1`
/// (or the ids `ids(n)` gives), open for `MILLIS[n % 4]`; and one span `other` per `rpc` span,
/// which no rule measures.
fn workload(count: u64, ids: fn(u64) -> (u64, u64)) -> impl FnOnce(&quanta::Mock) {
    move |mock: &quanta::Mock| {
        for n in 0..count {
            let (trace, span) = ids(n);
            let method = ["a", "b"][(n % 2) as usize];
            let s = tracing::info_span!("rpc", trace, span, method);
            let _other = tracing::info_span!("other", trace, span);
            mock.increment(Duration::from_millis(MILLIS[(n % 4) as usize]));
            drop(s);
        }
    }
}

fn numbered(n: u64) -> (u64, u64) {
    (1000 + n / 4, n + 1)
}

fn key(name: &str, method: &str, le: &str) -> (String, String, String) {
    (name.to_owned(), method.to_owned(), le.to_owned())
}

#[test]
fn exemplars_are_the_sources_ids_of_the_latest_span_per_bucket_in_both_orders() {
    for order in ORDERS {
        let (text, calls) = run(order, with_source, workload(16, numbered));
        // Asked once per `rpc` span, never for the unmeasured `other` spans.
        assert_eq!(calls, 16, "{order:?}");
        let mut expected = Served::new();
        // The latest `n` per method and bucket: 12..=15 (n % 4 picks the bucket, n % 2 the
        // method), trace 1000 + 3, span n + 1.
        for n in 12..16u64 {
            let method = ["a", "b"][(n % 2) as usize];
            let trace = format!("{:032x}", 1003);
            let span = format!("{:016x}", n + 1);
            let value = MILLIS[(n % 4) as usize] as f64 / 1000.0;
            expected.insert(
                key("rpc_duration_seconds_bucket", method, LES[(n % 4) as usize]),
                (trace.clone(), span.clone(), value),
            );
            expected.insert(key("rpc_calls_total", method, ""), (trace, span, 1.0));
        }
        assert_eq!(expected.len(), 6);
        assert_eq!(served(&text), expected, "{order:?}:\n{text}");
        // Spelled out: the last `b` span (n = 15, 5 s) in `+Inf` and in the `b` counter.
        assert!(
            text.contains(&format!(
                "rpc_calls_total{{method=\"b\"}} 8 # {{trace_id=\"{:032x}\",span_id=\"0000000000000010\"}} 1 ",
                1003
            )),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

#[test]
fn all_zero_ids_give_no_exemplar() {
    for order in ORDERS {
        // Trace id zero, span id zero, both zero: none of them is linked.
        let (text, calls) = run(
            order,
            with_source,
            workload(12, |n| match n % 3 {
                0 => (0, n + 1),
                1 => (1000, 0),
                _ => (0, 0),
            }),
        );
        assert_eq!(calls, 12, "{order:?}");
        assert_eq!(served(&text), Served::new(), "{order:?}:\n{text}");
        assert!(text.contains("rpc_calls_total{method=\"a\"} 6\n"), "{text}");
        // A valid span after them is linked again.
        let (text, _) = run(order, with_source, |mock| {
            workload(2, |n| if n == 0 { (0, 0) } else { (7, 9) })(mock)
        });
        let served = served(&text);
        assert_eq!(served.len(), 2, "{order:?}:\n{text}");
        assert_eq!(
            served[&key("rpc_calls_total", "b", "")],
            (format!("{:032x}", 7), format!("{:016x}", 9), 1.0)
        );
    }
}

#[test]
fn a_source_that_finds_nothing_gives_no_exemplar() {
    let (text, calls) = run(
        Order::OwnInside,
        |layer, calls| {
            layer.with_exemplar_source(move |_: &Id, _: &Dispatch| {
                calls.fetch_add(1, Ordering::Relaxed);
                None
            })
        },
        workload(4, numbered),
    );
    assert_eq!(calls, 4);
    assert_eq!(served(&text), Served::new(), "{text}");
}

#[test]
fn exemplars_switched_off_do_not_ask_the_source() {
    let (text, calls) = run(
        Order::OwnInside,
        |layer, calls| with_source(layer, calls).with_exemplars(false),
        workload(4, numbered),
    );
    assert_eq!(calls, 0);
    assert_eq!(served(&text), Served::new(), "{text}");
    assert!(text.contains("rpc_calls_total{method=\"a\"} 2\n"), "{text}");
}

#[test]
fn without_a_source_nothing_is_captured() {
    // Without the `opentelemetry` feature there is no other source; with it, no
    // tracing-opentelemetry layer here: no exemplar either way.
    let (text, calls) = run(Order::OwnInside, |layer, _| layer, workload(4, numbered));
    assert_eq!(calls, 0);
    assert_eq!(served(&text), Served::new(), "{text}");
}

/// With the `opentelemetry` feature and sampled OpenTelemetry spans too, in either order of the
/// three layers: the source's ids are served, never the OpenTelemetry ones.
#[cfg(feature = "opentelemetry")]
#[test]
fn a_source_takes_precedence_over_opentelemetry() {
    use opentelemetry::trace::TracerProvider as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    for otel_outside in [false, true] {
        let (clock, mock) = quanta::Clock::mock();
        let (layer, exposition) =
            exporter::build_with_own_recorder(rules().with_clock(clock)).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = with_source(layer, calls.clone());
        // A layer's type depends on the stack under it: one per order.
        macro_rules! otel {
            () => {
                tracing_opentelemetry::layer().with_tracer(provider.tracer("precedence"))
            };
        }
        let dispatch = if otel_outside {
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(OwnContext)
                    .with(layer)
                    .with(otel!()),
            )
        } else {
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(otel!())
                    .with(OwnContext)
                    .with(layer),
            )
        };
        tracing::dispatcher::with_default(&dispatch, || workload(4, numbered)(&mock));
        let text = exposition.render_openmetrics();
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        let served = served(&text);
        assert_eq!(served.len(), 6, "{text}");
        assert!(
            served
                .values()
                .all(|(trace, _, _)| *trace == format!("{:032x}", 1000)),
            "otel outside: {otel_outside}:\n{text}"
        );
        assert_eq!(
            served[&key("rpc_calls_total", "b", "")],
            (format!("{:032x}", 1000), format!("{:016x}", 4), 1.0)
        );
    }
}
