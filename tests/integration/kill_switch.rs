//! The kill switch as processes: `alchemiser halt` stops trading (the halt is journaled
//! and survives restarts), `alchemiser resume` or `run --resume` lifts it; and a venue
//! that cannot be read at start stops the engine instead of letting it trade blind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alchemiser::journal::{Journal, SyncMode};
use alchemiser::venues::alpaca::fake::FakeAlpaca;
use rust_decimal::Decimal;

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

fn config(dir: &Path, extra: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[metrics]\nenabled = false\n[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n",
            root.join("examples/data").display().to_string(),
            root.join("examples/strategies/default.clj")
                .display()
                .to_string(),
        ) + extra,
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap()
}

fn halts(dir: &Path) -> usize {
    let j = Journal::open(&dir.join("state/journal.sqlite"), SyncMode::Normal).unwrap();
    j.entries()
        .unwrap()
        .iter()
        .filter(|e| e.envelope.event_type() == "trading.halted.v1")
        .count()
}

#[test]
fn a_halt_stops_trading_across_restarts_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let o = bin()
        .args(["halt", "--reason", "maintenance", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.path().join("state/HALT").exists());

    let halted = run(&cfg, &[]);
    assert!(!halted.status.success(), "a halted engine must not trade");
    assert!(
        text(&halted).contains("trading is halted"),
        "{}",
        text(&halted)
    );
    assert_eq!(halts(dir.path()), 1, "the halt is journaled");
    assert!(
        !dir.path().join("state/HALT").exists(),
        "the request was consumed"
    );

    // No request file any more: the journal alone keeps the engine halted.
    let still = run(&cfg, &[]);
    assert!(!still.status.success(), "{}", text(&still));
    assert!(text(&still).contains("maintenance"), "{}", text(&still));

    let resumed = run(&cfg, &["--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let report: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(report["workflow"]["status"], "completed");

    // `alchemiser resume` works the same way through its request file.
    bin().args(["halt", "--config"]).arg(&cfg).output().unwrap();
    assert!(!run(&cfg, &[]).status.success());
    let r = bin()
        .args(["resume", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
    let after = run(&cfg, &[]);
    assert!(after.status.success(), "{}", text(&after));
}

#[test]
fn a_venue_that_cannot_be_read_at_start_stops_the_engine() {
    let fake = FakeAlpaca::start("PKKILLSWITCH1", "the-right-secret", Decimal::from(1000)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[alpaca]\ntrading_url = {:?}\ndata_url = {:?}\nmax_attempts = 1\n",
            fake.url(),
            fake.url()
        ),
    );
    let o = bin()
        .args(["run", "--once", "--as-of", "2023-09-21", "--config"])
        .arg(&cfg)
        .env("APCA_API_KEY_ID", "PKKILLSWITCH1")
        .env("APCA_API_SECRET_KEY", "a-wrong-secret-never-echoed")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("not trading blind"), "{all}");
    assert!(!all.contains("a-wrong-secret-never-echoed"));
    assert!(
        fake.state()
            .requests
            .iter()
            .all(|r| !r.starts_with("POST /v2/orders")),
        "no order was sent"
    );
}
