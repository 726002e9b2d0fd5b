//! What an operator meets after the happy path, through the command line: a strategy
//! that cannot evaluate, a changed strategy, a second engine on one journal, a journal
//! that lost its tail or comes from a newer version, and dates the data does not have.
//! Each ends in a clear message and the right exit code, never a silent trade.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn,alchemiser=info");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config in `dir` on the bundled data trading `strategy`, with `extra` appended.
fn config(dir: &Path, strategy: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[venue.sim]\nstate_file = \"state/sim.json\"\n[journal]\npath = \"state/journal.sqlite\"\n[engine]\ncontrol_dir = \"state\"\n[metrics]\nenabled = false\n[recovery]\nbackoff_ms = 10\nbackoff_cap_ms = 20\n{extra}",
            root().join("examples/data"),
            strategy
        ),
    )
    .unwrap();
    cfg
}

fn default_strategy() -> PathBuf {
    root().join("examples/strategies/default.clj")
}

fn run_once(cfg: &Path, args: &[&str]) -> Output {
    bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn sim_positions(dir: &Path) -> serde_json::Value {
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/sim.json")).unwrap()).unwrap();
    saved["account"]["positions"].clone()
}

#[test]
fn a_strategy_that_cannot_evaluate_fails_the_workflow_and_keeps_the_positions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    let o = run_once(&cfg, &["--as-of", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    let held = sim_positions(dir.path());
    assert!(held.as_object().is_some_and(|p| !p.is_empty()), "{held}");
    // The next day, a strategy whose average needs more history than the data has
    // (time only runs forward on the simulated account).
    let hungry = dir.path().join("hungry.clj");
    std::fs::write(
        &hungry,
        "(defsymphony \"hungry\" {} (if (> (current-price \"AAPL\") (moving-average-price \"AAPL\" {:window 9000})) [(asset \"AAPL\")] [(asset \"NVDA\")]))\n",
    )
    .unwrap();
    let cfg = config(dir.path(), &hungry, "");
    let o = run_once(&cfg, &["--as-of", "2023-09-21", "--resume"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("\"status\": \"failed\""), "{out}");
    assert!(out.contains("history"), "{out}");
    assert_eq!(sim_positions(dir.path()), held, "nothing was sold");
}

#[test]
fn with_on_strategy_error_cash_the_slice_goes_to_cash_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    // `on_strategy_error` lives in [strategy]: write the whole file again with it.
    let body = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[strategy]\n", "[strategy]\non_strategy_error = \"cash\"\n");
    std::fs::write(&cfg, body).unwrap();
    let o = run_once(&cfg, &["--as-of", "2013-03-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("WARN") || out.contains("\"level\":\"WARN\""),
        "{out}"
    );
    assert!(out.contains("its slice goes to cash"), "{out}");
}

#[test]
fn a_backtest_starts_after_the_warm_up_and_reports_strategy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bt");
    let o = bin()
        .args([
            "backtest",
            "--from",
            "2013-01-01",
            "--to",
            "2013-12-31",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warm-up: the strategies first evaluate on 2013-10-16"),
        "{err}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["start"], "2013-10-16");
    assert_eq!(summary["warm_up_sessions"], 199);
    assert_eq!(summary["strategy_errors"]["count"], 0);

    // A range the strategies can never evaluate in is bad input.
    let o = bin()
        .args([
            "backtest",
            "--from",
            "2013-01-01",
            "--to",
            "2013-03-01",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("too little history"), "{}", text(&o));
}

/// Two symbols on the bundled calendar's first 80 sessions: SPY moves every day, FLAT
/// stands still from session 40 to 49 (its 5-day volatility is zero there).
fn flat_data(dir: &Path) -> (PathBuf, Vec<String>) {
    let dates: Vec<String> = std::fs::read_to_string(root().join("examples/data/AAPL.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .take(80)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (symbol, flat) in [("SPY", None), ("FLAT", Some(40..50))] {
        let mut csv = String::from("date,open,high,low,close,volume\n");
        let mut price = 100.0f64;
        for (i, d) in dates.iter().enumerate() {
            let still = flat
                .as_ref()
                .is_some_and(|r: &std::ops::Range<usize>| r.contains(&i));
            if !still {
                price *= if i % 3 == 0 { 1.01 } else { 0.995 };
            }
            let p = format!("{price:.4}");
            csv.push_str(&format!("{d},{p},{p},{p},{p},1000\n"));
        }
        std::fs::write(data.join(format!("{symbol}.csv")), csv).unwrap();
    }
    (data, dates)
}

#[test]
fn a_backtest_with_strategy_errors_fails_those_days_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (data, dates) = flat_data(dir.path());
    let strategy = dir.path().join("ivol.clj");
    std::fs::write(
        &strategy,
        "(defsymphony \"ivol\" {}\n (weight-inverse-volatility 5 [(asset \"FLAT\") (asset \"SPY\")]))\n",
    )
    .unwrap();
    let cfg = config(dir.path(), &strategy, "");
    let out = dir.path().join("bt");
    let o = bin()
        .args([
            "backtest", "--from", &dates[0], "--to", &dates[79], "--config",
        ])
        .arg(&cfg)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let errors = &summary["strategy_errors"];
    // From the 5th flat close on (a window of five equal closes) until it moves again.
    assert_eq!(errors["count"], 6, "{summary}");
    assert_eq!(errors["first_day"], dates[44].as_str(), "{summary}");
    assert_eq!(errors["last_day"], dates[49].as_str(), "{summary}");
    assert!(
        errors["reason"]
            .as_str()
            .unwrap()
            .contains("zero volatility"),
        "{summary}"
    );
    // The default keeps the positions: those days fail, nothing is sold.
    assert_eq!(summary["failed_workflows"], 6, "{summary}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "6 strategy evaluation errors from {} to {}",
            dates[44], dates[49]
        )),
        "{stderr}"
    );
    let orders = std::fs::read_to_string(out.join("orders.csv")).unwrap();
    assert!(
        !orders
            .lines()
            .any(|l| dates[44..50].iter().any(|d| l.starts_with(d.as_str()))),
        "{orders}"
    );
}

#[test]
fn a_position_the_new_strategy_no_longer_holds_is_priced_and_sold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let held = sim_positions(dir.path());
    assert!(
        held.get("AMZN").is_some() || held.get("GOOG").is_some(),
        "{held}"
    );
    let apple = dir.path().join("apple.clj");
    std::fs::write(&apple, "(defsymphony \"only apple\" {} (asset \"AAPL\"))\n").unwrap();
    let cfg = config(dir.path(), &apple, "");
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let now = sim_positions(dir.path());
    let symbols: Vec<&String> = now.as_object().unwrap().keys().collect();
    assert_eq!(symbols, ["AAPL"], "{now}");
}

