//! `drill distributed`: the engine, two workers (execution and reconciliation) and
//! nats-server as child processes on loopback, trading day after day against the fake
//! Alpaca, whose market orders fill in parts over several polls and which answers some
//! orders with a 5xx or only after the client gave up. Each day one of them is killed
//! with SIGKILL at a random point of the plan (a number of orders at the venue, or a
//! moment after the start): a worker (started again at once), the engine (its day run
//! again, as an operator or the scheduler would) or nats-server (started again on the
//! same store after a pause). After every day: the day completed, the account on the
//! day's plan, no halt. At the end: no client order id twice at the venue, every venue
//! fill in the journal, positions equal to the journaled fills, the journal whole.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use super::rig::{fake_orders, measure, Rig, KEY, SECRET};
use crate::domain::Symbol;
use crate::drill_report::DrillReport;
use crate::events::{CorrelationId, EventKind, Payload, ReconciliationStatus};
use crate::journal::{Journal, JournalEntry, SyncMode};
use crate::venues::alpaca::fake::{FakeAlpaca, Fault, Route};

/// How long one run of a day may take before the drill calls it hung.
const DAY_BOUND: Duration = Duration::from_secs(120);
/// Runs of one day at most: the first, and again after a kill or a failed day.
const RUNS_PER_DAY: u32 = 3;

/// A child process, killed (SIGKILL) when dropped.
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_binary() -> Result<PathBuf, String> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| {
        "the distributed drill needs nats-server (apt-get install -y nats-server)".into()
    })
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// nats-server with JetStream on `port`, its store in `store` (kept across restarts).
fn start_nats(binary: &Path, port: u16, store: &Path) -> Result<Process, String> {
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server: {e}"))?;
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(process)
}

/// This binary running `args` on `cfg`, with the fake's keys, quiet.
fn alchemiser(args: &[&str], cfg: &Path) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut c = Command::new(exe);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .env("RUST_LOG", "warn,alchemiser=info")
        .env_remove("ALCHEMISER_CRASH_AFTER")
        .env_remove("ALCHEMISER_FAIL_ON")
        .stdout(Stdio::null());
    Ok(c)
}

fn start_worker(cfg: &Path, dir: &Path, name: &str) -> Result<Process, String> {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    alchemiser(&["worker", "--roles", "execution,reconciliation"], cfg)?
        .env("HOSTNAME", name)
        .stderr(log)
        .spawn()
        .map(Process)
        .map_err(|e| format!("worker: {e}"))
}

fn start_engine(cfg: &Path, dir: &Path, day: NaiveDate, run: u32) -> Result<Process, String> {
    let log = std::fs::File::create(dir.join(format!("engine-{day}-{run}.log")))
        .map_err(|e| e.to_string())?;
    alchemiser(&["run", "--once", "--as-of", &day.to_string()], cfg)?
        .stderr(log)
        .spawn()
        .map(Process)
        .map_err(|e| format!("engine: {e}"))
}

/// What is killed on a day.
#[derive(Clone, Copy, PartialEq)]
enum Victim {
    Nobody,
    Worker(usize),
    Engine,
    Nats,
}

/// When: once the venue holds this many of the day's orders, or this long after start.
#[derive(Clone, Copy)]
enum Moment {
    Orders(usize),
    After(Duration),
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moment::Orders(n) => write!(f, "at the day's order {n}"),
            Moment::After(d) => write!(f, "{} ms after the start", d.as_millis()),
        }
    }
}

