//! # tracing-spanmetrics
//!
//! Turn [`tracing`] spans into metrics: a [`tracing_subscriber::Layer`] that derives duration
//! histograms, counters and gauges from span lifetimes, span fields and events, and records them
//! through the [`metrics`] facade (served to Prometheus by `metrics-exporter-prometheus`).
//! Instrumented code carries spans only; every metric comes from the layer's rules.
//!
//! ```
//! use tracing_spanmetrics::{Label, Metric, SpanMetrics, Spans};
//! use tracing_subscriber::prelude::*;
//!
//! let layer = SpanMetrics::builder()
//!     .metric(
//!         Metric::histogram("http.client.duration.seconds")
//!             .describe("Outgoing HTTP requests, start to end of body")
//!             .spans(Spans::named("http_request"))
//!             .label("method")
//!             .label(Label::field("status").default("none"))
//!             .label(Label::outcome("result")),
//!     )
//!     .metric(
//!         Metric::gauge("http.client.in_flight")
//!             .describe("Outgoing HTTP requests in flight")
//!             .spans(Spans::named("http_request"))
//!             .in_flight()
//!             .label("method"),
//!     )
//!     .build()?;
//!
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let span = tracing::info_span!("http_request", method = "GET", status = tracing::field::Empty);
//!     let _guard = span.enter();
//!     span.record("status", 200);
//! });
//! # Ok::<(), tracing_spanmetrics::ConfigError>(())
//! ```
//!
//! ## How it is built (the data flow)
//! Each module imports only the ones listed before it.
//! - `values`: captured field values.
//! - [`config`]: what to measure: [`SpanMetricsBuilder`], [`Metric`] rules, [`Spans`] and
//!   [`EventMatch`] selectors, [`Label`]s, [`Condition`]s, [`Buckets`]; its validation, errors, exported names
//!   and the TOML front end ([`config::file`]).
//! - `instruments`: metric families, cardinality-bounded label-set caches, the recorder.
//! - `ruleset`: a validated configuration assembled into rules bound to their families.
//! - `plan`: the ruleset compiled once per callsite (which rules apply, field index → slot).
//! - `state` and `labels`: per-span state (timers, captured fields, links to ancestors) with no
//!   heap beyond the one box tracing-subscriber's extensions force, in two grades (a compact one
//!   for plans that need little, a full one) chosen by the plan; label resolution and
//!   conditions.
//! - `exemplars` (feature `exemplars`): a span's trace and span ids (from a user's source, or
//!   with feature `opentelemetry` from sampled OpenTelemetry spans), captured per span and kept
//!   per histogram bucket and counter series.
//! - `layer`: the [`SpanMetricsLayer`]: tracing's hooks (`layer/mod.rs`), per-thread recent
//!   plans, reload, recording, events and milestones, the registry field lookup.
//! - `exporter` (feature `prometheus`, on by default) and `testing` (feature `testing`):
//!   `metrics-exporter-prometheus` set up for the layer's families; snapshots of what the layer
//!   recorded, for tests.
//! - [`operations`]: from the configuration and its [`Objective`]s, Prometheus recording rules,
//!   burn-rate alerts and a Grafana dashboard (it reads `config` only).
//!
//! ## Exported names
//! A family's name in Prometheus depends on its declared name, kind and unit only, never on its
//! description or the exporter's naming settings: every `.` becomes `_`; unless the unit is a
//! count, `_seconds`, `_milliseconds` or `_bytes` is appended where the name does not already
//! end with it; a counter ends with `_total` (kept last). `rpc.latency` (a histogram of durations) is
//! `rpc_latency_seconds`, `rpc.calls` (a counter) is `rpc_calls_total`,
//! `rpc.duration.seconds` stays `rpc_duration_seconds`. The layer registers each family under
//! that name, so a plain `PrometheusBuilder::new()` and `with_recommended_naming(true)` show
//! the same. Families whose exported names, or the samples derived from them (a histogram's
//! `_bucket`, `_sum`, `_count`), would meet are refused when the layer is built, and so are the
//! names of the layer's own health counters ([`OVERFLOW_METRIC`], [`TRUNCATED_METRIC`],
//! [`REJECTED_METRIC`], [`LABEL_OVERFLOW_METRIC`]). [`HistogramInfo::exported_name`] tells a
//! histogram's.
//!
//! ## Fields recorded later must be declared
//! `Span::record` only reaches fields declared when the span was created; tracing drops any
//! other field silently (tokio-rs/tracing#1343). Declare late fields as
//! `tracing::field::Empty`: `info_span!("invoke", deployment_id = tracing::field::Empty)`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub)]

/// The README's Rust snippets, compiled as doctests so that a broken quick-start fails the tests.
#[cfg(all(doctest, feature = "prometheus"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod config;
#[cfg(feature = "exemplars")]
mod exemplars;
#[cfg(feature = "prometheus")]
pub mod exporter;
mod instruments;
mod labels;
mod layer;
pub mod operations;
mod plan;
mod ruleset;
mod state;
pub mod testing;
mod values;

pub use config::{
    Buckets, Condition, DEFAULT_CARDINALITY_LIMIT, DEFAULT_MAX_LABEL_LEN, EventMatch,
    FieldCondition, HistogramInfo, Label, LabelSource, MAX_LABELS, Mapping, Measure, Metric,
    MetricKind, OutcomeValues, RED_CALLS, RED_DURATION, SpanMetrics, SpanMetricsBuilder, Spans,
    Unit,
};
pub use config::{ConfigError, ConfigErrorKind};
pub use config::{LABEL_OVERFLOW_METRIC, LABEL_OVERFLOW_VALUE};
pub use config::{OVERFLOW_LABEL, OVERFLOW_METRIC, REJECTED_METRIC, TRUNCATED_METRIC};
pub use config::{Objective, ObjectiveKind};
pub use config::{RED_DURATION_SECONDS, RED_EVENTS, RED_NAMESPACE, Red, StatusCodeLabel};
pub use config::{ROUTE_ID, RouteMapping};
#[cfg(feature = "exemplars")]
pub use exemplars::{ExemplarSource, Exemplars, TraceIds};
pub use layer::{ReloadHandle, SpanMetricsLayer};
