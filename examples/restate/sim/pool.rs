//! The node-to-node connection pool: swimlanes, peers with generational ids, cache hits and
//! misses, shared connects, handshakes, send permits under backpressure, incoming and loopback
//! connections, and reactors that drain and close.
//!
//! Connections are real TCP connections on loopback with a line protocol: the dialer sends
//! `HELLO {swimlane} {node}`, the acceptor answers `WELCOME {node}` (or `REJECT`), then either
//! side sends `REQ {id} {payload}` and gets `RSP {id} ok|err`.
//!
//! Spans (every pool metric is derived from them):
//! - `rpc` (`swimlane`; fails through `#[instrument(err)]`): one RPC under its timeout;
//! - `get_or_connect` (`swimlane`, `cache` once known): the connection lookup;
//! - `connect` (`swimlane`, `peer_name`): one shared connect attempt (joiners wait on it);
//! - `connection` (`direction`, `swimlane`, `peer_name`): a connection's lifetime;
//! - `pool_registration` (`swimlane`): while a shared connection is registered in the pool;
//! - `send_permit` (connection's labels, `permit` once obtained): waiting for a send slot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::field::Empty;
use tracing::{Instrument, Span, instrument};

/// Why an RPC or a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    UnknownNode(String),
    Throttled(String),
    Handshake(String),
    ConnectionClosed,
    Timeout,
    Remote,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::UnknownNode(n) => write!(f, "unknown node {n}"),
            NetError::Throttled(n) => write!(f, "connecting to {n} failed recently; throttled"),
            NetError::Handshake(e) => write!(f, "handshake failed: {e}"),
            NetError::ConnectionClosed => f.write_str("connection closed"),
            NetError::Timeout => f.write_str("timed out"),
            NetError::Remote => f.write_str("the peer answered with an error"),
        }
    }
}

impl std::error::Error for NetError {}

/// Timings of the pool (restate's are seconds; scenarios scale them down).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Draining: at most this long waiting for replies still in flight.
    pub drain_timeout: Duration,
    /// Then at most this long flushing egress.
    pub egress_timeout: Duration,
    /// A destination whose connect failed is not retried before this.
    pub throttle: Duration,
    /// Send slots per connection: callers beyond them wait for a permit.
    pub channel_capacity: usize,
    /// Time the reactor takes to put one message on the wire (makes backpressure visible).
    pub egress_delay: Duration,
}

struct Outgoing {
    payload: String,
    reply: oneshot::Sender<Result<(), NetError>>,
}

/// One connection, outgoing, incoming or loopback.
pub struct Connection {
    id: u64,
    pub peer: String,
    pub swimlane: &'static str,
    pub direction: &'static str,
    tx: mpsc::Sender<Outgoing>,
    drain: watch::Sender<bool>,
}

impl Connection {
    /// Sends one message and waits for its reply.
    async fn call(&self, payload: &str) -> Result<(), NetError> {
        let span = tracing::info_span!(
            "send_permit",
            direction = self.direction,
            swimlane = self.swimlane,
            peer_name = %self.peer,
            permit = Empty,
        );
        let permit = self
            .tx
            .reserve()
            .instrument(span.clone())
            .await
            .map_err(|_| NetError::ConnectionClosed)?;
        span.record("permit", true);
        drop(span);
        let (reply, rx) = oneshot::channel();
        permit.send(Outgoing {
            payload: payload.to_owned(),
            reply,
        });
        rx.await.map_err(|_| NetError::ConnectionClosed)?
    }

    fn start_draining(&self) {
        self.drain.send_replace(true);
    }
}

struct Registered {
    conn: Arc<Connection>,
    /// Open while the connection is registered: the `pool.connections.active` gauge.
    _registration: Span,
}

type ConnectResult = Option<Result<Arc<Connection>, NetError>>;

