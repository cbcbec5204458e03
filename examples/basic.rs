//! The README's first snippet as a complete program: declare the rules, serve `/metrics`,
//! annotate code with spans only.
//!
//! ```sh
//! cargo run --example basic             # serves http://127.0.0.1:9000/metrics until Ctrl-C
//! cargo run --example basic -- --once   # prints the exposition and exits
//! ```
//!
//! An address after the flags listens elsewhere: `cargo run --example basic -- 127.0.0.1:9100`.

use tracing::field::Empty;
use tracing_spanmetrics::{Condition, Label, Metric, SpanMetrics, Spans};
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let addr = match args.iter().find(|a| !a.starts_with("--")) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:9000".parse()?,
    };

    // 1. Say what to measure, in one place.
    let layer = SpanMetrics::builder()
        .metric(
            Metric::histogram("rpc.duration.seconds")
                .describe("One RPC, from call to reply")
                .spans(Spans::named("rpc"))
                .label("swimlane")
                .label(Label::outcome("result")), // success | error
        )
        .metric(
            Metric::gauge("rpc.in_flight")
                .describe("RPCs waiting for a reply")
                .spans(Spans::named("rpc"))
                .in_flight()
                .label("swimlane"),
        )
        .metric(
            Metric::counter("rpc.responses.total")
                .describe("Replies that were not 2xx")
                .spans(Spans::named("rpc"))
                .label("status")
                .when(Condition::field("status").not_between(200.0, 299.0)),
        )
        .build()?;

    // 2. Serve /metrics with every histogram's buckets set, and install the layer.
    let handle = tracing_spanmetrics::exporter::install(&layer, addr)?;
    tracing_subscriber::registry().with(layer).init();

    // 3. Annotate code with spans only: three RPCs, one of them answered 503.
    for status in [200, 503, 204] {
        let span = tracing::info_span!("rpc", swimlane = "GENERAL", status = Empty);
        span.record("status", status);
        drop(span);
    }

    if once {
        print!("{}", handle.render());
    } else {
        println!("serving http://{addr}/metrics (Ctrl-C to stop)");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
