//! The downstream pricing service the app calls (a second axum server on a loopback port of its
//! own, standing in for another process: it opens no spans), and the client that calls it, in a
//! client span as an instrumented HTTP client opens one.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tracing::Instrument;
use tracing::field::Empty as NotYet;

/// The symbol the pricing service fails for, with 503.
pub const BROKEN: &str = "BROKEN";

/// A call to the pricing service that failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection, or the body broke off.
    Transport(String),
    /// The service answered with this status.
    Status(u16),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Transport(e) => write!(f, "pricing service unreachable: {e}"),
            UpstreamError::Status(s) => write!(f, "pricing service answered {s}"),
        }
    }
}

/// Starts the pricing service on a free loopback port; returns a client for it.
pub async fn serve() -> std::io::Result<Pricing> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = Router::new().route("/prices/{symbol}", get(price));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Pricing {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
    })
}

async fn price(Path(symbol): Path<String>) -> Result<String, StatusCode> {
    if symbol == BROKEN {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let cents: u64 = symbol.bytes().map(u64::from).sum::<u64>() * 7;
    Ok(format!("{symbol} {}.{:02}", cents / 100, cents % 100))
}

/// A client of the pricing service.
#[derive(Clone)]
pub struct Pricing {
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Pricing {
    /// `GET /prices/{symbol}`, in a client span (`otel.kind = "client"`) that records the
    /// response status; a status of 400 or more marks it failed, as OpenTelemetry marks client
    /// spans.
    pub async fn price(&self, symbol: &str) -> Result<String, UpstreamError> {
        let span = tracing::info_span!(
            "http_client_request",
            otel.name = "GET /prices/{symbol}",
            otel.kind = "client",
            http.request.method = "GET",
            server.address = %self.addr.ip(),
            server.port = self.addr.port(),
            url.template = "/prices/{symbol}",
            http.response.status_code = NotYet,
            otel.status_code = NotYet,
        );
        let call = async {
            let uri = format!("http://{}/prices/{symbol}", self.addr)
                .parse()
                .map_err(|e| UpstreamError::Transport(format!("symbol `{symbol}`: {e}")))?;
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|e| UpstreamError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            tracing::Span::current().record("http.response.status_code", status);
            if status >= 400 {
                tracing::Span::current().record("otel.status_code", "ERROR");
                return Err(UpstreamError::Status(status));
            }
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| UpstreamError::Transport(e.to_string()))?
                .to_bytes();
            Ok(String::from_utf8_lossy(&body).into_owned())
        };
        call.instrument(span).await
    }
}
