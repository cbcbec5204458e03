//! Rulesets: a builder's validated configuration assembled into rules bound to their metric
//! families, once per configuration (per callsite plans are made from it in `crate::plan`).

use std::sync::Arc;

use hashbrown::HashSet;
use metrics::Recorder;
use tracing_core::Metadata;

use crate::config::ConfigError;
use crate::config::{Condition, EventMatch, Label, Measure, SpanMetricsBuilder, Spans, validate};
use crate::instruments::{Family, Health, RecorderRef};

/// A validated rule, ready to be planned.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) family: usize,
    pub(crate) spans: Option<Spans>,
    pub(crate) measure: Measure,
    pub(crate) labels: Vec<Label>,
    pub(crate) conditions: Vec<Condition>,
    /// What one nanosecond of a duration is in the family's unit.
    pub(crate) per_nano: f64,
}

impl Rule {
    pub(crate) fn selects(&self, meta: &Metadata<'_>) -> bool {
        self.spans.as_ref().is_none_or(|s| s.matches(meta))
    }

    /// Every field name the rule reads, for capture.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &str> {
        let measure = match &self.measure {
            Measure::InFlightAfter(f) | Measure::SpanField(f) | Measure::EventField(_, f) => {
                Some(f.as_str())
            }
            _ => None,
        };
        self.labels
            .iter()
            .filter_map(Label::field_name)
            .chain(self.conditions.iter().filter_map(|c| match c {
                Condition::Field(f) => Some(f.field.as_str()),
                _ => None,
            }))
            .chain(measure)
    }

    /// Every field name the rule may look up in ancestors: its labels that inherit and its
    /// field conditions (which always do).
    pub(crate) fn inherited(&self) -> impl Iterator<Item = &str> {
        self.labels
            .iter()
            .filter(|l| l.inherit)
            .filter_map(Label::field_name)
            .chain(self.conditions.iter().filter_map(|c| match c {
                Condition::Field(f) => Some(f.field.as_str()),
                _ => None,
            }))
    }

    pub(crate) fn event_match(&self) -> Option<&EventMatch> {
        match &self.measure {
            Measure::Events(m) | Measure::EventField(m, _) | Measure::TimeToEvent(m) => Some(m),
            _ => None,
        }
    }
}

/// Settings that apply to the whole layer.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_label_len: usize,
    pub(crate) recorder: RecorderRef,
}

/// A validated configuration, assembled: its rules bound to their metric families, the
/// layer-wide settings, and what callsites need to know of the rules as a whole.
#[derive(Debug)]
pub(crate) struct Ruleset {
    pub(crate) rules: Vec<Rule>,
    pub(crate) families: Vec<Family>,
    pub(crate) settings: Settings,
    pub(crate) health: Health,
    /// Field names that rules may read from spans (own or inherited).
    pub(crate) span_fields: HashSet<String>,
    /// Field names that rules may look up in ancestors (labels that inherit, field
    /// conditions): each span's state links them to the nearest ancestor that captures them
    /// (see [`crate::state`]).
    pub(crate) inherited: Vec<String>,
    /// Whether any rule measures self time (children must report to their parents).
    pub(crate) any_self_time: bool,
    /// Whether any rule measures busy or idle time (enters and exits matter).
    pub(crate) any_busy: bool,
}

impl Ruleset {
    pub(crate) fn new(rules: Vec<Rule>, families: Vec<Family>, settings: Settings) -> Self {
        let span_fields: HashSet<String> = rules
            .iter()
            .flat_map(Rule::fields)
            .map(str::to_owned)
            .collect();
        let inherited: Vec<String> = {
            let mut seen: HashSet<&str> = HashSet::new();
            rules
                .iter()
                .flat_map(Rule::inherited)
                .filter(|f| seen.insert(f))
                .map(str::to_owned)
                .collect()
        };
        let any_self_time = rules.iter().any(|r| r.measure == Measure::SelfTime);
        let any_busy = rules
            .iter()
            .any(|r| matches!(r.measure, Measure::BusyTime | Measure::IdleTime));
        Ruleset {
            rules,
            families,
            settings,
            health: Health::default(),
            span_fields,
            inherited,
            any_self_time,
            any_busy,
        }
    }

    pub(crate) fn family(&self, rule: &Rule) -> &Family {
        &self.families[rule.family]
    }
}

/// Validates `builder` and assembles its ruleset. `running` is the recorder of the layer being
/// reloaded, kept unless the builder names one.
///
/// # Errors
/// The first problem validation finds.
pub(crate) fn compile(
    builder: &SpanMetricsBuilder,
    running: Option<&RecorderRef>,
) -> Result<Ruleset, ConfigError> {
    let validated = validate(builder)?;
    let families: Vec<Family> = validated.families.into_iter().map(Family::new).collect();
    let rules = builder
        .rules
        .iter()
        .zip(validated.family_of)
        .map(|(m, family)| {
            // Labels follow the family's key order, so every rule of a family hashes alike.
            let keys = &families[family].label_keys;
            let mut labels = m.labels.clone();
            labels.sort_by_key(|l| keys.iter().position(|k| **k == *l.key));
            Rule {
                family,
                spans: m.spans.clone(),
                measure: m.effective_measure(),
                labels,
                conditions: m.conditions.clone(),
                per_nano: families[family].unit.per_nanosecond(),
            }
        })
        .collect();
    let recorder = match (&builder.recorder, running) {
        (Some(own), _) => RecorderRef::Explicit(Arc::clone(own) as Arc<dyn Recorder + Send + Sync>),
        (None, Some(running)) => running.clone(),
        (None, None) => RecorderRef::Global,
    };
    let ruleset = Ruleset::new(
        rules,
        families,
        Settings {
            max_label_len: builder.max_label_len,
            recorder,
        },
    );
    // The health counters exist at zero from the start on the recorder there is now; a
    // recorder installed later gets them with each family's first series.
    ruleset.settings.recorder.with(|r, id| {
        for family in &ruleset.families {
            family.register_health(r, id);
        }
    });
    Ok(ruleset)
}
