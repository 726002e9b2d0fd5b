//! The edges an operator meets in the first minutes, each failing closed: the day a
//! venue can trade, the daily limit across runs, the kill switch's promise, stale
//! market data, state files and risk symbols as people write them. Each runs the real
//! binary, against the simulated venue or the fake Alpaca on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alchemiser::journal::{Journal, SyncMode};
use alchemiser::venues::alpaca::fake::FakeAlpaca;

use crate::common;

const KEY: &str = "PKEDGES00001";
const SECRET: &str = "edges-secret-never-printed";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config in `dir` on the bundled data, trading `strategy` (a path), plus `extra`.
fn config_with(dir: &Path, strategy: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n{extra}",
            root().join("examples/data").display().to_string(),
            strategy.display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

fn default_strategy() -> PathBuf {
    root().join("examples/strategies/default.clj")
}

/// A symphony holding one asset, written to `dir/NAME.clj`.
fn one_asset(dir: &Path, symbol: &str) -> PathBuf {
    let path = dir.join(format!("{symbol}.clj"));
    std::fs::write(
        &path,
        format!("(defsymphony \"all {symbol}\" {{}} (asset \"{symbol}\"))\n"),
    )
    .unwrap();
    path
}

fn run_once(cfg: &Path, args: &[&str]) -> Output {
    bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn fake_alpaca(today: &str) -> FakeAlpaca {
    common::fake_alpaca(KEY, SECRET, today)
}

fn alpaca_run(cfg: &Path, args: &[&str]) -> Output {
    bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .args(args)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .output()
        .unwrap()
}

fn alpaca_extra(f: &FakeAlpaca) -> String {
    format!(
        "[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n",
        f.url(),
        f.url()
    )
}

fn orders_sent(f: &FakeAlpaca) -> usize {
    f.state()
        .requests
        .iter()
        .filter(|r| r.starts_with("POST /v2/orders"))
        .count()
}

#[test]
fn on_alpaca_only_the_venues_current_session_can_be_traded() {
    let f = fake_alpaca("2023-09-21");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &default_strategy(), &alpaca_extra(&f));
    for asked in ["2023-09-20", "2023-09-22", "2020-01-02"] {
        let o = alpaca_run(&cfg, &["--as-of", asked]);
        assert_eq!(o.status.code(), Some(2), "{asked}: {}", text(&o));
        let all = text(&o);
        assert!(
            all.contains(&format!("--as-of {asked}")) && all.contains("2023-09-21"),
            "both dates named: {all}"
        );
        assert!(!all.contains(SECRET));
    }
    assert_eq!(orders_sent(&f), 0, "nothing traded on another day's signal");
    // The venue's day itself trades.
    let o = alpaca_run(&cfg, &["--as-of", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(orders_sent(&f) > 0);
}

#[test]
fn stale_bars_on_alpaca_fail_before_planning_naming_the_symbol() {
    let f = fake_alpaca("2023-09-21");
    // NVDA's feed stopped two weeks ago.
    f.state()
        .bars
        .get_mut("NVDA")
        .unwrap()
        .retain(|b| &b.t[..10] <= "2023-09-07");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &default_strategy(), &alpaca_extra(&f));
    let o = alpaca_run(&cfg, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("NVDA") && all.contains("2023-09-07") && all.contains("stale"),
        "{all}"
    );
    assert_eq!(orders_sent(&f), 0, "no order on a stale market");
}

#[test]
fn the_simulated_account_only_moves_forward_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &default_strategy(), "");
    let o = run_once(&cfg, &["--as-of", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(dir.path().join("state/sim_account.json")).unwrap();
    let o = run_once(&cfg, &["--as-of", "2023-06-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("2023-06-01") && all.contains("2023-09-21") && all.contains("fresh"),
        "{all}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("state/sim_account.json")).unwrap(),
        before,
        "the account is untouched"
    );
    // The same day again is fine: the account is on target.
    let o = run_once(&cfg, &["--as-of", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn the_daily_limit_counts_the_real_day_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let limit = "[risk]\nmax_daily_notional = \"150000\"\n";
    let apple = config_with(dir.path(), &one_asset(dir.path(), "AAPL"), limit);
    let o = run_once(&apple, &["--as-of", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    // Another file, the next signal day, the same real day: all of AAPL is sold (free)
    // and ~99,000 of NVDA would come on top of the ~99,000 of AAPL already bought today.
    let nvidia = config_with(dir.path(), &one_asset(dir.path(), "NVDA"), limit);
    let o = run_once(&nvidia, &["--as-of", "2023-09-21"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("denied"), "{all}");
    let journal =
        Journal::open(&dir.path().join("state/journal.sqlite"), SyncMode::Normal).unwrap();
    let denied: Vec<String> = journal
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.envelope.payload {
            alchemiser::events::Payload::OrderDenied(d) => Some(d.detail.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    // The message says what was already bought that day (not "on top of 0").
    assert!(denied[0].contains("on top of 9"), "{}", denied[0]);
    let status = bin()
        .args(["status", "--config"])
        .arg(&nvidia)
        .output()
        .unwrap();
    let table = text(&status);
    assert!(
        table.contains("denied") && table.contains("manual"),
        "{table}"
    );
}

#[test]
fn a_reducing_sell_is_never_denied_and_a_denied_buy_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let apple = config_with(dir.path(), &one_asset(dir.path(), "AAPL"), "");
    let o = run_once(&apple, &["--as-of", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    // Only AAPL allowed: moving to NVDA may still sell AAPL; buying NVDA is denied.
    let nvidia = config_with(
        dir.path(),
        &one_asset(dir.path(), "NVDA"),
        "[risk]\nallowed_symbols = [\"AAPL\"]\n",
    );
    let o = run_once(&nvidia, &["--as-of", "2023-09-21"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["workflow"]["orders_denied"], 1, "{report}");
    let positions = &report["account"]["positions"];
    assert!(positions.get("AAPL").is_none(), "AAPL sold: {positions}");
    assert!(positions.get("NVDA").is_none(), "NVDA denied: {positions}");
}

#[test]
fn a_lower_case_risk_symbol_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(
        dir.path(),
        &default_strategy(),
        "[risk]\nallowed_symbols = [\"SPY\", \"aapl\"]\n",
    );
    let o = run_once(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("risk.allowed_symbols[1]") && all.contains("aapl"),
        "{all}"
    );
}

#[test]
fn a_simulated_account_with_negative_cash_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &default_strategy(), "");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/sim_account.json"),
        r#"{"account": {"cash": "-5000", "positions": {"AAPL": "10"}}, "orders": []}"#,
    )
    .unwrap();
    let o = run_once(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("account.cash") && all.contains("-5000"),
        "{all}"
    );
    assert!(
        !dir.path().join("state/journal.sqlite").exists()
            || Journal::open(&dir.path().join("state/journal.sqlite"), SyncMode::Normal)
                .unwrap()
                .entries()
                .unwrap()
                .is_empty(),
        "nothing was journaled from a broken account"
    );
}

/// A scheduled engine (`run` without `--once`) in `dir`, whose first workflow is hours
/// away: it sits reading its control folder.
struct Engine(Child);

impl Engine {
    fn start(cfg: &Path) -> Engine {
        let child = bin()
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Engine(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn halt_without_a_config_uses_the_current_folder_never_the_build_tree() {
    let scratch = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["halt", "--reason", "checking"])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        scratch.path().join("state/HALT").exists(),
        "the request is in the current folder: {}",
        text(&o)
    );
    let all = text(&o);
    assert!(
        all.contains("no engine is running with control dir"),
        "{all}"
    );
    assert!(
        !all.contains("within a second"),
        "no promise it cannot check: {all}"
    );
}

#[test]
fn halt_and_resume_wait_for_the_running_engine_to_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    // 03:00 New York: the first workflow is never due during the test.
    let cfg = config_with(
        dir.path(),
        &default_strategy(),
        "[schedule]\ntime = \"03:00\"\n",
    );
    let engine = Engine::start(&cfg);
    wait_for("the engine's run file", || {
        dir.path().join("state/engine.run").exists()
    });
    // The run file is written before start-up ends; give the engine its first look.
    let halted = (0..20).find_map(|_| {
        let o = bin()
            .args(["halt", "--reason", "test", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        if o.status.success() {
            Some(o)
        } else {
            std::thread::sleep(Duration::from_millis(500));
            None
        }
    });
    let o = halted.expect("the engine acknowledged a halt");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("halted (engine pid {} acknowledged)", engine.pid())
    );
    let o = bin()
        .args(["resume", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("engine pid {} acknowledged", engine.pid())),
        "{}",
        text(&o)
    );
    let journal = dir.path().join("state/journal.sqlite");
    let kinds: Vec<String> = Journal::open(&journal, SyncMode::Normal)
        .unwrap()
        .entries()
        .unwrap()
        .iter()
        .map(|e| e.envelope.event_type().to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "trading.halted.v1"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "trading.resumed.v1"), "{kinds:?}");
    // A second engine on a link to the same journal is refused.
    let other = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&journal, other.path().join("linked.sqlite")).unwrap();
    let cfg2 = config_with(
        other.path(),
        &default_strategy(),
        &format!(
            "[journal]\npath = {:?}\n",
            other.path().join("linked.sqlite").display().to_string()
        ),
    );
    let o = run_once(&cfg2, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("in use by another engine"),
        "{}",
        text(&o)
    );
    drop(engine);
}

fn signals(cfg: &Path) -> Output {
    bin()
        .args(["signals", "--as-of", "2023-09-21", "--config"])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn a_symphony_header_is_refused_at_load_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (header, says) in [
        ("{:rebalnce :weekly}", ":rebalnce"),
        ("{:rebalance-treshold 0.05}", ":rebalance-treshold"),
        (
            "{:rebalance :weekly\n :rebalance-frequency :monthly}",
            "disagree",
        ),
    ] {
        let path = dir.path().join("s.clj");
        std::fs::write(
            &path,
            format!("(defsymphony \"s\"\n {header}\n (asset \"AAPL\"))\n"),
        )
        .unwrap();
        let o = signals(&config_with(dir.path(), &path, ""));
        assert_eq!(o.status.code(), Some(2), "{header}: {}", text(&o));
        let all = text(&o);
        assert!(
            all.contains("s.clj:") && all.contains(says),
            "{header}: {all}"
        );
        // The line of the offending key: 2, or 3 for the second spelling.
        let line = if says == "disagree" {
            "s.clj:3"
        } else {
            "s.clj:2"
        };
        assert!(all.contains(line), "{header}: {all}");
    }
}

#[test]
fn a_symphony_that_could_never_evaluate_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for (body, says) in [
        (
            "(if (> (stdev-price \"AAPL\" {:window 1}) 1) [(asset \"AAPL\")] [(asset \"NVDA\")])",
            "window must be at least 2",
        ),
        (
            "(weight-specified 0.6 (asset \"AAPL\") 0.3 (asset \"NVDA\"))",
            "sum to 0.9",
        ),
        (
            "(weight-specified 1e30 (asset \"AAPL\") 0.3 (asset \"NVDA\"))",
            "out of range",
        ),
    ] {
        let path = dir.path().join("s.clj");
        std::fs::write(&path, format!("(defsymphony \"s\" {{}}\n {body})\n")).unwrap();
        let o = signals(&config_with(dir.path(), &path, ""));
        assert_eq!(o.status.code(), Some(2), "{body}: {}", text(&o));
        assert!(text(&o).contains(says), "{body}: {}", text(&o));
        assert!(text(&o).contains("s.clj:2"), "{body}: {}", text(&o));
    }
    // Percentages are a way of writing weights, not a typo.
    let path = dir.path().join("s.clj");
    std::fs::write(
        &path,
        "(defsymphony \"s\" {} (weight-specified 60 (asset \"AAPL\") 40 (asset \"NVDA\")))\n",
    )
    .unwrap();
    let o = signals(&config_with(dir.path(), &path, ""));
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target_weights"]["AAPL"], "0.600000", "{v}");
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_read_as_the_same_files() {
    let plain = tempfile::tempdir().unwrap();
    let cfg = config_with(plain.path(), &default_strategy(), "");
    let want = signals(&cfg);
    assert!(want.status.success(), "{}", text(&want));
    let dos = tempfile::tempdir().unwrap();
    let d = dos.path();
    let windows = |text: &str| format!("\u{feff}{}", text.replace('\n', "\r\n"));
    std::fs::create_dir(d.join("data")).unwrap();
    for entry in std::fs::read_dir(root().join("examples/data")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                d.join("data").join(path.file_name().unwrap()),
                windows(&text),
            )
            .unwrap();
        }
    }
    let strategy = std::fs::read_to_string(default_strategy()).unwrap();
    std::fs::write(d.join("s.clj"), windows(&strategy)).unwrap();
    std::fs::write(
        d.join("config.toml"),
        windows("[metrics]\nenabled = false\n[strategy]\ndata = \"data\"\n[[strategy.files]]\npath = \"s.clj\"\n"),
    )
    .unwrap();
    let got = signals(&d.join("config.toml"));
    assert!(got.status.success(), "{}", text(&got));
    let hashes = |o: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["signal_hash"].clone(), v["market_snapshot_id"].clone())
    };
    assert_eq!(hashes(&got), hashes(&want));
}

#[test]
fn config_errors_speak_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (
            "[engine]\nhandler_timeout_secs = -1\n",
            "engine.handler_timeout_secs",
        ),
        ("[risk]\nmax_order_notional = \"1e30\"\n", "out of range"),
        ("[engine]\nmode = \"papr\"\n", "unknown value \"papr\""),
        ("[bus]\nmax_deliver = 1e30\n", "out of range"),
    ] {
        let o = signals(&config_with(dir.path(), &default_strategy(), extra));
        assert_eq!(o.status.code(), Some(2), "{extra}: {}", text(&o));
        let all = text(&o);
        assert!(all.contains(says), "{extra}: {all}");
        for rust in ["u64", "i64", "u16", "Decimal type", "variant", "Some("] {
            assert!(!all.contains(rust), "{extra}: Rust words in {all}");
        }
    }
}

#[test]
fn a_metrics_address_in_use_refuses_to_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nlisten = \"{addr}\"\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n",
            root().join("examples/data").display().to_string(),
            default_strategy().display().to_string()
        ),
    )
    .unwrap();
    let began = Instant::now();
    let o = run_once(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&addr.to_string()), "{}", text(&o));
    assert!(began.elapsed() < Duration::from_secs(30));
    let sent = std::fs::read(dir.path().join("state/sim_account.json")).ok();
    assert!(sent.is_none(), "nothing traded");
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let mut child = bin()
        .args(["signals", "--as-of", "2023-09-21", "--format", "table"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}

#[test]
fn a_backtest_that_cannot_write_its_folder_is_refused_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = file.join("report");
    let o = bin()
        .args([
            "backtest",
            "--from",
            "2016-01-01",
            "--to",
            "2023-09-21",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("cannot write there"), "{all}");
    assert!(!all.contains("sessions"), "refused before the run: {all}");
}

#[test]
fn a_worker_without_nats_retries_then_names_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(
        dir.path(),
        &default_strategy(),
        &format!(
            "[bus]\ntransport = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nconnect_timeout_secs = 3\nremote_roles = [\"execution\"]\n"
        ),
    );
    let began = Instant::now();
    let mut child = bin()
        .args(["worker", "--roles", "execution", "--config"])
        .arg(&cfg)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the worker hung without NATS");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("nats://127.0.0.1:{port}")), "{err}");
    assert!(
        err.matches("trying again").count() >= 2,
        "a warning per attempt: {err}"
    );
    assert!(began.elapsed() >= Duration::from_secs(2), "it did retry");
    assert!(!err.contains(SECRET));
}

