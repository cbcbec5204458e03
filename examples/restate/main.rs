//! The flagship example: restate's invoker, connection pool and deployment discovery,
//! instrumented with spans only, measured by `tracing-spanmetrics`.
//!
//! ```sh
//! cargo run --example restate                 # serve http://127.0.0.1:9000/metrics until Ctrl-C
//! cargo run --example restate -- --once       # a fixed workload, then the exposition on stdout
//! cargo run --example restate -- --config my.toml --once   # other rules than the built-in ones
//! cargo run --example restate -- --once --otel  # also OpenTelemetry traces (span lines on stderr)
//! cargo run --example restate -- --help
//! ```
//!
//! The simulated code (`sim/`) has no `metrics::` call and no timer: every one of the 27 metric
//! families comes from the spans it opens, the fields it records and the events it emits,
//! through the rules in `spanmetrics.toml`.

mod exposition;
mod operations;
mod otel;
mod sim;
mod spanmetrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_spanmetrics::{SpanMetricsBuilder, exporter};
use tracing_subscriber::prelude::*;

const USAGE: &str = "\
restate: restate's invoker, connection pool and discovery, measured from spans alone

USAGE:
    cargo run --example restate -- [OPTIONS]

OPTIONS:
    --listen ADDR     serve Prometheus metrics on http://ADDR/metrics [default: 127.0.0.1:9000]
    --duration SECS   stop after SECS seconds (default: run until Ctrl-C)
    --once            run a fixed workload of about a second, print the exposition, exit
    --seed N          seed of the live workload [default: 1]
    --config PATH     read the metric rules from the TOML file PATH instead of the built-in
                      examples/restate/spanmetrics.toml; an invalid file is one line on
                      stderr (file:line:column: problem) and exit code 2
    --otel            also export the same spans as OpenTelemetry traces, through
                      tracing-opentelemetry in the same registry: one line per finished span
                      (`otel span NAME trace_id=.. kind=.. ..`) on stderr, so stdout
                      stays the exposition (--once) or the live summary
    --print-rules     print the Prometheus rule file of the configuration's objectives
                      (recorded error ratios, burn-rate alerts) and exit
    --print-dashboard print the Grafana dashboard of the configuration (JSON) and exit
    --fast-page SECS  with --print-rules: the fast page alert's `for` is SECS and groups are
                      evaluated every second (the other alerts keep the workbook's)
    --error-burst START,LENGTH
                      every RPC fails from START to START+LENGTH seconds into the live
                      workload (the `rpc-availability` objective's fast page alert fires)
    -h, --help        print this help
";

struct Args {
    listen: SocketAddr,
    duration: Option<Duration>,
    once: bool,
    seed: u64,
    config: Option<PathBuf>,
    otel: bool,
    print: Option<operations::Print>,
    fast_page: Option<Duration>,
    error_burst: Option<(Duration, Duration)>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut out = Args {
        listen: "127.0.0.1:9000".parse().expect("a valid address"),
        duration: None,
        once: false,
        seed: 1,
        config: None,
        otel: false,
        print: None,
        fast_page: None,
        error_burst: None,
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
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--once" => out.once = true,
            "--otel" => out.otel = true,
            "--print-rules" => out.print = Some(operations::Print::Rules),
            "--print-dashboard" => out.print = Some(operations::Print::Dashboard),
            "--error-burst" => {
                out.error_burst = Some(operations::parse_burst(&value("--error-burst")?)?)
            }
            "--fast-page" => {
                let v = value("--fast-page")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--fast-page: `{v}` is not a whole number of seconds"))?;
                out.fast_page = Some(Duration::from_secs(secs));
            }
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--listen" => {
                let v = value("--listen")?;
                out.listen = v.parse().map_err(|_| {
                    format!("--listen: `{v}` is not an address like 127.0.0.1:9000")
                })?;
            }
            "--duration" => {
                let v = value("--duration")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--duration: `{v}` is not a number of seconds"))?;
                out.duration = Some(Duration::from_secs_f64(secs));
            }
            "--seed" => {
                let v = value("--seed")?;
                out.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: `{v}` is not a number"))?;
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Some(out))
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

#[tokio::main]
async fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    };
    // The rules: the built-in file, or `--config`. A broken file is a usage error.
    let builder = spanmetrics::builder(args.config.as_deref()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    if let Some(what) = args.print {
        match operations::render(&builder, what, args.fast_page) {
            Ok(text) => print!("{text}"),
            Err(e) => fail(e),
        }
        return;
    }
    if let Some((start, length)) = args.error_burst {
        operations::schedule_burst(start, length);
    }
    let otel = args.otel.then(otel::tracer);
    let (provider, tracer) = otel.unzip();
    let otel_layer = tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t));
    if args.once {
        once(builder, otel_layer).await
    } else {
        serve(args, builder, otel_layer).await
    }
    if let Some(provider) = provider {
        shutdown(provider);
    }
}

