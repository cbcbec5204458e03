//! Round-robin measurement: every variant runs a short slice of spans per round, many rounds,
//! and each variant's ratio to the baseline is taken within the round, so the VM's slow drift in
//! speed (up to ±35% over tens of seconds here) cancels out of the ratios. Reports medians.
//!
//! ```text
//! cargo bench --bench roundrobin -- [--rounds 30] [--slice 20000] [--no-threads]
//!                                   [--thread-rounds 15] [--thread-slice 200000]
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
    /// Rounds and spans per thread of the two-thread runs (longer slices: a thread's start
    /// and the scheduler's jitter weigh less).
    thread_rounds: usize,
    thread_slice: u64,
    out: Option<PathBuf>,
    only: Option<String>,
    spans: u64,
    /// Child mode: measure one variant's two-thread scaling under a global dispatcher.
    scaling_of: Option<String>,
    /// Child mode: the two threads' numbers in the `thread_local` crate kept in different
    /// buckets (see `Placement`).
    apart: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 30,
        slice: 20_000,
        threads: true,
        thread_rounds: 15,
        thread_slice: 200_000,
        out: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-results")),
        only: None,
        spans: 10_000_000,
        scaling_of: None,
        apart: false,
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
            "--thread-rounds" => a.thread_rounds = value().parse().expect("--thread-rounds N"),
            "--thread-slice" => a.thread_slice = value().parse().expect("--thread-slice N"),
            "--out" => a.out = Some(PathBuf::from(value())),
            "--only" => a.only = Some(value()),
            "--spans" => a.spans = value().parse().expect("--spans N"),
            "--scaling-of" => a.scaling_of = Some(value()),
            "--apart" => a.apart = true,
            _ => {} // cargo's and libtest's flags
        }
    }
    if !bench {
        a.rounds = 1;
        a.slice = 200;
        a.thread_rounds = 1;
        a.thread_slice = 200;
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
    /// One thread, in the round-robin (scoped dispatcher).
    one: Vec<f64>,
    /// One thread and two threads at once, each round back to back, in a process of the
    /// variant's own under a global dispatcher (see `scaling_child`); the two threads with
    /// adjacent numbers in the `thread_local` crate, and apart.
    two_one: Vec<f64>,
    two: Vec<f64>,
    apart_one: Vec<f64>,
    apart_two: Vec<f64>,
}

fn main() {
    let args = args();
    let suite = common::suite();
    if let Some(name) = &args.scaling_of {
        scaling_child(&suite, suite.get(name), &args);
        return;
    }
    if let Some(name) = &args.only {
        profile(&suite, suite.get(name), args.spans);
        return;
    }
    let vs = &suite.variants;
    eprintln!("load average at start: {}", loadavg());
    // Warm-up: every variant once (registers callsites, plans, label sets, handles).
    for v in vs {
        v.run(args.slice.min(20_000), 0);
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
        eprint!("\rround {}/{}", round + 1, args.rounds);
    }
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    // A variant that silently measured nothing would look cheap: each one that records a calls
    // counter must have counted every span it ran (warm-up and rounds).
    let ran = args.slice.min(20_000) + args.rounds as u64 * args.slice;
    for v in vs {
        if let Some(calls) = v.calls {
            let counted = suite.recorded(calls);
            assert_eq!(
                counted, ran,
                "{}: {calls} counted {counted} of {ran} spans",
                v.name
            );
        }
    }
    if args.threads {
        for (v, s) in vs.iter().zip(samples.iter_mut()) {
            if v.threaded {
                eprint!("\rtwo threads: {:<24}", v.name);
                (s.two_one, s.two) = scaling_in_child(v.name, &args, false);
                (s.apart_one, s.apart_two) = scaling_in_child(v.name, &args, true);
            }
        }
        eprintln!();
    }
    let report = Report::new(&suite, &samples, &args);
    println!("{}", report.table());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).expect("create the output folder");
        std::fs::write(dir.join("roundrobin.json"), report.json()).expect("write json");
        std::fs::write(dir.join("roundrobin.csv"), report.csv()).expect("write csv");
        eprintln!("wrote {}/roundrobin.{{json,csv}}", dir.display());
    }
}

