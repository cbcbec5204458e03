//! A small, faithful simulation of restate's invoker, connection pool and deployment discovery.
//!
//! Real tokio tasks, timers and loopback sockets; spans, `Span::record` and events only: every
//! metric comes from the layer configured in `spanmetrics.rs`. Two workloads run on it:
//! [`standard`], a fixed scenario with known outcomes (`--once` and the tests), and [`live`],
//! an endless randomized one (the default of `cargo run --example restate`).
// Integration tests include this module and use only part of it.
#![allow(dead_code)]

pub mod deployment;
pub mod discovery;
pub mod invoker;
pub mod pool;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use deployment::{Attempt, DeploymentServer, Discover, Script};
use discovery::RetryPolicy;
use invoker::{Ended, Invoke, Invoker, Notice, Registry, TokenBucket};
use pool::{PeerBehaviour, PeerNode, Pool, PoolOptions};

/// The pool's swimlanes.
pub const SWIMLANES: [&str; 6] = [
    "GENERAL",
    "GOSSIP",
    "BIFROST_DATA",
    "INGRESS_DATA",
    "BIFROST_READS",
    "DATAFUSION",
];

/// A small deterministic generator (SplitMix64): the live workload's dice.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The simulation's pace. restate's own timeouts are seconds; these are scaled down.
#[derive(Debug, Clone)]
pub struct Timings {
    pub frame_delay: Duration,
    pub frames: u32,
    pub prepare_delay: Duration,
    pub retry_delay: Duration,
    pub discovery_base: Duration,
    pub handshake_delay: Duration,
    pub reply_delay: Duration,
    pub slow_delay: Duration,
    pub egress_delay: Duration,
    pub throttle: Duration,
    pub drain_timeout: Duration,
}

impl Timings {
    /// Milliseconds: the standard scenario runs in well under a second.
    pub fn fast() -> Timings {
        Timings {
            frame_delay: Duration::from_millis(3),
            frames: 3,
            prepare_delay: Duration::from_millis(1),
            retry_delay: Duration::from_millis(40),
            discovery_base: Duration::from_millis(5),
            handshake_delay: Duration::from_millis(20),
            reply_delay: Duration::from_millis(2),
            slow_delay: Duration::from_millis(200),
            egress_delay: Duration::from_millis(2),
            throttle: Duration::from_millis(60),
            drain_timeout: Duration::from_millis(300),
        }
    }

    /// Closer to production: tens of milliseconds per call, restate's discovery backoff.
    pub fn realistic() -> Timings {
        Timings {
            frame_delay: Duration::from_millis(15),
            frames: 4,
            prepare_delay: Duration::from_millis(2),
            retry_delay: Duration::from_millis(250),
            discovery_base: Duration::from_millis(100),
            handshake_delay: Duration::from_millis(15),
            reply_delay: Duration::from_millis(4),
            slow_delay: Duration::from_millis(400),
            egress_delay: Duration::from_millis(1),
            throttle: Duration::from_millis(500),
            drain_timeout: Duration::from_millis(500),
        }
    }
}

fn pool_options(t: &Timings) -> PoolOptions {
    PoolOptions {
        connect_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(3),
        drain_timeout: t.drain_timeout,
        egress_timeout: Duration::from_millis(100),
        throttle: t.throttle,
        channel_capacity: 2,
        egress_delay: t.egress_delay,
    }
}

fn invoker_options(t: &Timings, partition: u32, limit: Option<usize>) -> invoker::Options {
    invoker::Options {
        invoker_id: format!("inv-{partition}"),
        partition_id: partition,
        concurrency_limit: limit,
        state_size_limit: 1024,
        max_attempts: 3,
        retry_delay: t.retry_delay,
        inactivity_timeout: Duration::from_secs(60),
        drain_timeout: Duration::from_secs(5),
        prepare_delay: t.prepare_delay,
    }
}

fn peer(t: &Timings) -> PeerBehaviour {
    PeerBehaviour {
        handshake_delay: t.handshake_delay,
        reply_delay: t.reply_delay,
        slow_delay: t.slow_delay,
        reject_handshakes: AtomicU32::new(0),
    }
}

/// Everything a workload runs against.
struct Env {
    deployments: HashMap<&'static str, DeploymentServer>,
    dead: SocketAddr,
    registry: Registry,
    invokers: Vec<Invoker>,
    notices: mpsc::UnboundedReceiver<Notice>,
    pool: Pool,
    local_addr: SocketAddr,
    peers: HashMap<&'static str, PeerNode>,
}

