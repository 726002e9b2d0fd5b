//! `alchemiser sweep`: each variant is exactly the backtest of its own configuration,
//! the leaderboard ranks them, a rerun resumes (a finished variant is never redone),
//! and a bad grid or a variant's bad value is named before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sweep(grid: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "sweep",
            "--from",
            "2022-01-01",
            "--to",
            "2022-12-31",
            "--config",
        ])
        .arg(root().join("examples/sweep.toml"))
        .arg("--grid")
        .arg(grid)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn grid(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `backtest` on a variant's own `config.toml` over `from..to`, its files in `out`.
fn backtest_variant(variant: &Path, from: &str, to: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(["backtest", "--from", from, "--to", to, "--config"])
        .arg(variant.join("config.toml"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

const GRID: &str = "rank = \"sharpe\"\n[params]\ntrend_window = [100, 200]\ntop_n = [3]\n[config]\n\"portfolio.cash_reserve_pct\" = [\"0.01\", \"0.05\"]\n";

#[test]
fn each_variant_is_the_backtest_of_its_configuration_and_the_board_ranks_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = sweep(&grid(dir.path(), GRID), &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let board = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    let rows: Vec<Vec<&str>> = board
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{board}");
    let header: Vec<&str> = board.lines().next().unwrap().split(',').collect();
    let sharpe_col = header.iter().position(|h| *h == "sharpe").unwrap();
    let sharpes: Vec<f64> = rows
        .iter()
        .map(|r| r[sharpe_col].parse().unwrap())
        .collect();
    assert!(
        sharpes.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {sharpes:?}"
    );
    assert!(std::fs::read_to_string(out.join("leaderboard.svg"))
        .unwrap()
        .contains("sharpe by variant"));
    // Distinct variants give distinct results, and each is its configuration's backtest.
    let distinct: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[sharpe_col]).collect();
    assert!(distinct.len() > 1, "{board}");
    for row in &rows {
        let folder = out.join("variants").join(row[1]);
        let alone = dir.path().join(format!("alone-{}", row[1]));
        let check = backtest_variant(&folder, "2022-01-01", "2022-12-31", &alone);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(folder.join("summary.json")).unwrap(),
            std::fs::read_to_string(alone.join("summary.json")).unwrap(),
            "{}",
            row[1]
        );
    }
    // The template's placeholders were filled in.
    let made = std::fs::read_to_string(
        out.join("variants")
            .join(rows[0][1])
            .join("0-default_template.clj"),
    )
    .unwrap();
    assert!(
        !made.contains("{{") && made.contains("(select-top 3)"),
        "{made}"
    );
}

#[test]
fn a_rerun_resumes_and_never_redoes_a_finished_variant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let g = grid(dir.path(), GRID);
    assert!(sweep(&g, &out).status.success());
    let mut ids: Vec<PathBuf> = std::fs::read_dir(out.join("variants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ids.sort();
    // One variant as if the driver died while running it; another marked to show
    // whether it is run again.
    std::fs::remove_file(ids[0].join("variant.json")).unwrap();
    std::fs::remove_file(ids[0].join("summary.json")).unwrap();
    let marked = ids[1].join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marked).unwrap()).unwrap();
    summary["sharpe"] = "9.999999".into();
    std::fs::write(&marked, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    let again = sweep(&g, &out);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        ids[0].join("summary.json").exists(),
        "the unfinished variant ran"
    );
    assert!(
        std::fs::read_to_string(&marked)
            .unwrap()
            .contains("9.999999"),
        "a finished variant was run again"
    );
    let board = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    assert!(
        board.lines().nth(1).unwrap().contains("9.999999"),
        "{board}"
    );
}

#[test]
fn bad_grids_and_bad_values_are_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A placeholder the grid does not fill.
    let missing = sweep(&grid(dir.path(), "[params]\ntrend_window = [100]\n"), &out);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("{{top_n}}") && err.contains("default_template.clj"),
        "{err}"
    );
    // A value the configuration refuses, named with its variant and key.
    let bad = sweep(
        &grid(
            dir.path(),
            "[params]\ntrend_window = [100]\ntop_n = [2]\n[config]\n\"portfolio.cash_reserve_pct\" = [\"0.01\", \"1.5\"]\n",
        ),
        &out,
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("v0001-") && err.contains("portfolio.cash_reserve_pct"),
        "{err}"
    );
    assert!(!out.join("leaderboard.csv").exists());
    // An unknown statistic to rank by.
    let rank = sweep(
        &grid(dir.path(), "rank = \"luck\"\n[params]\ntop_n = [2]\n"),
        &out,
    );
    assert_eq!(rank.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&rank.stderr).contains("rank = \"luck\""));
}

