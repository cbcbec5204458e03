//! The restate example's `spanmetrics.toml` declares exactly the rules the example used to
//! declare in Rust: the Rust declarations, as they were before the move, are kept here as the
//! reference, and the file must compile to equal rules, in the same order.

#[path = "../examples/restate/spanmetrics.rs"]
mod spanmetrics;

use tracing_spanmetrics::{Condition, EventMatch, Label, Metric, SpanMetrics, Spans, Unit};

/// The invoker's three standard labels: partition (from the `invoker` span), service (from the
/// `invocation` span) and the deployment pinned so far (`unknown` before pinning).
fn invocation_labels() -> [Label; 3] {
    [
        Label::field("partition_id"),
        Label::field("service_name"),
        Label::field("deployment_id").default("unknown"),
    ]
}

/// A connection's identity, carried by `connection` and `send_permit` spans.
fn connection_labels() -> [Label; 3] {
    [
        Label::field("direction"),
        Label::field("swimlane"),
        Label::field("peer_name"),
    ]
}

/// The message of the event a task emits when response headers arrive.
const HEADERS_EVENT: &str = "response headers";
/// The message of the event emitted when eager state is truncated.
const TRUNCATED_EVENT: &str = "eager state truncated";
/// The message of the event emitted right after a concurrency slot is acquired.
const SLOT_EVENT: &str = "concurrency slot acquired";
/// The message of the warning logged before each discovery backoff.
const RETRY_EVENT: &str = "retrying discovery";

