//! Validation: every setting and rule of a builder checked before anything is compiled, with
//! errors that name the rule, the key it is about and the problem. What it accepts is a list of
//! declared families, each with the settings its rules agree on.

use std::collections::HashMap;

use super::builder::{MAX_LABELS, SpanMetricsBuilder};
use super::label::SPAN_KIND_VALUES;
use super::{
    Buckets, Condition, EventMatch, FieldTest, LabelSource, Mapping, Measure, Metric, MetricKind,
    RouteMapping, Spans, Unit,
};
use crate::config::ConfigError;
use crate::config::{
    HEALTH_METRICS, LABEL_OVERFLOW_VALUE, OVERFLOW_LABEL, claimed_names, exported_name,
};

/// The key of a rule a problem is about, as a configuration file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKey {
    Name,
    Kind,
    Unit,
    Spans,
    Measure,
    Labels,
    When,
    Buckets,
    CardinalityLimit,
    Description,
}

impl RuleKey {
    /// The key in a `[[metric]]` table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RuleKey::Name => "name",
            RuleKey::Kind => "kind",
            RuleKey::Unit => "unit",
            RuleKey::Spans => "spans",
            RuleKey::Measure => "measure",
            RuleKey::Labels => "labels",
            RuleKey::When => "when",
            RuleKey::Buckets => "buckets",
            RuleKey::CardinalityLimit => "cardinality_limit",
            RuleKey::Description => "description",
        }
    }
}

/// A metric family as the rules declare it, once validated: what every rule of it agrees on.
#[derive(Debug, Clone)]
pub(crate) struct DeclaredFamily {
    /// The name the rules give it.
    pub(crate) name: String,
    /// The name it is exported under (see `crate::config::naming`).
    pub(crate) exported: String,
    pub(crate) kind: MetricKind,
    pub(crate) unit: Unit,
    /// The first description any of its rules gives.
    pub(crate) description: Option<String>,
    /// In the order of the first rule that declared it.
    pub(crate) label_keys: Vec<String>,
    /// The value limit of each label, in `label_keys` order.
    pub(crate) label_limits: Vec<Option<usize>>,
    /// A histogram's buckets.
    pub(crate) buckets: Option<Buckets>,
    pub(crate) limit: usize,
    /// The first rule that declared it.
    pub(crate) first_rule: usize,
    /// Whether one of its rules measures a numeric field, whose values can be refused (and are
    /// then counted in the health counter of rejected values).
    pub(crate) numeric: bool,
}

/// A builder's configuration, validated.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) families: Vec<DeclaredFamily>,
    /// The family of each rule, in the builder's order.
    pub(crate) family_of: Vec<usize>,
}

/// Validates every setting and rule of `builder`: each rule on its own, the rules of a family
/// against each other, and the exported names of all families against each other and the
/// layer's own.
///
/// # Errors
/// The first problem found, naming the rule (by position and name) and the key it is about.
pub(crate) fn validate(builder: &SpanMetricsBuilder) -> Result<Validated, ConfigError> {
    if builder.cardinality_limit == 0 {
        return Err(ConfigError::setting(
            "the cardinality limit must be at least 1",
        ));
    }
    if builder.max_label_len < 8 {
        return Err(ConfigError::setting(
            "the label length bound must be at least 8 bytes",
        ));
    }
    if builder.label_value_limit == Some(0) {
        return Err(ConfigError::setting(
            "the label value limit must be at least 1",
        ));
    }
    if builder.label_value_limit.is_some() && LABEL_OVERFLOW_VALUE.len() > builder.max_label_len {
        return Err(ConfigError::setting(format!(
            "a label value limit writes `{LABEL_OVERFLOW_VALUE}` ({} bytes), which exceeds the \
             {}-byte bound on label values; raise the bound to at least {}",
            LABEL_OVERFLOW_VALUE.len(),
            builder.max_label_len,
            LABEL_OVERFLOW_VALUE.len()
        )));
    }
    if let Some((key, problem)) = &builder.red_problem {
        return Err(ConfigError::setting(format!("RED `{key}`: {problem}")));
    }
    let mut families: Vec<DeclaredFamily> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut family_of = Vec::with_capacity(builder.rules.len());
    for (i, m) in builder.rules.iter().enumerate() {
        let refuse = |p: Problem| ConfigError::rule(i, &m.name, p.text).at_key(p.key);
        validate_metric(m, builder.max_label_len).map_err(refuse)?;
        let declared = declare(m, i, builder);
        let family = match by_name.get(m.name.as_str()) {
            None => {
                by_name.insert(&m.name, families.len());
                families.push(declared);
                families.len() - 1
            }
            Some(&f) => {
                let earlier = &mut families[f];
                check_same_family(earlier, &declared, m).map_err(refuse)?;
                if earlier.description.is_none() {
                    earlier.description = declared.description;
                }
                earlier.numeric |= declared.numeric;
                f
            }
        };
        family_of.push(family);
    }
    check_exported_names(&families)?;
    super::objective::check_objectives(&builder.objectives, &families, &builder.rules, &family_of)?;
    Ok(Validated {
        families,
        family_of,
    })
}