use crate::common::nats;

/// A worker process; killed on drop.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bus a sweep uses: its URL and what its processes have in their environment.
type Bus<'a> = (&'a str, &'a [(&'a str, &'a str)]);

fn backtest_worker(bus: Bus, config: &Path, log: &Path, crash_after: Option<&str>) -> Worker {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.args(["worker", "--roles", "backtest", "--nats"])
        .arg(bus.0)
        .envs(bus.1.iter().copied())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn,alchemiser=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    match crash_after {
        Some(p) => c.env("ALCHEMISER_CRASH_AFTER", p),
        None => c.env_remove("ALCHEMISER_CRASH_AFTER"),
    };
    Worker(c.spawn().unwrap())
}

fn sweep_with(config: &Path, grid: &Path, out: &Path, nats: Option<Bus>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.args([
        "sweep",
        "--from",
        "2022-01-01",
        "--to",
        "2022-12-31",
        "--config",
    ])
    .arg(config)
    .arg("--grid")
    .arg(grid)
    .arg("--out")
    .arg(out)
    .env_remove("ALCHEMISER_CRASH_AFTER");
    if let Some((url, env)) = nats {
        c.arg("--nats").arg(url).envs(env.iter().copied());
    }
    c.output().unwrap()
}

/// The summaries of a sweep's variants, by variant id.
fn summaries(out: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(out.join("variants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p.join("summary.json")).unwrap(),
            )
        })
        .collect()
}

#[test]
fn over_nats_a_killed_workers_variant_is_redone_elsewhere_and_none_twice() {
    let Some(binary) = nats::nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = nats::free_port();
    let _server = nats::NatsServer::start(&binary, port, &dir.path().join("nats"));
    let url = format!("nats://127.0.0.1:{port}");
    let bus: Bus = (&url, &[]);
    // The example sweep's configuration, its paths absolute, a short acknowledgement wait.
    let config = dir.path().join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "[[strategy.files]]\npath = {:?}\nweight = \"1\"\n[strategy]\ndata = {:?}\n[bus]\nack_wait_secs = 2\n",
            root().join("examples/strategies/default_template.clj"),
            root().join("examples/data"),
        ),
    )
    .unwrap();
    let g = grid(dir.path(), GRID);

    // The reference: the same sweep on this machine's cores.
    let here = dir.path().join("here");
    assert!(sweep_with(&config, &g, &here, None).status.success());

    // The first worker dies as it starts its second variant; another takes over.
    let doomed_log = dir.path().join("doomed.log");
    let mut doomed = backtest_worker(bus, &config, &doomed_log, Some("sweep.variant:2"));
    let queued = dir.path().join("queued");
    let driver = {
        let (config, g, queued, url) = (config.clone(), g.clone(), queued.clone(), url.clone());
        std::thread::spawn(move || sweep_with(&config, &g, &queued, Some((&url, &[]))))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while doomed.0.try_wait().unwrap().is_none() {
        let worker_log = || std::fs::read_to_string(&doomed_log).unwrap_or_default();
        if driver.is_finished() {
            let out = driver.join().unwrap();
            panic!(
                "the driver ended first: {}\nworker: {}",
                String::from_utf8_lossy(&out.stderr),
                worker_log()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the doomed worker never crashed: {}",
            worker_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&doomed_log)
        .unwrap()
        .contains("ALCHEMISER_CRASH_AFTER"));
    let rescuer_log = dir.path().join("rescuer.log");
    let _rescuer = backtest_worker(bus, &config, &rescuer_log, None);
    let out = driver.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every variant is what it is on one machine, byte for byte.
    assert_eq!(summaries(&queued), summaries(&here));
    assert_eq!(
        std::fs::read_to_string(queued.join("leaderboard.csv")).unwrap(),
        std::fs::read_to_string(here.join("leaderboard.csv")).unwrap()
    );
    // Four variants, four results: the doomed worker's first one was not redone, its
    // second was, once.
    let done = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap()
            .matches("variant done")
            .count()
    };
    // (A worker logs a variant once it has acknowledged it, a moment after the driver
    // has its result.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while done(&doomed_log) + done(&rescuer_log) < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(done(&doomed_log) + done(&rescuer_log), 4);

    // A driver started again (its folder lost) finds every result in: nothing is redone.
    let again = dir.path().join("again");
    let rerun = sweep_with(&config, &g, &again, Some(bus));
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert_eq!(summaries(&again), summaries(&here));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(done(&rescuer_log), 4 - done(&doomed_log));
}

