//! What the command line tells a person: every flag and argument has help text, the
//! drill help names every scenario, and bad input of any kind exits 2.

use std::process::{Command, Output};

use alchemiser::drivers::drill::SCENARIOS;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alchemiser"));
    c.env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SUBCOMMANDS: &[&[&str]] = &[
    &["run"],
    &["halt"],
    &["resume"],
    &["status"],
    &["drill"],
    &["signals"],
    &["backtest"],
    &["trace"],
    &["journal", "verify"],
    &["journal", "replay"],
    &["sweep"],
    &["worker"],
];

#[test]
fn every_flag_and_argument_has_help_text() {
    for sub in SUBCOMMANDS {
        let mut args = sub.to_vec();
        args.push("--help");
        let o = run(&args);
        assert!(o.status.success(), "{sub:?}: {}", text(&o));
        let help = String::from_utf8_lossy(&o.stdout).to_string();
        let mut listed = 0;
        let mut in_list = false;
        for line in help.lines() {
            if line.starts_with("Options:") || line.starts_with("Arguments:") {
                in_list = true;
                continue;
            }
            if in_list && line.starts_with("  ") && line.trim_start().starts_with(['-', '<']) {
                listed += 1;
                // "  --flag <VALUE>  What it does": text after the flag's column.
                let described = line
                    .trim_start()
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty());
                assert!(described, "{sub:?}: no help for `{}`", line.trim());
            }
        }
        assert!(listed > 0, "{sub:?}: {help}");
    }
}

/// Every `--flag` a help lists, as `(flag, takes a value)`.
fn listed_flags(help: &str) -> Vec<(String, bool)> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-h, ")
                .or(l.strip_prefix("-V, "))
                .unwrap_or(l);
            let flag = l.strip_prefix("--")?.split([' ', '=']).next()?.to_string();
            let takes = l.split("  ").next().is_some_and(|head| head.contains('<'));
            Some((flag, takes))
        })
        .filter(|(f, _)| f != "help" && f != "version")
        .collect()
}

#[test]
fn every_flag_a_help_lists_is_accepted() {
    for sub in SUBCOMMANDS {
        let mut args = sub.to_vec();
        args.push("--help");
        let help = String::from_utf8_lossy(&run(&args).stdout).to_string();
        let flags = listed_flags(&help);
        assert!(!flags.is_empty(), "{sub:?}: {help}");
        for (flag, takes) in flags {
            let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
            args.push(format!("--{flag}"));
            if takes {
                args.push("1".into());
            }
            // A flag no command has, after it: the command never runs, and clap names
            // the first argument it does not know.
            args.push("--zz-not-a-flag".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let said = text(&run(&args));
            assert!(
                said.contains("unexpected argument '--zz-not-a-flag'"),
                "{sub:?} lists --{flag} but refuses it: {said}"
            );
        }
    }
}

#[test]
fn help_names_what_the_commands_accept_and_write() {
    let worker = String::from_utf8_lossy(&run(&["worker", "--help"]).stdout).to_string();
    for role in alchemiser::config::REMOTE_ROLES.iter().chain(&["backtest"]) {
        assert!(
            worker.contains(role),
            "worker --help lacks {role}: {worker}"
        );
    }
    let backtest = String::from_utf8_lossy(&run(&["backtest", "--help"]).stdout).to_string();
    for file in [
        "summary.json",
        "equity.csv",
        "orders.csv",
        "equity.svg",
        "report.html",
    ] {
        assert!(
            backtest.contains(file),
            "backtest --help lacks {file}: {backtest}"
        );
    }
}

#[test]
fn flags_that_mean_nothing_alone_are_refused() {
    let o = run(&["run", "--linger", "5"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--once"), "{}", text(&o));
    let o = run(&["drill", "crash", "--iterations", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("iterations"), "{}", text(&o));
}

#[test]
fn the_drill_help_names_every_scenario() {
    let help = String::from_utf8_lossy(&run(&["drill", "--help"]).stdout).to_string();
    for name in SCENARIOS.iter().chain(&["all", "soak"]) {
        assert!(help.contains(name), "`{name}` missing from:\n{help}");
    }
}

#[test]
fn bad_input_of_any_kind_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite");
    // An engine run to have a journal to look into.
    let cfg = dir.path().join("c.toml");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[venue.sim]\nstate_file = \"\"\n[journal]\npath = {journal:?}\n[engine]\ncontrol_dir = {:?}\n[metrics]\nenabled = false\n",
            root.join("examples/data"),
            root.join("examples/strategies/default.clj"),
            dir.path()
        ),
    )
    .unwrap();
    let o = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let j = journal.to_str().unwrap();
    let unknown = "0b9c4a3e-1111-4222-8333-944455556666";
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    for (args, says) in [
        (
            vec!["trace", unknown, "--journal", j],
            "no events for correlation",
        ),
        (
            vec!["trace", "not-an-id", "--journal", j],
            "is not a correlation id",
        ),
        (
            vec![
                "journal",
                "replay",
                "--correlation",
                unknown,
                "--journal",
                j,
            ],
            "no events for correlation",
        ),
        (
            vec![
                "backtest",
                "--from",
                "2016-01-01",
                "--to",
                "2016-02-01",
                "--out",
                file.to_str().unwrap(),
            ],
            "is a file",
        ),
        (vec!["signals", "--as-of", "2013-03-01"], "needs 200 bars"),
        (
            vec!["status", "--journal", "/nonexistent/j.sqlite"],
            "no journal at",
        ),
        (vec!["drill", "meteor-strike"], "unknown drill"),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
}

#[test]
fn status_shows_a_halt_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[strategy]\ndata = {:?}\n[[strategy.files]]\npath = {:?}\n[venue.sim]\nstate_file = \"sim.json\"\n[journal]\npath = {journal:?}\n[engine]\ncontrol_dir = {:?}\n[metrics]\nenabled = false\n",
            root.join("examples/data"),
            root.join("examples/strategies/default.clj"),
            dir.path()
        ),
    )
    .unwrap();
    let status = || {
        let o = run(&["status", "--journal", journal.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert!(bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap()
        .status
        .success());
    assert!(status().starts_with("trading: active"), "{}", status());
    // A halt left for a stopped engine takes effect (and is journaled) at its next start.
    let o = bin()
        .args([
            "halt",
            "--reason",
            "checking the broker statements",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a halted engine does not trade: {}",
        text(&o)
    );
    let shown = status();
    assert!(shown.starts_with("trading: HALTED since "), "{shown}");
    assert!(
        shown.contains("(manual): alchemiser halt: checking the broker statements"),
        "{shown}"
    );
    let o = run(&[
        "status",
        "--format",
        "json",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let view: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(view["trading"]["halted"], true, "{view}");
    assert_eq!(view["trading"]["reason"], "manual", "{view}");
    assert!(
        view["workflows"].as_array().is_some_and(|w| !w.is_empty()),
        "{view}"
    );
}
