//! A small stand-in for the flagship example: a few instrumented spans, served on `/metrics`.
//!
//! `cargo run --example restate` then `curl http://127.0.0.1:9000/metrics`.

use std::time::Duration;

use tracing::Instrument;
use tracing::field::Empty;
use tracing_spanmetrics::{Condition, Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() {
    let layer = SpanMetrics::builder()
        .metric(
            Metric::histogram("demo.rpc.duration.seconds")
                .describe("One RPC, from call to reply")
                .spans(Spans::named("rpc"))
                .labels(["swimlane"])
                .label(Label::outcome("result")),
        )
        .metric(
            Metric::counter("demo.rpc.failures.total")
                .describe("RPCs that failed")
                .spans(Spans::named("rpc"))
                .label("swimlane")
                .when(Condition::error()),
        )
        .metric(
            Metric::gauge("demo.rpc.in_flight")
                .describe("RPCs in flight")
                .spans(Spans::named("rpc"))
                .in_flight()
                .label("swimlane"),
        )
        .build()
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
    let addr = "127.0.0.1:9000".parse().expect("a valid address");
    if let Err(e) = tracing_spanmetrics::exporter::install(&layer, addr) {
        eprintln!("error: cannot serve metrics on {addr}: {e}");
        std::process::exit(1);
    }
    tracing_subscriber::registry().with(layer).init();
    println!("serving http://{addr}/metrics (Ctrl-C to stop)");
    let mut n = 0u64;
    loop {
        n += 1;
        let lane = ["GENERAL", "GOSSIP"][(n % 2) as usize];
        async {
            tokio::time::sleep(Duration::from_millis(n % 7)).await;
            if n % 5 == 0 {
                tracing::error!("peer went away");
            }
        }
        .instrument(tracing::info_span!("rpc", swimlane = lane, otel.status_code = Empty))
        .await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
}