/// Two-thread scaling needs a process per variant: an application installs its subscriber as
/// the global dispatcher, which spans do not reference-count, while the round-robin switches
/// dispatchers with `with_default`, whose shared reference count every span on every thread
/// writes twice (that alone stops the bare `Registry` from scaling). So each threaded variant
/// is measured by a child process of this binary (`--scaling-of NAME`) that installs it
/// globally and alternates one-thread and two-thread runs, round by round.
///
/// And twice, because of where the two threads' span stacks land. tracing-subscriber's
/// `Registry` keeps each thread's stack of entered spans in a `thread_local::ThreadLocal`,
/// which numbers threads (the smallest free number first) and stores their values side by
/// side in buckets of 1, 2, 4, 8, ... threads (0; 1 and 2; 3 to 6; ...). The main thread of an
/// application holds number 0 as soon as it enters a span; the next two threads are then
/// numbers 1 and 2, whose values share a bucket and a cache line, which both write on every
/// enter and exit. `--apart` keeps number 2 taken by an idle thread, so the two threads are 1
/// and 3, in different buckets.
fn scaling_in_child(name: &str, args: &Args, apart: bool) -> (Vec<f64>, Vec<f64>) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out = std::process::Command::new(exe)
        .args(["--bench", "--scaling-of", name])
        .args(["--thread-rounds", &args.thread_rounds.to_string()])
        .args(["--thread-slice", &args.thread_slice.to_string()])
        .args(apart.then_some("--apart"))
        .output()
        .expect("run the scaling child");
    assert!(
        out.status.success(),
        "scaling child for {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |tag: &str| -> Vec<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} line from the scaling child"))
            .split_whitespace()
            .map(|x| x.parse().expect("a number"))
            .collect()
    };
    (row("one:"), row("two:"))
}

/// The child's side of `scaling_in_child`: prints per-round ns per span for one thread and
/// for two threads at once (wall time over the spans of one thread).
fn scaling_child(suite: &Suite, v: &Variant, args: &Args) {
    // Thread number 0 for the main thread, as in an application (building the suite may have
    // taken it already).
    take_thread_number();
    // With `--apart`: numbers 1 and 2 taken, then 1 given back, so the workers get 1 and 3.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let _spacer = args.apart.then(|| {
        let hold = |release: std::sync::mpsc::Receiver<()>| {
            let (ready, taken) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                take_thread_number();
                let _ = ready.send(());
                let _ = release.recv();
            });
            let _ = taken.recv();
            t
        };
        let (release_one, one_released) = std::sync::mpsc::channel::<()>();
        let one = hold(one_released);
        let spacer = hold(stopped);
        drop(release_one);
        one.join().expect("thread number 1");
        spacer
    });
    v.install_global();
    v.run_threads(1, 20_000, true);
    v.run_threads(2, 20_000, true);
    suite.drain();
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for round in 0..args.thread_rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        for k in 0..2 {
            let threads = 1 + (k + round) % 2;
            let t = v.run_threads(threads, args.thread_slice, true);
            suite.drain();
            let ns = t.as_nanos() as f64 / args.thread_slice as f64;
            if threads == 1 {
                one.push(ns)
            } else {
                two.push(ns)
            }
        }
    }
    let join = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("one: {}", join(&one));
    println!("two: {}", join(&two));
    drop(stop);
}

/// Makes the calling thread take a number in the `thread_local` crate (kept until it exits).
fn take_thread_number() {
    static ANY: thread_local::ThreadLocal<()> = thread_local::ThreadLocal::new();
    ANY.get_or(|| ());
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
    /// Two threads, span stacks adjacent (as in an application; see `scaling_in_child`).
    two: Option<Scaling>,
    /// Two threads, span stacks apart.
    apart: Option<Scaling>,
}

/// The two-thread columns of the CSV and JSON output, in the order of `Row::scaling_cells`.
const SCALING_COLUMNS: [&str; 8] = [
    "two_thread_ns_per_span",
    "scaling",
    "scaling_p25",
    "scaling_p75",
    "apart_two_thread_ns_per_span",
    "apart_scaling",
    "apart_scaling_p25",
    "apart_scaling_p75",
];

