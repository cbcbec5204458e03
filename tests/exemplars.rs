//! Exemplars: observations of sampled OpenTelemetry spans carry the trace and span ids that
//! tracing-opentelemetry exported for the same spans (an in-memory span exporter), per bucket
//! and per counter series, whichever order the two layers are in; none for unsampled spans or
//! invalid contexts; served as OpenMetrics when the scraper asks for it, over real HTTP, and
//! stored by a real Prometheus with exemplar storage.

#[path = "common/example_bin.rs"]
mod example_bin;

#[path = "common/openmetrics.rs"]
mod openmetrics;

use openmetrics::{Served, served};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_bin::{free_port, get, poll, query, skip_or_fail, start_prometheus_with};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_spanmetrics::{Buckets, Metric, SpanMetrics, SpanMetricsBuilder, Spans, exporter};
use tracing_subscriber::prelude::*;

/// Keeps every finished span.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    /// `registry().with(otel).with(metrics)`: tracing-opentelemetry closes first.
    OtelInside,
    /// `registry().with(metrics).with(otel)`: this layer closes first.
    OtelOutside,
}

const ORDERS: [Order; 2] = [Order::OtelInside, Order::OtelOutside];

/// Durations by `n % 4`: one per bucket of `rules()`, `+Inf` last.
const MILLIS: [u64; 4] = [5, 50, 500, 5_000];

/// Runs `work` under both layers (tracer from `tracer_for`), returns the OpenMetrics text and
/// the exported spans.
fn run_with<T>(
    order: Order,
    tracer: T,
    flush: impl FnOnce(),
    work: impl FnOnce(&quanta::Mock),
) -> String
where
    T: opentelemetry::trace::Tracer + Send + Sync + 'static,
    T::Span: Send + Sync,
{
    let (clock, mock) = quanta::Clock::mock();
    let (layer, exposition) = exporter::build_with_own_recorder(rules().with_clock(clock)).unwrap();
    macro_rules! otel {
        () => {
            tracing_opentelemetry::layer().with_tracer(tracer)
        };
    }
    let dispatch = match order {
        Order::OtelInside => {
            Dispatch::new(tracing_subscriber::registry().with(otel!()).with(layer))
        }
        Order::OtelOutside => {
            Dispatch::new(tracing_subscriber::registry().with(layer).with(otel!()))
        }
    };
    tracing::dispatcher::with_default(&dispatch, || work(&mock));
    flush();
    exposition.render_openmetrics()
}

fn run(
    order: Order,
    sampler: Sampler,
    work: impl FnOnce(&quanta::Mock),
) -> (String, Vec<SpanData>) {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .with_sampler(sampler)
        .build();
    let tracer = provider.tracer("exemplars");
    let text = run_with(order, tracer, || provider.force_flush().unwrap(), work);
    let spans = collect.0.lock().unwrap().clone();
    (text, spans)
}

/// `n` spans named `rpc`, method `a` (even) or `b` (odd), entered for `MILLIS[n % 4]`.
fn workload(count: u64) -> impl FnOnce(&quanta::Mock) {
    move |mock: &quanta::Mock| {
        for n in 0..count {
            let span = tracing::info_span!("rpc", n, method = ["a", "b"][(n % 2) as usize]);
            span.in_scope(|| mock.increment(Duration::from_millis(MILLIS[(n % 4) as usize])));
        }
    }
}

/// The exported ids of each span by its field `n`.
fn ids_by_n(spans: &[SpanData]) -> BTreeMap<i64, (String, String)> {
    spans
        .iter()
        .filter_map(|s| {
            let n = s.attributes.iter().find(|kv| kv.key.as_str() == "n")?;
            // `u64` fields reach tracing-opentelemetry as `Debug` text.
            let n = match &n.value {
                opentelemetry::Value::I64(n) => *n,
                other => other.as_str().parse().ok()?,
            };
            let cx = &s.span_context;
            Some((n, (cx.trace_id().to_string(), cx.span_id().to_string())))
        })
        .collect()
}

/// What must be served for `count` spans of `workload` of which those in `exported` were
/// sampled: per bucket and counter series, the latest sampled span that landed there.
fn expected(count: u64, exported: &BTreeMap<i64, (String, String)>) -> Served {
    let les = ["0.01", "0.1", "1", "+Inf"];
    let mut out = Served::new();
    for n in 0..count {
        let Some((trace, span)) = exported.get(&(n as i64)) else {
            continue;
        };
        let method = ["a", "b"][(n % 2) as usize].to_owned();
        let millis = MILLIS[(n % 4) as usize];
        out.insert(
            (
                "rpc_duration_seconds_bucket".into(),
                method.clone(),
                les[(n % 4) as usize].into(),
            ),
            (trace.clone(), span.clone(), millis as f64 / 1000.0),
        );
        out.insert(
            ("rpc_calls_total".into(), method, String::new()),
            (trace.clone(), span.clone(), 1.0),
        );
    }
    out
}

