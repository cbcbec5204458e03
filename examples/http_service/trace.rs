//! The request span, as an axum service usually configures tower-http's `TraceLayer`: named and
//! labelled by the route template (axum's `MatchedPath`, never the raw URI), with the status
//! recorded when the response head is ready. That event is the time-to-first-byte milestone.

use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, MakeSpan, OnResponse, TraceLayer,
};
use tracing::Span;
use tracing::field::Empty;

/// The request span's name (rules select it by this name).
pub const REQUEST_SPAN: &str = "http_request";
/// The message of the event emitted when the response head is ready (the TTFB milestone).
pub const RESPONSE_HEAD: &str = "response head ready";
/// The route of requests no route matched (axum's fallback): one value, whatever the path.
pub const UNMATCHED: &str = "unmatched";

/// The `TraceLayer` of the service: the request span below, the status and the milestone when
/// the response head is ready, tower-http's defaults otherwise.
pub fn layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    DefaultOnRequest,
    ResponseHead,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(ResponseHead)
        // The status is on the span already; 5xx mark it failed in `ResponseHead`.
        .on_failure(())
}

/// Opens the request span: `otel.name` is `METHOD ROUTE` as OpenTelemetry names server spans.
#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let method = request.method().as_str();
        let route = request.extensions().get::<MatchedPath>();
        let name = match route {
            Some(route) => format!("{method} {}", route.as_str()),
            None => method.to_owned(),
        };
        tracing::info_span!(
            REQUEST_SPAN,
            otel.name = name.as_str(),
            otel.kind = "server",
            http.request.method = method,
            http.route = route.map_or(UNMATCHED, MatchedPath::as_str),
            http.response.status_code = Empty,
            otel.status_code = Empty,
        )
    }
}

/// Records the response status on the request span (a 5xx also sets `otel.status_code`, as
/// OpenTelemetry marks server spans) and emits the time-to-first-byte milestone.
#[derive(Clone, Copy)]
pub struct ResponseHead;

impl OnResponse<Body> for ResponseHead {
    fn on_response(self, response: &Response<Body>, _latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        tracing::info!(parent: span, "{RESPONSE_HEAD}");
    }
}
