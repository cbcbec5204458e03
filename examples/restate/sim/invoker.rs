//! The invoker of one partition: a queue, concurrency slots, a node-wide token bucket, and
//! invocation tasks that call the deployment over HTTP, retry, suspend and fail.
//!
//! Spans, from the outside in (every metric of the invoker is derived from them):
//! - `invoker` (`invoker_id`, `partition_id`, `concurrency_limit`): the main loop's lifetime;
//! - `invoker_queue` (`service_name`, `dequeued`): enqueue to dequeue;
//! - `concurrency_slot`: the slot an invocation holds, across retries, until it ends;
//! - `invocation` (`service_name`, `deployment_id` once pinned): the invocation, all attempts;
//! - `invocation_task` (`attempt`, `deployment_id`, `status`, `transient`): one attempt;
//! - `invoker_http_request`: request start to response stream dropped; a `response headers`
//!   event (with `status_code`) marks the first byte.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::deployment;

/// Deployments known to the node: service name → the latest deployment serving it.
#[derive(Debug, Default, Clone)]
pub struct Registry(Arc<RwLock<HashMap<String, Deployment>>>);

/// A registered deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub addr: SocketAddr,
}

impl Registry {
    pub fn register(&self, service: &str, deployment: Deployment) {
        self.0
            .write()
            .unwrap()
            .insert(service.to_owned(), deployment);
    }

    fn latest(&self, service: &str) -> Option<Deployment> {
        self.0.read().unwrap().get(service).cloned()
    }
}

/// The node-wide token bucket that paces invocation starts.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<(f64, Instant)>,
    /// Tokens per second.
    pub rate: f64,
    pub burst: f64,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Arc<TokenBucket> {
        Arc::new(TokenBucket {
            state: Mutex::new((burst, Instant::now())),
            rate,
            burst,
        })
    }

    /// Takes one token: the balance after it (negative: throttled) and how long to wait.
    fn take(&self) -> (f64, Duration) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst) - 1.0;
        s.1 = now;
        let wait = if s.0 < 0.0 {
            Duration::from_secs_f64(-s.0 / self.rate)
        } else {
            Duration::ZERO
        };
        (s.0, wait)
    }
}

/// Settings of one invoker.
#[derive(Debug, Clone)]
pub struct Options {
    pub invoker_id: String,
    pub partition_id: u32,
    /// `None`: unlimited.
    pub concurrency_limit: Option<usize>,
    /// Eager state above this many bytes is truncated.
    pub state_size_limit: usize,
    /// Attempts per invocation before a retryable failure becomes final.
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub inactivity_timeout: Duration,
    /// How long the response is drained after the terminal frame.
    pub drain_timeout: Duration,
    /// Reading journal metadata and resolving the deployment.
    pub prepare_delay: Duration,
}

/// An invocation to run.
#[derive(Debug, Clone)]
pub struct Invoke {
    pub invocation_id: String,
    pub service: String,
    pub handler: String,
    /// Bytes of eager state to send along.
    pub state_size: usize,
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ended {
    Completed,
    Suspended,
    Failed,
    Yielded,
    Aborted,
    Paused,
}

/// What the invoker tells its owner (the partition processor; here: the scenario).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A failed attempt will be retried after the retry delay.
    RetryArmed(String),
    Ended(String, Ended),
}

enum Command {
    Invoke(Invoke),
    Abort(String),
    Pause(String),
    Shutdown(oneshot::Sender<()>),
}

/// How one attempt ended, as the task reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskEnd {
    Closed,
    Suspended,
    Failed { will_retry: bool },
    ShouldYield,
}

enum Internal {
    Pinned(String, u32, Deployment),
    TaskEnded(String, u32, TaskEnd),
    RetryFired(String),
}

/// Whether a failure is retried: retryable, and attempts left. The task uses it to label its
/// failure transient; the main loop to arm the retry timer. One rule, so they always agree.
fn will_retry(retryable: bool, attempt: u32, max_attempts: u32) -> bool {
    retryable && attempt < max_attempts
}

