//! Configuration errors: every one names the metric (or rule) and the problem.

use std::fmt;

/// A configuration the layer refuses to build.
///
/// The message names the rule (by its position and metric name) and the problem, for example
/// ``rule #2 (`http.duration`): label key `le` is reserved for histogram buckets``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The zero-based position of the offending rule, when one rule is at fault.
    pub rule: Option<usize>,
    /// The metric family the problem is about.
    pub metric: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn rule(index: usize, metric: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            rule: Some(index),
            metric: Some(metric.to_owned()),
            problem: problem.into(),
        }
    }

    pub(crate) fn global(problem: impl Into<String>) -> Self {
        ConfigError {
            rule: None,
            metric: None,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, &self.metric) {
            (Some(i), Some(m)) => write!(f, "rule #{i} (`{m}`): {}", self.problem),
            (None, Some(m)) => write!(f, "metric `{m}`: {}", self.problem),
            _ => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}