/// The OpenTelemetry side, when `--otel` is given: a layer beside the span-metrics one.
type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::SdkTracer,
>;

/// Exports what is left and stops the tracer provider.
fn shutdown(provider: SdkTracerProvider) {
    if let Err(e) = provider.shutdown() {
        eprintln!("warning: OpenTelemetry shutdown: {e}");
    }
}

/// `--once`: the standard scenario against an in-process recorder, then the exposition.
async fn once(builder: SpanMetricsBuilder, otel: Option<OtelLayer>) {
    // The exporter needs the histogram families (from a built layer) before the recorder that
    // the real layer writes to exists: build once to learn them.
    let probe = builder.clone().build().unwrap_or_else(|e| fail(e));
    let recorder = exporter::prometheus_builder(&probe)
        .unwrap_or_else(|e| fail(e))
        .build_recorder();
    let handle = recorder.handle();
    let layer = builder
        .with_recorder(Arc::new(recorder))
        .build()
        .unwrap_or_else(|e| fail(e));
    tracing_subscriber::registry().with(otel).with(layer).init();
    if let Err(e) = sim::standard(&sim::Timings::fast()).await {
        fail(format!("the simulation could not start: {e}"));
    }
    print!("{}", handle.render());
}

/// The default: the live workload, served on `--listen`, with a summary every few seconds.
async fn serve(args: Args, builder: SpanMetricsBuilder, otel: Option<OtelLayer>) {
    let layer = builder.build().unwrap_or_else(|e| fail(e));
    // Bind first, to report a taken port in one line (the exporter's error is longer).
    if let Err(e) = std::net::TcpListener::bind(args.listen) {
        fail(format!("cannot listen on {}: {e}", args.listen));
    }
    let handle = exporter::install(&layer, args.listen)
        .unwrap_or_else(|e| fail(format!("cannot serve metrics on {}: {e}", args.listen)));
    tracing_subscriber::registry().with(otel).with(layer).init();
    println!(
        "serving http://{}/metrics; {}",
        args.listen,
        match args.duration {
            Some(d) => format!("stopping after {} s", d.as_secs_f64()),
            None => "Ctrl-C to stop".to_owned(),
        }
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let progress = Arc::new(sim::Progress::default());
    let workload = tokio::spawn({
        let progress = progress.clone();
        async move { sim::live(&sim::Timings::realistic(), args.seed, stop_rx, progress).await }
    });
    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut summary = Summary::new(handle.clone());
    let mut every = tokio::time::interval(Duration::from_secs(3));
    every.tick().await;
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = every.tick() => summary.print(&progress),
            _ = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("stopping: draining invocations and connections");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(15), workload).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => fail(format!("the simulation could not start: {e}")),
        Ok(Err(e)) => fail(format!("the simulation failed: {e}")),
        Err(_) => fail("the workload did not drain within 15 s"),
    }
    summary.print(&progress);
}

/// The live summary: rates and quantiles over the last window, read back from the exposition.
struct Summary {
    handle: PrometheusHandle,
    at: Instant,
    prev: Vec<exposition::Sample>,
}

const SUMMARY_HISTOGRAMS: [(&str, &str); 4] = [
    ("task", "restate_invoker_task_duration_seconds"),
    ("ttfb", "restate_invoker_http_request_duration_seconds"),
    ("rpc", "restate_network_rpc_duration_seconds"),
    (
        "acquire",
        "restate_network_connection_acquisition_duration_seconds",
    ),
];

impl Summary {
    fn new(handle: PrometheusHandle) -> Summary {
        Summary {
            handle,
            at: Instant::now(),
            prev: Vec::new(),
        }
    }

    fn print(&mut self, progress: &sim::Progress) {
        let now = exposition::parse(&self.handle.render());
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let rate =
            |name: &str| (exposition::sum(&now, name) - exposition::sum(&self.prev, name)) / secs;
        let mut line = format!(
            "invocations/s {:>6.1}  rpc/s {:>6.1}  active {:>3}  pooled {:>2}",
            rate("restate_invoker_invocations_queued_total"),
            rate("restate_network_rpc_duration_seconds_count"),
            exposition::sum(&now, "restate_invoker_invocations_active"),
            exposition::sum(&now, "restate_network_pool_connections_active"),
        );
        for (label, family) in SUMMARY_HISTOGRAMS {
            let window = exposition::delta(
                &exposition::buckets(&now, family),
                &exposition::buckets(&self.prev, family),
            );
            let ms = |q| {
                exposition::quantile(q, &window).map_or("-".into(), |s| format!("{:.0}", s * 1e3))
            };
            line.push_str(&format!("  {label} p50/p99 {}/{} ms", ms(0.5), ms(0.99)));
        }
        println!(
            "{line}  (submitted {} invocations, {} rpcs)",
            progress.invocations.load(Relaxed),
            progress.rpcs.load(Relaxed)
        );
        self.prev = now;
        self.at = Instant::now();
    }
}
