//! `report.html` in a real headless browser (Debian's Chromium): it renders, fits a
//! phone's width, and shows the figures `summary.json` holds, the benchmark and the
//! attribution of two weighted files. `.ci/run` installs Chromium and sets
//! `ALCHEMISER_REQUIRE_BROWSER=1`, so there the test cannot be skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use rust_decimal::{Decimal, RoundingStrategy};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("ALCHEMISER_REQUIRE_BROWSER").is_none(),
            "Chromium is required (apt-get install -y chromium) but was not found"
        );
        eprintln!("skipped: no Chromium (apt-get install -y chromium); CI requires it");
    }
    found
}

/// Runs Chromium headless on `page` in a `width`×`height` window with `args` (its
/// own profile, no network beyond the file).
fn browse(
    chromium: &Path,
    profile: &Path,
    page: &Path,
    window: (u32, u32),
    args: &[&str],
) -> Vec<u8> {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The text of the element carrying `data-key="key"` in the rendered DOM.
fn keyed(dom: &str, key: &str) -> String {
    let marker = format!(r#"data-key="{key}">"#);
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no {key} in the page"))
        + marker.len();
    dom[start..][..dom[start..].find('<').unwrap()].to_string()
}

fn decimal(summary: &serde_json::Value, key: &str) -> Decimal {
    summary[key].as_str().unwrap().parse().unwrap()
}

/// Two decimals, a half rounded away from zero.
fn two_places(v: Decimal) -> String {
    let v = v.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    format!("{v:.2}")
}

fn percent(summary: &serde_json::Value, key: &str) -> String {
    format!(
        "{}%",
        two_places(decimal(summary, key) * Decimal::ONE_HUNDRED)
    )
}

#[test]
fn the_report_renders_in_a_browser_and_shows_the_summarys_figures() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Two weighted files, for the attribution table.
    let config = dir.path().join("two_files.toml");
    std::fs::write(
        &config,
        format!(
            "[strategy]\ndata = \"{data}\"\nadjustment = \"adjusted\"\n\
             [[strategy.files]]\npath = \"{etfs}\"\nweight = \"3\"\n\
             [[strategy.files]]\npath = \"{groups}\"\nweight = \"1\"\n",
            data = root().join("examples/lean").display(),
            etfs = root().join("examples/strategies/lean_etfs.clj").display(),
            groups = root().join("examples/strategies/lean_groups.clj").display(),
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "backtest",
            "--from",
            "2008-01-01",
            "--to",
            "2012-12-31",
            "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") || {
            // The only address is SVG's namespace, which is a name, not a fetch.
            html.replace("http://www.w3.org/2000/svg", "")
                .find("http")
                .is_none()
        },
        "the page must not reach the network"
    );

    // On a phone's width: it renders, its script ran, and nothing is wider than the screen.
    let profile = dir.path().join("profile");
    let dom = String::from_utf8(browse(
        &chromium,
        &profile,
        &page,
        (390, 844),
        &["--dump-dom"],
    ))
    .unwrap();
    assert!(
        dom.contains(r#"data-fits="true""#),
        "the page is wider than a phone"
    );
    for key in ["total_return", "cagr", "annual_volatility", "max_drawdown"] {
        assert_eq!(keyed(&dom, key), percent(&summary, key), "{key}");
    }
    assert_eq!(
        format!("{:.2}", keyed(&dom, "sharpe").parse::<Decimal>().unwrap()),
        two_places(decimal(&summary, "sharpe"))
    );
    assert_eq!(keyed(&dom, "trades"), summary["trades"].to_string());
    assert_eq!(
        keyed(&dom, "final_equity").replace(',', ""),
        two_places(decimal(&summary, "final_equity"))
    );
    // The default benchmark is the first of the list the data has: SPY.
    assert!(dom.contains("Beta to SPY") && dom.contains("Correlation to SPY"));
    assert!(dom.contains("risk-free rate of 0%"));
    assert!(dom.contains(r#"backtest.fill = "close""#));
    // Both files are attributed, at their normalised weights.
    assert!(
        dom.contains(r#"<td class="l">LEAN sample rotation</td><td>75.00%</td>"#),
        "attribution"
    );
    assert!(
        dom.contains(r#"<td class="l">LEAN sample groups</td><td>25.00%</td>"#),
        "attribution"
    );
    for section in [
        "Monthly and yearly returns",
        "Largest drawdowns",
        "Rolling Sharpe",
        "Exposure",
        "Holdings by symbol",
        "Trades",
    ] {
        assert!(dom.contains(section), "{section}");
    }

    // A desktop screenshot is a real picture of the page.
    let shot = dir.path().join("report.png");
    browse(
        &chromium,
        &profile,
        &page,
        (1000, 2400),
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 2400));
    assert!(
        png.len() > 50_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
}

#[test]
fn a_named_benchmark_without_data_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_alchemiser"))
        .args([
            "backtest",
            "--from",
            "2020-01-01",
            "--to",
            "2020-03-31",
            "--benchmark",
            "NOPE",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("benchmark") && err.contains("NOPE"), "{err}");
    assert!(!dir.path().join("out").exists());
}