/// A handle to a running invoker.
pub struct Invoker {
    tx: mpsc::UnboundedSender<Command>,
}

impl Invoker {
    /// Starts the invoker's main loop.
    pub fn start(
        opts: Options,
        registry: Registry,
        bucket: Arc<TokenBucket>,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Invoker {
        let (tx, rx) = mpsc::unbounded_channel();
        let limit = opts.concurrency_limit.map_or(f64::INFINITY, |l| l as f64);
        let span = tracing::info_span!(
            parent: None,
            "invoker",
            invoker_id = %opts.invoker_id,
            partition_id = opts.partition_id,
            concurrency_limit = limit,
        );
        let main = MainLoop {
            slots: Arc::new(Semaphore::new(
                opts.concurrency_limit.unwrap_or(Semaphore::MAX_PERMITS),
            )),
            opts,
            registry,
            bucket,
            notices,
            queue: VecDeque::new(),
            invocations: HashMap::new(),
            tasks: JoinSet::new(),
        };
        tokio::spawn(main.run(rx).instrument(span));
        Invoker { tx }
    }

    pub fn invoke(&self, invoke: Invoke) {
        let _ = self.tx.send(Command::Invoke(invoke));
    }

    pub fn abort(&self, invocation_id: &str) {
        let _ = self.tx.send(Command::Abort(invocation_id.to_owned()));
    }

    pub fn pause(&self, invocation_id: &str) {
        let _ = self.tx.send(Command::Pause(invocation_id.to_owned()));
    }

    /// Stops taking new work, waits for every queued and running invocation to end, and stops.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Queued {
    invoke: Invoke,
    span: Span,
}

/// A concurrency slot: the permit and the span that shows it held. Dropped together.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _span: Span,
}

struct Invocation {
    invoke: Invoke,
    span: Span,
    attempt: u32,
    pinned: Option<Deployment>,
    /// The running attempt or the armed retry timer.
    work: Option<AbortHandle>,
    throttle: Duration,
    // Dropped last: the slot outlives the invocation's other state.
    _slot: Slot,
}

struct MainLoop {
    opts: Options,
    registry: Registry,
    bucket: Arc<TokenBucket>,
    notices: mpsc::UnboundedSender<Notice>,
    slots: Arc<Semaphore>,
    queue: VecDeque<Queued>,
    invocations: HashMap<String, Invocation>,
    tasks: JoinSet<()>,
}

impl MainLoop {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (itx, mut irx) = mpsc::unbounded_channel();
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            self.take_from_queue(&itx);
            if shutdown.is_some() && self.queue.is_empty() && self.invocations.is_empty() {
                break;
            }
            tokio::select! {
                cmd = commands.recv(), if shutdown.is_none() => match cmd {
                    Some(Command::Invoke(invoke)) => self.enqueue(invoke),
                    Some(Command::Abort(id)) => self.remove(&id, Ended::Aborted),
                    Some(Command::Pause(id)) => self.remove(&id, Ended::Paused),
                    Some(Command::Shutdown(ack)) => shutdown = Some(ack),
                    None => break,
                },
                Some(msg) = irx.recv() => self.handle(msg, &itx),
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
        // Every task and timer has ended or been aborted: wait until their spans are closed.
        while self.tasks.join_next().await.is_some() {}
        if let Some(ack) = shutdown {
            let _ = ack.send(());
        }
    }

    fn enqueue(&mut self, invoke: Invoke) {
        let span = tracing::info_span!(
            "invoker_queue",
            invocation_id = %invoke.invocation_id,
            service_name = %invoke.service,
            dequeued = Empty,
        );
        self.queue.push_back(Queued { invoke, span });
    }