#[test]
fn a_second_engine_on_one_journal_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    // The long-running engine waits for its schedule while holding the journal.
    let mut first = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = dir.path().join("state/journal.sqlite.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("pid")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first engine never locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = run_once(&cfg, &[]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("is in use by another engine"), "{out}");
    assert!(out.contains(&format!("pid {}", first.id())), "{out}");
    // Once it is gone, the journal is free again.
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_backtest_refuses_a_journal_that_already_has_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("bt.sqlite");
    let backtest = |j: &Path| {
        bin()
            .args([
                "backtest",
                "--from",
                "2016-01-01",
                "--to",
                "2016-01-31",
                "--journal",
            ])
            .arg(j)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let o = backtest(&journal);
    assert!(o.status.success(), "{}", text(&o));
    let o = backtest(&journal);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already holds"), "{}", text(&o));
    let o = bin()
        .args(["journal", "verify", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_journal_that_lost_its_tail_is_found_by_verify_and_refused_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    assert!(run_once(&cfg, &[]).status.success());
    let journal = dir.path().join("state/journal.sqlite");
    {
        let conn = rusqlite::Connection::open(&journal).unwrap();
        conn.execute(
            "DELETE FROM events WHERE seq > (SELECT max(seq) - 3 FROM events)",
            [],
        )
        .unwrap();
    }
    let o = bin()
        .args(["journal", "verify", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the last 3 entries are lost"),
        "{}",
        text(&o)
    );
    let o = run_once(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to start"), "{}", text(&o));
}

#[test]
fn a_journal_of_a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    assert!(run_once(&cfg, &[]).status.success());
    let journal = dir.path().join("state/journal.sqlite");
    let before = std::fs::metadata(&journal).unwrap().len();
    {
        let conn = rusqlite::Connection::open(&journal).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let o = run_once(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("journal schema version 99 is newer"), "{out}");
    assert!(out.contains("knows (3)"), "{out}");
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0 && std::fs::metadata(&journal).unwrap().len() >= before);
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99, "not migrated");
}

#[test]
fn bad_dates_are_bad_input_without_a_workflow_or_a_halt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    for (date, why) in [
        ("2023-09-23", "not a US equity trading session (a Saturday)"),
        (
            "2023-12-25",
            "not a US equity trading session (a market holiday, a Monday)",
        ),
        ("2031-01-02", "past the end of the market data"),
    ] {
        let o = run_once(&cfg, &["--as-of", date]);
        assert_eq!(o.status.code(), Some(2), "{date}: {}", text(&o));
        assert!(text(&o).contains(why), "{date}: {}", text(&o));
        let o = bin()
            .args(["signals", "--as-of", date, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{date}: {}", text(&o));
        assert!(text(&o).contains(why), "{date}: {}", text(&o));
    }
    assert!(
        !dir.path().join("state/journal.sqlite").exists(),
        "no workflow was journaled"
    );
    // The engine still trades afterwards: nothing was halted.
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn trace_and_replay_say_what_each_event_says() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &default_strategy(), "");
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = report["workflow"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let journal = dir.path().join("state/journal.sqlite");
    let trace = bin()
        .args(["trace", &id, "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&trace.stdout);
    assert!(
        shown.contains("as of 2023-09-21, paper, trigger manual"),
        "{shown}"
    );
    assert!(shown.contains("orders to place"), "{shown}");
    assert!(shown.contains(" market"), "{shown}");
    assert!(shown.contains("ok (5 positions)"), "{shown}");
    let json = bin()
        .args(["trace", &id, "--format", "json", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    let tree: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(tree["stage"], "completed");
    assert_eq!(tree["root"]["event_type"], "workflow.started.v1");
    assert!(tree["root"]["says"]
        .as_str()
        .unwrap()
        .starts_with("as of 2023-09-21"));
    let replay = bin()
        .args([
            "journal",
            "replay",
            "--format",
            "json",
            "--correlation",
            &id,
            "--journal",
        ])
        .arg(&journal)
        .output()
        .unwrap();
    let replayed: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    let says: Vec<&str> = replayed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["says"].as_str().unwrap())
        .collect();
    assert!(
        says.iter().any(|s| s.contains("orders filled, traded")),
        "{says:?}"
    );
}
