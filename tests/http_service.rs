//! The `http_service` example (an axum service behind tower-http's `TraceLayer`) as a process,
//! over real HTTP on loopback: after a fixed load every series of every family holds exactly
//! what the requests imply; and a real Prometheus scraping it answers a RED dashboard's PromQL
//! and the queries Jaeger's Monitor tab sends for the spanmetrics connector's families.
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use example_bin::{
    Killed, encode, example_binary, free_port, get, poll, skip_or_fail, start_prometheus,
};

/// The RED families as this crate exports them today, in the unit below: the names Jaeger's
/// queries are built from (its `calls` and `duration` with normalised names, and its default
/// latency unit, milliseconds). Change these when
/// the default unit or the names change.
const RED_CALLS: &str = "traces_span_metrics_calls_total";
const RED_DURATION: &str = "traces_span_metrics_duration_milliseconds";
/// How many of the RED duration family's unit make a second.
const RED_UNITS_PER_SECOND: f64 = 1000.0;

/// The example's `service_name`.
const SERVICE: &str = "http-service";

/// Labels as a sorted map, for exact comparison.
type Labels = BTreeMap<String, String>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One sample line of the text exposition: `name{k="v",…} value`.
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next()?.1, '"', "a quoted label value in {line}");
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.trim().split(' ').next()?.parse().ok()?;
    Some((name, labels, value))
}

/// Every sample of an exposition.
fn samples(exposition: &str) -> Vec<(String, Labels, f64)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("an unreadable sample line: {l}")))
        .collect()
}

/// The samples of `name`, by label set (without `le`: for `_count` and gauges).
fn family(all: &[(String, Labels, f64)], name: &str) -> BTreeMap<Labels, f64> {
    all.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, l, v)| (l.clone(), *v))
        .collect()
}

