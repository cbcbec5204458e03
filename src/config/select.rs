//! Selecting spans and events: by name (exact or glob), target prefix and level.

use tracing_core::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use wildmatch::WildMatch;

/// Which spans a rule applies to.
///
/// Names are exact or globs (`*` any run of characters, `?` one character); several names
/// mean any of them. A target matches itself and every module below it (`"restate"` matches
/// `"restate::invoker"`), as in `EnvFilter` directives. A level keeps spans at that level or
/// more severe.
///
/// ```
/// use tracing_spanmetrics::Spans;
/// use tracing_subscriber::filter::LevelFilter;
///
/// let rpcs = Spans::named("rpc_*").or_named("call").target("my_app::net").level(LevelFilter::INFO);
/// # let _ = rpcs;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spans {
    pub(crate) names: Vec<String>,
    pub(crate) target: Option<String>,
    pub(crate) level: Option<LevelFilter>,
}

impl Spans {
    /// Every span.
    #[must_use]
    pub fn all() -> Self {
        Spans::default()
    }

    /// Spans whose name matches `pattern` (exact or glob).
    #[must_use]
    pub fn named(pattern: impl Into<String>) -> Self {
        Spans {
            names: vec![pattern.into()],
            ..Spans::default()
        }
    }

    /// Also spans whose name matches `pattern`.
    #[must_use]
    pub fn or_named(mut self, pattern: impl Into<String>) -> Self {
        self.names.push(pattern.into());
        self
    }

    /// Only spans whose target is `target` or below it.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Only spans at `level` or more severe.
    #[must_use]
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.level = Some(level);
        self
    }

    pub(crate) fn matches(&self, meta: &Metadata<'_>) -> bool {
        (self.names.is_empty() || self.names.iter().any(|p| glob_match(p, meta.name())))
            && self
                .target
                .as_deref()
                .is_none_or(|t| target_match(t, meta.target()))
            && self.level.is_none_or(|l| level_match(l, meta.level()))
    }
}

/// Which events a rule (a milestone, an event counter, an event field) reacts to.
///
/// All given criteria must hold: the event's name (glob; tracing names events
/// `"event file:line"` unless `name: "..."` is given), its target, its level (this level or more
/// severe), fields it must carry and the text of its message.
///
/// ```
/// use tracing_spanmetrics::EventMatch;
///
/// // `tracing::info!(status = 200, "headers received")` inside the span matches this.
/// let headers = EventMatch::message("headers received");
/// let with_status = EventMatch::with_field("status");
/// # let _ = (headers, with_status);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventMatch {
    pub(crate) name: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) level: Option<LevelFilter>,
    pub(crate) fields: Vec<String>,
    pub(crate) message: Option<String>,
}

impl EventMatch {
    /// Every event.
    #[must_use]
    pub fn any() -> Self {
        EventMatch::default()
    }

    /// Events whose name matches `pattern` (exact or glob).
    #[must_use]
    pub fn named(pattern: impl Into<String>) -> Self {
        EventMatch::any().and_named(pattern)
    }

    /// Events that carry the field `field`.
    #[must_use]
    pub fn with_field(field: impl Into<String>) -> Self {
        EventMatch::any().and_field(field)
    }

    /// Events whose message is exactly `text`.
    #[must_use]
    pub fn message(text: impl Into<String>) -> Self {
        EventMatch::any().and_message(text)
    }

    /// Also require the name to match `pattern`.
    #[must_use]
    pub fn and_named(mut self, pattern: impl Into<String>) -> Self {
        self.name = Some(pattern.into());
        self
    }

    /// Also require the field `field`.
    #[must_use]
    pub fn and_field(mut self, field: impl Into<String>) -> Self {
        self.fields.push(field.into());
        self
    }

    /// Also require the message to be exactly `text`.
    #[must_use]
    pub fn and_message(mut self, text: impl Into<String>) -> Self {
        self.message = Some(text.into());
        self
    }

    /// Only events whose target is `target` or below it.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Only events at `level` or more severe.
    #[must_use]
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.level = Some(level);
        self
    }

    /// Whether the static part (everything but the message text) matches the callsite.
    pub(crate) fn matches_callsite(&self, meta: &Metadata<'_>) -> bool {
        self.name
            .as_deref()
            .is_none_or(|p| glob_match(p, meta.name()))
            && self
                .target
                .as_deref()
                .is_none_or(|t| target_match(t, meta.target()))
            && self.level.is_none_or(|l| level_match(l, meta.level()))
            && self
                .fields
                .iter()
                .all(|f| meta.fields().field(f.as_str()).is_some())
            && (self.message.is_none() || meta.fields().field("message").is_some())
    }
}

fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        WildMatch::new(pattern).matches(name)
    } else {
        pattern == name
    }
}

fn target_match(prefix: &str, target: &str) -> bool {
    target == prefix
        || (target.starts_with(prefix) && target[prefix.len()..].starts_with("::"))
        || prefix.is_empty()
}

fn level_match(filter: LevelFilter, level: &Level) -> bool {
    filter >= *level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_exact_names() {
        assert!(glob_match("rpc_*", "rpc_call"));
        assert!(glob_match("rpc_?all", "rpc_call"));
        assert!(!glob_match("rpc_*", "grpc_call"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn targets_match_on_module_boundaries() {
        assert!(target_match("restate", "restate"));
        assert!(target_match("restate", "restate::invoker"));
        assert!(!target_match("restate", "restate_types"));
        assert!(!target_match("restate::invoker", "restate"));
    }

    #[test]
    fn levels_keep_the_more_severe() {
        assert!(level_match(LevelFilter::INFO, &Level::WARN));
        assert!(level_match(LevelFilter::INFO, &Level::INFO));
        assert!(!level_match(LevelFilter::INFO, &Level::DEBUG));
    }
}