impl Env {
    /// `limit`: the concurrency limit of partition 0 (partition 1 is unlimited).
    async fn start(t: &Timings, limit: usize) -> std::io::Result<Env> {
        let mut deployments = HashMap::new();
        for (name, services) in [
            ("dp_greeter", &["Greeter"][..]),
            ("dp_cart", &["Cart"]),
            ("dp_missing", &["Missing"]),
            ("dp_flaky", &["Flaky"]),
            ("dp_legacy", &["Legacy"]),
        ] {
            let script = Script::new(services, t.frames, t.frame_delay);
            deployments.insert(name, DeploymentServer::start(script).await?);
        }
        let registry = Registry::default();
        let bucket = TokenBucket::new(500.0, 4.0);
        let (ntx, notices) = mpsc::unbounded_channel();
        let invokers = vec![
            Invoker::start(
                invoker_options(t, 0, Some(limit)),
                registry.clone(),
                bucket.clone(),
                ntx.clone(),
            ),
            Invoker::start(invoker_options(t, 1, None), registry.clone(), bucket, ntx),
        ];
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local_addr = listener.local_addr()?;
        let pool = Pool::new("N1:1", pool_options(t));
        pool.accept(listener);
        pool.add_node("N1", "N1:1", local_addr);
        let mut peers = HashMap::new();
        for (node, id) in [("N2", "N2:3"), ("N3", "N3:1")] {
            let p = PeerNode::start(id, peer(t)).await?;
            pool.add_node(node, id, p.addr);
            peers.insert(node, p);
        }
        let dead = deployment::dead_endpoint().await?;
        // N4 is down: its address refuses connections.
        pool.add_node("N4", "N4:2", dead);
        Ok(Env {
            deployments,
            dead,
            registry,
            invokers,
            notices,
            pool,
            local_addr,
            peers,
        })
    }

    fn script(&self, deployment: &str) -> &Arc<Script> {
        &self.deployments[deployment].script
    }

    /// Discovers a deployment and registers its services when the manifest is valid.
    async fn discover(&self, deployment: &'static str, policy: RetryPolicy, seed: u64) {
        let addr = self.deployments[deployment].addr;
        self.discover_at(deployment, addr, policy, seed).await
    }

    async fn discover_at(&self, id: &str, addr: SocketAddr, policy: RetryPolicy, seed: u64) {
        let (_, manifest) = discovery::discover(addr, policy, seed).await;
        for service in manifest.iter().flat_map(|m| &m.services) {
            self.registry.register(
                service,
                invoker::Deployment {
                    id: id.to_owned(),
                    addr,
                },
            );
        }
    }

    async fn shutdown(self) {
        for inv in self.invokers {
            inv.shutdown().await;
        }
        self.pool.shutdown().await;
    }
}

/// What a workload did, as seen from the outside (the metrics tell the rest).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub ended: HashMap<String, Ended>,
    pub rpc_ok: u64,
    pub rpc_err: u64,
}

fn invoke(id: &str, service: &str, state_size: usize) -> Invoke {
    Invoke {
        invocation_id: id.to_owned(),
        service: service.to_owned(),
        handler: "run".to_owned(),
        state_size,
    }
}