#[test]
fn exemplars_are_the_exported_ids_of_the_latest_span_per_bucket_in_both_orders() {
    for order in ORDERS {
        let (text, spans) = run(order, Sampler::AlwaysOn, workload(16));
        let exported = ids_by_n(&spans);
        assert_eq!(exported.len(), 16, "{order:?}");
        let served = served(&text);
        assert_eq!(served, expected(16, &exported), "{order:?}:\n{text}");
        // Spelled out: 4 buckets and 2 counter series carry one; n = 12 was the latest `a` span
        // of 5 ms.
        assert_eq!(served.len(), 6);
        let key = (
            "rpc_duration_seconds_bucket".to_owned(),
            "a".to_owned(),
            "0.01".to_owned(),
        );
        assert_eq!(served[&key].0, exported[&12].0);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

/// A span closed while another dispatcher is the default (its last handle dropped there):
/// its ids are read at close through the dispatcher the layer belongs to, not the current
/// default. (Never entered, so that they are read at close: tracing-opentelemetry outside.)
#[test]
fn a_span_closed_under_another_default_dispatcher_keeps_its_exemplar() {
    let other = Dispatch::new(tracing_subscriber::registry());
    let (text, spans) = run(Order::OtelOutside, Sampler::AlwaysOn, |mock| {
        let span = tracing::info_span!("rpc", n = 0, method = "a");
        mock.increment(Duration::from_millis(MILLIS[0]));
        tracing::dispatcher::with_default(&other, || drop(span));
    });
    let exported = ids_by_n(&spans);
    assert_eq!(exported.len(), 1);
    assert_eq!(served(&text), expected(1, &exported), "{text}");
}

#[test]
fn spans_never_entered_carry_exemplars_when_tracing_opentelemetry_is_outside() {
    let (text, spans) = run(Order::OtelOutside, Sampler::AlwaysOn, |mock| {
        let span = tracing::info_span!("rpc", n = 0, method = "a");
        mock.increment(Duration::from_millis(MILLIS[0]));
        drop(span);
    });
    let exported = ids_by_n(&spans);
    assert_eq!(served(&text), expected(1, &exported), "{text}");
    assert_eq!(served(&text).len(), 2);
}

#[test]
fn unsampled_spans_carry_none() {
    for order in ORDERS {
        let (text, spans) = run(order, Sampler::AlwaysOff, workload(8));
        assert!(spans.is_empty());
        assert_eq!(served(&text), Served::new(), "{order:?}:\n{text}");
        assert!(text.contains("rpc_calls_total{method=\"a\"} 4\n"), "{text}");
        // Half of the traces sampled: exactly the exported ones are linked.
        let (text, spans) = run(order, Sampler::TraceIdRatioBased(0.5), workload(64));
        let exported = ids_by_n(&spans);
        assert!(
            exported.len() < 64 && !exported.is_empty(),
            "{}",
            exported.len()
        );
        assert_eq!(served(&text), expected(64, &exported), "{order:?}:\n{text}");
    }
}

fn remote(trace: u128, span: u64, flags: TraceFlags) -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        true,
        TraceState::default(),
    ))
}

#[test]
fn a_remote_parent_set_after_creation_gives_its_trace_id() {
    const TRACE: u128 = 0x0af7651916cd43dd8448eb211c80319c;
    for order in ORDERS {
        let (text, spans) = run(
            order,
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            |mock| {
                let span = tracing::info_span!("rpc", n = 0, method = "a");
                span.set_parent(remote(TRACE, 0xb7ad6b7169203331, TraceFlags::SAMPLED))
                    .unwrap();
                span.in_scope(|| mock.increment(Duration::from_millis(5)));
            },
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_span_id, SpanId::from(0xb7ad6b7169203331));
        let exported = ids_by_n(&spans);
        assert_eq!(exported[&0].0, format!("{TRACE:032x}"));
        assert_eq!(served(&text), expected(1, &exported), "{order:?}:\n{text}");
    }
}

