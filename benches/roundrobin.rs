//! Round-robin measurement: every variant runs a short slice of spans per round, many rounds,
//! and each variant's ratio to the baseline is taken within the round, so the VM's slow drift in
//! speed (up to ±35% over tens of seconds here) cancels out of the ratios. Reports medians.
//!
//! ```text
//! cargo bench --bench roundrobin -- [--rounds 30] [--slice 20000] [--no-threads]
//!                                   [--out target/bench-results]
//! cargo bench --bench roundrobin -- --only layer/rule --spans 20000000   # for perf/callgrind
//! ```
//!
//! Writes `roundrobin.json` and `roundrobin.csv` into the output folder (default
//! `target/bench-results` under the package). `scripts/bench_chart.py` draws the chart from the
//! JSON. Run without `--bench` (as `cargo test --benches` does) it makes one tiny round as a
//! smoke test and writes nothing.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use common::{Kind, Suite, Variant};

const BASELINE: &str = "registry+noop";
const HANDLES: &str = "hand/handles";

struct Args {
    rounds: usize,
    slice: u64,
    threads: bool,
    out: Option<PathBuf>,
    only: Option<String>,
    spans: u64,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 30,
        slice: 20_000,
        threads: true,
        out: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-results")),
        only: None,
        spans: 10_000_000,
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => bench = true,
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--slice" => a.slice = value().parse().expect("--slice N"),
            "--no-threads" => a.threads = false,
            "--out" => a.out = Some(PathBuf::from(value())),
            "--only" => a.only = Some(value()),
            "--spans" => a.spans = value().parse().expect("--spans N"),
            _ => {} // cargo's and libtest's flags
        }
    }
    if !bench {
        a.rounds = 1;
        a.slice = 200;
        a.out = None;
        a.spans = 1_000;
    }
    a
}

fn median(xs: &mut [f64]) -> f64 {
    quantile(xs, 0.5)
}

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let pos = q * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

/// Per-round times of one variant, in ns per span.
#[derive(Default, Clone)]
struct Samples {
    one: Vec<f64>,
    two: Vec<f64>,
}

fn main() {
    let args = args();
    let suite = common::suite();
    if let Some(name) = &args.only {
        profile(&suite, suite.get(name), args.spans);
        return;
    }
    let vs = &suite.variants;
    eprintln!("load average at start: {}", loadavg());
    // Warm-up: every variant once (registers callsites, plans, label sets, handles).
    for v in vs {
        v.run(args.slice.min(20_000), 0);
        if args.threads && v.threaded {
            v.run_threads(2, 2_000);
        }
        suite.drain();
    }
    let mut samples = vec![Samples::default(); vs.len()];
    let started = Instant::now();
    for round in 0..args.rounds {
        let offset = round * 131;
        // Rotate the order so no variant always follows the same one.
        for k in 0..vs.len() {
            let i = (k + round) % vs.len();
            let t = vs[i].run(args.slice, offset);
            suite.drain();
            samples[i].one.push(t.as_nanos() as f64 / args.slice as f64);
        }
        if args.threads {
            for k in 0..vs.len() {
                let i = (k + round) % vs.len();
                if !vs[i].threaded {
                    continue;
                }
                let t = vs[i].run_threads(2, args.slice);
                suite.drain();
                samples[i].two.push(t.as_nanos() as f64 / args.slice as f64);
            }
        }
        eprint!("\rround {}/{}", round + 1, args.rounds);
    }
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    let report = Report::new(&suite, &samples, &args);
    println!("{}", report.table());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).expect("create the output folder");
        std::fs::write(dir.join("roundrobin.json"), report.json()).expect("write json");
        std::fs::write(dir.join("roundrobin.csv"), report.csv()).expect("write csv");
        eprintln!("wrote {}/roundrobin.{{json,csv}}", dir.display());
    }
}

/// Runs one variant alone for `spans` spans (in slices, draining between them).
fn profile(suite: &Suite, v: &Variant, spans: u64) {
    let slice = 20_000.min(spans);
    let mut done = 0;
    let mut nanos = 0u128;
    while done < spans {
        nanos += v.run(slice, done as usize).as_nanos();
        suite.drain();
        done += slice;
    }
    println!(
        "{}: {} spans, {:.1} ns/span",
        v.name,
        done,
        nanos as f64 / done as f64
    );
}

struct Row {
    name: &'static str,
    kind: Kind,
    baseline: &'static str,
    describe: &'static str,
    ns: f64,
    ns_p25: f64,
    ns_p75: f64,
    ratio: f64,
    ratio_p25: f64,
    ratio_p75: f64,
    /// Added ns per span over the variant's own baseline (median of per-round differences).
    added: f64,
    /// Added cost divided by the pre-built-handle variant's added cost (median per round).
    added_vs_handles: f64,
    two_ns: Option<f64>,
    scaling: Option<f64>,
    scaling_p25: Option<f64>,
    scaling_p75: Option<f64>,
}