/// The fixed scenario: discoveries with known failure sequences, ten invocations with known
/// outcomes on two partitions, and RPCs that hit, miss, share connects, fail handshakes, get
/// throttled, time out, wait for permits, plus incoming connections, one replacing a pooled
/// connection. Everything drains at the end. The tests assert its exact metrics.
pub async fn standard(t: &Timings) -> std::io::Result<Report> {
    let mut env = Env::start(t, 2).await?;
    let policy = RetryPolicy {
        base: t.discovery_base,
        max_retries: 4,
    };

    // Discovery: 3 successes (one with a bad manifest), 1 permanent failure, 2 exhausted.
    env.script("dp_greeter")
        .discover(&[Discover::Status(503), Discover::Status(429)]);
    env.script("dp_cart").discover(&[Discover::BodyError]);
    env.script("dp_missing").discover(&[Discover::Status(404)]);
    env.script("dp_flaky").discover(&[
        Discover::Status(500),
        Discover::Status(502),
        Discover::Status(503),
        Discover::Status(504),
        Discover::Status(500),
    ]);
    env.script("dp_legacy").discover(&[Discover::BadManifest]);
    let dead = env.dead;
    tokio::join!(
        env.discover("dp_greeter", policy, 1),
        env.discover("dp_cart", policy, 2),
        env.discover("dp_missing", policy, 3),
        env.discover("dp_flaky", policy, 4),
        env.discover("dp_legacy", policy, 5),
        env.discover_at("dp_dead", dead, policy, 6),
    );

    // Invocations: (id, partition, service, state size, attempts as the deployment answers).
    let plan: [(&str, usize, &str, usize, &[Attempt]); 10] = [
        ("g1", 0, "Greeter", 10, &[Attempt::Complete]),
        (
            "g2",
            0,
            "Greeter",
            10,
            &[Attempt::Status(503), Attempt::Complete],
        ),
        (
            "g6",
            0,
            "Greeter",
            10,
            &[Attempt::FailRetryable, Attempt::Complete],
        ),
        ("c1", 0, "Cart", 4096, &[Attempt::Complete]),
        ("c3", 0, "Cart", 10, &[Attempt::Refuse]),
        ("g3", 1, "Greeter", 10, &[Attempt::Suspend]),
        ("g4", 1, "Greeter", 10, &[Attempt::FailTerminal]),
        ("g5", 1, "Greeter", 10, &[Attempt::Status(503)]),
        (
            "c2",
            1,
            "Cart",
            10,
            &[
                Attempt::Status(429),
                Attempt::Status(502),
                Attempt::Complete,
            ],
        ),
        ("m1", 1, "Missing", 10, &[]),
    ];
    for (id, partition, service, state, attempts) in plan {
        let dp = if service == "Cart" {
            "dp_cart"
        } else {
            "dp_greeter"
        };
        env.script(dp).plan(id, attempts.to_vec());
        env.invokers[partition].invoke(invoke(id, service, state));
    }
    let pool = env.pool.clone();
    let n2 = &env.peers["N2"];
    let n3 = &env.peers["N3"];
    n3.reject_next_handshakes(1);
    let invocations = async {
        let mut report = Report::default();
        while report.ended.len() < plan.len() {
            match env.notices.recv().await {
                // The pull request's negative gauge: abort and pause while a retry waits.
                Some(Notice::RetryArmed(id)) if id == "c3" => env.invokers[0].abort(&id),
                Some(Notice::RetryArmed(id)) if id == "g5" => env.invokers[1].pause(&id),
                Some(Notice::RetryArmed(_)) => {}
                Some(Notice::Ended(id, how)) => {
                    report.ended.insert(id, how);
                }
                None => break,
            }
        }
        report
    };
    let rpcs = async {
        let mut ok = 0;
        let mut err = 0;
        let mut count = |r: Result<(), pool::NetError>| match r {
            Ok(()) => ok += 1,
            Err(_) => err += 1,
        };
        // 6 concurrent callers share one connect (the peer takes 20 ms to welcome).
        for r in concurrent(&pool, 6, "N2", "GENERAL").await {
            count(r);
        }
        // 4 cache hits, then 3 loopback calls.
        for _ in 0..4 {
            count(pool.rpc("N2", "GENERAL", "ping", None).await);
        }
        for _ in 0..3 {
            count(pool.rpc("N1", "GENERAL", "ping", None).await);
        }
        // N3 rejects the first handshake; the retry right after is throttled; later it works.
        count(pool.rpc("N3", "BIFROST_DATA", "ping", None).await);
        count(pool.rpc("N3", "BIFROST_DATA", "ping", None).await);
        tokio::time::sleep(t.throttle + Duration::from_millis(20)).await;
        count(pool.rpc("N3", "BIFROST_DATA", "ping", None).await);
        // N4 is down; N9 is unknown (an early error: no acquisition recorded).
        count(pool.rpc("N4", "GOSSIP", "ping", None).await);
        count(pool.rpc("N9", "GENERAL", "ping", None).await);
        // A reply slower than the RPC timeout, and a reply that is an error.
        let timeout = Some(t.slow_delay / 4);
        count(pool.rpc("N2", "GENERAL", "slow", timeout).await);
        count(pool.rpc("N2", "GENERAL", "fail", None).await);
        // Backpressure: 8 concurrent callers on a connection with 2 send slots.
        for r in concurrent(&pool, 8, "N2", "DATAFUSION").await {
            count(r);
        }
        // Incoming connections: one on GOSSIP, one on GENERAL replacing our outgoing one.
        let _ = n2.dial(env.local_addr, "GOSSIP", 2).await;
        let _ = n2.dial(env.local_addr, "GENERAL", 1).await;
        (ok, err)
    };
    let (mut report, (ok, err)) = tokio::join!(invocations, rpcs);
    report.rpc_ok = ok;
    report.rpc_err = err;
    env.shutdown().await;
    Ok(report)
}

async fn concurrent(
    pool: &Pool,
    n: usize,
    node: &'static str,
    swimlane: &'static str,
) -> Vec<Result<(), pool::NetError>> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.rpc(node, swimlane, "ping", None).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in calls {
        out.push(c.await.unwrap_or(Err(pool::NetError::ConnectionClosed)));
    }
    out
}

