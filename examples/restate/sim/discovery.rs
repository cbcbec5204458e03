//! Deployment discovery: `GET /discover` with retries, then registration.
//!
//! One `discovery` span covers the whole discovery (every try and backoff); each retry is a
//! warning event with its `reason`; the span records its `outcome` at the end. The manifest is
//! checked only afterwards: a bad manifest is still a successful discovery.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty as EmptyBody};
use hyper::Request;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::Rng;
use super::deployment::{self, HttpError};

/// Exponential backoff: `base`, factor 2, at most `max_retries` retries, up to a third of jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_retries: u32,
}

impl RetryPolicy {
    /// restate's policy: 100 ms, factor 2, at most 4 retries.
    pub fn restate() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            max_retries: 4,
        }
    }

    fn delay(&self, retry: u32, rng: &mut Rng) -> Duration {
        let d = self.base * 2u32.pow(retry);
        let jitter = d.as_secs_f64() / 3.0 * rng.unit();
        d + Duration::from_secs_f64(jitter)
    }
}

/// How a discovery ended (after all retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    RetryableExhausted,
    PermanentFailure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::RetryableExhausted => "retryable_exhausted",
            Outcome::PermanentFailure => "permanent_failure",
        }
    }
}

/// What discovery found: the services of a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub services: Vec<String>,
}

enum Try {
    Body(Bytes),
    Retry(&'static str, String),
    Permanent(String),
}

async fn try_once(endpoint: SocketAddr) -> Try {
    let req = Request::get("/discover")
        .header(hyper::header::HOST, endpoint.to_string())
        .body(EmptyBody::<Bytes>::new())
        .expect("a valid request");
    let resp = match deployment::send(endpoint, req).await {
        Ok(r) => r,
        Err(e @ (HttpError::Connect(_) | HttpError::Request(_))) => {
            return Try::Retry("connection", e.to_string());
        }
    };
    let status = resp.status().as_u16();
    match status {
        200..=299 => match resp.into_body().collect().await {
            Ok(body) => Try::Body(body.to_bytes()),
            Err(e) => Try::Retry("body_error", e.to_string()),
        },
        408 | 429 => Try::Retry("rate_limited", format!("status {status}")),
        500 | 502 | 503 | 504 => Try::Retry("server_error", format!("status {status}")),
        _ => Try::Permanent(format!("status {status}")),
    }
}

/// Discovers the deployment at `endpoint`: `(outcome, manifest)`; the manifest is `None` unless
/// discovery succeeded and the manifest is valid.
pub async fn discover(
    endpoint: SocketAddr,
    policy: RetryPolicy,
    seed: u64,
) -> (Outcome, Option<Manifest>) {
    let span = tracing::info_span!("discovery", endpoint = %endpoint, outcome = Empty);
    async move {
        let mut rng = Rng::new(seed);
        let mut retries = 0;
        let (outcome, body) = loop {
            match try_once(endpoint).await {
                Try::Body(b) => break (Outcome::Success, Some(b)),
                Try::Permanent(cause) => {
                    tracing::warn!(%cause, "discovery failed permanently");
                    break (Outcome::PermanentFailure, None);
                }
                Try::Retry(reason, cause) => {
                    if retries == policy.max_retries {
                        tracing::warn!(reason, %cause, "discovery retries exhausted");
                        break (Outcome::RetryableExhausted, None);
                    }
                    let delay = policy.delay(retries, &mut rng);
                    retries += 1;
                    tracing::warn!(
                        reason,
                        %cause,
                        retry = retries,
                        delay_ms = delay.as_millis() as u64,
                        "retrying discovery"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        };
        Span::current().record("outcome", outcome.as_str());
        (outcome, body.and_then(|b| parse_manifest(&b)))
    }
    .instrument(span)
    .await
}

/// A deliberately small manifest check: protocol versions 1..=5 and the service names.
fn parse_manifest(body: &[u8]) -> Option<Manifest> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("\"protocol\":[1,5]") {
        return None;
    }
    let list = text.split("\"services\":[").nth(1)?.split(']').next()?;
    let services: Vec<String> = list
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    (!services.is_empty()).then_some(Manifest { services })
}