/// Runs `days` sessions (the last ones of the bundled data) as described above.
pub fn distributed(seed: u64, days: u32) -> Result<DrillReport, String> {
    let mut report = DrillReport::new("distributed", seed, 0);
    let nats = nats_binary()?;
    let mut rig = Rig::new("distributed", |_| {})?;
    let dates = rig.book.common_dates();
    let warm = 300.min(dates.len());
    let take = (days as usize).min(dates.len() - warm);
    let dates = dates[dates.len() - take..].to_vec();
    let fake = rig.fake()?;
    let port = free_port()?;
    let store = rig.dir.join("nats");
    let cfg = write_config(&rig, &fake, port)?;
    let mut server = start_nats(&nats, port, &store)?;
    let mut workers = vec![
        start_worker(&cfg, &rig.dir, "w0")?,
        start_worker(&cfg, &rig.dir, "w1")?,
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut off_plan: Vec<String> = Vec::new();
    let mut reruns = 0u32;
    for (i, day) in dates.iter().enumerate() {
        prepare_venue(&rig, &fake, *day, &mut rng);
        let victim = match rng.random_range(0..100) {
            0..=9 => Victim::Nobody,
            10..=39 => Victim::Worker(rng.random_range(0..2)),
            40..=69 => Victim::Engine,
            _ => Victim::Nats,
        };
        let moment = if rng.random_bool(0.5) {
            Moment::Orders(1)
        } else {
            Moment::After(Duration::from_millis(rng.random_range(0..1200)))
        };
        let orders_before = fake.state().orders.len();
        let mut engine = start_engine(&cfg, &rig.dir, *day, 0)?;
        let started = Instant::now();
        // Up to the moment (or the end of the run, whichever comes first).
        let reached = loop {
            if engine.0.try_wait().ok().flatten().is_some() {
                break false;
            }
            let now = match moment {
                Moment::Orders(n) => fake.state().orders.len() >= orders_before + n,
                Moment::After(d) => started.elapsed() >= d,
            };
            if now || started.elapsed() > DAY_BOUND {
                break now;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut engine_killed = false;
        if !reached && victim != Victim::Nobody {
            // The day ended before the moment came: nothing killed.
            *kills.entry("none (the day ended first)").or_default() += 1;
        }
        if reached {
            let killed = match victim {
                Victim::Nobody => None,
                Victim::Worker(w) => {
                    workers[w].kill();
                    workers[w] = start_worker(&cfg, &rig.dir, &format!("w{w}-{i}"))?;
                    Some("worker")
                }
                Victim::Engine => {
                    engine.kill();
                    engine_killed = true;
                    Some("engine")
                }
                Victim::Nats => {
                    server.kill();
                    std::thread::sleep(Duration::from_millis(rng.random_range(300..3000)));
                    server = start_nats(&nats, port, &store)?;
                    Some("nats-server")
                }
            };
            if let Some(what) = killed {
                *kills.entry(what).or_default() += 1;
                report.faults_injected += 1;
                if report.faults.len() < 20 {
                    report
                        .faults
                        .push(format!("{day}: kill -9 {what} {moment}"));
                }
            }
        }
        // The day's runs: the first (unless killed), and again while the day is not done.
        let mut run = 0;
        let mut done = !engine_killed && wait(&mut engine)?;
        while !done && run + 1 < RUNS_PER_DAY {
            run += 1;
            reruns += 1;
            let mut again = start_engine(&cfg, &rig.dir, *day, run)?;
            done = wait(&mut again)?;
        }
        if !done {
            problems.push(format!(
                "{day}: not completed after {RUNS_PER_DAY} runs (its logs: engine-{day}-*.log)"
            ));
        }
        let journal = Journal::open(&rig.journal_path(), SyncMode::Normal)
            .map_err(|e| format!("journal: {e}"))?;
        let entries = journal.entries().map_err(|e| e.to_string())?;
        if let Some(why) = day_off_plan(&entries, *day, &fake, &rig) {
            off_plan.push(format!("{day}: {why}"));
        }
    }
    drop(workers);
    drop(server);

    let (orders, created_twice) = fake_orders(&fake);
    let positions = fake.state().positions.clone();
    measure(
        &mut report,
        None,
        &[],
        &rig.journal_path(),
        &orders,
        &positions,
        None,
        &rig,
    );
    report.duplicate_orders += created_twice;
    let journal =
        Journal::open(&rig.journal_path(), SyncMode::Normal).map_err(|e| e.to_string())?;
    let entries = journal.entries().map_err(|e| e.to_string())?;
    report.workflows = entries
        .iter()
        .filter(|e| e.envelope.kind() == EventKind::WorkflowStarted)
        .count();
    let halts: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::TradingHalted(h) => Some(format!("{}: {}", h.reason, h.detail)),
            _ => None,
        })
        .collect();
    report.halted = halts.first().cloned();
    report.check("no halt", halts.is_empty(), halts.join("; "));
    report.check(
        "every day completed",
        problems.is_empty(),
        format!(
            "{} days, {reruns} runs again after a kill or a failed run{}",
            dates.len(),
            if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join("; "))
            }
        ),
    );
    report.check(
        "every day ends on its plan",
        off_plan.is_empty(),
        off_plan.join("; "),
    );
    let unjournaled = fills_not_journaled(&entries, &fake);
    report.check(
        "every venue fill is in the journal",
        unjournaled.is_empty(),
        unjournaled.join("; "),
    );
    let journaled = journaled_positions(&entries);
    report.check(
        "venue positions equal the journaled fills",
        journaled == positions,
        if journaled == positions {
            format!("{} symbols", positions.len())
        } else {
            format!("venue {positions:?} journal {journaled:?}")
        },
    );
    report.final_status = if problems.is_empty() {
        "completed".into()
    } else {
        "failed".into()
    };
    let kills: Vec<String> = kills.iter().map(|(k, n)| format!("{k} {n}")).collect();
    report
        .faults
        .insert(0, format!("killed with SIGKILL: {}", kills.join(", ")));
    // A failure that depends on timing may not come back when run again: its folder
    // (each run's log, the workers' logs, the journal) stays for a look.
    if report.checks.iter().any(|c| !c.passed) {
        rig.keep = true;
        report.faults.push(format!(
            "failed: logs and journal kept in {}",
            rig.dir.display()
        ));
    }
    Ok(report)
}

