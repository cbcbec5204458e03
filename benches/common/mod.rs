//! The benchmark workload and its variants, shared by the criterion groups (`benches/spans.rs`)
//! and the round-robin harness (`benches/roundrobin.rs`).
//!
//! The workload is the span an instrumented RPC opens: a span with three fields (a partition
//! number, a service name from a set of 4, a deployment id from a set of 3), entered, exited and
//! closed, from which a duration histogram and a calls counter labelled by the three fields are
//! derived. Each [`Variant`] runs `n` of those spans under its own dispatcher (and, for
//! metrics-tracing-context, its own thread-local recorder) and returns the time they took.
//!
//! Every variant that records through the `metrics` facade records into a real
//! `metrics-exporter-prometheus` recorder (global; metrics-tracing-context's is a second one,
//! wrapped in its `TracingContextLayer`). The recorder keeps raw histogram samples until upkeep:
//! [`Suite::drain`] runs it, and the harnesses call it outside the timed region.
#![allow(dead_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::Layer as _;
use opentelemetry::trace::TracerProvider as _;
use tracing::{Dispatch, Span, dispatcher};
use tracing_spanmetrics::{Buckets, EventMatch, Metric, SpanMetrics, Spans};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;

/// Service names (labels).
pub const SERVICES: [&str; 4] = ["greeter", "checkout", "inventory", "payments"];
/// Deployment ids (labels).
pub const DEPLOYMENTS: [&str; 3] = [
    "dp_11pXug0RJWeVbsfimjmgh3gG",
    "dp_12VZ8Rt6qrcqEqDnGDyNvBm5",
    "dp_13iqgD2HBzB1pqjnV8ZkfMcG",
];
/// Partition numbers are `0..PARTITIONS`: 64 × 4 × 3 = 768 label sets per family.
pub const PARTITIONS: u64 = 64;
/// Length of the (pseudo-random, fixed) input sequence; a power of two.
const INPUTS: usize = 4096;
/// The message of the milestone event.
pub const MILESTONE: &str = "first byte";

/// One RPC's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Input {
    pub partition: u64,
    pub service: &'static str,
    pub deployment: &'static str,
    /// The label set's position in [`label_sets`] (to pick a parent span without work).
    pub set: usize,
}

/// The fixed input sequence (xorshift, so every run sees the same labels in the same order).
pub fn inputs() -> &'static [Input] {
    static INPUT: OnceLock<Vec<Input>> = OnceLock::new();
    INPUT.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..INPUTS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (p, s, d) = (x % PARTITIONS, (x >> 8) % 4, (x >> 16) % 3);
                Input {
                    partition: p,
                    service: SERVICES[s as usize],
                    deployment: DEPLOYMENTS[d as usize],
                    set: ((p * 4 + s) * 3 + d) as usize,
                }
            })
            .collect()
    })
}

/// Every label set of the workload.
pub fn label_sets() -> impl Iterator<Item = Input> {
    (0..PARTITIONS).flat_map(|partition| {
        SERVICES.iter().enumerate().flat_map(move |(s, &service)| {
            DEPLOYMENTS
                .iter()
                .enumerate()
                .map(move |(d, &deployment)| Input {
                    partition,
                    service,
                    deployment,
                    set: (partition as usize * 4 + s) * 3 + d,
                })
        })
    })
}

/// A layer that does nothing: `Registry` plus this frees closed spans, which a bare `Registry`
/// never does (tokio-rs/tracing#900).
pub struct NoopLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

/// Reads each span's OpenTelemetry context at close and keeps a sampled span's trace id, and
/// does nothing else: what capturing an exemplar cannot do without.
struct OtelContextOnly;

impl<S> tracing_subscriber::Layer<S> for OtelContextOnly
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_close(&self, id: tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        use opentelemetry::trace::TraceContextExt as _;
        dispatcher::get_default(|d| {
            if let Some(cx) = tracing_opentelemetry::get_otel_context(&id, d) {
                let span = cx.span();
                let sc = span.span_context();
                if sc.is_valid() && sc.is_sampled() {
                    black_box(sc.trace_id());
                }
            }
        });
    }
}

