//! Configuration errors: every one names the metric (or rule) and the problem.

use std::fmt;

/// A configuration the layer refuses to build.
///
/// The message names the rule (by its position and metric name) and the problem, for example
/// ``rule #2 (`http.duration`): label key `le` is reserved for histogram buckets and
/// quantiles``; a rule read from a configuration file is also located by file, line and column
/// (``spanmetrics.toml:12:1: rule #2 …``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The zero-based position of the offending rule, when one rule is at fault.
    pub rule: Option<usize>,
    /// The metric family the problem is about.
    pub metric: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// The configuration file, when the rule came from one.
    pub file: Option<String>,
    /// The 1-based line in the configuration text, when the rule came from one.
    pub line: Option<u32>,
    /// The 1-based column in the configuration text, when the rule came from one.
    pub column: Option<u32>,
    /// The rule's key the problem is about (`buckets`, `labels`, …), for locating it in a file.
    pub(crate) key: Option<&'static str>,
}

impl ConfigError {
    pub(crate) fn rule(index: usize, metric: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            rule: Some(index),
            metric: Some(metric.to_owned()),
            problem: problem.into(),
            file: None,
            line: None,
            column: None,
            key: None,
        }
    }

    pub(crate) fn family(metric: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            metric: Some(metric.to_owned()),
            ..ConfigError::global(problem)
        }
    }

    pub(crate) fn global(problem: impl Into<String>) -> Self {
        ConfigError {
            rule: None,
            metric: None,
            problem: problem.into(),
            file: None,
            line: None,
            column: None,
            key: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, self.column) {
            (Some(file), Some(l), Some(c)) => write!(f, "{file}:{l}:{c}: ")?,
            (None, Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(file), _, _) => write!(f, "{file}: ")?,
            _ => {}
        }
        match (&self.rule, &self.metric) {
            (Some(i), Some(m)) => write!(f, "rule #{i} (`{m}`): {}", self.problem),
            (None, Some(m)) => write!(f, "metric `{m}`: {}", self.problem),
            _ => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}
