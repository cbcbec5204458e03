//! OpenMetrics text with exemplars, made from the classic text `metrics-exporter-prometheus`
//! renders.
//!
//! `metrics-exporter-prometheus` 0.18 renders only the classic format and offers no access to
//! its values other than that text (and protobuf). Rendering OpenMetrics from the same text
//! keeps one source of truth for every series, the application's own metrics included: the
//! classic and the OpenMetrics scrape show the same series with the same values. The transform
//! is line by line, on a format that exporter writes regularly (one `# HELP`, one `# TYPE`,
//! then the samples of each family, a blank line between families):
//! - a counter's family is named without `_total` in `# HELP` and `# TYPE` (its samples keep
//!   it); a counter whose name does not end in `_total` is typed `unknown`, so that its series
//!   keep their names;
//! - a family whose name ends in `_seconds` or `_bytes` gets a `# UNIT` line;
//! - help text escapes `"`; `inf` values are written `+Inf`/`-Inf`; blank lines are dropped;
//!   `# EOF` ends the text;
//! - a histogram's `_bucket` sample and a counter's `_total` sample of a layer family carry the
//!   series' exemplar for that bucket, matched by the label values as the exporter writes them
//!   (keys sanitised, values escaped). The exemplar's label set, `trace_id` (32 hex digits) and
//!   `span_id` (16), is 70 characters, within OpenMetrics' 128.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::config::MetricKind;
use crate::exemplars::{Exemplar, Exemplars, FamilyExemplars, SeriesExemplars};

/// The content type of the OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's exemplars, indexed by label values as the exporter writes them.
struct Indexed {
    family: Arc<FamilyExemplars>,
    /// Label keys as the exporter writes them.
    keys: Vec<String>,
    series: HashMap<Vec<Option<String>>, Vec<Option<Exemplar>>>,
}

/// `metrics-exporter-prometheus`'s rule for label keys: `[a-zA-Z_][a-zA-Z0-9_]*`, any other
/// character replaced with `_`.
fn exported_key(key: &str) -> String {
    key.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A label value as `metrics-exporter-prometheus` writes it: line feeds and double quotes
/// escaped; a backslash that precedes another is taken as an escaped one (the pair is written
/// as is), any other is escaped.
fn exported_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut pending = false;
    for c in value.chars() {
        match c {
            '\\' if pending => {
                out.push_str("\\\\");
                pending = false;
            }
            '\\' => pending = true,
            c => {
                if pending {
                    out.push_str("\\\\");
                    pending = false;
                }
                match c {
                    '\n' => out.push_str("\\n"),
                    '"' => out.push_str("\\\""),
                    c => out.push(c),
                }
            }
        }
    }
    if pending {
        out.push_str("\\\\");
    }
    out
}