#[test]
fn a_sweep_over_a_secured_bus_runs_as_the_research_user_inside_its_permissions() {
    let Some(binary) = nats::nats_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = nats::free_port();
    let (_server, certs) = nats::secured_server(&binary, dir.path(), port);
    let config = dir.path().join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "[[strategy.files]]\npath = {:?}\nweight = \"1\"\n[strategy]\ndata = {:?}\n\
             [bus]\ntls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            root().join("examples/strategies/default_template.clj"),
            root().join("examples/data"),
            certs[0],
            certs[3],
            certs[4],
        ),
    )
    .unwrap();
    let g = grid(dir.path(), GRID);
    let url = format!("tls://127.0.0.1:{port}");
    let research = nats::as_user("research");
    let env = nats::pairs(&research);
    let bus: Bus = (&url, &env);
    let _worker = backtest_worker(bus, &config, &dir.path().join("worker.log"), None);
    let queued = dir.path().join("queued");
    let out = sweep_with(&config, &g, &queued, Some(bus));
    assert!(
        out.status.success(),
        "{}\nworker: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default()
    );
    let here = dir.path().join("here");
    assert!(sweep_with(&config, &g, &here, None).status.success());
    assert_eq!(summaries(&queued), summaries(&here));
    let server_log = std::fs::read_to_string(dir.path().join("nats/server.log")).unwrap();
    assert!(!server_log.contains("Violation"), "{server_log}");
}

/// The example sweep's configuration, template and data copied into `dir` (so that the
/// test can change them), and the configuration's path.
fn own_copy(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("strategies")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(
        root().join("examples/strategies/default_template.clj"),
        dir.join("strategies/default_template.clj"),
    )
    .unwrap();
    for entry in std::fs::read_dir(root().join("examples/data")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            std::fs::copy(&path, dir.join("data").join(path.file_name().unwrap())).unwrap();
        }
    }
    let config = dir.join("sweep.toml");
    std::fs::copy(root().join("examples/sweep.toml"), &config).unwrap();
    config
}

/// Rewrites the line of `file` that starts with `prefix`.
fn rewrite_line(file: &Path, prefix: &str, line: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(prefix), "{prefix} in {}", file.display());
    let changed: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect();
    std::fs::write(file, changed.join("\n") + "\n").unwrap();
}

