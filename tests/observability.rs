//! Observability of a running engine: Prometheus counters scraped from `/metrics`
//! during a run agree with the journal, `/healthz` answers, logs are JSON with each
//! event's identity, and a non-loopback metrics address must be asked for.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alchemiser::journal::{Journal, SyncMode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n",
            root().join("examples/data").display().to_string(),
            root()
                .join("examples/strategies/default.clj")
                .display()
                .to_string(),
        ) + extra,
    )
    .unwrap();
    cfg
}

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// `name{labels} value` lines of one metric.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn scraped_counters_agree_with_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--once", "--linger", "20", "--config"])
        .arg(&cfg)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Each event goes once to every actor that consumes its type.
    use alchemiser::actors::{execution, portfolio, reconciliation, recovery, strategy};
    let consumers = [
        strategy::CONSUMES,
        portfolio::CONSUMES,
        execution::CONSUMES,
        reconciliation::CONSUMES,
        recovery::CONSUMES,
    ];
    let journal_path = dir.path().join("state/journal.sqlite");
    let expected_deliveries = || -> f64 {
        let journal = Journal::open(&journal_path, SyncMode::Normal).unwrap();
        journal
            .entries()
            .unwrap()
            .iter()
            .map(|e| {
                consumers
                    .iter()
                    .filter(|c| c.contains(&e.envelope.kind()))
                    .count() as f64
            })
            .sum()
    };
    // The workflow counts as completed when the broker accepts its last event, which is
    // delivered a moment later (after its commit): wait for the deliveries to catch up
    // with the journal (more than the journal would never match).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scraped = None;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((status, body)) = get(port, "/metrics") {
            if body.contains("workflows_total{status=\"completed\"} 1") {
                assert!(status.contains("200"), "{status}");
                let delivered = samples(&body, "event_delivered_total")["event_delivered_total"];
                let expected = expected_deliveries();
                if delivered == expected {
                    scraped = Some(body);
                    break;
                }
                last = Some((delivered, expected));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = get(port, "/healthz");
    let _ = child.kill();
    let _ = child.wait();
    let text = scraped.unwrap_or_else(|| {
        panic!("no scrape with the workflow completed and deliveries (scraped, from the journal) matching: {last:?}")
    });
    let (status, body) = health.expect("/healthz answered");
    assert!(status.contains("200"), "{status} {body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["broker"]["actors"].as_array().unwrap().len(), 5);

    let journal =
        Journal::open(&dir.path().join("state/journal.sqlite"), SyncMode::Normal).unwrap();
    let mut by_type: BTreeMap<String, f64> = BTreeMap::new();
    for e in journal.entries().unwrap() {
        *by_type
            .entry(format!(
                "event_published_total{{event_type=\"{}\"}}",
                e.envelope.event_type()
            ))
            .or_default() += 1.0;
    }
    // Every event type has a series from the start; those that never happened read 0.
    let mut published = samples(&text, "event_published_total");
    published.retain(|_, v| *v > 0.0);
    assert_eq!(published, by_type, "{text}");
    let submitted = by_type
        .get("event_published_total{event_type=\"execution.order.submitted.v1\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(submitted >= 1.0);
    let venue = samples(&text, "venue_requests_total");
    assert_eq!(
        venue.get("venue_requests_total{endpoint=\"submit\",status=\"ok\"}"),
        Some(&submitted),
        "{venue:?}"
    );
    let orders: f64 = samples(&text, "orders_total").values().sum();
    assert_eq!(orders, submitted, "every submitted order settled once");
    assert_eq!(
        samples(&text, "event_delivered_total")["event_delivered_total"],
        expected_deliveries()
    );
    let latency = samples(&text, "event_handler_latency_ms_count");
    assert!(
        latency.contains_key(
            "event_handler_latency_ms_count{actor=\"strategy\",event_type=\"workflow.started.v1\"}"
        ),
        "{latency:?}"
    );
    assert_eq!(
        samples(&text, "dead_letters_total")["dead_letters_total"],
        0.0
    );
}

#[test]
fn json_logs_carry_each_event_and_handling() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[metrics]\nenabled = false\n[log]\nformat = \"json\"\n",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn,alchemiser=debug")
        .output()
        .unwrap();
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let published: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "published")
        .collect();
    assert!(published.len() >= 10, "{}", published.len());
    for l in &published {
        for key in [
            "event_id",
            "event_type",
            "correlation_id",
            "causation_id",
            "source",
        ] {
            assert!(l["fields"].get(key).is_some(), "{key} missing: {l}");
        }
    }
    let handled: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "handled")
        .collect();
    assert!(handled
        .iter()
        .any(|l| l["fields"]["actor"] == "execution" && l["fields"]["latency_ms"].is_number()));
}

