//! The market-data store as a user meets it: `alchemiser data pull` against the fake
//! Alpaca's bars endpoint (pages, 429s and 5xx mid-pull, a history rewritten by a
//! split, a kill mid-pull), `data import`, `data check` and the refusal of a symbol with
//! a finding, and a live day's market snapshot id equal to the one computed from the
//! store afterwards. Each runs the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alchemiser::data::DataSource;
use alchemiser::market::{Adjustment, BarSource, DailyBar};
use alchemiser::venues::alpaca::fake::{FakeAlpaca, Fault, Route};
use alchemiser::venues::alpaca::wire::Bar;

use crate::common;

const KEY: &str = "PKSTORE00001";
const SECRET: &str = "store-secret-never-printed";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.current_dir(dir)
        .env("APCA_API_KEY_ID", KEY)
        .env("APCA_API_SECRET_KEY", SECRET)
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

/// A folder with a config on the default strategy, reading bars from `f`.
fn folder(f: &FakeAlpaca, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[metrics]\nenabled = false\n[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n{extra}",
            f.url(),
            f.url(),
            root().join("examples/data").display().to_string(),
            root().join("examples/strategies/default.clj").display().to_string(),
        ),
    )
    .unwrap();
    dir
}

/// A config in `dir` on the default strategy whose only bars are the store's
/// (`strategy.data` names no folder).
fn store_only_config(dir: &Path) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = \"nowhere\"\n[[strategy.files]]\npath = {:?}\n",
            root().join("examples/strategies/default.clj").display().to_string()
        ),
    )
    .unwrap();
}

fn pull(dir: &Path, args: &[&str]) -> Output {
    bin(dir).args(["data", "pull"]).args(args).output().unwrap()
}

fn bars_requests(f: &FakeAlpaca) -> usize {
    f.state()
        .requests
        .iter()
        .filter(|r| *r == "GET /v2/stocks/bars")
        .count()
}

fn stored(dir: &Path, symbol: &str) -> Vec<DailyBar> {
    DataSource::Store {
        dir: dir.join("state/bars"),
        adjustment: Adjustment::Raw,
    }
    .read(symbol)
    .unwrap()
}

fn bundled(symbol: &str) -> Vec<DailyBar> {
    DataSource::CsvFolder {
        dir: root().join("examples/data"),
    }
    .read(symbol)
    .unwrap()
}

fn until(bars: Vec<DailyBar>, last: &str) -> Vec<DailyBar> {
    let last = last.parse().unwrap();
    bars.into_iter().filter(|b| b.date <= last).collect()
}