    /// Takes items off the queue while slots are free.
    fn take_from_queue(&mut self, itx: &mpsc::UnboundedSender<Internal>) {
        while !self.queue.is_empty() {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                return;
            };
            let Queued { invoke, span } = self.queue.pop_front().expect("non-empty");
            span.record("dequeued", true);
            drop(span);
            let slot = Slot {
                _permit: permit,
                _span: tracing::info_span!("concurrency_slot"),
            };
            let (balance, throttle) = self.bucket.take();
            let span = tracing::info_span!(
                "invocation",
                invocation_id = %invoke.invocation_id,
                service_name = %invoke.service,
                deployment_id = Empty,
            );
            tracing::debug!(
                parent: &span,
                throttling_balance = balance,
                "concurrency slot acquired"
            );
            let id = invoke.invocation_id.clone();
            self.invocations.insert(
                id.clone(),
                Invocation {
                    invoke,
                    span,
                    attempt: 0,
                    pinned: None,
                    work: None,
                    throttle,
                    _slot: slot,
                },
            );
            self.start_attempt(&id, itx);
        }
    }

    fn start_attempt(&mut self, id: &str, itx: &mpsc::UnboundedSender<Internal>) {
        let Some(inv) = self.invocations.get_mut(id) else {
            return;
        };
        inv.attempt += 1;
        let span = tracing::info_span!(
            parent: &inv.span,
            "invocation_task",
            attempt = inv.attempt,
            deployment_id = Empty,
            status = Empty,
            transient = Empty,
        );
        let task = Task {
            invoke: inv.invoke.clone(),
            attempt: inv.attempt,
            pinned: inv.pinned.clone(),
            throttle: std::mem::take(&mut inv.throttle),
            opts: self.opts.clone(),
            registry: self.registry.clone(),
            itx: itx.clone(),
        };
        inv.work = Some(self.tasks.spawn(task.run().instrument(span)));
    }

    fn remove(&mut self, id: &str, how: Ended) {
        if let Some(pos) = self.queue.iter().position(|q| q.invoke.invocation_id == id) {
            self.queue.remove(pos);
            let _ = self.notices.send(Notice::Ended(id.to_owned(), how));
        } else if let Some(inv) = self.invocations.remove(id) {
            if let Some(work) = &inv.work {
                work.abort();
            }
            let _ = self.notices.send(Notice::Ended(id.to_owned(), how));
        }
    }

    fn handle(&mut self, msg: Internal, itx: &mpsc::UnboundedSender<Internal>) {
        match msg {
            Internal::Pinned(id, attempt, deployment) => {
                if let Some(inv) = self.invocations.get_mut(&id) {
                    if inv.attempt == attempt && inv.pinned.is_none() {
                        inv.span.record("deployment_id", deployment.id.as_str());
                        inv.pinned = Some(deployment);
                    }
                }
            }
            Internal::TaskEnded(id, attempt, end) => {
                if self.invocations.get(&id).map(|i| i.attempt) != Some(attempt) {
                    return; // aborted or paused meanwhile
                }
                match end {
                    TaskEnd::Closed => self.remove(&id, Ended::Completed),
                    TaskEnd::Suspended => self.remove(&id, Ended::Suspended),
                    TaskEnd::ShouldYield => self.remove(&id, Ended::Yielded),
                    TaskEnd::Failed { will_retry: false } => self.remove(&id, Ended::Failed),
                    TaskEnd::Failed { will_retry: true } => {
                        let delay = self.opts.retry_delay;
                        let tx = itx.clone();
                        let fire = id.clone();
                        let timer = self.tasks.spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(Internal::RetryFired(fire));
                        });
                        if let Some(inv) = self.invocations.get_mut(&id) {
                            inv.work = Some(timer);
                        }
                        let _ = self.notices.send(Notice::RetryArmed(id));
                    }
                }
            }
            Internal::RetryFired(id) => self.start_attempt(&id, itx),
        }
    }
}

struct Task {
    invoke: Invoke,
    attempt: u32,
    pinned: Option<Deployment>,
    throttle: Duration,
    opts: Options,
    registry: Registry,
    itx: mpsc::UnboundedSender<Internal>,
}