/// The Rust declarations the TOML file replaced, verbatim: all 27 families (28 rules).
fn reference() -> Vec<Metric> {
    vec![
        // ---- invoker: queue, slots, throttling -------------------------------------------
        Metric::counter("restate.invoker.invocations.queued.total")
            .describe("Invocations enqueued into the invoker's queue")
            .unit(Unit::Count)
            .spans(Spans::named("invoker_queue"))
            .spans_opened()
            .labels(invocation_labels()),
        Metric::histogram("restate.invoker.queue.duration.seconds")
            .describe("Time an invocation waited in the invoker's queue before its task started")
            .spans(Spans::named("invoker_queue"))
            .wall_time()
            .labels(invocation_labels())
            .when(Condition::recorded("dequeued")),
        Metric::gauge("restate.invoker.throttling.balance")
            .describe(
                "Token-bucket balance right after a concurrency slot was acquired (negative: throttled)",
            )
            .unit(Unit::Count)
            .spans(Spans::named("invocation"))
            .event_field(EventMatch::message(SLOT_EVENT), "throttling_balance")
            .labels(invocation_labels()),
        Metric::gauge("restate.invoker.concurrency_limit")
            .describe("Concurrency limit of the invoker (+Inf when unlimited)")
            .unit(Unit::Count)
            .spans(Spans::named("invoker"))
            .span_field("concurrency_limit")
            .labels(["invoker_id", "partition_id"]),
        Metric::counter("restate.invoker.concurrency.slots.acquired.total")
            .describe("Concurrency slots acquired (one per invocation, held across retries)")
            .unit(Unit::Count)
            .spans(Spans::named("concurrency_slot"))
            .spans_opened()
            .labels(["invoker_id", "partition_id"]),
        Metric::counter("restate.invoker.concurrency.slots.released.total")
            .describe("Concurrency slots released when their invocation ended")
            .unit(Unit::Count)
            .spans(Spans::named("concurrency_slot"))
            .spans_closed()
            .labels(["invoker_id", "partition_id"]),
        // ---- invoker: tasks and invocations -----------------------------------------------
        // Two rules feed one family: `started` when an attempt opens, the end status when it
        // closes. `transient` is declared by both but only ever recorded on failed attempts.
        Metric::counter("restate.invoker.tasks.total")
            .describe("Invocation task attempts, by status: started, completed, suspended, failed")
            .unit(Unit::Count)
            .spans(Spans::named("invocation_task"))
            .spans_opened()
            .label(Label::fixed("status", "started"))
            .labels(["partition_id", "service_name"])
            .label(Label::field("transient").own_only()),
        Metric::counter("restate.invoker.tasks.total")
            .spans(Spans::named("invocation_task"))
            .spans_closed()
            .label(Label::field("status").own_only())
            .labels(["partition_id", "service_name"])
            .label(Label::field("transient").own_only())
            .when(Condition::field("status").one_of(["completed", "suspended", "failed"])),
        Metric::histogram("restate.invoker.task.duration.seconds")
            .describe("Lifetime of one invocation task attempt")
            .spans(Spans::named("invocation_task"))
            .wall_time()
            .labels(["partition_id", "service_name"])
            // The deployment pinned during this attempt, not one pinned by an earlier attempt.
            .label(Label::field("deployment_id").own_only().default("unknown")),
        Metric::counter("restate.invoker.state.truncations.total")
            .describe("Attempts whose eager state exceeded the size limit and was truncated")
            .unit(Unit::Count)
            .spans(Spans::named("invocation_task"))
            .events(EventMatch::message(TRUNCATED_EVENT))
            .labels(invocation_labels()),
        Metric::gauge("restate.invoker.invocations.active")
            .describe("Invocations whose deployment is pinned and that have not ended")
            .unit(Unit::Count)
            .spans(Spans::named("invocation"))
            .in_flight_after("deployment_id")
            .labels(invocation_labels()),
        // ---- invoker: HTTP to the deployment ---------------------------------------------
        Metric::histogram("restate.invoker.http.request.duration.seconds")
            .describe("Time to first byte: request started to response headers received")
            .spans(Spans::named("invoker_http_request"))
            .time_to(EventMatch::message(HEADERS_EVENT))
            .labels(invocation_labels()),
        Metric::histogram("restate.invoker.http.roundtrip.duration.seconds")
            .describe("Request started to response stream finished (or connection failed)")
            .spans(Spans::named("invoker_http_request"))
            .wall_time()
            .labels(invocation_labels()),
        Metric::counter("restate.invoker.http.responses.total")
            .describe("Responses from deployments with a non-2xx status")
            .unit(Unit::Count)
            .spans(Spans::named("invoker_http_request"))
            .events(EventMatch::message(HEADERS_EVENT))
            .labels(invocation_labels())
            .label("status_code")
            .when(Condition::field("status_code").not_between(200.0, 299.0)),
        // ---- connection pool --------------------------------------------------------------
        Metric::gauge("restate.network.pool.connections.active")
            .describe("Shared connections registered in the pool")
            .unit(Unit::Count)
            .spans(Spans::named("pool_registration"))
            .in_flight()
            .label("swimlane"),
        Metric::gauge("restate.network.connection.pending")
            .describe("Shared connect attempts in flight")
            .unit(Unit::Count)
            .spans(Spans::named("connect"))
            .in_flight()
            .label("swimlane"),
        Metric::histogram("restate.network.connection.acquisition.duration.seconds")
            .describe("Get-or-connect: from the call to a connection (or an error)")
            .spans(Spans::named("get_or_connect"))
            .wall_time()
            .label(Label::field("swimlane"))
            .label(Label::field("cache").own_only())
            .label(Label::outcome("result"))
            // Early errors (an unknown node) happen before the cache is consulted.
            .when(Condition::recorded("cache")),
        Metric::histogram("restate.network.connection.handshake.duration.seconds")
            .describe("Outgoing connect: transport connect, Hello/Welcome and reactor start")
            .spans(Spans::named("connect"))
            .wall_time()
            .label("swimlane")
            .label(Label::outcome("result")),
        Metric::histogram("restate.network.rpc.duration.seconds")
            .describe("One RPC: get-or-connect, send permit, send and reply, under its timeout")
            .spans(Spans::named("rpc"))
            .wall_time()
            .label("swimlane")
            .label(Label::outcome("result")),
        Metric::counter("restate.network.connection.opened.total")
            .describe("Connections established (outgoing, incoming and loopback)")
            .unit(Unit::Count)
            .spans(Spans::named("connection"))
            .spans_opened()
            .labels(connection_labels()),
        Metric::counter("restate.network.connection_created.total")
            .describe("Connections established (legacy name of connection.opened)")
            .unit(Unit::Count)
            .spans(Spans::named("connection"))
            .spans_opened()
            .labels(connection_labels()),
        Metric::counter("restate.network.connection.closed.total")
            .describe("Connections whose reactor exited")
            .unit(Unit::Count)
            .spans(Spans::named("connection"))
            .spans_closed()
            .labels(connection_labels()),
        Metric::counter("restate.network.connection_dropped.total")
            .describe("Connections whose reactor exited (legacy name of connection.closed)")
            .unit(Unit::Count)
            .spans(Spans::named("connection"))
            .spans_closed()
            .labels(connection_labels()),
        Metric::histogram("restate.network.connection.duration.seconds")
            .describe("Lifetime of a connection, created to closed")
            .spans(Spans::named("connection"))
            .wall_time()
            .labels(connection_labels()),
        Metric::histogram("restate.network.permit_acquisition.duration.seconds")
            .describe("Waiting for a send permit on a connection (backpressure)")
            .spans(Spans::named("send_permit"))
            .wall_time()
            .labels(connection_labels())
            .when(Condition::recorded("permit")),
        // ---- deployment discovery ---------------------------------------------------------
        Metric::counter("restate.deployment.discovery.attempts.total")
            .describe("Deployment discoveries, by outcome after all retries")
            .unit(Unit::Count)
            .spans(Spans::named("discovery"))
            .spans_closed()
            .label("outcome")
            .when(Condition::recorded("outcome")),
        Metric::histogram("restate.deployment.discovery.duration.seconds")
            .describe("Whole discovery, every try and backoff included")
            .spans(Spans::named("discovery"))
            .wall_time()
            .label("outcome")
            .when(Condition::recorded("outcome")),
        Metric::counter("restate.deployment.discovery.retries.total")
            .describe("Discovery retries, by reason")
            .unit(Unit::Count)
            .spans(Spans::named("discovery"))
            .events(EventMatch::message(RETRY_EVENT))
            .label("reason"),
    ]
}