/// A pull follows every page into the store, value for value; a second pull asks for
/// nothing; a day later it asks once for each symbol's overlap and appends one bar.
#[test]
fn a_pull_fills_the_store_and_the_next_asks_only_for_what_it_lacks() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    f.state().bars_page_size = 700;
    let dir = folder(&f, "");
    let o = pull(dir.path(), &["--from", "2013-01-01", "--to", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("NVDA     new: 2698 bars"), "{out}");
    assert!(!out.contains(SECRET));
    // 6 × 2698 bars in pages of 700.
    assert_eq!(bars_requests(&f), (6 * 2698usize).div_ceil(700));
    for (symbol, _) in common::BUNDLED_CLOSES {
        assert_eq!(
            stored(dir.path(), symbol),
            until(bundled(symbol), "2023-09-20"),
            "{symbol}"
        );
    }
    // Nothing lacking: nothing asked.
    let before = bars_requests(&f);
    let o = pull(dir.path(), &["--to", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("AAPL     up to date"), "{}", text(&o));
    assert_eq!(bars_requests(&f), before);
    // The next session: one request (the overlap's few bars and the new one).
    let o = pull(dir.path(), &["--to", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("META     1 new bars | 2699 bars, 2013-01-02 to 2023-09-21"),
        "{}",
        text(&o)
    );
    assert_eq!(bars_requests(&f), before + 1);
    for (symbol, _) in common::BUNDLED_CLOSES {
        assert_eq!(stored(dir.path(), symbol), bundled(symbol), "{symbol}");
    }
    // `list` and `show` say what is held.
    let o = bin(dir.path()).args(["data", "list"]).output().unwrap();
    let listed = text(&o);
    assert!(
        listed.contains("NFLX       2699  2013-01-02  2023-09-21  unchecked"),
        "{listed}"
    );
    assert!(listed.contains("6 symbols in"), "{listed}");
    let o = bin(dir.path())
        .args(["data", "show", "nflx"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("2023-09-21  386.5       395.9       383.42      384.15      5547900"),
        "{}",
        text(&o)
    );
}

/// A split rewrites the adjusted history: the stored bars no longer match the venue's on
/// the overlap, and that symbol alone is pulled again whole.
#[test]
fn a_split_rewrites_history_and_only_that_symbol_is_pulled_again_whole() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    let dir = folder(&f, "");
    let o = pull(dir.path(), &["--from", "2013-01-01", "--to", "2023-09-20"]);
    assert!(o.status.success(), "{}", text(&o));
    // NVDA splits 4:1 on 2023-09-21: every earlier bar is divided by 4, volume × 4.
    let adjusted: Vec<Bar> = common::bars_from_bundled("NVDA")
        .into_iter()
        .map(|b| {
            if &b.t[..10] >= "2023-09-21" {
                return b;
            }
            let quarter = |n: &serde_json::Number| -> serde_json::Number {
                let d: rust_decimal::Decimal = n.to_string().parse().unwrap();
                (d / rust_decimal::Decimal::from(4))
                    .normalize()
                    .to_string()
                    .parse()
                    .unwrap()
            };
            Bar {
                o: quarter(&b.o),
                h: quarter(&b.h),
                l: quarter(&b.l),
                c: quarter(&b.c),
                v: (b.v.as_u64().unwrap() * 4).into(),
                t: b.t,
            }
        })
        .collect();
    f.state().bars.insert("NVDA".into(), adjusted.clone());
    let o = pull(dir.path(), &["--to", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("NVDA     pulled again whole (2699 bars): the venue's bar of 2023-09-14 differs from the stored one"),
        "{out}"
    );
    assert!(out.contains("AAPL     1 new bars"), "{out}");
    let want = alchemiser::venues::alpaca::to_daily_bars("NVDA", &adjusted).unwrap();
    assert_eq!(stored(dir.path(), "NVDA"), want);
    assert_eq!(stored(dir.path(), "AAPL"), bundled("AAPL"));
}

/// 429s and 5xx between pages are waited out and retried by the client: the pull ends
/// complete, every bar in place.
#[test]
fn a_pull_rides_through_429s_and_5xx_mid_pull() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    f.state().bars_page_size = 2000;
    for (skip, status) in [(2, 429), (1, 503), (0, 500), (3, 502)] {
        f.inject(Fault::Later {
            route: Route::Bars,
            skip,
            status,
        });
    }
    let dir = folder(&f, "");
    let o = pull(dir.path(), &["--from", "2013-01-01", "--to", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    for (symbol, _) in common::BUNDLED_CLOSES {
        assert_eq!(stored(dir.path(), symbol), bundled(symbol), "{symbol}");
    }
    // Every page once, and the four refused requests again.
    assert_eq!(bars_requests(&f), (6 * 2699usize).div_ceil(2000) + 4);
}

/// A venue that keeps failing fails the pull (exit 1) naming the symbols, and keeps
/// nothing half-written; an unknown symbol is named too.
#[test]
fn symbols_a_pull_cannot_get_are_named_and_the_exit_is_one() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    let dir = folder(&f, "");
    let o = pull(
        dir.path(),
        &[
            "--symbols",
            "spy,aapl",
            "--from",
            "2023-01-03",
            "--to",
            "2023-09-20",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(
            "SPY      FAILED: Alpaca has no daily bars of SPY from 2023-01-03 to 2023-09-20"
        ),
        "{out}"
    );
    assert!(out.contains("1 of 2 symbols not pulled (SPY)"), "{out}");
    assert_eq!(stored(dir.path(), "AAPL").len(), 180);
    // A day not yet final is refused before anything is asked.
    let o = pull(dir.path(), &["--to", "2999-01-04"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--to 2999-01-04"), "{}", text(&o));
    // Without keys: said, exit 2.
    let o = bin(dir.path())
        .env_remove("APCA_API_KEY_ID")
        .args(["data", "pull", "--to", "2023-09-20"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("APCA_API_KEY_ID"), "{}", text(&o));
}

/// Synthetic daily bars for `n` symbols over `days` sessions, as Alpaca serves them.
fn universe_bars(n: usize, days: usize) -> Vec<(String, Vec<Bar>)> {
    let sessions = alchemiser::calendar::UsEquityCalendar::get()
        .sessions("2020-01-01".parse().unwrap(), "2023-12-29".parse().unwrap());
    (0..n)
        .map(|i| {
            let symbol = format!("S{i:03}");
            let bars = sessions[..days]
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let close =
                        rust_decimal::Decimal::new(10_000 + ((i * 31 + k * 17) % 500) as i64, 2);
                    Bar::from_daily(&DailyBar::flat(*d, close))
                })
                .collect();
            (symbol, bars)
        })
        .collect()
}

/// A pull killed mid-way keeps every symbol it finished, each whole; the next pull asks
/// only for the rest and the store ends complete.
#[test]
fn a_killed_pull_keeps_what_it_finished_and_the_next_pulls_the_rest() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    let universe = universe_bars(250, 200);
    for (symbol, bars) in &universe {
        f.state().bars.insert(symbol.as_str().into(), bars.clone());
    }
    f.state().bars_page_size = 4000;
    f.state().latency = Duration::from_millis(150);
    let dir = folder(&f, "");
    let store = dir.path().join("state/bars");
    let symbols: Vec<&str> = universe.iter().map(|(s, _)| s.as_str()).collect();
    let list = symbols.join(",");
    let last = universe[0].1.last().unwrap().t[..10].to_string();
    let args = [
        "data",
        "pull",
        "--symbols",
        &list,
        "--from",
        "2020-01-01",
        "--to",
        &last,
    ];
    let mut child = bin(dir.path()).args(args).spawn().unwrap();
    // Killed once the first request's symbols are being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let written = std::fs::read_dir(&store).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
                .count()
        });
        if written >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".parquet")
                .map(str::to_string)
        })
        .collect();
    assert!(
        !kept.is_empty() && kept.len() < 250,
        "killed mid-pull: {} kept",
        kept.len()
    );
    // Every kept file is whole.
    for symbol in &kept {
        let want = universe.iter().find(|(s, _)| s == symbol).unwrap();
        let want = alchemiser::venues::alpaca::to_daily_bars(symbol, &want.1).unwrap();
        assert_eq!(stored(dir.path(), symbol), want, "{symbol}");
    }
    f.state().latency = Duration::ZERO;
    let o = bin(dir.path()).args(args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let up_to_date = out.lines().filter(|l| l.contains(" up to date ")).count();
    let new = out.lines().filter(|l| l.contains(" new: 200 bars")).count();
    assert_eq!((up_to_date, new), (kept.len(), 250 - kept.len()), "{out}");
    for (symbol, bars) in &universe {
        let want = alchemiser::venues::alpaca::to_daily_bars(symbol, bars).unwrap();
        assert_eq!(stored(dir.path(), symbol), want, "{symbol}");
    }
    let o = bin(dir.path()).args(["data", "list"]).output().unwrap();
    assert!(text(&o).contains("250 symbols in"), "{}", text(&o));
}