struct Inner {
    local: String,
    opts: PoolOptions,
    /// Node metadata: plain node name → (generational id, address).
    nodes: Mutex<HashMap<String, (String, SocketAddr)>>,
    registered: Mutex<HashMap<(String, &'static str), Registered>>,
    connecting: Mutex<HashMap<(String, &'static str), watch::Receiver<ConnectResult>>>,
    failed: Mutex<HashMap<String, Instant>>,
    loopbacks: Mutex<HashMap<&'static str, Arc<Connection>>>,
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    reactors: Mutex<JoinSet<()>>,
    acceptor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    next_id: AtomicU64,
}

/// The pool of one node.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool for the node `local` (a generational id like `N1:1`).
    pub fn new(local: &str, opts: PoolOptions) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                local: local.to_owned(),
                opts,
                nodes: Mutex::new(HashMap::new()),
                registered: Mutex::new(HashMap::new()),
                connecting: Mutex::new(HashMap::new()),
                failed: Mutex::new(HashMap::new()),
                loopbacks: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                reactors: Mutex::new(JoinSet::new()),
                acceptor: Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Adds a node to the metadata the pool resolves names with.
    pub fn add_node(&self, node: &str, generational_id: &str, addr: SocketAddr) {
        self.inner
            .nodes
            .lock()
            .unwrap()
            .insert(node.to_owned(), (generational_id.to_owned(), addr));
    }

    /// Accepts incoming connections on `listener` until the pool shuts down.
    pub fn accept(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        *self.inner.acceptor.lock().unwrap() = Some(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = inner.clone();
                tokio::spawn(async move {
                    let _ = accept_one(inner, stream).await;
                });
            }
        }));
    }

    /// One RPC to `node` on `swimlane`, under an optional timeout.
    #[instrument(name = "rpc", skip_all, fields(swimlane = swimlane, peer = node), err)]
    pub async fn rpc(
        &self,
        node: &str,
        swimlane: &'static str,
        payload: &str,
        timeout: Option<Duration>,
    ) -> Result<(), NetError> {
        let call = async {
            let conn = self.get_or_connect(node, swimlane).await?;
            conn.call(payload).await
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| NetError::Timeout)?,
            None => call.await,
        }
    }

    /// A connection to `node` on `swimlane`: pooled or loopback (hit) or a new shared connect
    /// (miss).
    #[instrument(name = "get_or_connect", skip_all, fields(swimlane = swimlane, peer = node, cache = Empty), err)]
    pub async fn get_or_connect(
        &self,
        node: &str,
        swimlane: &'static str,
    ) -> Result<Arc<Connection>, NetError> {
        let inner = &self.inner;
        let (peer, addr) = inner
            .nodes
            .lock()
            .unwrap()
            .get(node)
            .cloned()
            .ok_or_else(|| NetError::UnknownNode(node.to_owned()))?;
        let span = Span::current();
        if peer == inner.local {
            span.record("cache", "hit");
            return Ok(self.loopback(swimlane));
        }
        let key = (peer.clone(), swimlane);
        if let Some(r) = inner.registered.lock().unwrap().get(&key) {
            span.record("cache", "hit");
            return Ok(r.conn.clone());
        }
        span.record("cache", "miss");
        let mut rx = {
            let mut connecting = inner.connecting.lock().unwrap();
            match connecting.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let throttled = inner
                        .failed
                        .lock()
                        .unwrap()
                        .get(&peer)
                        .is_some_and(|until| Instant::now() < *until);
                    if throttled {
                        return Err(NetError::Throttled(peer));
                    }
                    let (tx, rx) = watch::channel(None);
                    connecting.insert(key.clone(), rx.clone());
                    tokio::spawn(shared_connect(inner.clone(), key, addr, tx));
                    rx
                }
            }
        };
        let result = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| NetError::ConnectionClosed)?;
        result.clone().expect("checked by wait_for")
    }

    fn loopback(&self, swimlane: &'static str) -> Arc<Connection> {
        let mut loopbacks = self.inner.loopbacks.lock().unwrap();
        loopbacks
            .entry(swimlane)
            .or_insert_with(|| start_loopback(&self.inner, swimlane))
            .clone()
    }

    /// Stops accepting, drains every connection, and waits for every reactor to exit.
    pub async fn shutdown(&self) {
        if let Some(acceptor) = self.inner.acceptor.lock().unwrap().take() {
            acceptor.abort();
        }
        loop {
            let conns: Vec<Arc<Connection>> =
                self.inner.live.lock().unwrap().values().cloned().collect();
            for c in conns {
                c.start_draining();
            }
            let mut reactors = std::mem::take(&mut *self.inner.reactors.lock().unwrap());
            if reactors.is_empty() {
                break;
            }
            while reactors.join_next().await.is_some() {}
        }
        self.inner.loopbacks.lock().unwrap().clear();
    }

    /// Drains one registered connection, chosen by `pick` (an idle connection closing).
    pub fn drain_one(&self, pick: u64) {
        let registered = self.inner.registered.lock().unwrap();
        if registered.is_empty() {
            return;
        }
        let n = (pick % registered.len() as u64) as usize;
        if let Some(r) = registered.values().nth(n) {
            r.conn.start_draining();
        }
    }

    /// Live connections (for the scenario's checks).
    pub fn live_connections(&self) -> usize {
        self.inner.live.lock().unwrap().len()
    }
}

