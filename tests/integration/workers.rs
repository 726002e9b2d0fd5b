//! Business actors in other processes (`alchemiser worker --roles ...`): the engine and
//! its workers as child processes, over a real nats-server, trading a full `run --once`
//! against the fake Alpaca. A worker that dies mid-plan leaves the plan to another
//! (every client order id once at the venue); two workers of a role share its events
//! (each handled once); the journal verifies and the venue's positions equal the fills.

use crate::common;
use crate::common::nats;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alchemiser::events::{EventKind, OutcomeStatus, Payload};
use alchemiser::journal::{Journal, SyncMode};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use nats::{
    as_user, free_port, nats_server_binary, pairs, password_of, secured_server, NatsServer,
};
use rust_decimal::Decimal;

const KEY: &str = "PKWORKERTEST1";
const SECRET: &str = "worker-secret";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fake() -> FakeAlpaca {
    common::fake_alpaca(KEY, SECRET, "2023-09-21")
}

fn config(dir: &Path, fake: &FakeAlpaca, port: u16) -> PathBuf {
    config_with_metrics(dir, fake, port, None)
}

fn config_with_metrics(dir: &Path, fake: &FakeAlpaca, port: u16, metrics: Option<u16>) -> PathBuf {
    config_full(dir, fake, port, metrics, &["execution", "reconciliation"])
}

fn config_full(
    dir: &Path,
    fake: &FakeAlpaca,
    port: u16,
    metrics: Option<u16>,
    remote: &[&str],
) -> PathBuf {
    let remote = remote
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let metrics = match metrics {
        Some(p) => format!("[metrics]\nlisten = \"127.0.0.1:{p}\"\n"),
        None => "[metrics]\nenabled = false\n".to_string(),
    };
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {data:?}\n[[strategy.files]]\npath = {strategy:?}\n\
             [journal]\npath = {journal:?}\n[engine]\ncontrol_dir = {control:?}\n{metrics}\
             [alpaca]\ntrading_url = {url:?}\ndata_url = {url:?}\n\
             [bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\n\
             remote_roles = [{remote}]\nack_wait_secs = 2\nmax_deliver = 3\n",
            data = root().join("examples/data"),
            strategy = root().join("examples/strategies/default.clj"),
            journal = dir.join("journal.sqlite"),
            control = dir,
            url = fake.url(),
        ),
    )
    .unwrap();
    cfg
}

fn command(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn,alchemiser=info")
        .env_remove("ALCHEMISER_CRASH_AFTER")
        .arg("--config")
        .arg(cfg);
    c
}

/// A worker child process; killed on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(cfg: &Path, dir: &Path, name: &str, crash_after: Option<&str>) -> Worker {
    worker_of(cfg, dir, name, crash_after, "execution,reconciliation")
}

fn worker_of(cfg: &Path, dir: &Path, name: &str, crash_after: Option<&str>, roles: &str) -> Worker {
    worker_env(cfg, dir, name, crash_after, roles, &[])
}

/// [`worker_of`] with `env` in the worker's environment (its NATS credentials).
fn worker_env(
    cfg: &Path,
    dir: &Path,
    name: &str,
    crash_after: Option<&str>,
    roles: &str,
    env: &[(&str, &str)],
) -> Worker {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.envs(env.iter().copied());
    c.env_remove("ALCHEMISER_FAIL_ON");
    if let Some(fail) = crash_after.and_then(|p| p.strip_prefix("fail:")) {
        c.env("ALCHEMISER_FAIL_ON", fail);
    }
    let crash_after = crash_after.filter(|p| !p.starts_with("fail:"));
    c.args(["worker", "--roles", roles, "--config"])
        .arg(cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn,alchemiser=info")
        .env("HOSTNAME", name)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap());
    match crash_after {
        Some(point) => c.env("ALCHEMISER_CRASH_AFTER", point),
        None => c.env_remove("ALCHEMISER_CRASH_AFTER"),
    };
    Worker(c.spawn().unwrap())
}

/// `run --once` of 2023-09-21 on a thread of its own, while the test does something to
/// its workers, the server or the venue.
fn run_in_background(cfg: &Path) -> std::thread::JoinHandle<Output> {
    let cfg = cfg.to_path_buf();
    std::thread::spawn(move || run_once(&cfg, "2023-09-21"))
}

/// Runs the day's engine and kills it (SIGKILL) once the venue has its first order.
fn engine_killed_at_first_order(cfg: &Path, f: &FakeAlpaca) {
    let mut engine = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["run", "--once", "--as-of", "2023-09-21", "--config"])
        .arg(cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    await_first_order(f);
    engine.kill().unwrap();
    engine.wait().unwrap();
}