/// Waits for a run of the day to end: whether it completed (exit 0).
fn wait(engine: &mut Process) -> Result<bool, String> {
    let started = Instant::now();
    loop {
        if let Some(status) = engine.0.try_wait().map_err(|e| e.to_string())? {
            return Ok(status.success());
        }
        if started.elapsed() > DAY_BOUND {
            engine.kill();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The engine's configuration: the fake Alpaca, the bus, execution and reconciliation
/// in the workers, short waits so that a kill costs seconds, not minutes.
fn write_config(rig: &Rig, fake: &FakeAlpaca, port: u16) -> Result<PathBuf, String> {
    let c = &rig.config;
    let cfg = rig.dir.join("config.toml");
    let text = format!(
        "[strategy]\ndata = {data:?}\n[[strategy.files]]\npath = {strategy:?}\n\
         [journal]\npath = {journal:?}\n[venue.sim]\nstate_file = \"\"\n\
         [engine]\ncontrol_dir = {control:?}\n[metrics]\nenabled = false\n\
         [recovery]\nbackoff_ms = 20\nbackoff_cap_ms = 200\n\
         [alpaca]\ntrading_url = {url:?}\ndata_url = {url:?}\ntimeout_secs = 1\n\
         [bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\n\
         remote_roles = [\"execution\", \"reconciliation\"]\nack_wait_secs = 2\n\
         connect_timeout_secs = 10\nworker_wait_secs = 15\n",
        data = c.resolve(&c.strategy.data).display().to_string(),
        strategy = c.resolve(&c.strategy.files[0].path).display().to_string(),
        journal = rig.journal_path().display().to_string(),
        control = rig.dir.display().to_string(),
        url = fake.url(),
    );
    std::fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
    Ok(cfg)
}

/// The venue on `day`: its clock, the day's closes as fill prices, the bars up to the
/// day, market orders filling in 1 to 3 parts a poll or more apart, and now and then an
/// order answered with a 503 or only after the client's timeout (created all the same).
fn prepare_venue(rig: &Rig, fake: &FakeAlpaca, day: NaiveDate, rng: &mut StdRng) {
    fake.set_today(day);
    let mut state = fake.state();
    state.prices = rig
        .book
        .symbols()
        .into_iter()
        .filter_map(|s| {
            let close = rig.book.data.close_on_or_before(&s, day).map(|(_, c)| c)?;
            Some((s, close))
        })
        .collect();
    for s in rig.book.symbols() {
        if let Ok(bars) = rig.book.source.read(&s) {
            let bars = bars
                .iter()
                .filter(|b| b.date <= day)
                .map(crate::venues::alpaca::wire::Bar::from_daily)
                .collect();
            state.bars.insert(s.clone(), bars);
        }
    }
    state.bars_page_size = 10_000;
    state.fill_parts = rng.random_range(1..=3);
    state.fill_every = Duration::from_millis(rng.random_range(50..400));
    drop(state);
    if rng.random_bool(0.2) {
        fake.inject(Fault::Status {
            route: Route::SubmitOrder,
            status: 503,
            reset_in_secs: None,
        });
    }
    if rng.random_bool(0.2) {
        fake.inject(Fault::DelayAfterCreate(Duration::from_millis(1500)));
    }
}

/// Why the account is not on `day`'s last plan after the day, if it is not: a symbol
/// whose value differs from the plan's target by more than the planner's no-trade band,
/// or a reconciliation that did not find the journal and the venue agreeing.
fn day_off_plan(
    entries: &[JournalEntry],
    day: NaiveDate,
    fake: &FakeAlpaca,
    rig: &Rig,
) -> Option<String> {
    let of_day: std::collections::BTreeSet<CorrelationId> = entries
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            Payload::WorkflowStarted(s) if s.as_of == day => Some(e.envelope.correlation_id),
            _ => None,
        })
        .collect();
    let in_day = |e: &&JournalEntry| of_day.contains(&e.envelope.correlation_id);
    let plan = entries
        .iter()
        .filter(in_day)
        .rev()
        .find_map(|e| match &e.envelope.payload {
            Payload::RebalancePlanned(p) => Some(p),
            _ => None,
        })?;
    let reconciled = entries
        .iter()
        .filter(in_day)
        .rev()
        .find_map(|e| match &e.envelope.payload {
            Payload::ReconciliationCompleted(r) => Some(r),
            _ => None,
        });
    // (A day without orders has no reconciliation of its own.)
    if let Some(r) = reconciled.filter(|r| r.status != ReconciliationStatus::Ok) {
        return Some(format!(
            "reconciliation {}: {}",
            r.status.as_str(),
            r.detail.clone().unwrap_or_default()
        ));
    }
    let band = rig.config.portfolio.min_trade_pct * plan.portfolio_value + Decimal::ONE;
    let held = fake.state().positions.clone();
    let gaps: Vec<String> = plan
        .items
        .iter()
        .filter_map(|item| {
            let value = held.get(&item.symbol).copied().unwrap_or_default() * item.price;
            let gap = (value - item.target_value).abs();
            (gap > band).then(|| {
                format!(
                    "{} worth {} against a target of {}",
                    item.symbol,
                    value.round_dp(2),
                    item.target_value.round_dp(2)
                )
            })
        })
        .collect();
    (!gaps.is_empty()).then(|| gaps.join(", "))
}

/// Venue orders whose filled quantity the journal's fills do not add up to.
fn fills_not_journaled(entries: &[JournalEntry], fake: &FakeAlpaca) -> Vec<String> {
    let mut journaled: BTreeMap<String, Decimal> = BTreeMap::new();
    for e in entries {
        if let Payload::OrderFilled(f) = &e.envelope.payload {
            *journaled.entry(f.client_order_id.clone()).or_default() += f.qty;
        }
    }
    fake.state()
        .orders
        .iter()
        .filter(|o| {
            journaled
                .get(&o.client_order_id)
                .copied()
                .unwrap_or_default()
                != o.filled_qty
        })
        .map(|o| {
            format!(
                "{} filled {} at the venue, {} in the journal",
                o.client_order_id,
                o.filled_qty,
                journaled
                    .get(&o.client_order_id)
                    .copied()
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Positions as the journal's fills add up (buys less sells), zeros left out.
fn journaled_positions(entries: &[JournalEntry]) -> BTreeMap<Symbol, Decimal> {
    let mut held = BTreeMap::new();
    let fills = entries.iter().filter_map(|e| match &e.envelope.payload {
        Payload::OrderFilled(f) => Some((&f.symbol, f.side, f.qty)),
        _ => None,
    });
    crate::domain::apply_fills(&mut held, fills);
    held
}
