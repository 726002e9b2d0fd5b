//! `report.html`: one self-contained page (inline CSS and SVG, no network), readable on
//! a phone. Every figure `summary.json` holds is shown from the summary itself, marked
//! with its key (`data-key`), so a reader — or a test — can match the two.

use std::fmt::Write as _;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::chart::{self, escape, Panel, Scale, Series, Unit, PALETTE};
use super::tearsheet::{Tearsheet, DEFAULT_BENCHMARKS, RISK_FREE_RATE, ROLLING_WINDOW};
use super::FillTiming;
use super::{BacktestRecord, Summary};
use crate::readable::{money, two_places};

/// Trades listed on the page (the latest); `orders.csv` has them all.
const TRADES_LISTED: usize = 500;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,sans-serif;margin:0 auto;padding:12px;max-width:980px;color:#222;line-height:1.4}
h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.9em;overflow-wrap:anywhere}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:6px}
.stat{border:1px solid #e3e3e3;border-radius:6px;padding:6px 8px}
.stat .v{font-size:1.15em;font-weight:600}.stat .k{font-size:.8em;color:#666}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85em}td,th{padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
td.l,th.l{text-align:left}.pos{color:#1a7f37}.neg{color:#c62828}
svg{display:block;max-width:100%;height:auto}
#log{margin-right:4px}#log:checked~.lin{display:none}#log:not(:checked)~.logscale{display:none}
";

/// `0.817153` → `81.72%`.
pub fn percent(fraction: Decimal) -> String {
    format!("{:.2}%", two_places(fraction * Decimal::ONE_HUNDRED))
}

fn percent_f(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

/// The strategy's equity and, when there is one, the benchmark's, as chart lines.
pub fn equity_lines(sheet: &Tearsheet) -> Vec<Series<'_>> {
    let mut lines = vec![Series {
        name: "strategy",
        values: &sheet.equity,
        color: PALETTE[0],
    }];
    if let Some((symbol, curve)) = &sheet.benchmark {
        lines.push(Series {
            name: symbol.as_str(),
            values: curve,
            color: PALETTE[7],
        });
    }
    lines
}

/// The fall below the running peak, `height` tall.
pub fn drawdown_panel(sheet: &Tearsheet, height: f64) -> Panel<'_> {
    Panel {
        title: "Drawdown",
        dates: &sheet.dates,
        series: vec![Series {
            name: "below the running peak",
            values: &sheet.drawdown,
            color: PALETTE[3],
        }],
        unit: Unit::Percent,
        scale: Scale::Linear,
        stacked: false,
        height,
    }
}

fn signed_class(v: f64) -> &'static str {
    if v > 0.0 {
        "pos"
    } else if v < 0.0 {
        "neg"
    } else {
        ""
    }
}

struct Page {
    html: String,
}

impl Page {
    fn stat(&mut self, key: Option<&str>, label: &str, value: &str) {
        let key = key.map_or_else(String::new, |k| format!(r#" data-key="{k}""#));
        let _ = write!(
            self.html,
            r#"<div class="stat"><div class="v"{key}>{}</div><div class="k">{}</div></div>"#,
            escape(value),
            escape(label)
        );
    }

    fn section(&mut self, title: &str) {
        let _ = write!(self.html, "<h2>{}</h2>", escape(title));
    }

    fn note(&mut self, text: &str) {
        let _ = write!(self.html, r#"<p class="note">{}</p>"#, escape(text));
    }
}

fn fill_model(fill: FillTiming) -> &'static str {
    match fill {
        FillTiming::Close => {
            "Fills: at the close the signal was computed on (backtest.fill = \"close\", as Composer's backtests assume). Optimistic: live trading decides at 15:45 on the previous session's close and cannot trade at a close it has not seen."
        }
        FillTiming::NextOpen => {
            "Fills: at the next session's open after the decision on the close (backtest.fill = \"next_open\"); each day's equity is the account after the morning's fills marked at that day's close."
        }
    }
}

/// The page. `benchmark_note` says why there is no benchmark, when there is none.
pub fn render(
    record: &BacktestRecord,
    summary: &Summary,
    sheet: &Tearsheet,
    benchmark_note: Option<&str>,
) -> String {
    let mut page = Page {
        html: String::new(),
    };
    let _ = write!(
        page.html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Backtest {start} to {end}</title><style>{STYLE}</style></head><body><h1>Backtest {start} to {end}</h1>"#,
        start = summary.start,
        end = summary.end
    );
    page.note(fill_model(summary.fill));
    let stats = &sheet.statistics;
    page.note(&format!(
        "{} sessions, {} workflows ({} failed), {} warm-up sessions skipped. Sharpe and Sortino use a risk-free rate of {}% a year; volatility and ratios are annualised over 252 sessions.",
        sheet.dates.len(),
        summary.workflows,
        summary.failed_workflows,
        summary.warm_up_sessions,
        RISK_FREE_RATE * 100.0
    ));

    page.section("Statistics");
    page.html.push_str(r#"<div class="stats">"#);
    page.stat(
        Some("total_return"),
        "Total return",
        &percent(summary.total_return),
    );
    page.stat(Some("cagr"), "CAGR (per year)", &percent(summary.cagr));
    page.stat(
        Some("annual_volatility"),
        "Volatility (per year)",
        &percent(summary.annual_volatility),
    );
    page.stat(
        Some("sharpe"),
        "Sharpe",
        &two_places(summary.sharpe).to_string(),
    );
    page.stat(None, "Sortino", &format!("{:.2}", stats.sortino));
    page.stat(None, "Calmar", &format!("{:.2}", stats.calmar));
    page.stat(
        Some("max_drawdown"),
        "Max drawdown",
        &percent(summary.max_drawdown),
    );
    page.stat(
        None,
        "Longest drawdown",
        &format!("{} days", stats.max_drawdown_days),
    );
    page.stat(
        Some("initial_equity"),
        "Initial equity ($)",
        &money(summary.initial_equity),
    );
    page.stat(
        Some("final_equity"),
        "Final equity ($)",
        &money(summary.final_equity),
    );
    page.stat(Some("trades"), "Fills", &summary.trades.to_string());
    page.stat(
        Some("rejected_orders"),
        "Orders rejected",
        &summary.rejected_orders.to_string(),
    );
    page.stat(
        None,
        "Rebalances won",
        &stats.rebalance_win_rate.map_or_else(
            || "none".to_string(),
            |w| format!("{} of {}", percent_f(w), stats.rebalances),
        ),
    );
    page.stat(
        Some("turnover"),
        "Turnover (traded / avg equity)",
        &format!("{}×", two_places(summary.turnover)),
    );
    page.stat(None, "Fees paid ($)", &money(stats.fees));
    page.stat(None, "Slippage paid ($)", &money(stats.slippage));
    if let Some((symbol, _)) = &sheet.benchmark {
        let or_none = |v: Option<f64>, f: fn(f64) -> String| v.map_or_else(|| "n/a".into(), f);
        page.stat(
            None,
            &format!("{symbol} total return"),
            &or_none(stats.benchmark_total_return, percent_f),
        );
        page.stat(
            None,
            &format!("{symbol} CAGR"),
            &or_none(stats.benchmark_cagr, percent_f),
        );
        page.stat(
            None,
            &format!("Beta to {symbol}"),
            &or_none(stats.beta, |v| format!("{v:.2}")),
        );
        page.stat(
            None,
            &format!("Correlation to {symbol}"),
            &or_none(stats.correlation, |v| format!("{v:.2}")),
        );
    }
    page.html.push_str("</div>");

    page.section("Equity");
    if let Some(note) = benchmark_note {
        page.note(note);
    }
    let equity_panel = |scale| Panel {
        title: "Equity ($)",
        dates: &sheet.dates,
        series: equity_lines(sheet),
        unit: Unit::Money,
        scale,
        stacked: false,
        height: 300.0,
    };
    let _ = write!(
        page.html,
        r#"<input type="checkbox" id="log"><label for="log">log scale</label><div class="lin">{}</div><div class="logscale">{}</div>"#,
        chart::svg(&equity_panel(Scale::Linear)),
        chart::svg(&equity_panel(Scale::Log))
    );
    page.html
        .push_str(&chart::svg(&drawdown_panel(sheet, 180.0)));

    calendar_returns(&mut page, sheet);

    page.section("Risk over time");
    let rolling: Vec<f64> = sheet
        .rolling_sharpe
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    page.html.push_str(&chart::svg(&Panel {
        title: &format!("Rolling Sharpe ({ROLLING_WINDOW} sessions, about 6 months)"),
        dates: &sheet.dates,
        series: vec![Series {
            name: "Sharpe",
            values: &rolling,
            color: PALETTE[4],
        }],
        unit: Unit::Ratio,
        scale: Scale::Linear,
        stacked: false,
        height: 180.0,
    }));
    page.html.push_str(&chart::svg(&Panel {
        title: "Exposure (invested share of equity)",
        dates: &sheet.dates,
        series: vec![Series {
            name: "exposure",
            values: &sheet.exposure,
            color: PALETTE[2],
        }],
        unit: Unit::Percent,
        scale: Scale::Linear,
        stacked: false,
        height: 160.0,
    }));

    page.section("Allocation");
    page.html.push_str(&chart::svg(&Panel {
        title: "Holdings by symbol (share of equity)",
        dates: &sheet.dates,
        series: sheet
            .allocation
            .iter()
            .enumerate()
            .map(|(i, (name, values))| Series {
                name,
                values,
                color: PALETTE[i % PALETTE.len()],
            })
            .collect(),
        unit: Unit::Percent,
        scale: Scale::Linear,
        stacked: true,
        height: 260.0,
    }));

    page.section("Attribution by strategy file");
    if sheet.attribution.is_empty() {
        page.note("One strategy file: the whole result is its own.");
    } else {
        page.note("Each file's slice at its target weights (decided on a close, held to the next), before costs: contribution is the sum of its weighted daily returns.");
        page.html.push_str(r#"<div class="scroll"><table><tr><th class="l">file</th><th>weight</th><th>contribution</th><th>its own return</th></tr>"#);
        for a in &sheet.attribution {
            let _ = write!(
                page.html,
                r#"<tr><td class="l">{}</td><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
                escape(&a.name),
                percent(a.file_weight),
                signed_class(a.contribution),
                percent_f(a.contribution),
                percent_f(a.standalone_return)
            );
        }
        page.html.push_str("</table></div>");
    }

    page.section("Largest drawdowns");
    page.html.push_str(r#"<div class="scroll"><table><tr><th class="l">peak</th><th class="l">trough</th><th class="l">recovered</th><th>depth</th><th>days</th></tr>"#);
    for d in &sheet.drawdowns {
        let _ = write!(
            page.html,
            r#"<tr><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td class="neg">{}</td><td>{}</td></tr>"#,
            d.peak,
            d.trough,
            d.recovered
                .map_or_else(|| "not yet".to_string(), |r: NaiveDate| r.to_string()),
            percent_f(-d.depth),
            d.days
        );
    }
    page.html.push_str("</table></div>");

    trade_list(&mut page, record);
    page.note(&format!(
        "Chain digest of the run's events: {}",
        summary.chain_digest
    ));
    // Records whether the page fits the window's width (a phone's included), for the
    // browser test; it changes nothing on the page.
    page.html.push_str("<script>addEventListener('load',function(){document.body.dataset.fits=String(document.documentElement.scrollWidth<=window.innerWidth)})</script></body></html>\n");
    page.html
}

fn calendar_returns(page: &mut Page, sheet: &Tearsheet) {
    page.section("Monthly and yearly returns");
    page.html
        .push_str(r#"<div class="scroll"><table><tr><th class="l">year</th>"#);
    for m in [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ] {
        let _ = write!(page.html, "<th>{m}</th>");
    }
    page.html.push_str("<th>year</th></tr>");
    for (year, total) in &sheet.yearly {
        let _ = write!(page.html, r#"<tr><td class="l">{year}</td>"#);
        for month in 1..=12 {
            match sheet.monthly.get(&(*year, month)) {
                Some(r) => {
                    let _ = write!(
                        page.html,
                        r#"<td class="{}">{:.1}%</td>"#,
                        signed_class(*r),
                        r * 100.0
                    );
                }
                None => page.html.push_str("<td></td>"),
            }
        }
        let _ = write!(
            page.html,
            r#"<td class="{}"><b>{:.1}%</b></td></tr>"#,
            signed_class(*total),
            total * 100.0
        );
    }
    page.html.push_str("</table></div>");
    page.note("A year or month only partly inside the run shows the return of its part.");
}

fn trade_list(page: &mut Page, record: &BacktestRecord) {
    page.section("Trades");
    let skipped = record.fills.len().saturating_sub(TRADES_LISTED);
    if skipped > 0 {
        page.note(&format!(
            "The latest {TRADES_LISTED} of {} fills; orders.csv has every one.",
            record.fills.len()
        ));
    }
    page.html.push_str(r#"<div class="scroll"><table><tr><th class="l">date</th><th class="l">symbol</th><th class="l">side</th><th>quantity</th><th>price ($)</th><th>value ($)</th><th>costs ($)</th></tr>"#);
    for f in &record.fills[skipped..] {
        let _ = write!(
            page.html,
            r#"<tr><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            f.date,
            escape(&f.symbol),
            f.side.as_str(),
            f.qty.normalize(),
            f.price.normalize(),
            money(f.qty * f.price),
            money(f.commission)
        );
    }
    page.html.push_str("</table></div>");
}

/// Why a report has no benchmark line, for the page.
pub fn no_benchmark_note() -> String {
    format!(
        "No benchmark: none of {} is in the data; name one with --benchmark SYMBOL.",
        DEFAULT_BENCHMARKS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn percentages_read_plainly() {
        assert_eq!(percent(dec!(0.817153)), "81.72%");
        assert_eq!(percent(dec!(10.041692)), "1004.17%");
        assert_eq!(percent(dec!(-0.05)), "-5.00%");
        assert_eq!(percent(dec!(0.407650)), "40.77%");
    }
}