/// Waits (a minute at most) until the venue has created the plan's first order.
fn await_first_order(f: &FakeAlpaca) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.state().created.is_empty() {
        assert!(Instant::now() < deadline, "no order reached the venue");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_once(cfg: &Path, as_of: &str) -> Output {
    run_once_with(cfg, as_of, &[])
}

fn run_once_with(cfg: &Path, as_of: &str, extra: &[&str]) -> Output {
    run_once_env(cfg, as_of, extra, &[])
}

/// [`run_once_with`] with `env` in the engine's environment (its NATS credentials).
fn run_once_env(cfg: &Path, as_of: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command(cfg);
    c.envs(env.iter().copied());
    c.args(["--as-of", as_of]).args(extra);
    // `run` first, then its flags.
    let mut args: Vec<std::ffi::OsString> = vec!["run".into(), "--once".into()];
    args.extend(c.get_args().map(|a| a.to_os_string()));
    let mut run = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    run.args(args)
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("ALCHEMISER_CRASH_AFTER");
    run.output().unwrap()
}

/// The journal verifies, nothing is left open, each workflow's reactions are there
/// once, every order reached the venue once, and positions equal the fills.
fn assert_consistent(dir: &Path, fake: &FakeAlpaca, workflows: usize) {
    assert_consistent_retried(dir, fake, workflows, 0);
}

/// [`assert_consistent`] where up to `retried` workflows may have failed and been
/// retried by recovery (each retry a completed workflow of its own).
fn assert_consistent_retried(dir: &Path, fake: &FakeAlpaca, workflows: usize, retried: usize) {
    let journal = Journal::open(&dir.join("journal.sqlite"), SyncMode::Normal).unwrap();
    assert_eq!(journal.verify().unwrap().first_broken, None);
    assert!(journal.open_workflows().unwrap().is_empty());
    let entries = journal.entries().unwrap();
    let count = |kind: EventKind| entries.iter().filter(|e| e.envelope.kind() == kind).count();
    let failures: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::WorkflowFailed(f) => Some(format!("{}: {}", f.reason.as_str(), f.detail)),
            _ => None,
        })
        .collect();
    assert_eq!(
        count(EventKind::WorkflowCompleted),
        workflows,
        "{failures:?}"
    );
    assert!(failures.len() <= retried, "{failures:?}");
    // Each step of each workflow once: no reaction was taken twice.
    let mut seen = std::collections::BTreeSet::new();
    for e in &entries {
        let kind = e.envelope.kind();
        if [
            EventKind::RebalancePlanned,
            EventKind::ExecutionStarted,
            EventKind::OrderSettled,
            EventKind::WorkflowCompleted,
        ]
        .contains(&kind)
        {
            assert!(
                seen.insert((e.envelope.correlation_id, kind)),
                "{kind:?} twice in workflow {}",
                e.envelope.correlation_id
            );
        }
    }
    // Every execution settled, but a failed workflow's.
    assert!(
        count(EventKind::OrderSettled) + failures.len() >= count(EventKind::ExecutionStarted),
        "every execution settled: {failures:?}"
    );
    if !failures.is_empty() {
        eprintln!("retried after: {failures:?}");
    }
    assert!(count(EventKind::OrderSettled) >= 1);
    // Reconciliation after each settlement (and at each start).
    assert!(count(EventKind::ReconciliationCompleted) >= workflows);
    let state = fake.state();
    assert!(!state.created.is_empty(), "orders were placed");
    assert!(
        state.created.values().all(|n| *n == 1),
        "an order was created twice: {:?}",
        state.created
    );
    let mut filled: std::collections::BTreeMap<alchemiser::domain::Symbol, Decimal> =
        Default::default();
    let mut fill_ids = std::collections::BTreeSet::new();
    for e in &entries {
        if let Payload::OrderFilled(fill) = &e.envelope.payload {
            assert!(
                fill_ids.insert(fill.fill_id.clone()),
                "fill {} twice",
                fill.fill_id
            );
            let signed = match fill.side {
                alchemiser::domain::Side::Buy => fill.qty,
                alchemiser::domain::Side::Sell => -fill.qty,
            };
            *filled.entry(fill.symbol.clone()).or_default() += signed;
        }
    }
    filled.retain(|_, q| !q.is_zero());
    assert_eq!(
        state.positions, filled,
        "venue positions equal the journaled fills"
    );
}