/// An OpenTelemetry span processor that drops every span: the in-process cost of the
/// OpenTelemetry SDK's tracing with nothing exported.
#[derive(Debug)]
struct DiscardSpans;

impl opentelemetry_sdk::trace::SpanProcessor for DiscardSpans {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// An OpenTelemetry metrics exporter that drops what the periodic reader collects (every 60 s).
struct DiscardMetrics;

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for DiscardMetrics {
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        black_box(metrics);
        Ok(())
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

// ---------------------------------------------------------------------------------------------
// The workload bodies. `#[inline(never)]` keeps each one a single, comparable piece of code.

/// Span with three fields, enter, exit, close.
#[inline(never)]
pub fn span_only(x: &Input) {
    let span = tracing::info_span!(
        "rpc",
        partition = x.partition,
        service = x.service,
        deployment = x.deployment
    );
    let guard = span.enter();
    black_box(&guard);
    drop(guard);
    drop(span);
}

/// As [`span_only`], with the milestone event emitted inside the span.
#[inline(never)]
pub fn span_with_event(x: &Input) {
    let span = tracing::info_span!(
        "rpc",
        partition = x.partition,
        service = x.service,
        deployment = x.deployment
    );
    let guard = span.enter();
    tracing::info!("first byte");
    drop(guard);
    drop(span);
}

/// The measured span is a child of a long-lived span that carries the three fields.
#[inline(never)]
pub fn child_span(parent: &Span) {
    let span = tracing::info_span!(parent: parent, "rpc");
    let guard = span.enter();
    black_box(&guard);
    drop(guard);
    drop(span);
}

/// Hand-written, naive: `histogram!`/`counter!` with labels on every call.
#[inline(never)]
fn naive(x: &Input) {
    let start = Instant::now();
    span_only(x);
    let elapsed = start.elapsed();
    let labels = [
        ("partition", x.partition.to_string()),
        ("service", x.service.to_owned()),
        ("deployment", x.deployment.to_owned()),
    ];
    metrics::histogram!("hand.naive.duration.seconds", &labels).record(elapsed);
    metrics::counter!("hand.naive.calls", &labels).increment(1);
}

/// Every label set with its histogram and calls counter, registered on the current recorder
/// under `prefix`.
fn prebuilt(prefix: &str) -> impl Iterator<Item = (Input, (Histogram, Counter))> + '_ {
    label_sets().map(move |x| {
        let labels = [
            ("partition", x.partition.to_string()),
            ("service", x.service.to_owned()),
            ("deployment", x.deployment.to_owned()),
        ];
        let h = metrics::histogram!(format!("{prefix}.duration.seconds"), &labels);
        let c = metrics::counter!(format!("{prefix}.calls"), &labels);
        (x, (h, c))
    })
}

/// Pre-built handles per label set, keyed by the three values.
pub struct Handles<S> {
    map: HashMap<(u64, &'static str, &'static str), (Histogram, Counter), S>,
}

impl<S: std::hash::BuildHasher + Default> Handles<S> {
    /// Registers every label set's handles on the current recorder.
    pub fn new(prefix: &str) -> Self {
        let map = prebuilt(prefix)
            .map(|(x, handles)| ((x.partition, x.service, x.deployment), handles))
            .collect();
        Handles { map }
    }

    #[inline(never)]
    fn run(&self, x: &Input) {
        let start = Instant::now();
        span_only(x);
        let elapsed = start.elapsed();
        if let Some((h, c)) = self.map.get(&(x.partition, x.service, x.deployment)) {
            h.record(elapsed);
            c.increment(1);
        }
    }
}

/// The three labels as a hand-written layer captures them from the span's fields: inline, so a
/// span costs no allocation beyond its extension.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
struct RpcKey {
    partition: u64,
    service: arrayvec::ArrayString<48>,
    deployment: arrayvec::ArrayString<48>,
}

impl RpcKey {
    fn of(x: &Input) -> Self {
        let mut key = RpcKey {
            partition: x.partition,
            ..RpcKey::default()
        };
        key.record_str_named("service", x.service);
        key.record_str_named("deployment", x.deployment);
        key
    }

