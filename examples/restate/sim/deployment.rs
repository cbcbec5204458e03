//! The simulated user deployment: a real HTTP/1.1 server on loopback.
//!
//! `GET /discover` answers the manifest (or a scripted failure); `POST /invoke/{service}/{handler}`
//! answers with a status and streams body frames with delays, one line per frame, ending with a
//! terminal line: `END` (closed), `SUSPEND`, `FAIL retryable` or `FAIL terminal`. What each
//! request gets is scripted per invocation and attempt, so scenarios are deterministic.
//!
//! The deployment is the user's code, not restate's: it carries no spans.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What one invocation attempt gets from the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// 200, frames, `END`.
    Complete,
    /// 200, frames, `SUSPEND`.
    Suspend,
    /// 200, frames, `FAIL retryable`.
    FailRetryable,
    /// 200, frames, `FAIL terminal`.
    FailTerminal,
    /// This status and a short body (e.g. 429, 502, 503).
    Status(u16),
    /// The connection is closed without any response.
    Refuse,
}

/// What one `GET /discover` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discover {
    /// 200 with a manifest listing the deployment's services.
    Manifest,
    /// 200 with a manifest that fails validation (still a successful discovery).
    BadManifest,
    /// This status.
    Status(u16),
    /// 200, then the body breaks off.
    BodyError,
}

/// The deployment's behaviour: its services, its pace and its scripts.
#[derive(Debug)]
pub struct Script {
    pub services: Vec<String>,
    /// Body frames before the terminal line.
    pub frames: u32,
    /// Delay before each body frame (and before response headers).
    pub frame_delay: Duration,
    attempts: Mutex<HashMap<String, Vec<Attempt>>>,
    discover: Mutex<VecDeque<Discover>>,
}

impl Script {
    pub fn new(services: &[&str], frames: u32, frame_delay: Duration) -> Arc<Script> {
        Arc::new(Script {
            services: services.iter().map(|s| s.to_string()).collect(),
            frames,
            frame_delay,
            attempts: Mutex::new(HashMap::new()),
            discover: Mutex::new(VecDeque::new()),
        })
    }

    /// Scripts the attempts of one invocation: attempt n gets `attempts[n - 1]` (the last entry
    /// repeats). Unscripted invocations complete.
    pub fn plan(&self, invocation_id: &str, attempts: Vec<Attempt>) {
        self.attempts
            .lock()
            .unwrap()
            .insert(invocation_id.to_owned(), attempts);
    }

    /// Scripts the next answers to `GET /discover` (then: the manifest).
    pub fn discover(&self, answers: &[Discover]) {
        self.discover
            .lock()
            .unwrap()
            .extend(answers.iter().copied());
    }

    fn attempt(&self, invocation_id: &str, attempt: usize) -> Attempt {
        let plans = self.attempts.lock().unwrap();
        match plans.get(invocation_id) {
            Some(p) if !p.is_empty() => p[attempt.clamp(1, p.len()) - 1],
            _ => Attempt::Complete,
        }
    }

    fn next_discover(&self) -> Discover {
        self.discover
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Discover::Manifest)
    }
}

/// A response body fed from a channel: frames arrive as the handler produces them, and an error
/// breaks the connection off (the client sees an incomplete body).
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

fn fixed(status: u16, text: &str) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(Bytes::from(text.to_owned())));
    let mut resp = Response::new(ChannelBody(rx));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

async fn handle(script: Arc<Script>, req: Request<Incoming>) -> io::Result<Response<ChannelBody>> {
    let path = req.uri().path().to_owned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if req.method() == hyper::Method::GET && path == "/discover" {
        return Ok(match script.next_discover() {
            Discover::Manifest => {
                let services: Vec<String> =
                    script.services.iter().map(|s| format!("\"{s}\"")).collect();
                fixed(
                    200,
                    &format!(
                        "{{\"protocol\":[1,5],\"services\":[{}]}}",
                        services.join(",")
                    ),
                )
            }
            Discover::BadManifest => fixed(200, "{\"protocol\":[9,9],\"services\":[]}"),
            Discover::Status(code) => fixed(code, "not now"),
            Discover::BodyError => {
                let (tx, rx) = mpsc::channel(2);
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Bytes::from_static(b"{\"services\":"))).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let _ = tx.send(Err(io::Error::other("deployment crashed"))).await;
                });
                Response::new(ChannelBody(rx))
            }
        });
    }
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some("invoke"), Some(_service), Some(_handler), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(fixed(404, "no such path"));
    };
    if req.method() != hyper::Method::POST {
        return Ok(fixed(405, "POST only"));
    }
    let id = header("x-restate-invocation-id");
    let attempt: usize = header("x-restate-attempt").parse().unwrap_or(1);
    // Read the journal the invoker streams, then answer.
    let _journal = req.into_body().collect().await;
    let behaviour = script.attempt(&id, attempt);
    tokio::time::sleep(script.frame_delay).await;
    let last = match behaviour {
        Attempt::Refuse => return Err(io::Error::other("deployment refused the request")),
        Attempt::Status(code) => return Ok(fixed(code, "unavailable")),
        Attempt::Complete => "END",
        Attempt::Suspend => "SUSPEND",
        Attempt::FailRetryable => "FAIL retryable",
        Attempt::FailTerminal => "FAIL terminal",
    };
    let (tx, rx) = mpsc::channel(4);
    let (frames, delay) = (script.frames, script.frame_delay);
    tokio::spawn(async move {
        for i in 0..frames {
            if tx
                .send(Ok(Bytes::from(format!("frame {i}\n"))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(delay).await;
        }
        let _ = tx.send(Ok(Bytes::from(format!("{last}\n")))).await;
    });
    Ok(Response::new(ChannelBody(rx)))
}

/// A running deployment: its address and script. Dropping it stops accepting connections.
pub struct DeploymentServer {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
    accept: JoinHandle<()>,
}

impl Drop for DeploymentServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl DeploymentServer {
    /// Binds a loopback port and serves `script`.
    pub async fn start(script: Arc<Script>) -> io::Result<DeploymentServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let s = script.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { handle(s, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(DeploymentServer {
            addr,
            script,
            accept,
        })
    }
}

/// An address nobody listens on: connecting to it is refused.
pub async fn dead_endpoint() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub enum HttpError {
    /// The TCP connection could not be made.
    Connect(io::Error),
    /// The connection broke before response headers arrived.
    Request(hyper::Error),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connect: {e}"),
            HttpError::Request(e) => write!(f, "request: {e}"),
        }
    }
}

/// Sends one request on a fresh HTTP/1.1 connection and returns once headers arrive.
pub async fn send<B>(addr: SocketAddr, req: Request<B>) -> Result<Response<Incoming>, HttpError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(HttpError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(HttpError::Request)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(HttpError::Request)
}
