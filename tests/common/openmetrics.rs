//! Reading the exemplars back out of an OpenMetrics exposition, for the exemplar tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// An exemplar as served: (sample name, method, le) → (trace id, span id, value).
pub type Served = BTreeMap<(String, String, String), (String, String, f64)>;

fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
        .map_or("", |v| v.trim_end_matches('"'))
}

/// The exemplars in an OpenMetrics text.
pub fn served(text: &str) -> Served {
    let mut out = Served::new();
    for line in text.lines() {
        let Some((sample, exemplar)) = line.split_once(" # {") else {
            continue;
        };
        let (name, labels) = sample.split_once('{').unwrap();
        let labels = labels.split_once('}').unwrap().0;
        let (ex_labels, rest) = exemplar.split_once("} ").unwrap();
        let value: f64 = rest.split(' ').next().unwrap().parse().unwrap();
        out.insert(
            (
                name.to_owned(),
                label(labels, "method").to_owned(),
                label(labels, "le").to_owned(),
            ),
            (
                label(ex_labels, "trace_id").to_owned(),
                label(ex_labels, "span_id").to_owned(),
                value,
            ),
        );
    }
    out
}