fn index(exemplars: &Exemplars) -> HashMap<String, Indexed> {
    let mut out = HashMap::new();
    for family in exemplars.families() {
        let series: HashMap<_, _> = family
            .snapshot()
            .iter()
            .map(|s: &Arc<SeriesExemplars>| {
                let key = s
                    .values()
                    .iter()
                    .map(|v| v.as_deref().map(exported_value))
                    .collect();
                (key, s.exemplars())
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let keys = family.label_keys.iter().map(|k| exported_key(k)).collect();
        out.insert(
            family.exported.clone(),
            Indexed {
                family,
                keys,
                series,
            },
        );
    }
    out
}

/// The labels of a sample line, as written (`key`, escaped value), and the rest of the line.
fn split_labels(rest: &str) -> Option<(Vec<(&str, &str)>, &str)> {
    let mut labels = Vec::new();
    let mut s = rest.strip_prefix('{')?;
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find("=\"")?;
        let key = &s[..eq];
        let body = &s[eq + 2..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        labels.push((key, &body[..end]));
        s = &body[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// The exemplar of one sample line, if the line is a bucket or counter sample of a family with
/// exemplars.
fn exemplar_for(
    indexed: &HashMap<String, Indexed>,
    types: &HashMap<&str, &str>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<Exemplar> {
    let (family, bucket_sample) = if let Some(f) = name.strip_suffix("_bucket") {
        (f, true)
    } else {
        (name, false)
    };
    let ix = indexed.get(family)?;
    match (ix.family.kind, bucket_sample) {
        (MetricKind::Histogram, true) if types.get(family) == Some(&"histogram") => {}
        (MetricKind::Counter, false) if types.get(family) == Some(&"counter") => {}
        _ => return None,
    }
    if labels
        .iter()
        .any(|(k, _)| *k == exported_key(crate::OVERFLOW_LABEL))
    {
        return None;
    }
    let key: Vec<Option<String>> = ix
        .keys
        .iter()
        .map(|k| {
            labels
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .collect();
    let slots = ix.series.get(&key)?;
    let slot = if bucket_sample {
        let le = labels.iter().find(|(k, _)| *k == "le")?.1;
        if le == "+Inf" {
            ix.family.bounds.len()
        } else {
            let le: f64 = le.parse().ok()?;
            ix.family.bounds.iter().position(|b| *b == le)?
        }
    } else {
        0
    };
    slots.get(slot).copied().flatten()
}

/// A sample value as OpenMetrics writes it.
fn value_text(v: &str) -> &str {
    match v {
        "inf" | "+inf" | "Inf" => "+Inf",
        "-inf" | "-Inf" => "-Inf",
        "nan" => "NaN",
        v => v,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn push_exemplar(out: &mut String, e: &Exemplar) {
    out.push_str(" # {trace_id=\"");
    push_hex(out, &e.trace_id);
    out.push_str("\",span_id=\"");
    push_hex(out, &e.span_id);
    let _ = write!(
        out,
        "\"}} {} {}.{:09}",
        e.value,
        e.unix_nanos / 1_000_000_000,
        e.unix_nanos % 1_000_000_000
    );
}

/// The family a `# HELP`/`# TYPE` line names, as OpenMetrics names it, and its type there.
fn om_family<'a>(name: &'a str, ty: Option<&str>) -> (&'a str, Option<&'static str>) {
    match ty {
        Some("counter") => match name.strip_suffix("_total") {
            Some(family) => (family, Some("counter")),
            None => (name, Some("unknown")),
        },
        Some("gauge") => (name, Some("gauge")),
        Some("histogram") => (name, Some("histogram")),
        Some("summary") => (name, Some("summary")),
        _ => (name, Some("unknown")),
    }
}

/// `classic` (as `metrics-exporter-prometheus` renders it) as OpenMetrics text, with the
/// exemplars of `exemplars`.
pub(crate) fn transform(classic: &str, exemplars: Option<&Exemplars>) -> String {
    let types: HashMap<&str, &str> = classic
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let indexed = exemplars.map(index).unwrap_or_default();
    let mut out = String::with_capacity(classic.len() + classic.len() / 4 + 8);
    for line in classic.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let (family, _) = om_family(name, types.get(name).copied());
            out.push_str("# HELP ");
            out.push_str(family);
            out.push(' ');
            let mut escaped = false;
            for c in text.chars() {
                if c == '"' && !escaped {
                    out.push('\\');
                }
                escaped = c == '\\' && !escaped;
                out.push(c);
            }
            out.push('\n');
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, ""));
            let (family, om) = om_family(name, Some(ty));
            let _ = writeln!(out, "# TYPE {family} {}", om.unwrap_or("unknown"));
            for unit in ["seconds", "bytes"] {
                if family.strip_suffix(unit).is_some_and(|f| f.ends_with('_')) {
                    let _ = writeln!(out, "# UNIT {family} {unit}");
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // A sample: name, optional labels, value.
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = &line[name_end..];
        let (labels, after) = if rest.starts_with('{') {
            match split_labels(rest) {
                Some(split) => split,
                None => {
                    out.push_str(line);
                    out.push('\n');
                    continue;
                }
            }
        } else {
            (Vec::new(), rest)
        };
        let value = after.trim();
        out.push_str(&line[..line.len() - after.len()]);
        out.push(' ');
        out.push_str(value_text(value));
        if !indexed.is_empty() {
            if let Some(e) = exemplar_for(&indexed, &types, name, &labels) {
                push_exemplar(&mut out, &e);
            }
        }
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// Which format a scraper's `Accept` header asks for: OpenMetrics when it accepts
/// `application/openmetrics-text` (any version this crate writes: 1.0.0, 0.0.1 or none) with a
/// quality at least that of the classic text, else the classic text (also for a missing or
/// unknown header).
pub fn wants_openmetrics(accept: &str) -> bool {
    let mut om = 0.0f32;
    let mut classic = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text"
                if matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                om = om.max(q)
            }
            "text/plain" | "text/*" | "*/*" => classic = classic.max(q),
            _ => {}
        }
    }
    om > 0.0 && om >= classic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_others_get_the_classic_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
            application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("application/json"));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;version=9.9.9"
        ));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;q=0.1,text/plain;q=0.9"
        ));
        assert!(wants_openmetrics("application/openmetrics-text"));
    }

    #[test]
    fn classic_text_becomes_openmetrics() {
        let classic = "# HELP calls_total Calls \"made\"\n# TYPE calls_total counter\n\
            calls_total{k=\"a\"} 3\n\n# TYPE odd counter\nodd 1\n\n\
            # TYPE d_seconds histogram\nd_seconds_bucket{le=\"0.1\"} 1\nd_seconds_bucket{le=\"+Inf\"} 1\n\
            d_seconds_sum 0.05\nd_seconds_count 1\n\n# TYPE g gauge\ng inf\n";
        assert_eq!(
            transform(classic, None),
            "# HELP calls Calls \\\"made\\\"\n# TYPE calls counter\ncalls_total{k=\"a\"} 3\n\
             # TYPE odd unknown\nodd 1\n\
             # TYPE d_seconds histogram\n# UNIT d_seconds seconds\n\
             d_seconds_bucket{le=\"0.1\"} 1\nd_seconds_bucket{le=\"+Inf\"} 1\n\
             d_seconds_sum 0.05\nd_seconds_count 1\n# TYPE g gauge\ng +Inf\n# EOF\n"
        );
    }

    #[test]
    fn label_values_are_matched_as_the_exporter_writes_them() {
        assert_eq!(exported_key("span.name"), "span_name");
        assert_eq!(exported_key("1a"), "_a");
        assert_eq!(exported_value("a\"b\nc"), "a\\\"b\\nc");
        assert_eq!(exported_value("a\\b"), "a\\\\b");
        let (labels, rest) = split_labels("{a=\"x\\\"y\",le=\"+Inf\"} 4").unwrap();
        assert_eq!(labels, vec![("a", "x\\\"y"), ("le", "+Inf")]);
        assert_eq!(rest, " 4");
    }
}