#[test]
fn invalid_contexts_give_no_exemplar_and_no_panic() {
    for order in ORDERS {
        // A tracer whose spans have invalid (all-zero) contexts, or their parent's: here a
        // remote parent with all-zero ids that claims to be sampled.
        let text = run_with(
            order,
            opentelemetry::trace::noop::NoopTracer::new(),
            || {},
            |mock| {
                workload(4)(mock);
                let span = tracing::info_span!("rpc", n = 4, method = "a");
                let _ = span.set_parent(remote(0, 0, TraceFlags::SAMPLED));
                span.in_scope(|| mock.increment(Duration::from_millis(5)));
            },
        );
        assert_eq!(served(&text), Served::new(), "{order:?}:\n{text}");
        assert!(text.contains("rpc_calls_total{method=\"a\"} 3\n"), "{text}");
    }
}

#[test]
fn exemplars_can_be_switched_off() {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let (clock, mock) = quanta::Clock::mock();
    let (layer, exposition) = exporter::build_with_own_recorder(rules().with_clock(clock)).unwrap();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(layer.with_exemplars(false)),
    );
    tracing::dispatcher::with_default(&dispatch, || workload(4)(&mock));
    provider.force_flush().unwrap();
    assert_eq!(collect.0.lock().unwrap().len(), 4);
    let text = exposition.render_openmetrics();
    assert_eq!(served(&text), Served::new(), "{text}");
}

/// `GET /metrics` with `accept`: (content type, body).
fn scrape(addr: SocketAddr, accept: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// The sample lines of an exposition, without exemplars, as a set.
fn samples(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(" # {").next().unwrap().to_owned())
        .collect()
}

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The one test of this binary that installs the global recorder: `exporter::install`'s
/// endpoint negotiates the format over real HTTP, and a real Prometheus with exemplar storage
/// scrapes it as OpenMetrics and stores the exemplars.
#[test]
fn install_negotiates_and_prometheus_stores_the_exemplars() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let layer = rules().build().unwrap();
    let handle = rt
        .block_on(async { exporter::install(&layer, addr) })
        .unwrap();
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(layer),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..8 {
            let span = tracing::info_span!("rpc", n, method = "a");
            span.in_scope(|| std::thread::sleep(Duration::from_millis(1)));
        }
    });
    provider.force_flush().unwrap();
    let exported: BTreeSet<String> = ids_by_n(&collect.0.lock().unwrap())
        .into_values()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(exported.len(), 8);

    let (om_type, om) = scrape(addr, PROMETHEUS_ACCEPT);
    assert_eq!(om_type, exporter::OPENMETRICS_CONTENT_TYPE);
    assert!(om.ends_with("# EOF\n"), "{om}");
    let linked: BTreeSet<String> = served(&om).into_values().map(|(t, _, _)| t).collect();
    assert!(!linked.is_empty() && linked.is_subset(&exported), "{om}");
    for accept in [
        "application/json",
        "",
        "text/plain;version=0.0.4",
        "application/openmetrics-text;version=7",
    ] {
        let (classic_type, classic) = scrape(addr, accept);
        assert_eq!(classic_type, exporter::CLASSIC_CONTENT_TYPE, "{accept}");
        assert!(
            !classic.contains("# EOF") && !classic.contains(" # {"),
            "{classic}"
        );
        assert_eq!(samples(&classic), samples(&om), "{accept}");
    }
    assert_eq!(samples(&handle.render()), samples(&om));

    // A real Prometheus, exemplar storage on, negotiating OpenMetrics.
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("prometheus is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("spanmetrics-exemplars-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (prom, _guard) = start_prometheus_with(
        &dir,
        "exemplars",
        addr,
        None,
        &["--enable-feature=exemplar-storage"],
    );
    let up = poll(Duration::from_secs(30), Duration::from_millis(250), || {
        query(prom, "up{job=\"exemplars\"}").filter(|v| v == &[1.0])
    });
    assert_eq!(
        up,
        Some(vec![1.0]),
        "{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    // Every classic sample is a series Prometheus stored (five more are its own per scrape).
    let series = poll(Duration::from_secs(10), Duration::from_millis(250), || {
        query(prom, "count({job=\"exemplars\"})").filter(|v| !v.is_empty())
    });
    assert_eq!(
        series,
        Some(vec![(samples(&handle.render()).len() + 5) as f64])
    );
    for family in ["rpc_duration_seconds_bucket", "rpc_calls_total"] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let body = poll(Duration::from_secs(15), Duration::from_millis(250), || {
            let path = format!(
                "/api/v1/query_exemplars?query={family}&start={}&end={}",
                now - 3600,
                now + 3600
            );
            let (status, body) = get(prom, &path).ok()?;
            (status == 200 && body.contains("trace_id")).then_some(body)
        })
        .unwrap_or_else(|| panic!("no exemplars for {family}"));
        let found: BTreeSet<String> = body
            .split("\"trace_id\":\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect();
        assert!(
            !found.is_empty() && found.is_subset(&exported),
            "{family}: {body}"
        );
    }
}