#[test]
fn a_non_loopback_metrics_address_must_be_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[metrics]\nlisten = \"0.0.0.0:9464\"\n");
    let o = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("metrics.listen") && err.contains("allow_remote"),
        "{err}"
    );
}

/// A second engine on the same metrics address stops before trading, says why and
/// exits 2: no panic on the way out (its broker had just started).
#[test]
fn a_metrics_address_in_use_stops_the_engine_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = config(
        dir.path(),
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[journal]\npath = {:?}\n[engine]\ncontrol_dir = {:?}\n[venue.sim]\nstate_file = \"\"\n",
            dir.path().join("journal.sqlite"),
            dir.path(),
        ),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--once", "--as-of", "2023-09-21", "--config"])
        .arg(&cfg)
        .env_remove("APCA_API_KEY_ID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot serve metrics and health on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Metric names an expression reads: identifiers outside strings, label matchers,
/// ranges and `by (...)` lists that are not functions, keywords or numbers.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "le",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let (mut i, mut depth_braces, mut depth_brackets) = (0, 0, 0);
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => depth_brackets += 1,
            ']' => depth_brackets -= 1,
            '(' if after_grouping => {
                // Skip a `by (...)` / `on (...)` label list.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric()
                        || chars[i + 1] == '_'
                        || chars[i + 1] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..=i].iter().collect();
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                let number_suffix = start > 0 && chars[start - 1].is_ascii_digit();
                if depth_braces == 0 && depth_brackets == 0 && !number_suffix {
                    let grouping = [
                        "by",
                        "without",
                        "on",
                        "ignoring",
                        "group_left",
                        "group_right",
                    ]
                    .contains(&word.as_str());
                    if grouping {
                        after_grouping = next == Some(&'(');
                    } else if next != Some(&'(')
                        && !KEYWORDS.contains(&word.to_lowercase().as_str())
                    {
                        names.push(word);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Every PromQL expression of the shipped dashboard and alert rules.
fn ops_expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("ops/grafana/alchemiser.json")).unwrap(),
    )
    .unwrap();
    fn walk(v: &serde_json::Value, found: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if let (true, Some(expr)) = (k == "expr" || k == "query", v.as_str()) {
                        if !expr.starts_with("prometheus") {
                            let expr = expr
                                .strip_prefix("label_values(")
                                .map_or(expr, |e| e.split(',').next().unwrap_or(e));
                            found.push(("dashboard".to_string(), expr.to_string()));
                        }
                    }
                    walk(v, found);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
            _ => {}
        }
    }
    walk(&dashboard, &mut found);
    let rules = std::fs::read_to_string(root().join("ops/prometheus/alerts.yml")).unwrap();
    for line in rules.lines() {
        if let Some(expr) = line.trim().strip_prefix("expr: ") {
            found.push(("alerts.yml".to_string(), expr.to_string()));
        }
    }
    found
}

#[test]
fn promql_names_are_found_outside_labels_ranges_and_functions() {
    assert_eq!(
        metric_names(
            r#"sum by (instance, endpoint) (increase(venue_errors_total{status="x"}[15m])) > 3"#
        ),
        ["venue_errors_total"]
    );
    assert_eq!(
        metric_names("(a_seconds > b_seconds) and (time() - a_seconds > 1800)"),
        ["a_seconds", "b_seconds", "a_seconds"]
    );
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le, actor) (rate(h_bucket{i=~"$i"}[5m])))"#
        ),
        ["h_bucket"]
    );
}

