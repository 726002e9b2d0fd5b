//! Writing a backtest's files: `summary.json`, `equity.csv`, `orders.csv` and
//! `equity.svg` (equity and drawdown, drawn with plotters).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use thiserror::Error;

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
pub fn write_all(
    dir: &Path,
    record: &BacktestRecord,
    summary: &Summary,
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
    write_chart(&chart, record, summary)?;
    Ok(vec![summary_path, equity, orders, chart])
}

/// Equity (top) and drawdown (bottom) against the session index, dates on the axis.
pub fn write_chart(
    path: &Path,
    record: &BacktestRecord,
    summary: &Summary,
) -> Result<(), ReportError> {
    let fail = |e: String| ReportError::Write {
        path: path.display().to_string(),
        message: e,
    };
    let equity: Vec<f64> = record
        .points
        .iter()
        .map(|p| p.equity.to_f64().unwrap_or(0.0))
        .collect();
    if equity.is_empty() {
        return Err(fail("no equity points to draw".into()));
    }
    let mut peak = f64::MIN;
    let drawdown: Vec<f64> = equity
        .iter()
        .map(|e| {
            peak = peak.max(*e);
            if peak > 0.0 {
                (e / peak - 1.0) * 100.0
            } else {
                0.0
            }
        })
        .collect();
    let n = equity.len();
    let dates: Vec<String> = record.points.iter().map(|p| p.date.to_string()).collect();
    let label = move |i: &usize| dates.get(*i).cloned().unwrap_or_default();
    let (lo, hi) = equity
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), e| (l.min(*e), h.max(*e)));
    let pad = ((hi - lo) * 0.05).max(1.0);
    let dd_min = drawdown.iter().copied().fold(0.0f64, f64::min).min(-1.0);

    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let (top, bottom) = root.split_vertically(460);
    let title = format!(
        "Equity {} to {}: total return {}%, max drawdown {}%",
        summary.start,
        summary.end,
        (summary.total_return * rust_decimal::Decimal::ONE_HUNDRED).round_dp(2),
        (summary.max_drawdown * rust_decimal::Decimal::ONE_HUNDRED).round_dp(2)
    );
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0..n.saturating_sub(1).max(1), (lo - pad)..(hi + pad))
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&label)
        .y_desc("equity ($)")
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            equity.iter().enumerate().map(|(i, e)| (i, *e)),
            &BLUE,
        ))
        .map_err(|e| fail(e.to_string()))?;

    let mut dd = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0..n.saturating_sub(1).max(1), (dd_min * 1.05)..0.0)
        .map_err(|e| fail(e.to_string()))?;
    dd.configure_mesh()
        .x_labels(8)
        .x_label_formatter(&label)
        .y_desc("drawdown (%)")
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    dd.draw_series(
        AreaSeries::new(
            drawdown.iter().enumerate().map(|(i, d)| (i, *d)),
            0.0,
            RED.mix(0.3),
        )
        .border_style(RED),
    )
    .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(())
}