/// The example on free loopback ports with `args`, its stdout piped; the app's and the
/// metrics' addresses.
fn start_example(args: &[&str]) -> (Killed, SocketAddr, SocketAddr) {
    let app: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(example_binary("http_service"))
        .args([
            "--listen",
            &app.to_string(),
            "--metrics",
            &metrics.to_string(),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    (Killed(child, "http_service example"), app, metrics)
}

/// Two rounds of the example's mix (`examples/http_service/load.rs`, 12 requests a round).
const REQUESTS: u64 = 24;

#[test]
fn after_a_fixed_load_every_series_is_exact() {
    let (mut example, _app, metrics) = start_example(&[
        "--requests",
        &REQUESTS.to_string(),
        "--rate",
        "200",
        "--duration",
        "120",
    ]);
    let stdout = example.0.stdout.take().unwrap();
    let done = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("load done:"))
        .expect("the example reports the end of its load");
    assert_eq!(done, format!("load done: {REQUESTS} requests"));

    // A response's last byte can reach the client just before the server closes its span:
    // wait until every request span has closed, then everything must be exact.
    let exposition = poll(Duration::from_secs(10), Duration::from_millis(50), || {
        let (status, body) = get(metrics, "/metrics").ok()?;
        let all = samples(&body);
        let closed: f64 = family(&all, "http_server_request_duration_seconds_count")
            .values()
            .sum();
        (status == 200 && closed == REQUESTS as f64).then_some(all)
    })
    .expect("all 24 request spans closed within 10 s");

    let route_method_status = |route: &str, method: &str, class: &str| {
        labels(&[
            ("route", route),
            ("method", method),
            ("status_class", class),
        ])
    };
    let orders = "/orders/{order_id}/items/{item_id}";
    // Requests by route template, method and status class: never the raw path.
    assert_eq!(
        family(&exposition, "http_server_request_duration_seconds_count"),
        BTreeMap::from([
            (route_method_status("/users/{id}", "GET", "2xx"), 2.0),
            (route_method_status("/users/{id}", "GET", "4xx"), 4.0),
            (route_method_status("/users", "POST", "2xx"), 2.0),
            (route_method_status("/users", "POST", "4xx"), 2.0),
            (route_method_status(orders, "GET", "2xx"), 2.0),
            (route_method_status(orders, "GET", "5xx"), 2.0),
            (route_method_status("/quotes/{symbol}", "GET", "2xx"), 2.0),
            (route_method_status("/quotes/{symbol}", "GET", "5xx"), 2.0),
            (route_method_status("/reports/{id}", "GET", "2xx"), 2.0),
            (route_method_status("/healthz", "GET", "2xx"), 2.0),
            (route_method_status("unmatched", "GET", "4xx"), 2.0),
        ])
    );
    let bucket = |name: &str, extra: &[(&str, &str)], le: &str| {
        let mut want = labels(extra);
        want.insert("le".into(), le.into());
        family(&exposition, name)
            .get(&want)
            .copied()
            .unwrap_or_else(|| panic!("no {name} sample with {want:?}"))
    };
    let reports_ok = [
        ("route", "/reports/{id}"),
        ("method", "GET"),
        ("status_class", "2xx"),
    ];
    let reports = [("route", "/reports/{id}"), ("method", "GET")];
    // A report streams for 300 ms, but its head is ready at once.
    let duration = "http_server_request_duration_seconds_bucket";
    assert_eq!(bucket(duration, &reports_ok, "0.25"), 0.0);
    assert_eq!(bucket(duration, &reports_ok, "+Inf"), 2.0);
    let ttfb = "http_server_time_to_first_byte_seconds_bucket";
    assert_eq!(bucket(ttfb, &reports, "0.25"), 2.0);

    let route_method = |route: &str, method: &str| labels(&[("route", route), ("method", method)]);
    let per_route = [
        (route_method("/users/{id}", "GET"), 6.0),
        (route_method("/users", "POST"), 4.0),
        (route_method(orders, "GET"), 4.0),
        (route_method("/quotes/{symbol}", "GET"), 4.0),
        (route_method("/reports/{id}", "GET"), 2.0),
        (route_method("/healthz", "GET"), 2.0),
        (route_method("unmatched", "GET"), 2.0),
    ];
    // Time to first byte: every response had a head.
    assert_eq!(
        family(&exposition, "http_server_time_to_first_byte_seconds_count"),
        BTreeMap::from(per_route.clone())
    );
    // In flight: every route seen, none in flight now.
    assert_eq!(
        family(&exposition, "http_server_active_requests"),
        per_route.iter().map(|(l, _)| (l.clone(), 0.0)).collect()
    );
    // Handler errors, from `#[instrument(err)]`: the 404, the empty name, the failed query,
    // the failed downstream call. axum's own 400 for `/users/abc` ran no handler.
    let handler = |route: &str, handler: &str| labels(&[("route", route), ("handler", handler)]);
    assert_eq!(
        family(&exposition, "http_server_handler_errors_total"),
        BTreeMap::from([
            (handler("/users/{id}", "get_user"), 2.0),
            (handler("/users", "create_user"), 2.0),
            (handler(orders, "get_order_item"), 2.0),
            (handler("/quotes/{symbol}", "get_quote"), 2.0),
        ])
    );
    // The database spans.
    let query = |op: &str, table: &str, outcome: &str| {
        labels(&[
            ("db_system", "sqlite"),
            ("operation", op),
            ("collection", table),
            ("outcome", outcome),
        ])
    };
    assert_eq!(
        family(&exposition, "db_client_operation_duration_seconds_count"),
        BTreeMap::from([
            (query("SELECT", "users", "success"), 4.0),
            (query("INSERT", "users", "success"), 2.0),
            (query("SELECT", "order_items", "success"), 2.0),
            (query("SELECT", "order_items", "error"), 2.0),
        ])
    );
    // The client span of the downstream call.
    let client = |class: &str| {
        labels(&[
            ("server_address", "127.0.0.1"),
            ("method", "GET"),
            ("status_class", class),
        ])
    };
    assert_eq!(
        family(&exposition, "http_client_request_duration_seconds_count"),
        BTreeMap::from([(client("2xx"), 2.0), (client("5xx"), 2.0)])
    );

    // The spanmetrics connector's RED families, over every span.
    let red = |span: &str, kind: &str, status: &str| {
        labels(&[
            ("service_name", SERVICE),
            ("span_name", span),
            ("span_kind", &format!("SPAN_KIND_{kind}")),
            ("status_code", &format!("STATUS_CODE_{status}")),
        ])
    };
    let expected_red = BTreeMap::from([
        (red("GET /users/{id}", "SERVER", "UNSET"), 6.0),
        (red("POST /users", "SERVER", "UNSET"), 4.0),
        (red(&format!("GET {orders}"), "SERVER", "UNSET"), 2.0),
        (red(&format!("GET {orders}"), "SERVER", "ERROR"), 2.0),
        (red("GET /quotes/{symbol}", "SERVER", "UNSET"), 2.0),
        (red("GET /quotes/{symbol}", "SERVER", "ERROR"), 2.0),
        (red("GET /reports/{id}", "SERVER", "UNSET"), 2.0),
        (red("GET /healthz", "SERVER", "UNSET"), 2.0),
        (red("GET", "SERVER", "UNSET"), 2.0),
        (red("get_user", "INTERNAL", "UNSET"), 2.0),
        (red("get_user", "INTERNAL", "ERROR"), 2.0),
        (red("create_user", "INTERNAL", "UNSET"), 2.0),
        (red("create_user", "INTERNAL", "ERROR"), 2.0),
        (red("get_order_item", "INTERNAL", "UNSET"), 2.0),
        (red("get_order_item", "INTERNAL", "ERROR"), 2.0),
        (red("get_quote", "INTERNAL", "UNSET"), 2.0),
        (red("get_quote", "INTERNAL", "ERROR"), 2.0),
        (red("get_report", "INTERNAL", "UNSET"), 2.0),
        (red("SELECT users", "INTERNAL", "UNSET"), 4.0),
        (red("INSERT users", "INTERNAL", "UNSET"), 2.0),
        (red("SELECT order_items", "INTERNAL", "UNSET"), 2.0),
        (red("SELECT order_items", "INTERNAL", "ERROR"), 2.0),
        (red("GET /prices/{symbol}", "CLIENT", "UNSET"), 2.0),
        (red("GET /prices/{symbol}", "CLIENT", "ERROR"), 2.0),
    ]);
    assert_eq!(family(&exposition, RED_CALLS), expected_red);
    assert_eq!(
        family(&exposition, &format!("{RED_DURATION}_count")),
        expected_red
    );
}

/// An instant query's result: each series' labels and value.
fn query_series(prometheus: SocketAddr, promql: &str) -> Option<Vec<(Labels, f64)>> {
    let (status, body) = get(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    )
    .ok()?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    if status != 200 || json["status"] != "success" {
        return None;
    }
    json["data"]["result"]
        .as_array()?
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<Option<Labels>>()?;
            let value = series["value"][1].as_str()?.parse().ok()?;
            Some((labels, value))
        })
        .collect()
}