/// The family rule `m` (at `index`) declares, with the defaults it leaves to the builder.
fn declare(m: &Metric, index: usize, builder: &SpanMetricsBuilder) -> DeclaredFamily {
    let unit = m.effective_unit();
    let default_limit = builder.cardinality_limit;
    DeclaredFamily {
        name: m.name.clone(),
        exported: exported_name(&m.name, m.kind, unit),
        kind: m.kind,
        unit,
        description: m.description.clone(),
        label_keys: m.labels.iter().map(|l| l.key.clone()).collect(),
        label_limits: m
            .labels
            .iter()
            .map(|l| l.value_limit.or(builder.label_value_limit))
            .collect(),
        buckets: (m.kind == MetricKind::Histogram).then(|| {
            m.buckets
                .clone()
                .unwrap_or_else(|| Buckets::default_for(unit))
        }),
        limit: m.cardinality_limit.unwrap_or(default_limit),
        first_rule: index,
        numeric: matches!(
            m.measure,
            Some(Measure::SpanField(_) | Measure::EventField(..))
        ),
    }
}

/// Refuses a rule `m` (declaring `f`) that disagrees with what earlier rules of its family
/// declared.
fn check_same_family(
    earlier: &DeclaredFamily,
    f: &DeclaredFamily,
    m: &Metric,
) -> Result<(), Problem> {
    if earlier.kind != f.kind {
        return Err(at(RuleKey::Kind)(format!(
            "declared as a {} here but as a {} by an earlier rule",
            f.kind.as_str(),
            earlier.kind.as_str()
        )));
    }
    if earlier.unit != f.unit {
        return Err(at(RuleKey::Unit)(format!(
            "unit `{}` differs from `{}` declared by an earlier rule",
            f.unit.as_str(),
            earlier.unit.as_str()
        )));
    }
    let mut a: Vec<&str> = f.label_keys.iter().map(String::as_str).collect();
    let mut b: Vec<&str> = earlier.label_keys.iter().map(String::as_str).collect();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        return Err(at(RuleKey::Labels)(format!(
            "label keys [{}] differ from [{}] declared by an earlier rule of the same metric \
             (a rule may leave a label without value, but must declare it)",
            a.join(", "),
            b.join(", ")
        )));
    }
    for (key, limit) in f.label_keys.iter().zip(&f.label_limits) {
        let theirs = earlier
            .label_keys
            .iter()
            .position(|k| k == key)
            .and_then(|p| earlier.label_limits.get(p).copied().flatten());
        if *limit != theirs {
            let show = |l: Option<usize>| l.map_or("none".to_owned(), |l| l.to_string());
            return Err(at(RuleKey::Labels)(format!(
                "label `{key}`: value limit {} differs from {} declared by an earlier rule of \
                 the same metric",
                show(*limit),
                show(theirs)
            )));
        }
    }
    if m.buckets.is_some() && f.buckets != earlier.buckets {
        return Err(at(RuleKey::Buckets)(
            "bucket boundaries differ from an earlier rule of the same metric".into(),
        ));
    }
    if m.cardinality_limit.is_some() && f.limit != earlier.limit {
        return Err(at(RuleKey::CardinalityLimit)(
            "cardinality limit differs from an earlier rule of the same metric".into(),
        ));
    }
    match (&earlier.description, &f.description) {
        (Some(a), Some(b)) if a != b => Err(at(RuleKey::Description)(
            "description differs from an earlier rule of the same metric".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses families that Prometheus would see as one, or whose samples would collide: the same
/// exported name from two declared names, one family's name among another's derived sample
/// names, or a name the layer's own health counters use. Families are in the order of their
/// first rules, and each error names the first rule of both.
fn check_exported_names(families: &[DeclaredFamily]) -> Result<(), ConfigError> {
    // Claimed name → the family that claimed it first.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for (f, family) in families.iter().enumerate() {
        let refuse = |problem: String| {
            ConfigError::rule(family.first_rule, &family.name, problem).at_key(RuleKey::Name)
        };
        let names = claimed_names(&family.exported, family.kind);
        if let Some(health) = HEALTH_METRICS.iter().find(|h| {
            claimed_names(h, MetricKind::Counter)
                .iter()
                .any(|c| names.contains(c))
        }) {
            return Err(refuse(format!(
                "exported as `{}`, which collides with `{health}`, the layer's own health \
                 counter; choose another name",
                family.exported
            )));
        }
        for name in &names {
            if let Some(&other) = claimed.get(name) {
                let o = &families[other];
                let problem = if o.exported == family.exported && o.kind == family.kind {
                    format!(
                        "exported as `{}`, the same name as rule #{} (`{}`) once `.` becomes \
                         `_` and unit and `_total` suffixes are added; give the two families \
                         distinct names",
                        family.exported, o.first_rule, o.name
                    )
                } else {
                    format!(
                        "exported as `{}`, whose sample `{name}` collides with the {} of rule \
                         #{} (`{}`, exported as `{}`); rename one of them",
                        family.exported,
                        o.kind.as_str(),
                        o.first_rule,
                        o.name,
                        o.exported
                    )
                };
                return Err(refuse(problem));
            }
        }
        for name in names {
            claimed.insert(name, f);
        }
    }
    Ok(())
}

/// Prometheus metric names (dots allowed: the exporter turns them into underscores).
fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the metric name is empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_' || c == ':') => {
            return Err(format!(
                "invalid metric name `{name}`: it must start with a letter, `_` or `:`"
            ));
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))) {
        return Err(format!(
            "invalid metric name `{name}`: `{}` is not allowed (use letters, digits, `_`, `:` and `.`)",
            c.escape_default()
        ));
    }
    if name.contains("..") || name.ends_with('.') {
        return Err(format!(
            "invalid metric name `{name}`: empty dot-separated segment"
        ));
    }
    Ok(())
}