/// One shared connect attempt: runs in its own task, so callers that give up do not cancel
/// it for those that wait.
async fn shared_connect(
    inner: Arc<Inner>,
    key: (String, &'static str),
    addr: SocketAddr,
    tx: watch::Sender<ConnectResult>,
) {
    let result = handshake(inner.clone(), key.0.clone(), key.1, addr).await;
    if result.is_err() {
        let until = Instant::now() + inner.opts.throttle;
        inner.failed.lock().unwrap().insert(key.0.clone(), until);
    }
    inner.connecting.lock().unwrap().remove(&key);
    tx.send_replace(Some(result));
}

/// Transport connect, Hello/Welcome, validation, reactor start.
#[instrument(
    name = "connect",
    parent = None,
    skip_all,
    fields(swimlane = swimlane, peer_name = %peer),
    err
)]
async fn handshake(
    inner: Arc<Inner>,
    peer: String,
    swimlane: &'static str,
    addr: SocketAddr,
) -> Result<Arc<Connection>, NetError> {
    let opts = &inner.opts;
    let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| NetError::Handshake("connect timed out".into()))?
        .map_err(|e| NetError::Handshake(e.to_string()))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(format!("HELLO {swimlane} {}\n", inner.local).as_bytes())
        .await
        .map_err(|e| NetError::Handshake(e.to_string()))?;
    let mut line = String::new();
    tokio::time::timeout(opts.handshake_timeout, read.read_line(&mut line))
        .await
        .map_err(|_| NetError::Handshake("no Welcome in time".into()))?
        .map_err(|e| NetError::Handshake(e.to_string()))?;
    match line.trim().strip_prefix("WELCOME ") {
        Some(id) if id == peer => {}
        Some(id) => return Err(NetError::Handshake(format!("expected {peer}, got {id}"))),
        None => return Err(NetError::Handshake("rejected".into())),
    }
    Ok(start_reactor(
        &inner, peer, swimlane, "outgoing", read, write,
    ))
}

/// The acceptor's side of a handshake, then the reactor.
async fn accept_one(inner: Arc<Inner>, stream: TcpStream) -> Result<(), NetError> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    tokio::time::timeout(inner.opts.handshake_timeout, read.read_line(&mut line))
        .await
        .map_err(|_| NetError::Timeout)?
        .map_err(|_| NetError::ConnectionClosed)?;
    let mut words = line.split_whitespace();
    let (Some("HELLO"), Some(lane), Some(peer)) = (words.next(), words.next(), words.next()) else {
        return Err(NetError::Handshake("bad hello".into()));
    };
    let Some(swimlane) = swimlane_named(lane) else {
        return Err(NetError::Handshake(format!("unknown swimlane {lane}")));
    };
    let peer = peer.to_owned();
    write
        .write_all(format!("WELCOME {}\n", inner.local).as_bytes())
        .await
        .map_err(|_| NetError::ConnectionClosed)?;
    start_reactor(&inner, peer, swimlane, "incoming", read, write);
    Ok(())
}

fn swimlane_named(name: &str) -> Option<&'static str> {
    super::SWIMLANES.iter().copied().find(|s| *s == name)
}

fn new_connection(
    inner: &Arc<Inner>,
    peer: String,
    swimlane: &'static str,
    direction: &'static str,
) -> (
    Arc<Connection>,
    mpsc::Receiver<Outgoing>,
    watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel(inner.opts.channel_capacity);
    let (drain, drain_rx) = watch::channel(false);
    let conn = Arc::new(Connection {
        id: inner.next_id.fetch_add(1, Ordering::Relaxed),
        peer,
        swimlane,
        direction,
        tx,
        drain,
    });
    inner.live.lock().unwrap().insert(conn.id, conn.clone());
    (conn, rx, drain_rx)
}

