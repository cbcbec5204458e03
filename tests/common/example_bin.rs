//! Helpers for tests that run the `restate` example as a process: locating (or building) its
//! binary, free loopback ports, plain HTTP GETs, and children killed when the test ends.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The `restate` example's binary: see [`example_binary`].
pub fn restate_binary() -> PathBuf {
    example_binary("restate")
}

/// An example's binary, next to this test's own binary (`cargo test` builds every example);
/// built with `cargo build --example NAME` when it is not there.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo can be run");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(bin.exists(), "no example binary at {}", bin.display());
    bin
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A child process killed (and reaped) when dropped, even if the test panics.
pub struct Killed(pub Child, pub &'static str);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over HTTP/1.0: `(status, body)`.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Calls `f` every `every` until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Percent-encodes a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether this runs under a CI service: `CI` set to anything but empty, `0` or `false` (services
/// set `true` or `1`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Prometheus tools missing. Under CI (see [`under_ci`]; `.ci/run` installs them) or with
/// `SPANMETRICS_REQUIRE_PROMETHEUS=1` that is a failure; elsewhere (a machine with only Rust, as
/// the README's test command promises to work on) the check is skipped with a loud line on
/// stderr. `SPANMETRICS_SKIP_PROMETHEUS=1` skips it knowingly everywhere.
/// Returns normally only when skipping.
pub fn skip_or_fail(why: &str) {
    let env = |k: &str| std::env::var(k).ok();
    let skip = env("SPANMETRICS_SKIP_PROMETHEUS").as_deref() == Some("1");
    let required = under_ci() || env("SPANMETRICS_REQUIRE_PROMETHEUS").as_deref() == Some("1");
    if skip || !required {
        // Straight to the process's stderr: libtest would swallow `eprintln!` of a passing test.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: {why}. Install Debian's `prometheus` package (it ships promtool) \
             to run this check; CI requires it. ***\n"
        );
    } else {
        panic!(
            "{why}. Install Debian's `prometheus` package (it ships promtool; .ci/run does), \
             or set SPANMETRICS_SKIP_PROMETHEUS=1 to skip this check knowingly."
        );
    }
}

/// The numbers of an instant query's result vector (`data.result[*].value[1]`).
pub fn values(json: &str) -> Vec<f64> {
    json.split("\"value\":[")
        .skip(1)
        .filter_map(|rest| {
            let (_, v) = rest.split_once(",\"")?;
            v.split('"').next()?.parse().ok()
        })
        .collect()
}

pub fn query(prometheus: SocketAddr, promql: &str) -> Option<Vec<f64>> {
    let (status, body) = get(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    )
    .ok()?;
    (status == 200 && body.contains("\"status\":\"success\"")).then(|| values(&body))
}

/// A Prometheus server on a free loopback port, scraping `target` every second as job `job`,
/// with its configuration, data and log under `dir`. Killed when the returned guard drops.
pub fn start_prometheus(
    dir: &std::path::Path,
    job: &str,
    target: SocketAddr,
) -> (SocketAddr, Killed) {
    start_prometheus_with(dir, job, target, None, &[])
}

/// Like [`start_prometheus`], also loading the rule file `rules` (evaluated every second).
pub fn start_prometheus_with_rules(
    dir: &std::path::Path,
    job: &str,
    target: SocketAddr,
    rules: Option<&std::path::Path>,
) -> (SocketAddr, Killed) {
    start_prometheus_with(dir, job, target, rules, &[])
}

/// [`start_prometheus`] with a rule file and more command-line flags
/// (`--enable-feature=exemplar-storage`).
pub fn start_prometheus_with(
    dir: &std::path::Path,
    job: &str,
    target: SocketAddr,
    rules: Option<&std::path::Path>,
    flags: &[&str],
) -> (SocketAddr, Killed) {
    let config = dir.join("prometheus.yml");
    let rule_files = rules.map_or(String::new(), |r| {
        format!("rule_files:\n  - '{}'\n", r.display())
    });
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .args(flags)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    (listen, Killed(child, "prometheus"))
}