    fn record_str_named(&mut self, name: &str, value: &str) {
        let slot = match name {
            "service" => &mut self.service,
            "deployment" => &mut self.deployment,
            _ => return,
        };
        slot.clear();
        // A value longer than the slot is cut on a character boundary.
        let mut end = value.len().min(slot.capacity());
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        slot.push_str(&value[..end]);
    }
}

impl tracing::field::Visit for RpcKey {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "partition" {
            self.partition = value;
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_str_named(field.name(), value);
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

/// What the hand-written layer keeps in a span's extensions.
struct RpcTiming {
    start: u64,
    key: RpcKey,
}

/// The best hand-written layer for this one workload: the floor of any layer that derives the
/// metrics from spans on tracing-subscriber. It knows the span name and the three fields at
/// compile time, captures them inline into one extension with a `quanta` timestamp, and at close
/// finds pre-built handles in a foldhash map. No configuration, no cardinality bound, no
/// outcome, no other measures: everything this crate's layer does beyond that is its own cost.
pub struct HandLayer {
    map: hashbrown::HashMap<RpcKey, (Histogram, Counter)>,
    clock: quanta::Clock,
}

impl HandLayer {
    /// Registers every label set's handles on the current recorder.
    pub fn new(prefix: &str) -> Self {
        let map = prebuilt(prefix)
            .map(|(x, handles)| (RpcKey::of(&x), handles))
            .collect();
        HandLayer {
            map,
            clock: quanta::Clock::new(),
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for HandLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "rpc" {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut key = RpcKey::default();
        attrs.record(&mut key);
        let start = self.clock.raw();
        span.extensions_mut().insert(RpcTiming { start, key });
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let now = self.clock.raw();
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(t) = ext.get::<RpcTiming>() else {
            return;
        };
        if let Some((h, c)) = self.map.get(&t.key) {
            h.record(self.clock.delta_as_nanos(t.start, now) as f64 * 1e-9);
            c.increment(1);
        }
    }
}

/// tracing-opentelemetry's `MetricsLayer`: an event at span end with `histogram.` and
/// `monotonic_counter.` fields (and the labels as attributes).
#[inline(never)]
fn otel_metrics_event(x: &Input) {
    let start = Instant::now();
    let span = tracing::info_span!(
        "rpc",
        partition = x.partition,
        service = x.service,
        deployment = x.deployment
    );
    let guard = span.enter();
    tracing::info!(
        histogram.otel_rpc_duration_seconds = start.elapsed().as_secs_f64(),
        monotonic_counter.otel_rpc_calls = 1u64,
        partition = x.partition,
        service = x.service,
        deployment = x.deployment,
    );
    drop(guard);
    drop(span);
}

/// metrics-tracing-context: unlabelled `histogram!`/`counter!` inside the span; its recorder
/// layer adds the span's fields as labels.
#[inline(never)]
fn mtc(x: &Input) {
    let start = Instant::now();
    let span = tracing::info_span!(
        "rpc",
        partition = x.partition,
        service = x.service,
        deployment = x.deployment
    );
    let guard = span.enter();
    metrics::histogram!("mtc.duration.seconds").record(start.elapsed());
    metrics::counter!("mtc.calls").increment(1);
    drop(guard);
    drop(span);
}

// ---------------------------------------------------------------------------------------------
// Variants.

/// How a variant relates to the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No subscriber: the floor.
    Floor,
    /// `Registry` + a no-op layer (and its siblings with an event or a parent).
    Baseline,
    /// Hand-written metric calls.
    Hand,
    /// This crate's layer.
    Layer,
    /// Another crate.
    Peer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Baseline => "baseline",
            Kind::Hand => "hand-written",
            Kind::Layer => "layer",
            Kind::Peer => "peer",
        }
    }
}

type Body = Box<dyn Fn(&Input) + Send + Sync>;

/// One way of doing the workload.
pub struct Variant {
    pub name: &'static str,
    pub kind: Kind,
    /// The baseline the added cost is taken against (the same spans without metrics).
    pub baseline: &'static str,
    /// Part of the two-thread scaling runs.
    pub threaded: bool,
    pub describe: &'static str,
    /// The Prometheus name of the calls counter the variant records (one per span), if it
    /// records one into the suite's exporters: the harness checks the count.
    pub calls: Option<&'static str>,
    dispatch: Dispatch,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    body: Body,
}

impl Variant {
    fn new(
        name: &'static str,
        kind: Kind,
        describe: &'static str,
        dispatch: Dispatch,
        body: impl Fn(&Input) + Send + Sync + 'static,
    ) -> Self {
        Variant {
            name,
            kind,
            baseline: "registry+noop",
            threaded: false,
            describe,
            calls: None,
            dispatch,
            recorder: None,
            body: Box::new(body),
        }
    }