#[test]
fn a_rerun_reuses_a_variant_only_while_its_inputs_hold_and_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = own_copy(&dir.path().join("work"));
    let g = grid(dir.path(), GRID);
    let out = dir.path().join("out");
    let said = |run: Output| {
        let err = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{err}");
        err.lines()
            .find(|l| l.starts_with("reused "))
            .unwrap_or_else(|| panic!("no reuse line in: {err}"))
            .to_string()
    };
    let first = said(sweep_with(&config, &g, &out, None));
    assert_eq!(
        first,
        "reused 0 of 4 variants; computing 4: 4 not run before"
    );
    let board = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    assert_eq!(
        said(sweep_with(&config, &g, &out, None)),
        "reused 4 of 4 variants"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("leaderboard.csv")).unwrap(),
        board
    );

    // A bar after the sweep's last day (2022-12-31) is not an input: reused.
    let aapl = config.parent().unwrap().join("data/AAPL.csv");
    rewrite_line(
        &aapl,
        "2023-06-13,",
        "2023-06-13,182.8000,184.1500,182.4400,183.0000,54929100",
    );
    assert_eq!(
        said(sweep_with(&config, &g, &out, None)),
        "reused 4 of 4 variants"
    );

    // A bar before it is: every variant reads AAPL.
    rewrite_line(
        &aapl,
        "2022-06-13,",
        "2022-06-13,132.8700,135.2000,131.4400,135.1000,122207100",
    );
    assert_eq!(
        said(sweep_with(&config, &g, &out, None)),
        "reused 0 of 4 variants; computing 4: 4 with changed market data"
    );

    // The template: a wider momentum window changes what every variant holds, and the
    // board is computed afresh from it.
    let template = config
        .parent()
        .unwrap()
        .join("strategies/default_template.clj");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace(
            "(moving-average-return {:window 60})",
            "(moving-average-return {:window 90})",
        ),
    )
    .unwrap();
    let before = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    assert_eq!(
        said(sweep_with(&config, &g, &out, None)),
        "reused 0 of 4 variants; computing 4: 4 with changed symphony"
    );
    let after = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    assert_ne!(after, before, "the leaderboard is the new inputs'");
    // Each variant's summary is the one `backtest` gives its own configuration now.
    let variants = out.join("variants");
    let some = std::fs::read_dir(&variants)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bt = dir.path().join("bt");
    let ran = backtest_variant(&some, "2022-01-01", "2022-12-31", &bt);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bt.join("summary.json")).unwrap(),
        std::fs::read_to_string(some.join("summary.json")).unwrap()
    );
}

/// Copies `from` into `to`, folders and all.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn the_readmes_sweep_example_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let at = readme
        .find("Example: `alchemiser sweep")
        .expect("the README shows a sweep example");
    let rest = &readme[at + "Example: `".len()..];
    let command: Vec<&str> = rest[..rest.find('`').unwrap()].split_whitespace().collect();
    assert_eq!(command[..2], ["alchemiser", "sweep"], "{command:?}");
    // A user's checkout, with nothing but the examples: the command's paths are theirs.
    let dir = tempfile::tempdir().unwrap();
    for part in ["sweep.toml", "sweep_grid.toml", "strategies", "data"] {
        let from = root().join("examples").join(part);
        if from.is_dir() {
            copy_tree(&from, &dir.path().join("examples").join(part));
        } else {
            std::fs::create_dir_all(dir.path().join("examples")).unwrap();
            std::fs::copy(&from, dir.path().join("examples").join(part)).unwrap();
        }
    }
    let run = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args(&command[1..])
        .current_dir(dir.path())
        .env_remove("ALCHEMISER_CRASH_AFTER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{command:?}: {err}");
    assert!(
        err.contains("reused 0 of 24 variants; computing 24: 24 not run before"),
        "{err}"
    );
    let board = std::fs::read_to_string(dir.path().join("out/sweep/leaderboard.csv")).unwrap();
    assert_eq!(board.lines().count(), 25, "{board}");
}

