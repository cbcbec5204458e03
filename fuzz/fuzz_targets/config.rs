//! Arbitrary text as a configuration file: an error or a layer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracing_spanmetrics::SpanMetrics;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SpanMetrics::builder().toml(text) {
        Ok(builder) => {
            // What the file front end accepted, the builder must build.
            let layer = builder.build().expect("a validated file builds");
            let _ = layer.histograms();
        }
        Err(e) => {
            // Errors always say something.
            assert!(!e.to_string().is_empty());
        }
    }
});