/// A plain HTTP/1.0 GET on loopback: the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// A worker's log once `done` says it holds what is awaited (a worker logs an event
/// once it has acknowledged it, a moment after the engine has its reaction), or after
/// ten seconds.
fn log_eventually(dir: &Path, name: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = log(dir, name);
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn execution_and_reconciliation_in_a_worker_trade_a_full_workflow() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let metrics_port = free_port();
    let cfg = config_with_metrics(dir.path(), &f, port, Some(metrics_port));
    let _w = worker(&cfg, dir.path(), "w1", None);
    // /healthz while the engine lingers after its workflow: the worker is seen.
    let status_cfg = cfg.clone();
    let health = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(body) = http_get(metrics_port, "/healthz") {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let seen = v["remote"]["workers"]
                    .as_array()
                    .is_some_and(|w| !w.is_empty())
                    && v["remote"]["consumers"]
                        .as_object()
                        .is_some_and(|c| c.len() >= 2);
                if seen {
                    // `status` shows the same, for people.
                    let status = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
                        .args(["status", "--config"])
                        .arg(&status_cfg)
                        .output()
                        .unwrap();
                    return Some((v, String::from_utf8_lossy(&status.stdout).into_owned()));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    });
    let out = run_once_with(&cfg, "2023-09-21", &["--linger", "4"]);
    let (health, status) = health.join().unwrap().expect("/healthz showed the worker");
    assert!(
        status.contains("remote roles: execution, reconciliation\n")
            && status.contains("  worker w1-")
            && status.contains("consumer execution--portfolio_rebalance_planned_v1:"),
        "{status}"
    );
    assert_eq!(
        health["remote"]["roles"],
        serde_json::json!(["execution", "reconciliation"])
    );
    assert_eq!(health["remote"]["unserved"], serde_json::json!([]));
    assert_eq!(
        health["remote"]["workers"][0]["worker"]
            .as_str()
            .unwrap()
            .split('-')
            .next(),
        Some("w1")
    );
    assert!(health["remote"]["consumers"]
        .as_object()
        .is_some_and(|c| c.contains_key("execution--portfolio_rebalance_planned_v1")));
    assert!(
        out.status.success(),
        "{}\nworker: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "w1")
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""status": "completed""#));
    assert_consistent(dir.path(), &f, 1);
    // The engine did not execute: the worker did.
    let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
    let sources: Vec<String> = journal
        .entries()
        .unwrap()
        .iter()
        .filter(|e| e.envelope.kind() == EventKind::OrderSettled)
        .map(|e| e.envelope.source.to_string())
        .collect();
    assert_eq!(sources, ["execution"]);
}

#[test]
fn a_worker_killed_mid_plan_leaves_the_plan_to_another_and_no_order_is_placed_twice() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    // The first worker dies right after the venue accepted the plan's second order.
    let mut doomed = worker(&cfg, dir.path(), "doomed", Some("venue.submit:2"));
    let run = run_in_background(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while doomed.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the doomed worker never crashed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(log(dir.path(), "doomed").contains("ALCHEMISER_CRASH_AFTER"));
    assert_eq!(
        f.state().created.len(),
        2,
        "two orders reached the venue before the crash"
    );
    // Another worker takes the plan over when its acknowledgement is overdue.
    let _rescuer = worker(&cfg, dir.path(), "rescuer", None);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nrescuer: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "rescuer")
    );
    assert_consistent(dir.path(), &f, 1);
    // The rescuer handled the plan, as a redelivery.
    let redelivered_plan = |text: &str| {
        text.lines().any(|l| {
            l.contains("portfolio.rebalance.planned.v1")
                && l.contains("\"handled\"")
                && !l.contains("\"delivered\":1")
        })
    };
    let rescued = log_eventually(dir.path(), "rescuer", redelivered_plan);
    assert!(redelivered_plan(&rescued), "{rescued}");
}

#[test]
fn two_workers_of_a_role_share_its_events_each_handled_once() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    let _a = worker(&cfg, dir.path(), "a", None);
    let _b = worker(&cfg, dir.path(), "b", None);
    let days = ["2023-09-18", "2023-09-19", "2023-09-20", "2023-09-21"];
    for day in days {
        f.set_today(day.parse().unwrap());
        let out = run_once(&cfg, day);
        assert!(
            out.status.success(),
            "{day}: {}\na: {}\nb: {}",
            String::from_utf8_lossy(&out.stderr),
            log(dir.path(), "a"),
            log(dir.path(), "b")
        );
    }
    assert_consistent(dir.path(), &f, days.len());
}

#[test]
fn the_nats_server_restarted_mid_workflow_loses_nothing() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = dir.path().join("nats");
    let nats = NatsServer::start(&binary, port, &store);
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    // The first order's answer is held 1.5 s: the server goes down meanwhile.
    f.inject(alchemiser::venues::alpaca::fake::Fault::DelayAfterCreate(
        Duration::from_millis(1500),
    ));
    let _w = worker(&cfg, dir.path(), "w", None);
    let run = run_in_background(&cfg);
    await_first_order(&f);
    drop(nats);
    std::thread::sleep(Duration::from_millis(700));
    let _nats = NatsServer::start(&binary, port, &store);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nworker: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "w")
    );
    assert_consistent(dir.path(), &f, 1);
    let handled_plan = |t: &str| t.contains("portfolio.rebalance.planned.v1");
    assert!(handled_plan(&log_eventually(dir.path(), "w", handled_plan)));
}

#[test]
fn strategy_and_portfolio_in_one_worker_execution_and_reconciliation_in_another() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config_full(
        dir.path(),
        &f,
        port,
        None,
        &["strategy", "portfolio", "execution", "reconciliation"],
    );
    let _thinker = worker_of(&cfg, dir.path(), "thinker", None, "strategy,portfolio");
    let _doer = worker_of(&cfg, dir.path(), "doer", None, "execution,reconciliation");
    let out = run_once(&cfg, "2023-09-21");
    assert!(
        out.status.success(),
        "{}\nthinker: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "thinker")
    );
    assert_consistent(dir.path(), &f, 1);
    // The signal came from the strategy worker, evaluated on the day's bars it fetched.
    let signalled = |t: &str| t.contains("\"event_type\":\"workflow.started.v1\"");
    assert!(signalled(&log_eventually(dir.path(), "thinker", signalled)));
    assert!(
        f.state().requests.iter().any(|r| r.contains("bars")),
        "bars were fetched"
    );
}

