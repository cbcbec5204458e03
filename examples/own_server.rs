//! Serving span metrics from the application's own HTTP server (hyper here; axum alike), with a
//! recorder of their own: nothing is installed globally, so the application's other metrics
//! stay apart.
//!
//! ```sh
//! cargo run --example own_server -- 127.0.0.1:9100   # then: curl http://127.0.0.1:9100/metrics
//! ```
//!
//! In axum the handler is the same one line:
//! `.route("/metrics", get(move || async move { exposition.render() }))`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::Instrument;
use tracing_spanmetrics::exporter::{self, Exposition};
use tracing_spanmetrics::{Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::prelude::*;

/// `/metrics` answers the exposition; every other path is 404.
async fn answer(
    exposition: Exposition,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/metrics" {
        Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(exposition.render())))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()))
    };
    Ok(response.expect("a static response is valid"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".to_owned())
        .parse()?;

    // The layer and its own recorder in one call: buckets set, upkeep running.
    let (layer, exposition) = exporter::build_with_own_recorder(
        SpanMetrics::builder().metric(
            Metric::histogram("job.duration.seconds")
                .describe("One job, start to end")
                .spans(Spans::named("job"))
                .label("queue")
                .label(Label::outcome("result")),
        ),
    )?;
    tracing_subscriber::registry().with(layer).init();

    let listener = TcpListener::bind(addr).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);

    // Some work to measure.
    tokio::spawn(async {
        for n in 0u64.. {
            let queue = if n % 3 == 0 { "bulk" } else { "fast" };
            tokio::time::sleep(std::time::Duration::from_millis(n % 7))
                .instrument(tracing::info_span!("job", queue))
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });

    loop {
        let (stream, _) = listener.accept().await?;
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(exposition.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
