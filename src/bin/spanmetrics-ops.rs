//! `spanmetrics-ops`: the Prometheus rules and the Grafana dashboard of a configuration file.
//!
//! ```sh
//! cargo run --features cli --bin spanmetrics-ops -- rules spanmetrics.toml > spanmetrics-rules.yml
//! cargo run --features cli --bin spanmetrics-ops -- dashboard spanmetrics.toml > dashboard.json
//! ```

use std::process::ExitCode;
use std::time::Duration;

use tracing_spanmetrics::SpanMetrics;
use tracing_spanmetrics::operations::{DashboardOptions, Operations, RuleOptions};

const USAGE: &str = "\
spanmetrics-ops: Prometheus rules and a Grafana dashboard from a tracing-spanmetrics configuration

USAGE:
    spanmetrics-ops rules CONFIG.toml [--interval SECS]
    spanmetrics-ops dashboard CONFIG.toml [--title TITLE] [--uid UID]

    rules       the rule file (YAML) on stdout: every objective's recorded error ratios and its
                four burn-rate alerts (load it with `rule_files:` in prometheus.yml)
    dashboard   the Grafana dashboard (JSON) on stdout (import it in Grafana)

OPTIONS:
    --interval SECS   evaluation interval of the rule groups [default: Prometheus's global one]
    --title TITLE     the dashboard's title [default: Span metrics]
    --uid UID         the dashboard's uid [default: tracing-spanmetrics]
    -h, --help        print this help

An invalid configuration is one line on stderr (file:line:column: problem) and exit code 2.
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(USAGE.to_owned());
    }
    let (command, rest) = args.split_first().expect("not empty");
    let Some((path, options)) = rest.split_first() else {
        return Err(format!(
            "`{command}` needs a configuration file (try --help)"
        ));
    };
    let builder = SpanMetrics::builder()
        .toml_file(path)
        .map_err(|e| e.to_string())?;
    let ops = Operations::new(&builder).map_err(|e| e.to_string())?;
    let pairs = options.chunks(2).map(|pair| match pair {
        [flag, value] => Ok((flag.as_str(), value.as_str())),
        [flag] => Err(format!("{flag} needs a value")),
        _ => unreachable!("chunks of two"),
    });
    match command.as_str() {
        "rules" => {
            let mut opts = RuleOptions::default();
            for pair in pairs {
                match pair? {
                    ("--interval", v) => {
                        let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                            format!("--interval: `{v}` is not a whole, positive number of seconds")
                        })?;
                        opts = opts.interval(Duration::from_secs(secs));
                    }
                    (other, _) => {
                        return Err(format!("unknown option `{other}` for rules (try --help)"));
                    }
                }
            }
            Ok(ops.rules(&opts))
        }
        "dashboard" => {
            let mut opts = DashboardOptions::default();
            for pair in pairs {
                match pair? {
                    ("--title", v) => opts = opts.title(v),
                    ("--uid", v) => opts = opts.uid(v),
                    (other, _) => {
                        return Err(format!(
                            "unknown option `{other}` for dashboard (try --help)"
                        ));
                    }
                }
            }
            Ok(ops.dashboard(&opts))
        }
        other => Err(format!(
            "unknown command `{other}`: expected `rules` or `dashboard` (try --help)"
        )),
    }
}