#[test]
fn a_plan_that_fails_every_delivery_is_a_dead_letter_and_fails_its_workflow() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    // No retry of the failed workflow and no halt: the dead letter is the whole story.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[recovery]\nmax_attempts = 0\nhalt_on_give_up = false\n");
    std::fs::write(&cfg, text).unwrap();
    let _w = worker(
        &cfg,
        dir.path(),
        "failing",
        Some("fail:remote.handle:portfolio.rebalance.planned.v1"),
    );
    let out = run_once(&cfg, "2023-09-21");
    assert!(!out.status.success(), "the workflow must fail");
    let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
    assert_eq!(journal.verify().unwrap().first_broken, None);
    let failed: Vec<String> = journal
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::WorkflowFailed(w) => Some(format!("{} {}", w.reason, w.detail)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with(
            "dead_letter execution failed 3 deliveries of portfolio.rebalance.planned.v1"
        ),
        "{failed:?}"
    );
    // Nothing reached the venue.
    assert!(f.state().created.is_empty());
}

#[test]
fn recovery_in_a_worker_retries_from_the_root_the_broker_keeps() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config_full(
        dir.path(),
        &f,
        port,
        None,
        &["execution", "reconciliation", "recovery"],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[recovery]\nmax_attempts = 1\nbackoff_ms = 10\nbackoff_cap_ms = 20\nhalt_on_give_up = false\n");
    std::fs::write(&cfg, text).unwrap();
    // Every plan fails in the worker: a dead letter, then recovery's retry, which fails
    // the same way, then recovery gives up.
    let _w = worker_of(
        &cfg,
        dir.path(),
        "w",
        Some("fail:remote.handle:portfolio.rebalance.planned.v1"),
        "execution,reconciliation,recovery",
    );
    let out = run_once_with(&cfg, "2023-09-21", &["--linger", "5"]);
    assert!(!out.status.success());
    let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
    let actions: Vec<String> = journal
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::RecoveryAction(a) => Some(format!("{} {}", a.action, a.detail)),
            _ => None,
        })
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("retry retry 1 of the workflow of 2023-09-21")),
        "{actions:?}\n{}",
        log(dir.path(), "w")
    );
    assert!(
        actions.iter().any(|a| a.starts_with("give_up")),
        "{actions:?}"
    );
    let handled = |t: &str| t.contains("\"event_type\":\"workflow.failed.v1\"");
    assert!(handled(&log_eventually(dir.path(), "w", handled)));
}

#[test]
fn a_worker_sigkilled_while_the_venue_holds_an_order_leaves_the_plan_to_another() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    // The venue creates the first order and holds its answer: the worker is killed
    // (SIGKILL) while it waits.
    f.inject(alchemiser::venues::alpaca::fake::Fault::DelayAfterCreate(
        Duration::from_secs(3),
    ));
    let mut victim = worker(&cfg, dir.path(), "victim", None);
    let run = run_in_background(&cfg);
    await_first_order(&f);
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let _rescuer = worker(&cfg, dir.path(), "rescuer", None);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nrescuer: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "rescuer")
    );
    // The order the venue created for the dead worker was adopted, not placed again.
    assert_consistent(dir.path(), &f, 1);
}

#[test]
fn a_redelivered_plan_whose_reaction_is_on_record_is_skipped_not_handled_again() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    // The first worker handles the plan to the end (orders placed, reaction journaled,
    // mark sent) and dies before acknowledging it.
    let mut first = worker(
        &cfg,
        dir.path(),
        "first",
        Some("remote.acknowledge.portfolio.rebalance.planned.v1"),
    );
    let run = run_in_background(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the first worker never crashed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let placed = f.state().created.len();
    assert!(placed > 0);
    let _second = worker(&cfg, dir.path(), "second", None);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The redelivered plan was recognised and skipped: no venue call for it.
    let skipped = |t: &str| t.contains("already handled: skipped");
    assert!(
        skipped(&log_eventually(dir.path(), "second", skipped)),
        "{}",
        log(dir.path(), "second")
    );
    assert_eq!(f.state().created.len(), placed);
    assert_consistent(dir.path(), &f, 1);
}

#[test]
fn a_remote_role_without_a_live_worker_fails_within_the_bound_naming_it() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    let body = std::fs::read_to_string(&cfg).unwrap() + "worker_wait_secs = 3\n";
    std::fs::write(&cfg, body).unwrap();
    let began = Instant::now();
    let out = run_once(&cfg, "2023-09-21");
    let took = began.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no live worker serves roles execution, reconciliation"),
        "{err}"
    );
    assert!(err.contains("nothing traded"), "{err}");
    assert!(took < Duration::from_secs(30), "bounded: {took:?}");
    assert!(
        f.state()
            .requests
            .iter()
            .all(|r| !r.starts_with("POST /v2/orders")),
        "no order"
    );
}

#[test]
fn a_worker_on_another_account_refuses_to_serve_naming_both() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let engine_venue = fake();
    let cfg = config(dir.path(), &engine_venue, port);
    let body = std::fs::read_to_string(&cfg).unwrap() + "worker_wait_secs = 8\n";
    std::fs::write(&cfg, body).unwrap();
    // The worker's keys open another account (account B).
    let other = fake();
    other.state().account_number = "PA0000OTHER".into();
    let worker_dir = dir.path().join("worker");
    std::fs::create_dir_all(&worker_dir).unwrap();
    let worker_cfg = worker_dir.join("config.toml");
    std::fs::write(
        &worker_cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&engine_venue.url(), &other.url()),
    )
    .unwrap();
    let engine = run_in_background(&cfg);
    let began = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["worker", "--roles", "execution,reconciliation", "--config"])
        .arg(&worker_cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PA0000OTHER") && err.contains("PA0000FAKE"),
        "both accounts named: {err}"
    );
    assert!(began.elapsed() < Duration::from_secs(30));
    let engine = engine.join().unwrap();
    assert!(!engine.status.success(), "no worker served the engine");
    for venue in [&engine_venue, &other] {
        assert!(
            venue
                .state()
                .requests
                .iter()
                .all(|r| !r.starts_with("POST /v2/orders")),
            "no order anywhere"
        );
    }
}

