//! The `own_server` example: span metrics served from the application's own HTTP server, with
//! a recorder made by `exporter::build_with_own_recorder`, over real HTTP on loopback.
#![cfg(feature = "prometheus")]

#[path = "common/example_bin.rs"]
mod example_bin;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use example_bin::{Killed, example_binary, free_port, get, poll};

#[test]
fn the_applications_own_server_serves_span_metrics() {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new(example_binary("own_server"))
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("the example starts");
    let _child = Killed(child, "own_server");
    // Jobs run every ~50 ms; wait for both queues to have finished some.
    let text = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        let (status, body) = get(addr, "/metrics").ok()?;
        (status == 200
            && body.contains("job_duration_seconds_count{queue=\"bulk\",result=\"success\"}")
            && body.contains("job_duration_seconds_count{queue=\"fast\",result=\"success\"}"))
        .then_some(body)
    })
    .expect("/metrics shows both queues within 30 s");
    assert!(
        text.contains("# TYPE job_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP job_duration_seconds One job, start to end\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "job_duration_seconds_bucket{queue=\"fast\",result=\"success\",le=\"0.005\"}"
        ),
        "{text}"
    );
    assert_eq!(get(addr, "/elsewhere").expect("an answer").0, 404);
}
