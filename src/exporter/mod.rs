//! Exporter helpers: `metrics-exporter-prometheus` set up for the layer's families.
//!
//! `metrics-exporter-prometheus` renders a histogram as a summary unless buckets are set for it,
//! fixes those buckets when it is built, and keeps raw samples until its upkeep drains them.
//! These helpers take care of all three:
//! - [`install`]: the global recorder with an HTTP listener for `/metrics`, and its upkeep;
//! - [`build_with_own_recorder`]: a layer recording into a recorder of its own (nothing
//!   installed globally), with an [`Exposition`] to serve from your own HTTP server;
//! - [`add_buckets`] and [`prometheus_builder`]: a `PrometheusBuilder` (yours, or a new one)
//!   with every declared histogram's buckets.
//!
//! With the `exemplars` feature, [`install`] serves `/metrics` from an endpoint of this
//! crate's that negotiates the format: OpenMetrics text with exemplars when the scraper's
//! `Accept` asks for it (Prometheus does), the classic text otherwise; an [`Exposition`] renders
//! either (`Exposition::render_openmetrics`, `Exposition::negotiate`); and
//! `render_openmetrics` makes the OpenMetrics text from any `PrometheusHandle` the layer
//! records into. (Those three exist only with the feature, so they are not linked here: these
//! docs build with any set of features.) A plain `metrics-exporter-prometheus` setup of your own (its own HTTP listener)
//! keeps working unchanged, without exemplars: that exporter renders only the classic format.
//!
//! Exported names do not depend on the exporter's naming settings: the layer registers each
//! family under its exported name (dots to `_`, unit suffix, `_total` on counters; see
//! [`HistogramInfo::exported_name`]), so a plain `PrometheusBuilder::new()` and
//! `with_recommended_naming(true)` show the same names.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

#[cfg(feature = "exemplars")]
mod http;
#[cfg(feature = "exemplars")]
mod openmetrics;

#[cfg(feature = "exemplars")]
pub use openmetrics::{CLASSIC_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, wants_openmetrics};

use crate::layer::ExporterBuckets;
use crate::{Buckets, ConfigError, HistogramInfo, SpanMetricsBuilder, SpanMetricsLayer};

/// Where [`install`] is usually pointed: loopback only, port 9000.
pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 9000);

/// How often the upkeep of [`install`] and [`build_with_own_recorder`] drains histogram
/// samples into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Anything that knows the histogram families it records: a built [`SpanMetricsLayer`] or a
/// [`SpanMetricsBuilder`] (to set the exporter up before building the layer).
pub trait DeclaresHistograms {
    /// Every histogram family with its buckets.
    fn declared_histograms(&self) -> Vec<HistogramInfo>;
}

impl DeclaresHistograms for SpanMetricsLayer {
    fn declared_histograms(&self) -> Vec<HistogramInfo> {
        self.histograms()
    }
}

impl DeclaresHistograms for SpanMetricsBuilder {
    fn declared_histograms(&self) -> Vec<HistogramInfo> {
        self.histograms()
    }
}

/// The buckets every histogram without buckets of its own falls back to in
/// [`prometheus_builder`]: [`Buckets::otel_durations`].
fn fallback_buckets() -> Vec<f64> {
    Buckets::otel_durations().bounds().to_vec()
}

/// Adds the buckets of every histogram family `layer` declares to a `PrometheusBuilder` you
/// already have, so that none is rendered as a summary. Your other settings are kept.
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
/// use tracing_spanmetrics::{Metric, SpanMetrics, Spans, exporter};
///
/// let rules = SpanMetrics::builder()
///     .metric(Metric::histogram("rpc.duration.seconds").spans(Spans::named("rpc")));
/// let builder = exporter::add_buckets(PrometheusBuilder::new(), &rules)?;
/// # let _ = builder;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Never in practice: bucket lists were validated when the rules were; the exporter's own
/// error is passed through.
pub fn add_buckets(
    builder: PrometheusBuilder,
    layer: &(impl DeclaresHistograms + ?Sized),
) -> Result<PrometheusBuilder, BuildError> {
    layer
        .declared_histograms()
        .into_iter()
        .try_fold(builder, |builder, h| {
            builder.set_buckets_for_metric(Matcher::Full(h.exported_name), &h.buckets)
        })
}

