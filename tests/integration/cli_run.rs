//! `alchemiser run --once` as a process: on the simulated venue by default, on (fake)
//! Alpaca when keys are in the environment — with the secret absent from everything it
//! prints — and the live-trading guard.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::str::FromStr;

use alchemiser::venues::alpaca::fake::{FakeAlpaca, Fault, Route};
use rust_decimal::Decimal;

const KEY: &str = "PKRUNTEST12345";
const SECRET: &str = "run-secret-must-not-leak-9f3a";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "trace");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config on the bundled data with the simulated account kept in `dir`.
fn sim_config(dir: &std::path::Path) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[venue.sim]\nstate_file = {:?}\n",
            root().join("examples/data").display().to_string(),
            root().join("examples/strategies/default.clj").display().to_string(),
            dir.join("state/sim.json").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn run_once_trades_the_simulated_venue_and_keeps_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let o = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["workflow"]["status"], "completed");
    assert_eq!(report["as_of"], "2023-09-21");
    assert!(report["workflow"]["orders_placed"].as_u64().unwrap() >= 3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("simulated, data"));
    assert!(dir.path().join("state/sim.json").exists());

    // The next run starts from the saved account: already rebalanced, nothing to trade.
    let again = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let report2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report2["workflow"]["orders_placed"], 0);
    assert_eq!(report2["account"], report["account"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("simulated account restored"));
}

#[test]
fn run_once_on_alpaca_never_prints_the_secret() {
    let fake = FakeAlpaca::start(KEY, SECRET, Decimal::from(100_000)).unwrap();
    for (s, p) in [
        ("AAPL", "173.93"),
        ("AMZN", "129.33"),
        ("GOOG", "131.36"),
        ("META", "295.73"),
        ("NFLX", "386.3"),
        ("NVDA", "410.17"),
    ] {
        fake.state()
            .prices
            .insert(s.into(), Decimal::from_str(p).unwrap());
        fake.state().bars.insert(s.into(), bars_from_bundled(s));
    }
    fake.state().bars_page_size = 1000;
    fake.set_today(chrono::NaiveDate::from_ymd_opt(2023, 9, 21).unwrap());
    // A fault on the way, so error paths log too.
    fake.inject(Fault::Status {
        route: Route::SubmitOrder,
        status: 503,
        reset_in_secs: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n",
            root().join("examples/data").display().to_string(),
            root().join("examples/strategies/default.clj").display().to_string(),
            fake.url(),
            fake.url()
        ),
    )
    .unwrap();
    let o = bin()
        .args(["run", "--once", "--as-of", "2023-09-21", "--config"])
        .arg(&cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .output()
        .unwrap();
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(!all.contains(SECRET), "the secret leaked");
    assert!(!all.contains(KEY), "the full key id leaked");
    assert!(all.contains("PK…2345"), "the masked key id is shown: {all}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["workflow"]["status"], "completed");
    assert!(
        all.contains("evaluating on the store's daily bars"),
        "strategies ran on Alpaca's bars: {all}"
    );
    assert!(all.contains("calendar confirmed by Alpaca"), "{all}");
    let state = fake.state();
    assert!(state.requests.iter().any(|r| r == "GET /v2/stocks/bars"));
    assert!(state.created.len() >= 3);
    assert!(
        state.created.values().all(|n| *n == 1),
        "{:?}",
        state.created
    );
}

/// The bundled CSV as Alpaca would serve it: bars stamped at midnight New York.
fn bars_from_bundled(symbol: &str) -> Vec<alchemiser::venues::alpaca::wire::Bar> {
    use chrono::TimeZone;
    let text = std::fs::read_to_string(root().join(format!("examples/data/{symbol}.csv"))).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let date = chrono::NaiveDate::parse_from_str(f[0], "%Y-%m-%d").unwrap();
            let midnight = chrono_tz::America::New_York
                .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc);
            let n = |s: &str| serde_json::Number::from_str(s).unwrap();
            alchemiser::venues::alpaca::wire::Bar {
                t: midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                o: n(f[1]),
                h: n(f[2]),
                l: n(f[3]),
                c: n(f[4]),
                v: n(f[5]),
            }
        })
        .collect()
}

#[test]
fn live_trading_needs_both_the_config_and_the_flag() {
    let o = bin().args(["run", "--once", "--live"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("--live was given but engine.mode is \"paper\""),
        "{}",
        text(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("live.toml");
    let strategy =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/strategies/default.clj");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[engine]\nmode = \"live\"\ncontrol_dir = {:?}\n[journal]\npath = {:?}\n[strategy]\ndata = {data:?}\n[[strategy.files]]\npath = {strategy:?}\n",
            dir.path(),
            dir.path().join("journal.sqlite")
        ),
    )
    .unwrap();
    let o = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("refusing to trade real money"),
        "{}",
        text(&o)
    );
    // Both, but no keys: live never falls back to the simulated venue.
    let o = bin()
        .args(["run", "--once", "--live", "--config"])
        .arg(&cfg)
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("refusing to run live on the simulated venue"),
        "{}",
        text(&o)
    );
    assert!(
        !dir.path().join("journal.sqlite").exists(),
        "nothing journaled"
    );
}

#[test]
fn sigterm_while_waiting_for_the_schedule_exits_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let waiting = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .any(|l| l.contains("next workflow"));
    assert!(waiting, "the engine announced its next run");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_schedule_time_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[schedule]\ntime = \"quarter to four\"\n").unwrap();
    let o = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("schedule.time: `quarter to four` is not HH:MM"),
        "{}",
        text(&o)
    );
}