/// Live progress for the summary line.
#[derive(Debug, Default)]
pub struct Progress {
    pub invocations: std::sync::atomic::AtomicU64,
    pub rpcs: std::sync::atomic::AtomicU64,
}

/// While set (by the example's `--error-burst`), every RPC of the live workload fails.
pub static ERROR_BURST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The endless randomized workload: invocations with mixed outcomes on two partitions, RPCs on
/// every swimlane, incoming connections, idle connections drained, and rediscoveries, until
/// `stop` turns true. Then everything drains.
pub async fn live(
    t: &Timings,
    seed: u64,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    // Partition 0 runs near its limit: invocations queue now and then.
    let mut env = Env::start(t, 8).await?;
    let policy = RetryPolicy::restate();
    for (i, dp) in [
        "dp_greeter",
        "dp_cart",
        "dp_missing",
        "dp_flaky",
        "dp_legacy",
    ]
    .into_iter()
    .enumerate()
    {
        env.discover(dp, policy, i as u64).await;
    }
    let mut rng = Rng::new(seed);
    let mut next = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let pool = env.pool.clone();
    let mut background = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        // Invocations: about 2 per tick.
        for _ in 0..rng.below(4) {
            next += 1;
            let id = format!("inv{next}");
            let (service, dp) = *rng.pick(&[
                ("Greeter", "dp_greeter"),
                ("Greeter", "dp_greeter"),
                ("Cart", "dp_cart"),
                ("Missing", "dp_missing"),
            ]);
            let roll = rng.below(100);
            let attempts = match roll {
                0..=64 => vec![Attempt::Complete],
                65..=74 => vec![Attempt::Suspend],
                75..=82 => vec![
                    Attempt::Status(*rng.pick(&[429, 502, 503])),
                    Attempt::Complete,
                ],
                83..=88 => vec![Attempt::FailRetryable, Attempt::Complete],
                89..=92 => vec![Attempt::FailTerminal],
                93..=95 => vec![Attempt::Refuse, Attempt::Complete],
                _ => vec![Attempt::Status(503)],
            };
            env.script(dp).plan(&id, attempts);
            let state = if rng.below(10) == 0 { 4096 } else { 100 };
            env.invokers[rng.below(2) as usize].invoke(invoke(&id, service, state));
            progress.invocations.fetch_add(1, Relaxed);
        }
        // Abort or pause a few of the invocations whose retry is waiting.
        while let Ok(notice) = env.notices.try_recv() {
            if let Notice::RetryArmed(id) = notice {
                match rng.below(10) {
                    0 => env.invokers.iter().for_each(|i| i.abort(&id)),
                    1 => env.invokers.iter().for_each(|i| i.pause(&id)),
                    _ => {}
                }
            }
        }
        // RPCs: a few per tick, on random peers and swimlanes.
        for _ in 0..rng.below(6) {
            let node = *rng.pick(&["N1", "N2", "N2", "N2", "N3", "N3", "N4"]);
            let lane = *rng.pick(&SWIMLANES);
            let (payload, timeout) = match rng.below(50) {
                _ if ERROR_BURST.load(Relaxed) => ("fail", None),
                0 => ("slow", Some(t.slow_delay / 4)),
                1 => ("fail", None),
                _ => ("ping", Some(Duration::from_secs(2))),
            };
            let pool = pool.clone();
            progress.rpcs.fetch_add(1, Relaxed);
            background.spawn(async move {
                let _ = pool.rpc(node, lane, payload, timeout).await;
            });
        }
        while background.try_join_next().is_some() {}
        // Now and then: N3 rejects a handshake, a peer dials in, a connection idles out, a
        // deployment is discovered again.
        match rng.below(1000) {
            0..=9 => env.peers["N3"].reject_next_handshakes(1),
            10..=19 => {
                let (addr, lane) = (env.local_addr, *rng.pick(&SWIMLANES));
                let n2 = &env.peers["N2"];
                let _ = tokio::time::timeout(Duration::from_secs(1), n2.dial(addr, lane, 2)).await;
            }
            20..=29 => pool.drain_one(rng.next_u64()),
            30..=32 => {
                let dp = *rng.pick(&["dp_greeter", "dp_cart", "dp_missing", "dp_flaky"]);
                let script = env.script(dp);
                script.discover(&[*rng.pick(&[
                    Discover::Manifest,
                    Discover::Status(503),
                    Discover::Status(429),
                    Discover::BodyError,
                ])]);
                env.discover(dp, policy, rng.next_u64()).await;
            }
            _ => {}
        }
    }
    while background.join_next().await.is_some() {}
    env.shutdown().await;
    Ok(())
}
