//! Route normalisation: spans that carry only a raw request path are labelled by its route, so a
//! million distinct paths through one route make one series; a path that needs no change costs
//! no allocation; the output is bounded; your own segment patterns come first.

mod common;
#[path = "common/heap.rs"]
mod heap;

use std::fmt::Write as _;
use std::sync::Arc;

use common::Harness;
use heap::{AtomicRecorder, Counting, count};
use tracing::{Dispatch, dispatcher};
use tracing_spanmetrics::{
    Label, Mapping, Metric, OVERFLOW_METRIC, SpanMetrics, SpanMetricsBuilder, Spans,
    TRUNCATED_METRIC,
};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn by_route(mapping: Mapping) -> SpanMetricsBuilder {
    SpanMetrics::builder().metric(
        Metric::counter("http.requests")
            .spans(Spans::named("request"))
            .label(Label::field("path").rename("route").map(mapping))
            .label("method"),
    )
}

#[test]
fn a_million_distinct_paths_through_one_route_make_one_series() {
    const PATHS: u64 = 1_000_000;
    let mut h = Harness::new(by_route(Mapping::route()));
    let d = h.dispatch();
    let mut path = String::new();
    dispatcher::with_default(&d, || {
        for i in 0..PATHS {
            path.clear();
            // A number, a UUID and a 24-digit hex object id, then a query string.
            write!(
                path,
                "/users/{i}/orders/{:08x}-{:04x}-4000-8000-{:012x}/items/{:024x}?page={}",
                i,
                i % 0xffff,
                i * 7,
                u128::from(i) * 13 + (1 << 80),
                i % 10
            )
            .unwrap();
            drop(tracing::info_span!(
                "request",
                path = path.as_str(),
                method = "GET"
            ));
        }
    });
    let m = h.snapshot();
    let route = "/users/{id}/orders/{id}/items/{id}";
    assert_eq!(
        m.series("http.requests"),
        [common::labels(&[("method", "GET"), ("route", route)])]
    );
    assert_eq!(
        m.counter("http.requests", &[("route", route), ("method", "GET")]),
        Some(PATHS)
    );
    // Nothing overflowed and nothing was cut: the health counters, registered at 0 when the
    // layer was built, are still 0.
    assert_eq!(
        m.counter(OVERFLOW_METRIC, &[("metric", "http_requests_total")]),
        Some(0)
    );
    assert_eq!(m.counter(TRUNCATED_METRIC, &[]), Some(0));
}

#[test]
fn paths_become_routes_and_the_rest_stays() {
    let mut h = Harness::new(
        by_route(Mapping::route().segment("[a-z]{2}-[A-Z]{2}", "{locale}")).metric(
            // The path read from the parent span (a value copied from an ancestor).
            Metric::counter("db.queries")
                .spans(Spans::named("query"))
                .label(Label::field("path").rename("route").map(Mapping::route())),
        ),
    );
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        for path in [
            "/en-GB/users/42",
            "/fr-FR/users/7?x=1",
            "/health",
            "/health#top",
            "/blob/0123456789abcdef",
            "/blob/abc",
        ] {
            let request = tracing::info_span!("request", path, method = "GET");
            request.in_scope(|| drop(tracing::info_span!("query")));
        }
        // A number, not text: normalised all the same.
        drop(tracing::info_span!("request", path = 42, method = "GET"));
        // No path at all: the label is left off.
        drop(tracing::info_span!("request", method = "GET"));
    });
    let m = h.snapshot();
    let requests = |route: &str| m.counter("http.requests", &[("route", route), ("method", "GET")]);
    assert_eq!(requests("/{locale}/users/{id}"), Some(2));
    assert_eq!(requests("/health"), Some(2));
    assert_eq!(requests("/blob/{id}"), Some(1));
    assert_eq!(requests("/blob/abc"), Some(1));
    assert_eq!(requests("{id}"), Some(1));
    assert_eq!(m.counter("http.requests", &[("method", "GET")]), Some(1));
    assert_eq!(m.series("http.requests").len(), 6);
    let queries = |route: &str| m.counter("db.queries", &[("route", route)]);
    // Without the locale pattern of the first rule.
    assert_eq!(queries("/en-GB/users/{id}"), Some(1));
    assert_eq!(queries("/fr-FR/users/{id}"), Some(1));
    assert_eq!(queries("/health"), Some(2));
    assert_eq!(queries("/blob/{id}"), Some(1));
    assert_eq!(queries("/blob/abc"), Some(1));
}

#[test]
fn the_route_is_cut_to_the_label_bound() {
    let mut h = Harness::new(by_route(Mapping::route()).max_label_len(16));
    let d = h.dispatch();
    dispatcher::with_default(&d, || {
        // 8 bytes raw, 20 bytes normalised: the route is cut at 16 bytes and counted.
        drop(tracing::info_span!(
            "request",
            path = "/1/2/3/4",
            method = "GET"
        ));
    });
    let m = h.snapshot();
    assert_eq!(
        m.counter(
            "http.requests",
            &[("route", "/{id}/{id}/{id}/"), ("method", "GET")]
        ),
        Some(1)
    );
    assert_eq!(m.counter(TRUNCATED_METRIC, &[]), Some(1));
}

