//! Configuration errors: every one says what is wrong and, where one is at fault, names the rule
//! or metric and where it is written.

use std::fmt;
use std::sync::Arc;

use crate::config::RuleKey;
use crate::config::objective::ObjectiveKey;

/// What kind of configuration a [`ConfigError`] refuses, for callers that react differently to
/// each (a reload that keeps the running configuration, say, or a file that is re-read later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A rule is invalid, or rules conflict (a family declared twice differently, exported
    /// names that collide).
    Rule,
    /// A layer-wide setting is out of range (the cardinality limit, the label length bound).
    Setting,
    /// A configuration file is malformed: not TOML, an unknown key or word, a value of the
    /// wrong type, or a bad `[settings]` entry.
    File,
    /// A configuration file could not be read; [`std::error::Error::source`] gives the I/O
    /// error.
    Io,
    /// A reload was refused: it would change what the running layer cannot change (its clock,
    /// the buckets its exporter fixed).
    Reload,
    /// A service-level objective is invalid: an unknown family, one of the wrong kind, a
    /// target outside (0, 1), a label the family lacks, a latency threshold that is not a
    /// bucket bound.
    Objective,
}

/// A configuration the layer refuses to build or reload.
///
/// The message names the rule (by its position and metric name) and the problem, for example
/// ``rule #2 (`http.duration`): label key `le` is reserved for histogram buckets and
/// quantiles``; a rule read from a configuration file is also located by file, line and column
/// (``spanmetrics.toml:12:1: rule #2 …``). [`kind`](ConfigError::kind) says what was refused.
#[derive(Debug, Clone)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    rule: Option<usize>,
    metric: Option<String>,
    problem: String,
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    /// The rule's key the problem is about, for locating it in a file.
    key: Option<RuleKey>,
    /// The key of the objective at fault the problem is about. An objective's error keeps the
    /// objective's position in `rule` and its name in `metric`.
    objective_key: Option<ObjectiveKey>,
    source: Option<Arc<std::io::Error>>,
}

impl ConfigError {
    fn new(kind: ConfigErrorKind, problem: impl Into<String>) -> Self {
        ConfigError {
            kind,
            rule: None,
            metric: None,
            problem: problem.into(),
            file: None,
            line: None,
            column: None,
            key: None,
            objective_key: None,
            source: None,
        }
    }

    /// Objective `index` (named `name`) is invalid.
    pub(crate) fn objective(index: usize, name: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            rule: Some(index),
            metric: Some(name.to_owned()),
            ..ConfigError::new(ConfigErrorKind::Objective, problem)
        }
    }

    /// The same error, about the objective's `key`.
    pub(crate) fn at_objective_key(mut self, key: ObjectiveKey) -> Self {
        self.objective_key = Some(key);
        self
    }

    /// The objective at fault and the key of it the problem is about, if any.
    pub(crate) fn objective_site(&self) -> Option<(usize, Option<ObjectiveKey>)> {
        self.objective_index().map(|i| (i, self.objective_key))
    }

    /// The zero-based position of the offending objective, when one is at fault.
    #[must_use]
    pub fn objective_index(&self) -> Option<usize> {
        self.rule
            .filter(|_| self.kind == ConfigErrorKind::Objective)
    }

    /// Rule `index` (declaring `metric`) is invalid.
    pub(crate) fn rule(index: usize, metric: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            rule: Some(index),
            metric: Some(metric.to_owned()),
            ..ConfigError::new(ConfigErrorKind::Rule, problem)
        }
    }

    /// A layer-wide setting is out of range.
    pub(crate) fn setting(problem: impl Into<String>) -> Self {
        ConfigError::new(ConfigErrorKind::Setting, problem)
    }

    /// A configuration file is malformed.
    pub(crate) fn file(problem: impl Into<String>) -> Self {
        ConfigError::new(ConfigErrorKind::File, problem)
    }

    /// A configuration file could not be read.
    pub(crate) fn io(problem: impl Into<String>, source: std::io::Error) -> Self {
        ConfigError {
            source: Some(Arc::new(source)),
            ..ConfigError::new(ConfigErrorKind::Io, problem)
        }
    }

    /// A reload was refused, about `metric` if one is at fault.
    pub(crate) fn reload(metric: Option<&str>, problem: impl Into<String>) -> Self {
        ConfigError {
            metric: metric.map(str::to_owned),
            ..ConfigError::new(ConfigErrorKind::Reload, problem)
        }
    }

    /// The same error, about the rule's `key`.
    pub(crate) fn at_key(mut self, key: RuleKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The same error, located at `line` and `column` of the configuration text.
    pub(crate) fn at_line(mut self, line: u32, column: u32) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// The same error, in configuration file `file`.
    pub(crate) fn in_file(mut self, file: String) -> Self {
        self.file = Some(file);
        self
    }

    /// The rule's key the problem is about, if it is about one.
    pub(crate) fn key(&self) -> Option<RuleKey> {
        self.key
    }

    /// What kind of configuration was refused.
    #[must_use]
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The zero-based position of the offending rule, when one rule is at fault.
    #[must_use]
    pub fn rule_index(&self) -> Option<usize> {
        self.rule
            .filter(|_| self.kind != ConfigErrorKind::Objective)
    }

    /// The metric family the problem is about, as the rules name it.
    #[must_use]
    pub fn metric(&self) -> Option<&str> {
        self.metric
            .as_deref()
            .filter(|_| self.kind != ConfigErrorKind::Objective)
    }

    /// The name of the offending objective, when one is at fault.
    #[must_use]
    pub fn objective_name(&self) -> Option<&str> {
        self.metric
            .as_deref()
            .filter(|_| self.kind == ConfigErrorKind::Objective)
    }

    /// What is wrong, without the location and rule the message starts with.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The configuration file, when the configuration came from one.
    #[must_use]
    pub fn file_path(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line and column in the configuration text, when it came from one.
    #[must_use]
    pub fn line_column(&self) -> Option<(u32, u32)> {
        self.line.zip(self.column)
    }
}

impl PartialEq for ConfigError {
    /// Equal when they say the same about the same configuration (an I/O source compares by
    /// its message, which the problem already carries).
    fn eq(&self, other: &Self) -> bool {
        (
            self.kind,
            self.rule,
            &self.metric,
            &self.problem,
            &self.file,
            self.line,
            self.column,
            self.objective_key,
        ) == (
            other.kind,
            other.rule,
            &other.metric,
            &other.problem,
            &other.file,
            other.line,
            other.column,
            other.objective_key,
        )
    }
}

impl Eq for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, self.column) {
            (Some(file), Some(l), Some(c)) => write!(f, "{file}:{l}:{c}: ")?,
            (None, Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(file), _, _) => write!(f, "{file}: ")?,
            _ => {}
        }
        if let (ConfigErrorKind::Objective, Some(i), Some(name)) =
            (self.kind, self.rule, &self.metric)
        {
            return write!(f, "objective #{i} (`{name}`): {}", self.problem);
        }
        match (&self.rule, &self.metric) {
            (Some(i), Some(m)) => write!(f, "rule #{i} (`{m}`): {}", self.problem),
            (None, Some(m)) => write!(f, "metric `{m}`: {}", self.problem),
            _ => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