    fn threaded(mut self) -> Self {
        self.threaded = true;
        self
    }

    fn counting(mut self, calls: &'static str) -> Self {
        self.calls = Some(calls);
        self
    }

    fn against(mut self, baseline: &'static str) -> Self {
        self.baseline = baseline;
        self
    }

    /// Runs `n` spans starting at input `offset` under the variant's dispatcher as the scoped
    /// default; returns how long they took. Never inlined: `scripts/bench_instructions.py`
    /// counts instructions inside it.
    #[inline(never)]
    pub fn run(&self, n: u64, offset: usize) -> Duration {
        dispatcher::with_default(&self.dispatch, || self.loop_here(n, offset))
    }

    /// Runs `n` spans under whatever dispatcher is current (the global one, after
    /// [`Variant::install_global`]).
    fn loop_here(&self, n: u64, offset: usize) -> Duration {
        let go = || {
            let inputs = inputs();
            let start = Instant::now();
            for i in 0..n as usize {
                (self.body)(&inputs[(offset + i) & (INPUTS - 1)]);
            }
            start.elapsed()
        };
        match &self.recorder {
            Some(r) => metrics::with_local_recorder(r.as_ref(), go),
            None => go(),
        }
    }

    /// Makes the variant's dispatcher the process's global default, as an application's
    /// `set_global_default` / `.init()` does (once per process). A global dispatcher is not
    /// reference-counted per span; a scoped one (`with_default`) is, with one shared counter
    /// written by every span on every thread.
    pub fn install_global(&self) {
        if self.name != "disabled" {
            dispatcher::set_global_default(self.dispatch.clone())
                .expect("one global dispatcher per process");
        }
    }

    /// Runs `n` spans on each of `threads` threads at once (after a short warm-up on each);
    /// returns the wall time from the common start until the last thread finished. `global`:
    /// under the global dispatcher instead of the variant's as scoped default.
    pub fn run_threads(&self, threads: usize, n: u64, global: bool) -> Duration {
        let barrier = Barrier::new(threads);
        let run = |n, offset| {
            if global {
                self.loop_here(n, offset)
            } else {
                self.run(n, offset)
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        run(2_000, t * 977);
                        barrier.wait();
                        let start = Instant::now();
                        run(n, t * 977);
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread panicked"))
                .max()
                .unwrap_or_default()
        })
    }
}

/// Every variant, with the recorders they write to.
pub struct Suite {
    pub variants: Vec<Variant>,
    prometheus: PrometheusHandle,
    mtc_prometheus: PrometheusHandle,
}

impl Suite {
    /// Drains the exporters' raw histogram samples (outside any timed region).
    pub fn drain(&self) {
        self.prometheus.run_upkeep();
        self.mtc_prometheus.run_upkeep();
    }