#[test]
fn a_handling_longer_than_the_ack_wait_is_not_handled_twice() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // Every answer takes 300 ms: the plan's handling lasts several times the 2 s the
    // server waits for an acknowledgement.
    f.state().latency = Duration::from_millis(300);
    let cfg = config(dir.path(), &f, port);
    let _a = worker(&cfg, dir.path(), "a", None);
    let _b = worker(&cfg, dir.path(), "b", None);
    let began = Instant::now();
    let out = run_once(&cfg, "2023-09-21");
    assert!(
        out.status.success(),
        "{}\na: {}\nb: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "a"),
        log(dir.path(), "b")
    );
    assert!(
        began.elapsed() > Duration::from_secs(3),
        "the handling was slow"
    );
    let s = f.state();
    let posts = s
        .requests
        .iter()
        .filter(|r| r.starts_with("POST /v2/orders"))
        .count();
    assert_eq!(
        posts,
        s.orders.len(),
        "every order posted once: {:?}",
        s.created
    );
    assert!(!s.orders.is_empty());
    drop(s);
    for name in ["a", "b"] {
        assert!(
            !log(dir.path(), name).contains("adopting orders"),
            "{name} took up a plan another worker was handling: {}",
            log(dir.path(), name)
        );
    }
}

/// A runtime of its own (its thread keeps the connection read while the test waits)
/// and a client of the server on `port`: the test speaks the workers' protocol itself.
fn speaking_to(port: u16) -> (tokio::runtime::Runtime, async_nats::Client) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(async_nats::connect(format!("nats://127.0.0.1:{port}")))
        .unwrap();
    (rt, client)
}

/// A second handling of a plan another worker is handling (what a server killed and
/// restarted does: it forgets its deliveries and hands the message out again) is held
/// off by the engine: its claim, its order intents, its reactions and its consumer mark
/// are refused while the first one works, and the day completes as if it never came.
#[test]
fn a_second_handling_of_a_plan_under_way_is_refused_everything() {
    use alchemiser::bus::remote::*;
    use futures_util::StreamExt;
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // Every answer takes 300 ms: the plan's handling lasts several seconds.
    f.state().latency = Duration::from_millis(300);
    let cfg = config(dir.path(), &f, port);
    let _a = worker(&cfg, dir.path(), "a", None);
    let (rt, client) = speaking_to(port);
    let planned = alchemiser::bus::subject("alchemiser", "portfolio.rebalance.planned.v1");
    let mut plans = rt.block_on(client.subscribe(planned)).unwrap();
    rt.block_on(client.flush()).unwrap();
    let run = run_in_background(&cfg);
    await_first_order(&f);
    let plan = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), plans.next()).await })
        .unwrap()
        .unwrap();
    let env =
        alchemiser::events::Envelope::from_json(&String::from_utf8_lossy(&plan.payload)).unwrap();
    let seq = plan
        .headers
        .as_ref()
        .and_then(|h| h.get(alchemiser::bus::SEQ_HEADER))
        .and_then(|v| v.as_str().parse().ok());
    let of = HandlingRef {
        event_id: env.event_id,
        handling: HandlingId::new(),
    };
    let ask = |subject: String, body: Vec<u8>| {
        let reply = rt.block_on(client.request(subject, body.into())).unwrap();
        String::from_utf8_lossy(&reply.payload).into_owned()
    };
    let held = String::from_utf8_lossy(HELD).into_owned();
    let claim = HandlingClaim {
        role: "execution".into(),
        op: ClaimOp::Take,
        of,
        seq,
    };
    assert_eq!(
        ask(
            claim_subject("alchemiser", "execution"),
            serde_json::to_vec(&claim).unwrap()
        ),
        held,
        "the plan is held by worker a's handling"
    );
    let started = alchemiser::execution::order_intents(
        env.correlation_id,
        match &env.payload {
            Payload::RebalancePlanned(p) => p,
            other => panic!("{other:?}"),
        },
        0,
    );
    let intent = IntentRecord::Intend {
        correlation_id: env.correlation_id,
        plan_hash: started.plan_hash.clone(),
        intent: started.orders.last().unwrap().clone(),
        by: Some(of),
    };
    assert_eq!(
        ask(
            intent_subject("alchemiser", "execution"),
            serde_json::to_vec(&intent).unwrap()
        ),
        held,
        "no order intent from the second handling"
    );
    let reaction = alchemiser::events::Envelope::caused_by(
        &env,
        alchemiser::events::WorkflowFailed {
            step: "execution".into(),
            reason: alchemiser::events::FailureReason::StepFailed,
            detail: "a second handling".into(),
        },
        "execution",
        &alchemiser::clock::SystemClock,
    );
    let publish = RemotePublish {
        worker: "intruder".into(),
        role: "execution".into(),
        handled: env.event_id,
        handling: of.handling,
        events: vec![reaction.to_json().unwrap()],
    };
    let verdicts: Vec<Verdict> = serde_json::from_str(&ask(
        publish_subject("alchemiser", "execution"),
        serde_json::to_vec(&publish).unwrap(),
    ))
    .unwrap();
    assert!(
        matches!(verdicts.as_slice(), [Verdict::Superseded { .. }]),
        "{verdicts:?}"
    );
    let mark = RoleEvent {
        role: "execution".into(),
        event: env.to_json().unwrap(),
        handling: Some(of.handling),
    };
    assert_eq!(
        ask(
            consumed_subject("alchemiser", "execution"),
            serde_json::to_vec(&mark).unwrap()
        ),
        held
    );
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\na: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "a")
    );
    assert_consistent(dir.path(), &f, 1);
}