/// One request span with a path of the `i`-th of `paths`.
fn request(path: &str) {
    drop(tracing::info_span!("request", path, method = "GET"));
}

fn measure(dispatch: &Dispatch, paths: &[String]) -> u64 {
    let (warm, measured) = paths.split_at(paths.len() / 2);
    dispatcher::with_default(dispatch, || {
        for p in warm {
            request(p);
        }
        count(|| {
            for p in measured {
                request(p);
            }
        })
        .0
    })
}

struct OneExtension;

struct Marker(#[allow(dead_code)] u64);

impl<S> tracing_subscriber::Layer<S> for OneExtension
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Marker(id.into_u64()));
        }
    }
}

#[test]
fn normalising_a_path_allocates_nothing() {
    // Every path distinct (so every span misses the layer's cache of raw values and is
    // normalised): ones that need no change, folded into the overflow series past a limit of 1,
    // and ones that become an existing route.
    let unchanged: Vec<String> = (0..4000).map(|i| format!("/static/file-{i}.css")).collect();
    let changed: Vec<String> = (0..4000).map(|i| format!("/users/{i}/cart")).collect();
    for (what, paths, limit) in [("unchanged", &unchanged, 1), ("changed", &changed, 2000)] {
        let baseline = measure(
            &Dispatch::new(Registry::default().with(OneExtension)),
            paths,
        );
        let recorder = Arc::new(AtomicRecorder::default());
        let layer = by_route(Mapping::route())
            .cardinality_limit(limit)
            .with_recorder(recorder.clone())
            .build()
            .unwrap();
        let with_layer = measure(&Dispatch::new(Registry::default().with(layer)), paths);
        assert_eq!(
            recorder.total("http_requests_total"),
            paths.len() as u64,
            "{what}"
        );
        assert_eq!(
            baseline,
            (paths.len() / 2) as u64,
            "{what}: one box per span"
        );
        assert_eq!(
            with_layer, baseline,
            "{what}: allocations beyond the forced extension"
        );
    }
}

fn refused(mapping: Mapping) -> String {
    by_route(mapping)
        .build()
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn bad_patterns_are_refused() {
    assert_eq!(
        refused(Mapping::route().segment("(", "{x}")),
        "rule #0 (`http.requests`): label `route`: route segment pattern `(` is not a valid \
         regular expression: error: unclosed group"
    );
    assert_eq!(
        refused(Mapping::route().segment("v[0-9]+", " ")),
        "rule #0 (`http.requests`): label `route`: route segment pattern `v[0-9]+` is replaced \
         by a blank value \" \"; give a placeholder such as `{id}`"
    );
    assert_eq!(
        refused(Mapping::route().segment("", "{x}")),
        "rule #0 (`http.requests`): label `route`: a route segment pattern is empty (it would \
         match only empty segments)"
    );
    let file_error = |labels: &str| {
        SpanMetrics::builder()
            .toml(&format!(
                "[[metric]]\nname = \"r\"\nkind = \"counter\"\nlabels = [{labels}]\n"
            ))
            .expect_err("must be refused")
            .to_string()
    };
    assert_eq!(
        file_error(r#"{ field = "p", map = { route = [{ pattern = "[" }] } }"#),
        "line 4, column 1: rule #0 (`r`): label `p`: route segment pattern `[` is not a valid \
         regular expression: error: unclosed character class"
    );
    assert_eq!(
        file_error(r#"{ field = "p", map = { route = [{ patern = "x" }] } }"#),
        "line 4, column 45: rule #0 (`r`): unknown key `patern` in a route pattern: expected \
         one of `pattern`, `replace`; did you mean `pattern`?"
    );
    assert_eq!(
        file_error(r#"{ field = "p", map = { route = [], table = { a = "b" } } }"#),
        "line 4, column 26: rule #0 (`r`): a `map` takes either `route` or `table` (with \
         `otherwise`)"
    );
}

#[test]
fn routes_read_from_toml_as_from_the_builder() {
    let from_file = SpanMetrics::builder()
        .toml(
            r#"
            [[metric]]
            name = "http.requests"
            kind = "counter"
            spans = "request"
            labels = [
              { field = "path", key = "route", map = { route = [{ pattern = "[a-z]{2}-[A-Z]{2}", replace = "{locale}" }, { pattern = "v[0-9]+" }] } },
              "method",
            ]
            [[metric]]
            name = "http.requests.plain"
            kind = "counter"
            spans = "request"
            labels = [{ field = "path", key = "route", map = "route" }, "method"]
            "#,
        )
        .unwrap();
    let from_code = by_route(
        Mapping::route()
            .segment("[a-z]{2}-[A-Z]{2}", "{locale}")
            .segment("v[0-9]+", "{id}"),
    )
    .metric(
        Metric::counter("http.requests.plain")
            .spans(Spans::named("request"))
            .label(Label::field("path").rename("route").map(Mapping::route()))
            .label("method"),
    );
    assert_eq!(from_file.rules(), from_code.rules());
}
