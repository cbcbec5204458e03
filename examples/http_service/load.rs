//! The load: real HTTP requests to the app over loopback, in a fixed order (the [`MIX`]),
//! started at a steady rate. Every route is in it, and so are a 400 from axum's own path
//! rejection, 4xx and 5xx from handlers, a 502 from a failing downstream call, a 404 no route
//! matched, and a slow streamed report.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much load to send.
#[derive(Clone, Copy)]
pub enum Amount {
    /// Requests for this long.
    For(Duration),
    /// Exactly this many requests.
    Requests(u64),
}

/// One request of the mix.
pub struct Call {
    pub method: Method,
    pub path: &'static str,
    pub body: &'static str,
}

const fn get(path: &'static str) -> Call {
    Call {
        method: Method::GET,
        path,
        body: "",
    }
}

/// The requests, sent in this order, round after round. What each answers is in the comment;
/// `tests/http_service.rs` holds what the metrics must then say.
pub const MIX: [Call; 12] = [
    get("/users/7"),    // 200
    get("/users/4242"), // 404: no such user (the handler's Err)
    get("/users/abc"),  // 400: axum rejects the path before the handler runs
    Call {
        method: Method::POST,
        path: "/users",
        body: "ada",
    }, // 201
    Call {
        method: Method::POST,
        path: "/users",
        body: "",
    }, // 400: an empty name (the handler's Err)
    get("/orders/12/items/3"), // 200
    get("/orders/12/items/0"), // 500: the database query fails
    get("/quotes/ACME"), // 200, through the downstream service
    get("/quotes/BROKEN"), // 502: the downstream service answers 503
    get("/reports/5"),  // 200, slow: the body streams for 300 ms
    get("/healthz"),    // 200
    get("/no/such/route"), // 404: no route matched
];

/// Sends `amount` of the mix to the app at `app`, starting `rate` requests a second (each
/// answered concurrently with the next ones); returns how many were answered, after the last.
pub async fn drive(app: SocketAddr, amount: Amount, rate: f64) -> u64 {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut calls = JoinSet::new();
    let mut sent: u64 = 0;
    let mut answered: u64 = 0;
    let count = |outcome: Result<Result<(), BoxError>, tokio::task::JoinError>| match outcome {
        Ok(Ok(())) => 1,
        Ok(Err(e)) => {
            eprintln!("http_service: a load request failed: {e}");
            0
        }
        Err(e) => {
            eprintln!("http_service: a load request panicked: {e}");
            0
        }
    };
    loop {
        while let Some(outcome) = calls.try_join_next() {
            answered += count(outcome);
        }
        let more = match amount {
            Amount::For(d) => started.elapsed() < d,
            Amount::Requests(n) => sent < n,
        };
        if !more {
            break;
        }
        tick.tick().await;
        let call = &MIX[(sent % MIX.len() as u64) as usize];
        let request = Request::builder()
            .method(call.method.clone())
            .uri(format!("http://{app}{}", call.path))
            .body(Full::new(Bytes::from_static(call.body.as_bytes())))
            .expect("a valid request");
        let client = client.clone();
        calls.spawn(async move {
            let response = client.request(request).await?;
            // Read the whole body: the request ends when its last byte arrived.
            response.into_body().collect().await?;
            Ok::<_, BoxError>(())
        });
        sent += 1;
    }
    while let Some(outcome) = calls.join_next().await {
        answered += count(outcome);
    }
    answered
}
