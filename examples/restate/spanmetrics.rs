//! Every metric of the example comes from `spanmetrics.toml`, shipped beside this file.
//!
//! The 27 families restate's pull request #4567 records with direct `metrics::` calls, derived
//! from the spans of the simulation instead: the instrumented code (`sim/`) only opens spans,
//! records fields and emits events. This module only loads the rules: the built-in file is
//! compiled into the binary, and `--config PATH` replaces it with another one.

use std::path::Path;

use tracing_spanmetrics::{ConfigError, SpanMetrics, SpanMetricsBuilder};

/// The built-in configuration: `examples/restate/spanmetrics.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("spanmetrics.toml");

/// The layer's builder, with the rules of the file at `path`, or of the built-in file.
///
/// # Errors
/// The file cannot be read or is invalid: the error names the file (for `path`), the line, the
/// column and the problem.
pub fn builder(path: Option<&Path>) -> Result<SpanMetricsBuilder, ConfigError> {
    match path {
        Some(path) => SpanMetrics::builder().toml_file(path),
        None => SpanMetrics::builder().toml(DEFAULT_CONFIG),
    }
}