/// Runs the binary as an unprivileged user when the test runs as root (CI), whom no
/// file mode stops from writing.
fn unprivileged() -> Command {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0");
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_alchemiser"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_alchemiser"))
    };
    c.env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn a_journal_that_cannot_be_written_is_refused_at_once_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(dir.path(), 0o777);
    let cfg = config_with(
        dir.path(),
        &default_strategy(),
        "[venue.sim]\nstate_file = \"\"\n",
    );
    mode(&cfg, 0o644);
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    // The journal read-only; its lock and head files (and the folder) writable.
    let state = dir.path().join("state");
    mode(&state, 0o777);
    for f in ["journal.sqlite.lock", "journal.sqlite.head"] {
        mode(&state.join(f), 0o666);
    }
    for f in ["journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(state.join(f));
    }
    mode(&state.join("journal.sqlite"), 0o444);
    let began = Instant::now();
    let o = unprivileged()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "at once, not after a timeout"
    );
    let all = text(&o);
    assert!(
        all.contains("journal.sqlite") && all.contains("cannot be written"),
        "{all}"
    );
}

#[test]
fn a_date_past_the_calendar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["signals", "--as-of", "2100-03-02", "--config"])
        .arg(config_with(dir.path(), &default_strategy(), ""))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not known"), "{}", text(&o));
}