/// `data import` reads a CSV folder into the store; `data check` lists a bad print and a
/// missing session per symbol and date (exit 1); `signals` refuses the symbol (exit 2)
/// until the data is fixed; `backtest` then reads the store by default.
#[test]
fn check_finds_what_is_wrong_and_signals_refuse_the_symbol_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("csv");
    std::fs::create_dir(&data).unwrap();
    for (symbol, _) in common::BUNDLED_CLOSES {
        std::fs::copy(
            root().join(format!("examples/data/{symbol}.csv")),
            data.join(format!("{symbol}.csv")),
        )
        .unwrap();
    }
    let good_meta = std::fs::read_to_string(data.join("META.csv")).unwrap();
    // META: a close of 10× on 2023-06-01 that reverts, and 2023-06-05 missing.
    let broken: String = good_meta
        .lines()
        .filter(|l| !l.starts_with("2023-06-05"))
        .map(|l| {
            if l.starts_with("2023-06-01") {
                "2023-06-01,265.9,2721.1,264.25,2720.7,18000000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(data.join("META.csv"), broken + "\n").unwrap();
    store_only_config(dir.path());
    let o = bin(dir.path())
        .args(["data", "import", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("imported 6 symbols"), "{}", text(&o));
    let o = bin(dir.path()).args(["data", "check"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .collect::<Vec<_>>()[..3],
        [
            "META 2023-06-01: the close moved 927.8% in a day and the next bar does not confirm it",
            "META 2023-06-05: no bar for this session",
            &format!(
                "checked 6 symbols in {}: 1 with findings",
                dir.path().join("state/bars").display()
            ),
        ]
    );
    let o = bin(dir.path())
        .args(["data", "show", "META"])
        .output()
        .unwrap();
    assert!(text(&o).contains("findings    2 (checked"), "{}", text(&o));
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-21"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("META: 2023-06-01: the close moved 927.8%") && out.contains("(and 1 more)"),
        "{out}"
    );
    let o = bin(dir.path()).args(["run", "--once"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!dir.path().join("state/journal.sqlite").exists() || !text(&o).contains("\"status\""));
    // Fixed at the source and imported again: clean, and the store is what commands read.
    std::fs::write(data.join("META.csv"), &good_meta).unwrap();
    let o = bin(dir.path())
        .args(["data", "import", "csv", "--symbols", "meta"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin(dir.path()).args(["data", "check"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-21"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let from_store: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-21", "--data"])
        .arg(root().join("examples/data"))
        .output()
        .unwrap();
    let from_csv: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(from_store["targets"], from_csv["targets"]);
    assert_eq!(
        from_store["market_snapshot_id"], from_csv["market_snapshot_id"],
        "the same bars, the same id"
    );
}

/// The bars a live signal used are the bars a backtest of that day reads: the journal's
/// market snapshot id of a live day on Alpaca equals the one computed from the store.
#[test]
fn a_live_days_snapshot_id_equals_the_one_computed_from_the_store() {
    let f = common::fake_alpaca(KEY, SECRET, "2023-09-21");
    let dir = folder(&f, "[data]\nfrom = \"2013-01-01\"\n");
    // At 15:45 on 2023-09-21 the day's bar is not final: the store gets bars to the 20th.
    let o = bin(dir.path()).args(["run", "--once"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["as_of"], "2023-09-21");
    assert_eq!(
        stored(dir.path(), "AAPL").last().unwrap().date.to_string(),
        "2023-09-20"
    );
    let journal = alchemiser::journal::Journal::open(
        &dir.path().join("state/journal.sqlite"),
        alchemiser::journal::SyncMode::Normal,
    )
    .unwrap();
    let live: Vec<String> = journal
        .latest_signal()
        .unwrap()
        .map(|s| s.market_snapshot_id)
        .into_iter()
        .collect();
    assert_eq!(live.len(), 1);
    // The store's bars as of the last session the signal saw, as `signals` (the
    // backtest's evaluation of a day) computes them.
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let signal: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(signal["market_snapshot_id"], live[0].as_str());
    // After the close the day's bar is pulled: the 20th's id is unchanged, the 21st's
    // now covers its bar.
    let o = pull(dir.path(), &["--to", "2023-09-21"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-20"])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["market_snapshot_id"], live[0].as_str());
    let o = bin(dir.path())
        .args(["signals", "--as-of", "2023-09-21"])
        .output()
        .unwrap();
    let next: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(next["market_snapshot_id"], live[0].as_str());
}

/// The same bars from the store or from the folder they were imported from: the same
/// backtest files, byte for byte (prices keep the scale they were written with).
#[test]
fn a_backtest_on_the_store_writes_the_files_of_one_on_its_source_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n",
            root().join("examples/data").display().to_string(),
            root()
                .join("examples/strategies/default.clj")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    let backtest = |out: &str| {
        let o = bin(dir.path())
            .args([
                "backtest",
                "--from",
                "2022-06-01",
                "--to",
                "2023-09-21",
                "--out",
                out,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    backtest("from_folder");
    let o = bin(dir.path())
        .arg("data")
        .arg("import")
        .arg(root().join("examples/data"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    backtest("from_store");
    // A range wider than the data runs on what it covers, and says so.
    let o = bin(dir.path())
        .args([
            "backtest",
            "--from",
            "2022-06-01",
            "--to",
            "2024-01-02",
            "--out",
            "wider",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "covers 2022-06-01 to 2023-09-21 of the sessions asked (2022-06-01 to 2024-01-02)"
        ),
        "{}",
        text(&o)
    );
    for file in [
        "summary.json",
        "equity.csv",
        "orders.csv",
        "equity.svg",
        "report.html",
    ] {
        let a = std::fs::read(dir.path().join("from_folder").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("from_store").join(file)).unwrap();
        assert!(a == b, "{file} differs");
    }
}

/// A store as an operator may find it: its manifest lost or corrupt, one file truncated,
/// an import that meets a bad file. The files stay the truth, the bad one is named, an
/// import checks everything before it writes, and importing again repairs it.
#[test]
fn a_damaged_store_is_named_and_importing_again_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    store_only_config(dir.path());
    let run = |args: &[&str]| bin(dir.path()).args(args).output().unwrap();
    let data = root().join("examples/data");
    let o = bin(dir.path())
        .args(["data", "import"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let store = dir.path().join("state/bars");
    let signal = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", text(o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let before = signal(&run(&["signals", "--as-of", "2023-09-21"]));
    // The manifest deleted, then corrupt: still the store, described from its files.
    std::fs::remove_file(store.join("manifest.json")).unwrap();
    assert_eq!(
        signal(&run(&["signals", "--as-of", "2023-09-21"]))["market_snapshot_id"],
        before["market_snapshot_id"]
    );
    std::fs::write(store.join("manifest.json"), "[]").unwrap();
    let o = run(&["data", "list"]);
    assert!(
        o.status.success() && text(&o).contains("6 symbols in"),
        "{}",
        text(&o)
    );
    // A truncated file: named by list, check and the commands that need it; the others read.
    let nvda = store.join("NVDA.parquet");
    let bytes = std::fs::read(&nvda).unwrap();
    std::fs::write(&nvda, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["data", "list"]);
    assert!(
        text(&o).contains("NVDA     unreadable:") && text(&o).contains("6 symbols in"),
        "{}",
        text(&o)
    );
    let o = run(&["data", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NVDA unreadable:"), "{}", text(&o));
    let o = run(&["signals", "--as-of", "2023-09-21"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    assert_eq!(
        said.matches("NVDA.parquet").count(),
        1,
        "the file named once: {said}"
    );
    // An import that meets a bad file writes nothing.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for symbol in ["AAPL", "NVDA"] {
        std::fs::copy(
            data.join(format!("{symbol}.csv")),
            broken.join(format!("{symbol}.csv")),
        )
        .unwrap();
    }
    let text_nvda = std::fs::read_to_string(broken.join("NVDA.csv")).unwrap();
    std::fs::write(
        broken.join("NVDA.csv"),
        text_nvda.replacen("2023-09-20,", "2023-09-20,x", 1),
    )
    .unwrap();
    let aapl_before = std::fs::read(store.join("AAPL.parquet")).unwrap();
    let o = run(&["data", "import", "broken"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("NVDA.csv"), "{}", text(&o));
    assert_eq!(
        std::fs::read(store.join("AAPL.parquet")).unwrap(),
        aapl_before,
        "nothing written"
    );
    // Importing the good file again repairs the store.
    let o = bin(dir.path())
        .args(["data", "import", "--symbols", "nvda"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("NVDA     2699 bars, 2013-01-02 to 2023-09-21"),
        "{}",
        text(&o)
    );
    assert_eq!(
        signal(&run(&["signals", "--as-of", "2023-09-21"]))["market_snapshot_id"],
        before["market_snapshot_id"]
    );
    let o = run(&["data", "list"]);
    assert!(!text(&o).contains("unreadable"), "{}", text(&o));
}

/// `data.accept` as people write it: a lower-case symbol, a range of days; a date that is
/// not one is refused naming the entry; a finding after `--as-of` does not block it.
#[test]
fn accepted_findings_are_lifted_and_later_ones_do_not_block_an_earlier_day() {
    let dir = tempfile::tempdir().unwrap();
    let lean = root().join("examples/lean");
    let config = |accept: &str| {
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[strategy]\ndata = {:?}\nadjustment = \"adjusted\"\n[[strategy.files]]\npath = {:?}\n[data]\naccept = [{accept}]\n",
                lean.display().to_string(),
                root().join("examples/strategies/lean_etfs.clj").display().to_string()
            ),
        )
        .unwrap();
    };
    let signals = |as_of: &str| {
        bin(dir.path())
            .args(["signals", "--format", "table", "--as-of", as_of])
            .output()
            .unwrap()
    };
    config("");
    let o = signals("2020-03-16");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("AIG: 2009-03-16"), "{}", text(&o));
    // Before AIG's print, nothing blocks.
    assert!(signals("2009-03-13").status.success());
    config("\"aig 2009-03-01..2009-03-31\"");
    let o = signals("2020-03-16");
    assert!(o.status.success(), "{}", text(&o));
    config("\"AIG 2009-3-16\"");
    let o = signals("2020-03-16");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("data.accept") && text(&o).contains("AIG 2009-3-16"),
        "{}",
        text(&o)
    );
}