struct Report {
    rows: Vec<Row>,
    rounds: usize,
    slice: u64,
    machine: Vec<(&'static str, String)>,
}

impl Report {
    fn new(suite: &Suite, samples: &[Samples], args: &Args) -> Report {
        let vs = &suite.variants;
        let idx = |name: &str| vs.iter().position(|v| v.name == name).expect("variant");
        let base = &samples[idx(BASELINE)].one;
        let hand = &samples[idx(HANDLES)].one;
        let rounds = base.len();
        let rows = vs
            .iter()
            .zip(samples)
            .map(|(v, s)| {
                let own = &samples[idx(v.baseline)].one;
                let mut ns = s.one.clone();
                let mut ratio: Vec<f64> = (0..rounds).map(|r| s.one[r] / base[r]).collect();
                let mut added: Vec<f64> = (0..rounds).map(|r| s.one[r] - own[r]).collect();
                let mut vs_hand: Vec<f64> = (0..rounds)
                    .map(|r| (s.one[r] - own[r]) / (hand[r] - base[r]))
                    .collect();
                let (two_ns, scaling, sp25, sp75) = if s.two.is_empty() {
                    (None, None, None, None)
                } else {
                    let mut two = s.two.clone();
                    // Throughput of 2 threads over 1: 2 spans per `two` wall time vs 1 per `one`.
                    let mut sc: Vec<f64> = (0..rounds).map(|r| 2.0 * s.one[r] / s.two[r]).collect();
                    (
                        Some(median(&mut two)),
                        Some(median(&mut sc)),
                        Some(quantile(&mut sc, 0.25)),
                        Some(quantile(&mut sc, 0.75)),
                    )
                };
                Row {
                    name: v.name,
                    kind: v.kind,
                    baseline: v.baseline,
                    describe: v.describe,
                    ns: median(&mut ns),
                    ns_p25: quantile(&mut ns, 0.25),
                    ns_p75: quantile(&mut ns, 0.75),
                    ratio: median(&mut ratio),
                    ratio_p25: quantile(&mut ratio, 0.25),
                    ratio_p75: quantile(&mut ratio, 0.75),
                    added: median(&mut added),
                    added_vs_handles: median(&mut vs_hand),
                    two_ns,
                    scaling,
                    scaling_p25: sp25,
                    scaling_p75: sp75,
                }
            })
            .collect();
        Report {
            rows,
            rounds: args.rounds,
            slice: args.slice,
            machine: machine(),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} rounds × {} spans per variant; medians (p25–p75)",
            self.rounds, self.slice
        );
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>16} {:>9} {:>10} {:>10} {:>9}",
            "variant", "ns/span", "ratio", "added ns", "÷handles", "2thr ns", "scaling"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<24} {:>8.1} {:>5.2} ({:.2}–{:.2}) {:>9.1} {:>10.2} {:>10} {:>9}",
                r.name,
                r.ns,
                r.ratio,
                r.ratio_p25,
                r.ratio_p75,
                r.added,
                r.added_vs_handles,
                r.two_ns.map_or("-".into(), |x| format!("{x:.1}")),
                r.scaling.map_or("-".into(), |x| format!("{x:.2}")),
            );
        }
        out
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "variant,kind,baseline,ns_per_span,ns_p25,ns_p75,ratio_to_registry_noop,ratio_p25,ratio_p75,\
             added_ns_over_own_baseline,added_vs_handles,two_thread_ns_per_span,two_thread_scaling,\
             scaling_p25,scaling_p75\n",
        );
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{:.2},{:.2},{:.2},{:.4},{:.4},{:.4},{:.2},{:.4},{},{},{},{}",
                r.name,
                r.kind.as_str(),
                r.baseline,
                r.ns,
                r.ns_p25,
                r.ns_p75,
                r.ratio,
                r.ratio_p25,
                r.ratio_p75,
                r.added,
                r.added_vs_handles,
                opt(r.two_ns),
                opt(r.scaling),
                opt(r.scaling_p25),
                opt(r.scaling_p75),
            );
        }
        out
    }

    fn json(&self) -> String {
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x:.4}")
            } else {
                "null".into()
            }
        };
        let opt = |x: Option<f64>| x.map_or("null".into(), num);
        let mut out = String::from("{\n  \"machine\": {");
        for (i, (k, v)) in self.machine.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\n    \"{k}\": \"{}\"", escape(v));
        }
        let _ = write!(
            out,
            "\n  }},\n  \"rounds\": {},\n  \"slice\": {},\n  \"baseline\": \"{BASELINE}\",\n  \"variants\": [",
            self.rounds, self.slice
        );
        for (i, r) in self.rows.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}\n    {{\"name\": \"{}\", \"kind\": \"{}\", \"baseline\": \"{}\", \"describe\": \"{}\", \
                 \"ns_per_span\": {}, \"ns_p25\": {}, \"ns_p75\": {}, \"ratio\": {}, \"ratio_p25\": {}, \
                 \"ratio_p75\": {}, \"added_ns\": {}, \"added_vs_handles\": {}, \"two_thread_ns_per_span\": {}, \
                 \"scaling\": {}, \"scaling_p25\": {}, \"scaling_p75\": {}}}",
                r.name,
                r.kind.as_str(),
                r.baseline,
                escape(r.describe),
                num(r.ns),
                num(r.ns_p25),
                num(r.ns_p75),
                num(r.ratio),
                num(r.ratio_p25),
                num(r.ratio_p75),
                num(r.added),
                num(r.added_vs_handles),
                opt(r.two_ns),
                opt(r.scaling),
                opt(r.scaling_p25),
                opt(r.scaling_p75),
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}

/// The 1-minute load average: other work on the machine skews the two-thread runs most.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn machine() -> Vec<(&'static str, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let revision = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("cpu", cpu),
        ("cores", cores.to_string()),
        ("rustc", rustc),
        ("os", std::env::consts::OS.to_owned()),
        ("revision", revision),
        ("loadavg_at_end", loadavg()),
    ]
}