/// A `PrometheusBuilder` with buckets for every histogram family of `layer` (and the semantic
/// conventions' duration buckets for any other histogram) and the recommended naming. Add your
/// own settings, then install or build it.
///
/// # Errors
/// As [`add_buckets`].
pub fn prometheus_builder(
    layer: &(impl DeclaresHistograms + ?Sized),
) -> Result<PrometheusBuilder, BuildError> {
    let builder = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(&fallback_buckets())?;
    add_buckets(builder, layer)
}

/// What a reload must keep: the buckets [`prometheus_builder`] fixed for `layer`.
fn fixed_by_prometheus_builder(layer: &(impl DeclaresHistograms + ?Sized)) -> ExporterBuckets {
    ExporterBuckets {
        per_family: layer
            .declared_histograms()
            .into_iter()
            .map(|h| (h.exported_name, h.buckets))
            .collect(),
        fallback: Some(fallback_buckets()),
    }
}

/// Installs the global Prometheus recorder for `layer`'s families, serving `/metrics` on `addr`
/// (bind loopback, e.g. `127.0.0.1:9000`, unless it must be reachable from elsewhere). The
/// exporter's upkeep (which drains histogram samples) runs on a task of its own every
/// [`UPKEEP_INTERVAL`]. Must be called from within a Tokio runtime. Reloads of `layer` that
/// declare histogram buckets other than these are refused from then on.
///
/// # Errors
/// The exporter's error: the address is taken, a recorder is already installed, …
///
/// With the `exemplars` feature, `/metrics` (and any other path) is served by this crate's
/// own endpoint: OpenMetrics text with exemplars when the scraper's `Accept` asks for it, the
/// classic text otherwise; the upkeep then runs on a thread of its own.
#[cfg(feature = "exemplars")]
pub fn install(layer: &SpanMetricsLayer, addr: SocketAddr) -> Result<PrometheusHandle, BuildError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| BuildError::FailedToCreateHTTPListener(format!("{addr}: {e}")))?;
    let recorder = prometheus_builder(layer)?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    let exposition = Exposition::new(handle.clone(), Some(layer.exemplars()));
    tokio::spawn(http::serve(listener, exposition));
    layer.exporter_fixed(fixed_by_prometheus_builder(layer));
    Ok(handle)
}

/// Installs the global Prometheus recorder for `layer`'s families, serving `/metrics` on `addr`
/// (bind loopback, e.g. `127.0.0.1:9000`, unless it must be reachable from elsewhere). The
/// exporter's upkeep (which drains histogram samples) runs on a task of its own every
/// [`UPKEEP_INTERVAL`]. Must be called from within a Tokio runtime. Reloads of `layer` that
/// declare histogram buckets other than these are refused from then on.
///
/// # Errors
/// The exporter's error: the address is taken, a recorder is already installed, …
#[cfg(not(feature = "exemplars"))]
pub fn install(layer: &SpanMetricsLayer, addr: SocketAddr) -> Result<PrometheusHandle, BuildError> {
    let (recorder, exporter) = prometheus_builder(layer)?
        .with_http_listener(addr)
        .build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    tokio::spawn(exporter);
    layer.exporter_fixed(fixed_by_prometheus_builder(layer));
    Ok(handle)
}

/// The OpenMetrics text (content type [`OPENMETRICS_CONTENT_TYPE`]) of everything `handle`
/// renders, with the exemplars of `exemplars` (from
/// [`SpanMetricsLayer::exemplars`]): for your own HTTP server, when the scraper's `Accept`
/// asks for it ([`wants_openmetrics`]). Made from the handle's classic text, so both formats
/// show the same series (see the `openmetrics` notes in the README).
#[cfg(feature = "exemplars")]
#[must_use]
pub fn render_openmetrics(handle: &PrometheusHandle, exemplars: &crate::Exemplars) -> String {
    openmetrics::transform(&handle.render(), Some(exemplars))
}

/// [`install`] on [`DEFAULT_ADDR`]: `/metrics` on `127.0.0.1:9000`, reachable from this machine
/// only.
///
/// # Errors
/// As [`install`].
pub fn install_on_loopback(layer: &SpanMetricsLayer) -> Result<PrometheusHandle, BuildError> {
    install(layer, DEFAULT_ADDR.into())
}