#[test]
fn the_toml_file_declares_the_same_rules_as_the_rust_reference() {
    let from_toml = SpanMetrics::builder()
        .toml(spanmetrics::DEFAULT_CONFIG)
        .expect("the shipped file is valid");
    let from_rust = SpanMetrics::builder().metrics(reference());
    // Rule by rule first, for a readable failure, then the whole list.
    for (i, (t, r)) in from_toml.rules().iter().zip(from_rust.rules()).enumerate() {
        assert_eq!(t, r, "rule #{i} (`{}`) differs", r.name());
    }
    assert_eq!(from_toml.rules().len(), 28);
    assert_eq!(from_toml.rules(), from_rust.rules());
    let families: std::collections::BTreeSet<&str> =
        from_toml.rules().iter().map(|m| m.name()).collect();
    assert_eq!(families.len(), 27);
}

#[test]
fn the_example_loader_uses_the_shipped_file() {
    let built_in = spanmetrics::builder(None).expect("the built-in configuration");
    assert_eq!(built_in.rules(), reference().as_slice());
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/restate/spanmetrics.toml"
    );
    let from_path = spanmetrics::builder(Some(std::path::Path::new(path))).expect("the file");
    assert_eq!(from_path.rules(), reference().as_slice());
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        spanmetrics::DEFAULT_CONFIG
    );
}

#[test]
fn the_readme_excerpt_is_copied_from_the_shipped_file() {
    let readme = include_str!("../README.md");
    let marker = "```toml\n# from examples/restate/spanmetrics.toml\n";
    let start = readme.find(marker).expect("the excerpt in README.md") + marker.len();
    let excerpt = &readme[start..start + readme[start..].find("```").unwrap()];
    for block in excerpt.split("\n\n") {
        assert!(
            spanmetrics::DEFAULT_CONFIG.contains(block.trim_end()),
            "README.md shows a rule that is not in spanmetrics.toml:\n{block}"
        );
    }
    let rules = SpanMetrics::builder()
        .toml(excerpt)
        .expect("a valid excerpt");
    assert_eq!(rules.rules().len(), 3);
}
