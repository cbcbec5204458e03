//! Exporter helpers: `metrics-exporter-prometheus` set up for the layer's families.
//!
//! `metrics-exporter-prometheus` renders a histogram as a summary unless buckets are set for it,
//! and keeps raw samples until its upkeep drains them. [`prometheus_builder`] sets every declared
//! histogram's buckets and the recommended naming (`_total` on counters, unit suffixes);
//! [`install`] also starts the HTTP listener and the upkeep task.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{Buckets, SpanMetricsLayer};

/// Where [`install`] is usually pointed: loopback only, port 9000.
pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 9000);

/// A `PrometheusBuilder` with buckets for every histogram family of `layer` (and the semantic
/// conventions' duration buckets for any other histogram) and the recommended naming. Add your
/// own settings, then install or build it.
///
/// # Errors
/// Never in practice: bucket lists were validated when the layer was built; the exporter's own
/// error is passed through.
pub fn prometheus_builder(layer: &SpanMetricsLayer) -> Result<PrometheusBuilder, BuildError> {
    // Histograms added later (by a reload) fall back to these rather than becoming summaries.
    let mut builder = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(Buckets::otel_durations().bounds())?;
    for h in layer.histograms() {
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
