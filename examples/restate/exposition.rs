//! Reading Prometheus text back: samples, sums and bucket quantiles, for the live summary and
//! the tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample line: `name{k="v",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

/// Every sample of an exposition (comments skipped; unparsable lines ignored).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            let value = parse_value(value.trim())?;
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)?),
                None => (head, Vec::new()),
            };
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// Sum of every series of `name`.
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Cumulative bucket counts of histogram `family` (without `_bucket`), summed over series, by
/// upper bound.
pub fn buckets(samples: &[Sample], family: &str) -> Vec<(f64, f64)> {
    let name = format!("{family}_bucket");
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        let Some(le) = s.label("le").and_then(parse_value) else {
            continue;
        };
        // Order upper bounds as floats (all non-negative here, so their bits order alike).
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    by_le.into_values().collect()
}

/// Bucket counts of `now` minus those of `before` (the window between two scrapes).
pub fn delta(now: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    now.iter()
        .map(|(le, c)| {
            let prev = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - prev)
        })
        .collect()
}

/// The `q` quantile from cumulative buckets, interpolated as Prometheus's `histogram_quantile`
/// does. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}
