//! The most common Rust service: axum behind tower-http's `TraceLayer`, with a few
//! `#[instrument]`s, measured by `tracing-spanmetrics`. No handler has a metric call or a timer:
//! every family comes from the spans the service already opens, through the rules in
//! `spanmetrics.rs`.
//!
//! ```sh
//! cargo run --example http_service                  # app on :8080, /metrics on :9000, until Ctrl-C
//! cargo run --example http_service -- --load 60     # and a mix of real requests for 60 s
//! cargo run --example http_service -- --requests 24 # exactly 24 requests (two rounds of the mix)
//! cargo run --example http_service -- --help
//! ```

mod db;
mod downstream;
mod handlers;
mod load;
mod spanmetrics;
mod trace;

use std::net::SocketAddr;
use std::time::Duration;

use tracing_spanmetrics::exporter;
use tracing_subscriber::prelude::*;

const USAGE: &str = "\
http_service: an axum service behind tower-http's TraceLayer, measured from its spans alone

USAGE:
    cargo run --example http_service -- [OPTIONS]

OPTIONS:
    --listen ADDR     serve the app on ADDR [default: 127.0.0.1:8080]
    --metrics ADDR    serve Prometheus metrics on http://ADDR/metrics [default: 127.0.0.1:9000]
    --duration SECS   stop after SECS seconds (default: run until Ctrl-C)
    --load SECS       drive the app with real HTTP requests for SECS seconds: every route,
                      some 4xx and 5xx, some slow (the mix in load.rs, in a fixed order)
    --requests N      drive the app with exactly N requests of that mix, then keep serving
                      (prints `load done: N requests` on stdout when the last one answered)
    --rate PER_SEC    requests started per second by --load and --requests [default: 20]
    -h, --help        print this help
";

/// The command line, parsed.
struct Args {
    listen: SocketAddr,
    metrics: SocketAddr,
    duration: Option<Duration>,
    load: Option<load::Amount>,
    rate: f64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut out = Args {
        listen: "127.0.0.1:8080".parse().expect("a valid address"),
        metrics: "127.0.0.1:9000".parse().expect("a valid address"),
        duration: None,
        load: None,
        rate: 20.0,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let seconds = |name: &str, v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{name}: `{v}` is not a positive number of seconds"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" | "--metrics" => {
                let v = value(&flag)?;
                let addr = v
                    .parse()
                    .map_err(|_| format!("{flag}: `{v}` is not an address like 127.0.0.1:8080"))?;
                if flag == "--listen" {
                    out.listen = addr;
                } else {
                    out.metrics = addr;
                }
            }
            "--duration" => out.duration = Some(seconds("--duration", value("--duration")?)?),
            "--load" => {
                let d = seconds("--load", value("--load")?)?;
                out.load = Some(load::Amount::For(d));
            }
            "--requests" => {
                let v = value("--requests")?;
                let n = v
                    .parse::<u64>()
                    .map_err(|_| format!("--requests: `{v}` is not a whole number"))?;
                out.load = Some(load::Amount::Requests(n));
            }
            "--rate" => {
                let v = value("--rate")?;
                out.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| format!("--rate: `{v}` is not a positive number"))?;
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Some(out))
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("http_service: {message}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(e) => fail(e),
    };

    // The metrics: the rules, an exporter serving /metrics, the layer in the registry.
    let layer = spanmetrics::builder()
        .build()
        .unwrap_or_else(|e| fail(format!("the metric rules are invalid: {e}")));
    if let Err(e) = std::net::TcpListener::bind(args.metrics) {
        fail(format!("cannot serve metrics on {}: {e}", args.metrics));
    }
    exporter::install(&layer, args.metrics)
        .unwrap_or_else(|e| fail(format!("cannot serve metrics on {}: {e}", args.metrics)));
    tracing_subscriber::registry().with(layer).init();

    // The downstream pricing service, on a loopback port of its own; then the app.
    let downstream = downstream::serve()
        .await
        .unwrap_or_else(|e| fail(format!("cannot start the downstream service: {e}")));
    let app = tokio::net::TcpListener::bind(args.listen)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {}: {e}", args.listen)));
    let router = handlers::router(handlers::State::new(downstream));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(app, router).await {
            fail(format!("the app stopped: {e}"));
        }
    });
    println!(
        "http_service: app on http://{}, metrics on http://{}/metrics",
        args.listen, args.metrics
    );

    if let Some(amount) = args.load {
        let listen = args.listen;
        let rate = args.rate;
        tokio::spawn(async move {
            let done = load::drive(listen, amount, rate).await;
            println!("load done: {done} requests");
        });
    }

    match args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