/// Builds the layer of `builder` recording into a Prometheus recorder of its own, not installed
/// globally (the application's other metrics stay apart), with every histogram's buckets set.
/// The returned [`Exposition`] renders the text to serve on `/metrics` from your own HTTP
/// server, and runs the recorder's upkeep on a thread of its own until it is dropped.
///
/// Reloads of the layer keep recording into this recorder, and are refused if they declare
/// histogram buckets other than the ones fixed here.
///
/// ```
/// use tracing_spanmetrics::{Metric, SpanMetrics, Spans, exporter};
/// use tracing_subscriber::prelude::*;
///
/// let (layer, exposition) = exporter::build_with_own_recorder(
///     SpanMetrics::builder()
///         .metric(Metric::histogram("rpc.duration.seconds").spans(Spans::named("rpc"))),
/// )?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     drop(tracing::info_span!("rpc"));
/// });
/// // In your `/metrics` handler:
/// let text = exposition.render();
/// assert!(text.contains("rpc_duration_seconds_count 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`SetupError::Config`] for rules the builder refuses, [`SetupError::Exporter`] for the
/// exporter's own error.
pub fn build_with_own_recorder(
    builder: SpanMetricsBuilder,
) -> Result<(SpanMetricsLayer, Exposition), SetupError> {
    let recorder = prometheus_builder(&builder)
        .map_err(SetupError::Exporter)?
        .build_recorder();
    let handle = recorder.handle();
    let fixed = fixed_by_prometheus_builder(&builder);
    let layer = builder
        .with_recorder(Arc::new(recorder))
        .build()
        .map_err(SetupError::Config)?;
    layer.exporter_fixed(fixed);
    #[cfg(feature = "exemplars")]
    let exemplars = Some(layer.exemplars());
    #[cfg(not(feature = "exemplars"))]
    let exemplars = None;
    Ok((layer, Exposition::new(handle, exemplars)))
}

/// Renders a recorder's metrics as Prometheus text and keeps its upkeep running; made by
/// [`build_with_own_recorder`]. Clones share the recorder and the upkeep, which stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Exposition {
    handle: PrometheusHandle,
    #[cfg(feature = "exemplars")]
    exemplars: Option<crate::Exemplars>,
    _upkeep: Arc<Upkeep>,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Exposition {
    fn new(handle: PrometheusHandle, exemplars: Option<Exemplars>) -> Self {
        #[cfg(not(feature = "exemplars"))]
        let _: Option<Exemplars> = exemplars;
        let upkeep = Arc::new_cyclic(|weak: &Weak<Upkeep>| {
            let weak = weak.clone();
            let handle = handle.clone();
            let thread = std::thread::Builder::new()
                .name("spanmetrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::park_timeout(UPKEEP_INTERVAL);
                        if weak.strong_count() == 0 {
                            return;
                        }
                        handle.run_upkeep();
                    }
                })
                .ok()
                .map(|t| t.thread().clone());
            Upkeep { thread }
        });
        Exposition {
            handle,
            #[cfg(feature = "exemplars")]
            exemplars,
            _upkeep: upkeep,
        }
    }

    /// The metrics as OpenMetrics text (content type [`OPENMETRICS_CONTENT_TYPE`]), with the
    /// layer's exemplars: the same series as [`Exposition::render`].
    #[cfg(feature = "exemplars")]
    #[must_use]
    pub fn render_openmetrics(&self) -> String {
        openmetrics::transform(&self.handle.render(), self.exemplars.as_ref())
    }

    /// The metrics in the Prometheus text format (`text/plain; version=0.0.4`).
    #[must_use]
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The exporter's own handle, for what this type does not offer.
    #[must_use]
    pub fn prometheus_handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

/// The layer's exemplars, where the feature keeps them.
#[cfg(feature = "exemplars")]
type Exemplars = crate::Exemplars;
/// No exemplars without the feature.
#[cfg(not(feature = "exemplars"))]
type Exemplars = std::convert::Infallible;

/// Wakes the upkeep thread when the last [`Exposition`] is dropped, so that it ends.
struct Upkeep {
    thread: Option<Thread>,
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

/// Why [`build_with_own_recorder`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The rules were refused.
    Config(ConfigError),
    /// The exporter could not be built.
    Exporter(BuildError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Config(e) => write!(f, "invalid span metrics configuration: {e}"),
            SetupError::Exporter(e) => write!(f, "the Prometheus exporter failed: {e}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Config(e) => Some(e),
            SetupError::Exporter(e) => Some(e),
        }
    }
}
