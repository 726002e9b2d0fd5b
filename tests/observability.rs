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