/// Starts a network connection's reactor and registers the connection in the pool (replacing,
/// and draining, any connection registered for the same peer and swimlane).
fn start_reactor(
    inner: &Arc<Inner>,
    peer: String,
    swimlane: &'static str,
    direction: &'static str,
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
) -> Arc<Connection> {
    let span = tracing::info_span!(
        parent: None,
        "connection",
        direction,
        swimlane,
        peer_name = %peer,
    );
    let (conn, rx, drain_rx) = new_connection(inner, peer.clone(), swimlane, direction);
    let registration = tracing::info_span!(parent: &span, "pool_registration", swimlane);
    let replaced = inner.registered.lock().unwrap().insert(
        (peer, swimlane),
        Registered {
            conn: conn.clone(),
            _registration: registration,
        },
    );
    if let Some(old) = replaced {
        old.conn.start_draining();
    }
    let reactor = Reactor {
        inner: inner.clone(),
        conn: conn.clone(),
        rx,
        drain: drain_rx,
        pending: HashMap::new(),
        next_req: 0,
    };
    inner
        .reactors
        .lock()
        .unwrap()
        .spawn(reactor.run(read, write).instrument(span));
    conn
}

/// A loopback connection: messages to the local node, answered in-process.
fn start_loopback(inner: &Arc<Inner>, swimlane: &'static str) -> Arc<Connection> {
    let span = tracing::info_span!(
        parent: None,
        "connection",
        direction = "loopback",
        swimlane,
        peer_name = %inner.local,
    );
    let (conn, mut rx, mut drain) =
        new_connection(inner, inner.local.clone(), swimlane, "loopback");
    let id = conn.id;
    let owner = inner.clone();
    let reactor = async move {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => {
                        let _ = m.reply.send(reply_to(&m.payload));
                    }
                    None => break,
                },
                _ = draining(&mut drain) => break,
            }
        }
        rx.close();
        while let Ok(m) = rx.try_recv() {
            let _ = m.reply.send(reply_to(&m.payload));
        }
        owner.live.lock().unwrap().remove(&id);
    };
    inner
        .reactors
        .lock()
        .unwrap()
        .spawn(reactor.instrument(span));
    conn
}

fn reply_to(payload: &str) -> Result<(), NetError> {
    if payload == "fail" {
        Err(NetError::Remote)
    } else {
        Ok(())
    }
}

/// Resolves once the connection is told to drain.
async fn draining(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}

struct Reactor {
    inner: Arc<Inner>,
    conn: Arc<Connection>,
    rx: mpsc::Receiver<Outgoing>,
    drain: watch::Receiver<bool>,
    pending: HashMap<u64, oneshot::Sender<Result<(), NetError>>>,
    next_req: u64,
}

impl Reactor {
    async fn send(&mut self, write: &mut OwnedWriteHalf, m: Outgoing) -> std::io::Result<()> {
        if !self.inner.opts.egress_delay.is_zero() {
            tokio::time::sleep(self.inner.opts.egress_delay).await;
        }
        self.next_req += 1;
        let id = self.next_req;
        self.pending.insert(id, m.reply);
        write
            .write_all(format!("REQ {id} {}\n", m.payload).as_bytes())
            .await
    }

    /// Handles one line from the peer: a reply to us, or a request to answer.
    async fn receive(&mut self, write: &mut OwnedWriteHalf, line: &str) -> std::io::Result<()> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("RSP"), Some(id), result) => {
                if let Some(reply) = id.parse().ok().and_then(|id| self.pending.remove(&id)) {
                    let _ = reply.send(match result {
                        Some("ok") => Ok(()),
                        _ => Err(NetError::Remote),
                    });
                }
                Ok(())
            }
            (Some("REQ"), Some(id), payload) => {
                let result = if reply_to(payload.unwrap_or("")).is_ok() {
                    "ok"
                } else {
                    "err"
                };
                write
                    .write_all(format!("RSP {id} {result}\n").as_bytes())
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn run(mut self, read: BufReader<OwnedReadHalf>, mut write: OwnedWriteHalf) {
        let mut lines = read.lines();
        // Active.
        let peer_gone = loop {
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(m) = msg else { break false };
                    if self.send(&mut write, m).await.is_err() {
                        break true;
                    }
                }
                line = lines.next_line() => match line {
                    Ok(Some(l)) => {
                        if self.receive(&mut write, &l).await.is_err() {
                            break true;
                        }
                    }
                    _ => break true,
                },
                _ = draining(&mut self.drain) => break false,
            }
        };
        // Draining: deregistered, no new messages; replies in flight are awaited (bounded),
        // then egress is flushed (bounded), then the connection drops.
        self.deregister();
        self.rx.close();
        if !peer_gone {
            let opts = self.inner.opts.clone();
            let _ = tokio::time::timeout(opts.drain_timeout, async {
                let mut rx_done = false;
                while !(rx_done && self.pending.is_empty()) {
                    tokio::select! {
                        msg = self.rx.recv(), if !rx_done => match msg {
                            Some(m) => {
                                if self.send(&mut write, m).await.is_err() {
                                    return;
                                }
                            }
                            None => rx_done = true,
                        },
                        line = lines.next_line() => match line {
                            Ok(Some(l)) => {
                                if self.receive(&mut write, &l).await.is_err() {
                                    return;
                                }
                            }
                            _ => return,
                        },
                    }
                }
            })
            .await;
            let _ = tokio::time::timeout(opts.egress_timeout, write.shutdown()).await;
        }
        // Replies still pending fail with ConnectionClosed when `pending` drops.
        self.inner.live.lock().unwrap().remove(&self.conn.id);
    }

    fn deregister(&self) {
        let key = (self.conn.peer.clone(), self.conn.swimlane);
        let mut registered = self.inner.registered.lock().unwrap();
        if registered
            .get(&key)
            .is_some_and(|r| r.conn.id == self.conn.id)
        {
            registered.remove(&key);
        }
    }
}