/// A plan redelivered after the engine restarted, of a workflow the engine before it
/// closed (a server killed mid-day forgets acknowledgements), is known as handled: the
/// new engine's broker never saw that workflow, its journal did.
#[test]
fn a_plan_of_a_workflow_an_earlier_engine_closed_is_known_as_handled() {
    use alchemiser::bus::remote::*;
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    let _a = worker(&cfg, dir.path(), "a", None);
    f.set_today("2023-09-20".parse().unwrap());
    let first = run_once(&cfg, "2023-09-20");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let plan = {
        let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
        journal
            .entries()
            .unwrap()
            .into_iter()
            .find(|e| e.envelope.kind() == EventKind::RebalancePlanned)
            .unwrap()
            .envelope
    };
    // The next day's engine: slow answers keep it running while it is asked.
    f.state().latency = Duration::from_millis(300);
    f.set_today("2023-09-21".parse().unwrap());
    let run = run_in_background(&cfg);
    let (rt, client) = speaking_to(port);
    let mark = RoleEvent {
        role: "execution".into(),
        event: plan.to_json().unwrap(),
        handling: None,
    };
    let body = serde_json::to_vec(&mark).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let asked = rt.block_on(client.request(
            handled_subject("alchemiser", "execution"),
            body.clone().into(),
        ));
        match asked {
            Ok(reply) => break String::from_utf8_lossy(&reply.payload).into_owned(),
            Err(e) => {
                assert!(Instant::now() < deadline, "the engine never answered: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(answer, "yes");
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn orders_a_dead_worker_left_open_are_followed_to_their_fills() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // As Alpaca: a market order fills a moment later, a third every 2 s (the
    // worker that takes up a dead one's plan finds its first order still filling).
    f.state().fill_parts = 3;
    f.state().fill_every = Duration::from_secs(2);
    let cfg = config(dir.path(), &f, port);
    let mut victim = worker(&cfg, dir.path(), "victim", None);
    let run = run_in_background(&cfg);
    await_first_order(&f);
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let open_when_killed = f.state().orders.iter().any(|o| o.status != "filled");
    let _rescuer = worker(&cfg, dir.path(), "rescuer", None);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nrescuer: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "rescuer")
    );
    assert!(
        open_when_killed,
        "the dead worker left an order still filling"
    );
    // Every order the plan made settled filled, as the venue has it.
    let journal = Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap();
    let settled: Vec<OutcomeStatus> = journal
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::OrderSettled(s) => Some(s.orders.iter().map(|o| o.status).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!settled.is_empty());
    assert!(
        settled.iter().all(|s| *s == OutcomeStatus::Filled),
        "{settled:?}"
    );
    assert!(f.state().orders.iter().all(|o| o.status == "filled"));
    drop(journal);
    assert_consistent(dir.path(), &f, 1);
    // The next run finds the account on target: no drift, no halt.
    let _helper = worker(&cfg, dir.path(), "helper", None);
    let next = run_once(&cfg, "2023-09-21");
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert_consistent(dir.path(), &f, 2);
}

#[test]
fn an_engine_killed_mid_plan_stops_the_workers_orders_and_finds_each_sent_one_on_restart() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // A slow venue: the plan's five orders take seconds, time to kill the engine.
    f.state().latency = Duration::from_millis(300);
    let cfg = config(dir.path(), &f, port);
    let _worker = worker(&cfg, dir.path(), "w", None);
    engine_killed_at_first_order(&cfg, &f);
    // The worker goes on with the plan for a while: every order it sends must be one
    // the engine's journal recorded as intended.
    std::thread::sleep(Duration::from_secs(4));
    let journaled = || -> std::collections::BTreeSet<String> {
        alchemiser::journal::outbox::Outbox::open(&dir.path().join("journal.sqlite"))
            .unwrap()
            .intent_workflows()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    let at_venue: std::collections::BTreeSet<String> = f.state().created.keys().cloned().collect();
    let known = journaled();
    assert!(
        at_venue.is_subset(&known),
        "orders sent with no journal to record them: {:?}",
        at_venue.difference(&known).collect::<Vec<_>>()
    );
    assert!(
        log(dir.path(), "w").contains("waiting for the engine to journal the order intent"),
        "the worker said why it stopped: {}",
        log(dir.path(), "w")
    );
    // Restarted, the engine finds every order in its journal and finishes the day.
    let out = run_once(&cfg, "2023-09-21");
    assert!(
        out.status.success(),
        "{}\nworker: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "w")
    );
    let at_venue: std::collections::BTreeSet<String> = f.state().created.keys().cloned().collect();
    assert!(at_venue.is_subset(&journaled()));
    assert!(
        f.state().created.values().all(|n| *n == 1),
        "no order twice"
    );
}

#[test]
fn an_engine_restarted_while_a_workers_order_still_fills_counts_its_fills_and_does_not_halt() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // Each market order fills in four parts over about three seconds.
    f.state().fill_parts = 4;
    f.state().fill_every = Duration::from_millis(800);
    let cfg = config(dir.path(), &f, port);
    let _worker = worker(&cfg, dir.path(), "w", None);
    engine_killed_at_first_order(&cfg, &f);
    // Restarted at once: the worker's first order is still filling. The start-up check
    // counts its fills once it is done, not the part filled when it looked.
    let out = run_once(&cfg, "2023-09-21");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{said}\nworker: {}",
        log(dir.path(), "w")
    );
    assert!(!said.contains("drifted"), "{said}");
    // The killed engine's workflow, resumed, and the restart's own; the worker's
    // orders refused while no engine could journal them fail a step, which recovery
    // retries.
    assert_consistent_retried(dir.path(), &f, 2, 2);
}

