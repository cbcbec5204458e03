//! The `/metrics` endpoint of [`install`](super::install) with exemplars: a small HTTP/1 server
//! that answers every `GET` with the metrics, as OpenMetrics when the scraper's `Accept` asks
//! for it (as Prometheus does), in the classic text format otherwise.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Exposition;
use super::openmetrics::{CLASSIC_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, wants_openmetrics};

/// The response to one request.
fn respond(exposition: &Exposition, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = Response::new(Full::new(Bytes::from_static(b"only GET is served\n")));
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return res;
    }
    let accept = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let (body, content_type) = exposition.negotiate(&accept);
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Serves `exposition` on `listener` until the runtime shuts down.
pub(super) async fn serve(listener: tokio::net::TcpListener, exposition: Exposition) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let res = respond(&exposition, &req);
                async move { Ok::<_, Infallible>(res) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Exposition {
    /// The text to answer a scraper whose `Accept` header is `accept` with, and its content
    /// type: OpenMetrics with exemplars when it asks for OpenMetrics (see
    /// [`wants_openmetrics`]), the classic text otherwise.
    #[must_use]
    pub fn negotiate(&self, accept: &str) -> (String, &'static str) {
        if wants_openmetrics(accept) {
            (self.render_openmetrics(), OPENMETRICS_CONTENT_TYPE)
        } else {
            (self.render(), CLASSIC_CONTENT_TYPE)
        }
    }
}