    /// The sum of every series of the counter `name` in the suite's exporters.
    pub fn recorded(&self, name: &str) -> u64 {
        [&self.prometheus, &self.mtc_prometheus]
            .iter()
            .flat_map(|h| {
                h.render()
                    .lines()
                    .filter(|l| {
                        l.strip_prefix(name)
                            .is_some_and(|rest| rest.starts_with(['{', ' ']))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    pub fn get(&self, name: &str) -> &Variant {
        self.variants
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no variant {name}"))
    }
}

fn prometheus() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(Buckets::otel_durations().bounds())
        .expect("valid buckets")
}

fn three_labels(m: Metric) -> Metric {
    m.spans(Spans::named("rpc"))
        .labels(["partition", "service", "deployment"])
}

/// The equivalent rule: a wall-time histogram and a calls counter labelled by the three fields.
fn rule(prefix: &str) -> Vec<Metric> {
    vec![
        three_labels(Metric::histogram(format!("{prefix}.duration.seconds")).wall_time()),
        three_labels(Metric::counter(format!("{prefix}.calls")).spans_closed()),
    ]
}

fn layer_dispatch(metrics: Vec<Metric>) -> Dispatch {
    let layer = SpanMetrics::builder()
        .metrics(metrics)
        .build()
        .expect("valid rules");
    Dispatch::new(Registry::default().with(layer))
}

fn noop_dispatch() -> Dispatch {
    Dispatch::new(Registry::default().with(NoopLayer))
}

/// Builds every variant and installs the global Prometheus recorder (once per process).
pub fn suite() -> Suite {
    let recorder = prometheus().build_recorder();
    let prometheus_handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the suite is built once per process");

    let mtc_recorder = prometheus().build_recorder();
    let mtc_prometheus = mtc_recorder.handle();
    let mtc_recorder: Arc<dyn Recorder + Send + Sync> =
        Arc::new(metrics_tracing_context::TracingContextLayer::all().layer(mtc_recorder));

    let mut v = Vec::new();
    v.push(
        Variant::new(
            "disabled",
            Kind::Floor,
            "no subscriber (the no-op dispatcher is current)",
            Dispatch::none(),
            span_only,
        )
        .threaded(),
    );
    v.push(
        Variant::new(
            "registry+noop",
            Kind::Baseline,
            "Registry + a no-op layer, no metrics",
            noop_dispatch(),
            span_only,
        )
        .threaded(),
    );
    v.push(
        Variant::new(
            "registry+noop/event",
            Kind::Baseline,
            "Registry + a no-op layer, an event inside the span",
            noop_dispatch(),
            span_with_event,
        )
        .against("registry+noop/event"),
    );
    let child_dispatch = noop_dispatch();
    let parents_noop = parents(&child_dispatch);
    v.push(
        Variant::new(
            "registry+noop/child",
            Kind::Baseline,
            "Registry + a no-op layer, the span a child of a long-lived span with the fields",
            child_dispatch,
            move |x| child_span(&parents_noop[x.set]),
        )
        .against("registry+noop/child"),
    );
    v.push(
        Variant::new(
            "hand/naive",
            Kind::Hand,
            "Registry + no-op layer; histogram!/counter! with labels per call (Instant::now)",
            noop_dispatch(),
            naive,
        )
        .counting("hand_naive_calls_total")
        .threaded(),
    );
    let handles = Handles::<std::hash::RandomState>::new("hand.handles");
    v.push(
        Variant::new(
            "hand/handles",
            Kind::Hand,
            "Registry + no-op layer; pre-built handles in a std HashMap (Instant::now)",
            noop_dispatch(),
            move |x| handles.run(x),
        )
        .counting("hand_handles_calls_total")
        .threaded(),
    );
    let fast = Handles::<hashbrown::DefaultHashBuilder>::new("hand.handles_foldhash");
    v.push(
        Variant::new(
            "hand/handles-foldhash",
            Kind::Hand,
            "as hand/handles, with hashbrown's default hasher (foldhash)",
            noop_dispatch(),
            move |x| fast.run(x),
        )
        .counting("hand_handles_foldhash_calls_total"),
    );
    let hand_layer = HandLayer::new("hand.layer");
    v.push(
        Variant::new(
            "hand/layer",
            Kind::Hand,
            "a hand-written layer for this workload only: fields captured inline into one extension, pre-built handles in a foldhash map (quanta)",
            Dispatch::new(Registry::default().with(hand_layer)),
            span_only,
        )
.counting("hand_layer_calls_total")
        .threaded(),
    );
    v.push(
        Variant::new(
            "layer/rule",
            Kind::Layer,
            "this crate: wall-time histogram + calls counter, three field labels",
            layer_dispatch(rule("sm.rule")),
            span_only,
        )
        .counting("sm_rule_calls_total")
        .threaded(),
    );
    let mut unrecorded = Variant::new(
        "layer/rule-unrecorded",
        Kind::Layer,
        "layer/rule recording into metrics' no-op recorder: the layer's own part, without the exporter's",
        layer_dispatch(rule("sm.unrecorded")),
        span_only,
    )
    .threaded();
    unrecorded.recorder = Some(Arc::new(metrics::NoopRecorder));
    v.push(unrecorded);
    v.push(
        Variant::new(
            "layer/red",
            Kind::Layer,
            "this crate: SpanMetrics::red (calls + duration by service, span name, kind, status)",
            Dispatch::new(
                Registry::default().with(SpanMetrics::red("bench").build().expect("valid")),
            ),
            span_only,
        )
        .counting("traces_span_metrics_calls_total")
        .threaded(),
    );
    let mut busy = rule("sm.busy");
    busy.push(three_labels(
        Metric::histogram("sm.busy.busy.seconds").busy_time(),
    ));
    busy.push(three_labels(
        Metric::histogram("sm.busy.idle.seconds").idle_time(),
    ));
    v.push(
        Variant::new(
            "layer/busy-idle",
            Kind::Layer,
            "this crate: the rule + busy-time and idle-time histograms",
            layer_dispatch(busy),
            span_only,
        )
        .counting("sm_busy_calls_total"),
    );
    v.push(
        Variant::new(
            "layer/rule+log",
            Kind::Layer,
            "this crate: the rule, with an event inside the span that no rule uses (a log line)",
            layer_dispatch(rule("sm.rule_log")),
            span_with_event,
        )
        .counting("sm_rule_log_calls_total")
        .against("registry+noop/event"),
    );
    let mut milestone = rule("sm.milestone");
    milestone.push(three_labels(
        Metric::histogram("sm.milestone.first_byte.seconds")
            .time_to(EventMatch::message(MILESTONE)),
    ));
    v.push(
        Variant::new(
            "layer/milestone",
            Kind::Layer,
            "this crate: the rule + time to a milestone event (event emitted inside the span)",
            layer_dispatch(milestone),
            span_with_event,
        )
        .counting("sm_milestone_calls_total")
        .against("registry+noop/event"),
    );
    let parent_dispatch = layer_dispatch(rule("sm.parent"));
    let parents_layer = parents(&parent_dispatch);
    v.push(
        Variant::new(
            "layer/parent-labels",
            Kind::Layer,
            "this crate: the rule, labels from a long-lived parent span",
            parent_dispatch,
            move |x| child_span(&parents_layer[x.set]),
        )
        .counting("sm_parent_calls_total")
        .against("registry+noop/child"),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_span_processor(DiscardSpans)
        .build();
    let tracer = provider.tracer("bench");
    v.push(Variant::new(
        "otel/tracer",
        Kind::Peer,
        "tracing-opentelemetry OpenTelemetryLayer, SDK tracer (always on), spans discarded",
        Dispatch::new(Registry::default().with(tracing_opentelemetry::layer().with_tracer(tracer))),
        span_only,
    ));
    // The floor of any exemplar capture through tracing-opentelemetry's supported API: a layer
    // that only reads each span's context at close (tracing-opentelemetry outside it, so its
    // data is still there) and keeps a sampled span's trace id. Against `otel/tracer` alone.
    v.push(Variant::new(
        "ref/otel-context",
        Kind::Hand,
        "a layer that only reads each span's OpenTelemetry context (get_otel_context) at close",
        Dispatch::new(
            Registry::default()
                .with(OtelContextOnly)
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
        ),
        span_only,
    )
    .against("otel/tracer"));
    // The layer beside tracing-opentelemetry (its layer inside, as `registry().with(otel)
    // .with(metrics)`; `/outside`: the other order), against `otel/tracer` alone: exemplars off
    // (or the `opentelemetry` feature off) and on.
    let beside_otel = |prefix: &str, exemplars: bool, otel_outside: bool| {
        let layer = SpanMetrics::builder()
            .metrics(rule(prefix))
            .build()
            .expect("valid rules");
        #[cfg(feature = "opentelemetry")]
        let layer = layer.with_exemplars(exemplars);
        #[cfg(not(feature = "opentelemetry"))]
        let _ = exemplars;
        let tracer = provider.tracer("bench");
        if otel_outside {
            let otel = tracing_opentelemetry::layer().with_tracer(tracer);
            Dispatch::new(Registry::default().with(layer).with(otel))
        } else {
            let otel = tracing_opentelemetry::layer().with_tracer(tracer);
            Dispatch::new(Registry::default().with(otel).with(layer))
        }
    };
    v.push(
        Variant::new(
            "layer/rule+otel",
            Kind::Layer,
            "layer/rule beside tracing-opentelemetry (its layer inside), exemplars off",
            beside_otel("sm.otel", false, false),
            span_only,
        )
        .counting("sm_otel_calls_total")
        .against("otel/tracer"),
    );
    #[cfg(feature = "opentelemetry")]
    v.push(
        Variant::new(
            "layer/rule+otel+exemplars",
            Kind::Layer,
            "layer/rule beside tracing-opentelemetry (its layer inside), exemplars on",
            beside_otel("sm.otel_ex", true, false),
            span_only,
        )
        .counting("sm_otel_ex_calls_total")
        .against("otel/tracer"),
    );
    #[cfg(feature = "opentelemetry")]
    v.push(
        Variant::new(
            "layer/rule+otel+exemplars/outside",
            Kind::Layer,
            "layer/rule+otel+exemplars with tracing-opentelemetry's layer outside this one",
            beside_otel("sm.otel_ex_out", true, true),
            span_only,
        )
        .counting("sm_otel_ex_out_calls_total")
        .against("otel/tracer"),
    );
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(DiscardMetrics).build())
        .build();
    v.push(Variant::new(
        "otel/metrics-event",
        Kind::Peer,
        "tracing-opentelemetry MetricsLayer (SDK MeterProvider) fed by an event at span end",
        Dispatch::new(
            Registry::default()
                .with(NoopLayer)
                .with(tracing_opentelemetry::MetricsLayer::new(meters)),
        ),
        otel_metrics_event,
    ));
    let mut mtc_variant = Variant::new(
        "metrics-tracing-context",
        Kind::Peer,
        "metrics-tracing-context: span fields as labels of histogram!/counter! inside the span",
        Dispatch::new(Registry::default().with(metrics_tracing_context::MetricsLayer::new())),
        mtc,
    )
    .counting("mtc_calls_total");
    mtc_variant.recorder = Some(mtc_recorder);
    v.push(mtc_variant);
    Suite {
        variants: v,
        prometheus: prometheus_handle,
        mtc_prometheus,
    }
}

/// Long-lived parents, one per label set, created under `dispatch`.
fn parents(dispatch: &Dispatch) -> Vec<Span> {
    dispatcher::with_default(dispatch, || {
        label_sets()
            .map(|x| {
                tracing::info_span!(
                    "partition",
                    partition = x.partition,
                    service = x.service,
                    deployment = x.deployment
                )
            })
            .collect()
    })
}