/// An order an earlier run left: its intent (buy, unanswered) in the engine's outbox in
/// `dir`'s journal, and the order at the venue — a resting limit at `limit`, or a market
/// order filled `filled` (its shares then held).
fn intended_and_at_venue(
    dir: &Path,
    f: &FakeAlpaca,
    id: &str,
    symbol: &str,
    limit: Option<Decimal>,
    filled: Decimal,
) {
    let qty = filled.max(Decimal::ONE);
    let order_type = if limit.is_some() {
        alchemiser::domain::OrderType::Limit
    } else {
        alchemiser::domain::OrderType::Market
    };
    let intent = alchemiser::events::OrderIntent {
        client_order_id: id.into(),
        symbol: symbol.into(),
        side: alchemiser::domain::Side::Buy,
        qty,
        order_type,
        limit_price: limit,
    };
    alchemiser::journal::outbox::Outbox::open(&dir.join("journal.sqlite"))
        .unwrap()
        .intend(
            alchemiser::events::CorrelationId::new(),
            "earlier-plan",
            &intent,
        )
        .unwrap();
    let mut state = f.state();
    state.orders.push(alchemiser::venues::alpaca::wire::Order {
        id: format!("venue-{id}"),
        client_order_id: id.into(),
        symbol: symbol.into(),
        qty: Some(qty),
        filled_qty: filled,
        filled_avg_price: (!filled.is_zero()).then_some(Decimal::ONE_HUNDRED),
        side: "buy".into(),
        order_type: if limit.is_some() { "limit" } else { "market" }.into(),
        time_in_force: "day".into(),
        limit_price: limit,
        status: if filled.is_zero() { "new" } else { "filled" }.into(),
    });
    if !filled.is_zero() {
        *state.positions.entry(symbol.into()).or_default() += filled;
    }
}

#[test]
fn a_reconciliation_worker_asks_the_engines_outbox_about_an_open_order_it_never_saw() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    // An order an earlier run placed (its intent in the engine's outbox) rests at the
    // venue: a limit far from the market.
    let id = "alc-earlier-run-resting-limit";
    drop(Journal::open(&dir.path().join("journal.sqlite"), SyncMode::Normal).unwrap());
    intended_and_at_venue(
        dir.path(),
        &f,
        id,
        "AAPL",
        Some(Decimal::ONE),
        Decimal::ZERO,
    );
    // Reconciliation alone in a fresh worker: it never saw that order submitted.
    let cfg = config_full(dir.path(), &f, port, None, &["reconciliation"]);
    let _w = worker_of(&cfg, dir.path(), "w", None, "reconciliation");
    let out = run_once(&cfg, "2023-09-21");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{said}\nworker: {}",
        log(dir.path(), "w")
    );
    assert!(!said.contains("unexplained"), "{said}");
}

#[test]
fn an_order_whose_execution_never_reached_the_journal_counts_at_the_next_start() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nats = NatsServer::start(&binary, port, &dir.path().join("nats"));
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    let _w = worker(&cfg, dir.path(), "w", None);
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    f.set_today(day("2023-09-20"));
    let first = run_once(&cfg, "2023-09-20");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // As when the engine stops after a worker's intent is on disk and its order went
    // out, but before the execution's start reached the journal: the intent unanswered,
    // the order filled at the venue, nothing of it journaled.
    let id = "alc-intent-before-its-execution-started";
    intended_and_at_venue(dir.path(), &f, id, "NFLX", None, Decimal::TEN);
    f.set_today(day("2023-09-21"));
    let out = run_once(&cfg, "2023-09-21");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{said}\nworker: {}",
        log(dir.path(), "w")
    );
    assert!(!said.contains("drifted"), "{said}");
}