/// A book with a monthly file beside the daily default (account daily): `signals`, a
/// backtest, a fresh `run` (no journal: its slices replayed from the data) and a `run`
/// restarted after the previous session (slices from the journal) decide the same
/// targets on the same day.
#[test]
fn signals_backtest_and_runs_decide_the_same_on_the_same_day() {
    let dir = tempfile::tempdir().unwrap();
    let monthly = dir.path().join("monthly.clj");
    std::fs::write(
        &monthly,
        "(defsymphony \"monthly momentum\" {:rebalance-frequency :monthly}\n (filter (moving-average-return {:window 20}) (select-top 2)\n  [(asset \"AAPL\") (asset \"AMZN\") (asset \"GOOG\") (asset \"META\") (asset \"NFLX\") (asset \"NVDA\")]))\n",
    )
    .unwrap();
    let config = |name: &str| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let cfg = folder.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\nweight = \"0.5\"\n[[strategy.files]]\npath = {:?}\nweight = \"0.5\"\n",
                root().join("examples/data").display().to_string(),
                default_strategy().display().to_string(),
                monthly.display().to_string(),
            ),
        )
        .unwrap();
        (folder, cfg)
    };
    let day = "2023-09-21";
    let latest = |journal: &Path| {
        Journal::open(journal, SyncMode::Normal)
            .unwrap()
            .latest_signal()
            .unwrap()
            .expect("a signal")
            .target_weights
    };
    // signals
    let (_, cfg) = config("signals");
    let o = signals(&cfg);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let from_signals: std::collections::BTreeMap<String, String> =
        serde_json::from_value(v["target_weights"].clone()).unwrap();
    let as_strings =
        |w: std::collections::BTreeMap<alchemiser::domain::Symbol, rust_decimal::Decimal>| {
            w.into_iter()
                .map(|(s, w)| (s.to_string(), format!("{w:.6}")))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
    // a backtest ending on the day (starting mid-way through the data)
    let (folder, cfg) = config("backtest");
    let journal = folder.join("backtest.sqlite");
    let o = bin()
        .args(["backtest", "--from", "2023-01-03", "--to", day, "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(folder.join("out"))
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(as_strings(latest(&journal)), from_signals, "backtest");
    // a fresh run
    let (folder, cfg) = config("fresh");
    let o = run_once(&cfg, &["--as-of", day]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        as_strings(latest(&folder.join("state/journal.sqlite"))),
        from_signals,
        "fresh run"
    );
    // a run restarted after the previous session's run
    let (folder, cfg) = config("restarted");
    let o = run_once(&cfg, &["--as-of", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_once(&cfg, &["--as-of", day]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        as_strings(latest(&folder.join("state/journal.sqlite"))),
        from_signals,
        "restarted run"
    );
}

#[test]
fn a_halt_no_engine_took_yet_shows_in_status_and_a_resume_withdraws_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &default_strategy(), "");
    let o = run_once(&cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bin().args(["halt", "--config"]).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let status = |format: &str| {
        let o = bin()
            .args(["status", "--format", format, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let table = status("table");
    assert!(table.contains("request pending: halt"), "{table}");
    assert!(status("json").contains("\"pending_request\": \"halt\""));
    let o = bin()
        .args(["resume", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("pending halt request is withdrawn"),
        "{}",
        text(&o)
    );
}
