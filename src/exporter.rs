//! Exporter helpers: `metrics-exporter-prometheus` set up for the layer's families.
//!
//! `metrics-exporter-prometheus` renders a histogram as a summary unless buckets are set for it,
//! and keeps raw samples until its upkeep drains them. [`prometheus_builder`] sets every declared
//! histogram's buckets and the recommended naming (`_total` on counters, unit suffixes);
//! [`install`] also starts the HTTP listener and the upkeep task.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{Buckets, HistogramInfo, SpanMetricsBuilder, SpanMetricsLayer};

/// Where [`install`] is usually pointed: loopback only, port 9000.
pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 9000);

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

/// A `PrometheusBuilder` with buckets for every histogram family of `layer` (and the semantic
/// conventions' duration buckets for any other histogram) and the recommended naming. Add your
/// own settings, then install or build it.
///
/// ```
/// use std::sync::Arc;
/// use tracing_spanmetrics::{Metric, SpanMetrics, Spans, exporter};
///
/// let rules = SpanMetrics::builder()
///     .metric(Metric::histogram("rpc.duration.seconds").spans(Spans::named("rpc")));
/// // A recorder of your own (not installed globally), set up from the rules.
/// let recorder = exporter::prometheus_builder(&rules)?.build_recorder();
/// let handle = recorder.handle();
/// let layer = rules.with_recorder(Arc::new(recorder)).build()?;
/// # let _ = (layer, handle);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Never in practice: bucket lists were validated when the layer was built; the exporter's own
/// error is passed through.
pub fn prometheus_builder(
    layer: &(impl DeclaresHistograms + ?Sized),
) -> Result<PrometheusBuilder, BuildError> {
    // Histograms added later (by a reload) fall back to these rather than becoming summaries.
    let mut builder = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(Buckets::otel_durations().bounds())?;
    for h in layer.declared_histograms() {
        builder = builder.set_buckets_for_metric(Matcher::Full(h.name), &h.buckets)?;
    }
    Ok(builder)
}

/// Installs the global Prometheus recorder for `layer`'s families, serving `/metrics` on `addr`
/// (bind loopback, e.g. `127.0.0.1:9000`, unless it must be reachable from elsewhere). The
/// exporter's upkeep (which drains histogram samples) runs on a task of its own every 5 s.
/// Must be called from within a Tokio runtime.
///
/// # Errors
/// The exporter's error: the address is taken, a recorder is already installed, …
pub fn install(layer: &SpanMetricsLayer, addr: SocketAddr) -> Result<PrometheusHandle, BuildError> {
    let (recorder, exporter) = prometheus_builder(layer)?
        .with_http_listener(addr)
        .build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    tokio::spawn(exporter);
    Ok(handle)
}

/// [`install`] on [`DEFAULT_ADDR`]: `/metrics` on `127.0.0.1:9000`, reachable from this machine
/// only.
///
/// # Errors
/// As [`install`].
pub fn install_on_loopback(layer: &SpanMetricsLayer) -> Result<PrometheusHandle, BuildError> {
    install(layer, DEFAULT_ADDR.into())
}