impl Row {
    /// The two-thread figures (adjacent, then apart), `None` where not measured.
    fn scaling_cells(&self) -> [Option<f64>; 8] {
        let cells = |s: Option<&Scaling>| {
            [
                s.map(|x| x.two_ns),
                s.map(|x| x.scaling),
                s.map(|x| x.p25),
                s.map(|x| x.p75),
            ]
        };
        let (two, apart) = (cells(self.two.as_ref()), cells(self.apart.as_ref()));
        [
            two[0], two[1], two[2], two[3], apart[0], apart[1], apart[2], apart[3],
        ]
    }
}

/// A two-thread measurement: ns per span per thread, and throughput over one thread.
struct Scaling {
    two_ns: f64,
    scaling: f64,
    p25: f64,
    p75: f64,
}

impl Scaling {
    fn of(one: &[f64], two: &[f64]) -> Option<Scaling> {
        if two.is_empty() {
            return None;
        }
        // Throughput of 2 threads over 1: 2 spans per `two` wall time vs 1 per `one`.
        let mut sc: Vec<f64> = one.iter().zip(two).map(|(o, t)| 2.0 * o / t).collect();
        Some(Scaling {
            two_ns: median(&mut two.to_vec()),
            scaling: median(&mut sc),
            p25: quantile(&mut sc, 0.25),
            p75: quantile(&mut sc, 0.75),
        })
    }
}

struct Report {
    rows: Vec<Row>,
    rounds: usize,
    slice: u64,
    thread_rounds: usize,
    thread_slice: u64,
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
                    two: Scaling::of(&s.two_one, &s.two),
                    apart: Scaling::of(&s.apart_one, &s.apart_two),
                }
            })
            .collect();
        Report {
            rows,
            rounds: args.rounds,
            slice: args.slice,
            thread_rounds: args.thread_rounds,
            thread_slice: args.thread_slice,
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
            "{:<24} {:>8} {:>16} {:>9} {:>10} {:>10} {:>9} {:>9}",
            "variant", "ns/span", "ratio", "added ns", "÷handles", "2thr ns", "scaling", "apart"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<24} {:>8.1} {:>5.2} ({:.2}–{:.2}) {:>9.1} {:>10.2} {:>10} {:>9} {:>9}",
                r.name,
                r.ns,
                r.ratio,
                r.ratio_p25,
                r.ratio_p75,
                r.added,
                r.added_vs_handles,
                r.two
                    .as_ref()
                    .map_or("-".into(), |x| format!("{:.1}", x.two_ns)),
                r.two
                    .as_ref()
                    .map_or("-".into(), |x| format!("{:.2}", x.scaling)),
                r.apart
                    .as_ref()
                    .map_or("-".into(), |x| format!("{:.2}", x.scaling)),
            );
        }
        out
    }

    fn csv(&self) -> String {
        let mut out = format!(
            "variant,kind,baseline,ns_per_span,ns_p25,ns_p75,ratio_to_registry_noop,ratio_p25,ratio_p75,\
             added_ns_over_own_baseline,added_vs_handles,{}\n",
            SCALING_COLUMNS.join(",")
        );
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
        for r in &self.rows {
            let scaling: Vec<String> = r.scaling_cells().into_iter().map(opt).collect();
            let _ = writeln!(
                out,
                "{},{},{},{:.2},{:.2},{:.2},{:.4},{:.4},{:.4},{:.2},{:.4},{}",
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
                scaling.join(","),
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
            "\n  }},\n  \"rounds\": {},\n  \"slice\": {},\n  \"thread_rounds\": {},\n  \
             \"thread_slice\": {},\n  \"baseline\": \"{BASELINE}\",\n  \"variants\": [",
            self.rounds, self.slice, self.thread_rounds, self.thread_slice
        );
        for (i, r) in self.rows.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let scaling: String = SCALING_COLUMNS
                .iter()
                .zip(r.scaling_cells())
                .map(|(k, v)| format!(", \"{k}\": {}", opt(v)))
                .collect();
            let _ = write!(
                out,
                "{sep}\n    {{\"name\": \"{}\", \"kind\": \"{}\", \"baseline\": \"{}\", \"describe\": \"{}\", \
                 \"ns_per_span\": {}, \"ns_p25\": {}, \"ns_p75\": {}, \"ratio\": {}, \"ratio_p25\": {}, \
                 \"ratio_p75\": {}, \"added_ns\": {}, \"added_vs_handles\": {}{scaling}}}",
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