/// The value of the series of `result` whose `key` label is `value`.
fn by(result: &[(Labels, f64)], key: &str, value: &str) -> f64 {
    result
        .iter()
        .find(|(l, _)| l.get(key).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no series with {key}={value:?} in {result:?}"))
        .1
}

fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got}, expected {want} ± {tolerance}"
    );
}

/// The load's rate (requests a second) and the window every query rates over.
const RATE: f64 = 20.0;
const WINDOW: &str = "[20s]";

#[test]
fn prometheus_answers_red_dashboard_and_jaeger_monitor_queries() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("the `prometheus` server is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "spanmetrics-http-service-prometheus-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();

    let (_example, _app, metrics) = start_example(&[
        "--load",
        "300",
        "--rate",
        &RATE.to_string(),
        "--duration",
        "300",
    ]);
    let up = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        get(metrics, "/metrics").ok().filter(|(s, _)| *s == 200)
    });
    assert!(
        up.is_some(),
        "the example did not serve /metrics within 30 s"
    );
    let (prometheus, _prometheus) = start_prometheus(&dir, "http_service", metrics);

    // Wait until Prometheus holds a full window of scrapes under load.
    let history = format!("count_over_time(up{{job=\"http_service\"}}{WINDOW})");
    let full = poll(Duration::from_secs(90), Duration::from_secs(1), || {
        let n = example_bin::query(prometheus, &history)?;
        // 20 scrapes a window; a busy machine may miss one or two.
        (n.first().copied()? >= 18.0).then_some(())
    });
    assert!(
        full.is_some(),
        "Prometheus did not scrape the example for 20 s within 90 s"
    );
    let ask = |promql: &str| {
        query_series(prometheus, promql)
            .unwrap_or_else(|| panic!("Prometheus did not answer {promql}"))
    };

    // A RED dashboard. Request rate by route: the mix's share of the load's rate.
    let count = "http_server_request_duration_seconds_count";
    let rate = ask(&format!("sum by (route) (rate({count}{WINDOW}))"));
    let total: f64 = rate.iter().map(|(_, v)| v).sum();
    assert_near("requests per second", total, RATE, RATE * 0.25);
    for (route, per_round) in [
        ("/users/{id}", 3.0),
        ("/users", 2.0),
        ("/orders/{order_id}/items/{item_id}", 2.0),
        ("/quotes/{symbol}", 2.0),
        ("/reports/{id}", 1.0),
        ("/healthz", 1.0),
        ("unmatched", 1.0),
    ] {
        assert_near(
            &format!("{route}'s share of the requests"),
            by(&rate, "route", route) / total,
            per_round / 12.0,
            0.03,
        );
    }
    assert_eq!(rate.len(), 7, "one series per route template: {rate:?}");

    // Error ratio by route (5xx over all; routes without errors read 0, not nothing).
    let errors = ask(&format!(
        "(sum by (route) (rate({count}{{status_class=\"5xx\"}}{WINDOW})) \
         or sum by (route) (rate({count}{WINDOW})) * 0) \
         / sum by (route) (rate({count}{WINDOW}))"
    ));
    assert_near(
        "error ratio of the orders route",
        by(&errors, "route", "/orders/{order_id}/items/{item_id}"),
        0.5,
        0.1,
    );
    assert_near(
        "error ratio of the quotes route",
        by(&errors, "route", "/quotes/{symbol}"),
        0.5,
        0.1,
    );
    for route in [
        "/users/{id}",
        "/users",
        "/reports/{id}",
        "/healthz",
        "unmatched",
    ] {
        assert_eq!(by(&errors, "route", route), 0.0, "error ratio of {route}");
    }

    // p99 by route: a report takes 300 ms (the 0.25–0.5 s bucket); its head and a health
    // check come well under that.
    let p99 = |family: &str, route: &str| {
        let answer = ask(&format!(
            "histogram_quantile(0.99, sum by (route, le) \
             (rate({family}_bucket{{route=\"{route}\"}}{WINDOW})))"
        ));
        by(&answer, "route", route)
    };
    let reports = p99("http_server_request_duration_seconds", "/reports/{id}");
    assert!(
        (0.25..=0.5).contains(&reports),
        "p99 of a report: {reports} s"
    );
    let health = p99("http_server_request_duration_seconds", "/healthz");
    assert!(health <= 0.25, "p99 of a health check: {health} s");
    let head = p99("http_server_time_to_first_byte_seconds", "/reports/{id}");
    assert!(
        head <= 0.25,
        "p99 of a report's time to first byte: {head} s"
    );

    // Jaeger's Monitor tab, as its Prometheus reader builds the queries (grouped by operation,
    // server spans).
    let filter = format!("service_name =~ \"{SERVICE}\", span_kind =~ \"SPAN_KIND_SERVER\"");
    let calls = ask(&format!(
        "sum(rate({RED_CALLS}{{{filter}}}{WINDOW})) by (service_name,span_name)"
    ));
    let server_total: f64 = calls.iter().map(|(_, v)| v).sum();
    assert_near("server calls per second", server_total, total, total * 0.05);
    assert_near(
        "calls to GET /users/{id}",
        by(&calls, "span_name", "GET /users/{id}") / server_total,
        3.0 / 12.0,
        0.03,
    );
    assert_eq!(
        calls.len(),
        7,
        "one operation per route, and GET: {calls:?}"
    );
    let error_rate = ask(&format!(
        "sum(rate({RED_CALLS}{{service_name =~ \"{SERVICE}\", status_code = \"STATUS_CODE_ERROR\", \
         span_kind =~ \"SPAN_KIND_SERVER\"}}{WINDOW})) by (service_name,span_name) \
         / sum(rate({RED_CALLS}{{{filter}}}{WINDOW})) by (service_name,span_name)"
    ));
    let mut failing: Vec<&str> = error_rate
        .iter()
        .map(|(l, _)| l["span_name"].as_str())
        .collect();
    failing.sort_unstable();
    assert_eq!(
        failing,
        [
            "GET /orders/{order_id}/items/{item_id}",
            "GET /quotes/{symbol}"
        ]
    );
    for (_, ratio) in &error_rate {
        assert_near(
            "Jaeger's error rate of a failing operation",
            *ratio,
            0.5,
            0.1,
        );
    }
    let latency = ask(&format!(
        "histogram_quantile(0.95, sum(rate({RED_DURATION}_bucket{{{filter}}}{WINDOW})) \
         by (service_name,span_name,le))"
    ));
    // The connector's buckets: a report (300 ms) lies in 0.2–0.4 s.
    let report = by(&latency, "span_name", "GET /reports/{id}") / RED_UNITS_PER_SECOND;
    assert!(
        (0.2..=0.4).contains(&report),
        "Jaeger's p95 of a report: {report} s"
    );
    let health = by(&latency, "span_name", "GET /healthz") / RED_UNITS_PER_SECOND;
    assert!(health <= 0.2, "Jaeger's p95 of a health check: {health} s");
}

#[test]
fn help_and_bad_flags_are_answered_on_the_command_line() {
    let run = |args: &[&str]| {
        Command::new(example_binary("http_service"))
            .args(args)
            .output()
            .expect("the example runs")
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let usage = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--listen ADDR",
        "--metrics ADDR",
        "--duration SECS",
        "--load SECS",
        "--requests N",
        "--rate PER_SEC",
    ] {
        assert!(usage.contains(flag), "--help lacks {flag}:\n{usage}");
    }
    for (args, message) in [
        (
            &["--load", "soon"][..],
            "http_service: --load: `soon` is not a positive number of seconds\n",
        ),
        (
            &["--requests", "-3"][..],
            "http_service: --requests: `-3` is not a whole number\n",
        ),
        (
            &["--rate", "0"][..],
            "http_service: --rate: `0` is not a positive number\n",
        ),
        (
            &["--metrics", "nowhere"][..],
            "http_service: --metrics: `nowhere` is not an address like 127.0.0.1:8080\n",
        ),
        (
            &["--duration"][..],
            "http_service: --duration needs a value\n",
        ),
        (
            &["--verbose"][..],
            "http_service: unknown argument `--verbose` (try --help)\n",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8(out.stderr).unwrap(), message, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
