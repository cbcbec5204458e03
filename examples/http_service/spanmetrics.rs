//! Every metric of the service, declared in one place from the spans it already opens: the
//! request span of `trace.rs`, the handlers' `#[instrument]` spans, the database spans of
//! `db.rs` and the client span of `downstream.rs`.

use tracing_spanmetrics::{
    Buckets, Condition, EventMatch, Label, Mapping, Metric, SpanMetrics, SpanMetricsBuilder, Spans,
};

use crate::trace::{REQUEST_SPAN, RESPONSE_HEAD};

/// The `service_name` of the RED families (the connector's `service.name`).
pub const SERVICE_NAME: &str = "http-service";

/// The target of the handlers' spans: the module `handlers.rs` of this example's crate.
const HANDLERS_TARGET: &str = "http_service::handlers";

/// OpenTelemetry's advised boundaries for HTTP durations, in seconds.
fn http_buckets() -> Buckets {
    Buckets::explicit([
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

/// The route template (axum's `MatchedPath`), from the request span.
fn route() -> Label {
    Label::field("http.route").rename("route")
}

/// The request method, from the request span.
fn method() -> Label {
    Label::field("http.request.method").rename("method")
}

/// `2xx` … `5xx` from the status recorded on the span; `none` if no response was made.
fn status_class() -> Label {
    Label::field("http.response.status_code")
        .rename("status_class")
        .map(Mapping::status_class())
        .default("none")
}

/// The rules: RED by route template, method and status class, requests in flight, time to
/// the first byte of the response, handler errors, the database and the downstream calls, and
/// the spanmetrics connector's RED families over every span.
pub fn builder() -> SpanMetricsBuilder {
    let requests = || Spans::named(REQUEST_SPAN);
    SpanMetrics::builder()
        .metric(
            Metric::histogram("http.server.request.duration")
                .describe("Requests served, from the request's arrival to its body's last byte")
                .spans(requests())
                .wall_time()
                .labels([route(), method(), status_class()])
                .buckets(http_buckets()),
        )
        .metric(
            Metric::gauge("http.server.active_requests")
                .describe("Requests being served")
                .spans(requests())
                .in_flight()
                .labels([route(), method()]),
        )
        .metric(
            Metric::histogram("http.server.time_to_first_byte")
                .describe("From a request's arrival to its response head being ready")
                .spans(requests())
                .time_to(EventMatch::message(RESPONSE_HEAD))
                .labels([route(), method()])
                .buckets(http_buckets()),
        )
        .metric(
            Metric::counter("http.server.handler.errors")
                .describe("Handlers that returned an error (`#[instrument(err)]`)")
                // `#[instrument]` spans take their module's path as target.
                .spans(Spans::all().target(HANDLERS_TARGET))
                .spans_closed()
                .labels([route(), Label::span_name("handler")])
                .when(Condition::error()),
        )
        .metric(
            Metric::histogram("db.client.operation.duration")
                .describe("Database queries")
                .spans(Spans::named("db_query"))
                .wall_time()
                .labels([
                    Label::field("db.system.name").rename("db_system"),
                    Label::field("db.operation.name").rename("operation"),
                    Label::field("db.collection.name").rename("collection"),
                    Label::outcome("outcome"),
                ]),
        )
        .metric(
            Metric::histogram("http.client.request.duration")
                .describe("Calls to downstream HTTP services")
                .spans(Spans::named("http_client_request"))
                .wall_time()
                .labels([
                    Label::field("server.address").rename("server_address"),
                    method(),
                    status_class(),
                ])
                .buckets(http_buckets()),
        )
        .red(SERVICE_NAME, Spans::all())
}
