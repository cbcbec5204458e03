//! PromQL pieces: selectors, an objective's error ratio over a window, number formatting.

use crate::config::objective::{CheckedObjective, ObjectiveKind};

use super::{ERROR_RATIO_RECORD, Family, duration};

/// One label matcher.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Matcher {
    /// `key="value"`.
    Eq(String, String),
    /// `key=~"regex"` (the regex as written).
    Re(String, String),
}

impl Matcher {
    fn render(&self) -> String {
        match self {
            Matcher::Eq(k, v) => format!("{k}=\"{}\"", escape(v)),
            Matcher::Re(k, r) => format!("{k}=~\"{}\"", escape(r)),
        }
    }

    /// `key` is one of `values`.
    pub(super) fn one_of(key: &str, values: &[String]) -> Matcher {
        match values {
            [one] => Matcher::Eq(key.to_owned(), one.clone()),
            many => {
                let alternatives: Vec<String> = many.iter().map(|v| regex_escape(v)).collect();
                Matcher::Re(key.to_owned(), alternatives.join("|"))
            }
        }
    }
}

/// A PromQL string literal's content: `\` and `"` escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A literal text as an RE2 regex.
fn regex_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `series{m1,m2}`.
pub(super) fn selector(series: &str, matchers: &[Matcher]) -> String {
    if matchers.is_empty() {
        return series.to_owned();
    }
    let inner: Vec<String> = matchers.iter().map(Matcher::render).collect();
    format!("{series}{{{}}}", inner.join(","))
}

/// `sum by (g) (inner)`, or `sum(inner)` without grouping.
pub(super) fn sum_by(group: &[String], inner: &str) -> String {
    if group.is_empty() {
        format!("sum({inner})")
    } else {
        format!("sum by ({}) ({inner})", group.join(", "))
    }
}

/// A number as PromQL and YAML read it back exactly (Rust's shortest round-trip form).
pub(super) fn number(x: f64) -> String {
    format!("{x}")
}

/// The `le` matcher of bucket bound `bound`. The exporter writes bounds in their shortest form
/// (`1`, `0.25`); Prometheus 3 rewrites whole ones as `1.0` when it scrapes classic
/// histograms: whole bounds match both.
pub(super) fn le(bound: f64) -> Matcher {
    let text = number(bound);
    if bound.fract() == 0.0 && !text.contains('e') {
        Matcher::Re("le".into(), format!("{text}|{text}\\.0"))
    } else {
        Matcher::Eq("le".into(), text)
    }
}

/// The objective's matchers on its family's series: its filter, then `extra`.
fn matchers(o: &CheckedObjective, extra: &[Matcher]) -> Vec<Matcher> {
    o.filter
        .iter()
        .map(|(k, v)| Matcher::Eq(k.clone(), v.clone()))
        .chain(extra.iter().cloned())
        .collect()
}

/// The share of bad events of objective `o` (on family `f`) over `window` (a PromQL duration
/// or `$__rate_interval`): 0 when there were calls but no error, no value without calls.
pub(super) fn error_ratio(o: &CheckedObjective, f: &Family, window: &str) -> String {
    let g = &o.group_by;
    let rate = |series: &str, extra: &[Matcher]| {
        sum_by(
            g,
            &format!("rate({}[{window}])", selector(series, &matchers(o, extra))),
        )
    };
    match o.objective.kind() {
        ObjectiveKind::Latency { threshold } => {
            let good = rate(&format!("{}_bucket", f.exported), &[le(*threshold)]);
            let all = rate(&format!("{}_count", f.exported), &[]);
            format!("1 - {good} / {all}")
        }
        _ => {
            let series = f.calls_series().unwrap_or_else(|| f.exported.clone());
            let errors = o
                .errors
                .as_ref()
                .map(|e| Matcher::one_of(&e.key, &e.values));
            let bad = rate(&series, errors.as_slice());
            let all = rate(&series, &[]);
            format!("({bad} or 0 * {all}) / {all}")
        }
    }
}

/// The recorded error ratio of objective `o` over `window`, its series narrowed by `extra`.
pub(super) fn recorded_ratio(
    o: &CheckedObjective,
    window: std::time::Duration,
    extra: &[Matcher],
) -> String {
    let mut matchers = vec![Matcher::Eq(
        "objective".into(),
        o.objective.name().to_owned(),
    )];
    matchers.extend_from_slice(extra);
    selector(&record_name(window), &matchers)
}

/// The record name of the error ratio over `window`.
pub(super) fn record_name(window: std::time::Duration) -> String {
    format!("{ERROR_RATIO_RECORD}:rate{}", duration(window))
}

/// The objective's error budget, `(1 - target)`, as PromQL.
pub(super) fn budget(o: &CheckedObjective) -> String {
    format!("(1 - {})", number(o.objective.target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_escape_values_and_regexes() {
        assert_eq!(
            selector("x_total", &[Matcher::Eq("a".into(), "q\"\\".into())]),
            r#"x_total{a="q\"\\"}"#
        );
        assert_eq!(
            selector("x", &[Matcher::one_of("s", &["a.b".into(), "c".into()])]),
            r#"x{s=~"a\\.b|c"}"#
        );
        assert_eq!(selector("x", &[le(0.25)]), r#"x{le="0.25"}"#);
        assert_eq!(selector("x", &[le(1.0)]), r#"x{le=~"1|1\\.0"}"#);
        assert_eq!(sum_by(&[], "y"), "sum(y)");
        assert_eq!(sum_by(&["a".into(), "b".into()], "y"), "sum by (a, b) (y)");
    }
}