#[test]
fn a_failing_variant_is_listed_with_its_reason_and_the_others_are_ranked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A 5000-day trend window: more history than the data holds.
    let g = grid(
        dir.path(),
        "rank = \"sharpe\"\n[params]\ntrend_window = [100, 5000]\ntop_n = [3]\n[config]\n\"portfolio.cash_reserve_pct\" = [\"0.01\", \"0.05\"]\n",
    );
    let run = sweep(&g, &out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("2 of 4 variants failed"), "{err}");
    let board = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    let header: Vec<&str> = board.lines().next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"failure"), "{board}");
    let rows: Vec<&str> = board.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{board}");
    // Ranked first, each with figures and no failure; then the failed, unranked.
    for row in &rows[..2] {
        assert!(
            row.starts_with(['1', '2']) && row.contains(",100,") && row.ends_with(','),
            "{board}"
        );
    }
    for row in &rows[2..] {
        assert!(row.starts_with(",v") && row.contains(",5000,"), "{board}");
        assert!(row.contains("5000"), "{board}");
        let reason = row.rsplit(',').next().unwrap();
        assert!(!reason.is_empty(), "{board}");
        assert!(err.contains(reason.trim_matches('"')), "{err}");
    }
}

#[test]
fn a_split_sweep_ranks_before_the_split_and_reports_after_it_beside() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let g = grid(
        dir.path(),
        "rank = \"sharpe\"\n[params]\ntrend_window = [100, 200]\ntop_n = [2, 3]\n",
    );
    let split_sweep = |split: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_alchemiser"))
            .args([
                "sweep",
                "--from",
                "2019-01-01",
                "--to",
                "2022-12-31",
                "--split",
                split,
            ])
            .arg("--config")
            .arg(root().join("examples/sweep.toml"))
            .arg("--grid")
            .arg(&g)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let run = split_sweep("2022-01-01", &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let board = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    let header: Vec<&str> = board.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name}: {board}"))
    };
    let rows: Vec<Vec<&str>> = board
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{board}");
    let sharpes: Vec<f64> = rows
        .iter()
        .map(|r| r[col("sharpe")].parse().unwrap())
        .collect();
    assert!(
        sharpes.windows(2).all(|w| w[0] >= w[1]),
        "ranked on the in-sample sharpe: {board}"
    );

    // The best variant's figures against its own backtest over the whole period: the
    // in-sample return ends on the last session before the split, the out-of-sample one
    // starts from there.
    let best = rows[0][col("variant")];
    let bt = dir.path().join("bt");
    let ran = backtest_variant(
        &out.join("variants").join(best),
        "2019-01-01",
        "2022-12-31",
        &bt,
    );
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let equity = std::fs::read_to_string(bt.join("equity.csv")).unwrap();
    let points: Vec<(String, f64)> = equity
        .lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split(',');
            (
                cells.next().unwrap().to_string(),
                cells.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let at_split = points
        .iter()
        .rev()
        .find(|(d, _)| d.as_str() < "2022-01-01")
        .unwrap()
        .1;
    let last = points.last().unwrap().1;
    let close = |got: &str, want: f64| {
        let got: f64 = got.parse().unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}: {board}");
    };
    close(rows[0][col("total_return")], at_split / 100_000.0 - 1.0);
    close(
        rows[0][col("out_of_sample_total_return")],
        last / at_split - 1.0,
    );

    // A split outside the period is bad input, before anything runs.
    let outside = split_sweep("2023-01-01", &dir.path().join("out2"));
    assert_eq!(outside.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&outside.stderr).contains("--split 2023-01-01"));
    assert!(!dir.path().join("out2").exists(), "nothing written");
}

#[test]
fn dates_outside_the_data_are_bad_input_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "sweep",
            "--from",
            "2030-01-01",
            "--to",
            "2030-12-31",
            "--config",
        ])
        .arg(root().join("examples/sweep.toml"))
        .arg("--grid")
        .arg(grid(dir.path(), GRID))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("variant v0000-") && err.contains("outside the data"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