/// A starting engine, before any workflow: every labelled series it knows of is
/// exported at 0 (alerts and `rate()` work from the first scrape), and the shipped
/// Grafana dashboard and Prometheus rules name only metrics it exports.
#[test]
fn a_starting_engine_exports_known_series_at_zero_and_the_ops_files_name_only_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[journal]\npath = {:?}\n[engine]\ncontrol_dir = {:?}\n[venue.sim]\nstate_file = \"\"\n[[notifications.webhooks]]\nurl = \"http://127.0.0.1:{}/hook\"\n",
            dir.path().join("journal.sqlite"),
            dir.path(),
            free_port()
        ),
    );
    // The scheduled engine: it waits for 15:45 New York.
    let mut child = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = None;
    while Instant::now() < deadline {
        if let Some((_, body)) = get(port, "/metrics") {
            if body.contains("schedule_next_run_timestamp_seconds ")
                && !body.contains("schedule_next_run_timestamp_seconds 0.0")
            {
                text = Some(body);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = text.expect("the engine served /metrics with its schedule");

    let zero = |series: &str| {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} is not exported at start:\n{text}"));
        assert_eq!(value.parse::<f64>().unwrap(), 0.0, "{series}");
    };
    for actor in [
        "strategy",
        "portfolio",
        "execution",
        "reconciliation",
        "recovery",
    ] {
        zero(&format!("actor_restarts_total{{actor=\"{actor}\"}}"));
    }
    for status in ["failed", "timed_out"] {
        zero(&format!("workflows_total{{status=\"{status}\"}}"));
    }
    for status in ["rejected", "denied", "canceled"] {
        zero(&format!("orders_total{{status=\"{status}\"}}"));
    }
    for endpoint in alchemiser::metrics::VENUE_ENDPOINTS {
        zero(&format!("venue_errors_total{{endpoint=\"{endpoint}\"}}"));
    }
    zero("reconciliations_total{status=\"drift\"}");
    zero("dead_letters_total");
    zero("trading_halted");
    zero("workflow_last_completed_timestamp_seconds");
    for status in ["sent", "retried", "failed", "deduplicated"] {
        zero(&format!(
            "notifications_total{{channel=\"webhook\",status=\"{status}\"}}"
        ));
    }
    assert!(
        text.contains("workflows_total{status=\"completed\"}"),
        "{text}"
    );
    assert!(text.contains("event_published_total{event_type=\"workflow.started.v1\"}"));

    // The names a scrape can hold: counters as NAME_total, histograms as _bucket, _sum
    // and _count, gauges as they are; `up` is Prometheus's own.
    let mut exported = vec!["up".to_string()];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => exported.push(format!("{name}_total")),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.push(format!("{name}{suffix}"));
                }
            }
            _ => exported.push(name.to_string()),
        }
    }
    let expressions = ops_expressions();
    assert!(expressions.len() >= 20, "{expressions:?}");
    for (file, expr) in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{file}: no metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{file}: {name} (in {expr}) is not a metric the engine exports: {exported:?}"
            );
        }
    }
    // The alerts the operators asked for.
    let rules = std::fs::read_to_string(root().join("ops/prometheus/alerts.yml")).unwrap();
    for alert in [
        "TradingHalted",
        "ReconciliationDrift",
        "ActorRestarting",
        "DeadLetters",
        "VenueErrors",
        "NoWorkflowCompletedOnTradingDay",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
    }
}

/// `promtool` checks the rules and runs their unit tests (alerts.test.yml); CI installs
/// it (Debian's prometheus package) and sets ALCHEMISER_REQUIRE_PROMTOOL=1.
#[test]
fn promtool_accepts_the_rules_and_their_tests_pass() {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("ALCHEMISER_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (apt-get install -y prometheus) but was not found"
        );
        eprintln!("skipped: no promtool (apt-get install -y prometheus); CI requires it");
        return;
    }
    let dir = root().join("ops/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
