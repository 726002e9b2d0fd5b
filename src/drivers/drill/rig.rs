//! The drill rig: a throw-away engine (its own folder, journal and outbox) on the
//! bundled data, a simulated venue or the fake Alpaca server on loopback, and the
//! measurements every drill reports.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::actors::broker::{Broker, BrokerStats, QueryStats};
use crate::actors::engine::{await_outcome, Day, Engine, EngineDeps};
use crate::actors::supervision::Registry;
use crate::causation::WorkflowSummary;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{RunMode, Side, Symbol, Trigger};
use crate::drill_report::{compare_positions, duplicate_fills, DrillReport};
use crate::events::CorrelationId;
use crate::journal::outbox::Outbox;
use crate::journal::{Journal, SyncMode};
use crate::strategy::book::StrategyBook;
use crate::venue::Venue;
use crate::venues::alpaca::client::{AlpacaClient, ClientSettings, Credentials};
use crate::venues::alpaca::fake::FakeAlpaca;
use crate::venues::alpaca::{AlpacaVenue, FillWait};
use crate::venues::sim::SimVenue;
use crate::workflow::WorkflowStatus;

/// Credentials of the fake server (not secrets: it runs inside the drill).
pub const KEY: &str = "PKDRILL0000001";
pub const SECRET: &str = "drill-only-secret";

/// One order as the venue has it, for counting duplicates.
#[derive(Clone, Debug)]
pub struct PlacedOrder {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub filled_qty: Decimal,
}

pub struct Rig {
    pub dir: PathBuf,
    pub config: Config,
    pub book: Arc<StrategyBook>,
    pub as_of: NaiveDate,
    /// Closes of the as-of day: the fake's fill prices and the money tolerance's.
    pub prices: BTreeMap<Symbol, Decimal>,
    /// Left on disk when dropped (a failed drill's logs and journal, to look into).
    pub keep: bool,
}