fn check_label_key(key: &str, kind: MetricKind) -> Result<(), String> {
    let mut chars = key.chars();
    match chars.next() {
        None => return Err("a label key is empty".into()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return Err(format!(
                "invalid label key `{key}`: it must start with a letter or `_`"
            ));
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))) {
        return Err(format!(
            "invalid label key `{key}`: `{}` is not allowed (use letters, digits, `_` and `.`)",
            c.escape_default()
        ));
    }
    if key.starts_with("__") {
        return Err(format!(
            "invalid label key `{key}`: keys starting with `__` are reserved by Prometheus"
        ));
    }
    if key == OVERFLOW_LABEL {
        return Err(format!(
            "label key `{key}` is reserved for the overflow series"
        ));
    }
    if kind == MetricKind::Histogram && (key == "le" || key == "quantile") {
        return Err(format!(
            "label key `{key}` is reserved for histogram buckets and quantiles"
        ));
    }
    Ok(())
}

fn check_field_name(what: &str, field: &str) -> Result<(), String> {
    if field.trim().is_empty() {
        return Err(format!("{what} names an empty field"));
    }
    Ok(())
}

fn check_spans(spans: &Spans) -> Result<(), String> {
    if spans.names.iter().any(|n| n.is_empty()) {
        return Err("a span name pattern is empty (it would select no span)".into());
    }
    if spans.target.as_deref() == Some("") {
        return Err("the span target is empty; leave it out to select every target".into());
    }
    Ok(())
}

/// A problem with one rule: the key of the rule it is about (for locating it in a file) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) key: RuleKey,
    pub(crate) text: String,
}

/// A problem about `key`, from its text.
fn at(key: RuleKey) -> impl Fn(String) -> Problem {
    move |text| Problem { key, text }
}