#[test]
fn a_nats_restart_of_eight_seconds_mid_plan_loses_no_fill() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = dir.path().join("nats");
    let nats = NatsServer::start(&binary, port, &store);
    let f = fake();
    // A slow venue: the plan is still going when the server goes down.
    f.state().latency = Duration::from_millis(300);
    let cfg = config(dir.path(), &f, port);
    let _w = worker(&cfg, dir.path(), "w", None);
    let run = run_in_background(&cfg);
    await_first_order(&f);
    drop(nats);
    std::thread::sleep(Duration::from_secs(8));
    let _nats = NatsServer::start(&binary, port, &store);
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}\nworker: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "w")
    );
    // Every fill the venue made is in the journal; no reaction was refused. Orders the
    // worker could not have journaled while the bus was down were not sent: that
    // workflow may fail and be retried by recovery.
    assert_consistent_retried(dir.path(), &f, 1, 1);
    let engine = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!engine.contains("is not an earlier event"), "{engine}");
    assert!(!engine.contains("not allowed in stage"), "{engine}");
}

#[test]
fn over_tls_each_role_trades_as_its_own_user_and_the_server_refuses_the_rest() {
    let Some(binary) = nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_nats, certs) = secured_server(&binary, dir.path(), port);
    let f = fake();
    let cfg = config(dir.path(), &f, port);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("nats://", "tls://");
    std::fs::write(
        &cfg,
        format!(
            "{text}tls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            certs[0], certs[3], certs[4]
        ),
    )
    .unwrap();

    // A worker whose password is wrong is refused at once, the secret not shown.
    let wrong = [
        ("ALCHEMISER_NATS_USER", "execution"),
        ("ALCHEMISER_NATS_PASSWORD", "guessed-wrong"),
    ];
    let refused = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["worker", "--roles", "execution", "--config"])
        .arg(&cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .envs(wrong)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "NATS at tls://127.0.0.1:{port} refuses user execution"
        )) && said.contains("authorization violation"),
        "{said}"
    );
    assert!(!said.contains("guessed-wrong"), "{said}");

    // Each role's worker as its own user; the engine as its.
    let (execution, reconciliation, engine) = (
        as_user("execution"),
        as_user("reconciliation"),
        as_user("engine"),
    );
    let _x = worker_env(&cfg, dir.path(), "x", None, "execution", &pairs(&execution));
    let _r = worker_env(
        &cfg,
        dir.path(),
        "r",
        None,
        "reconciliation",
        &pairs(&reconciliation),
    );
    let out = run_once_env(&cfg, "2023-09-21", &[], &pairs(&engine));
    assert!(
        out.status.success(),
        "{}\nexecution: {}\nreconciliation: {}",
        String::from_utf8_lossy(&out.stderr),
        log(dir.path(), "x"),
        log(dir.path(), "r")
    );
    assert_consistent(dir.path(), &f, 1);
    let server_log = std::fs::read_to_string(dir.path().join("nats/server.log")).unwrap();
    assert!(
        // The server logs "Publish Violation - User ..." (and "Subscription Violation").
        !server_log.contains("Violation"),
        "the engine and workers stayed inside their permissions: {server_log}"
    );

    // What the server refuses, seen by a client of the test's own.
    let url = format!("tls://127.0.0.1:{port}");
    let tls = || {
        async_nats::ConnectOptions::new()
            .add_root_certificates(certs[0].clone())
            .add_client_certificate(certs[3].clone(), certs[4].clone())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(3))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No credentials: nothing at all.
        let anonymous = tls().connect(&url).await.map(|_| ()).unwrap_err();
        assert_eq!(
            anonymous.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{anonymous}"
        );
        // The engine's password without a client certificate: refused by TLS.
        let without_cert = async_nats::ConnectOptions::new()
            .add_root_certificates(certs[0].clone())
            .user_and_password("engine".into(), password_of("engine"))
            .connection_timeout(Duration::from_secs(3))
            .connect(&url)
            .await;
        assert!(
            without_cert.is_err(),
            "a client without a certificate got in"
        );

        let engine = tls()
            .user_and_password("engine".into(), password_of("engine"))
            .connect(&url)
            .await
            .unwrap();
        let js = async_nats::jetstream::new(engine);
        let mut stream = js.get_stream("ALCHEMISER").await.unwrap();
        let before = stream.info().await.unwrap().state.messages;
        assert!(before > 0, "the engine's events are on the stream");

        // The execution worker's user: each try below is refused by the server.
        let (tx, mut violations) = tokio::sync::mpsc::unbounded_channel();
        let worker = tls()
            .user_and_password("execution".into(), password_of("execution"))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(&url)
            .await
            .unwrap();
        for subject in [
            // An event: only the engine publishes them.
            "alchemiser.events.workflow.started.v1",
            // Another role's reaction.
            "alchemiser.broker.publish.strategy",
            // Another role's consumer.
            "$JS.API.CONSUMER.MSG.NEXT.ALCHEMISER.reconciliation--execution_order_settled_v1",
            // The stream's management.
            "$JS.API.STREAM.DELETE.ALCHEMISER",
        ] {
            worker.publish(subject, "{}".into()).await.unwrap();
            worker.flush().await.unwrap();
            let said = tokio::time::timeout(Duration::from_secs(5), violations.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("the server let the execution worker publish to {subject}")
                })
                .unwrap();
            assert!(
                said.contains("Permissions Violation for Publish") && said.contains(subject),
                "{subject}: {said}"
            );
        }
        // Its own reaction subject is open to it.
        worker
            .publish("alchemiser.broker.publish.execution", "{}".into())
            .await
            .unwrap();
        worker.flush().await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_secs(1), violations.recv()).await;
        assert!(quiet.is_err(), "{quiet:?}");
        assert_eq!(stream.info().await.unwrap().state.messages, before);
    });
}