/// A simulated remote node: accepts connections (answering `WELCOME` or `REJECT`), answers
/// requests after a delay, and can dial our node itself (incoming connections for us).
pub struct PeerNode {
    pub id: String,
    pub addr: SocketAddr,
    behaviour: Arc<PeerBehaviour>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for PeerNode {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How a peer answers.
#[derive(Debug)]
pub struct PeerBehaviour {
    pub handshake_delay: Duration,
    pub reply_delay: Duration,
    /// Replies to the payload `slow` take this long.
    pub slow_delay: Duration,
    /// The next this many handshakes are rejected.
    pub reject_handshakes: AtomicU32,
}

impl PeerNode {
    pub async fn start(id: &str, behaviour: PeerBehaviour) -> std::io::Result<PeerNode> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let behaviour = Arc::new(behaviour);
        let (b, me) = (behaviour.clone(), id.to_owned());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_peer(stream, me.clone(), b.clone()));
            }
        });
        Ok(PeerNode {
            id: id.to_owned(),
            addr,
            behaviour,
            accept,
        })
    }

    pub fn reject_next_handshakes(&self, n: u32) {
        self.behaviour.reject_handshakes.store(n, Ordering::SeqCst);
    }

    /// Dials `target` on `swimlane`, sends `requests` requests, waits for their replies, then
    /// closes the connection (an incoming connection on the target's side).
    pub async fn dial(
        &self,
        target: SocketAddr,
        swimlane: &str,
        requests: u32,
    ) -> std::io::Result<()> {
        let stream = TcpStream::connect(target).await?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(format!("HELLO {swimlane} {}\n", self.id).as_bytes())
            .await?;
        match lines.next_line().await? {
            Some(l) if l.starts_with("WELCOME ") => {}
            _ => return Err(std::io::Error::other("not welcome")),
        }
        for i in 0..requests {
            write
                .write_all(format!("REQ {i} ping\n").as_bytes())
                .await?;
            tokio::time::sleep(self.behaviour.reply_delay).await;
        }
        let mut replies = 0;
        while replies < requests {
            match lines.next_line().await? {
                Some(l) if l.starts_with("RSP ") => replies += 1,
                Some(_) => {}
                None => break,
            }
        }
        write.shutdown().await
    }
}

async fn serve_peer(stream: TcpStream, me: String, b: Arc<PeerBehaviour>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let Ok(Some(_hello)) = lines.next_line().await else {
        return;
    };
    let rejected = b
        .reject_handshakes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    tokio::time::sleep(b.handshake_delay).await;
    if rejected {
        let _ = write.write_all(b"REJECT\n").await;
        return;
    }
    if write
        .write_all(format!("WELCOME {me}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    // Replies are written by one task, in the order their delays end.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        if let (Some("REQ"), Some(id), payload) = (words.next(), words.next(), words.next()) {
            let delay = match payload {
                Some("slow") => b.slow_delay,
                _ => b.reply_delay,
            };
            let result = if payload == Some("fail") { "err" } else { "ok" };
            let (tx, line) = (tx.clone(), format!("RSP {id} {result}\n"));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(line);
            });
        }
    }
    drop(tx);
    let _ = writer.await;
}
