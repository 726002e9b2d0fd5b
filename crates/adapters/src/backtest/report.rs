//! Writing a backtest's files: `summary.json`, `equity.csv`, `orders.csv`, `equity.svg`
//! (equity and drawdown) and `report.html` (the tearsheet).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::chart::{stacked_panels, Panel, Scale, Unit};
use super::tearsheet::Tearsheet;
use super::{BacktestRecord, Summary};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{path}: {message}")]
    Write { path: String, message: String },
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|e| ReportError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

pub fn equity_csv(record: &BacktestRecord) -> String {
    let mut out = String::from("date,equity,cash\n");
    for p in &record.points {
        let _ = writeln!(
            out,
            "{},{},{}",
            p.date,
            p.equity.round_dp(2),
            p.cash.round_dp(2)
        );
    }
    out
}

pub fn orders_csv(record: &BacktestRecord) -> String {
    let mut out = String::from("date,symbol,side,qty,price,commission,client_order_id\n");
    for f in &record.fills {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            f.date,
            f.symbol,
            f.side.as_str(),
            f.qty.normalize(),
            f.price.normalize(),
            f.commission,
            f.client_order_id
        );
    }
    out
}

/// Writes every file into `dir` (created if needed); returns their paths.
/// `benchmark_note` says why the report has no benchmark, when it has none.
pub fn write_all(
    dir: &Path,
    record: &BacktestRecord,
    summary: &Summary,
    sheet: &Tearsheet,
    benchmark_note: Option<&str>,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::Write {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let summary_path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(summary).map_err(|e| ReportError::Write {
        path: summary_path.display().to_string(),
        message: e.to_string(),
    })?;
    write(&summary_path, &(json + "\n"))?;
    let equity = dir.join("equity.csv");
    write(&equity, &equity_csv(record))?;
    let orders = dir.join("orders.csv");
    write(&orders, &orders_csv(record))?;
    let chart = dir.join("equity.svg");
    write(&chart, &equity_svg(summary, sheet))?;
    let report = dir.join("report.html");
    write(
        &report,
        &super::html::render(record, summary, sheet, benchmark_note),
    )?;
    Ok(vec![summary_path, equity, orders, chart, report])
}

/// Equity (with the benchmark, if any) above drawdown, as one SVG document.
pub fn equity_svg(summary: &Summary, sheet: &Tearsheet) -> String {
    let title = format!(
        "Equity ($), {} to {}: total return {}, max drawdown {}",
        summary.start,
        summary.end,
        super::html::percent(summary.total_return),
        super::html::percent(summary.max_drawdown)
    );
    let lines = super::html::equity_lines(sheet);
    stacked_panels(&[
        Panel {
            title: &title,
            dates: &sheet.dates,
            series: lines,
            unit: Unit::Money,
            scale: Scale::Linear,
            stacked: false,
            height: 420.0,
        },
        super::html::drawdown_panel(sheet, 220.0),
    ])
}
