//! Route normalisation: a raw request path turned into a route template, so that a label fed
//! with paths (`/users/42/orders/7`) takes a few values (`/users/{id}/orders/{id}`), not one per
//! request.

use std::fmt;

use regex::Regex;

/// The placeholder that replaces an identifier segment.
pub const ROUTE_ID: &str = "{id}";

/// Shortest run of hexadecimal digits taken for an identifier (a hash, an object id).
const LONG_HEX: usize = 16;

/// A [`Mapping::route`](crate::Mapping::route): what becomes of each `/`-separated segment of a
/// path. The query (`?…`) and fragment (`#…`) are dropped. A segment that one of your patterns
/// matches as a whole becomes that pattern's replacement (your patterns are tried in the order
/// given, before the built-in ones); otherwise a segment of decimal digits, a UUID
/// (`8-4-4-4-12` hexadecimal digits) or a run of 16 or more hexadecimal digits becomes `{id}`;
/// any other segment stays.
///
/// A path that needs no change is kept as it is, with no copy; the result is cut to the label
/// bound like any value.
#[derive(Debug, Clone)]
pub struct RouteMapping {
    patterns: Vec<SegmentPattern>,
}

/// One pattern of your own: a regular expression (the `regex` crate's syntax) that must match a
/// whole segment, and what such a segment becomes.
#[derive(Debug, Clone)]
struct SegmentPattern {
    pattern: String,
    replacement: String,
    /// The pattern compiled, anchored at both ends; the compiler's complaint if it does not
    /// compile (the builder reports it).
    regex: Result<Regex, String>,
}

impl PartialEq for RouteMapping {
    fn eq(&self, other: &Self) -> bool {
        self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.pattern == b.pattern && a.replacement == b.replacement)
    }
}

impl RouteMapping {
    pub(crate) fn new() -> Self {
        RouteMapping {
            patterns: Vec::new(),
        }
    }

    pub(crate) fn with_segment(mut self, pattern: String, replacement: String) -> Self {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string());
        self.patterns.push(SegmentPattern {
            pattern,
            replacement,
            regex,
        });
        self
    }

    /// Your patterns and their replacements, in order.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = (&str, &str, Result<(), &str>)> {
        self.patterns.iter().map(|p| {
            (
                p.pattern.as_str(),
                p.replacement.as_str(),
                p.regex.as_ref().map(drop).map_err(String::as_str),
            )
        })
    }

    /// What `segment` becomes, if it changes.
    fn replacement(&self, segment: &str) -> Option<&str> {
        if segment.is_empty() {
            return None;
        }
        for p in &self.patterns {
            if p.regex.as_ref().is_ok_and(|r| r.is_match(segment)) {
                return Some(&p.replacement);
            }
        }
        is_identifier(segment).then_some(ROUTE_ID)
    }

    /// The path without its query and fragment, and whether they were there.
    fn path(raw: &str) -> (&str, bool) {
        match raw.find(['?', '#']) {
            Some(end) => (&raw[..end], true),
            None => (raw, false),
        }
    }

    /// Whether `raw` changes (decided without writing anything).
    pub(crate) fn changes(&self, raw: &str) -> bool {
        let (path, cut) = Self::path(raw);
        cut || path.split('/').any(|s| self.replacement(s).is_some())
    }

    /// `raw` normalised, for writing (only worth it when [`changes`](Self::changes)).
    pub(crate) fn normalised<'a>(&'a self, raw: &'a str) -> impl fmt::Display + 'a {
        Normalised { route: self, raw }
    }
}

struct Normalised<'a> {
    route: &'a RouteMapping,
    raw: &'a str,
}

impl fmt::Display for Normalised<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, _) = RouteMapping::path(self.raw);
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(self.route.replacement(segment).unwrap_or(segment))?;
        }
        Ok(())
    }
}

/// A segment of decimal digits, a UUID, or 16 or more hexadecimal digits.
fn is_identifier(segment: &str) -> bool {
    let b = segment.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() >= LONG_HEX && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(m: &RouteMapping, raw: &str) -> String {
        if m.changes(raw) {
            m.normalised(raw).to_string()
        } else {
            raw.to_owned()
        }
    }

    #[test]
    fn identifiers_become_placeholders_and_the_rest_stays() {
        let m = RouteMapping::new();
        let cases = [
            ("/users/42/orders/7", "/users/{id}/orders/{id}"),
            ("/users/42?expand=1", "/users/{id}"),
            ("/a#frag", "/a"),
            ("/o/123e4567-e89b-12d3-a456-426614174000/x", "/o/{id}/x"),
            ("/blob/0123456789abcdef0123", "/blob/{id}"),
            ("/blob/0123456789abcde", "/blob/0123456789abcde"),
            ("/v1/users", "/v1/users"),
            ("/", "/"),
            ("", ""),
            ("//x//", "//x//"),
            (
                "/123e4567-e89b-12d3-a456-42661417400g",
                "/123e4567-e89b-12d3-a456-42661417400g",
            ),
            ("42", "{id}"),
        ];
        for (raw, want) in cases {
            assert_eq!(route(&m, raw), want, "{raw}");
        }
        assert!(!m.changes("/v1/users"));
    }

    #[test]
    fn your_patterns_come_first_and_match_whole_segments() {
        let m = RouteMapping::new()
            .with_segment("[a-z]{2}-[A-Z]{2}".into(), "{locale}".into())
            .with_segment("[0-9]+".into(), "{n}".into());
        assert_eq!(route(&m, "/en-GB/items/12"), "/{locale}/items/{n}");
        // Not a whole-segment match.
        assert_eq!(route(&m, "/xen-GBx/items"), "/xen-GBx/items");
        let bad = RouteMapping::new().with_segment("(".into(), "{x}".into());
        assert!(bad.patterns().next().unwrap().2.is_err());
        // A pattern that does not compile matches nothing (the builder refuses it anyway).
        assert_eq!(route(&bad, "/("), "/(");
    }
}
