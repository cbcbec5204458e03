//! Every metric of the example, declared in one place.
//!
//! The 27 families restate's pull request #4567 records with direct `metrics::` calls, derived
//! here from the spans of the simulation instead: the instrumented code (`sim/`) only opens
//! spans, records fields and emits events. Names are the `metrics` facade names; the Prometheus
//! exporter turns dots into underscores and appends `_total` to counters.
//!
//! This is one declarative list on purpose: it is meant to move to a configuration file as is.

use tracing_spanmetrics::{Condition, EventMatch, Label, Metric, Spans, Unit};

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
pub const HEADERS_EVENT: &str = "response headers";
/// The message of the event emitted when eager state is truncated.
pub const TRUNCATED_EVENT: &str = "eager state truncated";
/// The message of the event emitted right after a concurrency slot is acquired.
pub const SLOT_EVENT: &str = "concurrency slot acquired";
/// The message of the warning logged before each discovery backoff.
pub const RETRY_EVENT: &str = "retrying discovery";

/// All 27 metric families, with descriptions and units.
pub fn restate_metrics() -> Vec<Metric> {
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