fn validate_metric(m: &Metric, max_label_len: usize) -> Result<(), Problem> {
    check_metric_name(&m.name).map_err(at(RuleKey::Name))?;
    let measure = m.effective_measure();
    if !measure.allows(m.kind) {
        return Err(at(if m.measure.is_some() {
            RuleKey::Measure
        } else {
            RuleKey::Kind
        })(format!(
            "a {} cannot record `{}` (durations need a histogram, span and event counts a counter, \
             in-flight spans a gauge)",
            m.kind.as_str(),
            measure.name()
        )));
    }
    if measure.is_duration() && m.unit.is_some_and(|u| !u.is_time()) {
        return Err(at(RuleKey::Unit)(format!(
            "a duration cannot be in `{}`; the unit must be `seconds` or `milliseconds`",
            m.unit.map_or("", Unit::as_str)
        )));
    }
    if let Some(spans) = &m.spans {
        check_spans(spans).map_err(at(RuleKey::Spans))?;
    }
    check_measure(&measure, max_label_len).map_err(at(RuleKey::Measure))?;
    check_labels(m, max_label_len).map_err(at(RuleKey::Labels))?;
    check_conditions(m).map_err(at(RuleKey::When))?;
    if let Some(b) = &m.buckets {
        if m.kind != MetricKind::Histogram {
            return Err(at(RuleKey::Buckets)(format!(
                "a {} has no buckets",
                m.kind.as_str()
            )));
        }
        check_buckets(b).map_err(at(RuleKey::Buckets))?;
    }
    if m.cardinality_limit == Some(0) {
        return Err(at(RuleKey::CardinalityLimit)(
            "the cardinality limit must be at least 1".into(),
        ));
    }
    Ok(())
}

fn check_measure(measure: &Measure, max_label_len: usize) -> Result<(), String> {
    match measure {
        Measure::InFlightAfter(f) => check_field_name("the in-flight gate", f),
        Measure::SpanField(f) => check_field_name("the measured span field", f),
        Measure::EventField(e, f) => {
            check_field_name("the measured event field", f)?;
            check_event(e, max_label_len)
        }
        Measure::Events(e) | Measure::TimeToEvent(e) => check_event(e, max_label_len),
        _ => Ok(()),
    }
}

fn check_labels(m: &Metric, max_label_len: usize) -> Result<(), String> {
    if m.labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels; at most {MAX_LABELS} are allowed",
            m.labels.len()
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for label in &m.labels {
        check_label_key(&label.key, m.kind)?;
        // Prometheus turns dots into underscores: `a.b` and `a_b` would be one label there.
        let exported = label.key.replace('.', "_");
        if seen.contains(&exported) {
            return Err(format!(
                "label key `{}` appears twice (after `.` becomes `_` in Prometheus)",
                label.key
            ));
        }
        seen.push(exported);
        if let LabelSource::Field(f) = &label.source {
            check_field_name(&format!("label `{}`", label.key), f)?;
        }
        // Values the layer writes itself are not cut: each must fit the bound.
        let own_values: &[&str] = match &label.source {
            LabelSource::SpanKind => &SPAN_KIND_VALUES,
            LabelSource::Outcome(v) => &[v.unset.as_str(), v.ok.as_str(), v.error.as_str()],
            _ => &[],
        };
        if let Some(v) = own_values
            .iter()
            .find(|v| !v.is_empty() && v.trim().is_empty())
        {
            return Err(format!(
                "label `{}`: its value {v:?} is blank; give a non-blank value, or an empty one \
                 to leave the label off",
                label.key
            ));
        }
        if let Some(v) = own_values.iter().find(|v| v.len() > max_label_len) {
            return Err(format!(
                "label `{}`: its value `{v}` ({} bytes) exceeds the {max_label_len}-byte bound on \
                 label values; raise `max_label_len` to at least {}",
                label.key,
                v.len(),
                own_values.iter().map(|v| v.len()).max().unwrap_or_default()
            ));
        }
        let fixed = match &label.source {
            LabelSource::Fixed(v) => Some(v.as_str()),
            _ => None,
        };
        if fixed.is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "label `{}`: the fixed value {:?} is blank; Prometheus treats an empty label \
                 value as no label at all, so give it a non-blank value",
                label.key,
                fixed.unwrap_or_default()
            ));
        }
        for value in fixed.into_iter().chain(label.default.as_deref()) {
            if value.len() > max_label_len {
                return Err(format!(
                    "label `{}`: value of {} bytes exceeds the {max_label_len}-byte bound",
                    label.key,
                    value.len()
                ));
            }
        }
        if label.value_limit == Some(0) {
            return Err(format!(
                "label `{}`: the value limit must be at least 1",
                label.key
            ));
        }
        if label.value_limit.is_some() && LABEL_OVERFLOW_VALUE.len() > max_label_len {
            return Err(format!(
                "label `{}`: a value limit writes `{LABEL_OVERFLOW_VALUE}` ({} bytes), which \
                 exceeds the {max_label_len}-byte bound on label values; raise `max_label_len` \
                 to at least {}",
                label.key,
                LABEL_OVERFLOW_VALUE.len(),
                LABEL_OVERFLOW_VALUE.len()
            ));
        }
        if let Some(Mapping::Route(route)) = &label.mapping {
            check_route(&label.key, route, max_label_len)?;
        }
        if let Some(Mapping::Table { entries, otherwise }) = &label.mapping {
            if let Some((_, v)) = entries.iter().find(|(_, v)| v.len() > max_label_len) {
                return Err(format!(
                    "label `{}`: mapped value `{v}` exceeds the {max_label_len}-byte bound",
                    label.key
                ));
            }
            if otherwise.as_ref().is_some_and(|o| o.len() > max_label_len) {
                return Err(format!(
                    "label `{}`: fallback value exceeds the {max_label_len}-byte bound",
                    label.key
                ));
            }
        }
    }
    Ok(())
}