impl Rig {
    /// A fresh folder and the embedded configuration with drill timings: short
    /// timeouts and backoffs so that every recovery path runs in well under a second.
    pub fn new(label: &str, tweak: impl FnOnce(&mut Config)) -> Result<Rig, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "alchemiser-drill-{}-{label}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut config = Config::load_or_default(None).map_err(|e| e.to_string())?;
        config.engine.workflow_timeout_secs = 10;
        config.engine.handler_timeout_secs = 3;
        config.engine.timeout_check_ms = 50;
        config.supervision.max_restarts = 20;
        config.supervision.backoff_initial_ms = 10;
        config.supervision.backoff_cap_ms = 50;
        config.recovery.backoff_ms = 20;
        config.recovery.backoff_cap_ms = 200;
        config.journal.path = dir.join("journal.sqlite");
        config.venue.sim.state_file = PathBuf::new();
        config.engine.control_dir = dir.clone();
        config.alpaca.timeout_secs = 1;
        tweak(&mut config);
        config.validate().map_err(|v| {
            let broken: Vec<String> = v
                .iter()
                .map(|v| format!("{}: {}", v.key, v.message))
                .collect();
            format!("drill config: {}", broken.join("; "))
        })?;
        let book = crate::symphony_files::load_book(&config.strategy, &config.base_dir, None)
            .map_err(|e| e.to_string())?;
        let as_of = *book
            .common_dates()
            .last()
            .ok_or("the bundled data has no common session")?;
        let prices = book
            .symbols()
            .into_iter()
            .filter_map(|s| {
                let close = book.data.close_on_or_before(&s, as_of).map(|(_, c)| c)?;
                Some((s, close))
            })
            .collect();
        Ok(Rig {
            dir,
            config,
            book: Arc::new(book),
            as_of,
            prices,
            keep: false,
        })
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.sqlite")
    }

    pub fn sim(&self) -> Arc<SimVenue> {
        let sim = Arc::new(SimVenue::new(
            self.config.venue.sim.initial_cash,
            self.config.venue.sim.costs(),
            Some(Arc::new(self.book.data.clone())),
        ));
        sim.set_date(self.as_of);
        sim
    }

    /// The fake Alpaca server on loopback, filling at the as-of closes.
    pub fn fake(&self) -> Result<FakeAlpaca, String> {
        let f = FakeAlpaca::start(KEY, SECRET, self.config.venue.sim.initial_cash)
            .map_err(|e| format!("fake Alpaca: {e}"))?;
        f.state().prices = self.prices.clone();
        // The venue's day is the drill's: the engine trades only the venue's session.
        f.set_today(self.as_of);
        Ok(f)
    }

    pub fn alpaca(
        &self,
        fake: &FakeAlpaca,
        rate: Option<(u32, Duration)>,
    ) -> Result<Arc<AlpacaVenue>, String> {
        let (requests_per_minute, rate_window) = rate.unwrap_or((10_000, Duration::from_secs(60)));
        let settings = ClientSettings {
            trading_url: fake.url(),
            data_url: fake.url(),
            requests_per_minute,
            rate_window,
            timeout: Duration::from_millis(400),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(50),
        };
        let client = AlpacaClient::new(settings, Credentials::new(KEY, SECRET))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(AlpacaVenue::new(
            client,
            FillWait {
                poll_every: Duration::from_millis(10),
                max_polls: 20,
            },
        )))
    }

    /// Starts the five actors (with `faults` wrapped around them) and a journaled
    /// broker, as `run` does.
    pub fn start(
        &self,
        venue: Arc<dyn Venue>,
        faults: impl FnOnce(&mut Registry),
    ) -> Result<DrillEngine, String> {
        let path = self.journal_path();
        let journal = Journal::open(&path, SyncMode::Normal).map_err(|e| e.to_string())?;
        let outbox = Outbox::open(&path).map_err(|e| e.to_string())?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let deps = EngineDeps::new(self.config.clone(), clock, venue, self.book.clone())
            .with_outbox(outbox);
        let engine = Engine::builder(deps)
            .registry(faults)
            .journal(Some(journal))
            .patience(Duration::from_secs(10))
            .start();
        Ok(DrillEngine {
            engine,
            journal: path,
        })
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("ALCHEMISER_DRILL_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A drill's engine, and where its journal is.
pub struct DrillEngine {
    pub engine: Engine,
    pub journal: PathBuf,
}

impl DrillEngine {
    pub fn broker(&self) -> &Addr<Broker> {
        self.engine.broker()
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.engine.deps().clock
    }

    /// Runs the day's workflow and follows its retries to the end.
    pub async fn day(&self, as_of: NaiveDate) -> Result<Vec<WorkflowSummary>, String> {
        let day = Day::new(as_of, RunMode::Paper, Trigger::Drill);
        self.engine.run_day(day).await.map_err(|e| e.to_string())
    }

    pub async fn follow(&self, correlation: CorrelationId) -> Result<Vec<WorkflowSummary>, String> {
        await_outcome(self.broker(), correlation, self.engine.patience())
            .await
            .map_err(|e| e.to_string())
    }

    /// Waits until every delivery is acknowledged (or dead-lettered), then the stats.
    pub async fn settle(&self) -> Result<BrokerStats, String> {
        let mut quiet = 0;
        for _ in 0..250 {
            let stats = self
                .broker()
                .send(QueryStats)
                .await
                .map_err(|e| e.to_string())?;
            let pending: usize = stats.actors.iter().map(|a| a.unacknowledged).sum();
            quiet = if pending == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return Ok(stats);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.broker()
            .send(QueryStats)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Fills in what every drill reports: restarts, dead letters, rejections, orders,
/// duplicates (a leg filled twice in one workflow; a retry is a new workflow that
/// re-plans from what is held, which the positions check covers), lost events (accepted but not journaled, delivered
/// but never acknowledged, workflows left open) and final positions against the
/// fault-free run. `stats`: the in-process broker's, `None` when the engine ran as a
/// child process (then the journal alone speaks).
#[allow(clippy::too_many_arguments)]
pub fn measure(
    report: &mut DrillReport,
    stats: Option<&BrokerStats>,
    attempts: &[WorkflowSummary],
    journal_path: &Path,
    orders: &[PlacedOrder],
    positions: &BTreeMap<Symbol, Decimal>,
    planned: Option<&BTreeMap<Symbol, Decimal>>,
    rig: &Rig,
) {
    if let Some(stats) = stats {
        report.restarts = stats.restarts;
        report.dead_letters = stats.dead_letters.len();
        report.rejected = stats.rejected;
        report.halted = stats
            .halted
            .as_ref()
            .map(|h| format!("{}: {}", h.reason, h.detail));
        let unacknowledged: usize = stats.actors.iter().map(|a| a.unacknowledged).sum();
        report.lost_events = unacknowledged as u64;
    }
    report.workflows = attempts.len();
    report.final_status = attempts
        .last()
        .map_or("unknown".into(), |a| a.status.to_string());
    report.orders_submitted = orders.len();
    match Journal::open(journal_path, SyncMode::Normal) {
        Err(e) => report.check("journal readable", false, e.to_string()),
        Ok(journal) => {
            let entries = journal.entries().unwrap_or_default();
            // Write-ahead: what the broker accepted must all be in the journal.
            if let Some(stats) = stats {
                report.lost_events += stats.last_seq.saturating_sub(entries.len() as u64);
            }
            let open = journal
                .open_workflows()
                .map(|o| o.len())
                .unwrap_or(usize::MAX);
            report.lost_events += open as u64;
            let verified = journal
                .verify()
                .ok()
                .and_then(|v| v.first_broken.map(|(s, w)| format!("seq {s}: {w}")));
            report.check(
                "journal verifies",
                verified.is_none(),
                verified.unwrap_or_else(|| format!("{} entries", entries.len())),
            );
            let owners: HashMap<String, CorrelationId> = Outbox::open(journal_path)
                .and_then(|o| o.intent_workflows())
                .map(|v| v.into_iter().collect())
                .unwrap_or_default();
            let filled: Vec<(String, Symbol, Side)> = orders
                .iter()
                .filter(|o| o.filled_qty > Decimal::ZERO)
                .map(|o| {
                    let workflow = owners
                        .get(&o.client_order_id)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| format!("unjournaled {}", o.client_order_id));
                    (workflow, o.symbol.clone(), o.side)
                })
                .collect();
            report.duplicate_orders += duplicate_fills(&filled);
            let strangers = orders
                .iter()
                .filter(|o| !owners.contains_key(&o.client_order_id))
                .count();
            report.check(
                "every venue order has a journaled intent",
                strangers == 0,
                format!("{strangers} without"),
            );
        }
    }
    if let Some(planned) = planned {
        // The planner's own no-trade band: a position within min_trade_pct of the
        // portfolio's value of its target is left alone, so two runs whose trading
        // days differed (a soak over years) may differ by that much; a duplicated leg
        // is larger. The portfolio is the fault-free run's, at the last closes.
        let value: Decimal = planned
            .iter()
            .map(|(s, q)| *q * rig.prices.get(s).copied().unwrap_or_default())
            .sum();
        let tolerance = rig.config.portfolio.min_trade_pct * value;
        let (rows, matched, largest) =
            compare_positions(planned, positions, &rig.prices, tolerance);
        report.positions = rows;
        report.positions_match_plan = matched;
        report.largest_position_gap = largest.round_dp(2);
        report.position_tolerance = tolerance.round_dp(2);
    }
}

impl DrillEngine {
    /// For a drill on the simulated venue: waits until the engine settles, then
    /// [`measure`]s; the stats, for the drill's own checks.
    pub async fn settle_and_measure(
        &self,
        report: &mut DrillReport,
        attempts: &[WorkflowSummary],
        sim: &SimVenue,
        planned: Option<&BTreeMap<Symbol, Decimal>>,
        rig: &Rig,
    ) -> Result<BrokerStats, String> {
        let stats = self.settle().await?;
        measure(
            report,
            Some(&stats),
            attempts,
            &self.journal,
            &sim_orders(sim),
            &sim.snapshot().positions,
            planned,
            rig,
        );
        Ok(stats)
    }
}

/// The sim venue's orders, for [`measure`].
pub fn sim_orders(sim: &SimVenue) -> Vec<PlacedOrder> {
    sim.orders()
        .into_iter()
        .map(|o| PlacedOrder {
            client_order_id: o.client_order_id,
            symbol: o.symbol,
            side: o.side,
            filled_qty: o.filled_qty,
        })
        .collect()
}

/// The fake server's orders, and orders created twice under one client id.
pub fn fake_orders(fake: &FakeAlpaca) -> (Vec<PlacedOrder>, u32) {
    let state = fake.state();
    let orders = state
        .orders
        .iter()
        .map(|o| PlacedOrder {
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.as_str().into(),
            side: if o.side == "sell" {
                Side::Sell
            } else {
                Side::Buy
            },
            filled_qty: o.filled_qty,
        })
        .collect();
    let twice = state.created.values().map(|n| n.saturating_sub(1)).sum();
    (orders, twice)
}

/// The usual ending of a drill: the day completed (after retries) and the positions
/// match the fault-free run.
pub fn expect_day_on_plan(report: &mut DrillReport, attempts: &[WorkflowSummary]) {
    let status = report.final_status.clone();
    report.check("day completed", completed(attempts), status);
    let on_plan = report.positions_match_plan;
    report.check("positions match the plan", on_plan, "");
}

/// True when the last attempt completed.
pub fn completed(attempts: &[WorkflowSummary]) -> bool {
    attempts
        .last()
        .is_some_and(|a| a.status == WorkflowStatus::Completed)
}