impl Task {
    async fn run(self) {
        let end = self.attempt().await;
        let span = Span::current();
        match end {
            TaskEnd::Closed => {
                span.record("status", "completed");
            }
            TaskEnd::Suspended => {
                span.record("status", "suspended");
            }
            TaskEnd::Failed { will_retry } => {
                span.record("status", "failed");
                span.record("transient", will_retry);
            }
            TaskEnd::ShouldYield => {}
        }
        let id = self.invoke.invocation_id.clone();
        let _ = self.itx.send(Internal::TaskEnded(id, self.attempt, end));
    }

    fn failed(&self, retryable: bool) -> TaskEnd {
        TaskEnd::Failed {
            will_retry: will_retry(retryable, self.attempt, self.opts.max_attempts),
        }
    }

    async fn attempt(&self) -> TaskEnd {
        if !self.throttle.is_zero() {
            tokio::time::sleep(self.throttle).await;
        }
        // Read journal metadata, resolve the deployment (pinned, or the latest).
        tokio::time::sleep(self.opts.prepare_delay).await;
        let Some(deployment) = self
            .pinned
            .clone()
            .or_else(|| self.registry.latest(&self.invoke.service))
        else {
            tracing::warn!(service = %self.invoke.service, "no deployment for service");
            return self.failed(true);
        };
        Span::current().record("deployment_id", deployment.id.as_str());
        let _ = self.itx.send(Internal::Pinned(
            self.invoke.invocation_id.clone(),
            self.attempt,
            deployment.clone(),
        ));
        let mut state = self.invoke.state_size;
        if state > self.opts.state_size_limit {
            tracing::info!(
                state_size = state,
                limit = self.opts.state_size_limit,
                "eager state truncated"
            );
            state = self.opts.state_size_limit;
        }
        let request = tracing::info_span!("invoker_http_request", url = Empty);
        self.http(deployment.addr, state).instrument(request).await
    }

    /// POST /invoke/{service}/{handler}, then read body frames until a terminal one.
    async fn http(&self, addr: SocketAddr, state: usize) -> TaskEnd {
        let path = format!("/invoke/{}/{}", self.invoke.service, self.invoke.handler);
        Span::current().record("url", path.as_str());
        let journal = Bytes::from(vec![b'j'; 64 + state]);
        let req = Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header("x-restate-invocation-id", &self.invoke.invocation_id)
            .header("x-restate-attempt", self.attempt.to_string())
            .body(Full::new(journal))
            .expect("a valid request");
        let timeout = self.opts.inactivity_timeout;
        let resp = match tokio::time::timeout(timeout, deployment::send(addr, req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                tracing::warn!(cause = %e, "request to deployment failed");
                return self.failed(true);
            }
            Err(_) => {
                tracing::warn!("no response headers before the inactivity timeout");
                return self.failed(true);
            }
        };
        let status = resp.status().as_u16();
        tracing::debug!(status_code = status, "response headers");
        if !resp.status().is_success() {
            // 502/504: the service is unavailable; every non-2xx is retried.
            return self.failed(true);
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let end = loop {
            match tokio::time::timeout(timeout, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        buf.extend_from_slice(data);
                    }
                    if let Some(end) = terminal(&buf) {
                        break self.end_of(end);
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(cause = %e, "response stream broke");
                    break self.failed(true);
                }
                Ok(None) => break self.failed(true),
                Err(_) => {
                    tracing::warn!("inactivity timeout");
                    break self.failed(true);
                }
            }
        };
        // Drain what is left of the response, for a bounded time.
        let _ = tokio::time::timeout(self.opts.drain_timeout, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
        end
    }

    fn end_of(&self, line: &str) -> TaskEnd {
        match line {
            "END" => TaskEnd::Closed,
            "SUSPEND" => TaskEnd::Suspended,
            "YIELD" => TaskEnd::ShouldYield,
            "FAIL terminal" => self.failed(false),
            _ => self.failed(true),
        }
    }
}

/// The terminal line of a body, once it has arrived.
fn terminal(buf: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(buf).ok()?;
    text.lines()
        .find(|l| matches!(*l, "END" | "SUSPEND" | "YIELD") || l.starts_with("FAIL "))
}