/// A route mapping's own patterns: each compiles and is replaced by a non-blank value that fits
/// the bound.
fn check_route(key: &str, route: &RouteMapping, max_label_len: usize) -> Result<(), String> {
    for (pattern, replacement, compiled) in route.patterns() {
        if pattern.is_empty() {
            return Err(format!(
                "label `{key}`: a route segment pattern is empty (it would match only empty \
                 segments)"
            ));
        }
        if let Err(e) = compiled {
            let e = e.lines().last().unwrap_or(e).trim();
            return Err(format!(
                "label `{key}`: route segment pattern `{pattern}` is not a valid regular \
                 expression: {e}"
            ));
        }
        if replacement.trim().is_empty() {
            return Err(format!(
                "label `{key}`: route segment pattern `{pattern}` is replaced by a blank value \
                 {replacement:?}; give a placeholder such as `{{id}}`"
            ));
        }
        if replacement.len() > max_label_len {
            return Err(format!(
                "label `{key}`: route segment replacement `{replacement}` exceeds the \
                 {max_label_len}-byte bound on label values"
            ));
        }
    }
    Ok(())
}

fn check_conditions(m: &Metric) -> Result<(), String> {
    for c in &m.conditions {
        if let Condition::Field(fc) = c {
            check_field_name("a condition", &fc.field)?;
            if let FieldTest::Between(lo, hi) | FieldTest::NotBetween(lo, hi) = fc.test {
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(format!(
                        "condition on `{}`: the range {lo}..={hi} is empty",
                        fc.field
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_event(e: &EventMatch, max_label_len: usize) -> Result<(), String> {
    if e.name.as_deref() == Some("") {
        return Err("the event name pattern is empty".into());
    }
    if let Some(f) = e.fields.iter().find(|f| f.trim().is_empty()) {
        return Err(format!(
            "the event selector requires an empty field name `{f}`"
        ));
    }
    if e.message.as_ref().is_some_and(|m| m.len() > max_label_len) {
        return Err(format!(
            "the event message to match is longer than the {max_label_len}-byte bound on captured text"
        ));
    }
    Ok(())
}

/// Bucket boundaries: at most [`MAX_BUCKETS`](crate::config::MAX_BUCKETS), finite and
/// strictly increasing.
pub(crate) fn check_buckets(b: &Buckets) -> Result<(), String> {
    use crate::config::{Excess, MAX_BUCKETS};
    let asked = match b.excess() {
        Some(Excess::Count(n)) => Some(n.to_string()),
        Some(Excess::Unknown) => Some(format!("more than {MAX_BUCKETS}")),
        None => None,
    };
    if let Some(asked) = asked {
        return Err(format!(
            "{asked} bucket boundaries were asked for; at most {MAX_BUCKETS} are accepted"
        ));
    }
    let bounds = b.bounds();
    if bounds.is_empty() {
        return Err("bucket boundaries are empty".into());
    }
    if let Some(x) = bounds.iter().find(|x| !x.is_finite()) {
        return Err(format!("bucket boundary {x} is not finite"));
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bucket boundaries must be strictly increasing, but {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(())
}
